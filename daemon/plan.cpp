// Plans and their application. See plan.hpp and docs/review.md, "Plan and apply".
#include "daemon/plan.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "actions/controls.hpp"
#include "daemon/event_journal.hpp"
#include "dsl/base/sha256.hpp"
#include "rules/engine.hpp"
#include "rules/state.hpp"
#include "rules/store/rule_sources.hpp"
#include "rules/store/sqlite_util.hpp"
#include "rules/store/sqlite_warehouse.hpp"
#include "rules/store/state_store.hpp"

namespace gavel::plan {

namespace {

constexpr TimeMs kDayMs = 24LL * 3600 * 1000;

TimeMs DayStart(TimeMs t) { return t - ((t % kDayMs) + kDayMs) % kDayMs; }

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ------------------------------------------------------------------ the warehouse, recorded

// Forwards to the real warehouse and fingerprints what it returns, per table: every query
// (its SQL and bounds) and its rows, chained into one SHA-256 per table in call order. The
// engine's calls are deterministic, so the same data gives the same fingerprints.
class RecordingWarehouse final : public rules::Warehouse {
 public:
  RecordingWarehouse(rules::Warehouse& inner, const dsl::Program& p) : inner_(inner) {
    for (const auto& r : p.rules) {
      for (const auto& q : r.queries) table_of_[q.sql] = q.table;
    }
    for (const auto& a : p.alerts) {
      for (const auto& q : a.queries) table_of_[q.sql] = q.table;
      if (!a.scope) continue;
      for (const auto& an : a.anomalies) table_of_[an.history_sql] = a.scope->table;
    }
  }

  Result<std::vector<rules::WindowRow>> RunWindow(const dsl::WindowQuery& q,
                                                  const std::string& from,
                                                  const std::string& to) override {
    auto rows = inner_.RunWindow(q, from, to);
    std::string text = "window\n" + q.sql + "\n" + from + "\n" + to + "\n";
    TableRead& t = tables_[q.table];
    ++t.queries;
    if (!rows.ok()) {
      text += "error " + rows.status().message();
    } else {
      t.rows += static_cast<std::int64_t>(rows.value().size());
      for (const auto& r : rows.value()) {
        text += r.key;
        for (const auto& a : r.aggregates) text += "\x1f" + (a ? Num(*a) : std::string("null"));
        text += "\x1f" + r.first_time + "\x1f" + r.last_time + "\x1f" + std::to_string(r.row_count);
        for (const auto& d : r.dims) {
          text += "\x1f" + std::to_string(static_cast<int>(d.kind)) + ":" +
                  (d.kind == rules::Value::Kind::kText ? d.text : Num(d.num));
        }
        text += "\n";
      }
    }
    Chain(t, text);
    return rows;
  }

  Result<std::vector<rules::HistoryRow>> RunHistory(const std::string& sql, const std::string& from,
                                                    const std::string& to) override {
    auto rows = inner_.RunHistory(sql, from, to);
    auto it = table_of_.find(sql);
    TableRead& t = tables_[it == table_of_.end() ? std::string("?") : it->second];
    ++t.queries;
    std::string text = "history\n" + sql + "\n" + from + "\n" + to + "\n";
    if (!rows.ok()) {
      text += "error " + rows.status().message();
    } else {
      t.rows += static_cast<std::int64_t>(rows.value().size());
      for (const auto& r : rows.value()) {
        text += r.key + "\x1f" + r.time + "\x1f" + Num(r.value) + "\x1f" + Num(r.per) + "\n";
      }
    }
    Chain(t, text);
    return rows;
  }

  Result<std::string> NewestTime(const dsl::TableInfo& table) override {
    auto newest = inner_.NewestTime(table);
    TableRead& t = tables_[table.name];
    if (newest.ok()) t.newest = newest.value();
    Chain(t, "newest\n" + (newest.ok() ? newest.value() : "error " + newest.status().message()));
    return newest;
  }

  std::map<std::string, TableRead>& tables() { return tables_; }

 private:
  static void Chain(TableRead& t, const std::string& text) {
    t.sha256 = Sha256Hex(t.sha256 + "\n" + text);
  }

  rules::Warehouse& inner_;
  std::map<std::string, std::string> table_of_;  // SQL -> declared table
  std::map<std::string, TableRead> tables_;
};

// ------------------------------------------------------------------ the state, read

bool HasTable(sqlite3* db, const std::string& schema, const char* table) {
  auto st = sqlite::Prepare(
      db, "SELECT 1 FROM " + schema + ".sqlite_master WHERE type = 'table' AND name = ?",
      "plan: schema");
  if (!st.ok()) return false;
  sqlite3_bind_text(st.value().get(), 1, table, -1, SQLITE_TRANSIENT);
  return sqlite3_step(st.value().get()) == SQLITE_ROW;
}

Result<rules::ChainHead> ReadHead(sqlite3* db, const std::string& schema) {
  rules::ChainHead head;
  if (!HasTable(db, schema, "decisions")) return head;
  auto st = sqlite::Prepare(
      db, "SELECT id, hash FROM " + schema + ".decisions ORDER BY id DESC LIMIT 1", "plan: head");
  if (!st.ok()) return st.status();
  int rc = sqlite3_step(st.value().get());
  if (rc == SQLITE_ROW) {
    head.id = sqlite3_column_int64(st.value().get(), 0);
    head.hash = std::string(sqlite::ColumnText(st.value().get(), 1));
  } else if (rc != SQLITE_DONE) {
    return sqlite::Error(db, rc, "plan: head");
  }
  return head;
}

// The engine state rows of `schema`.engine_state, fingerprinted as they are read. A missing
// table is an empty state.
class HashingStateSource final : public rules::StateSource {
 public:
  HashingStateSource(sqlite3* db, std::string schema) : db_(db), schema_(std::move(schema)) {}
  Status ForEach(const Visitor& visit) const override {
    rows_ = 0;
    sha_ = Sha256Hex("");
    if (!HasTable(db_, schema_, "engine_state")) return Status::Ok();
    auto st = sqlite::Prepare(
        db_,
        "SELECT kind, name, key, value FROM " + schema_ + ".engine_state ORDER BY kind, name, key",
        "plan: read state");
    if (!st.ok()) return st.status();
    sqlite3_stmt* s = st.value().get();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::string kind(sqlite::ColumnText(s, 0)), name(sqlite::ColumnText(s, 1)),
          key(sqlite::ColumnText(s, 2));
      std::string_view text = sqlite::ColumnText(s, 3);
      sha_ =
          Sha256Hex(sha_ + "\n" + kind + "\x1f" + name + "\x1f" + key + "\x1f" + std::string(text));
      ++rows_;
      nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
      if (value.is_discarded())
        return Status::Internal("state row " + kind + "/" + name + "/" + key + " is not JSON");
      Status v = visit(kind, name, key, value);
      if (!v.ok()) return v;
    }
    return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "plan: read state");
  }
  std::int64_t rows() const { return rows_; }
  const std::string& sha256() const { return sha_; }

