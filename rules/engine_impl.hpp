// Internal to rules/: the engine's state and its event-driven half (entities, scores and
// decay, crossings, event rules, journeys, timers). engine.cpp holds the public methods;
// engine_scheduled.cpp the scheduled half (metric rules, reallocation, alerts).
// The semantics are documented in docs/engine.md.
#pragma once

#include "rules/engine.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "rules/calendar.hpp"
#include "rules/reallocate.hpp"
#include "rules/stats.hpp"
#include "rules/state.hpp"

namespace gavel::rules {

namespace engine_detail {

using dsl::SlotKind;

inline const char* ModeName(dsl::Mode m) {
  switch (m) {
    case dsl::Mode::kLive: return "live";
    case dsl::Mode::kShadow: return "shadow";
    case dsl::Mode::kDryRun: return "dry_run";
  }
  return "dry_run";
}

inline nlohmann::ordered_json ToJsonValue(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNumber: return v.num;
    case Value::Kind::kBool: return v.num != 0;
    case Value::Kind::kText: return std::string(v.text);
    case Value::Kind::kNull: break;
  }
  return nullptr;
}

// Copies every key of `from` into `into` (the evidence a unit read, after its header fields).
inline void MergeInto(nlohmann::ordered_json& into, const nlohmann::ordered_json& from) {
  for (auto it = from.begin(); it != from.end(); ++it) into[it.key()] = it.value();
}

// Text for a message template: money with two decimals and its currency, ratios as is.
inline std::string FormatForMessage(const Value& v, const dsl::TypeRef& type) {
  char buf[64];
  switch (v.kind) {
    case Value::Kind::kText: return std::string(v.text);
    case Value::Kind::kBool: return v.num != 0 ? "yes" : "no";
    case Value::Kind::kNull: return "n/a";
    case Value::Kind::kNumber:
      if (type.base == dsl::BaseType::kMoney) {
        std::snprintf(buf, sizeof buf, "%.2f %s", v.num, type.currency.c_str());
      } else if (type.base == dsl::BaseType::kPercent || type.base == dsl::BaseType::kRatio) {
        std::snprintf(buf, sizeof buf, "%.2f%%", v.num * 100);
      } else if (v.num == std::floor(v.num) && std::fabs(v.num) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v.num);
      } else {
        std::snprintf(buf, sizeof buf, "%.4g", v.num);
      }
      return buf;
  }
  return "";
}

struct ScoreState {
  double value = 0;
  TimeMs as_of = 0;            // time `value` is valid at
  TimeMs last_activity = -1;   // -1: never active
  std::int64_t steps_applied = 0;  // inactivity decay steps since last_activity
  std::uint64_t once_mask = 0;     // `once` rules already applied (bit = rule index)
  TimeMs timer_at = -1;            // the decay-crossing timer currently scheduled
};

struct EntityState {
  std::vector<OwnedValue> fields;    // aligned with EntityInfo::fields
  std::vector<ScoreState> scores;    // aligned with Impl::entity_scores_[entity]
  TimeMs last_event = -1;
  bool dirty = false;                // listed in Impl::dirty_entities since the last checkpoint
};

enum class TimerKind : std::uint8_t { kDecay, kJourney };

struct Timer {
  TimeMs at;
  std::uint64_t seq;      // insertion order: ties run in the order they were scheduled
  TimerKind kind;
  int unit;               // score index (decay) or journey index
  std::string entity_type;
  std::string entity_id;
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

  // entity type -> id -> state
  std::unordered_map<std::string, std::unordered_map<std::string, EntityState>> entities;
  // entity type -> indexes of program scores for that entity
  std::map<std::string, std::vector<int>> entity_scores;
  std::unordered_set<std::string> seen_events;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
  std::uint64_t timer_seq = 0;
  // journey index -> entity id -> instance
  std::vector<std::unordered_map<std::string, JourneyInstance>> journeys;
  // rule name -> entity -> last fired (cooldown); rule name -> fire times (limit)
  std::map<std::string, std::unordered_map<std::string, TimeMs>> last_fired;
  std::map<std::string, std::vector<TimeMs>> fire_times;
  // summary: unit -> count of evaluations that did not fire (rules counted by index on the
  // hot path, merged by MergeCounters)
  std::map<std::string, std::int64_t> not_fired;
  std::vector<std::int64_t> rule_not_fired;
  // rules by trigger: event type -> event rules; score -> crossing rules
  std::unordered_map<std::string, std::vector<const dsl::CompiledRule*>> event_rules;
  std::unordered_map<std::string, std::vector<const dsl::CompiledRule*>> crossing_rules;

