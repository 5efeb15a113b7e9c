// `gavel plan` and `gavel apply` (daemon/cli_plan.hpp, daemon/plan.hpp).
//
// The state database is made the way a user makes one without a daemon: `gavel replay --log`
// of the playbooks over a small deterministic sample (gavel-sample-data with 40 ad sets, 5
// campaigns and 900 events over 35 days) from 2026-10-29 to 2026-10-31T06:00Z. Plans run at
// 2026-11-01T06:00Z (when pause_high_cpa pauses an ad set). Golden outputs are
// tests/golden/plan/plan.txt and plan.json, with the temporary directory written as $TMP and the
// source directory as $SRC. To accept new output:
//   GAVEL_UPDATE_GOLDEN=1 ./gavel_tests '[plan]'
// and review the change of the golden files like any other change.
//
// main.cpp does not dispatch the verbs yet: the tests call RunPlan/RunApply (and RunReplay)
// directly, with the source directory as the working directory.
#include <sqlite3.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/common/golden_file.hpp"
#include "tests/common/test_files.hpp"
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "actions/controls.hpp"
#include "daemon/cli_plan.hpp"
#include "daemon/cli_replay.hpp"
#include "dsl/base/sha256.hpp"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const fs::path kGoldenDir = fs::path(GAVEL_SOURCE_DIR) / "tests/golden/plan";
const char* const kAt = "2026-11-01T06:00:00Z";

using gavel_test::ReadText;
using gavel_test::Replace;

// A directory of this test process's own, removed at exit.
const fs::path& TempDir() { return gavel_test::ProcessTempDir("gavel-plan-test"); }

struct Outcome {
  int code;
  std::string out, err;
};

// Runs a verb with the source directory as the working directory.
Outcome Verb(int (*verb)(const std::vector<std::string>&, std::ostream&, std::ostream&),
             std::vector<std::string> args) {
  fs::path previous = fs::current_path();
  fs::current_path(GAVEL_SOURCE_DIR);
  std::ostringstream out, err;
  int code = verb(args, out, err);
  fs::current_path(previous);
  return {code, out.str(), err.str()};
}

// The small sample, made once per process.
const fs::path& Sample() {
  static const fs::path dir = [] {
    fs::path d = TempDir() / "sample";
    std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel-sample-data --out " + d.string() +
                      " --days 35 --adsets 40 --campaigns 5 --leads 60 --events 900 > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return d;
  }();
  return dir;
}

// The state database of a replay of the playbooks, made once per process; each test gets
// its own copy (apply writes it).
const fs::path& ReplayedState() {
  static const fs::path db = [] {
    fs::path p = TempDir() / "replayed.db";
    Outcome r = Verb(gavel::cli::RunReplay,
                     {"--rules", "playbooks", "--events", (Sample() / "events.ndjson").string(),
                      "--warehouse", (Sample() / "warehouse.db").string(), "--from",
                      "2026-10-29T00:00:00Z", "--to", "2026-10-31T06:00:00Z", "--log", p.string()});
    INFO(r.err);
    REQUIRE(r.code == 0);
    REQUIRE_FALSE(fs::exists(p.string() + "-wal"));  // closed cleanly: one file holds it all
    return p;
  }();
  return db;
}

// A fresh copy of a file under TempDir()/name.
fs::path Copy(const fs::path& from, const std::string& name) {
  fs::path to = TempDir() / name;
  fs::remove(to);
  fs::copy_file(from, to);
  return to;
}

std::string Normalize(std::string s) {
  Replace(s, TempDir().string(), "$TMP");
  Replace(s, fs::path(GAVEL_SOURCE_DIR).lexically_normal().string(), "$SRC");
  return s;
}

void CheckGolden(const std::string& name, const std::string& actual_raw) {
  gavel_test::CheckGoldenFile(kGoldenDir / name, Normalize(actual_raw));
}