 private:
  sqlite3* db_;
  std::string schema_;
  mutable std::int64_t rows_ = 0;
  mutable std::string sha_;
};

Json ControlsJson(const actions::Controls& c, TimeMs at) {
  Json j;
  const actions::KillSwitch& k = c.kill_switch();
  j["kill_switch"] = {
      {"on", k.on}, {"who", k.who}, {"reason", k.reason}, {"since", rules::FormatTime(k.since)}};
  Json flags = Json::object();
  for (const auto& [name, on] : c.flags()) flags[name] = on;
  j["flags"] = flags;
  Json pins = Json::array();
  for (const auto& p : c.Pins(at)) {
    pins.push_back({{"target", p.target},
                    {"until", rules::FormatTime(p.until)},
                    {"who", p.who},
                    {"reason", p.reason},
                    {"since", rules::FormatTime(p.since)}});
  }
  j["pins"] = pins;
  return j;
}

// ------------------------------------------------------------------ one evaluation

// The engine run and the gates, on a connection where the state database is reachable
// under `schema` ("main" for apply's own connection, "src" for plan's read-only copy).
struct Evaluation {
  rules::SimulatedClock clock;
  rules::VectorSink sink;
  std::unique_ptr<RecordingWarehouse> warehouse;
  std::unique_ptr<rules::Engine> engine;
  Plan plan;
};

Status Evaluate(const PlanInputs& in, sqlite3* db, const std::string& schema,
                rules::Warehouse& warehouse, actions::Controls& controls, actions::Outbox& outbox,
                TimeMs gate_now, Evaluation& ev) {
  const dsl::Program& p = *in.program;
  Provenance& pv = ev.plan.provenance;
  pv.rules_dir = in.rules_dir;
  pv.state_path = in.state_path;
  pv.warehouse_path = in.warehouse_path;
  pv.at = in.at;
  pv.program_version = p.version;
  pv.max_changes_per_entity_per_day = in.gates.max_changes_per_entity_per_day;
  pv.escalation_channel = in.gates.escalation_channel;
  for (const auto& r : p.rules) {
    pv.units["rule:" + r.name] = r.version;
    if (r.trigger != dsl::TriggerKind::kSchedule) ev.plan.not_planned.push_back("rule:" + r.name);
  }
  for (const auto& a : p.alerts) pv.units["alert:" + a.name] = a.version;
  for (const auto& j : p.journeys) {
    pv.units["journey:" + j.name] = j.version;
    ev.plan.not_planned.push_back("journey:" + j.name);
  }
  for (const auto& s : p.scores) {
    pv.units["score:" + s.name] = s.version;
    ev.plan.not_planned.push_back("score:" + s.name);
  }
  auto head = ReadHead(db, schema);
  if (!head.ok()) return head.status();
  pv.head = head.value();
  pv.controls = ControlsJson(controls, in.at);
  pv.controls_sha256 = Sha256Hex(Dump(pv.controls));

  // The engine, restored from the state as it is.
  ev.clock.Set(in.at);
  ev.warehouse = std::make_unique<RecordingWarehouse>(warehouse, p);
  rules::EngineOptions options;
  options.run_schedules = false;  // RunSchedulesNow runs them, once, without moving schedules
  options.track_state = true;     // apply checkpoints what the run changed
  ev.engine = std::make_unique<rules::Engine>(
      in.program, rules::EngineDeps{&ev.clock, &ev.sink, ev.warehouse.get()}, options);
  HashingStateSource source(db, schema);
  Status s = ev.engine->Restore(source);
  if (!s.ok()) return s;
  pv.state_rows = source.rows();
  pv.state_sha256 = source.sha256();
  // Ingest batches a daemon journaled since its last snapshot are part of the state
  // (daemon/event_journal.hpp): applied here too; their decisions are in the log already.
  auto journal = daemon::ReplayJournal(db, schema, p, *ev.engine);
  if (!journal.ok()) return journal.status();
  ev.sink.decisions.clear();
  if (journal.value().rows > 0) pv.state_sha256 = Sha256Hex(pv.state_sha256 + "\njournal " + journal.value().sha256);
  if (in.at < ev.engine->now()) {
    return Status::InvalidArgument("the plan's time " + rules::FormatTime(in.at) +
                                   " is before the state's time " +
                                   rules::FormatTime(ev.engine->now()) + ": plan at a later time");
  }
  // The newest row of every table a scheduled unit reads, whether or not it declares a
  // freshness limit (the engine asks only for those that do).
  std::set<std::string> read;
  for (const auto& r : p.rules) {
    if (r.trigger == dsl::TriggerKind::kSchedule && r.scope) read.insert(r.scope->table);
  }
  for (const auto& a : p.alerts) {
    if (a.scope) read.insert(a.scope->table);
  }
  for (const auto& name : read) {
    if (const dsl::TableInfo* t = p.FindTable(name)) ev.warehouse->NewestTime(*t);
  }
  s = ev.engine->RunSchedulesNow(in.at);
  if (!s.ok()) return s;
  pv.tables = ev.warehouse->tables();

  // The gates, as the daemon's would judge each decision.
  actions::GateKeeper gates(in.program, controls, outbox, in.gates);
  for (auto& d : ev.sink.decisions) {
    ev.plan.queued.push_back(gates.Review(d, gate_now));
    if (in.gates.max_changes_per_entity_per_day <= 0) continue;
    for (const auto& a : d.actions) {
      std::string target = actions::TargetOf(a);
      if (target.empty() || pv.effects_today.count(target)) continue;
      auto n = outbox.CountEffects(target, DayStart(gate_now));
      if (!n.ok()) return n.status();
      pv.effects_today[target] = n.value();
    }
  }
  ev.plan.decisions = ev.sink.decisions;
  return Status::Ok();
}

