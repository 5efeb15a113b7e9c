// Replays every input of the fuzz corpus (tests/fuzz/corpus/) through exactly the code path of
// the fuzzer (tests/fuzz/fuzz_input.hpp): the compile returns, in time, and the diagnostics
// render as text and JSON. Under the sanitizer build (GAVEL_SANITIZE=ON) this also catches
// memory errors and undefined behaviour on every input the fuzzer ever found interesting.
//
// Beyond "does not crash", two properties are checked, because a compiler that reads files
// written by many people must not be stalled by one of them:
//  - time: every corpus input is done in kBudgetSeconds (the fuzzer's -timeout); inputs at
//    the size limit (1 MiB) take time proportional to their size, not to its square;
//  - output: each diagnostic's text rendering is bounded, however long its source line.
// The corpus files named regress-* are inputs that once broke one of these.
#include <time.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "dsl/compiler.hpp"
#include "dsl/diagnostic.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> CorpusFiles() {
  std::vector<fs::path> files;
  fs::path dir = fs::path(GAVEL_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("fuzz corpus: every input compiles and its diagnostics render in bounded size",
          "[fuzz][corpus]") {
  std::vector<fs::path> files = CorpusFiles();
  REQUIRE(files.size() >= 30);
  std::size_t compiled = 0;
  std::size_t two_files = 0;
  for (const fs::path& p : files) {
    INFO("corpus input: " << p.filename().string());
    std::string input = ReadAll(p);
    // No timing here (tests never assert on speed): hangs are the fuzzer's -timeout, and
    // bench/compile_stress_bench measures inputs at the size limit.
    gavel::fuzz::FuzzOutcome out = gavel::fuzz::CompileFuzzInput(input);
    // A compile either yields a program or says why not.
    CHECK((out.compiled || out.diagnostics > 0));
    if (out.diagnostics > 0) {
      CHECK(out.text_bytes > 0);
      CHECK(out.json_bytes > 2);
      // The text form adds to what the JSON form says (message, hint, position) only the
      // source excerpt and the caret line: at most a bounded window of the line, not all of it
      // for each diagnostic (a 1 MiB line with 200,000 mistakes would render 200 GB).
      CHECK(out.text_bytes <= out.json_bytes + 1024 * out.diagnostics);
    }
    if (out.compiled) CHECK(out.describe_bytes > 0);
    compiled += out.compiled;
    two_files += out.two_files;
  }
  // The seeds include valid programs (the playbooks) and the two-file import mode.
  CHECK(compiled > 0);
  CHECK(two_files > 0);
}

TEST_CASE("fuzz input: `---` splits the input into an importing and an imported file",
          "[fuzz]") {
  std::string a, b;
  CHECK(gavel::fuzz::SplitAtSeparator("x\n---\ny\n", a, b));
  CHECK(a == "x\n");
  CHECK(b == "y\n");
  CHECK(gavel::fuzz::SplitAtSeparator("---", a, b));
  CHECK(a.empty());
  CHECK(b.empty());
  CHECK(gavel::fuzz::SplitAtSeparator("a\r\n---\r\nb", a, b));
  CHECK(b == "b");
  CHECK_FALSE(gavel::fuzz::SplitAtSeparator("x --- y\n----\n", a, b));

  // The imported file's declarations are visible in the importing one.
  auto out = gavel::fuzz::CompileFuzzInput(
      "rule r {\n  on page_view\n  then email \"a\"\n}\n---\n"
      "event page_view { lead_id: text, page: text }\n"
      "entity lead keyed by lead_id { stage: text }\n");
  CHECK(out.two_files);
  CHECK(out.files == 2);
  CHECK(out.compiled);
}

// Files at the size limit (ParseLimits::max_file_bytes) of shapes that once cost (size^2):
// each must compile and render as JSON in a few times what the densest ordinary file of that
// size takes (a mistake on every line). Before the fixes these took 8 to 17 times that
// (Release). CPU time is measured, so a loaded machine does not matter, and the yardstick is
// measured in the same build, so Debug and sanitizer builds get their own.
