// The daemon's actions end to end: a real `gavel run` with a warehouse, the reference ad
// platform (build/gavel-ad-platform) and a recording Slack receiver, driven by the operator
// commands (`gavel kill-switch`, `gavel override`, `gavel approvals`, `gavel flags`) as an
// operator would: the kill switch stops everything, a pin protects one ad set, an approval
// lets a queued pause through, and every change is in the log with who made it.
#include <sqlite3.h>

#include "daemon/config.hpp"
#include "rules/clock.hpp"
#include "tests/actions/receiver.hpp"
#include "tests/daemon/daemon_harness.hpp"

using namespace gavel_test;

namespace {

constexpr const char* kRules = R"(
table adset_daily from warehouse "adset_daily" {
  key adset_id
  time day
  dims channel: text
  facts spend: money(USD), conversions: count
}
rule pause_big_spenders {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d where channel == "meta"
  when sum(spend) > 100 USD
  then pause adset
       notify slack "#ops" "Paused {adset.adset_id}"
  mode live
}
rule pause_with_approval {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d where channel == "tiktok"
  when sum(spend) > 100 USD
  then pause adset
  mode live
  require approval
}
)";

void MakeWarehouse(const fs::path& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.string().c_str(), &db) == SQLITE_OK);
  const char* sql =
      "CREATE TABLE adset_daily(adset_id TEXT, day TEXT, channel TEXT, spend REAL, conversions INTEGER);"
      "INSERT INTO adset_daily VALUES('adset-100001','2026-11-01','meta',500,1);"
      "INSERT INTO adset_daily VALUES('adset-100002','2026-11-01','meta',400,1);"
      "INSERT INTO adset_daily VALUES('adset-100003','2026-11-01','tiktok',300,1);";
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

struct Cli {
  int exit_code;
  std::string out;
  std::string err;
};

Cli Gavel(const fs::path& dir, const std::string& args) {
  const std::string out = (dir / "cli_out.txt").string(), err = (dir / "cli_err.txt").string();
  const std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel " + args + " > " + out + " 2> " + err;
  int status = std::system(cmd.c_str());
  return {WEXITSTATUS(status), ReadFile(out), ReadFile(err)};
}

