// SQLite helpers. See sqlite_util.hpp.
#include "rules/store/sqlite_util.hpp"

#include <string>

namespace gavel::sqlite {

Status Error(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : nullptr;
  msg += detail != nullptr ? detail : sqlite3_errstr(rc);
  msg += " (";
  msg += sqlite3_errstr(rc);
  msg += ", code ";
  msg += std::to_string(rc);
  msg += ")";
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(std::move(msg));
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::IoError(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  // sqlite3_exec's message is the same as sqlite3_errmsg's; use the common path.
  sqlite3_free(err);
  return Error(db, rc, what);
}

Result<StmtPtr> Prepare(sqlite3* db, std::string_view sql, std::string_view what) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return Error(db, rc, what);
  }
  return StmtPtr(s);
}

Result<DbPtr> OpenDatabase(const std::string& path, const OpenOptions& options) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  std::string what = "open " + path;
  if (rc != SQLITE_OK) return Error(raw, rc, what);
  sqlite3_extended_result_codes(raw, 1);
  if (options.busy_timeout_ms > 0) sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  if (options.wal) {
    // journal_mode returns the mode in effect: a database that cannot use WAL (e.g. :memory:)
    // answers "memory" or "delete" instead of failing.
    auto st = Prepare(raw, "PRAGMA journal_mode=WAL", what);
    if (!st.ok()) return st.status();
    rc = sqlite3_step(st->get());
    if (rc != SQLITE_ROW) return Error(raw, rc, what + ": journal_mode=WAL");
    std::string mode(ColumnText(st->get(), 0));
    if (mode != "wal")
      return Status::IoError(what + ": the database cannot use WAL (journal mode is " + mode + ")");
  }
  std::string pragmas = std::string("PRAGMA synchronous=") + options.synchronous + ";";
  if (options.cache_size_kib > 0)
    pragmas += "PRAGMA cache_size=-" + std::to_string(options.cache_size_kib) + ";";
  Status s = Exec(raw, pragmas.c_str(), what);
  if (!s.ok()) return s;
  return db;
}

Savepoint::~Savepoint() {
  if (!open_) return;
  std::string sql = "ROLLBACK TO \"" + name_ + "\"; RELEASE \"" + name_ + "\";";
  sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
}

Status Savepoint::Begin() {
  std::string sql = "SAVEPOINT \"" + name_ + "\"";
  Status s = Exec(db_, sql.c_str(), "savepoint " + name_);
  open_ = s.ok();
  return s;
}

Status Savepoint::Release() {
  if (!open_) return Status::Internal("savepoint " + name_ + " is not open");
  std::string sql = "RELEASE \"" + name_ + "\"";
  Status s = Exec(db_, sql.c_str(), "release savepoint " + name_);
  if (s.ok()) open_ = false;
  return s;
}

}  // namespace gavel::sqlite
