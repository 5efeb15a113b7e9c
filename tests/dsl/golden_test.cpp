// Golden diagnostics: every tests/golden/diagnostics/NN_name.gavel is a small rule file with a
// mistake in it, and NN_name.expect holds exactly what `gavel check --quiet` prints for it
// (without the final "N errors, M warnings" line), after a first line `# exit N` with the exit
// status `gavel check` gives it (0 clean or warnings only, 1 errors, 2 unreadable).
//
// Each file is compiled by its path relative to the source directory, as an author would type
// it there, so the paths in the expected output are `tests/golden/diagnostics/...`.
//
// One Catch2 test case per file, registered when the test binary starts by listing the
// directory. A mismatch prints a line diff (`-` expected, `+` actual). To accept new output:
//   GAVEL_UPDATE_GOLDEN=1 ./gavel_tests '[golden]'
// and review the change of the .expect files like any other change.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "dsl/compiler.hpp"

namespace {

namespace fs = std::filesystem;

const char* const kGoldenDir = "tests/golden/diagnostics";

// Runs a compile with the source directory as the working directory, as `gavel check` would be
// run there, and puts the previous working directory back afterwards.
class InSourceDir {
 public:
  InSourceDir() : previous_(fs::current_path()) { fs::current_path(GAVEL_SOURCE_DIR); }
  ~InSourceDir() {
    std::error_code ec;
    fs::current_path(previous_, ec);
  }
  InSourceDir(const InSourceDir&) = delete;
  InSourceDir& operator=(const InSourceDir&) = delete;

