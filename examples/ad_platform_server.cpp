// gavel-ad-platform: a runnable reference server of the "gavel reference ad-platform API v1"
// (docs/actions.md), for the demo and the tests. In-memory ad sets, bearer-token auth,
// Idempotency-Key honoured (same key and request → the stored answer again, no second effect),
// a request journal, fault injection and simulated manual changes by a person.
//
//   build/gavel-ad-platform [--host 127.0.0.1] [--port 8089] [--token T] [--seed 10]
//                           [--seed-prefix adset-] [--seed-start 100000] [--seed-width 0]
//                           [--channels meta,google,...]
//
// Object kinds: "adsets" (seeded by --seed), "channels" (seeded by --channels, budget 1000 USD;
// what budget reallocation moves) and "campaigns" (created with POST /_objects/campaigns).
//
// --port 0 picks a free port. The first line on stdout is
//   "gavel-ad-platform listening on http://HOST:PORT"
// (tests read it). The token defaults to $GAVEL_AD_PLATFORM_TOKEN, else "dev-token"; it is never
// printed. SIGINT/SIGTERM stop the server. Bad input is a 400 with a reason, never a crash.
//
// Threads: httplib's worker pool runs the handlers; one mutex guards all state, and an injected
// delay sleeps outside it.
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxJournal = 10000;  // oldest entries dropped beyond this
constexpr std::size_t kMaxIdempotency = 100000;
constexpr double kMaxBudget = 1e9;

