// See gates.hpp.
#include "actions/gates.hpp"

namespace gavel::actions {

namespace {

using Json = nlohmann::ordered_json;

Json Verdict(const char* gate, const char* verdict, const std::string& detail = "") {
  Json v;
  v["gate"] = gate;
  v["verdict"] = verdict;
  if (!detail.empty()) v["detail"] = detail;
  return v;
}

bool IsEffect(const std::string& action) { return action == "pause" || action == "enable" || action == "set_budget"; }

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

constexpr rules::TimeMs kDay = 24LL * 3600 * 1000;

}  // namespace

std::string ExecutorFor(const Json& intent) {
  const std::string a = Str(intent, "action");
  if (IsEffect(a)) return "ad_platform";
  if (a == "notify_slack") return "slack";
  if (a == "webhook") return "webhook";
  if (a == "email" || a == "message") return "messaging";
  return "";
}

std::string TargetOf(const Json& intent) { return IsEffect(Str(intent, "action")) ? Str(intent, "target") : ""; }

GateKeeper::GateKeeper(std::shared_ptr<const dsl::Program> program, const Controls& controls, Outbox& outbox,
                       GateConfig config)
    : program_(std::move(program)), controls_(controls), outbox_(outbox), config_(std::move(config)) {}

const dsl::RuleMeta* GateKeeper::MetaOf(const rules::Decision& d) const {
  if (!program_) return nullptr;
  if (d.kind == "rule") {
    for (const auto& r : program_->rules) {
      if (r.name == d.rule) return &r.meta;
    }
  } else if (d.kind == "journey") {
    for (const auto& j : program_->journeys) {
      if (j.name == d.rule) return &j.meta;
    }
  } else if (d.kind == "alert") {
    for (const auto& a : program_->alerts) {
      if (a.name == d.rule) return &a.meta;
    }
  }
  return nullptr;
}

void GateKeeper::Escalate(rules::Decision& d, const std::string& why, std::vector<PlannedAction>& plans) {
  Json a;
  a["action"] = "notify_slack";
  a["channel"] = config_.escalation_channel;
  a["severity"] = "page";
  a["state"] = "escalation";
  a["text"] = why;
  a["escalation"] = true;
  a["mode"] = "live";
  if (!config_.execute) {
    a["disposition"] = "dry_run";
    a["gates"] = Json::array({Verdict("mode", "stop", "dry_run: this gavel executes no actions (actions.execute is false)")});
    d.actions.push_back(a);
    return;
  }
  if (config_.escalation_channel.empty()) {
    a["disposition"] = "blocked";
    a["gates"] = Json::array({Verdict("execute", "stop", "no escalation channel is configured")});
    d.actions.push_back(a);
    return;
  }
  a["disposition"] = "execute";
  a["gates"] = Json::array({Verdict("execute", "pass", "escalations bypass the kill switch and modes")});
  d.actions.push_back(a);
  plans.push_back({static_cast<int>(d.actions.size() - 1), "slack", "", false, 0});
}

std::vector<PlannedAction> GateKeeper::Review(rules::Decision& d, rules::TimeMs now) {
  std::vector<PlannedAction> plans;
  const dsl::RuleMeta* meta = MetaOf(d);
  std::map<std::string, std::int64_t> effects_here;  // target -> effects earlier in this decision
  bool budget_escalated = false;
  const std::size_t n = d.actions.is_array() ? d.actions.size() : 0;
  for (std::size_t i = 0; i < n; ++i) {
    Json& a = d.actions[i];
    const std::string executor = ExecutorFor(a);
    if (executor.empty()) {
      a["disposition"] = "internal";
      continue;
    }
    Json gates = Json::array();
    auto finish = [&](const char* disposition) {
      a["gates"] = std::move(gates);
      a["disposition"] = disposition;
    };
    // 1. kill switch
    const KillSwitch& k = controls_.kill_switch();
    if (k.on) {
      gates.push_back(Verdict("kill_switch", "stop", "on since " + rules::FormatTime(k.since) + " by " + k.who +
                                                         (k.reason.empty() ? "" : ": " + k.reason)));
      finish("blocked");
      continue;
    }
    gates.push_back(Verdict("kill_switch", "pass"));
    // 2. mode (and the daemon's own switch: actions.execute)
    const std::string mode = Str(a, "mode").empty() ? "dry_run" : Str(a, "mode");
    if (!config_.execute) {
      gates.push_back(Verdict("mode", "stop", "dry_run: this gavel executes no actions (actions.execute is false)"));
      finish("dry_run");
      continue;
    }
    if (mode != "live") {
      gates.push_back(Verdict("mode", "stop", mode == "shadow" ? "shadow: decided and logged, not executed"
                                                               : "dry_run: decided and logged, not executed"));
      finish(mode == "shadow" ? "shadow" : "dry_run");
      continue;
    }
    gates.push_back(Verdict("mode", "pass", "live"));
    // 3. feature flag
    if (meta && !meta->flag.empty()) {
      if (!controls_.FlagOn(meta->flag)) {
        gates.push_back(Verdict("flag", "stop", "flag `" + meta->flag + "` is off"));
        finish("blocked");
        continue;
      }
      gates.push_back(Verdict("flag", "pass", "flag `" + meta->flag + "` is on"));
    }
    // 4. operator override (pins); targets of messages are the decision's entity
    std::string target = TargetOf(a);
    const std::string pin_target = !target.empty() ? target : d.entity_type + ":" + d.entity_id;
    if (const Pin* pin = controls_.PinOn(pin_target, now)) {
      gates.push_back(Verdict("override", "stop", "pinned by " + pin->who + " until " + rules::FormatTime(pin->until) +
                                                      (pin->reason.empty() ? "" : ": " + pin->reason)));
      finish("blocked");
      continue;
    }
    gates.push_back(Verdict("override", "pass"));
    // 5. per-entity daily change budget
    if (!target.empty() && config_.max_changes_per_entity_per_day > 0) {
      const rules::TimeMs day_start = now - ((now % kDay) + kDay) % kDay;
      auto counted = outbox_.CountEffects(target, day_start);
      std::int64_t today = (counted.ok() ? counted.value() : 0) + effects_here[target];
      if (!counted.ok() || today >= config_.max_changes_per_entity_per_day) {
        std::string why = !counted.ok() ? "could not count today's changes: " + counted.status().message()
                                        : std::to_string(today) + " changes to " + target + " today (budget " +
                                              std::to_string(config_.max_changes_per_entity_per_day) + " per day)";
        gates.push_back(Verdict("limits", "stop", why));
        finish("blocked");
        if (!budget_escalated) {
          budget_escalated = true;
          plans.reserve(plans.size() + 1);
          Escalate(d, "Rule `" + d.rule + "` was stopped by the change budget: " + why, plans);
        }
        continue;
      }
      gates.push_back(Verdict("limits", "pass", std::to_string(today) + " of " +
                                                    std::to_string(config_.max_changes_per_entity_per_day) + " today"));
      effects_here[target]++;
    }
    // 6. approval
    PlannedAction plan{static_cast<int>(i), executor, target, false, 0};
    if (meta && meta->require_approval) {
      plan.needs_approval = true;
      if (meta->approval_expires_seconds > 0) plan.expires = now + meta->approval_expires_seconds * 1000;
      gates.push_back(Verdict("approval", "wait",
                              plan.expires ? "until an operator approves, at most until " + rules::FormatTime(plan.expires)
                                           : "until an operator approves or rejects"));
      finish("awaiting_approval");
      plans.push_back(plan);
      continue;
    }
    // 7. execute
    gates.push_back(Verdict("execute", "pass"));
    finish("execute");
    plans.push_back(plan);
  }
  // A rule that hit its own `limit N per DURATION` escalates instead of acting: once per rule
  // and limit window.
  if (d.kind == "rule" && d.outcome == "skipped" && d.reason == "limit") {
    const std::int64_t window = meta && meta->limit_seconds > 0 ? meta->limit_seconds * 1000 : kDay;
    auto it = last_escalation_.find(d.rule);
    if (it == last_escalation_.end() || now - it->second >= window) {
      last_escalation_[d.rule] = now;
      std::string limit = meta ? std::to_string(meta->limit_count) + " per " + std::to_string(meta->limit_seconds) + "s"
                               : "its limit";
      Escalate(d, "Rule `" + d.rule + "` reached its limit (" + limit + ") and stopped acting; decisions keep being logged.",
               plans);
    }
  }
  return plans;
}

Status GateKeeper::Enqueue(const rules::Decision& d, const std::vector<PlannedAction>& plans, rules::TimeMs now) {
  for (const auto& plan : plans) {
    ActionRequest r;
    r.decision_id = d.id;
    r.index = plan.index;
    r.idempotency_key = std::to_string(d.id) + "." + std::to_string(plan.index);
    r.rule = d.rule;
    r.rule_version = d.version;
    r.entity_type = d.entity_type;
    r.entity_id = d.entity_id;
    r.decided_at = rules::FormatTime(d.processing_time);
    r.evidence = nlohmann::json::parse(d.evidence.dump());
    r.intent = nlohmann::json::parse(d.actions[plan.index].dump());
    Status s = outbox_.Add(r, plan.executor, plan.target, plan.needs_approval, now, plan.expires);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace gavel::actions
