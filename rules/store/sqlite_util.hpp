// Small RAII helpers over the SQLite C API, shared by the SQLite implementations in
// rules/store/ (the decision log; free for the state store and warehouse to use).
//
// Errors come back as a gavel::Status carrying SQLite's own message, e.g.
//   "decision log: append: UNIQUE constraint failed: decisions.id (SQLITE_CONSTRAINT)".
// Status codes: SQLITE_BUSY/SQLITE_LOCKED -> kUnavailable; I/O, full disk, corrupt or
// unopenable files -> kIoError; SQLITE_MISUSE/SQLITE_RANGE/SQLITE_ERROR -> kInternal.
// Nothing here throws.
// Thread-safety: none of these types is synchronised; use a connection from one thread at a
// time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "dsl/base/status.hpp"

namespace gavel::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
// An owned connection; closed with sqlite3_close_v2 (so statements still alive at that
// moment do not make the close fail: the connection closes when the last one is finalized).
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// A Status for the SQLite result code `rc`, with `what` and the connection's error message.
Status Error(sqlite3* db, int rc, std::string_view what);

// Runs one or more statements that return no rows.
Status Exec(sqlite3* db, const char* sql, std::string_view what);

// Compiles one statement.
Result<StmtPtr> Prepare(sqlite3* db, std::string_view sql, std::string_view what);

struct OpenOptions {
  bool wal = true;  // PRAGMA journal_mode=WAL (fails if the file cannot use WAL)
  const char* synchronous = "NORMAL";
  int busy_timeout_ms = 5000;
  int cache_size_kib = 64 * 1024;  // PRAGMA cache_size=-N (the page cache, per connection)
};

// Opens (creating if missing) the database file at `path` with the options above.
Result<DbPtr> OpenDatabase(const std::string& path, const OpenOptions& options = {});

// The text of column `i` of the current row ("" for NULL); valid until the next step.
inline std::string_view ColumnText(sqlite3_stmt* s, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  if (p == nullptr) return {};
  return {p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))};
}

// Binds text that stays alive until the statement is stepped and reset (no copy).
inline int BindStatic(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
// Binds a copy of the text.
inline int BindCopy(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

// Resets a statement and clears its bindings on scope exit (so a cached statement never
// holds a read transaction open or points at dead buffers).
class ResetGuard {
 public:
  explicit ResetGuard(sqlite3_stmt* s) : s_(s) {}
  ~ResetGuard() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  ResetGuard(const ResetGuard&) = delete;
  ResetGuard& operator=(const ResetGuard&) = delete;

 private:
  sqlite3_stmt* s_;
};

// A SAVEPOINT: works inside a caller's transaction or alone (then it is a transaction).
// Rolled back (to the savepoint, then released) on destruction unless Release()d.
class Savepoint {
 public:
  Savepoint(sqlite3* db, std::string name) : db_(db), name_(std::move(name)) {}
  ~Savepoint();
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;
  Status Begin();
  Status Release();

 private:
  sqlite3* db_;
  std::string name_;
  bool open_ = false;
};

}  // namespace gavel::sqlite
