// `gavel test`: runs rule unit tests (the `.test` format of docs/testing.md).
//
//   gavel test [--verbose] [--run PATTERN] FILE_OR_DIR...
//
// A directory means every `*.test` file in it (sorted). Each file's rule files are compiled
// once; each case runs on a fresh engine and a fresh temporary warehouse. Passing cases print
// one `PASS` line, failing ones `FAIL` with an expected-vs-actual diff, broken ones `ERROR`
// with file:line messages. Exit codes: 0 all passed, 1 some expectation failed, 2 usage
// problems, unreadable or malformed test files, or rule files that do not compile.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

int RunTest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
