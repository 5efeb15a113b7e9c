// The `gavel run` daemon. See daemon.hpp for the threading model.
#include "daemon/daemon.hpp"

#include <sqlite3.h>
#include <signal.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "daemon/actions_runtime.hpp"
#include "daemon/event_journal.hpp"
#include "daemon/http_api.hpp"
#include "daemon/log.hpp"
#include "rules/store/rule_sources.hpp"
#include "dsl/compiler.hpp"
#include "dsl/diagnostic.hpp"
#include "rules/engine.hpp"
#include "rules/event.hpp"
#include "rules/store/decision_log.hpp"
#include "rules/store/sqlite_warehouse.hpp"
#include "rules/state.hpp"
#include "rules/store/state_store.hpp"

namespace gavel::daemon {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;
using rules::TimeMs;
using SteadyClock = std::chrono::steady_clock;

namespace {

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// The daemon's clock: the wall clock, or a simulated one that moves only by POST /v1/clock.
// Read from any thread (validation checks future times), set on the engine thread.
class DaemonClock final : public rules::Clock {
 public:
  DaemonClock(bool simulated, TimeMs start) : simulated_(simulated), sim_(start) {}
  TimeMs Now() const override { return simulated_ ? sim_.load() : wall_.Now(); }
  bool simulated() const { return simulated_; }
  void Set(TimeMs t) { sim_.store(t); }

 private:
  bool simulated_;
  std::atomic<TimeMs> sim_;
  rules::WallClock wall_;
};

// Times every warehouse query for the metrics. Engine thread only (like the warehouse).
class TimedWarehouse final : public rules::Warehouse {
 public:
  TimedWarehouse(std::unique_ptr<rules::Warehouse> inner, Metrics& m) : inner_(std::move(inner)), m_(m) {}
  Result<std::vector<rules::WindowRow>> RunWindow(const dsl::WindowQuery& q, const std::string& from,
                                                  const std::string& to) override {
    return Timed([&] { return inner_->RunWindow(q, from, to); });
  }
  Result<std::vector<rules::HistoryRow>> RunHistory(const std::string& sql, const std::string& from,
                                                    const std::string& to) override {
    return Timed([&] { return inner_->RunHistory(sql, from, to); });
  }
  Result<std::string> NewestTime(const dsl::TableInfo& table) override {
    return Timed([&] { return inner_->NewestTime(table); });
  }

 private:
  template <typename F>
  auto Timed(F&& f) -> decltype(f()) {
    auto t0 = SteadyClock::now();
    auto r = f();
    m_.warehouse_seconds.Observe(Seconds(SteadyClock::now() - t0));
    if (!r.ok()) m_.warehouse_errors++;
    return r;
  }
  std::unique_ptr<rules::Warehouse> inner_;
  Metrics& m_;
};

// The engine's decision sink: the decision log inside the open transaction, plus metrics.
class LogSink final : public rules::DecisionSink {
 public:
  LogSink(Metrics& m) : m_(m) {}
  void Attach(rules::DecisionLog* log) { log_ = log; }
  // The actions' gates in front of the log (ActionsRuntime::GatedSink), and its wake-up.
  void Gate(rules::DecisionSink* gated, ActionsRuntime* actions) {
    gated_ = gated;
    actions_ = actions;
  }
  bool Append(rules::Decision& d) override {
    if (muted_) {
      // Replaying the event journal: the decision is already in the log (and its actions in
      // the outbox); count it and write nothing.
      muted_count_++;
      return true;
    }
    if (!log_) return false;
    if (gated_ ? !gated_->Append(d) : !log_->Append(d)) return false;
    pending_[d.outcome]++;
    return true;
  }
  // Counts become visible in the metrics only when their transaction commits; the outbox
  // worker is woken for the actions the transaction queued.
  void Committed() {
    for (const auto& [o, n] : pending_) m_.decisions.Add(o, n);
    pending_.clear();
    if (actions_) actions_->Wake();
  }
  void RolledBack() { pending_.clear(); }
  // While muted, decisions are counted and not written (event-journal replay).
  void Mute(bool on) {
    muted_ = on;
    muted_count_ = 0;
  }
  std::int64_t muted_count() const { return muted_count_; }
  std::int64_t pending_total() const {
    std::int64_t n = 0;
    for (const auto& [o, c] : pending_) n += c;
    return n;
  }

 private:
  Metrics& m_;
  rules::DecisionLog* log_ = nullptr;
  rules::DecisionSink* gated_ = nullptr;
  ActionsRuntime* actions_ = nullptr;
  std::map<std::string, std::int64_t> pending_;
  bool muted_ = false;
  std::int64_t muted_count_ = 0;
};

// State rows collected in memory (an entity's journey rows from the engine, for the API).
class EntityRows final : public rules::StateSink {
 public:
  Status Put(const std::string& kind, const std::string& name, const std::string& key,
             const nlohmann::json& value) override {
    (void)key;
    rows.emplace_back(kind, name, value);
    return Status::Ok();
  }
  Status Erase(const std::string&, const std::string&, const std::string&) override { return Status::Ok(); }
  std::vector<std::tuple<std::string, std::string, nlohmann::json>> rows;
};

// Moves SQLite's WAL checkpoints (copying committed pages into the main file, with its
// fsync) off the engine thread: the writer connection gets wal_autocheckpoint=0 and a
// wal_hook that wakes this thread, which checkpoints PASSIVE-ly (never blocking the writer or
// readers) on its own connection once the WAL holds `pages` pages, and at least every second.
// Durability is unchanged: a commit is in the WAL before it returns either way.
class WalCheckpointer {
 public:
  static constexpr int kPages = 4096;  // ~16 MB of 4 KiB pages between checkpoints

  Status Start(sqlite3* writer, const std::string& path) {
    Status s = sqlite::Exec(writer, "PRAGMA wal_autocheckpoint=0", "disable automatic WAL checkpoints");
    if (!s.ok()) return s;
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      sqlite::Exec(writer, "PRAGMA wal_autocheckpoint=1000", "restore automatic WAL checkpoints");
      return Status::IoError("checkpoint connection: " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
    sqlite3_wal_hook(writer, &WalCheckpointer::Hook, this);
    writer_ = writer;
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (writer_) sqlite3_wal_hook(writer_, nullptr, nullptr);
    if (db_) {
      // One last complete checkpoint so the WAL does not outlive a clean stop.
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      sqlite3_close(db_);
      db_ = nullptr;
    }
  }
  ~WalCheckpointer() { Stop(); }

 private:
  static int Hook(void* self, sqlite3*, const char*, int pages) {
    auto* me = static_cast<WalCheckpointer*>(self);
    if (pages >= kPages) {
      {
        std::lock_guard<std::mutex> lock(me->mu_);
        me->due_ = true;
      }
      me->cv_.notify_one();
    }
    return SQLITE_OK;
  }
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_ || due_; });
      if (stop_) break;
      due_ = false;
      lock.unlock();
      int log = 0, done = 0;
      const int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        Log(LogLevel::kWarn, "WAL checkpoint failed", {{"error", sqlite3_errmsg(db_)}});
      }
      lock.lock();
    }
  }
  sqlite3* writer_ = nullptr;
  sqlite3* db_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool due_ = false;
  bool stop_ = false;
};

// A validated batch waiting for the engine thread.
struct Pending {
  std::shared_ptr<const dsl::Program> program;  // the snapshot it was validated against
  std::vector<std::string_view> raw;            // each event's text (alive while the sender waits)
  std::vector<std::size_t> line;                // 1-based line number of each event
  std::vector<rules::Event> events;
  std::vector<int> status;                      // out: 0 accepted, 1 duplicate, 2 rejected
  std::vector<std::string> reason;              // out: for rejected
  Status result;                                // out: not ok = nothing of it was committed
  std::promise<void> done;
};

std::string RejectClass(const std::string& msg) {
  if (msg.find("not valid JSON") != std::string::npos || msg.find("JSON object") != std::string::npos) return "malformed";
  if (msg.find("unknown event") != std::string::npos || msg.find("missing `event`") != std::string::npos) return "unknown_event";
  if (msg.find("in the future") != std::string::npos) return "future_time";
  if (msg.find("`time`") != std::string::npos) return "bad_time";
  if (msg.find("missing") != std::string::npos) return "missing_field";
  if (msg.find("unknown field") != std::string::npos) return "unknown_field";
  if (msg.find("must be") != std::string::npos) return "wrong_type";
  return "invalid";
}

std::string FormatDuration(TimeMs ms) {
  if (ms % rules::kHour == 0) return std::to_string(ms / rules::kHour) + "h";
  if (ms % rules::kMinute == 0) return std::to_string(ms / rules::kMinute) + "m";
  if (ms % rules::kSecond == 0) return std::to_string(ms / rules::kSecond) + "s";
  return std::to_string(ms) + "ms";
}

const char* ModeText(dsl::Mode m) {
  switch (m) {
    case dsl::Mode::kDryRun: return "dry_run";
    case dsl::Mode::kLive: return "live";
    case dsl::Mode::kShadow: return "shadow";
  }
  return "dry_run";
}

const char* TriggerText(dsl::TriggerKind k) {
  switch (k) {
    case dsl::TriggerKind::kEvent: return "event";
    case dsl::TriggerKind::kCrossing: return "crossing";
    case dsl::TriggerKind::kSchedule: return "schedule";
    case dsl::TriggerKind::kNone: break;
  }
  return "none";
}

