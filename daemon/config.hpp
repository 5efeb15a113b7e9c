// The daemon's configuration: one JSON file (comments allowed), documented field by field in
// docs/operations.md ("Config reference"), with an example in examples/gavel.conf.
//
// LoadConfig reads and validates the whole file and reports every problem with its JSON
// path ("auth.tokens[1].role: must be one of ingest, operator, auditor, admin"). Secrets
// (API tokens, webhook secrets) are never written in the file itself: each is a reference
// {"env": "NAME"} or {"file": "PATH"}, resolved once at load time into a Secret whose text is
// never formatted into logs (Secret has no operator<< and no formatter on purpose).
// DefaultConfig() is what `gavel run` uses without --config: the examples' layout (playbooks/,
// out/sample/, out/gavel-state.db, 127.0.0.1:8080) so the README's demo works from a clone.
//
// Plain values; no threads involved.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/actions_runtime.hpp"
#include "dsl/base/status.hpp"

namespace gavel::daemon {

// A secret's value. Only compared or sent, never logged: there is deliberately no way to
// print one except value(), and the config's Describe() shows where it came from instead.
class Secret {
 public:
  Secret() = default;
  Secret(std::string value, std::string source) : value_(std::move(value)), source_(std::move(source)) {}
  const std::string& value() const { return value_; }
  // "env GAVEL_TOKEN_ADMIN" or "file /etc/gavel/admin.token": safe to log.
  const std::string& source() const { return source_; }
  bool empty() const { return value_.empty(); }

 private:
  std::string value_;
  std::string source_;
};

enum class Role { kIngest, kOperator, kAuditor, kAdmin };
const char* RoleName(Role r);

struct TokenConfig {
  std::string name;  // who: written into the decision log for operator requests
  Role role = Role::kIngest;
  Secret token;
};

struct EndpointConfig {
  std::string name;  // the name rules use: `webhook "sales_queue"`, or the Slack workspace
  std::string url;
  Secret secret;     // optional: signing secret or bearer token for the endpoint
};

struct Config {
  std::string path;  // the file it was read from ("" for the defaults)

  // HTTP API.
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  int http_threads = 8;
  std::int64_t max_body_bytes = 16 << 20;  // POST bodies over this get 413

  // Rules: files or directories compiled as one program.
  std::vector<std::string> rules = {"playbooks"};
  bool watch_rules = true;
  std::int64_t watch_interval_ms = 2000;

  // State database (decision log + engine state, one SQLite file).
  std::string state_db = "out/gavel-state.db";
  bool synchronous_full = false;  // fsync each commit (survives power loss, not only crashes)
  // Ingest commits write their events to a journal; the engine state is written as a
  // snapshot at most every `snapshot_every_ms` or `snapshot_events` journaled events (and at
  // every timer, tick, reload and shutdown). Off: every commit writes the state it changed.
  bool journal = true;
  std::int64_t snapshot_every_ms = 30 * 1000;
  std::int64_t snapshot_events = 1000000;

  // Warehouse: "sqlite" (embedded, default) or "none".
  std::string warehouse_kind = "sqlite";
  std::string warehouse_path = "out/sample/warehouse.db";

  // Freshness limit for tables that declare none (0: none).
  std::int64_t default_freshness_ms = 0;
  // Events later than the daemon's clock by more than this are refused (0: no limit; the
  // built-in defaults use 0 because the sample events have fixed dates).
  std::int64_t max_future_ms = 5 * 60 * 1000;

  // Files of NDJSON events ingested at start, through the same path as POST /v1/events.
  // The built-in defaults ingest the sample events; a config file ingests only what it lists.
  std::vector<std::string> ingest_at_start = {"out/sample/events.ndjson"};

  // Clock: "wall", or "simulated" (tests, demos): starts at clock_start and moves only by
  // POST /v1/clock.
  bool simulated_clock = false;
  std::int64_t clock_start_ms = 0;

  // How often non-firing evaluations are written as a `summary` decision.
  std::int64_t summary_interval_ms = 15 * 60 * 1000;

  // Notification endpoints (used by the actions issue's executors; validated and loaded now).
  std::vector<EndpointConfig> slack;
  std::vector<EndpointConfig> webhooks;

  // Actions (docs/operations.md, "Actions"): gates, outbox, executors. The built-in defaults
  // execute nothing (actions.execute = false); a config file executes unless it says not to.
  ActionsSettings actions;

  // Access control. No tokens: every request is allowed (only on a loopback address).
  std::vector<TokenConfig> tokens;

  // Logs.
  std::string log_format = "text";  // text | json
  std::string log_level = "info";   // trace debug info warn error
  std::string log_file;             // "" = stderr
};

// The defaults above, described by Describe() as "built-in defaults".
Config DefaultConfig();
// Reads, validates and resolves secrets. Relative paths in the file are relative to the
// current directory (documented: run the daemon from the directory the paths are meant for).
Result<Config> LoadConfig(const std::string& path);
// One line per setting for the start-up log; secrets appear as their source only.
std::string Describe(const Config& c);

// "250ms", "2s", "5m", "36h", "7d" -> milliseconds. False if malformed.
bool ParseDurationMs(const std::string& text, std::int64_t& out);

}  // namespace gavel::daemon