// Polls the outbox until `pred` holds for the listed actions (the worker runs on its own).
json WaitOutbox(httplib::Client& c, const httplib::Headers& h, const std::function<bool(const json&)>& pred) {
  json last;
  for (int i = 0; i < 200; ++i) {
    auto r = c.Get("/v1/outbox?limit=100", h);
    if (r && r->status == 200) {
      last = json::parse(r->body);
      if (pred(last["actions"])) return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

int CountState(const json& actions, const std::string& state) {
  int n = 0;
  for (const auto& a : actions) n += a["state"] == state ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("operators stop, pin and approve actions the daemon performs on a real ad platform and Slack",
          "[daemon][actions]") {
  TempDir dir("actions");
  fs::create_directories(dir.path / "rules");
  WriteFile(dir.path / "rules" / "ads.gavel", kRules);
  MakeWarehouse(dir.path / "warehouse.db");
  AdPlatformProcess platform("platform-token-123", 5);
  Receiver slack;
  const std::string op_token = "operator-token-0123456789";
  json cfg = {{"rules", {{"paths", {(dir.path / "rules").string()}}, {"watch", false}}},
              {"state", {{"path", (dir.path / "state.db").string()}}},
              {"warehouse", {{"kind", "sqlite"}, {"path", (dir.path / "warehouse.db").string()}}},
              {"clock", {{"mode", "simulated"}, {"start", "2026-11-02T00:30:00Z"}}},
              {"events", {{"ingest_at_start", json::array()}}},
              {"slack", {{"#ops", {{"url", slack.Url("/slack/ops")}}}}},
              {"actions",
               {{"execute", true},
                {"ad_platforms", {{"reference", {{"url", platform.url()}, {"token", {{"env", "ADS_TOKEN"}}}}}}},
                {"entities", {{"adset_daily", {{"platform", "reference"}, {"object", "adsets"}}}}},
                {"retry", {{"base_delay", "100ms"}}}}},
              {"auth",
               {{"tokens", {{{"name", "ana"}, {"role", "operator"}, {"token", {{"env", "OP_TOKEN"}}}},
                            {{"name", "admin"}, {"role", "admin"}, {"token", {{"env", "ADMIN_TOKEN"}}}}}}}}};
  const std::string admin_token = "admin-token-0123456789ab";
  DaemonProcess d(dir.path, cfg, {{"ADS_TOKEN", "platform-token-123"}, {"OP_TOKEN", op_token}, {"ADMIN_TOKEN", admin_token}});
  d.StartReady();
  auto c = d.Client();
  const auto admin = Bearer(admin_token);
  const std::string url = "--url http://127.0.0.1:" + std::to_string(d.port()) + " --token " + op_token;

  // 1. The kill switch is on: the tick decides, but nothing is performed.
  Cli on = Gavel(dir.path, "kill-switch on --reason 'platform incident' " + url);
  INFO(on.err);
  REQUIRE(on.exit_code == 0);
  CHECK(on.out.find("kill switch: ON") != std::string::npos);
  CHECK(on.out.find("by ana: platform incident") != std::string::npos);
  REQUIRE(c.Post("/v1/clock", admin, json{{"time", "2026-11-02T01:10:00Z"}}.dump(), "application/json")->status == 200);
  auto decisions = Body(c.Get("/v1/decisions?rule=pause_big_spenders&kind=rule&limit=10", admin));
  REQUIRE(decisions["decisions"].size() == 2);
  CHECK(decisions["decisions"][0]["actions"][0]["disposition"] == "blocked");
  CHECK(decisions["decisions"][0]["actions"][0]["gates"][0]["gate"] == "kill_switch");
  CHECK(Body(c.Get("/v1/outbox", admin))["actions"].empty());
  CHECK(platform.Journal("/v1/adsets/adset-100001/pause").empty());

  // 2. Switch off, pin adset-100002: the next tick pauses 100001 only, and pages #ops.
  REQUIRE(Gavel(dir.path, "kill-switch off --reason resolved " + url).exit_code == 0);
  Cli pin = Gavel(dir.path, "override add adset_daily:adset-100002 --for 7d --reason 'launch week' " + url);
  INFO(pin.err);
  REQUIRE(pin.exit_code == 0);
  Cli pins = Gavel(dir.path, "override list " + url);
  CHECK(pins.out.find("adset_daily:adset-100002") != std::string::npos);
  REQUIRE(c.Post("/v1/clock", admin, json{{"time", "2026-11-02T02:10:00Z"}}.dump(), "application/json")->status == 200);
  json outbox = WaitOutbox(c, admin, [](const json& a) { return CountState(a, "succeeded") >= 2; });
  INFO(outbox.dump(2));
  CHECK(CountState(outbox["actions"], "succeeded") == 2);  // the pause and the Slack message
  CHECK(platform.Journal("/v1/adsets/adset-100001/pause").size() == 1);
  CHECK(platform.Journal("/v1/adsets/adset-100002/pause").empty());
  REQUIRE(slack.Requests().size() == 1);
  CHECK(slack.Requests()[0].body.find("Paused adset-100001") != std::string::npos);

  // 3. The approval rule's pause waits until an operator approves it.
  Cli waiting = Gavel(dir.path, "approvals list " + url);
  INFO(waiting.err);
  REQUIRE(waiting.exit_code == 0);
  CHECK(waiting.out.find("pause_with_approval  pause adset_daily:adset-100003") != std::string::npos);
  CHECK(platform.Journal("/v1/adsets/adset-100003/pause").empty());
  json approvals = Body(c.Get("/v1/approvals", admin));
  REQUIRE(approvals["approvals"].size() >= 1);
  const std::string key = approvals["approvals"][0]["key"];
  Cli ok = Gavel(dir.path, "approvals approve " + key + " --reason 'checked the creative' " + url);
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  WaitOutbox(c, admin, [](const json& a) { return CountState(a, "succeeded") >= 3; });
  CHECK(platform.Journal("/v1/adsets/adset-100003/pause").size() == 1);
  CHECK(Gavel(dir.path, "approvals approve " + key + " " + url).exit_code == 1);  // not waiting any more

  // 4. Every operator change is in the log, with who and why; roles are enforced.
  auto ops = Body(c.Get("/v1/decisions?kind=operator&limit=50", admin))["decisions"];
  std::vector<std::string> outcomes;
  for (const auto& o : ops) outcomes.push_back(o["outcome"]);
  CHECK(std::count(outcomes.begin(), outcomes.end(), "kill_switch_on") == 1);
  CHECK(std::count(outcomes.begin(), outcomes.end(), "override_added") == 1);
  CHECK(std::count(outcomes.begin(), outcomes.end(), "approved") == 1);
  for (const auto& o : ops) {
    if (o["outcome"] == "approved") {
      CHECK(o["entity_id"] == "ana");
      CHECK(o["reason"] == "checked the creative");
    }
  }
  Cli flags = Gavel(dir.path, "flags on cpa_v2 --url http://127.0.0.1:" + std::to_string(d.port()) + " --token wrong-token-xxxxxxxx");
  CHECK(flags.exit_code == 1);
  CHECK(flags.err.find("401") != std::string::npos);
  CHECK(Gavel(dir.path, "flags on cpa_v2 " + url).exit_code == 0);
  CHECK(Gavel(dir.path, "flags list " + url).out.find("cpa_v2  on") != std::string::npos);
  auto m = c.Get("/metrics", admin);
  REQUIRE(m);
  CHECK(m->body.find("gavel_outbox_depth 0") != std::string::npos);
  CHECK(d.Stop() == 0);
}

TEST_CASE("without a configuration file the daemon executes nothing, whatever the rules' modes", "[daemon][actions]") {
  // The built-in defaults set actions.execute = false; a config without it executes.
  auto defaults = gavel::daemon::DefaultConfig();
  CHECK_FALSE(defaults.actions.execute);
}

TEST_CASE("kill -9 between sending a pause and recording the answer: after a restart the pause is sent again "
          "under the same key and happens once",
          "[daemon][actions]") {
  TempDir dir("actions-kill");
  fs::create_directories(dir.path / "rules");
  WriteFile(dir.path / "rules" / "ads.gavel", R"(
table adset_daily from warehouse "adset_daily" {
  key adset_id
  time day
  dims channel: text
  facts spend: money(USD), conversions: count
}
rule pause_big_spenders {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d where channel == "meta"
  when sum(spend) > 450 USD
  then pause adset
  mode live
}
)");
  MakeWarehouse(dir.path / "warehouse.db");  // only adset-100001 spends more than 450
  AdPlatformProcess platform("platform-token-123", 5);
  json cfg = {{"rules", {{"paths", {(dir.path / "rules").string()}}, {"watch", false}}},
              {"state", {{"path", (dir.path / "state.db").string()}}},
              {"warehouse", {{"kind", "sqlite"}, {"path", (dir.path / "warehouse.db").string()}}},
              {"clock", {{"mode", "simulated"}, {"start", "2026-11-02T00:30:00Z"}}},
              {"events", {{"ingest_at_start", json::array()}}},
              {"actions",
               {{"execute", true},
                {"ad_platforms", {{"reference", {{"url", platform.url()}, {"token", {{"env", "ADS_TOKEN"}}}}}}},
                {"entities", {{"adset_daily", {{"platform", "reference"}, {"object", "adsets"}}}}}}}};
  DaemonProcess d(dir.path, cfg, {{"ADS_TOKEN", "platform-token-123"}});
  d.StartReady();
  auto c = d.Client();
  // The platform holds each of the next two requests for 2 s: the read that checks for
  // manual changes, then the pause. The daemon is killed while the pause is held: it has been
  // sent (the row committed in flight before) and its answer is never recorded.
  platform.Call("POST", "/_faults", R"({"delay_ms": 2000, "fail_next": 2})");
  REQUIRE(c.Post("/v1/clock", json{{"time", "2026-11-02T01:10:00Z"}}.dump(), "application/json")->status == 200);
  bool read_done = false;
  for (int i = 0; i < 400 && !read_done; ++i) {
    read_done = !platform.Journal("/v1/adsets/adset-100001").empty();
    if (!read_done) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(read_done);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // the pause is now held by the platform
  {
    auto r = c.Get("/v1/outbox?state=in_flight");
    REQUIRE(r);
    REQUIRE(json::parse(r->body)["actions"].size() == 1);
  }
  d.Kill();  // SIGKILL: no answer recorded
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the platform applies the pause meanwhile
  {
    auto journal = platform.Journal("/v1/adsets/adset-100001/pause");
    REQUIRE(journal.size() == 1);
    CHECK(journal[0].value("applied", false));
  }
  d.StartReady();
  auto c2 = d.Client();
  json outbox = WaitOutbox(c2, {}, [](const json& a) { return CountState(a, "succeeded") >= 1; });
  INFO(outbox.dump(2) << "\n" << d.Log());
  REQUIRE(outbox["actions"].size() == 1);
  CHECK(outbox["actions"][0]["state"] == "succeeded");
  CHECK(outbox["actions"][0]["attempts"] == 2);
  auto journal = platform.Journal("/v1/adsets/adset-100001/pause");
  REQUIRE(journal.size() == 2);
  CHECK(journal[0]["idempotency_key"] == journal[1]["idempotency_key"]);
  int applied = 0;
  for (const auto& e : journal) applied += e.value("applied", false) ? 1 : 0;
  CHECK(applied == 1);  // the second request was answered from the platform's idempotency store
  // One decision, not two: the tick was committed before the crash and is not made again.
  auto decisions = Body(c2.Get("/v1/decisions?rule=pause_big_spenders&kind=rule&limit=10"));
  CHECK(decisions["decisions"].size() == 1);
  CHECK(d.Log().find("actions left in flight by a crash are due again") != std::string::npos);
  CHECK(d.Stop() == 0);
}

TEST_CASE("mistakes in the actions configuration are reported by their path", "[daemon][actions]") {
  TempDir dir("actions-config");
  WriteFile(dir.path / "bad.conf", R"({
  "actions": {
    "execute": "yes",
    "retry": { "max_attempts": 0, "base_delay": "soon" },
    "ad_platforms": { "reference": { "url": "http://127.0.0.1:1", "token": "written-in-the-file" } },
    "entities": { "adset_daily": { "platform": "nope", "object": "adsets" } },
    "surprise": 1
  }
})");
  auto c = gavel::daemon::LoadConfig((dir.path / "bad.conf").string());
  REQUIRE_FALSE(c.ok());
  const std::string m = c.status().message();
  INFO(m);
  CHECK(m.find("actions.execute: must be true or false") != std::string::npos);
  CHECK(m.find("actions.retry.max_attempts: must be between 1 and 100") != std::string::npos);
  CHECK(m.find("actions.retry.base_delay: `soon` is not a duration") != std::string::npos);
  CHECK(m.find("actions.ad_platforms.reference.token: secrets are not written in the config file") != std::string::npos);
  CHECK(m.find("actions.entities.adset_daily.platform: `nope` is not in actions.ad_platforms") != std::string::npos);
  CHECK(m.find("actions.surprise: unknown setting") != std::string::npos);
}
