// The grammar of gavel rule files (Spirit X3 rule definitions). Included by grammar.cpp only.
//
// Conventions:
//  - Every rule has a name in the author's words ("a duration such as `30d`"): when an
//    expectation (`>`) fails, that name is what the diagnostic says was expected.
//  - Leaves are raw source ranges; lower.cpp decodes them.
//  - Keywords are matched whole-word (`on` does not match the start of `once`), and the few
//    words that can continue an expression (and, or, not, in, like, is, over, with, by) are
//    reserved: they cannot be used as names.
//  - No semantic actions: the tree is filled by attributes only.
#pragma once

#include <boost/spirit/home/x3.hpp>
#include <cstring>

#include "dsl/parser/config.hpp"
#include "dsl/parser/x3_ast.hpp"
#include "dsl/parser/x3_ast_adapted.hpp"

namespace gavel::dsl::parser {

namespace A = gavel::dsl::x3ast;
using A::range;

inline bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// ---------------------------------------------------------------- leaf parsers

// Stores [b, e) into whatever attribute a leaf parser is given (a range, an optional range),
// or nothing when the caller does not want the attribute.
template <typename Attr>
void AssignRange(Attr& attr, const char* b, const char* e) {
  if constexpr (!std::is_same_v<std::remove_const_t<Attr>, x3::unused_type>) attr = range(b, e);
}

// A whole keyword: `on` matches "on" but not the start of "once".
struct kw_parser : x3::parser<kw_parser> {
  using attribute_type = x3::unused_type;
  static bool const has_attribute = false;
  const char* word;
  constexpr explicit kw_parser(const char* w) : word(w) {}
  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr&) const {
    x3::skip_over(first, last, ctx);
    It it = first;
    for (const char* w = word; *w; ++w, ++it) {
      if (it == last || *it != *w) return false;
    }
    if (it != last && IsIdentChar(*it)) return false;
    first = it;
    return true;
  }
};
inline kw_parser kw(const char* w) { return kw_parser(w); }

// Punctuation of one or two characters.
struct punct_parser : x3::parser<punct_parser> {
  using attribute_type = x3::unused_type;
  static bool const has_attribute = false;
  const char* text;
  constexpr explicit punct_parser(const char* t) : text(t) {}
  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr&) const {
    x3::skip_over(first, last, ctx);
    It it = first;
    for (const char* t = text; *t; ++t, ++it) {
      if (it == last || *it != *t) return false;
    }
    first = it;
    return true;
  }
};
inline punct_parser P(const char* t) { return punct_parser(t); }

inline bool IsReserved(const char* b, const char* e) {
  static const char* const kReserved[] = {"and", "or", "not", "in", "like", "is", "over", "with", "by"};
  std::size_t n = static_cast<std::size_t>(e - b);
  for (const char* r : kReserved) {
    if (std::strlen(r) == n && std::memcmp(r, b, n) == 0) return true;
  }
  return false;
}

// A name: a letter or `_`, then letters, digits or `_`; not a reserved word.
struct ident_parser : x3::parser<ident_parser> {
  using attribute_type = range;
  static bool const has_attribute = true;
  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr& attr) const {
    x3::skip_over(first, last, ctx);
    It it = first;
    if (it == last || !IsIdentStart(*it)) return false;
    while (it != last && IsIdentChar(*it)) ++it;
    if (IsReserved(first, it)) return false;
    AssignRange(attr, first, it);
    first = it;
    return true;
  }
};

// A number with an optional unit: 42, 1.5, 90%, 30d, 15m, 100 USD.
struct number_parser : x3::parser<number_parser> {
  using attribute_type = range;
  static bool const has_attribute = true;
  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr& attr) const {
    x3::skip_over(first, last, ctx);
    It it = first;
    if (it == last || !IsDigit(*it)) return false;
    while (it != last && IsDigit(*it)) ++it;
    if (it != last && *it == '.' && it + 1 != last && IsDigit(it[1])) {
      ++it;
      while (it != last && IsDigit(*it)) ++it;
    }
    if (it != last && *it == '%') {
      ++it;
    } else if (it != last && std::strchr("smhdw", *it) && *it != '\0' &&
               (it + 1 == last || !IsIdentChar(it[1]))) {
      ++it;
    } else {
      // An optional currency code after a blank: 100 USD.
      It c = it;
      while (c != last && (*c == ' ' || *c == '\t')) ++c;
      if (c != it && last - c >= 3 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' &&
          c[2] >= 'A' && c[2] <= 'Z' && (c + 3 == last || !IsIdentChar(c[3]))) {
        it = c + 3;
      }
    }
    if (it != last && IsIdentChar(*it)) return false;  // 30days, 12abc
    AssignRange(attr, first, it);
    first = it;
    return true;
  }
};

