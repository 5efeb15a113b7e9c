// The syntax tree of a gavel rule file, as the rest of the compiler sees it.
//
// This tree is plain C++ (std only): the Spirit X3 parser builds its own tree inside
// dsl/parser/ and lowers it to this one right after parsing, so nothing outside dsl/parser
// ever includes Boost.Spirit or Fusion. Every node carries a Span (file id + byte offsets)
// so that the checker can put a caret under the exact text it complains about.
//
// Ownership: a File owns its declarations; expressions own their children through
// unique_ptr. The tree is built once and then only read (by the checker and the compiler).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gavel::dsl {

// A byte range [begin, end) inside one source file.
struct Span {
  std::uint32_t file = 0;
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
};

// ---------------------------------------------------------------- types

enum class BaseType : std::uint8_t {
  kError,      // the type of an expression that already produced a diagnostic
  kText,
  kBool,
  kNumber,     // a dimensionless number (a literal such as 1.5, a score)
  kCount,      // a whole number of things: clicks, conversions
  kMoney,      // an amount in one currency (TypeRef::currency)
  kPercent,    // 0-100 scale in source (90%), stored as a fraction
  kRatio,      // a fraction: clicks / impressions
  kDuration,   // seconds
  kTimestamp,
  kList,       // a literal list, only on the right of `in`
};

struct TypeRef {
  BaseType base = BaseType::kError;
  std::string currency;  // kMoney only: ISO 4217 code such as "USD"
  Span span;
};

// ---------------------------------------------------------------- expressions

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : std::uint8_t {
  kNumber,    // number; unit in `unit` ("" plain, "%" percent, currency code for money)
  kDuration,  // number = seconds
  kString,
  kBool,
  kList,      // args = elements
  kPath,      // path = [name] or [entity, field]
  kCall,      // text = function name (sum, avg, min, max, count, abs, round); args
  kUnary,     // op = kNeg or kNot; args[0]
  kBinary,    // op; args[0], args[1]
  kIn,        // args[0] in args[1] (a kList); negated = `not in`
  kLike,      // args[0] like text (glob with `*` and `?`); negated = `not like`
  kWindowed,  // args[0] over window: `spend over last 1h`
  kBaseline,  // args[0] is above|below|outside baseline(...) by N sigma | with confidence P%
};

enum class Op : std::uint8_t {
  kNone, kAdd, kSub, kMul, kDiv, kNeg, kNot, kAnd, kOr,
  kEq, kNe, kLt, kLe, kGt, kGe,
};

enum class WindowKind : std::uint8_t { kNone, kLast, kLifetime, kYesterday, kToday };

struct Window {
  WindowKind kind = WindowKind::kNone;
  std::int64_t seconds = 0;  // kLast only
  Span span;
};

enum class Seasonality : std::uint8_t { kNone, kHourOfDay, kHourOfWeek, kDayOfWeek };
enum class BandDirection : std::uint8_t { kAbove, kBelow, kOutside };

// The anomaly test of an alert: `X is above baseline(field [per denom], 28d [, same hour of
// week]) by 3 sigma` or `... with confidence 99%` (the count-aware form).
struct BaselineSpec {
  BandDirection direction = BandDirection::kAbove;
  std::vector<std::string> field;   // the fact the baseline is computed from
  Span field_span;
  std::vector<std::string> per;     // optional denominator fact (a rate baseline)
  Span per_span;
  std::int64_t history_seconds = 0;
  Span history_span;
  Seasonality season = Seasonality::kNone;
  double sigma = 0;                 // > 0 for `by N sigma`
  double confidence = 0;            // > 0 (fraction) for `with confidence P%`
  Span test_span;
};

struct Expr {
  ExprKind kind = ExprKind::kNumber;
  Span span;
  Op op = Op::kNone;
  bool negated = false;
  double number = 0;
  std::string unit;                 // kNumber: "", "%" or a currency code
  std::string text;                 // kString value, kCall name, kLike pattern
  std::vector<std::string> path;    // kPath
  std::vector<Span> path_spans;     // one span per path element
  std::vector<ExprPtr> args;
  Window window;                    // kWindowed
  std::unique_ptr<BaselineSpec> baseline;  // kBaseline
};

