// Rule unit tests: parser and runner. See rule_test.hpp and docs/testing.md.
#include "daemon/rule_test.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "dsl/compiler.hpp"
#include "rules/calendar.hpp"
#include "rules/engine.hpp"
#include "rules/event.hpp"
#include "rules/store/sqlite_warehouse.hpp"

namespace gavel::ruletest {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

std::string Problem::Render() const { return file + ":" + std::to_string(line) + ": error: " + message; }

namespace {

// ---------------------------------------------------------------- text helpers

std::string Trim(const std::string& s) {
  std::size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  std::size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

// `*` any run of characters, `?` one character; the whole text must match.
bool Glob(std::string_view pat, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pat.size() && (pat[p] == '?' || pat[p] == text[t])) {
      ++p, ++t;
    } else if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

bool HasGlob(const std::string& s) { return s.find_first_of("*?") != std::string::npos; }

// Removes a comment: `#` as the first non-blank character of a line, or `#` after a blank and
// before a blank or the end of the line, outside quotes. `#paid-alerts` is not a comment.
std::string StripComment(const std::string& line) {
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        quoted = false;
      continue;
    }
    if (c == '"') {
      quoted = true;
      continue;
    }
    if (c != '#') continue;
    bool first = line.find_first_not_of(" \t") == i;
    bool after_blank = i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t');
    bool before_blank = i + 1 >= line.size() || line[i + 1] == ' ' || line[i + 1] == '\t' || line[i + 1] == '\r';
    if (first || (after_blank && before_blank)) return line.substr(0, i);
  }
  return line;
}

struct Token {
  std::string raw;
};

// Splits on blanks, keeping "quoted text", {labels} and (reasons) whole.
bool Tokenize(const std::string& line, std::vector<Token>& out, std::string& error) {
  out.clear();
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i >= line.size()) break;
    std::string tok;
    bool quoted = false;
    int braces = 0, parens = 0;
    for (; i < line.size(); ++i) {
      char c = line[i];
      if (quoted) {
        tok += c;
        if (c == '\\' && i + 1 < line.size())
          tok += line[++i];
        else if (c == '"')
          quoted = false;
        continue;
      }
      if ((c == ' ' || c == '\t' || c == '\r') && braces == 0 && parens == 0) break;
      if (c == '"')
        quoted = true;
      else if (c == '{')
        ++braces;
      else if (c == '}')
        --braces;
      else if (c == '(')
        ++parens;
      else if (c == ')')
        --parens;
      tok += c;
    }
    if (quoted) {
      error = "a quote is not closed on this line";
      return false;
    }
    if (braces > 0) {
      error = "a `{` is not closed on this line";
      return false;
    }
    if (parens > 0) {
      error = "a `(` is not closed on this line";
      return false;
    }
    out.push_back({tok});
  }
  return true;
}

bool IsQuoted(const std::string& s) { return s.size() >= 2 && s.front() == '"' && s.back() == '"'; }

// The text of a token: quotes removed and JSON escapes applied.
bool Unquote(const std::string& raw, std::string& out, std::string& error) {
  if (!IsQuoted(raw)) {
    out = raw;
    return true;
  }
  try {
    out = nlohmann::json::parse(raw).get<std::string>();
    return true;
  } catch (const std::exception&) {
    error = "bad escape in " + raw + " (the escapes are those of JSON: \\\" \\\\ \\n \\t \\u00E9)";
    return false;
  }
}

// Splits `key=value` at the first `=` outside quotes. False if there is none.
bool SplitKeyValue(const std::string& raw, std::string& key, std::string& value) {
  bool quoted = false;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '"') quoted = !quoted;
    if (!quoted && raw[i] == '=') {
      key = raw.substr(0, i);
      value = raw.substr(i + 1);
      return !key.empty();
    }
  }
  return false;
}

bool ParseNumber(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

// "30d", "1d12h", "15m", "45s", "2w", "250ms", "0".
bool ParseDuration(const std::string& s, TimeMs& out) {
  if (s == "0") {
    out = 0;
    return true;
  }
  out = 0;
  std::size_t i = 0;
  if (s.empty()) return false;
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
    if (j == i) return false;
    double n = 0;
    if (!ParseNumber(s.substr(i, j - i), n)) return false;
    std::size_t k = j;
    while (k < s.size() && std::isalpha(static_cast<unsigned char>(s[k]))) ++k;
    std::string unit = s.substr(j, k - j);
    TimeMs mult = 0;
    if (unit == "w")
      mult = 7 * rules::kDay;
    else if (unit == "d")
      mult = rules::kDay;
    else if (unit == "h")
      mult = rules::kHour;
    else if (unit == "m")
      mult = rules::kMinute;
    else if (unit == "s")
      mult = rules::kSecond;
    else if (unit == "ms")
      mult = 1;
    else
      return false;
    out += static_cast<TimeMs>(std::llround(n * static_cast<double>(mult)));
    i = k;
  }
  return true;
}

// Digits after the decimal point of a written number: the precision of the expectation.
double ToleranceOf(const std::string& written) {
  std::size_t dot = written.find('.');
  int decimals = 0;
  if (dot != std::string::npos) {
    std::size_t e = written.find_first_of("eE", dot);
    decimals = static_cast<int>((e == std::string::npos ? written.size() : e) - dot - 1);
  }
  return 0.5 * std::pow(10.0, -decimals) + 1e-9;
}

bool ParseMatcher(const std::string& raw, Matcher& m, std::string& error) {
  m = Matcher();
  m.written = raw;
  if (raw == "*") return true;
  if (IsQuoted(raw)) {
    m.kind = Matcher::Kind::kText;
    return Unquote(raw, m.text, error);
  }
  if (raw == "null") {
    m.kind = Matcher::Kind::kNull;
    return true;
  }
  if (raw == "true" || raw == "false") {
    m.kind = Matcher::Kind::kBool;
    m.boolean = raw == "true";
    return true;
  }
  double n = 0;
  std::string num = raw;
  bool percent = !num.empty() && num.back() == '%';
  if (percent) num.pop_back();
  if (ParseNumber(num, n)) {
    m.kind = Matcher::Kind::kNumber;
    m.number = percent ? n / 100 : n;
    m.tolerance = ToleranceOf(num) / (percent ? 100 : 1);
    return true;
  }
  m.kind = Matcher::Kind::kText;
  m.text = raw;
  return true;
}

// Finds `key` in `j`: the whole key first, then dotted paths through objects and arrays.
const ordered_json* Lookup(const ordered_json& j, const std::string& key) {
  if (j.is_object()) {
    auto it = j.find(key);
    if (it != j.end()) return &*it;
  }
  for (std::size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
    std::string head = key.substr(0, dot), rest = key.substr(dot + 1);
    if (j.is_object()) {
      auto it = j.find(head);
      if (it != j.end()) {
        if (const ordered_json* r = Lookup(*it, rest)) return r;
      }
    } else if (j.is_array()) {
      double idx = 0;
      if (ParseNumber(head, idx) && idx >= 0 && idx < static_cast<double>(j.size())) {
        if (const ordered_json* r = Lookup(j[static_cast<std::size_t>(idx)], rest)) return r;
      }
    }
  }
  if (j.is_array()) {
    double idx = 0;
    if (ParseNumber(key, idx) && idx >= 0 && idx < static_cast<double>(j.size()))
      return &j[static_cast<std::size_t>(idx)];
  }
  return nullptr;
}

std::string Show(const ordered_json* v) {
  if (!v) return "(missing)";
  if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    if (s.find_first_of(" \t\"") == std::string::npos && !s.empty()) return s;
  }
  if (v->is_number_float()) {
    double d = v->get<double>();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", d);
    return buf;
  }
  return v->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---------------------------------------------------------------- calendar helpers

std::int64_t DaysFromCivil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097LL + static_cast<std::int64_t>(doe) - 719468;
}

std::string CivilFromDays(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y + (m <= 2)), m, d);
  return buf;
}

// ---------------------------------------------------------------- the parser

const std::vector<std::string> kKeywords = {"test",   "rules:", "rules", "start",  "table", "series",
                                            "events", "at",     "run",   "expect", "option"};

bool IsKeyword(const std::string& t) { return std::find(kKeywords.begin(), kKeywords.end(), t) != kKeywords.end(); }

bool IsTimeLed(const std::string& t) {
  if (t.empty()) return false;
  if (std::isdigit(static_cast<unsigned char>(t[0]))) return true;
  return (t[0] == '+' || t[0] == '-') && t.size() > 1 && std::isdigit(static_cast<unsigned char>(t[1]));
}

// The field an action's positional value checks: `-> pause adset_daily:a1`.
std::string PositionalKey(const std::string& action) {
  if (action == "pause" || action == "enable" || action == "set_budget") return "target";
  if (action == "email" || action == "message") return "template";
  if (action == "webhook") return "name";
  if (action == "notify_slack") return "channel";
  if (action == "set") return "field";
  return "";
}

class Parser {
 public:
  Parser(const std::string& path, TestFile& out, std::vector<Problem>& problems)
      : path_(path), out_(out), problems_(problems) {}

  void Run(const std::string& text) {
    out_.path = path_;
    std::istringstream in(text);
    std::string raw;
    while (std::getline(in, raw)) {
      ++line_;
      if (raw.find('\0') != std::string::npos) {
        Error("the file has a NUL byte: is it a test file?");
        return;
      }
      std::string line = Trim(StripComment(raw));
      if (line.empty()) continue;
      Line(line);
    }
    FinishCase();
    if (out_.rules.empty() && out_.rules_line == 0) {
      line_ = 1;
      Error("the file names no rule files: start it with `rules: PATH...` (paths relative to this file)");
    }
    if (out_.cases.empty()) {
      line_ = std::max(line_, 1);
      Error("the file has no test case: add one with `test NAME`");
    }
  }

 private:
  enum class Block { kNone, kTable, kSeries, kEvents, kDecisions };

  void Error(const std::string& m) { problems_.push_back({path_, line_, m}); }

  TestCase& Current() { return in_case_ ? case_ : out_.defaults; }

