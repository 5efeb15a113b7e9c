// Tests of `gavel test`: the .test format's parser (errors with file:line), series expansion,
// exact and partial decision expectations, the expected-vs-actual diff, and exit codes.
#include "daemon/rule_test.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/cli_test.hpp"

namespace {

namespace fs = std::filesystem;
using gavel::ruletest::CaseResult;
using gavel::ruletest::ExpandSeries;
using gavel::ruletest::ParseTestText;
using gavel::ruletest::Problem;
using gavel::ruletest::TestFile;

// A scratch directory with rule and test files, removed at the end.
struct Dir {
  fs::path path;
  Dir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("gavel-rule-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() { fs::remove_all(path); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

constexpr const char* kRules = R"(
table adset_daily from warehouse "adset_daily" {
  key adset_id
  time day
  dims channel: text, name: text, target_cpa: money(USD)
  facts spend: money(USD), conversions: count
  freshness 36h
}
rule pause_high_cpa {
  owner "paid@example.com"
  every 1d
  for each adset in adset_daily over last 3d
  let cpa = sum(spend) / sum(conversions)
  when cpa > 1.5 * adset.target_cpa
  then pause adset
  mode live
}
event page_view { lead_id: text, page: text }
entity lead keyed by lead_id { stage: text = "new" }
score lead_score for lead {
  on page_view where page like "/pricing*" add 30
  floor 0
}
rule mql_handoff {
  owner "revops@example.com"
  on lead_score crosses above 50
  then set lead.stage = "MQL"
  mode live
}
)";

// Rows for two ad sets: a1 with a 3-day CPA of 300 USD (paused), a2 at target.
constexpr const char* kHeader = R"(rules: rules.gavel
start 2026-11-01T00:00Z
)";

constexpr const char* kRows = R"(
  table adset_daily channel=meta target_cpa=60
    | adset_id | day        | name | spend | conversions |
    | a1       | 2026-10-29 | One  | 300   | 1           |
    | a1       | 2026-10-30 | One  | 300   | 1           |
    | a1       | 2026-10-31 | One  | 300   | 1           |
    | a2       | 2026-10-31 | Two  | 60    | 1           |
  run until 2026-11-01T12:00Z
)";

struct Run {
  int code = 0;
  std::string out, err;
};