// unit key -> version hash, for every rule, alert, journey and score of a program.
std::map<std::string, std::string> UnitVersions(const dsl::Program* p) {
  std::map<std::string, std::string> v;
  if (!p) return v;
  for (const auto& r : p->rules) v["rule:" + r.name] = r.version;
  for (const auto& a : p->alerts) v["alert:" + a.name] = a.version;
  for (const auto& j : p->journeys) v["journey:" + j.name] = j.version;
  for (const auto& s : p->scores) v["score:" + s.name] = s.version;
  return v;
}

// What the rule paths look like on disk: (file, mtime, size) of every .gavel file.
std::string RuleFilesSignature(const std::vector<std::string>& paths) {
  std::vector<std::string> entries;
  std::error_code ec;
  auto add = [&](const fs::path& p) {
    auto t = fs::last_write_time(p, ec);
    auto size = fs::file_size(p, ec);
    entries.push_back(p.string() + "|" + std::to_string(t.time_since_epoch().count()) + "|" + std::to_string(size));
  };
  for (const auto& path : paths) {
    if (fs::is_directory(path, ec)) {
      for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file(ec) && it->path().extension() == ".gavel") add(it->path());
      }
    } else if (fs::exists(path, ec)) {
      add(path);
    } else {
      entries.push_back(path + "|missing");
    }
  }
  std::sort(entries.begin(), entries.end());
  std::string sig;
  for (const auto& e : entries) sig += e + "\n";
  return sig;
}

}  // namespace

// Per-unit statistics kept across engine rebuilds and reloads (by unit identity).
struct UnitStats {
  bool ok = true;
  std::string last_error;
  TimeMs last_evaluation = 0;
  double last_duration_ms = -1;  // -1: not measured (event-driven units)
  std::int64_t evaluations = 0;
  std::int64_t fired = 0;
  std::int64_t base_evaluations = 0;  // counts before the current engine was built
  std::int64_t base_fired = 0;
};

struct Daemon::Impl {
  Daemon& self;
  Config& cfg;
  Metrics& metrics;

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> io_work{io.get_executor()};
  asio::steady_timer wake_timer{io};
  asio::steady_timer watch_timer{io};
  asio::signal_set signals{io};

  asio::io_context control;
  asio::executor_work_guard<asio::io_context::executor_type> control_work{control.get_executor()};
  std::thread control_thread;
  std::thread stopper;
  std::atomic<bool> stopping{false};
  std::atomic<bool> failed{false};  // the engine could not be rebuilt: refuse input
  int exit_code = 0;

  DaemonClock clock;
  LogSink sink;
  std::unique_ptr<rules::StateDatabase> db;                 // engine thread
  std::unique_ptr<EventJournal> journal;                    // engine thread; null: journal off
  SteadyClock::time_point last_snapshot = SteadyClock::now();  // engine thread
  std::unique_ptr<ActionsRuntime> actions;                  // gates: engine thread; worker: its own
  WalCheckpointer checkpointer;                             // its own thread and connection
  std::unique_ptr<TimedWarehouse> warehouse;                // engine thread
  std::unique_ptr<rules::Engine> engine;                    // engine thread
  std::shared_ptr<const dsl::Program> program;              // engine thread
  std::map<std::string, UnitStats> stats;                   // engine thread
  SteadyClock::time_point last_summary = SteadyClock::now();  // engine thread

  std::mutex snapshot_mu;
  std::shared_ptr<const dsl::Program> snapshot;  // for validation on HTTP threads

  std::mutex queue_mu;
  std::vector<Pending*> queue;
  bool drain_posted = false;

  std::mutex reload_mu;  // one reload at a time
  std::string rule_signature;  // under reload_mu
  std::mutex last_reload_mu;
  ordered_json last_reload = nullptr;  // under last_reload_mu

  std::mutex pool_mu;
  std::vector<std::unique_ptr<rules::DecisionLog>> readers;

  std::unique_ptr<HttpApi> http;

  Impl(Daemon& d)
      : self(d), cfg(d.cfg_), metrics(d.metrics_), clock(d.cfg_.simulated_clock, d.cfg_.clock_start_ms), sink(d.metrics_) {}

  rules::EngineOptions Options() const {
    rules::EngineOptions o;
    o.default_freshness_seconds = cfg.default_freshness_ms / 1000;
    o.run_schedules = true;
    o.track_state = true;
    o.coalesce_missed_ticks = true;
    return o;
  }

  std::shared_ptr<const dsl::Program> Snapshot() {
    std::lock_guard<std::mutex> lock(snapshot_mu);
    return snapshot;
  }
  void Publish(std::shared_ptr<const dsl::Program> p) {
    std::lock_guard<std::mutex> lock(snapshot_mu);
    snapshot = std::move(p);
  }

