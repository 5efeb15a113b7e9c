// Scenario tests of the decision engine on a simulated clock, rendered to text and compared
// with the expected decision log. Warehouses are real SQLite files made by the test.
#include "rules/engine.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "dsl/compiler.hpp"
#include "rules/stats.hpp"
#include "rules/store/sqlite_warehouse.hpp"

namespace {

using gavel::rules::Decision;
using gavel::rules::Engine;
using gavel::rules::Event;
using gavel::rules::ParseTime;
using gavel::rules::SimulatedClock;
using gavel::rules::TimeMs;
using gavel::rules::VectorSink;

TimeMs T(const std::string& s) {
  TimeMs t = 0;
  REQUIRE(ParseTime(s, t));
  return t;
}

std::shared_ptr<const gavel::dsl::Program> CompileProgram(const std::string& src) {
  auto r = gavel::dsl::CompileSources({{"t.gavel", src}});
  INFO(gavel::dsl::RenderText(r.sources, r.diags.list()));
  REQUIRE(r.program);
  return r.program;
}

// One line per decision, without evidence details that would make the expectation unreadable.
std::string Render(const std::vector<Decision>& ds, bool with_evidence = false) {
  std::string out;
  for (const auto& d : ds) {
    if (d.kind == "summary") continue;
    out += gavel::rules::FormatTime(d.event_time) + " " + d.kind + " " + d.rule;
    if (!d.entity_id.empty()) out += " " + d.entity_id;
    out += " " + d.outcome;
    if (!d.reason.empty()) out += " (" + d.reason + ")";
    if (with_evidence) out += " " + d.evidence.dump();
    out += "\n";
  }
  return out;
}

// Drives an engine over events given as JSON lines, advancing the clock to each event time.
struct Harness {
  std::shared_ptr<const gavel::dsl::Program> program;
  SimulatedClock clock;
  VectorSink sink;
  std::unique_ptr<Engine> engine;
  Harness(const std::string& src, TimeMs start, gavel::rules::Warehouse* warehouse = nullptr)
      : program(CompileProgram(src)), clock(start) {
    gavel::rules::EngineOptions options;
    options.run_schedules = warehouse != nullptr;
    engine = std::make_unique<Engine>(program, gavel::rules::EngineDeps{&clock, &sink, warehouse}, options);
    engine->Start(start);
  }
  gavel::Status Send(const std::string& json) {
    Event e;
    gavel::Status s = gavel::rules::ParseEvent(*program, json, e);
    if (!s.ok()) return s;
    clock.Set(e.time);
    s = engine->AdvanceTo(e.time);
    if (!s.ok()) return s;
    return engine->OnEvent(e);
  }
  void Advance(TimeMs t) {
    clock.Set(t);
    REQUIRE(engine->AdvanceTo(t).ok());
  }
};

constexpr const char* kLeads = R"(
event page_view { lead_id: text, page: text }
event email_open { lead_id: text, message: text }
entity lead keyed by lead_id { stage: text = "new", timezone: text = "UTC" }
score lead_score for lead {
  on page_view where page like "/pricing*" add 30
  on page_view add 1
  decay 20 every 30d without activity
  floor 0
}
rule mql_handoff {
  owner "revops@example.com"
  on lead_score crosses above 50
  then webhook "sales_queue" with { lead: lead.lead_id, score: lead_score }
       set lead.stage = "MQL"
  mode live
}
rule mql_cooled_off {
  owner "revops@example.com"
  on lead_score crosses below 30
  then set lead.stage = "nurture"
  mode live
}
)";

std::string View(const std::string& id, const std::string& lead, const std::string& page, const std::string& time) {
  return R"({"event":"page_view","id":")" + id + R"(","lead_id":")" + lead + R"(","page":")" + page +
         R"(","time":")" + time + R"("})";
}

}  // namespace

TEST_CASE("a lead crosses 50, then decays back below 30 with no further events", "[engine]") {
  Harness h(kLeads, T("2026-10-01T00:00:00Z"));
  REQUIRE(h.Send(View("e1", "L1", "/pricing", "2026-10-01T09:00:00Z")).ok());
  REQUIRE(h.Send(View("e2", "L1", "/pricing/enterprise", "2026-10-01T09:05:00Z")).ok());
  CHECK(h.engine->ScoreOf("lead", "L1", "lead_score") == 62);
  // 62 -> 42 after 30 days -> 22 after 60 days: the downward crossing happens at day 60
  // exactly, found by the decay timer, not by a later event.
  h.Advance(T("2026-12-15T00:00:00Z"));
  CHECK(Render(h.sink.decisions) ==
        "2026-10-01T09:05:00Z rule mql_handoff L1 fired (live)\n"
        "2026-11-30T09:05:00Z rule mql_cooled_off L1 fired (live)\n");
  CHECK(h.engine->ScoreOf("lead", "L1", "lead_score") == 22);  // the third step is due on day 90
  CHECK(h.engine->DescribeEntity("lead", "L1").find("\"stage\":\"nurture\"") != std::string::npos);
}

TEST_CASE("a crossing fires once per crossing, not on every event above the threshold", "[engine]") {
  Harness h(kLeads, T("2026-10-01T00:00:00Z"));
  REQUIRE(h.Send(View("e1", "L1", "/pricing", "2026-10-01T09:00:00Z")).ok());
  REQUIRE(h.Send(View("e2", "L1", "/pricing", "2026-10-01T09:01:00Z")).ok());
  REQUIRE(h.Send(View("e3", "L1", "/pricing", "2026-10-01T09:02:00Z")).ok());
  REQUIRE(h.Send(View("e4", "L1", "/blog", "2026-10-01T09:03:00Z")).ok());
  CHECK(Render(h.sink.decisions) == "2026-10-01T09:01:00Z rule mql_handoff L1 fired (live)\n");
  const auto& d = h.sink.decisions[0];
  CHECK(d.evidence["previous"] == 31.0);  // /pricing matches both rules: 30 + 1
  CHECK(d.evidence["value"] == 62.0);
  CHECK(d.actions[0]["payload"]["lead"] == "L1");
  CHECK(d.actions[0]["payload"]["score"] == 62.0);
}

TEST_CASE("a duplicate event id is refused and changes nothing", "[engine]") {
  Harness h(kLeads, T("2026-10-01T00:00:00Z"));
  REQUIRE(h.Send(View("e1", "L1", "/pricing", "2026-10-01T09:00:00Z")).ok());
  auto s = h.Send(View("e1", "L1", "/pricing", "2026-10-01T09:00:00Z"));
  CHECK(s.code() == gavel::Status::Code::kInvalidArgument);
  CHECK(h.engine->ScoreOf("lead", "L1", "lead_score") == 31);
  CHECK(h.engine->duplicates() == 1);
}

