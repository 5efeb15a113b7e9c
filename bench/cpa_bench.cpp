// CPA pause rules over 1,000,000 ad-set daily rows (100,000 ad sets x 10 days), compiled by
// the real compiler, measured three ways:
//   (a) the compiled condition (the `let` and the `when`, bytecode run by rules::Evaluator)
//       over 1M in-memory rows, as the engine runs it on a tick (columns of 4,096 rows through
//       RunBatch/TestBatch): rows/s (target >= 50M rows/s); also row by row (Run/Test), for
//       comparison;
//   (b) the bare aggregation query the compiler pushes down (WindowQuery::sql), run with the
//       sqlite3 API over a generated SQLite warehouse, every column of every row read;
//   (c) end to end: an Engine with the SQLite warehouse and a counting sink running one
//       schedule tick of the rule (Start / AdvanceTo on a simulated clock): time and the ratio
//       end-to-end / bare query (target <= 1.5).
// Counts (rows where the condition holds, ad sets fired) are checked against a direct C++
// computation and printed as `count NAME N` lines for bench/peers/run.sh.
//
//   build/bench/cpa_bench [adsets=100000] [days=10] [db=/tmp/gavel_cpa_bench.db] [all|cond|e2e]
//   (`cond`: measure (a) only, no warehouse; `e2e`: (c) only, once; for profiling)
//
// The data (shared with bench/peers/cpa.js, which must generate the very same rows):
//   Mix(x)    = lowbias32: x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16
//   H(n, k)   = Mix(uint32(n*4 + k + 0x9e3779b9))             (all arithmetic mod 2^32)
//   ad set i (0-based), day d (0-based, 2026-11-01 + d), n = i*64 + d, m = i*64 + 63:
//     adset_id    = "A" + i
//     target_cpa  = 25 + H(m, 0) % 30                         (USD, whole dollars)
//     spend       = 20 + (H(n, 0) % 2000) * 0.25              (USD, exact in binary)
//     clicks      = 5 + H(n, 1) % 200
//     conversions = H(m, 3) % 20 == 0 ? 0 : H(n, 2) % 16      (one ad set in 20 converts nothing)
// Sums of these are exact in any order, so every engine gets bit-identical ratios.
#include <sqlite3.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "dsl/compiler.hpp"
#include "rules/engine.hpp"
#include "rules/eval.hpp"
#include "rules/stats.hpp"
#include "rules/store/sqlite_warehouse.hpp"

namespace {

using gavel::rules::TimeMs;
using gavel::rules::Value;
// Every figure is the CPU time of this thread (user + system), not wall time: the machine is
// shared, and a thread's CPU time is what the work costs whatever else runs beside it.
struct Clock {
  using time_point = double;
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
};

double Since(double t0) { return Clock::now() - t0; }

std::uint32_t Mix(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}
std::uint32_t H(std::uint32_t n, std::uint32_t k) { return Mix(n * 4u + k + 0x9e3779b9u); }

struct Rows {
  long adsets = 0, days = 0;
  std::vector<double> spend, clicks, conversions, target;  // one per daily row, ad set major
};

Rows Generate(long adsets, long days) {
  Rows r;
  r.adsets = adsets;
  r.days = days;
  std::size_t n_rows = static_cast<std::size_t>(adsets * days);
  r.spend.reserve(n_rows);
  r.clicks.reserve(n_rows);
  r.conversions.reserve(n_rows);
  r.target.reserve(n_rows);
  for (long i = 0; i < adsets; ++i) {
    std::uint32_t m = static_cast<std::uint32_t>(i) * 64u + 63u;
    double target = 25 + H(m, 0) % 30;
    bool zero = H(m, 3) % 20 == 0;
    for (long d = 0; d < days; ++d) {
      std::uint32_t n = static_cast<std::uint32_t>(i) * 64u + static_cast<std::uint32_t>(d);
      r.spend.push_back(20 + (H(n, 0) % 2000) * 0.25);
      r.clicks.push_back(5 + H(n, 1) % 200);
      r.conversions.push_back(zero ? 0 : H(n, 2) % 16);
      r.target.push_back(target);
    }
  }
  return r;
}

std::string Day(long d) {
  TimeMs t0 = 0;
  gavel::rules::ParseTime("2026-11-01", t0);
  return gavel::rules::FormatTime(t0 + d * 86400000LL).substr(0, 10);
}

bool Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "sqlite: %s\n", err ? err : "?");
    sqlite3_free(err);
    return false;
  }
  return true;
}

