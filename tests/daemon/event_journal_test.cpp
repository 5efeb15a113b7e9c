// The daemon's event journal on a real SQLite file: live rows and garbage after a snapshot,
// collection a few rows at a time, rollbacks, reopening, and `apply`'s mark.
#include "daemon/event_journal.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "rules/store/sqlite_util.hpp"

namespace {

namespace fs = std::filesystem;
using gavel::daemon::EventJournal;
using gavel::daemon::JournalRow;

struct Db {
  fs::path path;
  gavel::sqlite::DbPtr db;
  explicit Db(const std::string& name) {
    path = fs::temp_directory_path() / ("gavel-journal-" + std::to_string(::getpid()) + "-" + name + ".db");
    fs::remove(path);
    auto opened = gavel::sqlite::OpenDatabase(path.string());
    REQUIRE(opened.ok());
    db = std::move(opened.value());
  }
  ~Db() {
    db.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
  }
  void Exec(const char* sql) { REQUIRE(gavel::sqlite::Exec(db.get(), sql, "test").ok()); }
  std::int64_t Count(const char* sql) {
    auto st = gavel::sqlite::Prepare(db.get(), sql, "test");
    REQUIRE(st.ok());
    REQUIRE(sqlite3_step(st.value().get()) == SQLITE_ROW);
    return sqlite3_column_int64(st.value().get(), 0);
  }
};

// The live rows' first event lines.
std::vector<std::string> Live(sqlite3* db) {
  std::vector<std::string> out;
  auto s = gavel::daemon::ForEachJournalRow(db, "main", [&](const JournalRow& r) {
    out.emplace_back(r.body.substr(0, r.body.find('\n')));
    return gavel::Status::Ok();
  });
  REQUIRE(s.ok());
  return out;
}

}  // namespace

TEST_CASE("the event journal: a snapshot ends it, its rows are collected a few at a time, rollbacks and reopening "
          "keep the counts",
          "[daemon][journal]") {
  Db d("basic");
  auto j = EventJournal::Attach(d.db.get());
  REQUIRE(j.ok());
  EventJournal& journal = *j.value();
  CHECK(Live(d.db.get()).empty());

  d.Exec("BEGIN");
  for (int i = 1; i <= 5; ++i) REQUIRE(journal.Append(i * 1000, "v1", i, 2, "a" + std::to_string(i) + "\nb\n").ok());
  d.Exec("COMMIT");
  CHECK(journal.rows() == 5);
  CHECK(journal.events() == 10);
  CHECK(Live(d.db.get()) == std::vector<std::string>{"a1", "a2", "a3", "a4", "a5"});

  // A snapshot: the rows become garbage without being deleted yet.
  d.Exec("BEGIN");
  REQUIRE(journal.Clear().ok());
  d.Exec("COMMIT");
  CHECK(journal.rows() == 0);
  CHECK(journal.garbage() == 5);
  CHECK(Live(d.db.get()).empty());
  CHECK(d.Count("SELECT count(*) FROM event_journal") == 5);

  // New rows after the snapshot are live; collection deletes the oldest garbage only.
  d.Exec("BEGIN");
  REQUIRE(journal.Append(6000, "v1", 0, 1, "a6\n").ok());
  REQUIRE(journal.Collect(2).ok());
  d.Exec("COMMIT");
  CHECK(journal.garbage() == 3);
  CHECK(d.Count("SELECT min(seq) FROM event_journal") == 3);
  CHECK(Live(d.db.get()) == std::vector<std::string>{"a6"});

  // A rolled-back append and collection: Recount puts the counts back to what is stored.
  d.Exec("BEGIN");
  REQUIRE(journal.Append(7000, "v1", 0, 4, "a7\n").ok());
  REQUIRE(journal.Collect(10).ok());
  CHECK(journal.garbage() == 0);
  d.Exec("ROLLBACK");
  REQUIRE(journal.Recount().ok());
  CHECK(journal.rows() == 1);
  CHECK(journal.events() == 1);
  CHECK(journal.garbage() == 3);

  // Reopened: the same live rows and garbage, and new rows continue the sequence even once
  // every row was deleted (a reused number would read as garbage).
  j.value().reset();
  auto again = EventJournal::Attach(d.db.get());
  REQUIRE(again.ok());
  EventJournal& j2 = *again.value();
  CHECK(j2.rows() == 1);
  CHECK(j2.garbage() == 3);
  d.Exec("BEGIN");
  REQUIRE(j2.Clear().ok());
  REQUIRE(j2.Collect(100).ok());
  d.Exec("COMMIT");
  CHECK(d.Count("SELECT count(*) FROM event_journal") == 0);
  d.Exec("BEGIN");
  REQUIRE(j2.Append(8000, "v1", 0, 1, "a8\n").ok());
  d.Exec("COMMIT");
  CHECK(Live(d.db.get()) == std::vector<std::string>{"a8"});

  // `gavel apply` wrote a snapshot of its own: every row so far is applied.
  d.Exec("BEGIN");
  REQUIRE(gavel::daemon::MarkJournalApplied(d.db.get()).ok());
  d.Exec("COMMIT");
  CHECK(Live(d.db.get()).empty());
}

TEST_CASE("a database without a journal reads as an empty one", "[daemon][journal]") {
  Db d("none");
  d.Exec("CREATE TABLE unrelated(x)");
  CHECK(Live(d.db.get()).empty());
  CHECK(gavel::daemon::MarkJournalApplied(d.db.get()).ok());
}