// RFC 3339 UTC with milliseconds, `ago` before now.
std::string Now(std::chrono::seconds ago = std::chrono::seconds(0)) {
  const auto now = std::chrono::system_clock::now() - ago;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

// Seeded and set-up objects look last changed long ago, so a fresh server shows no recent
// change by anyone (gavel holds actions on objects a person changed recently).
constexpr std::chrono::seconds kSetupAge{30 * 24 * 3600};

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

struct AdSet {
  std::string id;
  std::string status = "active";
  double daily_budget = 0;
  std::string currency = "USD";
  std::string updated_by = "seed";
  std::string updated_at;
  std::int64_t version = 1;

  json ToJson() const {
    return {{"id", id},
            {"status", status},
            {"daily_budget", daily_budget},
            {"currency", currency},
            {"updated_by", updated_by},
            {"updated_at", updated_at},
            {"version", version}};
  }
};

struct Stored {
  std::string fingerprint;  // method + path + body: the same key must mean the same request
  int status = 200;
  std::string body;
};

struct Fault {
  int remaining = 1;
  int status = 0;  // 0: no status fault (a pure delay)
  int delay_ms = 0;
  std::optional<int> retry_after;
  bool after_effect = false;  // apply the change, then answer `status` (the answer is "lost")
  json ToJson() const {
    json j = {{"remaining", remaining},
              {"status", status},
              {"delay_ms", delay_ms},
              {"phase", after_effect ? "after" : "before"}};
    if (retry_after) j["retry_after"] = *retry_after;
    return j;
  }
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 8089;
  std::string token;
  int seed = 10;
  std::string seed_prefix = "adset-";
  long long seed_start = 100000;
  int seed_width = 0;
  std::vector<std::string> channels;  // --channels meta,google: "channels" objects
};

// The object kinds the platform knows; each is a collection of AdSet-shaped objects.
bool KnownKind(const std::string& kind) {
  return kind == "adsets" || kind == "campaigns" || kind == "channels";
}

class Platform {
 public:
  explicit Platform(const Options& o) : token_(o.token) {
    const std::string now = Now(kSetupAge);
    for (int i = 0; i < o.seed; ++i) {
      AdSet a;
      std::string num = std::to_string(o.seed_start + i);
      if (static_cast<int>(num.size()) < o.seed_width)
        num.insert(0, o.seed_width - num.size(), '0');
      a.id = o.seed_prefix + num;
      a.daily_budget = 100.0 + 50.0 * (i % 10);  // 100 … 550, deterministic
      a.updated_at = now;
      objects_["adsets"][a.id] = a;
    }
    for (const auto& c : o.channels) {
      AdSet ch;
      ch.id = c;
      ch.daily_budget = 1000.0;
      ch.updated_at = now;
      objects_["channels"][c] = ch;
    }
  }

  void Install(httplib::Server& svr) {
    svr.set_payload_max_length(1 << 20);
    svr.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unexpected error";
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          res.status = 500;
          res.set_content(Dump({{"error", "internal"}, {"message", what}}), "application/json");
        });
    svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      res.set_content(
          Dump({{"error", res.status == 404 ? "not_found" : "error"},
                {"message", res.status == 404 ? "no such route"
                                              : "malformed HTTP request (a POST or PUT needs a "
                                                "Content-Length, even 0)"}}),
          "application/json");
    });

    svr.Get("/_health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"ok":true})", "application/json");
    });
    svr.Get("/_journal", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      json list = json::array();
      for (const auto& e : journal_) list.push_back(e);
      res.set_content(Dump({{"requests", list}}), "application/json");
    });
    svr.Delete("/_journal", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      journal_.clear();
      res.set_content(R"({"cleared":true})", "application/json");
    });
    svr.Post("/_faults",
             [this](const httplib::Request& req, httplib::Response& res) { AddFault(req, res); });
    svr.Get("/_faults", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      json list = json::array();
      for (const auto& f : faults_) list.push_back(f.ToJson());
      res.set_content(Dump({{"faults", list}}), "application/json");
    });
    svr.Delete("/_faults", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      faults_.clear();
      res.set_content(R"({"cleared":true})", "application/json");
    });
    svr.Post("/_adsets", [this](const httplib::Request& req, httplib::Response& res) {
      Create(req, res, "adsets");
    });
    svr.Post(R"(/_objects/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      Create(req, res, req.matches[1].str());
    });
    svr.Post(R"(/_manual/([^/]+)/([^/]+)/(pause|enable))",
             [this](const httplib::Request& req, httplib::Response& res) {
               Manual(req, res, req.matches[3].str());
             });
    svr.Put(R"(/_manual/([^/]+)/([^/]+)/budget)",
            [this](const httplib::Request& req, httplib::Response& res) {
              Manual(req, res, "budget");
            });

    svr.Get(R"(/v1/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      Api(req, res, "list", req.matches[1].str(), "");
    });
    svr.Get(R"(/v1/([^/]+)/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      Api(req, res, "get", req.matches[1].str(), req.matches[2].str());
    });
    svr.Post(R"(/v1/([^/]+)/([^/]+)/(pause|enable))",
             [this](const httplib::Request& req, httplib::Response& res) {
               Api(req, res, req.matches[3].str(), req.matches[1].str(), req.matches[2].str());
             });
    svr.Put(R"(/v1/([^/]+)/([^/]+)/budget)",
            [this](const httplib::Request& req, httplib::Response& res) {
              Api(req, res, "budget", req.matches[1].str(), req.matches[2].str());
            });
  }

 private:
  static void Error(httplib::Response& res, int status, const std::string& code,
                    const std::string& message) {
    res.status = status;
    res.set_content(Dump({{"error", code}, {"message", message}}), "application/json");
  }

  static bool ValidId(const std::string& id) {
    if (id.empty() || id.size() > 128) return false;
    for (unsigned char c : id)
      if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':')) return false;
    return true;
  }

  // The change itself, under mu_. Returns the status and fills `out`; `changed` says whether
  // the object's state moved.
  int ApplyLocked(const std::string& kind, const std::string& verb, const std::string& id,
                  const json& body, const std::string& actor, json& out, bool& changed) {
    changed = false;
    auto& objects = objects_[kind];
    auto it = objects.find(id);
    if (it == objects.end()) {
      out = {{"error", "not_found"}, {"message", "no " + kind + " object '" + id + "'"}};
      return 404;
    }
    AdSet& a = it->second;
    const json before = a.ToJson();
    if (verb == "pause" || verb == "enable") {
      const std::string want = verb == "pause" ? "paused" : "active";
      changed = a.status != want;
      a.status = want;
    } else {  // budget
      if (!body.is_object() || !body.contains("daily_budget") ||
          !body["daily_budget"].is_number()) {
        out = {{"error", "invalid_request"},
               {"message", "body must be {\"daily_budget\": number, \"currency\": \"USD\"}"}};
        return 400;
      }
      const double b = body["daily_budget"].get<double>();
      if (!std::isfinite(b) || b < 0 || b > kMaxBudget) {
        out = {{"error", "invalid_request"}, {"message", "daily_budget must be between 0 and 1e9"}};
        return 400;
      }
      if (body.contains("currency")) {
        if (!body["currency"].is_string()) {
          out = {{"error", "invalid_request"}, {"message", "currency must be a string"}};
          return 400;
        }
        if (body["currency"].get<std::string>() != a.currency) {
          out = {{"error", "currency_mismatch"},
                 {"message", "ad set '" + id + "' is billed in " + a.currency + ", not " +
                                 body["currency"].get<std::string>()}};
          return 400;
        }
      }
      changed = a.daily_budget != b;
      a.daily_budget = b;
    }
    if (changed) {
      a.updated_by = actor;
      a.updated_at = Now();
      ++a.version;
    }
    out = {{"id", id}, {"changed", changed}, {"before", before}, {"after", a.ToJson()}};
    return 200;
  }

  void Journal(json entry) {
    entry["seq"] = ++seq_;
    entry["at"] = Now();
    journal_.push_back(std::move(entry));
    if (journal_.size() > kMaxJournal) journal_.pop_front();
  }

  void Api(const httplib::Request& req, httplib::Response& res, const std::string& verb,
           const std::string& kind, const std::string& id) {
    const std::string key = req.get_header_value("Idempotency-Key");
    std::string actor = req.get_header_value("X-Actor");
    if (actor.empty()) actor = "api";
    if (actor.size() > 64) actor.resize(64);
    json body_json = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
    json entry = {{"method", req.method},
                  {"path", req.path},
                  {"idempotency_key", key.empty() ? json() : json(key)},
                  {"actor", actor},
                  {"replayed", false},
                  {"applied", false},
                  {"changed", false},
                  {"fault", nullptr}};
    entry["body"] = body_json.is_discarded() ? json(req.body.substr(0, 512)) : body_json;

    const bool authorized =
        token_.empty() || req.get_header_value("Authorization") == "Bearer " + token_;
    std::optional<Fault> fault;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (authorized && !faults_.empty()) {
        fault = faults_.front();
        if (--faults_.front().remaining <= 0) faults_.pop_front();
      }
    }
    if (fault && fault->delay_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));

    std::lock_guard<std::mutex> lock(mu_);
    auto finish = [&](int status, const json& out) {
      res.status = status;
      res.set_content(Dump(out), "application/json");
      entry["status"] = status;
      Journal(entry);
    };
    if (!authorized) {
      entry["fault"] = nullptr;
      return finish(401, {{"error", "unauthorized"}, {"message", "missing or wrong bearer token"}});
    }
    auto fail_with_fault = [&] {
      if (fault->retry_after) res.set_header("Retry-After", std::to_string(*fault->retry_after));
      entry["fault"] = fault->ToJson();
      finish(fault->status,
             {{"error", "injected_fault"}, {"message", "fault injected by POST /_faults"}});
    };
    if (fault && fault->status && !fault->after_effect) return fail_with_fault();

    if (!KnownKind(kind))
      return finish(404,
                    {{"error", "not_found"}, {"message", "unknown object kind '" + kind + "'"}});
    if (verb == "list") {
      json list = json::array();
      for (const auto& [_, a] : objects_[kind]) list.push_back(a.ToJson());
      return finish(200, {{kind, list}});
    }
    if (!ValidId(id))
      return finish(400, {{"error", "invalid_request"}, {"message", "malformed object id"}});
    if (verb == "get") {
      auto it = objects_[kind].find(id);
      if (it == objects_[kind].end())
        return finish(404,
                      {{"error", "not_found"}, {"message", "no " + kind + " object '" + id + "'"}});
      return finish(200, it->second.ToJson());
    }
    if (body_json.is_discarded())
      return finish(400, {{"error", "invalid_request"}, {"message", "the body is not valid JSON"}});
    if (key.size() > 255)
      return finish(400, {{"error", "invalid_request"},
                          {"message", "Idempotency-Key longer than 255 characters"}});

    const std::string fingerprint =
        req.method + " " + req.path + " " + (verb == "budget" ? Dump(body_json) : "");
    if (!key.empty()) {
      auto it = idempotency_.find(key);
      if (it != idempotency_.end()) {
        if (it->second.fingerprint != fingerprint)
          return finish(422,
                        {{"error", "idempotency_key_reused"},
                         {"message", "this Idempotency-Key was used for a different request"}});
        entry["replayed"] = true;
        res.set_header("Idempotent-Replayed", "true");
        if (fault && fault->status) return fail_with_fault();
        return finish(it->second.status, json::parse(it->second.body, nullptr, false));
      }
    }
    json out;
    bool changed = false;
    const int status = ApplyLocked(kind, verb, id, body_json, actor, out, changed);
    entry["applied"] = status == 200;
    entry["changed"] = changed;
    if (!key.empty() && idempotency_.size() < kMaxIdempotency)
      idempotency_[key] = Stored{fingerprint, status, Dump(out)};
    if (fault && fault->status) return fail_with_fault();  // phase "after": the effect stays
    finish(status, out);
  }

  void Manual(const httplib::Request& req, httplib::Response& res, const std::string& verb) {
    const std::string kind = req.matches[1].str();
    const std::string id = req.matches[2].str();
    if (!KnownKind(kind)) return Error(res, 404, "not_found", "unknown object kind '" + kind + "'");
    json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return Error(res, 400, "invalid_request", "the body is not valid JSON");
    std::lock_guard<std::mutex> lock(mu_);
    json out;
    bool changed = false;
    const int status = ApplyLocked(kind, verb, id, body, "person", out, changed);
    // A person's edit is a change even when the value is the same (they touched it).
    if (status == 200 && !changed) {
      AdSet& a = objects_[kind][id];
      a.updated_by = "person";
      a.updated_at = Now();
      ++a.version;
      out["after"] = a.ToJson();
    }
    Journal({{"method", req.method},
             {"path", req.path},
             {"actor", "person"},
             {"status", status},
             {"manual", true},
             {"applied", status == 200},
             {"changed", changed},
             {"replayed", false}});
    res.status = status;
    res.set_content(Dump(out), "application/json");
  }

  void Create(const httplib::Request& req, httplib::Response& res, const std::string& kind) {
    if (!KnownKind(kind)) return Error(res, 404, "not_found", "unknown object kind '" + kind + "'");
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("id") || !body["id"].is_string())
      return Error(res, 400, "invalid_request",
                   "body must be {\"id\":…, \"status\":…, \"daily_budget\":…, \"currency\":…}");
    AdSet a;
    a.id = body["id"].get<std::string>();
    if (!ValidId(a.id)) return Error(res, 400, "invalid_request", "malformed id");
    if (body.contains("status")) {
      if (!body["status"].is_string() || (body["status"] != "active" && body["status"] != "paused"))
        return Error(res, 400, "invalid_request", "status must be \"active\" or \"paused\"");
      a.status = body["status"].get<std::string>();
    }
    if (body.contains("daily_budget")) {
      if (!body["daily_budget"].is_number() || !std::isfinite(body["daily_budget"].get<double>()) ||
          body["daily_budget"].get<double>() < 0 || body["daily_budget"].get<double>() > kMaxBudget)
        return Error(res, 400, "invalid_request", "daily_budget must be between 0 and 1e9");
      a.daily_budget = body["daily_budget"].get<double>();
    }
    if (body.contains("currency")) {
      if (!body["currency"].is_string() || body["currency"].get<std::string>().size() != 3)
        return Error(res, 400, "invalid_request", "currency must be a 3-letter code");
      a.currency = body["currency"].get<std::string>();
    }
    a.updated_at = Now(kSetupAge);
    a.updated_by = "setup";
    // Tests of the manual-change hold may set who changed it last and when.
    if (body.contains("updated_by")) {
      if (!body["updated_by"].is_string() || body["updated_by"].get<std::string>().empty() ||
          body["updated_by"].get<std::string>().size() > 64)
        return Error(res, 400, "invalid_request", "updated_by must be a short string");
      a.updated_by = body["updated_by"].get<std::string>();
    }
    if (body.contains("updated_at")) {
      if (!body["updated_at"].is_string() || body["updated_at"].get<std::string>().size() > 40)
        return Error(res, 400, "invalid_request", "updated_at must be an RFC 3339 time");
      a.updated_at = body["updated_at"].get<std::string>();
    }
    std::lock_guard<std::mutex> lock(mu_);
    objects_[kind][a.id] = a;
    res.status = 201;
    res.set_content(Dump(a.ToJson()), "application/json");
  }

  void AddFault(const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) return Error(res, 400, "invalid_request", "body must be a JSON object");
    Fault f;
    auto int_field = [&](const char* name, int lo, int hi, int& out) -> bool {
      if (!body.contains(name)) return true;
      if (!body[name].is_number_integer()) return false;
      const auto v = body[name].get<long long>();
      if (v < lo || v > hi) return false;
      out = static_cast<int>(v);
      return true;
    };
    int retry_after = -1;
    if (!int_field("fail_next", 1, 1000, f.remaining) || !int_field("status", 100, 599, f.status) ||
        !int_field("delay_ms", 0, 120000, f.delay_ms) ||
        !int_field("retry_after", 0, 86400, retry_after))
      return Error(res, 400, "invalid_request",
                   "fields: fail_next 1..1000, status 100..599, delay_ms 0..120000, retry_after "
                   "0..86400 (integers)");
    if (retry_after >= 0) f.retry_after = retry_after;
    if (body.contains("phase")) {
      if (body["phase"] != "before" && body["phase"] != "after")
        return Error(res, 400, "invalid_request", "phase must be \"before\" or \"after\"");
      f.after_effect = body["phase"] == "after";
    }
    if (f.status == 0 && f.delay_ms == 0)
      return Error(res, 400, "invalid_request", "give a status, a delay_ms, or both");
    std::lock_guard<std::mutex> lock(mu_);
    faults_.push_back(f);
    res.set_content(Dump({{"queued", f.ToJson()}}), "application/json");
  }

  std::string token_;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, AdSet>> objects_;  // kind → id → object
  std::map<std::string, Stored> idempotency_;
  std::deque<Fault> faults_;
  std::deque<json> journal_;
  std::int64_t seq_ = 0;
};