// The warehouse, in the sample generator's format (examples/gen_sample_data.cpp).
bool WriteWarehouse(const Rows& rows, const std::string& path) {
  std::remove(path.c_str());
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return false;
  bool ok = Exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;") &&
            Exec(db,
                 "CREATE TABLE adset_daily(adset_id TEXT NOT NULL, day TEXT NOT NULL, target_cpa REAL NOT NULL, "
                 "spend REAL NOT NULL, clicks INTEGER NOT NULL, conversions INTEGER NOT NULL, "
                 "PRIMARY KEY(adset_id, day));") &&
            Exec(db, "BEGIN");
  sqlite3_stmt* st = nullptr;
  ok = ok && sqlite3_prepare_v2(db, "INSERT INTO adset_daily VALUES(?,?,?,?,?,?)", -1, &st, nullptr) == SQLITE_OK;
  std::vector<std::string> days;
  for (long d = 0; d < rows.days; ++d) days.push_back(Day(d));
  for (long i = 0; ok && i < rows.adsets; ++i) {
    std::string id = "A" + std::to_string(i);
    for (long d = 0; d < rows.days; ++d) {
      std::size_t k = static_cast<std::size_t>(i * rows.days + d);
      sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, days[d].c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_double(st, 3, rows.target[k]);
      sqlite3_bind_double(st, 4, rows.spend[k]);
      sqlite3_bind_int64(st, 5, static_cast<std::int64_t>(rows.clicks[k]));
      sqlite3_bind_int64(st, 6, static_cast<std::int64_t>(rows.conversions[k]));
      ok = sqlite3_step(st) == SQLITE_DONE;
      sqlite3_reset(st);
    }
  }
  sqlite3_finalize(st);
  ok = ok && Exec(db, "COMMIT") && Exec(db, "CREATE INDEX adset_daily_day ON adset_daily(day); ANALYZE;");
  sqlite3_close(db);
  return ok;
}

constexpr const char* kSchema = R"(
table adset_daily from warehouse "adset_daily" {
  key    adset_id
  time   day
  dims   target_cpa: money(USD)
  facts  spend: money(USD), clicks: count, conversions: count
}
)";

struct Variant {
  const char* name;
  const char* rule;
};

// Each rule runs in its own program (and engine), so a tick runs that rule alone.
const Variant kVariants[] = {
    {"cpa_plain", R"(
rule cpa_plain {
  owner "bench@example.com"
  every 1d
  for each adset in adset_daily over last DAYSd
  let cpa = sum(spend) / sum(conversions)
  when cpa > adset.target_cpa
  then pause adset
  mode live
}
)"},
    {"cpa_confidence", R"(
rule cpa_confidence {
  owner "bench@example.com"
  every 1d
  for each adset in adset_daily over last DAYSd
  let cpa = sum(spend) / sum(conversions)
  when cpa > adset.target_cpa with confidence 90%
  then pause adset
  mode live
}
)"},
    {"cpa_const", R"(
rule cpa_const {
  owner "bench@example.com"
  every 1d
  for each adset in adset_daily over last DAYSd
  when sum(spend) / sum(conversions) > 40 USD
  then pause adset
  mode live
}
)"},
};

