#include "dsl/diagnostic.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace gavel::dsl {

void Diagnostics::Error(std::string code, Span span, std::string message, std::string hint) {
  list_.push_back({DiagSeverity::kError, std::move(code), std::move(message), std::move(hint), span});
  ++errors_;
}

void Diagnostics::Warning(std::string code, Span span, std::string message, std::string hint) {
  list_.push_back({DiagSeverity::kWarning, std::move(code), std::move(message), std::move(hint), span});
}

void Diagnostics::Sort() {
  std::stable_sort(list_.begin(), list_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.span.file != b.span.file) return a.span.file < b.span.file;
    return a.span.begin < b.span.begin;
  });
}

void Diagnostics::Append(const Diagnostics& other) {
  for (const auto& d : other.list_) {
    list_.push_back(d);
    if (d.severity == DiagSeverity::kError) ++errors_;
  }
}

void Diagnostics::Limit(std::size_t max_errors) {
  if (static_cast<std::size_t>(errors_) <= max_errors) return;
  std::vector<Diagnostic> kept;
  std::size_t errors = 0;
  Span last{};
  for (const auto& d : list_) {
    if (d.severity == DiagSeverity::kError) {
      if (errors == max_errors) break;
      ++errors;
      last = d.span;
    }
    kept.push_back(d);
  }
  int hidden = errors_ - static_cast<int>(max_errors);
  list_ = std::move(kept);
  errors_ = static_cast<int>(max_errors);
  Error("too-many-errors", last,
        std::to_string(hidden) + " more error" + (hidden == 1 ? " is" : "s are") + " not shown",
        "fix the errors above first; many of the rest are often the same mistake");
}

namespace {

const char* SeverityName(DiagSeverity s) { return s == DiagSeverity::kError ? "error" : "warning"; }

// Number of code points in s.
std::size_t CodePoints(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace

std::string RenderText(const SourceManager& sources, const std::vector<Diagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) {
    const SourceFile& f = sources.file(d.span.file);
    LineCol pos = sources.Position(d.span.file, d.span.begin);
    out += f.path + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " +
           SeverityName(d.severity) + ": " + d.message + "\n";
    std::string_view line = sources.Line(d.span.file, pos.line);
    if (!f.text.empty()) {
      // A line longer than kLongLine is shown as kContext bytes either side of the caret, so
      // that a mistake on a very long line does not print the whole line again for every
      // diagnostic on it.
      constexpr std::uint32_t kLongLine = 200;
      constexpr std::uint32_t kContext = 80;
      const std::uint32_t line_start = f.line_starts[pos.line - 1];
      const std::uint32_t line_end = line_start + static_cast<std::uint32_t>(line.size());
      const std::uint32_t caret = std::min(std::max(d.span.begin, line_start), line_end);
      const bool long_line = line_end - line_start > kLongLine;
      std::uint32_t from = long_line && caret - line_start > kContext ? caret - kContext : line_start;
      std::uint32_t to = long_line && line_end - caret > kContext ? caret + kContext : line_end;
      auto continuation = [&](std::uint32_t i) {
        return i < f.text.size() && (static_cast<unsigned char>(f.text[i]) & 0xC0) == 0x80;
      };
      while (from > line_start && continuation(from)) --from;  // never cut a character in two
      while (to < line_end && continuation(to)) ++to;
      const char* kEllipsis = "...";
      out += "  ";
      if (from > line_start) out += kEllipsis;
      out.append(f.text.data() + from, to - from);
      if (to < line_end) out += kEllipsis;
      out += "\n  ";
      if (from > line_start) out += "   ";
      // Reproduce tabs so the caret lines up; everything else becomes a space.
      std::string_view before(f.text.data() + from, caret - from);
      for (char c : before) {
        if ((static_cast<unsigned char>(c) & 0xC0) == 0x80) continue;
        out += c == '\t' ? '\t' : ' ';
      }
      out += '^';
      // Underline the rest of the span, but only as far as the shown part of this line.
      std::uint32_t end = std::min(d.span.end, to);
      if (end > caret + 1) {
        std::string_view rest(f.text.data() + caret, end - caret);
        std::size_t n = CodePoints(rest);
        if (n > 1) out.append(n - 1, '~');
      }
      out += "\n";
    }
    if (!d.hint.empty()) out += "  hint: " + d.hint + "\n";
  }
  return out;
}

std::string RenderJson(const SourceManager& sources, const std::vector<Diagnostic>& diags) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& d : diags) {
    LineCol b = sources.Position(d.span.file, d.span.begin);
    LineCol e = sources.Position(d.span.file, std::max(d.span.end, d.span.begin));
    nlohmann::ordered_json j;
    j["file"] = sources.file(d.span.file).path;
    j["line"] = b.line;
    j["column"] = b.column;
    j["end"] = {{"line", e.line}, {"column", e.column}};
    j["severity"] = SeverityName(d.severity);
    j["code"] = d.code;
    j["message"] = d.message;
    j["hint"] = d.hint;
    arr.push_back(std::move(j));
  }
  return arr.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  // Names longer than this are not typos of a keyword or field: no suggestion, and no
  // |word| x |candidate| edit-distance table for a 30,000-letter name (found by the fuzzer).
  constexpr std::size_t kMaxWord = 64;
  if (word.size() > kMaxWord) return {};
  std::string best;
  std::size_t best_d = std::string::npos;
  const std::size_t limit = std::max<std::size_t>(1, word.size() / 3);
  auto lower = [](char ch) { return std::tolower(static_cast<unsigned char>(ch)); };
  for (const auto& c : candidates) {
    // A candidate whose length differs by more than the limit can never be close enough.
    std::size_t diff = c.size() > word.size() ? c.size() - word.size() : word.size() - c.size();
    if (diff > limit || c.size() > kMaxWord) continue;
    // Edit distance where swapping two neighbouring letters (`nmae`, `veiw`) costs one edit.
    std::vector<std::size_t> before(c.size() + 1), prev(c.size() + 1), cur(c.size() + 1);
    for (std::size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= c.size(); ++j) {
        std::size_t cost = lower(word[i - 1]) == lower(c[j - 1]) ? 0 : 1;
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
        if (i > 1 && j > 1 && lower(word[i - 1]) == lower(c[j - 2]) && lower(word[i - 2]) == lower(c[j - 1])) {
          cur[j] = std::min(cur[j], before[j - 2] + 1);
        }
      }
      before = prev;
      std::swap(prev, cur);
    }
    std::size_t d = prev[c.size()];
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // Close enough: at most a third of the word's letters differ (and at least one may).
  if (best_d == 0) return {};
  if (best_d <= limit) return best;
  // A word that is the start of exactly one candidate (`target` for `target_cpa`).
  if (word.size() >= 3) {
    std::string prefixed;
    for (const auto& c : candidates) {
      if (c.size() > word.size() && c.compare(0, word.size(), word) == 0) {
        if (!prefixed.empty() && prefixed != c) return {};
        prefixed = c;
      }
    }
    return prefixed;
  }
  return {};
}

}  // namespace gavel::dsl