TEST_CASE("a late event is applied at the latest time seen for its lead and never rewinds decay", "[engine]") {
  Harness h(kLeads, T("2026-10-01T00:00:00Z"));
  REQUIRE(h.Send(View("e1", "L1", "/pricing", "2026-10-01T09:00:00Z")).ok());
  // An event stamped an hour earlier arrives afterwards: its points count, at 09:00.
  Event late;
  REQUIRE(gavel::rules::ParseEvent(*h.program, View("e0", "L1", "/pricing", "2026-10-01T08:00:00Z"), late).ok());
  REQUIRE(h.engine->OnEvent(late).ok());
  CHECK(h.engine->ScoreOf("lead", "L1", "lead_score") == 62);
  REQUIRE(h.sink.decisions.size() == 1);
  CHECK(h.sink.decisions[0].event_time == T("2026-10-01T09:00:00Z"));
}

TEST_CASE("malformed events are rejected with a reason", "[engine]") {
  auto program = CompileProgram(kLeads);
  Event e;
  auto reason = [&](const std::string& json) { return gavel::rules::ParseEvent(*program, json, e).message(); };
  CHECK(reason("{").rfind("not valid JSON (", 0) == 0);
  CHECK(reason(R"({"event":"page_view","id":"1","time":"2026-10-01T00:00:00Z","lead_id":"L","page":"/","page":"/x"})") ==
        "field `page` is given twice");
  CHECK(reason(R"({"event":"click","id":"1","time":"2026-10-01T00:00:00Z"})") == "unknown event type `click`");
  CHECK(reason(R"({"event":"page_view","time":"2026-10-01T00:00:00Z","lead_id":"L","page":"/"})") ==
        "missing `id` (a unique text per event)");
  CHECK(reason(R"({"event":"page_view","id":"1","time":"2026-02-30T00:00:00Z","lead_id":"L","page":"/"})") ==
        "`time` is not an RFC 3339 time: \"2026-02-30T00:00:00Z\"");
  CHECK(reason(R"({"event":"page_view","id":"1","time":"2026-10-01T00:00:00Z","lead_id":"L"})") ==
        "missing field `page`");
  CHECK(reason(R"({"event":"page_view","id":"1","time":"2026-10-01T00:00:00Z","lead_id":"L","page":3})") ==
        "field `page` must be text, got a number");
  CHECK(reason(R"({"event":"page_view","id":"1","time":"2026-10-01T00:00:00Z","lead_id":"L","page":"/","x":1})") ==
        "unknown field `x` for event `page_view`");
}

// ---------------------------------------------------------------- scheduled rules

namespace {

// A daily ad-set table in a real SQLite file.
struct Warehouse {
  std::string path;
  std::unique_ptr<gavel::rules::SqliteWarehouse> wh;
  // `key_type`: the SQL type of adset_id (INTEGER makes SQLite order keys as numbers).
  explicit Warehouse(const std::string& name, const std::string& key_type = "TEXT") {
    path = (std::filesystem::temp_directory_path() / ("gavel-engine-" + std::to_string(::getpid()) + "-" + name + ".db"))
               .string();
    std::filesystem::remove(path);
    Exec("CREATE TABLE adset_daily(adset_id " + key_type + ", day TEXT, channel TEXT, name TEXT, target_cpa REAL, spend REAL, "
         "conversions INTEGER)");
  }
  ~Warehouse() {
    wh.reset();
    std::filesystem::remove(path);
  }
  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
  }
  // Three days of one ad set: `spend` and `conversions` per day.
  void AdSet(const std::string& id, double spend_per_day, int conversions_total, double target) {
    for (int d = 0; d < 3; ++d) {
      int conv = conversions_total / 3 + (d < conversions_total % 3 ? 1 : 0);
      Exec("INSERT INTO adset_daily VALUES('" + id + "', '2026-10-0" + std::to_string(d + 1) + "', 'meta', 'Ad set " + id +
           "', " + std::to_string(target) + ", " + std::to_string(spend_per_day) + ", " + std::to_string(conv) + ")");
    }
  }
  gavel::rules::Warehouse* Open() {
    auto w = gavel::rules::SqliteWarehouse::Open(path);
    REQUIRE(w.ok());
    wh = std::move(w.value());
    return wh.get();
  }
};

const std::string kAdsetTable = R"(
table adset_daily from warehouse "adset_daily" {
  key adset_id
  time day
  dims channel: text, name: text, target_cpa: money(USD)
  facts spend: money(USD), conversions: count
  freshness 36h
}
)";

const std::string kCpa = kAdsetTable + R"(
rule pause_high_cpa {
  owner "paid@example.com"
  every 1d
  for each adset in adset_daily over last 3d where channel == "meta"
  let cpa = sum(spend) / sum(conversions)
  when cpa > 1.5 * adset.target_cpa with confidence 90%
  then pause adset
  mode live
}
)";

}  // namespace

TEST_CASE("the CPA rule decides with 0, 3 and 40 conversions by the exact Poisson bound", "[engine]") {
  Warehouse w("cpa");
  // Target 40 USD, threshold 60 USD.
  w.AdSet("zero_small", 40, 0, 40);    // 120 USD, 0 conv: could still be fine -> no action
  w.AdSet("zero_large", 150, 0, 40);   // 450 USD, 0 conv: lower bound 450/2.30 = 195 > 60 -> pause
  w.AdSet("three_high", 200, 3, 40);   // CPA 200, bound 600/6.68 = 89.8 > 60 -> pause
  w.AdSet("three_close", 80, 3, 40);   // CPA 80 > 60 but bound 240/6.68 = 35.9 -> below confidence
  w.AdSet("forty_ok", 500, 40, 40);    // CPA 37.5 -> nothing
  w.AdSet("forty_high", 1000, 40, 40); // CPA 75, bound 3000/48.3 = 62.1 > 60 -> pause
  Harness h(kCpa, T("2026-10-03T23:00:00Z"), w.Open());
  h.Advance(T("2026-10-04T01:00:00Z"));
  REQUIRE(h.sink.decisions.size() == 4);
  std::string tick = gavel::rules::FormatTime(h.sink.decisions[0].event_time);
  CHECK(tick.substr(0, 15) == "2026-10-04T00:0");  // daily, a few minutes past midnight
  CHECK(Render(h.sink.decisions) ==
        tick + " rule pause_high_cpa forty_high fired (live)\n" +
        tick + " rule pause_high_cpa three_close skipped (below_confidence)\n" +
        tick + " rule pause_high_cpa three_high fired (live)\n" +
        tick + " rule pause_high_cpa zero_large fired (live)\n");
  // The evidence carries the window, the sums and the bound.
  const auto& z = h.sink.decisions[3].evidence;
  CHECK(z["window"]["from"] == "2026-10-01");
  CHECK(z["window"]["to"] == "2026-10-04");
  CHECK(z["sum(spend)"] == 450.0);
  CHECK(z["confidence"]["count"] == 0.0);
  CHECK(z["confidence"]["bound"].get<double>() == Approx(450 / 2.302585093).epsilon(1e-9));
  CHECK(h.sink.decisions[0].actions[0]["action"] == "pause");
  CHECK(h.sink.decisions[0].actions[0]["target"] == "adset_daily:forty_high");
}

