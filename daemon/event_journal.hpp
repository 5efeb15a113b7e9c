// The daemon's event journal: the events of each ingest commit, kept in the state database
// between two snapshots of the engine's state, so that an ingest commit writes the events and
// their decisions instead of the state row of every entity the events touched.
//
// Why: with a snapshot per commit (Engine::Checkpoint), SQLite rewrote every page holding a
// touched entity's row at every commit — 80% of the engine thread's time at high ingest rates.
// A journal row is one sequential insert of the batch's text.
//
// The contract with the daemon (daemon/daemon.hpp, "Crash safety"):
//   * An ingest commit is written in journal mode only when nothing else happened in its
//     transaction: no timer or schedule tick was due when it started (so the engine's work in
//     it depends only on the state, the program and the events). Its row holds the engine time
//     it ran at, the program version, the events in the order they were given to the engine
//     (accepted and refused alike), and how many decisions it made; the row commits in the
//     same transaction as those decisions.
//   * Every other transaction (timers, ticks, summaries, reloads, shutdown) and every
//     `snapshot_every`/`snapshot_events` writes a snapshot instead: Engine::Checkpoint of
//     everything changed since the last snapshot, and Clear() of the journal, in one
//     transaction. Clear() only moves the journal's start past its last row; the rows before
//     the start are deleted a few at a time by later commits (Collect), because deleting a
//     snapshot's worth of large rows at once cost as much as writing them and stalled ingest
//     for a third of a second.
//   * Recovery: restore the snapshot, then apply the journal rows in order (AdvanceTo(at), then
//     each event) with the decision sink muted — their decisions are already in the log, so no
//     decision is made twice — then write a snapshot. A row whose replay makes a different
//     number of decisions than it recorded is reported (the state is still the best available).
//
// Tables: event_journal(seq INTEGER PRIMARY KEY, at INTEGER, program TEXT, decisions INTEGER,
// events INTEGER, body TEXT): `body` is the events as NDJSON, one line each, as received;
// event_journal_start(id = 1, seq): the first live row (rows before it are garbage; no row:
// every row is live).
// Thread-safety: none; the engine thread's connection only.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dsl/base/status.hpp"
#include "dsl/program.hpp"
#include "rules/engine.hpp"
#include "rules/clock.hpp"
#include "rules/store/sqlite_util.hpp"

namespace gavel::daemon {

struct JournalRow {
  std::int64_t seq = 0;
  rules::TimeMs at = 0;         // the engine time the batch ran at
  std::string program;          // the program version that applied it
  std::int64_t decisions = 0;   // decisions the batch made
  std::int64_t events = 0;      // lines in body
  std::string_view body;        // NDJSON, valid during the visit
};

// Visits the live rows of `schema`.event_journal in order (none if the table does not exist).
Status ForEachJournalRow(sqlite3* db, const std::string& schema, const std::function<Status(const JournalRow&)>& visit);

// What a replay did.
struct JournalReplay {
  std::int64_t rows = 0;
  std::int64_t events = 0;                 // events given to the engine
  std::int64_t unparsable = 0;             // lines the program no longer accepts (skipped)
  std::int64_t other_decision_counts = 0;  // rows whose replay made a different number of decisions
  bool other_program = false;              // rows written under another program version
  std::string sha256;                      // of every row's seq, time and events (a fingerprint)
};

// Applies the journal in `schema` of `db` to `engine`, which was just restored from the
// snapshot in the same database: for each row, AdvanceTo(at), then each event in order
// (duplicates refused as they were the first time). The decisions the engine makes go to its
// sink as usual; the caller mutes or discards them (they are already in the log). With
// `row_decisions`, it is called before each row (`begin` true) and after it (`begin` false,
// returning the decisions made since) to compare with the recorded count.
Result<JournalReplay> ReplayJournal(sqlite3* db, const std::string& schema, const dsl::Program& program,
                                    rules::Engine& engine,
                                    const std::function<std::int64_t(bool begin)>& row_decisions = nullptr);

// Marks every row of the journal on `db`'s main schema as applied (after a snapshot written
// by another program, e.g. `gavel apply`); nothing if there is no journal.
Status MarkJournalApplied(sqlite3* db);

class EventJournal {
 public:
  // Uses `db` (not owned); creates the table if missing; counts the rows already there.
  static Result<std::unique_ptr<EventJournal>> Attach(sqlite3* db);

  // Appends one batch, inside the caller's transaction.
  Status Append(rules::TimeMs at, std::string_view program, std::int64_t decisions, std::int64_t events,
                std::string_view body);
  // Ends the journal (after a snapshot, in its transaction): every row so far is garbage.
  Status Clear();
  // Deletes up to `limit` garbage rows, oldest first (inside the caller's transaction).
  Status Collect(int limit);

  // Rows and events written since the last Clear (as far as this object knows: after a
  // rollback, call Recount()).
  std::int64_t rows() const { return rows_; }
  std::int64_t events() const { return events_; }
  std::int64_t garbage() const { return garbage_; }
  Status Recount();

 private:
  explicit EventJournal(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  sqlite::StmtPtr insert_, collect_;
  std::int64_t start_ = 0;     // the first live seq
  std::int64_t next_seq_ = 1;  // the seq of the next row
  std::int64_t rows_ = 0;
  std::int64_t events_ = 0;
  std::int64_t garbage_ = 0;
};

}  // namespace gavel::daemon
