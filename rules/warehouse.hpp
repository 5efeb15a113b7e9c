// The warehouse seam: where scheduled rules and alerts read their metrics.
//
// The engine hands over the SQL the compiler pushed down (dsl::WindowQuery::sql,
// dsl::AnomalySpec::history_sql) with the window's bounds; the warehouse runs it and returns
// rows. Implementations: SQLite (rules/store/sqlite_warehouse.hpp, the embedded default);
// PostgreSQL can follow behind the same interface. Failures (unreachable, timeout, SQL error)
// are returned as a Status, never thrown: the engine turns them into an `error` skip for the
// one rule concerned and carries on with the others.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dsl/base/status.hpp"
#include "dsl/program.hpp"
#include "rules/event.hpp"

namespace gavel::rules {

// One row of a window query: see dsl::WindowQuery for the column order.
struct WindowRow {
  std::string key;
  std::vector<std::optional<double>> aggregates;
  std::string first_time;
  std::string last_time;
  std::int64_t row_count = 0;
  std::vector<OwnedValue> dims;  // in dsl::WindowQuery::dims order
};

// One row of an anomaly history query.
struct HistoryRow {
  std::string key;
  std::string time;
  double value = 0;
  double per = 0;
};

class Warehouse {
 public:
  virtual ~Warehouse() = default;
  virtual Result<std::vector<WindowRow>> RunWindow(const dsl::WindowQuery& q, const std::string& from,
                                                   const std::string& to) = 0;
  virtual Result<std::vector<HistoryRow>> RunHistory(const std::string& sql, const std::string& from,
                                                     const std::string& to) = 0;
  // The newest value of the table's time column ("" if the table is empty).
  virtual Result<std::string> NewestTime(const dsl::TableInfo& table) = 0;
};

}  // namespace gavel::rules