  // Runs `f` on the engine thread and waits for its result (exceptions travel back).
  template <typename F>
  auto OnEngine(F&& f) -> decltype(f()) {
    using R = decltype(f());
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(f));
    auto fut = task->get_future();
    asio::post(io, [task] { (*task)(); });
    return fut.get();
  }

  // ---------------------------------------------------------------- engine thread

  // Copies the engine's unit health into the daemon's statistics; units whose evaluation
  // count moved during a wake-up get `duration_ms` as their last duration.
  void UpdateStats(double duration_ms) {
    if (!engine) return;
    for (const auto& [unit, h] : engine->health()) {
      UnitStats& s = stats[unit];
      const std::int64_t evals = s.base_evaluations + h.evaluations;
      if (duration_ms >= 0 && evals != s.evaluations) s.last_duration_ms = duration_ms;
      s.ok = h.ok;
      s.last_error = h.last_error;
      if (h.last_evaluation > 0) s.last_evaluation = h.last_evaluation;
      s.evaluations = evals;
      s.fired = s.base_fired + h.fired;
    }
  }
  void ResetStatBases() {
    for (auto& [unit, s] : stats) {
      s.base_evaluations = s.evaluations;
      s.base_fired = s.fired;
    }
  }

  // Runs whatever is due up to the clock's now (inside the caller's transaction).
  Status AdvanceToNow() { return AdvanceClockTo(clock.Now()); }
  Status AdvanceClockTo(TimeMs now) {
    auto t0 = SteadyClock::now();
    std::int64_t before = 0;
    for (const auto& [u, h] : engine->health()) before += h.evaluations;
    Status s = engine->AdvanceTo(now);
    const double dt = Seconds(SteadyClock::now() - t0);
    std::int64_t after = 0;
    for (const auto& [u, h] : engine->health()) after += h.evaluations;
    if (after != before) {
      metrics.evaluation_seconds.Observe(dt);
      UpdateStats(dt * 1000);
    }
    return s;
  }

  // Builds a fresh engine for `prog` from the database. Inside its own transaction (Restore
  // may log `migrated` decisions); `extra` runs in the same transaction before the commit.
  Result<std::unique_ptr<rules::Engine>> BuildEngine(std::shared_ptr<const dsl::Program> prog,
                                                     const std::function<Status()>& extra = nullptr) {
    auto e = std::make_unique<rules::Engine>(prog, rules::EngineDeps{&clock, &sink, warehouse.get()}, Options());
    e->Start(clock.Now());
    Status s = db->Begin();
    if (!s.ok()) return s;
    s = e->Restore(db->state());
    if (s.ok() && journal && journal->rows() > 0) s = ReplayJournal(*e, *prog);
    if (s.ok() && extra) s = extra();
    if (s.ok()) s = e->Checkpoint(db->state());
    if (s.ok() && journal && journal->rows() > 0) s = journal->Clear();
    if (s.ok()) s = db->Commit();
    if (!s.ok()) {
      if (db->log().InTransaction()) db->Rollback();
      sink.RolledBack();
      if (journal) journal->Recount();
      return s;
    }
    sink.Committed();
    last_snapshot = SteadyClock::now();
    return e;
  }

  // Applies the event journal to an engine just restored from the last snapshot (inside the
  // caller's transaction), with the decision sink muted: every decision these events made is
  // already in the log. See daemon/event_journal.hpp.
  Status ReplayJournal(rules::Engine& e, const dsl::Program& prog) {
    auto r = daemon::ReplayJournal(db->log().db(), "main", prog, e, [this](bool begin) -> std::int64_t {
      if (begin) sink.Mute(true);
      return sink.muted_count();
    });
    sink.Mute(false);
    if (!r.ok()) return r.status();
    const JournalReplay& j = r.value();
    Log(!j.other_decision_counts && !j.unparsable && !j.other_program ? LogLevel::kInfo : LogLevel::kWarn,
        "event journal replayed onto the last snapshot",
        {{"rows", j.rows}, {"events", j.events}, {"unparsable", j.unparsable},
         {"rows_with_other_decision_counts", j.other_decision_counts},
         {"journal_from_another_program", j.other_program}});
    return Status::Ok();
  }

  // After a failed transaction: memory may be ahead of disk, so rebuild from disk.
  void Rebuild(const Status& why) {
    metrics.commit_failures++;
    Log(LogLevel::kError, "transaction failed; rebuilding the engine from the state database",
        {{"error", why.message()}});
    auto e = BuildEngine(program);
    if (!e.ok()) {
      failed = true;
      self.ready_ = false;
      Log(LogLevel::kError, "cannot rebuild the engine; refusing input until restarted",
          {{"error", e.status().message()}});
      return;
    }
    engine = std::move(e.value());
    ResetStatBases();
    UpdateStats(-1);
  }

  // One transaction around `body` (which runs engine work), then the engine state and the
  // commit; on failure the engine is rebuilt. With `journaled`, body has written an event
  // journal row and the state is left to the next snapshot; otherwise this is a snapshot:
  // Engine::Checkpoint of everything changed since the last one, and the journal cleared.
  Status Transaction(const std::function<Status()>& body, bool journaled = false) {
    auto t0 = SteadyClock::now();
    auto us = [](SteadyClock::duration d) {
      return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    Status s = db->Begin();
    if (s.ok()) s = body();
    auto t1 = SteadyClock::now();
    if (s.ok() && !journaled) {
      s = engine->Checkpoint(db->state());
      if (s.ok() && journal && journal->rows() > 0) s = journal->Clear();
    }
    // Rows of earlier journals, a few per commit: two for each row a journaled commit adds,
    // more when there is no ingest waiting.
    if (s.ok() && journal) s = journal->Collect(journaled ? 2 : 16);
    auto t2 = SteadyClock::now();
    if (s.ok()) s = db->Commit();
    metrics.apply_us += us(t1 - t0);
    metrics.checkpoint_us += us(t2 - t1);
    metrics.commit_us += us(SteadyClock::now() - t2);
    if (!s.ok()) {
      if (db->log().InTransaction()) db->Rollback();
      sink.RolledBack();
      if (journal) journal->Recount();
      Rebuild(s);
      return s;
    }
    sink.Committed();
    metrics.commits++;
    if (journaled) {
      metrics.journal_commits++;
    } else {
      metrics.snapshots++;
      last_snapshot = SteadyClock::now();
    }
    metrics.commit_seconds.Observe(Seconds(SteadyClock::now() - t0));
    return s;
  }

  // Whether an ingest commit of `events` more events at `now` may be a journal row: the
  // journal is on, no timer or tick is due (the batch's work then depends only on the state,
  // the program and the events), and no snapshot is due.
  bool MayJournal(TimeMs now, std::int64_t events) {
    if (!journal || !cfg.journal) return false;
    const TimeMs due = engine->NextWakeup();
    if (due >= 0 && due <= now) return false;
    if (journal->events() + events > cfg.snapshot_events) return false;
    return SteadyClock::now() - last_snapshot < std::chrono::milliseconds(cfg.snapshot_every_ms);
  }

  // Writes a snapshot now if the journal holds anything (before a reload: the journaled
  // events were applied by the old program).
  Status SnapshotIfJournaled() {
    if (!journal || journal->rows() == 0 || failed || !engine) return Status::Ok();
    return Transaction([] { return Status::Ok(); });
  }

  bool SummaryDue() const {
    return cfg.summary_interval_ms > 0 &&
           SteadyClock::now() - last_summary >= std::chrono::milliseconds(cfg.summary_interval_ms);
  }

  // Timers, schedule ticks and the periodic summary.
  void Wake() {
    if (failed || !engine) return;
    const bool summary = SummaryDue();
    Transaction([&] {
      Status s = AdvanceToNow();
      if (s.ok() && summary) s = engine->FlushSummary();
      return s;
    });
    if (summary) last_summary = SteadyClock::now();
  }

  void ArmWake() {
    if (stopping || failed || !engine) return;
    std::int64_t delay = 60 * 1000;  // look at the clock at least every minute (clock jumps, summaries)
    if (!clock.simulated()) {
      const TimeMs next = engine->NextWakeup();
      if (next >= 0) delay = std::clamp<std::int64_t>(next - clock.Now(), 0, delay);
    }
    if (cfg.summary_interval_ms > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      last_summary + std::chrono::milliseconds(cfg.summary_interval_ms) - SteadyClock::now())
                      .count();
      delay = std::clamp<std::int64_t>(left, 0, delay);
    }
    wake_timer.expires_after(std::chrono::milliseconds(delay));
    wake_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: re-armed elsewhere
      try {
        Wake();
      } catch (const std::exception& e) {
        Log(LogLevel::kError, "wake-up failed", {{"error", e.what()}});
      }
      ArmWake();
    });
  }

  // Applies every batch waiting now, in one transaction (group commit).
  void Drain() {
    std::vector<Pending*> batch;
    {
      std::lock_guard<std::mutex> lock(queue_mu);
      batch.swap(queue);
      drain_posted = false;
    }
    if (batch.empty()) return;
    std::int64_t events = 0;
    for (Pending* p : batch) events += static_cast<std::int64_t>(p->events.size());
    metrics.ingest_queue_events -= events;
    Status s;
    if (failed || !engine) {
      s = Status::Unavailable("the engine is not running (see the log); restart the daemon");
    } else {
      try {
        const TimeMs now = clock.Now();
        const bool journaled = MayJournal(now, events);
        std::string body;  // the journal row: every event given to the engine, as received
        std::int64_t given = 0;
        s = Transaction([&]() -> Status {
          Status st = AdvanceClockTo(now);
          for (Pending* p : batch) {
            const bool revalidate = p->program != program;
            for (std::size_t i = 0; st.ok() && i < p->events.size(); ++i) {
              if (revalidate) {
                // Validated against a program that a reload has since replaced.
                rules::Event e;
                Status v = rules::ParseEvent(*program, p->raw[i], e);
                if (!v.ok()) {
                  p->status[i] = 2;
                  p->reason[i] = v.message() + " (after a reload)";
                  continue;
                }
                p->events[i] = std::move(e);
              }
              Status r = engine->OnEvent(p->events[i]);
              if (r.ok()) p->status[i] = 0;
              else if (r.code() == Status::Code::kInvalidArgument) p->status[i] = 1;
              else st = r;
              if (journaled) {
                body.append(p->raw[i]);
                body += '\n';
                given++;
              }
            }
          }
          if (st.ok() && journaled) {
            st = journal->Append(now, program->version, sink.pending_total(), given, body);
          }
          return st;
        }, journaled);
      } catch (const std::exception& e) {
        s = Status::Internal(std::string("internal error: ") + e.what());
        if (db->log().InTransaction()) db->Rollback();
        sink.RolledBack();
        Rebuild(s);
      }
    }
    for (Pending* p : batch) {
      p->result = s;
      p->done.set_value();
    }
    UpdateStats(-1);
    ArmWake();
  }

  void Enqueue(Pending* p) {
    bool post = false;
    {
      std::lock_guard<std::mutex> lock(queue_mu);
      queue.push_back(p);
      if (!drain_posted) drain_posted = post = true;
    }
    metrics.ingest_queue_events += static_cast<std::int64_t>(p->events.size());
    if (post) {
      asio::post(io, [this] {
        try {
          Drain();
        } catch (const std::exception& e) {
          Log(LogLevel::kError, "ingest failed", {{"error", e.what()}});
        }
      });
    }
  }

  // The operator record for the decision log.
  rules::Decision OperatorDecision(const std::string& who, const std::string& via, const std::string& outcome) {
    rules::Decision d;
    d.event_time = clock.Now();
    d.processing_time = d.event_time;
    d.kind = "operator";
    d.rule = "";
    d.trigger = via;
    d.entity_type = "operator";
    d.entity_id = who;
    d.outcome = outcome;
    return d;
  }


  // An operator change on the engine thread: `change` runs inside a transaction with the
  // `operator` decision it fills in; both commit together or neither does.
  Reply OperatorChange(const std::string& who, const std::string& via, const std::string& outcome,
                       const std::function<Status(rules::Decision&, Reply&)>& change) {
    return OnEngine([&]() -> Reply {
      Reply r;
      rules::Decision d = OperatorDecision(who, via, outcome);
      d.version = program ? program->version : "";
      Status s = db->Begin();
      if (s.ok()) s = change(d, r);
      if (s.ok()) s = sink.Append(d) ? Status::Ok() : db->log().last_error();
      if (s.ok()) s = db->Commit();
      if (!s.ok()) {
        if (db->log().InTransaction()) db->Rollback();
        sink.RolledBack();
        // A refused change keeps its own status (400/404/409); anything else is a 500.
        if (r.status < 400) {
          r.status = 500;
          r.body = ordered_json::object();
        }
        if (!r.body.contains("error")) r.body["error"] = s.message();
        return r;
      }
      sink.Committed();
      metrics.operator_requests.Add(outcome);
      return r;
    });
  }

  // Swaps in a compiled program (engine thread). Returns the changes as evidence.
  Result<ordered_json> Swap(std::shared_ptr<const dsl::Program> next, const std::string& who, const std::string& via) {
    auto old_v = UnitVersions(program.get());
    auto new_v = UnitVersions(next.get());
    ordered_json changed = ordered_json::array(), added = ordered_json::array(), removed = ordered_json::array();
    for (const auto& [u, v] : new_v) {
      auto it = old_v.find(u);
      if (it == old_v.end()) added.push_back({{"unit", u}, {"version", v}});
      else if (it->second != v) changed.push_back({{"unit", u}, {"old", it->second}, {"new", v}});
    }
    for (const auto& [u, v] : old_v) {
      if (!new_v.count(u)) removed.push_back({{"unit", u}, {"version", v}});
    }
    ordered_json evidence = ordered_json::object();
    evidence["who"] = who;
    evidence["via"] = via;
    evidence["old_program"] = program ? program->version : "";
    evidence["new_program"] = next->version;
    evidence["changed"] = changed;
    evidence["added"] = added;
    evidence["removed"] = removed;
    // The events journaled since the last snapshot were applied by the old program: write
    // its state first, so the new engine starts from a snapshot with an empty journal.
    if (Status snap = SnapshotIfJournaled(); !snap.ok()) return snap;
    auto e = BuildEngine(next, [&]() -> Status {
      rules::Decision d = OperatorDecision(who, via, "reloaded");
      d.version = next->version;
      d.reason = std::to_string(changed.size()) + " changed, " + std::to_string(added.size()) + " added, " +
                 std::to_string(removed.size()) + " removed";
      d.evidence = evidence;
      return sink.Append(d) ? Status::Ok() : db->log().last_error();
    });
    if (!e.ok()) return e.status();
    engine = std::move(e.value());
    program = next;
    if (actions) actions->SetProgram(next);
    Publish(next);
    ResetStatBases();
    UpdateStats(-1);
    ArmWake();
    return evidence;
  }

  Status LogReloadFailure(const std::string& who, const std::string& via, const std::string& reason,
                          const ordered_json& evidence) {
    rules::Decision d = OperatorDecision(who, via, "reload_failed");
    d.version = program ? program->version : "";
    d.reason = reason;
    d.evidence = evidence;
    Status s = db->Begin();
    if (s.ok()) s = sink.Append(d) ? Status::Ok() : db->log().last_error();
    if (s.ok()) s = db->Commit();
    if (!s.ok()) {
      if (db->log().InTransaction()) db->Rollback();
      sink.RolledBack();
      return s;
    }
    sink.Committed();
    return s;
  }

  // ---------------------------------------------------------------- any thread

  // Splits, validates and submits; the answer once durable (or why not).
  Reply Ingest(std::string_view body, bool single, std::size_t line_base = 0) {
    auto t0 = SteadyClock::now();
    Reply r;
    if (stopping) {
      r.status = 503;
      r.body["error"] = "the daemon is shutting down; nothing was applied, send again after it restarts";
      return r;
    }
    if (failed) {
      r.status = 503;
      r.body["error"] = "the engine is not running (see the daemon's log); nothing was applied";
      return r;
    }
    auto prog = Snapshot();
    Pending p;
    p.program = prog;
    ordered_json errors = ordered_json::array();
    std::size_t rejected = 0;
    const TimeMs limit = cfg.max_future_ms > 0 ? clock.Now() + cfg.max_future_ms : -1;
    auto one = [&](std::string_view text, std::size_t line) {
      metrics.events_received++;
      rules::Event e;
      Status s = rules::ParseEvent(*prog, text, e);
      if (s.ok() && limit >= 0 && e.time > limit) {
        s = Status::InvalidArgument("`time` " + rules::FormatTime(e.time) + " is in the future (the daemon's clock is " +
                                    rules::FormatTime(clock.Now()) + "; limit events.max_future = " +
                                    FormatDuration(cfg.max_future_ms) + ")");
      }
      if (!s.ok()) {
        ++rejected;
        metrics.events_rejected.Add(RejectClass(s.message()));
        if (errors.size() < 1000) {
          ordered_json err = {{"line", line}};
          if (!e.id.empty()) err["id"] = e.id;
          err["error"] = s.message();
          errors.push_back(std::move(err));
        }
        return;
      }
      p.raw.push_back(text);
      p.line.push_back(line);
      p.events.push_back(std::move(e));
    };
    if (single) {
      one(body, line_base + 1);
      if (rejected == 1 && body.find('\n') != std::string_view::npos && body.find("}\n{") != std::string_view::npos &&
          !errors.empty()) {
        errors[0]["error"] = errors[0]["error"].get<std::string>() +
                             " (several events? send NDJSON, one per line, with Content-Type application/x-ndjson)";
      }
    } else {
      std::size_t pos = 0, line = line_base;
      while (pos < body.size()) {
        std::size_t end = body.find('\n', pos);
        if (end == std::string_view::npos) end = body.size();
        std::string_view text = body.substr(pos, end - pos);
        ++line;
        pos = end + 1;
        if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
        if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
        one(text, line);
      }
    }
    if (rejected > 0) {
      r.status = 400;
      r.body["error"] = std::to_string(rejected) + " of " + std::to_string(rejected + p.events.size()) +
                        " events are invalid; nothing of this request was applied";
      r.body["rejected"] = rejected;
      r.body["errors"] = std::move(errors);
      return r;
    }
    if (p.events.empty()) {
      r.status = 400;
      r.body["error"] = "no events in the body: send one JSON event (application/json) or NDJSON, one event per line";
      return r;
    }
    p.status.assign(p.events.size(), 0);
    p.reason.assign(p.events.size(), "");
    auto fut = p.done.get_future();
    Enqueue(&p);
    fut.wait();
    if (!p.result.ok()) {
      r.status = 503;
      r.body["error"] = "not durable, nothing of this request was applied (send it again): " + p.result.message();
      return r;
    }
    std::size_t accepted = 0, duplicates = 0, late_rejected = 0;
    ordered_json results = ordered_json::array();
    for (std::size_t i = 0; i < p.events.size(); ++i) {
      if (p.status[i] == 0) {
        ++accepted;
        continue;
      }
      ordered_json line = {{"line", p.line[i]}, {"id", p.events[i].id}};
      if (p.status[i] == 1) {
        ++duplicates;
        line["status"] = "duplicate";
      } else {
        ++late_rejected;
        line["status"] = "rejected";
        line["error"] = p.reason[i];
        metrics.events_rejected.Add(RejectClass(p.reason[i]));
      }
      results.push_back(std::move(line));
    }
    metrics.events_accepted += accepted;
    metrics.events_duplicate += duplicates;
    r.body["accepted"] = accepted;
    r.body["duplicates"] = duplicates;
    if (late_rejected) r.body["rejected"] = late_rejected;
    r.body["results"] = std::move(results);
    metrics.batch_seconds.Observe(Seconds(SteadyClock::now() - t0));
    return r;
  }

  // The start-up ingest of NDJSON files, in chunks of 1000 lines (control thread).
  void IngestFiles() {
    for (const auto& path : cfg.ingest_at_start) {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        Log(LogLevel::kError, "cannot read the start-up ingest file", {{"file", path}});
        continue;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      std::size_t pos = 0, line = 0, accepted = 0, duplicates = 0, rejected = 0;
      auto t0 = SteadyClock::now();
      while (pos < text.size() && !stopping) {
        std::size_t end = pos;
        std::size_t lines = 0;
        while (end < text.size() && lines < 1000) {
          std::size_t nl = text.find('\n', end);
          end = nl == std::string::npos ? text.size() : nl + 1;
          ++lines;
        }
        std::string_view chunk(text.data() + pos, end - pos);
        Reply r = Ingest(chunk, false, line);
        if (r.status == 400) {
          // Report the bad lines and ingest the good ones of the chunk.
          std::set<std::size_t> bad;
          for (const auto& e : r.body["errors"]) {
            bad.insert(e["line"].get<std::size_t>());
            if (rejected < 20) {
              Log(LogLevel::kWarn, "rejected event",
                  {{"file", path}, {"line", e["line"]}, {"error", e["error"]}});
            }
            ++rejected;
          }
          std::string good;
          std::size_t ln = line, p2 = 0;
          while (p2 < chunk.size()) {
            std::size_t nl = chunk.find('\n', p2);
            if (nl == std::string_view::npos) nl = chunk.size();
            ++ln;
            if (!bad.count(ln)) good.append(chunk.substr(p2, nl - p2)).push_back('\n');
            else good.push_back('\n');  // keeps the line numbers
            p2 = nl + 1;
          }
          r = Ingest(good, false, line);
        }
        if (r.status == 200) {
          accepted += r.body["accepted"].get<std::size_t>();
          duplicates += r.body["duplicates"].get<std::size_t>();
        } else if (r.status != 400) {
          Log(LogLevel::kError, "start-up ingest stopped", {{"file", path}, {"error", r.body.value("error", "")}});
          break;
        }
        line += lines;
        pos = end;
      }
      Log(LogLevel::kInfo, "ingested file",
          {{"file", path}, {"accepted", accepted}, {"duplicates", duplicates}, {"rejected", rejected},
           {"seconds", Seconds(SteadyClock::now() - t0)}});
    }
  }

  Reply Reload(const std::string& who, const std::string& via) {
    std::lock_guard<std::mutex> lock(reload_mu);
    Reply r;
    auto t0 = SteadyClock::now();
    rule_signature = RuleFilesSignature(cfg.rules);
    dsl::CompileResult compiled = dsl::Compile(cfg.rules);
    ordered_json record = {{"time", rules::FormatTime(clock.Now())}, {"who", who}, {"via", via}};
    if (!compiled.program) {
      const std::string diagnostics = compiled.io_error.empty()
                                          ? dsl::RenderText(compiled.sources, compiled.diags.list())
                                          : compiled.io_error;
      const std::string summary = compiled.io_error.empty()
                                      ? std::to_string(compiled.diags.error_count()) + " error(s); the old rules keep running"
                                      : compiled.io_error + "; the old rules keep running";
      metrics.reloads.Add("failed");
      Log(LogLevel::kWarn, "reload failed: the rules do not compile; the old rules keep running",
          {{"who", who}, {"via", via}, {"diagnostics", diagnostics}});
      ordered_json evidence = {{"who", who}, {"via", via}, {"diagnostics", diagnostics}};
      if (compiled.io_error.empty()) {
        json diags = json::parse(dsl::RenderJson(compiled.sources, compiled.diags.list()), nullptr, false);
        if (!diags.is_discarded()) evidence["diagnostics_json"] = diags;
      }
      Status logged = OnEngine([&] { return LogReloadFailure(who, via, summary, evidence); });
      r.status = 422;
      r.body["ok"] = false;
      r.body["error"] = "the rules do not compile; the old rules keep running";
      r.body["diagnostics"] = diagnostics;
      if (!logged.ok()) r.body["log_error"] = logged.message();
      record["ok"] = false;
      record["diagnostics"] = diagnostics;
    } else {
      auto swapped = OnEngine([&]() -> Result<ordered_json> {
        try {
          Status recorded = rules::RecordRuleSources(db->log().db(), *compiled.program, compiled.sources);
          if (!recorded.ok()) return recorded;
          return Swap(compiled.program, who, via);
        } catch (const std::exception& e) {
          return Status::Internal(e.what());
        }
      });
      if (!swapped.ok()) {
        metrics.reloads.Add("failed");
        Log(LogLevel::kError, "reload failed: the new program could not be started; the old rules keep running",
            {{"who", who}, {"via", via}, {"error", swapped.status().message()}});
        r.status = 500;
        r.body["ok"] = false;
        r.body["error"] = "the new rules compiled but could not be started: " + swapped.status().message() +
                          "; the old rules keep running";
        record["ok"] = false;
        record["error"] = swapped.status().message();
      } else {
        metrics.reloads.Add("ok");
        const ordered_json& ev = swapped.value();
        Log(LogLevel::kInfo, "reloaded rules",
            {{"who", who}, {"via", via}, {"program", ev["new_program"]}, {"changed", ev["changed"].size()},
             {"added", ev["added"].size()}, {"removed", ev["removed"].size()},
             {"seconds", Seconds(SteadyClock::now() - t0)}});
        r.body["ok"] = true;
        r.body["program"] = ev["new_program"];
        r.body["changed"] = ev["changed"];
        r.body["added"] = ev["added"];
        r.body["removed"] = ev["removed"];
        record["ok"] = true;
        record["program"] = ev["new_program"];
      }
    }
    std::lock_guard<std::mutex> l2(last_reload_mu);
    last_reload = record;
    return r;
  }

  void ArmWatch() {
    if (!cfg.watch_rules || stopping) return;
    watch_timer.expires_after(std::chrono::milliseconds(cfg.watch_interval_ms));
    watch_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      // The scan and the compile happen on the control thread.
      asio::post(control, [this] {
        try {
          std::string sig = RuleFilesSignature(cfg.rules);
          bool changed;
          {
            std::lock_guard<std::mutex> lock(reload_mu);
            changed = sig != rule_signature;
          }
          if (changed && !stopping) {
            Log(LogLevel::kInfo, "rule files changed; reloading");
            Reload("file-watch", "watch:rule files changed");
          }
        } catch (const std::exception& e) {
          Log(LogLevel::kError, "rule-file watch failed", {{"error", e.what()}});
        }
        if (!stopping) asio::post(io, [this] { ArmWatch(); });
      });
    });
  }

  void WaitSignals() {
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        Log(LogLevel::kInfo, "SIGHUP: reloading rules");
        asio::post(control, [this] {
          try {
            Reload("signal", "signal:SIGHUP");
          } catch (const std::exception& e) {
            Log(LogLevel::kError, "reload failed", {{"error", e.what()}});
          }
        });
        WaitSignals();
        return;
      }
      Log(LogLevel::kInfo, sig == SIGINT ? "SIGINT: draining and stopping" : "SIGTERM: draining and stopping");
      BeginStop();
    });
  }

  void BeginStop() {
    bool expected = false;
    if (!stopping.compare_exchange_strong(expected, true)) return;
    stopper = std::thread([this] {
      // 1. No new connections; requests in flight finish (they still reach the engine).
      if (http) http->Stop();
      // 2. Reloads and the start-up ingest stop.
      control_work.reset();
      control.stop();
      if (control_thread.joinable()) control_thread.join();
      // 3. The final flush, then the loop ends.
      asio::post(io, [this] {
        wake_timer.cancel();
        watch_timer.cancel();
        signals.cancel();
        if (engine && !failed) {
          Drain();
          Status s = Transaction([&] {
            Status st = AdvanceToNow();
            if (st.ok()) st = engine->FlushSummary();
            return st;
          });
          if (!s.ok()) exit_code = 1;
        }
        io_work.reset();
        io.stop();
      });
    });
  }
};

