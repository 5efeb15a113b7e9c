// The outbox end to end: decisions gated and logged, actions performed by the real executors
// against real local receivers (a recording HTTP server, the reference ad platform), with
// injected failures: exactly once under 500s, timeouts and a crash between sending and
// recording; dead letters paging the escalation channel; approvals; manual-change holds;
// dry-run performing nothing at all.
#include "actions/outbox.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "actions/ad_platform.hpp"
#include "actions/gates.hpp"
#include "actions/manual_hold.hpp"
#include "actions/outbox_worker.hpp"
#include "actions/slack.hpp"
#include "actions/webhook.hpp"
#include "dsl/compiler.hpp"
#include "receiver.hpp"
#include "rules/store/state_store.hpp"

namespace {

using gavel::actions::ActionRequest;
using gavel::actions::Outbox;
using gavel::actions::OutboxState;
using gavel::actions::OutboxWorker;
using gavel::actions::OutboxWorkerOptions;
using gavel::rules::Decision;
using gavel::rules::TimeMs;
using gavel_test::Receiver;
using gavel_test::Reply;

constexpr const char* kRules = R"(
table adset_daily from warehouse "adset_daily" {
  key adset_id
  time day
  dims channel: text
  facts spend: money(USD), conversions: count
}
rule pause_live {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
  mode live
}
rule pause_dry {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
}
rule needs_ok {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
  mode live
  require approval
}
)";

constexpr TimeMs kT0 = 1793523600000;  // 2026-11-02T09:00:00Z

// A state database with the log, the outbox and the gates, and a worker on its OWN
// connection to the same file, as the daemon runs them.
struct World {
  std::string path;
  gavel::rules::SimulatedClock clock{kT0};
  std::unique_ptr<gavel::rules::StateDatabase> db;  // the engine's connection
  std::unique_ptr<gavel::actions::Controls> controls;
  std::unique_ptr<Outbox> outbox;
  std::unique_ptr<gavel::actions::GateKeeper> gates;
  std::unique_ptr<gavel::rules::StateDatabase> wdb;  // the worker's connection
  std::unique_ptr<Outbox> woutbox;
  World() {
    path = (std::filesystem::temp_directory_path() /
            ("gavel-outbox-" + std::to_string(::getpid()) + ".db"))
               .string();
    Remove();
    auto compiled = gavel::dsl::CompileSources({{"r.gavel", kRules}});
    REQUIRE(compiled.program);
    db = std::move(gavel::rules::StateDatabase::Open(path).value());
    controls = std::move(gavel::actions::Controls::Attach(db->log().db()).value());
    outbox = std::move(Outbox::Attach(db->log().db()).value());
    gavel::actions::GateConfig config;
    config.escalation_channel = "#oncall";
    gates =
        std::make_unique<gavel::actions::GateKeeper>(compiled.program, *controls, *outbox, config);
    auto w = gavel::rules::StateDatabase::Open(path);
    REQUIRE(w.ok());
    wdb = std::move(w.value());
    woutbox = std::move(Outbox::Attach(wdb->log().db()).value());
  }
  ~World() {
    gates.reset();
    woutbox.reset();
    wdb.reset();
    outbox.reset();
    controls.reset();
    db.reset();
    Remove();
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  // The engine side: gate, log and enqueue one decision in one transaction.
  Decision Decide(const std::string& rule, nlohmann::ordered_json action) {
    Decision d;
    d.kind = "rule";
    d.rule = rule;
    d.version = "v1";
    d.outcome = "fired";
    d.entity_type = "adset_daily";
    d.entity_id = "adset-100001";
    d.event_time = d.processing_time = clock.Now();
    d.actions.push_back(std::move(action));
    REQUIRE(db->Begin().ok());
    auto plans = gates->Review(d, clock.Now());
    REQUIRE(db->log().Append(d));
    REQUIRE(gates->Enqueue(d, plans, clock.Now()).ok());
    REQUIRE(db->Commit().ok());
    return d;
  }
  OutboxWorker Worker(std::map<std::string, gavel::actions::Executor*> executors,
                      OutboxWorkerOptions options = {}) {
    options.retry.base_delay_ms = 1000;
    options.retry.max_attempts = options.retry.max_attempts ? options.retry.max_attempts : 8;
    if (options.escalation_channel.empty()) options.escalation_channel = "#oncall";
    return OutboxWorker(wdb->log().db(), wdb->log(), *woutbox, std::move(executors), clock,
                        options);
  }
  // Runs passes until nothing is due, moving the clock to each next attempt.
  void Drain(OutboxWorker& w, int max_passes = 50) {
    for (int i = 0; i < max_passes; ++i) {
      REQUIRE(w.RunOnce().ok());
      auto next = w.NextDue();
      REQUIRE(next.ok());
      if (next.value() < 0) return;
      if (next.value() > clock.Now()) clock.Set(next.value());
    }
    FAIL("the outbox did not drain");
  }
  std::vector<Decision> Actions() {
    gavel::rules::DecisionQuery q;
    q.kind = "action";
    q.limit = 0;
    return db->log().Query(q).value();
  }
};

nlohmann::ordered_json Webhook() {
  return {{"action", "webhook"}, {"name", "crm"}, {"payload", {{"lead", "L1"}}}, {"mode", "live"}};
}

gavel::actions::WebhookExecutor WebhookTo(const Receiver& r, long timeout_ms = 2000) {
  gavel::actions::WebhookOptions o;
  o.endpoints["crm"] = {r.Url("/hook"), "s3cret", {}};
  o.http.timeouts.total_ms = timeout_ms;
  return gavel::actions::WebhookExecutor(o);
}

}  // namespace