// A double-quoted string; escapes are checked and decoded by the lowering. An unterminated
// string is an expectation failure at its opening quote.
struct string_parser : x3::parser<string_parser> {
  using attribute_type = range;
  static bool const has_attribute = true;
  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr& attr) const {
    x3::skip_over(first, last, ctx);
    It it = first;
    if (it == last || *it != '"') return false;
    ++it;
    while (it != last && *it != '"' && *it != '\n') {
      if (*it == '\\' && it + 1 != last && it[1] != '\n') ++it;
      ++it;
    }
    if (it == last || *it != '"') {
      boost::throw_exception(x3::expectation_failure<It>(
          first, "a closing `\"` on the same line (the text starting here is never closed)"));
    }
    ++it;
    AssignRange(attr, first, it);
    first = it;
    return true;
  }
};

// A time of day: 6:00, 06:00, 21:30.
struct time_parser : x3::parser<time_parser> {
  using attribute_type = range;
  static bool const has_attribute = true;
  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr& attr) const {
    x3::skip_over(first, last, ctx);
    It it = first;
    int digits = 0;
    while (it != last && IsDigit(*it) && digits < 2) ++it, ++digits;
    if (digits == 0 || it == last || *it != ':') return false;
    ++it;
    if (last - it < 2 || !IsDigit(it[0]) || !IsDigit(it[1])) return false;
    it += 2;
    if (it != last && IsIdentChar(*it)) return false;
    AssignRange(attr, first, it);
    first = it;
    return true;
  }
};

// Comparison operators; a lone `=` is accepted here so that the checker can say "use `==`".
struct cmp_op_parser : x3::parser<cmp_op_parser> {
  using attribute_type = range;
  static bool const has_attribute = true;
  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr& attr) const {
    x3::skip_over(first, last, ctx);
    It it = first;
    if (it == last) return false;
    char c = *it;
    char n = it + 1 != last ? it[1] : '\0';
    if ((c == '=' || c == '!' || c == '<' || c == '>') && n == '=') {
      it += 2;
    } else if (c == '<' || c == '>' || c == '=') {
      ++it;
    } else {
      return false;
    }
    AssignRange(attr, first, it);
    first = it;
    return true;
  }
};

ident_parser const ident_p{};
number_parser const number_p{};
string_parser const string_p{};
time_parser const time_p{};
cmp_op_parser const cmp_op_p{};

}  // namespace gavel::dsl::parser

namespace boost::spirit::x3 {
template <>
struct get_info<gavel::dsl::parser::kw_parser> {
  using result_type = std::string;
  std::string operator()(gavel::dsl::parser::kw_parser const& p) const {
    return std::string("`") + p.word + "`";
  }
};
template <>
struct get_info<gavel::dsl::parser::punct_parser> {
  using result_type = std::string;
  std::string operator()(gavel::dsl::parser::punct_parser const& p) const {
    return std::string("`") + p.text + "`";
  }
};
template <>
struct get_info<gavel::dsl::parser::ident_parser> {
  using result_type = std::string;
  std::string operator()(gavel::dsl::parser::ident_parser const&) const { return "a name"; }
};
template <>
struct get_info<gavel::dsl::parser::number_parser> {
  using result_type = std::string;
  std::string operator()(gavel::dsl::parser::number_parser const&) const { return "a number"; }
};
template <>
struct get_info<gavel::dsl::parser::string_parser> {
  using result_type = std::string;
  std::string operator()(gavel::dsl::parser::string_parser const&) const {
    return "a quoted text such as \"...\"";
  }
};
template <>
struct get_info<gavel::dsl::parser::time_parser> {
  using result_type = std::string;
  std::string operator()(gavel::dsl::parser::time_parser const&) const {
    return "a time of day such as `06:00`";
  }
};
}  // namespace boost::spirit::x3

