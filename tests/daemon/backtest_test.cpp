// `gavel backtest` and `gavel diff` (daemon/cli_backtest.hpp, daemon/backtest.hpp).
//
// Golden reports: a small deterministic slice of the sample data (gavel-sample-data with 40 ad
// sets, 5 campaigns and 900 events over 35 days, made in a temporary directory) run through
// the playbooks, through a copy of the playbooks with two thresholds changed (the diff), and
// through tests/golden/backtest/conflict_rules (rules built to conflict). Each report is
// compared with tests/golden/backtest/NAME; the temporary paths are written as $SAMPLE and
// $NEW there. To accept new output:
//   GAVEL_UPDATE_GOLDEN=1 ./gavel_tests '[backtest]'
// and review the change of the golden files like any other change. The HTML goldens are
// also what tests/html/check_report.sh renders in headless Chromium.
//
// The 90-day run on the full sample data is tagged [.][backtest90]: not part of the normal
// run, registered in ctest as `backtest_90_days`; it prints the time and the time per
// simulated day.
#include "daemon/backtest.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/common/golden_file.hpp"
#include "tests/common/test_files.hpp"
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/cli_backtest.hpp"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const fs::path kGoldenDir = fs::path(GAVEL_SOURCE_DIR) / "tests/golden/backtest";
// The slice every golden report runs over: four days near the end of the small sample.
const char* const kFrom = "2026-10-27";
const char* const kTo = "2026-10-31";

using gavel_test::ReadText;
using gavel_test::Replace;

// A directory of this test process's own, removed at exit.
const fs::path& TempDir() { return gavel_test::ProcessTempDir("gavel-backtest-test"); }

// Runs the sample-data generator into DIR with the given extra arguments.
void Generate(const fs::path& dir, const std::string& extra) {
  std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel-sample-data --out " + dir.string() +
                    " " + extra + " > /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

// The small sample, made once per process.
const fs::path& SmallSample() {
  static const fs::path dir = [] {
    fs::path d = TempDir() / "sample";
    Generate(d, "--days 35 --adsets 40 --campaigns 5 --leads 60 --events 900");
    return d;
  }();
  return dir;
}

// A copy of the playbooks with two thresholds changed: pause at 1.2x the target CPA instead of
// 1.5x, and the CPA-drift alert at 1.5x instead of 2x.
const fs::path& ChangedPlaybooks() {
  static const fs::path dir = [] {
    fs::path d = TempDir() / "playbooks-new";
    fs::copy(fs::path(GAVEL_SOURCE_DIR) / "playbooks", d, fs::copy_options::recursive);
    auto edit = [&](const std::string& file, const std::string& from, const std::string& to) {
      std::string text = ReadText(d / file);
      REQUIRE(text.find(from) != std::string::npos);
      Replace(text, from, to);
      std::ofstream(d / file, std::ios::binary) << text;
    };
    edit("cpa_pause.gavel", "when cpa > 1.5 * adset.target_cpa",
         "when cpa > 1.2 * adset.target_cpa");
    edit("anomaly_alerts.gavel", "when cpa > 2 * adset.target_cpa",
         "when cpa > 1.5 * adset.target_cpa");
    return d;
  }();
  return dir;
}

// Runs a verb with the source directory as the working directory (so rule paths are
// relative, as a user types them there), and puts the previous one back afterwards.
struct Outcome {
  int code;
  std::string out, err;
};

Outcome Verb(int (*verb)(const std::vector<std::string>&, std::ostream&, std::ostream&),
             std::vector<std::string> args) {
  fs::path previous = fs::current_path();
  fs::current_path(GAVEL_SOURCE_DIR);
  std::ostringstream out, err;
  int code = verb(args, out, err);
  fs::current_path(previous);
  return {code, out.str(), err.str()};
}

std::vector<std::string> DataArgs() {
  return {"--events",     (SmallSample() / "events.ndjson").string(),
          "--warehouse",  (SmallSample() / "warehouse.db").string(),
          "--from",       kFrom,
          "--to",         kTo,
          "--no-progress"};
}

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// The temporary paths, as the golden files spell them.
std::string Normalize(std::string s) {
  Replace(s, ChangedPlaybooks().string(), "$NEW");
  Replace(s, SmallSample().string(), "$SAMPLE");
  return s;
}

void CheckGolden(const std::string& name, const std::string& actual_raw) {
  gavel_test::CheckGoldenFile(kGoldenDir / name, Normalize(actual_raw));
}

Json ParseJson(const std::string& text) { return Json::parse(text); }

}  // namespace

