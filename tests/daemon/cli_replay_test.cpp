// `gavel replay` as a user runs it: the real binary on files, output and exit code checked.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Run {
  int exit_code;
  std::string out;
  std::string err;
};

Run Gavel(const std::string& args) {
  fs::path dir = fs::temp_directory_path() / ("gavel-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string out = (dir / "out.txt").string(), err = (dir / "err.txt").string();
  std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel " + args + " > " + out + " 2> " + err;
  int status = std::system(cmd.c_str());
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  return {WEXITSTATUS(status), read(out), read(err)};
}

std::string WriteFile(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() / ("gavel-cli-" + std::to_string(::getpid())) / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p.string();
}

// Runs `sql` on the database file at `path` with a connection of its own, as someone with
// access to the file would.
void ExecSql(const std::string& path, const char* sql) {
  sqlite3* conn = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &conn) == SQLITE_OK);
  const int rc = sqlite3_exec(conn, sql, nullptr, nullptr, nullptr);
  sqlite3_close(conn);
  REQUIRE(rc == SQLITE_OK);
}

}  // namespace

TEST_CASE("replay reports a malformed line with its number and reason, skips it and goes on", "[cli]") {
  std::string events = WriteFile(
      "events.ndjson",
      R"({"event":"lead_profile","id":"p1","time":"2026-10-01T08:00:00Z","lead_id":"L1","title":"VP","company_size":50,"timezone":"UTC"})"
      "\n"
      R"({"event":"page_view","id":"e1","time":"2026-10-01T09:00:00Z","lead_id":"L1","page":"/pricing"})"
      "\n"
      "this is not json\n"
      R"({"event":"page_view","id":"e2","time":"2026-10-01T09:01:00Z","lead_id":"L1"})"
      "\n"
      R"({"event":"webinar_signup","id":"e3","time":"2026-10-01T09:02:00Z","lead_id":"L1","webinar":"w"})"
      "\n"
      R"({"event":"guide_download","id":"e4","time":"2026-10-01T09:03:00Z","lead_id":"L1","guide":"g"})"
      "\n"
      R"({"event":"guide_download","id":"e4","time":"2026-10-01T09:03:00Z","lead_id":"L1","guide":"g"})"
      "\n");
  Run r = Gavel("replay --rules " + std::string(GAVEL_SOURCE_DIR) + "/playbooks --events " + events);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("events.ndjson:3: rejected: not valid JSON") != std::string::npos);
  CHECK(r.err.find("events.ndjson:4: rejected: missing field `page`") != std::string::npos);
  CHECK(r.err.find("1 duplicate events skipped") != std::string::npos);
  // 10 (pricing) + 10 (VP, once) + 20 (webinar) + 15 (guide) = 55: the MQL hand-off fires.
  CHECK(r.out.find("rule mql_handoff lead=L1 fired (live)") != std::string::npos);
}

TEST_CASE("replay parses on every core and still reports bad lines in file order with their numbers", "[cli]") {
  // 3,000 lines, out of time order in places, bad lines spread over the file (the parse is
  // split into ranges of lines, one per thread), a CRLF line and a missing final newline.
  std::string text;
  for (int i = 1; i <= 3000; ++i) {
    if (i == 7 || i == 1501 || i == 2999) {
      text += "{\"event\":\"page_view\",\"id\":\"bad" + std::to_string(i) + "\"}\n";
      continue;
    }
    const int minute = i % 500 == 0 ? 1 : i / 60 + 2;  // every 500th line is early
    char time[32];
    std::snprintf(time, sizeof time, "2026-10-01T%02d:%02d:00Z", 8 + minute / 60, minute % 60);
    text += std::string("{\"event\":\"page_view\",\"id\":\"e") + std::to_string(i) + "\",\"time\":\"" + time +
            "\",\"lead_id\":\"L" + std::to_string(i % 37) + "\",\"page\":\"/pricing\"}" +
            (i == 1200 ? "\r\n" : i == 3000 ? "" : "\n");
  }
  std::string events = WriteFile("many.ndjson", text);
  Run r = Gavel("replay --timings --format none --rules " + std::string(GAVEL_SOURCE_DIR) + "/playbooks --events " +
                events);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const auto a = r.err.find("many.ndjson:7: rejected: missing `time`");
  const auto b = r.err.find("many.ndjson:1501: rejected: missing `time`");
  const auto c = r.err.find("many.ndjson:2999: rejected: missing `time`");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  REQUIRE(c != std::string::npos);
  CHECK(a < b);
  CHECK(b < c);
  CHECK(r.err.find("replayed 2997 events") != std::string::npos);
  CHECK(r.err.find("3 lines rejected, 0 duplicate events skipped") != std::string::npos);
  CHECK(r.err.find("timings: read, parse and sort") != std::string::npos);
}