Daemon::Daemon(Config config) : cfg_(std::move(config)), auth_(cfg_.tokens), impl_(std::make_unique<Impl>(*this)) {}

Daemon::~Daemon() {
  if (impl_) {
    if (impl_->stopper.joinable()) impl_->stopper.join();
    impl_->control_work.reset();
    impl_->control.stop();
    if (impl_->control_thread.joinable()) impl_->control_thread.join();
  }
}

int Daemon::port() const { return impl_->http ? impl_->http->port() : 0; }

Status Daemon::Start() {
  Impl& im = *impl_;
  if (auth_.enabled() == false && im.cfg.listen_host != "127.0.0.1" && im.cfg.listen_host != "localhost" &&
      im.cfg.listen_host != "::1") {
    return Status::InvalidArgument("listen address " + im.cfg.listen_host +
                                   " is not loopback and no API tokens are configured (auth.tokens): refusing to "
                                   "serve an open API beyond this machine");
  }
  Log(LogLevel::kInfo, "starting gavel run", {{"settings", Describe(cfg_)}});
  if (!auth_.enabled()) {
    Log(LogLevel::kWarn, "no API tokens configured: every request is allowed (loopback only)");
  }
  // The state database.
  std::error_code ec;
  fs::path state_dir = fs::path(im.cfg.state_db).parent_path();
  if (!state_dir.empty()) fs::create_directories(state_dir, ec);
  auto db = rules::StateDatabase::Open(im.cfg.state_db);
  if (!db.ok()) return Status::IoError("state database " + im.cfg.state_db + ": " + db.status().message());
  im.db = std::move(db.value());
  Status s0;
  if (im.cfg.synchronous_full) {
    Status s = sqlite::Exec(im.db->log().db(), "PRAGMA synchronous=FULL", "set synchronous=FULL");
    if (!s.ok()) return s;
  }
  s0 = im.checkpointer.Start(im.db->log().db(), im.cfg.state_db);
  if (!s0.ok()) return s0;
  // The event journal. Attached even when it is turned off, so that a journal left by an
  // earlier run with it on is still replayed (and then cleared) by the first BuildEngine.
  {
    auto j = EventJournal::Attach(im.db->log().db());
    if (!j.ok()) return Status::IoError("state database " + im.cfg.state_db + ": " + j.status().message());
    if (im.cfg.journal || j.value()->rows() > 0) im.journal = std::move(j.value());
  }
  im.sink.Attach(&im.db->log());
  // The warehouse.
  if (im.cfg.warehouse_kind == "sqlite") {
    if (!fs::exists(im.cfg.warehouse_path, ec)) {
      return Status::IoError("warehouse " + im.cfg.warehouse_path +
                             " does not exist (make the sample one with `build/gavel-sample-data --out out/sample`, "
                             "or set warehouse.kind to \"none\")");
    }
    auto w = rules::SqliteWarehouse::Open(im.cfg.warehouse_path);
    if (!w.ok()) return Status::IoError("warehouse " + im.cfg.warehouse_path + ": " + w.status().message());
    im.warehouse = std::make_unique<TimedWarehouse>(std::move(w.value()), metrics_);
  }
  // The rules.
  im.rule_signature = RuleFilesSignature(im.cfg.rules);
  dsl::CompileResult compiled = dsl::Compile(im.cfg.rules);
  if (!compiled.io_error.empty()) return Status::IoError(compiled.io_error);
  if (!compiled.program) {
    return Status::InvalidArgument("the rules do not compile:\n" +
                                   dsl::RenderText(compiled.sources, compiled.diags.list()));
  }
  im.program = compiled.program;
  im.Publish(im.program);
  // The text of every unit version, for `gavel explain`.
  Status recorded = rules::RecordRuleSources(im.db->log().db(), *im.program, compiled.sources);
  if (!recorded.ok()) return recorded;
  // Actions: the gates in front of the log, the outbox worker on its own connection.
  auto actions = ActionsRuntime::Open(im.cfg.state_db, im.db->log().db(), im.program, im.cfg.actions, im.clock);
  if (!actions.ok()) return Status::IoError("actions: " + actions.status().message());
  im.actions = std::move(actions.value());
  im.sink.Gate(&im.actions->GatedSink(im.db->log()), im.actions.get());
  // The simulated clock resumes where the engine stopped, if that is later than its start.
  auto e = im.BuildEngine(im.program);
  if (!e.ok()) return Status::IoError("cannot restore the engine from " + im.cfg.state_db + ": " + e.status().message());
  im.engine = std::move(e.value());
  if (im.clock.simulated() && im.engine->now() > im.clock.Now()) {
    im.clock.Set(im.engine->now());
  }
  im.UpdateStats(-1);
  Log(LogLevel::kInfo, "engine restored",
      {{"program", im.program->version}, {"rules", im.program->rules.size()}, {"alerts", im.program->alerts.size()},
       {"journeys", im.program->journeys.size()}, {"engine_time", rules::FormatTime(im.engine->now())},
       {"clock", rules::FormatTime(im.clock.Now())}});
  // The HTTP API.
  im.http = std::make_unique<HttpApi>(*this);
  Status s = im.http->Bind(im.cfg.listen_host, im.cfg.listen_port);
  if (!s.ok()) return s;
  return Status::Ok();
}