// "file:" URI for a path, percent-encoding what a URI would misread.
std::string FileUri(const std::string& path) {
  std::string uri = "file:";
  for (unsigned char c : std::filesystem::absolute(path).string()) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      uri += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      uri += buf;
    }
  }
  return uri + "?mode=ro";
}

Result<std::unique_ptr<rules::SqliteWarehouse>> OpenWarehouse(const std::string& path) {
  if (!std::filesystem::exists(path)) return Status::IoError("no warehouse at " + path);
  return rules::SqliteWarehouse::Open(path);
}

// ------------------------------------------------------------------ rendering helpers

std::string Fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string Scalar(const Json& v) {
  if (v.is_null()) return "n/a";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return buf;
  }
  return Dump(v);
}

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The entity an action is about: its target, else the decision's entity.
std::string EntityOf(const rules::Decision& d, const Json& a) {
  std::string t = Str(a, "target");
  if (t.empty()) t = Str(a, "to");
  if (!t.empty()) return t;
  if (d.entity_type.empty() && d.entity_id.empty()) return "";
  return d.entity_type + ":" + d.entity_id;
}

// A status the evidence knows for the entity (a `status` dim), if any.
std::string KnownStatus(const rules::Decision& d) {
  for (const char* k : {"status", "adset.status", "campaign.status", "channel.status"}) {
    std::string s = Str(d.evidence, k);
    if (!s.empty()) return s;
  }
  for (auto it = d.evidence.begin(); it != d.evidence.end(); ++it) {
    const std::string& key = it.key();
    if (key.size() > 7 && key.compare(key.size() - 7, 7, ".status") == 0 && it->is_string())
      return it->get<std::string>();
  }
  return "";
}

// The budget a decision read about its own entity (a `budget` dim), if any.
std::optional<double> KnownBudget(const rules::Decision& d) {
  for (auto it = d.evidence.begin(); it != d.evidence.end(); ++it) {
    const std::string& key = it.key();
    if ((key == "budget" || (key.size() > 7 && key.compare(key.size() - 7, 7, ".budget") == 0)) &&
        it->is_number()) {
      return it->get<double>();
    }
  }
  return std::nullopt;
}

// Before and after of one action, in words and in JSON.
struct Change {
  Json before = nullptr, after = nullptr;
  std::string currency;
  std::string text;
};

Change ChangeOf(const rules::Decision& d, const Json& a) {
  Change c;
  const std::string action = Str(a, "action");
  if (action == "pause" || action == "enable") {
    std::string status = KnownStatus(d);
    if (!status.empty()) c.before = status;
    c.after = action == "pause" ? "paused" : "active";
    c.text = (status.empty() ? std::string() : status + " ") + "→ " + c.after.get<std::string>();
  } else if (action == "set_budget") {
    c.currency = Str(a, "currency");
    if (a.contains("before") && a["before"].is_number())
      c.before = a["before"];
    else if (auto b = KnownBudget(d))
      c.before = *b;
    if (a.contains("budget")) c.after = a["budget"];
    auto money = [](const Json& v) {
      return v.is_number() ? Fixed2(v.get<double>()) : std::string("?");
    };
    c.text = (c.before.is_null() ? std::string() : money(c.before) + " ") + "→ " + money(c.after) +
             (c.currency.empty() ? "" : " " + c.currency);
  } else if (action == "notify_slack") {
    c.text = Str(a, "channel");
    if (a.contains("state")) c.text += " (" + Str(a, "state") + ")";
  } else if (action == "webhook") {
    c.text = "webhook " + Str(a, "name");
  } else if (action == "email" || action == "message") {
    c.text = "template " + Str(a, "template");
  } else if (action == "set") {
    c.text = Str(a, "field") + " = " + Scalar(a.value("value", Json()));
  }
  return c;
}