  void FinishCase() {
    if (in_case_) out_.cases.push_back(std::move(case_));
    case_ = TestCase();
    in_case_ = false;
    block_ = Block::kNone;
    at_.reset();
  }

  bool Time(const std::string& raw, TimeExpr& t) {
    if (!ParseTimeExpr(raw, t)) {
      Error("`" + raw + "` is not a time: write 2026-11-01T09:00Z, 2026-11-01, or +2h / -28d from the start");
      return false;
    }
    return true;
  }

  void Line(const std::string& line) {
    if (line[0] == '|') {
      if (block_ != Block::kTable) {
        Error("a table row outside a `table` block: start the block with `table NAME`");
        return;
      }
      TableRow(line);
      return;
    }
    std::vector<Token> toks;
    std::string error;
    if (!Tokenize(line, toks, error)) {
      Error(error);
      return;
    }
    const std::string& t0 = toks[0].raw;
    if (t0 == "->") {
      if (block_ != Block::kDecisions || !last_decision_) {
        Error("`->` (an expected action) must follow a decision line of `expect exactly` or `expect including`");
        return;
      }
      Actions(toks, 0, *last_decision_);
      return;
    }
    if (IsKeyword(t0)) {
      Keyword(toks, line);
      return;
    }
    if (block_ == Block::kSeries && t0.find('{') != std::string::npos) {
      Series(toks);
      return;
    }
    if (block_ == Block::kDecisions && (IsTimeLed(t0) || t0 == "*")) {
      DecisionLine(toks, line);
      return;
    }
    if (IsTimeLed(t0)) {
      EventLineOf(toks);
      return;
    }
    std::string hint = dsl::ClosestMatch(t0, kKeywords);
    if (block_ == Block::kSeries) {
      Error("`" + t0 + "` is not a series line: write FACT{KEY=\"...\"} VALUES, e.g. spend{adset_id=\"a1\"} 100x3");
    } else {
      Error("`" + t0 + "` is not a keyword of a test file" + (hint.empty() ? "" : ": did you mean `" + hint + "`?") +
            " (a line starts with test, rules:, start, table, series, events, at, run, expect, option, a time"
            " for an event, or `|` for a table row)");
    }
  }

  bool NeedCase(const std::string& what) {
    if (in_case_) return true;
    Error(what + " belongs in a test case: start one with `test NAME`");
    return false;
  }

  void Keyword(const std::vector<Token>& toks, const std::string& line) {
    const std::string& k = toks[0].raw;
    block_ = Block::kNone;
    last_decision_ = nullptr;
    if (k == "test") {
      FinishCase();
      in_case_ = true;
      case_.line = line_;
      std::string name = Trim(line.substr(4));
      std::string error;
      if (IsQuoted(name) && !Unquote(name, name, error)) Error(error);
      if (name.empty()) Error("a test needs a name: `test pauses an ad set with no conversions`");
      for (const auto& c : out_.cases) {
        if (c.name == name)
          Error("a second test named \"" + name + "\" (first at line " + std::to_string(c.line) + ")");
      }
      case_.name = name;
      return;
    }
    if (k == "rules:" || k == "rules") {
      if (in_case_) {
        Error("`rules:` goes at the top of the file, before the first test");
        return;
      }
      if (toks.size() < 2) {
        Error("`rules:` needs one or more paths, relative to this file: `rules: ../cpa_pause.gavel`");
        return;
      }
      out_.rules_line = line_;
      fs::path base = fs::path(path_).parent_path();
      for (std::size_t i = 1; i < toks.size(); ++i) {
        std::string p, error;
        if (!Unquote(toks[i].raw, p, error)) {
          Error(error);
          continue;
        }
        fs::path full = fs::path(p).is_absolute() ? fs::path(p) : base / p;
        out_.rules.push_back(full.lexically_normal().string());
      }
      return;
    }
    if (k == "start") {
      TimeExpr t;
      if (toks.size() != 2) {
        Error("`start` takes one time: `start 2026-11-01T00:00Z`");
        return;
      }
      if (!Time(toks[1].raw, t)) return;
      if (t.relative) {
        Error("the start must be an absolute time such as 2026-11-01T00:00Z");
        return;
      }
      Current().start = t;
      return;
    }
    if (k == "option") {
      if (toks.size() < 2) Error("`option` needs a name: all-evaluations or no-schedules");
      for (std::size_t i = 1; i < toks.size(); ++i) {
        if (toks[i].raw == "all-evaluations")
          Current().all_evaluations = true;
        else if (toks[i].raw == "no-schedules")
          Current().schedules = false;
        else
          Error("unknown option `" + toks[i].raw + "`: the options are all-evaluations and no-schedules");
      }
      return;
    }
    if (k == "table") {
      if (toks.size() < 2) {
        Error("`table` needs the name of a declared table: `table adset_daily`");
        return;
      }
      TableBlock b;
      b.line = line_;
      b.table = toks[1].raw;
      for (std::size_t i = 2; i < toks.size(); ++i) {
        std::string key, value, text, error;
        if (!SplitKeyValue(toks[i].raw, key, value)) {
          Error("after the table name, give columns that are the same in every row as COLUMN=VALUE, not `" +
                toks[i].raw + "`");
          continue;
        }
        if (!Unquote(value, text, error)) {
          Error(error);
          continue;
        }
        b.constants.emplace_back(key, value.empty() ? std::nullopt : std::optional<std::string>(text));
      }
      Current().tables.push_back(std::move(b));
      block_ = Block::kTable;
      return;
    }
    if (k == "series") {
      if (toks.size() != 4 || toks[2].raw != "from") {
        Error("write `series TABLE from TIME`: the first value of each series line is the bucket at TIME");
        return;
      }
      SeriesBlock b;
      b.line = line_;
      b.table = toks[1].raw;
      if (!Time(toks[3].raw, b.from)) return;
      Current().series.push_back(std::move(b));
      block_ = Block::kSeries;
      return;
    }
    if (k == "events") {
      if (!NeedCase("`events`")) return;
      if (toks.size() > 1) Error("`events` stands alone on its line; the events follow, one per line");
      block_ = Block::kEvents;
      return;
    }
    if (k == "at") {
      if (!NeedCase("`at`")) return;
      TimeExpr t;
      if (toks.size() != 2) {
        Error("`at` takes one time: the point checks that follow (alert, journey, score, entity) use it");
        return;
      }
      if (Time(toks[1].raw, t)) at_ = t;
      return;
    }
    if (k == "run") {
      if (!NeedCase("`run until`")) return;
      TimeExpr t;
      if (toks.size() != 3 || (toks[1].raw != "until" && toks[1].raw != "to")) {
        Error("write `run until TIME`: the engine runs every timer and schedule tick up to that time");
        return;
      }
      if (Time(toks[2].raw, t)) case_.run_until = t;
      return;
    }
    if (k == "expect") {
      if (!NeedCase("`expect`")) return;
      Expect(toks, line);
      return;
    }
  }

  // `... at TIME` at the end of a point check; returns the tokens before it.
  std::size_t TakeAt(const std::vector<Token>& toks, Expectation& e) {
    std::size_t n = toks.size();
    if (n >= 2 && toks[n - 2].raw == "at") {
      TimeExpr t;
      if (Time(toks[n - 1].raw, t)) e.at = t;
      return n - 2;
    }
    e.at = at_;
    return n;
  }

  void Entity(const std::string& raw, Expectation& e) {
    std::size_t colon = raw.find(':');
    if (colon != std::string::npos) {
      e.entity_type = raw.substr(0, colon);
      e.entity_id = raw.substr(colon + 1);
    } else {
      e.entity_id = raw;
    }
    std::string error;
    if (!Unquote(e.entity_id, e.entity_id, error)) Error(error);
  }

  void Expect(const std::vector<Token>& toks, const std::string& line) {
    Expectation e;
    e.line = line_;
    e.written = line;
    const std::string what = toks.size() > 1 ? toks[1].raw : "";
    if (what == "exactly" || what == "including" || what == "none") {
      e.kind = what == "including" ? ExpectKind::kIncluding : ExpectKind::kExactly;
      std::size_t i = 2;
      for (; i < toks.size() && toks[i].raw != "from" && toks[i].raw != "to"; ++i) e.units.push_back(toks[i].raw);
      if (e.units.empty()) {
        Error("name the rules, alerts or journeys whose decisions these are (`*` for all): `expect " + what +
              " pause_high_cpa`");
      }
      for (; i < toks.size(); i += 2) {
        if (i + 1 >= toks.size() || (toks[i].raw != "from" && toks[i].raw != "to")) {
          Error("after the names, only `from TIME` and `to TIME` may follow");
          break;
        }
        TimeExpr t;
        if (!Time(toks[i + 1].raw, t)) continue;
        (toks[i].raw == "from" ? e.from : e.to) = t;
      }
      case_.expectations.push_back(std::move(e));
      expect_none_ = what == "none";
      block_ = Block::kDecisions;
      return;
    }
    if (what == "alert") {
      e.kind = ExpectKind::kAlert;
      std::size_t n = TakeAt(toks, e);
      if (n != 5) {
        Error("write `expect alert NAME ENTITY inactive|pending|firing [at TIME]`");
        return;
      }
      e.name = toks[2].raw;
      Entity(toks[3].raw, e);
      e.state = toks[4].raw;
      if (e.state != "inactive" && e.state != "pending" && e.state != "firing") {
        Error("an alert state is inactive, pending or firing, not `" + e.state + "`");
        return;
      }
    } else if (what == "journey") {
      e.kind = ExpectKind::kJourney;
      std::size_t n = TakeAt(toks, e);
      if (n < 5) {
        Error("write `expect journey NAME ENTITY STATUS [after STEP] [sent STEP,STEP] [at TIME]`");
        return;
      }
      e.name = toks[2].raw;
      Entity(toks[3].raw, e);
      e.state = toks[4].raw;
      static const std::vector<std::string> kStatus = {"none",      "running", "waiting", "deferred",
                                                       "completed", "exited",  "stopped"};
      if (std::find(kStatus.begin(), kStatus.end(), e.state) == kStatus.end()) {
        Error("a journey status is none, waiting, deferred, completed, exited or stopped, not `" + e.state + "`");
        return;
      }
      for (std::size_t i = 5; i < n; i += 2) {
        if (i + 1 >= n || (toks[i].raw != "after" && toks[i].raw != "sent")) {
          Error("after the status, only `after STEP`, `sent STEP,STEP,...` and `at TIME` may follow");
          return;
        }
        if (toks[i].raw == "after") {
          e.after_step = toks[i + 1].raw;
        } else {
          std::vector<std::string> steps;
          std::string list = toks[i + 1].raw;
          if (list != "nothing") {
            std::size_t pos = 0;
            while (pos <= list.size()) {
              std::size_t c = list.find(',', pos);
              std::string s = list.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
              if (!s.empty()) steps.push_back(s);
              if (c == std::string::npos) break;
              pos = c + 1;
            }
          }
          e.sent = steps;
        }
      }
    } else if (what == "score") {
      e.kind = ExpectKind::kScore;
      std::size_t n = TakeAt(toks, e);
      std::size_t v = 4;
      if (n == 6 && (toks[4].raw == "=" || toks[4].raw == "==")) v = 5;
      if (n != v + 1) {
        Error("write `expect score NAME ENTITY VALUE [at TIME]`, e.g. `expect score lead_score L1 62 at +1h`");
        return;
      }
      e.name = toks[2].raw;
      Entity(toks[3].raw, e);
      std::string error;
      if (!ParseMatcher(toks[v].raw, e.value, error) || e.value.kind != Matcher::Kind::kNumber) {
        Error("a score is a number, not `" + toks[v].raw + "`");
        return;
      }
    } else if (what == "entity") {
      e.kind = ExpectKind::kEntity;
      std::size_t n = TakeAt(toks, e);
      if (n < 4) {
        Error("write `expect entity TYPE:ID FIELD=VALUE... [at TIME]`, e.g. `expect entity lead:L1 stage=MQL`");
        return;
      }
      Entity(toks[2].raw, e);
      for (std::size_t i = 3; i < n; ++i) {
        FieldCheck f;
        std::string value, error;
        if (!SplitKeyValue(toks[i].raw, f.key, value)) {
          Error("entity checks are FIELD=VALUE, not `" + toks[i].raw + "`");
          return;
        }
        if (!ParseMatcher(value, f.value, error)) {
          Error(error);
          return;
        }
        e.fields.push_back(std::move(f));
      }
    } else {
      Error("`expect " + what + "`: expect exactly, including, none, alert, journey, score or entity");
      return;
    }
    case_.expectations.push_back(std::move(e));
  }

