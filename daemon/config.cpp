// The daemon's configuration file. See config.hpp and docs/operations.md.
#include "daemon/config.hpp"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "rules/clock.hpp"

namespace gavel::daemon {

namespace {

using nlohmann::json;

class Reader {
 public:
  std::vector<std::string> errors;

  void Error(const std::string& where, const std::string& what) { errors.push_back(where + ": " + what); }

  // Each field read is remembered so that unknown keys (typos) can be reported.
  void CheckKeys(const json& obj, const std::string& where, const std::set<std::string>& known) {
    for (const auto& [k, v] : obj.items()) {
      if (!known.count(k)) {
        std::string list;
        for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
        Error(Path(where, k), "unknown setting (known here: " + list + ")");
      }
    }
  }

  static std::string Path(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
  }

  bool String(const json& obj, const std::string& where, const char* key, std::string& out) {
    if (!obj.contains(key)) return false;
    const json& v = obj[key];
    if (!v.is_string()) {
      Error(Path(where, key), "must be a string");
      return false;
    }
    out = v.get<std::string>();
    return true;
  }
  void Bool(const json& obj, const std::string& where, const char* key, bool& out) {
    if (!obj.contains(key)) return;
    if (!obj[key].is_boolean()) return Error(Path(where, key), "must be true or false");
    out = obj[key].get<bool>();
  }
  void Int(const json& obj, const std::string& where, const char* key, std::int64_t lo, std::int64_t hi,
           std::int64_t& out) {
    if (!obj.contains(key)) return;
    const json& v = obj[key];
    if (!v.is_number_integer()) return Error(Path(where, key), "must be a whole number");
    std::int64_t n = v.get<std::int64_t>();
    if (n < lo || n > hi) {
      return Error(Path(where, key), "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    out = n;
  }
  void Duration(const json& obj, const std::string& where, const char* key, std::int64_t& out) {
    std::string text;
    if (!String(obj, where, key, text)) return;
    if (!ParseDurationMs(text, out)) {
      Error(Path(where, key), "`" + text + "` is not a duration (examples: 500ms, 2s, 5m, 36h, 7d, or 0)");
    }
  }
  void StringList(const json& obj, const std::string& where, const char* key, std::vector<std::string>& out) {
    if (!obj.contains(key)) return;
    const json& v = obj[key];
    if (v.is_string()) {
      out = {v.get<std::string>()};
      return;
    }
    if (!v.is_array()) return Error(Path(where, key), "must be a string or a list of strings");
    out.clear();
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) {
        Error(Path(where, key) + "[" + std::to_string(i) + "]", "must be a string");
        continue;
      }
      out.push_back(v[i].get<std::string>());
    }
  }
  // {"env": "NAME"} or {"file": "PATH"}.
  void SecretRef(const json& obj, const std::string& where, const char* key, bool required, Secret& out) {
    const std::string path = Path(where, key);
    if (!obj.contains(key)) {
      if (required) Error(path, "missing (give {\"env\": \"VARIABLE\"} or {\"file\": \"PATH\"})");
      return;
    }
    const json& v = obj[key];
    if (v.is_string()) {
      return Error(path,
                   "secrets are not written in the config file; give {\"env\": \"VARIABLE\"} or {\"file\": \"PATH\"}");
    }
    if (!v.is_object() || v.size() != 1 || !(v.contains("env") || v.contains("file")) ||
        !v.begin()->is_string()) {
      return Error(path, "must be {\"env\": \"VARIABLE\"} or {\"file\": \"PATH\"}");
    }
    const std::string name = v.begin()->get<std::string>();
    if (v.contains("env")) {
      const char* value = std::getenv(name.c_str());
      if (!value || !*value) return Error(path, "environment variable " + name + " is not set or empty");
      out = Secret(value, "env " + name);
      return;
    }
    std::ifstream in(name, std::ios::binary);
    if (!in) return Error(path, "cannot read secret file " + name);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string value = ss.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' ')) value.pop_back();
    if (value.empty()) return Error(path, "secret file " + name + " is empty");
    out = Secret(value, "file " + name);
  }
};

bool ParseListen(const std::string& text, std::string& host, int& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string p = text.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  port = std::stoi(p);
  return port <= 65535;
}

