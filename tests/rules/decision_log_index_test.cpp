// Tests of the decision log's batched index (schema version 2): queries through the index
// blocks, the unindexed tail and the time zone maps must return exactly what a scan of every
// record returns, across block boundaries, rollbacks, two writers and the upgrade from a
// version-1 database. The block size is 4,096 records, so these tests write a few blocks.
#include <sqlite3.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "rules/store/decision_log.hpp"

#include "tests/common/test_files.hpp"

namespace {

namespace fs = std::filesystem;
using gavel::Status;
using gavel::rules::Decision;
using gavel::rules::DecisionLog;
using gavel::rules::DecisionQuery;
using gavel::rules::TimeField;
using gavel::rules::TimeMs;

constexpr TimeMs kT0 = 1793523600000;  // 2026-11-01T09:00:00Z
constexpr int kBlock = 4096;           // kBlockRecords in decision_log.cpp

// A fresh directory, removed with everything in it at the end of the test.
struct TempDir : gavel_test::ScopedTempDir {
  TempDir() : ScopedTempDir("gavel-log-index-test") {}
};

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }
  void MustExec(const std::string& sql) {
    INFO(sql);
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    INFO(sqlite3_errmsg(db_));
    REQUIRE(rc == SQLITE_OK);
  }
  std::int64_t Int(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    std::int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Varied decisions: 7 rules, 3 entity types over ~600 entities, 4 outcomes, several reasons,
// and times that are mostly increasing but jump back now and then (late events, clock steps),
// so that the zone maps of some blocks overlap.
Decision Varied(int i) {
  static const char* kRules[] = {"pause_cpa",
                                 "hot_lead",
                                 "budget_shift",
                                 "spend_anomaly",
                                 "trial_onboarding",
                                 "r\xc3\xa9sum\xc3\xa9_rule",
                                 ""};
  static const char* kTypes[] = {"adset_daily", "lead", "campaign_hourly"};
  static const char* kOutcomes[] = {"fired", "skipped", "alert", "journey"};
  static const char* kReasons[] = {"", "cooldown", "stale_data", "limit", "below_confidence"};
  Decision d;
  d.kind = i % 11 == 0 ? "alert" : (i % 13 == 0 ? "journey" : "rule");
  d.rule = kRules[(i * 7 + i / 100) % 7];
  d.version = "v1";
  d.trigger = "tick";
  d.entity_type = kTypes[i % 3];
  d.entity_id =
      std::string(d.entity_type == "lead" ? "lead-" : "e-") + std::to_string(i * 31 % 607);
  d.outcome = kOutcomes[(i / 3) % 4];
  d.reason = kReasons[(i / 5) % 5];
  d.processing_time = kT0 + i * 100 - (i % 97 == 0 ? 500000 : 0);
  d.event_time = kT0 + i * 100 - (i % 41) * 1000;
  d.evidence["i"] = i;
  return d;
}

std::unique_ptr<DecisionLog> MustOpen(const std::string& path) {
  auto log = DecisionLog::Open(path);
  INFO(log.status().message());
  REQUIRE(log.ok());
  return std::move(log).value();
}

void MustAppend(DecisionLog& log, Decision& d) {
  bool ok = log.Append(d);
  INFO(log.last_error().message());
  REQUIRE(ok);
}

bool Matches(const DecisionQuery& q, const Decision& d) {
  if (d.id <= q.after_id) return false;
  if (q.kind && d.kind != *q.kind) return false;
  if (q.rule && d.rule != *q.rule) return false;
  if (q.entity_type && d.entity_type != *q.entity_type) return false;
  if (q.entity_id && d.entity_id != *q.entity_id) return false;
  if (q.outcome && d.outcome != *q.outcome) return false;
  if (q.reason && d.reason != *q.reason) return false;
  const TimeMs t = q.time_field == TimeField::kEvent ? d.event_time : d.processing_time;
  if (q.from && t < *q.from) return false;
  if (q.to && t >= *q.to) return false;
  return true;
}

// Every query below, paged with `page` records per page, returns exactly the matching ids of
// `all` in id order.
void CheckQueries(const DecisionLog& log, const std::vector<Decision>& all, std::int64_t page) {
  std::vector<DecisionQuery> queries;
  auto add = [&](std::function<void(DecisionQuery&)> f) {
    DecisionQuery q;
    f(q);
    queries.push_back(q);
  };
  add([](DecisionQuery&) {});
  add([](DecisionQuery& q) { q.rule = "spend_anomaly"; });
  add([](DecisionQuery& q) { q.rule = "r\xc3\xa9sum\xc3\xa9_rule"; });
  add([](DecisionQuery& q) { q.rule = ""; });
  add([](DecisionQuery& q) { q.rule = "no_such_rule"; });
  add([](DecisionQuery& q) {
    q.entity_type = "lead";
    q.entity_id = "lead-" + std::to_string(5 * 31 % 607);
  });
  add([](DecisionQuery& q) { q.entity_id = "e-" + std::to_string(12 * 31 % 607); });
  add([](DecisionQuery& q) { q.entity_type = "campaign_hourly"; });
  add([](DecisionQuery& q) { q.outcome = "alert"; });
  add([](DecisionQuery& q) {
    q.outcome = "skipped";
    q.reason = "cooldown";
    q.rule = "hot_lead";
  });
  add([](DecisionQuery& q) { q.kind = "journey"; });
  add([](DecisionQuery& q) { q.reason = "limit"; });
  add([&](DecisionQuery& q) {
    q.from = kT0 + 3000 * 100;
    q.to = kT0 + 3500 * 100;
  });
  add([&](DecisionQuery& q) { q.from = kT0 + 9000 * 100; });
  add([&](DecisionQuery& q) { q.to = kT0 + 100 * 100; });
  add([&](DecisionQuery& q) {
    q.time_field = TimeField::kEvent;
    q.from = kT0 + 4000 * 100;
    q.to = kT0 + 4300 * 100;
  });
  add([&](DecisionQuery& q) {
    q.rule = "pause_cpa";
    q.time_field = TimeField::kEvent;
    q.from = kT0 + 2000 * 100;
    q.to = kT0 + 6000 * 100;
  });
  for (std::size_t k = 0; k < queries.size(); ++k) {
    for (std::int64_t start : {std::int64_t{0}, std::int64_t{kBlock - 3}, std::int64_t{5000}}) {
      DecisionQuery q = queries[k];
      q.after_id = start;
      std::vector<std::int64_t> want;
      for (const auto& d : all) {
        if (Matches(q, d)) want.push_back(d.id);
      }
      std::vector<std::int64_t> got;
      q.limit = page;
      for (int guard = 0; guard < 100000; ++guard) {
        auto r = log.Query(q);
        INFO(r.status().message());
        REQUIRE(r.ok());
        if (r->empty()) break;
        if (page > 0) CHECK(static_cast<std::int64_t>(r->size()) <= page);
        for (const auto& d : r.value()) got.push_back(d.id);
        q.after_id = r->back().id;
        if (page <= 0) break;
      }
      INFO("query " << k << " after " << start << " page " << page);
      CHECK(got == want);
    }
  }
}

}  // namespace

