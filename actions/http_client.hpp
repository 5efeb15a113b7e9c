// A small libcurl wrapper for the executors: ONE HTTP attempt (method, URL, headers, body,
// connect/total timeouts, TLS verification on), and the answer (status, headers, a capped
// body, latency, Retry-After). Retries are not here: the outbox owns them, using
// ActionResult::retry_after_ms and its own backoff with jitter.
//
// ToActionResult() classifies an answer into ActionResult::Outcome (see action.hpp):
//   2xx                                   succeeded
//   408, 409, 425, 429, 5xx               retryable
//   timeout, connection refused/reset, DNS failure, TLS handshake interrupted  retryable
//   other 4xx, 1xx/3xx (no redirects are followed), a bad URL, TLS verification failure  failed
//
// Secrets: URLs (a Slack webhook URL is a secret) and header values are never put into error
// strings or logs; errors name the endpoint by the label the caller gives.
//
// Ownership and threads: an HttpClient owns one curl easy handle (kept between requests so
// connections are reused). One thread at a time per HttpClient; use one client per executor.
// curl_global_init runs once per process (std::call_once) when the first client is made.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "actions/action.hpp"

namespace gavel::actions {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpTimeouts {
  // Connecting (TCP + TLS) to a healthy receiver takes milliseconds; 3 s covers a slow network
  // without holding the outbox worker for long on a dead host.
  long connect_ms = 3000;
  // The whole exchange. Receivers are asked to answer fast (and do work asynchronously); past
  // 10 s the attempt counts as a timeout and is retried under the same idempotency key.
  long total_ms = 10000;
};

struct HttpClientOptions {
  HttpTimeouts timeouts;
  bool verify_tls = true;  // peer certificate and host name; off only for local tests
  std::string ca_file;     // extra CA bundle (PEM); empty: the system store
  std::string user_agent = "gavel/0.1";
  // Only the start of an answer is kept (the log stores at most 2 KiB of it anyway); the rest
  // is read and dropped so that the connection stays usable.
  std::size_t max_response_bytes = 64 * 1024;
};

struct HttpRequest {
  std::string method = "POST";  // GET, POST, PUT, PATCH, DELETE
  std::string url;              // http:// or https:// only
  HttpHeaders headers;
  std::string body;
  std::string label;                     // how errors name the endpoint (never the URL)
  std::optional<HttpTimeouts> timeouts;  // overrides the client's
};

struct HttpResponse {
  int status = 0;       // 0: no HTTP answer arrived
  HttpHeaders headers;  // of the final answer; names as sent
  std::string body;     // at most max_response_bytes
  bool body_truncated = false;
  double latency_ms = 0;
  // Transport failure (empty when an HTTP answer arrived).
  enum class Transport { kOk, kTimeout, kConnect, kTls, kBadRequest, kOther };
  Transport transport = Transport::kOk;
  std::string error;                           // words, no secrets
  std::optional<std::int64_t> retry_after_ms;  // parsed Retry-After, if any

  // First header with this name (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  HttpClient(HttpClient&& other) noexcept;  // takes the handle; `other` makes a new one if used
  HttpClient& operator=(HttpClient&& other) noexcept;

  // One attempt. Never throws.
  HttpResponse Send(const HttpRequest& request);

  const HttpClientOptions& options() const { return options_; }

 private:
  HttpClientOptions options_;
  void* curl_ = nullptr;  // CURL*
};

// Retry-After as delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"),
// relative to `now`; negative waits become 0, absurd ones are capped at 7 days. nullopt when
// the value is neither.
std::optional<std::int64_t> ParseRetryAfter(std::string_view value, std::time_t now);

// The outcome of an answer, per the table above.
ActionResult::Outcome Classify(const HttpResponse& response);

// An ActionResult from an answer: outcome, status, a ≤2 KiB excerpt of the body, latency,
// Retry-After and an error in words for anything but success.
ActionResult ToActionResult(const HttpResponse& response);

// At most `max_bytes` of `s`, cut on a UTF-8 character boundary.
std::string Utf8Prefix(std::string_view s, std::size_t max_bytes);

// Process-wide libcurl initialisation; called by HttpClient, safe to call again.
void EnsureCurlInitialized();

}  // namespace gavel::actions