int Daemon::Run() {
  Impl& im = *impl_;
  im.signals.add(SIGINT);
  im.signals.add(SIGTERM);
  im.signals.add(SIGHUP);
  im.WaitSignals();
  im.control_thread = std::thread([&im] {
    while (true) {
      try {
        im.control.run();
        break;
      } catch (const std::exception& e) {
        Log(LogLevel::kError, "control thread task failed", {{"error", e.what()}});
      }
    }
  });
  if (Status started = im.actions->Start(); !started.ok()) {
    Log(LogLevel::kError, "the outbox worker could not start; no action will run", {{"error", started.message()}});
  }
  im.http->Listen();
  Log(LogLevel::kInfo, "listening", {{"address", im.cfg.listen_host}, {"port", port()}});
  // First wake-up: whatever became due while the daemon was down runs now (late ticks once).
  asio::post(im.io, [&im] {
    try {
      im.Wake();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "wake-up failed", {{"error", e.what()}});
    }
    im.ArmWake();
    im.ArmWatch();
  });
  asio::post(im.control, [this, &im] {
    try {
      if (!im.cfg.ingest_at_start.empty()) im.IngestFiles();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "start-up ingest failed", {{"error", e.what()}});
    }
    if (!im.failed && !im.stopping) {
      ready_ = true;
      Log(LogLevel::kInfo, "ready");
    }
  });
  while (true) {
    try {
      im.io.run();
      break;
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "event loop handler failed", {{"error", e.what()}});
    }
  }
  if (im.stopper.joinable()) im.stopper.join();
  if (im.actions) im.actions->Stop();
  im.checkpointer.Stop();
  Log(LogLevel::kInfo, "stopped", {{"exit_code", im.exit_code}});
  FlushLog();
  return im.exit_code;
}

