// The scheduled half of the engine: schedule ticks, metric rules over warehouse windows
// (with freshness, confidence, cooldown and limits), budget reallocation across a group, and
// alerts with their state machine. See engine.hpp and docs/engine.md.
#include <algorithm>
#include <cmath>

#include "rules/calendar.hpp"
#include "rules/engine_impl.hpp"
#include "rules/reallocate.hpp"
#include "rules/stats.hpp"

namespace gavel::rules {

namespace {

struct AnomalyResult {
  bool pass = false;
  double expected = 0;
  double score = 0;  // z for sigma tests, the p-value for count tests
  std::string status;
};

// Runs one baseline test of an alert for one entity (see rules/stats.hpp for the statistics).
AnomalyResult TestAnomaly(const dsl::AnomalySpec& an, const dsl::TableInfo& table, const std::vector<Bucket>& hist,
                          TimeMs bucket, TimeMs t_end, double observed, double observed_per) {
  BaselineInput in;
  in.history = std::span<const Bucket>(hist.data(), hist.size());
  in.bucket_ms = bucket;
  in.window_buckets = std::max<int>(1, static_cast<int>(an.subject_window_seconds * kSecond / bucket));
  in.t_end_ms = t_end;
  in.history_ms = an.spec.history_seconds * kSecond;
  switch (an.spec.season) {
    case dsl::Seasonality::kNone: in.season = Season::kNone; break;
    case dsl::Seasonality::kHourOfDay: in.season = Season::kHourOfDay; break;
    case dsl::Seasonality::kHourOfWeek: in.season = Season::kHourOfWeek; break;
    case dsl::Seasonality::kDayOfWeek: in.season = Season::kDayOfWeek; break;
  }
  if (!hist.empty()) {
    TimeMs first = hist.front().time_ms;
    for (const auto& b : hist) first = std::min(first, b.time_ms);
    in.entity_start_ms = first;
  }
  in.has_per = !an.spec.per.empty();
  in.observed = observed;
  in.observed_per = observed_per;
  in.direction = an.spec.direction == dsl::BandDirection::kAbove   ? Band::kAbove
                 : an.spec.direction == dsl::BandDirection::kBelow ? Band::kBelow
                                                                    : Band::kOutside;
  AnomalyResult out;
  if (an.spec.sigma > 0) {
    SigmaOptions o;
    o.sigmas = an.spec.sigma;
    // Money moves of less than 20 units are never an anomaly, however flat the history.
    for (const auto& f : table.facts) {
      if (!an.spec.field.empty() && f.name == an.spec.field[0] && f.type.base == dsl::BaseType::kMoney) {
        o.min_abs_change = 20;
      }
    }
    SigmaResult r = TestSigma(in, o);
    out.pass = r.pass;
    out.expected = r.expected;
    out.score = r.z;
    out.status = StatStatusName(r.status);
  } else {
    CountOptions o;
    o.confidence = an.spec.confidence;
    CountResult r = TestCount(in, o);
    out.pass = r.pass;
    out.expected = r.expected;
    out.score = r.p_value;
    out.status = StatStatusName(r.status);
  }
  return out;
}

}  // namespace

void Engine::Impl::NextSchedule(TimeMs limit, std::string& unit, TimeMs& at) {
  at = -1;
  auto consider = [&](const std::string& key, const dsl::Schedule& s) {
    auto it = next_tick.find(key);
    if (it == next_tick.end()) {
      TimeMs next = 0;
      std::string error;
      // The first tick is the first one after the engine's start.
      if (!NextScheduleTime(s, self.now_, next, error, ScheduleOffset(key, s.every_seconds))) {
        Health(key).ok = false;
        Health(key).last_error = error;
        next = -1;
      }
      it = next_tick.emplace(key, next).first;
    }
    if (it->second < 0 || it->second > limit) return;
    if (at < 0 || it->second < at || (it->second == at && key < unit)) {
      at = it->second;
      unit = key;
    }
  };
  for (const auto& r : p.rules) {
    if (r.trigger == dsl::TriggerKind::kSchedule) consider("rule:" + r.name, r.schedule);
  }
  for (const auto& a : p.alerts) consider("alert:" + a.name, a.schedule);
}

const dsl::Schedule* Engine::Impl::ScheduleOf(const std::string& unit) const {
  for (const auto& r : p.rules) {
    if (r.trigger == dsl::TriggerKind::kSchedule && "rule:" + r.name == unit) return &r.schedule;
  }
  for (const auto& a : p.alerts) {
    if ("alert:" + a.name == unit) return &a.schedule;
  }
  return nullptr;
}

Status Engine::Impl::CoalesceMissedTicks(const std::string& unit, TimeMs& at, TimeMs now) {
  const dsl::Schedule* sched = ScheduleOf(unit);
  if (!sched) return Status::Ok();
  const TimeMs first = at;
  std::int64_t missed = 0;
  std::string error;
  while (true) {
    TimeMs following = -1;
    if (!NextScheduleTime(*sched, at, following, error, ScheduleOffset(unit, sched->every_seconds))) break;
    if (following < 0 || following > now) break;
    at = following;
    ++missed;
  }
  if (missed == 0 && now - at <= opts.late_tick_tolerance_ms) return Status::Ok();
  const bool is_rule = unit.rfind("rule:", 0) == 0;
  const std::string name = unit.substr(unit.find(':') + 1);
  std::string version;
  for (const auto& r : p.rules) {
    if (is_rule && r.name == name) version = r.version;
  }
  for (const auto& a : p.alerts) {
    if (!is_rule && a.name == name) version = a.version;
  }
  Decision d = NewDecision("schedule", name, version, at);
  d.trigger = "tick:" + FormatTime(at);
  d.outcome = "late";
  d.reason = missed > 0 ? "missed_ticks" : "late_tick";
  d.evidence["unit"] = is_rule ? "rule" : "alert";
  d.evidence["first_due"] = FormatTime(first);
  d.evidence["runs_as"] = FormatTime(at);
  d.evidence["skipped_ticks"] = missed;
  d.evidence["late_by_ms"] = now - at;
  return Emit(d);
}

Status Engine::Impl::RunTick(const std::string& unit, TimeMs at) {
  const dsl::Schedule* sched = nullptr;
  Status s;
  for (const auto& r : p.rules) {
    if (r.trigger == dsl::TriggerKind::kSchedule && "rule:" + r.name == unit) {
      sched = &r.schedule;
      s = RunScheduledRule(r, at);
    }
  }
  for (const auto& a : p.alerts) {
    if ("alert:" + a.name == unit) {
      sched = &a.schedule;
      s = RunAlert(a, at);
    }
  }
  TimeMs next = -1;
  std::string error;
  if (!sched || !NextScheduleTime(*sched, at, next, error, ScheduleOffset(unit, sched->every_seconds))) next = -1;
  next_tick[unit] = next;
  return s;
}

bool Engine::Impl::ReadWindows(const std::string& kind, const std::string& name, const std::string& version,
                               const dsl::TableInfo& table, const std::vector<dsl::WindowQuery>& queries, TimeMs at,
                               TickData& out, Status& status) {
  UnitHealth& h = Health(kind + ":" + name);
  auto skip = [&](const std::string& reason, nlohmann::ordered_json evidence, bool unhealthy) {
    if (unhealthy) {
      h.ok = false;
      h.last_error = evidence.value("error", reason);
    }
    Decision d = NewDecision(kind, name, version, at);
    d.trigger = "tick:" + FormatTime(at);
    d.entity_type = table.name;
    d.outcome = "skipped";
    d.reason = reason;
    d.evidence = std::move(evidence);
    status = Emit(d);
    return false;
  };
  if (!deps.warehouse) return skip("error", {{"error", "no warehouse is configured"}}, true);
  const std::string zone = table.timezone.empty() ? "UTC" : table.timezone;
  std::int64_t freshness = table.freshness_seconds ? table.freshness_seconds : opts.default_freshness_seconds;
  if (freshness > 0) {
    auto newest = deps.warehouse->NewestTime(table);
    if (!newest.ok()) return skip("error", {{"error", newest.status().message()}}, true);
    out.newest = newest.value();
    TimeMs start = -1;
    std::string error;
    bool parsed = !newest.value().empty() && ParseBucket(newest.value(), table.grain, zone, start, error);
    TimeMs newest_end = parsed ? start + (table.grain == dsl::Grain::kHour ? kHour : kDay) : -1;
    if (newest_end < 0 || at - newest_end > freshness * kSecond) {
      nlohmann::ordered_json ev;
      ev["table"] = table.name;
      ev["newest_row"] = newest.value();
      ev["freshness_limit_s"] = freshness;
      ev["age_s"] = newest_end < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json((at - newest_end) / kSecond);
      return skip("stale_data", std::move(ev), false);
    }
  }
  out.rows.assign(queries.size(), {});
  out.bounds.assign(queries.size(), {});
  out.keys.clear();
  for (std::size_t i = 0; i < queries.size(); ++i) {
    std::string error;
    if (!WindowFor(queries[i].window, table.grain, zone, at, out.bounds[i], error)) {
      return skip("error", {{"error", error}}, true);
    }
    auto rows = deps.warehouse->RunWindow(queries[i], out.bounds[i].from, out.bounds[i].to);
    if (!rows.ok()) return skip("error", {{"error", rows.status().message()}}, true);
    out.rows[i] = std::move(rows.value());
  }
  LinedUpRows lined = LineUpByKey(out.rows);
  out.keys = std::move(lined.keys);
  out.at = std::move(lined.at);
  h.ok = true;
  h.last_error.clear();
  return true;
}

namespace {

// An aggregate's value when its query has no row for the key: sums and counts over no rows are
// 0 (nothing spent, nothing counted); anything else has no value.
bool ZeroWhenNoRows(const dsl::WindowQuery& q, int aggregate) {
  return q.aggregates[aggregate].fn == dsl::AggFn::kSum || q.aggregates[aggregate].fn == dsl::AggFn::kCount;
}

// Where dim slot `s` comes from: the key itself, or the dim of the first query (in query order)
// that has a row for the key and selects that dim.
struct DimSource {
  bool is_key = false;
  std::vector<std::pair<std::size_t, std::size_t>> dims;  // (query, position in its dims)
};

DimSource SourceOf(const dsl::SlotRef& s, const std::vector<dsl::WindowQuery>& queries, const dsl::TableInfo& table) {
  DimSource src;
  src.is_key = s.name == table.key;
  for (std::size_t q = 0; q < queries.size(); ++q) {
    const auto& dims = queries[q].dims;
    auto d = std::find(dims.begin(), dims.end(), s.name);
    if (d != dims.end()) src.dims.emplace_back(q, static_cast<std::size_t>(d - dims.begin()));
  }
  return src;
}

template <typename RowOf>
Value DimValue(const DimSource& src, const std::string& key, RowOf&& row_of) {
  if (src.is_key) return Value::Text(key);
  for (const auto& [q, d] : src.dims) {
    if (const WindowRow* row = row_of(q)) return row->dims[d].view();
  }
  return Value::Null();
}

}  // namespace

std::vector<Value> Engine::Impl::RowSlots(const std::vector<dsl::SlotRef>& slots,
                                          const std::vector<dsl::WindowQuery>& queries, const TickData& data,
                                          const dsl::TableInfo& table, const std::string& key, std::size_t pos) {
  std::vector<Value> values(slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const auto& s = slots[i];
    if (s.kind == dsl::SlotKind::kAggregate) {
      const WindowRow* row = data.Row(s.query, pos);
      if (row && row->aggregates[s.index]) {
        values[i] = Value::Number(*row->aggregates[s.index]);
      } else if (ZeroWhenNoRows(queries[s.query], s.index)) {
        values[i] = Value::Number(0);
      }
    } else if (s.kind == dsl::SlotKind::kDim) {
      values[i] = DimValue(SourceOf(s, queries, table), key, [&](std::size_t q) { return data.Row(q, pos); });
    }
  }
  return values;
}

void Engine::Impl::FillTickColumns(const std::vector<dsl::SlotRef>& slots,
                                   const std::vector<dsl::WindowQuery>& queries,
                                   const std::vector<std::pair<std::string, dsl::CompiledExpr>>& lets,
                                   const TickData& data, const dsl::TableInfo& table, std::size_t begin,
                                   std::size_t n, TickColumns& out) {
  out.cols.assign(slots.size(), {});
  out.numbers.resize(slots.size());
  out.values.resize(slots.size());
  for (std::size_t k = 0; k < slots.size(); ++k) {
    const auto& s = slots[k];
    out.numbers[k].clear();  // keeps the memory for the next block
    out.values[k].clear();
    if (s.kind == dsl::SlotKind::kAggregate) {
      // A number on every row unless an aggregate has no value (then the column holds Values).
      const WindowRow* const* at = data.at[s.query].data() + begin;
      const bool zero = ZeroWhenNoRows(queries[s.query], s.index);
      auto& x = out.numbers[k];
      x.resize(n);
      bool all = true;
      for (std::size_t i = 0; i < n; ++i) {
        const WindowRow* row = at[i];
        if (row && row->aggregates[s.index]) {
          x[i] = *row->aggregates[s.index];
        } else {
          x[i] = 0;
          all = all && zero;
        }
      }
      if (all) {
        out.cols[k].numbers = x.data();
        continue;
      }
      auto& v = out.values[k];
      v.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        const WindowRow* row = at[i];
        v[i] = row && row->aggregates[s.index] ? Value::Number(x[i]) : zero ? Value::Number(0) : Value::Null();
      }
      x.clear();
      out.cols[k].values = v.data();
    } else if (s.kind == dsl::SlotKind::kDim) {
      const DimSource src = SourceOf(s, queries, table);
      auto& v = out.values[k];
      v.resize(n);
      for (std::size_t i = begin; i < begin + n; ++i) {
        v[i - begin] = DimValue(src, data.keys[i], [&](std::size_t q) { return data.at[q][i]; });
      }
      out.cols[k].values = v.data();
    }
  }
  // The lets, in order, each over every row; a let's column is null until it has run (as in
  // RunLets, where a let reads only the lets before it).
  for (std::size_t l = 0; l < lets.size(); ++l) {
    std::size_t first = slots.size();
    for (std::size_t k = 0; k < slots.size(); ++k) {
      if (slots[k].kind != dsl::SlotKind::kLet || slots[k].index != static_cast<int>(l)) continue;
      if (first == slots.size()) {
        first = k;
        out.values[k].resize(n);
        ev.RunBatch(lets[l].second, out.cols.data(), n, out.values[k].data());
      } else {
        out.values[k] = out.values[first];
      }
      out.cols[k].values = out.values[k].data();
    }
  }
}

