// See outbox.hpp.
#include "actions/outbox.hpp"

#include <algorithm>

namespace gavel::actions {

namespace {

constexpr const char* kColumns =
    "key, decision_id, idx, executor, target, state, attempts, next_attempt_ms, expires_ms, created_ms, updated_ms, "
    "decided_by, request, last_result";

nlohmann::json RequestJson(const ActionRequest& r) {
  return {{"idempotency_key", r.idempotency_key},
          {"decision_id", r.decision_id},
          {"index", r.index},
          {"rule", r.rule},
          {"rule_version", r.rule_version},
          {"entity_type", r.entity_type},
          {"entity_id", r.entity_id},
          {"decided_at", r.decided_at},
          {"evidence", r.evidence},
          {"intent", r.intent}};
}

ActionRequest RequestFrom(const nlohmann::json& j) {
  ActionRequest r;
  r.idempotency_key = j.value("idempotency_key", "");
  r.decision_id = j.value("decision_id", std::int64_t{0});
  r.index = j.value("index", 0);
  r.rule = j.value("rule", "");
  r.rule_version = j.value("rule_version", "");
  r.entity_type = j.value("entity_type", "");
  r.entity_id = j.value("entity_id", "");
  r.decided_at = j.value("decided_at", "");
  if (j.contains("evidence")) r.evidence = j["evidence"];
  if (j.contains("intent")) r.intent = j["intent"];
  return r;
}

Status Step(sqlite3* db, sqlite3_stmt* s, const char* what) {
  int rc = sqlite3_step(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::Ok() : sqlite::Error(db, rc, what);
}

Result<OutboxEntry> ReadRow(sqlite3_stmt* q) {
  OutboxEntry e;
  e.key = std::string(sqlite::ColumnText(q, 0));
  e.decision_id = sqlite3_column_int64(q, 1);
  e.index = sqlite3_column_int(q, 2);
  e.executor = std::string(sqlite::ColumnText(q, 3));
  e.target = std::string(sqlite::ColumnText(q, 4));
  if (!ParseState(std::string(sqlite::ColumnText(q, 5)), e.state)) {
    return Status::Internal("outbox: row " + e.key + " has an unknown state");
  }
  e.attempts = sqlite3_column_int64(q, 6);
  e.next_attempt = sqlite3_column_int64(q, 7);
  e.expires = sqlite3_column_int64(q, 8);
  e.created = sqlite3_column_int64(q, 9);
  e.updated = sqlite3_column_int64(q, 10);
  e.decided_by = std::string(sqlite::ColumnText(q, 11));
  nlohmann::json req = nlohmann::json::parse(sqlite::ColumnText(q, 12), nullptr, false);
  if (req.is_discarded()) return Status::Internal("outbox: row " + e.key + " has a damaged request");
  e.request = RequestFrom(req);
  e.request.attempt = e.attempts;
  if (sqlite3_column_type(q, 13) != SQLITE_NULL) {
    e.last_result = nlohmann::json::parse(sqlite::ColumnText(q, 13), nullptr, false);
    if (e.last_result.is_discarded()) e.last_result = nullptr;
  }
  return e;
}

// A transaction of its own when none is open, else a savepoint in the caller's.
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db), sp_(db, "outbox") {}
  Status Begin() {
    if (sqlite3_get_autocommit(db_)) {
      own_ = true;
      return sqlite::Exec(db_, "BEGIN IMMEDIATE", "outbox: begin");
    }
    return sp_.Begin();
  }
  Status Commit() {
    if (own_) {
      own_ = false;
      return sqlite::Exec(db_, "COMMIT", "outbox: commit");
    }
    return sp_.Release();
  }
  ~Txn() {
    if (own_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  sqlite::Savepoint sp_;
  bool own_ = false;
};

}  // namespace

const char* StateName(OutboxState s) {
  switch (s) {
    case OutboxState::kAwaitingApproval: return "awaiting_approval";
    case OutboxState::kPending: return "pending";
    case OutboxState::kInFlight: return "in_flight";
    case OutboxState::kSucceeded: return "succeeded";
    case OutboxState::kDead: return "dead";
    case OutboxState::kRejected: return "rejected";
    case OutboxState::kExpired: return "expired";
    case OutboxState::kHeld: return "held";
  }
  return "pending";
}

bool ParseState(const std::string& text, OutboxState& out) {
  for (auto s : {OutboxState::kAwaitingApproval, OutboxState::kPending, OutboxState::kInFlight, OutboxState::kSucceeded,
                 OutboxState::kDead, OutboxState::kRejected, OutboxState::kExpired, OutboxState::kHeld}) {
    if (text == StateName(s)) {
      out = s;
      return true;
    }
  }
  return false;
}

std::int64_t RetryDelay(const RetryPolicy& p, std::int64_t attempt, std::optional<std::int64_t> retry_after_ms,
                        std::mt19937_64& rng) {
  std::int64_t cap = p.base_delay_ms;
  for (std::int64_t i = 1; i < attempt && cap < p.max_delay_ms; ++i) cap *= 2;
  cap = std::min(cap, p.max_delay_ms);
  std::uniform_int_distribution<std::int64_t> jitter(0, std::max<std::int64_t>(cap, 0));
  std::int64_t delay = jitter(rng);
  if (retry_after_ms && *retry_after_ms > delay) delay = std::min(*retry_after_ms, std::int64_t{24} * 3600 * 1000);
  return delay;
}

nlohmann::json ResultJson(const ActionResult& r) {
  nlohmann::json j = {{"outcome", OutcomeName(r.outcome)},
                      {"http_status", r.http_status},
                      {"latency_ms", r.latency_ms},
                      {"error", r.error},
                      {"response", r.response_excerpt}};
  if (r.retry_after_ms) j["retry_after_ms"] = *r.retry_after_ms;
  if (!r.before.is_null()) j["before"] = r.before;
  if (!r.after.is_null()) j["after"] = r.after;
  return j;
}

Result<std::unique_ptr<Outbox>> Outbox::Attach(sqlite3* db) {
  Status s = sqlite::Exec(db,
                          "CREATE TABLE IF NOT EXISTS outbox("
                          " key TEXT PRIMARY KEY, decision_id INTEGER NOT NULL, idx INTEGER NOT NULL,"
                          " executor TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,"
                          " attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,"
                          " expires_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,"
                          " updated_ms INTEGER NOT NULL, decided_by TEXT NOT NULL DEFAULT '',"
                          " request TEXT NOT NULL, last_result TEXT);"
                          "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_ms);"
                          "CREATE INDEX IF NOT EXISTS outbox_target ON outbox(target, created_ms);"
                          "CREATE INDEX IF NOT EXISTS outbox_decision ON outbox(decision_id);",
                          "outbox: create");
  if (!s.ok()) return s;
  return std::unique_ptr<Outbox>(new Outbox(db));
}

Status Outbox::Add(const ActionRequest& request, const std::string& executor, const std::string& target,
                   bool needs_approval, rules::TimeMs now, rules::TimeMs expires) {
  if (request.idempotency_key.empty()) return Status::InvalidArgument("outbox: an action needs an idempotency key");
  auto st = sqlite::Prepare(db_,
                            "INSERT INTO outbox(key, decision_id, idx, executor, target, state, next_attempt_ms,"
                            " expires_ms, created_ms, updated_ms, request) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                            "outbox: add");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  const std::string req = RequestJson(request).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  sqlite::BindStatic(q, 1, request.idempotency_key);
  sqlite3_bind_int64(q, 2, request.decision_id);
  sqlite3_bind_int(q, 3, request.index);
  sqlite::BindStatic(q, 4, executor);
  sqlite::BindStatic(q, 5, target);
  sqlite::BindStatic(q, 6, StateName(needs_approval ? OutboxState::kAwaitingApproval : OutboxState::kPending));
  sqlite3_bind_int64(q, 7, now);
  sqlite3_bind_int64(q, 8, expires);
  sqlite3_bind_int64(q, 9, now);
  sqlite3_bind_int64(q, 10, now);
  sqlite::BindStatic(q, 11, req);
  return Step(db_, q, "outbox: add");
}

Result<std::vector<OutboxEntry>> Outbox::ClaimDue(rules::TimeMs now, int max) {
  Txn txn(db_);
  Status s = txn.Begin();
  if (!s.ok()) return s;
  std::vector<OutboxEntry> out;
  {
    auto st = sqlite::Prepare(db_,
                              std::string("SELECT ") + kColumns +
                                  " FROM outbox WHERE state = 'pending' AND next_attempt_ms <= ?"
                                  " ORDER BY next_attempt_ms, key LIMIT ?",
                              "outbox: claim");
    if (!st.ok()) return st.status();
    sqlite3_stmt* q = st.value().get();
    sqlite3_bind_int64(q, 1, now);
    sqlite3_bind_int(q, 2, max);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
      auto e = ReadRow(q);
      if (!e.ok()) return e.status();
      out.push_back(std::move(e.value()));
    }
    if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "outbox: claim");
  }
  auto up = sqlite::Prepare(db_,
                            "UPDATE outbox SET state = 'in_flight', attempts = attempts + 1, updated_ms = ?"
                            " WHERE key = ?",
                            "outbox: claim");
  if (!up.ok()) return up.status();
  for (auto& e : out) {
    sqlite3_stmt* q = up.value().get();
    sqlite::ResetGuard reset(q);
    sqlite3_bind_int64(q, 1, now);
    sqlite::BindStatic(q, 2, e.key);
    s = Step(db_, q, "outbox: claim");
    if (!s.ok()) return s;
    e.state = OutboxState::kInFlight;
    e.attempts += 1;
    e.request.attempt = e.attempts;
  }
  s = txn.Commit();
  if (!s.ok()) return s;
  return out;
}

Result<OutboxState> Outbox::Record(const OutboxEntry& e, const ActionResult& r, rules::TimeMs now,
                                   const RetryPolicy& policy, std::mt19937_64& rng, rules::TimeMs* next) {
  OutboxState to = OutboxState::kDead;
  rules::TimeMs at = now;
  switch (r.outcome) {
    case ActionResult::Outcome::kSucceeded: to = OutboxState::kSucceeded; break;
    case ActionResult::Outcome::kRetryable:
      if (e.attempts < policy.max_attempts) {
        to = OutboxState::kPending;
        at = now + RetryDelay(policy, e.attempts, r.retry_after_ms, rng);
      }
      break;
    case ActionResult::Outcome::kFailed: break;
  }
  auto st = sqlite::Prepare(db_,
                            "UPDATE outbox SET state = ?, next_attempt_ms = ?, updated_ms = ?, last_result = ?"
                            " WHERE key = ? AND state = 'in_flight'",
                            "outbox: record");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  const std::string result = ResultJson(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  sqlite::BindStatic(q, 1, StateName(to));
  sqlite3_bind_int64(q, 2, at);
  sqlite3_bind_int64(q, 3, now);
  sqlite::BindStatic(q, 4, result);
  sqlite::BindStatic(q, 5, e.key);
  Status s = Step(db_, q, "outbox: record");
  if (!s.ok()) return s;
  if (sqlite3_changes(db_) != 1) return Status::InvalidArgument("outbox: " + e.key + " is not in flight");
  if (next) *next = at;
  return to;
}

Status Outbox::Hold(const OutboxEntry& e, const std::string& reason, rules::TimeMs now) {
  auto st = sqlite::Prepare(db_,
                            "UPDATE outbox SET state = 'held', updated_ms = ?, last_result = ?"
                            " WHERE key = ? AND state = 'in_flight'",
                            "outbox: hold");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  const std::string result = nlohmann::json({{"outcome", "held"}, {"error", reason}}).dump();
  sqlite3_bind_int64(q, 1, now);
  sqlite::BindStatic(q, 2, result);
  sqlite::BindStatic(q, 3, e.key);
  Status s = Step(db_, q, "outbox: hold");
  if (!s.ok()) return s;
  if (sqlite3_changes(db_) != 1) return Status::InvalidArgument("outbox: " + e.key + " is not in flight");
  return Status::Ok();
}

Result<std::int64_t> Outbox::RecoverInFlight(rules::TimeMs now) {
  auto st = sqlite::Prepare(db_, "UPDATE outbox SET state = 'pending', next_attempt_ms = ?, updated_ms = ? WHERE state = 'in_flight'",
                            "outbox: recover");
  if (!st.ok()) return st.status();
  sqlite3_bind_int64(st.value().get(), 1, now);
  sqlite3_bind_int64(st.value().get(), 2, now);
  Status s = Step(db_, st.value().get(), "outbox: recover");
  if (!s.ok()) return s;
  return static_cast<std::int64_t>(sqlite3_changes(db_));
}

Status Outbox::SetState(const std::string& key, OutboxState from, OutboxState to, const std::string& who,
                        rules::TimeMs now) {
  auto current = Get(key);
  if (!current.ok()) return current.status();
  if (current.value().state != from) {
    return Status::InvalidArgument("action " + key + " is " + StateName(current.value().state) + ", not " + StateName(from));
  }
  auto st = sqlite::Prepare(db_,
                            "UPDATE outbox SET state = ?, decided_by = ?, updated_ms = ?, next_attempt_ms = ?"
                            " WHERE key = ? AND state = ?",
                            "outbox: decide");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  sqlite::BindStatic(q, 1, StateName(to));
  sqlite::BindStatic(q, 2, who);
  sqlite3_bind_int64(q, 3, now);
  sqlite3_bind_int64(q, 4, now);
  sqlite::BindStatic(q, 5, key);
  sqlite::BindStatic(q, 6, StateName(from));
  return Step(db_, q, "outbox: decide");
}

Status Outbox::Approve(const std::string& key, const std::string& who, rules::TimeMs now) {
  auto e = Get(key);
  if (!e.ok()) return e.status();
  if (e.value().state == OutboxState::kAwaitingApproval && e.value().expires > 0 && now >= e.value().expires) {
    return Status::InvalidArgument("action " + key + " expired at " + rules::FormatTime(e.value().expires));
  }
  return SetState(key, OutboxState::kAwaitingApproval, OutboxState::kPending, who, now);
}

Status Outbox::Reject(const std::string& key, const std::string& who, rules::TimeMs now) {
  return SetState(key, OutboxState::kAwaitingApproval, OutboxState::kRejected, who, now);
}

Result<std::vector<OutboxEntry>> Outbox::ExpireApprovals(rules::TimeMs now) {
  std::vector<OutboxEntry> out;
  {
    auto st = sqlite::Prepare(db_,
                              std::string("SELECT ") + kColumns +
                                  " FROM outbox WHERE state = 'awaiting_approval' AND expires_ms > 0 AND expires_ms <= ?",
                              "outbox: expire");
    if (!st.ok()) return st.status();
    sqlite3_bind_int64(st.value().get(), 1, now);
    int rc;
    while ((rc = sqlite3_step(st.value().get())) == SQLITE_ROW) {
      auto e = ReadRow(st.value().get());
      if (!e.ok()) return e.status();
      out.push_back(std::move(e.value()));
    }
    if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "outbox: expire");
  }
  for (auto& e : out) {
    Status s = SetState(e.key, OutboxState::kAwaitingApproval, OutboxState::kExpired, "", now);
    if (!s.ok()) return s;
    e.state = OutboxState::kExpired;
  }
  return out;
}

Result<OutboxEntry> Outbox::Get(const std::string& key) const {
  auto st = sqlite::Prepare(db_, std::string("SELECT ") + kColumns + " FROM outbox WHERE key = ?", "outbox: get");
  if (!st.ok()) return st.status();
  sqlite::BindStatic(st.value().get(), 1, key);
  int rc = sqlite3_step(st.value().get());
  if (rc == SQLITE_DONE) return Status::NotFound("no action " + key + " in the outbox");
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "outbox: get");
  return ReadRow(st.value().get());
}