void ReadEndpoints(Reader& r, const json& root, const char* key, std::vector<EndpointConfig>& out) {
  if (!root.contains(key)) return;
  const json& v = root[key];
  if (!v.is_object()) return r.Error(key, "must be an object of name -> {\"url\": ..., \"secret\": ...}");
  for (const auto& [name, e] : v.items()) {
    const std::string where = std::string(key) + "." + name;
    if (!e.is_object()) {
      r.Error(where, "must be an object with `url` (and optionally `secret`)");
      continue;
    }
    r.CheckKeys(e, where, {"url", "secret"});
    EndpointConfig ep;
    ep.name = name;
    if (e.contains("url") && e["url"].is_object()) {
      // A URL that is itself the secret (Slack incoming webhooks): {"env": ...} or {"file": ...}.
      Secret url;
      r.SecretRef(e, where, "url", true, url);
      ep.url = url.value();
      if (!ep.url.empty() && ep.url.rfind("http://", 0) != 0 && ep.url.rfind("https://", 0) != 0) {
        r.Error(where + ".url", "the secret's value must start with http:// or https://");
      }
      r.SecretRef(e, where, "secret", false, ep.secret);
      out.push_back(std::move(ep));
      continue;
    }
    if (!r.String(e, where, "url", ep.url)) {
      if (!e.contains("url")) r.Error(where + ".url", "missing");
      continue;
    }
    if (ep.url.rfind("http://", 0) != 0 && ep.url.rfind("https://", 0) != 0) {
      r.Error(where + ".url", "must start with http:// or https://");
    }
    r.SecretRef(e, where, "secret", false, ep.secret);
    out.push_back(std::move(ep));
  }
}

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kIngest: return "ingest";
    case Role::kOperator: return "operator";
    case Role::kAuditor: return "auditor";
    case Role::kAdmin: return "admin";
  }
  return "?";
}

bool ParseDurationMs(const std::string& text, std::int64_t& out) {
  if (text == "0") {
    out = 0;
    return true;
  }
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0 || i > 12) return false;
  const std::int64_t n = std::stoll(text.substr(0, i));
  const std::string unit = text.substr(i);
  std::int64_t mult = 0;
  if (unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m") mult = 60 * 1000;
  else if (unit == "h") mult = 3600 * 1000;
  else if (unit == "d") mult = 24 * 3600 * 1000;
  else return false;
  out = n * mult;
  return true;
}

