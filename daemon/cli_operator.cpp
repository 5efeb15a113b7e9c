// The operator commands. See cli_operator.hpp and docs/operations.md.
#include "daemon/cli_operator.hpp"

#include <httplib.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "actions/ad_platform.hpp"
#include "rules/clock.hpp"

namespace gavel::cli {

namespace {

constexpr const char* kCommon =
    "options: --url URL (default $GAVEL_URL or http://127.0.0.1:8080), --token T (default $GAVEL_TOKEN),\n"
    "         --token-file F, --reason R (recorded in the decision log with who made the change)\n"
    "exit status: 0 done, 1 refused by the daemon, 2 usage or connection problems\n";

struct Options {
  std::string verb;                    // status, on, off, list, add, remove, approve, reject
  std::string subject;                 // NAME, TARGET or KEY
  std::string url;
  std::string token;
  std::string reason;
  std::string until;
  std::string for_duration;
  std::string format = "text";
};

// Parses "VERB [SUBJECT] [--opt value]..."; false with a message in `error`.
bool Parse(const std::vector<std::string>& args, Options& o, std::string& error) {
  std::vector<std::string> positional;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      positional.push_back(a);
      continue;
    }
    if (i + 1 >= args.size()) {
      error = a + " needs a value";
      return false;
    }
    const std::string v = args[++i];
    if (a == "--url") o.url = v;
    else if (a == "--token") o.token = v;
    else if (a == "--token-file") {
      std::ifstream in(v);
      if (!in) {
        error = "cannot read the token file " + v;
        return false;
      }
      std::getline(in, o.token);
    } else if (a == "--reason") o.reason = v;
    else if (a == "--until") o.until = v;
    else if (a == "--for") o.for_duration = v;
    else if (a == "--format") o.format = v;
    else {
      error = "unknown option " + a;
      return false;
    }
  }
  if (positional.empty()) {
    error = "missing command";
    return false;
  }
  o.verb = positional[0];
  if (positional.size() > 1) o.subject = positional[1];
  if (positional.size() > 2) {
    error = "unexpected argument `" + positional[2] + "`";
    return false;
  }
  if (o.url.empty()) {
    const char* env = std::getenv("GAVEL_URL");
    o.url = env && *env ? env : "http://127.0.0.1:8080";
  }
  if (o.token.empty()) {
    const char* env = std::getenv("GAVEL_TOKEN");
    if (env) o.token = env;
  }
  while (!o.url.empty() && o.url.back() == '/') o.url.pop_back();
  if (o.format != "text" && o.format != "json") {
    error = "--format must be `text` or `json`";
    return false;
  }
  return true;
}

struct Answer {
  int status = 0;            // 0: no answer
  nlohmann::json body;
  std::string error;         // connection problem
};

Answer Call(const Options& o, const std::string& method, const std::string& path, const nlohmann::json& body = nullptr) {
  Answer a;
  httplib::Client client(o.url);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  httplib::Headers headers;
  if (!o.token.empty()) headers.emplace("Authorization", "Bearer " + o.token);
  const std::string text = body.is_null() ? "" : body.dump();
  httplib::Result r = [&] {
    if (method == "POST") return client.Post(path.c_str(), headers, text, "application/json");
    if (method == "PUT") return client.Put(path.c_str(), headers, text, "application/json");
    if (method == "DELETE") return client.Delete(path.c_str(), headers, text, "application/json");
    return client.Get(path.c_str(), headers);
  }();
  if (!r) {
    a.error = "cannot reach the daemon at " + o.url + " (" + httplib::to_string(r.error()) + ")";
    return a;
  }
  a.status = r->status;
  a.body = nlohmann::json::parse(r->body, nullptr, false);
  if (a.body.is_discarded()) a.body = {{"error", r->body}};
  return a;
}

// Prints an error answer; returns the exit status for it.
int Refused(const char* cmd, const Answer& a, std::ostream& err) {
  if (a.status == 0) {
    err << "gavel " << cmd << ": " << a.error << "\n";
    return 2;
  }
  err << "gavel " << cmd << ": the daemon answered " << a.status << ": " << a.body.value("error", a.body.dump()) << "\n";
  return 1;
}

