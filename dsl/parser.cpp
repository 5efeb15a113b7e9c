// Parser facade. See parser.hpp.
#include "dsl/parser.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "dsl/parser/grammar.hpp"
#include "dsl/parser/lower.hpp"

namespace gavel::dsl {
namespace {

bool IsIdent(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

const char* const kTopKeywords[] = {"import", "table", "event", "entity",
                                    "score",  "rule",  "journey", "alert"};

bool IsTopKeyword(std::string_view w) {
  for (const char* k : kTopKeywords) {
    if (w == k) return true;
  }
  return false;
}

struct Chunk {
  const char* begin = nullptr;
  const char* end = nullptr;
  bool too_deep = false;
  const char* deep_at = nullptr;
  std::string deep_what;
};

// Cuts the text into declarations and measures nesting, in one pass that knows strings and
// comments. Text before the first declaration becomes a chunk of its own (and an error).
std::vector<Chunk> Split(const char* begin, const char* end, const ParseLimits& limits) {
  std::vector<Chunk> chunks;
  const char* chunk_start = begin;
  int depth = 0;
  int unary_run = 0;
  int waits = 0;
  bool line_start = true;
  Chunk cur;
  cur.begin = begin;
  cur.end = end;
  auto flag = [&](const char* at, std::string what) {
    if (!cur.too_deep) {
      cur.too_deep = true;
      cur.deep_at = at;
      cur.deep_what = std::move(what);
    }
  };
  const char* p = begin;
  while (p < end) {
    char c = *p;
    if (c == '\n') {
      line_start = true;
      ++p;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      line_start = false;
      ++p;
      continue;
    }
    bool at_line_start = line_start;
    line_start = false;
    if (c == '#') {
      while (p < end && *p != '\n') ++p;
      continue;
    }
    if (c == '"') {
      ++p;
      while (p < end && *p != '"' && *p != '\n') p += (*p == '\\' && p + 1 < end && p[1] != '\n') ? 2 : 1;
      if (p < end && *p == '"') ++p;
      unary_run = 0;
      continue;
    }
    if (IsIdent(c)) {
      const char* w = p;
      while (p < end && (IsIdent(*p) || *p == '-')) {
        if (*p == '-' && !(p + 1 < end && IsIdent(p[1]) && std::string_view(w, p - w) == "half")) break;
        ++p;
      }
      std::string_view word(w, p - w);
      if (IsTopKeyword(word) && (depth <= 0 || at_line_start) && !std::isdigit(static_cast<unsigned char>(c))) {
        if (w != chunk_start) {
          cur.end = w;
          cur.begin = chunk_start;
          chunks.push_back(cur);
        }
        cur = Chunk();
        cur.begin = w;
        cur.end = end;
        chunk_start = w;
        depth = 0;
        unary_run = 0;
        waits = 0;
      }
      if (word == "not") {
        if (++unary_run > limits.max_nesting) flag(w, "`not` and `-` in a row");
      } else {
        unary_run = 0;
      }
      if (word == "wait" && ++waits > limits.max_waits_per_declaration) {
        flag(w, "waits in one journey");
      }
      continue;
    }
    if (c == '-') {
      if (++unary_run > limits.max_nesting) flag(p, "`not` and `-` in a row");
    } else {
      unary_run = 0;
    }
    if (c == '(' || c == '[' || c == '{') {
      if (++depth > limits.max_nesting) flag(p, "levels of brackets");
    } else if (c == ')' || c == ']' || c == '}') {
      --depth;
    }
    ++p;
  }
  cur.begin = chunk_start;
  cur.end = end;
  if (cur.begin != end) chunks.push_back(cur);
  return chunks;
}

// The token at `p`, for "found `...`" in messages.
std::string Found(const char* p, const char* end) {
  if (p >= end) return "the end of the file";
  const char* q = p;
  if (IsIdent(*q)) {
    while (q < end && (IsIdent(*q) || *q == '.')) ++q;
    // A number with its unit: 30days, 1.5x
  } else if (*q == '"') {
    ++q;
    while (q < end && *q != '"' && *q != '\n' && q - p < 30) ++q;
    if (q < end && *q == '"') ++q;
  } else {
    // one character, or a whole UTF-8 sequence
    ++q;
    while (q < end && (static_cast<unsigned char>(*q) & 0xC0) == 0x80) ++q;
  }
  std::string s(p, q);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return "`" + s + "`";
}

// What a block accepts, from the name of the rule that closes it: "a rule clause (owner,
// on, ...) or `}`" gives {"owner", "on", ...}.
std::vector<std::string> ClauseWords(const std::string& expected) {
  std::vector<std::string> out;
  auto open = expected.find('(');
  auto close = expected.find(')');
  if (open == std::string::npos || close == std::string::npos) return out;
  std::string inner = expected.substr(open + 1, close - open - 1);
  std::size_t pos = 0;
  while (pos < inner.size()) {
    std::size_t comma = inner.find(',', pos);
    if (comma == std::string::npos) comma = inner.size();
    std::string item = inner.substr(pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    auto sp = item.find(' ');
    out.push_back(sp == std::string::npos ? item : item.substr(0, sp));
    pos = comma + 1;
  }
  return out;
}

void ReportSyntax(const SourceFile& f, std::uint32_t file_id, const parser::SyntaxError& err,
                  const char* chunk_begin, const char* chunk_end, Diagnostics& diags) {
  const char* base = f.text.data();
  const char* end = base + f.text.size();
  const char* at = err.where ? err.where : chunk_begin;
  at = parser::SkipBlanks(at, chunk_end);
  std::string expected = err.expected;
  // Names of anonymous parser pieces are C++ type names; never show those.
  if (expected.empty() || expected.find("::") != std::string::npos ||
      expected.find("boost") != std::string::npos || expected.rfind("N5", 0) == 0) {
    expected = "something else";
  }
  if (!err.where) {
    expected = "a declaration (import, table, event, entity, score, rule, journey or alert)";
  }
  std::string found = Found(at, at >= chunk_end ? end : chunk_end);
  const char* tok_end = at;
  while (tok_end < chunk_end && IsIdent(*tok_end)) ++tok_end;
  if (tok_end == at && at < chunk_end) {
    ++tok_end;
    while (tok_end < chunk_end && (static_cast<unsigned char>(*tok_end) & 0xC0) == 0x80) ++tok_end;
  }
  Span span{file_id, static_cast<std::uint32_t>(at - base), static_cast<std::uint32_t>(tok_end - base)};

  // An unknown word where a clause should be: say so, and suggest the closest clause.
  auto words = ClauseWords(expected);
  if (!words.empty() && at < chunk_end && IsIdent(*at) && expected.find("or `}`") != std::string::npos) {
    std::string word(at, tok_end);
    std::string kind = expected.substr(0, expected.find('(') - 1);  // "a rule clause"
    std::string suggestion = ClosestMatch(word, words);
    std::string hint = suggestion.empty()
                           ? "this block accepts: " + expected.substr(expected.find('(') + 1,
                                                                     expected.find(')') - expected.find('(') - 1)
                           : "did you mean `" + suggestion + "`?";
    diags.Error("unknown-clause", span, "`" + word + "` is not " + kind, hint);
    return;
  }
  std::string hint;
  if (at < chunk_end && *at == '=' && expected.find("clause") != std::string::npos) {
    hint = "to compare, write `==`";
  }
  if (at >= chunk_end && expected.find('}') != std::string::npos) {
    hint = "a `}` is missing: every `{` needs a matching `}`";
  }
  diags.Error("syntax", span, "expected " + expected + ", found " + found, hint);
}

}  // namespace

File ParseFile(const SourceManager& sources, std::uint32_t file_id, Diagnostics& diags,
               const ParseLimits& limits) {
  File file;
  file.id = file_id;
  const SourceFile& f = sources.file(file_id);
  if (f.text.size() > limits.max_file_bytes) {
    diags.Error("file-too-large", Span{file_id, 0, 0},
                "this file is " + std::to_string(f.text.size()) + " bytes; a rule file may be at most " +
                    std::to_string(limits.max_file_bytes) + " bytes",
                "split it into several files in the same directory");
    return file;
  }
  if (std::memchr(f.text.data(), '\0', f.text.size()) != nullptr) {
    auto at = static_cast<std::uint32_t>(
        static_cast<const char*>(std::memchr(f.text.data(), '\0', f.text.size())) - f.text.data());
    diags.Error("binary-file", Span{file_id, at, at + 1},
                "this file contains a NUL byte; is it really a rule file?");
    return file;
  }
  const char* base = f.text.data();
  const char* end = base + f.text.size();
  const char* start = base;
  if (f.text.size() >= 3 && std::memcmp(base, "\xEF\xBB\xBF", 3) == 0) start += 3;  // UTF-8 BOM

  for (const Chunk& chunk : Split(start, end, limits)) {
    const char* first = parser::SkipBlanks(chunk.begin, chunk.end);
    if (first == chunk.end) continue;
    if (chunk.too_deep) {
      diags.Error("too-deep",
                  Span{file_id, static_cast<std::uint32_t>(chunk.deep_at - base),
                       static_cast<std::uint32_t>(chunk.deep_at - base + 1)},
                  "too many " + chunk.deep_what + " (the limit is " +
                      std::to_string(chunk.deep_what == "waits in one journey"
                                         ? limits.max_waits_per_declaration
                                         : limits.max_nesting) +
                      ")",
                  "split this into smaller pieces");
      continue;
    }
    x3ast::declaration decl;
    parser::SyntaxError err;
    const char* it = first;
    if (!parser::ParseDeclaration(it, chunk.end, decl, err)) {
      ReportSyntax(f, file_id, err, first, chunk.end, diags);
      continue;
    }
    const char* rest = parser::SkipBlanks(it, chunk.end);
    if (rest != chunk.end) {
      const char* tok_end = rest + 1;
      diags.Error("syntax",
                  Span{file_id, static_cast<std::uint32_t>(rest - base),
                       static_cast<std::uint32_t>(tok_end - base)},
                  "expected a new declaration (import, table, event, entity, score, rule, journey "
                  "or alert), found " +
                      Found(rest, chunk.end),
                  *rest == '}' ? "this `}` has no matching `{`" : "");
      // The declaration itself parsed; keep it so that its other mistakes are reported too.
    }
    parser::LowerDeclaration(decl, base, file_id, file, diags);
  }
  return file;
}

}  // namespace gavel::dsl
