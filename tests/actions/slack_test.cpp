// The Slack Block Kit payload (validity within Slack's limits, whatever the input) and the
// executor posting it to a local receiver standing in for an incoming webhook.
#include "actions/slack.hpp"

#include <catch2/catch.hpp>
#include <regex>

#include "receiver.hpp"

using gavel::actions::ActionRequest;
using gavel::actions::ActionResult;
using gavel::actions::BuildSlackPayload;
using gavel::actions::SlackEscape;
using gavel::actions::SlackExecutor;
using gavel::actions::SlackLimits;
using gavel::actions::SlackOptions;
using gavel_test::Receiver;
using gavel_test::Reply;
using json = nlohmann::json;
using O = ActionResult::Outcome;

namespace {

// Every rule of Block Kit we rely on; returns "" or what is wrong.
std::string Invalid(const json& p) {
  if (!p.is_object()) return "payload is not an object";
  if (!p.contains("text") || !p["text"].is_string() || p["text"].get<std::string>().empty())
    return "no fallback text";
  if (p["text"].get<std::string>().size() > SlackLimits::kMaxFallbackText)
    return "fallback too long";
  if (!p.contains("blocks") || !p["blocks"].is_array() || p["blocks"].empty()) return "no blocks";
  if (p["blocks"].size() > SlackLimits::kMaxBlocks) return "more than 50 blocks";
  std::size_t total = 0;
  auto text_ok = [&](const json& t, const char* type, std::size_t max) -> std::string {
    if (!t.is_object() || t.value("type", "") != type)
      return std::string("text object is not ") + type;
    if (!t.contains("text") || !t["text"].is_string()) return "text object without text";
    const std::string s = t["text"].get<std::string>();
    if (s.empty()) return "empty text";
    if (s.size() > max)
      return "text longer than " + std::to_string(max) + ": " + std::to_string(s.size());
    total += s.size();
    return "";
  };
  for (const auto& b : p["blocks"]) {
    const std::string type = b.value("type", "");
    std::string why;
    if (type == "header") {
      why = text_ok(b["text"], "plain_text", SlackLimits::kMaxHeaderText);
    } else if (type == "section") {
      why = text_ok(b["text"], "mrkdwn", SlackLimits::kMaxSectionText);
      if (why.empty() && b.contains("accessory")) {
        const json& a = b["accessory"];
        if (a.value("type", "") != "button")
          why = "accessory is not a button";
        else if ((why = text_ok(a["text"], "plain_text", SlackLimits::kMaxButtonText)).empty()) {
          const std::string url = a.value("url", "");
          if (url.empty() || url.size() > SlackLimits::kMaxButtonUrl) why = "bad button url";
        }
      }
    } else if (type == "context") {
      if (!b["elements"].is_array() || b["elements"].empty() ||
          b["elements"].size() > SlackLimits::kMaxContextElements)
        why = "context elements";
      for (const auto& e : b["elements"])
        if (why.empty()) why = text_ok(e, "mrkdwn", SlackLimits::kMaxSectionText);
    } else {
      why = "unknown block type '" + type + "'";
    }
    if (!why.empty()) return why;
  }
  if (total > SlackLimits::kMaxTotalText) return "total text " + std::to_string(total);
  try {
    (void)p.dump();  // throws on invalid UTF-8
  } catch (const std::exception& e) {
    return std::string("not serialisable: ") + e.what();
  }
  return "";
}

std::string AllText(const json& p) {
  std::string s = p["text"].get<std::string>();
  for (const auto& b : p["blocks"]) {
    if (b.contains("text")) s += "\n" + b["text"]["text"].get<std::string>();
    if (b.contains("elements"))
      for (const auto& e : b["elements"]) s += "\n" + e["text"].get<std::string>();
  }
  return s;
}

ActionRequest AlertRequest(const json& entities, const std::string& state = "firing") {
  ActionRequest r;
  r.idempotency_key = "42.0";
  r.decision_id = 42;
  r.rule = "spend_spike";
  r.rule_version = "v-abc123";
  r.entity_type = "campaign_hourly";
  r.entity_id =
      entities.size() == 1 && entities[0].is_string() ? entities[0].get<std::string>() : "*";
  r.decided_at = "2026-11-01T10:00:00.000Z";
  r.evidence = {{"entities", entities}, {"group", {{"channel", "meta"}}}};
  r.intent = {{"action", "notify_slack"},
              {"channel", "#marketing-oncall"},
              {"severity", "page"},
              {"state", state},
              {"entities", entities},
              {"runbook", "https://wiki.example.com/runbooks/spend-spike"},
              {"mode", "live"}};
  return r;
}

}  // namespace