TEST_CASE("stale warehouse data makes the rule skip with stale_data instead of acting", "[engine]") {
  Warehouse w("stale");
  w.AdSet("zero_large", 150, 0, 40);  // data for 10-01..10-03 only
  Harness h(kCpa, T("2026-10-05T20:00:00Z"), w.Open());
  h.Advance(T("2026-10-06T01:00:00Z"));
  REQUIRE(h.sink.decisions.size() == 1);
  const auto& d = h.sink.decisions[0];
  CHECK(d.outcome == "skipped");
  CHECK(d.reason == "stale_data");
  CHECK(d.evidence["newest_row"] == "2026-10-03");
  CHECK(d.evidence["freshness_limit_s"] == 36 * 3600);
}

TEST_CASE("a warehouse error skips that rule with the reason and the other rules keep running", "[engine]") {
  Warehouse w("broken");
  w.AdSet("zero_large", 150, 0, 40);
  std::string src = kCpa + R"(
table missing_table from warehouse "no_such_table" {
  key id
  time day
  facts spend: money(USD)
}
rule reads_missing {
  owner "paid@example.com"
  every 1d
  for each x in missing_table over last 1d
  when sum(spend) > 0 USD
  then pause x
}
)";
  Harness h(src, T("2026-10-03T23:00:00Z"), w.Open());
  h.Advance(T("2026-10-04T01:00:00Z"));
  std::string log = Render(h.sink.decisions);
  CHECK(log.find("reads_missing skipped (error)") != std::string::npos);
  CHECK(log.find("pause_high_cpa zero_large fired (live)") != std::string::npos);
  const auto& health = h.engine->health();
  CHECK_FALSE(health.at("rule:reads_missing").ok);
  CHECK(health.at("rule:reads_missing").last_error.find("no_such_table") != std::string::npos);
  CHECK(health.at("rule:pause_high_cpa").ok);
}

namespace {

// A rule over a warehouse whose key column holds integers (Warehouse(name, "INTEGER")), so that
// SQLite orders the window rows numerically (2, 9, 10, 100) while the engine's keys are texts
// ("10" < "100" < "2" < "9").
const std::string kNumbered = kAdsetTable + R"(
rule spend_over_target {
  owner "paid@example.com"
  every 1d
  for each adset in adset_daily over last 3d where channel == "meta"
  let recent = spend over last 1d
  let total = sum(spend)
  when total > adset.target_cpa and recent > 0 USD
  then pause adset
  mode live
}
)";

// Ad set `id`: `days` daily rows ending 2026-10-03, each spending `spend`, target 100 USD.
void NumberedAdSet(Warehouse& w, int id, int days, double spend, const std::string& channel = "meta") {
  for (int d = 3; d > 3 - days; --d) {
    w.Exec("INSERT INTO adset_daily VALUES(" + std::to_string(id) + ", '2026-10-0" + std::to_string(d) + "', '" +
           channel + "', 'n', 100, " + std::to_string(spend) + ", 0)");
  }
}

}  // namespace

TEST_CASE("a scheduled rule pairs each key's rows across windows, whatever order the warehouse returns them in",
          "[engine]") {
  Warehouse w("numbered", "INTEGER");
  NumberedAdSet(w, 2, 3, 40);    // 120 over 3 days, 40 yesterday: fires
  NumberedAdSet(w, 9, 3, 20);    // 60: below target
  NumberedAdSet(w, 10, 1, 150);  // 150, all yesterday: fires
  NumberedAdSet(w, 100, 3, 50);  // 150 over 3 days...
  w.Exec("DELETE FROM adset_daily WHERE adset_id = 100 AND day = '2026-10-03'");  // ...but nothing yesterday: 100
  NumberedAdSet(w, 100, 1, 0);   // a zero row yesterday: recent = 0, does not fire
  NumberedAdSet(w, 55, 3, 90);   // 270 over 3 days...
  w.Exec("DELETE FROM adset_daily WHERE adset_id = 55 AND day = '2026-10-03'");  // ...none in the 1d window
  NumberedAdSet(w, 7, 3, 90, "google");  // outside the scope's `where`: in neither window
  gavel::rules::SimulatedClock clock(T("2026-10-03T23:00:00Z"));
  VectorSink sink;
  gavel::rules::EngineOptions options;
  options.log_every_evaluation = true;
  Engine engine(CompileProgram(kNumbered), {&clock, &sink, w.Open()}, options);
  engine.Start(clock.Now());
  clock.Set(T("2026-10-04T01:00:00Z"));
  REQUIRE(engine.AdvanceTo(clock.Now()).ok());
  std::string tick = sink.decisions.empty() ? "" : gavel::rules::FormatTime(sink.decisions[0].event_time);
  // Every key of either window, in text order, each with its own numbers.
  CHECK(Render(sink.decisions) == tick + " rule spend_over_target 10 fired (live)\n" +
                                      tick + " rule spend_over_target 100 not_fired (condition_false)\n" +
                                      tick + " rule spend_over_target 2 fired (live)\n" +
                                      tick + " rule spend_over_target 55 not_fired (condition_false)\n" +
                                      tick + " rule spend_over_target 9 not_fired (condition_false)\n");
  REQUIRE(sink.decisions.size() >= 5);
  auto evidence = [&](std::size_t i) { return sink.decisions[i].evidence; };
  CHECK(evidence(0)["total"] == 150.0);
  CHECK(evidence(0)["recent"] == 150.0);
  CHECK(evidence(1)["total"] == 100.0);
  CHECK(evidence(1)["recent"] == 0.0);
  CHECK(evidence(2)["total"] == 120.0);
  CHECK(evidence(2)["recent"] == 40.0);
  CHECK(evidence(2)["target_cpa"] == 100.0);
  CHECK(evidence(2)["window"]["from"] == "2026-10-01");  // the scope's window, not the 1d one
  CHECK(evidence(2)["sum(spend) over last 1d"] == 40.0);
  // Key 55 has no row in the 1d window: a sum over no rows is 0.
  CHECK(evidence(3)["total"] == 180.0);
  CHECK(evidence(3)["recent"] == 0.0);
  CHECK(evidence(4)["total"] == 60.0);
}