TEST_CASE("a webhook action is delivered exactly once through two 500s and a timeout", "[outbox]") {
  World w;
  Receiver crm;
  crm.Script(
      {Reply(500, "boom"), Reply(500, "boom"), Reply(200, "late", {}, 1500), Reply(200, "ok")});
  auto exec = WebhookTo(crm, 500);
  Decision d = w.Decide("pause_live", Webhook());
  auto worker = w.Worker({{"webhook", &exec}});
  w.Drain(worker);
  auto requests = crm.Requests();
  REQUIRE(requests.size() == 4);
  for (const auto& r : requests) CHECK(r.Header("Idempotency-Key") == std::to_string(d.id) + ".0");
  auto row = w.outbox->Get(std::to_string(d.id) + ".0");
  REQUIRE(row.ok());
  CHECK(row.value().state == OutboxState::kSucceeded);
  CHECK(row.value().attempts == 4);
  auto log = w.Actions();
  REQUIRE(log.size() == 4);
  CHECK(log[0].outcome == "retry");
  CHECK(log[0].evidence["result"]["http_status"] == 500);
  CHECK(log[2].outcome == "retry");  // the timeout
  CHECK(log[3].outcome == "succeeded");
  CHECK(log[3].evidence["attempt"] == 4);
  CHECK(log[3].evidence["decision_id"] == d.id);
  // Backoff: each retry waited (jittered, at most 1 s, 2 s, 4 s).
  CHECK(w.clock.Now() > kT0);
  CHECK(w.clock.Now() <= kT0 + 7000);
  // The whole log still verifies: the two connections appended to one chain.
  CHECK(w.db->log().Verify().value().ok());
}

TEST_CASE("after the retry budget an action becomes a dead letter and pages the escalation channel",
          "[outbox]") {
  World w;
  Receiver crm, slack;
  crm.SetHandler([](const gavel_test::Recorded&) {
    return Reply(503, "down", {{"Retry-After", "2"}});
  });
  auto exec = WebhookTo(crm);
  gavel::actions::SlackOptions so;
  so.webhook_urls["#oncall"] = slack.Url("/slack");
  gavel::actions::SlackExecutor slack_exec(so);
  Decision d = w.Decide("pause_live", Webhook());
  OutboxWorkerOptions options;
  options.retry.max_attempts = 3;
  auto worker = w.Worker({{"webhook", &exec}, {"slack", &slack_exec}}, options);
  w.Drain(worker);
  CHECK(crm.Requests().size() == 3);
  CHECK(w.outbox->Get(std::to_string(d.id) + ".0").value().state == OutboxState::kDead);
  // Retry-After (2 s) was honoured between attempts.
  CHECK(w.clock.Now() >= kT0 + 4000);
  auto log = w.Actions();
  REQUIRE(log.size() == 4);  // retry, retry, dead_letter, and the page's own success
  CHECK(log[2].outcome == "dead_letter");
  CHECK(log[3].outcome == "succeeded");
  REQUIRE(slack.Requests().size() == 1);
  CHECK(slack.Requests()[0].body.find("gave up after 3 attempt(s)") != std::string::npos);
}

