// Internal to rules/: the engine's state and its event-driven half (entities, scores and
// decay, crossings, event rules, journeys, timers). engine.cpp holds the public methods;
// engine_scheduled.cpp the scheduled half (metric rules, reallocation, alerts).
// The semantics are documented in docs/engine.md.
#pragma once

#include "rules/engine.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <utility>

#include "rules/calendar.hpp"
#include "rules/entity_table.hpp"
#include "rules/intents.hpp"
#include "rules/compact_decision.hpp"
#include "rules/reallocate.hpp"
#include "rules/stats.hpp"
#include "rules/state.hpp"
#include "rules/window_rows.hpp"

namespace gavel::rules {

namespace engine_detail {

using dsl::SlotKind;

// Copies every key of `from` into `into` (the evidence a unit read, after its header fields).
inline void MergeInto(nlohmann::ordered_json& into, const nlohmann::ordered_json& from) {
  for (auto it = from.begin(); it != from.end(); ++it) into[it.key()] = it.value();
}

// An entity of one type, by number (EntityTable); a null table stands for "no entity"
// (an event that belongs to no entity type).
struct EntityRef {
  EntityTable* t = nullptr;
  std::uint32_t n = 0;
  std::string_view type() const { return t ? std::string_view(t->info->name) : std::string_view(); }
  std::string_view id() const { return t ? t->id(n) : std::string_view(); }
};

// How a slot list reads its values for one event type and entity type, resolved once when
// the engine starts instead of by name per evaluation.
struct SlotPlan {
  struct Access {
    dsl::SlotKind kind;
    int index;                 // event field position, entity field, score position; -1: none
    const dsl::SlotRef* ref;
  };
  std::vector<Access> access;
  std::vector<int> let_slot;   // let i is stored in slot let_slot[i] (-1: not read)
  std::vector<std::string> evidence_names;  // each slot's evidence key ("" : not reported)
  int event = -1;              // the event type (index in Program::events) positions refer to
};

// What set a rule off, rendered to the decision's `trigger` text only when a decision is
// written: "event:<id>", "crossing:<score>:event:<id>" or "crossing:<score>:decay".
struct Trigger {
  const Event* event = nullptr;
  const std::string* score = nullptr;  // crossings
  std::string Text() const {
    std::string cause = event ? "event:" + event->id : std::string("decay");
    return score ? "crossing:" + *score + ":" + cause : cause;
  }
  std::string Cause() const { return event ? "event:" + event->id : std::string("decay"); }
};

// A condition that is one comparison of an event field with a constant (`page == "/"`,
// `seats >= 10`, `page like "/pricing*"`), recognised in its bytecode once when the engine
// starts and then tested on the event's field directly, without filling slots or running the
// VM. It gives exactly what Evaluator::Test gives (a field of another kind, or null, is
// false). Anything else is kVm: the caller runs the bytecode.
struct FastCondition {
  enum class Kind : std::uint8_t { kVm, kAlways, kText, kNumber, kLike, kPrefix };
  Kind kind = Kind::kVm;
  dsl::OpCode op = dsl::OpCode::kEq;  // kText, kNumber: the comparison
  bool negated = false;               // kLike, kPrefix: `not like`
  int field = -1;                     // the event field's position
  std::string_view text;              // kText: the constant; kLike: the glob; kPrefix: the prefix
  double num = 0;                     // kNumber: the constant
  std::uint64_t word = 0;             // kText, kPrefix: `text` as ShortWord gives it, if 8 bytes or less

  static bool Compare(dsl::OpCode op, int c) {
    switch (op) {
      case dsl::OpCode::kEq: return c == 0;
      case dsl::OpCode::kNe: return c != 0;
      case dsl::OpCode::kLt: return c < 0;
      case dsl::OpCode::kLe: return c <= 0;
      case dsl::OpCode::kGt: return c > 0;
      default: return c >= 0;
    }
  }
  static bool IsComparison(dsl::OpCode op) {
    return op == dsl::OpCode::kEq || op == dsl::OpCode::kNe || op == dsl::OpCode::kLt || op == dsl::OpCode::kLe ||
           op == dsl::OpCode::kGt || op == dsl::OpCode::kGe;
  }

  // `expr` as compiled for a condition (its code ends with kToBool); `field_of_slot` maps a
  // slot to the event field it reads (-1: not an event field of this event type).
  template <typename FieldOfSlot>
  static FastCondition Of(const dsl::CompiledExpr& expr, FieldOfSlot&& field_of_slot) {
    using dsl::OpCode;
    FastCondition f;
    const auto& c = expr.code;
    if (c.empty()) {
      f.kind = Kind::kAlways;
      return f;
    }
    if (c.back().op != OpCode::kToBool || c[0].op != OpCode::kLoad) return f;
    const int field = field_of_slot(c[0].a);
    if (field < 0) return f;
    if (c.size() == 4 && IsComparison(c[2].op) && c[1].op == OpCode::kConstStr && c[1].a < expr.strs.size()) {
      f.kind = Kind::kText;
      f.op = c[2].op;
      f.text = expr.strs[c[1].a];
    } else if (c.size() == 4 && IsComparison(c[2].op) && c[1].op == OpCode::kConstNum && c[1].a < expr.nums.size()) {
      f.kind = Kind::kNumber;
      f.op = c[2].op;
      f.num = expr.nums[c[1].a];
    } else if (c.size() == 4 && IsComparison(c[2].op) && c[1].op == OpCode::kConstBool) {
      f.kind = Kind::kNumber;  // yes/no compare as 1/0, in the VM too
      f.op = c[2].op;
      f.num = c[1].a != 0 ? 1.0 : 0.0;
    } else if (c.size() == 3 && c[1].op == OpCode::kLike && c[1].a < expr.globs.size()) {
      const std::string& glob = expr.globs[c[1].a];
      const std::size_t wild = glob.find_first_of("*?");
      f.kind = !glob.empty() && wild == glob.size() - 1 && glob.back() == '*' ? Kind::kPrefix : Kind::kLike;
      f.text = f.kind == Kind::kPrefix ? std::string_view(glob).substr(0, wild) : std::string_view(glob);
      f.negated = c[1].b != 0;
    } else {
      return f;
    }
    f.field = field;
    f.word = ShortWord(f.text.substr(0, 8));
    return f;
  }

  // The result for a normalized event (kVm: not to be called).
  [[gnu::always_inline]] bool Test(const Event& e) const {
    if (kind == Kind::kAlways) return true;
    const OwnedValue& v = e.fields[field].second;
    switch (kind) {
      case Kind::kText: {
        if (v.kind != Value::Kind::kText) return false;
        if (op == dsl::OpCode::kEq) return SameShortText(v.text);
        if (op == dsl::OpCode::kNe) return !SameShortText(v.text);
        const int c = std::string_view(v.text).compare(text);
        return Compare(op, c < 0 ? -1 : c > 0 ? 1 : 0);
      }
      case Kind::kNumber: {
        if (v.kind != Value::Kind::kNumber && v.kind != Value::Kind::kBool) return false;
        const double x = v.kind == Value::Kind::kBool ? (v.num != 0 ? 1.0 : 0.0) : v.num;
        return Compare(op, x < num ? -1 : x > num ? 1 : 0);
      }
      case Kind::kLike:
        if (v.kind != Value::Kind::kText) return false;
        return GlobMatch(text, v.text) != negated;
      case Kind::kPrefix: {
        if (v.kind != Value::Kind::kText) return false;
        const std::string_view s(v.text);
        if (text.size() > 8) return s.starts_with(text) != negated;
        return (s.size() >= text.size() && ShortWord(std::string_view(s.data(), text.size())) == word) != negated;
      }
      default: return false;
    }
  }
  // v == text, by `word` when text is 8 bytes or less.
  [[gnu::always_inline]] bool SameShortText(std::string_view v) const {
    if (v.size() != text.size()) return false;
    return text.size() <= 8 ? ShortWord(v) == word : SameText(v, text);
  }
};

// The crossing that set off a crossing rule: the score and its value before and after.
struct CrossingHead {
  const dsl::CompiledScore* score;
  double before;
  double after;
};

enum class TimerKind : std::uint8_t { kDecay, kJourney };

struct Timer {
  TimeMs at;
  std::uint64_t seq;      // insertion order: ties run in the order they were scheduled
  TimerKind kind;
  int unit;               // score position in its table (decay) or journey index
  int table;              // entity table (index in Program::entities)
  std::uint32_t entity;   // entity number in that table
  std::uint64_t generation;  // journeys: must match the instance's generation
  bool operator>(const Timer& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

enum class JourneyStatus : std::uint8_t { kRunning, kWaiting, kDeferred, kDone };

struct JourneyInstance {
  int step = 0;
  JourneyStatus status = JourneyStatus::kRunning;
  TimeMs entered = 0;
  TimeMs wait_until = -1;          // kWaiting: the timeout
  TimeMs resume_at = -1;           // kDeferred: the end of quiet hours
  std::uint64_t generation = 0;
  std::vector<TimeMs> sends;       // send times, for the frequency cap
};

}  // namespace engine_detail

using namespace engine_detail;

struct Engine::Impl {
  Engine& self;
  std::shared_ptr<const dsl::Program> program;
  const dsl::Program& p;
  EngineDeps deps;
  EngineOptions opts;
  Evaluator ev;

