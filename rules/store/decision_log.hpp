// The decision log: an append-only, hash-chained table of Decisions in SQLite.
//
// Every Decision the engine makes (firings, skips with their reason, alert transitions,
// journey steps, per-run summaries) becomes one row of the table `decisions`. Each row stores
// the hash of the row before it, so editing, deleting or reordering rows is detectable by
// Verify() (and by the 20-line Python script in docs/decision-log.md, which is the format's
// reference):
//
//   body = canonical JSON of ToJson(d, /*with_chain=*/false)      (CanonicalBody below)
//   hash = lowercase hex SHA-256 of  prev_hash + "\n" + body        (ChainHash below)
//   prev_hash of the first record = 64 '0' characters               (kGenesisHash)
//
// Connections and transactions — the contract with the state store:
//   * The log works over a connection it is GIVEN (Attach). The state store owns the database
//     file and the connection, so entity, score, journey and alert state and the log live in
//     one database and can change in ONE transaction. Open(path) is a convenience for tools
//     and tests that want a log alone: it opens its own connection (WAL, synchronous=NORMAL,
//     busy_timeout 5 s) and closes it when the log is destroyed.
//   * Log first, act second: the engine opens a transaction (the store runs BEGIN IMMEDIATE,
//     or calls Begin() here), calls AppendInTransaction() for the decision, applies the state
//     changes the decision implies on the same connection, and commits. The decision becomes
//     durable exactly when the caller's COMMIT succeeds, together with its state changes; if
//     the caller rolls back, neither exists. The log never commits or rolls back a transaction
//     it did not open.
//   * Before each append the log checks that the newest stored record is the one it chains
//     to (one indexed read of the last row's id and hash, ~0.4 us), so after a caller's
//     rollback — ROLLBACK, or ROLLBACK TO a savepoint — it re-reads the head and continues: no
//     call is needed after a rollback. A log from Open() owns its connection and watches every
//     statement run on it (its sqlite3_trace_v2 callback: do not replace it); it skips that read
//     while nothing but its own INSERTs ran since its last append, which is what happens
//     within a batch. Use BEGIN IMMEDIATE for transactions that append (a deferred transaction
//     can fail with SQLITE_BUSY when it starts writing).
//   * Append() (the DecisionSink interface) appends inside the open transaction if there is
//     one, and otherwise in a transaction of its own (BEGIN IMMEDIATE ... COMMIT: durable
//     when it returns true, within synchronous=NORMAL's guarantee; ~40,000 records per
//     CPU-second). For throughput, batch: Begin(), Append() many, Commit() (~300,000 records
//     per CPU-second; see docs/decision-log.md, "Performance").
//   * Indexes (schema version 2): no per-row secondary index. Every 4,096 records the
//     appender writes one index block (the block's id range, min/max times, and per field a
//     few rows listing the block's records by hash bucket of their value) in the transaction
//     of the append that fills it, so the index commits and rolls back with the records.
//     The index rows are keyed block first, so a block's rows are appended together. Query
//     reads the blocks and scans the records after the last block (fewer than 4,096 when the
//     log is written through this class). See docs/decision-log.md, "Indexes".
//     A version-1 database is upgraded in place when attached (its four per-row indexes are
//     dropped and the blocks built from the records, inside the attach's savepoint).
//   * Ids are assigned by the log: 1, 2, 3, ... in append order (the head's id + 1; if a
//     second writer takes that id first, the append chains to its record instead). On success
//     Append fills d.id, d.prev_hash and d.hash; if the transaction is then rolled back, those
//     values name a record that does not exist. Strings that are not valid UTF-8 are repaired first
//     (each bad sequence becomes U+FFFD, in d too) so that the stored text, the hashed text
//     and the Decision agree.
//   * The table is append-only: triggers refuse UPDATE and DELETE on `decisions`. (Anyone
//     with write access to the file can drop them; the hash chain is what detects that.)
//   * Destroy the log before closing a connection you gave it (it holds prepared statements).
//
// Errors are Status results carrying SQLite's message; nothing throws across this API.
// Thread-safety: none. Use a DecisionLog (and its connection) from one thread at a time. (A
// log from Open() that writes also starts a checkpoint thread with a connection of its own;
// that thread never touches the log, its connection or its records, only copies committed
// WAL pages into the database file.)
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/base/status.hpp"
#include "rules/decision.hpp"
#include "rules/store/sqlite_util.hpp"

