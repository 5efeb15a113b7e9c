// Decision-log throughput: appends per second into a real SQLite file (WAL,
// synchronous=NORMAL), batched in transactions as the engine does during a tick or a replay,
// and alone (one transaction per record); then Verify, paginated queries (an entity, a rule,
// an outcome, a minute of processing or event time) and JSONL export over what was written.
//
//   build/bench/decision_log_bench [RECORDS [BATCH [DB_PATH]]]   (defaults: 1000000 10000, a
//                                                                 temporary file)
//
// With GAVEL_BENCH_APPEND_ONLY=1 in the environment it stops after the batched appends (for
// profiling them alone with perf).
//
// Records are realistic: a mix of rule firings and skips (window bounds, aggregates,
// thresholds, a confidence bound in the evidence, intended actions when fired), alert
// transitions and journey steps over 10,000 entities; ~574 bytes of canonical JSON each.
// Target (issue): at least 300,000 records/s batched. Figures: docs/performance.md.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "rules/store/decision_log.hpp"

namespace {

namespace fs = std::filesystem;
using gavel::rules::Decision;
using gavel::rules::DecisionLog;
using gavel::rules::DecisionQuery;
using gavel::rules::TimeMs;
using Clock = std::chrono::steady_clock;

constexpr TimeMs kT0 = 1793523600000;  // 2026-11-01T09:00:00Z

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU seconds of this process, all threads (user + system): on a busy machine the wall-clock
// rate measures the neighbours as much as the log, so both are printed.
double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// User and system CPU seconds (getrusage) of this process (RUSAGE_SELF: every thread,
// including the decision log's checkpoint thread) or of the calling thread (RUSAGE_THREAD).
void UserSys(int who, double& user, double& sys) {
  rusage u{};
  getrusage(who, &u);
  user = static_cast<double>(u.ru_utime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec) / 1e6;
  sys = static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) / 1e6;
}

struct Timer {
  Clock::time_point wall0 = Clock::now();
  double cpu0 = CpuSeconds();
  double user0 = 0, sys0 = 0, thread_user0 = 0, thread_sys0 = 0;
  Timer() {
    UserSys(RUSAGE_SELF, user0, sys0);
    UserSys(RUSAGE_THREAD, thread_user0, thread_sys0);
  }
  // "   123456 records/s  (234567 records/CPU-s)"
  std::string Rate(double n) const {
    const double wall = Seconds(wall0, Clock::now()), cpu = CpuSeconds() - cpu0;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%10.0f records/s (%8.0f per CPU-s)", n / wall, n / cpu);
    return buf;
  }
  // "wall 4.20 s, user 3.10 s, sys 0.90 s (this thread 3.70 s)"
  std::string Times() const {
    double user = 0, sys = 0, thread_user = 0, thread_sys = 0;
    UserSys(RUSAGE_SELF, user, sys);
    UserSys(RUSAGE_THREAD, thread_user, thread_sys);
    char buf[128];
    std::snprintf(buf, sizeof buf, "wall %.2f s, user %.2f s, sys %.2f s (this thread %.2f s)",
                  Wall(), user - user0, sys - sys0,
                  thread_user - thread_user0 + thread_sys - thread_sys0);
    return buf;
  }
  double Wall() const { return Seconds(wall0, Clock::now()); }
};

