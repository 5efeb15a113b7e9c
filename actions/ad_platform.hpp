// Ad platforms: one connector interface (pause, enable, set budget, read an object), one
// adapter per platform, and the executor that turns pause/enable/set_budget intents into
// connector calls.
//
// The adapter here speaks the "gavel reference ad-platform API v1" (docs/actions.md; the
// runnable server is examples/ad_platform_server.cpp, build/gavel-ad-platform):
//   GET  /v1/{kind}/{id}                 → 200 {"id","status","daily_budget","currency",
//                                                "updated_by","updated_at","version"}
//   POST /v1/{kind}/{id}/pause           → 200 {"id","changed","before":{…},"after":{…}}
//   POST /v1/{kind}/{id}/enable          → 200 same shape
//   PUT  /v1/{kind}/{id}/budget {"daily_budget":400.0,"currency":"USD"} → 200 same shape
// with `Authorization: Bearer <token>`, `Idempotency-Key` on every change (the server stores
// the first answer per key and replays it: a retry has no second effect) and `X-Actor`
// (recorded as updated_by, so a change made by a person shows as such on the next Get).
// A real platform (Meta, Google Ads, ...) gets its own small adapter behind the same interface.
//
// Threads: a connector and the executor are used from one thread at a time (the outbox's
// worker; the lead's manual-change check may own a second connector object).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "actions/action.hpp"
#include "actions/http_client.hpp"

namespace gavel::actions {

// An object on a platform: its kind as the platform names it ("adsets") and its id.
struct AdObjectRef {
  std::string kind;
  std::string id;
};

// What a platform says about an object.
struct AdObjectState {
  std::string id;
  std::string status;  // "active" | "paused" (platform words mapped to these)
  std::optional<double> daily_budget;
  std::string currency;
  std::string updated_by;         // who changed it last: "gavel", "person", ...
  std::string updated_at;         // RFC 3339
  std::int64_t version = 0;       // bumps on every change, when the platform has one
  nlohmann::json ToJson() const;  // {"status":…,"daily_budget":…,…} for ActionResult before/after
  static std::optional<AdObjectState> FromJson(const nlohmann::json& j);
};

struct AdObjectRead {
  ActionResult result;                 // outcome and HTTP facts of the read
  std::optional<AdObjectState> state;  // set when the read succeeded
};

class AdPlatformConnector {
 public:
  virtual ~AdPlatformConnector() = default;
  // Each change is one attempt under the given idempotency key; the result carries the
  // object's state before and after when the platform reports them. Never throws.
  virtual ActionResult Pause(const AdObjectRef& object, const std::string& idempotency_key) = 0;
  virtual ActionResult Enable(const AdObjectRef& object, const std::string& idempotency_key) = 0;
  virtual ActionResult SetBudget(const AdObjectRef& object, double daily_budget,
                                 const std::string& currency,
                                 const std::string& idempotency_key) = 0;
  // The object's current state (for before/after checks and detecting manual changes).
  virtual AdObjectRead Get(const AdObjectRef& object) = 0;
};

// ---------------------------------------------------------------- the reference adapter

struct ReferenceAdPlatformOptions {
  std::string base_url;         // e.g. "http://127.0.0.1:8089" (no trailing /v1)
  std::string token;            // bearer token (a secret)
  std::string actor = "gavel";  // sent as X-Actor, recorded by the platform as updated_by
  HttpClientOptions http;
};

class ReferenceAdPlatform final : public AdPlatformConnector {
 public:
  explicit ReferenceAdPlatform(ReferenceAdPlatformOptions options);
  ActionResult Pause(const AdObjectRef& object, const std::string& idempotency_key) override;
  ActionResult Enable(const AdObjectRef& object, const std::string& idempotency_key) override;
  ActionResult SetBudget(const AdObjectRef& object, double daily_budget,
                         const std::string& currency, const std::string& idempotency_key) override;
  AdObjectRead Get(const AdObjectRef& object) override;

 private:
  ActionResult Change(const std::string& method, const AdObjectRef& object, const std::string& verb,
                      const std::string& body, const std::string& idempotency_key);
  ReferenceAdPlatformOptions options_;
  HttpClient client_;
};

// ---------------------------------------------------------------- the executor

// Where an entity type lives: entity type "adset_daily" → platform "reference", kind "adsets".
struct AdEntityMapping {
  std::string platform;
  std::string object_kind;
  std::string default_currency = "USD";  // for a set_budget intent without one
};

struct AdPlatformExecutorOptions {
  std::map<std::string, AdEntityMapping> entity_types;  // entity type → mapping
  std::map<std::string, std::shared_ptr<AdPlatformConnector>>
      platforms;  // platform name → connector
};

class AdPlatformExecutor final : public Executor {
 public:
  explicit AdPlatformExecutor(AdPlatformExecutorOptions options);
  // Intents {"action":"pause"|"enable","target":"<entity type>:<id>"} and
  // {"action":"set_budget","target":…,"budget":400.0,"currency":"USD"}: one connector call,
  // before/after filled from the platform's answer. A target whose type has no mapping, an
  // unknown platform, a missing or negative budget: a failed result (never retried).
  ActionResult Execute(const ActionRequest& request) override;

 private:
  AdPlatformExecutorOptions options_;
};

// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
std::string EncodePathSegment(std::string_view s);

}  // namespace gavel::actions