 private:
  fs::path previous_;
};

std::vector<std::string> GoldenCases() {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(fs::path(GAVEL_SOURCE_DIR) / kGoldenDir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().extension() == ".gavel") names.push_back(it->path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What `gavel check --quiet FILE` prints for a file, minus the count line, after `# exit N`.
std::string Actual(const std::string& name) {
  InSourceDir cwd;
  std::string path = std::string(kGoldenDir) + "/" + name + ".gavel";
  gavel::dsl::CompileResult r = gavel::dsl::Compile({path});
  int exit_code = !r.io_error.empty() ? 2 : r.diags.has_errors() ? 1 : 0;
  std::string out = "# exit " + std::to_string(exit_code) + "\n";
  if (!r.io_error.empty()) return out + "gavel check: " + r.io_error + "\n";
  return out + gavel::dsl::RenderText(r.sources, r.diags.list());
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A line diff of two texts (longest common subsequence): "  " same, "- " only expected,
// "+ " only actual.
std::string Diff(const std::string& expected, const std::string& actual) {
  std::vector<std::string> a = Lines(expected), b = Lines(actual);
  std::vector<std::vector<int>> lcs(a.size() + 1, std::vector<int>(b.size() + 1, 0));
  for (std::size_t i = a.size(); i-- > 0;) {
    for (std::size_t j = b.size(); j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::string out;
  std::size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i < a.size() && j < b.size() && a[i] == b[j]) {
      out += "  " + a[i++] + "\n";
      ++j;
    } else if (i < a.size() && (j == b.size() || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out += "- " + a[i++] + "\n";
    } else {
      out += "+ " + b[j++] + "\n";
    }
  }
  return out;
}

void CheckGolden(const std::string& name) {
  fs::path expect_path = fs::path(GAVEL_SOURCE_DIR) / kGoldenDir / (name + ".expect");
  std::string actual = Actual(name);
  const char* update = std::getenv("GAVEL_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(expect_path, std::ios::binary) << actual;
    WARN("updated " << expect_path.string());
    return;
  }
  if (!fs::exists(expect_path)) {
    FAIL("missing " << expect_path.string() << "; the output is:\n"
                    << actual << "\nrun with GAVEL_UPDATE_GOLDEN=1 to write it");
  }
  std::string expected = ReadText(expect_path);
  if (expected != actual) {
    FAIL("the diagnostics of " << name << ".gavel differ from " << name
                               << ".expect (- expected, + actual):\n"
                               << Diff(expected, actual)
                               << "if the new output is right, accept it with GAVEL_UPDATE_GOLDEN=1");
  }
  SUCCEED();
}

// One test case per golden file, so that ctest lists and reruns them one by one.
struct GoldenInvoker : Catch::ITestInvoker {
  explicit GoldenInvoker(std::string n) : name(std::move(n)) {}
  void invoke() const override { CheckGolden(name); }
  std::string name;
};

struct RegisterGoldenCases {
  RegisterGoldenCases() {
    for (const auto& name : GoldenCases()) {
      std::string title = "the diagnostics of " + name + ".gavel match its golden file";
      Catch::AutoReg(new GoldenInvoker(name), CATCH_INTERNAL_LINEINFO, Catch::StringRef(),
                     Catch::NameAndTags{title, "[golden]"});
    }
  }
} const register_golden_cases;

TEST_CASE("the golden directory has at least 45 cases and each has an expect file", "[golden]") {
  std::vector<std::string> names = GoldenCases();
  CHECK(names.size() >= 45);
  for (const auto& name : names) {
    INFO(name);
    CHECK(fs::exists(fs::path(GAVEL_SOURCE_DIR) / kGoldenDir / (name + ".expect")));
  }
}

TEST_CASE("every golden expect file starts with its exit status", "[golden]") {
  for (const auto& name : GoldenCases()) {
    INFO(name);
    std::string text = ReadText(fs::path(GAVEL_SOURCE_DIR) / kGoldenDir / (name + ".expect"));
    std::string first = text.substr(0, text.find('\n'));
    CHECK((first == "# exit 0" || first == "# exit 1" || first == "# exit 2"));
  }
}

TEST_CASE("a file with only warnings has exit status 0 in its golden file", "[golden]") {
  std::string text =
      ReadText(fs::path(GAVEL_SOURCE_DIR) / kGoldenDir / "40_missing_owner_warning.expect");
  CHECK(text.rfind("# exit 0\n", 0) == 0);
  CHECK(text.find(": warning: ") != std::string::npos);
  CHECK(text.find(": error: ") == std::string::npos);
}

TEST_CASE("the JSON diagnostics give file, position, end, severity, code, message and hint",
          "[golden][json]") {
  InSourceDir cwd;
  gavel::dsl::CompileResult r = gavel::dsl::Compile({std::string(kGoldenDir) + "/05_single_equals.gavel"});
  REQUIRE(r.io_error.empty());
  // ordered_json keeps the keys in the order the compiler wrote them.
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(gavel::dsl::RenderJson(r.sources, r.diags.list()));
  REQUIRE(j.is_array());
  REQUIRE(j.size() == 1);
  const auto& d = j[0];
  std::vector<std::string> keys;
  for (auto it = d.begin(); it != d.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{"file", "line", "column", "end", "severity", "code", "message",
                                         "hint"});
  CHECK(d["file"] == "tests/golden/diagnostics/05_single_equals.gavel");
  CHECK(d["line"] == 7);
  CHECK(d["column"] == 25);
  CHECK(d["end"]["line"] == 7);
  CHECK(d["end"]["column"] == 26);
  CHECK(d["severity"] == "error");
  CHECK(d["code"] == "single-equals");
  CHECK(d["message"] == "`=` sets a value; to compare, write `==`");
  CHECK(d["hint"] == "write `==` here");
}

TEST_CASE("the JSON severity of a warning is `warning`", "[golden][json]") {
  InSourceDir cwd;
  gavel::dsl::CompileResult r =
      gavel::dsl::Compile({std::string(kGoldenDir) + "/48_page_without_runbook_warning.gavel"});
  nlohmann::json j = nlohmann::json::parse(gavel::dsl::RenderJson(r.sources, r.diags.list()));
  REQUIRE(j.size() == 1);
  CHECK(j[0]["severity"] == "warning");
  CHECK(j[0]["code"] == "missing-runbook");
}

TEST_CASE("the JSON hint is an empty text when a diagnostic has no hint", "[golden][json]") {
  std::string schema = ReadText(fs::path(GAVEL_SOURCE_DIR) / "playbooks/schema.gavel");
  gavel::dsl::CompileResult r = gavel::dsl::CompileSources({{"schema.gavel", schema},
                                                            {"limit.gavel", "rule r {\n"
                                                                            "  owner \"a@example.com\"\n"
                                                                            "  every 1h\n"
                                                                            "  for each adset in adset_daily over last 1d\n"
                                                                            "  then pause adset\n"
                                                                            "  limit 0 per 1h\n"
                                                                            "}\n"}});
  nlohmann::json j = nlohmann::json::parse(gavel::dsl::RenderJson(r.sources, r.diags.list()));
  REQUIRE(j.size() == 1);
  CHECK(j[0]["code"] == "bad-limit");
  CHECK(j[0]["hint"] == "");
}

TEST_CASE("the JSON column counts characters, not bytes, after accents and emoji", "[golden][json]") {
  InSourceDir cwd;
  gavel::dsl::CompileResult r =
      gavel::dsl::Compile({std::string(kGoldenDir) + "/59_unicode_before_error.gavel"});
  nlohmann::json j = nlohmann::json::parse(gavel::dsl::RenderJson(r.sources, r.diags.list()));
  REQUIRE(j.size() == 1);
  // `  then notify slack "#paid-alerts" "Café ☕ crème brûlée 🎉 for {adset.nmae}`: `nmae`
  // starts at the 70th character of the line (its byte offset is larger).
  CHECK(j[0]["line"] == 8);
  CHECK(j[0]["column"] == 70);
  CHECK(j[0]["end"]["column"] == 74);
}

}  // namespace