TEST_CASE("queries through the batched index return what a scan returns", "[log][log_index]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  std::vector<Decision> all;
  // Three full blocks and a tail, in transactions that do not line up with blocks.
  const int n = 3 * kBlock + 777;
  int i = 0;
  while (i < n) {
    REQUIRE(log->Begin().ok());
    for (int k = 0; k < 1500 && i < n; ++k, ++i) {
      Decision d = Varied(i);
      MustAppend(*log, d);
      all.push_back(d);
    }
    REQUIRE(log->Commit().ok());
  }
  RawDb raw(path);
  CHECK(raw.Int("SELECT count(*) FROM decisions_blocks") == 3);
  CHECK(raw.Int("SELECT max(last_id) FROM decisions_blocks") == 3 * kBlock);
  CheckQueries(*log, all, 0);
  CheckQueries(*log, all, 37);
  // A reader on another connection sees the same.
  auto reader = MustOpen(path);
  CheckQueries(*reader, all, 500);
  std::ostringstream out;
  DecisionQuery q;
  q.rule = "hot_lead";
  q.limit = 0;
  auto lines = log->ExportJsonl(out, q);
  REQUIRE(lines.ok());
  std::int64_t want = 0;
  for (const auto& d : all) want += d.rule == "hot_lead";
  CHECK(lines.value() == want);
  CHECK(log->Verify()->ok());
}