// One value from the state database (read through SQLite, not through gavel).
std::string Query(const fs::path& db, const std::string& sql) {
  sqlite3* conn = nullptr;
  REQUIRE(sqlite3_open_v2(db.string().c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(conn, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::string v;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
    v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(conn);
  return v;
}

void Exec(const fs::path& db, const std::string& sql) {
  sqlite3* conn = nullptr;
  REQUIRE(sqlite3_open(db.string().c_str(), &conn) == SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(conn, sql.c_str(), nullptr, nullptr, &error);
  INFO((error ? error : ""));
  sqlite3_free(error);
  sqlite3_close(conn);
  REQUIRE(rc == SQLITE_OK);
}

std::vector<std::string> PlanArgs(const fs::path& state, const fs::path& warehouse,
                                  std::vector<std::string> more = {},
                                  const std::string& rules = "playbooks") {
  std::vector<std::string> a = {
      "--rules", rules, "--state", state.string(), "--warehouse", warehouse.string(), "--at", kAt};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Saves a plan of `state` to TempDir()/name and returns its path.
fs::path SavePlan(const fs::path& state, const fs::path& warehouse, const std::string& name,
                  const std::string& rules = "playbooks") {
  fs::path out = TempDir() / name;
  Outcome r = Verb(gavel::cli::RunPlan, PlanArgs(state, warehouse, {"--out", out.string()}, rules));
  INFO(r.err);
  REQUIRE(r.code == 0);
  REQUIRE(fs::exists(out));
  return out;
}

}  // namespace

TEST_CASE("plan of the playbooks on the replayed sample state matches the golden text",
          "[plan][golden]") {
  Outcome r = Verb(gavel::cli::RunPlan, PlanArgs(ReplayedState(), Sample() / "warehouse.db"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CheckGolden("plan.txt", r.out);
}

TEST_CASE("plan of the playbooks on the replayed sample state matches the golden JSON",
          "[plan][golden]") {
  Outcome r = Verb(gavel::cli::RunPlan,
                   PlanArgs(ReplayedState(), Sample() / "warehouse.db", {"--format", "json"}));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CheckGolden("plan.json", r.out);
  Json j = Json::parse(r.out);
  CHECK(j["schema"] == "gavel.plan/1");
  // Every action of the plan carries its gate verdicts and a disposition.
  REQUIRE(j["actions"].size() > 0);
  for (const auto& a : j["actions"]) {
    CHECK(!a["disposition"].get<std::string>().empty());
    if (a["disposition"] != "internal") CHECK(a["gates"].size() > 0);
  }
}

TEST_CASE(
    "plan shows a reallocation's budgets before and after and a pause with its confidence bound",
    "[plan]") {
  Outcome r = Verb(gavel::cli::RunPlan,
                   PlanArgs(ReplayedState(), Sample() / "warehouse.db", {"--format", "json"}));
  REQUIRE(r.code == 0);
  Json j = Json::parse(r.out);
  bool budget = false, pause = false;
  for (const auto& a : j["actions"]) {
    if (a["action"] == "set_budget") {
      budget = true;
      CHECK(a["before"].is_number());
      CHECK(a["after"].is_number());
      CHECK(a["currency"] == "USD");
      CHECK(a["disposition"] == "dry_run");  // shift_budget has no `mode`: dry_run
      CHECK(a["gates"][1]["gate"] == "mode");
      CHECK(a["gates"][1]["verdict"] == "stop");
    }
    if (a["action"] == "pause") {
      pause = true;
      CHECK(a["after"] == "paused");
      CHECK(a["evidence"]["confidence"]["pass"] == true);
      CHECK(a["disposition"] == "execute");  // pause_high_cpa is live, nothing stops it
    }
  }
  CHECK(budget);
  CHECK(pause);
}

TEST_CASE("plan never writes the state database", "[plan]") {
  fs::path state = Copy(ReplayedState(), "readonly.db");
  const std::string bytes_before = gavel::Sha256Hex(ReadText(state));
  const std::string count_before = Query(state, "SELECT count(*) FROM decisions");
  const std::string head_before =
      Query(state, "SELECT hash FROM decisions ORDER BY id DESC LIMIT 1");
  fs::path out = TempDir() / "readonly-plan.json";
  Outcome r = Verb(gavel::cli::RunPlan,
                   PlanArgs(state, Sample() / "warehouse.db", {"--out", out.string()}));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(Query(state, "SELECT count(*) FROM decisions") == count_before);
  CHECK(Query(state, "SELECT hash FROM decisions ORDER BY id DESC LIMIT 1") == head_before);
  CHECK(gavel::Sha256Hex(ReadText(state)) == bytes_before);
  // Reading a WAL database may leave SQLite's -shm index and an empty -wal behind; nothing is
  // ever written to the log.
  if (fs::exists(state.string() + "-wal")) CHECK(fs::file_size(state.string() + "-wal") == 0);
  // Not even the tables the gates use are created.
  CHECK(Query(state, "SELECT count(*) FROM sqlite_master WHERE name IN ('outbox', 'controls')") ==
        "0");
}

// A copy of the playbooks in which the budget reallocation is live (it requires approval).
const fs::path& LivePlaybooks() {
  static const fs::path dir = [] {
    fs::path d = TempDir() / "playbooks-live";
    fs::remove_all(d);
    fs::copy(fs::path(GAVEL_SOURCE_DIR) / "playbooks", d, fs::copy_options::recursive);
    std::string text = ReadText(d / "budget_reallocation.gavel");
    const std::string approval = "  require approval expires after 24h";
    REQUIRE(text.find(approval) != std::string::npos);
    Replace(text, approval, "  mode live\n" + approval);
    std::ofstream(d / "budget_reallocation.gavel", std::ios::binary) << text;
    return d;
  }();
  return dir;
}

TEST_CASE("apply executes exactly the saved plan: its decisions are logged and its actions queued",
          "[plan]") {
  fs::path state = Copy(ReplayedState(), "apply.db");
  fs::path plan =
      SavePlan(state, Sample() / "warehouse.db", "apply-plan.json", LivePlaybooks().string());
  Json j = Json::parse(ReadText(plan));
  const std::int64_t head = std::stoll(Query(state, "SELECT max(id) FROM decisions"));
  const std::size_t planned = j["decisions"].size();
  std::size_t queued = 0;
  for (const auto& a : j["actions"])
    queued += a["disposition"] == "execute" || a["disposition"] == "awaiting_approval";
  REQUIRE(queued > 0);
  Outcome r = Verb(gavel::cli::RunApply, {plan.string()});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const std::string sha = gavel::Sha256Hex(ReadText(plan));
  CHECK(r.out.find("applied plan ") != std::string::npos);
  CHECK(r.out.find("queued " + std::to_string(queued) + " actions in the outbox:") !=
        std::string::npos);
  // The decisions, after the plan's head, all with the plan's trigger.
  CHECK(std::stoll(Query(state, "SELECT max(id) FROM decisions")) ==
        head + static_cast<std::int64_t>(planned));
  CHECK(Query(state, "SELECT count(*) FROM decisions WHERE trigger = 'plan:" + sha + "'") ==
        std::to_string(planned));
  // The outbox rows, keyed by decision id and action index, as the daemon's gates would add them.
  CHECK(Query(state, "SELECT count(*) FROM outbox") == std::to_string(queued));
  CHECK(Query(state, "SELECT count(*) FROM outbox WHERE decision_id <= " + std::to_string(head)) ==
        "0");
  const std::string first_key =
      Query(state, "SELECT key FROM outbox ORDER BY decision_id, idx LIMIT 1");
  CHECK(r.out.find("  " + first_key + "  ") != std::string::npos);
  CHECK(Query(state, "SELECT count(*) FROM outbox WHERE state = 'awaiting_approval'") != "0");
  // The hash chain is intact across the appended records.
  CHECK(Query(state,
              "SELECT count(*) FROM decisions d JOIN decisions p ON p.id = d.id - 1 WHERE "
              "d.prev_hash != p.hash") == "0");
  // The same plan again is stale: its own decisions moved the log head.
  Outcome again = Verb(gavel::cli::RunApply, {plan.string()});
  CHECK(again.code == 1);
  CHECK(again.err.find("state changed: " + std::to_string(planned) +
                       " decisions were logged since the plan (head " + std::to_string(head) +
                       " → " + std::to_string(head + static_cast<std::int64_t>(planned)) + ")") !=
        std::string::npos);
}

TEST_CASE(
    "after apply the engine state holds the run: a new plan at the same time does not pause again",
    "[plan]") {
  fs::path state = Copy(ReplayedState(), "checkpointed.db");
  fs::path plan = SavePlan(state, Sample() / "warehouse.db", "checkpointed-plan.json");
  REQUIRE(ReadText(plan).find("\"action\": \"pause\"") != std::string::npos);
  REQUIRE(Verb(gavel::cli::RunApply, {plan.string()}).code == 0);
  Outcome again =
      Verb(gavel::cli::RunPlan, PlanArgs(state, Sample() / "warehouse.db", {"--format", "json"}));
  REQUIRE(again.code == 0);
  Json j = Json::parse(again.out);
  for (const auto& a : j["actions"]) CHECK(a["action"] != "pause");
  bool cooldown = false;
  for (const auto& d : j["without_actions"]) {
    cooldown |= d["unit"] == "rule:pause_high_cpa" && d["entity"] == "adset_daily:as_0038" &&
                d["reason"] == "cooldown";
  }
  CHECK(cooldown);
}

TEST_CASE("apply refuses a plan after an operator turned the kill switch on", "[plan]") {
  fs::path state = Copy(ReplayedState(), "stale-kill.db");
  fs::path plan = SavePlan(state, Sample() / "warehouse.db", "stale-kill-plan.json");
  {
    sqlite3* conn = nullptr;
    REQUIRE(sqlite3_open(state.string().c_str(), &conn) == SQLITE_OK);
    auto controls = gavel::actions::Controls::Attach(conn);
    REQUIRE(controls.ok());
    REQUIRE(controls.value()->SetKillSwitch(true, "oncall", "incident 42", 1'790'000'000'000).ok());
    controls.value().reset();
    sqlite3_close(conn);
  }
  Outcome r = Verb(gavel::cli::RunApply, {plan.string()});
  CHECK(r.code == 1);
  CHECK(r.err.find("controls changed: the kill switch was turned on since the plan") !=
        std::string::npos);
}

TEST_CASE("apply refuses a plan after the warehouse got a newer row", "[plan]") {
  fs::path state = Copy(ReplayedState(), "stale-wh.db");
  fs::path warehouse = Copy(Sample() / "warehouse.db", "stale-wh-warehouse.db");
  fs::path plan = SavePlan(state, warehouse, "stale-wh-plan.json");
  const std::string newest = Query(warehouse, "SELECT max(day) FROM adset_daily");
  REQUIRE(newest == "2026-10-31");
  Exec(warehouse,
       "INSERT INTO adset_daily SELECT adset_id, '2026-11-01', channel, campaign_id, name, "
       "target_cpa, spend, "
       "impressions, clicks, conversions FROM adset_daily WHERE day = '2026-10-31' LIMIT 1");
  const std::string head = Query(state, "SELECT max(id) FROM decisions");
  Outcome r = Verb(gavel::cli::RunApply, {plan.string()});
  CHECK(r.code == 1);
  CHECK(r.err.find("refused") != std::string::npos);
  CHECK(
      r.err.find(
          "the warehouse changed since the plan: adset_daily newest row 2026-10-31 → 2026-11-01") !=
      std::string::npos);
  CHECK(Query(state, "SELECT max(id) FROM decisions") == head);  // nothing logged
}

TEST_CASE("apply refuses a plan after warehouse rows the rules read were corrected", "[plan]") {
  fs::path state = Copy(ReplayedState(), "stale-rows.db");
  fs::path warehouse = Copy(Sample() / "warehouse.db", "stale-rows-warehouse.db");
  fs::path plan = SavePlan(state, warehouse, "stale-rows-plan.json");
  Exec(warehouse, "UPDATE adset_daily SET spend = spend + 1 WHERE day = '2026-10-29'");
  Outcome r = Verb(gavel::cli::RunApply, {plan.string()});
  CHECK(r.code == 1);
  CHECK(r.err.find(
            "the warehouse changed since the plan: the adset_daily data the rules read differ") !=
        std::string::npos);
  CHECK(r.err.find("newest row still 2026-10-31") != std::string::npos);
}

TEST_CASE("apply refuses a plan after the state changed (another replay appended decisions)",
          "[plan]") {
  fs::path state = Copy(ReplayedState(), "stale-state.db");
  fs::path plan = SavePlan(state, Sample() / "warehouse.db", "stale-state-plan.json");
  const std::int64_t head = std::stoll(Query(state, "SELECT max(id) FROM decisions"));
  Outcome replay =
      Verb(gavel::cli::RunReplay,
           {"--rules", "playbooks", "--events", (Sample() / "events.ndjson").string(),
            "--warehouse", (Sample() / "warehouse.db").string(), "--from", "2026-10-31T06:00:00Z",
            "--to", "2026-10-31T08:00:00Z", "--log", state.string()});
  INFO(replay.err);
  REQUIRE(replay.code == 0);
  const std::int64_t now = std::stoll(Query(state, "SELECT max(id) FROM decisions"));
  REQUIRE(now > head);
  Outcome r = Verb(gavel::cli::RunApply, {plan.string()});
  CHECK(r.code == 1);
  CHECK(r.err.find("state changed: " + std::to_string(now - head) + " decision" +
                   (now - head == 1 ? " was" : "s were") + " logged since the plan (head " +
                   std::to_string(head) + " → " + std::to_string(now) + ")") != std::string::npos);
}

TEST_CASE("apply refuses a plan after a rule file changed", "[plan]") {
  fs::path rules = TempDir() / "rules-changed";
  fs::remove_all(rules);
  fs::copy(fs::path(GAVEL_SOURCE_DIR) / "playbooks", rules, fs::copy_options::recursive);
  fs::path state = Copy(ReplayedState(), "stale-rules.db");
  fs::path plan =
      SavePlan(state, Sample() / "warehouse.db", "stale-rules-plan.json", rules.string());
  const std::string old_version =
      Json::parse(ReadText(plan))["provenance"]["rules"]["units"]["rule:pause_high_cpa"];
  std::string text = ReadText(rules / "cpa_pause.gavel");
  Replace(text, "when cpa > 1.5 * adset.target_cpa", "when cpa > 1.4 * adset.target_cpa");
  std::ofstream(rules / "cpa_pause.gavel", std::ios::binary) << text;
  Outcome r = Verb(gavel::cli::RunApply, {plan.string()});
  CHECK(r.code == 1);
  CHECK(r.err.find("rule pause_high_cpa changed: version " + old_version.substr(0, 12) + "… → ") !=
        std::string::npos);
  CHECK(r.err.find("rule shift_budget") == std::string::npos);  // only what changed is named
}

TEST_CASE("apply refuses a plan file edited to do something the rules would not", "[plan]") {
  fs::path state = Copy(ReplayedState(), "edited.db");
  fs::path plan = SavePlan(state, Sample() / "warehouse.db", "edited-plan.json");
  Json j = Json::parse(ReadText(plan));
  bool edited = false;
  for (auto& d : j["decisions"]) {
    for (auto& a : d["actions"]) {
      if (a["action"] == "set_budget" && !edited) {
        a["budget"] = 99999.0;
        edited = true;
      }
    }
  }
  REQUIRE(edited);
  std::ofstream(plan, std::ios::binary) << j.dump(2);
  const std::string head = Query(state, "SELECT max(id) FROM decisions");
  Outcome r = Verb(gavel::cli::RunApply, {plan.string()});
  CHECK(r.code == 1);
  CHECK(r.err.find("rule shift_budget channel_daily:*) differs from what the rules decide now") !=
        std::string::npos);
  // Re-saving reordered every key (nlohmann::json sorts them): only the edited decision differs.
  CHECK(r.err.find("pause_high_cpa") == std::string::npos);
  CHECK(Query(state, "SELECT max(id) FROM decisions") == head);
}

TEST_CASE("plan and apply refuse bad usage with exit 2", "[plan]") {
  CHECK(Verb(gavel::cli::RunPlan, {"--bogus", "x"}).code == 2);
  CHECK(Verb(gavel::cli::RunPlan, {"--format", "yaml"}).code == 2);
  Outcome missing =
      Verb(gavel::cli::RunPlan, PlanArgs(TempDir() / "nope.db", Sample() / "warehouse.db"));
  CHECK(missing.code == 2);
  CHECK(missing.err.find("no state database at") != std::string::npos);
  CHECK(Verb(gavel::cli::RunApply, {}).code == 2);
  Outcome not_plan = Verb(gavel::cli::RunApply, {(Sample() / "events.ndjson").string()});
  CHECK(not_plan.code == 2);
  CHECK(not_plan.err.find("is not a plan") != std::string::npos);
}
