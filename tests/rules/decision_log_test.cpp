// Tests of the SQLite decision log: the hash chain, tamper detection, queries, transactions
// and crash behaviour, on real database files in a temporary directory.
#include "rules/store/decision_log.hpp"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "dsl/base/sha256.hpp"

#include "tests/common/test_files.hpp"

namespace {

namespace fs = std::filesystem;
using gavel::Sha256Hex;
using gavel::Status;
using gavel::rules::CanonicalBody;
using gavel::rules::ChainHash;
using gavel::rules::ChainHead;
using gavel::rules::Decision;
using gavel::rules::DecisionLog;
using gavel::rules::DecisionQuery;
using gavel::rules::EvaluationSummary;
using gavel::rules::kGenesisHash;
using gavel::rules::TimeField;
using gavel::rules::TimeMs;
using gavel::rules::VerifyReport;
using Problem = gavel::rules::VerifyReport::Problem;

constexpr TimeMs kT0 = 1793523600000;  // 2026-11-01T09:00:00Z

// A fresh directory, removed with everything in it at the end of the test.
struct TempDir : gavel_test::ScopedTempDir {
  TempDir() : ScopedTempDir("gavel-log-test") {}
};

// A raw connection for tampering and for checking from the outside.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  void MustExec(const std::string& sql) {
    INFO(sql);
    int rc = Exec(sql);
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
  const char* Error() const { return sqlite3_errmsg(db_); }
  sqlite3* get() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// A realistic scheduled-rule decision: window bounds, aggregates, threshold, confidence bound.
Decision MakeDecision(int i) {
  Decision d;
  d.event_time = kT0 + i * gavel::rules::kMinute;
  d.processing_time = kT0 + i * gavel::rules::kMinute + 250;
  d.kind = "rule";
  d.rule =
      i % 3 == 0 ? "pause_expensive_adsets" : (i % 3 == 1 ? "hot_lead_to_sales" : "budget_shift");
  d.version = Sha256Hex(d.rule).substr(0, 16);
  d.trigger = "tick:" + gavel::rules::FormatTime(d.event_time);
  d.entity_type = i % 2 == 0 ? "adset_daily" : "lead";
  d.entity_id = (i % 2 == 0 ? "adset-" : "lead-") + std::to_string(i % 5);
  d.outcome = i % 4 == 0 ? "fired" : "skipped";
  d.reason = d.outcome == "fired" ? "" : (i % 4 == 1 ? "cooldown" : "below_confidence");
  d.evidence["window"] = {{"from", "2026-10-25T00:00:00Z"}, {"to", "2026-11-01T00:00:00Z"}};
  d.evidence["spend"] = 1234.5 + i;
  d.evidence["conversions"] = 17 + i % 4;
  d.evidence["cpa"] = (1234.5 + i) / (17 + i % 4);
  d.evidence["threshold"] = 50.0;
  d.evidence["confidence"] = {{"level", 0.9}, {"lower", 0.0123}, {"upper", 0.0456}};
  if (d.outcome == "fired") {
    d.actions.push_back({{"action", "pause"}, {"target", d.entity_id}, {"mode", "live"}});
  }
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

VerifyReport MustVerify(const DecisionLog& log,
                        const std::optional<ChainHead>& anchor = std::nullopt) {
  auto r = log.Verify(anchor);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return r.value();
}

std::vector<std::int64_t> Ids(const std::vector<Decision>& ds) {
  std::vector<std::int64_t> ids;
  for (const auto& d : ds) ids.push_back(d.id);
  return ids;
}

}  // namespace

TEST_CASE("an appended decision gets the next id and chains to the previous hash", "[log]") {
  TempDir dir;
  auto log = MustOpen(dir.File("state.db"));
  Decision a = MakeDecision(0), b = MakeDecision(1);
  MustAppend(*log, a);
  MustAppend(*log, b);
  CHECK(a.id == 1);
  CHECK(b.id == 2);
  CHECK(a.prev_hash == std::string(kGenesisHash));
  CHECK(a.hash ==
        Sha256Hex(std::string(kGenesisHash) + "\n" + gavel::rules::ToJson(a, false).dump()));
  CHECK(b.prev_hash == a.hash);
  CHECK(b.hash == Sha256Hex(a.hash + "\n" + gavel::rules::ToJson(b, false).dump()));
  auto head = log->Head();
  REQUIRE(head.ok());
  CHECK(head->id == 2);
  CHECK(head->hash == b.hash);
}

TEST_CASE("the chain hash matches the portable SHA-256 for every message length", "[log]") {
  std::string body;
  for (int n = 0; n < 300; ++n) {
    CHECK(ChainHash(kGenesisHash, body) == Sha256Hex(std::string(kGenesisHash) + "\n" + body));
    CHECK(ChainHash("", body) == Sha256Hex("\n" + body));
    body.push_back(static_cast<char>('a' + n * 7 % 26));
  }
  std::string big(100000, 'x');
  CHECK(ChainHash("abc", big) == Sha256Hex("abc\n" + big));
}

TEST_CASE("canonical JSON is byte-stable", "[log]") {
  Decision d;
  d.event_time = kT0;
  d.processing_time = kT0 + 250;
  d.kind = "rule";
  d.rule = "hot_lead";
  d.version = "9f2c";
  d.trigger = "event:e-1";
  d.entity_type = "lead";
  d.entity_id = "L-\"7\"\\\n\t\x01\x1f\x7f é 日本 🎯";
  d.outcome = "fired";
  d.evidence["score"] = 81.5;
  d.evidence["threshold"] = 80;
  d.evidence["ratio"] = 0.1 + 0.2;
  d.evidence["big"] = 1e21;
  d.evidence["neg"] = -0.0;
  d.evidence["n"] = nullptr;
  d.evidence["list"] = {1, "two", true};
  d.actions.push_back({{"action", "notify"}, {"to", "sales@example.com"}});

  const std::string golden =
      "{\"event_time\":\"2026-11-01T09:00:00Z\",\"processing_time\":\"2026-11-01T09:00:00.250Z\","
      "\"kind\":\"rule\",\"rule\":\"hot_lead\",\"version\":\"9f2c\",\"trigger\":\"event:e-1\","
      "\"entity_type\":\"lead\",\"entity_id\":\"L-\\\"7\\\"\\\\\\n\\t\\u0001\\u001f\x7f é 日本 🎯\","
      "\"outcome\":\"fired\",\"reason\":\"\",\"evidence\":{\"score\":81.5,\"threshold\":80,"
      "\"ratio\":0.30000000000000004,\"big\":1e+21,\"neg\":-0.0,\"n\":null,\"list\":[1,\"two\","
      "true]},"
      "\"actions\":[{\"action\":\"notify\",\"to\":\"sales@example.com\"}]}";
  CHECK(CanonicalBody(d) == golden);
  CHECK(gavel::rules::ToJson(d, false).dump() == golden);

  // Every control character escapes as nlohmann does.
  for (int c = 0; c < 0x80; ++c) {
    Decision e = d;
    e.reason = std::string(1, static_cast<char>(c)) + "x";
    CHECK(CanonicalBody(e) == gavel::rules::ToJson(e, false).dump());
  }

  // The same decision hashes the same in two logs, and reads back to the same bytes.
  TempDir dir;
  auto one = MustOpen(dir.File("one.db"));
  auto two = MustOpen(dir.File("two.db"));
  Decision d1 = d, d2 = d;
  MustAppend(*one, d1);
  MustAppend(*two, d2);
  CHECK(d1.hash == d2.hash);
  CHECK(d1.hash == ChainHash(kGenesisHash, golden));
  auto back = one->Get(1);
  REQUIRE(back.ok());
  CHECK(gavel::rules::ToJson(back.value(), false).dump() == golden);
  CHECK(gavel::rules::ToJson(back.value(), true).dump() == gavel::rules::ToJson(d1, true).dump());
}

TEST_CASE("canonical JSON matches nlohmann's dump for random evidence", "[log]") {
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  auto random_double = [&] {
    double v;
    std::uint64_t bits = next();
    std::memcpy(&v, &bits, sizeof v);
    return v;  // any bit pattern: subnormals, huge, NaN, infinities
  };
  std::function<nlohmann::ordered_json(int)> value = [&](int depth) -> nlohmann::ordered_json {
    switch (next() % (depth > 2 ? 7 : 9)) {
      case 0:
        return nullptr;
      case 1:
        return next() % 2 == 0;
      case 2:
        return static_cast<std::int64_t>(next());
      case 3:
        return next();  // unsigned
      case 4:
        return random_double();
      case 5:
        return static_cast<double>(static_cast<std::int64_t>(next() % 2000000) - 1000000) / 1000.0;
      case 6: {
        std::string str;
        for (int i = static_cast<int>(next() % 12); i > 0; --i) {
          static const char* kPieces[] = {"a",    "\"", "\\", "\n", "\x01", "\x1f",
                                          "\x7f", "é",  "日", "🎯",  "/",    " "};
          str += kPieces[next() % 12];
        }
        return str;
      }
      case 7: {
        nlohmann::ordered_json a = nlohmann::ordered_json::array();
        for (int i = static_cast<int>(next() % 4); i > 0; --i) a.push_back(value(depth + 1));
        return a;
      }
      default: {
        nlohmann::ordered_json o = nlohmann::ordered_json::object();
        for (int i = static_cast<int>(next() % 4); i > 0; --i)
          o["k" + std::to_string(next() % 100) + "é"] = value(depth + 1);
        return o;
      }
    }
  };
  for (int i = 0; i < 3000; ++i) {
    Decision d = MakeDecision(i);
    d.evidence = nlohmann::ordered_json::object();
    for (int k = 0; k < 6; ++k) d.evidence["f" + std::to_string(k)] = value(0);
    d.actions = nlohmann::ordered_json::array({value(1)});
    const std::string want = gavel::rules::ToJson(d, false).dump();
    INFO(want);
    REQUIRE(CanonicalBody(d) == want);
  }
}

TEST_CASE("invalid UTF-8 is repaired before it is stored and hashed", "[log]") {
  TempDir dir;
  auto log = MustOpen(dir.File("state.db"));
  Decision d = MakeDecision(0);
  d.entity_id = "bad\xff\xfe-id";
  d.evidence["name"] = "caf\xe9";
  MustAppend(*log, d);
  CHECK(d.entity_id == "bad\xef\xbf\xbd\xef\xbf\xbd-id");
  CHECK(d.evidence["name"] == "caf\xef\xbf\xbd");
  CHECK(d.hash == ChainHash(kGenesisHash, gavel::rules::ToJson(d, false).dump()));
  auto back = log->Get(d.id);
  REQUIRE(back.ok());
  CHECK(back->entity_id == d.entity_id);
  CHECK(MustVerify(*log).ok());
}

TEST_CASE("UTF-8 is checked while escaping, for every sequence at every position", "[log]") {
  // The renderer checks UTF-8 in the same pass as it escapes, 8 bytes at a time: put valid and
  // invalid sequences at each position of strings that straddle those 8-byte steps, in a
  // string field, an evidence value and an evidence key.
  const char* kSequences[] = {"\xc3\xa9",     "\xe6\x97\xa5", "\xf0\x9f\x8e\xaf",  // valid
                              "\xff",         "\xc3",         "\xc0\xaf",          // invalid
                              "\xed\xa0\x80", "\xe6\x97",     "\xf4\x90\x80\x80",
                              "\x80",         "\xf0\x9f\x8e", "\xe0\x80\xaf"};
  TempDir dir;
  auto log = MustOpen(dir.File("state.db"));
  REQUIRE(log->Begin().ok());
  int n = 0;
  for (int len : {1, 7, 8, 9, 17}) {
    for (int pos = 0; pos <= len; ++pos) {
      for (const char* seq : kSequences) {
        std::string s(static_cast<std::size_t>(len), 'a');
        s.insert(static_cast<std::size_t>(pos), seq);
        Decision d = MakeDecision(n++);
        d.entity_id = s;
        d.evidence["s"] = s;
        d.evidence[s + "k"] = 1;
        const std::string want = gavel::rules::ToJson(d, false).dump(
            -1, ' ', false, nlohmann::json::error_handler_t::replace);
        INFO(len << " " << pos << " " << Sha256Hex(seq));
        REQUIRE(CanonicalBody(d) == want);
        MustAppend(*log, d);
        REQUIRE(gavel::rules::ToJson(d, false).dump() == want);  // repaired in place
        REQUIRE(d.hash == ChainHash(d.prev_hash, want));
      }
    }
  }
  REQUIRE(log->Commit().ok());
  CHECK(MustVerify(*log).count == n);
}

TEST_CASE("stored time text is FormatTime's for any time", "[log]") {
  std::vector<TimeMs> times = {0,
                               -1,
                               1,
                               999,
                               1000,
                               -999,
                               -1000,
                               -1001,
                               -86400000,
                               951782400000,
                               951868799999,
                               -30610224000001,
                               -30610224000000,
                               253402300799999,
                               253402300800000,
                               kT0,
                               kT0 + 7};
  std::uint64_t x = 88172645463325252ULL;  // xorshift: the same times every run
  for (int i = 0; i < 3000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    times.push_back(static_cast<TimeMs>(x % 340000000000000ULL) - 40000000000000LL);
  }
  TempDir dir;
  auto log = MustOpen(dir.File("state.db"));
  REQUIRE(log->Begin().ok());
  for (std::size_t i = 0; i < times.size(); ++i) {
    Decision d = MakeDecision(static_cast<int>(i));
    d.event_time = times[i];
    d.processing_time = times[(i * 7) % times.size()];
    MustAppend(*log, d);
    INFO(times[i]);
    REQUIRE(d.hash == ChainHash(d.prev_hash, gavel::rules::ToJson(d, false).dump()));
  }
  REQUIRE(log->Commit().ok());
  auto r = MustVerify(*log);  // also compares the text with FormatTime(event_ms)
  CHECK(r.ok());
  CHECK(r.count == static_cast<std::int64_t>(times.size()));
}

TEST_CASE("appending after reopening continues the chain", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  std::string last_hash;
  {
    auto log = MustOpen(path);
    for (int i = 0; i < 3; ++i) {
      Decision d = MakeDecision(i);
      MustAppend(*log, d);
      last_hash = d.hash;
    }
  }
  {
    auto log = MustOpen(path);
    auto head = log->Head();
    REQUIRE(head.ok());
    CHECK(head->id == 3);
    CHECK(head->hash == last_hash);
    Decision d = MakeDecision(3);
    MustAppend(*log, d);
    CHECK(d.id == 4);
    CHECK(d.prev_hash == last_hash);
    Decision e = MakeDecision(4);
    MustAppend(*log, e);
    CHECK(e.id == 5);
    auto r = MustVerify(*log);
    CHECK(r.ok());
    CHECK(r.count == 5);
    CHECK(r.head.id == 5);
    CHECK(r.head.hash == e.hash);
  }
  RawDb raw(path);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw.get(), "PRAGMA journal_mode", -1, &s, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "wal");
  sqlite3_finalize(s);
}