void Daemon::RequestStop() {
  asio::post(impl_->io, [this] { impl_->BeginStop(); });
}

Reply Daemon::Ingest(std::string_view body, bool single, const std::string& who) {
  (void)who;
  return impl_->Ingest(body, single);
}

Reply Daemon::Reload(const std::string& who, const std::string& via) { return impl_->Reload(who, via); }

Reply Daemon::Decisions(const std::map<std::string, std::string>& params, std::string* text_out) {
  Reply r;
  rules::DecisionQuery q;
  q.limit = 100;
  std::vector<std::string> errors;
  for (const auto& [k, v] : params) {
    if (k == "rule") q.rule = v;
    else if (k == "kind") q.kind = v;
    else if (k == "outcome") q.outcome = v;
    else if (k == "reason") q.reason = v;
    else if (k == "entity") {
      auto colon = v.find(':');
      if (colon == std::string::npos || colon == 0) {
        errors.push_back("entity must be TYPE:ID, e.g. lead:L1");
      } else {
        q.entity_type = v.substr(0, colon);
        q.entity_id = v.substr(colon + 1);
      }
    } else if (k == "entity_type") q.entity_type = v;
    else if (k == "entity_id") q.entity_id = v;
    else if (k == "from" || k == "to") {
      TimeMs t = 0;
      if (!rules::ParseTime(v, t)) errors.push_back(k + " is not an RFC 3339 time: " + v);
      else (k == "from" ? q.from : q.to) = t;
    } else if (k == "time") {
      if (v == "event") q.time_field = rules::TimeField::kEvent;
      else if (v == "processing") q.time_field = rules::TimeField::kProcessing;
      else errors.push_back("time must be `processing` or `event`");
    } else if (k == "after") {
      try {
        std::size_t used = 0;
        q.after_id = std::stoll(v, &used);
        if (used != v.size() || q.after_id < 0) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        errors.push_back("after must be a decision id (a whole number >= 0)");
      }
    } else if (k == "limit") {
      try {
        std::size_t used = 0;
        q.limit = std::stoll(v, &used);
        if (used != v.size() || q.limit < 1 || q.limit > 1000) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        errors.push_back("limit must be a whole number from 1 to 1000");
      }
    } else if (k == "format") {
      if (v != "json" && v != "text") errors.push_back("format must be `json` or `text`");
    } else {
      errors.push_back("unknown parameter `" + k +
                       "` (known: rule, kind, outcome, reason, entity, entity_type, entity_id, from, to, time, after, "
                       "limit, format)");
    }
  }
  if (!errors.empty()) {
    r.status = 400;
    r.body["error"] = errors.front();
    r.body["errors"] = errors;
    return r;
  }
  Impl& im = *impl_;
  std::unique_ptr<rules::DecisionLog> reader;
  {
    std::lock_guard<std::mutex> lock(im.pool_mu);
    if (!im.readers.empty()) {
      reader = std::move(im.readers.back());
      im.readers.pop_back();
    }
  }
  if (!reader) {
    auto l = rules::DecisionLog::Open(im.cfg.state_db);
    if (!l.ok()) {
      r.status = 503;
      r.body["error"] = "cannot open the decision log: " + l.status().message();
      return r;
    }
    reader = std::move(l.value());
  }
  auto res = reader->Query(q);
  {
    std::lock_guard<std::mutex> lock(im.pool_mu);
    im.readers.push_back(std::move(reader));
  }
  if (!res.ok()) {
    r.status = 500;
    r.body["error"] = res.status().message();
    return r;
  }
  const auto& ds = res.value();
  if (text_out) {
    for (const auto& d : ds) *text_out += std::to_string(d.id) + " " + rules::RenderLine(d) + "\n";
    return r;
  }
  ordered_json list = ordered_json::array();
  for (const auto& d : ds) list.push_back(rules::ToJson(d, true));
  r.body["decisions"] = std::move(list);
  if (static_cast<std::int64_t>(ds.size()) == q.limit && !ds.empty()) r.body["next_after"] = ds.back().id;
  else r.body["next_after"] = nullptr;
  return r;
}

Reply Daemon::Entity(const std::string& type, const std::string& id) {
  Impl& im = *impl_;
  Reply r;
  auto prog = im.Snapshot();
  if (!prog->FindEntity(type)) {
    std::string known;
    for (const auto& e : prog->entities) known += (known.empty() ? "" : ", ") + e.name;
    r.status = 404;
    r.body["error"] = "unknown entity type `" + type + "` (declared: " + known + ")";
    return r;
  }
  // Fields and scores from the engine, journey positions from its committed state (the
  // engine's memory and the database agree after every commit).
  struct Out {
    std::string described;
    std::int64_t recent_after = 0;
    ordered_json journeys = ordered_json::object();
    ordered_json alerts = ordered_json::object();
  };
  Out out = im.OnEngine([&]() -> Out {
    Out o;
    o.described = im.engine ? im.engine->DescribeEntity(type, id) : "";
    sqlite3* db = im.db->log().db();
    auto recent = sqlite::Prepare(
        db, "SELECT id FROM decisions WHERE entity_type = ?1 AND entity_id = ?2 ORDER BY id DESC LIMIT 1 OFFSET 19",
        "recent decisions");
    if (recent.ok()) {
      sqlite3_stmt* s = recent.value().get();
      sqlite::BindCopy(s, 1, type);
      sqlite::BindCopy(s, 2, id);
      if (sqlite3_step(s) == SQLITE_ROW) o.recent_after = sqlite3_column_int64(s, 0) - 1;
    }
    // Journey positions from the engine's memory (events since the last snapshot are only in
    // the journal); alert states from the database, where every tick's snapshot puts them.
    EntityRows rows;
    if (im.engine) {
      if (Status j = im.engine->JourneyRows(type, id, rows); !j.ok()) {
        Log(LogLevel::kWarn, "reading an entity's journeys failed", {{"error", j.message()}});
      }
    }
    auto st = sqlite::Prepare(db, "SELECT kind, name, value FROM engine_state WHERE kind = 'alert' AND key = ?1",
                              "entity state");
    if (st.ok()) {
      sqlite3_stmt* s = st.value().get();
      sqlite::BindCopy(s, 1, id);
      while (sqlite3_step(s) == SQLITE_ROW) {
        rows.Put(std::string(sqlite::ColumnText(s, 0)), std::string(sqlite::ColumnText(s, 1)), id,
                 json::parse(sqlite::ColumnText(s, 2), nullptr, false));
      }
    }
    for (const auto& [kind, name, v] : rows.rows) {
      if (kind == "journey") {
        const dsl::CompiledJourney* jn = nullptr;
        for (const auto& j : im.program->journeys) {
          if (j.name == name) jn = &j;
        }
        if (!jn || jn->entity != type || v.is_discarded()) continue;
        static const char* kStatus[] = {"active", "waiting", "deferred", "done"};
        const int step = v.value("step", -1);
        const int status = v.value("status", 0);
        ordered_json jj;
        jj["step"] = step;
        jj["step_name"] = step >= 0 && step < static_cast<int>(jn->steps.size()) ? jn->steps[step].name : "";
        jj["status"] = status >= 0 && status < 4 ? kStatus[status] : std::to_string(status);
        jj["entered"] = rules::FormatTime(v.value("entered", TimeMs{0}));
        if (v.value("wait_until", TimeMs{0}) > 0) jj["wait_until"] = rules::FormatTime(v.value("wait_until", TimeMs{0}));
        if (v.value("resume_at", TimeMs{0}) > 0) jj["resume_at"] = rules::FormatTime(v.value("resume_at", TimeMs{0}));
        jj["version"] = v.value("version", "");
        o.journeys[name] = jj;
      } else if (!v.is_discarded()) {
        static const char* kAlert[] = {"inactive", "pending", "firing", "resolved"};
        const int state = v.value("state", 0);
        o.alerts[name] = {{"state", state >= 0 && state < 4 ? kAlert[state] : std::to_string(state)},
                          {"since", rules::FormatTime(v.value("since", TimeMs{0}))}};
      }
    }
    return o;
  });
  // Recent decisions: the last 20 of this entity.
  std::map<std::string, std::string> params = {{"entity_type", type}, {"entity_id", id}, {"limit", "20"},
                                                {"after", std::to_string(out.recent_after)}};
  Reply recent = Decisions(params, nullptr);
  if (out.described.empty() && recent.body["decisions"].empty()) {
    r.status = 404;
    r.body["error"] = "no " + type + " with id `" + id + "` (no state and no decisions)";
    return r;
  }
  r.body["type"] = type;
  r.body["id"] = id;
  json described = out.described.empty() ? json::object() : json::parse(out.described, nullptr, false);
  r.body["fields"] = described.is_object() && described.contains("fields") ? described["fields"] : json::object();
  r.body["scores"] = described.is_object() && described.contains("scores") ? described["scores"] : json::object();
  r.body["journeys"] = out.journeys;
  if (!out.alerts.empty()) r.body["alerts"] = out.alerts;
  r.body["recent_decisions"] = recent.body["decisions"];
  return r;
}