TEST_CASE("a scheduled rule over more keys than one evaluation block decides each key as it would alone",
          "[engine]") {
  // 10,000 ad sets (the engine evaluates 4,096 at a time): ad set i spends i % 97 USD a day over
  // 3 days against a target of 100, so it fires when 3 * (i % 97) > 100 and it spent yesterday.
  Warehouse w("blocks", "INTEGER");
  std::string sql = "BEGIN;";
  std::set<std::string> want;
  for (int i = 0; i < 10000; ++i) {
    for (int d = 1; d <= 3; ++d) {
      sql += "INSERT INTO adset_daily VALUES(" + std::to_string(i) + ", '2026-10-0" + std::to_string(d) + "', 'meta', 'n', 100, " +
             std::to_string(i % 97) + ", 0);";
    }
    if (3 * (i % 97) > 100) want.insert(std::to_string(i));
  }
  w.Exec(sql + "COMMIT;");
  Harness h(kNumbered, T("2026-10-03T23:00:00Z"), w.Open());
  h.Advance(T("2026-10-04T01:00:00Z"));
  REQUIRE(h.engine->FlushSummary().ok());
  std::set<std::string> fired;
  std::size_t wrong_evidence = 0;
  long not_fired = -1;
  for (const auto& d : h.sink.decisions) {
    if (d.kind == "summary") not_fired = d.evidence["not_fired"].value("rule:spend_over_target", 0L);
    if (d.kind != "rule") continue;
    CHECK(d.outcome == "fired");
    fired.insert(d.entity_id);
    const double per_day = std::stoi(d.entity_id) % 97;
    if (d.evidence["total"] != 3 * per_day || d.evidence["recent"] != per_day) ++wrong_evidence;
  }
  CHECK(fired.size() == want.size());
  CHECK(fired == want);
  CHECK(wrong_evidence == 0);
  CHECK(not_fired == 10000 - static_cast<long>(want.size()));  // the rest, counted
}

TEST_CASE("a confidence rule over more keys than one evaluation block decides and counts each key as alone",
          "[engine]") {
  // 6,000 ad sets, 3 days each: spend and conversions from a small hash, target 20-59 USD.
  // What each should get follows from the rule's definition: fired when the Poisson bound
  // passes, below_confidence when only the plain CPA does, otherwise counted as not fired.
  Warehouse w("confidence_blocks");
  std::string sql = "BEGIN;";
  std::set<std::string> want_fired, want_below;
  long want_not_fired = 0;
  for (int i = 0; i < 6000; ++i) {
    const std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u;
    const double spend = 10 + (x >> 8) % 200;  // per day
    const int conversions = static_cast<int>((x >> 20) % 12);
    const double target = 20 + (x >> 4) % 40;
    for (int d = 1; d <= 3; ++d) {
      const int conv = conversions / 3 + (d - 1 < conversions % 3 ? 1 : 0);
      sql += "INSERT INTO adset_daily VALUES('a" + std::to_string(i) + "', '2026-10-0" + std::to_string(d) +
             "', 'meta', 'n', " + std::to_string(target) + ", " + std::to_string(spend) + ", " + std::to_string(conv) + ");";
    }
    const gavel::rules::CostPerCountResult res = gavel::rules::TestCostPerCount({3 * spend, double(conversions), 1.5 * target, 0.9, true});
    const bool plain = conversions > 0 && 3 * spend / conversions > 1.5 * target;
    if (res.pass) want_fired.insert("a" + std::to_string(i));
    else if (plain) want_below.insert("a" + std::to_string(i));
    else ++want_not_fired;
  }
  w.Exec(sql + "COMMIT;");
  Harness h(kCpa, T("2026-10-03T23:00:00Z"), w.Open());
  h.Advance(T("2026-10-04T01:00:00Z"));
  REQUIRE(h.engine->FlushSummary().ok());
  std::set<std::string> fired, below;
  long not_fired = -1;
  for (const auto& d : h.sink.decisions) {
    if (d.kind == "summary") {
      not_fired = d.evidence["not_fired"].value("rule:pause_high_cpa", 0L);
    } else if (d.outcome == "fired") {
      fired.insert(d.entity_id);
    } else if (d.reason == "below_confidence") {
      below.insert(d.entity_id);
    }
  }
  CHECK(fired.size() > 100);
  CHECK(below.size() > 100);
  CHECK(fired == want_fired);
  CHECK(below == want_below);
  CHECK(not_fired == want_not_fired);
}

// ---------------------------------------------------------------- journeys

namespace {

constexpr const char* kJourney = R"(
event guide_download { lead_id: text, guide: text }
event email_open { lead_id: text, message: text }
event lead_profile updates lead { lead_id: text, timezone: text }
entity lead keyed by lead_id { stage: text = "new", timezone: text = "UTC" }
journey onboarding for lead {
  owner "lifecycle@example.com"
  enter on guide_download
  exit when lead.stage == "MQL"
  cap 3 messages per 7d
  quiet hours 21:00-08:00 in lead.timezone
  step welcome: email "welcome_guide"
  wait up to 48h for email_open
    on email_open: step case_study: email "case_study"
    on timeout:    step ugc: message "ugc_video" via whatsapp
  mode live
}
)";

std::string Ev(const std::string& type, const std::string& id, const std::string& lead, const std::string& time,
               const std::string& extra) {
  return R"({"event":")" + type + R"(","id":")" + id + R"(","lead_id":")" + lead + R"(","time":")" + time + R"(",)" +
         extra + "}";
}

}  // namespace

TEST_CASE("a journey takes the event branch when the email is opened in time", "[engine][journey]") {
  Harness h(kJourney, T("2026-10-01T00:00:00Z"));
  REQUIRE(h.Send(Ev("guide_download", "g1", "L1", "2026-10-01T10:00:00Z", R"("guide":"x")")).ok());
  REQUIRE(h.Send(Ev("email_open", "o1", "L1", "2026-10-02T09:00:00Z", R"("message":"welcome_guide")")).ok());
  h.Advance(T("2026-10-10T00:00:00Z"));
  CHECK(Render(h.sink.decisions) ==
        "2026-10-01T10:00:00Z journey onboarding L1 entered\n"
        "2026-10-01T10:00:00Z journey onboarding L1 step (welcome)\n"
        "2026-10-01T10:00:00Z journey onboarding L1 waiting (for email_open until 2026-10-03T10:00:00Z)\n"
        "2026-10-02T09:00:00Z journey onboarding L1 branch (on email_open)\n"
        "2026-10-02T09:00:00Z journey onboarding L1 step (case_study)\n"
        "2026-10-02T09:00:00Z journey onboarding L1 completed\n");
}

