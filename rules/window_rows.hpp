// Lines up the rows of a scheduled unit's window queries by entity key, for one tick: the
// engine evaluates a rule over every key that any of its windows returned, with each key's
// row from each window side by side (engine_scheduled.cpp).
#pragma once

#include <string>
#include <vector>

#include "rules/warehouse.hpp"

namespace gavel::rules {

struct LinedUpRows {
  std::vector<std::string> keys;                  // the union of all queries' keys, in byte order
  std::vector<std::vector<const WindowRow*>> at;  // at[q][i]: the row of keys[i] in query q, or null
};

// `rows`: per query, its rows in any order (the window SQL orders them by key, but in the
// database's order: an integer key column sorts 2 before 10, a collation may differ from byte
// order). A key that a query returns twice keeps its last row. The result points into `rows`.
LinedUpRows LineUpByKey(const std::vector<std::vector<WindowRow>>& rows);

}  // namespace gavel::rules
