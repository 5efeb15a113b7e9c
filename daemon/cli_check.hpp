// `gavel check [--format text|json] [--sql] PATH...`: compile rule files and report.
//
// Exit codes: 0 clean (warnings allowed), 1 errors in the rule files, 2 usage or I/O problems.
// Text output goes to `out` (diagnostics, then a summary of the compiled program); usage and
// I/O errors go to `err`.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

int RunCheck(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