class CountingSink final : public gavel::rules::DecisionSink {
 public:
  bool Append(gavel::rules::Decision& d) override {
    if (d.outcome == "fired") ++fired;
    else if (d.outcome == "skipped") ++skipped;
    else ++other;
    return true;
  }
  long fired = 0, skipped = 0, other = 0;
};

// Slots of a unit filled from the row columns: aggregates and dims by column name.
struct SlotPlan {
  std::vector<const std::vector<double>*> source;  // null for lets
};

SlotPlan Plan(const gavel::dsl::CompiledRule& r, const Rows& rows) {
  SlotPlan plan;
  for (const auto& s : r.slots) {
    const std::vector<double>* src = nullptr;
    std::string col = s.kind == gavel::dsl::SlotKind::kAggregate ? r.queries[s.query].aggregates[s.index].column
                      : s.kind == gavel::dsl::SlotKind::kDim     ? s.name
                                                                 : "";
    if (col == "spend") src = &rows.spend;
    if (col == "clicks") src = &rows.clicks;
    if (col == "conversions") src = &rows.conversions;
    if (col == "target_cpa") src = &rows.target;
    if (s.kind != gavel::dsl::SlotKind::kLet && !src) {
      std::fprintf(stderr, "cpa_bench: cannot fill slot %s\n", s.name.c_str());
      std::exit(1);
    }
    plan.source.push_back(src);
  }
  return plan;
}

// (a): per row, fill the slots from the columns, run the lets into their slots, test the
// condition. Returns rows where it holds; best time of `reps` in `secs`.
long RunCondition(const gavel::dsl::CompiledRule& r, const Rows& rows, int reps, double& secs) {
  SlotPlan plan = Plan(r, rows);
  gavel::rules::Evaluator ev;
  const std::size_t n_slots = r.slots.size();
  std::vector<int> let_slot(r.lets.size(), -1);
  for (std::size_t k = 0; k < n_slots; ++k) {
    if (r.slots[k].kind == gavel::dsl::SlotKind::kLet) let_slot[r.slots[k].index] = static_cast<int>(k);
  }
  const std::size_t n_rows = rows.spend.size();
  long hits = 0;
  secs = 1e30;
  std::vector<std::pair<std::size_t, const double*>> fills;  // slot <- column
  for (std::size_t k = 0; k < n_slots; ++k) {
    if (plan.source[k]) fills.emplace_back(k, plan.source[k]->data());
  }
  // The columns hold numbers on every row: the slots are numbers once, and each row sets
  // only their values (as a columnar batch would).
  std::vector<Value> slots(n_slots);
  for (const auto& [k, col] : fills) slots[k] = Value::Number(0);
  for (int rep = 0; rep < reps; ++rep) {
    hits = 0;
    auto t0 = Clock::now();
    for (std::size_t i = 0; i < n_rows; ++i) {
      for (const auto& [k, col] : fills) slots[k].num = col[i];
      for (std::size_t l = 0; l < r.lets.size(); ++l) slots[let_slot[l]] = ev.Run(r.lets[l].second, slots.data());
      hits += ev.Test(r.condition, slots.data());
    }
    secs = std::min(secs, Since(t0));
  }
  return hits;
}

