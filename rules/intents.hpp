// Internal to rules/: the pieces a rule's decision is written with (JSON values, evidence
// keys, message templates, intended actions). Shared by the engine, which writes most
// decisions itself, and by Materialize (rules/compact_decision.cpp), which writes the compact
// ones later, possibly on another thread: one implementation, so both give the same bytes.
#pragma once

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/program.hpp"
#include "rules/eval.hpp"

namespace gavel::rules::engine_detail {

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

// The evidence key of a slot: "entity.<field>", "event.<field>", "score.<name>", a let's or
// dim's name, an aggregate's label ("" for anomaly slots, reported under "baseline").
inline std::string EvidenceName(const dsl::SlotRef& s) {
  using dsl::SlotKind;
  switch (s.kind) {
    case SlotKind::kEntityField: return "entity." + s.name;
    case SlotKind::kEntityKey: return "entity.key";
    case SlotKind::kEventField: return "event." + s.name;
    case SlotKind::kScore: return "score." + s.name;
    case SlotKind::kLet: return s.name;
    case SlotKind::kDim: return s.name;
    case SlotKind::kAggregate: return s.label.empty() ? s.name : s.label;
    case SlotKind::kAnomaly: return "";
    case SlotKind::kEventTime: return "event.time";
  }
  return s.name;
}

// A message template filled with slot values.
inline std::string RenderTemplate(const dsl::CompiledTemplate& t, const std::vector<dsl::SlotRef>& slots,
                                  const Value* values) {
  std::string out;
  for (const auto& part : t.parts) {
    if (part.slot < 0) out += part.text;
    else out += FormatForMessage(values[part.slot], slots[part.slot].type);
  }
  return out;
}

// An intended action as its log record. Keys are distinct by construction and appended
// without operator[]'s lookups. `values` are the unit's slot values (lets included).
inline nlohmann::ordered_json IntendAction(Evaluator& ev, const dsl::CompiledAction& a,
                                           const std::vector<dsl::SlotRef>& slots, const Value* values,
                                           std::string_view entity_type, std::string_view entity_id, dsl::Mode mode) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  auto& o = j.get_ref<nlohmann::ordered_json::object_t&>();
  o.reserve(5);
  auto target = [&] {
    std::string t;
    t.reserve(entity_type.size() + 1 + entity_id.size());
    t.append(entity_type).append(1, ':').append(entity_id);
    return t;
  };
  switch (a.kind) {
    case dsl::ActionKind::kPause: o.emplace_back("action", "pause"); o.emplace_back("target", target()); break;
    case dsl::ActionKind::kEnable: o.emplace_back("action", "enable"); o.emplace_back("target", target()); break;
    case dsl::ActionKind::kSetBudget:
      o.emplace_back("action", "set_budget");
      o.emplace_back("target", target());
      o.emplace_back("budget", ToJsonValue(ev.Run(a.value, values)));
      o.emplace_back("currency", a.currency);
      break;
    case dsl::ActionKind::kReallocate: o.emplace_back("action", "reallocate"); break;
    case dsl::ActionKind::kWebhook: {
      o.emplace_back("action", "webhook");
      o.emplace_back("name", a.name);
      nlohmann::ordered_json payload = nlohmann::ordered_json::object();
      for (const auto& [k, expr] : a.with) payload[k] = ToJsonValue(ev.Run(expr, values));
      o.emplace_back("payload", std::move(payload));
      break;
    }
    case dsl::ActionKind::kNotifySlack:
      o.emplace_back("action", "notify_slack");
      o.emplace_back("channel", a.name);
      o.emplace_back("text", RenderTemplate(a.text, slots, values));
      if (!a.runbook.empty()) o.emplace_back("runbook", a.runbook);
      break;
    case dsl::ActionKind::kEmail:
      o.emplace_back("action", "email");
      o.emplace_back("template", a.name);
      o.emplace_back("to", target());
      break;
    case dsl::ActionKind::kMessage:
      o.emplace_back("action", "message");
      o.emplace_back("template", a.name);
      o.emplace_back("via", a.via);
      o.emplace_back("to", target());
      break;
    case dsl::ActionKind::kSetField:
      o.emplace_back("action", "set");
      o.emplace_back("field", a.target_entity + "." + a.field);
      o.emplace_back("value", ToJsonValue(ev.Run(a.value, values)));
      break;
  }
  o.emplace_back("mode", ModeName(mode));
  return j;
}

// The evidence head of a crossing decision: which score crossed what, from what to what, and
// why (the event, or decay). Keys are distinct: appended without operator[]'s lookups.
inline nlohmann::ordered_json CrossingEvidence(const dsl::CompiledRule& r, const dsl::CompiledScore& s, double before,
                                               double after, std::string cause) {
  nlohmann::ordered_json evidence = nlohmann::ordered_json::object();
  auto& obj = evidence.get_ref<nlohmann::ordered_json::object_t&>();
  obj.reserve(6 + r.slots.size());
  obj.emplace_back("score", s.name);
  obj.emplace_back("previous", before);
  obj.emplace_back("value", after);
  obj.emplace_back("threshold", r.threshold);
  obj.emplace_back("direction", r.direction == dsl::CrossDirection::kAbove ? "above" : "below");
  obj.emplace_back("cause", std::move(cause));
  return evidence;
}

// The evidence a `limit` skip adds.
inline std::string LimitText(const dsl::RuleMeta& meta) {
  return std::to_string(meta.limit_count) + " per " + std::to_string(meta.limit_seconds) + "s";
}

}  // namespace gavel::rules::engine_detail