TEST_CASE("backtest of the playbooks on the sample slice matches the golden text report",
          "[backtest][golden]") {
  Outcome r = Verb(gavel::cli::RunBacktest, With({"--rules", "playbooks"}, DataArgs()));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CheckGolden("backtest.txt", r.out);
}

TEST_CASE("backtest of the playbooks on the sample slice matches the golden JSON report",
          "[backtest][golden]") {
  Outcome r =
      Verb(gavel::cli::RunBacktest, With({"--rules", "playbooks", "--format", "json"}, DataArgs()));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CheckGolden("backtest.json", r.out);
  Json j = ParseJson(r.out);
  CHECK(j["schema"] == "gavel.backtest/1");
  CHECK(j["run"]["days"] == 4);
  CHECK(j["days"].size() == 4);
  // Every unit of the playbooks is listed, and the per-day cells add up to the unit totals.
  CHECK(j["units"].size() == 8);
  for (const auto& u : j["units"]) {
    std::int64_t decisions = 0;
    for (const auto& d : j["days"]) {
      if (d["units"].contains(u["unit"].get<std::string>()))
        decisions += d["units"][u["unit"].get<std::string>()]["decisions"].get<std::int64_t>();
    }
    CHECK(decisions == u["totals"]["decisions"].get<std::int64_t>());
  }
}

TEST_CASE("backtest with --against matches the golden HTML report", "[backtest][golden]") {
  Outcome r = Verb(gavel::cli::RunBacktest, With({"--rules", ChangedPlaybooks().string(),
                                                  "--against", "playbooks", "--format", "html"},
                                                 DataArgs()));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CheckGolden("backtest_against.html", r.out);
  // Self-contained: no resource is fetched from anywhere.
  CHECK(r.out.find("src=") == std::string::npos);
  CHECK(r.out.find("<link") == std::string::npos);
  CHECK(r.out.find("url(") == std::string::npos);
  CHECK(r.out.find("@import") == std::string::npos);
  CHECK(r.out.find("<svg") != std::string::npos);
  CHECK(r.out.find("id=\"diff-table\"") != std::string::npos);
}

TEST_CASE("diff of the playbooks against changed thresholds matches the golden text",
          "[backtest][golden]") {
  Outcome r =
      Verb(gavel::cli::RunDiff, With({"playbooks", ChangedPlaybooks().string()}, DataArgs()));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CheckGolden("diff.txt", r.out);
}

TEST_CASE("diff of the playbooks against changed thresholds matches the golden JSON",
          "[backtest][golden]") {
  Outcome r =
      Verb(gavel::cli::RunDiff,
           With({"playbooks", ChangedPlaybooks().string(), "--format", "json"}, DataArgs()));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CheckGolden("diff.json", r.out);
  Json j = ParseJson(r.out);
  CHECK(j["schema"] == "gavel.diff/1");
  // The two changed units, and only they, decided differently.
  CHECK(j["units_changed_version"] == Json::array({"alert:cpa_drift", "rule:pause_high_cpa"}));
  REQUIRE(j["differences"].size() > 0);
  for (const auto& d : j["differences"]) {
    std::string unit = d["unit"];
    CHECK((unit == "rule:pause_high_cpa" || unit == "alert:cpa_drift"));
  }
  // A lower pause threshold makes the rule pause where it only skipped before.
  bool newly_paused = false;
  for (const auto& d : j["differences"]) {
    if (d["unit"] == "rule:pause_high_cpa" && !d["new"].is_null() &&
        d["new"]["outcome"] == "fired" && (d["old"].is_null() || d["old"]["outcome"] != "fired")) {
      newly_paused = true;
    }
  }
  CHECK(newly_paused);
}

TEST_CASE("diff of a rule directory against itself finds no differences and --exit-code exits 0",
          "[backtest]") {
  Outcome r = Verb(gavel::cli::RunDiff,
                   With({"playbooks", "playbooks", "--format", "json", "--exit-code"}, DataArgs()));
  INFO(r.err);
  REQUIRE(r.code == 0);
  Json j = ParseJson(r.out);
  CHECK(j["differences"].empty());
  CHECK(j["totals"]["same"] == j["totals"]["old_decisions"]);
  CHECK(j["totals"]["old_decisions"].get<std::int64_t>() > 0);
  Outcome changed =
      Verb(gavel::cli::RunDiff,
           With({"playbooks", ChangedPlaybooks().string(), "--exit-code"}, DataArgs()));
  CHECK(changed.code == 3);
}

