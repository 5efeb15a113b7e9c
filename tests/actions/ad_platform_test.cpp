// The ad-platform executor and the reference adapter against the real reference server
// (build/gavel-ad-platform as a subprocess): pause, enable, set_budget, reads, idempotent
// replays, injected faults, and manual changes by a person.
#include "actions/ad_platform.hpp"

#include <catch2/catch.hpp>
#include <memory>

#include "receiver.hpp"

using gavel::actions::ActionRequest;
using gavel::actions::ActionResult;
using gavel::actions::AdObjectRef;
using gavel::actions::AdPlatformExecutor;
using gavel::actions::AdPlatformExecutorOptions;
using gavel::actions::HttpClient;
using gavel::actions::HttpRequest;
using gavel::actions::ReferenceAdPlatform;
using gavel::actions::ReferenceAdPlatformOptions;
using gavel_test::AdPlatformProcess;
using json = nlohmann::json;
using O = ActionResult::Outcome;

namespace {

const std::string kToken = "test-token";

std::shared_ptr<ReferenceAdPlatform> Connector(const AdPlatformProcess& server,
                                               long total_timeout_ms = 5000,
                                               const std::string& token = kToken) {
  ReferenceAdPlatformOptions o;
  o.base_url = server.url();
  o.token = token;
  o.http.timeouts.total_ms = total_timeout_ms;
  return std::make_shared<ReferenceAdPlatform>(o);
}

AdPlatformExecutor Executor(std::shared_ptr<ReferenceAdPlatform> connector) {
  AdPlatformExecutorOptions o;
  o.entity_types["adset_daily"] = {"reference", "adsets", "USD"};
  o.platforms["reference"] = std::move(connector);
  return AdPlatformExecutor(o);
}

ActionRequest Intent(const std::string& key, json intent) {
  ActionRequest r;
  r.idempotency_key = key;
  r.rule = "pause_high_cpa";
  r.entity_type = "adset_daily";
  r.entity_id = "adset-100001";
  r.intent = std::move(intent);
  return r;
}

json Pause(const std::string& id) {
  return {{"action", "pause"}, {"target", "adset_daily:" + id}, {"mode", "live"}};
}

int Applied(const std::vector<json>& journal) {
  int n = 0;
  for (const auto& e : journal)
    if (e.value("applied", false)) ++n;
  return n;
}

}  // namespace

TEST_CASE("pause, enable and set_budget change the ad set and report before and after",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  auto connector = Connector(server);
  AdPlatformExecutor exec = Executor(connector);

  ActionResult paused = exec.Execute(Intent("1.0", Pause("adset-100001")));
  INFO(paused.error << " " << paused.response_excerpt);
  REQUIRE(paused.outcome == O::kSucceeded);
  CHECK(paused.http_status == 200);
  CHECK(paused.before["status"] == "active");
  CHECK(paused.after["status"] == "paused");
  CHECK(paused.after["updated_by"] == "gavel");

  auto read = connector->Get({"adsets", "adset-100001"});
  REQUIRE(read.result.outcome == O::kSucceeded);
  REQUIRE(read.state.has_value());
  CHECK(read.state->status == "paused");
  CHECK(read.state->updated_by == "gavel");
  CHECK(read.state->daily_budget == 150.0);

  ActionResult budget = exec.Execute(Intent("2.0", {{"action", "set_budget"},
                                                    {"target", "adset_daily:adset-100001"},
                                                    {"budget", 400.0},
                                                    {"currency", "USD"}}));
  REQUIRE(budget.outcome == O::kSucceeded);
  CHECK(budget.before["daily_budget"] == 150.0);
  CHECK(budget.after["daily_budget"] == 400.0);

  ActionResult enabled =
      exec.Execute(Intent("3.0", {{"action", "enable"}, {"target", "adset_daily:adset-100001"}}));
  REQUIRE(enabled.outcome == O::kSucceeded);
  CHECK(enabled.before["status"] == "paused");
  CHECK(enabled.after["status"] == "active");

  auto journal = server.Journal("/v1/adsets/adset-100001/pause");
  REQUIRE(journal.size() == 1);
  CHECK(journal[0]["idempotency_key"] == "1.0");
  CHECK(journal[0]["actor"] == "gavel");
}