Reply Daemon::Rules() {
  Impl& im = *impl_;
  Reply r;
  struct Snap {
    std::shared_ptr<const dsl::Program> program;
    std::map<std::string, UnitStats> stats;
    TimeMs engine_now = 0;
    TimeMs next_wakeup = -1;
  };
  Snap s = im.OnEngine([&] {
    Snap o;
    o.program = im.program;
    o.stats = im.stats;
    if (im.engine) {
      o.engine_now = im.engine->now();
      o.next_wakeup = im.engine->NextWakeup();
    }
    return o;
  });
  auto unit = [&](const std::string& key, const std::string& kind, const std::string& name, const std::string& version,
                  const std::string& mode, const std::string& trigger, const std::string& file, int line) {
    ordered_json u;
    u["name"] = name;
    u["kind"] = kind;
    u["version"] = version;
    if (!mode.empty()) u["mode"] = mode;
    if (!trigger.empty()) u["trigger"] = trigger;
    if (!file.empty()) u["source"] = file + ":" + std::to_string(line);
    auto it = s.stats.find(key);
    if (it == s.stats.end()) {
      u["health"] = "ok";
      u["last_evaluation"] = nullptr;
      u["last_duration_ms"] = nullptr;
      u["last_error"] = nullptr;
      u["evaluations"] = 0;
      u["fired"] = 0;
    } else {
      const UnitStats& st = it->second;
      u["health"] = st.ok ? "ok" : "error";
      u["last_evaluation"] = st.last_evaluation > 0 ? ordered_json(rules::FormatTime(st.last_evaluation)) : ordered_json();
      u["last_duration_ms"] = st.last_duration_ms >= 0 ? ordered_json(st.last_duration_ms) : ordered_json();
      u["last_error"] = st.last_error.empty() ? ordered_json() : ordered_json(st.last_error);
      u["evaluations"] = st.evaluations;
      u["fired"] = st.fired;
    }
    return u;
  };
  ordered_json list = ordered_json::array();
  for (const auto& x : s.program->rules) {
    list.push_back(unit("rule:" + x.name, "rule", x.name, x.version, ModeText(x.meta.mode), TriggerText(x.trigger),
                        x.file, x.line));
  }
  for (const auto& x : s.program->alerts) {
    list.push_back(unit("alert:" + x.name, "alert", x.name, x.version, ModeText(x.meta.mode), "schedule", x.file, x.line));
  }
  for (const auto& x : s.program->journeys) {
    list.push_back(unit("journey:" + x.name, "journey", x.name, x.version, ModeText(x.meta.mode), "event:" + x.enter_event,
                        x.file, x.line));
  }
  for (const auto& x : s.program->scores) {
    list.push_back(unit("score:" + x.name, "score", x.name, x.version, "", "", "", 0));
  }
  r.body["program"] = s.program->version;
  r.body["engine_time"] = rules::FormatTime(s.engine_now);
  r.body["next_wakeup"] = s.next_wakeup >= 0 ? ordered_json(rules::FormatTime(s.next_wakeup)) : ordered_json();
  r.body["units"] = std::move(list);
  {
    std::lock_guard<std::mutex> lock(im.last_reload_mu);
    r.body["last_reload"] = im.last_reload;
  }
  return r;
}

Reply Daemon::SetClock(const std::string& body, const std::string& who) {
  Impl& im = *impl_;
  Reply r;
  if (!im.clock.simulated()) {
    r.status = 409;
    r.body["error"] = "the daemon runs on the wall clock; POST /v1/clock works only with clock.mode = \"simulated\"";
    return r;
  }
  json j = json::parse(body, nullptr, false);
  TimeMs t = 0;
  if (j.is_discarded() || !j.is_object() || !j.contains("time") || !j["time"].is_string() ||
      !rules::ParseTime(j["time"].get<std::string>(), t)) {
    r.status = 400;
    r.body["error"] = "send {\"time\": \"<RFC 3339 time>\"}";
    return r;
  }
  Status s = im.OnEngine([&]() -> Status {
    if (t < im.clock.Now()) {
      return Status::InvalidArgument("the clock only moves forward: it is " + rules::FormatTime(im.clock.Now()));
    }
    const TimeMs old = im.clock.Now();
    im.clock.Set(t);
    if (im.failed || !im.engine) return Status::Unavailable("the engine is not running");
    return im.Transaction([&]() -> Status {
      rules::Decision d = im.OperatorDecision(who, "api:POST /v1/clock", "clock_set");
      d.version = im.program->version;
      d.reason = "simulated clock moved";
      d.evidence = {{"who", who}, {"from", rules::FormatTime(old)}, {"to", rules::FormatTime(t)}};
      if (!im.sink.Append(d)) return im.db->log().last_error();
      return im.AdvanceToNow();
    });
  });
  if (!s.ok()) {
    r.status = s.code() == Status::Code::kInvalidArgument ? 400 : 503;
    r.body["error"] = s.message();
    return r;
  }
  impl_->OnEngine([&] {
    im.ArmWake();
    return 0;
  });
  r.body["time"] = rules::FormatTime(t);
  return r;
}

Reply Daemon::Health() const {
  Reply r;
  r.body["status"] = impl_->failed ? "failing" : "ok";
  if (impl_->failed) r.status = 503;
  return r;
}

Reply Daemon::Readiness() const {
  Reply r;
  if (impl_->stopping) {
    r.status = 503;
    r.body["status"] = "stopping";
  } else if (impl_->failed) {
    r.status = 503;
    r.body["status"] = "failing";
  } else if (!ready_) {
    r.status = 503;
    r.body["status"] = "starting";
  } else {
    r.body["status"] = "ready";
  }
  return r;
}


// ---------------------------------------------------------------- operator controls

namespace {

ordered_json PinJson(const actions::Pin& p) {
  return {{"target", p.target}, {"until", rules::FormatTime(p.until)}, {"reason", p.reason}, {"who", p.who},
          {"since", rules::FormatTime(p.since)}};
}

ordered_json KillJson(const actions::KillSwitch& k) {
  return {{"on", k.on}, {"reason", k.reason}, {"who", k.who}, {"since", k.since ? rules::FormatTime(k.since) : ""}};
}

// The request body as a JSON object ("" is {}); false with an error reply if it is not one.
bool BodyObject(const std::string& body, json& out, Reply& r) {
  if (body.empty()) {
    out = json::object();
    return true;
  }
  out = json::parse(body, nullptr, false);
  if (out.is_discarded() || !out.is_object()) {
    r.status = 400;
    r.body["error"] = "the body must be a JSON object";
    return false;
  }
  return true;
}

std::string ReasonOf(const json& j);

// {"on": true|false, "reason": "..."}; false with an error reply otherwise.
bool OnOffBody(const std::string& body, bool& on, std::string& reason, Reply& r) {
  json j;
  if (!BodyObject(body, j, r)) return false;
  if (!j.contains("on") || !j["on"].is_boolean()) {
    r.status = 400;
    r.body["error"] = "give {\"on\": true|false, \"reason\": \"...\"}";
    return false;
  }
  on = j["on"].get<bool>();
  reason = ReasonOf(j);
  return true;
}

std::string ReasonOf(const json& j) { return j.contains("reason") && j["reason"].is_string() ? j["reason"].get<std::string>() : ""; }

ordered_json EntryJson(const actions::OutboxEntry& e) {
  ordered_json j = {{"key", e.key},
                    {"decision_id", e.decision_id},
                    {"state", actions::StateName(e.state)},
                    {"executor", e.executor},
                    {"rule", e.request.rule},
                    {"entity", e.request.entity_type + ":" + e.request.entity_id},
                    {"attempts", e.attempts},
                    {"created", rules::FormatTime(e.created)},
                    {"updated", rules::FormatTime(e.updated)},
                    {"intent", ordered_json::parse(e.request.intent.dump())}};
  if (e.expires > 0) j["expires"] = rules::FormatTime(e.expires);
  if (e.state == actions::OutboxState::kPending) j["next_attempt"] = rules::FormatTime(e.next_attempt);
  if (!e.decided_by.empty()) j["decided_by"] = e.decided_by;
  if (!e.last_result.is_null()) j["last_result"] = ordered_json::parse(e.last_result.dump());
  return j;
}

}  // namespace