TEST_CASE("diff --actions-only lists exactly the differences in intended actions", "[backtest]") {
  Outcome all =
      Verb(gavel::cli::RunDiff,
           With({"playbooks", ChangedPlaybooks().string(), "--format", "json"}, DataArgs()));
  Outcome only =
      Verb(gavel::cli::RunDiff,
           With({"playbooks", ChangedPlaybooks().string(), "--format", "json", "--actions-only"},
                DataArgs()));
  REQUIRE(all.code == 0);
  REQUIRE(only.code == 0);
  Json a = ParseJson(all.out), o = ParseJson(only.out);
  CHECK(o["actions_only"] == true);
  CHECK(o["totals"] == a["totals"]);  // the counts cover every difference either way
  REQUIRE(o["differences"].size() > 0);
  CHECK(o["differences"].size() == o["totals"]["actions_differ"].get<std::size_t>());
  CHECK(o["differences"].size() < a["differences"].size());
  for (const auto& d : o["differences"]) {
    Json old_actions = d["old"].is_null() ? Json::array() : d["old"]["actions"];
    Json new_actions = d["new"].is_null() ? Json::array() : d["new"]["actions"];
    CHECK(old_actions != new_actions);
  }
}

TEST_CASE("backtest of conflicting rules matches the golden text, JSON and HTML", "[backtest][golden]") {
  Outcome text = Verb(gavel::cli::RunBacktest,
                      With({"--rules", "tests/golden/backtest/conflict_rules"}, DataArgs()));
  INFO(text.err);
  REQUIRE(text.code == 0);
  CheckGolden("conflicts.txt", text.out);
  Outcome json = Verb(
      gavel::cli::RunBacktest,
      With({"--rules", "tests/golden/backtest/conflict_rules", "--format", "json"}, DataArgs()));
  REQUIRE(json.code == 0);
  CheckGolden("conflicts.json", json.out);
  Outcome html = Verb(
      gavel::cli::RunBacktest,
      With({"--rules", "tests/golden/backtest/conflict_rules", "--format", "html"}, DataArgs()));
  REQUIRE(html.code == 0);
  CheckGolden("conflicts.html", html.out);
}

TEST_CASE(
    "backtest reports a pause undone by another rule and a budget moved up then down by one rule",
    "[backtest]") {
  Outcome r = Verb(
      gavel::cli::RunBacktest,
      With({"--rules", "tests/golden/backtest/conflict_rules", "--format", "json"}, DataArgs()));
  INFO(r.err);
  REQUIRE(r.code == 0);
  Json j = ParseJson(r.out);
  bool pause_enable = false, budget_oscillation = false;
  for (const auto& c : j["conflicts"]) {
    if (c["type"] == "pause_enable") {
      // Two different rules, in time order, within the window, each decision named.
      CHECK(c["same_rule"] == false);
      CHECK(c["first"]["unit"] != c["second"]["unit"]);
      CHECK(c["first"]["time"].get<std::string>() < c["second"]["time"].get<std::string>());
      CHECK(c["first"]["decision"].get<std::int64_t>() <
            c["second"]["decision"].get<std::int64_t>());
      CHECK(c["gap_hours"].get<double>() <= 7 * 24);
      if (c["pattern"] == "pause_then_enable" && c["first"]["unit"] == "rule:pause_expensive" &&
          c["second"]["unit"] == "rule:enable_cheap") {
        pause_enable = true;
      }
    }
    if (c["type"] == "budget" && c["same_rule"] == true &&
        c["first"]["unit"] == "rule:budget_follows_spend") {
      // Up then down (or down then up): the second change reverses the first.
      double first = c["first"]["after"].get<double>() - c["first"]["before"].get<double>();
      double second = c["second"]["after"].get<double>() - c["second"]["before"].get<double>();
      CHECK(first * second < 0);
      CHECK((c["pattern"] == (first > 0 ? "up_then_down" : "down_then_up")));
      budget_oscillation = true;
    }
  }
  CHECK(pause_enable);
  CHECK(budget_oscillation);
  // The unit tables count the conflicts on the rule whose action closed them.
  std::int64_t counted = 0;
  for (const auto& u : j["units"]) counted += u["totals"]["conflicts"].get<std::int64_t>();
  CHECK(counted == static_cast<std::int64_t>(j["conflicts"].size()));
}

