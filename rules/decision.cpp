// Decision rendering. See decision.hpp.
#include "rules/decision.hpp"

namespace gavel::rules {

nlohmann::ordered_json ToJson(const Decision& d, bool with_chain) {
  nlohmann::ordered_json j;
  if (with_chain) j["id"] = d.id;
  j["event_time"] = FormatTime(d.event_time);
  j["processing_time"] = FormatTime(d.processing_time);
  j["kind"] = d.kind;
  j["rule"] = d.rule;
  j["version"] = d.version;
  j["trigger"] = d.trigger;
  j["entity_type"] = d.entity_type;
  j["entity_id"] = d.entity_id;
  j["outcome"] = d.outcome;
  j["reason"] = d.reason;
  j["evidence"] = d.evidence;
  j["actions"] = d.actions;
  if (with_chain) {
    j["prev_hash"] = d.prev_hash;
    j["hash"] = d.hash;
  }
  return j;
}

std::string RenderLine(const Decision& d) {
  std::string s = FormatTime(d.event_time) + " " + d.kind + " " + d.rule;
  if (!d.entity_id.empty()) s += " " + d.entity_type + "=" + d.entity_id;
  s += " " + d.outcome;
  if (!d.reason.empty()) s += " (" + d.reason + ")";
  if (!d.evidence.empty()) s += " " + d.evidence.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (!d.actions.empty()) s += " -> " + d.actions.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return s;
}

}  // namespace gavel::rules
