// Replays every input of the fuzz corpus (tests/fuzz/corpus/) through exactly the code path of
// the fuzzer (tests/fuzz/fuzz_input.hpp): the compile returns, and the diagnostics render as
// text and JSON. Under the sanitizer build (GAVEL_SANITIZE=ON) this also catches memory errors
// and undefined behaviour on every input the fuzzer ever found interesting.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

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

TEST_CASE("fuzz corpus: every input compiles without crashing and its diagnostics render",
          "[fuzz][corpus]") {
  std::vector<fs::path> files = CorpusFiles();
  REQUIRE(files.size() >= 30);
  std::size_t compiled = 0;
  std::size_t two_files = 0;
  for (const fs::path& p : files) {
    INFO("corpus input: " << p.filename().string());
    std::string input = ReadAll(p);
    gavel::fuzz::FuzzOutcome out = gavel::fuzz::CompileFuzzInput(input);
    // A compile either yields a program or says why not.
    CHECK((out.compiled || out.diagnostics > 0));
    // Every diagnostic renders: text and JSON are never empty when there is something to say.
    if (out.diagnostics > 0) {
      CHECK(out.text_bytes > 0);
      CHECK(out.json_bytes > 2);
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