TEST_CASE(
    "a crash between sending and recording resends with the same key and the platform pauses once",
    "[outbox]") {
  World w;
  gavel_test::AdPlatformProcess platform;
  gavel::actions::ReferenceAdPlatformOptions ro;
  ro.base_url = platform.url();
  ro.token = "test-token";
  gavel::actions::AdPlatformExecutorOptions ao;
  ao.entity_types["adset_daily"] = {"reference", "adsets", "USD"};
  ao.platforms["reference"] = std::make_shared<gavel::actions::ReferenceAdPlatform>(ro);
  gavel::actions::AdPlatformExecutor exec(ao);
  Decision d =
      w.Decide("pause_live",
               {{"action", "pause"}, {"target", "adset_daily:adset-100001"}, {"mode", "live"}});
  {
    // The worker claims the row (committed in flight), sends the pause, and dies before it
    // records the answer.
    auto claimed = w.woutbox->ClaimDue(w.clock.Now(), 10);
    REQUIRE(claimed.ok());
    REQUIRE(claimed.value().size() == 1);
    auto result = exec.Execute(claimed.value()[0].request);
    REQUIRE(result.outcome == gavel::actions::ActionResult::Outcome::kSucceeded);
  }
  // Restart: the in-flight row is due again and sent again under the same key.
  auto worker = w.Worker({{"ad_platform", &exec}});
  REQUIRE(worker.Recover().value() == 1);
  w.Drain(worker);
  auto journal = platform.Journal("/v1/adsets/adset-100001/pause");
  REQUIRE(journal.size() == 2);
  CHECK(journal[0]["idempotency_key"] == journal[1]["idempotency_key"]);
  int applied = 0;
  for (const auto& e : journal) applied += e.value("applied", false) ? 1 : 0;
  CHECK(applied == 1);
  auto row = w.outbox->Get(std::to_string(d.id) + ".0").value();
  CHECK(row.state == OutboxState::kSucceeded);
  CHECK(row.attempts == 2);
  CHECK(row.last_result["after"]["status"] == "paused");
}

TEST_CASE("a pause is held when a person re-enabled the ad set within the hold period",
          "[outbox]") {
  World w;
  gavel_test::AdPlatformProcess platform;
  gavel::actions::ReferenceAdPlatformOptions ro;
  ro.base_url = platform.url();
  ro.token = "test-token";
  gavel::actions::AdPlatformExecutorOptions ao;
  ao.entity_types["adset_daily"] = {"reference", "adsets", "USD"};
  ao.platforms["reference"] = std::make_shared<gavel::actions::ReferenceAdPlatform>(ro);
  gavel::actions::AdPlatformExecutor exec(ao);
  // A person enables the ad set now (the platform's clock: real time).
  platform.Call("POST", "/_manual/adsets/adset-100001/enable");
  gavel::rules::WallClock wall;
  w.clock.Set(wall.Now());
  gavel::actions::ManualHoldOptions ho;
  ho.hold_seconds = 3600;
  gavel::actions::ManualChangeGuard guard(ao, ho, w.clock);
  OutboxWorkerOptions options;
  options.precheck = [&](const ActionRequest& r) { return guard.Check(r); };
  Decision d =
      w.Decide("pause_live",
               {{"action", "pause"}, {"target", "adset_daily:adset-100001"}, {"mode", "live"}});
  auto worker = w.Worker({{"ad_platform", &exec}}, options);
  w.Drain(worker);
  CHECK(platform.Journal("/v1/adsets/adset-100001/pause").empty());
  auto row = w.outbox->Get(std::to_string(d.id) + ".0").value();
  CHECK(row.state == OutboxState::kHeld);
  auto log = w.Actions();
  REQUIRE(log.size() == 1);
  CHECK(log[0].outcome == "held");
  CHECK(log[0].reason.find("held: person changed adset_daily:adset-100001") != std::string::npos);
  // After the hold period the rule may act again.
  w.clock.Set(w.clock.Now() + 3601 * 1000);
  Decision again =
      w.Decide("pause_live",
               {{"action", "pause"}, {"target", "adset_daily:adset-100001"}, {"mode", "live"}});
  w.Drain(worker);
  CHECK(w.outbox->Get(std::to_string(again.id) + ".0").value().state == OutboxState::kSucceeded);
  CHECK(platform.Journal("/v1/adsets/adset-100001/pause").size() == 1);
}

TEST_CASE("dry-run performs nothing at all; an approved action runs only after approval",
          "[outbox]") {
  World w;
  Receiver crm;
  auto exec = WebhookTo(crm);
  auto worker = w.Worker({{"webhook", &exec}});
  auto dry = Webhook();
  dry["mode"] = "dry_run";
  Decision d1 = w.Decide("pause_dry", dry);
  CHECK(d1.actions[0]["disposition"] == "dry_run");
  Decision d2 = w.Decide("needs_ok", Webhook());
  CHECK(d2.actions[0]["disposition"] == "awaiting_approval");
  w.Drain(worker);
  CHECK(crm.Requests().empty());
  CHECK(w.Actions().empty());
  REQUIRE(w.outbox->Approve(std::to_string(d2.id) + ".0", "ana@ops", w.clock.Now()).ok());
  w.Drain(worker);
  REQUIRE(crm.Requests().size() == 1);
  CHECK(crm.Requests()[0].Header("Idempotency-Key") == std::to_string(d2.id) + ".0");
}