TEST_CASE("rollbacks across an index block boundary keep the index exact", "[log][log_index]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  std::vector<Decision> all;
  int i = 0;
  auto append_committed = [&](int count) {
    REQUIRE(log->Begin().ok());
    for (int k = 0; k < count; ++k, ++i) {
      Decision d = Varied(i);
      MustAppend(*log, d);
      all.push_back(d);
    }
    REQUIRE(log->Commit().ok());
  };
  append_committed(kBlock - 5);

  SECTION("through the log") {
    // This transaction writes the first block (at append kBlock + 1) and is rolled back.
    REQUIRE(log->Begin().ok());
    for (int k = 0; k < 20; ++k) {
      Decision d = Varied(100000 + k);
      MustAppend(*log, d);
    }
    REQUIRE(log->Rollback().ok());
  }
  SECTION("behind the log's back") {
    REQUIRE(sqlite3_exec(log->db(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    for (int k = 0; k < 20; ++k) {
      Decision d = Varied(100000 + k);
      REQUIRE(log->AppendInTransaction(d).ok());
    }
    REQUIRE(sqlite3_exec(log->db(), "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  SECTION("to a savepoint, keeping the records before it") {
    REQUIRE(sqlite3_exec(log->db(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    for (int k = 0; k < 3; ++k, ++i) {
      Decision d = Varied(i);
      REQUIRE(log->AppendInTransaction(d).ok());
      all.push_back(d);
    }
    REQUIRE(sqlite3_exec(log->db(), "SAVEPOINT sp", nullptr, nullptr, nullptr) == SQLITE_OK);
    for (int k = 0; k < 20; ++k) {
      Decision d = Varied(100000 + k);
      REQUIRE(log->AppendInTransaction(d).ok());
    }
    REQUIRE(sqlite3_exec(log->db(), "ROLLBACK TO sp; RELEASE sp; COMMIT", nullptr, nullptr,
                         nullptr) == SQLITE_OK);
  }
  {
    RawDb raw(path);
    CHECK(raw.Int("SELECT count(*) FROM decisions_blocks") == 0);
  }
  append_committed(kBlock + 100);  // writes the first block again, this time for good
  {
    RawDb raw(path);
    CHECK(raw.Int("SELECT count(*) FROM decisions_blocks") == 2);
    CHECK(raw.Int("SELECT min(first_id) FROM decisions_blocks") == 1);
    CHECK(raw.Int("SELECT max(last_id) FROM decisions_blocks") == 2 * kBlock);
  }
  CheckQueries(*log, all, 0);
  auto r = log->Verify();
  REQUIRE(r.ok());
  CHECK(r->ok());
  CHECK(r->count == static_cast<std::int64_t>(all.size()));
}

TEST_CASE("two logs on one database keep one exact index", "[log][log_index]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto a = MustOpen(path);
  auto b = MustOpen(path);
  std::vector<Decision> all;
  for (int i = 0; i < kBlock + 600; ++i) {
    Decision d = Varied(i);
    // Long runs on each, and single alternations around the block boundary.
    const bool on_b = (i > kBlock - 50 && i < kBlock + 50) ? i % 2 == 1 : (i / 700) % 2 == 1;
    MustAppend(on_b ? *b : *a, d);
    REQUIRE(d.id == i + 1);
    all.push_back(d);
  }
  // Past the next block boundary through one writer, then the other appends once.
  for (int i = kBlock + 600; i < 2 * kBlock + 10; ++i) {
    Decision d = Varied(i);
    MustAppend(*a, d);
    all.push_back(d);
  }
  Decision last = Varied(2 * kBlock + 10);
  MustAppend(*b, last);
  all.push_back(last);
  RawDb raw(path);
  CHECK(raw.Int("SELECT count(*) FROM decisions_blocks") == 2);
  CHECK(raw.Int("SELECT max(last_id) FROM decisions_blocks") == 2 * kBlock);
  CheckQueries(*b, all, 0);
  CHECK(a->Verify()->ok());
}

// A new log at `path` with `n` varied records in one transaction; returns them.
std::vector<Decision> WriteVaried(const std::string& path, int n) {
  std::vector<Decision> all;
  auto log = MustOpen(path);
  REQUIRE(log->Begin().ok());
  for (int i = 0; i < n; ++i) {
    Decision d = Varied(i);
    MustAppend(*log, d);
    all.push_back(d);
  }
  REQUIRE(log->Commit().ok());
  return all;
}

TEST_CASE("a version-1 database is upgraded in place", "[log][log_index]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  std::vector<Decision> all = WriteVaried(path, 2 * kBlock + 50);
  {
    // Turn the file into what gavel with schema version 1 wrote: the same records, four
    // per-row indexes, no batched index.
    RawDb raw(path);
    raw.MustExec(
        "DROP TABLE decisions_index; DROP TABLE decisions_blocks;"
        "CREATE INDEX decisions_by_rule ON decisions(rule);"
        "CREATE INDEX decisions_by_entity ON decisions(entity_type, entity_id);"
        "CREATE INDEX decisions_by_outcome ON decisions(outcome);"
        "CREATE INDEX decisions_by_processing_time ON decisions(processing_ms);"
        "UPDATE decisions_schema SET version = 1;");
  }
  auto log = MustOpen(path);
  {
    RawDb raw(path);
    CHECK(raw.Int("SELECT max(version) FROM decisions_schema") == DecisionLog::kSchemaVersion);
    CHECK(raw.Int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE "
                  "'decisions_by_%'") == 0);
    CHECK(raw.Int("SELECT count(*) FROM decisions_blocks") == 2);
  }
  for (int i = 2 * kBlock + 50; i < 2 * kBlock + 80; ++i) {
    Decision d = Varied(i);
    MustAppend(*log, d);
    REQUIRE(d.id == i + 1);
    all.push_back(d);
  }
  CheckQueries(*log, all, 0);
  auto r = log->Verify();
  REQUIRE(r.ok());
  CHECK(r->ok());
  CHECK(r->count == static_cast<std::int64_t>(all.size()));
}

TEST_CASE("an index keyed (field, bucket, last_id) is re-keyed block first in place",
          "[log][log_index]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  std::vector<Decision> all = WriteVaried(path, 2 * kBlock + 50);
  const char* kPkFirst =
      "SELECT cid FROM pragma_table_info('decisions_index') WHERE pk = 1";  // 0 field, 2 last_id
  // Every index row, in one order, as one number: the rows must survive the conversion.
  const char* kRowsDigest =
      "SELECT sum((field * 1000003 + bucket * 7919 + last_id * 31 + first_id) * length(ids) + "
      "unicode(hex(ids))) FROM decisions_index";
  std::int64_t digest = 0, rows = 0;
  {
    // Turn the file into what the first schema-2 builds wrote: the same rows, keyed by field.
    RawDb raw(path);
    CHECK(raw.Int(kPkFirst) == 2);
    raw.MustExec(
        "CREATE TABLE old_index (field INTEGER NOT NULL, bucket INTEGER NOT NULL, "
        "last_id INTEGER NOT NULL, first_id INTEGER NOT NULL, ids BLOB NOT NULL, "
        "PRIMARY KEY (field, bucket, last_id)) WITHOUT ROWID;"
        "INSERT INTO old_index SELECT field, bucket, last_id, first_id, ids FROM decisions_index;"
        "DROP TABLE decisions_index; ALTER TABLE old_index RENAME TO decisions_index;");
    CHECK(raw.Int(kPkFirst) == 0);
    digest = raw.Int(kRowsDigest);
    rows = raw.Int("SELECT count(*) FROM decisions_index");
    CHECK(rows > 300);
  }
  auto log = MustOpen(path);
  {
    RawDb raw(path);
    CHECK(raw.Int(kPkFirst) == 2);
    CHECK(raw.Int("SELECT count(*) FROM decisions_index") == rows);
    CHECK(raw.Int(kRowsDigest) == digest);
    CHECK(raw.Int("SELECT max(version) FROM decisions_schema") == DecisionLog::kSchemaVersion);
    // The query an older build runs on the index still finds the rows in the new key order.
    CHECK(raw.Int("SELECT count(*) FROM decisions_index WHERE field = 1 AND bucket >= 0 AND "
                  "last_id > 0 AND last_id <= " +
                  std::to_string(2 * kBlock)) ==
          raw.Int("SELECT count(*) FROM decisions_index WHERE field = 1"));
  }
  for (int i = 2 * kBlock + 50; i < 3 * kBlock + 80; ++i) {  // writes the third block
    Decision d = Varied(i);
    MustAppend(*log, d);
    REQUIRE(d.id == i + 1);
    all.push_back(d);
  }
  {
    RawDb raw(path);
    CHECK(raw.Int("SELECT count(*) FROM decisions_blocks") == 3);
  }
  CheckQueries(*log, all, 0);
  CheckQueries(*log, all, 41);
  auto r = log->Verify();
  REQUIRE(r.ok());
  CHECK(r->ok());
  CHECK(r->count == static_cast<std::int64_t>(all.size()));
}

TEST_CASE("a new database gets 32 KiB pages, an existing one keeps its own", "[log][log_index]") {
  TempDir dir;
  {
    auto log = MustOpen(dir.File("new.db"));
    RawDb raw(dir.File("new.db"));
    CHECK(raw.Int("PRAGMA page_size") == 32768);
  }
  {
    RawDb raw(dir.File("old.db"));
    raw.MustExec("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE other (x)");
  }
  auto log = MustOpen(dir.File("old.db"));
  Decision d = Varied(0);
  MustAppend(*log, d);
  RawDb raw(dir.File("old.db"));
  CHECK(raw.Int("PRAGMA page_size") == 4096);
  CHECK(raw.Int("SELECT count(*) FROM decisions") == 1);
}

TEST_CASE("the JSON string writer escapes every byte at every position like nlohmann",
          "[log][log_index]") {
  // The writer skips 8 bytes at a time when none needs an escape; put each ASCII byte at
  // each position of strings that straddle those 8-byte steps.
  for (int len : {1, 7, 8, 9, 16, 23}) {
    for (int pos = 0; pos < len; ++pos) {
      for (int b = 1; b < 0x80; ++b) {
        Decision d = Varied(b);
        std::string s(static_cast<std::size_t>(len), 'a');
        s[static_cast<std::size_t>(pos)] = static_cast<char>(b);
        d.rule = s;
        d.evidence["s"] = s + "\xc3\xa9" + s;
        const std::string want = gavel::rules::ToJson(d, false).dump();
        INFO(len << " " << pos << " " << b);
        REQUIRE(gavel::rules::CanonicalBody(d) == want);
      }
    }
  }
}