// The values a decision read, without the bulky parts, as "k v · k v".
std::string KeyEvidence(const Json& e) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : " · ") + s; };
  for (auto it = e.begin(); it != e.end(); ++it) {
    const std::string& k = it.key();
    if (k == "window" && it->is_object()) {
      add("window " + Str(*it, "from") + ".." + Str(*it, "to"));
    } else if (k == "confidence" && it->is_object()) {
      const Json& c = *it;
      std::string s = "confidence " + Scalar(Json(c.value("level", 0.0) * 100)) + "%: bound " +
                      Scalar(c.value("bound", Json())) + " vs threshold " +
                      Scalar(c.value("threshold", Json())) +
                      (c.value("pass", false) ? " (pass)" : " (not sure enough)");
      add(s);
    } else if (k == "members" && it->is_array()) {
      add(std::to_string(it->size()) + " members");
    } else if (it->is_array() && !it->empty() && it->size() <= 8 &&
               std::all_of(it->begin(), it->end(), [](const Json& x) {
                 return x.is_string() || (x.is_object() && x.contains("id"));
               })) {
      std::string ids;
      for (const auto& x : *it)
        ids += (ids.empty() ? "" : ", ") + (x.is_string() ? x.get<std::string>() : Scalar(x["id"]));
      add(k + " " + ids);
    } else if (it->is_object() || it->is_array()) {
      add(k + " " + std::to_string(it->size()) + " item" + (it->size() == 1 ? "" : "s"));
    } else {
      add(k + " " + Scalar(*it));
    }
  }
  return out;
}

// For a budget change of a reallocation: the member's own line of the evidence.
std::string MemberEvidence(const rules::Decision& d, const Json& a) {
  auto members = d.evidence.find("members");
  std::string target = Str(a, "target");
  if (members == d.evidence.end() || !members->is_array() || target.find(':') == std::string::npos)
    return "";
  const std::string key = target.substr(target.find(':') + 1);
  for (const auto& m : *members) {
    if (Str(m, "key") != key) continue;
    double best = 0;
    int rank = 1;
    const Json& metric = m.contains("metric") ? m["metric"] : Json();
    if (metric.is_number()) {
      best = metric.get<double>();
      for (const auto& o : *members)
        rank += o.contains("metric") && o["metric"].is_number() && o["metric"].get<double>() > best;
    }
    return "metric " +
           (metric.is_number() ? Scalar(metric) + " (rank " + std::to_string(rank) + " of " +
                                     std::to_string(members->size()) + ")"
                               : std::string("none (keeps its budget)")) +
           " · budget " + Scalar(m.value("budget", Json()));
  }
  return "";
}

std::string Pad(const std::string& s, std::size_t width) {
  // Width in characters (UTF-8 continuation bytes do not count).
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n >= width ? s + " " : s + std::string(width - n, ' ');
}

std::string GatesText(const Json& a) {
  std::string out;
  if (!a.contains("gates")) return out;
  for (const auto& g : a["gates"]) {
    out += (out.empty() ? "" : " · ") + Str(g, "gate") + " " + Str(g, "verdict");
    if (g.contains("detail")) out += " (" + Str(g, "detail") + ")";
  }
  return out;
}

// A decision's body for comparing a recomputed decision with a planned one: the gates'
// details (which name times such as an approval's expiry) are left out, their verdicts kept.
Json Comparable(Json body) {
  if (body.contains("actions") && body["actions"].is_array()) {
    for (auto& a : body["actions"]) {
      if (!a.contains("gates")) continue;
      Json verdicts = Json::array();
      for (const auto& g : a["gates"]) verdicts.push_back(Str(g, "gate") + ":" + Str(g, "verdict"));
      a["gates"] = verdicts;
    }
  }
  return body;
}

std::string Short(const std::string& hash) {
  return hash.size() > 12 ? hash.substr(0, 12) + "…" : hash;
}

}  // namespace

// ------------------------------------------------------------------ plan

Result<Plan> MakePlan(const PlanInputs& in) {
  if (!std::filesystem::exists(in.state_path)) {
    return Status::IoError("no state database at " + in.state_path +
                           " (the daemon's `state_db`, or a `gavel replay --log` file)");
  }
  auto wh = OpenWarehouse(in.warehouse_path);
  if (!wh.ok()) return wh.status();
  // A scratch database in memory, with the state database attached READ ONLY: the plan reads
  // it in one read transaction (one consistent snapshot) and never writes it. The controls
  // and today's outbox rows are copied into the scratch database, where Controls and Outbox
  // may create their tables; a state database without them has default controls and an
  // empty outbox.
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(":memory:", &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nullptr);
  sqlite::DbPtr mem(raw);
  if (rc != SQLITE_OK) return sqlite::Error(raw, rc, "plan: scratch database");
  sqlite3_busy_timeout(raw, 5000);
  {
    auto st = sqlite::Prepare(raw, "ATTACH DATABASE ? AS src", "plan: open the state database");
    if (!st.ok()) return st.status();
    std::string uri = FileUri(in.state_path);
    sqlite::BindCopy(st.value().get(), 1, uri);
    rc = sqlite3_step(st.value().get());
    if (rc != SQLITE_DONE)
      return sqlite::Error(raw, rc, "plan: open the state database " + in.state_path);
  }
  Status s = sqlite::Exec(raw, "BEGIN", "plan: begin");
  if (!s.ok()) return s;
  struct EndRead {
    sqlite3* db;
    ~EndRead() { sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr); }
  } end_read{raw};
  if (HasTable(raw, "src", "controls")) {
    s = sqlite::Exec(raw, "CREATE TABLE main.controls AS SELECT * FROM src.controls",
                     "plan: copy controls");
    if (!s.ok()) return s;
  }
  if (HasTable(raw, "src", "outbox")) {
    // Only today's rows matter to the gates (the per-entity daily change budget).
    std::string sql = "CREATE TABLE main.outbox AS SELECT * FROM src.outbox WHERE created_ms >= " +
                      std::to_string(DayStart(in.at));
    s = sqlite::Exec(raw, sql.c_str(), "plan: copy the outbox");
    if (!s.ok()) return s;
  }
  auto controls = actions::Controls::Attach(raw);
  if (!controls.ok()) return controls.status();
  auto outbox = actions::Outbox::Attach(raw);
  if (!outbox.ok()) return outbox.status();
  Evaluation ev;
  s = Evaluate(in, raw, "src", *wh.value(), *controls.value(), *outbox.value(), in.at, ev);
  if (!s.ok()) return s;
  return std::move(ev.plan);
}