TEST_CASE("the decisions table refuses UPDATE and DELETE", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  Decision d = MakeDecision(0);
  MustAppend(*log, d);
  RawDb raw(path);
  CHECK(raw.Exec("UPDATE decisions SET outcome = 'skipped' WHERE id = 1") != SQLITE_OK);
  CHECK(std::string(raw.Error()).find("append-only") != std::string::npos);
  CHECK(raw.Exec("DELETE FROM decisions WHERE id = 1") != SQLITE_OK);
  CHECK(raw.Int("SELECT count(*) FROM decisions") == 1);
}

TEST_CASE("tampering with a field via raw SQL UPDATE is detected at the right id", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  for (int i = 0; i < 6; ++i) {
    Decision d = MakeDecision(i);
    MustAppend(*log, d);
  }
  REQUIRE(MustVerify(*log).ok());
  RawDb raw(path);
  raw.MustExec("DROP TRIGGER decisions_no_update");

  SECTION("an evidence value") {
    raw.MustExec(
        "UPDATE decisions SET evidence = replace(evidence, '\"threshold\":50.0', "
        "'\"threshold\":90.0') "
        "WHERE id = 4");
    REQUIRE(raw.Int("SELECT count(*) FROM decisions WHERE evidence LIKE '%\"threshold\":90.0%'") ==
            1);
  }
  SECTION("the outcome") {
    raw.MustExec("UPDATE decisions SET outcome = 'fired', reason = '' WHERE id = 4");
  }
  SECTION("the entity") { raw.MustExec("UPDATE decisions SET entity_id = 'lead-99' WHERE id = 4"); }
  SECTION("the event time text") {
    raw.MustExec("UPDATE decisions SET event_time = '2026-11-02T09:00:00Z' WHERE id = 4");
  }
  auto r = MustVerify(*log);
  CHECK_FALSE(r.ok());
  CHECK(r.problem == Problem::kBody);
  CHECK(r.id == 4);
  CHECK(r.count == 3);
  CHECK(r.stored == log->Get(4)->hash);
  CHECK(r.expected != r.stored);
  CHECK(r.expected.size() == 64);
  CHECK(r.message.find("record 4") != std::string::npos);
}