  void NotFiredRule(const dsl::CompiledRule& r) { rule_not_fired[&r - p.rules.data()]++; }
  void MergeCounters() {
    for (std::size_t i = 0; i < rule_not_fired.size(); ++i) {
      if (rule_not_fired[i]) not_fired["rule:" + p.rules[i].name] += rule_not_fired[i];
      rule_not_fired[i] = 0;
    }
  }
  // schedules: unit key ("rule:x"/"alert:x") -> next tick
  std::map<std::string, TimeMs> next_tick;
  // What changed since the last checkpoint (engine_state.cpp).
  std::vector<std::pair<std::string, std::string>> dirty_entities;
  std::set<std::pair<std::size_t, std::string>> dirty_journeys;
  std::set<std::pair<std::string, std::string>> dirty_alerts;
  std::vector<std::string> new_event_ids;
  Status Checkpoint(StateSink& sink);
  Status Restore(const StateSource& source);

  Impl(Engine& e, std::shared_ptr<const dsl::Program> prog, EngineDeps d, EngineOptions o)
      : self(e), program(std::move(prog)), p(*program), deps(d), opts(o) {
    for (std::size_t i = 0; i < p.scores.size(); ++i) entity_scores[p.scores[i].entity].push_back(static_cast<int>(i));
    journeys.resize(p.journeys.size());
    for (const auto& r : p.rules) {
      if (r.trigger == dsl::TriggerKind::kCrossing) crossing_rules[r.event].push_back(&r);
      if (r.trigger == dsl::TriggerKind::kEvent) event_rules[r.event].push_back(&r);
    }
    rule_not_fired.assign(p.rules.size(), 0);
  }

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

  void MarkDirty(const std::string& type, const std::string& id, EntityState& st) {
    if (!opts.track_state || st.dirty) return;
    st.dirty = true;
    dirty_entities.emplace_back(type, id);
  }

  EntityState& Entity(const std::string& type, const std::string& id) {
    auto& map = entities[type];
    auto it = map.find(id);
    if (it != map.end()) {
      MarkDirty(type, id, it->second);
      return it->second;
    }
    EntityState st;
    const dsl::EntityInfo* info = p.FindEntity(type);
    if (info) {
      for (const auto& f : info->fields) {
        OwnedValue v;
        if (f.has_default) {
          switch (f.type.base) {
            case dsl::BaseType::kText: v.kind = Value::Kind::kText; v.text = f.default_text; break;
            case dsl::BaseType::kBool: v.kind = Value::Kind::kBool; v.num = f.default_bool; break;
            default: v.kind = Value::Kind::kNumber; v.num = f.default_number;
          }
        }
        st.fields.push_back(std::move(v));
      }
    }
    st.scores.resize(entity_scores[type].size());
    EntityState& created = map.emplace(id, std::move(st)).first->second;
    MarkDirty(type, id, created);
    return created;
  }

  static double Clamp(const dsl::CompiledScore& s, double v) {
    if (s.floor && v < *s.floor) v = *s.floor;
    if (s.cap && v > *s.cap) v = *s.cap;
    return v;
  }

  // Crossing rules watching score `score_name`.
  const std::vector<const dsl::CompiledRule*>& CrossingRules(const std::string& score_name) const {
    static const std::vector<const dsl::CompiledRule*> kNone;
    auto it = crossing_rules.find(score_name);
    return it == crossing_rules.end() ? kNone : it->second;
  }

