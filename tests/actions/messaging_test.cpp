// Email / messaging / CRM hand-offs: templates rendered from the decision, posted signed to a
// local receiver standing in for the provider relay.
#include "actions/messaging.hpp"

#include <catch2/catch.hpp>

#include "receiver.hpp"

using gavel::actions::ActionRequest;
using gavel::actions::ActionResult;
using gavel::actions::MessagingExecutor;
using gavel::actions::MessagingOptions;
using gavel::actions::RenderTemplate;
using gavel::actions::UnixSecondsNow;
using gavel::actions::VerifySignature;
using gavel_test::Receiver;
using json = nlohmann::json;
using O = ActionResult::Outcome;

namespace {

ActionRequest Journey(json intent) {
  ActionRequest r;
  r.idempotency_key = "88.0";
  r.decision_id = 88;
  r.rule = "onboarding";
  r.rule_version = "j1";
  r.entity_type = "lead";
  r.entity_id = "L-7";
  r.decided_at = "2026-11-01T09:00:00.000Z";
  r.evidence = {
      {"score.lead_score", 35.5}, {"entity.title", "Director"}, {"event.guide", "pricing-101"}};
  r.intent = std::move(intent);
  return r;
}

MessagingOptions Options(const Receiver& email, const Receiver& whatsapp) {
  MessagingOptions o;
  o.channels["email"].url = email.Url("/relay/email");
  o.channels["email"].secret = "email-secret";
  o.channels["email"].templates["welcome_guide"] = {
      "Your guide {event.guide} is here",
      "Hi {entity.id}, as a {entity.title} you will like this. "
      "Score {{not a placeholder}}: {score.lead_score}."};
  o.channels["email"].templates["broken"] = {"Hello {first_name}", "x"};
  o.channels["whatsapp"].url = whatsapp.Url("/relay/whatsapp");
  o.channels["whatsapp"].secret = "wa-secret";
  o.channels["whatsapp"].templates["ugc_video"] = {
      "", "Watch how teams like yours use us ({rule}, {to})"};
  return o;
}

}  // namespace

TEST_CASE("templates fill placeholders from the decision and keep doubled braces literal",
          "[actions][messaging]") {
  ActionRequest r = Journey({{"action", "email"}, {"template", "t"}, {"to", "lead:L-7"}});
  auto ok = RenderTemplate(
      "{rule}/{decision_id}/{entity.type}/{entity.id}/{evidence.entity.title}/{{x}}", r, "email");
  REQUIRE(ok.ok);
  CHECK(ok.text == "onboarding/88/lead/L-7/Director/{x}");
  auto missing = RenderTemplate("Hi {first_name}", r, "email");
  CHECK_FALSE(missing.ok);
  CHECK(missing.error == "no value for {first_name}");
  CHECK_FALSE(RenderTemplate("Hi {unclosed", r, "email").ok);
}

TEST_CASE("an email intent is rendered and posted signed, with its idempotency key",
          "[actions][messaging]") {
  Receiver email, whatsapp;
  MessagingExecutor exec(Options(email, whatsapp));
  ActionResult res = exec.Execute(Journey(
      {{"action", "email"}, {"template", "welcome_guide"}, {"to", "lead:L-7"}, {"mode", "live"}}));
  INFO(res.error);
  REQUIRE(res.outcome == O::kSucceeded);
  auto seen = email.Requests();
  REQUIRE(seen.size() == 1);
  CHECK(whatsapp.Requests().empty());
  CHECK(seen[0].path == "/relay/email");
  CHECK(seen[0].Header("Idempotency-Key") == "88.0");
  CHECK(VerifySignature("email-secret", seen[0].Header("X-Gavel-Timestamp"),
                        seen[0].Header("X-Gavel-Signature"), seen[0].body, UnixSecondsNow())
            .ok);
  json body = json::parse(seen[0].body);
  CHECK(body["channel"] == "email");
  CHECK(body["template"] == "welcome_guide");
  CHECK(body["to"] == json({{"type", "lead"}, {"id", "L-7"}}));
  CHECK(body["subject"] == "Your guide pricing-101 is here");
  CHECK(body["body"] ==
        "Hi L-7, as a Director you will like this. Score {not a placeholder}: 35.50.");
  CHECK(body["variables"]["entity.title"] == "Director");
  CHECK(body["action"]["action"] == "email");
  CHECK(body["decision_id"] == 88);
}

TEST_CASE("a message intent goes to the channel named by via", "[actions][messaging]") {
  Receiver email, whatsapp;
  MessagingExecutor exec(Options(email, whatsapp));
  ActionResult res = exec.Execute(Journey(
      {{"action", "message"}, {"template", "ugc_video"}, {"via", "whatsapp"}, {"to", "lead:L-7"}}));
  REQUIRE(res.outcome == O::kSucceeded);
  auto seen = whatsapp.Requests();
  REQUIRE(seen.size() == 1);
  json body = json::parse(seen[0].body);
  CHECK(body["body"] == "Watch how teams like yours use us (onboarding, lead:L-7)");
  CHECK(body["subject"] == "");
  CHECK(VerifySignature("wa-secret", seen[0].Header("X-Gavel-Timestamp"),
                        seen[0].Header("X-Gavel-Signature"), seen[0].body, UnixSecondsNow())
            .ok);
}

TEST_CASE("a missing template, channel or value fails without sending", "[actions][messaging]") {
  Receiver email, whatsapp;
  MessagingExecutor exec(Options(email, whatsapp));
  ActionResult no_template = exec.Execute(Journey({{"action", "email"}, {"template", "nope"}}));
  CHECK(no_template.outcome == O::kFailed);
  CHECK(no_template.error.find("no template 'nope'") != std::string::npos);
  ActionResult no_channel =
      exec.Execute(Journey({{"action", "message"}, {"template", "ugc_video"}, {"via", "sms"}}));
  CHECK(no_channel.outcome == O::kFailed);
  ActionResult hole = exec.Execute(Journey({{"action", "email"}, {"template", "broken"}}));
  CHECK(hole.outcome == O::kFailed);
  CHECK(hole.error.find("{first_name}") != std::string::npos);
  CHECK(exec.Execute(Journey({{"action", "pause"}})).outcome == O::kFailed);
  CHECK(email.Requests().empty());
  CHECK(whatsapp.Requests().empty());
}

TEST_CASE("a relay that fails with a 503 gives a retryable result", "[actions][messaging]") {
  Receiver email, whatsapp;
  email.Script({gavel_test::Reply{503, "maintenance", {{"Retry-After", "5"}}}});
  MessagingExecutor exec(Options(email, whatsapp));
  ActionResult res = exec.Execute(Journey({{"action", "email"}, {"template", "welcome_guide"}}));
  CHECK(res.outcome == O::kRetryable);
  CHECK(res.retry_after_ms == 5000);
}