TEST_CASE("an edited time index column is detected", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  for (int i = 0; i < 3; ++i) {
    Decision d = MakeDecision(i);
    MustAppend(*log, d);
  }
  RawDb raw(path);
  raw.MustExec("DROP TRIGGER decisions_no_update");
  raw.MustExec("UPDATE decisions SET processing_ms = processing_ms + 86400000 WHERE id = 2");
  auto r = MustVerify(*log);
  CHECK(r.problem == Problem::kTimeIndex);
  CHECK(r.id == 2);
}

TEST_CASE("deleting a row is detected", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  std::vector<Decision> ds;
  for (int i = 0; i < 5; ++i) {
    Decision d = MakeDecision(i);
    MustAppend(*log, d);
    ds.push_back(d);
  }
  RawDb raw(path);
  raw.MustExec("DROP TRIGGER decisions_no_delete");

  SECTION("in the middle") {
    raw.MustExec("DELETE FROM decisions WHERE id = 3");
    auto r = MustVerify(*log);
    CHECK(r.problem == Problem::kGap);
    CHECK(r.id == 4);
    CHECK(r.expected == "3");
    CHECK(r.stored == "4");
    CHECK(r.count == 2);
  }
  SECTION("the first") {
    raw.MustExec("DELETE FROM decisions WHERE id = 1");
    auto r = MustVerify(*log);
    CHECK(r.problem == Problem::kGap);
    CHECK(r.id == 2);
    CHECK(r.count == 0);
  }
  SECTION("in the middle, renumbering the rest to hide the gap") {
    raw.MustExec("DROP TRIGGER decisions_no_update");
    raw.MustExec("DELETE FROM decisions WHERE id = 3");
    raw.MustExec("UPDATE decisions SET id = id - 1 WHERE id > 3");
    auto r = MustVerify(*log);
    CHECK(r.problem == Problem::kLink);
    CHECK(r.id == 3);
    CHECK(r.expected == ds[1].hash);
    CHECK(r.stored == ds[3].prev_hash);
  }
  SECTION("at the end, then appending again, found with an anchor") {
    const ChainHead anchor{5, ds[4].hash};  // recorded outside the database earlier
    raw.MustExec("DELETE FROM decisions WHERE id = 5");
    Decision d = MakeDecision(5);
    MustAppend(*log, d);
    CHECK(d.id == 5);  // the log chains to the newest record it finds
    CHECK(d.prev_hash == ds[3].hash);
    CHECK(MustVerify(*log).ok());
    auto r = MustVerify(*log, anchor);
    CHECK(r.problem == Problem::kAnchor);
    CHECK(r.id == 5);
    CHECK(r.expected == ds[4].hash);
    CHECK(r.stored == d.hash);
  }
  SECTION("at the end, found with an anchor") {
    const ChainHead anchor{5, ds[4].hash};
    CHECK(MustVerify(*log, anchor).ok());
    raw.MustExec("DELETE FROM decisions WHERE id = 5");
    CHECK(MustVerify(*log).ok());  // without an anchor the shorter chain is consistent
    auto r = MustVerify(*log, anchor);
    CHECK(r.problem == Problem::kAnchor);
    CHECK(r.id == 5);
    CHECK(r.count == 4);
  }
}