TEST_CASE("a journey times out after 48 hours and waits out quiet hours in the lead's zone", "[engine][journey]") {
  Harness h(kJourney, T("2026-10-01T00:00:00Z"));
  REQUIRE(h.Send(Ev("lead_profile", "p1", "L1", "2026-10-01T09:00:00Z", R"("timezone":"America/New_York")")).ok());
  // 23:30 UTC = 19:30 in New York: not quiet. The timeout lands at 23:30 UTC two days later,
  // 19:30 local, also not quiet.
  REQUIRE(h.Send(Ev("guide_download", "g1", "L1", "2026-10-01T23:30:00Z", R"("guide":"x")")).ok());
  h.Advance(T("2026-10-10T00:00:00Z"));
  CHECK(Render(h.sink.decisions) ==
        "2026-10-01T23:30:00Z journey onboarding L1 entered\n"
        "2026-10-01T23:30:00Z journey onboarding L1 step (welcome)\n"
        "2026-10-01T23:30:00Z journey onboarding L1 waiting (for email_open until 2026-10-03T23:30:00Z)\n"
        "2026-10-03T23:30:00Z journey onboarding L1 timeout\n"
        "2026-10-03T23:30:00Z journey onboarding L1 step (ugc)\n"
        "2026-10-03T23:30:00Z journey onboarding L1 completed\n");
  Harness late(kJourney, T("2026-10-01T00:00:00Z"));
  REQUIRE(late.Send(Ev("lead_profile", "p1", "L2", "2026-10-01T09:00:00Z", R"("timezone":"Europe/Berlin")")).ok());
  // 21:30 UTC = 23:30 in Berlin (CEST): quiet until 08:00 Berlin = 06:00 UTC.
  REQUIRE(late.Send(Ev("guide_download", "g2", "L2", "2026-10-01T21:30:00Z", R"("guide":"x")")).ok());
  late.Advance(T("2026-10-02T07:00:00Z"));
  CHECK(Render(late.sink.decisions) ==
        "2026-10-01T21:30:00Z journey onboarding L2 entered\n"
        "2026-10-01T21:30:00Z journey onboarding L2 deferred (quiet hours in Europe/Berlin until 2026-10-02T06:00:00Z)\n"
        "2026-10-02T06:00:00Z journey onboarding L2 step (welcome)\n"
        "2026-10-02T06:00:00Z journey onboarding L2 waiting (for email_open until 2026-10-04T06:00:00Z)\n");
}

TEST_CASE("a journey exits as soon as its exit condition holds at a step", "[engine][journey]") {
  std::string src = std::string(kJourney) + R"(
event page_view { lead_id: text, page: text }
rule make_mql {
  owner "revops@example.com"
  on page_view where page == "/demo"
  then set lead.stage = "MQL"
  mode live
}
)";
  Harness h(src, T("2026-10-01T00:00:00Z"));
  REQUIRE(h.Send(Ev("guide_download", "g1", "L1", "2026-10-01T10:00:00Z", R"("guide":"x")")).ok());
  REQUIRE(h.Send(Ev("page_view", "v1", "L1", "2026-10-01T11:00:00Z", R"("page":"/demo")")).ok());
  h.Advance(T("2026-10-05T00:00:00Z"));
  CHECK(Render(h.sink.decisions) ==
        "2026-10-01T10:00:00Z journey onboarding L1 entered\n"
        "2026-10-01T10:00:00Z journey onboarding L1 step (welcome)\n"
        "2026-10-01T10:00:00Z journey onboarding L1 waiting (for email_open until 2026-10-03T10:00:00Z)\n"
        "2026-10-01T11:00:00Z rule make_mql L1 fired (live)\n"
        "2026-10-03T10:00:00Z journey onboarding L1 timeout\n"
        "2026-10-03T10:00:00Z journey onboarding L1 exited (exit condition)\n");
}

// ---------------------------------------------------------------- alerts

namespace {

// An hourly campaign table with 28 days of steady spend (with an hour-of-day shape) and
// a spike in the hours given.
struct HourlyWarehouse : Warehouse {
  explicit HourlyWarehouse(const std::string& name) : Warehouse(name) {
    Exec("CREATE TABLE campaign_hourly(campaign_id TEXT, hour TEXT, channel TEXT, spend REAL)");
  }
  void Fill(const std::string& campaign, const std::set<int>& spike_hours_of_last_day) {
    std::string sql = "BEGIN;";
    TimeMs start = T("2026-10-01T00:00:00Z");
    for (int h = 0; h < 30 * 24; ++h) {
      TimeMs t = start + h * gavel::rules::kHour;
      std::string hour = gavel::rules::FormatTime(t).substr(0, 10) + " " + gavel::rules::FormatTime(t).substr(11, 8);
      double spend = 100 + 50 * ((h % 24) >= 9 && (h % 24) <= 18) + ((h * 7919) % 11);  // steady, small wobble
      if (h >= 29 * 24 && spike_hours_of_last_day.count(h - 29 * 24)) spend *= 5;
      sql += "INSERT INTO campaign_hourly VALUES('" + campaign + "','" + hour + "','meta'," + std::to_string(spend) + ");";
    }
    Exec(sql + "COMMIT;");
  }
};

constexpr const char* kAlert = R"(
table campaign_hourly from warehouse "campaign_hourly" {
  key campaign_id
  time hour
  dims channel: text
  facts spend: money(USD)
}
alert spend_spike {
  owner "oncall@example.com"
  every 1h
  for each campaign in campaign_hourly
  when spend over last 1h is above baseline(spend, 28d, same hour of week) by 3 sigma
  for 1h
  severity page
  notify slack "#oncall" runbook "https://wiki/spend"
  repeat every 2h while firing
  resolve notify
  mode live
}
)";

}  // namespace

TEST_CASE("an alert goes pending, fires, repeats and resolves, with one message per evaluation", "[engine][alert]") {
  HourlyWarehouse w("alert");
  // Spike on the last day (2026-10-30) from 10:00 to 14:59 UTC, for two campaigns.
  w.Fill("c1", {10, 11, 12, 13, 14});
  w.Fill("c2", {10, 11, 12, 13, 14});
  w.Fill("c3", {});
  Harness h(kAlert, T("2026-10-30T09:30:00Z"), w.Open());
  h.Advance(T("2026-10-30T17:30:00Z"));
  std::string log = Render(h.sink.decisions);
  // Each tick at hh:00 + offset looks at the hour that just ended.
  std::string expected;
  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) lines.push_back(line.substr(21));  // drop the time
  CHECK(lines == std::vector<std::string>{
                     "alert spend_spike c1 alert (pending)",     // 11:0x sees 10:00-11:00
                     "alert spend_spike c2 alert (pending)",
                     "alert spend_spike c1 alert (firing)",      // 12:0x: held for 1h
                     "alert spend_spike c2 alert (firing)",
                     "alert spend_spike * notify (firing)",      // one message for both
                     "alert spend_spike * notify (repeat)",      // 14:0x: 2h later, still firing
                     "alert spend_spike c1 alert (resolved)",    // 16:0x sees 15:00-16:00: normal
                     "alert spend_spike c2 alert (resolved)",
                     "alert spend_spike * notify (resolved)",
                 });
  const Decision* notify = nullptr;
  for (const auto& d : h.sink.decisions) {
    if (d.outcome == "notify" && d.reason == "firing") notify = &d;
  }
  REQUIRE(notify);
  CHECK(notify->evidence["entities"] == nlohmann::ordered_json::array({"c1", "c2"}));
  // The message carries each entity with the numbers that made it fire.
  const auto& entities = notify->actions[0]["entities"];
  REQUIRE(entities.size() == 2);
  CHECK(entities[0]["id"] == "c1");
  CHECK(entities[1]["id"] == "c2");
  CHECK(entities[0].contains("baseline"));
  CHECK_FALSE(entities[0].contains("window"));
  INFO(entities.dump());
  CHECK(entities[0].size() >= 3);
  CHECK(notify->actions[0]["severity"] == "page");
  CHECK(notify->actions[0]["runbook"] == "https://wiki/spend");
}

