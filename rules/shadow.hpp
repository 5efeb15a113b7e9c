// Where shadow and live disagree: the report that tells whether a new version of a rule,
// run in `mode shadow` next to the live one, would have acted differently.
//
// A shadow rule decides and logs but executes nothing. Its intended actions are compared
// with the live rules' intended actions of the same kind on the same target (an ad set to
// pause, a budget to set, a lead to hand over): an intent "agrees" when a live rule intended
// the same action kind on the same target within `window` of it, is "shadow only" when no
// live rule did, and a live intent of a kind the shadow rule also takes, on the same entity
// type, that the shadow rule did not match within the window is "live only". Budgets count
// as the same action only when they set the same amount (to the cent).
//
// Pure: works on decisions already read from the log (rules/store/decision_log.hpp Query).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "rules/decision.hpp"

namespace gavel::rules {

struct ShadowDisagreement {
  std::string kind;        // "shadow_only" | "live_only"
  std::string shadow_rule;
  std::string live_rule;   // live_only: the live rule that acted
  std::string action;      // pause, set_budget, webhook, ...
  std::string target;      // "<entity type>:<id>"
  std::int64_t decision_id = 0;
  TimeMs at = 0;
  std::string detail;      // e.g. "budget 400 USD (live: 450 USD)"
};

struct ShadowRuleReport {
  std::string rule;
  std::int64_t intents = 0;
  std::int64_t agreed = 0;
  std::int64_t shadow_only = 0;
  std::int64_t live_only = 0;
};

struct ShadowReport {
  std::map<std::string, ShadowRuleReport> rules;  // by shadow rule
  std::vector<ShadowDisagreement> disagreements;  // in time order
};

ShadowReport BuildShadowReport(const std::vector<Decision>& decisions, TimeMs window_ms);
nlohmann::ordered_json ShadowReportJson(const ShadowReport& r);
std::string ShadowReportText(const ShadowReport& r);

}  // namespace gavel::rules
