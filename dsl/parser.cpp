// Parser facade. See parser.hpp.
#include "dsl/parser.hpp"

#include <algorithm>
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

// The last `{` in [begin, end) that is not closed, skipping texts and comments; null if none.
const char* UnclosedBrace(const char* begin, const char* end) {
  std::vector<const char*> open;
  for (const char* p = begin; p < end; ++p) {
    if (*p == '#') {
      while (p < end && *p != '\n') ++p;
    } else if (*p == '"') {
      ++p;
      while (p < end && *p != '"' && *p != '\n') p += (*p == '\\' && p + 1 < end && p[1] != '\n') ? 2 : 1;
    } else if (*p == '{') {
      open.push_back(p);
    } else if (*p == '}' && !open.empty()) {
      open.pop_back();
    }
  }
  return open.empty() ? nullptr : open.back();
}

std::uint32_t LineOf(const SourceFile& f, const char* p) {
  auto off = static_cast<std::uint32_t>(p - f.text.data());
  return static_cast<std::uint32_t>(std::upper_bound(f.line_starts.begin(), f.line_starts.end(), off) -
                                    f.line_starts.begin());
}

bool NonAscii(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// The tokens (words, texts, punctuation) of [begin, end), comments left out; for looking
// at what came just before an error.
std::vector<std::string_view> Tokens(const char* begin, const char* end) {
  std::vector<std::string_view> out;
  const char* p = begin;
  while (p < end) {
    const char* b = p;
    if (*p == '#') {
      while (p < end && *p != '\n') ++p;
      continue;
    }
    if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
      ++p;
      continue;
    }
    if (*p == '"') {
      ++p;
      while (p < end && *p != '"' && *p != '\n') p += (*p == '\\' && p + 1 < end && p[1] != '\n') ? 2 : 1;
      if (p < end && *p == '"') ++p;
    } else if (IsIdent(*p)) {
      while (p < end && IsIdent(*p)) ++p;
    } else {
      ++p;
      if (p < end && *p == '=' && std::strchr("<>=!", *b) != nullptr) ++p;
    }
    out.emplace_back(b, static_cast<std::size_t>(p - b));
  }
  return out;
}

// What the grammar wanted where its own description is only a C++ type name: said from the
// word that came before.
std::string ExpectedAfter(std::string_view prev) {
  if (prev == "then") return "an action (pause, enable, set, reallocate, webhook, notify, email, message)";
  if (prev == "tags") return "a quoted tag such as \"lifecycle\"";
  if (prev == "dims" || prev == "facts") return "a field such as `spend: money(USD)`";
  if (prev == "for") return "the name of an event to wait for";
  if (prev == "same") return "`hour of week`, `hour of day` or `day of week`";
  if (prev == ")") return "`by 3 sigma` or `with confidence 99%`";
  if (prev == "of") return "`week` or `day`, as in `same hour of week`";
  return {};
}

