// Golden outputs of `gavel explain` on the example data: a small deterministic slice of the
// sample data (gavel-sample-data), replayed through the playbooks into a decision log, then
// explained: a budget shift, a lead hand-off, a skip with its confidence computation ("why
// not"), an alert, and the answer when a rule never decided about an entity.
//
//   GAVEL_UPDATE_GOLDEN=1 ./gavel_tests '[explain]'     rewrites tests/golden/explain/
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/cli_explain.hpp"
#include "tests/common/golden_file.hpp"
#include "daemon/cli_replay.hpp"
#include "rules/store/decision_log.hpp"

namespace {

namespace fs = std::filesystem;
const fs::path kGolden = fs::path(GAVEL_SOURCE_DIR) / "tests" / "golden" / "explain";

// The sample slice replayed into a log, once per process.
const std::string& Log() {
  static const std::string path = [] {
    fs::path dir = fs::temp_directory_path() / ("gavel-explain-test-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel-sample-data --out " + (dir / "sample").string() +
                      " --days 35 --adsets 40 --campaigns 5 --leads 60 --events 900 > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ostringstream out, err;
    const std::string log = (dir / "log.db").string();
    int rc = gavel::cli::RunReplay({"--rules", std::string(GAVEL_SOURCE_DIR) + "/playbooks", "--events",
                                    (dir / "sample" / "events.ndjson").string(), "--warehouse",
                                    (dir / "sample" / "warehouse.db").string(), "--from", "2026-10-28T00:00:00Z",
                                    "--to", "2026-10-30T00:00:00Z", "--log", log, "--format", "none"},
                                   out, err);
    INFO(err.str());
    REQUIRE(rc == 0);
    return log;
  }();
  return path;
}

// The id of the first decision matching the SQL condition.
std::string FirstId(const std::string& where) {
  std::string cmd = "sqlite3 " + Log() + " \"SELECT id FROM decisions WHERE " + where + " ORDER BY id LIMIT 1\"";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[64] = {0};
  REQUIRE(std::fgets(buf, sizeof buf, p) != nullptr);
  ::pclose(p);
  std::string id(buf);
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
  REQUIRE(!id.empty());
  return id;
}

void Check(const std::string& name, const std::vector<std::string>& args, int expect_rc) {
  std::ostringstream out, err;
  int rc = gavel::cli::RunExplain(args, out, err);
  INFO(err.str());
  CHECK(rc == expect_rc);
  // Rule files are recorded by the path they were compiled from: shown relative to the source.
  std::string text = out.str();
  const std::string root = std::string(GAVEL_SOURCE_DIR) + "/";
  for (std::size_t at; (at = text.find(root)) != std::string::npos;) text.erase(at, root.size());
  gavel_test::CheckGoldenFile(kGolden / name, text);
}

}  // namespace

TEST_CASE("explain of a budget shift on the sample data matches the golden text", "[explain]") {
  std::string id = FirstId("rule='shift_budget' AND outcome='fired'");
  Check("shift_budget.txt", {id, "--db", Log()}, 0);
}

TEST_CASE("explain of a lead hand-off shows the crossing that triggered it", "[explain]") {
  std::string id = FirstId("rule='mql_handoff' AND outcome='fired'");
  Check("handoff.txt", {id, "--db", Log()}, 0);
}

TEST_CASE("explain of a skip says why the rule did not act", "[explain]") {
  std::string id = FirstId("rule='pause_high_cpa' AND outcome='skipped'");
  Check("skip.txt", {id, "--db", Log()}, 0);
}

TEST_CASE("explain of an alert notification matches the golden JSON", "[explain]") {
  std::string id = FirstId("kind='alert' AND outcome='notify'");
  Check("alert.json", {id, "--db", Log(), "--format", "json"}, 0);
}

TEST_CASE("explain of a rule that never decided about an entity points at the summaries", "[explain]") {
  Check("never.txt", {"--db", Log(), "--rule", "pause_high_cpa", "--entity", "adset_daily:no-such-adset"}, 1);
}
