// The compiled program: what crosses from dsl/ (the compiler) to rules/ (the runtime).
//
// A Program is immutable once built and owns everything it refers to (it can be shared
// read-only between threads). The runtime never re-parses anything: expressions are flat
// bytecode over numbered slots, scheduled rules carry the SQL that pushes their window
// aggregation down to the warehouse, templates are pre-split into text and slots, and every
// rule, alert and journey has a version hash of its normalised source and of the
// declarations it depends on.
//
// Slots: each evaluable unit (rule, alert, score, journey) has a slot table. Before running
// its code the runtime fills each slot from the place the SlotRef names (an event field, an
// entity field, a score, an aggregate column of the window query, an anomaly test result, an
// earlier `let`) and then runs the code. Missing values are "null".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dsl/ast.hpp"

namespace gavel::dsl {

// ---------------------------------------------------------------- bytecode

enum class OpCode : std::uint8_t {
  kConstNum,    // push nums[a]
  kConstStr,    // push strs[a]
  kConstBool,   // push a != 0
  kLoad,        // push slots[a]
  kAdd, kSub, kMul, kDiv, kNeg,
  kEq, kNe, kLt, kLe, kGt, kGe,   // numbers, texts (Eq/Ne and ordering) or bools (Eq/Ne)
  kNot,
  kJumpIfFalseKeep,  // `and`: if top is not true, jump to a (leaving false on the stack)
  kJumpIfTrueKeep,   // `or`: if top is true, jump to a (leaving true on the stack)
  kPop,
  kInSet,       // top in sets[a] (texts or numbers); b = 1 for `not in`
  kLike,        // top matches globs[a]; b = 1 for `not like`
  kAbs, kRound, kMin2, kMax2,
  kToBool,      // null -> false
};

struct Instr {
  OpCode op;
  std::uint32_t a = 0;
  std::uint32_t b = 0;
};

// A set of constants for `in`: texts or numbers, sorted for binary search.
struct ConstSet {
  std::vector<std::string> texts;
  std::vector<double> numbers;
};

struct CompiledExpr {
  std::vector<Instr> code;
  std::vector<double> nums;
  std::vector<std::string> strs;
  std::vector<ConstSet> sets;
  std::vector<std::string> globs;  // `*` any run, `?` one character
  TypeRef type;
  std::string text;                // the source text, for logs and `explain`
  bool empty() const { return code.empty(); }
};

// ---------------------------------------------------------------- slots

enum class SlotKind : std::uint8_t {
  kEventField,   // name = field of the triggering event
  kEventTime,    // the triggering event's time
  kEntityKey,    // the entity's key value
  kEntityField,  // name = field of the context entity
  kScore,        // name = score of the context entity (decayed to "now")
  kLet,          // index = position in the unit's lets
  kAggregate,    // index = aggregate column of the unit's window query `query`
  kDim,          // name = dim of the table (newest row in the window); also the key
  kAnomaly,      // index = anomaly test of the alert (true when the band is crossed)
};

struct SlotRef {
  SlotKind kind = SlotKind::kEventField;
  std::string name;
  int index = -1;
  int query = -1;  // kAggregate: which WindowQuery
  TypeRef type;
  std::string label;  // kAggregate: "sum(spend)" / "sum(spend) over last 1h"; kAnomaly: the test
};

// ---------------------------------------------------------------- warehouse pushdown

enum class AggFn : std::uint8_t { kSum, kAvg, kMin, kMax, kCount };

struct AggregateSpec {
  AggFn fn = AggFn::kSum;
  std::string column;  // empty for count()
};

// One SQL query per distinct window of a scheduled unit. Parameters: :from and :to are the
// window's bounds in the table's time format ('YYYY-MM-DD' or 'YYYY-MM-DD HH:00:00'), bound
// by the runtime; for `lifetime`, :from is bound to the empty string. Columns of the result:
//   key, <aggregates a0..aN-1 in `aggregates` order>, first_time, last_time, row_count,
//   <dims in `dims` order, from the newest row of the window>
struct WindowQuery {
  std::string table;        // the declared table name
  Window window;
  std::vector<AggregateSpec> aggregates;
  std::vector<std::string> dims;
  std::string sql;
};

// The per-bucket history of an anomaly baseline:
//   SELECT key, time, SUM(field) [, SUM(per)] ... GROUP BY key, time
struct AnomalySpec {
  BaselineSpec spec;            // direction, field, per, history, season, sigma/confidence
  int subject_query = -1;       // the WindowQuery whose aggregate is the observed value
  int subject_aggregate = -1;
  int per_aggregate = -1;       // observed denominator (same query), for rate baselines
  std::int64_t subject_window_seconds = 0;
  std::string history_sql;
  std::string text;
};

// `with confidence P%` on `cost / count > threshold`: act only if the lower bound of the
// true cost per count (count ~ Poisson in cost) exceeds the threshold at that confidence.
struct ConfidenceSpec {
  double level = 0;             // 0.9 for 90%
  int cost_query = -1;
  int cost_aggregate = -1;      // sum(money)
  int count_aggregate = -1;     // sum(count)
  bool above = true;            // `>`/`>=`: true CPA above threshold; `<`/`<=`: below
  CompiledExpr threshold;       // the right-hand side
};

// ---------------------------------------------------------------- templates

struct TemplatePart {
  std::string text;  // literal text (when slot < 0)
  int slot = -1;     // else: the slot whose value is printed
};

struct CompiledTemplate {
  std::string source;
  std::vector<TemplatePart> parts;
};

// ---------------------------------------------------------------- actions

struct CompiledAction {
  ActionKind kind = ActionKind::kPause;
  std::string target_var;       // pause/enable/set budget/reallocate: the table variable
  std::string target_entity;    // set field: the entity; email/message: the entity messaged
  std::string field;            // set field
  CompiledExpr value;           // set budget / set field
  std::string name;             // webhook name, slack channel, email/message template
  CompiledTemplate text;        // slack message
  std::string runbook;
  std::string via;
  std::vector<std::pair<std::string, CompiledExpr>> with;  // webhook payload
  // reallocate
  CompiledExpr toward;
  bool keep_total = false;
  double max_step = 0;
  std::optional<double> min_budget;
  std::optional<double> max_budget;
  std::string currency;
  std::string text_source;      // the action as written, for logs
};

// ---------------------------------------------------------------- units

struct RuleMeta {
  std::string owner;
  std::string description;
  std::vector<std::string> tags;
  Mode mode = Mode::kDryRun;
  std::string flag;
  int limit_count = 0;
  std::int64_t limit_seconds = 0;
  bool require_approval = false;
  std::int64_t approval_expires_seconds = 0;
  std::int64_t cooldown_seconds = 0;
};

struct CompiledScope {
  bool across = false;
  std::string var;
  std::string table;
  Window window;
  std::string where_sql;        // pushed into every query of the unit
};

struct CompiledRule {
  std::string name;
  std::string file;
  int line = 0;
  std::string version;          // sha256 hex of the normalised source + dependencies
  RuleMeta meta;
  TriggerKind trigger = TriggerKind::kNone;
  std::string event;            // kEvent: the event; kCrossing: the score
  std::string entity;           // the context entity (event/crossing rules), if any
  CompiledExpr event_filter;    // kEvent `where`
  CrossDirection direction = CrossDirection::kAbove;
  double threshold = 0;         // kCrossing
  Schedule schedule;            // kSchedule
  std::optional<CompiledScope> scope;
  std::vector<SlotRef> slots;
  std::vector<std::pair<std::string, CompiledExpr>> lets;  // evaluated in order into kLet slots
  std::vector<WindowQuery> queries;
  CompiledExpr condition;       // empty: always true
  std::optional<ConfidenceSpec> confidence;
  std::vector<CompiledAction> actions;
};

struct CompiledScoreRule {
  ScoreRuleKind kind = ScoreRuleKind::kOnEvent;
  std::string event;
  CompiledExpr condition;
  double amount = 0;
  bool once = false;
  int index = 0;                // position in the score, for `once` bookkeeping
};

struct CompiledScore {
  std::string name;
  std::string entity;
  std::string version;
  std::vector<SlotRef> slots;
  std::vector<CompiledScoreRule> rules;
  DecayKind decay = DecayKind::kNone;
  double decay_amount = 0;
  std::int64_t decay_seconds = 0;
  std::optional<double> floor;
  std::optional<double> cap;
};

enum class StepKind : std::uint8_t { kAction, kWait, kGoto, kEnd };

// Journey items flattened into a list; control flow by index.
struct CompiledStep {
  StepKind kind = StepKind::kAction;
  std::string name;             // step name (kAction), or "" for waits
  CompiledAction action;        // kAction
  std::int64_t wait_seconds = 0;
  std::vector<std::pair<std::string, int>> on_event;  // kWait: event -> first step of branch
  int on_timeout = -1;          // kWait: first step of the timeout branch (-1: continue)
  int next = -1;                // the step after this one (-1: the journey ends)
  int target = -1;              // kGoto
};

struct CompiledJourney {
  std::string name;
  std::string entity;
  std::string file;
  int line = 0;
  std::string version;
  RuleMeta meta;
  std::string enter_event;
  std::vector<SlotRef> slots;
  CompiledExpr enter_condition;
  CompiledExpr exit_condition;
  int cap_count = 0;
  std::int64_t cap_seconds = 0;
  int quiet_start_minute = -1;
  int quiet_end_minute = -1;
  std::string quiet_timezone;        // literal zone, or
  std::string quiet_timezone_field;  // entity field holding the zone
  std::vector<CompiledStep> steps;   // steps[0] is the first
};

struct CompiledAlert {
  std::string name;
  std::string file;
  int line = 0;
  std::string version;
  RuleMeta meta;
  Schedule schedule;
  std::optional<CompiledScope> scope;
  std::vector<SlotRef> slots;
  std::vector<std::pair<std::string, CompiledExpr>> lets;
  std::vector<WindowQuery> queries;
  std::vector<AnomalySpec> anomalies;
  CompiledExpr condition;
  std::int64_t for_seconds = 0;
  Severity severity = Severity::kWarning;
  std::string slack_channel;
  CompiledTemplate message;
  std::string runbook;
  std::int64_t repeat_seconds = 0;
  bool resolve_notify = false;
  std::vector<std::string> group_by;
};

// ---------------------------------------------------------------- schema

struct FieldInfo {
  std::string name;
  TypeRef type;
  bool has_default = false;
  std::string default_text;
  double default_number = 0;
  bool default_bool = false;
};

struct TableInfo {
  std::string name;
  std::string source;
  std::string key;
  std::string time_column;
  Grain grain = Grain::kDay;
  std::string timezone;
  std::int64_t freshness_seconds = 0;
  std::vector<FieldInfo> dims;
  std::vector<FieldInfo> facts;
};

struct EventInfo {
  std::string name;
  std::string updates;               // entity updated from same-named fields, or ""
  std::vector<FieldInfo> fields;
  std::vector<std::string> entities; // entities this event belongs to (it carries their key)
};

struct EntityInfo {
  std::string name;
  std::string key;
  std::vector<FieldInfo> fields;
};

struct Program {
  std::vector<TableInfo> tables;
  std::vector<EventInfo> events;
  std::vector<EntityInfo> entities;
  std::vector<CompiledScore> scores;
  std::vector<CompiledRule> rules;
  std::vector<CompiledJourney> journeys;
  std::vector<CompiledAlert> alerts;
  std::vector<std::string> files;    // every file compiled, imports included, in load order
  std::string version;               // hash over every unit's version

  const TableInfo* FindTable(const std::string& name) const;
  const EventInfo* FindEvent(const std::string& name) const;
  const EntityInfo* FindEntity(const std::string& name) const;
};

// A human-readable summary: one line per unit with its kind, trigger, version and SQL.
std::string DescribeProgram(const Program& program, bool with_sql);

}  // namespace gavel::dsl
