// SQLite warehouse. See sqlite_warehouse.hpp.
#include "rules/store/sqlite_warehouse.hpp"

#include <sqlite3.h>

namespace gavel::rules {

namespace {

// RAII statement with :from/:to bound.
struct Stmt {
  sqlite3_stmt* st = nullptr;
  ~Stmt() { sqlite3_finalize(st); }
};

Status Prepare(sqlite3* db, const std::string& sql, const std::string& from, const std::string& to, Stmt& s) {
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s.st, nullptr) != SQLITE_OK) {
    return Status::Unavailable(std::string("warehouse query failed: ") + sqlite3_errmsg(db));
  }
  int i_from = sqlite3_bind_parameter_index(s.st, ":from");
  int i_to = sqlite3_bind_parameter_index(s.st, ":to");
  if (i_from) sqlite3_bind_text(s.st, i_from, from.c_str(), -1, SQLITE_TRANSIENT);
  if (i_to) sqlite3_bind_text(s.st, i_to, to.c_str(), -1, SQLITE_TRANSIENT);
  return Status::Ok();
}

std::string Text(sqlite3_stmt* st, int c) {
  const unsigned char* t = sqlite3_column_text(st, c);
  return t ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace

Result<std::unique_ptr<SqliteWarehouse>> SqliteWarehouse::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status::IoError("cannot open warehouse " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 2000);
  // Fail fast on a file that is not a database.
  if (sqlite3_exec(db, "SELECT 1 FROM sqlite_master LIMIT 1", nullptr, nullptr, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db);
    sqlite3_close(db);
    return Status::IoError("cannot read warehouse " + path + ": " + msg);
  }
  return std::unique_ptr<SqliteWarehouse>(new SqliteWarehouse(db));
}

SqliteWarehouse::~SqliteWarehouse() { sqlite3_close(db_); }

Result<std::vector<WindowRow>> SqliteWarehouse::RunWindow(const dsl::WindowQuery& q, const std::string& from,
                                                          const std::string& to) {
  Stmt s;
  Status st = Prepare(db_, q.sql, from, to, s);
  if (!st.ok()) return st;
  std::vector<WindowRow> rows;
  int rc;
  const int n_aggs = static_cast<int>(q.aggregates.size());
  while ((rc = sqlite3_step(s.st)) == SQLITE_ROW) {
    WindowRow r;
    r.key = Text(s.st, 0);
    for (int i = 0; i < n_aggs; ++i) {
      if (sqlite3_column_type(s.st, 1 + i) == SQLITE_NULL) r.aggregates.emplace_back();
      else r.aggregates.emplace_back(sqlite3_column_double(s.st, 1 + i));
    }
    r.first_time = Text(s.st, 1 + n_aggs);
    r.last_time = Text(s.st, 2 + n_aggs);
    r.row_count = sqlite3_column_int64(s.st, 3 + n_aggs);
    for (std::size_t d = 0; d < q.dims.size(); ++d) {
      int c = 4 + n_aggs + static_cast<int>(d);
      OwnedValue v;
      switch (sqlite3_column_type(s.st, c)) {
        case SQLITE_INTEGER:
        case SQLITE_FLOAT:
          v.kind = Value::Kind::kNumber;
          v.num = sqlite3_column_double(s.st, c);
          break;
        case SQLITE_NULL:
          break;
        default:
          v.kind = Value::Kind::kText;
          v.text = Text(s.st, c);
      }
      r.dims.push_back(std::move(v));
    }
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Status::Unavailable(std::string("warehouse query failed: ") + sqlite3_errmsg(db_));
  return rows;
}

Result<std::vector<HistoryRow>> SqliteWarehouse::RunHistory(const std::string& sql, const std::string& from,
                                                            const std::string& to) {
  Stmt s;
  Status st = Prepare(db_, sql, from, to, s);
  if (!st.ok()) return st;
  std::vector<HistoryRow> rows;
  int rc;
  bool has_per = sqlite3_column_count(s.st) > 3;
  while ((rc = sqlite3_step(s.st)) == SQLITE_ROW) {
    HistoryRow r;
    r.key = Text(s.st, 0);
    r.time = Text(s.st, 1);
    r.value = sqlite3_column_double(s.st, 2);
    if (has_per) r.per = sqlite3_column_double(s.st, 3);
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Status::Unavailable(std::string("warehouse query failed: ") + sqlite3_errmsg(db_));
  return rows;
}

Result<std::string> SqliteWarehouse::NewestTime(const dsl::TableInfo& table) {
  auto quote = [](const std::string& n) {
    std::string o = "\"";
    for (char c : n) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
  };
  std::string rel;
  std::size_t pos = 0;
  while (true) {
    std::size_t dot = table.source.find('.', pos);
    rel += quote(table.source.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos));
    if (dot == std::string::npos) break;
    rel += ".";
    pos = dot + 1;
  }
  std::string sql = "SELECT MAX(" + quote(table.time_column) + ") FROM " + rel;
  Stmt s;
  Status st = Prepare(db_, sql, "", "", s);
  if (!st.ok()) return st;
  int rc = sqlite3_step(s.st);
  if (rc != SQLITE_ROW) return Status::Unavailable(std::string("warehouse query failed: ") + sqlite3_errmsg(db_));
  return Text(s.st, 0);
}

}  // namespace gavel::rules