Decision Realistic(int i) {
  Decision d;
  d.version = "3f9a1c0d5e7b2a64";
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5: {  // a scheduled CPA rule over an ad set: fired or skipped
      d.kind = "rule";
      d.rule = i % 2 ? "pause_adsets_over_target_cpa" : "shift_budget_to_winning_channel";
      d.trigger = "tick:2026-11-01T09:00:00Z";
      d.entity_type = "adset_daily";
      d.entity_id = "adset-" + std::to_string(100000 + i % 10000);
      const double spend = 800 + (i * 37 % 1000) + 0.25 * (i % 4);
      const int conv = 3 + i % 23;
      d.evidence["window"] = {
          {"from", "2026-10-25T00:00:00Z"}, {"to", "2026-11-01T00:00:00Z"}, {"rows", 7}};
      d.evidence["spend"] = spend;
      d.evidence["conversions"] = conv;
      d.evidence["cpa"] = spend / conv;
      d.evidence["target_cpa"] = 45.0;
      d.evidence["threshold"] = 1.3;
      d.evidence["confidence"] = {{"method", "wilson"},
                                  {"level", 0.9},
                                  {"lower", 0.0113 + (i % 7) * 0.001},
                                  {"upper", 0.0387 + (i % 5) * 0.001}};
      d.evidence["freshness"] = {{"last_load", "2026-11-01T06:12:00Z"}, {"max_age", "36h"}};
      if (i % 3 == 0) {
        d.outcome = "fired";
        d.actions.push_back(
            {{"action", "pause"}, {"target", "adset:" + d.entity_id}, {"mode", "live"}});
        d.actions.push_back(
            {{"action", "notify"}, {"to", "#paid-social"}, {"template", "paused_over_cpa"}});
      } else {
        static const char* kReasons[] = {"below_confidence", "cooldown", "stale_data", "limit"};
        d.outcome = "skipped";
        d.reason = kReasons[i % 4];
      }
      break;
    }
    case 6:
    case 7: {  // an event rule on a lead
      d.kind = "rule";
      d.rule = "hot_lead_to_sales";
      d.trigger = "event:pv-" + std::to_string(9000000 + i);
      d.entity_type = "lead";
      d.entity_id = "lead-" + std::to_string(i % 10000);
      d.evidence["event"] = {{"type", "page_view"}, {"page", "/pricing"}, {"seconds", 42 + i % 60}};
      d.evidence["lead_score"] = 60 + i % 40;
      d.evidence["threshold"] = 80;
      d.evidence["title"] = "VP Marketing";
      d.outcome = i % 40 >= 20 ? "fired" : "skipped";
      if (d.outcome == "fired") {
        d.actions.push_back({{"action", "assign"}, {"owner", "sales-emea"}, {"mode", "live"}});
      } else {
        d.reason = "cooldown";
      }
      break;
    }
    case 8: {  // an alert transition
      d.kind = "alert";
      d.rule = "spend_anomaly";
      d.trigger = "tick:2026-11-01T09:00:00Z";
      d.entity_type = "campaign_hourly";
      d.entity_id = "cmp-" + std::to_string(i % 500);
      d.outcome = "alert";
      d.reason = i % 20 < 10 ? "firing" : "resolved";
      d.evidence["value"] = 1520.75 + i % 100;
      d.evidence["baseline"] = {{"mean", 980.2}, {"stddev", 140.9}, {"hours", 336}};
      d.evidence["z"] = (1520.75 + i % 100 - 980.2) / 140.9;
      d.evidence["for"] = "2h";
      d.actions.push_back(
          {{"action", "notify"}, {"to", "#marketing-ops"}, {"severity", "warning"}});
      break;
    }
    default: {  // a journey step
      d.kind = "journey";
      d.rule = "trial_onboarding";
      d.trigger = "timer:journey:trial_onboarding:step2";
      d.entity_type = "lead";
      d.entity_id = "lead-" + std::to_string(i % 10000);
      d.outcome = "journey";
      d.reason = "send:day_2_tips";
      d.evidence["instance"] = "j-" + std::to_string(i);
      d.evidence["entered"] = "2026-10-30T09:00:00Z";
      d.evidence["step"] = 2;
      d.actions.push_back({{"action", "email"}, {"template", "day_2_tips"}, {"mode", "live"}});
      break;
    }
  }
  return d;
}

