// The event journal. See event_journal.hpp.
#include "daemon/event_journal.hpp"

#include <algorithm>

#include "dsl/base/sha256.hpp"
#include "rules/event.hpp"

namespace gavel::daemon {

namespace {

constexpr const char* kCreate =
    "CREATE TABLE IF NOT EXISTS event_journal("
    " seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, program TEXT NOT NULL,"
    " decisions INTEGER NOT NULL, events INTEGER NOT NULL, body TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS event_journal_start(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)";

bool HasJournal(sqlite3* db, const std::string& schema) {
  auto has = sqlite::Prepare(
      db, "SELECT 1 FROM " + schema + ".sqlite_master WHERE type = 'table' AND name = 'event_journal_start'",
      "event journal: schema");
  return has.ok() && sqlite3_step(has.value().get()) == SQLITE_ROW;
}

// The first live seq of the journal in `schema` (0: every row).
Result<std::int64_t> JournalStart(sqlite3* db, const std::string& schema) {
  auto st = sqlite::Prepare(db, "SELECT seq FROM " + schema + ".event_journal_start WHERE id = 1",
                            "event journal: start");
  if (!st.ok()) return st.status();
  int rc = sqlite3_step(st.value().get());
  if (rc == SQLITE_ROW) return sqlite3_column_int64(st.value().get(), 0);
  if (rc == SQLITE_DONE) return std::int64_t{0};
  return sqlite::Error(db, rc, "event journal: start");
}

}  // namespace

Result<std::unique_ptr<EventJournal>> EventJournal::Attach(sqlite3* db) {
  Status s = sqlite::Exec(db, kCreate, "event journal: create");
  if (!s.ok()) return s;
  std::unique_ptr<EventJournal> j(new EventJournal(db));
  auto ins = sqlite::Prepare(
      db, "INSERT INTO event_journal(seq, at, program, decisions, events, body) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
      "event journal: prepare");
  if (!ins.ok()) return ins.status();
  j->insert_ = std::move(ins.value());
  auto col = sqlite::Prepare(
      db, "DELETE FROM event_journal WHERE seq IN (SELECT seq FROM event_journal WHERE seq < ?1 ORDER BY seq LIMIT ?2)",
      "event journal: prepare");
  if (!col.ok()) return col.status();
  j->collect_ = std::move(col.value());
  s = j->Recount();
  if (!s.ok()) return s;
  return j;
}

Status EventJournal::Recount() {
  auto start = JournalStart(db_, "main");
  if (!start.ok()) return start.status();
  start_ = start.value();
  auto st = sqlite::Prepare(db_,
                            "SELECT count(*) FILTER (WHERE seq >= ?1), coalesce(sum(events) FILTER (WHERE seq >= ?1), 0),"
                            " count(*) FILTER (WHERE seq < ?1), coalesce(max(seq), 0) FROM event_journal",
                            "event journal: count");
  if (!st.ok()) return st.status();
  sqlite3_bind_int64(st.value().get(), 1, start_);
  int rc = sqlite3_step(st.value().get());
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "event journal: count");
  rows_ = sqlite3_column_int64(st.value().get(), 0);
  events_ = sqlite3_column_int64(st.value().get(), 1);
  garbage_ = sqlite3_column_int64(st.value().get(), 2);
  next_seq_ = std::max<std::int64_t>(start_, sqlite3_column_int64(st.value().get(), 3) + 1);
  return Status::Ok();
}

Status EventJournal::Append(rules::TimeMs at, std::string_view program, std::int64_t decisions, std::int64_t events,
                            std::string_view body) {
  sqlite3_stmt* st = insert_.get();
  sqlite::ResetGuard guard(st);
  sqlite3_bind_int64(st, 1, next_seq_);
  sqlite3_bind_int64(st, 2, at);
  sqlite::BindStatic(st, 3, program);
  sqlite3_bind_int64(st, 4, decisions);
  sqlite3_bind_int64(st, 5, events);
  sqlite::BindStatic(st, 6, body);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "event journal: append");
  next_seq_++;
  rows_++;
  events_ += events;
  return Status::Ok();
}

