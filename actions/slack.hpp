// The Slack executor: posts a notify_slack intent to the channel's incoming webhook as a Block
// Kit message, and BuildSlackPayload, the pure function that makes that message.
//
// The message (https://api.slack.com/block-kit):
//   text     fallback for notifications and old clients: "[PAGE] spend_spike firing: 3 campaigns"
//   blocks   header   ":rotating_light: spend_spike · PAGE · firing" (emoji per severity; a
//                     resolve message has ":white_check_mark: Resolved: spend_spike")
//            section  the rule's rendered text, or a summary line for alerts (count, group)
//            section  one per entity with the numbers that triggered (from the intent's
//                     "entities" objects, or the decision evidence for a single entity); ids
//                     without numbers are listed compactly
//            context  "… and K more" when not every entity fits
//            section  runbook link, with a link button when the runbook is an http(s) URL
//            context  decision id, rule version, decided at, mode
// Every text is escaped for mrkdwn (&, <, >), invalid UTF-8 replaced, and cut (on a character
// and entity boundary, with "…") to Slack's limits; the block count and the total text stay
// well inside what Slack accepts, whatever the size of the input. The payload is always valid.
//
// Secrets: webhook URLs are secrets, passed in by value, never logged; errors name the channel.
// Threads: as Executor (the outbox's worker thread); BuildSlackPayload is pure and thread-safe.
#pragma once

#include <map>
#include <string>

#include "actions/action.hpp"
#include "actions/http_client.hpp"

namespace gavel::actions {

// Slack's documented limits that the builder keeps (bytes are counted, which is stricter than
// Slack's characters), and our own, tighter budget for the whole message.
struct SlackLimits {
  static constexpr std::size_t kMaxBlocks = 50;           // per message
  static constexpr std::size_t kMaxSectionText = 3000;    // section text
  static constexpr std::size_t kMaxHeaderText = 150;      // header plain_text
  static constexpr std::size_t kMaxButtonText = 75;       // button label
  static constexpr std::size_t kMaxButtonUrl = 3000;      // button url
  static constexpr std::size_t kMaxContextElements = 10;  // context elements
  // Ours: Slack rejects very long messages (msg_too_long / msg_blocks_too_long) below the sum of
  // the per-block limits; 10 000 bytes of block text reads well and stays clear of that.
  static constexpr std::size_t kMaxTotalText = 10000;
  static constexpr std::size_t kMaxFallbackText = 1000;  // the top-level "text"
  static constexpr std::size_t kMaxEntitySections = 30;  // entity sections before "… and K more"
  static constexpr std::size_t kMaxEntityText = 800;     // one entity's section
  static constexpr std::size_t kMaxNumbersPerEntity = 12;  // numbers shown per entity
};

// The Block Kit message for a notify_slack request (see above). Never throws.
nlohmann::json BuildSlackPayload(const ActionRequest& request);

// Escapes &, < and > for Slack mrkdwn (and replaces invalid UTF-8 with U+FFFD).
std::string SlackEscape(std::string_view text);

struct SlackOptions {
  // Channel as written in the rule ("#paid-alerts") → incoming-webhook URL (a secret).
  std::map<std::string, std::string> webhook_urls;
  // Used for a channel without its own URL; empty: such a channel is a configuration error.
  std::string default_webhook_url;
  HttpClientOptions http;
};

class SlackExecutor final : public Executor {
 public:
  explicit SlackExecutor(SlackOptions options);
  // Intent {"action":"notify_slack","channel":C,...}: one POST of BuildSlackPayload to C's
  // webhook. Slack answers 200 "ok"; 429 carries Retry-After.
  ActionResult Execute(const ActionRequest& request) override;

 private:
  SlackOptions options_;
  HttpClient client_;
};

}  // namespace gavel::actions