TEST_CASE("replaying the same idempotency key has one effect and the same answer",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  AdPlatformExecutor exec = Executor(Connector(server));
  const ActionRequest r = Intent(
      "5.0", {{"action", "set_budget"}, {"target", "adset_daily:adset-100002"}, {"budget", 321.5}});
  ActionResult first = exec.Execute(r);
  ActionResult second = exec.Execute(r);
  REQUIRE(first.outcome == O::kSucceeded);
  REQUIRE(second.outcome == O::kSucceeded);
  CHECK(first.before == second.before);
  CHECK(first.after == second.after);
  auto journal = server.Journal("/v1/adsets/adset-100002/budget");
  REQUIRE(journal.size() == 2);
  CHECK(Applied(journal) == 1);
  CHECK(journal[1]["replayed"] == true);
  auto state = server.Call("GET", "/_journal");  // the server is alive and answering
  CHECK(state.contains("requests"));
}

TEST_CASE("injected 500s before the effect are retryable and the retry applies once",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  AdPlatformExecutor exec = Executor(Connector(server));
  server.Call("POST", "/_faults", R"({"fail_next": 2, "status": 500})");
  const ActionRequest r = Intent("7.0", Pause("adset-100003"));
  CHECK(exec.Execute(r).outcome == O::kRetryable);
  CHECK(exec.Execute(r).outcome == O::kRetryable);
  ActionResult ok = exec.Execute(r);
  CHECK(ok.outcome == O::kSucceeded);
  CHECK(ok.after["status"] == "paused");
  auto journal = server.Journal("/v1/adsets/adset-100003/pause");
  REQUIRE(journal.size() == 3);
  CHECK(Applied(journal) == 1);
}

TEST_CASE("a 500 after the effect (the answer lost) is retried into the stored answer, one effect",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  auto connector = Connector(server);
  AdPlatformExecutor exec = Executor(connector);
  server.Call("POST", "/_faults", R"({"status": 500, "phase": "after"})");
  const ActionRequest r = Intent(
      "8.0", {{"action", "set_budget"}, {"target", "adset_daily:adset-100004"}, {"budget", 999}});
  CHECK(exec.Execute(r).outcome == O::kRetryable);
  ActionResult ok = exec.Execute(r);
  REQUIRE(ok.outcome == O::kSucceeded);
  CHECK(ok.after["daily_budget"] == 999.0);
  auto read = connector->Get({"adsets", "adset-100004"});
  REQUIRE(read.state.has_value());
  CHECK(read.state->version == 2);  // seeded at 1, changed once
  auto journal = server.Journal("/v1/adsets/adset-100004/budget");
  REQUIRE(journal.size() == 2);
  CHECK(Applied(journal) == 1);
  CHECK(journal[1]["replayed"] == true);
}