Status EventJournal::Clear() {
  auto st = sqlite::Prepare(db_, "INSERT OR REPLACE INTO event_journal_start(id, seq) VALUES(1, ?1)",
                            "event journal: clear");
  if (!st.ok()) return st.status();
  sqlite3_bind_int64(st.value().get(), 1, next_seq_);
  int rc = sqlite3_step(st.value().get());
  if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "event journal: clear");
  start_ = next_seq_;
  garbage_ += rows_;
  rows_ = 0;
  events_ = 0;
  return Status::Ok();
}

Status EventJournal::Collect(int limit) {
  if (garbage_ == 0 || limit <= 0) return Status::Ok();
  sqlite3_stmt* st = collect_.get();
  sqlite::ResetGuard guard(st);
  sqlite3_bind_int64(st, 1, start_);
  sqlite3_bind_int(st, 2, limit);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "event journal: collect");
  garbage_ = std::max<std::int64_t>(0, garbage_ - sqlite3_changes(db_));
  return Status::Ok();
}

Status MarkJournalApplied(sqlite3* db) {
  if (!HasJournal(db, "main")) return Status::Ok();
  return sqlite::Exec(db,
                      "INSERT OR REPLACE INTO event_journal_start(id, seq)"
                      " SELECT 1, coalesce(max(seq), 0) + 1 FROM event_journal",
                      "event journal: mark applied");
}

Status ForEachJournalRow(sqlite3* db, const std::string& schema, const std::function<Status(const JournalRow&)>& visit) {
  if (!HasJournal(db, schema)) return Status::Ok();
  auto start = JournalStart(db, schema);
  if (!start.ok()) return start.status();
  auto st = sqlite::Prepare(db, "SELECT seq, at, program, decisions, events, body FROM " + schema +
                                    ".event_journal WHERE seq >= ?1 ORDER BY seq",
                            "event journal: read");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = st.value().get();
  sqlite3_bind_int64(s, 1, start.value());
  while (true) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) return Status::Ok();
    if (rc != SQLITE_ROW) return sqlite::Error(db, rc, "event journal: read");
    JournalRow row;
    row.seq = sqlite3_column_int64(s, 0);
    row.at = sqlite3_column_int64(s, 1);
    row.program = std::string(sqlite::ColumnText(s, 2));
    row.decisions = sqlite3_column_int64(s, 3);
    row.events = sqlite3_column_int64(s, 4);
    row.body = sqlite::ColumnText(s, 5);
    Status v = visit(row);
    if (!v.ok()) return v;
  }
}

Result<JournalReplay> ReplayJournal(sqlite3* db, const std::string& schema, const dsl::Program& program,
                                    rules::Engine& engine, const std::function<std::int64_t(bool begin)>& row_decisions) {
  JournalReplay out;
  std::string fingerprint;
  Status s = ForEachJournalRow(db, schema, [&](const JournalRow& row) -> Status {
    out.rows++;
    if (row.program != program.version) out.other_program = true;
    fingerprint = Sha256Hex(fingerprint + "\n" + std::to_string(row.seq) + " " + std::to_string(row.at) + "\n" +
                            std::string(row.body));
    if (row_decisions) row_decisions(true);
    Status st = engine.AdvanceTo(row.at);
    if (!st.ok()) return st;
    std::string_view body = row.body;
    while (!body.empty()) {
      const std::size_t nl = body.find('\n');
      std::string_view line = body.substr(0, nl);
      body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
      if (line.empty()) continue;
      rules::Event ev;
      if (!rules::ParseEvent(program, line, ev).ok()) {
        out.unparsable++;
        continue;
      }
      out.events++;
      st = engine.OnEvent(ev);
      if (!st.ok() && st.code() != Status::Code::kInvalidArgument) return st;
    }
    if (row_decisions && row_decisions(false) != row.decisions) out.other_decision_counts++;
    return Status::Ok();
  });
  if (!s.ok()) return Status::IoError("replaying the event journal: " + s.message());
  out.sha256 = fingerprint.empty() ? "" : fingerprint;
  return out;
}

}  // namespace gavel::daemon
