// Materializing compact decisions. See compact_decision.hpp. The steps and their order are
// those of Engine::Impl::RunEntityRule's own path (engine_impl.hpp), with the same helpers
// (intents.hpp): tests/rules/compact_decision_test.cpp compares the two byte for byte.
#include "rules/compact_decision.hpp"

#include "rules/intents.hpp"

namespace gavel::rules {

using namespace engine_detail;

Decision Materialize(const CompactDecision& c) {
  thread_local Evaluator ev;
  const dsl::CompiledRule& r = *c.rule;
  Decision d;
  d.kind = "rule";
  d.rule = r.name;
  d.version = r.version;
  d.event_time = c.event_time;
  d.processing_time = c.processing_time;
  const std::string cause = c.has_event ? "event:" + std::string(c.event_id()) : std::string("decay");
  d.trigger = c.score ? "crossing:" + c.score->name + ":" + cause : cause;
  if (c.entity_type) d.entity_type = *c.entity_type;
  d.entity_id = c.entity_id();
  if (c.score) d.evidence = CrossingEvidence(r, *c.score, c.previous, c.value, cause);
  std::vector<Value> values(c.values.size());
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = c.value_at(i);
  for (std::size_t i = 0; i < r.slots.size() && i < values.size(); ++i) {
    std::string name = EvidenceName(r.slots[i]);
    if (!name.empty()) d.evidence[name] = ToJsonValue(values[i]);
  }
  switch (c.outcome) {
    case CompactDecision::Outcome::kCooldown:
      d.evidence["cooldown_until"] = FormatTime(c.cooldown_until);
      d.outcome = "skipped";
      d.reason = "cooldown";
      return d;
    case CompactDecision::Outcome::kLimit:
      d.evidence["limit"] = LimitText(r.meta);
      d.evidence["fired_in_window"] = static_cast<std::size_t>(c.fired_in_window);
      d.outcome = "skipped";
      d.reason = "limit";
      return d;
    case CompactDecision::Outcome::kFired:
      break;
  }
  d.outcome = "fired";
  d.reason = ModeName(r.meta.mode);
  for (const auto& a : r.actions) {
    d.actions.push_back(IntendAction(ev, a, r.slots, values.data(), d.entity_type, d.entity_id, r.meta.mode));
  }
  return d;
}

bool DecisionSink::AppendCompact(const CompactDecision& c) {
  Decision d = Materialize(c);
  return Append(d);
}

}  // namespace gavel::rules