// ---------------------------------------------------------------- restart

#include "rules/store/state_store.hpp"

namespace {

struct Persistent {
  std::string path;
  explicit Persistent(const std::string& name)
      : path((std::filesystem::temp_directory_path() / ("gavel-state-" + std::to_string(::getpid()) + "-" + name + ".db"))
                 .string()) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  ~Persistent() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

// One engine process: opens the database, restores, runs `inputs`, checkpoints and commits.
std::vector<Decision> RunProcess(const std::string& db_path, const std::string& src, TimeMs start,
                                 const std::vector<std::string>& events, TimeMs advance_to, bool fresh) {
  auto db = gavel::rules::StateDatabase::Open(db_path);
  REQUIRE(db.ok());
  auto program = CompileProgram(src);
  SimulatedClock clock(start);
  // Collect what this process decides, and log it.
  struct Tee : gavel::rules::DecisionSink {
    gavel::rules::DecisionLog* log;
    std::vector<Decision> made;
    bool Append(Decision& d) override {
      if (!log->Append(d)) return false;
      made.push_back(d);
      return true;
    }
  } sink;
  sink.log = &db.value()->log();
  Engine engine(program, {&clock, &sink, nullptr}, {});
  if (fresh) engine.Start(start);
  else REQUIRE(engine.Restore(db.value()->state()).ok());
  REQUIRE(db.value()->Begin().ok());
  for (const auto& json : events) {
    Event e;
    REQUIRE(gavel::rules::ParseEvent(*program, json, e).ok());
    clock.Set(e.time);
    REQUIRE(engine.AdvanceTo(e.time).ok());
    auto s = engine.OnEvent(e);
    REQUIRE((s.ok() || s.code() == gavel::Status::Code::kInvalidArgument));
  }
  clock.Set(advance_to);
  REQUIRE(engine.AdvanceTo(advance_to).ok());
  REQUIRE(engine.Checkpoint(db.value()->state()).ok());
  REQUIRE(db.value()->Commit().ok());
  return sink.made;
}

}  // namespace

TEST_CASE("a journey waiting across a restart times out at the right time, and nothing is decided twice",
          "[engine][restart]") {
  Persistent p("journey");
  auto first = RunProcess(p.path, kJourney, T("2026-10-01T00:00:00Z"),
                          {Ev("guide_download", "g1", "L1", "2026-10-01T10:00:00Z", R"("guide":"x")"),
                           Ev("guide_download", "g2", "L2", "2026-10-01T11:00:00Z", R"("guide":"x")")},
                          T("2026-10-02T00:00:00Z"), true);
  CHECK(Render(first) ==
        "2026-10-01T10:00:00Z journey onboarding L1 entered\n"
        "2026-10-01T10:00:00Z journey onboarding L1 step (welcome)\n"
        "2026-10-01T10:00:00Z journey onboarding L1 waiting (for email_open until 2026-10-03T10:00:00Z)\n"
        "2026-10-01T11:00:00Z journey onboarding L2 entered\n"
        "2026-10-01T11:00:00Z journey onboarding L2 step (welcome)\n"
        "2026-10-01T11:00:00Z journey onboarding L2 waiting (for email_open until 2026-10-03T11:00:00Z)\n");
  // The process stops and a new one starts from the database: L2 opens the email (the event
  // branch), L1 does not (the timeout), and a replayed duplicate changes nothing.
  auto second = RunProcess(p.path, kJourney, T("2026-10-02T00:00:00Z"),
                           {Ev("guide_download", "g1", "L1", "2026-10-01T10:00:00Z", R"("guide":"x")"),
                            Ev("email_open", "o2", "L2", "2026-10-02T12:00:00Z", R"("message":"welcome_guide")")},
                           T("2026-10-05T00:00:00Z"), false);
  CHECK(Render(second) ==
        "2026-10-02T12:00:00Z journey onboarding L2 branch (on email_open)\n"
        "2026-10-02T12:00:00Z journey onboarding L2 step (case_study)\n"
        "2026-10-02T12:00:00Z journey onboarding L2 completed\n"
        "2026-10-03T10:00:00Z journey onboarding L1 timeout\n"
        "2026-10-03T10:00:00Z journey onboarding L1 step (ugc)\n"
        "2026-10-03T10:00:00Z journey onboarding L1 completed\n");
  // The log is one chain across both processes.
  auto db = gavel::rules::StateDatabase::Open(p.path);
  REQUIRE(db.ok());
  auto report = db.value()->log().Verify();
  REQUIRE(report.ok());
  CHECK(report.value().ok());
  CHECK(report.value().count == 12);
}

TEST_CASE("a score keeps its value, its once marks and its decay timer across a restart", "[engine][restart]") {
  Persistent p("score");
  std::string src = std::string(kLeads);
  RunProcess(p.path, src, T("2026-10-01T00:00:00Z"),
             {View("e1", "L1", "/pricing", "2026-10-01T09:00:00Z"), View("e2", "L1", "/pricing", "2026-10-01T09:05:00Z")},
             T("2026-10-02T00:00:00Z"), true);
  auto second = RunProcess(p.path, src, T("2026-10-02T00:00:00Z"), {}, T("2026-12-15T00:00:00Z"), false);
  CHECK(Render(second) == "2026-11-30T09:05:00Z rule mql_cooled_off L1 fired (live)\n");
}

TEST_CASE("a journey whose rule file changed while instances wait resumes under the new version, logged",
          "[engine][restart]") {
  Persistent p("migrate");
  RunProcess(p.path, kJourney, T("2026-10-01T00:00:00Z"),
             {Ev("guide_download", "g1", "L1", "2026-10-01T10:00:00Z", R"("guide":"x")")}, T("2026-10-02T00:00:00Z"),
             true);
  std::string changed = kJourney;
  changed.replace(changed.find("\"ugc_video\""), 11, "\"ugc_video_v2\"");
  auto second = RunProcess(p.path, changed, T("2026-10-02T00:00:00Z"), {}, T("2026-10-05T00:00:00Z"), false);
  REQUIRE(second.size() >= 2);
  CHECK(second[0].outcome == "migrated");
  CHECK(second[0].reason == "rule changed: resumes at step 1");
  CHECK(second[0].evidence["old_version"] != second[0].evidence["new_version"]);
  CHECK(Render(second).find("journey onboarding L1 step (ugc)") != std::string::npos);
  bool v2 = false;
  for (const auto& d : second) v2 |= d.actions.dump().find("ugc_video_v2") != std::string::npos;
  CHECK(v2);
}

// ---------------------------------------------------------------- schedules in the daemon's policy

namespace {

std::string StaleTable(const std::string& schedule) {
  return R"(
table adset_daily from warehouse "adset_daily" {
  key adset_id
  time day
  dims channel: text, name: text, target_cpa: money(USD)
  facts spend: money(USD), conversions: count
  freshness 36h
}
rule pause_high_cpa {
  owner "paid@example.com"
  )" + schedule + R"(
  for each adset in adset_daily over last 3d
  when sum(spend) > 100 USD
  then pause adset
  mode live
}
)";
}

}  // namespace

