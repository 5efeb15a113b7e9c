// The daemon's metrics, rendered in the Prometheus text format for GET /metrics.
//
// Counters and gauges are atomics; labelled counters (decisions by outcome, rejections by
// reason, HTTP responses by route and status) and histograms take a small mutex. Any thread
// may update or render; a render sees each value at some instant (not one global snapshot).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace gavel::daemon {

// A histogram in seconds with fixed buckets (from 100 µs to 10 s).
class Histogram {
 public:
  Histogram();
  void Observe(double seconds);
  // Appends the `_bucket`, `_sum` and `_count` lines of `name`.
  void Render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket (not cumulative); last is +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

class LabelledCounter {
 public:
  void Add(const std::string& label_value, std::uint64_t n = 1);
  void Render(const std::string& name, const std::string& help, const std::string& label, std::string& out) const;
  std::uint64_t Get(const std::string& label_value) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::uint64_t> counts_;
};

struct Metrics {
  std::atomic<std::uint64_t> events_received{0};   // lines that were events or tried to be
  std::atomic<std::uint64_t> events_accepted{0};   // applied and committed
  std::atomic<std::uint64_t> events_duplicate{0};  // refused as already seen (idempotent)
  LabelledCounter events_rejected;                 // by reason class
  LabelledCounter decisions;                       // by outcome
  LabelledCounter http_responses;                  // by "route status"
  LabelledCounter reloads;                         // by result: ok | failed
  LabelledCounter operator_requests;               // controls and approvals, by outcome
  std::atomic<std::int64_t> ingest_queue_events{0};  // validated, waiting for the engine
  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> commit_failures{0};
  Histogram batch_seconds;        // POST /v1/events: receipt to answer
  Histogram commit_seconds;       // one group commit: apply + checkpoint + COMMIT
  Histogram evaluation_seconds;   // one wake-up of scheduled units and timers
  Histogram warehouse_seconds;    // one warehouse query
  std::atomic<std::uint64_t> warehouse_errors{0};
  // Where the engine thread's time goes, summed over every group commit (microseconds).
  std::atomic<std::uint64_t> apply_us{0};       // Engine::AdvanceTo + OnEvent (decisions appended)
  std::atomic<std::uint64_t> checkpoint_us{0};  // Engine::Checkpoint into the state table
  std::atomic<std::uint64_t> commit_us{0};      // COMMIT (WAL write, and SQLite's checkpoints)
  // The event journal (daemon/event_journal.hpp): ingest commits written as journal rows,
  // and snapshots of the engine's state (each one clears the journal).
  std::atomic<std::uint64_t> journal_commits{0};
  std::atomic<std::uint64_t> snapshots{0};

  // Renders everything; `extra` gauges are computed by the caller (rules loaded, ...).
  std::string Render(const std::map<std::string, double>& gauges) const;
};

}  // namespace gavel::daemon
