// The seam between decisions and the outside world: what one intended action looks like to an
// executor, and what an executor says happened. Everything in actions/ speaks these types.
//
// A Decision (rules/decision.hpp) carries its intended actions as JSON objects ("intents",
// e.g. {"action":"pause","target":"adset_daily:123","mode":"live"}). The outbox
// (actions/outbox.hpp) stores each intent of each logged decision as one ActionRequest with an
// idempotency key "<decision id>.<action index>", passes it through the gates, and hands it to
// the Executor for its kind. An executor makes ONE attempt and classifies the result; the
// outbox owns retries (exponential backoff with jitter, Retry-After), the retry budget and
// dead letters, durably, so a crash never repeats or loses an effect.
//
// Executors send the idempotency key to the receiver (header `Idempotency-Key`), so a receiver
// that saw an attempt whose answer was lost (timeout, crash between send and record) can
// recognise the retry.
//
// Threads: an Executor may be called from the outbox's worker thread only; implementations
// need not be thread-safe unless they say so.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace gavel::actions {

struct ActionRequest {
  std::string idempotency_key;   // "<decision id>.<index>": stable across retries and restarts
  std::int64_t decision_id = 0;
  int index = 0;                 // position in the decision's actions
  std::int64_t attempt = 1;      // 1 for the first attempt
  // From the decision: who decided, about what, and why.
  std::string rule;
  std::string rule_version;
  std::string entity_type;
  std::string entity_id;
  std::string decided_at;        // RFC 3339 processing time of the decision
  nlohmann::json evidence;       // the decision's evidence (numbers for messages)
  nlohmann::json intent;         // the action object, e.g. {"action":"set_budget",...}
};

struct ActionResult {
  enum class Outcome {
    kSucceeded,   // the effect happened (or the receiver says it already had: idempotent replay)
    kRetryable,   // worth another attempt: timeout, connection error, 5xx, 429
    kFailed,      // permanent: 4xx other than 408/409/425/429, bad configuration, bad intent
  };
  Outcome outcome = Outcome::kFailed;
  int http_status = 0;                       // 0 when no HTTP answer arrived
  std::string response_excerpt;              // at most 2 KiB of the answer, for the log
  std::string error;                         // what went wrong, in words (empty on success)
  double latency_ms = 0;
  std::optional<std::int64_t> retry_after_ms;  // from a 429/503 Retry-After header
  // For effects on platform objects: the object's state before and after, when the receiver
  // reports it (e.g. {"status":"active","daily_budget":500}).
  nlohmann::json before;
  nlohmann::json after;
};

const char* OutcomeName(ActionResult::Outcome o);  // "succeeded" | "retryable" | "failed"

class Executor {
 public:
  virtual ~Executor() = default;
  // One attempt. Never throws; every failure is a result.
  virtual ActionResult Execute(const ActionRequest& request) = 0;
};

}  // namespace gavel::actions