  // Brings one score up to time t, applying decay; every threshold crossed by decay fires its
  // rules at the exact time of the step that crossed it.
  Status Decay(const std::string& type, const std::string& id, EntityState& st, int slot, TimeMs t) {
    const dsl::CompiledScore& s = p.scores[entity_scores[type][slot]];
    ScoreState& sc = st.scores[slot];
    if (sc.last_activity < 0 || t <= sc.as_of) return Status::Ok();
    MarkDirty(type, id, st);
    if (s.decay == dsl::DecayKind::kInactivity && s.decay_seconds > 0) {
      TimeMs period = s.decay_seconds * kSecond;
      std::int64_t due = (t - sc.last_activity) / period;
      while (sc.steps_applied < due) {
        ++sc.steps_applied;
        TimeMs at = sc.last_activity + sc.steps_applied * period;
        double before = sc.value;
        sc.value = Clamp(s, sc.value - s.decay_amount);
        sc.as_of = at;
        if (sc.value != before) {
          Status st2 = Crossings(type, id, st, s, before, sc.value, at, "decay");
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
      for (const auto* r : CrossingRules(s.name)) {
        if (r->direction == dsl::CrossDirection::kBelow && before >= r->threshold && r->threshold > 0) {
          double dt = h * std::log2(before / r->threshold);
          TimeMs at = sc.as_of + static_cast<TimeMs>(std::ceil(dt));
          if (at <= t) hits.emplace_back(at, r);
        }
      }
      std::sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second->name < b.second->name;
      });
      for (const auto& [at, r] : hits) {
        double v = Clamp(s, before * std::exp2(-static_cast<double>(at - sc.as_of) / h));
        Status st2 = FireCrossing(*r, type, id, st, s, before, v, at, "decay");
        if (!st2.ok()) return st2;
      }
      sc.value = Clamp(s, before * std::exp2(-static_cast<double>(t - sc.as_of) / h));
      sc.as_of = t;
    } else {
      sc.as_of = t;
    }
    return Status::Ok();
  }

