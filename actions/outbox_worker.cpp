// See outbox_worker.hpp.
#include "actions/outbox_worker.hpp"

#include <chrono>

namespace gavel::actions {

namespace {

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed.
class WriteTxn {
 public:
  explicit WriteTxn(sqlite3* db) : db_(db) {}
  Status Begin() {
    Status s = sqlite::Exec(db_, "BEGIN IMMEDIATE", "outbox worker: begin");
    open_ = s.ok();
    return s;
  }
  Status Commit() {
    Status s = sqlite::Exec(db_, "COMMIT", "outbox worker: commit");
    if (s.ok()) open_ = false;
    return s;
  }
  ~WriteTxn() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

// The `action` record for an outbox row: who decided it, its key, its intent; the caller
// sets the outcome, the reason and any further evidence.
rules::Decision ActionRecord(const OutboxEntry& e, rules::TimeMs now, const char* outcome, std::string reason) {
  rules::Decision d;
  d.kind = "action";
  d.rule = e.request.rule;
  d.version = e.request.rule_version;
  d.event_time = now;
  d.processing_time = now;
  d.trigger = "outbox:" + e.key;
  d.entity_type = e.request.entity_type;
  d.entity_id = e.request.entity_id;
  d.outcome = outcome;
  d.reason = std::move(reason);
  d.evidence["decision_id"] = e.decision_id;
  d.evidence["action_index"] = e.index;
  d.evidence["idempotency_key"] = e.key;
  d.evidence["executor"] = e.executor;
  d.actions.push_back(nlohmann::ordered_json::parse(e.request.intent.dump()));
  return d;
}

}  // namespace

OutboxWorker::OutboxWorker(sqlite3* db, rules::DecisionSink& log, Outbox& outbox,
                           std::map<std::string, Executor*> executors, const rules::Clock& clock,
                           OutboxWorkerOptions options)
    : db_(db),
      log_(log),
      outbox_(outbox),
      executors_(std::move(executors)),
      clock_(clock),
      options_(std::move(options)),
      rng_(options_.seed) {}

Result<std::int64_t> OutboxWorker::Recover() { return outbox_.RecoverInFlight(clock_.Now()); }

Status OutboxWorker::RecordResult(const OutboxEntry& e, const ActionResult& r, OutboxPassStats& stats) {
  const rules::TimeMs now = clock_.Now();
  WriteTxn txn(db_);
  Status s = txn.Begin();
  if (!s.ok()) return s;
  rules::TimeMs next = 0;
  auto state = outbox_.Record(e, r, now, options_.retry, rng_, &next);
  if (!state.ok()) return state.status();
  const char* outcome = "dead_letter";
  switch (state.value()) {
    case OutboxState::kSucceeded: outcome = "succeeded"; stats.succeeded++; break;
    case OutboxState::kPending: outcome = "retry"; stats.retrying++; break;
    default: stats.dead++; break;
  }
  rules::Decision d = ActionRecord(e, now, outcome, r.error.empty() ? std::string(OutcomeName(r.outcome)) : r.error);
  d.evidence["attempt"] = e.attempts;
  d.evidence["result"] = nlohmann::ordered_json::parse(ResultJson(r).dump());
  if (state.value() == OutboxState::kPending) d.evidence["next_attempt"] = rules::FormatTime(next);
  if (!log_.Append(d)) return Status::IoError("outbox worker: the decision log refused the result of " + e.key);
  // A dead letter pages the escalation channel (never for a failed escalation or dead-letter alert).
  const bool is_alert_about_us = e.request.intent.value("escalation", false) || e.request.intent.contains("dead_letter_of");
  if (d.outcome == "dead_letter" && !options_.escalation_channel.empty() && !is_alert_about_us) {
    ActionRequest alert;
    alert.decision_id = d.id;
    alert.index = 0;
    alert.idempotency_key = std::to_string(d.id) + ".0";
    alert.rule = e.request.rule;
    alert.rule_version = e.request.rule_version;
    alert.entity_type = e.request.entity_type;
    alert.entity_id = e.request.entity_id;
    alert.decided_at = rules::FormatTime(now);
    alert.evidence = nlohmann::json::parse(d.evidence.dump());
    alert.intent = {{"action", "notify_slack"},
                    {"channel", options_.escalation_channel},
                    {"severity", "page"},
                    {"state", "dead_letter"},
                    {"dead_letter_of", e.key},
                    {"text", "Action " + e.key + " (" + e.request.intent.value("action", "?") + " by rule `" +
                                 e.request.rule + "`) gave up after " + std::to_string(e.attempts) +
                                 " attempt(s): " + (r.error.empty() ? OutcomeName(r.outcome) : r.error)},
                    {"mode", "live"}};
    s = outbox_.Add(alert, "slack", "", false, now, 0);
    if (!s.ok()) return s;
  }
  return txn.Commit();
}

Status OutboxWorker::RecordHold(const OutboxEntry& e, const std::string& reason, OutboxPassStats& stats) {
  const rules::TimeMs now = clock_.Now();
  WriteTxn txn(db_);
  Status s = txn.Begin();
  if (!s.ok()) return s;
  s = outbox_.Hold(e, reason, now);
  if (!s.ok()) return s;
  rules::Decision d = ActionRecord(e, now, "held", reason);
  if (!log_.Append(d)) return Status::IoError("outbox worker: the decision log refused the hold of " + e.key);
  stats.held++;
  return txn.Commit();
}

Result<OutboxPassStats> OutboxWorker::RunOnce() {
  OutboxPassStats stats;
  const rules::TimeMs now = clock_.Now();
  {
    WriteTxn txn(db_);
    Status s = txn.Begin();
    if (!s.ok()) return s;
    auto expired = outbox_.ExpireApprovals(now);
    if (!expired.ok()) return expired.status();
    for (const auto& e : expired.value()) {
      rules::Decision d = ActionRecord(e, now, "expired", "not approved before " + rules::FormatTime(e.expires));
      if (!log_.Append(d)) return Status::IoError("outbox worker: the decision log refused an expiry");
    }
    s = txn.Commit();
    if (!s.ok()) return s;
  }
  auto claimed = outbox_.ClaimDue(now, options_.batch);
  if (!claimed.ok()) return claimed.status();
  for (const OutboxEntry& e : claimed.value()) {
    stats.attempted++;
    if (options_.precheck) {
      std::string hold = options_.precheck(e.request);
      if (!hold.empty()) {
        Status s = RecordHold(e, hold, stats);
        if (!s.ok()) return s;
        continue;
      }
    }
    ActionResult r;
    auto it = executors_.find(e.executor);
    if (it == executors_.end() || !it->second) {
      r.outcome = ActionResult::Outcome::kFailed;
      r.error = "no `" + e.executor + "` executor is configured";
    } else {
      r = it->second->Execute(e.request);
    }
    Status s = RecordResult(e, r, stats);
    if (!s.ok()) return s;
  }
  return stats;
}

}  // namespace gavel::actions