TEST_CASE("a changed prev_hash is detected", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  std::vector<Decision> ds;
  for (int i = 0; i < 5; ++i) {
    Decision d = MakeDecision(i);
    MustAppend(*log, d);
    ds.push_back(d);
  }
  RawDb raw(path);
  raw.MustExec("DROP TRIGGER decisions_no_update");

  SECTION("the link alone") {
    raw.MustExec("UPDATE decisions SET prev_hash = '" + ds[0].hash + "' WHERE id = 3");
    auto r = MustVerify(*log);
    CHECK(r.problem == Problem::kLink);
    CHECK(r.id == 3);
    CHECK(r.expected == ds[1].hash);
    CHECK(r.stored == ds[0].hash);
  }
  SECTION("a record rewritten with a recomputed hash breaks the next link") {
    Decision forged = ds[2];
    forged.outcome = "skipped";
    forged.reason = "cooldown";
    forged.hash = ChainHash(forged.prev_hash, CanonicalBody(forged));
    raw.MustExec("UPDATE decisions SET outcome = 'skipped', reason = 'cooldown', hash = '" +
                 forged.hash + "' WHERE id = 3");
    auto r = MustVerify(*log);
    CHECK(r.problem == Problem::kLink);
    CHECK(r.id == 4);
    CHECK(r.expected == forged.hash);
    CHECK(r.stored == ds[2].hash);
  }
  SECTION("the first record's genesis link") {
    raw.MustExec("UPDATE decisions SET prev_hash = '" + std::string(63, '0') + "1' WHERE id = 1");
    auto r = MustVerify(*log);
    CHECK(r.problem == Problem::kLink);
    CHECK(r.id == 1);
    CHECK(r.expected == std::string(kGenesisHash));
  }
}