namespace gavel::rules {

// prev_hash of the first record.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The canonical body of a decision: byte for byte ToJson(d, false).dump() (compact, keys in
// ToJson's order, UTF-8 unescaped) for a decision whose strings are valid UTF-8 — which
// Append guarantees before it hashes. Invalid UTF-8 is rendered as U+FFFD here rather than
// throwing. Exposed for tests and `explain`.
std::string CanonicalBody(const Decision& d);
// Sha256Hex(prev_hash + "\n" + body), computed without the concatenation and with the CPU's
// SHA instructions when it has them.
std::string ChainHash(std::string_view prev_hash, std::string_view body);

// The newest record of a chain: its id and hash ({0, kGenesisHash} for an empty log).
// Recording the head outside the database (a ticket, a monitoring system) and passing it to
// Verify later also detects records deleted from the end of the log.
struct ChainHead {
  std::int64_t id = 0;
  std::string hash = std::string(kGenesisHash);
};

enum class TimeField { kProcessing, kEvent };

// Filters for Query and ExportJsonl. Unset fields do not filter. Results come in id order
// (oldest first), at most `limit` of them, starting after `after_id`: to page, pass the last
// id of a page as the next page's after_id.
struct DecisionQuery {
  std::optional<std::string> kind;
  std::optional<std::string> rule;
  std::optional<std::string> entity_type;
  std::optional<std::string> entity_id;
  std::optional<std::string> outcome;
  std::optional<std::string> reason;
  std::optional<TimeMs> from;  // inclusive
  std::optional<TimeMs> to;    // exclusive
  TimeField time_field = TimeField::kProcessing;
  std::int64_t after_id = 0;
  std::int64_t limit = 1000;  // <= 0: no limit
};

// The outcome of Verify: ok, or the first broken link.
struct VerifyReport {
  enum class Problem {
    kNone,
    kGap,        // ids jump (records deleted): expected/stored are the ids
    kLink,       // the record's prev_hash is not the previous record's hash (a record was
                 // deleted, reordered or its prev_hash edited): expected/stored are hashes
    kBody,       // the record's content does not hash to its stored hash (a field was
                 // edited): expected is the recomputed hash, stored the stored one
    kTimeIndex,  // event_ms/processing_ms disagree with the hashed time text: expected/stored
                 // are the times
    kAnchor,     // the anchor given to Verify is missing or differs (records deleted from
                 // the end, or the log rewritten): expected/stored are hashes or ids
  };
  Problem problem = Problem::kNone;
  bool ok() const { return problem == Problem::kNone; }
  std::int64_t count = 0;  // records verified before the problem (all of them when ok)
  ChainHead head;          // the last record verified
  std::int64_t id = 0;     // the record at which the chain breaks
  std::string expected;
  std::string stored;
  std::string message;  // one line for people, e.g. "record 42: body altered (...)"
};
const char* ProblemName(VerifyReport::Problem p);  // "ok", "gap", "link", "body", ...

class DecisionLog final : public DecisionSink {
 public:
  static constexpr int kSchemaVersion = 2;

  // Uses `db` (not owned; it must outlive the log). Creates the tables and triggers
  // if missing (inside a savepoint, so this also works inside a caller's transaction) and
  // reads the chain head. Fails on a schema version newer than kSchemaVersion; upgrades
  // version 1 (about a second per million records, once).
  static Result<std::unique_ptr<DecisionLog>> Attach(sqlite3* db);
  // Opens or creates the database file at `path` with its own connection (WAL,
  // synchronous=NORMAL, busy_timeout 5000 ms, 64 MiB page cache, 32 KiB pages for a new
  // file, reads through a 1 GiB memory map, checkpoints mostly on a thread of their own,
  // started by the first large commit, with the WAL started over near 4,096 pages; its WAL
  // hook replaces wal_autocheckpoint), then Attach()es, and watches the connection's
  // statements (see "Before each append" above). Attach leaves the connection's settings and
  // hooks as its owner made them.
  static Result<std::unique_ptr<DecisionLog>> Open(const std::string& path);

  ~DecisionLog() override;
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;

  // DecisionSink: AppendInTransaction if a transaction is open on the connection, else
  // appends in a transaction of its own. On false, last_error() says why.
  bool Append(Decision& d) override;
  // Appends inside the transaction open on the connection; InvalidArgument if none is.
  // Durable when the transaction commits.
  Status AppendInTransaction(Decision& d);

  // Batching when the log's caller does not manage transactions itself: BEGIN IMMEDIATE,
  // COMMIT, ROLLBACK on the connection. Begin fails if a transaction is already open.
  Status Begin();
  Status Commit();
  Status Rollback();
  bool InTransaction() const;

  Result<Decision> Get(std::int64_t id) const;  // NotFound if there is no such record
  Result<std::vector<Decision>> Query(const DecisionQuery& q) const;
  // The newest stored record (reads the database).
  Result<ChainHead> Head() const;

