// The embedded warehouse: a SQLite file holding the metric tables (the sample generator's
// format: day columns 'YYYY-MM-DD', hour columns 'YYYY-MM-DD HH:00:00' UTC).
// Opens read-only. One instance per thread (sqlite3 connections are not shared here).
#pragma once

#include <memory>
#include <string>

#include "rules/warehouse.hpp"

struct sqlite3;

namespace gavel::rules {

class SqliteWarehouse final : public Warehouse {
 public:
  static Result<std::unique_ptr<SqliteWarehouse>> Open(const std::string& path);
  ~SqliteWarehouse() override;

  Result<std::vector<WindowRow>> RunWindow(const dsl::WindowQuery& q, const std::string& from,
                                           const std::string& to) override;
  Result<std::vector<HistoryRow>> RunHistory(const std::string& sql, const std::string& from,
                                             const std::string& to) override;
  Result<std::string> NewestTime(const dsl::TableInfo& table) override;

 private:
  explicit SqliteWarehouse(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace gavel::rules