TEST_CASE(
    "a firing alert becomes a header with severity, entity list, runbook button and provenance",
    "[actions][slack]") {
  json p = BuildSlackPayload(AlertRequest(json::array({"c-001", "c-002", "c-003"})));
  INFO(p.dump(2));
  REQUIRE(Invalid(p).empty());
  const auto& blocks = p["blocks"];
  CHECK(blocks[0]["type"] == "header");
  const std::string header = blocks[0]["text"]["text"];
  CHECK(header.find(":rotating_light:") != std::string::npos);
  CHECK(header.find("spend_spike") != std::string::npos);
  CHECK(header.find("PAGE") != std::string::npos);
  const std::string all = AllText(p);
  CHECK(all.find("3 campaign_hourly firing") != std::string::npos);
  CHECK(all.find("channel: meta") != std::string::npos);
  CHECK(all.find("`c-001`, `c-002`, `c-003`") != std::string::npos);
  CHECK(all.find("decision 42") != std::string::npos);
  CHECK(all.find("v-abc123") != std::string::npos);
  bool button = false;
  for (const auto& b : blocks)
    if (b.contains("accessory") &&
        b["accessory"]["url"] == "https://wiki.example.com/runbooks/spend-spike")
      button = true;
  CHECK(button);
  CHECK(p["text"].get<std::string>().find("[PAGE] spend_spike firing: 3 campaign_hourly") !=
        std::string::npos);
}

TEST_CASE("a resolved alert gives a resolve message", "[actions][slack]") {
  json p = BuildSlackPayload(AlertRequest(json::array({"c-001"}), "resolved"));
  REQUIRE(Invalid(p).empty());
  const std::string header = p["blocks"][0]["text"]["text"];
  CHECK(header.find(":white_check_mark:") != std::string::npos);
  CHECK(header.find("Resolved: spend_spike") != std::string::npos);
  CHECK(AllText(p).find("back to normal") != std::string::npos);
  CHECK(p["text"].get<std::string>().rfind("Resolved: spend_spike", 0) == 0);
}

TEST_CASE("entities given as objects show their numbers, one section each", "[actions][slack]") {
  json entities =
      json::array({{{"id", "as_0001"}, {"cpa", 123.456}, {"target_cpa", 50}, {"spend", 1234567.0}},
                   {{"id", "as_0002"}, {"cpa", 0.0123456}, {"conversions", 3}}});
  ActionRequest r = AlertRequest(entities);
  r.entity_type = "adset_daily";
  json p = BuildSlackPayload(r);
  INFO(p.dump(2));
  REQUIRE(Invalid(p).empty());
  const std::string all = AllText(p);
  CHECK(all.find("`as_0001`") != std::string::npos);
  CHECK(all.find("cpa: *123.46*") != std::string::npos);
  CHECK(all.find("target_cpa: *50*") != std::string::npos);
  CHECK(all.find("spend: *1234567*") != std::string::npos);
  CHECK(all.find("cpa: *0.01235*") != std::string::npos);
}

