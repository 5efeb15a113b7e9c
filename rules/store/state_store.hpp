// The engine's state in SQLite: one table of (kind, name, key) -> JSON rows (rules/state.hpp),
// in the same database file as the decision log, on the same connection, so that a batch of
// decisions and the state it produced commit in one transaction ("log first, act second",
// and no decision is made twice after a restart).
//
//   auto db = StateDatabase::Open("state.db");      // one file, WAL
//   db->log()   -> the DecisionLog (rules/store/decision_log.hpp)
//   db->state() -> the StateStore (a StateSink and a StateSource)
//   db->Begin(); ... engine.OnEvent / AdvanceTo ...; engine.Checkpoint(db->state()); db->Commit();
//
// Thread-safety: one thread at a time per StateDatabase.
#pragma once

#include <memory>
#include <string>

#include "rules/state.hpp"
#include "rules/store/decision_log.hpp"
#include "rules/store/sqlite_util.hpp"

namespace gavel::rules {

class StateStore final : public StateSink, public StateSource {
 public:
  // Uses `db` (not owned); creates the table if missing.
  static Result<std::unique_ptr<StateStore>> Attach(sqlite3* db);
  Status Put(const std::string& kind, const std::string& name, const std::string& key,
             const nlohmann::json& value) override;
  Status Erase(const std::string& kind, const std::string& name, const std::string& key) override;
  Status PutText(const std::string& kind, const std::string& name, const std::string& key,
                 std::string_view json_text) override;
  Status ForEach(const Visitor& visit) const override;

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  sqlite::StmtPtr put_, erase_;
};

class StateDatabase {
 public:
  static Result<std::unique_ptr<StateDatabase>> Open(const std::string& path);
  DecisionLog& log() { return *log_; }
  StateStore& state() { return *state_; }
  Status Begin() { return log_->Begin(); }
  Status Commit() { return log_->Commit(); }
  Status Rollback() { return log_->Rollback(); }

 private:
  sqlite::DbPtr db_;
  std::unique_ptr<DecisionLog> log_;
  std::unique_ptr<StateStore> state_;
};

}  // namespace gavel::rules