TEST_CASE("a shorter conflict window drops the conflicts further apart than it", "[backtest]") {
  Outcome r = Verb(gavel::cli::RunBacktest, With({"--rules", "tests/golden/backtest/conflict_rules",
                                                  "--format", "json", "--conflict-window", "13h"},
                                                 DataArgs()));
  REQUIRE(r.code == 0);
  Json j = ParseJson(r.out);
  REQUIRE(j["conflicts"].size() > 0);
  for (const auto& c : j["conflicts"]) CHECK(c["gap_hours"].get<double>() <= 13);
  // The daily budget changes are 24 hours apart: none is left.
  for (const auto& c : j["conflicts"]) CHECK(c["type"] == "pause_enable");
}

TEST_CASE("backtest makes exactly the decisions replay makes over the same range", "[backtest]") {
  // The library run: every decision, in order.
  gavel::backtest::RunOptions o;
  o.rules_dir = std::string(GAVEL_SOURCE_DIR) + "/playbooks";
  o.events_path = (SmallSample() / "events.ndjson").string();
  o.warehouse_path = (SmallSample() / "warehouse.db").string();
  gavel::rules::TimeMs from = 0, to = 0;
  REQUIRE(gavel::rules::ParseTime(kFrom, from));
  REQUIRE(gavel::rules::ParseTime(kTo, to));
  o.from = from;
  o.to = to;
  gavel::backtest::Run run;
  std::string diagnostics;
  REQUIRE(gavel::backtest::RunHistory(o, run, diagnostics).ok());
  // replay's --to is inclusive; the backtest's range ends just before kTo.
  fs::path out = TempDir() / "replay.txt";
  std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel replay --rules " + o.rules_dir +
                    " --events " + o.events_path + " --warehouse " + o.warehouse_path + " --from " +
                    kFrom + "T00:00:00Z --to 2026-10-30T23:59:59.999Z > " + out.string() +
                    " 2> /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::vector<std::string> replayed;
  std::istringstream lines(ReadText(out));
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" summary ") == std::string::npos) replayed.push_back(line);
  }
  REQUIRE(replayed.size() == run.decisions.size());
  REQUIRE(!replayed.empty());
  // Decision N of the backtest is line N of replay: same time, unit, entity, outcome, reason.
  for (std::size_t i = 0; i < replayed.size(); ++i) {
    const auto& d = run.decisions[i];
    CHECK(d.id == static_cast<std::int64_t>(i + 1));
    std::string head = gavel::rules::FormatTime(d.time) + " " + d.kind + " " + d.rule;
    if (!d.entity_id.empty()) head += " " + d.entity_type + "=" + d.entity_id;
    head += " " + d.outcome;
    if (!d.reason.empty()) head += " (" + d.reason + ")";
    INFO("decision " << i + 1 << ": " << replayed[i]);
    CHECK(replayed[i].rfind(head, 0) == 0);
  }
}