TEST_CASE("a rule's notification shows its text and the evidence numbers of its entity",
          "[actions][slack]") {
  ActionRequest r;
  r.decision_id = 7;
  r.rule = "pause_high_cpa";
  r.rule_version = "h1";
  r.entity_type = "adset_daily";
  r.entity_id = "as_0042";
  r.evidence = {{"cpa", 88.5},
                {"adset.target_cpa", 40},
                {"window", {{"from", "2026-10-29"}, {"to", "2026-11-01"}}}};
  r.intent = {{"action", "notify_slack"},
              {"channel", "#paid-alerts"},
              {"text", "Paused Meta <A&B>: CPA 88.5 vs target 40"},
              {"mode", "live"}};
  json p = BuildSlackPayload(r);
  INFO(p.dump(2));
  REQUIRE(Invalid(p).empty());
  const std::string all = AllText(p);
  CHECK(all.find("Paused Meta &lt;A&amp;B&gt;: CPA 88.5 vs target 40") != std::string::npos);
  CHECK(all.find("`as_0042`") != std::string::npos);
  CHECK(all.find("cpa: *88.50*") != std::string::npos);
  CHECK(all.find("adset.target_cpa: *40*") != std::string::npos);
  CHECK(all.find("window.from: *2026-10-29*") != std::string::npos);
  CHECK(p["blocks"][0]["text"]["text"].get<std::string>().find(":bell: pause_high_cpa") !=
        std::string::npos);
}

TEST_CASE("every text is escaped for mrkdwn: no raw angle brackets or ampersands from the input",
          "[actions][slack]") {
  CHECK(SlackEscape("a<b>&c") == "a&lt;b&gt;&amp;c");
  ActionRequest r = AlertRequest(json::array({"<!channel>", "a&b", "x>y"}));
  r.rule = "rule<&>";
  r.intent["text"] = "<https://evil.example|click me> & <@U123>";
  r.intent.erase("runbook");
  json p = BuildSlackPayload(r);
  REQUIRE(Invalid(p).empty());
  const std::string all = AllText(p);
  CHECK(all.find('<') == std::string::npos);
  CHECK(all.find('>') == std::string::npos);
  CHECK(all.find("&lt;!channel&gt;") != std::string::npos);
  CHECK(all.find("a&amp;b") != std::string::npos);
  // every & starts one of the three entities
  CHECK(std::regex_search(all, std::regex("&(?!amp;|lt;|gt;)")) == false);
}

TEST_CASE(
    "ten thousand entities with many numbers stay within the limits and say how many are left out",
    "[actions][slack]") {
  json entities = json::array();
  for (int i = 0; i < 10000; ++i) {
    json e = {{"id", "adset-" + std::to_string(i)}};
    for (int k = 0; k < 30; ++k) e["metric_" + std::to_string(k)] = i * 1.5 + k;
    entities.push_back(e);
  }
  json p = BuildSlackPayload(AlertRequest(entities));
  REQUIRE(Invalid(p).empty());
  const std::string all = AllText(p);
  std::size_t shown = 0;
  for (int i = 0; i < 10000; ++i)
    if (all.find("`adset-" + std::to_string(i) + "`") != std::string::npos) ++shown;
  CHECK(shown > 0);
  CHECK(shown < 10000);
  CHECK(all.find("and " + std::to_string(10000 - shown) + " more campaign_hourly") !=
        std::string::npos);
  CHECK(all.find("and more values") != std::string::npos);
}

TEST_CASE("a long list of bare ids is listed compactly and truncated with a count",
          "[actions][slack]") {
  json entities = json::array();
  for (int i = 0; i < 5000; ++i) entities.push_back("campaign-" + std::to_string(i));
  json p = BuildSlackPayload(AlertRequest(entities));
  REQUIRE(Invalid(p).empty());
  const std::string all = AllText(p);
  std::size_t shown = 0;
  for (int i = 0; i < 5000; ++i)
    if (all.find("`campaign-" + std::to_string(i) + "`") != std::string::npos) ++shown;
  CHECK(shown > 100);  // compact: many ids per section
  CHECK(all.find("and " + std::to_string(5000 - shown) + " more") != std::string::npos);
}