  // One dense table per declared entity type, aligned with Program::entities. Created once
  // in the constructor and never resized (views into them stay valid while the engine runs).
  std::vector<EntityTable> tables;
  SeenIds seen_events;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
  std::uint64_t timer_seq = 0;
  // journey index -> entity number (in the journey's entity table) -> instance
  std::vector<std::unordered_map<std::uint32_t, JourneyInstance>> journeys;
  std::vector<int> journey_table;  // journey index -> entity table
  // rule name -> entity -> last fired (only rules with a cooldown); rule name -> fire times
  // (only rules with a limit)
  std::map<std::string, std::unordered_map<std::string, TimeMs>> last_fired;
  std::map<std::string, std::vector<TimeMs>> fire_times;
  // summary: unit -> count of evaluations that did not fire (rules counted by index on the
  // hot path, merged by MergeCounters)
  std::map<std::string, std::int64_t> not_fired;
  std::vector<std::int64_t> rule_not_fired;
  std::vector<UnitHealth*> rule_health;  // by rule index: nodes of self.health_ (stable)
  // Event rules by event type index; crossing rules by score index.
  std::vector<std::vector<const dsl::CompiledRule*>> event_rules;
  std::vector<std::vector<const dsl::CompiledRule*>> crossing_rules;
  // For each event type: the entity tables it belongs to and the position of their key field.
  struct EventRoute {
    int table;
    int key_field;
    bool updates;  // the event updates this entity's fields (`updates <entity>`)
  };
  std::vector<std::vector<EventRoute>> event_routes;
  // Slot plans: scores per event type, rules and journeys by index.
  std::vector<std::vector<SlotPlan>> score_plans;  // [score][event type]
  std::vector<SlotPlan> rule_plans;
  std::vector<SlotPlan> journey_plans;
  // For each score and event type: the score's rules that apply to an event of that type
  // (its `on` rules for that type, then... in declaration order with its `when` rules), with
  // their conditions specialised where they test one event field (FastCondition).
  struct ScoreRuleRef {
    const dsl::CompiledScoreRule* rule;
    FastCondition cond;
  };
  std::vector<std::vector<std::vector<ScoreRuleRef>>> score_event_rules;  // [score][event type]
  // For each event rule (by rule index): its `where` filter, specialised where it can be.
  std::vector<FastCondition> rule_filters;
  // For each score: whether a `crosses below` rule watches it (only then do decay timers run).
  std::vector<std::uint8_t> score_watched_below;
  // For each score: its inactivity decay period in ms (0: it has none).
  std::vector<TimeMs> inactivity_period;
  // For each entity table: whether a journey runs on it.
  std::vector<std::uint8_t> table_has_journeys;
  // For each rule, its entity table (-1: none).
  std::vector<int> rule_table;
  // The event path laid out per event type when the engine starts (TypePlan): for each entity
  // the event belongs to, its table and key, the fields it updates, every score of the table
  // with that score's rules for this event type and its crossing rules, and the event rules
  // on the table. Applying an event walks these arrays instead of looking each part up.
  // A score rule for one event type as the event path tests it.
  struct HotScoreRule {
    FastCondition cond;                     // kVm: run rule->condition
    double amount;
    std::uint64_t once_bit;                 // `once` rules: the rule's bit in once_mask; else 0
    const dsl::CompiledScoreRule* rule;
  };
  struct ScoreStep {
    int k;                                  // position among the table's scores
    int score;                              // index in Program::scores
    const dsl::CompiledScore* sc;
    std::vector<HotScoreRule> rules;        // the score's rules for this event type, in order
    bool any_vm;                            // one of them needs the VM (ScoreDeltaVm)
    bool any_once;                          // one of them is a `once` rule (reads once_mask)
    bool watched_below;                     // a `crosses below` rule watches it
    std::span<const dsl::CompiledRule* const> crossings;  // crossing rules on the score
    TimeMs inactivity_period;               // 0: no inactivity decay
    double floor, cap;                      // -inf, +inf where the score has none
    double min_threshold, max_threshold;    // of its crossing rules (+inf, -inf: none)
  };
  struct RouteStep {
    EventRoute route;
    EntityTable* table;
    std::vector<ScoreStep> scores;                  // every score of the table, by position
    std::uint32_t nscores;                          // scores.size()
    std::vector<std::pair<int, int>> updates;       // (entity field, event field) to copy
    std::vector<const dsl::CompiledRule*> rules;    // event rules of this type on this table
    bool journeys;                                  // a journey runs on the table
  };
  struct TypePlan {
    std::vector<RouteStep> routes;
    std::uint32_t nroutes = 0;      // routes.size()
    std::uint32_t nhashed = 0;      // the routes whose keys the batch path hashes ahead
    bool entityless_rules = false;  // the event belongs to no entity and event rules watch it
    // One entity, keyed, and nothing on it but one score whose rules need no VM and whose
    // thresholds no decay timer watches: the batch path applies these with ApplySimple.
    bool simple = false;
  };
  std::vector<TypePlan> type_plans;  // by event type index
  std::vector<std::string_view> type_names;  // Program::events' names, by index
  // Reused slot-value buffers, one per nesting depth (a crossing fires a rule while the
  // score that crossed is being updated).
  std::vector<std::unique_ptr<std::vector<Value>>> value_pool;
  std::size_t value_depth = 0;
  // The compact decision being built (its buffers are reused from one decision to the next).
  CompactDecision compact;

  void NotFiredRule(const dsl::CompiledRule& r) { rule_not_fired[&r - p.rules.data()]++; }
  void MergeCounters() {
    for (std::size_t i = 0; i < rule_not_fired.size(); ++i) {
      if (rule_not_fired[i]) not_fired["rule:" + p.rules[i].name] += rule_not_fired[i];
      rule_not_fired[i] = 0;
    }
  }
  // schedules: unit key ("rule:x"/"alert:x") -> next tick
  std::map<std::string, TimeMs> next_tick;
  // What changed since the last checkpoint (engine_state.cpp). Entities are listed per table.
  std::set<std::pair<std::size_t, std::uint32_t>> dirty_journeys;
  std::set<std::pair<std::string, std::string>> dirty_alerts;
  std::set<std::pair<std::string, std::string>> dirty_cooldowns;
  bool fire_times_dirty = false;
  // The hashes (SeenIds::HashOf) of the events applied since the last checkpoint.
  std::vector<XXH128_hash_t> new_event_hashes;
  std::int64_t event_batches = 0;  // "events" rows written (their keys number them)
  Status Checkpoint(StateSink& sink);
  Status Restore(const StateSource& source);
  // A journey instance as its state row.
  nlohmann::json JourneyRow(std::size_t journey, const JourneyInstance& in) const;
  // The journey rows of one entity as they are now (engine_state.cpp).
  Status JourneyRows(std::string_view type, std::string_view id, StateSink& sink);

  Impl(Engine& e, std::shared_ptr<const dsl::Program> prog, EngineDeps d, EngineOptions o)
      : self(e), program(std::move(prog)), p(*program), deps(d), opts(o) {
    compact.program = program;
    tables.resize(p.entities.size());
    for (std::size_t t = 0; t < p.entities.size(); ++t) {
      std::vector<int> ids;
      for (std::size_t i = 0; i < p.scores.size(); ++i) {
        if (p.scores[i].entity == p.entities[t].name) ids.push_back(static_cast<int>(i));
      }
      InitEntityTable(tables[t], p.entities[t], std::move(ids));
    }
    journeys.resize(p.journeys.size());
    for (const auto& j : p.journeys) journey_table.push_back(TableIndex(j.entity));
    event_rules.resize(p.events.size());
    crossing_rules.resize(p.scores.size());
    for (const auto& r : p.rules) {
      if (r.trigger == dsl::TriggerKind::kCrossing) {
        for (std::size_t i = 0; i < p.scores.size(); ++i) {
          if (p.scores[i].name == r.event) crossing_rules[i].push_back(&r);
        }
      }
      if (r.trigger == dsl::TriggerKind::kEvent) {
        int ei = EventIndex(r.event);
        if (ei >= 0) event_rules[ei].push_back(&r);
      }
    }
    event_routes.resize(p.events.size());
    for (std::size_t ei = 0; ei < p.events.size(); ++ei) {
      for (const auto& type : p.events[ei].entities) {
        int t = TableIndex(type);
        if (t < 0) continue;
        int key = -1;
        for (std::size_t f = 0; f < p.events[ei].fields.size(); ++f) {
          if (p.events[ei].fields[f].name == p.entities[t].key) key = static_cast<int>(f);
        }
        event_routes[ei].push_back({t, key, p.events[ei].updates == p.entities[t].name});
      }
    }
    score_plans.resize(p.scores.size());
    for (std::size_t i = 0; i < p.scores.size(); ++i) {
      int t = TableIndex(p.scores[i].entity);
      for (std::size_t ei = 0; ei < p.events.size(); ++ei) {
        score_plans[i].push_back(MakePlan(p.scores[i].slots, {}, static_cast<int>(ei), t));
      }
    }
    for (std::size_t i = 0; i < p.scores.size(); ++i) {
      const dsl::CompiledScore& sc = p.scores[i];
      score_event_rules.emplace_back(p.events.size());
      for (std::size_t ei = 0; ei < p.events.size(); ++ei) {
        const SlotPlan& plan = score_plans[i][ei];
        for (const auto& rule : sc.rules) {
          if (rule.kind == dsl::ScoreRuleKind::kOnEvent && EventIndex(rule.event) != static_cast<int>(ei)) continue;
          score_event_rules[i][ei].push_back({&rule, FastCondition::Of(rule.condition, [&](std::uint32_t slot) {
                                                return EventFieldOfSlot(plan, slot);
                                              })});
        }
      }
      bool below = false;
      for (const auto* r : crossing_rules[i]) below |= r->direction == dsl::CrossDirection::kBelow;
      score_watched_below.push_back(below);
      inactivity_period.push_back(sc.decay == dsl::DecayKind::kInactivity && sc.decay_seconds > 0
                                      ? sc.decay_seconds * kSecond : 0);
    }
    table_has_journeys.assign(tables.size(), 0);
    for (int t : journey_table) {
      if (t >= 0) table_has_journeys[t] = 1;
    }
    for (const auto& r : p.rules) {
      rule_table.push_back(TableIndex(r.entity));
      int ei = r.trigger == dsl::TriggerKind::kEvent ? EventIndex(r.event) : -1;
      rule_plans.push_back(MakePlan(r.slots, r.lets, ei, TableIndex(r.entity)));
      const SlotPlan& plan = rule_plans.back();
      rule_filters.push_back(FastCondition::Of(r.event_filter, [&](std::uint32_t slot) { return EventFieldOfSlot(plan, slot); }));
      rule_health.push_back(&self.health_["rule:" + r.name]);
    }
    for (const auto& j : p.journeys) journey_plans.push_back(MakePlan(j.slots, {}, EventIndex(j.enter_event), TableIndex(j.entity)));
    rule_not_fired.assign(p.rules.size(), 0);
    BuildTypePlans();
  }