// ------------------------------------------------------------------ JSON

namespace {

Json ProvenanceJson(const Provenance& p) {
  Json j;
  j["at"] = rules::FormatTime(p.at);
  j["rules"] = {{"path", p.rules_dir}, {"program_version", p.program_version}};
  Json units = Json::object();
  for (const auto& [u, v] : p.units) units[u] = v;
  j["rules"]["units"] = units;
  j["state"] = {{"path", p.state_path},
                {"log_head", {{"id", p.head.id}, {"hash", p.head.hash}}},
                {"engine_state", {{"rows", p.state_rows}, {"sha256", p.state_sha256}}},
                {"controls", p.controls},
                {"controls_sha256", p.controls_sha256}};
  Json effects = Json::object();
  for (const auto& [t, n] : p.effects_today) effects[t] = n;
  j["state"]["effects_today"] = effects;
  Json tables = Json::object();
  for (const auto& [name, t] : p.tables) {
    tables[name] = {
        {"newest_row", t.newest}, {"queries", t.queries}, {"rows", t.rows}, {"sha256", t.sha256}};
  }
  j["warehouse"] = {{"path", p.warehouse_path}, {"tables", tables}};
  j["gates"] = {{"max_changes_per_entity_per_day", p.max_changes_per_entity_per_day},
                {"escalation_channel", p.escalation_channel}};
  return j;
}

}  // namespace

Result<Provenance> ProvenanceFromJson(const Json& j) {
  try {
    Provenance p;
    if (!rules::ParseTime(j.at("at").get<std::string>(), p.at))
      return Status::InvalidArgument("provenance.at is not a time");
    p.rules_dir = j.at("rules").at("path").get<std::string>();
    p.program_version = j.at("rules").at("program_version").get<std::string>();
    for (const auto& [u, v] : j.at("rules").at("units").items()) p.units[u] = v.get<std::string>();
    const Json& st = j.at("state");
    p.state_path = st.at("path").get<std::string>();
    p.head.id = st.at("log_head").at("id").get<std::int64_t>();
    p.head.hash = st.at("log_head").at("hash").get<std::string>();
    p.state_rows = st.at("engine_state").at("rows").get<std::int64_t>();
    p.state_sha256 = st.at("engine_state").at("sha256").get<std::string>();
    p.controls = st.at("controls");
    p.controls_sha256 = st.at("controls_sha256").get<std::string>();
    for (const auto& [t, n] : st.at("effects_today").items())
      p.effects_today[t] = n.get<std::int64_t>();
    p.warehouse_path = j.at("warehouse").at("path").get<std::string>();
    for (const auto& [name, t] : j.at("warehouse").at("tables").items()) {
      TableRead r;
      r.newest = t.at("newest_row").get<std::string>();
      r.queries = t.at("queries").get<std::int64_t>();
      r.rows = t.at("rows").get<std::int64_t>();
      r.sha256 = t.at("sha256").get<std::string>();
      p.tables[name] = r;
    }
    p.max_changes_per_entity_per_day =
        j.at("gates").at("max_changes_per_entity_per_day").get<int>();
    p.escalation_channel = j.at("gates").at("escalation_channel").get<std::string>();
    return p;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("the plan's provenance is incomplete: ") + e.what());
  }
}

Json PlanToJson(const Plan& plan) {
  Json j;
  j["schema"] = kSchema;
  j["provenance"] = ProvenanceJson(plan.provenance);
  Json actions = Json::array();
  std::map<std::string, std::int64_t> by_disposition;
  std::int64_t n = 0;
  Json other = Json::array();
  for (std::size_t i = 0; i < plan.decisions.size(); ++i) {
    const rules::Decision& d = plan.decisions[i];
    if (d.actions.empty()) {
      Json o;
      o["decision"] = static_cast<std::int64_t>(i + 1);
      o["unit"] = d.kind + ":" + d.rule;
      o["entity"] = d.entity_id.empty() ? std::string() : d.entity_type + ":" + d.entity_id;
      o["outcome"] = d.outcome;
      o["reason"] = d.reason;
      o["evidence"] = d.evidence;
      other.push_back(o);
      continue;
    }
    for (std::size_t k = 0; k < d.actions.size(); ++k) {
      const Json& a = d.actions[k];
      Change c = ChangeOf(d, a);
      Json row;
      row["n"] = ++n;
      row["decision"] = static_cast<std::int64_t>(i + 1);
      row["index"] = static_cast<std::int64_t>(k);
      row["unit"] = d.kind + ":" + d.rule;
      row["rule_version"] = d.version;
      row["entity"] = EntityOf(d, a);
      row["action"] = Str(a, "action");
      row["before"] = c.before;
      row["after"] = c.after;
      row["currency"] = c.currency.empty() ? Json(nullptr) : Json(c.currency);
      row["mode"] = Str(a, "mode");
      row["disposition"] = Str(a, "disposition");
      row["gates"] = a.contains("gates") ? a["gates"] : Json::array();
      row["evidence"] = d.evidence;
      row["intent"] = a;
      ++by_disposition[Str(a, "disposition")];
      actions.push_back(row);
    }
  }
  Json summary;
  summary["decisions"] = static_cast<std::int64_t>(plan.decisions.size());
  summary["actions"] = n;
  Json disp = Json::object();
  for (const auto& [k, v] : by_disposition) disp[k] = v;
  summary["by_disposition"] = disp;
  j["summary"] = summary;
  j["actions"] = actions;
  j["without_actions"] = other;
  j["not_planned"] = {
      {"units", plan.not_planned},
      {"why", "event and crossing rules, scores and journeys act on events, not on a schedule"}};
  Json decisions = Json::array();
  for (const auto& d : plan.decisions) decisions.push_back(rules::ToJson(d, false));
  j["decisions"] = decisions;
  return j;
}

