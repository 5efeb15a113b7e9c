// `gavel backtest` and `gavel diff`: what rules would have done over recorded history, and
// where two versions of the rules would have decided differently (docs/review.md).
//
//   gavel backtest [--rules DIR] [--events FILE.ndjson] [--warehouse DB] [--from T] [--to T]
//                  [--format text|json|html] [--out FILE] [--against OLD_DIR]
//                  [--conflict-window D] [--limit N] [--progress|--no-progress]
//   gavel diff OLD_DIR NEW_DIR [same data, range and output options] [--exit-code]
//
// Both run the whole engine on a simulated clock (as `gavel replay`) with no side effects:
// nothing is written but the report (stdout or --out). A progress bar goes to stderr when it
// is a terminal; a one-line summary with the wall time always ends the run on stderr.
// Exit status: 0 done, 1 the rule files do not compile, 2 usage or I/O problems; `diff
// --exit-code` exits 3 when the two versions decided differently.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

int RunBacktest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunDiff(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
