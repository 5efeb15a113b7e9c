// CRM, email and messaging hand-offs: webhook-style adapters that render one of their own
// small templates and POST the result, signed like the webhook executor (webhook.hpp), to the
// provider-facing endpoint of a channel (an ESP relay, a WhatsApp/SMS gateway, a CRM intake).
//
// Intents (rules/engine_impl.hpp):
//   {"action":"email","template":"welcome_guide","to":"lead:L1"}              → channel "email"
//   {"action":"message","template":"ugc_video","via":"whatsapp","to":"lead:L1"} → channel
//   "whatsapp"
//   {"action":"crm","template":"mql","to":"lead:L1"}                          → channel "crm"
// Template text takes {placeholders}: {rule}, {decision_id}, {decided_at}, {entity.type},
// {entity.id}, {to}, {channel}, {template}, and any evidence key as the decision wrote it
// ({score.lead_score}, {entity.title}, {cpa}; with or without an "evidence." prefix). "{{" and
// "}}" are literal braces. A placeholder with no value is a failed result: a message with a
// hole in it is worse than no message.
//
// Body (compact JSON):
//   {"idempotency_key","decision_id","rule","rule_version","decided_at","channel","template",
//    "to":{"type","id"},"subject","body","variables":{…evidence…},"action":{…intent…}}
// Headers as the webhook executor: Content-Type, Idempotency-Key, X-Gavel-Timestamp,
// X-Gavel-Signature.
//
// Threads: as Executor (the outbox's worker thread). RenderTemplate is pure.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "actions/action.hpp"
#include "actions/http_client.hpp"
#include "actions/webhook.hpp"

namespace gavel::actions {

struct MessageTemplate {
  std::string subject;  // may be empty (messaging channels have none)
  std::string body;
};

struct MessagingChannel {
  std::string url;
  std::string secret;  // HMAC key (never logged); empty: unsigned
  HttpHeaders extra_headers;
  std::map<std::string, MessageTemplate> templates;  // template name → text
};

struct MessagingOptions {
  std::map<std::string, MessagingChannel> channels;  // "email", "whatsapp", "sms", "crm", ...
  HttpClientOptions http;
  std::function<std::int64_t()> now_unix_seconds = &UnixSecondsNow;
};

// Renders `text` for `request` (placeholders above). On a missing value returns a non-ok
// result naming the placeholder.
struct Rendered {
  bool ok = false;
  std::string text;
  std::string error;
};
Rendered RenderTemplate(std::string_view text, const ActionRequest& request,
                        const std::string& channel);

class MessagingExecutor final : public Executor {
 public:
  explicit MessagingExecutor(MessagingOptions options);
  ActionResult Execute(const ActionRequest& request) override;

 private:
  MessagingOptions options_;
  HttpClient client_;
};

}  // namespace gavel::actions