  Status DecayAll(const std::string& type, const std::string& id, EntityState& st, TimeMs t) {
    for (std::size_t i = 0; i < st.scores.size(); ++i) {
      Status s = Decay(type, id, st, static_cast<int>(i), t);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  // Schedules the next time decay alone would take this score across a watched threshold.
  void ScheduleDecayTimer(const std::string& type, const std::string& id, EntityState& st, int slot) {
    const dsl::CompiledScore& s = p.scores[entity_scores[type][slot]];
    ScoreState& sc = st.scores[slot];
    if (s.decay == dsl::DecayKind::kNone || s.decay_seconds <= 0 || sc.last_activity < 0) return;
    TimeMs best = -1;
    for (const auto* r : CrossingRules(s.name)) {
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
    if (best >= 0 && best != sc.timer_at) {
      sc.timer_at = best;
      timers.push({best, timer_seq++, TimerKind::kDecay, slot, type, id, 0});
    }
  }

  Status Crossings(const std::string& type, const std::string& id, EntityState& st, const dsl::CompiledScore& s,
                   double before, double after, TimeMs at, const std::string& cause) {
    for (const auto* r : CrossingRules(s.name)) {
      bool crossed = r->direction == dsl::CrossDirection::kAbove ? (before <= r->threshold && after > r->threshold)
                                                                 : (before >= r->threshold && after < r->threshold);
      if (!crossed) continue;
      Status status = FireCrossing(*r, type, id, st, s, before, after, at, cause);
      if (!status.ok()) return status;
    }
    return Status::Ok();
  }

  Status FireCrossing(const dsl::CompiledRule& r, const std::string& type, const std::string& id, EntityState& st,
                      const dsl::CompiledScore& s, double before, double after, TimeMs at, const std::string& cause) {
    nlohmann::ordered_json ev;
    ev["score"] = s.name;
    ev["previous"] = before;
    ev["value"] = after;
    ev["threshold"] = r.threshold;
    ev["direction"] = r.direction == dsl::CrossDirection::kAbove ? "above" : "below";
    ev["cause"] = cause;
    return RunEntityRule(r, type, id, st, nullptr, at, "crossing:" + s.name + (cause == "decay" ? ":decay" : ":" + cause),
                         std::move(ev));
  }

  // ------------------------------------------------------------ slots

  Value SlotValue(const dsl::SlotRef& s, const std::string& type, const std::string& id, EntityState* st,
                  const Event* e, TimeMs now) {
    switch (s.kind) {
      case SlotKind::kEventField:
        if (e) {
          if (const OwnedValue* v = e->Get(s.name)) return v->view();
        }
        return Value::Null();
      case SlotKind::kEventTime:
        return e ? Value::Number(static_cast<double>(e->time)) : Value::Null();
      case SlotKind::kEntityKey:
        return Value::Text(id);
      case SlotKind::kEntityField: {
        const dsl::EntityInfo* info = p.FindEntity(type);
        if (!st || !info) return Value::Null();
        for (std::size_t i = 0; i < info->fields.size(); ++i) {
          if (info->fields[i].name == s.name) return st->fields[i].view();
        }
        return Value::Null();
      }
      case SlotKind::kScore: {
        if (!st) return Value::Null();
        const auto& idx = entity_scores[type];
        for (std::size_t i = 0; i < idx.size(); ++i) {
          if (p.scores[idx[i]].name == s.name) {
            Decay(type, id, *st, static_cast<int>(i), now);
            return Value::Number(st->scores[i].value);
          }
        }
        return Value::Null();
      }
      default:
        return Value::Null();
    }
  }

  std::vector<Value> FillSlots(const std::vector<dsl::SlotRef>& slots, const std::string& type, const std::string& id,
                               EntityState* st, const Event* e, TimeMs now) {
    std::vector<Value> out;
    out.reserve(slots.size());
    for (const auto& s : slots) out.push_back(SlotValue(s, type, id, st, e, now));
    return out;
  }

  // Evaluates lets in order into their slots.
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

  nlohmann::ordered_json Evidence(const std::vector<dsl::SlotRef>& slots, const std::vector<Value>& values) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < slots.size(); ++i) {
      const auto& s = slots[i];
      std::string name;
      switch (s.kind) {
        case SlotKind::kEntityField: name = "entity." + s.name; break;
        case SlotKind::kEntityKey: name = "entity.key"; break;
        case SlotKind::kEventField: name = "event." + s.name; break;
        case SlotKind::kScore: name = "score." + s.name; break;
        case SlotKind::kLet: name = s.name; break;
        case SlotKind::kDim: name = s.name; break;
        case SlotKind::kAggregate: name = s.label.empty() ? s.name : s.label; break;
        case SlotKind::kAnomaly: continue;  // reported with its statistics under "baseline"
        case SlotKind::kEventTime: name = "event.time"; break;
      }
      j[name] = ToJsonValue(values[i]);
    }
    return j;
  }

  std::string Render(const dsl::CompiledTemplate& t, const std::vector<dsl::SlotRef>& slots,
                     const std::vector<Value>& values) {
    std::string out;
    for (const auto& part : t.parts) {
      if (part.slot < 0) out += part.text;
      else out += FormatForMessage(values[part.slot], slots[part.slot].type);
    }
    return out;
  }

  // ------------------------------------------------------------ actions (intentions)

  nlohmann::ordered_json Intend(const dsl::CompiledAction& a, const std::vector<dsl::SlotRef>& slots,
                                std::vector<Value>& values, const std::string& entity_type, const std::string& entity_id,
                                dsl::Mode mode) {
    nlohmann::ordered_json j;
    switch (a.kind) {
      case dsl::ActionKind::kPause: j["action"] = "pause"; j["target"] = entity_type + ":" + entity_id; break;
      case dsl::ActionKind::kEnable: j["action"] = "enable"; j["target"] = entity_type + ":" + entity_id; break;
      case dsl::ActionKind::kSetBudget: {
        j["action"] = "set_budget";
        j["target"] = entity_type + ":" + entity_id;
        j["budget"] = ToJsonValue(ev.Run(a.value, values.data()));
        j["currency"] = a.currency;
        break;
      }
      case dsl::ActionKind::kReallocate: j["action"] = "reallocate"; break;
      case dsl::ActionKind::kWebhook: {
        j["action"] = "webhook";
        j["name"] = a.name;
        nlohmann::ordered_json payload = nlohmann::ordered_json::object();
        for (const auto& [k, expr] : a.with) payload[k] = ToJsonValue(ev.Run(expr, values.data()));
        j["payload"] = payload;
        break;
      }
      case dsl::ActionKind::kNotifySlack:
        j["action"] = "notify_slack";
        j["channel"] = a.name;
        j["text"] = Render(a.text, slots, values);
        if (!a.runbook.empty()) j["runbook"] = a.runbook;
        break;
      case dsl::ActionKind::kEmail:
        j["action"] = "email";
        j["template"] = a.name;
        j["to"] = entity_type + ":" + entity_id;
        break;
      case dsl::ActionKind::kMessage:
        j["action"] = "message";
        j["template"] = a.name;
        j["via"] = a.via;
        j["to"] = entity_type + ":" + entity_id;
        break;
      case dsl::ActionKind::kSetField:
        j["action"] = "set";
        j["field"] = a.target_entity + "." + a.field;
        j["value"] = ToJsonValue(ev.Run(a.value, values.data()));
        break;
    }
    j["mode"] = ModeName(mode);
    return j;
  }

  // Applies `set` actions to engine state (only in live mode: dry_run and shadow change nothing).
  void ApplySets(const dsl::CompiledRule& r, const std::vector<Value>& values, EntityState& st, const std::string& type,
                 dsl::Mode mode) {
    if (mode != dsl::Mode::kLive) return;
    const dsl::EntityInfo* info = p.FindEntity(type);
    if (!info) return;
    for (const auto& a : r.actions) {
      if (a.kind != dsl::ActionKind::kSetField) continue;
      Value v = ev.Run(a.value, values.data());
      for (std::size_t i = 0; i < info->fields.size(); ++i) {
        if (info->fields[i].name == a.field) st.fields[i] = OwnedValue::From(v);
      }
    }
  }

  // Cooldown and limit gates: a skip reason, or "" if the rule may act.
  std::string Throttle(const std::string& rule, const dsl::RuleMeta& meta, const std::string& entity, TimeMs at,
                       nlohmann::ordered_json& evidence) {
    if (meta.cooldown_seconds > 0) {
      auto& lf = last_fired[rule];
      auto it = lf.find(entity);
      if (it != lf.end() && at - it->second < meta.cooldown_seconds * kSecond) {
        evidence["cooldown_until"] = FormatTime(it->second + meta.cooldown_seconds * kSecond);
        return "cooldown";
      }
    }
    if (meta.limit_count > 0) {
      auto& ft = fire_times[rule];
      TimeMs window = meta.limit_seconds * kSecond;
      ft.erase(std::remove_if(ft.begin(), ft.end(), [&](TimeMs x) { return at - x >= window; }), ft.end());
      if (static_cast<int>(ft.size()) >= meta.limit_count) {
        evidence["limit"] = std::to_string(meta.limit_count) + " per " + std::to_string(meta.limit_seconds) + "s";
        evidence["fired_in_window"] = ft.size();
        return "limit";
      }
    }
    return "";
  }

  void Fired(const std::string& rule, const std::string& entity, TimeMs at) {
    last_fired[rule][entity] = at;
    fire_times[rule].push_back(at);
  }

  // An event or crossing rule on one entity.
  Status RunEntityRule(const dsl::CompiledRule& r, const std::string& type, const std::string& id, EntityState& st,
                       const Event* e, TimeMs at, const std::string& trigger, nlohmann::ordered_json head) {
    UnitHealth& h = Health("rule:" + r.name);
    h.evaluations++;
    h.last_evaluation = at;
    std::vector<Value> values = FillSlots(r.slots, type, id, &st, e, at);
    std::vector<std::string> keep;
    RunLets(r.lets, r.slots, values, keep);
    if (!ev.Test(r.condition, values.data())) {
      // Evidence is only built when it will be logged: this is the hot path of event rules.
      return NotFired(r, at, trigger, type, id,
                      opts.log_every_evaluation ? Evidence(r.slots, values) : nlohmann::ordered_json());
    }
    Decision d = NewDecision("rule", r.name, r.version, at);
    d.trigger = trigger;
    d.entity_type = type;
    d.entity_id = id;
    d.evidence = std::move(head);
    MergeInto(d.evidence, Evidence(r.slots, values));
    std::string skip = Throttle(r.name, r.meta, id, at, d.evidence);
    if (!skip.empty()) {
      d.outcome = "skipped";
      d.reason = skip;
      return Emit(d);
    }
    d.outcome = "fired";
    d.reason = ModeName(r.meta.mode);
    for (const auto& a : r.actions) d.actions.push_back(Intend(a, r.slots, values, type, id, r.meta.mode));
    Status s = Emit(d);
    if (!s.ok()) return s;
    h.fired++;
    Fired(r.name, id, at);
    ApplySets(r, values, st, type, r.meta.mode);
    return Status::Ok();
  }

  // Logs one outcome of a rule for one entity (skips, and with log_every_evaluation the
  // evaluations that did not fire).
  Status EmitRuleOutcome(const dsl::CompiledRule& r, TimeMs at, const std::string& trigger, const std::string& type,
                         const std::string& id, const char* outcome, const char* reason,
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
  Status NotFired(const dsl::CompiledRule& r, TimeMs at, const std::string& trigger, const std::string& type,
                  const std::string& id, nlohmann::ordered_json evidence) {
    NotFiredRule(r);
    if (!opts.log_every_evaluation) return Status::Ok();
    return EmitRuleOutcome(r, at, trigger, type, id, "not_fired", "condition_false", std::move(evidence));
  }

  // ------------------------------------------------------------ events

  Status OnEvent(const Event& e) {
    if (!seen_events.insert(e.id).second) {
      self.duplicates_++;
      return Status::InvalidArgument("duplicate event id `" + e.id + "`");
    }
    if (opts.track_state) new_event_ids.push_back(e.id);
    const dsl::EventInfo* info = p.FindEvent(e.type);
    if (!info) return Status::InvalidArgument("unknown event type `" + e.type + "`");
    for (const auto& type : info->entities) {
      const dsl::EntityInfo* ent = p.FindEntity(type);
      const OwnedValue* key = e.Get(ent->key);
      if (!key || key->kind != Value::Kind::kText || key->text.empty()) continue;
      Status s = OnEntityEvent(e, *info, *ent, key->text);
      if (!s.ok()) return s;
    }
    // Event rules on events that belong to no entity.
    if (info->entities.empty()) {
      for (const auto& r : p.rules) {
        if (r.trigger != dsl::TriggerKind::kEvent || r.event != e.type) continue;
        EntityState none;
        std::vector<Value> values = FillSlots(r.slots, "", "", &none, &e, e.time);
        if (!ev.Test(r.event_filter, values.data())) continue;
        Status s = RunEntityRule(r, "", "", none, &e, e.time, "event:" + e.id, nlohmann::ordered_json::object());
        if (!s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  Status OnEntityEvent(const Event& e, const dsl::EventInfo& info, const dsl::EntityInfo& ent, const std::string& id) {
    EntityState& st = Entity(ent.name, id);
    // Late events are applied as of the latest time seen for the entity: decay never rewinds.
    TimeMs at = std::max(e.time, st.last_event);
    Status s = DecayAll(ent.name, id, st, at);
    if (!s.ok()) return s;
    st.last_event = at;
    if (info.updates == ent.name) {
      for (std::size_t i = 0; i < ent.fields.size(); ++i) {
        if (const OwnedValue* v = e.Get(ent.fields[i].name)) st.fields[i] = *v;
      }
    }
    // Scores: event rules, then condition rules (`when ... once`).
    const auto& idx = entity_scores[ent.name];
    for (std::size_t k = 0; k < idx.size(); ++k) {
      const dsl::CompiledScore& sc = p.scores[idx[k]];
      ScoreState& ss = st.scores[k];
      double before = ss.value;
      double delta = 0;
      std::vector<Value> values = FillSlots(sc.slots, ent.name, id, &st, &e, at);
      for (const auto& rule : sc.rules) {
        if (rule.kind == dsl::ScoreRuleKind::kOnEvent && rule.event != e.type) continue;
        if (rule.once && (ss.once_mask >> (rule.index & 63) & 1)) continue;
        if (!ev.Test(rule.condition, values.data())) continue;
        delta += rule.amount;
        if (rule.once) ss.once_mask |= std::uint64_t{1} << (rule.index & 63);
      }
      // Any event of the entity is activity: the inactivity clock restarts.
      ss.last_activity = at;
      ss.steps_applied = 0;
      ss.as_of = at;
      if (delta != 0) {
        ss.value = Clamp(sc, ss.value + delta);
        s = Crossings(ent.name, id, st, sc, before, ss.value, at, "event:" + e.id);
        if (!s.ok()) return s;
      }
      ScheduleDecayTimer(ent.name, id, st, static_cast<int>(k));
    }
    // Event rules.
    auto by_event = event_rules.find(e.type);
    if (by_event == event_rules.end()) return JourneysOnEvent(e, ent, id, st, at);
    for (const dsl::CompiledRule* rp : by_event->second) {
      const dsl::CompiledRule& r = *rp;
      if (r.entity != ent.name) continue;
      std::vector<Value> values = FillSlots(r.slots, ent.name, id, &st, &e, at);
      if (!ev.Test(r.event_filter, values.data())) {
        NotFiredRule(r);
        continue;
      }
      s = RunEntityRule(r, ent.name, id, st, &e, at, "event:" + e.id, nlohmann::ordered_json::object());
      if (!s.ok()) return s;
    }
    return JourneysOnEvent(e, ent, id, st, at);
  }

  // ------------------------------------------------------------ journeys

  Status JourneyDecision(const dsl::CompiledJourney& j, const std::string& id, TimeMs at, const std::string& trigger,
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

  Status JourneysOnEvent(const Event& e, const dsl::EntityInfo& ent, const std::string& id, EntityState& st, TimeMs at) {
    for (std::size_t ji = 0; ji < p.journeys.size(); ++ji) {
      const dsl::CompiledJourney& j = p.journeys[ji];
      if (j.entity != ent.name) continue;
      auto& instances = journeys[ji];
      auto it = instances.find(id);
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
          s = RunJourney(ji, id, st, at, "event:" + e.id);
          if (!s.ok()) return s;
          break;
        }
        continue;
      }
      if (j.enter_event != e.type) continue;
      if (it != instances.end() && it->second.status != JourneyStatus::kDone) continue;  // one at a time
      std::vector<Value> values = FillSlots(j.slots, ent.name, id, &st, &e, at);
      if (!ev.Test(j.enter_condition, values.data())) {
        not_fired["journey:" + j.name]++;
        continue;
      }
      JourneyInstance inst;
      inst.entered = at;
      inst.generation = it == instances.end() ? 1 : it->second.generation + 1;
      instances[id] = inst;
      Status s = JourneyDecision(j, id, at, "event:" + e.id, "entered", "");
      if (!s.ok()) return s;
      s = RunJourney(ji, id, st, at, "event:" + e.id);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  // Runs a journey instance from its current step until it waits, defers or ends.
  Status RunJourney(std::size_t ji, const std::string& id, EntityState& st, TimeMs at, const std::string& trigger) {
    const dsl::CompiledJourney& j = p.journeys[ji];
    if (opts.track_state) dirty_journeys.emplace(ji, id);
    JourneyInstance& inst = journeys[ji][id];
    for (int guard = 0; guard < 10000; ++guard) {
      if (inst.step < 0 || inst.step >= static_cast<int>(j.steps.size())) {
        inst.status = JourneyStatus::kDone;
        return JourneyDecision(j, id, at, trigger, "completed", "");
      }
      // The exit condition is checked before every step.
      std::vector<Value> values = FillSlots(j.slots, j.entity, id, &st, nullptr, at);
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
              const dsl::EntityInfo* info = p.FindEntity(j.entity);
              for (std::size_t i = 0; i < info->fields.size(); ++i) {
                if (info->fields[i].name == j.quiet_timezone_field && st.fields[i].kind == Value::Kind::kText) {
                  zone = st.fields[i].text;
                }
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
              timers.push({release, timer_seq++, TimerKind::kJourney, static_cast<int>(ji), j.entity, id, inst.generation});
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
          std::vector<Value> vals = FillSlots(j.slots, j.entity, id, &st, nullptr, at);
          nlohmann::ordered_json actions = nlohmann::ordered_json::array();
          actions.push_back(Intend(step.action, j.slots, vals, j.entity, id, j.meta.mode));
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
          timers.push({inst.wait_until, timer_seq++, TimerKind::kJourney, static_cast<int>(ji), j.entity, id, inst.generation});
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
    auto it = instances.find(t.entity_id);
    if (it == instances.end() || it->second.generation != t.generation) return Status::Ok();  // superseded
    JourneyInstance& inst = it->second;
    const dsl::CompiledJourney& j = p.journeys[t.unit];
    EntityState& st = Entity(j.entity, t.entity_id);
    Status s = DecayAll(j.entity, t.entity_id, st, t.at);
    if (!s.ok()) return s;
    if (inst.status == JourneyStatus::kWaiting) {
      const dsl::CompiledStep& step = j.steps[inst.step];
      s = JourneyDecision(j, t.entity_id, t.at, "timer:wait", "timeout", "");
      if (!s.ok()) return s;
      inst.step = step.on_timeout >= 0 ? step.on_timeout : step.next;
    }
    std::string trigger = inst.status == JourneyStatus::kDeferred ? "timer:quiet_hours" : "timer:wait";
    inst.status = JourneyStatus::kRunning;
    return RunJourney(t.unit, t.entity_id, st, t.at, trigger);
  }

  // ------------------------------------------------------------ time

  Status RunTimersUntil(TimeMs t) {
    while (!timers.empty() && timers.top().at <= t) {
      Timer tm = timers.top();
      timers.pop();
      if (tm.kind == TimerKind::kDecay) {
        auto& map = entities[tm.entity_type];
        auto it = map.find(tm.entity_id);
        if (it == map.end()) continue;
        EntityState& st = it->second;
        if (st.scores[tm.unit].timer_at != tm.at) continue;  // superseded by later activity
        st.scores[tm.unit].timer_at = -1;
        Status s = Decay(tm.entity_type, tm.entity_id, st, tm.unit, tm.at);
        if (!s.ok()) return s;
        ScheduleDecayTimer(tm.entity_type, tm.entity_id, st, tm.unit);
      } else {
        Status s = JourneyTimer(tm);
        if (!s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  Status AdvanceTo(TimeMs t) {
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

  // ------------------------------------------------------------ schedules (engine_scheduled.cpp)

  void NextSchedule(TimeMs limit, std::string& unit, TimeMs& at);
  Status RunTick(const std::string& unit, TimeMs at);
  // Daemon policy (EngineOptions::coalesce_missed_ticks): moves `at` forward to the latest
  // tick of `unit` due by `now` and logs a late record if ticks were missed or `at` is late.
  Status CoalesceMissedTicks(const std::string& unit, TimeMs& at, TimeMs now);
  const dsl::Schedule* ScheduleOf(const std::string& unit) const;
  Status RunScheduledRule(const dsl::CompiledRule& r, TimeMs at);
  Status RunAlert(const dsl::CompiledAlert& a, TimeMs at);
  struct TickData {
    std::vector<std::unordered_map<std::string, const WindowRow*>> by_key;  // per query
    std::vector<std::vector<WindowRow>> rows;
    std::vector<WindowBounds> bounds;
    std::vector<std::string> keys;  // sorted union of entity keys
    std::string newest;             // the table's newest time ("" when not read)
  };
  // The last history read per alert test, reused while the window and the table's newest row
  // are unchanged (a 15-minute alert on an hourly table reads the same 28 days four times).
  struct HistoryCache {
    std::string key;
    std::vector<HistoryRow> rows;
  };
  std::map<std::string, HistoryCache> history_cache;
  bool ReadWindows(const std::string& kind, const std::string& name, const std::string& version,
                   const dsl::TableInfo& table, const std::vector<dsl::WindowQuery>& queries, TimeMs at,
                   TickData& out, Status& status);
  std::vector<Value> RowSlots(const std::vector<dsl::SlotRef>& slots, const std::vector<dsl::WindowQuery>& queries,
                              const TickData& data, const dsl::TableInfo& table, const std::string& key);
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