// Deep copy (the tree is move-only because of unique_ptr).
ExprPtr CloneExpr(const Expr& e);

// ---------------------------------------------------------------- declarations

struct Ident {
  std::string name;
  Span span;
};

struct FieldDecl {
  Ident name;
  TypeRef type;
  ExprPtr default_value;  // entity fields only
  Span span;
};

enum class Grain : std::uint8_t { kNone, kHour, kDay };

struct ImportDecl {
  std::string path;
  Span span;
};

struct TableDecl {
  Ident name;
  std::string source;     // the warehouse relation, e.g. "adset_daily"
  Span source_span;
  Ident key;
  Ident time_column;
  Grain grain = Grain::kNone;  // explicit `grain hour|day`, else from the column name
  Span grain_span;
  std::vector<FieldDecl> dims;
  std::vector<FieldDecl> facts;
  std::string timezone = "UTC";
  Span timezone_span;
  std::int64_t freshness_seconds = 0;  // 0: not declared (the engine's default applies)
  Span span;
};

struct EventDecl {
  Ident name;
  std::optional<Ident> updates;  // `event lead_profile updates lead { ... }`
  std::vector<FieldDecl> fields;
  Span span;
};

struct EntityDecl {
  Ident name;
  Ident key;
  std::vector<FieldDecl> fields;
  Span span;
};

enum class ScoreRuleKind : std::uint8_t { kOnEvent, kWhen };

struct ScoreRule {
  ScoreRuleKind kind = ScoreRuleKind::kOnEvent;
  Ident event;          // kOnEvent
  ExprPtr condition;    // `where` (kOnEvent, optional) or `when` (kWhen, required)
  double amount = 0;    // positive for add, negative for subtract
  Span amount_span;
  bool once = false;
  Span span;
};

enum class DecayKind : std::uint8_t { kNone, kInactivity, kHalfLife };

struct ScoreDecl {
  Ident name;
  Ident entity;
  std::vector<ScoreRule> rules;
  DecayKind decay = DecayKind::kNone;
  double decay_amount = 0;            // kInactivity: points removed per step
  std::int64_t decay_seconds = 0;     // kInactivity: step length; kHalfLife: half-life
  Span decay_span;
  std::optional<double> floor;
  std::optional<double> cap;
  Span span;
};

enum class Mode : std::uint8_t { kDryRun, kLive, kShadow };

struct RuleOptions {
  std::optional<std::string> owner;
  Span owner_span;
  std::string description;
  std::vector<std::string> tags;
  std::optional<Mode> mode;
  Span mode_span;
  std::string flag;
  Span flag_span;
  int limit_count = 0;                 // 0: no limit
  std::int64_t limit_seconds = 0;
  Span limit_span;
  bool require_approval = false;
  std::int64_t approval_expires_seconds = 0;
  Span approval_span;
  std::int64_t cooldown_seconds = 0;
  Span cooldown_span;
};

enum class TriggerKind : std::uint8_t { kNone, kEvent, kCrossing, kSchedule };
enum class CrossDirection : std::uint8_t { kAbove, kBelow };

struct Schedule {
  std::int64_t every_seconds = 0;  // `every 15m`; 0 for calendar schedules
  int at_minute_of_day = -1;       // `at 06:00` -> 360
  std::uint8_t weekdays = 0;       // bit 0 = Monday ... bit 6 = Sunday; 0x7f = every day
  std::string timezone = "UTC";
  Span timezone_span;
  Span span;
};

struct Trigger {
  TriggerKind kind = TriggerKind::kNone;
  Ident subject;             // event name or score name
  ExprPtr where;             // kEvent: optional filter
  CrossDirection direction = CrossDirection::kAbove;
  ExprPtr threshold;         // kCrossing
  Schedule schedule;         // kSchedule
  Span span;
};

// `for each adset in adset_daily over last 3d where ...` or `across channel in ...`.
struct Scope {
  bool across = false;       // a group (all rows together) instead of one row at a time
  Ident var;
  Ident table;
  Window window;
  ExprPtr where;
  Span span;
};

struct LetDecl {
  Ident name;
  ExprPtr value;
  Span span;
};