Status Engine::Impl::RunScheduledRule(const dsl::CompiledRule& r, TimeMs at) {
  UnitHealth& h = Health("rule:" + r.name);
  h.evaluations++;
  h.last_evaluation = at;
  const std::string trigger = "tick:" + FormatTime(at);
  if (!r.scope) {
    std::vector<Value> values(r.slots.size());
    std::vector<std::string> keep;
    RunLets(r.lets, r.slots, values, keep);
    if (!ev.Test(r.condition, values.data())) {
      NotFiredRule(r);
      return Status::Ok();
    }
    Decision d = NewDecision("rule", r.name, r.version, at);
    d.trigger = trigger;
    d.outcome = "fired";
    d.reason = ModeName(r.meta.mode);
    for (const auto& a : r.actions) d.actions.push_back(Intend(a, r.slots, values, "", "", r.meta.mode));
    h.fired++;
    return Emit(d);
  }
  const dsl::TableInfo* table = p.FindTable(r.scope->table);
  TickData data;
  Status status;
  if (!ReadWindows("rule", r.name, r.version, *table, r.queries, at, data, status)) return status;
  // The evidence's window is the scope's (`over last 3d`); values with windows of their own
  // name them in their evidence keys (`sum(spend) over last 1d`).
  nlohmann::ordered_json window = nlohmann::ordered_json::object();
  {
    WindowBounds b;
    std::string error;
    if (WindowFor(r.scope->window, table->grain, table->timezone.empty() ? "UTC" : table->timezone, at, b, error)) {
      window["from"] = b.from;
      window["to"] = b.to;
    }
  }
  if (r.scope->across) return RunReallocation(r, *table, data, at, window);
  // The lets and the condition run over a block of keys at a time (columns, Evaluator::RunBatch
  // and TestBatch); only the rows that make a record are then taken one by one. The common row
  // does not fire and is only counted (unless every evaluation is logged). With a confidence
  // test, the test alone decides (it handles zero conversions, where the plain ratio has no
  // value); the plain comparison only tells "close, but not sure".
  const std::size_t n = data.keys.size();
  const bool every_row = r.confidence || opts.log_every_evaluation;
  PoissonBoundMemo bounds;
  for (std::size_t begin = 0; begin < n; begin += kTickBlock) {
    const std::size_t m = std::min(kTickBlock, n - begin);
    FillTickColumns(r.slots, r.queries, r.lets, data, *table, begin, m, tick_columns);
    const std::size_t holds = ev.TestBatch(r.condition, tick_columns.cols.data(), m, tick_holds.data());
    if (r.confidence) {
      tick_thresholds.resize(m);
      ev.RunBatch(r.confidence->threshold, tick_columns.cols.data(), m, tick_thresholds.data());
    }
    for (std::size_t j = 0; j < m; ++j) {
      const std::size_t i = begin + j;
      const bool plain = tick_holds[j];
      if (!plain && !every_row) continue;
      bool act = plain;
      CostPerCountTest test;
      CostPerCountResult res;
      if (r.confidence) {
        const auto& c = *r.confidence;
        if (tick_thresholds[j].kind != Value::Kind::kNumber) {
          NotFiredRule(r);
          continue;
        }
        if (const WindowRow* row = data.at[c.cost_query][i]) {
          test.cost = row->aggregates[c.cost_aggregate].value_or(0);
          test.count = row->aggregates[c.count_aggregate].value_or(0);
        }
        test.threshold = tick_thresholds[j].num;
        test.level = c.level;
        test.above = c.above;
        res = TestCostPerCount(test, bounds);
        act = res.pass;
        // Neither acting nor close: counted, and recorded only when every evaluation is.
        if (!act && !plain && !opts.log_every_evaluation) {
          NotFiredRule(r);
          continue;
        }
      }
      // This row makes a record: its values and evidence.
      const std::string& key = data.keys[i];
      std::vector<Value> values = tick_columns.Row(j);
      nlohmann::ordered_json evidence;
      evidence["window"] = window;
      AddEvidence(evidence, r.slots, values);
      if (r.confidence) {
        nlohmann::ordered_json cj;
        cj["level"] = test.level;
        cj["cost"] = test.cost;
        cj["count"] = test.count;
        cj["threshold"] = test.threshold;
        cj["bound"] = std::isfinite(res.bound) ? nlohmann::ordered_json(res.bound) : nlohmann::ordered_json(nullptr);
        cj["pass"] = res.pass;
        evidence["confidence"] = cj;
        if (!res.pass && plain) {
          Status s = EmitRuleOutcome(r, at, trigger, table->name, key, "skipped", "below_confidence", std::move(evidence));
          if (!s.ok()) return s;
          continue;
        }
      }
      if (!act) {
        Status s = NotFired(r, at, trigger, table->name, key, std::move(evidence));
        if (!s.ok()) return s;
        continue;
      }
      Decision d = NewDecision("rule", r.name, r.version, at);
      d.trigger = trigger;
      d.entity_type = table->name;
      d.entity_id = key;
      d.evidence = std::move(evidence);
      std::string skip = Throttle(r.name, r.meta, key, at, d.evidence);
      if (!skip.empty()) {
        d.outcome = "skipped";
        d.reason = skip;
      } else {
        d.outcome = "fired";
        d.reason = ModeName(r.meta.mode);
        for (const auto& a : r.actions) d.actions.push_back(Intend(a, r.slots, values, table->name, key, r.meta.mode));
        h.fired++;
        Fired(r.name, r.meta, key, at);
      }
      Status s = Emit(d);
      if (!s.ok()) return s;
    }
    // The rows that did not hold, counted once the block's records are written (when one
    // fails, the rows after it were not evaluated as far as the log is concerned).
    if (!every_row) rule_not_fired[&r - p.rules.data()] += m - holds;
  }
  return Status::Ok();
}