// ------------------------------------------------------------------ text

std::string RenderPlanText(const Plan& plan) {
  const Provenance& p = plan.provenance;
  std::ostringstream out;
  out << "plan at " << rules::FormatTime(p.at) << "\n";
  out << "  rules      " << p.rules_dir << " (program " << Short(p.program_version) << ")\n";
  out << "  state      " << p.state_path << " (log head #" << p.head.id << " " << Short(p.head.hash)
      << ", " << p.state_rows << " state rows)\n";
  out << "  warehouse  " << p.warehouse_path << "\n";
  for (const auto& [name, t] : p.tables) {
    out << "             " << Pad(name, 16) << "newest row "
        << (t.newest.empty() ? "(empty)" : t.newest) << ", " << t.queries
        << (t.queries == 1 ? " query, " : " queries, ") << t.rows << " rows read\n";
  }
  const Json& k = p.controls["kill_switch"];
  out << "  controls   kill switch " << (k.value("on", false) ? "ON" : "off");
  std::int64_t on = 0;
  for (const auto& f : p.controls["flags"]) on += f.get<bool>() ? 1 : 0;
  out << " · " << on << " flag" << (on == 1 ? "" : "s") << " on · " << p.controls["pins"].size()
      << " pin" << (p.controls["pins"].size() == 1 ? "" : "s") << " in force\n\n";

  std::int64_t n = 0;
  std::map<std::string, std::int64_t> by_disposition;
  std::size_t with_actions = 0;
  for (const auto& d : plan.decisions) {
    if (!d.actions.empty()) ++with_actions;
    for (const auto& a : d.actions) ++n, ++by_disposition[Str(a, "disposition")];
  }
  out << n << " action" << (n == 1 ? "" : "s") << " from " << with_actions << " decision"
      << (with_actions == 1 ? "" : "s");
  if (!by_disposition.empty()) {
    out << " (";
    bool first = true;
    for (const auto& [disp, c] : by_disposition) {
      out << (first ? "" : ", ") << c << " " << disp;
      first = false;
    }
    out << ")";
  }
  out << "; " << plan.decisions.size() - with_actions << " decision"
      << (plan.decisions.size() - with_actions == 1 ? "" : "s") << " without actions\n";
  if (n > 0) {
    // Column widths from the content.
    std::size_t wu = 4, we = 6, wa = 6, wc = 6;
    for (const auto& d : plan.decisions) {
      for (const auto& a : d.actions) {
        wu = std::max(wu, d.rule.size());
        we = std::max(we, EntityOf(d, a).size());
        wa = std::max(wa, Str(a, "action").size());
        wc = std::max(wc, ChangeOf(d, a).text.size());
      }
    }
    wc = std::min<std::size_t>(wc, 40);
    out << "\n"
        << Pad("#", 4) << Pad("rule", wu + 2) << Pad("entity", we + 2) << Pad("action", wa + 2)
        << Pad("change", wc + 2) << "disposition\n";
    n = 0;
    for (const auto& d : plan.decisions) {
      for (const auto& a : d.actions) {
        out << Pad(std::to_string(++n), 4) << Pad(d.rule, wu + 2) << Pad(EntityOf(d, a), we + 2)
            << Pad(Str(a, "action"), wa + 2) << Pad(ChangeOf(d, a).text, wc + 2)
            << Str(a, "disposition") << "\n";
        std::string gates = GatesText(a);
        if (!gates.empty()) out << "      gates     " << gates << "\n";
        std::string text = Str(a, "text");
        if (!text.empty()) out << "      text      " << text << "\n";
        std::string ev = KeyEvidence(d.evidence);
        std::string member = MemberEvidence(d, a);
        if (!member.empty()) ev = member + " · " + ev;
        if (!ev.empty()) out << "      evidence  " << ev << "\n";
      }
    }
  }
  if (with_actions < plan.decisions.size()) {
    out << "\ndecisions without actions\n";
    for (std::size_t i = 0; i < plan.decisions.size(); ++i) {
      const rules::Decision& d = plan.decisions[i];
      if (!d.actions.empty()) continue;
      std::string entity = d.entity_id.empty() ? d.entity_type : d.entity_type + ":" + d.entity_id;
      out << "  " << Pad(d.kind + " " + d.rule, 28) << Pad(entity, 28) << d.outcome
          << (d.reason.empty() ? "" : " (" + d.reason + ")") << "\n";
      std::string ev = KeyEvidence(d.evidence);
      if (!ev.empty()) out << "      evidence  " << ev << "\n";
    }
  }
  if (!plan.not_planned.empty()) {
    out << "\nnot part of a plan (they act on events): ";
    for (std::size_t i = 0; i < plan.not_planned.size(); ++i)
      out << (i ? ", " : "") << plan.not_planned[i];
    out << "\n";
  }
  return out.str();
}

// ------------------------------------------------------------------ staleness

