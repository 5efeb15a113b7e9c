// `gavel run` driven over HTTP as a client would: ingest, decisions, entities, rules,
// validation, reload, schedules on a simulated clock, tokens and roles, clean shutdown.
#include <sqlite3.h>

#include "daemon/config.hpp"
#include "rules/clock.hpp"
#include "tests/daemon/daemon_harness.hpp"

using namespace gavel_test;

namespace {

// A daemon on the lead-scoring playbook with a simulated clock and no warehouse.
json LeadConfig(const fs::path& dir, const std::string& clock_start = "2026-10-01T12:00:00Z") {
  CopyLeadScoring(dir / "rules");
  return {{"rules", {{"paths", {(dir / "rules").string()}}, {"watch", false}}},
          {"state", {{"path", (dir / "state.db").string()}}},
          {"warehouse", {{"kind", "none"}}},
          {"clock", {{"mode", "simulated"}, {"start", clock_start}}},
          {"http", {{"max_body_bytes", 64 * 1024}}}};
}

std::string QualifyingBatch(const std::string& lead, const std::string& prefix) {
  return Event("lead_profile", prefix + "p", "2026-10-01T09:00:00Z", lead,
               R"(,"title":"VP","company_size":50,"timezone":"Europe/Berlin")") +
         "\n" + Event("webinar_signup", prefix + "w", "2026-10-01T09:01:00Z", lead, R"(,"webinar":"w1")") + "\n" +
         Event("guide_download", prefix + "g", "2026-10-01T09:02:00Z", lead, R"(,"guide":"g1")") + "\n" +
         Event("page_view", prefix + "v", "2026-10-01T09:03:00Z", lead, R"(,"page":"/pricing")") + "\n";
}

}  // namespace

TEST_CASE("the daemon ingests an NDJSON batch, commits its decisions and shows them in the API", "[daemon]") {
  TempDir dir("ingest");
  DaemonProcess d(dir.path, LeadConfig(dir.path));
  d.StartReady();
  auto c = d.Client();

  auto r = c.Post("/v1/events", QualifyingBatch("L1", "a"), "application/x-ndjson");
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  json b = json::parse(r->body);
  CHECK(b["accepted"] == 4);
  CHECK(b["duplicates"] == 0);

  // The crossing fired mql_handoff for L1, once.
  auto fired = AllDecisions(d, "rule=mql_handoff&entity=lead:L1");
  REQUIRE(fired.size() == 1);
  CHECK(fired[0]["outcome"] == "fired");
  CHECK(fired[0]["trigger"] == "crossing:lead_score:event:av");

  // The entity: fields (stage set by the live rule), score, recent decisions.
  r = c.Get("/v1/entities/lead/L1");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  b = json::parse(r->body);
  CHECK(b["fields"]["title"] == "VP");
  CHECK(b["fields"]["stage"] == "MQL");
  CHECK(b["scores"]["lead_score"].get<double>() > 50);
  CHECK_FALSE(b["recent_decisions"].empty());
  CHECK(c.Get("/v1/entities/lead/nobody")->status == 404);
  CHECK(c.Get("/v1/entities/planet/L1")->status == 404);

  // The same batch again: 200, every line a duplicate, nothing decided twice.
  r = c.Post("/v1/events", QualifyingBatch("L1", "a"), "application/x-ndjson");
  REQUIRE(r->status == 200);
  b = json::parse(r->body);
  CHECK(b["accepted"] == 0);
  CHECK(b["duplicates"] == 4);
  REQUIRE(b["results"].size() == 4);
  CHECK(b["results"][0]["status"] == "duplicate");
  CHECK(b["results"][0]["line"] == 1);
  CHECK(AllDecisions(d, "rule=mql_handoff").size() == 1);

  // One JSON event with application/json.
  r = c.Post("/v1/events", Event("page_view", "single-1", "2026-10-01T10:00:00Z", "L2", R"(,"page":"/")"),
             "application/json");
  REQUIRE(r->status == 200);
  CHECK(json::parse(r->body)["accepted"] == 1);

  // Rules: each unit with version, mode, health.
  r = c.Get("/v1/rules");
  REQUIRE(r->status == 200);
  b = json::parse(r->body);
  bool found = false;
  for (const auto& u : b["units"]) {
    if (u["name"] == "mql_handoff") {
      found = true;
      CHECK(u["kind"] == "rule");
      CHECK(u["mode"] == "live");
      CHECK(u["health"] == "ok");
      CHECK(u["version"].get<std::string>().size() >= 16);
      CHECK(u["fired"] == 1);
      CHECK(u["last_evaluation"] == "2026-10-01T09:03:00Z");
    }
  }
  CHECK(found);

  // Decision filters: by outcome, by time range, paginated.
  REQUIRE(c.Post("/v1/events", QualifyingBatch("L3", "c"), "application/x-ndjson")->status == 200);
  auto all = AllDecisions(d, "");
  REQUIRE(all.size() >= 2);
  r = c.Get("/v1/decisions?limit=1");
  b = json::parse(r->body);
  REQUIRE(b["decisions"].size() == 1);
  CHECK(b["next_after"] == b["decisions"][0]["id"]);
  CHECK(AllDecisions(d, "outcome=fired").size() >= 1);
  CHECK(AllDecisions(d, "time=event&from=2026-10-01T09:03:00Z&to=2026-10-01T09:04:00Z").size() >= 1);
  CHECK(AllDecisions(d, "time=event&from=2026-09-01T00:00:00Z&to=2026-09-02T00:00:00Z").empty());
  r = c.Get("/v1/decisions?from=yesterday");
  CHECK(r->status == 400);
  CHECK(json::parse(r->body)["error"].get<std::string>().find("from is not an RFC 3339 time") != std::string::npos);
  r = c.Get("/v1/decisions?bogus=1");
  CHECK(r->status == 400);

  // Metrics in the Prometheus text format.
  r = c.Get("/metrics");
  REQUIRE(r->status == 200);
  CHECK(r->body.find("gavel_events_accepted_total 9") != std::string::npos);
  CHECK(r->body.find("gavel_events_duplicate_total 4") != std::string::npos);
  CHECK(r->body.find("gavel_decisions_total{outcome=\"fired\"}") != std::string::npos);
  CHECK(r->body.find("gavel_ingest_batch_seconds_bucket") != std::string::npos);

  CHECK(c.Get("/healthz")->status == 200);
  CHECK(d.Stop() == 0);
  // The clean stop logged its drain.
  CHECK(d.Log().find("SIGTERM") != std::string::npos);
}

