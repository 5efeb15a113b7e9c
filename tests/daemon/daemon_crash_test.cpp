// Crash safety of `gavel run`: kill -9 while batches are in flight, restart, resend; nothing
// acknowledged is lost and nothing is decided twice (compared with a daemon that never
// crashed and got the same events).
#include <atomic>
#include <sstream>

#include "rules/clock.hpp"

#include "tests/daemon/daemon_harness.hpp"

using namespace gavel_test;

namespace {

json Config(const fs::path& dir) {
  CopyLeadScoring(dir / "rules");
  return {{"rules", {{"paths", {(dir / "rules").string()}}, {"watch", false}}},
          {"state", {{"path", (dir / "state.db").string()}}},
          {"warehouse", {{"kind", "none"}}},
          {"clock", {{"mode", "simulated"}, {"start", "2026-10-20T00:00:00Z"}}}};
}

// `batches` NDJSON batches of `per` lead-scoring events over 500 leads, in time order.
std::vector<std::string> Batches(int batches, int per) {
  std::vector<std::string> out;
  static const char* kPages[] = {"/", "/pricing", "/pricing/team", "/blog/x"};
  int n = 0;
  for (int b = 0; b < batches; ++b) {
    std::string body;
    for (int i = 0; i < per; ++i, ++n) {
      const std::string lead = "L" + std::to_string(n % 500);
      // Ten seconds apart from 2026-10-01T00:00:00Z.
      const std::string time = gavel::rules::FormatTime(1790812800000LL + n * 10000LL);
      const std::string id = "ev-" + std::to_string(n);
      switch (n % 7) {
        case 0:
          body += Event("lead_profile", id, time, lead,
                        std::string(R"(,"title":")") + (n % 3 ? "VP" : "Analyst") +
                            R"(","company_size":120,"timezone":"America/New_York")");
          break;
        case 1: body += Event("webinar_signup", id, time, lead, R"(,"webinar":"w")"); break;
        case 2: body += Event("guide_download", id, time, lead, R"(,"guide":"g")"); break;
        default: body += Event("page_view", id, time, lead, std::string(R"(,"page":")") + kPages[n % 4] + "\""); break;
      }
      body += "\n";
    }
    out.push_back(std::move(body));
  }
  return out;
}

// The decision log without ids, chain hashes, summaries and operator records, sorted.
std::vector<std::string> Canonical(DaemonProcess& d) {
  std::vector<std::string> out;
  for (auto& x : AllDecisions(d, "")) {
    if (x["kind"] == "summary" || x["kind"] == "operator") continue;
    x.erase("id");
    x.erase("prev_hash");
    x.erase("hash");
    out.push_back(x.dump());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The leads' scores, fields and journey positions are the same in both daemons.
void SameLeads(DaemonProcess& d, DaemonProcess& ref, std::initializer_list<const char*> leads) {
  for (const char* lead : leads) {
    INFO("lead " << lead);
    const std::string path = std::string("/v1/entities/lead/") + lead;
    json a = json::parse(d.Client().Get(path.c_str())->body);
    json b = json::parse(ref.Client().Get(path.c_str())->body);
    CHECK(a["scores"] == b["scores"]);
    CHECK(a["fields"] == b["fields"]);
    CHECK(a["journeys"] == b["journeys"]);
  }
}

// The metric `name` from /metrics (-1 if absent).
double Metric(DaemonProcess& d, const std::string& name) {
  auto r = d.Client().Get("/metrics");
  if (!r) return -1;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

}  // namespace

TEST_CASE("kill -9 in the middle of a batch, restart and resend: nothing is lost, nothing is decided twice",
          "[daemon][crash]") {
  const auto batches = Batches(24, 1000);
  // Ingest commits are event-journal rows between snapshots (daemon/event_journal.hpp): with
  // the default limits every commit before the kill is a journal row; with a snapshot every
  // 2,500 events the kill also lands between snapshots and journal rows; with the journal
  // off every commit writes the state.
  const json state_settings = GENERATE(json::object(), json{{"snapshot_events", 2500}}, json{{"journal", false}});
  INFO("state settings: " << state_settings.dump());
  auto config = [&](const fs::path& dir) {
    json c = Config(dir);
    for (const auto& [k, v] : state_settings.items()) c["state"][k] = v;
    return c;
  };

  // The reference: the same batches, no crash.
  TempDir ref_dir("crash-ref");
  DaemonProcess ref(ref_dir.path, Config(ref_dir.path));
  ref.StartReady();
  {
    auto c = ref.Client();
    for (const auto& b : batches) {
      auto r = c.Post("/v1/events", b, "application/x-ndjson");
      REQUIRE(r);
      REQUIRE(r->status == 200);
    }
  }

  TempDir dir("crash");
  DaemonProcess d(dir.path, config(dir.path));
  d.StartReady();
  std::atomic<int> acked{0};
  std::thread sender([&] {
    auto c = d.Client();
    for (const auto& b : batches) {
      auto r = c.Post("/v1/events", b, "application/x-ndjson");
      if (!r || r->status != 200) return;  // the daemon died under this batch
      acked++;
    }
  });
  // Kill once a few batches were acknowledged, while the next ones are in flight.
  for (int i = 0; i < 6000 && acked < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double journaled = Metric(d, "gavel_journal_commits_total");
  const double snapshots = Metric(d, "gavel_snapshots_total");
  d.Kill();
  sender.join();
  const int confirmed = acked.load();
  REQUIRE(confirmed >= 5);
  INFO("batches acknowledged before the kill: " << confirmed);
  if (state_settings.contains("journal")) {
    CHECK(journaled == 0);
  } else {
    CHECK(journaled >= 1);
    if (state_settings.contains("snapshot_events")) CHECK(snapshots >= 2);
  }

  d.StartReady();
  if (!state_settings.contains("journal")) {
    // The restart applied the journal onto the last snapshot, with every row's decision
    // count as recorded.
    // (With a snapshot every 2,500 events the kill may land just after one: nothing to replay.)
    const std::string log = d.Log();
    const bool replayed = log.find("event journal replayed onto the last snapshot") != std::string::npos;
    if (!state_settings.contains("snapshot_events")) CHECK(replayed);
    if (replayed) CHECK(log.find("rows_with_other_decision_counts=0") != std::string::npos);
  }
  auto c = d.Client();
  // Every acknowledged event is there: resending gives only duplicates.
  for (int i = 0; i < confirmed; ++i) {
    auto r = c.Post("/v1/events", batches[i], "application/x-ndjson");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    json b = json::parse(r->body);
    CHECK(b["accepted"] == 0);
    CHECK(b["duplicates"] == 1000);
  }
  // The rest is sent again (what was committed but not acknowledged comes back as duplicate).
  for (std::size_t i = confirmed; i < batches.size(); ++i) {
    auto r = c.Post("/v1/events", batches[i], "application/x-ndjson");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    json b = json::parse(r->body);
    CHECK(b["accepted"].get<int>() + b["duplicates"].get<int>() == 1000);
  }

  // Same decisions as the daemon that never crashed: none lost, none twice.
  const auto got = Canonical(d);
  const auto want = Canonical(ref);
  CHECK(got.size() == want.size());
  CHECK(got == want);
  SameLeads(d, ref, {"L0", "L1", "L77", "L499"});
  CHECK(d.Stop() == 0);
  CHECK(ref.Stop() == 0);
}

TEST_CASE("a restarted daemon resumes its schedule bookkeeping and runs the missed tick once, late",
          "[daemon][crash]") {
  TempDir dir("resume");
  json cfg = Config(dir.path);
  cfg["clock"]["start"] = "2026-10-29T00:00:00Z";
  WriteFile(dir.path / "rules" / "report.gavel",
            "rule hourly_check {\n  owner \"ops@example.com\"\n  every 1h\n  then notify slack \"#ops\" \"tick\"\n}\n");
  DaemonProcess d(dir.path, cfg);
  d.StartReady();
  auto c = d.Client();
  // Half an hour past each tick (ticks are at a small per-rule offset past the hour).
  for (const char* t : {"2026-10-29T00:30:00Z", "2026-10-29T01:30:00Z", "2026-10-29T02:30:00Z",
                        "2026-10-29T03:30:00Z"}) {
    REQUIRE(c.Post("/v1/clock", json{{"time", t}}.dump(), "application/json")->status == 200);
  }
  const auto before = AllDecisions(d, "rule=hourly_check&outcome=fired").size();
  REQUIRE(before == 4);
  d.Kill();
  // After the restart the clock resumes where the engine stopped; ten hours pass at once.
  d.StartReady();
  auto c2 = d.Client();
  REQUIRE(c2.Post("/v1/clock", json{{"time", "2026-10-29T13:30:00Z"}}.dump(), "application/json")->status == 200);
  auto fired = AllDecisions(d, "rule=hourly_check&outcome=fired");
  CHECK(fired.size() == before + 1);
  auto late = AllDecisions(d, "kind=schedule&rule=hourly_check&reason=missed_ticks");
  REQUIRE(late.size() == 1);
  CHECK(late[0]["evidence"]["skipped_ticks"] == 9);
  CHECK(d.Stop() == 0);
}

TEST_CASE("SIGTERM while batches are in flight: each is either answered 200 and kept, or not applied at all",
          "[daemon][crash]") {
  const auto batches = Batches(12, 2000);
  TempDir dir("drain");
  DaemonProcess d(dir.path, Config(dir.path));
  d.StartReady();
  std::vector<int> status(batches.size(), 0);
  std::atomic<int> answered{0};
  std::vector<std::thread> senders;
  for (std::size_t t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      auto c = d.Client();
      for (std::size_t i = t; i < batches.size(); i += 4) {
        auto r = c.Post("/v1/events", batches[i], "application/x-ndjson");
        status[i] = r ? r->status : -1;
        if (r && r->status == 200) answered++;
        if (!r) return;  // the daemon has gone: later batches were never sent
      }
    });
  }
  for (int i = 0; i < 6000 && answered < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(d.Stop(SIGTERM) == 0);
  for (auto& t : senders) t.join();
  CHECK(d.Log().find("SIGTERM: draining and stopping") != std::string::npos);

  // After a restart, each batch answered 200 is there in full; each other one was either not
  // applied at all (503, refused connection) or is there in full (committed as the answer was lost).
  d.StartReady();
  auto c = d.Client();
  int kept = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    INFO("batch " << i << " answered " << status[i]);
    auto r = c.Post("/v1/events", batches[i], "application/x-ndjson");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    json b = json::parse(r->body);
    if (status[i] == 200) {
      CHECK(b["duplicates"] == 2000);
      ++kept;
    } else {
      CHECK((b["duplicates"] == 0 || b["duplicates"] == 2000));
    }
  }
  CHECK(kept >= 2);
  CHECK(d.Stop() == 0);
}

TEST_CASE("journaled batches survive a reload and a kill -9, and entity reads see them",
          "[daemon][crash]") {
  const auto batches = Batches(8, 1000);
  // A journey whose instances wait 30 days: their positions change with events, between
  // snapshots, and no timer is due on this clock.
  const std::string journey =
      "journey welcome for lead {\n  owner \"lifecycle@example.com\"\n  enter on webinar_signup\n"
      "  step hello: email \"welcome_guide\"\n  wait up to 30d for email_open\n"
      "    on email_open: step thanks: email \"case_study\"\n    on timeout: step nudge: email \"case_study\"\n}\n";
  auto config = [&](const fs::path& dir) {
    json c = Config(dir);
    WriteFile(dir / "rules" / "welcome.gavel", journey);
    return c;
  };
  TempDir ref_dir("journal-ref");
  DaemonProcess ref(ref_dir.path, config(ref_dir.path));
  ref.StartReady();
  for (const auto& b : batches) REQUIRE(ref.Client().Post("/v1/events", b, "application/x-ndjson")->status == 200);

  TempDir dir("journal");
  DaemonProcess d(dir.path, config(dir.path));
  d.StartReady();
  auto c = d.Client();
  for (int i = 0; i < 3; ++i) REQUIRE(c.Post("/v1/events", batches[i], "application/x-ndjson")->status == 200);
  CHECK(Metric(d, "gavel_journal_commits_total") >= 3);
  // An entity read shows the journey positions from the engine's memory, journaled events
  // included, without writing a snapshot.
  const double s0 = Metric(d, "gavel_snapshots_total");
  const auto entered = AllDecisions(d, "kind=journey&outcome=entered");
  REQUIRE(!entered.empty());
  const std::string lead = entered.front()["entity_id"].get<std::string>();
  auto entity = c.Get(("/v1/entities/lead/" + lead).c_str());
  REQUIRE(entity->status == 200);
  INFO(entity->body);
  CHECK(!json::parse(entity->body)["journeys"].empty());
  const double s1 = Metric(d, "gavel_snapshots_total");
  CHECK(s1 == s0);
  for (int i = 3; i < 5; ++i) REQUIRE(c.Post("/v1/events", batches[i], "application/x-ndjson")->status == 200);
  // A reload (a new, unrelated rule): the old program's journaled batches are written as a
  // snapshot before the new engine is built from the database.
  WriteFile(dir.path / "rules" / "extra.gavel",
            "rule hourly_check {\n  owner \"ops@example.com\"\n  every 1h\n  then notify slack \"#ops\" \"tick\"\n}\n");
  auto r = c.Post("/v1/reload", "", "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(Metric(d, "gavel_snapshots_total") >= s1 + 1);
  for (int i = 5; i < 8; ++i) REQUIRE(c.Post("/v1/events", batches[i], "application/x-ndjson")->status == 200);
  d.Kill();

  d.StartReady();
  CHECK(d.Log().find("event journal replayed onto the last snapshot") != std::string::npos);
  auto c2 = d.Client();
  for (const auto& b : batches) {
    auto again = c2.Post("/v1/events", b, "application/x-ndjson");
    REQUIRE(again);
    CHECK(json::parse(again->body)["duplicates"] == 1000);
  }
  const auto got = Canonical(d);
  const auto want = Canonical(ref);
  CHECK(got == want);
  SameLeads(d, ref, {"L0", "L1", "L250", "L499"});
  CHECK(d.Stop() == 0);
  CHECK(ref.Stop() == 0);
}
