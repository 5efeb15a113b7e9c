// The daemon's actions: the gates on the engine's side and the outbox worker on its own
// thread, built from the `actions`, `slack` and `webhooks` configuration.
//
// Engine side (the engine thread, its connection, inside each batch transaction):
//   GatedSink() wraps the decision log: every decision passes the gates (its actions get
//   their verdicts), is logged, and its allowed actions become outbox rows, all in the
//   transaction that commits the decision. Controls (kill switch, flags, pins) and approvals
//   are changed on this side too, by operator requests run on the engine thread.
// Worker side (its own thread and its own SQLite connection to the same file):
//   the OutboxWorker performs due actions through the executors (Slack, webhooks, the ad
//   platforms, messaging), with the manual-change hold before each change to an ad object.
//   Wake() after a commit that added rows; otherwise it sleeps until the next retry is due
//   (at most one second, so approvals and restarts are noticed).
//
// Threads: GatedSink, controls(), outbox() and gates() on the engine thread only; Start,
// Wake and Stop from any thread.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "actions/ad_platform.hpp"
#include "actions/controls.hpp"
#include "actions/gates.hpp"
#include "actions/messaging.hpp"
#include "actions/outbox.hpp"
#include "actions/webhook.hpp"
#include "dsl/program.hpp"
#include "rules/clock.hpp"
#include "rules/decision.hpp"

namespace gavel::daemon {

struct ActionsSettings {
  bool execute = true;                       // false: every action is logged as dry_run
  std::string escalation_channel;            // Slack channel for escalations and dead letters
  int max_changes_per_entity_per_day = 0;    // 0: no budget
  std::int64_t manual_hold_ms = 24LL * 3600 * 1000;
  actions::RetryPolicy retry;
  std::map<std::string, std::string> slack_urls;               // channel ("#paid-alerts") -> URL
  std::map<std::string, actions::WebhookEndpoint> webhooks;    // name -> endpoint
  struct Platform {
    std::string url;
    std::string token;
  };
  std::map<std::string, Platform> ad_platforms;                // name -> reference-API server
  std::map<std::string, actions::AdEntityMapping> entities;    // entity type -> platform object
  std::map<std::string, actions::MessagingChannel> messaging;  // "email", "sms", ... -> channel
  bool verify_tls = true;
};

// Counters for /metrics (read from any thread).
struct ActionsStats {
  std::atomic<std::int64_t> attempted{0}, succeeded{0}, retrying{0}, dead{0}, held{0}, depth{0};
};

class ActionsRuntime {
 public:
  // `engine_db` is the engine thread's connection (the outbox and controls tables are made
  // on it); the worker opens its own connection to `state_path`.
  static Result<std::unique_ptr<ActionsRuntime>> Open(const std::string& state_path, sqlite3* engine_db,
                                                      std::shared_ptr<const dsl::Program> program,
                                                      ActionsSettings settings, const rules::Clock& clock);
  ~ActionsRuntime();

  // The sink the engine writes to: gates, then `log`, then the outbox rows.
  rules::DecisionSink& GatedSink(rules::DecisionSink& log);
  void SetProgram(std::shared_ptr<const dsl::Program> program) { gates_->SetProgram(std::move(program)); }

  actions::Controls& controls() { return *controls_; }
  actions::Outbox& outbox() { return *outbox_; }
  const ActionsStats& stats() const { return stats_; }

  // The worker: Recover() runs first (in-flight rows of a crash are due again).
  Status Start();
  void Wake();
  void Stop();

 private:
  class Sink;
  ActionsRuntime(ActionsSettings settings, const rules::Clock& clock);
  void Loop();

  ActionsSettings settings_;
  const rules::Clock& clock_;
  std::unique_ptr<actions::Controls> controls_;
  std::unique_ptr<actions::Outbox> outbox_;
  std::unique_ptr<actions::GateKeeper> gates_;
  std::unique_ptr<Sink> sink_;
  // Worker side.
  std::string state_path_;
  struct Worker;
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wake_ = false;
  bool stop_ = false;
  ActionsStats stats_;
};

}  // namespace gavel::daemon
