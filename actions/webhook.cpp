// See webhook.hpp.
#include "actions/webhook.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <chrono>
#include <vector>

namespace gavel::actions {

namespace {

std::string Hex(const unsigned char* p, std::size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string SignPayload(std::string_view secret, std::int64_t timestamp, std::string_view body) {
  const std::string ts = std::to_string(timestamp);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  std::string joined;
  joined.reserve(ts.size() + 1 + body.size());
  joined.append(ts).append(".").append(body);
  static const char kEmptyKey = 0;  // HMAC() wants a non-null key pointer even when empty
  if (!HMAC(EVP_sha256(), secret.empty() ? &kEmptyKey : secret.data(),
            static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(joined.data()),
            joined.size(), mac, &mac_len))
    return "v1=";
  return "v1=" + Hex(mac, mac_len);
}

SignatureCheck VerifySignature(std::string_view secret, std::string_view timestamp_header,
                               std::string_view signature_header, std::string_view body,
                               std::int64_t now_unix_seconds, std::int64_t tolerance_seconds) {
  timestamp_header = Trim(timestamp_header);
  if (timestamp_header.empty() || timestamp_header.size() > 15)
    return {false, "missing or malformed X-Gavel-Timestamp"};
  std::int64_t ts = 0;
  for (char c : timestamp_header) {
    if (c < '0' || c > '9') return {false, "missing or malformed X-Gavel-Timestamp"};
    ts = ts * 10 + (c - '0');
  }
  const std::int64_t skew = now_unix_seconds > ts ? now_unix_seconds - ts : ts - now_unix_seconds;
  if (skew > tolerance_seconds) return {false, "timestamp outside the replay window"};
  const std::string expected = SignPayload(secret, ts, body);
  bool any = false;
  std::string_view rest = signature_header;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view entry = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (entry.rfind("v1=", 0) != 0) continue;
    any = true;
    if (entry.size() == expected.size() &&
        CRYPTO_memcmp(entry.data(), expected.data(), expected.size()) == 0)
      return {true, ""};
  }
  return {false, any ? "signature mismatch" : "missing X-Gavel-Signature v1 entry"};
}

HttpHeaders SignedJsonHeaders(std::string_view secret, std::int64_t timestamp,
                              std::string_view body, const std::string& idempotency_key) {
  HttpHeaders h;
  h.emplace_back("Content-Type", "application/json");
  if (!idempotency_key.empty()) h.emplace_back("Idempotency-Key", idempotency_key);
  h.emplace_back("X-Gavel-Timestamp", std::to_string(timestamp));
  if (!secret.empty()) h.emplace_back("X-Gavel-Signature", SignPayload(secret, timestamp, body));
  return h;
}

std::int64_t UnixSecondsNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json BuildWebhookBody(const ActionRequest& r) {
  nlohmann::json body = nlohmann::json::object();
  body["decision_id"] = r.decision_id;
  body["idempotency_key"] = r.idempotency_key;
  body["rule"] = r.rule;
  body["rule_version"] = r.rule_version;
  body["entity"] = {{"type", r.entity_type}, {"id", r.entity_id}};
  body["decided_at"] = r.decided_at;
  body["action"] = r.intent.is_null() ? nlohmann::json::object() : r.intent;
  body["evidence"] = r.evidence.is_null() ? nlohmann::json::object() : r.evidence;
  return body;
}

WebhookExecutor::WebhookExecutor(WebhookOptions options)
    : options_(std::move(options)), client_(options_.http) {}

ActionResult WebhookExecutor::Execute(const ActionRequest& request) {
  ActionResult bad;
  bad.outcome = ActionResult::Outcome::kFailed;
  try {
    const nlohmann::json& intent = request.intent;
    if (!intent.is_object() || !intent.contains("action") || !intent["action"].is_string() ||
        intent["action"].get<std::string>() != "webhook") {
      bad.error = "the webhook executor only performs {\"action\":\"webhook\"} intents";
      return bad;
    }
    if (!intent.contains("name") || !intent["name"].is_string()) {
      bad.error = "webhook intent without a \"name\"";
      return bad;
    }
    const std::string name = intent["name"].get<std::string>();
    auto it = options_.endpoints.find(name);
    if (it == options_.endpoints.end()) {
      bad.error = "no webhook endpoint named '" + name + "' is configured";
      return bad;
    }
    const WebhookEndpoint& ep = it->second;
    HttpRequest req;
    req.method = "POST";
    req.url = ep.url;
    req.label = "webhook '" + name + "'";
    req.body = DumpJson(BuildWebhookBody(request));
    req.headers = SignedJsonHeaders(ep.secret, options_.now_unix_seconds(), req.body,
                                    request.idempotency_key);
    for (const auto& h : ep.extra_headers) req.headers.push_back(h);
    return ToActionResult(client_.Send(req));
  } catch (const std::exception& e) {
    bad.error = std::string("webhook: unexpected error: ") + e.what();
    return bad;
  }
}

}  // namespace gavel::actions