  void DecisionLine(const std::vector<Token>& toks, const std::string& line) {
    if (expect_none_) {
      Error("`expect none` takes no decision lines: use `expect exactly` to list them");
      return;
    }
    Expectation& e = case_.expectations.back();
    DecisionCheck d;
    d.line = line_;
    std::size_t arrow = toks.size();
    for (std::size_t i = 0; i < toks.size(); ++i) {
      if (toks[i].raw == "->") {
        arrow = i;
        break;
      }
    }
    std::size_t written_end = line.find(" ->");
    d.written = Trim(written_end == std::string::npos ? line : line.substr(0, written_end));
    if (arrow < 4) {
      Error(
          "a decision line is TIME UNIT ENTITY OUTCOME [(REASON)] [KEY=VALUE...], e.g. "
          "`2026-11-01T09:05Z mql_handoff lead:L1 fired (live)`");
      return;
    }
    if (toks[0].raw == "*")
      d.time.any = true;
    else if (!Time(toks[0].raw, d.time))
      return;
    d.unit = toks[1].raw;
    const std::string& ent = toks[2].raw;
    if (ent == "-") {
      d.no_entity = true;
    } else {
      std::size_t colon = ent.find(':');
      if (colon != std::string::npos) {
        d.entity_type = ent.substr(0, colon);
        d.entity_id = ent.substr(colon + 1);
      } else {
        d.entity_id = ent;
      }
    }
    d.outcome = toks[3].raw;
    std::size_t i = 4;
    if (i < arrow && toks[i].raw.size() >= 2 && toks[i].raw.front() == '(' && toks[i].raw.back() == ')') {
      d.reason = toks[i].raw.substr(1, toks[i].raw.size() - 2);
      ++i;
    }
    for (; i < arrow; ++i) {
      FieldCheck f;
      std::string value, error;
      if (!SplitKeyValue(toks[i].raw, f.key, value)) {
        Error("`" + toks[i].raw + "`: after the outcome and reason, evidence is checked as KEY=VALUE" +
              (toks[i].raw.front() == '(' ? "" : " (a reason goes in parentheses right after the outcome)"));
        return;
      }
      if (!ParseMatcher(value, f.value, error)) {
        Error(error);
        return;
      }
      d.evidence.push_back(std::move(f));
    }
    e.decisions.push_back(std::move(d));
    last_decision_ = &e.decisions.back();
    if (arrow < toks.size()) Actions(toks, arrow, *last_decision_);
  }

  // `-> ACTION [VALUE] [KEY=VALUE...]`, possibly several on one line; `-> none`.
  void Actions(const std::vector<Token>& toks, std::size_t from, DecisionCheck& d) {
    d.check_actions = true;
    std::size_t i = from;
    while (i < toks.size()) {
      if (toks[i].raw != "->") {
        Error("expected `->` before `" + toks[i].raw + "`");
        return;
      }
      ++i;
      if (i >= toks.size()) {
        Error("`->` needs an action: `-> pause adset_daily:a1`, `-> email welcome_guide`, or `-> none`");
        return;
      }
      ActionCheck a;
      a.action = toks[i].raw;
      a.written = "-> " + a.action;
      ++i;
      if (a.action == "none") {
        if (i < toks.size() && toks[i].raw != "->") Error("`-> none` takes nothing after it");
        continue;
      }
      bool positional = true;
      for (; i < toks.size() && toks[i].raw != "->"; ++i) {
        a.written += " " + toks[i].raw;
        FieldCheck f;
        std::string value, error;
        if (!SplitKeyValue(toks[i].raw, f.key, value)) {
          std::string key = PositionalKey(a.action);
          if (!positional || key.empty()) {
            Error("`" + toks[i].raw + "`: give the action's fields as KEY=VALUE");
            return;
          }
          f.key = key;
          value = toks[i].raw;
        }
        positional = false;
        if (!ParseMatcher(value, f.value, error)) {
          Error(error);
          return;
        }
        a.fields.push_back(std::move(f));
      }
      d.actions.push_back(std::move(a));
    }
  }

  void TableRow(const std::string& line) {
    TableBlock& b = Current().tables.back();
    // Split on `|` outside quotes.
    std::vector<std::string> cells;
    std::string cur;
    bool quoted = false;
    for (std::size_t i = 1; i < line.size(); ++i) {
      char c = line[i];
      if (quoted) {
        cur += c;
        if (c == '\\' && i + 1 < line.size())
          cur += line[++i];
        else if (c == '"')
          quoted = false;
        continue;
      }
      if (c == '"') quoted = true;
      if (c == '|') {
        cells.push_back(Trim(cur));
        cur.clear();
        continue;
      }
      cur += c;
    }
    if (quoted) {
      Error("a quote is not closed on this line");
      return;
    }
    if (!Trim(cur).empty()) {
      Error("a table row ends with `|`");
      return;
    }
    // A markdown separator line (|---|:--:|) is ignored.
    bool separator = !cells.empty() && std::all_of(cells.begin(), cells.end(), [](const std::string& c) {
      return !c.empty() && c.find_first_not_of("-: ") == std::string::npos;
    });
    if (separator) return;
    if (b.columns.empty()) {
      b.header_line = line_;
      for (const auto& c : cells) {
        if (c.empty()) {
          Error("the header row of a table names every column");
          return;
        }
        b.columns.push_back(c);
      }
      return;
    }
    if (cells.size() != b.columns.size()) {
      Error("this row has " + std::to_string(cells.size()) + " cells, the header (line " +
            std::to_string(b.header_line) + ") has " + std::to_string(b.columns.size()));
      return;
    }
    TableBlock::Row row;
    row.line = line_;
    for (const auto& c : cells) {
      if (c.empty()) {
        row.cells.emplace_back();
        continue;
      }
      std::string text, error;
      if (!Unquote(c, text, error)) {
        Error(error);
        return;
      }
      row.cells.emplace_back(text);
    }
    b.rows.push_back(std::move(row));
  }

  void Series(const std::vector<Token>& toks) {
    SeriesBlock& b = Current().series.back();
    SeriesLine s;
    s.line = line_;
    const std::string& head = toks[0].raw;
    std::size_t open = head.find('{');
    if (head.back() != '}') {
      Error("the labels of a series end with `}`: spend{adset_id=\"a1\"} 100x3");
      return;
    }
    s.fact = head.substr(0, open);
    std::string labels = head.substr(open + 1, head.size() - open - 2);
    // Labels: KEY=VALUE separated by commas, values quoted or bare.
    std::size_t i = 0;
    while (i < labels.size()) {
      while (i < labels.size() && (labels[i] == ' ' || labels[i] == ',')) ++i;
      if (i >= labels.size()) break;
      std::size_t eq = labels.find('=', i);
      if (eq == std::string::npos) {
        Error("a series label is KEY=VALUE: `" + labels.substr(i) + "`");
        return;
      }
      std::string key = Trim(labels.substr(i, eq - i));
      std::size_t j = eq + 1;
      while (j < labels.size() && labels[j] == ' ') ++j;
      std::string raw;
      if (j < labels.size() && labels[j] == '"') {
        std::size_t k = j + 1;
        for (; k < labels.size() && labels[k] != '"'; ++k) {
          if (labels[k] == '\\') ++k;
        }
        raw = labels.substr(j, k + 1 - j);
        i = k + 1;
      } else {
        std::size_t k = labels.find(',', j);
        raw = Trim(labels.substr(j, k == std::string::npos ? std::string::npos : k - j));
        i = k == std::string::npos ? labels.size() : k;
      }
      std::string text, error;
      if (!Unquote(raw, text, error)) {
        Error(error);
        return;
      }
      s.labels.emplace_back(key, raw.empty() ? std::nullopt : std::optional<std::string>(text));
    }
    std::string values;
    for (std::size_t t = 1; t < toks.size(); ++t) values += (t > 1 ? " " : "") + toks[t].raw;
    std::string error;
    if (!ExpandSeries(values, s.values, error)) {
      Error(error);
      return;
    }
    if (s.values.empty()) {
      Error("a series line needs values after its labels");
      return;
    }
    b.lines.push_back(std::move(s));
  }

