// See slack.hpp.
#include "actions/slack.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "actions/webhook.hpp"  // DumpJson

namespace gavel::actions {

namespace {

using L = SlackLimits;
using json = nlohmann::json;

// Replaces every invalid UTF-8 sequence (bad lead byte, truncated or overlong sequence,
// surrogate, beyond U+10FFFF) with U+FFFD, so lengths do not change at serialisation.
std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80)
        ok = false;
      else
        cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (ok) {
      if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
          cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        ok = false;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

// Cuts escaped text to `max` bytes with a trailing "…", never inside a UTF-8 character or an
// HTML entity (&amp; &lt; &gt;).
std::string Clip(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  static const std::string kEllipsis = "\xE2\x80\xA6";  // …
  std::string cut = Utf8Prefix(text, max > kEllipsis.size() ? max - kEllipsis.size() : 0);
  const auto amp = cut.rfind('&');
  if (amp != std::string::npos && cut.find(';', amp) == std::string::npos && cut.size() - amp < 6)
    cut.resize(amp);
  return cut + kEllipsis;
}

std::string EscClip(std::string_view raw, std::size_t max) { return Clip(SlackEscape(raw), max); }

// An id inside `code`: no backticks or line breaks that would end the span.
std::string CodeSpan(std::string_view raw, std::size_t max) {
  std::string s(raw);
  for (auto& c : s) {
    if (c == '`')
      c = '\'';
    else if (c == '\n' || c == '\r')
      c = ' ';
  }
  return "`" + EscClip(s, max) + "`";
}

std::string FormatNumber(double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (std::fabs(v) >= 1) {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.4g", v);
  }
  return buf;
}

std::string FormatValue(const json& v) {
  switch (v.type()) {
    case json::value_t::number_integer:
      return std::to_string(v.get<std::int64_t>());
    case json::value_t::number_unsigned:
      return std::to_string(v.get<std::uint64_t>());
    case json::value_t::number_float:
      return FormatNumber(v.get<double>());
    case json::value_t::string:
      return v.get<std::string>();
    case json::value_t::boolean:
      return v.get<bool>() ? "yes" : "no";
    case json::value_t::null:
      return "null";
    default:
      return Utf8Prefix(DumpJson(v), 200);
  }
}

std::string IdOf(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return FormatValue(v);
  return "?";
}

using Numbers = std::vector<std::pair<std::string, std::string>>;

// The values worth showing from an object: scalars, one level of nested objects as "a.b", and
// a baseline test list as "observed … expected …".
void AddNumbers(const json& obj, Numbers& out, const std::string& prefix = "") {
  if (!obj.is_object()) return;
  for (const auto& [k, v] : obj.items()) {
    if (out.size() > L::kMaxNumbersPerEntity + 1) return;  // enough to say "and more"
    if (prefix.empty() && (k == "id" || k == "entities" || k == "group")) continue;
    if (v.is_primitive()) {
      out.emplace_back(prefix + k, FormatValue(v));
    } else if (v.is_object() && prefix.empty()) {
      AddNumbers(v, out, k + ".");
    } else if (v.is_array() && k == "baseline") {
      for (const auto& t : v) {
        if (!t.is_object()) continue;
        std::string what = t.contains("test") ? FormatValue(t["test"]) : "baseline";
        std::string s;
        if (t.contains("observed")) s += "observed " + FormatValue(t["observed"]);
        if (t.contains("expected"))
          s += (s.empty() ? "" : ", ") + std::string("expected ") + FormatValue(t["expected"]);
        if (t.contains("score"))
          s += (s.empty() ? "" : ", ") + std::string("score ") + FormatValue(t["score"]);
        out.emplace_back(what, s);
      }
    } else if (v.is_array()) {
      out.emplace_back(prefix + k, std::to_string(v.size()) + " items");
    }
  }
}

struct Entity {
  std::string id;
  Numbers numbers;
};

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<Entity> EntitiesOf(const ActionRequest& r) {
  std::vector<Entity> out;
  const json* list = nullptr;
  if (r.intent.is_object()) {
    auto it = r.intent.find("entities");
    if (it != r.intent.end() && it->is_array()) list = &*it;
  }
  if (list && !list->empty()) {
    out.reserve(list->size());
    for (const auto& e : *list) {
      Entity ent;
      if (e.is_object()) {
        ent.id = e.contains("id") ? IdOf(e["id"]) : "?";
        AddNumbers(e, ent.numbers);
      } else {
        ent.id = IdOf(e);
      }
      out.push_back(std::move(ent));
    }
    // A single entity that is the decision's own: its numbers are the evidence.
    if (out.size() == 1 && out[0].numbers.empty() && out[0].id == r.entity_id)
      AddNumbers(r.evidence, out[0].numbers);
    return out;
  }
  if (!r.entity_id.empty() && r.entity_id != "*") {
    Entity ent;
    ent.id = r.entity_id;
    AddNumbers(r.evidence, ent.numbers);
    out.push_back(std::move(ent));
  }
  return out;
}

json Mrkdwn(std::string text) { return {{"type", "mrkdwn"}, {"text", std::move(text)}}; }

json Section(std::string mrkdwn_text) {
  if (mrkdwn_text.empty()) mrkdwn_text = " ";  // Slack refuses an empty text
  return {{"type", "section"}, {"text", Mrkdwn(std::move(mrkdwn_text))}};
}

json Context(std::string mrkdwn_text) {
  return {{"type", "context"}, {"elements", json::array({Mrkdwn(std::move(mrkdwn_text))})}};
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool IsLinkableUrl(const std::string& u) {
  if (u.rfind("https://", 0) != 0 && u.rfind("http://", 0) != 0) return false;
  if (u.size() > L::kMaxButtonUrl) return false;
  for (unsigned char c : u)
    if (c <= 0x20 || c == '<' || c == '>' || c == '|' || c == '"' || c >= 0x7F) return false;
  return true;
}

json BuildUnchecked(const ActionRequest& r) {
  const json& intent = r.intent;
  const std::string rule = r.rule.empty() ? std::string("gavel") : r.rule;
  const std::string severity = Str(intent, "severity");
  const std::string state = Str(intent, "state");
  const std::string text = Str(intent, "text");
  const std::string runbook = Str(intent, "runbook");
  const std::string mode = Str(intent, "mode");
  const bool resolved = state == "resolved";
  const bool alert = !state.empty();
  const std::string type = r.entity_type.empty() ? std::string("entities") : r.entity_type;
  const std::vector<Entity> entities = EntitiesOf(r);

  std::string emoji = ":bell:";
  if (resolved)
    emoji = ":white_check_mark:";
  else if (severity == "page")
    emoji = ":rotating_light:";
  else if (severity == "warning")
    emoji = ":warning:";
  else if (severity == "info")
    emoji = ":information_source:";

  // Header (plain text).
  std::string header;
  if (resolved) {
    header = emoji + " Resolved: " + rule;
  } else {
    header = emoji + " " + rule;
    if (!severity.empty()) header += " \xC2\xB7 " + Upper(severity);
    if (state == "firing")
      header += " \xC2\xB7 firing";
    else if (state == "repeat")
      header += " \xC2\xB7 still firing";
    else if (alert)
      header += " \xC2\xB7 " + state;
  }

  // Summary line.
  std::string group;
  if (r.evidence.is_object() && r.evidence.contains("group") && r.evidence["group"].is_object())
    for (const auto& [k, v] : r.evidence["group"].items())
      group += (group.empty() ? "" : ", ") + k + ": " + FormatValue(v);
  std::string summary;
  const std::string count = std::to_string(entities.size()) + " " + type;
  if (alert) {
    if (resolved)
      summary = "*" + SlackEscape(count) + " back to normal*";
    else if (state == "repeat")
      summary = "*" + SlackEscape(count) + " still firing*";
    else
      summary = "*" + SlackEscape(count) + " " + SlackEscape(state) + "*";
    if (!group.empty()) summary += " \xC2\xB7 " + SlackEscape(group);
    if (!text.empty()) summary += "\n" + SlackEscape(text);
  } else if (!text.empty()) {
    summary = SlackEscape(text);
  } else {
    summary = "*" + SlackEscape(rule) + "* decided about " + SlackEscape(type);
  }
  summary = Clip(summary, L::kMaxSectionText);

  // Fallback text.
  std::string fallback;
  if (resolved)
    fallback = "Resolved: " + rule + " (" + count + ")";
  else if (alert)
    fallback =
        (severity.empty() ? "" : "[" + Upper(severity) + "] ") + rule + " " + state + ": " + count;
  else
    fallback = rule + ": " + (text.empty() ? count : text);
  fallback = EscClip(fallback, L::kMaxFallbackText);

  // The tail: runbook and provenance.
  std::vector<json> tail;
  std::size_t tail_bytes = 0;
  if (!runbook.empty()) {
    if (IsLinkableUrl(runbook)) {
      std::string t = "*Runbook:* <" + SlackEscape(runbook) + "|" + EscClip(runbook, 200) + ">";
      if (t.size() > L::kMaxSectionText) t = "*Runbook:* use the button";
      json s = Section(t);
      s["accessory"] = {
          {"type", "button"},
          {"text", {{"type", "plain_text"}, {"text", "Open runbook"}, {"emoji", true}}},
          {"url", runbook},
          {"action_id", "open_runbook"}};
      tail_bytes += t.size() + runbook.size();
      tail.push_back(std::move(s));
    } else {
      std::string t = "*Runbook:* " + EscClip(runbook, 1000);
      tail_bytes += t.size();
      tail.push_back(Section(std::move(t)));
    }
  }
  {
    std::string ctx = "decision " + std::to_string(r.decision_id);
    if (!r.rule_version.empty()) ctx += " \xC2\xB7 rule version " + CodeSpan(r.rule_version, 80);
    if (!r.decided_at.empty()) ctx += " \xC2\xB7 decided " + EscClip(r.decided_at, 40);
    if (!mode.empty()) ctx += " \xC2\xB7 mode " + EscClip(mode, 20);
    ctx = Clip(ctx, 600);
    tail_bytes += ctx.size();
    tail.push_back(Context(std::move(ctx)));
  }

  json blocks = json::array();
  std::string head = EscClip(header, L::kMaxHeaderText);
  blocks.push_back(
      {{"type", "header"}, {"text", {{"type", "plain_text"}, {"text", head}, {"emoji", true}}}});
  blocks.push_back(Section(summary));
  std::size_t used = head.size() + summary.size() + tail_bytes;
  const std::size_t more_reserve = 100;  // the "… and K more" line

  // Entities, while the budget lasts.
  std::size_t shown = 0;
  std::size_t entity_blocks = 0;
  std::string list;  // entities without numbers, listed compactly
  std::size_t list_count = 0;
  auto fits = [&](std::size_t bytes) {
    return entity_blocks < L::kMaxEntitySections && used + bytes + more_reserve <= L::kMaxTotalText;
  };
  auto flush_list = [&] {
    if (list.empty()) return;
    blocks.push_back(Section(list));
    used += list.size();
    ++entity_blocks;
    shown += list_count;
    list.clear();
    list_count = 0;
  };
  for (const Entity& e : entities) {
    if (e.numbers.empty()) {
      std::string item = CodeSpan(e.id, 200);
      if (!list.empty()) {
        std::string next = list + ", " + item;
        if (next.size() <= L::kMaxSectionText &&
            used + next.size() + more_reserve <= L::kMaxTotalText) {
          list = std::move(next);
          ++list_count;
          continue;
        }
        flush_list();
      }
      if (!fits(item.size())) break;
      list = std::move(item);
      list_count = 1;
      continue;
    }
    flush_list();
    std::string s = "*" + SlackEscape(type) + "* " + CodeSpan(e.id, 200);
    std::size_t n = 0;
    for (const auto& [k, v] : e.numbers) {
      if (n == L::kMaxNumbersPerEntity) {
        s += "\n\xE2\x80\xA6 and more values";
        break;
      }
      s += "\n" + EscClip(k, 100) + ": *" + EscClip(v, 300) + "*";
      ++n;
    }
    s = Clip(s, L::kMaxEntityText);
    if (!fits(s.size())) break;
    blocks.push_back(Section(s));
    used += s.size();
    ++entity_blocks;
    ++shown;
  }
  flush_list();  // its size was checked as it grew
  if (shown < entities.size()) {
    const std::size_t rest = entities.size() - shown;
    blocks.push_back(
        Context("\xE2\x80\xA6 and " + std::to_string(rest) + " more " + EscClip(type, 60)));
  }
  for (auto& b : tail) blocks.push_back(std::move(b));

  json payload = json::object();
  payload["text"] = fallback;
  payload["blocks"] = std::move(blocks);
  payload["unfurl_links"] = false;
  payload["unfurl_media"] = false;
  return payload;
}

}  // namespace

std::string SlackEscape(std::string_view text) {
  const std::string clean = SanitizeUtf8(text);
  std::string out;
  out.reserve(clean.size());
  for (char c : clean) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

json BuildSlackPayload(const ActionRequest& request) {
  try {
    return BuildUnchecked(request);
  } catch (const std::exception&) {
    // Only a bug could get here; still send something valid rather than nothing.
    json blocks = json::array();
    blocks.push_back(Section("*" + EscClip(request.rule, 200) + "*: decision " +
                             std::to_string(request.decision_id)));
    return {
        {"text", EscClip(request.rule + ": decision " + std::to_string(request.decision_id), 500)},
        {"blocks", blocks}};
  }
}

SlackExecutor::SlackExecutor(SlackOptions options)
    : options_(std::move(options)), client_(options_.http) {}

ActionResult SlackExecutor::Execute(const ActionRequest& request) {
  ActionResult bad;
  bad.outcome = ActionResult::Outcome::kFailed;
  try {
    const nlohmann::json& intent = request.intent;
    if (Str(intent, "action") != "notify_slack") {
      bad.error = "the Slack executor only performs {\"action\":\"notify_slack\"} intents";
      return bad;
    }
    const std::string channel = Str(intent, "channel");
    std::string url;
    auto it = options_.webhook_urls.find(channel);
    if (it != options_.webhook_urls.end())
      url = it->second;
    else
      url = options_.default_webhook_url;
    if (url.empty()) {
      bad.error = "no Slack webhook is configured for channel '" + channel + "'";
      return bad;
    }
    HttpRequest req;
    req.method = "POST";
    req.url = url;
    req.label = "Slack channel '" + channel + "'";
    req.body = DumpJson(BuildSlackPayload(request));
    req.headers = {{"Content-Type", "application/json; charset=utf-8"}};
    if (!request.idempotency_key.empty())
      req.headers.emplace_back("Idempotency-Key", request.idempotency_key);
    return ToActionResult(client_.Send(req));
  } catch (const std::exception& e) {
    bad.error = std::string("slack: unexpected error: ") + e.what();
    return bad;
  }
}

}  // namespace gavel::actions