TEST_CASE("bad events get a 400 with a reason per line and nothing of the request is applied", "[daemon]") {
  TempDir dir("bad");
  DaemonProcess d(dir.path, LeadConfig(dir.path));
  d.StartReady();
  auto c = d.Client();
  const std::string body =
      Event("page_view", "ok-1", "2026-10-01T09:00:00Z", "L9", R"(,"page":"/")") + "\n" +
      R"({"event":"page_visit","id":"x1","time":"2026-10-01T09:00:00Z","lead_id":"L9","page":"/"})" + "\n" +
      Event("page_view", "x2", "2026-10-01T09:00:00Z", "L9", "") + "\n" +
      Event("page_view", "x3", "2026-10-01T09:00:00Z", "L9", R"(,"page":42)") + "\n" +
      Event("page_view", "x4", "2026-10-01T25:00:00Z", "L9", R"(,"page":"/")") + "\n" + "not json at all\n" +
      Event("page_view", "x6", "2026-12-01T09:00:00Z", "L9", R"(,"page":"/")") + "\n";
  auto r = c.Post("/v1/events", body, "application/x-ndjson");
  REQUIRE(r);
  REQUIRE(r->status == 400);
  json b = json::parse(r->body);
  CHECK(b["rejected"] == 6);
  REQUIRE(b["errors"].size() == 6);
  std::map<int, std::string> by_line;
  for (const auto& e : b["errors"]) by_line[e["line"].get<int>()] = e["error"].get<std::string>();
  CHECK(by_line[2].find("unknown event type `page_visit`") != std::string::npos);
  CHECK(by_line[3].find("missing field `page`") != std::string::npos);
  CHECK(by_line[4].find("`page` must be") != std::string::npos);
  CHECK(by_line[5].find("`time`") != std::string::npos);
  CHECK(by_line[6].find("JSON") != std::string::npos);
  CHECK(by_line[7].find("in the future") != std::string::npos);
  // The valid first line was not applied either.
  CHECK(c.Get("/v1/entities/lead/L9")->status == 404);
  CHECK(AllDecisions(d, "entity=lead:L9").empty());

  // Empty body.
  r = c.Post("/v1/events", "\n\n", "application/x-ndjson");
  CHECK(r->status == 400);

  // Over the size limit (64 KiB in this config): 413.
  std::string big;
  for (int i = 0; big.size() < 70 * 1024; ++i) {
    big += Event("page_view", "big-" + std::to_string(i), "2026-10-01T09:00:00Z", "L9", R"(,"page":"/")") + "\n";
  }
  r = c.Post("/v1/events", big, "application/x-ndjson");
  REQUIRE(r);
  CHECK(r->status == 413);

  r = c.Get("/metrics");
  CHECK(r->body.find("gavel_events_rejected_total{reason=\"unknown_event\"} 1") != std::string::npos);
  CHECK(r->body.find("gavel_events_rejected_total{reason=\"future_time\"} 1") != std::string::npos);
  CHECK(d.Stop() == 0);
}

