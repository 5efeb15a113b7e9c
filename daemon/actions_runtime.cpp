// See actions_runtime.hpp.
#include "daemon/actions_runtime.hpp"

#include "actions/manual_hold.hpp"
#include "actions/outbox_worker.hpp"
#include "actions/slack.hpp"
#include "daemon/log.hpp"
#include "rules/store/state_store.hpp"

namespace gavel::daemon {

class ActionsRuntime::Sink final : public rules::DecisionSink {
 public:
  Sink(ActionsRuntime& rt, rules::DecisionSink& log) : rt_(rt), log_(log) {}
  bool Append(rules::Decision& d) override {
    const rules::TimeMs now = rt_.clock_.Now();
    auto plans = rt_.gates_->Review(d, now);
    if (!log_.Append(d)) return false;
    Status s = rt_.gates_->Enqueue(d, plans, now);
    if (!s.ok()) {
      Log(LogLevel::kError, "could not queue the actions of a decision", {{"decision", d.id}, {"error", s.message()}});
      return false;  // the batch rolls back: decision and actions commit together or not at all
    }
    return true;
  }

 private:
  ActionsRuntime& rt_;
  rules::DecisionSink& log_;
};

struct ActionsRuntime::Worker {
  std::unique_ptr<rules::StateDatabase> db;
  std::unique_ptr<actions::Outbox> outbox;
  std::unique_ptr<actions::SlackExecutor> slack;
  std::unique_ptr<actions::WebhookExecutor> webhook;
  std::unique_ptr<actions::AdPlatformExecutor> ad_platform;
  std::unique_ptr<actions::MessagingExecutor> messaging;
  std::unique_ptr<actions::ManualChangeGuard> guard;
  std::unique_ptr<actions::OutboxWorker> worker;
};

ActionsRuntime::ActionsRuntime(ActionsSettings settings, const rules::Clock& clock)
    : settings_(std::move(settings)), clock_(clock) {}

ActionsRuntime::~ActionsRuntime() { Stop(); }

Result<std::unique_ptr<ActionsRuntime>> ActionsRuntime::Open(const std::string& state_path, sqlite3* engine_db,
                                                             std::shared_ptr<const dsl::Program> program,
                                                             ActionsSettings settings, const rules::Clock& clock) {
  std::unique_ptr<ActionsRuntime> rt(new ActionsRuntime(std::move(settings), clock));
  auto controls = actions::Controls::Attach(engine_db);
  if (!controls.ok()) return controls.status();
  rt->controls_ = std::move(controls.value());
  auto outbox = actions::Outbox::Attach(engine_db);
  if (!outbox.ok()) return outbox.status();
  rt->outbox_ = std::move(outbox.value());
  actions::GateConfig gc;
  gc.execute = rt->settings_.execute;
  gc.escalation_channel = rt->settings_.escalation_channel;
  gc.max_changes_per_entity_per_day = rt->settings_.max_changes_per_entity_per_day;
  rt->gates_ = std::make_unique<actions::GateKeeper>(std::move(program), *rt->controls_, *rt->outbox_, gc);
  rt->state_path_ = state_path;
  // The worker's side: its own connection and the executors.
  auto w = std::make_unique<Worker>();
  auto db = rules::StateDatabase::Open(state_path);
  if (!db.ok()) return db.status();
  w->db = std::move(db.value());
  auto wo = actions::Outbox::Attach(w->db->log().db());
  if (!wo.ok()) return wo.status();
  w->outbox = std::move(wo.value());
  const ActionsSettings& s = rt->settings_;
  actions::HttpClientOptions http;
  http.verify_tls = s.verify_tls;
  actions::SlackOptions so;
  so.webhook_urls = s.slack_urls;
  so.http = http;
  w->slack = std::make_unique<actions::SlackExecutor>(so);
  actions::WebhookOptions wopt;
  wopt.endpoints = s.webhooks;
  wopt.http = http;
  w->webhook = std::make_unique<actions::WebhookExecutor>(wopt);
  actions::AdPlatformExecutorOptions ao;
  ao.entity_types = s.entities;
  for (const auto& [name, p] : s.ad_platforms) {
    actions::ReferenceAdPlatformOptions ro;
    ro.base_url = p.url;
    ro.token = p.token;
    ro.http = http;
    ao.platforms[name] = std::make_shared<actions::ReferenceAdPlatform>(ro);
  }
  w->ad_platform = std::make_unique<actions::AdPlatformExecutor>(ao);
  actions::MessagingOptions mo;
  mo.channels = s.messaging;
  mo.http = http;
  w->messaging = std::make_unique<actions::MessagingExecutor>(mo);
  actions::ManualHoldOptions ho;
  ho.hold_seconds = s.manual_hold_ms / 1000;
  w->guard = std::make_unique<actions::ManualChangeGuard>(ao, ho, clock);
  actions::OutboxWorkerOptions opts;
  opts.retry = s.retry;
  opts.escalation_channel = s.escalation_channel;
  actions::ManualChangeGuard* guard = w->guard.get();
  opts.precheck = [guard](const actions::ActionRequest& r) { return guard->Check(r); };
  std::map<std::string, actions::Executor*> executors = {{"slack", w->slack.get()},
                                                         {"webhook", w->webhook.get()},
                                                         {"ad_platform", w->ad_platform.get()},
                                                         {"messaging", w->messaging.get()}};
  w->worker = std::make_unique<actions::OutboxWorker>(w->db->log().db(), w->db->log(), *w->outbox, executors, clock,
                                                      opts);
  rt->worker_ = std::move(w);
  return rt;
}

rules::DecisionSink& ActionsRuntime::GatedSink(rules::DecisionSink& log) {
  sink_ = std::make_unique<Sink>(*this, log);
  return *sink_;
}

Status ActionsRuntime::Start() {
  auto recovered = worker_->worker->Recover();
  if (!recovered.ok()) return recovered.status();
  if (recovered.value() > 0) {
    Log(LogLevel::kWarn, "actions left in flight by a crash are due again (same idempotency keys)",
        {{"count", recovered.value()}});
  }
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void ActionsRuntime::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void ActionsRuntime::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ActionsRuntime::Loop() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      wake_ = false;
    }
    std::int64_t wait_ms = 1000;
    try {
      auto pass = worker_->worker->RunOnce();
      if (!pass.ok()) {
        Log(LogLevel::kError, "outbox pass failed; retrying", {{"error", pass.status().message()}});
      } else {
        const auto& p = pass.value();
        stats_.attempted += p.attempted;
        stats_.succeeded += p.succeeded;
        stats_.retrying += p.retrying;
        stats_.dead += p.dead;
        stats_.held += p.held;
        if (p.attempted > 0) {
          Log(LogLevel::kInfo, "actions performed",
              {{"attempted", p.attempted}, {"succeeded", p.succeeded}, {"retrying", p.retrying}, {"dead", p.dead},
               {"held", p.held}});
        }
        if (p.attempted >= 32) wait_ms = 0;  // a full batch: more may be due
      }
      auto depth = worker_->outbox->Depth();
      if (depth.ok()) stats_.depth = depth.value();
      auto next = worker_->worker->NextDue();
      if (wait_ms > 0 && next.ok() && next.value() >= 0) {
        wait_ms = std::max<std::int64_t>(0, std::min<std::int64_t>(wait_ms, next.value() - clock_.Now()));
      }
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "outbox worker error", {{"error", e.what()}});
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_) return;
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return wake_ || stop_; });
  }
}

}  // namespace gavel::daemon
