// The webhook executor against a local receiver that verifies signatures as docs/actions.md
// tells receivers to, and dedupes on Idempotency-Key.
#include "actions/webhook.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "receiver.hpp"

using gavel::actions::ActionRequest;
using gavel::actions::ActionResult;
using gavel::actions::BuildWebhookBody;
using gavel::actions::SignPayload;
using gavel::actions::UnixSecondsNow;
using gavel::actions::VerifySignature;
using gavel::actions::WebhookExecutor;
using gavel::actions::WebhookOptions;
using gavel_test::Receiver;
using gavel_test::Recorded;
using gavel_test::Reply;
using json = nlohmann::json;
using O = ActionResult::Outcome;

namespace {

const std::string kSecret = "whsec_test";

ActionRequest MqlRequest() {
  ActionRequest r;
  r.idempotency_key = "17.0";
  r.decision_id = 17;
  r.index = 0;
  r.rule = "mql_handoff";
  r.rule_version = "9f2c";
  r.entity_type = "lead";
  r.entity_id = "L-42";
  r.decided_at = "2026-11-01T10:00:00.000Z";
  r.evidence = {{"score.lead_score", 57}, {"entity.title", "VP"}};
  r.intent = {{"action", "webhook"},
              {"name", "sales_queue"},
              {"payload", {{"lead", "L-42"}, {"score", 57}}},
              {"mode", "live"}};
  return r;
}

WebhookOptions Options(const Receiver& rx) {
  WebhookOptions o;
  o.endpoints["sales_queue"] = {rx.Url("/hooks/sales"), kSecret, {}};
  return o;
}

bool Verifies(const Recorded& req, const std::string& secret = kSecret) {
  return VerifySignature(secret, req.Header("X-Gavel-Timestamp"), req.Header("X-Gavel-Signature"),
                         req.body, UnixSecondsNow())
      .ok;
}

}  // namespace

TEST_CASE("the signature is HMAC-SHA256 over timestamp.body, as in the documented example",
          "[actions][webhook]") {
  // The same value as the Python snippet in docs/actions.md computes.
  CHECK(SignPayload("whsec_test", 1700000000, R"({"hello":"world"})") ==
        "v1=f592bbf3951cfc94e560eecfb5d9dd4da6b0fff2e626235f8ab4b54860925d0b");
}

TEST_CASE("VerifySignature accepts the right secret inside the window and refuses everything else",
          "[actions][webhook]") {
  const std::string body = R"({"a":1})";
  const std::int64_t ts = 1700000000;
  const std::string sig = SignPayload(kSecret, ts, body);
  CHECK(VerifySignature(kSecret, "1700000000", sig, body, ts + 10).ok);
  CHECK(VerifySignature(kSecret, "1700000000", sig, body, ts - 299)
            .ok);  // sender clock slightly ahead
  CHECK(VerifySignature(kSecret, "1700000000", "v1=00, " + sig, body, ts)
            .ok);  // rotation: any v1 entry
  auto tampered = VerifySignature(kSecret, "1700000000", sig, R"({"a":2})", ts);
  CHECK_FALSE(tampered.ok);
  CHECK(tampered.reason == "signature mismatch");
  CHECK_FALSE(VerifySignature("other-secret", "1700000000", sig, body, ts).ok);
  auto old = VerifySignature(kSecret, "1700000000", sig, body, ts + 301);
  CHECK_FALSE(old.ok);
  CHECK(old.reason == "timestamp outside the replay window");
  CHECK_FALSE(VerifySignature(kSecret, "1700000001", sig, body, ts).ok);  // timestamp is signed
  CHECK_FALSE(VerifySignature(kSecret, "", sig, body, ts).ok);
  CHECK_FALSE(VerifySignature(kSecret, "17e8", sig, body, ts).ok);
  CHECK_FALSE(VerifySignature(kSecret, "1700000000", "", body, ts).ok);
  CHECK_FALSE(VerifySignature(kSecret, "1700000000", sig.substr(0, 20), body, ts).ok);
}

TEST_CASE(
    "a webhook arrives as signed JSON with its idempotency key, and a tampered copy does not "
    "verify",
    "[actions][webhook]") {
  Receiver rx;
  WebhookExecutor exec(Options(rx));
  ActionResult res = exec.Execute(MqlRequest());
  CHECK(res.outcome == O::kSucceeded);
  auto seen = rx.Requests();
  REQUIRE(seen.size() == 1);
  const Recorded& req = seen[0];
  CHECK(req.method == "POST");
  CHECK(req.path == "/hooks/sales");
  CHECK(req.Header("Content-Type") == "application/json");
  CHECK(req.Header("Idempotency-Key") == "17.0");
  CHECK(std::llabs(std::stoll(req.Header("X-Gavel-Timestamp")) - UnixSecondsNow()) < 60);
  CHECK(req.Header("X-Gavel-Signature").rfind("v1=", 0) == 0);
  CHECK(Verifies(req));

  json body = json::parse(req.body);
  CHECK(body == BuildWebhookBody(MqlRequest()));
  CHECK(body["decision_id"] == 17);
  CHECK(body["idempotency_key"] == "17.0");
  CHECK(body["rule"] == "mql_handoff");
  CHECK(body["rule_version"] == "9f2c");
  CHECK(body["entity"] == json({{"type", "lead"}, {"id", "L-42"}}));
  CHECK(body["decided_at"] == "2026-11-01T10:00:00.000Z");
  CHECK(body["action"]["payload"]["score"] == 57);
  CHECK(body["evidence"]["score.lead_score"] == 57);

  Recorded tampered = req;
  tampered.body.replace(tampered.body.find("57"), 2, "99");
  CHECK_FALSE(Verifies(tampered));
  CHECK_FALSE(Verifies(req, "wrong-secret"));
}

