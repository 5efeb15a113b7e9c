// Rule unit tests: the `.test` file format of `gavel test` (docs/testing.md), its parser and
// its runner.
//
// A test file names the rule files it tests and holds test cases. Each case gives a start
// time, warehouse rows (compact tables or promtool-style series), an event timeline, and
// expectations: the decisions of some units in a time range (exactly, or at least these),
// alert states, journey positions, scores and entity fields at given times.
//
//   ParseTestText   text -> TestFile (syntax only; every mistake with file:line, never throws)
//   CompileTestRules  the rule files a TestFile names -> Program, or rendered diagnostics
//   RunCase         one case: binds it to the program (tables, columns, events, unit names;
//                   mistakes are Problems), builds a temporary SQLite warehouse in the shape
//                   SqliteWarehouse reads, runs a fresh Engine on a SimulatedClock exactly as
//                   `gavel replay` does, and compares; a failure carries an expected-vs-actual
//                   diff (lines prefixed "- " and "+ ").
//
// Everything here owns its data; nothing is shared between calls. One thread per call.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dsl/program.hpp"
#include "rules/clock.hpp"
#include "rules/decision.hpp"

namespace gavel::ruletest {

using rules::TimeMs;

// A mistake in a test file (or in binding it to the rules): "file:line: error: message".
struct Problem {
  std::string file;
  int line = 0;
  std::string message;
  std::string Render() const;
};

// A time as written: absolute ("2026-11-01T09:00Z") or relative to the case's start
// ("+2h", "-28d", "start"). `width` is the precision written (a day for "2026-11-01", a
// minute for "...T09:00Z", a second otherwise): a decision time matches [at, at + width).
struct TimeExpr {
  bool relative = false;
  bool any = false;  // "*": any time (decision lines only)
  TimeMs value = 0;  // absolute ms, or the offset from the start
  TimeMs width = rules::kSecond;
  std::string written;
  TimeMs Resolve(TimeMs start) const { return relative ? start + value : value; }
};

// An expected value. Numbers compare to the precision written ("43.43" matches 43.4294),
// texts exactly or as a glob when they contain `*` or `?`; `null`, `true`, `false`;
// `*` matches anything that is present.
struct Matcher {
  enum class Kind { kAny, kNumber, kText, kBool, kNull } kind = Kind::kAny;
  double number = 0;
  double tolerance = 0;
  bool boolean = false;
  std::string text;
  std::string written;
  bool Matches(const nlohmann::ordered_json& actual) const;
};

// `key=value`: an evidence key, a field of an action, an entity field or score. Dotted keys
// reach into objects (`confidence.bound`) and arrays (`members.0.budget`); a key that is
// itself dotted in the evidence (`score.lead_score`) is found first.
struct FieldCheck {
  std::string key;
  Matcher value;
};

struct ActionCheck {
  std::string action;              // glob on the action's name (pause, email, notify_slack...)
  std::vector<FieldCheck> fields;  // the positional value becomes a field check too
  std::string written;
};

// One expected decision: TIME UNIT ENTITY OUTCOME [(REASON)] [key=value...], then optional
// `-> ACTION ...` lines.
struct DecisionCheck {
  int line = 0;
  TimeExpr time;
  std::string unit;                   // glob on Decision::rule
  bool no_entity = false;             // "-"
  std::string entity_type;            // glob, "" = any type
  std::string entity_id;              // glob
  std::string outcome;                // glob
  std::optional<std::string> reason;  // glob
  std::vector<FieldCheck> evidence;
  bool check_actions = false;  // any `->` given: exactly these actions, in order
  std::vector<ActionCheck> actions;
  std::string written;
};

enum class ExpectKind { kExactly, kIncluding, kAlert, kJourney, kScore, kEntity };

struct Expectation {
  ExpectKind kind = ExpectKind::kExactly;
  int line = 0;
  std::string written;
  // Decision lists (kExactly, kIncluding).
  std::vector<std::string> units;  // globs; "*" = every unit
  std::optional<TimeExpr> from, to;
  std::vector<DecisionCheck> decisions;
  // Point-in-time checks (kAlert, kJourney, kScore, kEntity).
  std::optional<TimeExpr> at;  // unset: the end of the run
  std::string name;            // alert, journey or score name
  std::string entity_type;     // "" = the unit's entity (or the only entity type)
  std::string entity_id;
  std::string state;                             // alert: inactive|pending|firing; journey: status
  std::string after_step;                        // journey: the last step sent
  std::optional<std::vector<std::string>> sent;  // journey: every step sent, in order
  Matcher value;                                 // score
  std::vector<FieldCheck> fields;                // entity
};

// Rows for one declared table: a markdown-style table, constant columns from the header line.
struct TableBlock {
  int line = 0;
  std::string table;
  std::vector<std::pair<std::string, std::optional<std::string>>> constants;
  std::vector<std::string> columns;
  int header_line = 0;
  struct Row {
    int line = 0;
    std::vector<std::optional<std::string>> cells;  // nullopt: NULL (an empty cell)
  };
  std::vector<Row> rows;
};

// One series line: FACT{KEY="...", DIM=...} VALUES (already expanded; nullopt = no value).
struct SeriesLine {
  int line = 0;
  std::string fact;
  std::vector<std::pair<std::string, std::optional<std::string>>> labels;
  std::vector<std::optional<double>> values;
};

struct SeriesBlock {
  int line = 0;
  std::string table;
  TimeExpr from;
  std::vector<SeriesLine> lines;
};

struct EventLine {
  int line = 0;
  TimeExpr time;
  std::string type;
  std::vector<std::pair<std::string, std::string>> fields;  // raw text values
  std::vector<bool> quoted;                                 // per field: written in quotes
};

struct TestCase {
  std::string name;
  int line = 0;
  std::optional<TimeExpr> start;
  std::optional<TimeExpr> run_until;
  bool all_evaluations = false;
  bool schedules = true;
  std::vector<TableBlock> tables;
  std::vector<SeriesBlock> series;
  std::vector<EventLine> events;
  std::vector<Expectation> expectations;
};

struct TestFile {
  std::string path;
  std::vector<std::string> rules;  // rule files or directories, resolved against the file
  int rules_line = 0;
  TestCase defaults;  // file-level start, options, tables and series
  std::vector<TestCase> cases;
};

// Parses a test file's text. Returns false (with every problem found) on syntax errors.
bool ParseTestText(const std::string& path, const std::string& text, TestFile& out, std::vector<Problem>& problems);
// Reads and parses a file.
bool LoadTestFile(const std::string& path, TestFile& out, std::vector<Problem>& problems);

// Expands series values: "100 100 250x3 _ 1+1x3" -> 100 100 250 250 250 (none) 1 2 3.
// `NxK` is K copies of N, `A+BxK` K values from A in steps of B (also `A-BxK`), `_` no value
// (`_xK`), and a separate `xK` repeats the value before it to K copies.
bool ExpandSeries(const std::string& text, std::vector<std::optional<double>>& out, std::string& error);

// Parses "2026-11-01", "2026-11-01T09:00Z", "2026-11-01T09:00:00Z", "+2h", "-28d", "start".
bool ParseTimeExpr(const std::string& text, TimeExpr& out);

// Compiles the rule files of a test file. On errors, `diagnostics` holds them rendered.
std::shared_ptr<const dsl::Program> CompileTestRules(const TestFile& file, std::string& diagnostics);

struct Failure {
  int line = 0;                   // the expectation's line
  std::string title;              // the expectation as written
  std::vector<std::string> diff;  // "- expected", "+ actual", "  context", "    note"
};

struct CaseResult {
  std::string name;
  int line = 0;
  std::vector<Problem> errors;             // the case could not run as written (exit 2)
  std::vector<Failure> failures;           // it ran; these expectations did not hold (exit 1)
  std::vector<rules::Decision> decisions;  // every decision made, summaries excluded
  int checks = 0;                          // expectations evaluated
  bool passed() const { return errors.empty() && failures.empty(); }
};

// Runs one case against a compiled program.
CaseResult RunCase(const TestFile& file, const TestCase& test, std::shared_ptr<const dsl::Program> program);

// "FAIL file:line: name" with each failure's expectation and diff; "" when it passed.
std::string RenderFailures(const TestFile& file, const CaseResult& result);

// A decision in the syntax of a decision line (what `+` lines of a diff show).
std::string RenderDecision(const rules::Decision& d);

}  // namespace gavel::ruletest