std::string Escape(const std::string& s) { return actions::EncodePathSegment(s); }

std::string Or(const nlohmann::json& j, const char* key, const std::string& def = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}

// `--help`: prints the usage; true if asked.
bool Help(const std::vector<std::string>& args, const char* usage, std::ostream& out) {
  if (args.empty() || (args[0] != "--help" && args[0] != "-h")) return false;
  out << usage << kCommon;
  return true;
}

// A `list` command's GET. `rc` >= 0 is the exit status to return now (refused, or the JSON
// printed as asked); otherwise `body` is the answer to print as text.
struct Listed {
  int rc = -1;
  nlohmann::json body;
};
Listed GetList(const Options& o, const char* cmd, const std::string& path, const char* field, std::ostream& out,
               std::ostream& err) {
  Answer a = Call(o, "GET", path);
  if (a.status != 200) return {Refused(cmd, a, err), {}};
  if (o.format == "json") {
    out << (field ? a.body[field] : a.body).dump(2) << "\n";
    return {0, {}};
  }
  return {-1, a.body};
}

void PrintKill(const nlohmann::json& k, std::ostream& out) {
  out << "kill switch: " << (k.value("on", false) ? "ON" : "off");
  if (!Or(k, "who").empty()) out << " (since " << Or(k, "since") << " by " << Or(k, "who");
  if (!Or(k, "reason").empty()) out << ": " << Or(k, "reason");
  if (!Or(k, "who").empty()) out << ")";
  out << "\n";
}

}  // namespace

int RunKillSwitch(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const char* usage = "usage: gavel kill-switch status | on | off [--reason R]\n";
  if (Help(args, usage, out)) return 0;
  Options o;
  std::string e;
  if (!Parse(args, o, e) || (o.verb != "status" && o.verb != "on" && o.verb != "off") || !o.subject.empty()) {
    err << "gavel kill-switch: " << (e.empty() ? "unknown command `" + o.verb + "`" : e) << "\n" << usage << kCommon;
    return 2;
  }
  Answer a = o.verb == "status" ? Call(o, "GET", "/v1/controls")
                                : Call(o, "POST", "/v1/kill-switch", {{"on", o.verb == "on"}, {"reason", o.reason}});
  if (a.status != 200) return Refused("kill-switch", a, err);
  if (o.format == "json") out << a.body.dump(2) << "\n";
  else PrintKill(o.verb == "status" ? a.body["kill_switch"] : a.body, out);
  return 0;
}

int RunFlags(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const char* usage = "usage: gavel flags list | on NAME | off NAME [--reason R]\n";
  if (Help(args, usage, out)) return 0;
  Options o;
  std::string e;
  bool ok = Parse(args, o, e);
  if (ok && o.verb == "list" && o.subject.empty()) {
    Listed l = GetList(o, "flags", "/v1/controls", "flags", out, err);
    if (l.rc >= 0) return l.rc;
    const auto& a = l;
    if (a.body["flags"].empty()) out << "no flags are set (a flag is off until it is turned on)\n";
    for (auto it = a.body["flags"].begin(); it != a.body["flags"].end(); ++it) {
      out << it.key() << "  " << (it.value().get<bool>() ? "on" : "off") << "\n";
    }
    return 0;
  }
  if (!ok || (o.verb != "on" && o.verb != "off") || o.subject.empty()) {
    err << "gavel flags: " << (e.empty() ? "give `list`, or `on NAME` / `off NAME`" : e) << "\n" << usage << kCommon;
    return 2;
  }
  Answer a = Call(o, "PUT", "/v1/flags/" + Escape(o.subject), {{"on", o.verb == "on"}, {"reason", o.reason}});
  if (a.status != 200) return Refused("flags", a, err);
  if (o.format == "json") out << a.body.dump(2) << "\n";
  else out << "flag " << o.subject << " is " << (a.body.value("on", false) ? "on" : "off") << "\n";
  return 0;
}