  void EventLineOf(const std::vector<Token>& toks) {
    if (!NeedCase("an event")) return;
    if (block_ == Block::kTable || block_ == Block::kSeries || block_ == Block::kDecisions) block_ = Block::kNone;
    EventLine e;
    e.line = line_;
    if (!Time(toks[0].raw, e.time)) return;
    if (toks.size() < 2) {
      Error("an event line is TIME EVENT FIELD=VALUE..., e.g. `+1h page_view lead_id=L1 page=/pricing`");
      return;
    }
    e.type = toks[1].raw;
    for (std::size_t i = 2; i < toks.size(); ++i) {
      std::string key, value, text, error;
      if (!SplitKeyValue(toks[i].raw, key, value)) {
        Error("event fields are FIELD=VALUE, not `" + toks[i].raw + "`");
        return;
      }
      if (!Unquote(value, text, error)) {
        Error(error);
        return;
      }
      e.fields.emplace_back(key, text);
      e.quoted.push_back(IsQuoted(value));
    }
    case_.events.push_back(std::move(e));
  }

  std::string path_;
  TestFile& out_;
  std::vector<Problem>& problems_;
  int line_ = 0;
  bool in_case_ = false;
  TestCase case_;
  Block block_ = Block::kNone;
  bool expect_none_ = false;
  DecisionCheck* last_decision_ = nullptr;
  std::optional<TimeExpr> at_;
};

}  // namespace

// ---------------------------------------------------------------- public parsing helpers

bool Matcher::Matches(const ordered_json& a) const {
  switch (kind) {
    case Kind::kAny:
      return true;
    case Kind::kNull:
      return a.is_null();
    case Kind::kBool:
      return a.is_boolean() && a.get<bool>() == boolean;
    case Kind::kNumber: {
      double v = 0;
      if (a.is_number())
        v = a.get<double>();
      else if (a.is_string() && ParseNumber(a.get<std::string>(), v)) {
      } else
        return false;
      return std::fabs(v - number) <= tolerance + 1e-12 * std::fabs(number);
    }
    case Kind::kText: {
      std::string s;
      if (a.is_string())
        s = a.get<std::string>();
      else if (a.is_boolean())
        s = a.get<bool>() ? "true" : "false";
      else if (a.is_number())
        s = Show(&a);
      else
        return false;
      return HasGlob(text) ? Glob(text, s) : s == text;
    }
  }
  return false;
}

bool ParseTimeExpr(const std::string& text, TimeExpr& out) {
  out = TimeExpr();
  out.written = text;
  if (text == "start") {
    out.relative = true;
    return true;
  }
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    TimeMs d = 0;
    if (!ParseDuration(text.substr(1), d)) return false;
    out.relative = true;
    out.value = text[0] == '-' ? -d : d;
    return true;
  }
  std::string t = text;
  if (t.size() == 10) {
    out.width = rules::kDay;
  } else if (t.size() >= 16 && t[10] == 'T' && (t.size() == 16 || t[16] != ':')) {
    // 2026-11-01T09:00Z or 2026-11-01T09:00+01:00: minutes precision.
    t.insert(16, ":00");
    out.width = rules::kMinute;
  } else if (t.find('.') != std::string::npos) {
    out.width = 1;
  }
  if (t.size() > 10 && t[10] == 'T' && t.size() == 19) t += "Z";  // no zone: UTC
  return rules::ParseTime(t, out.value);
}

bool ExpandSeries(const std::string& text, std::vector<std::optional<double>>& out, std::string& error) {
  out.clear();
  // A group `(A B C)xK` repeats its values K times in all: expanded first, then copied.
  std::size_t open = text.find('(');
  if (open != std::string::npos) {
    std::size_t close = text.find(')', open);
    if (close == std::string::npos) {
      error = "a `(` in a series is not closed: write (40 44 38)x10";
      return false;
    }
    if (text.find('(', open + 1) < close) {
      error = "groups in a series do not nest";
      return false;
    }
    std::size_t end = close + 1;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t') ++end;
    std::string suffix = text.substr(close + 1, end - close - 1);
    double k = 1;
    if (!suffix.empty() &&
        (suffix[0] != 'x' || !ParseNumber(suffix.substr(1), k) || k < 1 || k != std::floor(k) || k > 1e6)) {
      error = "`" + suffix + "` after a group: write (A B C)xK, K a whole number from 1";
      return false;
    }
    std::vector<std::optional<double>> before, group, after;
    if (!ExpandSeries(text.substr(0, open), before, error) ||
        !ExpandSeries(text.substr(open + 1, close - open - 1), group, error) ||
        !ExpandSeries(text.substr(end), after, error)) {
      return false;
    }
    if (group.empty()) {
      error = "an empty group `()` in a series";
      return false;
    }
    if (group.size() * k > 1e6) {
      error = "a series of more than a million values";
      return false;
    }
    out = std::move(before);
    for (int i = 0; i < static_cast<int>(k); ++i) out.insert(out.end(), group.begin(), group.end());
    out.insert(out.end(), after.begin(), after.end());
    return true;
  }
  if (text.find(')') != std::string::npos) {
    error = "a `)` in a series without its `(`";
    return false;
  }
  std::istringstream in(text);
  std::string tok;
  bool have_single = false;  // the last token was one value (a standalone xK may repeat it)
  while (in >> tok) {
    if (out.size() > 1000000) {
      error = "a series of more than a million values";
      return false;
    }
    auto bad = [&](const std::string& why) {
      error = "`" + tok + "` in a series: " + why +
              " (write a number, `_` for no value, NxK for K copies, A+BxK for K values from A in steps of B)";
      return false;
    };
    if (tok[0] == 'x') {
      double k = 0;
      if (!have_single || !ParseNumber(tok.substr(1), k) || k < 1 || k != std::floor(k)) {
        return bad("a separate xK repeats the single value before it, K times in all");
      }
      for (int i = 1; i < static_cast<int>(k); ++i) out.push_back(out.back());
      have_single = false;
      continue;
    }
    std::size_t x = tok.find('x');
    std::string base = x == std::string::npos ? tok : tok.substr(0, x);
    double count = 1;
    if (x != std::string::npos) {
      if (!ParseNumber(tok.substr(x + 1), count) || count < 1 || count != std::floor(count) || count > 1e6) {
        return bad("the count after `x` is a whole number from 1");
      }
    }
    if (base == "_") {
      for (int i = 0; i < static_cast<int>(count); ++i) out.emplace_back();
      have_single = x == std::string::npos;
      continue;
    }
    // A+B or A-B (a sign at the very start belongs to A).
    double start = 0, step = 0;
    std::size_t op = base.find_first_of("+-", 1);
    while (op != std::string::npos && (base[op - 1] == 'e' || base[op - 1] == 'E'))
      op = base.find_first_of("+-", op + 1);
    if (op != std::string::npos) {
      if (x == std::string::npos) return bad("a step A+B needs a count: A+BxK");
      if (!ParseNumber(base.substr(0, op), start) || !ParseNumber(base.substr(op + 1), step)) {
        return bad("not a number");
      }
      if (base[op] == '-') step = -step;
    } else if (!ParseNumber(base, start)) {
      return bad("not a number");
    }
    for (int i = 0; i < static_cast<int>(count); ++i) out.emplace_back(start + step * i);
    have_single = x == std::string::npos;
    if (out.size() > 1000000) {
      error = "a series of more than a million values";
      return false;
    }
  }
  return true;
}

bool ParseTestText(const std::string& path, const std::string& text, TestFile& out, std::vector<Problem>& problems) {
  out = TestFile();
  std::size_t before = problems.size();
  try {
    Parser(path, out, problems).Run(text);
  } catch (const std::exception& e) {  // never expected; a bad file must not crash the run
    problems.push_back({path, 0, std::string("internal error reading the file: ") + e.what()});
  }
  return problems.size() == before;
}

bool LoadTestFile(const std::string& path, TestFile& out, std::vector<Problem>& problems) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problems.push_back({path, 0, "cannot read the file"});
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > (16u << 20)) {
    problems.push_back({path, 0, "the file is larger than 16 MiB"});
    return false;
  }
  return ParseTestText(path, text, out, problems);
}

std::shared_ptr<const dsl::Program> CompileTestRules(const TestFile& file, std::string& diagnostics) {
  dsl::CompileResult r = dsl::Compile(file.rules);
  if (!r.io_error.empty()) {
    diagnostics = file.path + ":" + std::to_string(file.rules_line) + ": error: " + r.io_error + "\n";
    return nullptr;
  }
  if (!r.program) {
    diagnostics = file.path + ":" + std::to_string(file.rules_line) + ": error: the rule files do not compile:\n" +
                  dsl::RenderText(r.sources, r.diags.list());
    return nullptr;
  }
  return r.program;
}

// ---------------------------------------------------------------- rendering

std::string RenderDecision(const rules::Decision& d) {
  std::string s = rules::FormatTime(d.event_time) + " " + d.rule + " ";
  if (d.entity_id.empty())
    s += "-";
  else
    s += (d.entity_type.empty() ? "" : d.entity_type + ":") + d.entity_id;
  s += " " + d.outcome;
  if (!d.reason.empty()) s += " (" + d.reason + ")";
  for (const auto& a : d.actions) {
    std::string name = a.value("action", std::string("?"));
    s += " -> " + name;
    std::string key = PositionalKey(name);
    if (!key.empty()) {
      if (const ordered_json* v = Lookup(a, key)) s += " " + Show(v);
    }
    // The one field that says what the action does, in KEY=VALUE form.
    const char* detail = name == "set"            ? "value"
                         : name == "set_budget"   ? "budget"
                         : name == "message"      ? "via"
                         : name == "notify_slack" ? "text"
                                                  : nullptr;
    if (detail) {
      if (const ordered_json* v = Lookup(a, detail)) s += std::string(" ") + detail + "=" + Show(v);
    }
  }
  return s;
}

