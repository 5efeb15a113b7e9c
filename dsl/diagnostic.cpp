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
      out += "  ";
      out += line;
      out += "\n  ";
      // Reproduce tabs so the caret lines up; everything else becomes a space.
      std::uint32_t line_start = f.line_starts[pos.line - 1];
      std::string_view before(f.text.data() + line_start, d.span.begin - line_start);
      for (char c : before) {
        if ((static_cast<unsigned char>(c) & 0xC0) == 0x80) continue;
        out += c == '\t' ? '\t' : ' ';
      }
      out += '^';
      // Underline the rest of the span, but only as far as the end of this line.
      std::uint32_t line_end = line_start + static_cast<std::uint32_t>(line.size());
      std::uint32_t end = std::min(d.span.end, line_end);
      if (end > d.span.begin + 1) {
        std::string_view rest(f.text.data() + d.span.begin, end - d.span.begin);
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
  std::string best;
  std::size_t best_d = std::string::npos;
  auto lower = [](char ch) { return std::tolower(static_cast<unsigned char>(ch)); };
  for (const auto& c : candidates) {
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
  std::size_t limit = std::max<std::size_t>(1, word.size() / 3);
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