TEST_CASE("a timeout is retryable and the retry under the same key does not apply twice",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  auto connector = Connector(server, /*total_timeout_ms=*/300);
  AdPlatformExecutor exec = Executor(connector);
  server.Call("POST", "/_faults", R"({"delay_ms": 1500})");
  const ActionRequest r = Intent("9.0", Pause("adset-100000"));
  ActionResult slow = exec.Execute(r);
  CHECK(slow.outcome == O::kRetryable);
  CHECK(slow.http_status == 0);
  // Retry until it succeeds (the delayed request may or may not have been applied yet).
  ActionResult ok;
  for (int i = 0; i < 50 && ok.outcome != O::kSucceeded; ++i) {
    ok = exec.Execute(r);
    if (ok.outcome != O::kSucceeded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(ok.outcome == O::kSucceeded);
  // Wait for the delayed request to be journaled too, then count effects.
  std::vector<json> journal;
  for (int i = 0; i < 100; ++i) {
    journal = server.Journal("/v1/adsets/adset-100000/pause");
    if (journal.size() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(journal.size() >= 2);
  CHECK(Applied(journal) == 1);
}

TEST_CASE("a 429 from the platform carries its Retry-After", "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  AdPlatformExecutor exec = Executor(Connector(server));
  server.Call("POST", "/_faults", R"({"status": 429, "retry_after": 1})");
  ActionResult limited = exec.Execute(Intent("10.0", Pause("adset-100001")));
  CHECK(limited.outcome == O::kRetryable);
  CHECK(limited.http_status == 429);
  CHECK(limited.retry_after_ms == 1000);
  CHECK(exec.Execute(Intent("10.0", Pause("adset-100001"))).outcome == O::kSucceeded);
}

TEST_CASE("an unknown ad set, a wrong token and a bad budget are permanent failures",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  AdPlatformExecutor exec = Executor(Connector(server));
  ActionResult missing = exec.Execute(Intent("11.0", Pause("adset-999")));
  CHECK(missing.outcome == O::kFailed);
  CHECK(missing.http_status == 404);

  AdPlatformExecutor intruder = Executor(Connector(server, 5000, "wrong"));
  ActionResult denied = intruder.Execute(Intent("12.0", Pause("adset-100001")));
  CHECK(denied.outcome == O::kFailed);
  CHECK(denied.http_status == 401);

  ActionResult negative = exec.Execute(Intent(
      "13.0", {{"action", "set_budget"}, {"target", "adset_daily:adset-100001"}, {"budget", -5}}));
  CHECK(negative.outcome == O::kFailed);
  ActionResult no_budget = exec.Execute(
      Intent("14.0", {{"action", "set_budget"}, {"target", "adset_daily:adset-100001"}}));
  CHECK(no_budget.outcome == O::kFailed);
  ActionResult currency = exec.Execute(Intent("15.0", {{"action", "set_budget"},
                                                       {"target", "adset_daily:adset-100001"},
                                                       {"budget", 5},
                                                       {"currency", "EUR"}}));
  CHECK(currency.outcome == O::kFailed);
  CHECK(currency.http_status == 400);
  CHECK(currency.error.find("currency") != std::string::npos);
}

TEST_CASE("targets without a mapping, a platform or a proper form fail before any request",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  AdPlatformExecutor exec = Executor(Connector(server));
  CHECK(exec.Execute(Intent("20.0", {{"action", "pause"}, {"target", "lead:L1"}})).outcome ==
        O::kFailed);
  CHECK(exec.Execute(Intent("21.0", {{"action", "pause"}, {"target", "adset-100001"}})).outcome ==
        O::kFailed);
  CHECK(exec.Execute(Intent("22.0", {{"action", "pause"}, {"target", "adset_daily:"}})).outcome ==
        O::kFailed);
  CHECK(exec.Execute(Intent("23.0", {{"action", "notify_slack"}})).outcome == O::kFailed);
  CHECK(exec.Execute(Intent("24.0", json())).outcome == O::kFailed);
  AdPlatformExecutorOptions o;
  o.entity_types["adset_daily"] = {"meta", "adsets", "USD"};
  AdPlatformExecutor unplugged(o);
  ActionResult r = unplugged.Execute(Intent("25.0", Pause("adset-100001")));
  CHECK(r.outcome == O::kFailed);
  CHECK(r.error.find("'meta'") != std::string::npos);
  CHECK(server.Call("GET", "/_journal")["requests"].empty());
}

TEST_CASE("a manual re-enable by a person shows in the next read", "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  auto connector = Connector(server);
  AdPlatformExecutor exec = Executor(connector);
  REQUIRE(exec.Execute(Intent("30.0", Pause("adset-100002"))).outcome == O::kSucceeded);
  server.Call("POST", "/_manual/adsets/adset-100002/enable", "{}");
  auto read = connector->Get({"adsets", "adset-100002"});
  REQUIRE(read.state.has_value());
  CHECK(read.state->status == "active");
  CHECK(read.state->updated_by == "person");
  CHECK(read.result.after["updated_by"] == "person");
}

TEST_CASE("the reference server answers bad input with a 400 and a reason, and keeps running",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  HttpClient client;
  auto send = [&](const std::string& method, const std::string& path, const std::string& body) {
    HttpRequest req;
    req.method = method;
    req.url = server.url() + path;
    req.body = body;
    req.headers = {{"Authorization", "Bearer " + kToken}, {"Content-Type", "application/json"}};
    return client.Send(req);
  };
  const std::pair<std::string, std::string> budgets[] = {
      {"PUT", "not json"},
      {"PUT", "[]"},
      {"PUT", R"({"daily_budget":"x"})"},
      {"PUT", R"({"daily_budget":-1})"},
      {"PUT", R"({"daily_budget":1e300})"},
      {"PUT", R"({"daily_budget":5,"currency":7})"}};
  for (const auto& [method, body] : budgets) {
    auto resp = send(method, "/v1/adsets/adset-100001/budget", body);
    INFO(body << " -> " << resp.status << " " << resp.body);
    CHECK(resp.status == 400);
    CHECK(json::parse(resp.body, nullptr, false).contains("message"));
  }
  CHECK(send("POST", "/_faults", "{").status == 400);
  CHECK(send("POST", "/_faults", R"({"status": "x"})").status == 400);
  CHECK(send("POST", "/_faults", R"({"fail_next": -1, "status": 500})").status == 400);
  CHECK(send("POST", "/_faults", R"({})").status == 400);
  CHECK(send("POST", "/_adsets", R"({"id": "bad id/with space"})").status == 400);
  CHECK(send("POST", "/v1/adsets/adset-100001/pause", std::string(2 << 20, 'x')).status >= 400);
  CHECK(send("GET", "/v1/campaigns/c1", "").status == 404);
  CHECK(send("POST", "/_adsets", R"({"id": "new-1", "daily_budget": 10})").status == 201);
  auto health = send("GET", "/_health", "");
  CHECK(health.status == 200);
  CHECK(send("GET", "/v1/adsets/new-1", "").status == 200);
}

TEST_CASE("a reallocation's set_budget on a channel goes to the platform's channels",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  server.Call("POST", "/_objects/channels", R"({"id": "meta", "daily_budget": 1000})");
  AdPlatformExecutorOptions o;
  o.entity_types["channel_daily"] = {"reference", "channels", "USD"};
  o.platforms["reference"] = Connector(server);
  AdPlatformExecutor exec(o);
  ActionResult r = exec.Execute(Intent("40.0", {{"action", "set_budget"},
                                                {"target", "channel_daily:meta"},
                                                {"before", 1000},
                                                {"budget", 1200.0},
                                                {"currency", "USD"},
                                                {"approval", "required"}}));
  INFO(r.error);
  REQUIRE(r.outcome == O::kSucceeded);
  CHECK(r.before["daily_budget"] == 1000.0);
  CHECK(r.after["daily_budget"] == 1200.0);
  CHECK(server.Journal("/v1/channels/meta/budget").size() == 1);
}

TEST_CASE("a fresh server shows no recent change: seeded objects were last changed long ago",
          "[actions][ad_platform]") {
  AdPlatformProcess server(kToken);
  auto read = Connector(server)->Get({"adsets", "adset-100000"});
  REQUIRE(read.state.has_value());
  CHECK(read.state->updated_by == "seed");
  const std::time_t day_ago = std::time(nullptr) - 24 * 3600;
  std::tm tm{};
  gmtime_r(&day_ago, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  CHECK(read.state->updated_at < std::string(buf));  // RFC 3339 strings order as times

  // A set-up object may say who changed it last, and when (for tests of the manual hold).
  server.Call(
      "POST", "/_objects/adsets",
      R"({"id": "adset-h1", "updated_by": "person", "updated_at": "2026-01-01T00:00:00Z"})");
  auto held = Connector(server)->Get({"adsets", "adset-h1"});
  REQUIRE(held.state.has_value());
  CHECK(held.state->updated_by == "person");
  CHECK(held.state->updated_at == "2026-01-01T00:00:00Z");
}