Reply Daemon::Controls() {
  Impl& im = *impl_;
  return im.OnEngine([&]() -> Reply {
    Reply r;
    const actions::Controls& c = im.actions->controls();
    r.body["kill_switch"] = KillJson(c.kill_switch());
    r.body["flags"] = ordered_json::object();
    for (const auto& [name, on] : c.flags()) r.body["flags"][name] = on;
    r.body["overrides"] = ordered_json::array();
    for (const auto& p : c.Pins(im.clock.Now())) r.body["overrides"].push_back(PinJson(p));
    r.body["execute"] = im.cfg.actions.execute;
    return r;
  });
}

Reply Daemon::SetKillSwitch(const std::string& body, const std::string& who) {
  Impl& im = *impl_;
  Reply bad;
  bool on = false;
  std::string reason;
  if (!OnOffBody(body, on, reason, bad)) return bad;
  return im.OperatorChange(who, "api:POST /v1/kill-switch", on ? "kill_switch_on" : "kill_switch_off",
                           [&](rules::Decision& d, Reply& r) -> Status {
                             Status s = im.actions->controls().SetKillSwitch(on, who, reason, im.clock.Now());
                             if (!s.ok()) return s;
                             d.reason = reason;
                             d.evidence["who"] = who;
                             d.evidence["kill_switch"] = on;
                             r.body = KillJson(im.actions->controls().kill_switch());
                             return Status::Ok();
                           });
}

Reply Daemon::SetFlag(const std::string& name, const std::string& body, const std::string& who) {
  Impl& im = *impl_;
  Reply bad;
  bool on = false;
  std::string reason;
  if (!OnOffBody(body, on, reason, bad)) return bad;
  return im.OperatorChange(who, "api:PUT /v1/flags/" + name, on ? "flag_on" : "flag_off",
                           [&](rules::Decision& d, Reply& r) -> Status {
                             Status s = im.actions->controls().SetFlag(name, on);
                             if (!s.ok()) {
                               r.status = 400;
                               return s;
                             }
                             d.reason = reason;
                             d.evidence["who"] = who;
                             d.evidence["flag"] = name;
                             d.evidence["on"] = on;
                             r.body = {{"flag", name}, {"on", on}};
                             return Status::Ok();
                           });
}

Reply Daemon::AddOverride(const std::string& body, const std::string& who) {
  Impl& im = *impl_;
  Reply bad;
  json j;
  if (!BodyObject(body, j, bad)) return bad;
  actions::Pin pin;
  pin.who = who;
  pin.since = im.clock.Now();
  pin.reason = ReasonOf(j);
  pin.target = j.contains("target") && j["target"].is_string() ? j["target"].get<std::string>() : "";
  std::string until = j.contains("until") && j["until"].is_string() ? j["until"].get<std::string>() : "";
  std::string dur = j.contains("for") && j["for"].is_string() ? j["for"].get<std::string>() : "";
  std::int64_t ms = 0;
  if (pin.target.empty() || pin.reason.empty() || until.empty() == dur.empty()) {
    bad.status = 400;
    bad.body["error"] = "give {\"target\": \"TYPE:ID\", \"until\": TIME or \"for\": DURATION, \"reason\": \"...\"}";
    return bad;
  }
  if (!until.empty() && !rules::ParseTime(until, pin.until)) {
    bad.status = 400;
    bad.body["error"] = "`until` is not an RFC 3339 time: " + until;
    return bad;
  }
  if (!dur.empty()) {
    if (!ParseDurationMs(dur, ms) || ms <= 0) {
      bad.status = 400;
      bad.body["error"] = "`for` is not a duration (e.g. 7d, 36h): " + dur;
      return bad;
    }
    pin.until = pin.since + ms;
  }
  return im.OperatorChange(who, "api:POST /v1/overrides", "override_added",
                           [&](rules::Decision& d, Reply& r) -> Status {
                             Status s = im.actions->controls().SetPin(pin);
                             if (!s.ok()) {
                               r.status = 400;
                               return s;
                             }
                             d.reason = pin.reason;
                             d.evidence["who"] = who;
                             d.evidence["override"] = PinJson(pin);
                             r.status = 201;
                             r.body = PinJson(pin);
                             return Status::Ok();
                           });
}

Reply Daemon::RemoveOverride(const std::string& target, const std::string& body, const std::string& who) {
  Impl& im = *impl_;
  Reply bad;
  json j;
  if (!BodyObject(body, j, bad)) return bad;
  return im.OperatorChange(who, "api:DELETE /v1/overrides/" + target, "override_removed",
                           [&](rules::Decision& d, Reply& r) -> Status {
                             Status s = im.actions->controls().RemovePin(target);
                             if (!s.ok()) {
                               r.status = s.code() == Status::Code::kNotFound ? 404 : 400;
                               return s;
                             }
                             d.reason = ReasonOf(j);
                             d.evidence["who"] = who;
                             d.evidence["target"] = target;
                             r.body = {{"target", target}, {"removed", true}};
                             return Status::Ok();
                           });
}

Reply Daemon::Approvals() {
  Impl& im = *impl_;
  return im.OnEngine([&]() -> Reply {
    Reply r;
    actions::OutboxFilter f;
    f.state = actions::OutboxState::kAwaitingApproval;
    f.limit = 1000;
    auto rows = im.actions->outbox().List(f);
    if (!rows.ok()) {
      r.status = 500;
      r.body["error"] = rows.status().message();
      return r;
    }
    r.body["approvals"] = ordered_json::array();
    for (const auto& e : rows.value()) r.body["approvals"].push_back(EntryJson(e));
    return r;
  });
}

Reply Daemon::DecideApproval(const std::string& key, bool approve, const std::string& body, const std::string& who) {
  Impl& im = *impl_;
  Reply bad;
  json j;
  if (!BodyObject(body, j, bad)) return bad;
  return im.OperatorChange(who, std::string("api:POST /v1/approvals/") + key + (approve ? "/approve" : "/reject"),
                           approve ? "approved" : "rejected", [&](rules::Decision& d, Reply& r) -> Status {
                             Status s = approve ? im.actions->outbox().Approve(key, who, im.clock.Now())
                                                : im.actions->outbox().Reject(key, who, im.clock.Now());
                             if (!s.ok()) {
                               r.status = s.code() == Status::Code::kNotFound ? 404 : 409;
                               return s;
                             }
                             auto row = im.actions->outbox().Get(key);
                             d.reason = ReasonOf(j);
                             d.evidence["who"] = who;
                             d.evidence["action"] = key;
                             if (row.ok()) {
                               d.evidence["decision_id"] = row.value().decision_id;
                               d.rule = row.value().request.rule;
                               r.body = EntryJson(row.value());
                             }
                             return Status::Ok();
                           });
}

Reply Daemon::Outbox(const std::map<std::string, std::string>& params) {
  Impl& im = *impl_;
  Reply bad;
  actions::OutboxFilter f;
  auto it = params.find("state");
  if (it != params.end()) {
    actions::OutboxState st;
    if (!actions::ParseState(it->second, st)) {
      bad.status = 400;
      bad.body["error"] = "unknown state `" + it->second +
                          "` (awaiting_approval, pending, in_flight, succeeded, dead, rejected, expired, held)";
      return bad;
    }
    f.state = st;
  }
  it = params.find("decision");
  if (it != params.end()) {
    try {
      f.decision_id = std::stoll(it->second);
    } catch (...) {
      bad.status = 400;
      bad.body["error"] = "`decision` must be a decision id";
      return bad;
    }
  }
  it = params.find("limit");
  if (it != params.end()) {
    try {
      f.limit = std::min<std::int64_t>(std::max<std::int64_t>(std::stoll(it->second), 1), 1000);
    } catch (...) {
      bad.status = 400;
      bad.body["error"] = "`limit` must be a number";
      return bad;
    }
  }
  return im.OnEngine([&]() -> Reply {
    Reply r;
    auto rows = im.actions->outbox().List(f);
    if (!rows.ok()) {
      r.status = 500;
      r.body["error"] = rows.status().message();
      return r;
    }
    r.body["actions"] = ordered_json::array();
    for (const auto& e : rows.value()) r.body["actions"].push_back(EntryJson(e));
    auto depth = im.actions->outbox().Depth();
    if (depth.ok()) r.body["depth"] = depth.value();
    return r;
  });
}

std::string Daemon::RenderMetrics() {
  Impl& im = *impl_;
  auto prog = im.Snapshot();
  std::map<std::string, double> gauges;
  gauges["gavel_rules_loaded"] = static_cast<double>(prog->rules.size() + prog->alerts.size() + prog->journeys.size());
  gauges["gavel_ready"] = ready_ ? 1 : 0;
  gauges["gavel_clock_seconds"] = static_cast<double>(im.clock.Now()) / 1000.0;
  if (im.actions) {
    const ActionsStats& a = im.actions->stats();
    gauges["gavel_outbox_depth"] = static_cast<double>(a.depth.load());
    gauges["gavel_actions_attempted_total"] = static_cast<double>(a.attempted.load());
    gauges["gavel_actions_succeeded_total"] = static_cast<double>(a.succeeded.load());
    gauges["gavel_actions_retried_total"] = static_cast<double>(a.retrying.load());
    gauges["gavel_actions_dead_total"] = static_cast<double>(a.dead.load());
    gauges["gavel_actions_held_total"] = static_cast<double>(a.held.load());
  }
  return metrics_.Render(gauges);
}

}  // namespace gavel::daemon