std::vector<std::string> Differences(const Provenance& a, const Provenance& b) {
  std::vector<std::string> why;
  // The rules.
  for (const auto& [unit, version] : a.units) {
    auto it = b.units.find(unit);
    std::string kind = unit.substr(0, unit.find(':')), name = unit.substr(unit.find(':') + 1);
    if (it == b.units.end())
      why.push_back(kind + " " + name + " was removed since the plan");
    else if (it->second != version)
      why.push_back(kind + " " + name + " changed: version " + Short(version) + " → " +
                    Short(it->second));
  }
  for (const auto& [unit, version] : b.units) {
    if (!a.units.count(unit)) {
      why.push_back(unit.substr(0, unit.find(':')) + " " + unit.substr(unit.find(':') + 1) +
                    " was added since the plan");
    }
  }
  if (why.empty() && a.program_version != b.program_version) {
    why.push_back("the program changed: version " + Short(a.program_version) + " → " +
                  Short(b.program_version));
  }
  // The gate settings.
  if (a.max_changes_per_entity_per_day != b.max_changes_per_entity_per_day) {
    why.push_back("the change budget differs from the plan's: " +
                  std::to_string(a.max_changes_per_entity_per_day) + " → " +
                  std::to_string(b.max_changes_per_entity_per_day) + " changes per entity per day");
  }
  if (a.escalation_channel != b.escalation_channel) {
    why.push_back("the escalation channel differs from the plan's: `" + a.escalation_channel +
                  "` → `" + b.escalation_channel + "`");
  }
  // The state.
  if (b.head.id > a.head.id) {
    why.push_back("state changed: " + std::to_string(b.head.id - a.head.id) + " decision" +
                  (b.head.id - a.head.id == 1 ? " was" : "s were") +
                  " logged since the plan (head " + std::to_string(a.head.id) + " → " +
                  std::to_string(b.head.id) + ")");
  } else if (b.head.id < a.head.id) {
    why.push_back("state changed: the decision log is shorter than when planned (head " +
                  std::to_string(a.head.id) + " → " + std::to_string(b.head.id) +
                  "): not the database the plan was computed from");
  } else if (b.head.hash != a.head.hash) {
    why.push_back("state changed: decision " + std::to_string(a.head.id) +
                  " is not the one the plan saw (hash " + Short(a.head.hash) + " → " +
                  Short(b.head.hash) + "): not the database the plan was computed from");
  }
  if (a.state_sha256 != b.state_sha256) {
    why.push_back("state changed: the engine state differs from the plan's (" +
                  std::to_string(a.state_rows) + " rows, " + Short(a.state_sha256) + " → " +
                  std::to_string(b.state_rows) + " rows, " + Short(b.state_sha256) + ")");
  }
  if (a.controls_sha256 != b.controls_sha256) {
    const Json &ca = a.controls, &cb = b.controls;
    bool said = false;
    bool ka = ca.contains("kill_switch") && ca["kill_switch"].value("on", false);
    bool kb = cb.contains("kill_switch") && cb["kill_switch"].value("on", false);
    if (ka != kb) {
      why.push_back(std::string("controls changed: the kill switch was turned ") +
                    (kb ? "on" : "off") + " since the plan");
      said = true;
    }
    std::map<std::string, bool> fa, fb;
    if (ca.contains("flags"))
      for (const auto& [f, v] : ca["flags"].items()) fa[f] = v.get<bool>();
    if (cb.contains("flags"))
      for (const auto& [f, v] : cb["flags"].items()) fb[f] = v.get<bool>();
    std::set<std::string> names;
    for (const auto& [f, v] : fa) names.insert(f);
    for (const auto& [f, v] : fb) names.insert(f);
    for (const auto& f : names) {
      bool va = fa.count(f) && fa[f], vb = fb.count(f) && fb[f];
      if (va != vb) {
        why.push_back("controls changed: flag `" + f + "` was turned " + (vb ? "on" : "off") +
                      " since the plan");
        said = true;
      }
    }
    std::map<std::string, std::string> pa, pb;
    if (ca.contains("pins"))
      for (const auto& p : ca["pins"]) pa[Str(p, "target")] = Str(p, "until");
    if (cb.contains("pins"))
      for (const auto& p : cb["pins"]) pb[Str(p, "target")] = Str(p, "until");
    for (const auto& [t, until] : pb) {
      if (!pa.count(t))
        why.push_back("controls changed: " + t + " was pinned until " + until + " since the plan"),
            said = true;
      else if (pa[t] != until)
        why.push_back("controls changed: the pin on " + t + " now ends " + until + " (was " +
                      pa[t] + ")"),
            said = true;
    }
    for (const auto& [t, until] : pa) {
      if (!pb.count(t))
        why.push_back("controls changed: the pin on " + t + " is no longer in force"), said = true;
    }
    if (!said) why.push_back("controls changed since the plan");
  }
  for (const auto& [target, n] : a.effects_today) {
    auto it = b.effects_today.find(target);
    std::int64_t now = it == b.effects_today.end() ? 0 : it->second;
    if (now != n) {
      why.push_back("the outbox changed: " + std::to_string(now) + " change" +
                    (now == 1 ? "" : "s") + " to " + target + " today, the plan counted " +
                    std::to_string(n));
    }
  }
  // The warehouse.
  for (const auto& [name, t] : a.tables) {
    auto it = b.tables.find(name);
    if (it == b.tables.end()) continue;  // a unit reading it went away: said above
    if (it->second.newest != t.newest) {
      why.push_back("the warehouse changed since the plan: " + name + " newest row " +
                    (t.newest.empty() ? "(empty)" : t.newest) + " → " +
                    (it->second.newest.empty() ? "(empty)" : it->second.newest));
    } else if (it->second.sha256 != t.sha256) {
      why.push_back("the warehouse changed since the plan: the " + name +
                    " data the rules read differ (" + std::to_string(t.rows) + " rows, " +
                    Short(t.sha256) + " → " + std::to_string(it->second.rows) + " rows, " +
                    Short(it->second.sha256) + "; newest row still " + t.newest + ")");
    }
  }
  return why;
}

// ------------------------------------------------------------------ apply