// (a'): the same in blocks of rows, as the engine's scheduled rules run it (engine_scheduled.cpp,
// kTickBlock): the slots as columns, each `let` run over a block of rows (Evaluator::RunBatch)
// into a column of its own, then the condition (TestBatch).
long RunConditionBatch(const gavel::dsl::CompiledRule& r, const Rows& rows, int reps, double& secs) {
  SlotPlan plan = Plan(r, rows);
  gavel::rules::Evaluator ev;
  const std::size_t n_slots = r.slots.size();
  std::vector<int> let_slot(r.lets.size(), -1);
  for (std::size_t k = 0; k < n_slots; ++k) {
    if (r.slots[k].kind == gavel::dsl::SlotKind::kLet) let_slot[r.slots[k].index] = static_cast<int>(k);
  }
  constexpr std::size_t kChunk = 4096;
  std::vector<std::vector<Value>> let_values(r.lets.size(), std::vector<Value>(kChunk));
  std::vector<gavel::rules::SlotColumn> cols(n_slots);
  std::unique_ptr<bool[]> out(new bool[kChunk]);
  const std::size_t n_rows = rows.spend.size();
  long hits = 0;
  secs = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    hits = 0;
    auto t0 = Clock::now();
    for (std::size_t begin = 0; begin < n_rows; begin += kChunk) {
      const std::size_t m = std::min(kChunk, n_rows - begin);
      for (std::size_t k = 0; k < n_slots; ++k) {
        if (plan.source[k]) cols[k] = {plan.source[k]->data() + begin, nullptr};
      }
      for (std::size_t l = 0; l < r.lets.size(); ++l) {
        ev.RunBatch(r.lets[l].second, cols.data(), m, let_values[l].data());
        cols[let_slot[l]] = {nullptr, let_values[l].data()};
      }
      hits += static_cast<long>(ev.TestBatch(r.condition, cols.data(), m, out.get()));
    }
    secs = std::min(secs, Since(t0));
  }
  return hits;
}

// (b): the pushed-down SQL, every column of every row read. Best time of `reps`.
long RunBare(sqlite3* db, const gavel::dsl::WindowQuery& q, const std::string& from, const std::string& to, int reps,
             double& secs) {
  long n = 0;
  secs = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, q.sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      std::fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
      std::exit(1);
    }
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":from"), from.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":to"), to.c_str(), -1, SQLITE_TRANSIENT);
    n = 0;
    double sink = 0;
    std::size_t bytes = 0;
    const int cols = sqlite3_column_count(st);
    while (sqlite3_step(st) == SQLITE_ROW) {
      ++n;
      for (int c = 0; c < cols; ++c) {
        if (sqlite3_column_type(st, c) == SQLITE_TEXT) {
          sqlite3_column_text(st, c);
          bytes += static_cast<std::size_t>(sqlite3_column_bytes(st, c));
        } else {
          sink += sqlite3_column_double(st, c);
        }
      }
    }
    sqlite3_finalize(st);
    secs = std::min(secs, Since(t0));
    if (sink == -1 && bytes == 0) std::printf(" ");  // keep the reads
  }
  return n;
}

// Direct C++ computation of the rule's outcome per ad set, to check the engine.
long ExpectedFired(const std::string& name, const Rows& rows) {
  long fired = 0;
  for (long i = 0; i < rows.adsets; ++i) {
    double spend = 0, conv = 0;
    for (long d = 0; d < rows.days; ++d) {
      spend += rows.spend[i * rows.days + d];
      conv += rows.conversions[i * rows.days + d];
    }
    double target = rows.target[i * rows.days];
    if (name == "cpa_plain") fired += conv > 0 && spend / conv > target;
    if (name == "cpa_const") fired += conv > 0 && spend / conv > 40;
    if (name == "cpa_confidence") fired += spend / gavel::rules::PoissonUpper(conv, 0.9) > target;
  }
  return fired;
}

long ExpectedRows(const std::string& name, const Rows& rows) {
  long hits = 0;
  for (std::size_t k = 0; k < rows.spend.size(); ++k) {
    double c = rows.conversions[k];
    if (name == "cpa_plain" || name == "cpa_confidence") hits += c > 0 && rows.spend[k] / c > rows.target[k];
    if (name == "cpa_const") hits += c > 0 && rows.spend[k] / c > 40;
  }
  return hits;
}

}  // namespace