namespace gavel::dsl::parser {

using x3::attr;
using x3::raw;
using x3::repeat;

// The top rule's ID: turns an expectation failure into a FailState and a soft failure.
struct declaration_class {
  template <typename It, typename Exc, typename Ctx>
  x3::error_handler_result on_error(It&, It const&, Exc const& x, Ctx const& ctx) {
    FailState& st = x3::get<fail_state_tag>(ctx).get();
    st.where = x.where();
    st.which = x.which();
    return x3::error_handler_result::fail;
  }
};

// ---------------------------------------------------------------- rule declarations

#define GAVEL_RULE(name, attr_t, text) x3::rule<class name##_class, attr_t> const name = text

// leaves
GAVEL_RULE(name_r, range, "a name");
GAVEL_RULE(string_r, A::token, "a quoted text such as \"...\"");
GAVEL_RULE(number_r, A::token, "a number");
GAVEL_RULE(duration_r, A::token, "a duration such as `30d`, `12h` or `15m`");
GAVEL_RULE(percent_r, A::token, "a percentage such as `90%`");
GAVEL_RULE(ident_tok_r, A::token, "a name");
GAVEL_RULE(path_r, A::qpath, "a name such as `adset` or `lead.stage`");
GAVEL_RULE(path_tok_r, A::token, "a name such as `channel` or `campaign.channel`");
GAVEL_RULE(window_r, A::token, "a window: `last 3d`, `lifetime`, `yesterday` or `today`");
GAVEL_RULE(schedule_r, range,
           "a schedule such as `15m`, `day at 06:00` or `monday, thursday at 09:00`");
GAVEL_RULE(decay_spec_r, range,
           "a decay such as `20 every 30d without activity` or `half-life 14d`");
GAVEL_RULE(zone_r, range, "a time zone: a quoted IANA name or a field such as `lead.timezone`");
GAVEL_RULE(type_r, A::type_ref, "a field type such as `text`, `count` or `money(USD)`");
GAVEL_RULE(field_r, A::field, "a field such as `page: text`");

// expressions
GAVEL_RULE(expr_r, A::expr, "an expression");
GAVEL_RULE(and_r, A::expr, "an expression");
GAVEL_RULE(not_r, A::operand, "an expression");
GAVEL_RULE(not_op_r, A::unary, "an expression");
GAVEL_RULE(cmp_r, A::expr, "an expression");
GAVEL_RULE(cmp_tail_r, A::operation, "a comparison");
GAVEL_RULE(cmp_simple_r, A::operation, "a comparison");
GAVEL_RULE(cmp_in_r, A::operation, "a comparison");
GAVEL_RULE(cmp_like_r, A::operation, "a comparison");
GAVEL_RULE(cmp_is_r, A::operation, "a comparison");
GAVEL_RULE(or_op_r, A::operation, "an expression");
GAVEL_RULE(and_op_r, A::operation, "an expression");
GAVEL_RULE(add_op_r, A::operation, "an expression");
GAVEL_RULE(mul_op_r, A::operation, "an expression");
GAVEL_RULE(add_r, A::expr, "an expression");
GAVEL_RULE(mul_r, A::expr, "an expression");
GAVEL_RULE(unary_r, A::operand, "a value");
GAVEL_RULE(neg_r, A::unary, "a value");
GAVEL_RULE(postfix_r, A::expr, "a value");
GAVEL_RULE(over_r, A::operation, "a window");
GAVEL_RULE(primary_r, A::operand, "a value (a number, a quoted text, a name or a list)");
GAVEL_RULE(paren_r, A::expr, "an expression in parentheses");
GAVEL_RULE(call_r, A::call, "a function call");
GAVEL_RULE(list_r, A::list_lit, "a list such as `[\"VP\", \"Director\"]`");
GAVEL_RULE(list_operand_r, A::operand, "a list such as `[\"VP\", \"Director\"]`");
GAVEL_RULE(string_operand_r, A::operand, "a quoted pattern such as \"/pricing*\"");
GAVEL_RULE(baseline_r, A::baseline_test,
           "`above baseline(...)`, `below baseline(...)` or `outside baseline(...)`");
GAVEL_RULE(season_r, range, "`same hour of week`, `same hour of day` or `same day of week`");

// clauses
GAVEL_RULE(owner_c, A::kw_value, "owner");
GAVEL_RULE(description_c, A::kw_value, "description");
GAVEL_RULE(flag_c, A::kw_value, "flag");
GAVEL_RULE(mode_c, A::kw_value, "mode");
GAVEL_RULE(cooldown_c, A::kw_value, "cooldown");
GAVEL_RULE(tags_c, A::kw_list, "tags");
GAVEL_RULE(tag_list_r, std::vector<A::token>, "a quoted tag such as \"paid\", or a list of them");
GAVEL_RULE(crossing_c, A::crossing_clause, "a score crossing");
GAVEL_RULE(cross_dir_r, range, "`above` or `below`");
GAVEL_RULE(event_c, A::event_clause, "an event trigger");
GAVEL_RULE(every_c, A::every_clause, "a schedule");
GAVEL_RULE(scope_c, A::scope_clause, "`for each` or `across`");
GAVEL_RULE(let_c, A::let_clause, "let");
GAVEL_RULE(when_c, A::when_clause, "when");
GAVEL_RULE(then_c, A::then_clause, "then");
GAVEL_RULE(limit_c, A::rate_clause, "limit");
GAVEL_RULE(approval_c, A::approval_clause, "require approval");
GAVEL_RULE(rule_clause_r, A::rule_clause, "a rule clause");
GAVEL_RULE(rule_close_r, range,
           "a rule clause (owner, description, tags, on, every, for each, across, let, when, "
           "then, limit, cooldown, mode, flag, require approval) or `}`");

// actions
GAVEL_RULE(action_r, A::action,
           "an action (pause, enable, set, reallocate, webhook, notify, email, message)");
GAVEL_RULE(target_a, A::target_action, "pause or enable");
GAVEL_RULE(budget_a, A::assign_action, "set budget");
GAVEL_RULE(setfield_a, A::assign_action, "set");
GAVEL_RULE(realloc_a, A::reallocate_action, "reallocate");
GAVEL_RULE(realloc_opt_r, A::realloc_option, "a reallocation option");
GAVEL_RULE(webhook_a, A::webhook_action, "webhook");
GAVEL_RULE(named_arg_r, A::named_arg, "a field such as `lead: lead.lead_id`");
GAVEL_RULE(notify_a, A::notify_action, "notify");
GAVEL_RULE(email_a, A::message_action, "email");
GAVEL_RULE(message_a, A::message_action, "message");

// scores
GAVEL_RULE(score_on_c, A::score_on, "an event rule");
GAVEL_RULE(score_when_c, A::score_when, "a condition rule");
GAVEL_RULE(verb_r, range, "`add` or `subtract`");
GAVEL_RULE(decay_c, A::decay_clause, "decay");
GAVEL_RULE(bound_c, A::kw_value, "floor or cap");
GAVEL_RULE(signed_number_r, A::token, "a number such as `0` or `-10`");
GAVEL_RULE(score_clause_r, A::score_clause, "a score clause");
GAVEL_RULE(score_close_r, range,
           "a score clause (on EVENT ... add N, when ... add N, decay, floor, cap) or `}`");

// tables
GAVEL_RULE(table_kw_c, A::kw_value, "a table clause");
GAVEL_RULE(fields_c, A::field_list, "dims or facts");
GAVEL_RULE(table_clause_r, A::table_clause, "a table clause");
GAVEL_RULE(table_close_r, range,
           "a table clause (key, time, grain, dims, facts, timezone, freshness) or `}`");
GAVEL_RULE(fields_close_r, range, "a field such as `page: text` or `}`");

// journeys
GAVEL_RULE(enter_c, A::enter_clause, "enter");
GAVEL_RULE(exit_c, A::cond_clause, "exit");
GAVEL_RULE(cap_c, A::rate_clause, "cap");
GAVEL_RULE(quiet_c, A::quiet_clause, "quiet hours");
GAVEL_RULE(item_r, A::journey_item, "a journey step (step, wait, goto, end)");
GAVEL_RULE(step_i, A::step_item, "step");
GAVEL_RULE(wait_for_i, A::wait_item, "wait up to");
GAVEL_RULE(wait_plain_i, A::wait_item, "wait");
GAVEL_RULE(goto_i, A::jump_item, "goto");
GAVEL_RULE(end_i, A::jump_item, "end");
GAVEL_RULE(branch_r, A::branch, "a branch such as `on email_open:` or `on timeout:`");
GAVEL_RULE(branch_body_r, std::vector<A::journey_item>,
           "a journey step (step, wait, goto, end) or `{`");
x3::rule<class block_close_r_class> const block_close_r =
    "a journey step (step, wait, goto, end) or `}`";
GAVEL_RULE(journey_clause_r, A::journey_clause, "a journey clause");
GAVEL_RULE(journey_close_r, range,
           "a journey clause (enter, exit, cap, quiet hours, step, wait, goto, end, owner) or `}`");

// alerts
GAVEL_RULE(for_c, A::kw_value, "for");
GAVEL_RULE(severity_c, A::kw_value, "severity");
GAVEL_RULE(repeat_c, A::kw_value, "repeat");
GAVEL_RULE(resolve_c, A::kw_value, "resolve");
GAVEL_RULE(group_c, A::kw_value, "group by");
GAVEL_RULE(alert_clause_r, A::alert_clause, "an alert clause");
GAVEL_RULE(alert_close_r, range,
           "an alert clause (every, for each, let, when, for, severity, notify, repeat, resolve, "
           "group by, owner) or `}`");

// declarations
GAVEL_RULE(import_d, A::kw_value, "import");
GAVEL_RULE(table_d, A::table_decl, "table");
GAVEL_RULE(event_d, A::event_decl, "event");
GAVEL_RULE(entity_d, A::entity_decl, "entity");
GAVEL_RULE(score_d, A::score_decl, "score");
GAVEL_RULE(rule_d, A::rule_decl, "rule");
GAVEL_RULE(alert_d, A::alert_decl, "alert");
GAVEL_RULE(journey_d, A::journey_decl, "journey");
x3::rule<declaration_class, A::declaration> const declaration_r =
    "a declaration (import, table, event, entity, score, rule, journey or alert)";

#undef GAVEL_RULE

// ---------------------------------------------------------------- leaves

auto const name_r_def = ident_p;
auto const string_r_def = attr('s') >> string_p;
auto const number_r_def = attr('n') >> number_p;
auto const duration_r_def = attr('n') >> number_p;
auto const percent_r_def = attr('n') >> number_p;
auto const ident_tok_r_def = attr('i') >> ident_p;
auto const path_r_def = ident_p % P(".");
auto const path_tok_r_def = attr('p') >> raw[ident_p % P(".")];
auto const window_r_def =
    attr('w') >> raw[(kw("last") > duration_r) | kw("lifetime") | kw("yesterday") | kw("today")];
auto const schedule_r_def =
    raw[number_p | ((ident_p % P(",")) > kw("at") > time_p > -(kw("in") > string_p))];
auto const decay_spec_r_def =
    raw[(number_p > kw("every") > duration_r > kw("without") > kw("activity")) |
        (kw("half-life") > duration_r)];
auto const zone_r_def = raw[string_p | (ident_p % P("."))];
auto const type_r_def = ident_p > -(P("(") > ident_p > P(")"));
auto const field_r_def = ident_p > P(":") > type_r > -(P("=") > expr_r);

// ---------------------------------------------------------------- expressions

auto const expr_r_def = and_r >> *or_op_r;
auto const or_op_r_def = raw[kw("or")] > and_r;
auto const and_r_def = not_r >> *and_op_r;
auto const and_op_r_def = raw[kw("and")] > not_r;
auto const not_r_def = not_op_r | cmp_r;
auto const not_op_r_def = raw[kw("not")] >> not_r;
auto const cmp_r_def = add_r >> repeat(0, 1)[cmp_tail_r];
auto const cmp_tail_r_def = cmp_simple_r | cmp_in_r | cmp_like_r | cmp_is_r;
auto const cmp_simple_r_def = raw[cmp_op_p] > add_r;
auto const cmp_in_r_def = raw[-kw("not") >> kw("in")] > list_operand_r;
auto const cmp_like_r_def = raw[-kw("not") >> kw("like")] > string_operand_r;
auto const cmp_is_r_def = raw[kw("is")] > baseline_r;
auto const add_r_def = mul_r >> *add_op_r;
auto const add_op_r_def = raw[P("+") | P("-")] > mul_r;
auto const mul_r_def = unary_r >> *mul_op_r;
auto const mul_op_r_def = raw[P("*") | P("/")] > unary_r;
auto const unary_r_def = neg_r | postfix_r;
auto const neg_r_def = raw[P("-")] > unary_r;
auto const postfix_r_def = primary_r >> repeat(0, 1)[over_r];
auto const over_r_def = raw[kw("over")] > window_r;
auto const primary_r_def = number_r | string_r | list_r | paren_r | call_r | path_r;
auto const paren_r_def = P("(") > expr_r > P(")");
auto const call_r_def = ident_p >> P("(") > -(expr_r % P(",")) > raw[P(")")];
auto const list_r_def = raw[P("[")] > -(expr_r % P(",")) > raw[P("]")];
auto const list_operand_r_def = list_r;
auto const string_operand_r_def = string_r;
auto const baseline_r_def = raw[kw("above") | kw("below") | kw("outside")] > kw("baseline") >
                            P("(") > path_r > -(kw("per") > path_r) > P(",") > duration_r >
                            -(P(",") > season_r) > P(")") >
                            raw[kw("by") | (kw("with") > kw("confidence"))] > number_r >
                            -kw("sigma");
auto const season_r_def =
    raw[kw("same") > (kw("hour") | kw("day")) > kw("of") > (kw("week") | kw("day"))];

// ---------------------------------------------------------------- rule clauses

auto const owner_c_def = raw[kw("owner")] > string_r;
auto const description_c_def = raw[kw("description")] > string_r;
auto const flag_c_def = raw[kw("flag")] > string_r;
auto const mode_c_def = raw[kw("mode")] > ident_tok_r;
auto const cooldown_c_def = raw[kw("cooldown")] > duration_r;
auto const tags_c_def = raw[kw("tags")] > tag_list_r;
auto const tag_list_r_def = (P("[") > (string_r % P(",")) > P("]")) | (string_r % P(","));
auto const crossing_c_def =
    raw[kw("on")] >> name_r >> kw("crosses") > cross_dir_r > expr_r;
auto const cross_dir_r_def = raw[kw("above") | kw("below")];
auto const event_c_def = raw[kw("on")] > name_r > -(kw("where") > expr_r);
auto const every_c_def = raw[kw("every")] > schedule_r;
auto const scope_c_def = raw[(kw("for") >> kw("each")) | kw("across")] > name_r > kw("in") >
                         name_r > -(kw("over") > window_r) > -(kw("where") > expr_r);
auto const let_c_def = raw[kw("let")] > name_r > P("=") > expr_r;
auto const when_c_def =
    raw[kw("when")] > expr_r > -(kw("with") > kw("confidence") > percent_r);
auto const then_c_def = raw[kw("then")] > +action_r;
auto const limit_c_def = raw[kw("limit")] > number_r > kw("per") > duration_r;
auto const approval_c_def =
    raw[kw("require") > kw("approval")] > -(kw("expires") > kw("after") > duration_r);
auto const rule_clause_r_def = owner_c | description_c | tags_c | flag_c | mode_c | cooldown_c |
                               crossing_c | event_c | every_c | scope_c | let_c | when_c |
                               then_c | limit_c | approval_c;
auto const rule_close_r_def = raw[P("}")];

// ---------------------------------------------------------------- actions

auto const action_r_def =
    target_a | budget_a | setfield_a | realloc_a | webhook_a | notify_a | email_a | message_a;
auto const target_a_def = raw[kw("pause") | kw("enable")] > path_r;
auto const budget_a_def = raw[kw("set") >> kw("budget") >> kw("of")] > path_r > kw("to") > expr_r;
auto const setfield_a_def = raw[kw("set")] > path_r > P("=") > expr_r;
auto const realloc_a_def =
    raw[kw("reallocate") > kw("budget")] > kw("toward") > expr_r > *realloc_opt_r;
auto const realloc_opt_r_def =
    (raw[kw("keep") > kw("total")] >> attr(std::optional<A::expr>()) >>
     attr(std::optional<range>())) |
    (raw[kw("step") > kw("at") > kw("most")] > expr_r >> attr(std::optional<range>())) |
    (raw[kw("min") | kw("max")] > expr_r > -(kw("per") > name_r));
auto const webhook_a_def = raw[kw("webhook")] > string_r >
                           -(kw("with") > P("{") > -(named_arg_r % P(",")) > P("}"));
auto const named_arg_r_def = name_r > P(":") > expr_r;
auto const notify_a_def =
    raw[kw("notify") > kw("slack")] > string_r > -string_r > -(kw("runbook") > string_r);
auto const email_a_def = raw[kw("email")] > string_r >> attr(std::optional<range>());
auto const message_a_def = raw[kw("message")] > string_r > kw("via") > name_r;

// ---------------------------------------------------------------- scores

auto const score_on_c_def = raw[kw("on")] > name_r > -(kw("where") > expr_r) > verb_r >
                            number_r > raw[-kw("once")];
auto const score_when_c_def =
    raw[kw("when")] > expr_r > verb_r > number_r > raw[-kw("once")];
auto const verb_r_def = raw[kw("add") | kw("subtract")];
auto const decay_c_def = raw[kw("decay")] > decay_spec_r;
auto const bound_c_def = raw[kw("floor") | kw("cap")] > signed_number_r;
auto const signed_number_r_def = attr('n') >> raw[x3::lexeme[-x3::lit('-') >> number_p]];
auto const score_clause_r_def = score_on_c | score_when_c | decay_c | bound_c;
auto const score_close_r_def = raw[P("}")];

// ---------------------------------------------------------------- tables, events, entities

auto const table_kw_c_def = (raw[kw("key") | kw("time") | kw("grain")] > ident_tok_r) |
                            (raw[kw("timezone")] > string_r) |
                            (raw[kw("freshness")] > duration_r);
auto const fields_c_def = raw[kw("dims") | kw("facts")] > (field_r % P(","));
auto const table_clause_r_def = table_kw_c | fields_c;
auto const table_close_r_def = raw[P("}")];
auto const fields_close_r_def = raw[P("}")];

// ---------------------------------------------------------------- journeys

auto const enter_c_def = raw[kw("enter")] > kw("on") > name_r > -(kw("when") > expr_r);
auto const exit_c_def = raw[kw("exit")] > kw("when") > expr_r;
auto const cap_c_def = raw[kw("cap")] > number_r > kw("messages") > kw("per") > duration_r;
auto const quiet_c_def =
    raw[kw("quiet") > kw("hours")] > time_p > P("-") > time_p > kw("in") > zone_r;
auto const item_r_def = step_i | wait_for_i | wait_plain_i | goto_i | end_i;
auto const step_i_def = raw[kw("step")] > name_r > P(":") > action_r;
auto const wait_for_i_def = raw[kw("wait") >> kw("up")] > kw("to") > duration_r > kw("for") >
                            (name_r % (P(",") | kw("or"))) > *branch_r;
auto const wait_plain_i_def = raw[kw("wait")] > duration_r >> attr(std::vector<range>()) >>
                              attr(std::vector<A::branch>());
auto const goto_i_def = raw[kw("goto")] > name_r;
auto const end_i_def = raw[kw("end")] >> attr(std::optional<range>());
auto const branch_r_def = raw[kw("on")] > name_r > P(":") > branch_body_r;
auto const branch_body_r_def = (P("{") > *item_r > block_close_r) | repeat(1)[item_r];
auto const block_close_r_def = P("}");
auto const journey_clause_r_def = owner_c | description_c | tags_c | flag_c | mode_c | enter_c |
                                  exit_c | cap_c | quiet_c | item_r;
auto const journey_close_r_def = raw[P("}")];

// ---------------------------------------------------------------- alerts

auto const for_c_def = raw[kw("for")] > duration_r;
auto const severity_c_def = raw[kw("severity")] > ident_tok_r;
auto const repeat_c_def =
    raw[kw("repeat")] > kw("every") > duration_r > -(kw("while") > kw("firing"));
auto const resolve_c_def = raw[kw("resolve")] > ident_tok_r;
auto const group_c_def = raw[kw("group") > kw("by")] > path_tok_r;
auto const alert_clause_r_def = owner_c | description_c | tags_c | flag_c | mode_c | every_c |
                                scope_c | for_c | let_c | when_c | severity_c | notify_a |
                                repeat_c | resolve_c | group_c;
auto const alert_close_r_def = raw[P("}")];

// ---------------------------------------------------------------- declarations

auto const import_d_def = raw[kw("import")] > string_r;
auto const table_d_def = raw[kw("table")] > name_r > kw("from") > -kw("warehouse") > string_r >
                         P("{") > *table_clause_r > table_close_r;
auto const event_d_def = raw[kw("event")] > name_r > -(kw("updates") > name_r) > P("{") >
                         *(field_r >> -P(",")) > fields_close_r;
auto const entity_d_def = raw[kw("entity")] > name_r > kw("keyed") > kw("by") > name_r >
                          P("{") > *(field_r >> -P(",")) > fields_close_r;
auto const score_d_def = raw[kw("score")] > name_r > kw("for") > name_r > P("{") >
                         *score_clause_r > score_close_r;
auto const rule_d_def = raw[kw("rule")] > name_r > P("{") > *rule_clause_r > rule_close_r;
auto const alert_d_def = raw[kw("alert")] > name_r > P("{") > *alert_clause_r > alert_close_r;
auto const journey_d_def = raw[kw("journey")] > name_r > kw("for") > name_r > P("{") >
                           *journey_clause_r > journey_close_r;
auto const declaration_r_def =
    import_d | table_d | event_d | entity_d | score_d | rule_d | alert_d | journey_d;

BOOST_SPIRIT_DEFINE(name_r, string_r, number_r, duration_r, percent_r, ident_tok_r, path_r,
                    path_tok_r, window_r, schedule_r, decay_spec_r, zone_r, type_r, field_r)
BOOST_SPIRIT_DEFINE(or_op_r, and_op_r, add_op_r, mul_op_r)
BOOST_SPIRIT_DEFINE(expr_r, and_r, not_r, not_op_r, cmp_r, cmp_tail_r, cmp_simple_r, cmp_in_r,
                    cmp_like_r, cmp_is_r, add_r, mul_r, unary_r, neg_r, postfix_r, over_r,
                    primary_r, paren_r, call_r, list_r, list_operand_r, string_operand_r,
                    baseline_r, season_r)
BOOST_SPIRIT_DEFINE(owner_c, description_c, flag_c, mode_c, cooldown_c, tags_c, crossing_c,
                    cross_dir_r, event_c, every_c, scope_c, let_c, when_c, then_c, limit_c,
                    approval_c, rule_clause_r, rule_close_r)
BOOST_SPIRIT_DEFINE(action_r, target_a, budget_a, setfield_a, realloc_a, realloc_opt_r,
                    webhook_a, named_arg_r, notify_a, email_a, message_a)
BOOST_SPIRIT_DEFINE(tag_list_r, signed_number_r)
BOOST_SPIRIT_DEFINE(score_on_c, score_when_c, verb_r, decay_c, bound_c, score_clause_r,
                    score_close_r, table_kw_c, fields_c, table_clause_r, table_close_r,
                    fields_close_r)
BOOST_SPIRIT_DEFINE(enter_c, exit_c, cap_c, quiet_c, item_r, step_i, wait_for_i, wait_plain_i,
                    goto_i, end_i, branch_r, branch_body_r, block_close_r, journey_clause_r,
                    journey_close_r)
BOOST_SPIRIT_DEFINE(for_c, severity_c, repeat_c, resolve_c, group_c, alert_clause_r,
                    alert_close_r, import_d, table_d, event_d, entity_d, score_d, rule_d,
                    alert_d, journey_d, declaration_r)

}  // namespace gavel::dsl::parser