void Die(const std::string& what, const gavel::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), s.message().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const long records = argc > 1 ? std::atol(argv[1]) : 1000000;
  const long batch = argc > 2 ? std::atol(argv[2]) : 10000;
  const bool temp = argc <= 3;
  const std::string path = temp ? (fs::temp_directory_path() / ("gavel-decision-log-bench-" +
                                                                std::to_string(::getpid()) + ".db"))
                                      .string()
                                : argv[3];
  if (records <= 0 || batch <= 0) {
    std::fprintf(stderr, "usage: decision_log_bench [RECORDS [BATCH [DB_PATH]]]\n");
    return 2;
  }
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);

  std::vector<Decision> pool;
  for (int i = 0; i < 1000; ++i) pool.push_back(Realistic(i));
  std::size_t body_bytes = 0;
  for (const auto& d : pool) body_bytes += gavel::rules::CanonicalBody(d).size();
  std::printf("decision log bench: %ld records, batches of %ld, %s\n", records, batch,
              path.c_str());
  std::printf("  mean canonical body: %zu bytes\n", body_bytes / pool.size());

  // Hashing and rendering alone, for reference.
  {
    Timer t;
    std::string prev(gavel::rules::kGenesisHash);
    const int n = 200000;
    for (int i = 0; i < n; ++i)
      prev = gavel::rules::ChainHash(prev, gavel::rules::CanonicalBody(pool[i % 1000]));
    std::printf("  JSON + hash only:  %s\n", t.Rate(n).c_str());
  }

  auto opened = DecisionLog::Open(path);
  if (!opened.ok()) Die("open", opened.status());
  DecisionLog& log = *opened.value();

  // Batched: BEGIN IMMEDIATE, `batch` appends, COMMIT.
  {
    Timer t;
    long done = 0;
    while (done < records) {
      gavel::Status s = log.Begin();
      if (!s.ok()) Die("begin", s);
      const long end = std::min(records, done + batch);
      for (; done < end; ++done) {
        Decision& d = pool[done % 1000];
        d.event_time = kT0 + done * 10;
        d.processing_time = kT0 + done * 10 + 3;
        if (!log.Append(d)) Die("append", log.last_error());
      }
      s = log.Commit();
      if (!s.ok()) Die("commit", s);
    }
    std::printf("  batched appends:   %s  %ld records: %s\n", t.Rate(records).c_str(), records,
                t.Times().c_str());
  }
  if (const char* only = std::getenv("GAVEL_BENCH_APPEND_ONLY"); only && *only == '1') {
    opened.value().reset();
    if (temp) {
      std::error_code ec;
      for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix, ec);
    }
    return 0;
  }

  // Alone: one transaction per record (WAL, synchronous=NORMAL: no fsync per commit).
  {
    const long n = std::min(records, 20000L);
    Timer t;
    for (long i = 0; i < n; ++i) {
      Decision& d = pool[i % 1000];
      d.processing_time = kT0 + (records + i) * 10;
      if (!log.Append(d)) Die("append", log.last_error());
    }
    std::printf("  unbatched appends: %s  %ld records, one transaction each\n", t.Rate(n).c_str(),
                n);
  }

  {
    Timer t;
    auto r = log.Verify();
    if (!r.ok()) Die("verify", r.status());
    std::printf("  verify:            %s  %s\n", t.Rate(r->count).c_str(),
                r->message.substr(0, 40).c_str());
    if (!r->ok()) return 1;
  }

  // Queries over what was written: each filter paged to the end in pages of 50 (as `gavel
  // log` and an API client page), plus the latency of the first page alone.
  auto run_query = [&](const char* name, DecisionQuery q) {
    q.limit = 50;
    Timer first;
    auto page1 = log.Query(q);
    if (!page1.ok()) Die("query", page1.status());
    const double first_ms = 1000 * first.Wall();
    long rows = 0, pages = 0;
    Timer t;
    for (;;) {
      auto page = log.Query(q);
      if (!page.ok()) Die("query", page.status());
      if (page->empty()) break;
      rows += static_cast<long>(page->size());
      ++pages;
      q.after_id = page->back().id;
    }
    std::printf("  query %-14s first page %7.2f ms; all %6ld records in %5ld pages %8.1f ms\n",
                name, first_ms, rows, pages, 1000 * t.Wall());
  };
  {
    DecisionQuery q;
    q.entity_type = "adset_daily";
    q.entity_id = "adset-100042";
    run_query("entity:", q);
  }
  {
    DecisionQuery q;
    q.rule = "spend_anomaly";  // 10% of the records
    q.limit = 50;
    run_query("rule:", q);
    q.outcome = "alert";
    q.reason = "resolved";
    run_query("rule+reason:", q);
  }
  {
    DecisionQuery q;
    q.outcome = "journey";  // 10% of the records
    run_query("outcome:", q);
  }
  {
    DecisionQuery q;  // one simulated minute in the middle of the log: 6,000 records
    q.from = kT0 + records / 2 * 10;
    q.to = *q.from + 60000;
    run_query("time range:", q);
    q.rule = "hot_lead_to_sales";
    run_query("time+rule:", q);
    DecisionQuery e;  // the same minute by event time
    e.time_field = gavel::rules::TimeField::kEvent;
    e.from = q.from;
    e.to = q.to;
    run_query("event time:", e);
  }

  {
    std::ofstream devnull("/dev/null");
    Timer t;
    auto n = log.ExportJsonl(devnull);
    if (!n.ok()) Die("export", n.status());
    std::printf("  export JSONL:      %s\n", t.Rate(static_cast<double>(n.value())).c_str());
  }

  std::error_code ec;
  auto size = fs::file_size(path, ec);
  auto wal = fs::file_size(path + "-wal", ec);
  std::printf("  database: %.1f MB (+ %.1f MB WAL), %.0f bytes/record\n", size / 1e6, wal / 1e6,
              static_cast<double>(size) / records);
  opened.value().reset();  // close before removing
  if (temp) {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix, ec);
  }
  return 0;
}
