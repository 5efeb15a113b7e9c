// The durable outbox: every action a logged decision is allowed to perform, as one row, from
// the moment the decision is logged until the effect is confirmed (or given up on).
//
// Rows live in the state database (table `outbox`, same file and connection as the decision
// log), so a decision and its outbox rows commit in ONE transaction: "log first, act second",
// and a crash at any moment loses no decision and no intended action.
//
// Lifecycle of a row (the only transitions; see Outbox::Record and the operator calls):
//
//   awaiting_approval --approve--> pending        (rule with `require approval`)
//   awaiting_approval --reject---> rejected
//   awaiting_approval --expiry---> expired        (`expires after`)
//   pending --claim--> in_flight                  (attempts + 1, committed BEFORE sending)
//   in_flight --result: succeeded--> succeeded
//   in_flight --result: retryable--> pending      (next attempt after backoff with jitter,
//                                                  or the receiver's Retry-After)
//   in_flight --result: failed, or retry budget spent--> dead   (a dead letter)
//   in_flight --found at startup--> pending       (a crash between sending and recording:
//                                                  sent again with the SAME idempotency key)
//   in_flight --a person changed the object--> held   (actions/manual_hold.hpp: not sent)
//
// Exactly once: the idempotency key "<decision id>.<index>" is fixed when the row is made
// and sent with every attempt, so a receiver that honours it (webhooks, the ad-platform
// contract) performs the effect once however often gavel retries. Slack incoming webhooks
// have no idempotency key: a crash in the instant between Slack's answer and the record
// makes that one message go out twice (at least once, never lost).
//
// Threads: one thread at a time per Outbox (and per connection). The daemon gives the outbox
// worker its own connection to the same file; SQLite serialises the writers.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "actions/action.hpp"
#include "dsl/base/status.hpp"
#include "rules/clock.hpp"
#include "rules/store/sqlite_util.hpp"

namespace gavel::actions {

enum class OutboxState { kAwaitingApproval, kPending, kInFlight, kSucceeded, kDead, kRejected, kExpired, kHeld };
const char* StateName(OutboxState s);
bool ParseState(const std::string& text, OutboxState& out);

struct OutboxEntry {
  std::string key;            // the idempotency key
  std::int64_t decision_id = 0;
  int index = 0;
  std::string executor;       // slack | webhook | ad_platform | messaging
  std::string target;         // "<entity type>:<id>" for effects on platform objects, else ""
  OutboxState state = OutboxState::kPending;
  std::int64_t attempts = 0;
  rules::TimeMs next_attempt = 0;
  rules::TimeMs expires = 0;  // awaiting approval: dropped at this time (0: never)
  rules::TimeMs created = 0;
  rules::TimeMs updated = 0;
  std::string decided_by;     // approvals: who approved or rejected
  ActionRequest request;
  nlohmann::json last_result; // the last attempt's ActionResult as JSON (null before any)
};

// Retries: exponential backoff with full jitter (delay drawn uniformly from
// [0, min(max_delay, base * 2^(attempt-1))]); a Retry-After from the receiver wins when
// longer. After `max_attempts` attempts the row becomes a dead letter.
struct RetryPolicy {
  int max_attempts = 8;
  std::int64_t base_delay_ms = 1000;
  std::int64_t max_delay_ms = 10 * 60 * 1000;
};
std::int64_t RetryDelay(const RetryPolicy& p, std::int64_t attempt, std::optional<std::int64_t> retry_after_ms,
                        std::mt19937_64& rng);

nlohmann::json ResultJson(const ActionResult& r);

struct OutboxFilter {
  std::optional<OutboxState> state;
  std::optional<std::int64_t> decision_id;
  std::int64_t limit = 100;
};

class Outbox {
 public:
  // Uses `db` (not owned); creates the table and its indexes if missing.
  static Result<std::unique_ptr<Outbox>> Attach(sqlite3* db);

  // Adds a row (inside the caller's transaction, with the decision it belongs to).
  Status Add(const ActionRequest& request, const std::string& executor, const std::string& target, bool needs_approval,
             rules::TimeMs now, rules::TimeMs expires);

  // Marks up to `max` due pending rows in flight (attempts + 1) and returns them, in one
  // transaction of its own: committed before anything is sent.
  Result<std::vector<OutboxEntry>> ClaimDue(rules::TimeMs now, int max);
  // Records the result of an in-flight row's attempt (in the caller's transaction, with the
  // `action` decision that logs it). Returns the new state; `next` is the next attempt time
  // for a retry.
  Result<OutboxState> Record(const OutboxEntry& e, const ActionResult& r, rules::TimeMs now, const RetryPolicy& policy,
                             std::mt19937_64& rng, rules::TimeMs* next = nullptr);
  // An in-flight row that is not sent because a person changed its object (final).
  Status Hold(const OutboxEntry& e, const std::string& reason, rules::TimeMs now);
  // At startup: rows left in flight by a crash go back to pending, due now. Returns how many.
  Result<std::int64_t> RecoverInFlight(rules::TimeMs now);

  // Approvals. NotFound for an unknown key; InvalidArgument if the row is not awaiting approval.
  Status Approve(const std::string& key, const std::string& who, rules::TimeMs now);
  Status Reject(const std::string& key, const std::string& who, rules::TimeMs now);
  // Rows awaiting approval whose time ran out become expired; returns them.
  Result<std::vector<OutboxEntry>> ExpireApprovals(rules::TimeMs now);

  Result<OutboxEntry> Get(const std::string& key) const;
  Result<std::vector<OutboxEntry>> List(const OutboxFilter& f) const;
  // Rows not finished: awaiting approval, pending, in flight.
  Result<std::int64_t> Depth() const;
  // Effects on `target` logged since `since` that were allowed to run (any state but
  // rejected/expired): the per-entity change budget counts these.
  Result<std::int64_t> CountEffects(const std::string& target, rules::TimeMs since) const;
  // The earliest next_attempt of a pending row (-1: none).
  Result<rules::TimeMs> NextDue() const;

 private:
  explicit Outbox(sqlite3* db) : db_(db) {}
  Status SetState(const std::string& key, OutboxState from, OutboxState to, const std::string& who, rules::TimeMs now);
  sqlite3* db_;
};

}  // namespace gavel::actions