Run RunTests(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  Run r;
  r.code = gavel::cli::RunTest(args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// The first tick of `every 1d` after the start carries the rule's stable offset.
std::string FirstTick(const Dir& d) {
  d.Write("rules.gavel", kRules);
  std::string t =
      d.Write("probe.test", std::string(kHeader) + "test probe\n" + kRows + "  expect exactly pause_high_cpa\n");
  Run r = RunTests({t, "--verbose"});
  std::size_t at = r.out.find("    2026-11-01T");
  REQUIRE(at != std::string::npos);
  return r.out.substr(at + 4, 20);  // 2026-11-01T00:MM:SSZ
}

}  // namespace

TEST_CASE("series values expand like promtool's, with K meaning K values in all", "[ruletest]") {
  std::vector<std::optional<double>> v;
  std::string error;
  REQUIRE(ExpandSeries("100 100 250x3 _ 1+1x3 10-2x2", v, error));
  std::vector<std::optional<double>> want = {100, 100, 250, 250, 250, std::nullopt, 1, 2, 3, 10, 8};
  CHECK(v == want);
  REQUIRE(ExpandSeries("5 x3 _x2 (1 2)x2 -1.5", v, error));
  want = {5, 5, 5, std::nullopt, std::nullopt, 1, 2, 1, 2, -1.5};
  CHECK(v == want);
  CHECK_FALSE(ExpandSeries("1 2x", v, error));
  CHECK(error.find("`2x`") != std::string::npos);
  CHECK_FALSE(ExpandSeries("1+2", v, error));
  CHECK(error.find("needs a count") != std::string::npos);
  CHECK_FALSE(ExpandSeries("(1 2", v, error));
}

TEST_CASE("parse errors name the file and line and say what is wrong", "[ruletest]") {
  TestFile f;
  std::vector<Problem> problems;
  const std::string text =
      "rules: r.gavel\n"
      "tset one\n"  // 2: a typo of a keyword
      "test one\n"
      "  | a | b |\n"  // 4: a row outside a table
      "  table adset_daily\n"
      "    | adset_id | day |\n"
      "    | a1 |\n"                             // 7: too few cells
      "  expect alert spend_spike c1 burning\n"  // 8: not a state
      "  +1h page_view lead_id=L1 page=\"/x\n"   // 9: an open quote
      "test one\n";                              // 10: a duplicate name
  CHECK_FALSE(ParseTestText("t.test", text, f, problems));
  std::vector<std::string> rendered;
  for (const auto& p : problems) rendered.push_back(p.Render());
  REQUIRE(rendered.size() == 6);
  CHECK(rendered[0] ==
        "t.test:2: error: `tset` is not a keyword of a test file: did you mean `test`? (a line starts with "
        "test, rules:, start, table, series, events, at, run, expect, option, a time for an event, or `|` for "
        "a table row)");
  CHECK(rendered[1] == "t.test:4: error: a table row outside a `table` block: start the block with `table NAME`");
  CHECK(rendered[2] == "t.test:7: error: this row has 1 cells, the header (line 6) has 2");
  CHECK(rendered[3] == "t.test:8: error: an alert state is inactive, pending or firing, not `burning`");
  CHECK(rendered[4] == "t.test:9: error: a quote is not closed on this line");
  CHECK(rendered[5] == "t.test:10: error: a second test named \"one\" (first at line 3)");
}

TEST_CASE("a file without rules or tests is an error, and binary junk does not crash the parser", "[ruletest]") {
  TestFile f;
  std::vector<Problem> problems;
  CHECK_FALSE(ParseTestText("empty.test", "# nothing\n", f, problems));
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].message.find("names no rule files") != std::string::npos);
  CHECK(problems[1].message.find("no test case") != std::string::npos);
  problems.clear();
  std::string junk = "rules: x\ntest t\n  \x01\x02 {{{ ((( \"\n  expect exactly\n  -> \n  | |\n";
  junk += std::string("\0\xff", 2);
  CHECK_FALSE(ParseTestText("junk.test", junk, f, problems));
  CHECK_FALSE(problems.empty());
}

TEST_CASE("mistakes found against the rules are reported at their lines, exit 2", "[ruletest]") {
  Dir d;
  d.Write("rules.gavel", kRules);
  std::string t = d.Write("bind.test", std::string(kHeader) +
                                           "test bind\n"
                                           "  table adset_daily\n"
                                           "    | adset_id | day        | spnd |\n"
                                           "    | a1       | 2026-10-31 | 10   |\n"
                                           "  +1h pageview lead_id=L1 page=/\n"
                                           "  expect exactly pause_hgh_cpa\n");
  Run r = RunTests({t});
  CHECK(r.code == 2);
  CHECK(r.out.find("ERROR " + t + ":3: bind") != std::string::npos);
  CHECK(r.out.find(t + ":5: error: table `adset_daily` has no column `spnd`: did you mean `spend`?") !=
        std::string::npos);
  CHECK(r.out.find(t + ":7: error: unknown event type `pageview`: did you mean `page_view`?") != std::string::npos);
  CHECK(r.out.find(
            t + ":8: error: unknown rule, alert, journey or score `pause_hgh_cpa`: did you mean `pause_high_cpa`?") !=
        std::string::npos);
}

TEST_CASE("a failing exact expectation prints the test, the line and a -/+ diff, exit 1", "[ruletest]") {
  Dir d;
  const std::string tick = FirstTick(d);
  const std::string minute = tick.substr(0, 16) + "Z";  // the time to the minute, as people write it
  std::string t = d.Write("fail.test", std::string(kHeader) + "test pauses the expensive ad set\n" + kRows +
                                           "  expect exactly pause_high_cpa\n"
                                           "    " +
                                           minute + " pause_high_cpa adset_daily:a2 fired (live)\n");
  Run r = RunTests({t});
  CHECK(r.code == 1);
  CHECK(r.out == "FAIL " + t + ":3: pauses the expensive ad set\n" + "  " + t + ":12: expect exactly pause_high_cpa\n" +
                     "    - " + minute + " pause_high_cpa adset_daily:a2 fired (live)\n" + "    + " + tick +
                     " pause_high_cpa adset_daily:a1 fired (live) -> pause adset_daily:a1\n" +
                     "gavel test: 0 passed, 1 failed (1 file)\n");
}