TEST_CASE("replay refuses unknown options and unreadable files with exit 2", "[cli]") {
  CHECK(Gavel("replay --bogus").exit_code == 2);
  Run r = Gavel("replay --rules " + std::string(GAVEL_SOURCE_DIR) + "/playbooks --events /nonexistent.ndjson");
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("cannot read /nonexistent.ndjson") != std::string::npos);
}

TEST_CASE("check exits 0 on the playbooks, 1 on errors and 2 on a missing path", "[cli]") {
  CHECK(Gavel("check " + std::string(GAVEL_SOURCE_DIR) + "/playbooks").exit_code == 0);
  CHECK(Gavel("check " + std::string(GAVEL_SOURCE_DIR) + "/tests/golden/diagnostics/04_unknown_clause.gavel").exit_code == 1);
  Run r = Gavel("check /nonexistent/dir");
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("no such file or directory") != std::string::npos);
}

TEST_CASE("replay --log writes a hash-chained log that `gavel log verify` accepts and tampering breaks", "[cli]") {
  std::string dir = std::string(GAVEL_SOURCE_DIR);
  std::string events = WriteFile(
      "events-log.ndjson",
      R"({"event":"page_view","id":"e1","time":"2026-10-01T09:00:00Z","lead_id":"L1","page":"/pricing"})"
      "\n"
      R"({"event":"page_view","id":"e1b","time":"2026-10-01T09:01:00Z","lead_id":"L1","page":"/pricing/teams"})"
      "\n"
      R"({"event":"webinar_signup","id":"e2","time":"2026-10-01T09:02:00Z","lead_id":"L1","webinar":"w"})"
      "\n"
      R"({"event":"guide_download","id":"e3","time":"2026-10-01T09:03:00Z","lead_id":"L1","guide":"g"})"
      "\n"
      R"({"event":"guide_download","id":"e4","time":"2026-10-01T09:04:00Z","lead_id":"L2","guide":"g"})"
      "\n");
  std::string db = WriteFile("log.db", "");
  fs::remove(db);
  Run r = Gavel("replay --rules " + dir + "/playbooks --events " + events + " --log " + db);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Run v = Gavel("log verify --db " + db);
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("the hash chain is intact") != std::string::npos);
  Run l = Gavel("log --db " + db + " --rule mql_handoff");
  CHECK(l.out.find("rule mql_handoff lead=L1 fired") != std::string::npos);
  // Tamper: an auditor's nightmare, done the way an attacker with file access would.
  ExecSql(db,
          "DROP TRIGGER IF EXISTS decisions_no_update; "
          "UPDATE decisions SET reason = 'dry_run' WHERE rule = 'mql_handoff';");
  Run broken = Gavel("log verify --db " + db);
  CHECK(broken.exit_code == 1);
  CHECK(broken.out.find("broken:") != std::string::npos);
}

TEST_CASE("replay stops with exit 2 and the log's reason when the log refuses a record, and keeps nothing of the run",
          "[cli]") {
  // Decisions are written by a thread of their own (ThreadedSink): a refusal there must
  // reach the engine, stop the run and roll the transaction back, not hang or be lost.
  std::string text;
  for (int i = 0; i < 4000; ++i) {
    text += R"({"event":"webinar_signup","id":"w)" + std::to_string(i) + R"(","time":"2026-10-01T09:00:00Z","lead_id":"L)" +
            std::to_string(i) + R"(","webinar":"w"})" + "\n";
    text += R"({"event":"guide_download","id":"g)" + std::to_string(i) + R"(","time":"2026-10-01T09:01:00Z","lead_id":"L)" +
            std::to_string(i) + R"(","guide":"g"})" + "\n";
    text += R"({"event":"page_view","id":"p)" + std::to_string(i) + R"(","time":"2026-10-01T09:02:00Z","lead_id":"L)" +
            std::to_string(i) + R"(","page":"/pricing"})" + "\n";
  }
  std::string events = WriteFile("refused.ndjson", text);
  std::string db = WriteFile("refused.db", "");
  fs::remove(db);
  // A first run creates the database; then a trigger refuses the 101st record.
  std::string one = WriteFile("one.ndjson", text.substr(0, text.find('\n') + 1));
  REQUIRE(Gavel("replay --format none --rules " + std::string(GAVEL_SOURCE_DIR) + "/playbooks --events " + one +
                " --log " + db)
              .exit_code == 0);
  ExecSql(db,
          "CREATE TRIGGER refuse AFTER INSERT ON decisions WHEN NEW.id > 100 "
          "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END;");
  Run r = Gavel("replay --format none --rules " + std::string(GAVEL_SOURCE_DIR) + "/playbooks --events " + events +
                " --log " + db);
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("the disk says no") != std::string::npos);
  Run v = Gavel("log verify --db " + db);
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("the hash chain is intact") != std::string::npos);
  // Nothing of the refused run is in the log: the first run made no decision either.
  Run l = Gavel("log --db " + db + " --format jsonl --limit 1000");
  CHECK(l.exit_code == 0);
  CHECK(l.out.find("\"kind\"") == std::string::npos);
}