int RunOverride(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const char* usage =
      "usage: gavel override list\n"
      "       gavel override add TYPE:ID (--until TIME | --for DURATION) --reason R\n"
      "       gavel override remove TYPE:ID [--reason R]\n"
      "  An override pins an entity: no action of any rule touches it until the pin ends.\n";
  if (Help(args, usage, out)) return 0;
  Options o;
  std::string e;
  bool ok = Parse(args, o, e);
  if (ok && o.verb == "list" && o.subject.empty()) {
    Listed l = GetList(o, "override", "/v1/controls", "overrides", out, err);
    if (l.rc >= 0) return l.rc;
    const auto& a = l;
    if (a.body["overrides"].empty()) out << "no entity is pinned\n";
    for (const auto& p : a.body["overrides"]) {
      out << Or(p, "target") << "  until " << Or(p, "until") << "  by " << Or(p, "who") << ": " << Or(p, "reason")
          << "\n";
    }
    return 0;
  }
  if (!ok || (o.verb != "add" && o.verb != "remove") || o.subject.empty()) {
    err << "gavel override: " << (e.empty() ? "give `list`, `add TYPE:ID ...` or `remove TYPE:ID`" : e) << "\n"
        << usage << kCommon;
    return 2;
  }
  if (o.subject.find(':') == std::string::npos) {
    err << "gavel override: the entity is TYPE:ID, e.g. adset_daily:adset-100123\n";
    return 2;
  }
  if (o.verb == "remove") {
    Answer a = Call(o, "DELETE", "/v1/overrides/" + Escape(o.subject), {{"reason", o.reason}});
    if (a.status != 200) return Refused("override", a, err);
    out << "removed the pin on " << o.subject << "\n";
    return 0;
  }
  if (o.until.empty() == o.for_duration.empty()) {
    err << "gavel override add: give exactly one of --until TIME or --for DURATION (e.g. 7d)\n";
    return 2;
  }
  if (o.reason.empty()) {
    err << "gavel override add: --reason is required (it is what the next person reads)\n";
    return 2;
  }
  nlohmann::json body = {{"target", o.subject}, {"reason", o.reason}};
  if (!o.until.empty()) body["until"] = o.until;
  else body["for"] = o.for_duration;
  Answer a = Call(o, "POST", "/v1/overrides", body);
  if (a.status != 200 && a.status != 201) return Refused("override", a, err);
  if (o.format == "json") out << a.body.dump(2) << "\n";
  else out << "pinned " << Or(a.body, "target") << " until " << Or(a.body, "until") << "\n";
  return 0;
}

int RunApprovals(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const char* usage = "usage: gavel approvals list | approve KEY | reject KEY [--reason R]\n";
  if (Help(args, usage, out)) return 0;
  Options o;
  std::string e;
  bool ok = Parse(args, o, e);
  if (ok && o.verb == "list" && o.subject.empty()) {
    Listed l = GetList(o, "approvals", "/v1/approvals", nullptr, out, err);
    if (l.rc >= 0) return l.rc;
    const auto& a = l;
    if (a.body["approvals"].empty()) out << "nothing is waiting for approval\n";
    for (const auto& p : a.body["approvals"]) {
      const auto& intent = p["intent"];
      out << Or(p, "key") << "  " << Or(p, "rule") << "  " << Or(intent, "action") << " "
          << Or(intent, "target", Or(p, "entity"));
      if (intent.contains("budget")) out << " budget " << intent["budget"].dump() << " " << Or(intent, "currency");
      if (intent.contains("before")) out << " (now " << intent["before"].dump() << ")";
      out << "  decided " << Or(p, "created");
      if (!Or(p, "expires").empty()) out << "  expires " << Or(p, "expires");
      out << "\n";
    }
    return 0;
  }
  if (!ok || (o.verb != "approve" && o.verb != "reject") || o.subject.empty()) {
    err << "gavel approvals: " << (e.empty() ? "give `list`, `approve KEY` or `reject KEY`" : e) << "\n" << usage << kCommon;
    return 2;
  }
  Answer a = Call(o, "POST", "/v1/approvals/" + Escape(o.subject) + "/" + o.verb, {{"reason", o.reason}});
  if (a.status != 200) return Refused("approvals", a, err);
  out << (o.verb == "approve" ? "approved " : "rejected ") << o.subject << "\n";
  return 0;
}

}  // namespace gavel::cli