namespace {

// ---------------------------------------------------------------- the runner

struct Cell {
  enum class Kind { kNull, kNumber, kText } kind = Kind::kNull;
  double num = 0;
  std::string text;
  bool operator==(const Cell& o) const { return kind == o.kind && num == o.num && text == o.text; }
};

// A warehouse row per (key, bucket), column -> value.
struct TableData {
  const dsl::TableInfo* info = nullptr;
  std::map<std::pair<std::string, std::string>, std::map<std::string, Cell>> rows;
  std::map<std::pair<std::string, std::string>, int> row_line;
};

const dsl::FieldInfo* FindField(const dsl::TableInfo& t, const std::string& name) {
  for (const auto& f : t.dims) {
    if (f.name == name) return &f;
  }
  for (const auto& f : t.facts) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::vector<std::string> ColumnNames(const dsl::TableInfo& t) {
  std::vector<std::string> v = {t.key, t.time_column};
  for (const auto& f : t.dims) v.push_back(f.name);
  for (const auto& f : t.facts) v.push_back(f.name);
  return v;
}

std::string SqlType(dsl::BaseType b) {
  switch (b) {
    case dsl::BaseType::kText:
    case dsl::BaseType::kTimestamp:
      return "TEXT";
    case dsl::BaseType::kCount:
    case dsl::BaseType::kBool:
      return "INTEGER";
    default:
      return "REAL";
  }
}

std::string Quote(const std::string& n) {
  std::string o = "\"";
  for (char c : n) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

class Runner {
 public:
  Runner(const TestFile& file, const TestCase& test, std::shared_ptr<const dsl::Program> program, CaseResult& result)
      : file_(file), test_(test), program_(std::move(program)), p_(*program_), result_(result) {}

  ~Runner() {
    warehouse_.reset();
    if (!db_path_.empty()) {
      std::error_code ec;
      fs::remove(db_path_, ec);
    }
  }

  void Run() {
    if (!Bind()) return;
    if (!BuildWarehouse()) return;
    Execute();
  }

 private:
  void Error(int line, const std::string& m) { result_.errors.push_back({file_.path, line, m}); }

  TimeMs At(const TimeExpr& t) const { return t.Resolve(start_); }

  std::vector<std::string> UnitNames() const {
    std::vector<std::string> v;
    for (const auto& r : p_.rules) v.push_back(r.name);
    for (const auto& a : p_.alerts) v.push_back(a.name);
    for (const auto& j : p_.journeys) v.push_back(j.name);
    for (const auto& s : p_.scores) v.push_back(s.name);
    return v;
  }

  std::string Suggest(const std::string& word, const std::vector<std::string>& names, const std::string& kind) const {
    std::string m = dsl::ClosestMatch(word, names);
    if (!m.empty()) return ": did you mean `" + m + "`?";
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
    return all.empty() ? ": the rules declare no " + kind : " (the " + kind + ": " + all + ")";
  }

  // Resolves an entity written as TYPE:ID or ID against the declared entity types.
  bool ResolveEntity(int line, const std::string& want_type, std::string& type, const std::string& default_type) {
    if (!type.empty()) {
      if (!p_.FindEntity(type)) {
        std::vector<std::string> names;
        for (const auto& e : p_.entities) names.push_back(e.name);
        Error(line, "unknown entity type `" + type + "`" + Suggest(type, names, "entity types"));
        return false;
      }
      if (!want_type.empty() && type != want_type) {
        Error(line, "`" + type + "` is not the entity of this unit (it is for " + want_type + ")");
        return false;
      }
      return true;
    }
    if (!default_type.empty()) {
      type = default_type;
      return true;
    }
    if (p_.entities.size() == 1) {
      type = p_.entities[0].name;
      return true;
    }
    Error(line, "write the entity as TYPE:ID (the rules declare several entity types)");
    return false;
  }

  bool Bind() {
    const std::size_t errors = result_.errors.size();
    std::optional<TimeExpr> start = test_.start ? test_.start : file_.defaults.start;
    if (!start) {
      Error(test_.line,
            "the test has no start time: add `start 2026-11-01T00:00Z` to it (or once at the top of the file)");
      return false;
    }
    start_ = start->value;
    all_evaluations_ = test_.all_evaluations || file_.defaults.all_evaluations;
    schedules_ = test_.schedules && file_.defaults.schedules;
    // Tables: every declared table exists in the warehouse, empty unless rows are given.
    for (const auto& t : p_.tables) {
      tables_[t.name].info = &t;
      if (t.source.find('.') != std::string::npos) {
        // SQLite cannot hold "schema.table" in one file; these tables are left out.
        unsupported_.insert(t.name);
      }
    }
    auto table_of = [&](int line, const std::string& name) -> TableData* {
      auto it = tables_.find(name);
      if (it == tables_.end()) {
        std::vector<std::string> names;
        for (const auto& t : p_.tables) names.push_back(t.name);
        Error(line, "unknown table `" + name + "`" + Suggest(name, names, "tables"));
        return nullptr;
      }
      if (unsupported_.count(name)) {
        Error(line, "table `" + name + "` reads \"" + it->second.info->source +
                        "\": `gavel test` builds its warehouse in SQLite, which needs a relation without a schema");
        return nullptr;
      }
      return &it->second;
    };
    std::vector<const TableBlock*> blocks;
    for (const auto& b : file_.defaults.tables) blocks.push_back(&b);
    for (const auto& b : test_.tables) blocks.push_back(&b);
    for (const TableBlock* b : blocks) {
      TableData* td = table_of(b->line, b->table);
      if (!td) continue;
      BindTable(*b, *td);
    }
    std::vector<const SeriesBlock*> series;
    for (const auto& s : file_.defaults.series) series.push_back(&s);
    for (const auto& s : test_.series) series.push_back(&s);
    for (const SeriesBlock* s : series) {
      TableData* td = table_of(s->line, s->table);
      if (!td) continue;
      BindSeries(*s, *td);
    }
    // Events: through ParseEvent, exactly as `replay` reads them.
    int n = 0;
    for (const auto& el : test_.events) {
      ++n;
      const dsl::EventInfo* info = p_.FindEvent(el.type);
      if (!info) {
        std::vector<std::string> names;
        for (const auto& e : p_.events) names.push_back(e.name);
        Error(el.line, "unknown event type `" + el.type + "`" + Suggest(el.type, names, "events"));
        continue;
      }
      ordered_json j;
      j["event"] = el.type;
      j["id"] = "e" + std::to_string(n);
      TimeMs t = At(el.time);
      j["time"] = rules::FormatTime(t);
      bool ok = true;
      for (std::size_t i = 0; i < el.fields.size(); ++i) {
        const auto& [key, text] = el.fields[i];
        if (key == "id") {
          j["id"] = text;
          continue;
        }
        const dsl::FieldInfo* f = nullptr;
        for (const auto& fi : info->fields) {
          if (fi.name == key) f = &fi;
        }
        if (!f || el.quoted[i] || f->type.base == dsl::BaseType::kText || f->type.base == dsl::BaseType::kTimestamp) {
          j[key] = text;  // unknown fields are reported by ParseEvent
          continue;
        }
        if (f->type.base == dsl::BaseType::kBool) {
          if (text != "true" && text != "false") {
            Error(el.line, "field `" + key + "` is true or false, not `" + text + "`");
            ok = false;
            continue;
          }
          j[key] = text == "true";
          continue;
        }
        double v = 0;
        if (!ParseNumber(text, v)) {
          Error(el.line, "field `" + key + "` is a number, not `" + text + "`");
          ok = false;
          continue;
        }
        j[key] = v;
      }
      if (!ok) continue;
      rules::Event e;
      Status s = rules::ParseEvent(p_, j.dump(), e);
      if (!s.ok()) {
        Error(el.line, "event `" + el.type + "`: " + s.message());
        continue;
      }
      if (t < start_) {
        Error(el.line, "the event is before the test's start (" + rules::FormatTime(start_) + ")");
        continue;
      }
      events_.push_back({el.line, std::move(e)});
    }
    // Expectations: the names they use must exist.
    const std::vector<std::string> units = UnitNames();
    for (const auto& e : test_.expectations) {
      switch (e.kind) {
        case ExpectKind::kExactly:
        case ExpectKind::kIncluding: {
          for (const auto& u : e.units) {
            if (!HasGlob(u) && std::find(units.begin(), units.end(), u) == units.end()) {
              Error(e.line, "unknown rule, alert, journey or score `" + u + "`" + Suggest(u, units, "units"));
            }
          }
          for (const auto& d : e.decisions) {
            if (!HasGlob(d.unit) && std::find(units.begin(), units.end(), d.unit) == units.end()) {
              Error(d.line, "unknown rule, alert, journey or score `" + d.unit + "`" + Suggest(d.unit, units, "units"));
            }
          }
          break;
        }
        case ExpectKind::kAlert: {
          bool found = false;
          std::vector<std::string> names;
          for (const auto& a : p_.alerts) {
            names.push_back(a.name);
            found |= a.name == e.name;
          }
          if (!found) Error(e.line, "unknown alert `" + e.name + "`" + Suggest(e.name, names, "alerts"));
          break;
        }
        case ExpectKind::kJourney: {
          const dsl::CompiledJourney* j = nullptr;
          std::vector<std::string> names;
          for (const auto& x : p_.journeys) {
            names.push_back(x.name);
            if (x.name == e.name) j = &x;
          }
          if (!j) {
            Error(e.line, "unknown journey `" + e.name + "`" + Suggest(e.name, names, "journeys"));
            break;
          }
          std::string type = e.entity_type;
          ResolveEntity(e.line, j->entity, type, j->entity);
          std::vector<std::string> steps;
          for (const auto& s : j->steps) {
            if (!s.name.empty()) steps.push_back(s.name);
          }
          std::vector<std::string> named = e.sent ? *e.sent : std::vector<std::string>();
          if (!e.after_step.empty()) named.push_back(e.after_step);
          for (const auto& s : named) {
            if (std::find(steps.begin(), steps.end(), s) == steps.end()) {
              Error(e.line, "journey `" + e.name + "` has no step `" + s + "`" + Suggest(s, steps, "steps"));
            }
          }
          break;
        }
        case ExpectKind::kScore: {
          const dsl::CompiledScore* sc = nullptr;
          std::vector<std::string> names;
          for (const auto& x : p_.scores) {
            names.push_back(x.name);
            if (x.name == e.name) sc = &x;
          }
          if (!sc) {
            Error(e.line, "unknown score `" + e.name + "`" + Suggest(e.name, names, "scores"));
            break;
          }
          std::string type = e.entity_type;
          ResolveEntity(e.line, sc->entity, type, sc->entity);
          break;
        }
        case ExpectKind::kEntity: {
          std::string type = e.entity_type;
          if (!ResolveEntity(e.line, "", type, "")) break;
          const dsl::EntityInfo* info = p_.FindEntity(type);
          std::vector<std::string> names;
          for (const auto& f : info->fields) names.push_back(f.name);
          names.push_back(info->key);
          for (const auto& s : p_.scores) {
            if (s.entity == type) names.push_back(s.name);
          }
          for (const auto& f : e.fields) {
            if (std::find(names.begin(), names.end(), f.key) == names.end()) {
              Error(e.line, "`" + type + "` has no field or score `" + f.key + "`" + Suggest(f.key, names, "fields"));
            }
          }
          break;
        }
      }
    }
    // The end of the run: `run until`, or the latest time the case mentions.
    end_ = start_;
    for (const auto& [line, e] : events_) end_ = std::max(end_, e.time);
    for (const auto& e : test_.expectations) {
      if (e.at) end_ = std::max(end_, At(*e.at));
      if (e.to) end_ = std::max(end_, At(*e.to));
      for (const auto& d : e.decisions) {
        if (!d.time.any) end_ = std::max(end_, At(d.time) + d.time.width - 1);
      }
    }
    if (test_.run_until) {
      TimeMs until = At(*test_.run_until);
      if (until < end_) {
        Error(test_.line, "`run until " + test_.run_until->written +
                              "` ends before the last event or check of the test (" + rules::FormatTime(end_) + ")");
      }
      end_ = until;
    }
    return result_.errors.size() == errors;
  }

  // A cell of the time column: the bucket text the warehouse stores.
  bool BucketText(int line, const dsl::TableInfo& t, const std::string& in, std::string& out) {
    const std::string zone = t.timezone.empty() ? "UTC" : t.timezone;
    std::string error;
    TimeMs ms = 0;
    if (rules::ParseBucket(in, t.grain, zone, ms, error)) {
      out = in;
      return true;
    }
    TimeExpr te;
    if (ParseTimeExpr(in, te)) {
      ms = At(te);
      if (t.grain == dsl::Grain::kHour && ms % rules::kHour != 0) {
        Error(line, "`" + in + "` is not the start of an hour (table `" + t.name + "` is hourly)");
        return false;
      }
      if (rules::FormatBucket(ms, t.grain, zone, out, error)) return true;
    }
    Error(line, "`" + in + "` is not " + std::string(t.grain == dsl::Grain::kHour ? "an hour" : "a day") +
                    " of table `" + t.name + "`: write " +
                    (t.grain == dsl::Grain::kHour ? "2026-11-01T09:00Z (or 2026-11-01 09:00:00)" : "2026-11-01") +
                    " or a time relative to the start such as -1d");
    return false;
  }

  bool ValueCell(int line, const dsl::TableInfo& t, const std::string& column, const std::optional<std::string>& in,
                 Cell& out) {
    out = Cell();
    if (!in) return true;
    const dsl::FieldInfo* f = FindField(t, column);
    dsl::BaseType b = f ? f->type.base : dsl::BaseType::kText;
    if (column == t.key) b = dsl::BaseType::kText;
    if (b == dsl::BaseType::kText || b == dsl::BaseType::kTimestamp) {
      out.kind = Cell::Kind::kText;
      out.text = *in;
      return true;
    }
    if (b == dsl::BaseType::kBool) {
      if (*in != "true" && *in != "false") {
        Error(line, "column `" + column + "` is true or false, not `" + *in + "`");
        return false;
      }
      out.kind = Cell::Kind::kNumber;
      out.num = *in == "true";
      return true;
    }
    std::string num = *in;
    bool percent = !num.empty() && num.back() == '%';
    if (percent) num.pop_back();
    double v = 0;
    if (!ParseNumber(num, v)) {
      Error(line, "column `" + column + "` is a number, not `" + *in + "`" +
                      (b == dsl::BaseType::kMoney ? " (money is a plain number here: 60, not 60 USD)" : ""));
      return false;
    }
    out.kind = Cell::Kind::kNumber;
    out.num = percent ? v / 100 : v;
    return true;
  }

  bool CheckColumn(int line, const dsl::TableInfo& t, const std::string& column) {
    if (column == t.key || column == t.time_column || FindField(t, column)) return true;
    Error(line, "table `" + t.name + "` has no column `" + column + "`" + Suggest(column, ColumnNames(t), "columns"));
    return false;
  }

  bool PutRow(int line, TableData& td, const std::string& key, const std::string& bucket,
              const std::map<std::string, Cell>& cells, bool merge) {
    auto id = std::make_pair(key, bucket);
    auto it = td.rows.find(id);
    if (it == td.rows.end()) {
      td.rows[id] = cells;
      td.row_line[id] = line;
      return true;
    }
    if (!merge) {
      Error(line, "a second row for " + td.info->key + " `" + key + "` at " + bucket + " (the first is at line " +
                      std::to_string(td.row_line[id]) + "): a table has one row per key and " +
                      (td.info->grain == dsl::Grain::kHour ? "hour" : "day"));
      return false;
    }
    for (const auto& [c, v] : cells) {
      auto old = it->second.find(c);
      if (old != it->second.end() && old->second.kind != Cell::Kind::kNull && v.kind != Cell::Kind::kNull &&
          !(old->second == v)) {
        Error(line, "column `" + c + "` of " + td.info->key + " `" + key + "` at " + bucket +
                        " is given two different values (also at line " + std::to_string(td.row_line[id]) + ")");
        return false;
      }
      if (old == it->second.end() || old->second.kind == Cell::Kind::kNull) it->second[c] = v;
    }
    return true;
  }

  void BindTable(const TableBlock& b, TableData& td) {
    const dsl::TableInfo& t = *td.info;
    bool ok = true;
    std::set<std::string> given;
    for (const auto& [c, v] : b.constants) {
      ok &= CheckColumn(b.line, t, c);
      given.insert(c);
    }
    for (const auto& c : b.columns) {
      ok &= CheckColumn(b.header_line, t, c);
      if (given.count(c)) {
        Error(b.header_line, "column `" + c + "` is given twice (in the header and on the `table` line)");
        ok = false;
      }
      given.insert(c);
    }
    if (!ok) return;
    if (b.columns.empty()) {
      Error(b.line, "the table has no rows: follow `table " + b.table + "` with | " + t.key + " | " + t.time_column +
                        " | ... | and one row per line");
      return;
    }
    if (!given.count(t.key) || !given.count(t.time_column)) {
      Error(b.header_line,
            "the rows of `" + t.name + "` need its key column `" + t.key + "` and time column `" + t.time_column + "`");
      return;
    }
    for (const auto& row : b.rows) {
      std::map<std::string, Cell> cells;
      std::string key, bucket;
      bool row_ok = true;
      auto put = [&](const std::string& c, const std::optional<std::string>& v) {
        if (c == t.time_column) {
          if (!v) {
            Error(row.line, "the time column `" + c + "` needs a value");
            row_ok = false;
            return;
          }
          row_ok &= BucketText(row.line, t, *v, bucket);
          return;
        }
        if (c == t.key) {
          if (!v || v->empty()) {
            Error(row.line, "the key column `" + c + "` needs a value");
            row_ok = false;
            return;
          }
          key = *v;
          return;
        }
        Cell cell;
        if (!ValueCell(row.line, t, c, v, cell)) row_ok = false;
        cells[c] = cell;
      };
      for (const auto& [c, v] : b.constants) put(c, v);
      for (std::size_t i = 0; i < b.columns.size(); ++i) put(b.columns[i], row.cells[i]);
      if (row_ok) PutRow(row.line, td, key, bucket, cells, false);
    }
  }

  void BindSeries(const SeriesBlock& s, TableData& td) {
    const dsl::TableInfo& t = *td.info;
    const std::string zone = t.timezone.empty() ? "UTC" : t.timezone;
    TimeMs from = At(s.from);
    std::string first_day, error;
    std::int64_t first_day_n = 0;
    if (t.grain == dsl::Grain::kHour) {
      if (from % rules::kHour != 0) {
        Error(s.line, "table `" + t.name + "` is hourly: the series must start at the start of an hour");
        return;
      }
    } else {
      if (!rules::FormatDayBucket(from, zone, first_day, error)) {
        Error(s.line, error);
        return;
      }
      int y = 0, m = 0, d = 0;
      rules::ParseDigits(first_day, 0, 4, y);
      rules::ParseDigits(first_day, 5, 2, m);
      rules::ParseDigits(first_day, 8, 2, d);
      first_day_n = DaysFromCivil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
    }
    for (const auto& line : s.lines) {
      const dsl::FieldInfo* fact = nullptr;
      for (const auto& f : t.facts) {
        if (f.name == line.fact) fact = &f;
      }
      if (!fact) {
        std::vector<std::string> facts;
        for (const auto& f : t.facts) facts.push_back(f.name);
        Error(line.line, "table `" + t.name + "` has no fact `" + line.fact + "`" + Suggest(line.fact, facts, "facts"));
        continue;
      }
      std::string key;
      std::map<std::string, Cell> dims;
      bool ok = true;
      for (const auto& [label, value] : line.labels) {
        if (label == t.key) {
          key = value.value_or("");
          continue;
        }
        if (label == t.time_column || !FindField(t, label)) {
          std::vector<std::string> dn;
          for (const auto& f : t.dims) dn.push_back(f.name);
          Error(line.line, "`" + label + "` is not a dim of table `" + t.name + "`" + Suggest(label, dn, "dims"));
          ok = false;
          continue;
        }
        Cell c;
        ok &= ValueCell(line.line, t, label, value, c);
        dims[label] = c;
      }
      if (!ok) continue;
      if (key.empty()) {
        Error(line.line, "the labels of a series name its key: " + line.fact + "{" + t.key + "=\"...\"}");
        continue;
      }
      for (std::size_t i = 0; i < line.values.size(); ++i) {
        std::string bucket = t.grain == dsl::Grain::kHour
                                 ? rules::FormatHourBucket(from + static_cast<TimeMs>(i) * rules::kHour)
                                 : CivilFromDays(first_day_n + static_cast<std::int64_t>(i));
        auto id = std::make_pair(key, bucket);
        if (!line.values[i]) {
          // `_`: no value; the row exists only if another series gives it one.
          auto it = td.rows.find(id);
          if (it != td.rows.end()) {
            if (!it->second.count(line.fact)) it->second[line.fact] = Cell();
          }
          continue;
        }
        std::map<std::string, Cell> cells = dims;
        Cell v;
        v.kind = Cell::Kind::kNumber;
        v.num = *line.values[i];
        cells[line.fact] = v;
        if (!PutRow(line.line, td, key, bucket, cells, true)) break;
      }
    }
  }

  bool BuildWarehouse() {
    static std::atomic<int> counter{0};
    db_path_ = (fs::temp_directory_path() /
                ("gavel-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".db"))
                   .string();
    std::error_code ec;
    fs::remove(db_path_, ec);
    sqlite3* db = nullptr;
    if (sqlite3_open(db_path_.c_str(), &db) != SQLITE_OK) {
      Error(test_.line,
            "cannot create the test warehouse " + db_path_ + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
      sqlite3_close(db);
      return false;
    }
    bool ok = true;
    auto exec = [&](const std::string& sql) {
      char* err = nullptr;
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        Error(test_.line, std::string("building the test warehouse: ") + (err ? err : "?") + " in " + sql);
        ok = false;
      }
      sqlite3_free(err);
    };
    exec("BEGIN");
    for (const auto& [name, td] : tables_) {
      if (!ok) break;
      const dsl::TableInfo& t = *td.info;
      if (unsupported_.count(name)) continue;
      std::string cols = Quote(t.key) + " TEXT, " + Quote(t.time_column) + " TEXT";
      std::vector<const dsl::FieldInfo*> fields;
      for (const auto& f : t.dims) fields.push_back(&f);
      for (const auto& f : t.facts) fields.push_back(&f);
      for (const auto* f : fields) {
        if (f->name == t.key || f->name == t.time_column) continue;
        cols += ", " + Quote(f->name) + " " + SqlType(f->type.base);
      }
      exec("CREATE TABLE " + Quote(t.source) + " (" + cols + ")");
      if (!ok) break;
      std::string insert = "INSERT INTO " + Quote(t.source) + " VALUES (?, ?";
      std::vector<std::string> order;
      for (const auto* f : fields) {
        if (f->name == t.key || f->name == t.time_column) continue;
        insert += ", ?";
        order.push_back(f->name);
      }
      insert += ")";
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, insert.c_str(), -1, &st, nullptr) != SQLITE_OK) {
        Error(test_.line, std::string("building the test warehouse: ") + sqlite3_errmsg(db));
        ok = false;
        break;
      }
      for (const auto& [id, cells] : td.rows) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sqlite3_bind_text(st, 1, id.first.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, id.second.c_str(), -1, SQLITE_TRANSIENT);
        for (std::size_t i = 0; i < order.size(); ++i) {
          auto it = cells.find(order[i]);
          int col = static_cast<int>(i) + 3;
          if (it == cells.end() || it->second.kind == Cell::Kind::kNull)
            sqlite3_bind_null(st, col);
          else if (it->second.kind == Cell::Kind::kText)
            sqlite3_bind_text(st, col, it->second.text.c_str(), -1, SQLITE_TRANSIENT);
          else
            sqlite3_bind_double(st, col, it->second.num);
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
          Error(td.row_line.at(id), std::string("building the test warehouse: ") + sqlite3_errmsg(db));
          ok = false;
          break;
        }
      }
      sqlite3_finalize(st);
    }
    if (ok) exec("COMMIT");
    sqlite3_close(db);
    if (!ok) return false;
    auto w = rules::SqliteWarehouse::Open(db_path_);
    if (!w.ok()) {
      Error(test_.line, w.status().message());
      return false;
    }
    warehouse_ = std::move(w.value());
    return true;
  }

  // ------------------------------------------------------------ running

  // Forwards decisions to the result, leaving summaries out.
  class Sink final : public rules::DecisionSink {
   public:
    explicit Sink(std::vector<rules::Decision>& out) : out_(out) {}
    bool Append(rules::Decision& d) override {
      d.id = ++count_;
      if (d.kind != "summary") out_.push_back(d);
      return true;
    }

   private:
    std::vector<rules::Decision>& out_;
    std::int64_t count_ = 0;
  };

  void Execute() {
    rules::SimulatedClock clock(start_);
    Sink sink(result_.decisions);
    rules::EngineOptions options;
    options.log_every_evaluation = all_evaluations_;
    options.run_schedules = schedules_;
    options.track_state = false;
    rules::Engine engine(program_, {&clock, &sink, warehouse_.get()}, options);
    engine.Start(start_);
    // Events in time order (ties in file order); point checks after the events of their time.
    std::vector<std::size_t> order(events_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return events_[a].second.time < events_[b].second.time; });
    std::vector<std::pair<TimeMs, const Expectation*>> points;
    for (const auto& e : test_.expectations) {
      if (e.kind == ExpectKind::kExactly || e.kind == ExpectKind::kIncluding) continue;
      points.emplace_back(e.at ? At(*e.at) : end_, &e);
    }
    std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::size_t ei = 0, pi = 0;
    auto advance = [&](TimeMs t) {
      clock.Set(std::max(clock.Now(), t));
      Status s = engine.AdvanceTo(t);
      if (!s.ok()) Error(test_.line, "the engine failed at " + rules::FormatTime(t) + ": " + s.message());
      return s.ok();
    };
    while (ei < order.size() || pi < points.size()) {
      bool event_next =
          ei < order.size() && (pi >= points.size() || events_[order[ei]].second.time <= points[pi].first);
      if (event_next) {
        const auto& [line, e] = events_[order[ei++]];
        if (!advance(e.time)) return;
        Status s = engine.OnEvent(e);
        if (!s.ok() && s.code() != Status::Code::kInvalidArgument) {  // a duplicate id is refused, as in replay
          Error(line, "the engine failed on this event: " + s.message());
          return;
        }
        continue;
      }
      const auto& [t, e] = points[pi++];
      if (!advance(t)) return;
      CheckPoint(*e, t, engine);
    }
    if (!advance(end_)) return;
    for (const auto& e : test_.expectations) {
      if (e.kind == ExpectKind::kExactly || e.kind == ExpectKind::kIncluding) CheckDecisions(e);
    }
    std::stable_sort(result_.failures.begin(), result_.failures.end(),
                     [](const Failure& a, const Failure& b) { return a.line < b.line; });
  }

  Failure& Fail(const Expectation& e) {
    result_.failures.push_back({e.line, e.written, {}});
    return result_.failures.back();
  }

  void CheckPoint(const Expectation& e, TimeMs t, rules::Engine& engine) {
    ++result_.checks;
    const std::string when = " at " + rules::FormatTime(t);
    switch (e.kind) {
      case ExpectKind::kAlert: {
        std::string state = "inactive";
        TimeMs since = -1;
        for (const auto& d : result_.decisions) {
          if (d.kind != "alert" || d.rule != e.name || d.entity_id != e.entity_id || d.outcome != "alert") continue;
          if (d.event_time > t) continue;
          if (d.reason == "pending" || d.reason == "firing") {
            since = d.event_time;
            state = d.reason;
          } else if (d.reason == "inactive" || d.reason == "resolved") {
            state = "inactive";
            since = d.event_time;
          }
        }
        if (state != e.state) {
          Failure& f = Fail(e);
          f.diff.push_back("- alert " + e.name + " " + e.entity_id + when + ": " + e.state);
          f.diff.push_back("+ alert " + e.name + " " + e.entity_id + when + ": " + state +
                           (since >= 0 ? " (since " + rules::FormatTime(since) + ")" : " (never active)"));
        }
        break;
      }
      case ExpectKind::kJourney: {
        std::string status = "none", detail;
        std::vector<std::string> sent;
        for (const auto& d : result_.decisions) {
          if (d.kind != "journey" || d.rule != e.name || d.entity_id != e.entity_id || d.event_time > t) continue;
          const std::string& o = d.outcome;
          if (o == "entered") {
            sent.clear();
            status = "running";
            detail.clear();
          } else if (o == "step") {
            sent.push_back(d.reason);
          } else if (o == "waiting" || o == "deferred") {
            status = o;
            detail = d.reason;
          } else if (o == "branch" || o == "timeout") {
            status = "running";
            detail.clear();
          } else if (o == "completed" || o == "exited" || o == "stopped") {
            status = o;
            detail = d.reason;
          }
        }
        std::string last = sent.empty() ? "" : sent.back();
        bool ok = status == e.state && (e.after_step.empty() || e.after_step == last) && (!e.sent || *e.sent == sent);
        if (!ok) {
          auto list = [](const std::vector<std::string>& v) {
            std::string s;
            for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
            return s.empty() ? std::string("nothing") : s;
          };
          std::string want = e.state;
          if (!e.after_step.empty()) want += " after " + e.after_step;
          if (e.sent) want += " sent " + list(*e.sent);
          std::string got = status;
          if (!last.empty()) got += " after " + last;
          got += " sent " + list(sent);
          if (!detail.empty()) got += " (" + detail + ")";
          Failure& f = Fail(e);
          f.diff.push_back("- journey " + e.name + " " + e.entity_id + when + ": " + want);
          f.diff.push_back("+ journey " + e.name + " " + e.entity_id + when + ": " + got);
        }
        break;
      }
      case ExpectKind::kScore: {
        std::string type = e.entity_type;
        for (const auto& s : p_.scores) {
          if (s.name == e.name && type.empty()) type = s.entity;
        }
        std::string described = engine.DescribeEntity(type, e.entity_id);
        double v = engine.ScoreOf(type, e.entity_id, e.name);
        ordered_json actual = v;
        if (!e.value.Matches(actual)) {
          Failure& f = Fail(e);
          f.diff.push_back("- score " + e.name + " " + e.entity_id + when + ": " + e.value.written);
          f.diff.push_back("+ score " + e.name + " " + e.entity_id + when + ": " + Show(&actual) +
                           (described.empty() ? " (no such " + type + " yet)" : ""));
        }
        break;
      }
      case ExpectKind::kEntity: {
        std::string type = e.entity_type;
        if (type.empty() && p_.entities.size() == 1) type = p_.entities[0].name;
        // Scores are decayed to the check's time before they are read.
        for (const auto& s : p_.scores) {
          if (s.entity == type) engine.ScoreOf(type, e.entity_id, s.name);
        }
        std::string described = engine.DescribeEntity(type, e.entity_id);
        const std::string who = type + ":" + e.entity_id;
        if (described.empty()) {
          Failure& f = Fail(e);
          std::string want;
          for (const auto& c : e.fields) want += " " + c.key + "=" + c.value.written;
          f.diff.push_back("- " + who + when + ":" + want);
          f.diff.push_back("+ " + who + when + ": no such entity (no event has named it)");
          break;
        }
        ordered_json j = ordered_json::parse(described);
        ordered_json flat = ordered_json::object();
        flat[p_.FindEntity(type)->key] = e.entity_id;
        if (j.contains("fields")) {
          for (auto it = j["fields"].begin(); it != j["fields"].end(); ++it) flat[it.key()] = it.value();
        }
        if (j.contains("scores")) {
          for (auto it = j["scores"].begin(); it != j["scores"].end(); ++it) flat[it.key()] = it.value();
        }
        std::string want, got;
        bool ok = true;
        for (const auto& c : e.fields) {
          const ordered_json* v = Lookup(flat, c.key);
          bool m = v && c.value.Matches(*v);
          ok &= m;
          want += " " + c.key + "=" + c.value.written;
          got += " " + c.key + "=" + Show(v);
        }
        if (!ok) {
          Failure& f = Fail(e);
          f.diff.push_back("- " + who + when + ":" + want);
          f.diff.push_back("+ " + who + when + ":" + got);
        }
        break;
      }
      default:
        break;
    }
  }

  // Why a decision does not match a line ("" when it does). `head` compares only time, unit,
  // entity, outcome and reason.
  std::string Mismatch(const DecisionCheck& c, const rules::Decision& d, bool head_only,
                       bool ignore_time = false) const {
    if (!c.time.any && !ignore_time) {
      TimeMs at = At(c.time);
      if (d.event_time < at || d.event_time >= at + c.time.width) return "time";
    }
    if (!Glob(c.unit, d.rule)) return "unit";
    if (c.no_entity) {
      if (!d.entity_id.empty()) return "entity";
    } else {
      if (!c.entity_type.empty() && !Glob(c.entity_type, d.entity_type)) return "entity";
      if (!Glob(c.entity_id, d.entity_id)) return "entity";
    }
    if (!Glob(c.outcome, d.outcome)) return "outcome";
    if (c.reason && !Glob(*c.reason, d.reason)) return "reason";
    if (head_only) return "";
    std::string why;
    for (const auto& f : c.evidence) {
      const ordered_json* v = Lookup(d.evidence, f.key);
      if (!v || !f.value.Matches(*v)) {
        why += (why.empty() ? "" : "; ") + std::string("evidence ") + f.key + ": expected " + f.value.written +
               ", got " + Show(v);
      }
    }
    if (c.check_actions) {
      std::string want, got;
      for (const auto& a : c.actions) want += (want.empty() ? "" : " ") + a.written;
      for (const auto& a : d.actions) {
        std::string name = a.value("action", std::string("?"));
        got += (got.empty() ? "-> " : " -> ") + name;
        std::string key = PositionalKey(name);
        if (const ordered_json* v = key.empty() ? nullptr : Lookup(a, key)) got += " " + Show(v);
      }
      if (want.empty()) want = "-> none";
      if (got.empty()) got = "-> none";
      bool ok = c.actions.size() == d.actions.size();
      for (std::size_t i = 0; ok && i < c.actions.size(); ++i) {
        const ordered_json& a = d.actions[i];
        if (!Glob(c.actions[i].action, a.value("action", std::string()))) {
          ok = false;
          break;
        }
        for (const auto& f : c.actions[i].fields) {
          const ordered_json* v = Lookup(a, f.key);
          if (!v || !f.value.Matches(*v)) {
            ok = false;
            got += " [" + f.key + "=" + Show(v) + "]";
          }
        }
      }
      if (!ok) why += (why.empty() ? "" : "; ") + std::string("actions: expected ") + want + ", got " + got;
    }
    return why;
  }

  void CheckDecisions(const Expectation& e) {
    ++result_.checks;
    TimeMs from = e.from ? At(*e.from) : std::numeric_limits<TimeMs>::min();
    TimeMs to = e.to ? At(*e.to) : std::numeric_limits<TimeMs>::max();
    std::vector<const rules::Decision*> actual;
    for (const auto& d : result_.decisions) {
      if (d.event_time < from || d.event_time >= to) continue;
      bool in = false;
      for (const auto& u : e.units) in |= Glob(u, d.rule);
      if (in) actual.push_back(&d);
    }
    const auto& want = e.decisions;
    const std::size_t n = want.size(), m = actual.size();
    // Longest common subsequence of "line matches decision": the diff's matched pairs.
    std::vector<std::vector<int>> L(n + 1, std::vector<int>(m + 1, 0));
    std::vector<std::vector<char>> ok(n, std::vector<char>(m, 0));
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < m; ++j) ok[i][j] = Mismatch(want[i], *actual[j], false).empty();
    }
    for (std::size_t i = n; i-- > 0;) {
      for (std::size_t j = m; j-- > 0;) {
        L[i][j] = ok[i][j] ? L[i + 1][j + 1] + 1 : std::max(L[i + 1][j], L[i][j + 1]);
      }
    }
    const bool exact = e.kind == ExpectKind::kExactly;
    if (static_cast<std::size_t>(L[0][0]) == n && (!exact || n == m)) return;
    Failure& f = Fail(e);
    std::size_t i = 0, j = 0;
    std::vector<std::string> pending_minus;
    auto plus = [&](const rules::Decision& d) {
      if (exact) f.diff.push_back("+ " + RenderDecision(d));
    };
    while (i < n || j < m) {
      if (i < n && j < m && ok[i][j] && L[i][j] == L[i + 1][j + 1] + 1) {
        f.diff.push_back("  " + want[i].written);
        ++i, ++j;
      } else if (j < m && (i >= n || L[i][j + 1] > L[i + 1][j])) {
        plus(*actual[j]);
        ++j;
      } else {
        f.diff.push_back("- " + want[i].written);
        // A decision of the same time, unit, entity and outcome explains what differs; failing
        // that, one that differs only in its time.
        bool noted = false;
        for (const rules::Decision* d : actual) {
          if (Mismatch(want[i], *d, true).empty()) {
            f.diff.push_back("    differs from the decision of " + rules::FormatTime(d->event_time) + ": " +
                             Mismatch(want[i], *d, false));
            noted = true;
            break;
          }
        }
        for (const rules::Decision* d : actual) {
          if (noted) break;
          if (Mismatch(want[i], *d, false, true).empty()) {
            f.diff.push_back("    differs from the decision of " + rules::FormatTime(d->event_time) +
                             " only in its time (written " + want[i].time.written + ")");
            noted = true;
          }
        }
        ++i;
      }
    }
    if (!exact) {
      f.diff.push_back("    (including: every line must match a decision, in order; the decisions of " +
                       std::string(m == 1 ? "this unit" : "these units") + " in the range were:)");
      for (const rules::Decision* d : actual) f.diff.push_back("    " + RenderDecision(*d));
      if (actual.empty()) f.diff.push_back("    (none)");
    }
  }

  const TestFile& file_;
  const TestCase& test_;
  std::shared_ptr<const dsl::Program> program_;
  const dsl::Program& p_;
  CaseResult& result_;
  TimeMs start_ = 0;
  TimeMs end_ = 0;
  bool all_evaluations_ = false;
  bool schedules_ = true;
  std::map<std::string, TableData> tables_;
  std::set<std::string> unsupported_;
  std::vector<std::pair<int, rules::Event>> events_;
  std::string db_path_;
  std::unique_ptr<rules::SqliteWarehouse> warehouse_;
};

}  // namespace

CaseResult RunCase(const TestFile& file, const TestCase& test, std::shared_ptr<const dsl::Program> program) {
  CaseResult result;
  result.name = test.name;
  result.line = test.line;
  if (!program) {
    result.errors.push_back({file.path, test.line, "the rule files did not compile"});
    return result;
  }
  try {
    Runner runner(file, test, std::move(program), result);
    runner.Run();
  } catch (const std::exception& e) {
    result.errors.push_back({file.path, test.line, std::string("internal error running the test: ") + e.what()});
  }
  return result;
}

std::string RenderFailures(const TestFile& file, const CaseResult& result) {
  if (result.passed()) return "";
  std::string out;
  if (!result.errors.empty()) {
    out += "ERROR " + file.path + ":" + std::to_string(result.line) + ": " + result.name + "\n";
    for (const auto& p : result.errors) out += "  " + p.Render() + "\n";
    return out;
  }
  out += "FAIL " + file.path + ":" + std::to_string(result.line) + ": " + result.name + "\n";
  for (const auto& f : result.failures) {
    out += "  " + file.path + ":" + std::to_string(f.line) + ": " + f.title + "\n";
    for (const auto& d : f.diff) out += "    " + d + "\n";
  }
  return out;
}

}  // namespace gavel::ruletest