TEST_CASE("explain shows the rule text, the values read and the trigger; log shadow compares shadow with live",
          "[cli]") {
  fs::path dir = fs::temp_directory_path() / ("gavel-cli-" + std::to_string(::getpid())) / "shadow";
  fs::remove_all(dir);
  fs::create_directories(dir / "rules");
  std::ofstream(dir / "rules" / "leads.gavel") << R"(event page_view { lead_id: text, page: text }
entity lead keyed by lead_id { stage: text = "new" }
score lead_score for lead {
  on page_view where page like "/pricing*" add 30
  on page_view add 5
}
rule handoff_live {
  owner "revops@example.com"
  on lead_score crosses above 50
  then webhook "sales_queue" with { lead: lead.lead_id }
  mode live
}
rule handoff_v2 {
  owner "revops@example.com"
  on lead_score crosses above 60
  then webhook "sales_queue" with { lead: lead.lead_id }
  mode shadow
}
)";
  std::ofstream events(dir / "events.ndjson");
  // A /pricing view adds 35, another view 5: L1 reaches 80 and L2 75 (both rules hand them
  // over), L3 reaches 55 (only the live rule, at 50, does).
  int n = 0;
  for (const auto& [lead, pages] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"L1", {"/pricing", "/pricing", "/x", "/x"}}, {"L2", {"/pricing", "/pricing", "/x"}}, {"L3", {"/pricing", "/x", "/x", "/x", "/x"}}}) {
    for (const auto& page : pages) {
      events << R"({"event":"page_view","id":"e)" << ++n << R"(","time":"2026-10-01T09:)" << (10 + n)
             << R"(:00Z","lead_id":")" << lead << R"(","page":")" << page << "\"}\n";
    }
  }
  events.close();
  std::string db = (dir / "log.db").string();
  Run replay = Gavel("replay --rules " + (dir / "rules").string() + " --events " + (dir / "events.ndjson").string() +
                     " --log " + db);
  INFO(replay.err);
  REQUIRE(replay.exit_code == 0);
  Run shadow = Gavel("log shadow --db " + db);
  INFO(shadow.err);
  REQUIRE(shadow.exit_code == 0);
  CHECK(shadow.out.find("handoff_v2                            2       2            0          1") != std::string::npos);
  CHECK(shadow.out.find("handoff_v2  live_only  webhook lead:L3  (live: handoff_live)") != std::string::npos);
  // Explain the live hand-over of L3: its rule text, trigger and what it read.
  Run why = Gavel("explain --db " + db + " --rule handoff_live --entity lead:L3");
  INFO(why.err);
  REQUIRE(why.exit_code == 0);
  CHECK(why.out.find("rule handoff_live ·") != std::string::npos);
  CHECK(why.out.find("trigger   crossing:lead_score:event:e12") != std::string::npos);
  CHECK(why.out.find("the rule as it ran (") != std::string::npos);
  CHECK(why.out.find("| rule handoff_live {") != std::string::npos);
  CHECK(why.out.find("  then webhook \"sales_queue\" with { lead: lead.lead_id }") != std::string::npos);
  CHECK(why.out.find("threshold") != std::string::npos);
  // Why did the shadow rule not hand L3 over? It never crossed 60: no decision, and the summary says why.
  Run why_not = Gavel("explain --db " + db + " --rule handoff_v2 --entity lead:L3");
  CHECK(why_not.exit_code == 1);
  CHECK(why_not.out.find("no decision of `handoff_v2` about lead:L3") != std::string::npos);
  Run json = Gavel("explain 1 --db " + db + " --format json");
  REQUIRE(json.exit_code == 0);
  CHECK(json.out.find("\"rule_text\"") != std::string::npos);
  Run missing = Gavel("explain 999 --db " + db);
  CHECK(missing.exit_code == 1);
  Run bad = Gavel("explain abc --db " + db);
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("`abc` is not a decision id") != std::string::npos);
}
