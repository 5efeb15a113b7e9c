// LineUpByKey (rules/window_rows.hpp) against a plain map built row by row, over generated
// windows: keys in any order, shared between queries or not, repeated within a query,
// numeric-looking and empty keys.
#include "rules/window_rows.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <random>

namespace {

using gavel::rules::WindowRow;

WindowRow Row(const std::string& key, std::int64_t tag) {
  WindowRow r;
  r.key = key;
  r.row_count = tag;  // tells the rows apart
  return r;
}

}  // namespace

TEST_CASE("window rows line up by key as a map of the rows in order would", "[engine][window]") {
  const std::vector<std::string> alphabet = {"", "1", "2", "9", "10", "100", "a", "A", "ad-7", "ad-70", "b", "\xc3\xa9"};
  std::mt19937_64 rng(20261124);
  for (int round = 0; round < 3000; ++round) {
    const std::size_t n_queries = 1 + rng() % 3;
    std::vector<std::vector<WindowRow>> rows(n_queries);
    std::int64_t tag = 0;
    for (auto& q : rows) {
      const std::size_t n = rng() % 20;
      for (std::size_t i = 0; i < n; ++i) q.push_back(Row(alphabet[rng() % alphabet.size()], ++tag));
      if (rng() % 2) std::sort(q.begin(), q.end(), [](const WindowRow& a, const WindowRow& b) { return a.key < b.key; });
    }
    // The reference: each query's rows into a map in order (the last of a key wins).
    std::map<std::string, std::vector<std::int64_t>> want;
    for (std::size_t q = 0; q < n_queries; ++q) {
      for (const auto& r : rows[q]) {
        auto& tags = want.try_emplace(r.key, n_queries, 0).first->second;
        tags[q] = r.row_count;
      }
    }
    const gavel::rules::LinedUpRows got = gavel::rules::LineUpByKey(rows);
    REQUIRE(got.at.size() == n_queries);
    std::map<std::string, std::vector<std::int64_t>> seen;
    REQUIRE(std::is_sorted(got.keys.begin(), got.keys.end()));
    REQUIRE(std::adjacent_find(got.keys.begin(), got.keys.end()) == got.keys.end());
    for (std::size_t i = 0; i < got.keys.size(); ++i) {
      std::vector<std::int64_t> tags(n_queries, 0);
      for (std::size_t q = 0; q < n_queries; ++q) {
        REQUIRE(got.at[q].size() == got.keys.size());
        if (const WindowRow* r = got.at[q][i]) {
          REQUIRE(r->key == got.keys[i]);
          tags[q] = r->row_count;
        }
      }
      seen[got.keys[i]] = tags;
    }
    INFO("round " << round);
    REQUIRE(seen == want);
  }
}

TEST_CASE("no window rows line up to no keys", "[engine][window]") {
  CHECK(gavel::rules::LineUpByKey({}).keys.empty());
  const std::vector<std::vector<WindowRow>> empty(2);
  const auto lined = gavel::rules::LineUpByKey(empty);
  CHECK(lined.keys.empty());
  CHECK(lined.at.size() == 2);
}
