// The `gavel run` daemon: owns the engine, the state database, the event loop and the HTTP
// API, and wires them together (events in, schedules on time, reloads, crash recovery).
//
// THREADING MODEL
//   * The engine thread runs the one boost::asio::io_context (Daemon::Run, on the caller's
//     thread). It alone touches the Engine, the StateDatabase (the writer connection), the
//     current Program used by the engine, and the per-unit statistics. Timers (engine
//     wake-ups for schedule ticks and journey/decay timers, the rule-file watch, summaries)
//     and signals (SIGINT/SIGTERM drain and stop, SIGHUP reloads) are handlers on it.
//   * HTTP worker threads (cpp-httplib's pool, daemon/http_api.hpp) parse and validate
//     events against a snapshot of the Program (a shared_ptr<const Program> under a mutex:
//     a reload swaps it atomically; a batch validated against the old snapshot is re-checked
//     against the new program by the engine thread before it is applied). A validated batch
//     is queued and the worker blocks on its promise. The engine thread takes EVERY batch
//     waiting at that moment (group commit), applies them, appends their decisions and their
//     events' journal row (or a snapshot: Engine::Checkpoint) to the StateDatabase in ONE
//     transaction, commits, and only then fulfils the promises: an event is acknowledged
//     (200) only once it is durable. If the
//     transaction fails, it is rolled back and the engine is rebuilt from the database
//     (Engine::Restore), so memory never runs ahead of disk; the waiting batches get 503.
//   * Reads that need the engine (entities, rules) are posted to the engine thread and
//     awaited (RunOnEngine). Decision-log queries use a pool of read-only connections to the
//     same SQLite file (WAL: readers never block the writer) and run on the HTTP thread.
//   * The control thread (its own small io_context) runs what may take long and must not
//     block the engine thread: compiling rules for a reload (SIGHUP, rule-file change) and
//     the start-up ingest of NDJSON files. POST /v1/reload compiles on its HTTP thread. Reloads are
//     serialised by a mutex; the swap itself is a task on the engine thread.
//   * The WAL checkpointer thread has its own SQLite connection and copies committed WAL
//     pages into the database file (PASSIVE checkpoints, never blocking the writer), so
//     that work and its fsync stay out of the engine thread's COMMIT.
//   * Shutdown (SIGINT/SIGTERM, or RequestStop): a stopper thread stops the HTTP server,
//     which finishes the requests in flight (they still reach the engine thread, which keeps
//     running), stops the control thread, then posts the final flush (summary, checkpoint,
//     commit) to the engine thread and stops the io_context. Run returns 0.
//   No exception crosses the event loop: every handler catches and logs.
//
// Crash safety: the engine's state and the decision log share one SQLite file and each
// commit holds the decisions and the inputs that made them: an ingest commit with nothing
// else due holds its events as an event-journal row (daemon/event_journal.hpp), every other
// commit (timers, ticks, summaries, reloads, shutdown, and every state.snapshot_every or
// state.snapshot_events) a snapshot of the engine state, which clears the journal. Event ids
// are in the journal or the snapshot, so a resent event is a duplicate, and a batch that was
// not acknowledged was not committed (resend it). After kill -9, Start() restores the last
// snapshot (timers, journeys, alert states, schedule bookkeeping), applies the journal with
// the decision sink muted (those decisions are in the log), and writes a snapshot; ticks
// missed while down run once, late (coalesce_missed_ticks).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon/auth.hpp"
#include "daemon/config.hpp"
#include "daemon/metrics.hpp"
#include "dsl/program.hpp"
#include "rules/clock.hpp"

namespace gavel::daemon {

class HttpApi;

// An answer for the HTTP layer (and the start-up ingest): status code and JSON body.
struct Reply {
  int status = 200;
  nlohmann::ordered_json body = nlohmann::ordered_json::object();
};

class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Opens the state database, compiles the rules, restores the engine and binds the HTTP
  // port. On failure nothing keeps running and the Status says what and where.
  Status Start();
  // Runs the event loop on this thread until stopped (SIGINT/SIGTERM or RequestStop).
  // Returns the process exit code: 0 after a clean drain, 1 if the final flush failed.
  int Run();
  // Thread-safe: begins the orderly shutdown.
  void RequestStop();
  // The bound port (useful with listen port 0).
  int port() const;

  // ---- entry points for the HTTP API (any thread) ----
  // POST /v1/events. `single` is true for one JSON event (application/json), false for NDJSON.
  Reply Ingest(std::string_view body, bool single, const std::string& who);
  // POST /v1/reload and SIGHUP/file watch: compile, swap if it compiles, log who asked.
  Reply Reload(const std::string& who, const std::string& via);
  Reply Decisions(const std::map<std::string, std::string>& params, std::string* text_out);
  Reply Entity(const std::string& type, const std::string& id);
  Reply Rules();
  Reply SetClock(const std::string& body, const std::string& who);
  // Operator controls and approvals (docs/operations.md, "Actions"). Each change is made on
  // the engine thread in one transaction with an `operator` decision saying who and why.
  Reply Controls();
  Reply SetKillSwitch(const std::string& body, const std::string& who);
  Reply SetFlag(const std::string& name, const std::string& body, const std::string& who);
  Reply AddOverride(const std::string& body, const std::string& who);
  Reply RemoveOverride(const std::string& target, const std::string& body, const std::string& who);
  Reply Approvals();
  Reply DecideApproval(const std::string& key, bool approve, const std::string& body, const std::string& who);
  Reply Outbox(const std::map<std::string, std::string>& params);
  bool ready() const { return ready_.load(); }
  Reply Health() const;
  Reply Readiness() const;
  std::string RenderMetrics();

  const Config& config() const { return cfg_; }
  Metrics& metrics() { return metrics_; }
  const Authenticator& auth() const { return auth_; }

  struct Impl;

 private:
  Config cfg_;
  Metrics metrics_;
  Authenticator auth_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> ready_{false};
};

}  // namespace gavel::daemon