enum class ActionKind : std::uint8_t {
  kPause, kEnable, kSetBudget, kReallocate, kWebhook, kNotifySlack, kEmail, kMessage,
  kSetField,
};

struct NamedArg {
  Ident name;
  ExprPtr value;
};

struct Reallocation {
  ExprPtr toward;               // the metric budgets move toward
  bool keep_total = false;
  double max_step = 0;          // fraction; 0 = unlimited
  Span max_step_span;
  ExprPtr min_budget;           // money per member, optional
  ExprPtr max_budget;
  Ident per;                    // `min 100 USD per channel`: must name the group variable
};

struct Action {
  ActionKind kind = ActionKind::kPause;
  Span span;
  std::vector<std::string> target;   // pause/enable/set budget: the variable; set: entity.field
  std::vector<Span> target_spans;
  ExprPtr value;                     // set budget / set field
  std::string name;                  // webhook name, slack channel, email/message template
  Span name_span;
  std::string text;                  // slack message template (may be empty)
  Span text_span;
  std::string runbook;               // slack runbook link
  std::string via;                   // message channel: whatsapp, sms, push
  Span via_span;
  std::vector<NamedArg> with;        // webhook payload
  Reallocation realloc;
};

struct RuleDecl {
  Ident name;
  RuleOptions options;
  Trigger trigger;
  std::optional<Scope> scope;
  std::vector<LetDecl> lets;
  ExprPtr condition;                 // optional
  double confidence = 0;             // `with confidence 90%` -> 0.9; 0 = plain comparison
  Span confidence_span;
  std::vector<Action> actions;
  Span span;
};

// ---- journeys

enum class JourneyItemKind : std::uint8_t { kStep, kWait, kGoto, kEnd };

struct JourneyItem;

struct JourneyBranch {
  bool timeout = false;      // `on timeout:`
  Ident event;               // `on email_open:`
  std::vector<JourneyItem> items;
  Span span;
};

struct JourneyItem {
  JourneyItemKind kind = JourneyItemKind::kStep;
  Ident name;                // kStep: step name; kGoto: target step
  Action action;             // kStep
  std::int64_t wait_seconds = 0;       // kWait: `wait 2d` or `wait up to 48h for ...`
  std::vector<Ident> wait_events;      // kWait: events that end the wait early
  std::vector<JourneyBranch> branches; // kWait
  Span span;
};

struct QuietHours {
  int start_minute = -1;     // minute of day, -1 = none
  int end_minute = -1;
  std::string timezone;      // a literal IANA zone, or empty when `zone_field` is used
  std::vector<std::string> zone_field;  // `in lead.timezone`
  Span span;
};

struct JourneyDecl {
  Ident name;
  Ident entity;
  RuleOptions options;
  Ident enter_event;
  ExprPtr enter_condition;
  ExprPtr exit_condition;
  int cap_count = 0;
  std::int64_t cap_seconds = 0;
  Span cap_span;
  QuietHours quiet;
  std::vector<JourneyItem> items;
  Span span;
};

// ---- alerts

enum class Severity : std::uint8_t { kInfo, kWarning, kPage };

struct AlertDecl {
  Ident name;
  RuleOptions options;
  Schedule schedule;
  bool has_schedule = false;
  std::optional<Scope> scope;
  std::vector<LetDecl> lets;
  ExprPtr condition;
  std::int64_t for_seconds = 0;
  Span for_span;
  Severity severity = Severity::kWarning;
  Span severity_span;
  std::string slack_channel;
  Span slack_span;
  std::string message;       // optional template
  Span message_span;
  std::string runbook;
  std::int64_t repeat_seconds = 0;
  bool resolve_notify = false;
  std::vector<std::string> group_by;  // empty: one message per rule and evaluation
  Span group_span;
  Span span;
};

// One parsed file.
struct File {
  std::uint32_t id = 0;
  std::vector<ImportDecl> imports;
  std::vector<TableDecl> tables;
  std::vector<EventDecl> events;
  std::vector<EntityDecl> entities;
  std::vector<ScoreDecl> scores;
  std::vector<RuleDecl> rules;
  std::vector<JourneyDecl> journeys;
  std::vector<AlertDecl> alerts;
};

}  // namespace gavel::dsl
