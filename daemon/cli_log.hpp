// `gavel log`: read and verify a decision log (SQLite, hash-chained).
//
//   gavel log --db FILE.db [--rule R] [--entity TYPE:ID] [--outcome O] [--reason R]
//             [--from T] [--to T] [--limit N] [--format text|jsonl]
//   gavel log verify --db FILE.db
//
// Exit codes: 0 done (verify: the chain is intact), 1 verify found a broken link, 2 usage or
// I/O problems.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

int RunLog(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