bool IsOperator(std::string_view t) {
  static const char* const kOps[] = {"<", ">", "<=", ">=", "==", "!=", "=", "+", "-", "*", "/",
                                     "(", ",", "and", "or", "not", "in", "like"};
  for (const char* o : kOps) {
    if (t == o) return true;
  }
  return false;
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
  std::vector<std::string_view> before = Tokens(chunk_begin, std::min(at, chunk_end));
  if (expected == "something else" && !before.empty()) {
    std::string said = ExpectedAfter(before.back());
    if (!said.empty()) expected = said;
  }
  std::string found = Found(at, at >= chunk_end ? end : chunk_end);
  const char* tok_end = at;
  while (tok_end < chunk_end && IsIdent(*tok_end)) ++tok_end;
  if (tok_end == at && at < chunk_end) {
    ++tok_end;
    while (tok_end < chunk_end && (static_cast<unsigned char>(*tok_end) & 0xC0) == 0x80) ++tok_end;
  }
  Span span{file_id, static_cast<std::uint32_t>(at - base), static_cast<std::uint32_t>(tok_end - base)};
  auto span_of = [&](const char* b, const char* e) {
    return Span{file_id, static_cast<std::uint32_t>(b - base), static_cast<std::uint32_t>(e - base)};
  };

  // A text whose closing quote is missing: underline it to the end of its line.
  if (at < chunk_end && *at == '"' && expected.rfind("a closing", 0) == 0) {
    const char* eol = at;
    while (eol < end && *eol != '\n' && *eol != '\r') ++eol;
    diags.Error("syntax", span_of(at, eol), "this text is never closed",
                "a text ends on the line where it starts: add a `\"` at its end");
    return;
  }

  // A letter outside ASCII: inside a name, or a stray character such as a curly quote.
  if (at < chunk_end && NonAscii(*at)) {
    const char* wb = at;
    while (wb > chunk_begin && (IsIdent(wb[-1]) || NonAscii(wb[-1]))) --wb;
    const char* we = at;
    while (we < chunk_end && (IsIdent(*we) || NonAscii(*we))) ++we;
    std::string word(wb, we);
    // A name if it has an ASCII letter or digit, or more than one character.
    bool in_name = std::any_of(wb, we, IsIdent) || we > tok_end;
    std::string_view here(at, static_cast<std::size_t>(std::min<std::ptrdiff_t>(3, chunk_end - at)));
    if (here == "\xE2\x80\x9C" || here == "\xE2\x80\x9D" || here == "\xE2\x80\x98" || here == "\xE2\x80\x99") {
      diags.Error("syntax", span_of(at, at + 3), "`" + std::string(here) + "` is a curly quote",
                  "write texts between straight quotes: \"...\"");
    } else if (in_name) {
      diags.Error("syntax", span_of(wb, we), "`" + word + "` is not a valid name",
                  "names use only the letters a-z and A-Z, digits and `_`; other characters belong in quoted text");
    } else {
      diags.Error("syntax", span, "unexpected " + Found(at, chunk_end) + " here",
                  "outside quoted text, gavel uses only ASCII letters, digits and punctuation");
    }
    return;
  }

  // The end of a declaration came before the `}` of one of its blocks: point at that `{`.
  if (at >= chunk_end && expected.find('}') != std::string::npos) {
    if (const char* brace = UnclosedBrace(chunk_begin, chunk_end)) {
      std::string hint;
      if (std::find(chunk_begin, brace, '{') == brace) {
        // "rule NAME {": name the declaration.
        const char* kb = chunk_begin;
        const char* ke = kb;
        while (ke < brace && IsIdent(*ke)) ++ke;
        const char* nb = ke;
        while (nb < brace && (*nb == ' ' || *nb == '\t')) ++nb;
        const char* ne = nb;
        while (ne < brace && IsIdent(*ne)) ++ne;
        hint = "add a `}` at the end of " + std::string(kb, ke) + " `" + std::string(nb, ne) + "`";
      } else {
        hint = "add a `}` to close this block";
      }
      if (chunk_end < end) {
        hint += ", before the next declaration on line " + std::to_string(LineOf(f, chunk_end));
      }
      diags.Error("syntax", span_of(brace, brace + 1), "this `{` is never closed", hint);
      return;
    }
  }

  auto words = ClauseWords(expected);
  // `when cpa >` and then `then ...` on the next line: the clause word was read as the missing
  // value, and the error shows up one word later. Say what really happened.
  if (!words.empty() && before.size() >= 2 && expected.find("or `}`") != std::string::npos &&
      std::find(words.begin(), words.end(), std::string(before.back())) != words.end() &&
      (IsOperator(before[before.size() - 2]) || before[before.size() - 2] == "for")) {
    std::string_view clause = before.back();
    std::string_view op = before[before.size() - 2];
    const char* cb = clause.data();
    if (op == "for") {
      diags.Error("syntax", span_of(cb, cb + clause.size()),
                  "expected the name of an event after `for`, found `" + std::string(clause) + "`",
                  "say which events end the wait early, e.g. `wait up to 48h for email_open`");
    } else {
      diags.Error("syntax", span_of(cb, cb + clause.size()),
                  "expected a value after `" + std::string(op) + "`, found `" + std::string(clause) + "`",
                  "the expression before `" + std::string(clause) + "` is not finished");
    }
    return;
  }
  // An unknown word where a clause should be: say so, and suggest the closest clause.
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
  if (!words.empty() && at < chunk_end && IsIdent(*at)) {
    std::string suggestion = ClosestMatch(std::string(at, tok_end), words);
    if (!suggestion.empty()) hint = "did you mean `" + suggestion + "`?";
  }
  if (expected.rfind("a quoted text", 0) == 0 && at < chunk_end && IsIdent(*at)) {
    const char* we = at;
    while (we < chunk_end && *we != ' ' && *we != '\t' && *we != '\n' && *we != '\r') ++we;
    hint = "put text in double quotes: \"" + std::string(at, we) + "\"";
  }
  if (expected == "something else") {
    diags.Error("syntax", span, "unexpected " + found + " here", hint);
    return;
  }
  if (at >= chunk_end && expected.find('}') != std::string::npos) {
    hint = "a `}` is missing: every `{` needs a matching `}`";
  }
  diags.Error("syntax", span, "expected " + expected + ", found " + found, hint);
}

const char* TooDeepHint(const std::string& what) {
  if (what == "waits in one journey") return "split the journey into several journeys";
  if (what == "levels of brackets") return "split the expression into several `let` values";
  return "remove the repeated `not` or `-`";
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
                  TooDeepHint(chunk.deep_what));
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
    parser::LowerDeclaration(decl, base, file_id, f.line_starts, file, diags);
  }
  return file;
}

}  // namespace gavel::dsl