TEST_CASE("evidence and actions are checked to the precision written, and a near miss says what differs",
          "[ruletest]") {
  Dir d;
  const std::string tick = FirstTick(d);
  const std::string minute = tick.substr(0, 16) + "Z";
  auto run = [&](const std::string& line) {
    std::string t = d.Write("ev.test", std::string(kHeader) + "test evidence\n" + kRows +
                                           "  expect exactly pause_high_cpa\n    " + minute + " " + line + "\n");
    return RunTests({t});
  };
  CHECK(run("pause_high_cpa adset_daily:a1 fired (live) cpa=300 sum(spend)=900 -> pause adset_daily:a1").code == 0);
  CHECK(run("pause_high_cpa adset_daily:a1 fired (l*) cpa=3e2 target_cpa=60.0 -> pause target=*:a1 mode=live").code ==
        0);
  Run r = run("pause_high_cpa adset_daily:a1 fired (live) cpa=299.9 -> pause adset_daily:a2");
  CHECK(r.code == 1);
  CHECK(r.out.find("      differs from the decision of " + tick +
                   ": evidence cpa: expected 299.9, got 300; actions: "
                   "expected -> pause adset_daily:a2, got -> pause adset_daily:a1 [target=adset_daily:a1]\n") !=
        std::string::npos);
  CHECK(run("pause_high_cpa adset_daily:a1 fired (live) -> none").code == 1);
}

TEST_CASE("exactly wants every decision of the unit; including wants only those listed", "[ruletest]") {
  Dir d;
  const std::string tick = FirstTick(d);
  const std::string minute = tick.substr(0, 16) + "Z";
  auto run = [&](const std::string& expectations) {
    std::string t = d.Write("x.test", std::string(kHeader) + "test exact and partial\n" + kRows +
                                          "  2026-11-01T09:00Z page_view lead_id=L1 page=/pricing\n"
                                          "  2026-11-01T09:01Z page_view lead_id=L1 page=/pricing\n" +
                                          expectations);
    return RunTests({t});
  };
  const std::string both = "    " + minute + " pause_high_cpa adset_daily:a1 fired (live)\n" +
                           "    2026-11-01T09:01Z mql_handoff lead:L1 fired (live) value=60\n";
  CHECK(run("  expect exactly pause_high_cpa mql_handoff\n" + both).code == 0);
  CHECK(run("  expect exactly *\n" + both).code == 0);
  // The same single line: enough for `including`, not for `exactly`.
  const std::string one = "    2026-11-01T09:01Z mql_handoff lead:L1 fired (live)\n";
  CHECK(run("  expect including pause_high_cpa mql_handoff\n" + one).code == 0);
  Run r = run("  expect exactly pause_high_cpa mql_handoff\n" + one);
  CHECK(r.code == 1);
  CHECK(r.out.find("    + " + tick + " pause_high_cpa adset_daily:a1 fired (live)") != std::string::npos);
  CHECK(r.out.find("      2026-11-01T09:01Z mql_handoff lead:L1 fired (live)") != std::string::npos);
  // Ranges: from is inclusive, to exclusive.
  CHECK(run("  expect none mql_handoff to 2026-11-01T09:01Z\n").code == 0);
  CHECK(run("  expect none mql_handoff from 2026-11-01T09:01Z\n").code == 1);
  // Point checks at a time, on the engine's state then.
  CHECK(run("  expect score lead_score L1 30 at 2026-11-01T09:00Z\n"
            "  expect entity lead:L1 stage=new at 2026-11-01T09:00Z\n"
            "  expect entity lead:L1 stage=MQL lead_score=60\n")
            .code == 0);
  r = run("  expect score lead_score L1 = 61\n");
  CHECK(r.code == 1);
  CHECK(r.out.find("    - score lead_score L1 at 2026-11-01T12:00:00Z: 61\n"
                   "    + score lead_score L1 at 2026-11-01T12:00:00Z: 60\n") != std::string::npos);
}