Result<std::vector<OutboxEntry>> Outbox::List(const OutboxFilter& f) const {
  std::string sql = std::string("SELECT ") + kColumns + " FROM outbox WHERE 1";
  if (f.state) sql += " AND state = ?1";
  if (f.decision_id) sql += " AND decision_id = ?2";
  sql += " ORDER BY created_ms, key LIMIT ?3";
  auto st = sqlite::Prepare(db_, sql, "outbox: list");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  if (f.state) sqlite::BindStatic(q, 1, StateName(*f.state));
  if (f.decision_id) sqlite3_bind_int64(q, 2, *f.decision_id);
  sqlite3_bind_int64(q, 3, f.limit > 0 ? f.limit : -1);
  std::vector<OutboxEntry> out;
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    auto e = ReadRow(q);
    if (!e.ok()) return e.status();
    out.push_back(std::move(e.value()));
  }
  if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "outbox: list");
  return out;
}

Result<std::int64_t> Outbox::Depth() const {
  auto st = sqlite::Prepare(db_, "SELECT count(*) FROM outbox WHERE state IN ('awaiting_approval','pending','in_flight')",
                            "outbox: depth");
  if (!st.ok()) return st.status();
  int rc = sqlite3_step(st.value().get());
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "outbox: depth");
  return static_cast<std::int64_t>(sqlite3_column_int64(st.value().get(), 0));
}

Result<std::int64_t> Outbox::CountEffects(const std::string& target, rules::TimeMs since) const {
  auto st = sqlite::Prepare(db_,
                            "SELECT count(*) FROM outbox WHERE target = ? AND created_ms >= ?"
                            " AND state NOT IN ('rejected','expired','held')",
                            "outbox: count");
  if (!st.ok()) return st.status();
  sqlite::BindStatic(st.value().get(), 1, target);
  sqlite3_bind_int64(st.value().get(), 2, since);
  int rc = sqlite3_step(st.value().get());
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "outbox: count");
  return static_cast<std::int64_t>(sqlite3_column_int64(st.value().get(), 0));
}

Result<rules::TimeMs> Outbox::NextDue() const {
  auto st = sqlite::Prepare(db_, "SELECT min(next_attempt_ms) FROM outbox WHERE state = 'pending'", "outbox: next");
  if (!st.ok()) return st.status();
  int rc = sqlite3_step(st.value().get());
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "outbox: next");
  if (sqlite3_column_type(st.value().get(), 0) == SQLITE_NULL) return rules::TimeMs{-1};
  return static_cast<rules::TimeMs>(sqlite3_column_int64(st.value().get(), 0));
}

}  // namespace gavel::actions
