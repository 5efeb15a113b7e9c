// See ad_platform.hpp.
#include "actions/ad_platform.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "actions/webhook.hpp"  // DumpJson

namespace gavel::actions {

namespace {

using json = nlohmann::json;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

ActionResult Failed(std::string why) {
  ActionResult r;
  r.outcome = ActionResult::Outcome::kFailed;
  r.error = std::move(why);
  return r;
}

}  // namespace

nlohmann::json AdObjectState::ToJson() const {
  json j = json::object();
  j["status"] = status;
  if (daily_budget)
    j["daily_budget"] = *daily_budget;
  else
    j["daily_budget"] = nullptr;
  if (!currency.empty()) j["currency"] = currency;
  if (!updated_by.empty()) j["updated_by"] = updated_by;
  if (!updated_at.empty()) j["updated_at"] = updated_at;
  if (version) j["version"] = version;
  return j;
}

std::optional<AdObjectState> AdObjectState::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  AdObjectState s;
  s.id = Str(j, "id");
  s.status = Str(j, "status");
  if (s.status.empty()) return std::nullopt;
  auto b = j.find("daily_budget");
  if (b != j.end() && b->is_number()) s.daily_budget = b->get<double>();
  s.currency = Str(j, "currency");
  s.updated_by = Str(j, "updated_by");
  s.updated_at = Str(j, "updated_at");
  auto v = j.find("version");
  if (v != j.end() && v->is_number_integer()) s.version = v->get<std::int64_t>();
  return s;
}

std::string EncodePathSegment(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// ---------------------------------------------------------------- ReferenceAdPlatform

ReferenceAdPlatform::ReferenceAdPlatform(ReferenceAdPlatformOptions options)
    : options_(std::move(options)), client_(options_.http) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/')
    options_.base_url.pop_back();
}

ActionResult ReferenceAdPlatform::Change(const std::string& method, const AdObjectRef& object,
                                         const std::string& verb, const std::string& body,
                                         const std::string& idempotency_key) {
  if (object.kind.empty() || object.id.empty())
    return Failed("ad platform: object kind and id are required");
  HttpRequest req;
  req.method = method;
  req.url = options_.base_url + "/v1/" + EncodePathSegment(object.kind) + "/" +
            EncodePathSegment(object.id) + "/" + verb;
  req.label = "reference ad platform (" + verb + " " + object.kind + "/" + object.id + ")";
  req.body = body;
  req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  if (!options_.token.empty())
    req.headers.emplace_back("Authorization", "Bearer " + options_.token);
  if (!idempotency_key.empty()) req.headers.emplace_back("Idempotency-Key", idempotency_key);
  if (!options_.actor.empty()) req.headers.emplace_back("X-Actor", options_.actor);
  HttpResponse resp = client_.Send(req);
  ActionResult r = ToActionResult(resp);
  if (resp.status >= 200 && resp.status < 300) {
    json j = json::parse(resp.body, nullptr, false);
    if (j.is_object()) {
      auto before = AdObjectState::FromJson(j.value("before", json()));
      auto after = AdObjectState::FromJson(j.value("after", json()));
      if (before) r.before = before->ToJson();
      if (after) r.after = after->ToJson();
    }
  }
  return r;
}

ActionResult ReferenceAdPlatform::Pause(const AdObjectRef& object,
                                        const std::string& idempotency_key) {
  return Change("POST", object, "pause", "{}", idempotency_key);
}

ActionResult ReferenceAdPlatform::Enable(const AdObjectRef& object,
                                         const std::string& idempotency_key) {
  return Change("POST", object, "enable", "{}", idempotency_key);
}

ActionResult ReferenceAdPlatform::SetBudget(const AdObjectRef& object, double daily_budget,
                                            const std::string& currency,
                                            const std::string& idempotency_key) {
  if (!std::isfinite(daily_budget) || daily_budget < 0)
    return Failed("ad platform: a budget must be a finite number >= 0");
  json body = {{"daily_budget", daily_budget}};
  if (!currency.empty()) body["currency"] = currency;
  return Change("PUT", object, "budget", DumpJson(body), idempotency_key);
}

AdObjectRead ReferenceAdPlatform::Get(const AdObjectRef& object) {
  AdObjectRead out;
  if (object.kind.empty() || object.id.empty()) {
    out.result = Failed("ad platform: object kind and id are required");
    return out;
  }
  HttpRequest req;
  req.method = "GET";
  req.url = options_.base_url + "/v1/" + EncodePathSegment(object.kind) + "/" +
            EncodePathSegment(object.id);
  req.label = "reference ad platform (get " + object.kind + "/" + object.id + ")";
  req.headers = {{"Accept", "application/json"}};
  if (!options_.token.empty())
    req.headers.emplace_back("Authorization", "Bearer " + options_.token);
  HttpResponse resp = client_.Send(req);
  out.result = ToActionResult(resp);
  if (out.result.outcome == ActionResult::Outcome::kSucceeded) {
    out.state = AdObjectState::FromJson(json::parse(resp.body, nullptr, false));
    if (!out.state) {
      out.result.outcome = ActionResult::Outcome::kFailed;
      out.result.error = "reference ad platform: the answer is not an object state";
    } else {
      out.result.after = out.state->ToJson();
    }
  }
  return out;
}

// ---------------------------------------------------------------- AdPlatformExecutor

AdPlatformExecutor::AdPlatformExecutor(AdPlatformExecutorOptions options)
    : options_(std::move(options)) {}

ActionResult AdPlatformExecutor::Execute(const ActionRequest& request) {
  try {
    const json& intent = request.intent;
    const std::string action = Str(intent, "action");
    if (action != "pause" && action != "enable" && action != "set_budget")
      return Failed("the ad-platform executor performs pause, enable and set_budget, not '" +
                    action + "'");
    const std::string target = Str(intent, "target");
    const auto colon = target.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == target.size())
      return Failed("intent target '" + target + "' is not \"<entity type>:<id>\"");
    const std::string type = target.substr(0, colon);
    const std::string id = target.substr(colon + 1);
    auto m = options_.entity_types.find(type);
    if (m == options_.entity_types.end())
      return Failed("no ad platform is configured for entity type '" + type + "'");
    auto p = options_.platforms.find(m->second.platform);
    if (p == options_.platforms.end() || !p->second)
      return Failed("ad platform '" + m->second.platform + "' (for entity type '" + type +
                    "') is not configured");
    AdPlatformConnector& c = *p->second;
    const AdObjectRef object{m->second.object_kind, id};
    if (action == "pause") return c.Pause(object, request.idempotency_key);
    if (action == "enable") return c.Enable(object, request.idempotency_key);
    auto b = intent.find("budget");
    if (b == intent.end() || !b->is_number())
      return Failed("set_budget intent without a numeric \"budget\"");
    const double budget = b->get<double>();
    if (!std::isfinite(budget) || budget < 0)
      return Failed("set_budget: the budget must be a finite number >= 0");
    std::string currency = Str(intent, "currency");
    if (currency.empty()) currency = m->second.default_currency;
    return c.SetBudget(object, budget, currency, request.idempotency_key);
  } catch (const std::exception& e) {
    return Failed(std::string("ad platform: unexpected error: ") + e.what());
  }
}

}  // namespace gavel::actions