Status Engine::Impl::RunReallocation(const dsl::CompiledRule& r, const dsl::TableInfo& table, const TickData& data,
                                     TimeMs at, const nlohmann::ordered_json& window) {
  const dsl::CompiledAction* realloc = nullptr;
  for (const auto& a : r.actions) {
    if (a.kind == dsl::ActionKind::kReallocate) realloc = &a;
  }
  std::vector<Member> members;
  nlohmann::ordered_json evidence;
  evidence["window"] = window;
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  int budget_slot = -1;
  for (std::size_t i = 0; i < r.slots.size(); ++i) {
    if (r.slots[i].kind == dsl::SlotKind::kDim && r.slots[i].name == "budget") budget_slot = static_cast<int>(i);
  }
  for (std::size_t i = 0; i < data.keys.size(); ++i) {
    const std::string& key = data.keys[i];
    std::vector<Value> values = RowSlots(r.slots, r.queries, data, table, key, i);
    std::vector<std::string> keep;
    RunLets(r.lets, r.slots, values, keep);
    Member m;
    m.key = key;
    m.budget = budget_slot >= 0 && values[budget_slot].kind == Value::Kind::kNumber ? values[budget_slot].num : 0;
    if (realloc) {
      Value metric = ev.Run(realloc->toward, values.data());
      if (metric.kind == Value::Kind::kNumber) m.metric = metric.num;
    }
    nlohmann::ordered_json row;
    row["key"] = key;
    row["budget"] = m.budget;
    row["metric"] = m.metric ? nlohmann::ordered_json(*m.metric) : nlohmann::ordered_json(nullptr);
    rows.push_back(row);
    members.push_back(std::move(m));
  }
  evidence["members"] = rows;
  Decision d = NewDecision("rule", r.name, r.version, at);
  d.trigger = "tick:" + FormatTime(at);
  d.entity_type = table.name;
  d.entity_id = "*";
  if (!realloc || members.empty()) {
    d.outcome = "skipped";
    d.reason = "no_data";
    d.evidence = std::move(evidence);
    return Emit(d);
  }
  ReallocationParams params;
  params.keep_total = realloc->keep_total;
  params.max_step = realloc->max_step;
  params.min_budget = realloc->min_budget;
  params.max_budget = realloc->max_budget;
  Reallocation result = Reallocate(members, params);
  if (!result.changed) {
    d.outcome = "skipped";
    d.reason = "no_change";
    evidence["note"] = result.note;
    d.evidence = std::move(evidence);
    return Emit(d);
  }
  if (!result.note.empty()) evidence["note"] = result.note;
  d.evidence = std::move(evidence);
  if (Throttled(d, r, "*", at)) return Emit(d);
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (std::fabs(result.new_budgets[i] - members[i].budget) < 0.005) continue;
    nlohmann::ordered_json a;
    a["action"] = "set_budget";
    a["target"] = table.name + ":" + members[i].key;
    a["before"] = members[i].budget;
    a["budget"] = result.new_budgets[i];
    a["currency"] = realloc->currency;
    a["mode"] = ModeName(r.meta.mode);
    if (r.meta.require_approval) a["approval"] = "required";
    d.actions.push_back(a);
  }
  Health("rule:" + r.name).fired++;
  Fired(r.name, r.meta, "*", at);
  return Emit(d);
}