  // Walks the whole chain from id 1 and returns the first problem, or ok with the count.
  // With `anchor`, also checks that the record anchor.id still exists with anchor.hash.
  Result<VerifyReport> Verify(const std::optional<ChainHead>& anchor = std::nullopt) const;

  // Writes the matching records (all of them without a query) as JSON Lines, one
  // ToJson(d, true).dump() per line, built from the stored text so that each line can be
  // re-hashed. Returns the number of lines written.
  Result<std::int64_t> ExportJsonl(std::ostream& out) const;
  Result<std::int64_t> ExportJsonl(std::ostream& out, const DecisionQuery& q) const;

  const Status& last_error() const { return last_error_; }
  sqlite3* db() const { return db_; }

 private:
  struct TimeCache {
    bool valid = false;
    TimeMs t = 0;
    std::string text;
  };
  // A record not yet in the batched index (decision_log.cpp, "The batched index").
  struct PendingEntry {
    std::int64_t id = 0;
    TimeMs processing_ms = 0, event_ms = 0;
    std::uint64_t keys[6] = {};  // IndexHash of kind, rule, entity_type, entity_id, outcome, reason
  };
  class RowSink;

  explicit DecisionLog(sqlite3* db);
  Status Init();
  // Re-reads the chain head and the records after the last index block from the database.
  Status ReloadHead();
  Status ReloadPending(std::int64_t limit);
  Status ReadPending(std::int64_t after, std::int64_t limit);
  Result<std::int64_t> IndexedUpTo() const;
  // Writes the pending records into index blocks (after checking that they are still what
  // the database holds).
  Status FlushIndex();
  Status WriteBlocks();
  Status AppendImpl(Decision& d);
  Status AppendAlone(Decision& d);
  const std::string& FormatCached(TimeMs t, TimeCache& cache);
  Status Scan(const DecisionQuery& q, RowSink& sink) const;
  static int OnStatement(unsigned type, void* self, void* stmt, void* sql);
  class Checkpointer;
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int frames);
  Result<sqlite3_stmt*> Cached(const std::string& sql) const;

  sqlite::DbPtr owned_;  // set by Open; declared first so it is destroyed last
  std::unique_ptr<Checkpointer> checkpointer_;  // Open only, started by the first big commit
  bool wal_hook_ = false;                       // OnWalCommit is the connection's WAL hook (Open)
  bool no_checkpointer_ = false;                // the checkpoint thread could not be started
  sqlite3* db_;
  sqlite::StmtPtr insert_, head_, get_, begin_, commit_, upto_, hash_of_, pending_rows_,
      block_insert_, index_insert_;
  ChainHead head_cache_;
  // Statement watching on a connection the log owns (Open): see AppendImpl.
  bool watching_ = false;               // OnStatement is the connection's trace callback
  bool head_known_ = false;             // the last append succeeded and the trace saw its INSERT
  bool insert_seen_ = false;            // set by OnStatement when the INSERT runs
  std::uint64_t other_statements_ = 0;  // statements run on the connection, but the INSERT
  std::uint64_t statements_at_append_ = 0;  // other_statements_ after the last append
  // The records after the last index block: ids (indexed_upto_, head_cache_.id], in order.
  std::int64_t indexed_upto_ = 0;
  std::vector<PendingEntry> pending_;
  TimeCache event_time_cache_, processing_time_cache_;
  std::string buf_;  // prev_hash + "\n" + canonical body, reused between appends (kept at
                     // its capacity: the rendered length is tracked by the renderer)
  std::string blob_buf_;
  mutable std::map<std::string, sqlite::StmtPtr, std::less<>> query_cache_;
  Status last_error_;
};

// Counts evaluations that did not fire during one run (one tick, one replay) so that the
// engine can log one `summary` decision instead of one record per evaluation (unless the
// operator opts in to logging every evaluation). Deterministic: counts are kept sorted.
class EvaluationSummary {
 public:
  // One evaluation of `rule` that did not fire, for `reason` (a skip reason from
  // decision.hpp, or "condition_false" when the rule's condition simply did not hold).
  void Count(std::string_view rule, std::string_view reason, std::int64_t n = 1);
  bool empty() const { return total_ == 0; }
  std::int64_t total() const { return total_; }
  void Clear();
  // kind "summary", outcome "summary", rule "", the given times and trigger, and evidence
  //   {"not_fired": <total>, "rules": {"<rule>": {"<reason>": <count>, ...}, ...}}
  Decision ToDecision(TimeMs event_time, TimeMs processing_time, std::string trigger) const;

 private:
  std::map<std::string, std::map<std::string, std::int64_t, std::less<>>, std::less<>> counts_;
  std::int64_t total_ = 0;
};

}  // namespace gavel::rules
