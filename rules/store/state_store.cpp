// SQLite state store. See state_store.hpp.
#include "rules/store/state_store.hpp"

namespace gavel::rules {

Result<std::unique_ptr<StateStore>> StateStore::Attach(sqlite3* db) {
  Status s = sqlite::Exec(db,
                          "CREATE TABLE IF NOT EXISTS engine_state("
                          " kind TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                          " PRIMARY KEY(kind, name, key)) WITHOUT ROWID",
                          "state store: create");
  if (!s.ok()) return s;
  std::unique_ptr<StateStore> store(new StateStore(db));
  auto put = sqlite::Prepare(db, "INSERT OR REPLACE INTO engine_state(kind, name, key, value) VALUES(?1, ?2, ?3, ?4)",
                             "state store: prepare");
  if (!put.ok()) return put.status();
  auto erase = sqlite::Prepare(db, "DELETE FROM engine_state WHERE kind = ?1 AND name = ?2 AND key = ?3",
                               "state store: prepare");
  if (!erase.ok()) return erase.status();
  store->put_ = std::move(put.value());
  store->erase_ = std::move(erase.value());
  return store;
}

Status StateStore::Put(const std::string& kind, const std::string& name, const std::string& key,
                       const nlohmann::json& value) {
  sqlite3_stmt* st = put_.get();
  sqlite3_reset(st);
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  sqlite3_bind_text(st, 1, kind.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, name.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, text.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "state store: put");
}

Status StateStore::PutText(const std::string& kind, const std::string& name, const std::string& key,
                           std::string_view json_text) {
  sqlite3_stmt* st = put_.get();
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, kind.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, name.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, json_text.data(), static_cast<int>(json_text.size()), SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "state store: put");
}

Status StateStore::Erase(const std::string& kind, const std::string& name, const std::string& key) {
  sqlite3_stmt* st = erase_.get();
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, kind.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, name.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, key.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "state store: erase");
}

Status StateStore::ForEach(const Visitor& visit) const {
  auto st = sqlite::Prepare(db_, "SELECT kind, name, key, value FROM engine_state ORDER BY kind, name, key",
                            "state store: read");
  if (!st.ok()) return st.status();
  int rc;
  while ((rc = sqlite3_step(st.value().get())) == SQLITE_ROW) {
    sqlite3_stmt* s = st.value().get();
    std::string kind(sqlite::ColumnText(s, 0)), name(sqlite::ColumnText(s, 1)), key(sqlite::ColumnText(s, 2));
    nlohmann::json value = nlohmann::json::parse(sqlite::ColumnText(s, 3), nullptr, false);
    if (value.is_discarded()) return Status::Internal("state store: row " + kind + "/" + name + "/" + key + " is not JSON");
    Status v = visit(kind, name, key, value);
    if (!v.ok()) return v;
  }
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "state store: read");
}

Result<std::unique_ptr<StateDatabase>> StateDatabase::Open(const std::string& path) {
  auto db = sqlite::OpenDatabase(path);
  if (!db.ok()) return db.status();
  std::unique_ptr<StateDatabase> out(new StateDatabase());
  out->db_ = std::move(db.value());
  auto log = DecisionLog::Attach(out->db_.get());
  if (!log.ok()) return log.status();
  out->log_ = std::move(log.value());
  auto state = StateStore::Attach(out->db_.get());
  if (!state.ok()) return state.status();
  out->state_ = std::move(state.value());
  return out;
}

}  // namespace gavel::rules
