// Prometheus text rendering. See metrics.hpp.
#include "daemon/metrics.hpp"

#include <cstdio>

namespace gavel::daemon {

namespace {

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Header(const std::string& name, const std::string& help, const char* type, std::string& out) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

Histogram::Histogram()
    : bounds_{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
      counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double seconds) {
  std::size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  counts_[i]++;
  sum_ += seconds;
  count_++;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string& out) const {
  Header(name, help, "histogram", out);
  std::lock_guard<std::mutex> lock(mu_);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + Num(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  out += name + "_sum " + Num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

void LabelledCounter::Add(const std::string& label_value, std::uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  counts_[label_value] += n;
}

std::uint64_t LabelledCounter::Get(const std::string& label_value) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(label_value);
  return it == counts_.end() ? 0 : it->second;
}

void LabelledCounter::Render(const std::string& name, const std::string& help, const std::string& label,
                             std::string& out) const {
  Header(name, help, "counter", out);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [v, n] : counts_) {
    // "route status" pairs become two labels.
    auto space = v.find(' ');
    if (label == "route,code" && space != std::string::npos) {
      out += name + "{route=\"" + EscapeLabel(v.substr(0, space)) + "\",code=\"" + EscapeLabel(v.substr(space + 1)) +
             "\"} " + std::to_string(n) + "\n";
    } else {
      out += name + "{" + label + "=\"" + EscapeLabel(v) + "\"} " + std::to_string(n) + "\n";
    }
  }
}

std::string Metrics::Render(const std::map<std::string, double>& gauges) const {
  std::string out;
  auto counter = [&](const std::string& name, const std::string& help, std::uint64_t v) {
    Header(name, help, "counter", out);
    out += name + " " + std::to_string(v) + "\n";
  };
  counter("gavel_events_received_total", "Event lines received over HTTP or from ingest files.", events_received);
  counter("gavel_events_accepted_total", "Events applied by the engine and committed.", events_accepted);
  counter("gavel_events_duplicate_total", "Events refused because their id was seen before.", events_duplicate);
  events_rejected.Render("gavel_events_rejected_total", "Event lines rejected, by reason.", "reason", out);
  decisions.Render("gavel_decisions_total", "Decisions written to the decision log, by outcome.", "outcome", out);
  http_responses.Render("gavel_http_responses_total", "HTTP responses by route and status code.", "route,code", out);
  reloads.Render("gavel_reloads_total", "Rule reloads by result.", "result", out);
  operator_requests.Render("gavel_operator_changes_total", "Operator changes to controls and approvals, by outcome.",
                           "outcome", out);
  counter("gavel_commits_total", "Transactions committed to the state database.", commits);
  counter("gavel_commit_failures_total", "Transactions that failed (the engine was rebuilt from disk).",
          commit_failures);
  counter("gavel_journal_commits_total",
          "Ingest commits written as event-journal rows (the engine state written at the next snapshot).",
          journal_commits);
  counter("gavel_snapshots_total", "Snapshots of the engine state (each clears the event journal).", snapshots);
  counter("gavel_warehouse_errors_total", "Warehouse queries that failed.", warehouse_errors);
  auto seconds = [&](const std::string& name, const std::string& help, std::uint64_t us) {
    Header(name, help, "counter", out);
    out += name + " " + Num(static_cast<double>(us) / 1e6) + "\n";
  };
  seconds("gavel_engine_apply_seconds_total", "Engine thread: applying events and due work (decisions appended).",
          apply_us);
  seconds("gavel_engine_checkpoint_seconds_total", "Engine thread: writing changed state (Engine::Checkpoint).",
          checkpoint_us);
  seconds("gavel_engine_commit_seconds_total", "Engine thread: COMMIT of the state database.", commit_us);
  Header("gavel_ingest_queue_events", "Validated events waiting for the engine thread.", "gauge", out);
  out += "gavel_ingest_queue_events " + std::to_string(ingest_queue_events.load()) + "\n";
  for (const auto& [name, v] : gauges) {
    Header(name, "See docs/http-api.md.", "gauge", out);
    out += name + " " + Num(v) + "\n";
  }
  batch_seconds.Render("gavel_ingest_batch_seconds", "POST /v1/events: from receipt to the answer.", out);
  commit_seconds.Render("gavel_commit_seconds", "One group commit: apply events, checkpoint, COMMIT.", out);
  evaluation_seconds.Render("gavel_evaluation_seconds",
                            "One wake-up of the engine: schedule ticks and timers that were due.", out);
  warehouse_seconds.Render("gavel_warehouse_query_seconds", "One warehouse query (window, history, freshness).", out);
  return out;
}

}  // namespace gavel::daemon