TEST_CASE("a daily 06:00 New York rule ticks at 06:00 local time on both sides of the November DST change",
          "[engine]") {
  Warehouse w("dst");
  w.AdSet("a", 150, 0, 40);  // rows end 2026-10-03: every tick below is stale, so each logs a skip
  Harness h(StaleTable(R"(every day at 06:00 in "America/New_York")"), T("2026-10-30T12:00:00Z"), w.Open());
  h.Advance(T("2026-11-03T12:00:00Z"));
  std::vector<std::string> ticks;
  for (const auto& d : h.sink.decisions) ticks.push_back(gavel::rules::FormatTime(d.event_time).substr(0, 16));
  // 06:00 EDT is 10:00Z until 2026-11-01 02:00 local; 06:00 EST is 11:00Z from then on. The
  // per-rule offset adds under five minutes.
  REQUIRE(ticks.size() == 4);
  CHECK(ticks[0].substr(0, 15) == "2026-10-31T10:0");
  CHECK(ticks[1].substr(0, 15) == "2026-11-01T11:0");
  CHECK(ticks[2].substr(0, 15) == "2026-11-02T11:0");
  CHECK(ticks[3].substr(0, 15) == "2026-11-03T11:0");
  for (const auto& d : h.sink.decisions) CHECK(d.reason == "stale_data");
}

TEST_CASE("after downtime the daemon's policy runs a missed hourly tick once and logs that it was late",
          "[engine]") {
  Warehouse w("late");
  w.AdSet("a", 150, 0, 40);
  auto program = CompileProgram(StaleTable("every 1h"));
  SimulatedClock clock(T("2026-10-04T00:30:00Z"));
  VectorSink sink;
  gavel::rules::EngineOptions options;
  options.coalesce_missed_ticks = true;
  Engine engine(program, {&clock, &sink, w.Open()}, options);
  engine.Start(T("2026-10-04T00:30:00Z"));
  const TimeMs first = engine.NextWakeup();
  REQUIRE(first > T("2026-10-04T01:00:00Z") - 1);
  REQUIRE(first < T("2026-10-04T01:06:00Z"));
  // Down from 00:30 to 10:20: ten ticks were due (01:0x ... 10:0x).
  clock.Set(T("2026-10-04T10:20:00Z"));
  REQUIRE(engine.AdvanceTo(T("2026-10-04T10:20:00Z")).ok());
  REQUIRE(sink.decisions.size() == 2);
  const Decision& late = sink.decisions[0];
  CHECK(late.kind == "schedule");
  CHECK(late.outcome == "late");
  CHECK(late.reason == "missed_ticks");
  CHECK(late.evidence["skipped_ticks"] == 9);
  CHECK(late.evidence["first_due"] == gavel::rules::FormatTime(first));
  CHECK(late.rule == "pause_high_cpa");
  CHECK(late.version == program->rules[0].version);
  // The one tick that ran is the latest one due, at its own scheduled time.
  const Decision& ran = sink.decisions[1];
  CHECK(ran.kind == "rule");
  CHECK(ran.rule == "pause_high_cpa");
  CHECK(ran.event_time == first + 9 * 3600 * 1000);
  CHECK(late.evidence["runs_as"] == gavel::rules::FormatTime(ran.event_time));
  // Back on time: the next tick runs alone, with no late record.
  CHECK(engine.NextWakeup() == first + 10 * 3600 * 1000);
  clock.Set(first + 10 * 3600 * 1000 + 200);
  REQUIRE(engine.AdvanceTo(first + 10 * 3600 * 1000 + 200).ok());
  REQUIRE(sink.decisions.size() == 3);
  CHECK(sink.decisions[2].kind == "rule");
  CHECK(sink.decisions[2].event_time == first + 10 * 3600 * 1000);
}

TEST_CASE("a tick that runs more than the tolerance after its time is logged as late", "[engine]") {
  Warehouse w("late1");
  w.AdSet("a", 150, 0, 40);
  auto program = CompileProgram(StaleTable("every 1h"));
  SimulatedClock clock(T("2026-10-04T00:30:00Z"));
  VectorSink sink;
  gavel::rules::EngineOptions options;
  options.coalesce_missed_ticks = true;
  Engine engine(program, {&clock, &sink, w.Open()}, options);
  engine.Start(T("2026-10-04T00:30:00Z"));
  const TimeMs due = engine.NextWakeup();
  clock.Set(due + 5 * 60 * 1000);
  REQUIRE(engine.AdvanceTo(due + 5 * 60 * 1000).ok());
  REQUIRE(sink.decisions.size() == 2);
  CHECK(sink.decisions[0].reason == "late_tick");
  CHECK(sink.decisions[0].evidence["skipped_ticks"] == 0);
  CHECK(sink.decisions[0].evidence["late_by_ms"] == 5 * 60 * 1000);
  CHECK(sink.decisions[1].event_time == due);
}

TEST_CASE("RunSchedulesNow runs every scheduled rule once at the given time without moving schedules",
          "[engine]") {
  Warehouse w("now");
  w.AdSet("zero_large", 150, 0, 40);
  Harness h(kCpa, T("2026-10-03T23:00:00Z"), w.Open());
  const TimeMs next = h.engine->NextWakeup();
  h.clock.Set(T("2026-10-03T23:30:00Z"));
  REQUIRE(h.engine->RunSchedulesNow(T("2026-10-03T23:30:00Z")).ok());
  REQUIRE(h.sink.decisions.size() == 1);
  CHECK(h.sink.decisions[0].entity_id == "zero_large");
  CHECK(h.sink.decisions[0].outcome == "fired");
  CHECK(h.sink.decisions[0].trigger == "tick:2026-10-03T23:30:00Z");
  CHECK(h.engine->NextWakeup() == next);
}

