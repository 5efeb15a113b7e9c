// The event journal. See event_journal.hpp.
#include "daemon/event_journal.hpp"

#include "dsl/base/sha256.hpp"
#include "rules/event.hpp"

namespace gavel::daemon {

Result<std::unique_ptr<EventJournal>> EventJournal::Attach(sqlite3* db) {
  Status s = sqlite::Exec(db,
                          "CREATE TABLE IF NOT EXISTS event_journal("
                          " seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, program TEXT NOT NULL,"
                          " decisions INTEGER NOT NULL, events INTEGER NOT NULL, body TEXT NOT NULL)",
                          "event journal: create");
  if (!s.ok()) return s;
  std::unique_ptr<EventJournal> j(new EventJournal(db));
  auto ins = sqlite::Prepare(db,
                             "INSERT INTO event_journal(at, program, decisions, events, body) VALUES(?1, ?2, ?3, ?4, ?5)",
                             "event journal: prepare");
  if (!ins.ok()) return ins.status();
  j->insert_ = std::move(ins.value());
  s = j->Recount();
  if (!s.ok()) return s;
  return j;
}

Status EventJournal::Recount() {
  auto st = sqlite::Prepare(db_, "SELECT count(*), coalesce(sum(events), 0) FROM event_journal", "event journal: count");
  if (!st.ok()) return st.status();
  int rc = sqlite3_step(st.value().get());
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "event journal: count");
  rows_ = sqlite3_column_int64(st.value().get(), 0);
  events_ = sqlite3_column_int64(st.value().get(), 1);
  return Status::Ok();
}

Status EventJournal::Append(rules::TimeMs at, std::string_view program, std::int64_t decisions, std::int64_t events,
                            std::string_view body) {
  sqlite3_stmt* st = insert_.get();
  sqlite::ResetGuard guard(st);
  sqlite3_bind_int64(st, 1, at);
  sqlite::BindStatic(st, 2, program);
  sqlite3_bind_int64(st, 3, decisions);
  sqlite3_bind_int64(st, 4, events);
  sqlite::BindStatic(st, 5, body);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "event journal: append");
  rows_++;
  events_ += events;
  return Status::Ok();
}

Status EventJournal::Clear() {
  Status s = sqlite::Exec(db_, "DELETE FROM event_journal", "event journal: clear");
  if (!s.ok()) return s;
  rows_ = 0;
  events_ = 0;
  return Status::Ok();
}

Status ForEachJournalRow(sqlite3* db, const std::string& schema, const std::function<Status(const JournalRow&)>& visit) {
  {
    auto has = sqlite::Prepare(db, "SELECT 1 FROM " + schema + ".sqlite_master WHERE type = 'table' AND name = 'event_journal'",
                               "event journal: schema");
    if (!has.ok()) return has.status();
    if (sqlite3_step(has.value().get()) != SQLITE_ROW) return Status::Ok();
  }
  auto st = sqlite::Prepare(db, "SELECT seq, at, program, decisions, events, body FROM " + schema +
                                    ".event_journal ORDER BY seq",
                            "event journal: read");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = st.value().get();
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