Result<ApplyOutcome> ApplyPlan(const PlanInputs& in_given, const dsl::SourceManager& sources,
                               const std::string& plan_text, TimeMs now) {
  ApplyOutcome outcome;
  outcome.plan_sha256 = Sha256Hex(plan_text);
  Json file = Json::parse(plan_text, nullptr, false);
  if (file.is_discarded() || !file.is_object())
    return Status::InvalidArgument("the plan file is not JSON");
  if (file.value("schema", "") != kSchema) {
    return Status::InvalidArgument("the plan file's schema is `" + file.value("schema", "") +
                                   "`, expected `" + kSchema +
                                   "` (a file written by `gavel plan --out`)");
  }
  if (!file.contains("provenance") || !file.contains("decisions") ||
      !file["decisions"].is_array()) {
    return Status::InvalidArgument("the plan file has no provenance or no decisions");
  }
  auto planned = ProvenanceFromJson(file["provenance"]);
  if (!planned.ok()) return planned.status();
  PlanInputs in = in_given;
  in.at = planned.value().at;
  if (!std::filesystem::exists(in.state_path))
    return Status::IoError("no state database at " + in.state_path);
  auto wh = OpenWarehouse(in.warehouse_path);
  if (!wh.ok()) return wh.status();
  auto opened = rules::StateDatabase::Open(in.state_path);
  if (!opened.ok()) return opened.status();
  rules::StateDatabase& db = *opened.value();
  sqlite3* conn = db.log().db();
  // BEGIN IMMEDIATE: from here until the commit no other writer can change what is checked.
  Status s = db.Begin();
  if (!s.ok()) return s;
  struct Rollback {
    rules::StateDatabase& db;
    bool armed = true;
    ~Rollback() {
      if (armed) db.Rollback();
    }
  } rollback{db};
  auto controls = actions::Controls::Attach(conn);
  if (!controls.ok()) return controls.status();
  auto outbox = actions::Outbox::Attach(conn);
  if (!outbox.ok()) return outbox.status();
  auto head = db.log().Head();
  if (!head.ok()) return head.status();
  outcome.head_before = head.value();
  Evaluation ev;
  s = Evaluate(in, conn, "main", *wh.value(), *controls.value(), *outbox.value(), now, ev);
  if (!s.ok()) {
    if (s.code() == Status::Code::kInvalidArgument) {  // the state moved past the plan's time
      outcome.reasons.push_back("state changed: " + s.message());
      return outcome;
    }
    return s;
  }
  outcome.reasons = Differences(planned.value(), ev.plan.provenance);
  // The plan's head must still be in the chain with the same hash (a log that was replaced
  // and grew past the plan's head would otherwise look like "decisions were logged").
  if (planned.value().head.id > 0 && ev.plan.provenance.head.id > planned.value().head.id) {
    auto got = db.log().Get(planned.value().head.id);
    if (!got.ok() || got.value().hash != planned.value().head.hash) {
      outcome.reasons.push_back(
          "state changed: decision " + std::to_string(planned.value().head.id) +
          " is not the one the plan saw: not the database the plan was computed from");
    }
  }
  if (outcome.reasons.empty()) {
    // Same inputs: the decisions must be the planned ones (the file cannot be edited into
    // something the rules would not decide).
    const Json& want = file["decisions"];
    if (want.size() != ev.plan.decisions.size()) {
      outcome.reasons.push_back(
          "the plan's decisions differ from what the rules decide on the same data: " +
          std::to_string(want.size()) + " planned, " + std::to_string(ev.plan.decisions.size()) +
          " now");
    } else {
      for (std::size_t i = 0; i < want.size(); ++i) {
        // Compared as unordered objects: a plan file re-saved by a tool may reorder keys.
        auto unordered = [](const Json& j) { return nlohmann::json::parse(Dump(Comparable(j))); };
        if (unordered(want[i]) != unordered(rules::ToJson(ev.plan.decisions[i], false))) {
          const rules::Decision& d = ev.plan.decisions[i];
          outcome.reasons.push_back(
              "decision " + std::to_string(i + 1) + " of the plan (" + d.kind + " " + d.rule +
              (d.entity_id.empty() ? "" : " " + d.entity_type + ":" + d.entity_id) +
              ") differs from what the rules decide now, with their gate verdicts at " +
              rules::FormatTime(now) + " (an edited plan file, or a pin that expired)");
        }
      }
    }
  }
  if (!outcome.reasons.empty()) return outcome;  // rolled back: nothing was written

  // Log the planned decisions, queue their actions, checkpoint the engine: one transaction.
  actions::GateKeeper gates(in.program, *controls.value(), *outbox.value(), in.gates);
  const std::string trigger = "plan:" + outcome.plan_sha256;
  for (std::size_t i = 0; i < ev.plan.decisions.size(); ++i) {
    rules::Decision d = ev.plan.decisions[i];
    d.trigger = trigger;
    d.processing_time = now;
    s = db.log().AppendInTransaction(d);
    if (!s.ok()) return s;
    s = gates.Enqueue(d, ev.plan.queued[i], now);
    if (!s.ok()) return s;
    outcome.logged.push_back(d);
  }
  s = ev.engine->Checkpoint(db.state());
  // The state written now includes the journaled batches: the journal is done with.
  if (s.ok()) s = daemon::MarkJournalApplied(conn);
  if (s.ok()) s = rules::RecordRuleSources(conn, *in.program, sources);
  if (!s.ok()) return s;
  for (const auto& d : outcome.logged) {
    if (d.actions.empty()) continue;
    actions::OutboxFilter f;
    f.decision_id = d.id;
    f.limit = 1000;
    auto rows = outbox.value()->List(f);
    if (!rows.ok()) return rows.status();
    for (auto& r : rows.value()) outcome.queued.push_back(std::move(r));
  }
  s = db.Commit();
  if (!s.ok()) return s;
  rollback.armed = false;
  auto after = db.log().Head();
  if (after.ok()) outcome.head_after = after.value();
  outcome.applied = true;
  return outcome;
}

}  // namespace gavel::plan