TEST_CASE("state rows in the earlier object form (and one row per event id) are still restored", "[engine][restart]") {
  Persistent p("oldrows");
  {
    auto db = gavel::rules::StateDatabase::Open(p.path);
    REQUIRE(db.ok());
    auto& st = db.value()->state();
    REQUIRE(st.Put("entity", "lead", "L9",
                   nlohmann::json::parse(R"({"last_event":1790000000000,"fields":[{"t":"VP"},{"t":"Europe/Berlin"}],)"
                                         R"("scores":[{"value":44.0,"as_of":1790000000000,)"
                                         R"("last_activity":1790000000000,"steps":0,"once":0}]})"))
                .ok());
    REQUIRE(st.Put("event", "", "old-e1", nullptr).ok());
    REQUIRE(st.Put("meta", "engine", "state",
                   nlohmann::json::parse(R"({"now":1790000000000,"duplicates":0,"next_tick":{},"fire_times":{},)"
                                         R"("not_fired":{},"last_fired":{}})"))
                .ok());
  }
  auto db = gavel::rules::StateDatabase::Open(p.path);
  REQUIRE(db.ok());
  constexpr const char* kSrc = R"(
event page_view { lead_id: text, page: text }
entity lead keyed by lead_id { title: text = "", timezone: text = "UTC" }
score lead_score for lead {
  on page_view add 10
}
)";
  auto program = CompileProgram(kSrc);
  SimulatedClock clock(1790000000000);
  VectorSink sink;
  Engine engine(program, {&clock, &sink, nullptr}, {});
  REQUIRE(engine.Restore(db.value()->state()).ok());
  CHECK(engine.ScoreOf("lead", "L9", "lead_score") == 44);
  CHECK(engine.DescribeEntity("lead", "L9") ==
        R"({"fields":{"title":"VP","timezone":"Europe/Berlin"},"scores":{"lead_score":44.0}})");
  Event dup;
  REQUIRE(gavel::rules::ParseEvent(*program, View("old-e1", "L9", "/", "2026-09-22T10:00:00Z"), dup).ok());
  CHECK(engine.OnEvent(dup).code() == gavel::Status::Code::kInvalidArgument);  // seen before the restart
}

TEST_CASE("event ids are checkpointed as their hashes; ids in both row forms are refused after a restart",
          "[engine][restart]") {
  Persistent p("hashedids");
  constexpr const char* kSrc = R"(
event page_view { lead_id: text, page: text }
entity lead keyed by lead_id { title: text = "" }
score lead_score for lead {
  on page_view add 10
}
)";
  auto program = CompileProgram(kSrc);
  // Ids that need JSON escaping or are long go into the hashed row like any other.
  const std::vector<std::string> first_ids = {"e1", "e2", "q\\\"uote", "0f8fad5b-d9cb-469f-a165-70867728950e"};
  {
    auto db = gavel::rules::StateDatabase::Open(p.path);
    REQUIRE(db.ok());
    SimulatedClock clock(T("2026-10-01T00:00:00Z"));
    VectorSink sink;
    Engine engine(program, {&clock, &sink, nullptr}, {});
    engine.Start(T("2026-10-01T00:00:00Z"));
    REQUIRE(db.value()->Begin().ok());
    for (const auto& id : first_ids) {
      Event e;
      REQUIRE(gavel::rules::ParseEvent(*program, View(id, "L1", "/", "2026-10-01T10:00:00Z"), e).ok());
      REQUIRE(engine.OnEvent(e).ok());
    }
    REQUIRE(engine.Checkpoint(db.value()->state()).ok());
    // A row in the earlier form (the ids themselves), as a state written before would hold.
    REQUIRE(db.value()->state().Put("events", "", "00000000000000000000", nlohmann::json::array({"old-1", "old-2"})).ok());
    REQUIRE(db.value()->Commit().ok());
    // The new row: one string, the prefix and 22 characters per id.
    int hashed_rows = 0;
    REQUIRE(db.value()->state().ForEach([&](const std::string& kind, const std::string&, const std::string& key,
                                            const nlohmann::json& j) {
      if (kind == "events" && key != "00000000000000000000") {
        ++hashed_rows;
        REQUIRE(j.is_string());
        const std::string text = j.get<std::string>();
        CHECK(text.rfind("xxh128:", 0) == 0);
        CHECK(text.size() == 7 + 22 * first_ids.size());
      }
      return gavel::Status::Ok();
    }).ok());
    CHECK(hashed_rows == 1);
  }
  auto db = gavel::rules::StateDatabase::Open(p.path);
  REQUIRE(db.ok());
  SimulatedClock clock(T("2026-10-02T00:00:00Z"));
  VectorSink sink;
  Engine engine(program, {&clock, &sink, nullptr}, {});
  REQUIRE(engine.Restore(db.value()->state()).ok());
  std::vector<std::string> again = first_ids;
  again.push_back("old-1");
  again.push_back("old-2");
  for (const auto& id : again) {
    Event e;
    REQUIRE(gavel::rules::ParseEvent(*program, View(id, "L1", "/", "2026-10-02T10:00:00Z"), e).ok());
    INFO(id);
    CHECK(engine.OnEvent(e).code() == gavel::Status::Code::kInvalidArgument);
  }
  CHECK(engine.ScoreOf("lead", "L1", "lead_score") == 40);
  // An id never seen is applied.
  Event fresh;
  REQUIRE(gavel::rules::ParseEvent(*program, View("e3", "L1", "/", "2026-10-02T10:00:00Z"), fresh).ok());
  CHECK(engine.OnEvent(fresh).ok());
  CHECK(engine.ScoreOf("lead", "L1", "lead_score") == 50);
}

TEST_CASE("a damaged hashed event-id row stops the restore with the row named", "[engine][restart]") {
  Persistent p("badids");
  auto program = CompileProgram(R"(
event page_view { lead_id: text, page: text }
entity lead keyed by lead_id { title: text = "" }
)");
  for (const std::string bad : {"xxh128:AAAA", "xxh128:AAAAAAAAAAAAAAAAAAAAA!", "xxh128:AAAAAAAAAAAAAAAAAAAAAB", "md5:AAA"}) {
    INFO(bad);
    {
      auto db = gavel::rules::StateDatabase::Open(p.path);
      REQUIRE(db.ok());
      REQUIRE(db.value()->state().Put("events", "", "00000000000000000001", bad).ok());
    }
    auto db = gavel::rules::StateDatabase::Open(p.path);
    REQUIRE(db.ok());
    SimulatedClock clock(T("2026-10-02T00:00:00Z"));
    VectorSink sink;
    Engine engine(program, {&clock, &sink, nullptr}, {});
    const gavel::Status s = engine.Restore(db.value()->state());
    CHECK(s.code() == gavel::Status::Code::kInternal);
    CHECK(s.message().find("events//00000000000000000001 is damaged") != std::string::npos);
  }
}
