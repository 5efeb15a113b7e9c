// Lowering of the X3 tree to dsl::File. See lower.hpp.
#include "dsl/parser/lower.hpp"

#include <algorithm>
#include <boost/variant/apply_visitor.hpp>
#include <charconv>
#include <cmath>
#include <cstring>

#include "dsl/parser/x3_ast_adapted.hpp"

namespace gavel::dsl::parser {
namespace {

namespace A = x3ast;
namespace x3 = boost::spirit::x3;
using A::range;

// More operators than this in one chain (a + b + c ...) is refused: the tree would be deep
// enough to threaten the stack of every later pass, and no real rule needs it.
constexpr std::size_t kMaxChain = 256;

template <typename... F>
struct Overload : F... {
  using F::operator()...;
};
template <typename... F>
Overload(F...) -> Overload<F...>;

template <typename Variant, typename... F>
void Visit(const Variant& v, F&&... f) {
  Overload<std::decay_t<F>...> ov{std::forward<F>(f)...};
  boost::apply_visitor([&](const auto& x) { ov(x); }, v.get());
}

std::string Str(const range& r) { return std::string(r.begin(), r.end()); }

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Splits a raw phrase into words and punctuation, keeping the offset of each piece.
struct Word {
  std::string text;
  const char* at;
};
std::vector<Word> Words(const range& r) {
  std::vector<Word> out;
  const char* p = r.begin();
  const char* e = r.end();
  while (p < e) {
    if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
      ++p;
    } else if (*p == '#') {
      while (p < e && *p != '\n') ++p;
    } else if (*p == '"') {
      const char* b = p++;
      while (p < e && *p != '"') p += (*p == '\\' && p + 1 < e) ? 2 : 1;
      if (p < e) ++p;
      out.push_back({std::string(b, p), b});
    } else if (std::isalnum(static_cast<unsigned char>(*p)) || *p == '_' || *p == ':' || *p == '-' ||
               *p == '.') {
      const char* b = p;
      while (p < e && (std::isalnum(static_cast<unsigned char>(*p)) || *p == '_' || *p == ':' ||
                       *p == '-' || *p == '.' || *p == '%')) {
        ++p;
      }
      out.push_back({std::string(b, p), b});
    } else {
      out.push_back({std::string(1, *p), p});
      ++p;
    }
  }
  return out;
}

class Lowerer {
 public:
  Lowerer(const char* base, std::uint32_t file, const std::vector<std::uint32_t>& line_starts,
          Diagnostics& d)
      : base_(base), file_(file), line_starts_(line_starts), d_(d) {}

  Span S(const range& r) const {
    return {file_, static_cast<std::uint32_t>(r.begin() - base_),
            static_cast<std::uint32_t>(r.end() - base_)};
  }
  Span S(const char* b, const char* e) const {
    return {file_, static_cast<std::uint32_t>(b - base_), static_cast<std::uint32_t>(e - base_)};
  }
  static Span Join(Span a, Span b) { return {a.file, a.begin, std::max(a.end, b.end)}; }
  Ident Id(const range& r) const { return {Str(r), S(r)}; }

  // ---- leaves

  std::string DecodeString(const A::token& t) {
    const char* p = t.text.begin() + 1;
    const char* e = t.text.end() - 1;
    std::string out;
    while (p < e) {
      if (*p != '\\') {
        out.push_back(*p++);
        continue;
      }
      const char* esc = p++;
      char c = p < e ? *p++ : '\0';
      switch (c) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'u': {
          // \u{1F600} or \u00E9
          unsigned long cp = 0;
          const char* q = p;
          bool braces = q < e && *q == '{';
          if (braces) ++q;
          const char* digits = q;
          while (q < e && std::isxdigit(static_cast<unsigned char>(*q)) && q - digits < 6) ++q;
          std::size_t n = static_cast<std::size_t>(q - digits);
          bool ok = braces ? (n >= 1 && q < e && *q == '}') : n >= 4;
          if (!braces && n > 4) q = digits + 4, n = 4;
          if (ok) {
            std::from_chars(digits, digits + n, cp, 16);
            if (braces) ++q;
          }
          if (!ok || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            d_.Error("bad-escape", S(esc, q), "this \\u escape is not a valid Unicode character",
                     "write \\u{1F600} (1-6 hex digits in braces) or \\u00E9 (exactly 4)");
            p = q;
            break;
          }
          p = q;
          AppendUtf8(out, cp);
          break;
        }
        default:
          d_.Error("bad-escape", S(esc, p), std::string("unknown escape `\\") + c + "` in text",
                   "the escapes are \\n \\t \\r \\\" \\\\ \\/ and \\u{...}; write \\\\ for a backslash and {{ for a brace in a message");
      }
    }
    if (!ValidUtf8(out)) {
      d_.Error("bad-text", S(t.text), "this text is not valid UTF-8",
               "save the rule file as UTF-8");
    }
    return out;
  }