TEST_CASE("queries filter and paginate", "[log]") {
  TempDir dir;
  auto log = MustOpen(dir.File("state.db"));
  REQUIRE(log->Begin().ok());
  std::vector<Decision> all;
  for (int i = 0; i < 60; ++i) {
    Decision d = MakeDecision(i);
    MustAppend(*log, d);
    all.push_back(d);
  }
  REQUIRE(log->Commit().ok());

  auto expect = [&](const DecisionQuery& q, auto pred) {
    std::vector<std::int64_t> want;
    for (const auto& d : all) {
      if (d.id > q.after_id && pred(d)) want.push_back(d.id);
    }
    if (q.limit > 0 && static_cast<std::int64_t>(want.size()) > q.limit) want.resize(q.limit);
    auto got = log->Query(q);
    INFO(got.status().message());
    REQUIRE(got.ok());
    CHECK(Ids(got.value()) == want);
    return got.value();
  };

  SECTION("by rule") {
    DecisionQuery q;
    q.rule = "budget_shift";
    auto got = expect(q, [](const Decision& d) { return d.rule == "budget_shift"; });
    CHECK(got.size() == 20);
  }
  SECTION("by entity") {
    DecisionQuery q;
    q.entity_type = "lead";
    q.entity_id = "lead-3";
    auto got = expect(
        q, [](const Decision& d) { return d.entity_type == "lead" && d.entity_id == "lead-3"; });
    CHECK(!got.empty());
  }
  SECTION("by outcome and reason") {
    DecisionQuery q;
    q.outcome = "skipped";
    expect(q, [](const Decision& d) { return d.outcome == "skipped"; });
    q.reason = "cooldown";
    expect(q, [](const Decision& d) { return d.outcome == "skipped" && d.reason == "cooldown"; });
    q.kind = "alert";
    CHECK(log->Query(q)->empty());
  }
  SECTION("by processing time and by event time") {
    DecisionQuery q;
    q.from = kT0 + 10 * gavel::rules::kMinute + 250;
    q.to = kT0 + 20 * gavel::rules::kMinute + 250;
    auto got = expect(q, [&](const Decision& d) {
      return d.processing_time >= *q.from && d.processing_time < *q.to;
    });
    CHECK(got.size() == 10);
    CHECK(got.front().id == 11);
    q.time_field = TimeField::kEvent;
    got = expect(
        q, [&](const Decision& d) { return d.event_time >= *q.from && d.event_time < *q.to; });
    CHECK(got.size() == 10);
    CHECK(got.front().id == 12);
  }
  SECTION("page by page") {
    DecisionQuery q;
    q.outcome = "skipped";
    q.limit = 7;
    std::vector<std::int64_t> paged;
    for (;;) {
      auto page = log->Query(q);
      REQUIRE(page.ok());
      if (page->empty()) break;
      CHECK(page->size() <= 7);
      for (const auto& d : page.value()) paged.push_back(d.id);
      q.after_id = page->back().id;
    }
    DecisionQuery whole;
    whole.outcome = "skipped";
    whole.limit = 0;
    CHECK(paged == Ids(log->Query(whole).value()));
    CHECK(paged.size() == 45);
  }
  SECTION("records read back equal what was appended") {
    DecisionQuery q;
    q.limit = 0;
    auto got = log->Query(q);
    REQUIRE(got.ok());
    REQUIRE(got->size() == all.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      CHECK(gavel::rules::ToJson(got.value()[i], true).dump() ==
            gavel::rules::ToJson(all[i], true).dump());
    }
  }
  SECTION("get one") {
    auto d = log->Get(17);
    REQUIRE(d.ok());
    CHECK(d->id == 17);
    CHECK(d->hash == all[16].hash);
    auto none = log->Get(1000);
    CHECK(none.status().code() == Status::Code::kNotFound);
  }
}

