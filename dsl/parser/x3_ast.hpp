// The parser's own syntax tree (Spirit X3 attributes). Internal to dsl/parser/.
//
// Leaves are captured as raw source ranges (`range`) so that every piece of text keeps its
// position; lower.cpp turns this tree into the std-only dsl::File of dsl/ast.hpp and does
// the small amount of decoding (numbers, string escapes, windows, schedules) that is easier
// in plain C++ than in grammar attributes. Nothing outside dsl/parser/ includes this file.
#pragma once

#include <boost/range/iterator_range.hpp>
#include <boost/spirit/home/x3/support/ast/variant.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gavel::dsl::x3ast {

namespace x3 = boost::spirit::x3;
using range = boost::iterator_range<const char*>;

// A leaf: kind 'n' number (with unit suffix or currency), 's' string, 'i' identifier,
// 'w' window phrase, 'p' qualified path.
struct token {
  char kind = 0;
  range text;
};

using qpath = std::vector<range>;

struct expr;
struct call;
struct list_lit;
struct unary;
struct baseline_test;

struct operand : x3::variant<token, qpath, x3::forward_ast<call>, x3::forward_ast<list_lit>,
                             x3::forward_ast<unary>, x3::forward_ast<expr>,
                             x3::forward_ast<baseline_test>> {
  using base_type::base_type;
  using base_type::operator=;
};

struct operation {
  range op;
  operand rhs;
};

struct expr {
  operand first;
  std::vector<operation> rest;
};

struct call {
  range name;
  std::vector<expr> args;
  range close;
};

struct list_lit {
  range open;
  std::vector<expr> items;
  range close;
};

struct unary {
  range op;
  operand rhs;
};

struct baseline_test {
  range direction;
  qpath field;
  std::optional<qpath> per;
  token history;
  std::optional<range> season;
  range test;
  token amount;
};

// ---- clauses shared by several blocks

struct kw_value {   // owner "x", mode live, for 30m, severity page, key adset_id, ...
  range kw;
  token value;
};

struct kw_list {    // tags "a", "b"
  range kw;
  std::vector<token> items;
};

struct type_ref {
  range name;
  std::optional<range> currency;
};

struct field {
  range name;
  type_ref type;
  std::optional<expr> default_value;
};

struct field_list {  // dims a: text, b: count
  range kw;
  std::vector<field> fields;
};

struct event_clause {    // on page_view where page == "/"
  range kw;
  range event;
  std::optional<expr> where;
};

struct crossing_clause { // on lead_score crosses above 50
  range kw;
  range score;
  range direction;
  expr threshold;
};

struct every_clause {    // every 15m | every day at 06:00 in "Europe/Berlin"
  range kw;
  range spec;
};

struct scope_clause {    // for each adset in adset_daily over last 3d where ...
  range kw;
  range var;
  range table;
  std::optional<token> window;
  std::optional<expr> where;
};

struct let_clause {
  range kw;
  range name;
  expr value;
};

struct when_clause {
  range kw;
  expr condition;
  std::optional<token> confidence;
};

struct cond_clause {     // exit when ...
  range kw;
  expr condition;
};

struct rate_clause {     // limit 10 per 1h | cap 3 messages per 7d
  range kw;
  token count;
  token per;
};

struct approval_clause { // require approval [expires after 24h]
  range kw;
  std::optional<token> expires;
};

// ---- actions

struct target_action {   // pause adset | enable adset
  range kw;
  qpath target;
};

struct assign_action {   // set budget of adset to 500 USD | set lead.stage = "MQL"
  range kw;
  qpath target;
  expr value;
};

struct realloc_option {  // keep total | step at most 20% | min 100 USD per channel
  range kw;
  std::optional<expr> amount;
  std::optional<range> per;
};

struct reallocate_action {
  range kw;
  expr toward;
  std::vector<realloc_option> options;
};

struct named_arg {
  range name;
  expr value;
};

struct webhook_action {
  range kw;
  token name;
  std::vector<named_arg> with;
};

struct notify_action {   // notify slack "#chan" ["text"] [runbook "url"]
  range kw;
  token channel;
  std::optional<token> text;
  std::optional<token> runbook;
};

struct message_action {  // email "tmpl" | message "tmpl" via whatsapp
  range kw;
  token name;
  std::optional<range> via;
};

struct action : x3::variant<target_action, assign_action, reallocate_action, webhook_action,
                            notify_action, message_action> {
  using base_type::base_type;
  using base_type::operator=;
};

struct then_clause {
  range kw;
  std::vector<action> actions;
};

// ---- scores

struct score_on {
  range kw;
  range event;
  std::optional<expr> where;
  range verb;
  token amount;
  range once;  // empty when absent
};

struct score_when {
  range kw;
  expr condition;
  range verb;
  token amount;
  range once;  // empty when absent
};

struct decay_clause {
  range kw;
  range spec;
};

// ---- journeys

struct journey_item;

struct branch {
  range kw;
  range event;  // an event name or `timeout`
  std::vector<journey_item> items;  // complete before use (C++17 vector)
};

struct step_item {
  range kw;
  range name;
  action act;
};

struct wait_item {
  range kw;
  token duration;
  std::vector<range> events;
  std::vector<branch> branches;
};

struct jump_item {  // goto NAME | end
  range kw;
  std::optional<range> target;
};

struct journey_item : x3::variant<step_item, wait_item, jump_item> {
  using base_type::base_type;
  using base_type::operator=;
};

struct enter_clause {
  range kw;
  range event;
  std::optional<expr> condition;
};

struct quiet_clause {
  range kw;
  range from;
  range to;
  range zone;
};

// ---- declarations

struct rule_clause : x3::variant<kw_value, kw_list, crossing_clause, event_clause, every_clause,
                                 scope_clause, let_clause, when_clause, then_clause, rate_clause,
                                 approval_clause> {
  using base_type::base_type;
  using base_type::operator=;
};

struct alert_clause : x3::variant<kw_value, kw_list, every_clause, scope_clause, let_clause,
                                  when_clause, notify_action> {
  using base_type::base_type;
  using base_type::operator=;
};

struct score_clause : x3::variant<score_on, score_when, decay_clause, kw_value> {
  using base_type::base_type;
  using base_type::operator=;
};

struct table_clause : x3::variant<kw_value, field_list> {
  using base_type::base_type;
  using base_type::operator=;
};

struct journey_clause : x3::variant<kw_value, kw_list, enter_clause, cond_clause, rate_clause,
                                    quiet_clause, journey_item> {
  using base_type::base_type;
  using base_type::operator=;
};

struct table_decl {
  range kw;
  range name;
  token source;
  std::vector<table_clause> clauses;
  range close;
};

struct event_decl {
  range kw;
  range name;
  std::optional<range> updates;
  std::vector<field> fields;
  range close;
};

struct entity_decl {
  range kw;
  range name;
  range key;
  std::vector<field> fields;
  range close;
};

struct score_decl {
  range kw;
  range name;
  range entity;
  std::vector<score_clause> clauses;
  range close;
};

struct rule_decl {
  range kw;
  range name;
  std::vector<rule_clause> clauses;
  range close;
};

struct alert_decl {
  range kw;
  range name;
  std::vector<alert_clause> clauses;
  range close;
};

struct journey_decl {
  range kw;
  range name;
  range entity;
  std::vector<journey_clause> clauses;
  range close;
};

struct declaration : x3::variant<kw_value, table_decl, event_decl, entity_decl, score_decl,
                                 rule_decl, alert_decl, journey_decl> {
  using base_type::base_type;
  using base_type::operator=;
};

}  // namespace gavel::dsl::x3ast