  static void AppendUtf8(std::string& s, unsigned long cp) {
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  static bool ValidUtf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      std::size_t n;
      if (c < 0x80) n = 0;
      else if (c >= 0xC2 && c <= 0xDF) n = 1;
      else if (c >= 0xE0 && c <= 0xEF) n = 2;
      else if (c >= 0xF0 && c <= 0xF4) n = 3;
      else return false;
      if (i + n >= s.size() && n > 0) return false;
      for (std::size_t k = 1; k <= n; ++k) {
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      }
      i += n + 1;
    }
    return true;
  }

  struct Number {
    double value = 0;
    std::string unit;  // "", "%", "s", "m", "h", "d", "w", or a currency code
  };

  Number DecodeNumber(const A::token& t) {
    Number n;
    const char* p = t.text.begin();
    const char* e = t.text.end();
    bool negative = p < e && *p == '-';
    if (negative) ++p;
    const char* q = p;
    while (q < e && (std::isdigit(static_cast<unsigned char>(*q)) || *q == '.')) ++q;
    std::from_chars(p, q, n.value);
    if (negative) n.value = -n.value;
    while (q < e && (*q == ' ' || *q == '\t')) ++q;
    n.unit.assign(q, e);
    if (!std::isfinite(n.value) || n.value > 1e15) {
      d_.Error("bad-number", S(t.text), "this number is too large", "numbers go up to 10^15");
      n.value = 0;
    }
    return n;
  }

  static std::int64_t UnitSeconds(const std::string& u) {
    if (u == "s") return 1;
    if (u == "m") return 60;
    if (u == "h") return 3600;
    if (u == "d") return 86400;
    if (u == "w") return 7 * 86400;
    return 0;
  }

  // A duration in seconds, or -1 after reporting why the token is not one.
  std::int64_t Duration(const A::token& t) {
    Number n = DecodeNumber(t);
    std::int64_t unit = UnitSeconds(n.unit);
    if (unit == 0) {
      d_.Error("expected-duration", S(t.text),
               "expected a duration such as `30d`, found `" + Str(t.text) + "`",
               "add a unit right after the number: s (seconds), m (minutes), h (hours), d (days) "
               "or w (weeks)");
      return -1;
    }
    double secs = n.value * static_cast<double>(unit);
    if (secs < 1 || secs != std::floor(secs)) {
      d_.Error("bad-duration", S(t.text), "a duration must be a whole number of seconds, at least 1s");
      return -1;
    }
    return static_cast<std::int64_t>(secs);
  }

  double Plain(const A::token& t, const char* what) {
    Number n = DecodeNumber(t);
    if (!n.unit.empty()) {
      d_.Error("unexpected-unit", S(t.text),
               std::string("expected a plain number for ") + what + ", found `" + Str(t.text) + "`",
               "remove the unit `" + n.unit + "`");
    }
    return n.value;
  }

  // 90% -> 0.9, or -1 after reporting.
  double Percent(const A::token& t) {
    Number n = DecodeNumber(t);
    if (n.unit != "%") {
      d_.Error("expected-percent", S(t.text),
               "expected a percentage such as `90%`, found `" + Str(t.text) + "`",
               "write the percent sign: `" + Str(t.text) + "%`");
      return -1;
    }
    return n.value / 100.0;
  }

  int TimeOfDay(const range& r) {
    std::string s = Str(r);
    auto colon = s.find(':');
    int h = std::atoi(s.substr(0, colon).c_str());
    int m = std::atoi(s.substr(colon + 1).c_str());
    if (h > 23 || m > 59) {
      d_.Error("bad-time", S(r), "`" + s + "` is not a time of day", "use 24-hour time from 00:00 to 23:59");
      return -1;
    }
    return h * 60 + m;
  }

  Window LowerWindow(const A::token& t) {
    Window w;
    w.span = S(t.text);
    auto words = Words(t.text);
    const std::string& first = words.empty() ? std::string() : words[0].text;
    if (first == "last" && words.size() >= 2) {
      w.kind = WindowKind::kLast;
      A::token dur{'n', range(words[1].at, t.text.end())};
      std::int64_t s = Duration(dur);
      w.seconds = s > 0 ? s : 0;
      if (s <= 0) w.kind = WindowKind::kNone;
    } else if (first == "lifetime") {
      w.kind = WindowKind::kLifetime;
    } else if (first == "yesterday") {
      w.kind = WindowKind::kYesterday;
    } else if (first == "today") {
      w.kind = WindowKind::kToday;
    }
    return w;
  }

  // ---- expressions

  ExprPtr Make(ExprKind k, Span s) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->span = s;
    return e;
  }

  ExprPtr LowerToken(const A::token& t) {
    if (t.kind == 's') {
      auto e = Make(ExprKind::kString, S(t.text));
      e->text = DecodeString(t);
      return e;
    }
    Number n = DecodeNumber(t);
    std::int64_t unit = UnitSeconds(n.unit);
    if (unit != 0) {
      auto e = Make(ExprKind::kDuration, S(t.text));
      e->number = n.value * static_cast<double>(unit);
      e->unit = n.unit;
      return e;
    }
    auto e = Make(ExprKind::kNumber, S(t.text));
    e->number = n.unit == "%" ? n.value / 100.0 : n.value;
    e->unit = n.unit;
    return e;
  }

  ExprPtr LowerPath(const A::qpath& p) {
    Span s = Join(S(p.front()), S(p.back()));
    if (p.size() == 1) {
      std::string w = Str(p[0]);
      if (w == "true" || w == "false") {
        auto e = Make(ExprKind::kBool, s);
        e->number = w == "true";
        return e;
      }
    }
    auto e = Make(ExprKind::kPath, s);
    for (const auto& r : p) {
      e->path.push_back(Str(r));
      e->path_spans.push_back(S(r));
    }
    return e;
  }

  ExprPtr LowerOperand(const A::operand& o) {
    ExprPtr out;
    Visit(
        o, [&](const A::token& t) { out = LowerToken(t); },
        [&](const A::qpath& p) { out = LowerPath(p); },
        [&](const x3::forward_ast<A::call>& c) {
          const A::call& call = c.get();
          out = Make(ExprKind::kCall, Join(S(call.name), S(call.close)));
          out->text = Str(call.name);
          for (const auto& a : call.args) out->args.push_back(LowerExpr(a));
        },
        [&](const x3::forward_ast<A::list_lit>& l) {
          const A::list_lit& list = l.get();
          out = Make(ExprKind::kList, Join(S(list.open), S(list.close)));
          for (const auto& a : list.items) out->args.push_back(LowerExpr(a));
        },
        [&](const x3::forward_ast<A::unary>& u) {
          const A::unary& un = u.get();
          ExprPtr rhs = LowerOperand(un.rhs);
          out = Make(ExprKind::kUnary, Join(S(un.op), rhs->span));
          out->op = Str(un.op) == "not" ? Op::kNot : Op::kNeg;
          out->args.push_back(std::move(rhs));
        },
        [&](const x3::forward_ast<A::expr>& e) { out = LowerExpr(e.get()); },
        [&](const x3::forward_ast<A::baseline_test>&) {
          // Only reachable as the right side of `is`; handled in LowerOperation.
          out = Make(ExprKind::kBool, Span{file_, 0, 0});
        });
    return out;
  }

  ExprPtr LowerBaseline(ExprPtr lhs, const range& is_kw, const A::baseline_test& b) {
    auto e = Make(ExprKind::kBaseline, Join(lhs->span, S(b.amount.text)));
    (void)is_kw;
    auto spec = std::make_unique<BaselineSpec>();
    std::string dir = Str(b.direction);
    spec->direction = dir == "above" ? BandDirection::kAbove
                      : dir == "below" ? BandDirection::kBelow
                                       : BandDirection::kOutside;
    for (const auto& r : b.field) spec->field.push_back(Str(r));
    spec->field_span = Join(S(b.field.front()), S(b.field.back()));
    if (b.per) {
      for (const auto& r : *b.per) spec->per.push_back(Str(r));
      spec->per_span = Join(S(b.per->front()), S(b.per->back()));
    }
    std::int64_t hist = Duration(b.history);
    spec->history_seconds = hist > 0 ? hist : 0;
    spec->history_span = S(b.history.text);
    if (b.season) {
      auto w = Words(*b.season);
      std::string unit = w.size() > 1 ? w[1].text : "";
      std::string of = w.size() > 3 ? w[3].text : "";
      if (unit == "hour" && of == "week") spec->season = Seasonality::kHourOfWeek;
      else if (unit == "hour" && of == "day") spec->season = Seasonality::kHourOfDay;
      else if (unit == "day" && of == "week") spec->season = Seasonality::kDayOfWeek;
      else
        d_.Error("bad-season", S(*b.season), "`" + Str(*b.season) + "` is not a seasonality",
                 "use `same hour of week`, `same hour of day` or `same day of week`");
    }
    spec->test_span = Join(S(b.test), S(b.amount.text));
    if (StartsWith(Str(b.test), "by")) {
      spec->sigma = Plain(b.amount, "the number of sigmas");
      if (spec->sigma <= 0) {
        d_.Error("bad-sigma", S(b.amount.text), "the band must be wider than 0 sigma");
      }
    } else {
      double p = Percent(b.amount);
      if (p >= 0 && (p < 0.5 || p >= 1.0)) {
        d_.Error("bad-confidence", S(b.amount.text),
                 "a confidence must be at least 50% and below 100%");
      }
      spec->confidence = p > 0 ? p : 0;
    }
    e->args.push_back(std::move(lhs));
    e->baseline = std::move(spec);
    return e;
  }

  ExprPtr LowerOperation(ExprPtr lhs, const A::operation& op) {
    std::string o = Str(op.op);
    if (o == "over") {
      ExprPtr w;
      const A::token* tok = boost::get<A::token>(&op.rhs.get());
      auto e = Make(ExprKind::kWindowed, lhs->span);
      if (tok) {
        e->window = LowerWindow(*tok);
        e->span = Join(lhs->span, e->window.span);
      }
      e->args.push_back(std::move(lhs));
      return e;
    }
    if (o == "is") {
      const auto* b = boost::get<x3::forward_ast<A::baseline_test>>(&op.rhs.get());
      if (b) return LowerBaseline(std::move(lhs), op.op, b->get());
      return lhs;
    }
    ExprPtr rhs = LowerOperand(op.rhs);
    Span span = Join(lhs->span, rhs->span);
    if (o == "in" || StartsWith(o, "not")) {
      bool negated = StartsWith(o, "not");
      bool like = o.find("like") != std::string::npos;
      auto e = Make(like ? ExprKind::kLike : ExprKind::kIn, span);
      e->negated = negated;
      if (like) e->text = rhs->text;
      e->args.push_back(std::move(lhs));
      if (!like) e->args.push_back(std::move(rhs));
      else e->args.push_back(std::move(rhs));
      return e;
    }
    if (o == "like") {
      auto e = Make(ExprKind::kLike, span);
      e->text = rhs->text;
      e->args.push_back(std::move(lhs));
      e->args.push_back(std::move(rhs));
      return e;
    }
    auto e = Make(ExprKind::kBinary, span);
    static const std::pair<const char*, Op> kOps[] = {
        {"+", Op::kAdd}, {"-", Op::kSub}, {"*", Op::kMul}, {"/", Op::kDiv}, {"and", Op::kAnd},
        {"or", Op::kOr}, {"==", Op::kEq}, {"!=", Op::kNe}, {"<", Op::kLt}, {"<=", Op::kLe},
        {">", Op::kGt}, {">=", Op::kGe}, {"=", Op::kEq}};
    for (const auto& [text, value] : kOps) {
      if (o == text) e->op = value;
    }
    if (o == "=") {
      d_.Error("single-equals", S(op.op), "`=` sets a value; to compare, write `==`",
               "write `==` here");
    }
    e->args.push_back(std::move(lhs));
    e->args.push_back(std::move(rhs));
    return e;
  }

  ExprPtr LowerExpr(const A::expr& x) {
    ExprPtr e = LowerOperand(x.first);
    if (x.rest.size() > kMaxChain) {
      // Underline the first operator past the limit: the whole chain would fill the screen.
      d_.Error("expression-too-long", S(x.rest[kMaxChain].op),
               "this expression has " + std::to_string(x.rest.size()) +
                   " operators in a row; the limit is " + std::to_string(kMaxChain) + ", and this is operator " +
                   std::to_string(kMaxChain + 1),
               "split it into several `let` values");
      return e;
    }
    for (const auto& op : x.rest) e = LowerOperation(std::move(e), op);
    return e;
  }

  ExprPtr LowerOptExpr(const std::optional<A::expr>& x) { return x ? LowerExpr(*x) : nullptr; }

  // ---- shared clauses

  // Reports a clause given twice in one block.
  // The 1-based line of a source offset (for "the first is on line N").
  std::uint32_t LineAt(std::uint32_t offset) const {
    // A binary search, not a count from the start of the file: a file full of duplicate
    // clauses must not cost (clauses x file size).
    return static_cast<std::uint32_t>(
        std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin());
  }

  bool Once(Span& seen, const range& kw) {
    if (seen.end != 0) {
      std::string msg = "`";
      msg += Str(kw);
      msg += "` is given twice";
      d_.Error("duplicate-clause", S(kw), std::move(msg),
               "the first is on line " + std::to_string(LineAt(seen.begin)) + "; keep one of them");
      return false;
    }
    seen = S(kw);
    if (seen.end == 0) seen.end = 1;
    return true;
  }

  bool LowerOption(RuleOptions& o, const A::kw_value& c) {
    std::string k = Str(c.kw);
    if (k == "owner") {
      if (Once(o.owner_span, c.kw)) o.owner = DecodeString(c.value);
      o.owner_span = Join(S(c.kw), S(c.value.text));
    } else if (k == "description") {
      o.description = DecodeString(c.value);
    } else if (k == "flag") {
      if (Once(o.flag_span, c.kw)) o.flag = DecodeString(c.value);
      o.flag_span = Join(S(c.kw), S(c.value.text));
    } else if (k == "mode") {
      std::string m = Str(c.value.text);
      if (Once(o.mode_span, c.kw)) {
        if (m == "live") o.mode = Mode::kLive;
        else if (m == "dry_run") o.mode = Mode::kDryRun;
        else if (m == "shadow") o.mode = Mode::kShadow;
        else {
          std::string s = ClosestMatch(m, {"live", "dry_run", "shadow"});
          d_.Error("bad-mode", S(c.value.text), "`" + m + "` is not a mode",
                   s.empty() ? "the modes are live, dry_run and shadow"
                             : "did you mean `" + s + "`? The modes are live, dry_run and shadow");
        }
      }
      o.mode_span = S(c.value.text);
    } else if (k == "cooldown") {
      if (Once(o.cooldown_span, c.kw)) {
        std::int64_t s = Duration(c.value);
        o.cooldown_seconds = s > 0 ? s : 0;
      }
    } else {
      return false;
    }
    return true;
  }

  void LowerTags(RuleOptions& o, const A::kw_list& c) {
    for (const auto& t : c.items) o.tags.push_back(DecodeString(t));
  }

  Schedule LowerSchedule(const A::every_clause& c) {
    Schedule s;
    s.span = Join(S(c.kw), S(c.spec));
    auto words = Words(c.spec);
    if (words.empty()) return s;
    if (std::isdigit(static_cast<unsigned char>(words[0].text[0]))) {
      A::token t{'n', c.spec};
      std::int64_t secs = Duration(t);
      s.every_seconds = secs > 0 ? secs : 0;
      return s;
    }
    static const char* kDays[] = {"monday", "tuesday", "wednesday", "thursday",
                                  "friday", "saturday", "sunday"};
    std::size_t i = 0;
    for (; i < words.size() && words[i].text != "at"; ++i) {
      std::string w = words[i].text;
      if (w == ",") continue;
      std::string singular = w.size() > 1 && w.back() == 's' && w != "days" ? w.substr(0, w.size() - 1) : w;
      bool found = false;
      for (int d = 0; d < 7; ++d) {
        if (singular == kDays[d]) s.weekdays |= static_cast<std::uint8_t>(1u << d), found = true;
      }
      if (w == "day" || w == "days" || w == "daily") s.weekdays |= 0x7f, found = true;
      if (singular == "weekday") s.weekdays |= 0x1f, found = true;
      if (singular == "weekend") s.weekdays |= 0x60, found = true;
      if (!found) {
        std::vector<std::string> cands = {"day", "weekday", "weekend"};
        for (auto* d : kDays) cands.push_back(d);
        std::string sug = ClosestMatch(w, cands);
        d_.Error("bad-day", S(words[i].at, words[i].at + w.size()), "`" + w + "` is not a day",
                 sug.empty() ? "use day, weekday, weekend or a weekday name such as monday"
                             : "did you mean `" + sug + "`?");
      }
    }
    if (i + 1 < words.size()) {
      const Word& t = words[i + 1];
      s.at_minute_of_day = TimeOfDay(range(t.at, t.at + t.text.size()));
    }
    if (i + 3 < words.size() && words[i + 2].text == "in") {
      const Word& z = words[i + 3];
      A::token zt{'s', range(z.at, z.at + z.text.size())};
      s.timezone = DecodeString(zt);
      s.timezone_span = S(zt.text);
    }
    return s;
  }

  Scope LowerScope(const A::scope_clause& c) {
    Scope sc;
    sc.across = Str(c.kw) == "across";
    sc.var = Id(c.var);
    sc.table = Id(c.table);
    if (c.window) sc.window = LowerWindow(*c.window);
    sc.where = LowerOptExpr(c.where);
    sc.span = Join(S(c.kw), S(c.table));
    return sc;
  }

  // ---- actions

  Action LowerAction(const A::action& a) {
    Action out;
    Visit(
        a,
        [&](const A::target_action& t) {
          out.kind = Str(t.kw) == "pause" ? ActionKind::kPause : ActionKind::kEnable;
          out.span = Join(S(t.kw), S(t.target.back()));
          SetTarget(out, t.target);
        },
        [&](const A::assign_action& t) {
          out.kind = StartsWith(Str(t.kw), "set budget") || Str(t.kw).find("budget") != std::string::npos
                         ? ActionKind::kSetBudget
                         : ActionKind::kSetField;
          SetTarget(out, t.target);
          out.value = LowerExpr(t.value);
          out.span = Join(S(t.kw), out.value->span);
        },
        [&](const A::reallocate_action& t) {
          out.kind = ActionKind::kReallocate;
          out.realloc.toward = LowerExpr(t.toward);
          out.span = Join(S(t.kw), out.realloc.toward->span);
          for (const auto& o : t.options) {
            std::string k = Str(o.kw);
            if (StartsWith(k, "keep")) {
              out.realloc.keep_total = true;
            } else if (StartsWith(k, "step")) {
              ExprPtr v = LowerOptExpr(o.amount);
              if (v && v->kind == ExprKind::kNumber && v->unit == "%") {
                out.realloc.max_step = v->number;
                out.realloc.max_step_span = v->span;
              } else if (v) {
                d_.Error("expected-percent", v->span,
                         "`step at most` takes a percentage such as `20%`");
              }
            } else {
              ExprPtr v = LowerOptExpr(o.amount);
              if (o.per) out.realloc.per = Id(*o.per);
              if (k == "min") out.realloc.min_budget = std::move(v);
              else out.realloc.max_budget = std::move(v);
            }
          }
        },
        [&](const A::webhook_action& t) {
          out.kind = ActionKind::kWebhook;
          out.name = DecodeString(t.name);
          out.name_span = S(t.name.text);
          out.span = Join(S(t.kw), S(t.name.text));
          for (const auto& w : t.with) out.with.push_back({Id(w.name), LowerExpr(w.value)});
        },
        [&](const A::notify_action& t) {
          out.kind = ActionKind::kNotifySlack;
          out.name = DecodeString(t.channel);
          out.name_span = S(t.channel.text);
          out.span = Join(S(t.kw), S(t.channel.text));
          if (t.text) {
            out.text = DecodeString(*t.text);
            out.text_span = S(t.text->text);
          }
          if (t.runbook) out.runbook = DecodeString(*t.runbook);
        },
        [&](const A::message_action& t) {
          out.kind = Str(t.kw) == "email" ? ActionKind::kEmail : ActionKind::kMessage;
          out.name = DecodeString(t.name);
          out.name_span = S(t.name.text);
          out.span = Join(S(t.kw), S(t.name.text));
          if (t.via) {
            out.via = Str(*t.via);
            out.via_span = S(*t.via);
          }
        });
    return out;
  }

  void SetTarget(Action& out, const A::qpath& p) {
    for (const auto& r : p) {
      out.target.push_back(Str(r));
      out.target_spans.push_back(S(r));
    }
  }

  // ---- declarations

  std::vector<FieldDecl> LowerFields(const std::vector<A::field>& fs) {
    std::vector<FieldDecl> out;
    for (const auto& f : fs) {
      FieldDecl fd;
      fd.name = Id(f.name);
      fd.type = LowerType(f.type);
      fd.default_value = LowerOptExpr(f.default_value);
      fd.span = Join(S(f.name), fd.type.span);
      out.push_back(std::move(fd));
    }
    return out;
  }

  TypeRef LowerType(const A::type_ref& t) {
    TypeRef r;
    r.span = t.currency ? Join(S(t.name), S(*t.currency)) : S(t.name);
    std::string n = Str(t.name);
    static const std::pair<const char*, BaseType> kTypes[] = {
        {"text", BaseType::kText},         {"bool", BaseType::kBool},
        {"number", BaseType::kNumber},     {"count", BaseType::kCount},
        {"money", BaseType::kMoney},       {"percent", BaseType::kPercent},
        {"ratio", BaseType::kRatio},       {"duration", BaseType::kDuration},
        {"timestamp", BaseType::kTimestamp}};
    bool found = false;
    for (const auto& [name, base] : kTypes) {
      if (n == name) r.base = base, found = true;
    }
    if (!found) {
      std::vector<std::string> names;
      for (const auto& [name, base] : kTypes) names.push_back(name);
      std::string s = ClosestMatch(n, names);
      d_.Error("unknown-type", S(t.name), "`" + n + "` is not a type",
               s.empty() ? "the types are text, bool, number, count, money(USD), percent, ratio, "
                           "duration and timestamp"
                         : "did you mean `" + s + "`?");
      r.base = BaseType::kError;
    }
    if (r.base == BaseType::kMoney) {
      if (!t.currency) {
        d_.Error("missing-currency", S(t.name), "money needs a currency",
                 "write `money(USD)`, `money(EUR)`, ...");
      } else {
        r.currency = Str(*t.currency);
        bool iso = r.currency.size() == 3;
        for (char c : r.currency) iso = iso && c >= 'A' && c <= 'Z';
        if (!iso) {
          d_.Error("bad-currency", S(*t.currency), "`" + r.currency + "` is not a currency code",
                   "use a three-letter ISO 4217 code in capitals, such as USD or EUR");
        }
      }
    } else if (t.currency && found) {
      d_.Error("unexpected-currency", S(*t.currency), "only `money` takes a currency");
    }
    return r;
  }

  void LowerTable(const A::table_decl& t, File& out) {
    TableDecl d;
    d.name = Id(t.name);
    d.source = DecodeString(t.source);
    d.source_span = S(t.source.text);
    d.span = Join(S(t.kw), S(t.close));
    Span key_seen{}, time_seen{}, grain_seen{}, tz_seen{}, fresh_seen{};
    for (const auto& c : t.clauses) {
      Visit(
          c,
          [&](const A::kw_value& kv) {
            std::string k = Str(kv.kw);
            if (k == "key") {
              if (Once(key_seen, kv.kw)) d.key = Id(kv.value.text);
            } else if (k == "time") {
              if (Once(time_seen, kv.kw)) d.time_column = Id(kv.value.text);
            } else if (k == "grain") {
              if (Once(grain_seen, kv.kw)) {
                std::string g = Str(kv.value.text);
                d.grain_span = S(kv.value.text);
                if (g == "hour" || g == "hourly") d.grain = Grain::kHour;
                else if (g == "day" || g == "daily") d.grain = Grain::kDay;
                else
                  d_.Error("bad-grain", S(kv.value.text), "`" + g + "` is not a grain",
                           "a table's grain is `hour` or `day`");
              }
            } else if (k == "timezone") {
              if (Once(tz_seen, kv.kw)) {
                d.timezone = DecodeString(kv.value);
                d.timezone_span = S(kv.value.text);
              }
            } else if (k == "freshness") {
              if (Once(fresh_seen, kv.kw)) {
                std::int64_t s = Duration(kv.value);
                d.freshness_seconds = s > 0 ? s : 0;
              }
            }
          },
          [&](const A::field_list& fl) {
            auto fields = LowerFields(fl.fields);
            auto& dst = Str(fl.kw) == "dims" ? d.dims : d.facts;
            for (auto& f : fields) dst.push_back(std::move(f));
          });
    }
    if (key_seen.end == 0) {
      d_.Error("missing-key", d.name.span, "table `" + d.name.name + "` has no `key`",
               "say which column identifies a row's entity, e.g. `key adset_id`");
    }
    if (time_seen.end == 0) {
      d_.Error("missing-time", d.name.span, "table `" + d.name.name + "` has no `time` column",
               "say which column holds the row's hour or day, e.g. `time day`");
    } else if (d.grain == Grain::kNone) {
      const std::string& c = d.time_column.name;
      if (c == "day" || c == "date") d.grain = Grain::kDay;
      else if (c == "hour") d.grain = Grain::kHour;
      else
        d_.Error("missing-grain", d.time_column.span,
                 "cannot tell the grain of table `" + d.name.name + "` from column `" + c + "`",
                 "add `grain day` or `grain hour`");
    }
    out.tables.push_back(std::move(d));
  }

  void LowerEvent(const A::event_decl& e, File& out) {
    EventDecl d;
    d.name = Id(e.name);
    if (e.updates) d.updates = Id(*e.updates);
    d.fields = LowerFields(e.fields);
    d.span = Join(S(e.kw), S(e.close));
    out.events.push_back(std::move(d));
  }

  void LowerEntity(const A::entity_decl& e, File& out) {
    EntityDecl d;
    d.name = Id(e.name);
    d.key = Id(e.key);
    d.fields = LowerFields(e.fields);
    d.span = Join(S(e.kw), S(e.close));
    out.entities.push_back(std::move(d));
  }

  void LowerScore(const A::score_decl& s, File& out) {
    ScoreDecl d;
    d.name = Id(s.name);
    d.entity = Id(s.entity);
    d.span = Join(S(s.kw), S(s.close));
    Span decay_seen{}, floor_seen{}, cap_seen{};
    for (const auto& c : s.clauses) {
      Visit(
          c,
          [&](const A::score_on& on) {
            ScoreRule r;
            r.kind = ScoreRuleKind::kOnEvent;
            r.event = Id(on.event);
            r.condition = LowerOptExpr(on.where);
            double a = Plain(on.amount, "the points");
            r.amount = Str(on.verb) == "subtract" ? -a : a;
            r.amount_span = S(on.amount.text);
            r.once = !on.once.empty();
            r.span = Join(S(on.kw), on.once.empty() ? S(on.amount.text) : S(on.once));
            d.rules.push_back(std::move(r));
          },
          [&](const A::score_when& w) {
            ScoreRule r;
            r.kind = ScoreRuleKind::kWhen;
            r.condition = LowerExpr(w.condition);
            double a = Plain(w.amount, "the points");
            r.amount = Str(w.verb) == "subtract" ? -a : a;
            r.amount_span = S(w.amount.text);
            r.once = !w.once.empty();
            r.span = Join(S(w.kw), w.once.empty() ? S(w.amount.text) : S(w.once));
            d.rules.push_back(std::move(r));
          },
          [&](const A::decay_clause& dc) {
            if (!Once(decay_seen, dc.kw)) return;
            d.decay_span = Join(S(dc.kw), S(dc.spec));
            auto words = Words(dc.spec);
            if (!words.empty() && words[0].text == "half-life" && words.size() > 1) {
              d.decay = DecayKind::kHalfLife;
              std::int64_t secs = Duration(A::token{'n', range(words[1].at, dc.spec.end())});
              d.decay_seconds = secs > 0 ? secs : 0;
            } else if (words.size() >= 3) {
              d.decay = DecayKind::kInactivity;
              d.decay_amount =
                  Plain(A::token{'n', range(words[0].at, words[0].at + words[0].text.size())},
                        "the decay");
              std::int64_t secs =
                  Duration(A::token{'n', range(words[2].at, words[2].at + words[2].text.size())});
              d.decay_seconds = secs > 0 ? secs : 0;
            }
          },
          [&](const A::kw_value& kv) {
            std::string k = Str(kv.kw);
            double v = Plain(kv.value, k == "floor" ? "the floor" : "the cap");
            if (k == "floor") {
              if (Once(floor_seen, kv.kw)) d.floor = v;
            } else if (Once(cap_seen, kv.kw)) {
              d.cap = v;
            }
          });
    }
    out.scores.push_back(std::move(d));
  }

  void LowerRule(const A::rule_decl& r, File& out) {
    RuleDecl d;
    d.name = Id(r.name);
    d.span = Join(S(r.kw), S(r.close));
    Span trigger_seen{}, scope_seen{}, when_seen{}, then_seen{}, limit_seen{}, approval_seen{};
    for (const auto& c : r.clauses) {
      Visit(
          c, [&](const A::kw_value& kv) { LowerOption(d.options, kv); },
          [&](const A::kw_list& kl) { LowerTags(d.options, kl); },
          [&](const A::crossing_clause& cc) {
            ExprPtr threshold = LowerExpr(cc.threshold);
            if (!TriggerOnce(trigger_seen, Join(S(cc.kw), threshold->span))) return;
            d.trigger.kind = TriggerKind::kCrossing;
            d.trigger.subject = Id(cc.score);
            d.trigger.direction =
                Str(cc.direction) == "above" ? CrossDirection::kAbove : CrossDirection::kBelow;
            d.trigger.threshold = std::move(threshold);
            d.trigger.span = Join(S(cc.kw), d.trigger.threshold->span);
          },
          [&](const A::event_clause& ec) {
            if (!TriggerOnce(trigger_seen, Join(S(ec.kw), S(ec.event)))) return;
            d.trigger.kind = TriggerKind::kEvent;
            d.trigger.subject = Id(ec.event);
            d.trigger.where = LowerOptExpr(ec.where);
            d.trigger.span = Join(S(ec.kw), S(ec.event));
          },
          [&](const A::every_clause& ev) {
            if (!TriggerOnce(trigger_seen, Join(S(ev.kw), S(ev.spec)))) return;
            d.trigger.kind = TriggerKind::kSchedule;
            d.trigger.schedule = LowerSchedule(ev);
            d.trigger.span = d.trigger.schedule.span;
          },
          [&](const A::scope_clause& sc) {
            if (Once(scope_seen, sc.kw)) d.scope = LowerScope(sc);
          },
          [&](const A::let_clause& lc) { d.lets.push_back(LowerLetClause(lc)); },
          [&](const A::when_clause& wc) {
            if (!Once(when_seen, wc.kw)) return;
            d.condition = LowerExpr(wc.condition);
            if (wc.confidence) {
              double p = Percent(*wc.confidence);
              d.confidence_span = S(wc.confidence->text);
              if (p >= 0 && (p < 0.5 || p >= 1.0)) {
                d_.Error("bad-confidence", S(wc.confidence->text),
                         "a confidence must be at least 50% and below 100%",
                         "90% or 95% are usual choices");
              } else if (p > 0) {
                d.confidence = p;
              }
            }
          },
          [&](const A::then_clause& tc) {
            if (!Once(then_seen, tc.kw)) return;
            for (const auto& a : tc.actions) d.actions.push_back(LowerAction(a));
          },
          [&](const A::rate_clause& rc) {
            if (!Once(limit_seen, rc.kw)) return;
            d.options.limit_count = static_cast<int>(Plain(rc.count, "the limit"));
            std::int64_t s = Duration(rc.per);
            d.options.limit_seconds = s > 0 ? s : 0;
            d.options.limit_span = Join(S(rc.kw), S(rc.per.text));
          },
          [&](const A::approval_clause& ac) {
            if (!Once(approval_seen, ac.kw)) return;
            d.options.require_approval = true;
            d.options.approval_span = S(ac.kw);
            if (ac.expires) {
              std::int64_t s = Duration(*ac.expires);
              d.options.approval_expires_seconds = s > 0 ? s : 0;
            }
          });
    }
    out.rules.push_back(std::move(d));
  }

  bool TriggerOnce(Span& seen, Span clause) {
    if (seen.end != 0) {
      d_.Error("duplicate-trigger", clause, "a rule has one trigger, and this is a second one",
               "the first is on line " + std::to_string(LineAt(seen.begin)) +
                   "; split this into two rules, one per trigger");
      return false;
    }
    seen = clause;
    return true;
  }


  LetDecl LowerLetClause(const A::let_clause& lc) {
    LetDecl l;
    l.name = Id(lc.name);
    l.value = LowerExpr(lc.value);
    l.span = Join(S(lc.kw), l.value->span);
    return l;
  }

  std::vector<JourneyItem> LowerItems(const std::vector<A::journey_item>& items) {
    std::vector<JourneyItem> out;
    for (const auto& it : items) out.push_back(LowerItem(it));
    return out;
  }

  JourneyItem LowerItem(const A::journey_item& it) {
    JourneyItem out;
    Visit(
        it,
        [&](const A::step_item& s) {
          out.kind = JourneyItemKind::kStep;
          out.name = Id(s.name);
          out.action = LowerAction(s.act);
          out.span = Join(S(s.kw), out.action.span);
        },
        [&](const A::wait_item& w) {
          out.kind = JourneyItemKind::kWait;
          std::int64_t secs = Duration(w.duration);
          out.wait_seconds = secs > 0 ? secs : 0;
          for (const auto& e : w.events) out.wait_events.push_back(Id(e));
          out.span = Join(S(w.kw), w.events.empty() ? S(w.duration.text) : S(w.events.back()));
          for (const auto& b : w.branches) {
            JourneyBranch br;
            std::string ev = Str(b.event);
            br.timeout = ev == "timeout";
            br.event = Id(b.event);
            br.items = LowerItems(b.items);
            br.span = Join(S(b.kw), S(b.event));
            out.branches.push_back(std::move(br));
          }
        },
        [&](const A::jump_item& j) {
          if (Str(j.kw) == "goto") {
            out.kind = JourneyItemKind::kGoto;
            if (j.target) out.name = Id(*j.target);
          } else {
            out.kind = JourneyItemKind::kEnd;
          }
          out.span = j.target ? Join(S(j.kw), S(*j.target)) : S(j.kw);
        });
    return out;
  }

  void LowerJourney(const A::journey_decl& j, File& out) {
    JourneyDecl d;
    d.name = Id(j.name);
    d.entity = Id(j.entity);
    d.span = Join(S(j.kw), S(j.close));
    Span enter_seen{}, exit_seen{}, cap_seen{}, quiet_seen{};
    for (const auto& c : j.clauses) {
      Visit(
          c,
          [&](const A::kw_value& kv) {
            if (!LowerOption(d.options, kv)) {
              d_.Error("not-in-journey", S(kv.kw), "`" + Str(kv.kw) + "` does not apply to a journey");
            }
          },
          [&](const A::kw_list& kl) { LowerTags(d.options, kl); },
          [&](const A::enter_clause& e) {
            if (!Once(enter_seen, e.kw)) return;
            d.enter_event = Id(e.event);
            d.enter_condition = LowerOptExpr(e.condition);
          },
          [&](const A::cond_clause& e) {
            if (Once(exit_seen, e.kw)) d.exit_condition = LowerExpr(e.condition);
          },
          [&](const A::rate_clause& rc) {
            if (!Once(cap_seen, rc.kw)) return;
            d.cap_count = static_cast<int>(Plain(rc.count, "the cap"));
            std::int64_t s = Duration(rc.per);
            d.cap_seconds = s > 0 ? s : 0;
            d.cap_span = Join(S(rc.kw), S(rc.per.text));
          },
          [&](const A::quiet_clause& q) {
            if (!Once(quiet_seen, q.kw)) return;
            d.quiet.start_minute = TimeOfDay(q.from);
            d.quiet.end_minute = TimeOfDay(q.to);
            d.quiet.span = Join(S(q.kw), S(q.zone));
            if (*q.zone.begin() == '"') {
              d.quiet.timezone = DecodeString(A::token{'s', q.zone});
            } else {
              for (const auto& w : Words(q.zone)) {
                std::string t = w.text;
                std::size_t pos = 0;
                while (pos <= t.size()) {
                  std::size_t dot = t.find('.', pos);
                  if (dot == std::string::npos) dot = t.size();
                  d.quiet.zone_field.push_back(t.substr(pos, dot - pos));
                  pos = dot + 1;
                }
              }
            }
          },
          [&](const A::journey_item& it) { d.items.push_back(LowerItem(it)); });
    }
    if (enter_seen.end == 0) {
      d_.Error("missing-enter", d.name.span, "journey `" + d.name.name + "` has no `enter on` clause",
               "say which event starts it, e.g. `enter on guide_download`");
    }
    out.journeys.push_back(std::move(d));
  }

  void LowerAlert(const A::alert_decl& a, File& out) {
    AlertDecl d;
    d.name = Id(a.name);
    d.span = Join(S(a.kw), S(a.close));
    Span every_seen{}, scope_seen{}, when_seen{}, for_seen{}, sev_seen{}, notify_seen{},
        repeat_seen{}, group_seen{};
    for (const auto& c : a.clauses) {
      Visit(
          c,
          [&](const A::kw_value& kv) {
            if (LowerOption(d.options, kv)) return;
            std::string k = Str(kv.kw);
            if (k == "for") {
              if (!Once(for_seen, kv.kw)) return;
              std::int64_t s = Duration(kv.value);
              d.for_seconds = s > 0 ? s : 0;
              d.for_span = Join(S(kv.kw), S(kv.value.text));
            } else if (k == "severity") {
              if (!Once(sev_seen, kv.kw)) return;
              std::string v = Str(kv.value.text);
              d.severity_span = S(kv.value.text);
              if (v == "page") d.severity = Severity::kPage;
              else if (v == "warning" || v == "warn") d.severity = Severity::kWarning;
              else if (v == "info") d.severity = Severity::kInfo;
              else {
                std::string s = ClosestMatch(v, {"page", "warning", "info"});
                d_.Error("bad-severity", S(kv.value.text), "`" + v + "` is not a severity",
                         s.empty() ? "the severities are page, warning and info"
                                   : "did you mean `" + s + "`?");
              }
            } else if (k == "repeat") {
              if (!Once(repeat_seen, kv.kw)) return;
              std::int64_t s = Duration(kv.value);
              d.repeat_seconds = s > 0 ? s : 0;
            } else if (k == "resolve") {
              std::string v = Str(kv.value.text);
              if (v == "notify") d.resolve_notify = true;
              else
                d_.Error("bad-resolve", S(kv.value.text), "expected `resolve notify`, found `resolve " + v + "`");
            } else if (StartsWith(k, "group")) {
              if (!Once(group_seen, kv.kw)) return;
              d.group_span = S(kv.value.text);
              for (const auto& w : Words(kv.value.text)) {
                if (w.text != ".") {
                  std::string t = w.text;
                  std::size_t pos = 0;
                  while (pos <= t.size()) {
                    std::size_t dot = t.find('.', pos);
                    if (dot == std::string::npos) dot = t.size();
                    d.group_by.push_back(t.substr(pos, dot - pos));
                    pos = dot + 1;
                  }
                }
              }
            }
          },
          [&](const A::kw_list& kl) { LowerTags(d.options, kl); },
          [&](const A::every_clause& ev) {
            if (!Once(every_seen, ev.kw)) return;
            d.schedule = LowerSchedule(ev);
            d.has_schedule = true;
          },
          [&](const A::scope_clause& sc) {
            if (Once(scope_seen, sc.kw)) d.scope = LowerScope(sc);
          },
          [&](const A::let_clause& lc) { d.lets.push_back(LowerLetClause(lc)); },
          [&](const A::when_clause& wc) {
            if (!Once(when_seen, wc.kw)) return;
            d.condition = LowerExpr(wc.condition);
            if (wc.confidence) {
              d_.Error("confidence-in-alert", S(wc.confidence->text),
                       "in an alert, put the confidence inside the baseline test",
                       "write `... is below baseline(conversions per spend, 28d) with confidence 99%`");
            }
          },
          [&](const A::notify_action& n) {
            if (!Once(notify_seen, n.kw)) return;
            d.slack_channel = DecodeString(n.channel);
            d.slack_span = S(n.channel.text);
            if (n.text) {
              d.message = DecodeString(*n.text);
              d.message_span = S(n.text->text);
            }
            if (n.runbook) d.runbook = DecodeString(*n.runbook);
          });
    }
    if (every_seen.end == 0) {
      d_.Error("missing-schedule", d.name.span, "alert `" + d.name.name + "` has no schedule",
               "say how often it is checked, e.g. `every 15m`");
    }
    if (when_seen.end == 0) {
      d_.Error("missing-when", d.name.span, "alert `" + d.name.name + "` has no `when` condition");
    }
    out.alerts.push_back(std::move(d));
  }

  void Lower(const A::declaration& decl, File& out) {
    Visit(
        decl,
        [&](const A::kw_value& imp) {
          out.imports.push_back({DecodeString(imp.value), S(imp.value.text)});
        },
        [&](const A::table_decl& t) { LowerTable(t, out); },
        [&](const A::event_decl& e) { LowerEvent(e, out); },
        [&](const A::entity_decl& e) { LowerEntity(e, out); },
        [&](const A::score_decl& s) { LowerScore(s, out); },
        [&](const A::rule_decl& r) { LowerRule(r, out); },
        [&](const A::alert_decl& a) { LowerAlert(a, out); },
        [&](const A::journey_decl& j) { LowerJourney(j, out); });
  }

 private:
  const char* base_;
  std::uint32_t file_;
  const std::vector<std::uint32_t>& line_starts_;
  Diagnostics& d_;
};

}  // namespace

void LowerDeclaration(const x3ast::declaration& decl, const char* base, std::uint32_t file_id,
                      const std::vector<std::uint32_t>& line_starts, File& out,
                      Diagnostics& diags) {
  Lowerer(base, file_id, line_starts, diags).Lower(decl, out);
}

}  // namespace gavel::dsl::parser