int Usage(const std::string& why) {
  std::cerr << "gavel-ad-platform: " << why << "\n"
            << "usage: gavel-ad-platform [--host H] [--port N] [--token T] [--seed N]\n"
            << "                         [--seed-prefix P] [--seed-start N] [--seed-width N]\n"
            << "                         [--channels meta,google,...]\n";
  return 2;
}

bool ParseInt(const std::string& s, long long lo, long long hi, long long& out) {
  try {
    std::size_t pos = 0;
    const long long v = std::stoll(s, &pos);
    if (pos != s.size() || v < lo || v > hi) return false;
    out = v;
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const char* t = std::getenv("GAVEL_AD_PLATFORM_TOKEN")) o.token = t;
  if (o.token.empty()) o.token = "dev-token";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      Usage("a reference ad-platform server (see docs/actions.md)");
      return 0;
    }
    if (i + 1 >= argc) return Usage("missing value for " + flag);
    const std::string value = argv[++i];
    long long n = 0;
    if (flag == "--host")
      o.host = value;
    else if (flag == "--token")
      o.token = value;
    else if (flag == "--seed-prefix")
      o.seed_prefix = value;
    else if (flag == "--channels") {
      std::size_t start = 0;
      while (start <= value.size()) {
        const auto comma = value.find(',', start);
        const std::string c =
            value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!c.empty()) o.channels.push_back(c);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (flag == "--port") {
      if (!ParseInt(value, 0, 65535, n)) return Usage("--port must be 0..65535");
      o.port = static_cast<int>(n);
    } else if (flag == "--seed") {
      if (!ParseInt(value, 0, 1000000, n)) return Usage("--seed must be 0..1000000");
      o.seed = static_cast<int>(n);
    } else if (flag == "--seed-start") {
      if (!ParseInt(value, 0, 1000000000000LL, n))
        return Usage("--seed-start must be a non-negative integer");
      o.seed_start = n;
    } else if (flag == "--seed-width") {
      if (!ParseInt(value, 0, 20, n)) return Usage("--seed-width must be 0..20");
      o.seed_width = static_cast<int>(n);
    } else {
      return Usage("unknown flag " + flag);
    }
  }

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Platform platform(o);
  httplib::Server svr;
  platform.Install(svr);
  int port = o.port;
  if (port == 0) {
    port = svr.bind_to_any_port(o.host.c_str());
    if (port <= 0) {
      std::cerr << "gavel-ad-platform: cannot bind " << o.host << "\n";
      return 1;
    }
  } else if (!svr.bind_to_port(o.host.c_str(), port)) {
    std::cerr << "gavel-ad-platform: cannot bind " << o.host << ":" << port << "\n";
    return 1;
  }
  std::thread listener([&] { svr.listen_after_bind(); });
  std::cout << "gavel-ad-platform listening on http://" << o.host << ":" << port << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  svr.stop();
  listener.join();
  return 0;
}