int main(int argc, char** argv) {
  long adsets = argc > 1 ? std::atol(argv[1]) : 100000;
  long days = argc > 2 ? std::atol(argv[2]) : 10;
  std::string path = argc > 3 ? argv[3] : "/tmp/gavel_cpa_bench.db";
  const bool only_cond = argc > 4 && std::string(argv[4]) == "cond";
  const bool only_e2e = argc > 4 && std::string(argv[4]) == "e2e";
  if (adsets <= 0 || days <= 0 || days > 63) {
    std::fprintf(stderr, "usage: cpa_bench [adsets=100000] [days=10 (1..63)] [db=/tmp/gavel_cpa_bench.db] [all|cond|e2e]\n");
    return 2;
  }
  auto g0 = Clock::now();
  Rows rows = Generate(adsets, days);
  if (!only_cond && !WriteWarehouse(rows, path)) {
    std::fprintf(stderr, "cpa_bench: cannot write %s\n", path.c_str());
    return 1;
  }
  const long n_rows = adsets * days;
  std::printf("data: %ld ad sets x %ld days = %ld rows in %s (generated in %.1f s, not timed)\n", adsets, days, n_rows,
              path.c_str(), Since(g0));

  sqlite3* bare_db = nullptr;
  if (!only_cond && sqlite3_open_v2(path.c_str(), &bare_db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return 1;
  auto wh = only_cond ? gavel::Result<std::unique_ptr<gavel::rules::SqliteWarehouse>>(std::unique_ptr<gavel::rules::SqliteWarehouse>())
                      : gavel::rules::SqliteWarehouse::Open(path);
  if (!wh.ok()) {
    std::fprintf(stderr, "cpa_bench: %s\n", wh.status().message().c_str());
    return 1;
  }
  const std::string from = Day(0), to = Day(days);
  TimeMs start = 0;
  gavel::rules::ParseTime(Day(days - 1) + "T12:00:00Z", start);  // the first tick: the next midnight (+ offset)
  const TimeMs until = start + 13 * 3600 * 1000LL;
  const int reps = 5;
  bool all_agree = true;

  std::printf("\n%-15s %14s %14s %12s %10s %10s %10s %8s %9s %8s\n", "rule", "cond rows/s", "row by row", "rows hit",
              "bare SQL", "RunWindow", "end2end", "e2e/SQL", "fired", "checked");
  for (const auto& v : kVariants) {
    std::string rule = v.rule;
    rule.replace(rule.find("DAYS"), 4, std::to_string(days));
    auto compiled = gavel::dsl::CompileSources({{"schema.gavel", kSchema}, {"rule.gavel", rule}});
    if (!compiled.program) {
      std::fprintf(stderr, "%s", gavel::dsl::RenderText(compiled.sources, compiled.diags.list()).c_str());
      return 1;
    }
    const gavel::dsl::CompiledRule& r = compiled.program->rules.at(0);

    if (only_e2e) {
      gavel::rules::SimulatedClock clock(start);
      CountingSink sink;
      gavel::rules::EngineOptions options;
      options.track_state = false;
      gavel::rules::Engine engine(compiled.program, {&clock, &sink, wh.value().get()}, options);
      engine.Start(start);
      auto t0 = Clock::now();
      clock.Set(until);
      (void)engine.AdvanceTo(until);
      std::printf("%-15s end2end %.3f s, fired %ld\n", v.name, Since(t0), sink.fired);
      continue;
    }
    double cond_secs = 0, batch_secs = 0;
    long hits = RunCondition(r, rows, reps, cond_secs);
    long batch_hits = RunConditionBatch(r, rows, reps, batch_secs);

    if (only_cond) {
      bool ok = hits == ExpectedRows(v.name, rows) && batch_hits == hits;
      all_agree = all_agree && ok;
      std::printf("%-15s %13.1fM %13.1fM %12ld %8s\n", v.name, n_rows / batch_secs / 1e6, n_rows / cond_secs / 1e6,
                  hits, ok ? "ok" : "MISMATCH");
      continue;
    }
    double bare_secs = 0;
    long bare_rows = RunBare(bare_db, r.queries.at(0), from, to, 3, bare_secs);

    // (b') The warehouse seam alone: the same query through SqliteWarehouse::RunWindow, which
    // also materialises one WindowRow per key (strings, vectors) for the engine.
    double seam_secs = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = Clock::now();
      auto got = wh.value()->RunWindow(r.queries.at(0), from, to);
      seam_secs = std::min(seam_secs, Since(t0));
      if (!got.ok() || static_cast<long>(got.value().size()) != adsets) {
        std::fprintf(stderr, "cpa_bench: RunWindow failed or returned the wrong number of rows\n");
        return 1;
      }
    }

    // (c) End to end: a fresh engine per run (no cooldown state), the warehouse kept open like
    // the daemon keeps it; best of 3.
    double e2e_secs = 1e30;
    CountingSink counts;
    for (int rep = 0; rep < 3; ++rep) {
      gavel::rules::SimulatedClock clock(start);
      CountingSink sink;
      gavel::rules::EngineOptions options;
      options.track_state = false;
      gavel::rules::Engine engine(compiled.program, {&clock, &sink, wh.value().get()}, options);
      engine.Start(start);
      auto t0 = Clock::now();
      clock.Set(until);
      auto st = engine.AdvanceTo(until);
      e2e_secs = std::min(e2e_secs, Since(t0));
      if (!st.ok()) {
        std::fprintf(stderr, "cpa_bench: %s\n", st.message().c_str());
        return 1;
      }
      counts = sink;
    }
    long want_fired = ExpectedFired(v.name, rows);
    long want_rows = ExpectedRows(v.name, rows);
    bool ok = counts.fired == want_fired && hits == want_rows && batch_hits == hits && bare_rows == adsets;
    all_agree = all_agree && ok;
    std::printf("%-15s %13.1fM %13.1fM %12ld %9.3fs %9.3fs %9.3fs %7.2fx %9ld %8s\n", v.name, n_rows / batch_secs / 1e6,
                n_rows / cond_secs / 1e6, hits, bare_secs, seam_secs, e2e_secs, e2e_secs / bare_secs, counts.fired,
                ok ? "ok" : "MISMATCH");
    if (!ok) {
      std::printf("  expected: rows hit %ld, fired %ld, SQL rows %ld; got SQL rows %ld, skipped %ld, other %ld\n",
                  want_rows, want_fired, adsets, bare_rows, counts.skipped, counts.other);
    }
    std::printf("count %s.rows %ld\ncount %s.fired %ld\n", v.name, hits, v.name, counts.fired);
    std::printf("rate %s.cond_rows_per_s %.0f\nrate %s.row_by_row_rows_per_s %.0f\nrate %s.run_window_s %.4f\n", v.name,
                n_rows / batch_secs, v.name, n_rows / cond_secs, v.name, seam_secs);
    std::printf("rate %s.e2e_s %.4f\nrate %s.bare_s %.4f\n", v.name, e2e_secs, v.name, bare_secs);
  }
  if (bare_db) sqlite3_close(bare_db);
  std::printf("\ncond rows/s: the rule's lets and condition over the in-memory rows as the engine's ticks run them\n"
              "  (Evaluator::RunBatch/TestBatch over blocks of 4,096 rows), best of %d;\n"
              "row by row: the same through Evaluator::Run/Test one row at a time (slots filled from columns);\n"
              "bare SQL: the pushed-down window query, all rows and columns read, best of 3;\n"
              "RunWindow: the same query through SqliteWarehouse::RunWindow (rows materialised), best of 3;\n"
              "end2end: one schedule tick of an Engine over the SQLite warehouse, counting sink, best of 3.\n"
              "All times are CPU time of the benchmark's thread (user + system).\n"
              "Targets: >= 50M rows/s; end2end/SQL <= 1.5.\n",
              reps);
  return all_agree ? 0 : 1;
}