Config DefaultConfig() {
  Config c;
  // The sample events carry fixed dates (up to 2026-10-31); on a machine whose clock is
  // earlier they would be "in the future", so the built-in defaults accept any date.
  c.max_future_ms = 0;
  // Started without a configuration, gavel decides and logs but changes nothing.
  c.actions.execute = false;
  return c;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IoError("cannot read config file " + path);
  json root;
  try {
    root = json::parse(in, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    // e.what() names the byte offset; say it in the reader's terms.
    return Status::InvalidArgument(path + ": not valid JSON (comments allowed): " + e.what());
  }
  if (!root.is_object()) return Status::InvalidArgument(path + ": the config must be one JSON object");
  Config c = DefaultConfig();
  c.path = path;
  c.ingest_at_start.clear();  // only the built-in defaults ingest the sample events
  c.max_future_ms = Config{}.max_future_ms;
  Reader r;
  r.CheckKeys(root, "", {"listen", "http", "rules", "state", "warehouse", "freshness", "events", "clock",
                         "summary_interval", "slack", "webhooks", "actions", "auth", "log"});
  std::string listen;
  if (r.String(root, "", "listen", listen) && !ParseListen(listen, c.listen_host, c.listen_port)) {
    r.Error("listen", "`" + listen + "` is not HOST:PORT (e.g. 127.0.0.1:8080; port 0 picks a free one)");
  }
  if (root.contains("http")) {
    const json& h = root["http"];
    if (!h.is_object()) r.Error("http", "must be an object");
    else {
      r.CheckKeys(h, "http", {"threads", "max_body_bytes"});
      std::int64_t threads = c.http_threads;
      r.Int(h, "http", "threads", 1, 256, threads);
      c.http_threads = static_cast<int>(threads);
      r.Int(h, "http", "max_body_bytes", 1024, std::int64_t{1} << 32, c.max_body_bytes);
    }
  }
  if (root.contains("rules")) {
    const json& v = root["rules"];
    if (v.is_object()) {
      r.CheckKeys(v, "rules", {"paths", "watch", "watch_interval"});
      r.StringList(v, "rules", "paths", c.rules);
      r.Bool(v, "rules", "watch", c.watch_rules);
      r.Duration(v, "rules", "watch_interval", c.watch_interval_ms);
    } else {
      r.StringList(root, "", "rules", c.rules);
    }
    if (c.rules.empty()) r.Error("rules", "needs at least one file or directory");
  }
  if (root.contains("state")) {
    const json& s = root["state"];
    if (!s.is_object()) r.Error("state", "must be an object");
    else {
      r.CheckKeys(s, "state", {"path", "synchronous", "journal", "snapshot_every", "snapshot_events"});
      r.String(s, "state", "path", c.state_db);
      r.Bool(s, "state", "journal", c.journal);
      r.Duration(s, "state", "snapshot_every", c.snapshot_every_ms);
      r.Int(s, "state", "snapshot_events", 1, std::int64_t{1} << 40, c.snapshot_events);
      std::string sync;
      if (r.String(s, "state", "synchronous", sync)) {
        if (sync == "full") c.synchronous_full = true;
        else if (sync == "normal") c.synchronous_full = false;
        else r.Error("state.synchronous", "must be `normal` (survives crashes) or `full` (survives power loss)");
      }
    }
  }
  if (root.contains("warehouse")) {
    const json& w = root["warehouse"];
    if (!w.is_object()) r.Error("warehouse", "must be an object");
    else {
      r.CheckKeys(w, "warehouse", {"kind", "path"});
      r.String(w, "warehouse", "kind", c.warehouse_kind);
      r.String(w, "warehouse", "path", c.warehouse_path);
      if (c.warehouse_kind != "sqlite" && c.warehouse_kind != "none") {
        r.Error("warehouse.kind", "`" + c.warehouse_kind + "`: must be `sqlite` or `none` (PostgreSQL comes later)");
      }
    }
  }
  if (root.contains("freshness")) {
    const json& f = root["freshness"];
    if (!f.is_object()) r.Error("freshness", "must be an object");
    else {
      r.CheckKeys(f, "freshness", {"default"});
      r.Duration(f, "freshness", "default", c.default_freshness_ms);
    }
  }
  if (root.contains("events")) {
    const json& e = root["events"];
    if (!e.is_object()) r.Error("events", "must be an object");
    else {
      r.CheckKeys(e, "events", {"max_future", "ingest_at_start"});
      r.Duration(e, "events", "max_future", c.max_future_ms);
      r.StringList(e, "events", "ingest_at_start", c.ingest_at_start);
    }
  }
  if (root.contains("clock")) {
    const json& k = root["clock"];
    if (!k.is_object()) r.Error("clock", "must be an object");
    else {
      r.CheckKeys(k, "clock", {"mode", "start"});
      std::string mode = "wall";
      r.String(k, "clock", "mode", mode);
      if (mode == "simulated") c.simulated_clock = true;
      else if (mode != "wall") r.Error("clock.mode", "must be `wall` or `simulated`");
      std::string start;
      if (r.String(k, "clock", "start", start)) {
        if (!rules::ParseTime(start, c.clock_start_ms)) r.Error("clock.start", "`" + start + "` is not an RFC 3339 time");
      } else if (c.simulated_clock) {
        r.Error("clock.start", "a simulated clock needs a start time");
      }
    }
  }
  r.Duration(root, "", "summary_interval", c.summary_interval_ms);
  ReadEndpoints(r, root, "slack", c.slack);
  ReadEndpoints(r, root, "webhooks", c.webhooks);
  for (const auto& ep : c.slack) c.actions.slack_urls[ep.name] = ep.url;
  for (const auto& ep : c.webhooks) c.actions.webhooks[ep.name] = {ep.url, ep.secret.value(), {}};
  if (root.contains("actions")) {
    const json& a = root["actions"];
    if (!a.is_object()) r.Error("actions", "must be an object");
    else {
      ActionsSettings& as = c.actions;
      r.CheckKeys(a, "actions", {"execute", "escalation_channel", "max_changes_per_entity_per_day", "manual_hold", "retry",
                                 "verify_tls", "ad_platforms", "entities", "messaging"});
      r.Bool(a, "actions", "execute", as.execute);
      r.String(a, "actions", "escalation_channel", as.escalation_channel);
      std::int64_t budget = as.max_changes_per_entity_per_day;
      r.Int(a, "actions", "max_changes_per_entity_per_day", 0, 1000, budget);
      as.max_changes_per_entity_per_day = static_cast<int>(budget);
      r.Duration(a, "actions", "manual_hold", as.manual_hold_ms);
      r.Bool(a, "actions", "verify_tls", as.verify_tls);
      if (a.contains("retry")) {
        const json& rt = a["retry"];
        if (!rt.is_object()) r.Error("actions.retry", "must be an object");
        else {
          r.CheckKeys(rt, "actions.retry", {"max_attempts", "base_delay", "max_delay"});
          std::int64_t attempts = as.retry.max_attempts;
          r.Int(rt, "actions.retry", "max_attempts", 1, 100, attempts);
          as.retry.max_attempts = static_cast<int>(attempts);
          r.Duration(rt, "actions.retry", "base_delay", as.retry.base_delay_ms);
          r.Duration(rt, "actions.retry", "max_delay", as.retry.max_delay_ms);
        }
      }
      if (a.contains("ad_platforms")) {
        const json& pl = a["ad_platforms"];
        if (!pl.is_object()) r.Error("actions.ad_platforms", "must be an object of name -> {\"url\", \"token\"}");
        for (auto it = pl.begin(); pl.is_object() && it != pl.end(); ++it) {
          const std::string where = "actions.ad_platforms." + it.key();
          if (!it->is_object()) {
            r.Error(where, "must be {\"url\": ..., \"token\": {\"env\": ...}}");
            continue;
          }
          r.CheckKeys(*it, where, {"url", "token"});
          ActionsSettings::Platform platform;
          if (!r.String(*it, where, "url", platform.url)) r.Error(where + ".url", "missing");
          Secret token;
          r.SecretRef(*it, where, "token", true, token);
          platform.token = token.value();
          as.ad_platforms[it.key()] = platform;
        }
      }
      if (a.contains("entities")) {
        const json& en = a["entities"];
        if (!en.is_object()) r.Error("actions.entities", "must be an object of entity type -> {\"platform\", \"object\"}");
        for (auto it = en.begin(); en.is_object() && it != en.end(); ++it) {
          const std::string where = "actions.entities." + it.key();
          if (!it->is_object()) {
            r.Error(where, "must be {\"platform\": ..., \"object\": ...}");
            continue;
          }
          r.CheckKeys(*it, where, {"platform", "object", "currency"});
          actions::AdEntityMapping m;
          if (!r.String(*it, where, "platform", m.platform)) r.Error(where + ".platform", "missing");
          if (!r.String(*it, where, "object", m.object_kind)) r.Error(where + ".object", "missing");
          r.String(*it, where, "currency", m.default_currency);
          as.entities[it.key()] = m;
        }
      }
      if (a.contains("messaging")) {
        const json& ms = a["messaging"];
        if (!ms.is_object()) r.Error("actions.messaging", "must be an object of channel -> {\"url\", \"templates\"}");
        for (auto it = ms.begin(); ms.is_object() && it != ms.end(); ++it) {
          const std::string where = "actions.messaging." + it.key();
          if (!it->is_object()) {
            r.Error(where, "must be {\"url\": ..., \"secret\": ..., \"templates\": {...}}");
            continue;
          }
          r.CheckKeys(*it, where, {"url", "secret", "templates"});
          actions::MessagingChannel ch;
          if (!r.String(*it, where, "url", ch.url)) r.Error(where + ".url", "missing");
          Secret secret;
          r.SecretRef(*it, where, "secret", false, secret);
          ch.secret = secret.value();
          if (it->contains("templates")) {
            const json& ts = (*it)["templates"];
            for (auto t = ts.begin(); ts.is_object() && t != ts.end(); ++t) {
              actions::MessageTemplate mt;
              if (t->is_object()) {
                r.String(*t, where + ".templates." + t.key(), "subject", mt.subject);
                r.String(*t, where + ".templates." + t.key(), "body", mt.body);
              } else {
                r.Error(where + ".templates." + t.key(), "must be {\"subject\": ..., \"body\": ...}");
              }
              ch.templates[t.key()] = mt;
            }
          }
          as.messaging[it.key()] = ch;
        }
      }
      for (const auto& [type, m] : as.entities) {
        if (!as.ad_platforms.count(m.platform)) {
          r.Error("actions.entities." + type + ".platform", "`" + m.platform + "` is not in actions.ad_platforms");
        }
      }
    }
  }
  if (root.contains("auth")) {
    const json& a = root["auth"];
    if (!a.is_object()) r.Error("auth", "must be an object with `tokens`");
    else {
      r.CheckKeys(a, "auth", {"tokens"});
      if (a.contains("tokens")) {
        const json& t = a["tokens"];
        if (!t.is_array()) r.Error("auth.tokens", "must be a list");
        std::set<std::string> names;
        for (std::size_t i = 0; t.is_array() && i < t.size(); ++i) {
          const std::string where = "auth.tokens[" + std::to_string(i) + "]";
          if (!t[i].is_object()) {
            r.Error(where, "must be {\"name\": ..., \"role\": ..., \"token\": {\"env\": ...}}");
            continue;
          }
          r.CheckKeys(t[i], where, {"name", "role", "token"});
          TokenConfig tc;
          if (!r.String(t[i], where, "name", tc.name) || tc.name.empty()) r.Error(where + ".name", "missing");
          else if (!names.insert(tc.name).second) r.Error(where + ".name", "`" + tc.name + "` is used twice");
          std::string role;
          r.String(t[i], where, "role", role);
          if (role == "ingest") tc.role = Role::kIngest;
          else if (role == "operator") tc.role = Role::kOperator;
          else if (role == "auditor") tc.role = Role::kAuditor;
          else if (role == "admin") tc.role = Role::kAdmin;
          else r.Error(where + ".role", "must be one of ingest, operator, auditor, admin");
          r.SecretRef(t[i], where, "token", true, tc.token);
          if (!tc.token.empty() && tc.token.value().size() < 16) {
            r.Error(where + ".token", "too short: use at least 16 characters (e.g. `openssl rand -hex 24`)");
          }
          c.tokens.push_back(std::move(tc));
        }
      }
    }
  }
  if (root.contains("log")) {
    const json& l = root["log"];
    if (!l.is_object()) r.Error("log", "must be an object");
    else {
      r.CheckKeys(l, "log", {"format", "level", "file"});
      r.String(l, "log", "format", c.log_format);
      r.String(l, "log", "level", c.log_level);
      r.String(l, "log", "file", c.log_file);
      if (c.log_format != "text" && c.log_format != "json") r.Error("log.format", "must be `text` or `json`");
      static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
      if (!levels.count(c.log_level)) r.Error("log.level", "must be one of trace, debug, info, warn, error");
    }
  }
  if (!r.errors.empty()) {
    std::string msg = path + ": " + std::to_string(r.errors.size()) + " problem(s):";
    for (const auto& e : r.errors) msg += "\n  " + e;
    return Status::InvalidArgument(msg);
  }
  return c;
}

std::string Describe(const Config& c) {
  std::ostringstream o;
  o << "config=" << (c.path.empty() ? "built-in defaults" : c.path) << " listen=" << c.listen_host << ":"
    << c.listen_port << " rules=";
  for (std::size_t i = 0; i < c.rules.size(); ++i) o << (i ? "," : "") << c.rules[i];
  o << " state=" << c.state_db << (c.synchronous_full ? " (synchronous=full)" : "")
    << (c.journal ? " (journal, snapshot every " + std::to_string(c.snapshot_every_ms / 1000) + "s or " +
                        std::to_string(c.snapshot_events) + " events)"
                  : " (no journal)")
    << " warehouse=" << (c.warehouse_kind == "none" ? "none" : c.warehouse_path)
    << " clock=" << (c.simulated_clock ? "simulated from " + rules::FormatTime(c.clock_start_ms) : "wall")
    << " tokens=" << c.tokens.size();
  for (const auto& t : c.tokens) o << " [" << t.name << ":" << RoleName(t.role) << " from " << t.token.source() << "]";
  o << " slack=" << c.slack.size() << " webhooks=" << c.webhooks.size();
  o << " actions.execute=" << (c.actions.execute ? "true" : "false")
    << " ad_platforms=" << c.actions.ad_platforms.size() << " escalation=" << c.actions.escalation_channel;
  return o.str();
}

}  // namespace gavel::daemon