Status Engine::Impl::RunAlert(const dsl::CompiledAlert& a, TimeMs at) {
  UnitHealth& h = Health("alert:" + a.name);
  h.evaluations++;
  h.last_evaluation = at;
  if (!a.scope) return Status::Ok();
  const dsl::TableInfo* table = p.FindTable(a.scope->table);
  TickData data;
  Status status;
  if (!ReadWindows("alert", a.name, a.version, *table, a.queries, at, data, status)) return status;
  const std::string zone = table->timezone.empty() ? "UTC" : table->timezone;
  const TimeMs bucket = table->grain == dsl::Grain::kHour ? kHour : kDay;
  // History per anomaly test, by entity.
  std::vector<std::unordered_map<std::string, std::vector<Bucket>>> history(a.anomalies.size());
  for (std::size_t i = 0; i < a.anomalies.size(); ++i) {
    const auto& an = a.anomalies[i];
    const WindowBounds& wb = data.bounds[an.subject_query];
    std::string from, to, error;
    TimeMs hist_from = wb.from_ms - an.spec.history_seconds * kSecond;
    if (!FormatBucket(hist_from, table->grain, zone, from, error) ||
        !FormatBucket(wb.from_ms, table->grain, zone, to, error)) {
      h.ok = false;
      h.last_error = error;
      continue;
    }
    HistoryCache& cache = history_cache[a.name + "#" + std::to_string(i)];
    std::string cache_key = from + "|" + to + "|" + data.newest;
    Result<std::vector<HistoryRow>> rows = std::vector<HistoryRow>();
    if (!data.newest.empty() && cache.key == cache_key) {
      rows = cache.rows;
    } else {
      rows = deps.warehouse->RunHistory(an.history_sql, from, to);
      if (rows.ok() && !data.newest.empty()) {
        cache.key = cache_key;
        cache.rows = rows.value();
      }
    }
    if (!rows.ok()) {
      h.ok = false;
      h.last_error = rows.status().message();
      Decision d = NewDecision("alert", a.name, a.version, at);
      d.trigger = "tick:" + FormatTime(at);
      d.entity_type = table->name;
      d.outcome = "skipped";
      d.reason = "error";
      d.evidence["error"] = rows.status().message();
      return Emit(d);
    }
    for (const auto& row : rows.value()) {
      TimeMs t;
      if (!ParseBucket(row.time, table->grain, zone, t, error)) continue;
      history[i][row.key].push_back({t, row.value, row.per});
    }
  }
  auto& states = alert_states[a.name];
  std::set<std::string> keys(data.keys.begin(), data.keys.end());
  for (const auto& [k, st] : states) {
    if (st.state != AlertState::kInactive) keys.insert(k);
  }
  std::vector<std::pair<std::string, nlohmann::ordered_json>> started, repeated, resolved;
  const std::string trigger = "tick:" + FormatTime(at);
  for (const auto& key : keys) {
    const std::size_t pos = data.Position(key);
    std::vector<Value> values = RowSlots(a.slots, a.queries, data, *table, key, pos);
    nlohmann::ordered_json tests = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < a.slots.size(); ++i) {
      const auto& s = a.slots[i];
      if (s.kind != dsl::SlotKind::kAnomaly) continue;
      const auto& an = a.anomalies[s.index];
      const WindowRow* row = data.Row(an.subject_query, pos);
      double observed = 0, observed_per = 0;
      if (row) {
        observed = row->aggregates[an.subject_aggregate].value_or(0);
        if (an.per_aggregate >= 0) observed_per = row->aggregates[an.per_aggregate].value_or(0);
      }
      const auto& hist = history[s.index][key];
      AnomalyResult res = TestAnomaly(an, *table, hist, bucket, data.bounds[an.subject_query].to_ms, observed, observed_per);
      values[i] = Value::Bool(res.pass);
      nlohmann::ordered_json t;
      t["test"] = an.text;
      t["observed"] = observed;
      t["expected"] = res.expected;
      t["score"] = res.score;
      t["status"] = res.status;
      t["pass"] = res.pass;
      tests.push_back(t);
    }
    std::vector<std::string> keep;
    RunLets(a.lets, a.slots, values, keep);
    bool cond = data.at.empty() || data.Row(0, pos) ? ev.Test(a.condition, values.data()) : false;
    AlertEntity& st = states[key];
    if (opts.track_state) dirty_alerts.emplace(a.name, key);
    nlohmann::ordered_json evidence;
    evidence["window"] = {{"from", data.bounds.empty() ? "" : data.bounds[0].from},
                          {"to", data.bounds.empty() ? "" : data.bounds[0].to}};
    AddEvidence(evidence, a.slots, values);
    if (!tests.empty()) evidence["baseline"] = tests;
    auto transition = [&](const std::string& reason) {
      Decision d = NewDecision("alert", a.name, a.version, at);
      d.trigger = trigger;
      d.entity_type = table->name;
      d.entity_id = key;
      d.outcome = "alert";
      d.reason = reason;
      d.evidence = evidence;
      return Emit(d);
    };
    Status s;
    if (cond) {
      if (st.state == AlertState::kInactive) {
        st.since = at;
        if (a.for_seconds > 0) {
          st.state = AlertState::kPending;
          s = transition("pending");
        } else {
          st.state = AlertState::kFiring;
          st.last_notified = at;
          s = transition("firing");
          started.emplace_back(key, evidence);
        }
      } else if (st.state == AlertState::kPending && at - st.since >= a.for_seconds * kSecond) {
        st.state = AlertState::kFiring;
        st.last_notified = at;
        s = transition("firing");
        started.emplace_back(key, evidence);
      } else if (st.state == AlertState::kFiring && a.repeat_seconds > 0 &&
                 at - st.last_notified >= a.repeat_seconds * kSecond) {
        st.last_notified = at;
        repeated.emplace_back(key, evidence);
      } else {
        not_fired["alert:" + a.name]++;
      }
    } else {
      if (st.state == AlertState::kPending) {
        st.state = AlertState::kInactive;
        s = transition("inactive");
      } else if (st.state == AlertState::kFiring) {
        st.state = AlertState::kInactive;
        s = transition("resolved");
        resolved.emplace_back(key, evidence);
      } else {
        not_fired["alert:" + a.name]++;
      }
    }
    if (!s.ok()) return s;
  }
  // One notification per alert and evaluation (and per group), listing every entity.
  auto notify = [&](const std::string& what, const std::vector<std::pair<std::string, nlohmann::ordered_json>>& list) {
    if (list.empty() || (what == "resolved" && !a.resolve_notify)) return Status::Ok();
    std::map<std::string, std::vector<const std::pair<std::string, nlohmann::ordered_json>*>> groups;
    for (const auto& item : list) {
      std::string g;
      if (!a.group_by.empty()) {
        const auto& v = item.second.find(a.group_by[0]);
        g = v != item.second.end() && v->is_string() ? v->get<std::string>() : "";
      }
      groups[g].push_back(&item);
    }
    for (const auto& [g, items] : groups) {
      Decision d = NewDecision("alert", a.name, a.version, at);
      d.trigger = trigger;
      d.entity_type = table->name;
      d.entity_id = items.size() == 1 ? items[0]->first : "*";
      d.outcome = "notify";
      d.reason = what;
      nlohmann::ordered_json entities = nlohmann::ordered_json::array();
      for (const auto* it : items) entities.push_back(it->first);
      d.evidence["entities"] = entities;
      // The message lists each entity with the numbers that made it fire (or resolve).
      nlohmann::ordered_json detailed = nlohmann::ordered_json::array();
      for (const auto* it : items) {
        nlohmann::ordered_json e;
        e["id"] = it->first;
        for (auto v = it->second.begin(); v != it->second.end(); ++v) {
          if (v.key() != "window") e[v.key()] = v.value();
        }
        detailed.push_back(std::move(e));
      }
      if (!a.group_by.empty()) d.evidence["group"] = {{a.group_by[0], g}};
      nlohmann::ordered_json act;
      act["action"] = "notify_slack";
      act["channel"] = a.slack_channel;
      act["severity"] = a.severity == dsl::Severity::kPage ? "page" : a.severity == dsl::Severity::kInfo ? "info" : "warning";
      act["state"] = what;
      act["entities"] = std::move(detailed);
      if (!a.runbook.empty()) act["runbook"] = a.runbook;
      act["mode"] = ModeName(a.meta.mode);
      d.actions.push_back(act);
      Status s = Emit(d);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  };
  Status s = notify("firing", started);
  if (s.ok()) s = notify("repeat", repeated);
  if (s.ok()) s = notify("resolved", resolved);
  if (!started.empty()) h.fired++;
  return s;
}

}  // namespace gavel::rules