TEST_CASE("a receiver that dedupes on Idempotency-Key sees one effect despite 500s and timeouts",
          "[actions][webhook]") {
  std::map<std::string, int> effects;  // idempotency key → times the effect ran
  int calls = 0;
  Receiver rx;  // after the counters its handler uses: stopped before they go
  // 1st: the effect runs, then the answer is a 500 (lost); 2nd: the effect is known, but the
  // answer comes too late (timeout); 3rd: answered at once.
  rx.SetHandler([&](const Recorded& req) {
    ++calls;
    const std::string key = req.Header("Idempotency-Key");
    if (!Verifies(req)) return Reply{401, "bad signature"};
    if (!effects.count(key)) effects[key] = 1;  // the effect, once per key
    if (calls == 1) return Reply{500, "crashed after commit"};
    if (calls == 2) return Reply{200, "late", {}, 1200};
    return Reply{200, "duplicate: already done"};
  });
  WebhookOptions o = Options(rx);
  o.http.timeouts.total_ms = 300;
  WebhookExecutor exec(o);
  const ActionRequest r = MqlRequest();
  ActionResult a1 = exec.Execute(r);
  CHECK(a1.outcome == O::kRetryable);
  CHECK(a1.http_status == 500);
  ActionResult a2 = exec.Execute(r);
  CHECK(a2.outcome == O::kRetryable);
  CHECK(a2.http_status == 0);
  ActionResult a3 = exec.Execute(r);
  CHECK(a3.outcome == O::kSucceeded);

  auto seen = rx.Requests();
  REQUIRE(seen.size() == 3);
  std::set<std::string> keys, bodies;
  for (const auto& s : seen) {
    keys.insert(s.Header("Idempotency-Key"));
    bodies.insert(s.body);
    CHECK(Verifies(s));
  }
  CHECK(keys == std::set<std::string>{"17.0"});
  CHECK(bodies.size() == 1);  // the same body every attempt; only the timestamp is fresh
  REQUIRE(effects.size() == 1);
  CHECK(effects.begin()->second == 1);
}

TEST_CASE("the signing clock is the one in the options", "[actions][webhook]") {
  Receiver rx;
  WebhookOptions o = Options(rx);
  o.now_unix_seconds = [] { return std::int64_t{1700000000}; };
  WebhookExecutor exec(o);
  CHECK(exec.Execute(MqlRequest()).outcome == O::kSucceeded);
  auto seen = rx.Requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].Header("X-Gavel-Timestamp") == "1700000000");
  CHECK(VerifySignature(kSecret, "1700000000", seen[0].Header("X-Gavel-Signature"), seen[0].body,
                        1700000100)
            .ok);
  CHECK_FALSE(Verifies(seen[0]));  // now, years later: outside the replay window
}

TEST_CASE("an unknown endpoint or a wrong intent fails without sending anything",
          "[actions][webhook]") {
  Receiver rx;
  WebhookExecutor exec(Options(rx));
  ActionRequest r = MqlRequest();
  r.intent["name"] = "nope";
  ActionResult res = exec.Execute(r);
  CHECK(res.outcome == O::kFailed);
  CHECK(res.error.find("'nope'") != std::string::npos);
  r.intent = json::array({1, 2});
  CHECK(exec.Execute(r).outcome == O::kFailed);
  r.intent = {{"action", "webhook"}};
  CHECK(exec.Execute(r).outcome == O::kFailed);
  CHECK(rx.Requests().empty());
}

TEST_CASE("webhook answers are classified: 404 fails, 429 waits as told", "[actions][webhook]") {
  Receiver rx;
  rx.Script({Reply{404, "gone"}, Reply{429, "", {{"Retry-After", "2"}}}});
  WebhookExecutor exec(Options(rx));
  ActionResult gone = exec.Execute(MqlRequest());
  CHECK(gone.outcome == O::kFailed);
  CHECK(gone.http_status == 404);
  ActionResult slow = exec.Execute(MqlRequest());
  CHECK(slow.outcome == O::kRetryable);
  CHECK(slow.retry_after_ms == 2000);
}

TEST_CASE("invalid UTF-8 in evidence still gives a JSON body that verifies", "[actions][webhook]") {
  Receiver rx;
  WebhookExecutor exec(Options(rx));
  ActionRequest r = MqlRequest();
  r.evidence["entity.title"] = std::string("V\xFFP");
  CHECK(exec.Execute(r).outcome == O::kSucceeded);
  auto seen = rx.Requests();
  REQUIRE(seen.size() == 1);
  CHECK(Verifies(seen[0]));
  CHECK_NOTHROW(json::parse(seen[0].body));
}