  void BuildTypePlans() {
    for (const auto& info : p.events) type_names.push_back(info.name);
    type_plans.resize(p.events.size());
    for (std::size_t ei = 0; ei < p.events.size(); ++ei) {
      TypePlan& plan = type_plans[ei];
      plan.entityless_rules = p.events[ei].entities.empty() && !event_rules[ei].empty();
      for (const EventRoute& route : event_routes[ei]) {
        RouteStep step;
        step.route = route;
        step.table = &tables[route.table];
        const EntityTable& t = tables[route.table];
        for (std::size_t k = 0; k < t.score_ids.size(); ++k) {
          const int score = t.score_ids[k];
          constexpr double kInf = std::numeric_limits<double>::infinity();
          const dsl::CompiledScore& sc = p.scores[score];
          ScoreStep ss{static_cast<int>(k), score, &sc, {}, false, false, score_watched_below[score] != 0,
                       crossing_rules[score], inactivity_period[score], sc.floor ? *sc.floor : -kInf,
                       sc.cap ? *sc.cap : kInf, kInf, -kInf};
          for (const dsl::CompiledRule* r : crossing_rules[score]) {
            ss.min_threshold = std::min(ss.min_threshold, r->threshold);
            ss.max_threshold = std::max(ss.max_threshold, r->threshold);
          }
          for (const ScoreRuleRef& ref : score_event_rules[score][ei]) {
            const std::uint64_t bit = ref.rule->once ? std::uint64_t{1} << (ref.rule->index & 63) : 0;
            ss.rules.push_back({ref.cond, ref.rule->amount, bit, ref.rule});
            ss.any_vm |= ref.cond.kind == FastCondition::Kind::kVm;
            ss.any_once |= bit != 0;
          }
          step.scores.push_back(std::move(ss));
        }
        if (route.updates) {
          const auto& fields = p.events[ei].fields;
          for (std::size_t i = 0; i < t.info->fields.size(); ++i) {
            for (std::size_t f = 0; f < fields.size(); ++f) {
              if (fields[f].name == t.info->fields[i].name) {
                step.updates.emplace_back(static_cast<int>(i), static_cast<int>(f));
                break;
              }
            }
          }
        }
        for (const dsl::CompiledRule* rp : event_rules[ei]) {
          if (rule_table[rp - p.rules.data()] == route.table) step.rules.push_back(rp);
        }
        step.journeys = table_has_journeys[route.table] != 0;
        step.nscores = static_cast<std::uint32_t>(step.scores.size());
        plan.routes.push_back(std::move(step));
      }
      plan.nroutes = static_cast<std::uint32_t>(plan.routes.size());
      plan.nhashed = static_cast<std::uint32_t>(std::min(plan.routes.size(), kHashedRoutes));
      plan.simple = plan.nroutes == 1 && !plan.entityless_rules && plan.routes[0].route.key_field >= 0 &&
                    plan.routes[0].updates.empty() && plan.routes[0].rules.empty() && !plan.routes[0].journeys;
      if (plan.simple) {
        const auto& scores = plan.routes[0].scores;
        plan.simple = scores.size() == 1 && !scores[0].any_vm && !scores[0].watched_below;
      }
    }
  }

  // The event field slot `slot` of `plan` reads (by position), or -1 if it reads anything else.
  static int EventFieldOfSlot(const SlotPlan& plan, std::uint32_t slot) {
    if (slot >= plan.access.size() || plan.event < 0) return -1;
    const SlotPlan::Access& a = plan.access[slot];
    return a.kind == SlotKind::kEventField ? a.index : -1;
  }

  int TableIndex(std::string_view type) const {
    for (std::size_t t = 0; t < p.entities.size(); ++t) {
      if (p.entities[t].name == type) return static_cast<int>(t);
    }
    return -1;
  }
  int EventIndex(std::string_view type) const {
    for (std::size_t e = 0; e < p.events.size(); ++e) {
      if (p.events[e].name == type) return static_cast<int>(e);
    }
    return -1;
  }
  // The position of `score` among its table's scores, or -1.
  static int ScorePosition(const dsl::Program& prog, const EntityTable& t, std::string_view score) {
    for (std::size_t k = 0; k < t.score_ids.size(); ++k) {
      if (prog.scores[t.score_ids[k]].name == score) return static_cast<int>(k);
    }
    return -1;
  }

  SlotPlan MakePlan(const std::vector<dsl::SlotRef>& slots,
                    const std::vector<std::pair<std::string, dsl::CompiledExpr>>& lets, int event, int table) const {
    SlotPlan plan;
    plan.event = event;
    for (const auto& s : slots) {
      int index = -1;
      switch (s.kind) {
        case SlotKind::kEventField:
          if (event >= 0) {
            const auto& fields = p.events[event].fields;
            for (std::size_t f = 0; f < fields.size(); ++f) {
              if (fields[f].name == s.name) index = static_cast<int>(f);
            }
          }
          break;
        case SlotKind::kEntityField:
          if (table >= 0) index = tables[table].FieldIndex(s.name);
          break;
        case SlotKind::kScore:
          if (table >= 0) index = ScorePosition(p, tables[table], s.name);
          break;
        default: break;
      }
      plan.access.push_back({s.kind, index, &s});
      plan.evidence_names.push_back(EvidenceName(s));
    }
    plan.let_slot.assign(lets.size(), -1);
    for (std::size_t k = 0; k < slots.size(); ++k) {
      if (slots[k].kind == SlotKind::kLet && slots[k].index >= 0 && slots[k].index < static_cast<int>(lets.size())) {
        plan.let_slot[slots[k].index] = static_cast<int>(k);
      }
    }
    return plan;
  }

  // A slot-value buffer for the current nesting depth; release with ReleaseValues.
  std::vector<Value>& AcquireValues(std::size_t n) {
    if (value_depth == value_pool.size()) [[unlikely]] value_pool.push_back(std::make_unique<std::vector<Value>>());
    std::vector<Value>& v = *value_pool[value_depth++];
    if (v.size() == n) {
      std::fill(v.begin(), v.end(), Value::Null());
    } else {
      v.assign(n, Value::Null());
    }
    return v;
  }
  void ReleaseValues() { --value_depth; }
  struct ValuesGuard {
    Impl& im;
    std::vector<Value>& v;
    ValuesGuard(Impl& i, std::size_t n) : im(i), v(i.AcquireValues(n)) {}
    ~ValuesGuard() { im.ReleaseValues(); }
  };

  // ------------------------------------------------------------ decisions

  Decision NewDecision(const std::string& kind, const std::string& rule, const std::string& version,
                       TimeMs event_time) {
    Decision d;
    d.kind = kind;
    d.rule = rule;
    d.version = version;
    d.event_time = event_time;
    d.processing_time = deps.clock->Now();
    return d;
  }

  Status Emit(Decision& d) {
    if (!deps.sink->Append(d)) return Status::IoError("the decision log refused a record");
    return Status::Ok();
  }

  UnitHealth& Health(const std::string& unit) { return self.health_[unit]; }

  // ------------------------------------------------------------ entities and scores

  [[gnu::always_inline]] void MarkDirty(EntityRef e) {
    if (opts.track_state) MarkDirtyTracked(e);
  }
  [[gnu::noinline]] void MarkDirtyTracked(EntityRef e) {
    if (!e.t || e.t->rows[e.n].dirty) return;
    e.t->rows[e.n].dirty = 1;
    e.t->dirty_list.push_back(e.n);
  }

  // The entity `id` of table `t`, created with its declared defaults if new; marked changed.
  EntityRef Entity(int t, std::string_view id) {
    EntityRef e{&tables[t], tables[t].Intern(id)};
    MarkDirty(e);
    return e;
  }
  // An existing entity, or a null table.
  EntityRef FindEntity(std::string_view type, std::string_view id) {
    int t = TableIndex(type);
    if (t < 0) return {};
    std::uint32_t n = tables[t].Find(id);
    if (n == EntityTable::kNone) return {};
    return {&tables[t], n};
  }

  static double Clamp(const dsl::CompiledScore& s, double v) {
    if (s.floor && v < *s.floor) v = *s.floor;
    if (s.cap && v > *s.cap) v = *s.cap;
    return v;
  }

  const std::vector<const dsl::CompiledRule*>& CrossingRules(int score) const { return crossing_rules[score]; }

  // Brings one score up to time t, applying decay; every threshold crossed by decay fires its
  // rules at the exact time of the step that crossed it.
  Status Decay(EntityRef e, int slot, TimeMs t) {
    const int score = e.t->score_ids[slot];
    const dsl::CompiledScore& s = p.scores[score];
    ScoreState& sc = e.t->score(slot, e.n);
    if (sc.last_activity < 0 || t <= sc.as_of) return Status::Ok();
    MarkDirty(e);
    if (s.decay == dsl::DecayKind::kInactivity && s.decay_seconds > 0) {
      TimeMs period = s.decay_seconds * kSecond;
      if (t - sc.last_activity < period && sc.steps_applied >= 0) {
        sc.as_of = t;  // no step due (the loop below would not run): the common case
        return Status::Ok();
      }
      std::int64_t due = (t - sc.last_activity) / period;
      while (sc.steps_applied < due) {
        ++sc.steps_applied;
        TimeMs at = sc.last_activity + sc.steps_applied * period;
        double before = sc.value;
        sc.value = Clamp(s, sc.value - s.decay_amount);
        sc.as_of = at;
        if (sc.value != before) {
          Status st2 = Crossings(e, score, before, sc.value, at, Trigger{nullptr, &s.name});
          if (!st2.ok()) return st2;
        }
        if (s.floor && sc.value <= *s.floor) {
          sc.steps_applied = due;  // nothing more to remove
          break;
        }
      }
      sc.as_of = t;
    } else if (s.decay == dsl::DecayKind::kHalfLife && s.decay_seconds > 0) {
      double before = sc.value;
      double h = static_cast<double>(s.decay_seconds * kSecond);
      // Crossings happen at exact instants; report each below-threshold crossing at its time.
      std::vector<std::pair<TimeMs, const dsl::CompiledRule*>> hits;
      for (const auto* r : CrossingRules(score)) {
        if (r->direction == dsl::CrossDirection::kBelow && before >= r->threshold && r->threshold > 0) {
          double dt = h * std::log2(before / r->threshold);
          TimeMs at = sc.as_of + static_cast<TimeMs>(std::ceil(dt));
          if (at <= t) hits.emplace_back(at, r);
        }
      }
      std::sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second->name < b.second->name;
      });
      const TimeMs from = sc.as_of;
      for (const auto& [at, r] : hits) {
        double v = Clamp(s, before * std::exp2(-static_cast<double>(at - from) / h));
        Status st2 = FireCrossing(*r, e, s, before, v, at, Trigger{nullptr, &s.name});
        if (!st2.ok()) return st2;
      }
      ScoreState& sc2 = e.t->score(slot, e.n);
      sc2.value = Clamp(s, before * std::exp2(-static_cast<double>(t - from) / h));
      sc2.as_of = t;
    } else {
      sc.as_of = t;
    }
    return Status::Ok();
  }

