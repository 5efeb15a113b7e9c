// See messaging.hpp.
#include "actions/messaging.hpp"

#include <cmath>
#include <cstdio>
#include <optional>

namespace gavel::actions {

namespace {

using json = nlohmann::json;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Plain(const json& v) {
  switch (v.type()) {
    case json::value_t::string:
      return v.get<std::string>();
    case json::value_t::number_integer:
      return std::to_string(v.get<std::int64_t>());
    case json::value_t::number_unsigned:
      return std::to_string(v.get<std::uint64_t>());
    case json::value_t::number_float: {
      const double d = v.get<double>();
      if (!std::isfinite(d)) return "n/a";
      char buf[64];
      if (d == std::floor(d) && std::fabs(d) < 1e15)
        std::snprintf(buf, sizeof buf, "%.0f", d);
      else
        std::snprintf(buf, sizeof buf, "%.2f", d);
      return buf;
    }
    case json::value_t::boolean:
      return v.get<bool>() ? "true" : "false";
    default:
      return DumpJson(v);
  }
}

std::string ChannelOf(const json& intent) {
  const std::string action = Str(intent, "action");
  if (action == "email") return "email";
  if (action == "message") return Str(intent, "via");
  if (action == "crm") return "crm";
  return "";
}

std::pair<std::string, std::string> SplitTarget(const std::string& to, const ActionRequest& r) {
  const auto colon = to.find(':');
  if (to.empty()) return {r.entity_type, r.entity_id};
  if (colon == std::string::npos) return {r.entity_type, to};
  return {to.substr(0, colon), to.substr(colon + 1)};
}

std::optional<std::string> Lookup(const std::string& name, const ActionRequest& r,
                                  const std::string& channel) {
  const std::string to = Str(r.intent, "to");
  const auto [to_type, to_id] = SplitTarget(to, r);
  if (name == "rule") return r.rule;
  if (name == "rule_version") return r.rule_version;
  if (name == "decision_id") return std::to_string(r.decision_id);
  if (name == "decided_at") return r.decided_at;
  if (name == "entity.type") return to_type;
  if (name == "entity.id") return to_id;
  if (name == "to") return to.empty() ? r.entity_type + ":" + r.entity_id : to;
  if (name == "channel") return channel;
  if (name == "template") return Str(r.intent, "template");
  if (r.evidence.is_object()) {
    std::string key = name;
    auto it = r.evidence.find(key);
    if (it == r.evidence.end() && key.rfind("evidence.", 0) == 0)
      it = r.evidence.find(key.substr(9));
    if (it != r.evidence.end() && !it->is_null()) return Plain(*it);
  }
  return std::nullopt;
}

}  // namespace

Rendered RenderTemplate(std::string_view text, const ActionRequest& request,
                        const std::string& channel) {
  Rendered out;
  std::string& s = out.text;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      s.push_back('{');
      ++i;
      continue;
    }
    if (c == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      s.push_back('}');
      ++i;
      continue;
    }
    if (c != '{') {
      s.push_back(c);
      continue;
    }
    const auto close = text.find('}', i + 1);
    if (close == std::string_view::npos) {
      out.error = "unclosed '{' at offset " + std::to_string(i);
      return out;
    }
    std::string name(text.substr(i + 1, close - i - 1));
    while (!name.empty() && name.front() == ' ') name.erase(name.begin());
    while (!name.empty() && name.back() == ' ') name.pop_back();
    auto v = Lookup(name, request, channel);
    if (!v) {
      out.error = "no value for {" + name + "}";
      return out;
    }
    s += *v;
    i = close;
  }
  out.ok = true;
  return out;
}

MessagingExecutor::MessagingExecutor(MessagingOptions options)
    : options_(std::move(options)), client_(options_.http) {}

ActionResult MessagingExecutor::Execute(const ActionRequest& request) {
  ActionResult bad;
  bad.outcome = ActionResult::Outcome::kFailed;
  try {
    const json& intent = request.intent;
    const std::string action = Str(intent, "action");
    if (action != "email" && action != "message" && action != "crm") {
      bad.error =
          "the messaging executor performs email, message and crm intents, not '" + action + "'";
      return bad;
    }
    const std::string channel = ChannelOf(intent);
    if (channel.empty()) {
      bad.error = action + " intent without a channel (\"via\")";
      return bad;
    }
    auto ch = options_.channels.find(channel);
    if (ch == options_.channels.end()) {
      bad.error = "no messaging channel '" + channel + "' is configured";
      return bad;
    }
    const std::string template_name = Str(intent, "template");
    auto t = ch->second.templates.find(template_name);
    if (t == ch->second.templates.end()) {
      bad.error = "channel '" + channel + "' has no template '" + template_name + "'";
      return bad;
    }
    Rendered subject = RenderTemplate(t->second.subject, request, channel);
    Rendered text = RenderTemplate(t->second.body, request, channel);
    if (!subject.ok || !text.ok) {
      bad.error = "template '" + template_name + "' (" + channel +
                  "): " + (subject.ok ? text.error : subject.error);
      return bad;
    }
    const auto [to_type, to_id] = SplitTarget(Str(intent, "to"), request);
    json body = json::object();
    body["idempotency_key"] = request.idempotency_key;
    body["decision_id"] = request.decision_id;
    body["rule"] = request.rule;
    body["rule_version"] = request.rule_version;
    body["decided_at"] = request.decided_at;
    body["channel"] = channel;
    body["template"] = template_name;
    body["to"] = {{"type", to_type}, {"id", to_id}};
    body["subject"] = subject.text;
    body["body"] = text.text;
    body["variables"] = request.evidence.is_null() ? json::object() : request.evidence;
    body["action"] = intent;

    HttpRequest req;
    req.method = "POST";
    req.url = ch->second.url;
    req.label = "messaging channel '" + channel + "'";
    req.body = DumpJson(body);
    req.headers = SignedJsonHeaders(ch->second.secret, options_.now_unix_seconds(), req.body,
                                    request.idempotency_key);
    for (const auto& h : ch->second.extra_headers) req.headers.push_back(h);
    return ToActionResult(client_.Send(req));
  } catch (const std::exception& e) {
    bad.error = std::string("messaging: unexpected error: ") + e.what();
    return bad;
  }
}

}  // namespace gavel::actions