TEST_CASE("backtest writes nothing but its report", "[backtest]") {
  auto listing = [](const fs::path& dir) {
    std::vector<std::pair<std::string, std::uintmax_t>> v;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      v.emplace_back(e.path().string(), e.is_regular_file() ? e.file_size() : 0);
    std::sort(v.begin(), v.end());
    return v;
  };
  auto sample_before = listing(SmallSample());
  auto source_before = listing(fs::path(GAVEL_SOURCE_DIR) / "playbooks");
  fs::path report = TempDir() / "report.html";
  Outcome r = Verb(gavel::cli::RunBacktest,
                   With({"--rules", "playbooks", "--out", report.string()}, DataArgs()));
  REQUIRE(r.code == 0);
  CHECK(r.out.empty());  // the report went to --out, in the format its extension names
  CHECK(ReadText(report).rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(listing(SmallSample()) == sample_before);
  CHECK(listing(fs::path(GAVEL_SOURCE_DIR) / "playbooks") == source_before);
  // Without a terminal there is no progress bar, only the one-line summary.
  CHECK(r.err.find('\r') == std::string::npos);
  CHECK(r.err.find("backtest: 4 simulated days") != std::string::npos);
  CHECK(r.err.find("per simulated day") != std::string::npos);
}

TEST_CASE("backtest reports progress in simulated time up to the end of the range", "[backtest]") {
  gavel::backtest::RunOptions o;
  o.rules_dir = std::string(GAVEL_SOURCE_DIR) + "/playbooks";
  o.events_path = (SmallSample() / "events.ndjson").string();
  o.warehouse_path = (SmallSample() / "warehouse.db").string();
  gavel::rules::TimeMs from = 0, to = 0;
  REQUIRE(gavel::rules::ParseTime(kFrom, from));
  REQUIRE(gavel::rules::ParseTime(kTo, to));
  o.from = from;
  o.to = to;
  std::vector<gavel::backtest::Progress> seen;
  o.progress = [&](const gavel::backtest::Progress& p) { seen.push_back(p); };
  gavel::backtest::Run run;
  std::string diagnostics;
  REQUIRE(gavel::backtest::RunHistory(o, run, diagnostics).ok());
  REQUIRE(seen.size() >= 5);  // the start and every simulated midnight
  for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].now >= seen[i - 1].now);
  CHECK(seen.front().now == from);
  CHECK(seen.back().now == to);
  CHECK(seen.back().events_applied == run.events_applied);
  CHECK(seen.back().decisions == static_cast<std::int64_t>(run.decisions.size()));
}

TEST_CASE("backtest refuses bad usage with exit 2 and rules that do not compile with exit 1",
          "[backtest]") {
  CHECK(Verb(gavel::cli::RunBacktest, {"--bogus"}).code == 2);
  CHECK(Verb(gavel::cli::RunBacktest, With({"--format", "pdf"}, DataArgs())).code == 2);
  CHECK(Verb(gavel::cli::RunBacktest, With({"--conflict-window", "soon"}, DataArgs())).code == 2);
  Outcome reversed = Verb(gavel::cli::RunBacktest,
                          {"--events", (SmallSample() / "events.ndjson").string(), "--from",
                           "2026-10-05", "--to", "2026-10-01", "--no-progress"});
  CHECK(reversed.code == 2);
  CHECK(reversed.err.find("--to must be after --from") != std::string::npos);
  Outcome missing =
      Verb(gavel::cli::RunBacktest, {"--events", "/nonexistent.ndjson", "--no-progress"});
  CHECK(missing.code == 2);
  CHECK(missing.err.find("cannot read /nonexistent.ndjson") != std::string::npos);
  fs::path bad = TempDir() / "bad-rules";
  fs::create_directories(bad);
  std::ofstream(bad / "broken.gavel") << "rule oops {\n  every 1h\n  then pause nothing\n}\n";
  Outcome broken = Verb(gavel::cli::RunBacktest, With({"--rules", bad.string()}, DataArgs()));
  CHECK(broken.code == 1);
  CHECK(broken.err.find("broken.gavel:") != std::string::npos);
  CHECK(Verb(gavel::cli::RunDiff, {"only-one-dir"}).code == 2);
  CHECK(Verb(gavel::cli::RunBacktest, {"--help"}).code == 0);
}

// The full sample data: 90 days, 200 ad sets, 40 campaigns, 20,000 events. Not run by
// default (it takes minutes); ctest runs it as `backtest_90_days`. No timing assertion: the
// time is printed for the record (docs/review.md).
TEST_CASE("backtest over the 90 days of sample data finishes and covers every day",
          "[.][backtest90]") {
  fs::path dir = TempDir() / "sample90";
  Generate(dir, "");
  fs::path report = TempDir() / "backtest90.html";
  auto start = std::chrono::steady_clock::now();
  Outcome r = Verb(gavel::cli::RunBacktest,
                   {"--rules", "playbooks", "--events", (dir / "events.ndjson").string(),
                    "--warehouse", (dir / "warehouse.db").string(), "--from", "2026-08-03", "--to",
                    "2026-11-01", "--out", report.string(), "--no-progress"});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::string html = ReadText(report);
  CHECK(html.find("(90 simulated days") != std::string::npos);
  CHECK(html.find("2026-10-31") != std::string::npos);
  std::cout << "90-day backtest of the playbooks on the sample data: " << seconds << " s in all, "
            << seconds / 90 << " s per simulated day (" << report.string() << ", " << html.size()
            << " bytes)\n"
            << r.err;
  std::cout.flush();
}
