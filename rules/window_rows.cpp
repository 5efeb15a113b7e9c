#include "rules/window_rows.hpp"

#include <algorithm>

namespace gavel::rules {

// Each query's rows are checked against byte order and sorted only when they differ (the common
// case, text keys from SQLite, is already in order), then the queries are merged.
LinedUpRows LineUpByKey(const std::vector<std::vector<WindowRow>>& rows) {
  const std::size_t n_queries = rows.size();
  std::vector<std::vector<const WindowRow*>> sorted(n_queries);
  for (std::size_t q = 0; q < n_queries; ++q) {
    std::vector<const WindowRow*> v;
    v.reserve(rows[q].size());
    for (const auto& r : rows[q]) v.push_back(&r);
    auto less = [](const WindowRow* a, const WindowRow* b) { return a->key < b->key; };
    if (!std::is_sorted(v.begin(), v.end(), less)) std::stable_sort(v.begin(), v.end(), less);
    auto& out = sorted[q];
    out.reserve(v.size());
    for (const WindowRow* r : v) {
      if (!out.empty() && out.back()->key == r->key) {
        out.back() = r;  // stable: the later of equal keys
      } else {
        out.push_back(r);
      }
    }
  }
  LinedUpRows lined;
  lined.at.resize(n_queries);
  std::size_t most = 0;
  for (const auto& v : sorted) most = std::max(most, v.size());
  lined.keys.reserve(most);
  for (auto& a : lined.at) a.reserve(most);
  std::vector<std::size_t> next(n_queries, 0);
  for (;;) {
    const std::string* least = nullptr;
    for (std::size_t q = 0; q < n_queries; ++q) {
      if (next[q] < sorted[q].size() && (!least || sorted[q][next[q]]->key < *least)) least = &sorted[q][next[q]]->key;
    }
    if (!least) break;
    lined.keys.push_back(*least);
    const std::string& key = lined.keys.back();
    for (std::size_t q = 0; q < n_queries; ++q) {
      const bool here = next[q] < sorted[q].size() && sorted[q][next[q]]->key == key;
      lined.at[q].push_back(here ? sorted[q][next[q]++] : nullptr);
    }
  }
  return lined;
}

}  // namespace gavel::rules