TEST_CASE("a reload with a broken rule file keeps the old rules, and a fixed one gets a new version hash", "[daemon]") {
  TempDir dir("reload");
  json cfg = LeadConfig(dir.path);
  DaemonProcess d(dir.path, cfg);
  d.StartReady();
  auto c = d.Client();
  auto version_of = [&](const std::string& name) {
    json b = json::parse(c.Get("/v1/rules")->body);
    for (const auto& u : b["units"]) {
      if (u["name"] == name) return u["version"].get<std::string>();
    }
    return std::string();
  };
  const std::string v1 = version_of("mql_handoff");
  REQUIRE_FALSE(v1.empty());
  REQUIRE(c.Post("/v1/events", QualifyingBatch("L1", "a"), "application/x-ndjson")->status == 200);

  // Break a file: the reload is refused with the diagnostics; the old rules keep running.
  const fs::path file = dir.path / "rules" / "lead_scoring.gavel";
  const std::string original = ReadFile(file);
  WriteFile(file, original + "\nrule broken {\n  on page_veiw\n  then notify slack \"#x\" \"y\"\n}\n");
  auto r = c.Post("/v1/reload", "", "application/json");
  REQUIRE(r);
  CHECK(r->status == 422);
  json b = json::parse(r->body);
  CHECK(b["ok"] == false);
  CHECK(b["diagnostics"].get<std::string>().find("lead_scoring.gavel:") != std::string::npos);
  CHECK(version_of("mql_handoff") == v1);
  json rules = json::parse(c.Get("/v1/rules")->body);
  CHECK(rules["last_reload"]["ok"] == false);
  // Still ingesting with the old program.
  REQUIRE(c.Post("/v1/events", QualifyingBatch("L2", "b"), "application/x-ndjson")->status == 200);
  CHECK(AllDecisions(d, "rule=mql_handoff&entity=lead:L2").size() == 1);

  // Fix it with a real change: mql_handoff's threshold moves; state carries across.
  std::string changed = original;
  const auto at = changed.find("crosses above 50");
  REQUIRE(at != std::string::npos);
  changed.replace(at, 16, "crosses above 60");
  WriteFile(file, changed);
  r = c.Post("/v1/reload", "", "application/json");
  REQUIRE(r->status == 200);
  b = json::parse(r->body);
  CHECK(b["ok"] == true);
  bool listed = false;
  for (const auto& u : b["changed"]) listed |= u["unit"] == "rule:mql_handoff";
  CHECK(listed);
  const std::string v2 = version_of("mql_handoff");
  CHECK(v2 != v1);
  // L1's score survived the reload.
  CHECK(json::parse(c.Get("/v1/entities/lead/L1")->body)["scores"]["lead_score"].get<double>() > 50);
  // Later decisions carry the new version.
  REQUIRE(c.Post("/v1/events",
                 QualifyingBatch("L3", "c") +
                     Event("page_view", "c-more", "2026-10-01T09:04:00Z", "L3", R"(,"page":"/pricing/x")") + "\n",
                 "application/x-ndjson")
              ->status == 200);
  auto l3 = AllDecisions(d, "rule=mql_handoff&entity=lead:L3");
  REQUIRE(l3.size() == 1);
  CHECK(l3[0]["version"] == v2);

  // Both attempts are in the decision log as operator records.
  auto ops = AllDecisions(d, "kind=operator");
  REQUIRE(ops.size() == 2);
  CHECK(ops[0]["outcome"] == "reload_failed");
  CHECK(ops[1]["outcome"] == "reloaded");
  CHECK(ops[1]["entity_id"] == "anonymous");
  CHECK(ops[1]["trigger"] == "api:POST /v1/reload");

  // SIGHUP reloads too (nothing changed: a reload with no changes is still logged).
  d.Signal(SIGHUP);
  bool seen = false;
  for (int i = 0; i < 300 && !seen; ++i) {
    seen = AllDecisions(d, "kind=operator").size() == 3;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(seen);
  CHECK(AllDecisions(d, "kind=operator")[2]["trigger"] == "signal:SIGHUP");
  CHECK(d.Stop() == 0);
}

TEST_CASE("a change to a rule file is picked up by the watch and reloaded", "[daemon]") {
  TempDir dir("watch");
  json cfg = LeadConfig(dir.path);
  cfg["rules"]["watch"] = true;
  cfg["rules"]["watch_interval"] = "200ms";
  DaemonProcess d(dir.path, cfg);
  d.StartReady();
  const fs::path file = dir.path / "rules" / "lead_scoring.gavel";
  std::string text = ReadFile(file);
  text.replace(text.find("crosses above 50"), 16, "crosses above 55");
  WriteFile(file, text);
  bool reloaded = false;
  for (int i = 0; i < 300 && !reloaded; ++i) {
    auto ops = AllDecisions(d, "kind=operator");
    reloaded = !ops.empty() && ops.back()["outcome"] == "reloaded";
    if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(reloaded);
  CHECK(AllDecisions(d, "kind=operator").back()["trigger"] == "watch:rule files changed");
  CHECK(d.Stop() == 0);
}

TEST_CASE("a daily schedule in New York fires at 09:00 local time on both sides of the DST change", "[daemon]") {
  TempDir dir("dst");
  json cfg = LeadConfig(dir.path, "2026-10-29T00:00:00Z");
  WriteFile(dir.path / "rules" / "report.gavel",
            "rule morning_report {\n  owner \"ops@example.com\"\n  every day at 09:00 in \"America/New_York\"\n"
            "  then notify slack \"#ops\" \"good morning\"\n}\n");
  DaemonProcess d(dir.path, cfg);
  d.StartReady();
  auto c = d.Client();
  // Tick by tick across 2026-11-01, when New York goes from EDT (UTC-4) to EST (UTC-5): a
  // second before 09:00 local nothing fires, at 09:00 it does.
  const std::vector<std::string> expected = {"2026-10-29T13:00:00Z", "2026-10-30T13:00:00Z", "2026-10-31T13:00:00Z",
                                             "2026-11-01T14:00:00Z", "2026-11-02T14:00:00Z"};
  std::size_t count = 0;
  for (const auto& at : expected) {
    gavel::rules::TimeMs t = 0;
    REQUIRE(gavel::rules::ParseTime(at, t));
    auto r = c.Post("/v1/clock", json{{"time", gavel::rules::FormatTime(t - 1000)}}.dump(), "application/json");
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    CHECK(AllDecisions(d, "rule=morning_report&outcome=fired").size() == count);
    REQUIRE(c.Post("/v1/clock", json{{"time", at}}.dump(), "application/json")->status == 200);
    auto fired = AllDecisions(d, "rule=morning_report&outcome=fired");
    REQUIRE(fired.size() == ++count);
    CHECK(fired.back()["event_time"] == at);
  }
  CHECK(AllDecisions(d, "kind=schedule").empty());  // none was late

  // Downtime: the clock jumps three days; the missed ticks run once, logged as late.
  REQUIRE(c.Post("/v1/clock", json{{"time", "2026-11-06T00:00:00Z"}}.dump(), "application/json")->status == 200);
  auto fired = AllDecisions(d, "rule=morning_report&outcome=fired");
  REQUIRE(fired.size() == 6);
  CHECK(fired.back()["event_time"] == "2026-11-05T14:00:00Z");
  auto late = AllDecisions(d, "kind=schedule");
  REQUIRE(late.size() == 1);
  CHECK(late[0]["outcome"] == "late");
  CHECK(late[0]["reason"] == "missed_ticks");
  CHECK(late[0]["evidence"]["skipped_ticks"] == 2);
  CHECK(late[0]["evidence"]["first_due"] == "2026-11-03T14:00:00Z");

  // The clock only moves forward.
  CHECK(c.Post("/v1/clock", json{{"time", "2026-11-01T00:00:00Z"}}.dump(), "application/json")->status == 400);
  CHECK(d.Stop() == 0);
}

TEST_CASE("tokens and roles: 401 without a valid token, 403 outside the role, operator requests logged by name",
          "[daemon]") {
  TempDir dir("auth");
  json cfg = LeadConfig(dir.path);
  const std::string ingest = "ingest-secret-0123456789abcdef";
  const std::string auditor = "auditor-secret-0123456789abcdef";
  const std::string op = "operator-secret-0123456789abcdef";
  const std::string admin = "admin-secret-0123456789abcdef";
  WriteFile(dir.path / "admin.token", admin + "\n");
  cfg["auth"] = {{"tokens",
                  {{{"name", "collector"}, {"role", "ingest"}, {"token", {{"env", "T_INGEST"}}}},
                   {{"name", "audit"}, {"role", "auditor"}, {"token", {{"env", "T_AUDIT"}}}},
                   {{"name", "alice"}, {"role", "operator"}, {"token", {{"env", "T_OP"}}}},
                   {{"name", "root"}, {"role", "admin"}, {"token", {{"file", (dir.path / "admin.token").string()}}}}}}};
  cfg["log"] = {{"format", "json"}, {"level", "debug"}};
  DaemonProcess d(dir.path, cfg, {{"T_INGEST", ingest}, {"T_AUDIT", auditor}, {"T_OP", op}});
  d.StartReady();
  auto c = d.Client();
  const std::string batch = QualifyingBatch("L1", "a");

  auto r = c.Post("/v1/events", batch, "application/x-ndjson");
  CHECK(r->status == 401);
  CHECK(json::parse(r->body)["error"].get<std::string>().find("missing bearer token") != std::string::npos);
  r = c.Post("/v1/events", Bearer("wrong-token-0123456789abcdef"), batch, "application/x-ndjson");
  CHECK(r->status == 401);
  CHECK(json::parse(r->body)["error"] == "unknown token");

  CHECK(c.Post("/v1/events", Bearer(ingest), batch, "application/x-ndjson")->status == 200);
  r = c.Get("/v1/decisions", Bearer(ingest));
  CHECK(r->status == 403);
  CHECK(json::parse(r->body)["error"].get<std::string>().find("token `collector` has role ingest") !=
        std::string::npos);
  CHECK(c.Post("/v1/reload", Bearer(ingest), "", "application/json")->status == 403);

  CHECK(c.Get("/v1/decisions", Bearer(auditor))->status == 200);
  CHECK(c.Get("/v1/rules", Bearer(auditor))->status == 200);
  CHECK(c.Get("/metrics", Bearer(auditor))->status == 200);
  CHECK(c.Post("/v1/events", Bearer(auditor), batch, "application/x-ndjson")->status == 403);
  CHECK(c.Post("/v1/reload", Bearer(auditor), "", "application/json")->status == 403);

  CHECK(c.Post("/v1/reload", Bearer(op), "", "application/json")->status == 200);
  CHECK(c.Post("/v1/clock", Bearer(op), R"({"time":"2026-10-02T00:00:00Z"})", "application/json")->status == 403);
  CHECK(c.Post("/v1/clock", Bearer(admin), R"({"time":"2026-10-02T00:00:00Z"})", "application/json")->status == 200);
  CHECK(c.Post("/v1/reload", Bearer(admin), "", "application/json")->status == 200);

  // Probes need no token.
  CHECK(c.Get("/healthz")->status == 200);
  CHECK(c.Get("/readyz")->status == 200);

  auto ops = AllDecisions(d, "kind=operator", auditor);
  REQUIRE(ops.size() == 3);
  CHECK(ops[0]["entity_id"] == "alice");
  CHECK(ops[0]["evidence"]["who"] == "alice");
  CHECK(ops[1]["entity_id"] == "root");
  CHECK(ops[1]["outcome"] == "clock_set");
  CHECK(ops[2]["entity_id"] == "root");
  CHECK(d.Stop() == 0);

  // No secret in the log, which is JSON lines.
  const std::string log = d.Log() + d.Output();
  REQUIRE_FALSE(log.empty());
  for (const auto& secret : {ingest, auditor, op, admin}) CHECK(log.find(secret) == std::string::npos);
  CHECK(log.find("env T_INGEST") != std::string::npos);  // where it came from, not what it is
  std::istringstream lines(d.Log());
  std::string line;
  while (std::getline(lines, line)) {
    INFO(line);
    CHECK_FALSE(json::parse(line, nullptr, false).is_discarded());
  }
}

TEST_CASE("gavel run refuses a bad config and names the setting", "[daemon]") {
  TempDir dir("config");
  WriteFile(dir.path / "bad.conf",
            "{\n  // comments are fine\n  \"listen\": \"nowhere\",\n  \"auth\": {\"tokens\": [{\"name\": \"x\", "
            "\"role\": \"king\", \"token\": \"literal-secret\"}]},\n  \"colour\": 1,\n"
            "  \"state\": {\"journal\": \"yes\", \"snapshot_every\": \"often\", \"snapshot_events\": 0}\n}\n");
  const std::string out = (dir.path / "out.txt").string();
  const std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel run --config " + (dir.path / "bad.conf").string() +
                          " > " + out + " 2>&1";
  const int status = std::system(cmd.c_str());
  CHECK(WEXITSTATUS(status) == 2);
  const std::string text = ReadFile(out);
  CHECK(text.find("listen: `nowhere` is not HOST:PORT") != std::string::npos);
  CHECK(text.find("auth.tokens[0].role: must be one of") != std::string::npos);
  CHECK(text.find("auth.tokens[0].token: secrets are not written in the config file") != std::string::npos);
  CHECK(text.find("colour: unknown setting") != std::string::npos);
  CHECK(text.find("state.journal: must be true or false") != std::string::npos);
  CHECK(text.find("state.snapshot_every: `often` is not a duration") != std::string::npos);
  CHECK(text.find("state.snapshot_events: must be between 1 and") != std::string::npos);
  CHECK(text.find("literal-secret") == std::string::npos);
}

TEST_CASE("the example config in examples/gavel.conf loads once its secrets are there", "[daemon]") {
  TempDir dir("example");
  const std::string example = std::string(GAVEL_SOURCE_DIR) + "/examples/gavel.conf";
  // With the secrets missing, each one is named.
  ::unsetenv("GAVEL_TOKEN_INGEST");
  auto bad = gavel::daemon::LoadConfig(example);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("auth.tokens[0].token: environment variable GAVEL_TOKEN_INGEST is not set") !=
        std::string::npos);
  // With them: rewrite the file paths into the temp dir and load.
  std::string text = ReadFile(example);
  for (const char* f : {"/etc/gavel/sales_queue.secret", "/etc/gavel/admin.token"}) {
    const std::string local = (dir.path / fs::path(f).filename()).string();
    WriteFile(local, "s3cret-value-0123456789abcdef\n");
    text.replace(text.find(f), std::string(f).size(), local);
  }
  WriteFile(dir.path / "gavel.conf", text);
  for (const char* v : {"GAVEL_SLACK_REVOPS_SECRET", "GAVEL_TOKEN_INGEST", "GAVEL_TOKEN_AUDITOR", "GAVEL_TOKEN_ALICE",
                        "GAVEL_ADS_TOKEN"}) {
    ::setenv(v, "token-value-0123456789abcdef", 1);
  }
  auto c = gavel::daemon::LoadConfig((dir.path / "gavel.conf").string());
  INFO((c.ok() ? "" : c.status().message()));
  REQUIRE(c.ok());
  CHECK(c.value().tokens.size() == 4);
  CHECK(c.value().default_freshness_ms == 36LL * 3600 * 1000);
  CHECK(c.value().webhooks.size() == 1);
  CHECK(gavel::daemon::Describe(c.value()).find("token-value") == std::string::npos);
  CHECK(c.value().actions.execute);
  CHECK(c.value().actions.escalation_channel == "#oncall");
  CHECK(c.value().actions.max_changes_per_entity_per_day == 4);
  CHECK(c.value().actions.entities.at("adset_daily").object_kind == "adsets");
  CHECK(c.value().actions.ad_platforms.at("reference").token == "token-value-0123456789abcdef");
  for (const char* v : {"GAVEL_SLACK_REVOPS_SECRET", "GAVEL_TOKEN_INGEST", "GAVEL_TOKEN_AUDITOR", "GAVEL_TOKEN_ALICE",
                        "GAVEL_ADS_TOKEN"}) {
    ::unsetenv(v);
  }
}

TEST_CASE("a scheduled rule whose warehouse query fails shows its health and last error, and the rest carries on",
          "[daemon]") {
  TempDir dir("health");
  json cfg = LeadConfig(dir.path, "2026-10-29T00:00:00Z");
  fs::copy_file(fs::path(GAVEL_SOURCE_DIR) / "playbooks/cpa_pause.gavel", dir.path / "rules/cpa_pause.gavel");
  // A warehouse without the rule's table.
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((dir.path / "warehouse.db").string().c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE unrelated(a TEXT)", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  cfg["warehouse"] = {{"kind", "sqlite"}, {"path", (dir.path / "warehouse.db").string()}};
  DaemonProcess d(dir.path, cfg);
  d.StartReady();
  auto c = d.Client();
  REQUIRE(c.Post("/v1/clock", json{{"time", "2026-10-29T01:30:00Z"}}.dump(), "application/json")->status == 200);
  json rules = json::parse(c.Get("/v1/rules")->body);
  json unit;
  for (const auto& u : rules["units"]) {
    if (u["name"] == "pause_high_cpa") unit = u;
  }
  REQUIRE(unit.is_object());
  CHECK(unit["health"] == "error");
  REQUIRE(unit["last_error"].is_string());
  CHECK_FALSE(unit["last_error"].get<std::string>().empty());
  CHECK(unit["last_evaluation"].is_string());
  CHECK(unit["last_duration_ms"].is_number());
  auto skipped = AllDecisions(d, "rule=pause_high_cpa&reason=error");
  CHECK_FALSE(skipped.empty());
  // The other rules carry on.
  REQUIRE(c.Post("/v1/events", QualifyingBatch("L1", "a"), "application/x-ndjson")->status == 200);
  CHECK(AllDecisions(d, "rule=mql_handoff").size() == 1);
  auto m = c.Get("/metrics")->body;
  CHECK(m.find("gavel_warehouse_query_seconds_count") != std::string::npos);
  CHECK(m.find("gavel_warehouse_query_seconds_count 0\n") == std::string::npos);
  CHECK(d.Stop() == 0);
}

TEST_CASE("summaries are written on time while events keep arriving", "[daemon]") {
  TempDir dir("summary");
  json cfg = LeadConfig(dir.path);
  cfg["summary_interval"] = "300ms";
  DaemonProcess d(dir.path, cfg);
  d.StartReady();
  auto c = d.Client();
  // Back to back for about 1.5 s: every drain re-arms the wake timer, which must still let
  // the summary (and its snapshot) through when it is due.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  int n = 0;
  while (std::chrono::steady_clock::now() < until) {
    // One resent event per batch: a summary has something to count (duplicates).
    std::string body = Event("page_view", "sv-again", "2026-10-01T09:00:00Z", "L0", R"(,"page":"/blog/x")") + "\n";
    for (int i = 0; i < 50; ++i, ++n) {
      body += Event("page_view", "sv-" + std::to_string(n), "2026-10-01T09:00:00Z", "L" + std::to_string(n % 40),
                    R"(,"page":"/blog/x")") +
              "\n";
    }
    auto r = c.Post("/v1/events", body, "application/x-ndjson");
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }
  INFO("events sent: " << n);
  CHECK(AllDecisions(d, "kind=summary").size() >= 2);
  CHECK(d.Stop() == 0);
}
