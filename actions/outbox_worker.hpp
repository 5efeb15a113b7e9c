// Runs the outbox: takes due actions, performs them through their executor, and records each
// result in the outbox and as an `action` decision in the log, in one transaction.
//
//   OutboxWorker w(db_connection, log, outbox, executors, clock, options);
//   w.Recover();               // once at startup: actions left in flight by a crash are due again
//   while (running) { w.RunOnce(); sleep until w.NextDue() or a wake-up; }
//
// Each attempt: ClaimDue commits the row as in flight (attempts + 1) BEFORE sending; the
// executor makes one attempt with the row's idempotency key; the result is recorded with an
// `action` decision (outcome succeeded / retry / dead_letter, evidence: key, attempt, HTTP
// status, latency, response excerpt, before/after) in one transaction. A row that dies (a
// permanent failure, or the retry budget spent) also gets an alert to the escalation channel,
// itself an outbox row (never for an alert about a dead letter, so a dead Slack cannot loop).
//
// An executor that is not configured makes its actions fail permanently with that reason.
// Threads: RunOnce on one thread at a time; the connection is that thread's own.
#pragma once

#include <sqlite3.h>

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "actions/action.hpp"
#include "actions/outbox.hpp"
#include "rules/clock.hpp"
#include "rules/decision.hpp"

namespace gavel::actions {

struct OutboxWorkerOptions {
  RetryPolicy retry;
  int batch = 32;                        // rows claimed per pass
  std::string escalation_channel;        // dead-letter alerts ("" : only logged)
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;  // jitter
  // Asked before each attempt: a non-empty reason holds the action instead of sending it
  // (actions/manual_hold.hpp: a person changed the object recently).
  std::function<std::string(const ActionRequest&)> precheck;
};

struct OutboxPassStats {
  int attempted = 0;
  int succeeded = 0;
  int retrying = 0;
  int dead = 0;
  int held = 0;
};

class OutboxWorker {
 public:
  // `db` is the worker's connection; `log` and `outbox` must be attached to it.
  OutboxWorker(sqlite3* db, rules::DecisionSink& log, Outbox& outbox, std::map<std::string, Executor*> executors,
               const rules::Clock& clock, OutboxWorkerOptions options);

  // At startup: in-flight rows (a crash between sending and recording) are due again.
  Result<std::int64_t> Recover();
  // One pass over the due rows (and expired approvals).
  Result<OutboxPassStats> RunOnce();
  // When the next pending row is due (-1: none).
  Result<rules::TimeMs> NextDue() const { return outbox_.NextDue(); }

 private:
  Status RecordResult(const OutboxEntry& e, const ActionResult& r, OutboxPassStats& stats);
  Status RecordHold(const OutboxEntry& e, const std::string& reason, OutboxPassStats& stats);

  sqlite3* db_;
  rules::DecisionSink& log_;
  Outbox& outbox_;
  std::map<std::string, Executor*> executors_;
  const rules::Clock& clock_;
  OutboxWorkerOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace gavel::actions