TEST_CASE("export writes one canonical line per record", "[log]") {
  TempDir dir;
  auto log = MustOpen(dir.File("state.db"));
  std::vector<Decision> all;
  for (int i = 0; i < 5; ++i) {
    Decision d = MakeDecision(i);
    MustAppend(*log, d);
    all.push_back(d);
  }
  std::ostringstream out;
  auto n = log->ExportJsonl(out);
  REQUIRE(n.ok());
  CHECK(n.value() == 5);
  std::istringstream in(out.str());
  std::string line;
  std::size_t i = 0;
  while (std::getline(in, line)) {
    REQUIRE(i < all.size());
    CHECK(line == gavel::rules::ToJson(all[i], true).dump());
    ++i;
  }
  CHECK(i == 5);

  DecisionQuery q;
  q.rule = "hot_lead_to_sales";
  q.limit = 0;
  std::ostringstream some;
  CHECK(log->ExportJsonl(some, q).value() == 2);
}

TEST_CASE("a rolled-back append leaves no record and the chain intact", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  Decision a = MakeDecision(0);
  MustAppend(*log, a);

  SECTION("rolled back through the log") {
    REQUIRE(log->Begin().ok());
    Decision b = MakeDecision(1);
    MustAppend(*log, b);
    CHECK(b.id == 2);
    REQUIRE(log->Rollback().ok());
  }
  SECTION("rolled back by the connection's owner behind the log's back") {
    REQUIRE(sqlite3_exec(log->db(), "BEGIN", nullptr, nullptr, nullptr) == SQLITE_OK);
    Decision b = MakeDecision(1);
    REQUIRE(log->AppendInTransaction(b).ok());
    Decision c = MakeDecision(2);
    REQUIRE(log->AppendInTransaction(c).ok());
    REQUIRE(sqlite3_exec(log->db(), "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  CHECK(log->Get(2).status().code() == Status::Code::kNotFound);
  CHECK(log->Head()->hash == a.hash);
  Decision next = MakeDecision(3);
  MustAppend(*log, next);
  CHECK(next.id == 2);
  CHECK(next.prev_hash == a.hash);
  auto r = MustVerify(*log);
  CHECK(r.ok());
  CHECK(r.count == 2);
}

TEST_CASE("within a batch the log follows rollbacks to savepoints and other writers", "[log]") {
  // A log from Open() skips the per-append head check while nothing but its own appends ran
  // on its connection; every one of these must still make it re-read the head.
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  sqlite3* db = log->db();
  auto exec = [&](const char* sql) {
    INFO(sql);
    REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  };
  std::vector<Decision> kept;
  int n = 0;
  auto append = [&](bool keep) {
    Decision d = MakeDecision(n++);
    MustAppend(*log, d);
    if (!kept.empty() && keep) {
      CHECK(d.id == kept.back().id + 1);
      CHECK(d.prev_hash == kept.back().hash);
    }
    if (keep) kept.push_back(d);
    return d;
  };
  bool user_trace = false;
  SECTION("with the log's own statement trace") {}
  SECTION("with the connection's trace replaced by the user's") {
    // Then the log cannot see statements and must check the head before every append.
    user_trace = true;
    REQUIRE(sqlite3_trace_v2(
                db, SQLITE_TRACE_STMT, [](unsigned, void*, void*, void*) { return 0; }, nullptr) ==
            SQLITE_OK);
  }
  REQUIRE(log->Begin().ok());
  for (int i = 0; i < 5; ++i) append(true);
  // ROLLBACK TO by sqlite3_exec, several times.
  for (int round = 0; round < 3; ++round) {
    exec("SAVEPOINT sp");
    for (int i = 0; i < 3; ++i) append(false);
    exec("ROLLBACK TO sp");
    exec("RELEASE sp");
    append(true);
  }
  // ROLLBACK TO through one prepared statement, run twice.
  sqlite3_stmt* rollback_to = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "ROLLBACK TO sp2", -1, &rollback_to, nullptr) == SQLITE_OK);
  for (int round = 0; round < 2; ++round) {
    exec("SAVEPOINT sp2");
    append(false);
    append(false);
    REQUIRE(sqlite3_step(rollback_to) == SQLITE_DONE);
    REQUIRE(sqlite3_reset(rollback_to) == SQLITE_OK);
    exec("RELEASE sp2");
    append(true);
  }
  sqlite3_finalize(rollback_to);
  // A second log on the same connection appends in the middle of the batch.
  {
    auto other = DecisionLog::Attach(db);
    REQUIRE(other.ok());
    append(true);
    Decision d = MakeDecision(n++);
    REQUIRE(other.value()->AppendInTransaction(d).ok());
    CHECK(d.prev_hash == kept.back().hash);
    kept.push_back(d);
    append(true);
  }
  REQUIRE(log->Commit().ok());
  // The whole next transaction is rolled back behind the log's back.
  exec("BEGIN IMMEDIATE");
  for (int i = 0; i < 4; ++i) {
    Decision d = MakeDecision(n++);
    REQUIRE(log->AppendInTransaction(d).ok());
  }
  exec("ROLLBACK");
  exec("BEGIN IMMEDIATE");
  append(true);
  exec("COMMIT");
  // Another connection appends between two batches of this one.
  {
    auto b = MustOpen(path);
    Decision d = MakeDecision(n++);
    MustAppend(*b, d);
    CHECK(d.prev_hash == kept.back().hash);
    kept.push_back(d);
  }
  REQUIRE(log->Begin().ok());
  append(true);
  append(true);
  REQUIRE(log->Commit().ok());
  if (user_trace) sqlite3_trace_v2(db, 0, nullptr, nullptr);
  auto r = MustVerify(*log);
  CHECK(r.ok());
  CHECK(r.count == static_cast<std::int64_t>(kept.size()));
  CHECK(r.head.hash == kept.back().hash);
}

TEST_CASE("checkpoints keep the WAL near its limit while a writer appends", "[log]") {
  // A log from Open() checkpoints on a thread of its own and finishes each round itself once
  // the WAL holds 4,096 frames, so that the WAL is started over. 4 KiB pages (a file not
  // created by Open) make that 16 MiB, about 25,000 of these records.
  TempDir dir;
  const std::string path = dir.File("state.db");
  {
    RawDb raw(path);
    raw.MustExec("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE other (x)");
  }
  // The thread is started by the first commit that leaves 256 pages in the WAL: a log that
  // is only read, or written a little, has none.
  auto threads = [] {
    std::error_code ec;
    auto it = fs::directory_iterator("/proc/self/task", ec);
    return ec ? -1 : static_cast<int>(std::distance(it, fs::directory_iterator()));
  };
  const int threads_before = threads();
  auto log = MustOpen(path);
  CHECK(MustVerify(*log).count == 0);
  {
    Decision d = MakeDecision(0);
    MustAppend(*log, d);
  }
  CHECK(threads() == threads_before);
  std::uintmax_t max_wal = 0;
  int n = 1;
  for (int batch = 0; batch < 80; ++batch) {
    REQUIRE(log->Begin().ok());
    for (int i = 0; i < 1000; ++i, ++n) {
      Decision d = MakeDecision(n);
      MustAppend(*log, d);
    }
    REQUIRE(log->Commit().ok());
    std::error_code ec;
    max_wal = std::max(max_wal, fs::file_size(path + "-wal", ec));
  }
  INFO("largest WAL " << max_wal << " bytes; database " << fs::file_size(path) << " bytes");
  CHECK(max_wal > 4096u * 4096u / 2);              // the WAL did fill up...
  // ...and was started over: without that it would hold every page written, more than the
  // database itself. (How near 4,096 frames it stays depends on when the checkpoint thread
  // gets a core; on this shared 2-core machine it overshot by up to 2x under load, so the
  // bound here is the one that does not depend on timing.)
  CHECK(max_wal < fs::file_size(path));
  CHECK(fs::file_size(path) > 30u * 1000 * 1000);  // most records are in the database file
  if (threads_before > 0) CHECK(threads() == threads_before + 1);
  auto reader = MustOpen(path);
  CHECK(MustVerify(*reader).count == n);
  reader.reset();
  log.reset();
  CHECK(threads() == threads_before);
}

TEST_CASE("two logs on one database chain to each other's records", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto a = MustOpen(path);
  auto b = MustOpen(path);
  std::string last;
  for (int i = 0; i < 10; ++i) {
    Decision d = MakeDecision(i);
    MustAppend(i % 3 == 0 ? *b : *a, d);
    CHECK(d.id == i + 1);
    if (i > 0) CHECK(d.prev_hash == last);
    last = d.hash;
  }
  CHECK(MustVerify(*a).count == 10);
}

TEST_CASE("a crash in the middle of a transaction loses only the uncommitted records", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child: commit 100 records, append 50 more in an open transaction, then die without
    // committing, closing or running any destructor.
    auto log = DecisionLog::Open(path);
    if (!log.ok()) ::_exit(2);
    if (!log.value()->Begin().ok()) ::_exit(3);
    for (int i = 0; i < 100; ++i) {
      Decision d = MakeDecision(i);
      if (!log.value()->Append(d)) ::_exit(4);
    }
    if (!log.value()->Commit().ok()) ::_exit(5);
    if (!log.value()->Begin().ok()) ::_exit(6);
    for (int i = 100; i < 150; ++i) {
      Decision d = MakeDecision(i);
      if (!log.value()->Append(d)) ::_exit(7);
    }
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  auto log = MustOpen(path);
  auto r = MustVerify(*log);
  CHECK(r.ok());
  CHECK(r.count == 100);
  Decision d = MakeDecision(150);
  MustAppend(*log, d);
  CHECK(d.id == 101);
  CHECK(MustVerify(*log).count == 101);
}

TEST_CASE("a decision and its state change commit or roll back together", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  // The state store owns the connection; the log shares it.
  auto db = gavel::sqlite::OpenDatabase(path);
  REQUIRE(db.ok());
  sqlite3* conn = db->get();
  REQUIRE(sqlite3_exec(conn, "CREATE TABLE entities (id TEXT PRIMARY KEY, stage TEXT)", nullptr,
                       nullptr, nullptr) == SQLITE_OK);
  auto attached = DecisionLog::Attach(conn);
  REQUIRE(attached.ok());
  auto& log = *attached.value();

  Decision outside = MakeDecision(0);
  auto s = log.AppendInTransaction(outside);
  CHECK(s.code() == Status::Code::kInvalidArgument);

  REQUIRE(sqlite3_exec(conn, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  Decision fired = MakeDecision(0);
  REQUIRE(log.AppendInTransaction(fired).ok());
  REQUIRE(sqlite3_exec(conn, "INSERT INTO entities VALUES ('adset-0', 'paused')", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  {
    RawDb other(path);  // another reader sees neither before the commit
    CHECK(other.Int("SELECT count(*) FROM decisions") == 0);
    CHECK(other.Int("SELECT count(*) FROM entities") == 0);
  }
  REQUIRE(sqlite3_exec(conn, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  {
    RawDb other(path);
    CHECK(other.Int("SELECT count(*) FROM decisions") == 1);
    CHECK(other.Int("SELECT count(*) FROM entities") == 1);
  }

  REQUIRE(sqlite3_exec(conn, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  Decision second = MakeDecision(4);
  REQUIRE(log.AppendInTransaction(second).ok());
  REQUIRE(sqlite3_exec(conn, "INSERT INTO entities VALUES ('adset-4', 'paused')", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(conn, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  {
    RawDb other(path);
    CHECK(other.Int("SELECT count(*) FROM decisions") == 1);
    CHECK(other.Int("SELECT count(*) FROM entities") == 1);
  }
  // Attaching twice (e.g. after a restart) keeps the schema and the chain.
  auto again = DecisionLog::Attach(conn);
  REQUIRE(again.ok());
  CHECK(again.value()->Head()->id == 1);
  CHECK(MustVerify(log).count == 1);
}

TEST_CASE("an append outside a transaction is durable when it returns", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  auto log = MustOpen(path);
  Decision d = MakeDecision(0);
  MustAppend(*log, d);
  CHECK_FALSE(log->InTransaction());
  RawDb other(path);
  CHECK(other.Int("SELECT count(*) FROM decisions") == 1);
  CHECK(log->Commit().code() == Status::Code::kInvalidArgument);
  REQUIRE(log->Begin().ok());
  CHECK(log->Begin().code() == Status::Code::kInvalidArgument);
  REQUIRE(log->Commit().ok());
}

TEST_CASE("a database from a newer gavel is refused", "[log]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  { MustOpen(path); }
  const std::string newer = std::to_string(DecisionLog::kSchemaVersion + 1);
  {
    RawDb raw(path);
    raw.MustExec("UPDATE decisions_schema SET version = " + newer);
  }
  auto log = DecisionLog::Open(path);
  REQUIRE_FALSE(log.ok());
  CHECK(log.status().code() == Status::Code::kUnavailable);
  CHECK(log.status().message().find("schema version " + newer) != std::string::npos);
}

TEST_CASE("SQLite errors carry SQLite's message", "[log]") {
  TempDir dir;
  auto log = DecisionLog::Open(dir.File("no/such/dir/state.db"));
  REQUIRE_FALSE(log.ok());
  CHECK(log.status().code() == Status::Code::kIoError);
  CHECK(log.status().message().find("unable to open database file") != std::string::npos);

  fs::create_directories(dir.File("busy"));
  const std::string path = dir.File("busy/state.db");
  auto a = MustOpen(path);
  RawDb other(path);
  other.MustExec("BEGIN IMMEDIATE");  // another writer holds the lock
  sqlite3_busy_timeout(a->db(), 10);
  Decision d = MakeDecision(0);
  CHECK_FALSE(a->Append(d));
  CHECK(a->last_error().code() == Status::Code::kUnavailable);
  CHECK(a->last_error().message().find("database is locked") != std::string::npos);
  other.MustExec("ROLLBACK");
  MustAppend(*a, d);
  CHECK(d.id == 1);
}

TEST_CASE("a run summary counts the evaluations that did not fire", "[log]") {
  EvaluationSummary s;
  CHECK(s.empty());
  s.Count("b_rule", "cooldown");
  s.Count("a_rule", "stale_data", 3);
  s.Count("b_rule", "cooldown");
  s.Count("b_rule", "condition_false", 10);
  CHECK(s.total() == 15);
  Decision d = s.ToDecision(kT0, kT0 + 5, "tick:2026-11-01T09:00:00Z");
  CHECK(d.kind == "summary");
  CHECK(d.outcome == "summary");
  CHECK(d.evidence.dump() ==
        "{\"not_fired\":15,\"rules\":{\"a_rule\":{\"stale_data\":3},\"b_rule\":{\"condition_"
        "false\":10,\"cooldown\":2}}}");
  TempDir dir;
  auto log = MustOpen(dir.File("state.db"));
  MustAppend(*log, d);
  CHECK(log->Get(1)->evidence == d.evidence);
}