  // Brings every score of an entity up to time t (journeys, before they read scores; the event
  // path does the same inline, from its plan).
  Status DecayAll(EntityRef e, TimeMs t) {
    for (std::size_t k = 0; k < e.t->score_ids.size(); ++k) {
      Status s = Decay(e, static_cast<int>(k), t);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }
  // Decay for the event path: false on failure, the Status kept in `failure` (the hot path
  // passes no Status objects around: each costs a string's set-up and tear-down).
  [[gnu::noinline]] bool DecayOne(EntityRef e, int slot, TimeMs t) { return Keep(Decay(e, slot, t)); }

  // The failure of a bool-returning step of the event path (DecayOne, OnEntityEvent, ApplySimple).
  Status failure;
  // Keeps `s` if it failed; returns whether it is ok.
  bool Keep(Status s) {
    if (s.ok()) return true;
    failure = std::move(s);
    return false;
  }
  Status TakeFailure() { return std::exchange(failure, Status::Ok()); }

  // Schedules the next time decay alone would take this score across a watched threshold.
  void ScheduleDecayTimer(EntityRef e, int slot) {
    const int score = e.t->score_ids[slot];
    const dsl::CompiledScore& s = p.scores[score];
    ScoreState& sc = e.t->score(slot, e.n);
    if (s.decay == dsl::DecayKind::kNone || s.decay_seconds <= 0 || sc.last_activity < 0) return;
    TimeMs best = -1;
    for (const auto* r : CrossingRules(score)) {
      if (r->direction != dsl::CrossDirection::kBelow || sc.value < r->threshold) continue;
      TimeMs at = -1;
      if (s.decay == dsl::DecayKind::kInactivity) {
        if (s.decay_amount <= 0) continue;
        double steps = std::floor((sc.value - r->threshold) / s.decay_amount) + 1;
        at = sc.last_activity + static_cast<TimeMs>(sc.steps_applied + steps) * s.decay_seconds * kSecond;
      } else if (r->threshold > 0) {
        at = sc.as_of + static_cast<TimeMs>(std::ceil(s.decay_seconds * kSecond * std::log2(sc.value / r->threshold)));
      }
      if (at >= 0 && (best < 0 || at < best)) best = at;
    }
    ScoreMarks& marks = e.t->marks(slot, e.n);
    if (best >= 0 && best != marks.timer_at) {
      marks.timer_at = best;
      timers.push({best, timer_seq++, TimerKind::kDecay, slot, static_cast<int>(e.t - tables.data()), e.n, 0});
    }
  }

  // Whether a change of a score from `before` to `after` crosses crossing rule r's threshold.
  static bool Crossed(const dsl::CompiledRule& r, double before, double after) {
    return r.direction == dsl::CrossDirection::kAbove ? (before <= r.threshold && after > r.threshold)
                                                       : (before >= r.threshold && after < r.threshold);
  }

  Status Crossings(EntityRef e, int score, double before, double after, TimeMs at, const Trigger& cause) {
    for (const auto* r : CrossingRules(score)) {
      if (!Crossed(*r, before, after)) continue;
      Status status = FireCrossing(*r, e, p.scores[score], before, after, at, cause);
      if (!status.ok()) return status;
    }
    return Status::Ok();
  }

  Status FireCrossing(const dsl::CompiledRule& r, EntityRef e, const dsl::CompiledScore& s, double before, double after,
                      TimeMs at, const Trigger& cause) {
    const CrossingHead head{&s, before, after};
    return RunEntityRule(r, e, cause.event, at, cause, &head);
  }

  // ------------------------------------------------------------ slots

  // Fills `out` (plan.access.size() values) for entity `e` and event `ev_in` (may be null).
  void FillPlan(const SlotPlan& plan, EntityRef e, const Event* ev_in, TimeMs now, std::vector<Value>& out) {
    for (std::size_t k = 0; k < plan.access.size(); ++k) {
      const SlotPlan::Access& a = plan.access[k];
      Value v = Value::Null();
      switch (a.kind) {
        case SlotKind::kEventField:
          if (ev_in) {
            if (ev_in->type_index == plan.event && a.index >= 0 && a.index < static_cast<int>(ev_in->fields.size())) {
              v = ev_in->fields[a.index].second.view();
            } else if (const OwnedValue* f = ev_in->Get(a.ref->name)) {
              v = f->view();
            }
          }
          break;
        case SlotKind::kEventTime:
          if (ev_in) v = Value::Number(static_cast<double>(ev_in->time));
          break;
        case SlotKind::kEntityKey:
          v = Value::Text(e.id());
          break;
        case SlotKind::kEntityField:
          if (e.t && a.index >= 0) v = e.t->fields[a.index].Get(e.n);
          break;
        case SlotKind::kScore:
          if (e.t && a.index >= 0) {
            const ScoreState& sc = e.t->score(a.index, e.n);
            if (sc.last_activity >= 0 && now > sc.as_of) Decay(e, a.index, now);  // else as of `now`
            v = Value::Number(e.t->score(a.index, e.n).value);
          }
          break;
        default:
          break;
      }
      out[k] = v;
    }
  }

  // Evaluates lets in order into their slots (scheduled units, whose slots are filled per row).
  void RunLets(const std::vector<std::pair<std::string, dsl::CompiledExpr>>& lets, const std::vector<dsl::SlotRef>& slots,
               std::vector<Value>& values, std::vector<std::string>& keep_alive) {
    (void)keep_alive;
    for (std::size_t i = 0; i < lets.size(); ++i) {
      Value v = ev.Run(lets[i].second, values.data());
      for (std::size_t k = 0; k < slots.size(); ++k) {
        if (slots[k].kind == SlotKind::kLet && slots[k].index == static_cast<int>(i)) values[k] = v;
      }
    }
  }

  void RunPlanLets(const SlotPlan& plan, const std::vector<std::pair<std::string, dsl::CompiledExpr>>& lets,
                   std::vector<Value>& values) {
    for (std::size_t i = 0; i < lets.size(); ++i) {
      Value v = ev.Run(lets[i].second, values.data());
      if (plan.let_slot[i] >= 0) values[plan.let_slot[i]] = v;
    }
  }

  // Adds the values a unit read to `j` (an object), one key per slot, in slot order.
  static void AddEvidence(nlohmann::ordered_json& j, const std::vector<dsl::SlotRef>& slots,
                          const std::vector<Value>& values) {
    for (std::size_t i = 0; i < slots.size(); ++i) {
      std::string name = EvidenceName(slots[i]);
      if (!name.empty()) j[name] = ToJsonValue(values[i]);
    }
  }
  // The same with the names computed once (a plan's).
  static void AddEvidence(nlohmann::ordered_json& j, const std::vector<std::string>& names,
                          const std::vector<Value>& values) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (!names[i].empty()) j[names[i]] = ToJsonValue(values[i]);
    }
  }
  static nlohmann::ordered_json Evidence(const std::vector<dsl::SlotRef>& slots, const std::vector<Value>& values) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    AddEvidence(j, slots, values);
    return j;
  }

  // ------------------------------------------------------------ actions (intentions)

  // An intended action as its log record (intents.hpp).
  nlohmann::ordered_json Intend(const dsl::CompiledAction& a, const std::vector<dsl::SlotRef>& slots,
                                const std::vector<Value>& values, std::string_view entity_type,
                                std::string_view entity_id, dsl::Mode mode) {
    return IntendAction(ev, a, slots, values.data(), entity_type, entity_id, mode);
  }

  // Applies `set` actions to engine state (only in live mode: dry_run and shadow change nothing).
  void ApplySets(const dsl::CompiledRule& r, const std::vector<Value>& values, EntityRef e, dsl::Mode mode) {
    if (mode != dsl::Mode::kLive || !e.t) return;
    for (const auto& a : r.actions) {
      if (a.kind != dsl::ActionKind::kSetField) continue;
      Value v = ev.Run(a.value, values.data());
      int f = e.t->FieldIndex(a.field);
      if (f < 0) continue;
      // Text views may point into the column being written: copy first.
      OwnedValue copy = OwnedValue::From(v);
      e.t->fields[f].Put(e.n, copy.view());
      MarkDirty(e);
    }
  }

  // Cooldown and limit gates: which one stops the rule (kFired: none), with what it found:
  // the end of the cooldown, or the firings in the limit's window.
  CompactDecision::Outcome ThrottleCheck(const std::string& rule, const dsl::RuleMeta& meta, std::string_view entity,
                                         TimeMs at, TimeMs& cooldown_until, std::uint64_t& fired_in_window) {
    if (meta.cooldown_seconds > 0) {
      auto lf = last_fired.find(rule);
      if (lf != last_fired.end()) {
        auto it = lf->second.find(std::string(entity));
        if (it != lf->second.end() && at - it->second < meta.cooldown_seconds * kSecond) {
          cooldown_until = it->second + meta.cooldown_seconds * kSecond;
          return CompactDecision::Outcome::kCooldown;
        }
      }
    }
    if (meta.limit_count > 0) {
      auto& ft = fire_times[rule];
      TimeMs window = meta.limit_seconds * kSecond;
      ft.erase(std::remove_if(ft.begin(), ft.end(), [&](TimeMs x) { return at - x >= window; }), ft.end());
      if (static_cast<int>(ft.size()) >= meta.limit_count) {
        fired_in_window = ft.size();
        return CompactDecision::Outcome::kLimit;
      }
    }
    return CompactDecision::Outcome::kFired;
  }

  // The same as a skip reason ("" if the rule may act), adding what it found to `evidence`.
  std::string Throttle(const std::string& rule, const dsl::RuleMeta& meta, std::string_view entity, TimeMs at,
                       nlohmann::ordered_json& evidence) {
    TimeMs cooldown_until = 0;
    std::uint64_t fired_in_window = 0;
    switch (ThrottleCheck(rule, meta, entity, at, cooldown_until, fired_in_window)) {
      case CompactDecision::Outcome::kCooldown:
        evidence["cooldown_until"] = FormatTime(cooldown_until);
        return "cooldown";
      case CompactDecision::Outcome::kLimit:
        evidence["limit"] = LimitText(meta);
        evidence["fired_in_window"] = static_cast<std::size_t>(fired_in_window);
        return "limit";
      case CompactDecision::Outcome::kFired:
        break;
    }
    return "";
  }

  // Decides a decision about to fire: a skip (outcome and reason filled in, the gate's
  // findings in its evidence) when the cooldown or the limit holds it back, and true; else
  // fired in the rule's mode, and false.
  bool Throttled(Decision& d, const dsl::CompiledRule& r, std::string_view entity, TimeMs at) {
    std::string skip = Throttle(r.name, r.meta, entity, at, d.evidence);
    if (!skip.empty()) {
      d.outcome = "skipped";
      d.reason = skip;
      return true;
    }
    d.outcome = "fired";
    d.reason = ModeName(r.meta.mode);
    return false;
  }

  // Records a firing for the gates that need it (cooldown: per entity; limit: per rule).
  void Fired(const std::string& rule, const dsl::RuleMeta& meta, std::string_view entity, TimeMs at) {
    if (meta.cooldown_seconds > 0) {
      last_fired[rule][std::string(entity)] = at;
      if (opts.track_state) dirty_cooldowns.emplace(rule, std::string(entity));
    }
    if (meta.limit_count > 0) {
      fire_times[rule].push_back(at);
      fire_times_dirty = true;
    }
  }

  // An event or crossing rule on one entity. `head`: the crossing that set it off (null for
  // event rules).
  Status RunEntityRule(const dsl::CompiledRule& r, EntityRef e, const Event* event, TimeMs at, const Trigger& trigger,
                       const CrossingHead* head) {
    const std::size_t ri = static_cast<std::size_t>(&r - p.rules.data());
    UnitHealth& h = *rule_health[ri];
    h.evaluations++;
    h.last_evaluation = at;
    const SlotPlan& plan = rule_plans[ri];
    ValuesGuard guard(*this, plan.access.size());
    std::vector<Value>& values = guard.v;
    FillPlan(plan, e, event, at, values);
    RunPlanLets(plan, r.lets, values);
    if (!ev.Test(r.condition, values.data())) {
      NotFiredRule(r);
      if (!opts.log_every_evaluation) return Status::Ok();
      // Evidence is only built when it will be logged: this is the hot path of event rules.
      return EmitRuleOutcome(r, at, trigger.Text(), e.type(), e.id(), "not_fired", "condition_false",
                             Evidence(r.slots, values));
    }
    Status s;
    if (opts.compact_decisions) {
      // The compact record (compact_decision.hpp): typed values and copied texts, no JSON.
      CompactDecision& c = compact;
      c.Reset();
      c.rule = &r;
      c.event_time = at;
      c.processing_time = deps.clock->Now();
      if (trigger.event) {
        c.has_event = true;
        c.text.append(trigger.event->id);
        c.event_id_size = static_cast<std::uint32_t>(trigger.event->id.size());
      }
      if (e.t) {
        c.entity_type = &e.t->info->name;
        const std::string_view id = e.id();
        c.text.append(id);
        c.entity_id_size = static_cast<std::uint32_t>(id.size());
      }
      if (head) {
        c.score = head->score;
        c.previous = head->before;
        c.value = head->after;
      }
      for (const Value& v : values) c.Add(v);
      c.outcome = ThrottleCheck(r.name, r.meta, e.id(), at, c.cooldown_until, c.fired_in_window);
      if (!deps.sink->AppendCompact(c)) return Status::IoError("the decision log refused a record");
      if (c.outcome != CompactDecision::Outcome::kFired) return Status::Ok();
    } else {
      Decision d = NewDecision("rule", r.name, r.version, at);
      d.trigger = trigger.Text();
      d.entity_type = e.type();
      d.entity_id = e.id();
      if (head) d.evidence = CrossingEvidence(r, *head->score, head->before, head->after, trigger.Cause());
      AddEvidence(d.evidence, plan.evidence_names, values);
      if (Throttled(d, r, e.id(), at)) return Emit(d);
      for (const auto& a : r.actions) d.actions.push_back(Intend(a, r.slots, values, e.type(), e.id(), r.meta.mode));
      s = Emit(d);
      if (!s.ok()) return s;
    }
    h.fired++;
    Fired(r.name, r.meta, e.id(), at);
    ApplySets(r, values, e, r.meta.mode);
    return Status::Ok();
  }

  // Logs one outcome of a rule for one entity (skips, and with log_every_evaluation the
  // evaluations that did not fire).
  Status EmitRuleOutcome(const dsl::CompiledRule& r, TimeMs at, const std::string& trigger, std::string_view type,
                         std::string_view id, const char* outcome, const char* reason,
                         nlohmann::ordered_json evidence) {
    Decision d = NewDecision("rule", r.name, r.version, at);
    d.trigger = trigger;
    d.entity_type = type;
    d.entity_id = id;
    d.outcome = outcome;
    d.reason = reason;
    d.evidence = std::move(evidence);
    return Emit(d);
  }

  // Counts an evaluation that did not fire; logs it too when asked to.
  Status NotFired(const dsl::CompiledRule& r, TimeMs at, const std::string& trigger, std::string_view type,
                  std::string_view id, nlohmann::ordered_json evidence) {
    NotFiredRule(r);
    if (!opts.log_every_evaluation) return Status::Ok();
    return EmitRuleOutcome(r, at, trigger, type, id, "not_fired", "condition_false", std::move(evidence));
  }

  // ------------------------------------------------------------ events

  // Whether `e` is as ParseEvent and NormalizeEvent deliver events (fields in declaration
  // order, type_index set); other events are normalized on a copy first.
  [[gnu::always_inline]] bool IsNormalized(const Event& e) const {
    return static_cast<std::size_t>(e.type_index) < type_names.size() && SameText(type_names[e.type_index], e.type);
  }

  // The hashes of an event's id and entity keys, computed ahead by the batch path (OnEvents)
  // so that it can prefetch, and so that applying the event does not hash again.
  static constexpr std::size_t kHashedRoutes = 4;
  struct EventHashes {
    XXH128_hash_t id;
    std::uint64_t keys[kHashedRoutes];  // by position in the type plan's routes (0: no key)
  };
  // The key an event gives entity route `route`, or empty (no key: the route does not apply).
  static std::string_view RouteKey(const Event& e, const EventRoute& route) {
    if (route.key_field < 0) return {};
    const OwnedValue& key = e.fields[route.key_field].second;
    if (key.kind != Value::Kind::kText) return {};
    return key.text;
  }
  // The hashes of an event's entity keys (its id's hash is taken separately, earlier).
  [[gnu::always_inline]] static void HashKeys(const Event& e, const TypePlan& plan, EventHashes& h) {
    for (std::size_t r = 0; r < plan.nhashed; ++r) {
      const std::string_view key = RouteKey(e, plan.routes[r].route);
      h.keys[r] = key.empty() ? 0 : HashId(key);
    }
  }
  // Prefetching for the batch path: the entity index slots of an event's keys.
  [[gnu::always_inline]] static void PrefetchIndexSlots(const TypePlan& plan, const EventHashes& h) {
    for (std::size_t r = 0; r < plan.nhashed; ++r) {
      if (h.keys[r]) plan.routes[r].table->PrefetchSlot(h.keys[r]);
    }
  }
  // Then, a few events later: the entities' headers and score rows.
  [[gnu::always_inline]] static void PrefetchEntities(const TypePlan& plan, const EventHashes& h) {
    for (std::size_t r = 0; r < plan.nhashed; ++r) {
      if (h.keys[r]) plan.routes[r].table->PrefetchEntity(h.keys[r]);
    }
  }

  // Applies one event. `pre`: its hashes (HashEvent), if computed already, which only the
  // batch path does, and only for events that are IsNormalized.
  Status OnEvent(const Event& in, const EventHashes* pre = nullptr) {
    // Events built by hand (tests, tools) are put in declaration order first; ParseEvent's
    // events already are.
    if (!pre && !IsNormalized(in)) return OnEventToNormalize(in);
    switch (ApplyEvent(in, pre)) {
      case Applied::kYes: return Status::Ok();
      case Applied::kDuplicate: return DuplicateStatus(in);
      case Applied::kFailed: break;
    }
    return TakeFailure();
  }
  [[gnu::noinline]] Status OnEventToNormalize(const Event& in) {
    Event normalized = in;
    Status ns = NormalizeEvent(p, normalized);
    if (!ns.ok()) return ns;
    return OnEvent(normalized, nullptr);
  }
  [[gnu::noinline]] static Status DuplicateStatus(const Event& e) {
    return Status::InvalidArgument("duplicate event id `" + e.id + "`");
  }

  // What ApplyEvent did: applied the event, rejected it as a duplicate (nothing applied), or
  // failed part way (the Status in `failure`; the hot path builds no Status objects).
  enum class Applied : std::uint8_t { kYes, kDuplicate, kFailed };

  // OnEvent for a normalized event.
  Applied ApplyEvent(const Event& e, const EventHashes* pre) {
    const XXH128_hash_t id_hash = pre ? pre->id : SeenIds::HashOf(e.id);
    if (!seen_events.InsertHashed(id_hash)) {
      self.duplicates_++;
      return Applied::kDuplicate;
    }
    if (opts.track_state) new_event_hashes.push_back(id_hash);
    const TypePlan& plan = type_plans[e.type_index];
    for (std::size_t r = 0; r < plan.nroutes; ++r) {
      const RouteStep& route = plan.routes[r];
      const std::string_view key = RouteKey(e, route.route);
      if (key.empty()) continue;
      const std::uint64_t h = pre && r < kHashedRoutes ? pre->keys[r] : HashId(key);
      if (!OnEntityEvent(e, route, key, h)) return Applied::kFailed;
    }
    // Event rules on events that belong to no entity.
    if (plan.entityless_rules && !EntitylessRules(e)) return Applied::kFailed;
    return Applied::kYes;
  }
  [[gnu::noinline]] bool EntitylessRules(const Event& e) {
    for (const dsl::CompiledRule* rp : event_rules[e.type_index]) {
      const dsl::CompiledRule& r = *rp;
      const SlotPlan& plan = rule_plans[rp - p.rules.data()];
      ValuesGuard guard(*this, plan.access.size());
      FillPlan(plan, EntityRef{}, &e, e.time, guard.v);
      if (!ev.Test(r.event_filter, guard.v.data())) continue;
      if (!Keep(RunEntityRule(r, EntityRef{}, &e, e.time, Trigger{&e, nullptr}, nullptr))) return false;
    }
    return true;
  }

  // Applies event `e` to the entity of `route` whose id is `id` (`key_hash`: HashId(id)).
  // False on failure (the Status in `failure`). Everything it walks was laid out per event
  // type when the engine started (TypePlan); the order of the steps is the documented one:
  // decay up to the event, fields, each score's rules and crossings, event rules, journeys.
  bool OnEntityEvent(const Event& e, const RouteStep& route, std::string_view id, std::uint64_t key_hash) {
    // The common steps are inline; everything rarer (a decay step due, a crossing, fields to
    // copy, event rules, journeys, conditions for the VM, decay timers) is a call, so that
    // the common path keeps its values in registers. Nothing here creates entities, so the
    // table's rows stay where they are while the event is applied; `row` is still taken
    // again after each call, which costs nothing on the common path.
    EntityTable& t = *route.table;
    const std::uint32_t n = t.InternHashed(id, key_hash);
    const EntityRef ent{&t, n};
    MarkDirty(ent);
    const std::size_t nscores = route.nscores;
    auto row = [&] { return t.score_rows.data() + n * nscores; };
    // Late events are applied as of the latest time seen for the entity: decay never rewinds.
    const TimeMs at = std::max(e.time, t.rows[n].last_event);
    // Decay up to `at` (the common cases inline: DecayDone).
    for (const ScoreStep& s : route.scores) {
      if (!DecayDone(row()[s.k], s, at) && !DecayOne(ent, s.k, at)) return false;
    }
    t.rows[n].last_event = at;
    if (!route.updates.empty()) CopyFields(e, ent, route);
    // Scores: event rules, then condition rules (`when ... once`).
    for (const ScoreStep& s : route.scores) {
      const double delta = s.any_vm ? ScoreDeltaVm(e, ent, s, at) : ScoreDelta(e, s, t.marks(s.k, n));
      if (!ApplyDelta(e, ent, s, row()[s.k], delta, at)) return false;
      if (s.watched_below) ScheduleDecayTimer(ent, s.k);
    }
    if (route.rules.empty() && !route.journeys) return true;
    return EventRulesAndJourneys(e, ent, route, at);
  }

  // ApplyEvent for an event of a `simple` type (one keyed entity with exactly one score, and
  // nothing else on it) whose hashes the batch path computed: the same steps as ApplyEvent
  // and OnEntityEvent, in the same order, with only what such a type can need, straight-line
  // (the compact_decision tests compare the two paths event for event).
  [[gnu::always_inline]] Applied ApplySimple(const Event& e, const RouteStep& route, const EventHashes& h) {
    if (!seen_events.InsertHashed(h.id)) [[unlikely]] {
      self.duplicates_++;
      return Applied::kDuplicate;
    }
    if (opts.track_state) new_event_hashes.push_back(h.id);
    const OwnedValue& key = e.fields[route.route.key_field].second;
    if (key.kind != Value::Kind::kText || key.text.empty()) [[unlikely]] return Applied::kYes;
    EntityTable& t = *route.table;
    const std::uint32_t n = t.InternHashed(key.text, h.keys[0]);
    const EntityRef ent{&t, n};
    MarkDirty(ent);
    const ScoreStep& s = route.scores[0];
    const TimeMs at = std::max(e.time, t.rows[n].last_event);
    ScoreState* ss = &t.score_rows[n];  // one score per entity: row n
    if (!DecayDone(*ss, s, at)) {
      if (!DecayOne(ent, 0, at)) return Applied::kFailed;
      ss = &t.score_rows[n];
    }
    t.rows[n].last_event = at;
    const double delta = ScoreDelta(e, s, t.score_marks[n]);
    return ApplyDelta(e, ent, s, *ss, delta, at) ? Applied::kYes : Applied::kFailed;
  }

  // The steps of applying an event to one score that both event paths share.
  // Whether score `sc` is as of `at` without a decay step: nothing to do, or inactivity decay
  // with no step due yet (what Decay does for them, inline; the entity is marked changed
  // already). False: Decay must run.
  [[gnu::always_inline]] static bool DecayDone(ScoreState& sc, const ScoreStep& s, TimeMs at) {
    if (sc.last_activity < 0 || at <= sc.as_of) return true;
    if (s.inactivity_period > 0 && at - sc.last_activity < s.inactivity_period && sc.steps_applied >= 0) {
      sc.as_of = at;
      return true;
    }
    return false;
  }
  // The sum of the amounts of the score's rules that apply to `e`, none of them needing the
  // VM; `once` rules marked in `marks` (the score's, read only if it has `once` rules).
  [[gnu::always_inline]] static double ScoreDelta(const Event& e, const ScoreStep& s, ScoreMarks& marks) {
    double delta = 0;
    std::uint64_t once_mask = s.any_once ? marks.once_mask : 0;
    const HotScoreRule* const end = s.rules.data() + s.rules.size();
    for (const HotScoreRule* rule = s.rules.data(); rule != end; ++rule) {
      if (once_mask & rule->once_bit) continue;
      if (!rule->cond.Test(e)) continue;
      delta += rule->amount;
      once_mask |= rule->once_bit;
    }
    if (s.any_once) marks.once_mask = once_mask;
    return delta;
  }
  // The event's activity on score `ss` (the inactivity clock restarts) and its change by
  // `delta`, clamped, with the crossing rules it sets off. False on failure (in `failure`).
  [[gnu::always_inline]] bool ApplyDelta(const Event& e, EntityRef ent, const ScoreStep& s, ScoreState& ss,
                                         double delta, TimeMs at) {
    ss.last_activity = at;
    ss.steps_applied = 0;
    ss.as_of = at;
    if (delta == 0) return true;
    const double before = ss.value;
    const double after = std::min(std::max(before + delta, s.floor), s.cap);  // Clamp
    ss.value = after;
    // A crossing rule fires only if one of the score's thresholds lies between the values.
    if (!(std::min(before, after) <= s.max_threshold && std::max(before, after) >= s.min_threshold)) return true;
    return CrossingsSimple(e, ent, s, before, after, at);
  }
  // The crossing rules of score step `s` that the change crosses, fired in order.
  [[gnu::noinline]] bool CrossingsSimple(const Event& e, EntityRef ent, const ScoreStep& s, double before, double after,
                                         TimeMs at) {
    for (const dsl::CompiledRule* r : s.crossings) {
      if (Crossed(*r, before, after) && !FireCrossingFast(*r, e, ent, s, before, after, at)) return false;
    }
    return true;
  }

  [[gnu::noinline]] void CopyFields(const Event& e, EntityRef ent, const RouteStep& route) {
    for (const auto& [field, event_field] : route.updates) {
      ent.t->fields[field].Put(ent.n, e.fields[event_field].second.view());
    }
  }

  [[gnu::noinline]] bool FireCrossingFast(const dsl::CompiledRule& r, const Event& e, EntityRef ent, const ScoreStep& s,
                                          double before, double after, TimeMs at) {
    return Keep(FireCrossing(r, ent, *s.sc, before, after, at, Trigger{&e, &s.sc->name}));
  }

  // The event rules of the event's type on the entity's table, then its journeys.
  [[gnu::noinline]] bool EventRulesAndJourneys(const Event& e, EntityRef ent, const RouteStep& route, TimeMs at) {
    for (const dsl::CompiledRule* rp : route.rules) {
      const dsl::CompiledRule& r = *rp;
      const FastCondition& filter = rule_filters[rp - p.rules.data()];
      if (filter.kind != FastCondition::Kind::kVm) {
        if (!filter.Test(e)) {
          NotFiredRule(r);
          continue;
        }
      } else {
        const SlotPlan& plan = rule_plans[rp - p.rules.data()];
        ValuesGuard guard(*this, plan.access.size());
        FillPlan(plan, ent, &e, at, guard.v);
        if (!ev.Test(r.event_filter, guard.v.data())) {
          NotFiredRule(r);
          continue;
        }
      }
      if (!Keep(RunEntityRule(r, ent, &e, at, Trigger{&e, nullptr}, nullptr))) return false;
    }
    if (!route.journeys) return true;
    return Keep(JourneysOnEvent(e, ent, at));
  }

  // The sum of the amounts of score step `s`'s rules that apply to event `e`, when one of
  // them needs the VM. Slots are filled once, when the first such rule is reached: nothing
  // changes while the rules are tested, so filling late reads what filling first would have.
  [[gnu::noinline]] double ScoreDeltaVm(const Event& e, EntityRef ent, const ScoreStep& s, TimeMs at) {
    std::optional<ValuesGuard> guard;
    std::uint64_t once_mask = ent.t->marks(s.k, ent.n).once_mask;
    double delta = 0;
    for (const HotScoreRule& rule : s.rules) {
      if (once_mask & rule.once_bit) continue;
      if (rule.cond.kind != FastCondition::Kind::kVm) {
        if (!rule.cond.Test(e)) continue;
      } else {
        if (!guard) {
          const SlotPlan& plan = score_plans[s.score][e.type_index];
          guard.emplace(*this, plan.access.size());
          FillPlan(plan, ent, &e, at, guard->v);
        }
        if (!ev.Test(rule.rule->condition, guard->v.data())) continue;
      }
      delta += rule.amount;
      once_mask |= rule.once_bit;
    }
    ent.t->marks(s.k, ent.n).once_mask = once_mask;
    return delta;
  }



  // ------------------------------------------------------------ journeys

  Status JourneyDecision(const dsl::CompiledJourney& j, std::string_view id, TimeMs at, const std::string& trigger,
                         const std::string& outcome, const std::string& reason, nlohmann::ordered_json actions = {}) {
    Decision d = NewDecision("journey", j.name, j.version, at);
    d.trigger = trigger;
    d.entity_type = j.entity;
    d.entity_id = id;
    d.outcome = outcome;
    d.reason = reason;
    if (!actions.is_null()) d.actions = std::move(actions);
    return Emit(d);
  }

  Status JourneysOnEvent(const Event& e, EntityRef ent, TimeMs at) {
    const std::string_view id = ent.id();
    for (std::size_t ji = 0; ji < p.journeys.size(); ++ji) {
      const dsl::CompiledJourney& j = p.journeys[ji];
      if (&tables[journey_table[ji]] != ent.t) continue;
      auto& instances = journeys[ji];
      auto it = instances.find(ent.n);
      if (it != instances.end() && it->second.status == JourneyStatus::kWaiting) {
        const dsl::CompiledStep& step = j.steps[it->second.step];
        for (const auto& [event, target] : step.on_event) {
          if (event != e.type) continue;
          JourneyInstance& inst = it->second;
          inst.generation++;  // cancels the timeout
          Status s = JourneyDecision(j, id, at, "event:" + e.id, "branch", "on " + event);
          if (!s.ok()) return s;
          inst.status = JourneyStatus::kRunning;
          inst.step = target;
          s = RunJourney(ji, ent, at, "event:" + e.id);
          if (!s.ok()) return s;
          break;
        }
        continue;
      }
      if (j.enter_event != e.type) continue;
      if (it != instances.end() && it->second.status != JourneyStatus::kDone) continue;  // one at a time
      {
        ValuesGuard guard(*this, journey_plans[ji].access.size());
        FillPlan(journey_plans[ji], ent, &e, at, guard.v);
        if (!ev.Test(j.enter_condition, guard.v.data())) {
          not_fired["journey:" + j.name]++;
          continue;
        }
      }
      JourneyInstance inst;
      inst.entered = at;
      inst.generation = it == instances.end() ? 1 : it->second.generation + 1;
      // The frequency cap counts every message of the journey to this entity, across
      // instances: a lead who re-enters keeps the send times of the earlier ones.
      if (it != instances.end()) inst.sends = std::move(it->second.sends);
      instances[ent.n] = std::move(inst);
      Status s = JourneyDecision(j, id, at, "event:" + e.id, "entered", "");
      if (!s.ok()) return s;
      s = RunJourney(ji, ent, at, "event:" + e.id);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  // Runs a journey instance from its current step until it waits, defers or ends.
  Status RunJourney(std::size_t ji, EntityRef ent, TimeMs at, const std::string& trigger) {
    const dsl::CompiledJourney& j = p.journeys[ji];
    const std::string_view id = ent.id();
    if (opts.track_state) dirty_journeys.emplace(ji, ent.n);
    JourneyInstance& inst = journeys[ji][ent.n];
    const SlotPlan& plan = journey_plans[ji];
    ValuesGuard guard(*this, plan.access.size());
    std::vector<Value>& values = guard.v;
    for (int guard = 0; guard < 10000; ++guard) {
      if (inst.step < 0 || inst.step >= static_cast<int>(j.steps.size())) {
        inst.status = JourneyStatus::kDone;
        return JourneyDecision(j, id, at, trigger, "completed", "");
      }
      // The exit condition is checked before every step.
      FillPlan(plan, ent, nullptr, at, values);
      if (!j.exit_condition.empty() && ev.Test(j.exit_condition, values.data())) {
        inst.status = JourneyStatus::kDone;
        inst.generation++;
        return JourneyDecision(j, id, at, trigger, "exited", "exit condition");
      }
      const dsl::CompiledStep& step = j.steps[inst.step];
      switch (step.kind) {
        case dsl::StepKind::kAction: {
          bool is_message = step.action.kind == dsl::ActionKind::kEmail || step.action.kind == dsl::ActionKind::kMessage;
          if (is_message && j.quiet_start_minute >= 0) {
            std::string zone = j.quiet_timezone;
            if (!j.quiet_timezone_field.empty()) {
              int f = ent.t->FieldIndex(j.quiet_timezone_field);
              if (f >= 0) {
                Value z = ent.t->fields[f].Get(ent.n);
                if (z.kind == Value::Kind::kText) zone = std::string(z.text);
              }
            }
            if (zone.empty()) zone = "UTC";
            bool ok = true;
            TimeMs release = QuietHoursRelease(at, j.quiet_start_minute, j.quiet_end_minute, zone, ok);
            if (!ok) release = QuietHoursRelease(at, j.quiet_start_minute, j.quiet_end_minute, "UTC", ok);
            if (release > at) {
              inst.status = JourneyStatus::kDeferred;
              inst.resume_at = release;
              inst.generation++;
              timers.push({release, timer_seq++, TimerKind::kJourney, static_cast<int>(ji), journey_table[ji], ent.n,
                           inst.generation});
              nlohmann::ordered_json none = nlohmann::ordered_json::array();
              return JourneyDecision(j, id, at, trigger, "deferred",
                                     "quiet hours in " + zone + " until " + FormatTime(release), none);
            }
          }
          if (is_message && j.cap_count > 0) {
            TimeMs window = j.cap_seconds * kSecond;
            inst.sends.erase(std::remove_if(inst.sends.begin(), inst.sends.end(), [&](TimeMs x) { return at - x >= window; }),
                             inst.sends.end());
            if (static_cast<int>(inst.sends.size()) >= j.cap_count) {
              Status s = JourneyDecision(j, id, at, trigger, "skipped", "cap: step " + step.name);
              if (!s.ok()) return s;
              inst.step = step.next;
              break;
            }
          }
          FillPlan(plan, ent, nullptr, at, values);
          nlohmann::ordered_json actions = nlohmann::ordered_json::array();
          actions.push_back(Intend(step.action, j.slots, values, j.entity, id, j.meta.mode));
          Status s = JourneyDecision(j, id, at, trigger, "step", step.name, actions);
          if (!s.ok()) return s;
          if (is_message) inst.sends.push_back(at);
          inst.step = step.next;
          break;
        }
        case dsl::StepKind::kWait: {
          inst.status = JourneyStatus::kWaiting;
          inst.wait_until = at + step.wait_seconds * kSecond;
          inst.generation++;
          timers.push({inst.wait_until, timer_seq++, TimerKind::kJourney, static_cast<int>(ji), journey_table[ji], ent.n,
                       inst.generation});
          std::string what = "until " + FormatTime(inst.wait_until);
          if (!step.on_event.empty()) {
            what = "for";
            for (const auto& [evn, t] : step.on_event) what += " " + evn;
            what += " until " + FormatTime(inst.wait_until);
          }
          return JourneyDecision(j, id, at, trigger, "waiting", what);
        }
        case dsl::StepKind::kGoto:
          inst.step = step.target;
          break;
        case dsl::StepKind::kEnd:
          inst.status = JourneyStatus::kDone;
          return JourneyDecision(j, id, at, trigger, "completed", "end");
      }
    }
    inst.status = JourneyStatus::kDone;
    return JourneyDecision(j, id, at, trigger, "stopped", "the journey looped 10000 steps without waiting");
  }

  Status JourneyTimer(const Timer& t) {
    auto& instances = journeys[t.unit];
    auto it = instances.find(t.entity);
    if (it == instances.end() || it->second.generation != t.generation) return Status::Ok();  // superseded
    JourneyInstance& inst = it->second;
    const dsl::CompiledJourney& j = p.journeys[t.unit];
    EntityRef ent{&tables[t.table], t.entity};
    MarkDirty(ent);
    Status s = DecayAll(ent, t.at);
    if (!s.ok()) return s;
    if (inst.status == JourneyStatus::kWaiting) {
      const dsl::CompiledStep& step = j.steps[inst.step];
      s = JourneyDecision(j, ent.id(), t.at, "timer:wait", "timeout", "");
      if (!s.ok()) return s;
      inst.step = step.on_timeout >= 0 ? step.on_timeout : step.next;
    }
    std::string trigger = inst.status == JourneyStatus::kDeferred ? "timer:quiet_hours" : "timer:wait";
    inst.status = JourneyStatus::kRunning;
    return RunJourney(t.unit, ent, t.at, trigger);
  }

  // ------------------------------------------------------------ time

  Status RunTimersUntil(TimeMs t) {
    while (!timers.empty() && timers.top().at <= t) {
      Timer tm = timers.top();
      timers.pop();
      if (tm.kind == TimerKind::kDecay) {
        EntityRef ent{&tables[tm.table], tm.entity};
        ScoreMarks& marks = ent.t->marks(tm.unit, ent.n);
        if (marks.timer_at != tm.at) continue;  // superseded by later activity
        marks.timer_at = -1;
        Status s = Decay(ent, tm.unit, tm.at);
        if (!s.ok()) return s;
        ScheduleDecayTimer(ent, tm.unit);
      } else {
        Status s = JourneyTimer(tm);
        if (!s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  // Whether AdvanceTo(t) has nothing to run (no schedules, no timer due): the common case
  // between two events, checked without a call.
  bool NothingDue(TimeMs t) const { return !opts.run_schedules && (timers.empty() || timers.top().at > t); }

  Status AdvanceTo(TimeMs t) {
    if (NothingDue(t)) {
      self.now_ = std::max(self.now_, t);
      return Status::Ok();
    }
    return AdvanceToDue(t);
  }
  [[gnu::noinline]] Status AdvanceToDue(TimeMs t) {
    // Timers and schedule ticks interleave in time order.
    while (true) {
      TimeMs next_timer = timers.empty() ? -1 : timers.top().at;
      std::string tick_unit;
      TimeMs next_sched = -1;
      if (opts.run_schedules) NextSchedule(t, tick_unit, next_sched);
      if (next_timer >= 0 && next_timer <= t && (next_sched < 0 || next_timer <= next_sched)) {
        Status s = RunTimersUntil(next_timer);
        if (!s.ok()) return s;
        continue;
      }
      if (next_sched >= 0 && next_sched <= t) {
        if (opts.coalesce_missed_ticks) {
          Status s = CoalesceMissedTicks(tick_unit, next_sched, t);
          if (!s.ok()) return s;
        }
        Status s = RunTick(tick_unit, next_sched);
        if (!s.ok()) return s;
        continue;
      }
      break;
    }
    self.now_ = std::max(self.now_, t);
    return Status::Ok();
  }

  // ------------------------------------------------------------ batches

  // Engine::OnEvents: AdvanceTo(e.time) then OnEvent(e) for each event in order, with the
  // memory each event touches (its seen-id slot, its entities' index slots, headers and score
  // rows) requested kPrefetchDistance events ahead, in two steps, and each id and key hashed
  // once. Prefetches are hints: what they fetch is looked up again when the event is applied.
  static constexpr std::size_t kPrefetchDistance = 8;  // step 1 at i + 8, step 2 at i + 4
  Status OnEvents(std::span<const Event> events, std::vector<Status>* per_event) {
    // The stages, each kStep events after the one before:
    //   A (i + 4 steps): the Event struct is requested;
    //   B (i + 3 steps): its type is checked, its id hashed, and its seen-id slot and its
    //                    fields' block requested;
    //   C (i + 2 steps): its entity keys hashed and their index slots requested;
    //   D (i + 1 step):  its entities' headers and score rows requested;
    //   then it is applied.
    constexpr std::size_t kStep = kPrefetchDistance / 2;
    constexpr std::size_t kRing = 32;  // > 3 steps, a power of two
    EventHashes ring[kRing];
    const TypePlan* plans[kRing];  // null: not normalized (applied by OnEvent, which copies it)
    auto stage_a = [&](std::size_t j) __attribute__((always_inline)) {
      const char* at = reinterpret_cast<const char*>(&events[j]);
      engine_detail::PrefetchL2(at);
      engine_detail::PrefetchL2(at + sizeof(Event) - 1);
    };
    auto stage_b = [&](std::size_t j) __attribute__((always_inline)) {
      const Event& e = events[j];
      const std::size_t r = j % kRing;
      plans[r] = IsNormalized(e) ? &type_plans[e.type_index] : nullptr;
      if (!plans[r]) return;
      ring[r].id = SeenIds::HashOf(e.id);
      seen_events.Prefetch(ring[r].id);
      if (e.fields.empty()) return;
      const char* at = reinterpret_cast<const char*>(e.fields.data());
      engine_detail::Prefetch(at);
      engine_detail::Prefetch(at + e.fields.size() * sizeof(e.fields[0]) - 1);
    };
    auto stage_c = [&](std::size_t j) __attribute__((always_inline)) {
      const std::size_t r = j % kRing;
      if (!plans[r]) return;
      HashKeys(events[j], *plans[r], ring[r]);
      PrefetchIndexSlots(*plans[r], ring[r]);
    };
    const std::size_t n = events.size();
    if (per_event) per_event->clear();
    // Room in the duplicate check for the whole batch at once, instead of doubling the table
    // (a rehash of every id seen) as it fills; duplicates in the batch only leave it roomier.
    self.ReserveEvents(n);
    for (std::size_t j = 0; j < n && j < 4 * kStep; ++j) stage_a(j);
    for (std::size_t j = 0; j < n && j < 3 * kStep; ++j) stage_b(j);
    for (std::size_t j = 0; j < n && j < 2 * kStep; ++j) stage_c(j);
    for (std::size_t j = 0; j < n && j < kStep; ++j) {
      if (plans[j % kRing]) PrefetchEntities(*plans[j % kRing], ring[j % kRing]);
    }
    auto stage_d = [&](std::size_t j) __attribute__((always_inline)) {
      if (plans[j % kRing]) PrefetchEntities(*plans[j % kRing], ring[j % kRing]);
    };
    // Applies event i; false if the batch stops there (with `stop`).
    Status stop;
    auto apply = [&](std::size_t i) __attribute__((always_inline)) {
      const Event& e = events[i];
      if (!NothingDue(e.time)) {
        Status s = AdvanceToDue(e.time);
        if (!s.ok()) {
          if (per_event) per_event->push_back(s);
          if (s.code() == Status::Code::kInvalidArgument) return true;
          stop = std::move(s);
          return false;
        }
      }
      self.now_ = std::max(self.now_, e.time);
      Applied applied;
      if (const TypePlan* plan = plans[i % kRing]) {
        applied = plan->simple ? ApplySimple(e, plan->routes[0], ring[i % kRing]) : ApplyEvent(e, &ring[i % kRing]);
      } else {
        // Not normalized: OnEvent normalizes a copy (or rejects it) and applies it.
        Status s = OnEvent(e, nullptr);
        if (per_event) per_event->push_back(s);
        if (s.ok() || s.code() == Status::Code::kInvalidArgument) return true;
        stop = std::move(s);
        return false;
      }
      if (applied == Applied::kYes) [[likely]] {
        if (per_event) per_event->push_back(Status::Ok());
        return true;
      }
      Status s = applied == Applied::kDuplicate ? DuplicateStatus(e) : TakeFailure();
      if (per_event) per_event->push_back(s);
      if (applied != Applied::kFailed || s.code() == Status::Code::kInvalidArgument) return true;
      stop = std::move(s);
      return false;
    };
    std::size_t i = 0;
    // The steady state, without the end-of-batch checks; then the last events.
    for (; i + 4 * kStep < n; ++i) {
      stage_a(i + 4 * kStep);
      stage_b(i + 3 * kStep);
      stage_c(i + 2 * kStep);
      stage_d(i + kStep);
      if (!apply(i)) return stop;
    }
    for (; i < n; ++i) {
      if (i + 3 * kStep < n) stage_b(i + 3 * kStep);
      if (i + 2 * kStep < n) stage_c(i + 2 * kStep);
      if (i + kStep < n) stage_d(i + kStep);
      if (!apply(i)) return stop;
    }
    return Status::Ok();
  }

  // ------------------------------------------------------------ schedules (engine_scheduled.cpp)

  void NextSchedule(TimeMs limit, std::string& unit, TimeMs& at);
  Status RunTick(const std::string& unit, TimeMs at);
  // Daemon policy (EngineOptions::coalesce_missed_ticks): moves `at` forward to the latest
  // tick of `unit` due by `now` and logs a late record if ticks were missed or `at` is late.
  Status CoalesceMissedTicks(const std::string& unit, TimeMs& at, TimeMs now);
  const dsl::Schedule* ScheduleOf(const std::string& unit) const;
  Status RunScheduledRule(const dsl::CompiledRule& r, TimeMs at);
  Status RunAlert(const dsl::CompiledAlert& a, TimeMs at);
  // One tick's window rows, lined up by entity (LineUpByKey, window_rows.hpp): `keys` is the
  // sorted union of the keys of all queries, and at[q][i] is the row of keys[i] in query q
  // (null when that query has none).
  struct TickData {
    std::vector<std::vector<WindowRow>> rows;       // per query, as the warehouse returned them
    std::vector<std::vector<const WindowRow*>> at;  // per query, per key position
    std::vector<WindowBounds> bounds;
    std::vector<std::string> keys;
    std::string newest;  // the table's newest time ("" when not read)
    static constexpr std::size_t kAbsent = static_cast<std::size_t>(-1);
    // The position of `key` in `keys`, or kAbsent.
    std::size_t Position(const std::string& key) const {
      auto it = std::lower_bound(keys.begin(), keys.end(), key);
      return it != keys.end() && *it == key ? static_cast<std::size_t>(it - keys.begin()) : kAbsent;
    }
    const WindowRow* Row(std::size_t query, std::size_t pos) const {
      return pos == kAbsent ? nullptr : at[query][pos];
    }
  };
  // A scheduled unit's slots as columns over a tick's keys (Evaluator::RunBatch/TestBatch), with
  // the lets run over them in order: column k at row i is what RowSlots gives slot k of keys[i].
  struct TickColumns {
    std::vector<SlotColumn> cols;
    std::vector<std::vector<double>> numbers;  // per slot; empty unless the slot is all numbers
    std::vector<std::vector<Value>> values;    // per slot; empty unless it has other values
    Value At(std::size_t slot, std::size_t row) const {
      const SlotColumn& c = cols[slot];
      if (c.numbers) return Value::Number(c.numbers[row]);
      if (c.values) return c.values[row];
      return Value::Null();
    }
    std::vector<Value> Row(std::size_t row) const {
      std::vector<Value> v(cols.size());
      for (std::size_t k = 0; k < cols.size(); ++k) v[k] = At(k, row);
      return v;
    }
  };
  // Fills `out` for the keys at positions [begin, begin + rows) (row i of the columns is key
  // begin + i) and runs the lets over them.
  void FillTickColumns(const std::vector<dsl::SlotRef>& slots, const std::vector<dsl::WindowQuery>& queries,
                       const std::vector<std::pair<std::string, dsl::CompiledExpr>>& lets, const TickData& data,
                       const dsl::TableInfo& table, std::size_t begin, std::size_t rows, TickColumns& out);
  // Keys per block of a scheduled rule's batch evaluation: the block's columns stay in cache.
  static constexpr std::size_t kTickBlock = 4096;
  // The last history read per alert test, reused while the window and the table's newest row
  // are unchanged (a 15-minute alert on an hourly table reads the same 28 days four times).
  struct HistoryCache {
    std::string key;
    std::vector<HistoryRow> rows;
  };
  std::map<std::string, HistoryCache> history_cache;
  // A scheduled rule's block of columns, condition results and confidence thresholds, kept
  // between blocks and ticks for their memory.
  TickColumns tick_columns;
  std::array<bool, kTickBlock> tick_holds{};
  std::vector<Value> tick_thresholds;
  bool ReadWindows(const std::string& kind, const std::string& name, const std::string& version,
                   const dsl::TableInfo& table, const std::vector<dsl::WindowQuery>& queries, TimeMs at,
                   TickData& out, Status& status);
  // The slots of one key (pos: its position in data.keys, or kAbsent: no rows, as for an
  // alert still firing on an entity that left the window).
  std::vector<Value> RowSlots(const std::vector<dsl::SlotRef>& slots, const std::vector<dsl::WindowQuery>& queries,
                              const TickData& data, const dsl::TableInfo& table, const std::string& key,
                              std::size_t pos);
  Status RunReallocation(const dsl::CompiledRule& r, const dsl::TableInfo& table, const TickData& data, TimeMs at,
                         const nlohmann::ordered_json& window);

  // alert state per (alert, entity)
  enum class AlertState : std::uint8_t { kInactive, kPending, kFiring };
  struct AlertEntity {
    AlertState state = AlertState::kInactive;
    TimeMs since = 0;
    TimeMs last_notified = 0;
  };
  std::map<std::string, std::unordered_map<std::string, AlertEntity>> alert_states;
};

}  // namespace gavel::rules