TEST_CASE("a test file whose rules do not compile shows the diagnostics and exits 2", "[ruletest]") {
  Dir d;
  d.Write("broken.gavel", "rule x {\n  owner \"a@example.com\"\n  on page_view\n  when cpa = 5\n}\n");
  std::string t = d.Write("c.test", "rules: broken.gavel\nstart 2026-11-01\ntest t\n  expect none x\n");
  Run r = RunTests({t});
  CHECK(r.code == 2);
  CHECK(r.err.find(t + ":1: error: the rule files do not compile:") != std::string::npos);
  CHECK(r.err.find("broken.gavel:4:12: error: `=` sets a value; to compare, write `==`") != std::string::npos);
  CHECK(r.out.find("1 test file with errors") != std::string::npos);
}

TEST_CASE("usage mistakes exit 2, and a directory runs every .test file in it", "[ruletest]") {
  CHECK(RunTests({}).code == 2);
  CHECK(RunTests({"--frobnicate", "x.test"}).code == 2);
  CHECK(RunTests({"/nonexistent/dir/x.test"}).code == 2);
  Dir d;
  d.Write("rules.gavel", kRules);
  d.Write("a.test", std::string(kHeader) + "test a\n  expect none mql_handoff\n");
  d.Write("b.test",
          std::string(kHeader) + "test b\n  +1h page_view lead_id=L9 page=/\n  expect score lead_score L9 0\n");
  d.Write("notes.txt", "not a test");
  Run r = RunTests({d.path.string()});
  CHECK(r.code == 0);
  CHECK(r.out.find("gavel test: 2 passed, 0 failed (2 files)") != std::string::npos);
  r = RunTests({d.path.string(), "--run", "b"});
  CHECK(r.out.find("gavel test: 1 passed, 0 failed (2 files)") != std::string::npos);
}

TEST_CASE("the playbooks' own tests pass", "[ruletest]") {
  Run r = RunTests({std::string(GAVEL_SOURCE_DIR) + "/playbooks/tests"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find("FAIL") == std::string::npos);
}

TEST_CASE("times are absolute or relative to the start, with the precision they are written to", "[ruletest]") {
  using gavel::rules::kDay;
  using gavel::rules::kHour;
  using gavel::rules::kMinute;
  using gavel::rules::kSecond;
  using gavel::ruletest::ParseTimeExpr;
  using gavel::ruletest::TimeExpr;
  TimeExpr t;
  REQUIRE(ParseTimeExpr("2026-11-01T09:00Z", t));
  CHECK(gavel::rules::FormatTime(t.value) == "2026-11-01T09:00:00Z");
  CHECK(t.width == kMinute);
  REQUIRE(ParseTimeExpr("2026-11-01T09:00:30Z", t));
  CHECK(t.width == kSecond);
  REQUIRE(ParseTimeExpr("2026-11-01T10:00+01:00", t));
  CHECK(gavel::rules::FormatTime(t.value) == "2026-11-01T09:00:00Z");
  REQUIRE(ParseTimeExpr("2026-11-01", t));
  CHECK(t.width == kDay);
  REQUIRE(ParseTimeExpr("+1d12h", t));
  CHECK(t.relative);
  CHECK(t.Resolve(0) == kDay + 12 * kHour);
  REQUIRE(ParseTimeExpr("-28d", t));
  CHECK(t.Resolve(28 * kDay) == 0);
  REQUIRE(ParseTimeExpr("start", t));
  CHECK(t.Resolve(5) == 5);
  CHECK_FALSE(ParseTimeExpr("yesterday", t));
  CHECK_FALSE(ParseTimeExpr("2026-02-30", t));
  CHECK_FALSE(ParseTimeExpr("+3 days", t));
  CHECK_FALSE(ParseTimeExpr("2026-11-01T25:00Z", t));
}
