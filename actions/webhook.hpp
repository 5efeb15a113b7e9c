// The webhook executor: POSTs a decision's action as signed JSON to a named endpoint, and the
// signing scheme every gavel webhook-style executor shares (webhook, CRM, email, messaging).
//
// Body (compact JSON, UTF-8):
//   {"decision_id":42,"idempotency_key":"42.0","rule":"mql_handoff","rule_version":"…",
//    "entity":{"type":"lead","id":"L1"},"decided_at":"2026-11-01T10:00:00.000Z",
//    "action":{"action":"webhook","name":"sales_queue","payload":{…},"mode":"live"},
//    "evidence":{…}}
// Headers:
//   Content-Type: application/json
//   Idempotency-Key: <decision id>.<index>       the same on every retry of this action
//   X-Gavel-Timestamp: <unix seconds>            when this attempt was signed
//   X-Gavel-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
// A receiver verifies with VerifySignature (docs/actions.md has the recipe and a Python
// version): recompute the HMAC over the raw body bytes, compare in constant time, and refuse
// timestamps more than 5 minutes from its clock (replay window); dedupe on Idempotency-Key.
//
// Secrets are values in the options (the daemon reads them from its config/environment); they
// are never logged, and errors name the endpoint, never its URL.
// Threads: as Executor (the outbox's worker thread); the signing functions are pure.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "actions/action.hpp"
#include "actions/http_client.hpp"

namespace gavel::actions {

// ---------------------------------------------------------------- signing

// The replay window a receiver should allow around its own clock.
inline constexpr std::int64_t kSignatureToleranceSeconds = 300;

// "v1=<64 lowercase hex>": HMAC-SHA256 keyed by `secret` over `timestamp + "." + body`.
std::string SignPayload(std::string_view secret, std::int64_t timestamp, std::string_view body);

struct SignatureCheck {
  bool ok = false;
  std::string reason;  // why not, in words ("" when ok)
};

// What a receiver does with a request: `timestamp_header` is X-Gavel-Timestamp,
// `signature_header` is X-Gavel-Signature (one or more comma-separated "v1=<hex>" entries,
// which lets a sender sign with an old and a new secret while rotating), `body` the raw bytes.
SignatureCheck VerifySignature(std::string_view secret, std::string_view timestamp_header,
                               std::string_view signature_header, std::string_view body,
                               std::int64_t now_unix_seconds,
                               std::int64_t tolerance_seconds = kSignatureToleranceSeconds);

// The headers of a signed JSON POST (Content-Type, Idempotency-Key, X-Gavel-Timestamp,
// X-Gavel-Signature when the secret is not empty).
HttpHeaders SignedJsonHeaders(std::string_view secret, std::int64_t timestamp,
                              std::string_view body, const std::string& idempotency_key);

// Unix seconds now (the default clock of the executors that sign).
std::int64_t UnixSecondsNow();

// JSON text that never throws: invalid UTF-8 in strings is replaced by U+FFFD.
std::string DumpJson(const nlohmann::json& j);

// ---------------------------------------------------------------- the executor

struct WebhookEndpoint {
  std::string url;            // secret-bearing URLs are fine: never logged
  std::string secret;         // HMAC key; empty: the request is sent unsigned
  HttpHeaders extra_headers;  // e.g. an Authorization header the receiver wants
};

struct WebhookOptions {
  std::map<std::string, WebhookEndpoint> endpoints;  // intent "name" → endpoint
  HttpClientOptions http;
  std::function<std::int64_t()> now_unix_seconds = &UnixSecondsNow;  // the signing clock
};

// The JSON body above, for a request (pure; also used by tests and docs).
nlohmann::json BuildWebhookBody(const ActionRequest& request);

class WebhookExecutor final : public Executor {
 public:
  explicit WebhookExecutor(WebhookOptions options);
  // Intent {"action":"webhook","name":N,...}: one signed POST to endpoint N. An unknown name
  // or another action is a failed result (configuration), not retried.
  ActionResult Execute(const ActionRequest& request) override;

 private:
  WebhookOptions options_;
  HttpClient client_;
};

}  // namespace gavel::actions