TEST_CASE("huge strings, invalid UTF-8 and odd JSON still give a valid payload",
          "[actions][slack]") {
  const std::string huge(100000, 'W');
  const std::string amp(5000, '&');
  std::string bad_utf8 = "caf\xC3 \xFF\xFE broken \xE2\x82 end";
  json entities =
      json::array({{{"id", huge}, {"note", huge}, {"weird", bad_utf8}},
                   {{"id", json::array({1, 2})}, {"nested", {{"deep", {{"deeper", 1}}}}}},
                   42,
                   nullptr,
                   {{"id", amp}, {"x", amp}}});
  ActionRequest r = AlertRequest(entities);
  r.rule = huge + bad_utf8;
  r.rule_version = huge;
  r.decided_at = bad_utf8;
  r.intent["text"] = amp + huge;
  r.intent["runbook"] = "https://wiki.example.com/" + huge;  // too long for a button url
  r.intent["severity"] = bad_utf8;
  json p = BuildSlackPayload(r);
  INFO(Invalid(p));
  REQUIRE(Invalid(p).empty());

  // A request with nothing in it at all.
  json empty = BuildSlackPayload(ActionRequest{});
  INFO(empty.dump());
  REQUIRE(Invalid(empty).empty());

  // Wrong types everywhere.
  ActionRequest odd;
  odd.intent = {
      {"entities", "not a list"}, {"severity", 5}, {"state", json::object()}, {"runbook", 3}};
  odd.evidence = json::array({1, 2, 3});
  REQUIRE(Invalid(BuildSlackPayload(odd)).empty());
}

TEST_CASE("the Slack executor posts the payload to the channel's webhook with the idempotency key",
          "[actions][slack]") {
  Receiver paid, oncall;
  SlackOptions o;
  o.webhook_urls["#paid-alerts"] = paid.Url("/services/T1/B1/paidsecret");
  o.webhook_urls["#marketing-oncall"] = oncall.Url("/services/T1/B2/oncallsecret");
  SlackExecutor slack(o);
  ActionRequest r = AlertRequest(json::array({"c-001"}));
  ActionResult res = slack.Execute(r);
  CHECK(res.outcome == O::kSucceeded);
  CHECK(res.http_status == 200);
  CHECK(paid.Requests().empty());
  auto seen = oncall.Requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].path == "/services/T1/B2/oncallsecret");
  CHECK(seen[0].Header("Content-Type").rfind("application/json", 0) == 0);
  CHECK(seen[0].Header("Idempotency-Key") == "42.0");
  json body = json::parse(seen[0].body);
  CHECK(body == BuildSlackPayload(r));
  CHECK(Invalid(body).empty());
}

TEST_CASE("a Slack channel without a webhook fails without sending, and never shows a URL",
          "[actions][slack]") {
  Receiver rx;
  SlackOptions o;
  o.webhook_urls["#paid-alerts"] = rx.Url("/services/secret");
  SlackExecutor slack(o);
  ActionRequest r = AlertRequest(json::array({"c-001"}));
  r.intent["channel"] = "#nowhere";
  ActionResult res = slack.Execute(r);
  CHECK(res.outcome == O::kFailed);
  CHECK(res.error.find("#nowhere") != std::string::npos);
  CHECK(res.error.find("secret") == std::string::npos);
  r.intent = {{"action", "pause"}};
  CHECK(slack.Execute(r).outcome == O::kFailed);
  CHECK(rx.Requests().empty());
}

TEST_CASE("Slack rate limiting is retryable with Retry-After; a removed webhook is a failure",
          "[actions][slack]") {
  Receiver rx;
  rx.Script({Reply{429, "rate_limited", {{"Retry-After", "30"}}}, Reply{404, "no_service"},
             Reply{500, "rollup_error"}});
  SlackOptions o;
  o.default_webhook_url = rx.Url("/services/x");
  SlackExecutor slack(o);
  ActionRequest r = AlertRequest(json::array({"c-001"}));
  ActionResult limited = slack.Execute(r);
  CHECK(limited.outcome == O::kRetryable);
  CHECK(limited.retry_after_ms == 30000);
  ActionResult gone = slack.Execute(r);
  CHECK(gone.outcome == O::kFailed);
  CHECK(gone.response_excerpt == "no_service");
  CHECK(slack.Execute(r).outcome == O::kRetryable);
  CHECK(rx.Requests().size() == 3);
}
