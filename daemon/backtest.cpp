// Backtests and rule diffs: running, aggregating, diffing and rendering. See backtest.hpp.
#include "daemon/backtest.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <tuple>

#include "dsl/compiler.hpp"
#include "rules/engine.hpp"
#include "rules/event.hpp"
#include "rules/store/sqlite_warehouse.hpp"

namespace gavel::backtest {

namespace {

// How often, in applied events, a run reports progress between simulated midnights.
constexpr std::int64_t kProgressEvery = 2000;
// How many malformed lines a run keeps the message of (the count covers all of them).
constexpr std::size_t kKeepRejected = 20;

const char* ModeName(dsl::Mode m) {
  switch (m) {
    case dsl::Mode::kLive:
      return "live";
    case dsl::Mode::kShadow:
      return "shadow";
    case dsl::Mode::kDryRun:
      return "dry_run";
  }
  return "dry_run";
}

std::string Duration(std::int64_t seconds) {
  if (seconds > 0 && seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds > 0 && seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds > 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

std::string DescribeSchedule(const dsl::Schedule& s) {
  if (s.every_seconds > 0) return "every " + Duration(s.every_seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d", s.at_minute_of_day / 60, s.at_minute_of_day % 60);
  std::string days = s.weekdays == 0x7f || s.weekdays == 0 ? "every day" : "on some days";
  return days + " at " + buf + " " + s.timezone;
}

std::string DescribeTrigger(const dsl::CompiledRule& r) {
  std::string t;
  switch (r.trigger) {
    case dsl::TriggerKind::kEvent:
      t = "on " + r.event;
      break;
    case dsl::TriggerKind::kCrossing: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", r.threshold);
      t = "on " + r.event +
          (r.direction == dsl::CrossDirection::kAbove ? " crosses above " : " crosses below ") +
          buf;
      break;
    }
    case dsl::TriggerKind::kSchedule:
      t = DescribeSchedule(r.schedule);
      break;
    case dsl::TriggerKind::kNone:
      t = "-";
      break;
  }
  if (r.scope)
    t += (r.scope->across ? ", across " : ", for each ") + r.scope->var + " in " + r.scope->table;
  return t;
}

std::vector<UnitInfo> Units(const dsl::Program& p) {
  std::vector<UnitInfo> units;
  for (const auto& r : p.rules) {
    units.push_back({"rule:" + r.name, "rule", r.name, ModeName(r.meta.mode), r.version, r.file,
                     r.line, DescribeTrigger(r)});
  }
  for (const auto& a : p.alerts) {
    std::string t = DescribeSchedule(a.schedule);
    if (a.scope) t += ", for each " + a.scope->var + " in " + a.scope->table;
    units.push_back(
        {"alert:" + a.name, "alert", a.name, ModeName(a.meta.mode), a.version, a.file, a.line, t});
  }
  for (const auto& j : p.journeys) {
    units.push_back({"journey:" + j.name, "journey", j.name, ModeName(j.meta.mode), j.version,
                     j.file, j.line, "enter on " + j.enter_event + ", for " + j.entity});
  }
  return units;
}

std::optional<double> Number(const Json& j) {
  if (j.is_number()) return j.get<double>();
  return std::nullopt;
}

// The window's spend a decision read: `sum(spend)`, or the first `sum(spend) over ...` when the
// rule has several windows. Nothing else counts (see docs/review.md).
std::optional<double> SpendOf(const Json& evidence) {
  if (!evidence.is_object()) return std::nullopt;
  auto it = evidence.find("sum(spend)");
  if (it != evidence.end()) return Number(*it);
  for (auto i = evidence.begin(); i != evidence.end(); ++i) {
    if (i.key().rfind("sum(spend) ", 0) == 0) return Number(i.value());
  }
  return std::nullopt;
}

// Collects decisions as digests; turns summaries into per-day not-fired counts.
class CollectSink final : public rules::DecisionSink {
 public:
  explicit CollectSink(Run& run) : run_(run) {}
  bool Append(rules::Decision& d) override {
    d.id = ++count_;
    if (d.kind == "summary") {
      const Json& nf = d.evidence.contains("not_fired") ? d.evidence["not_fired"] : Json::object();
      for (auto it = nf.begin(); it != nf.end(); ++it) {
        if (it.value().is_number_integer())
          run_.not_fired[DayOf(d.event_time)][it.key()] += it.value().get<std::int64_t>();
      }
      return true;
    }
    DecisionDigest g;
    g.id = ++kept_;
    g.time = d.event_time;
    g.kind = d.kind;
    g.rule = d.rule;
    g.entity_type = d.entity_type;
    g.entity_id = d.entity_id;
    g.outcome = d.outcome;
    g.reason = d.reason;
    g.spend = SpendOf(d.evidence);
    if (d.evidence.is_object() && d.evidence.contains("budget"))
      g.budget = Number(d.evidence["budget"]);
    g.actions = std::move(d.actions);
    d.actions = Json::array();
    run_.decisions.push_back(std::move(g));
    return true;
  }

 private:
  Run& run_;
  std::int64_t count_ = 0;
  std::int64_t kept_ = 0;
};

}  // namespace

std::string DayOf(TimeMs t) {
  return rules::FormatTime(t - ((t % rules::kDay) + rules::kDay) % rules::kDay).substr(0, 10);
}

Status RunHistory(const RunOptions& o, Run& run, std::string& diagnostics) {
  run = Run{};
  run.rules_dir = o.rules_dir;
  run.events_path = o.events_path;
  run.warehouse_path = o.warehouse_path;
  if (o.from && o.to && *o.to <= *o.from)
    return Status::InvalidArgument("the range is empty: --to must be after --from");
  dsl::CompileResult compiled = dsl::Compile({o.rules_dir});
  if (!compiled.io_error.empty()) return Status::IoError(compiled.io_error);
  if (!compiled.program) {
    diagnostics = dsl::RenderText(compiled.sources, compiled.diags.list());
    return Status::InvalidArgument(o.rules_dir + ": the rule files do not compile");
  }
  const dsl::Program& program = *compiled.program;
  run.program_version = program.version;
  run.units = Units(program);

  std::unique_ptr<rules::SqliteWarehouse> warehouse;
  if (!o.warehouse_path.empty()) {
    std::ifstream probe(o.warehouse_path);
    if (!probe) return Status::IoError("cannot read " + o.warehouse_path);
    auto w = rules::SqliteWarehouse::Open(o.warehouse_path);
    if (!w.ok()) return Status::IoError(w.status().message());
    warehouse = std::move(w.value());
  }

  std::ifstream in(o.events_path);
  if (!in) return Status::IoError("cannot read " + o.events_path);
  std::vector<rules::Event> events;
  TimeMs first = 0, last = 0;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    rules::Event e;
    Status s = rules::ParseEvent(program, line, e);
    if (!s.ok()) {
      ++run.events_rejected;
      if (run.rejected.size() < kKeepRejected) {
        run.rejected.push_back(o.events_path + ":" + std::to_string(n) +
                               ": rejected: " + s.message());
      }
      continue;
    }
    if (run.events_read == 0 || e.time < first) first = e.time;
    if (run.events_read == 0 || e.time > last) last = e.time;
    ++run.events_read;
    events.push_back(std::move(e));
  }
  auto midnight = [](TimeMs t) { return t - ((t % rules::kDay) + rules::kDay) % rules::kDay; };
  run.from = o.from ? *o.from : midnight(first);
  run.to = o.to ? *o.to : midnight(last) + rules::kDay;
  if (run.to <= run.from)
    return Status::InvalidArgument("the range is empty: --to must be after --from");
  events.erase(
      std::remove_if(events.begin(), events.end(),
                     [&](const rules::Event& e) { return e.time < run.from || e.time >= run.to; }),
      events.end());
  // Event-time order, ties in file order (as replay).
  std::stable_sort(events.begin(), events.end(),
                   [](const rules::Event& a, const rules::Event& b) { return a.time < b.time; });
  run.events_in_range = static_cast<std::int64_t>(events.size());

  rules::SimulatedClock clock(run.from);
  CollectSink sink(run);
  rules::EngineOptions options;
  options.run_schedules = warehouse != nullptr;
  options.track_state = false;
  rules::Engine engine(compiled.program, {&clock, &sink, warehouse.get()}, options);
  engine.Start(run.from);

  Progress progress;
  progress.from = run.from;
  progress.to = run.to;
  progress.events_total = run.events_in_range;
  auto report = [&](TimeMs now) {
    if (!o.progress) return;
    progress.now = now;
    progress.events_applied = run.events_applied;
    progress.decisions = static_cast<std::int64_t>(run.decisions.size());
    o.progress(progress);
  };
  // The summary of evaluations that did not fire is flushed at the last instant of each UTC
  // day, so its counts belong to that day. Everything due before `to` runs; `to` is excluded.
  TimeMs next_midnight =
      run.from - ((run.from % rules::kDay) + rules::kDay) % rules::kDay + rules::kDay;
  // Between events the clock moves an hour at a time, for the progress bar: advancing in
  // steps runs the same ticks and timers, in the same order, as one long step.
  TimeMs next_hour =
      run.from - ((run.from % rules::kHour) + rules::kHour) % rules::kHour + rules::kHour;
  auto run_until = [&](TimeMs t) -> Status {
    while (true) {
      TimeMs step = std::min(next_hour, next_midnight - 1);
      if (step > t) break;
      clock.Set(step);
      Status s = engine.AdvanceTo(step);
      if (!s.ok()) return s;
      if (step == next_midnight - 1) {
        s = engine.FlushSummary();
        if (!s.ok()) return s;
        report(next_midnight);
        next_midnight += rules::kDay;
      } else {
        report(step);
        next_hour += rules::kHour;
      }
    }
    clock.Set(t);
    return engine.AdvanceTo(t);
  };
  report(run.from);
  std::int64_t since_report = 0;
  for (const rules::Event& e : events) {
    Status s = run_until(e.time);
    if (s.ok()) s = engine.OnEvent(e);
    if (s.code() == Status::Code::kInvalidArgument) {
      ++run.duplicates;
      continue;
    }
    if (!s.ok()) return Status::Internal(s.message());
    ++run.events_applied;
    if (++since_report >= kProgressEvery) {
      since_report = 0;
      report(e.time);
    }
  }
  Status s = run_until(run.to - 1);
  if (s.ok()) s = engine.FlushSummary();
  if (!s.ok()) return Status::Internal(s.message());
  report(run.to);
  return Status::Ok();
}

// ------------------------------------------------------------------ aggregation

std::int64_t Cell::Fired() const {
  auto it = outcomes.find("fired");
  return it == outcomes.end() ? 0 : it->second;
}
std::int64_t Cell::Skipped() const {
  std::int64_t n = 0;
  for (const auto& [k, v] : outcomes) {
    if (k.rfind("skipped", 0) == 0) n += v;
  }
  return n;
}
std::int64_t Cell::ActionTotal() const {
  std::int64_t n = 0;
  for (const auto& [k, v] : actions) n += v;
  return n;
}
std::int64_t Cell::AlertsSent() const {
  std::int64_t n = 0;
  for (const auto& [k, v] : alerts_sent) n += v;
  return n;
}
void Cell::Add(const Cell& o) {
  decisions += o.decisions;
  not_fired += o.not_fired;
  for (const auto& [k, v] : o.outcomes) outcomes[k] += v;
  for (const auto& [k, v] : o.actions) actions[k] += v;
  for (const auto& [k, v] : o.alerts_sent) alerts_sent[k] += v;
  journey_steps += o.journey_steps;
  spend_touched += o.spend_touched;
  budget_moved += o.budget_moved;
  budget_up += o.budget_up;
  budget_down += o.budget_down;
  budget_unknown += o.budget_unknown;
  targets.insert(o.targets.begin(), o.targets.end());
  conflicts += o.conflicts;
}

namespace {

// The key a decision's outcome is counted under: the reason is kept where it is a small,
// stable set (skips, alert states, notifications, journey step names, late ticks).
std::string OutcomeKey(const DecisionDigest& d) {
  static const std::set<std::string> kWithReason = {"skipped", "alert", "notify", "step", "late"};
  if (!d.reason.empty() && kWithReason.count(d.outcome)) return d.outcome + ":" + d.reason;
  return d.outcome;
}

bool Changes(const std::string& a) { return a == "pause" || a == "enable" || a == "set_budget"; }

// Direction of a budget change: +1 up, -1 down, 0 none or unknown.
int Direction(std::optional<double> before, std::optional<double> after) {
  if (!before || !after) return 0;
  // Half a cent: reallocation rounds to cents.
  if (*after > *before + 0.005) return 1;
  if (*after < *before - 0.005) return -1;
  return 0;
}

struct Tracked {
  ActionRef ref;
  int direction = 0;  // budget only
};

}  // namespace

Report Aggregate(const Run& run, const ReportOptions& options) {
  Report r;
  r.rules_dir = run.rules_dir;
  r.events_path = run.events_path;
  r.warehouse_path = run.warehouse_path;
  r.program_version = run.program_version;
  r.from = run.from;
  r.to = run.to;
  r.events_read = run.events_read;
  r.events_in_range = run.events_in_range;
  r.events_applied = run.events_applied;
  r.events_rejected = run.events_rejected;
  r.duplicates = run.duplicates;
  r.conflict_window = options.conflict_window;
  r.units = run.units;
  for (TimeMs t = run.from; t < run.to;) {
    r.days.push_back(DayOf(t));
    t = t - ((t % rules::kDay) + rules::kDay) % rules::kDay + rules::kDay;
  }
  std::set<std::string> known;
  for (const auto& u : r.units) known.insert(u.key);
  auto unit_seen = [&](const std::string& key, const DecisionDigest* d) {
    if (known.insert(key).second) {
      UnitInfo u;
      u.key = key;
      auto colon = key.find(':');
      u.kind = d ? d->kind : key.substr(0, colon);
      u.name = d ? d->rule : key.substr(colon + 1);
      r.units.push_back(u);
    }
  };

  // Per target: the last status change (pause/enable) and the last budget change.
  std::map<std::string, Tracked> last_status, last_budget;
  std::map<std::string, double> last_budget_value;  // the last budget a set_budget asked for
  for (const DecisionDigest& d : run.decisions) {
    const std::string unit = d.Unit();
    unit_seen(unit, &d);
    const std::string day = DayOf(d.time);
    Cell& c = r.cells[unit][day];
    c.decisions++;
    c.outcomes[OutcomeKey(d)]++;
    if (d.kind == "alert" && d.outcome == "notify") c.alerts_sent[d.reason]++;
    if (d.kind == "journey" && d.outcome == "step") c.journey_steps++;
    bool touched = false;
    for (const auto& a : d.actions) {
      std::string kind = a.value("action", "?");
      c.actions[kind]++;
      if (!Changes(kind)) continue;
      std::string target = a.value("target", d.Entity());
      c.targets.insert(target);
      if (target == d.Entity()) touched = true;
      ActionRef ref;
      ref.decision = d.id;
      ref.time = d.time;
      ref.unit = unit;
      ref.rule = d.rule;
      ref.action = kind;
      ref.mode = a.value("mode", "");
      Conflict conflict;
      bool found = false;
      if (kind == "set_budget") {
        ref.after = a.contains("budget") ? Number(a["budget"]) : std::nullopt;
        if (a.contains("before"))
          ref.before = Number(a["before"]);
        else if (target == d.Entity() && d.budget)
          ref.before = d.budget;
        else if (auto it = last_budget_value.find(target); it != last_budget_value.end())
          ref.before = it->second;
        if (ref.before && ref.after) {
          double delta = *ref.after - *ref.before;
          c.budget_moved += std::fabs(delta);
          (delta > 0 ? c.budget_up : c.budget_down) += std::fabs(delta);
        } else {
          c.budget_unknown++;
        }
        if (ref.after) last_budget_value[target] = *ref.after;
        int dir = Direction(ref.before, ref.after);
        if (dir != 0) {
          auto it = last_budget.find(target);
          if (it != last_budget.end() && it->second.direction == -dir &&
              d.time - it->second.ref.time <= options.conflict_window) {
            conflict.type = "budget";
            conflict.pattern = dir < 0 ? "up_then_down" : "down_then_up";
            conflict.first = it->second.ref;
            found = true;
          }
          last_budget[target] = {ref, dir};
        }
      } else {
        auto it = last_status.find(target);
        if (it != last_status.end() && it->second.ref.action != kind &&
            d.time - it->second.ref.time <= options.conflict_window) {
          conflict.type = "pause_enable";
          conflict.pattern = it->second.ref.action + "_then_" + kind;
          conflict.first = it->second.ref;
          found = true;
        }
        last_status[target] = {ref, 0};
      }
      if (found) {
        conflict.target = target;
        conflict.second = ref;
        conflict.same_rule = conflict.first.unit == conflict.second.unit;
        c.conflicts++;
        r.conflicts.push_back(std::move(conflict));
      }
    }
    if (touched && d.spend) c.spend_touched += *d.spend;
  }
  for (const auto& [day, units] : run.not_fired) {
    for (const auto& [unit, n] : units) {
      unit_seen(unit, nullptr);
      r.cells[unit][day].not_fired += n;
    }
  }
  for (const auto& [unit, days] : r.cells) {
    for (const auto& [day, cell] : days) {
      r.by_unit[unit].Add(cell);
      r.by_day[day].Add(cell);
      r.total.Add(cell);
    }
  }
  return r;
}

// ------------------------------------------------------------------ diff

namespace {

using Key = std::tuple<TimeMs, std::string, std::string, std::string, std::string>;

Key KeyOf(const DecisionDigest& d) { return {d.time, d.kind, d.rule, d.entity_type, d.entity_id}; }

bool SameDecision(const DecisionDigest& a, const DecisionDigest& b) {
  return a.outcome == b.outcome && a.reason == b.reason && a.actions == b.actions;
}

// Decisions sorted by key, decision order within a key.
std::vector<const DecisionDigest*> Sorted(const Run& run) {
  std::vector<const DecisionDigest*> v;
  v.reserve(run.decisions.size());
  for (const auto& d : run.decisions) v.push_back(&d);
  std::stable_sort(v.begin(), v.end(), [](const DecisionDigest* a, const DecisionDigest* b) {
    return KeyOf(*a) < KeyOf(*b);
  });
  return v;
}

}  // namespace

DiffResult Diff(const Run& old_run, const Run& new_run) {
  DiffResult r;
  r.old_rules = old_run.rules_dir;
  r.new_rules = new_run.rules_dir;
  r.from = new_run.from;
  r.to = new_run.to;
  r.old_decisions = static_cast<std::int64_t>(old_run.decisions.size());
  r.new_decisions = static_cast<std::int64_t>(new_run.decisions.size());
  std::map<std::string, std::string> old_versions, new_versions;
  for (const auto& u : old_run.units) old_versions[u.key] = u.version;
  for (const auto& u : new_run.units) new_versions[u.key] = u.version;
  for (const auto& [k, v] : old_versions) {
    auto it = new_versions.find(k);
    if (it == new_versions.end())
      r.units_removed.push_back(k);
    else if (it->second != v)
      r.units_changed_version.push_back(k);
  }
  for (const auto& [k, v] : new_versions) {
    if (!old_versions.count(k)) r.units_added.push_back(k);
  }

  std::vector<const DecisionDigest*> a = Sorted(old_run), b = Sorted(new_run);
  std::size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    // The next key present on either side, and each side's decisions with it.
    Key key = i < a.size() && (j >= b.size() || KeyOf(*a[i]) <= KeyOf(*b[j])) ? KeyOf(*a[i])
                                                                              : KeyOf(*b[j]);
    std::size_t i_end = i, j_end = j;
    while (i_end < a.size() && KeyOf(*a[i_end]) == key) ++i_end;
    while (j_end < b.size() && KeyOf(*b[j_end]) == key) ++j_end;
    const std::string unit = std::get<1>(key) + ":" + std::get<2>(key);
    DiffUnitCounts& counts = r.by_unit[unit];
    // Identical decisions pair first; what is left pairs in order as changed; the rest is
    // only on one side.
    std::vector<bool> used_old(i_end - i, false), used_new(j_end - j, false);
    for (std::size_t y = j; y < j_end; ++y) {
      for (std::size_t x = i; x < i_end; ++x) {
        if (!used_old[x - i] && SameDecision(*a[x], *b[y])) {
          used_old[x - i] = used_new[y - j] = true;
          counts.same++;
          break;
        }
      }
    }
    std::vector<const DecisionDigest*> left, right;
    for (std::size_t x = i; x < i_end; ++x) {
      if (!used_old[x - i]) left.push_back(a[x]);
    }
    for (std::size_t y = j; y < j_end; ++y) {
      if (!used_new[y - j]) right.push_back(b[y]);
    }
    for (std::size_t k = 0; k < std::max(left.size(), right.size()); ++k) {
      DiffEntry e;
      if (k < left.size()) e.old_decision = *left[k];
      if (k < right.size()) e.new_decision = *right[k];
      if (k < left.size() && k < right.size()) {
        e.change = "changed";
        counts.changed++;
      } else if (k < left.size()) {
        e.change = "removed";
        counts.removed++;
      } else {
        e.change = "added";
        counts.added++;
      }
      const Json none = Json::array();
      if ((e.old_decision ? e.old_decision->actions : none) !=
          (e.new_decision ? e.new_decision->actions : none)) {
        counts.actions_differ++;
      }
      r.entries.push_back(std::move(e));
    }
    i = i_end;
    j = j_end;
  }
  for (const auto& [unit, c] : r.by_unit) {
    r.total.same += c.same;
    r.total.changed += c.changed;
    r.total.removed += c.removed;
    r.total.added += c.added;
    r.total.actions_differ += c.actions_differ;
  }
  return r;
}

void KeepActionDifferences(DiffResult& diff) {
  const Json none = Json::array();
  std::erase_if(diff.entries, [&](const DiffEntry& e) {
    return (e.old_decision ? e.old_decision->actions : none) ==
           (e.new_decision ? e.new_decision->actions : none);
  });
  diff.actions_only = true;
}

}  // namespace gavel::backtest

// ------------------------------------------------------------------ rendering: shared

namespace gavel::backtest {

namespace {

std::string Fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", std::fabs(v) < 0.005 ? 0.0 : v);
  return buf;
}

// Money in JSON: rounded to the cent, so that sums do not show float noise.
Json Cents(double v) { return std::round(v * 100) / 100; }

std::string Num(std::int64_t v) { return std::to_string(v); }

// Columns counted in characters, not bytes (names hold dashes like "–").
std::size_t Width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Cuts to `width` characters, ending in "..." when cut.
std::string Clip(const std::string& s, std::size_t width) {
  if (Width(s) <= width) return s;
  std::string out;
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80) {
      if (n == width - 3) break;
      ++n;
    }
    out += s[i];
  }
  return out + "...";
}

std::string Pad(const std::string& s, std::size_t width, bool right) {
  std::size_t w = Width(s);
  if (w >= width) return s;
  return right ? std::string(width - w, ' ') + s : s + std::string(width - w, ' ');
}

// A plain-text table: columns as wide as their widest cell, numbers right-aligned.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> headers, std::vector<bool> right)
      : headers_(std::move(headers)), right_(std::move(right)) {}
  void Row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  bool empty() const { return rows_.empty(); }
  std::string Render(const std::string& indent = "") const {
    std::vector<std::size_t> w(headers_.size(), 0);
    for (std::size_t i = 0; i < headers_.size(); ++i) w[i] = Width(headers_[i]);
    for (const auto& r : rows_) {
      for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], Width(r[i]));
    }
    auto line = [&](const std::vector<std::string>& cells) {
      std::string s = indent;
      for (std::size_t i = 0; i < w.size(); ++i) {
        const std::string& c = i < cells.size() ? cells[i] : std::string();
        bool last = i + 1 == w.size();
        s += last && !right_[i] ? c : Pad(c, w[i], right_[i]);
        if (!last) s += "  ";
      }
      while (!s.empty() && s.back() == ' ') s.pop_back();
      return s + "\n";
    };
    std::string out = line(headers_);
    for (const auto& r : rows_) out += line(r);
    return out;
  }

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// "cooldown 12, below_confidence 300"
std::string Counts(const std::map<std::string, std::int64_t>& m,
                   const std::string& strip_prefix = "") {
  std::string s;
  for (const auto& [k, v] : m) {
    if (!strip_prefix.empty() && k.rfind(strip_prefix, 0) != 0) continue;
    if (!s.empty()) s += ", ";
    s += (strip_prefix.empty() ? k : k.substr(strip_prefix.size())) + " " + std::to_string(v);
  }
  return s.empty() ? "-" : s;
}

Json CountsJson(const std::map<std::string, std::int64_t>& m) {
  Json j = Json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

std::string ShortVersion(const std::string& v) { return v.substr(0, 12); }

std::string DisplayName(const std::string& unit_key) {
  auto colon = unit_key.find(':');
  return colon == std::string::npos ? unit_key : unit_key.substr(colon + 1);
}

std::string WindowText(TimeMs w) {
  if (w % rules::kDay == 0) return std::to_string(w / rules::kDay) + "d";
  if (w % rules::kHour == 0) return std::to_string(w / rules::kHour) + "h";
  return std::to_string(w / rules::kMinute) + "m";
}

std::string GapText(TimeMs gap) {
  std::int64_t minutes = gap / rules::kMinute;
  char buf[64];
  if (minutes >= 24 * 60)
    std::snprintf(buf, sizeof buf, "%lldd %02lldh", static_cast<long long>(minutes / 1440),
                  static_cast<long long>(minutes % 1440 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", static_cast<long long>(minutes / 60),
                  static_cast<long long>(minutes % 60));
  return buf;
}

std::string Outcome(const DecisionDigest& d) {
  std::string s = d.outcome;
  if (!d.reason.empty()) s += " (" + d.reason + ")";
  return s;
}

// One side of a diff line: outcome, reason and actions.
std::string Side(const std::optional<DecisionDigest>& d) {
  if (!d) return "-";
  std::string s = Outcome(*d);
  if (!d->actions.empty()) s += ": " + SummarizeActions(d->actions);
  return s;
}

std::string ActionRefText(const ActionRef& a) {
  std::string s = "#" + std::to_string(a.decision) + " " + rules::FormatTime(a.time) + " " +
                  DisplayName(a.unit) + " " + a.action;
  if (a.action == "set_budget") {
    s += " " + (a.before ? Fixed2(*a.before) : std::string("?")) + " -> " +
         (a.after ? Fixed2(*a.after) : std::string("?"));
  }
  return s;
}

Json ActionRefJson(const ActionRef& a) {
  Json j;
  j["decision"] = a.decision;
  j["time"] = rules::FormatTime(a.time);
  j["unit"] = a.unit;
  j["action"] = a.action;
  j["mode"] = a.mode;
  if (a.action == "set_budget") {
    j["before"] = a.before ? Cents(*a.before) : Json(nullptr);
    j["after"] = a.after ? Cents(*a.after) : Json(nullptr);
  }
  return j;
}

Json CellJson(const Cell& c) {
  Json j;
  j["decisions"] = c.decisions;
  j["fired"] = c.Fired();
  j["skipped"] = c.Skipped();
  j["not_fired"] = c.not_fired;
  j["outcomes"] = CountsJson(c.outcomes);
  j["actions"] = CountsJson(c.actions);
  j["actions_total"] = c.ActionTotal();
  j["spend_touched"] = Cents(c.spend_touched);
  j["budget_moved"] = Cents(c.budget_moved);
  j["budget_up"] = Cents(c.budget_up);
  j["budget_down"] = Cents(c.budget_down);
  j["budget_unknown"] = c.budget_unknown;
  j["alerts_sent"] = CountsJson(c.alerts_sent);
  j["alerts_sent_total"] = c.AlertsSent();
  j["journey_steps"] = c.journey_steps;
  j["entities_changed"] = static_cast<std::int64_t>(c.targets.size());
  j["conflicts"] = c.conflicts;
  return j;
}

Json DigestJson(const DecisionDigest& d) {
  Json j;
  j["decision"] = d.id;
  j["time"] = rules::FormatTime(d.time);
  j["outcome"] = d.outcome;
  j["reason"] = d.reason;
  j["actions"] = d.actions;
  return j;
}

const Cell kEmptyCell;

const Cell& CellAt(const Report& r, const std::string& unit, const std::string& day) {
  auto u = r.cells.find(unit);
  if (u == r.cells.end()) return kEmptyCell;
  auto d = u->second.find(day);
  return d == u->second.end() ? kEmptyCell : d->second;
}

const Cell& UnitTotal(const Report& r, const std::string& unit) {
  auto it = r.by_unit.find(unit);
  return it == r.by_unit.end() ? kEmptyCell : it->second;
}

std::string TotalsLine(const Cell& t, std::size_t conflicts) {
  return Num(t.decisions) + " decisions (" + Num(t.Fired()) + " fired, " + Num(t.Skipped()) +
         " skipped), " + Num(t.not_fired) + " evaluations not fired; " + Num(t.ActionTotal()) +
         " intended actions; spend touched " + Fixed2(t.spend_touched) + "; budget moved " +
         Fixed2(t.budget_moved) + " (up " + Fixed2(t.budget_up) + ", down " +
         Fixed2(t.budget_down) + "); " + Num(t.AlertsSent()) + " alerts sent; " +
         Num(t.journey_steps) + " journey steps; " + std::to_string(conflicts) + " conflicts";
}

// Conflicts grouped by type and the rules involved: what a reviewer fixes is a pair of rules
// (or one oscillating rule), not each instance.
struct ConflictGroup {
  std::string type, who;
  bool same_rule = false;
  std::int64_t count = 0;
  std::set<std::string> targets;
};

std::vector<ConflictGroup> GroupConflicts(const std::vector<Conflict>& conflicts) {
  std::map<std::pair<std::string, std::string>, ConflictGroup> groups;
  for (const auto& c : conflicts) {
    std::string a = DisplayName(c.first.unit), b = DisplayName(c.second.unit);
    if (b < a) std::swap(a, b);
    std::string who = c.same_rule ? a + " (oscillation)" : a + " vs " + b;
    ConflictGroup& g = groups[{c.type, who}];
    g.type = c.type;
    g.who = who;
    g.same_rule = c.same_rule;
    g.count++;
    g.targets.insert(c.target);
  }
  std::vector<ConflictGroup> out;
  for (auto& [k, g] : groups) out.push_back(std::move(g));
  return out;
}

}  // namespace

std::string SummarizeActions(const Json& actions) {
  std::string s;
  for (const auto& a : actions) {
    if (!s.empty()) s += "; ";
    std::string kind = a.value("action", "?");
    s += kind;
    if (a.contains("target")) s += " " + a.value("target", "");
    if (kind == "set_budget") {
      if (a.contains("before") && a["before"].is_number())
        s += " " + Fixed2(a["before"].get<double>()) + " ->";
      if (a.contains("budget") && a["budget"].is_number())
        s += " " + Fixed2(a["budget"].get<double>());
    } else if (kind == "notify_slack") {
      s += " " + a.value("channel", "");
      if (a.contains("state")) s += " " + a.value("state", "");
      if (a.contains("entities") && a["entities"].is_array())
        s += " (" + std::to_string(a["entities"].size()) + " entities)";
    } else if (kind == "webhook") {
      s += " " + a.value("name", "");
    } else if (kind == "email" || kind == "message") {
      s += " " + a.value("template", "");
      if (kind == "message") s += " via " + a.value("via", "");
    } else if (kind == "set") {
      s += " " + a.value("field", "") + " = " +
           (a.contains("value")
                ? a["value"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                : "?");
    }
  }
  return s;
}

// ------------------------------------------------------------------ text

std::string RenderDiffBody(const DiffResult& d, std::size_t limit, const std::string& indent);

std::string RenderText(const Report& r, std::size_t diff_limit) {
  std::string out;
  out += "gavel backtest\n";
  out += "  rules      " + r.rules_dir + " (program " + ShortVersion(r.program_version) + ")\n";
  out += "  events     " + r.events_path + ": " + Num(r.events_read) + " valid, " +
         Num(r.events_in_range) + " in range, " + Num(r.events_applied) + " applied, " +
         Num(r.duplicates) + " duplicates, " + Num(r.events_rejected) + " rejected lines\n";
  out += "  warehouse  " +
         (r.warehouse_path.empty() ? std::string("(none: scheduled rules and alerts not run)")
                                   : r.warehouse_path) +
         "\n";
  out += "  range      " + rules::FormatTime(r.from) + " .. " + rules::FormatTime(r.to) + " (" +
         std::to_string(r.days.size()) + " simulated days, UTC, end excluded)\n";
  out += "  totals     " + TotalsLine(r.total, r.conflicts.size()) + "\n\n";

  out += "Units\n";
  TextTable units({"unit", "kind", "mode", "decisions", "fired", "skipped", "not fired", "actions",
                   "spend touched", "budget moved", "alerts sent", "journey steps", "entities",
                   "conflicts", "trigger"},
                  {false, false, false, true, true, true, true, true, true, true, true, true, true,
                   true, false});
  for (const auto& u : r.units) {
    const Cell& c = UnitTotal(r, u.key);
    units.Row({u.name, u.kind, u.mode.empty() ? "-" : u.mode, Num(c.decisions), Num(c.Fired()),
               Num(c.Skipped()), Num(c.not_fired), Num(c.ActionTotal()), Fixed2(c.spend_touched),
               Fixed2(c.budget_moved), Num(c.AlertsSent()), Num(c.journey_steps),
               Num(static_cast<std::int64_t>(c.targets.size())), Num(c.conflicts),
               u.trigger.empty() ? "-" : u.trigger});
  }
  out += units.Render("  ") + "\n";

  out += "Outcomes and actions per unit\n";
  TextTable detail({"unit", "outcomes", "intended actions", "alerts sent"},
                   {false, false, false, false});
  for (const auto& u : r.units) {
    const Cell& c = UnitTotal(r, u.key);
    if (c.decisions == 0) continue;
    detail.Row({u.name, Counts(c.outcomes), Counts(c.actions), Counts(c.alerts_sent)});
  }
  out += detail.empty() ? "  (no decisions)\n\n" : detail.Render("  ") + "\n";

  out += "Per day\n";
  TextTable days({"day", "unit", "decisions", "not fired", "fired", "skipped", "actions",
                  "spend touched", "budget moved", "alerts sent", "outcomes", "intended actions"},
                 {false, false, true, true, true, true, true, true, true, true, false, false});
  for (const auto& day : r.days) {
    for (const auto& u : r.units) {
      const Cell& c = CellAt(r, u.key, day);
      if (c.decisions == 0 && c.not_fired == 0) continue;
      days.Row({day, u.name, Num(c.decisions), Num(c.not_fired), Num(c.Fired()), Num(c.Skipped()),
                Num(c.ActionTotal()), Fixed2(c.spend_touched), Fixed2(c.budget_moved),
                Num(c.AlertsSent()), Counts(c.outcomes), Counts(c.actions)});
    }
  }
  out += days.empty() ? "  (nothing happened)\n\n" : days.Render("  ") + "\n";

  out += "Conflicts (an entity's change undone within " + WindowText(r.conflict_window) + ")\n";
  if (r.conflicts.empty()) {
    out += "  none\n";
  } else {
    TextTable groups({"type", "rules", "conflicts", "entities"}, {false, false, true, true});
    for (const auto& g : GroupConflicts(r.conflicts)) {
      groups.Row({g.type, g.who, Num(g.count), Num(static_cast<std::int64_t>(g.targets.size()))});
    }
    out += groups.Render("  ") + "\n";
    TextTable t({"#", "target", "pattern", "who", "gap", "first", "second"},
                {true, false, false, false, true, false, false});
    std::size_t n = 0;
    for (const auto& c : r.conflicts) {
      t.Row({std::to_string(++n), c.target, c.pattern,
             c.same_rule ? "oscillation (one rule)" : "different rules",
             GapText(c.second.time - c.first.time), ActionRefText(c.first),
             ActionRefText(c.second)});
    }
    out += t.Render("  ");
  }
  if (r.against) {
    out += "\nAgainst " + r.against->old_rules + " (old) -> " + r.against->new_rules + " (new)\n";
    out += RenderDiffBody(*r.against, diff_limit, "  ");
  }
  return out;
}

std::string RenderDiffBody(const DiffResult& d, std::size_t limit, const std::string& indent) {
  std::string out;
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s.empty() ? std::string("none") : s;
  };
  out += indent + "units only in old: " + list(d.units_removed) +
         "; only in new: " + list(d.units_added) + "; changed: " + list(d.units_changed_version) +
         "\n";
  out += indent + "decisions: old " + Num(d.old_decisions) + ", new " + Num(d.new_decisions) +
         "; same " + Num(d.total.same) + ", changed " + Num(d.total.changed) +
         ", removed (only old) " + Num(d.total.removed) + ", added (only new) " +
         Num(d.total.added) + "; with different actions " + Num(d.total.actions_differ) + "\n\n";
  TextTable per({"unit", "same", "changed", "removed", "added", "actions differ"},
                {false, true, true, true, true, true});
  for (const auto& [unit, c] : d.by_unit)
    per.Row(
        {unit, Num(c.same), Num(c.changed), Num(c.removed), Num(c.added), Num(c.actions_differ)});
  out += per.empty() ? indent + "(no decisions on either side)\n" : per.Render(indent);
  if (d.entries.empty()) {
    out += "\n" + indent + "no differences\n";
    return out;
  }
  std::size_t shown = limit == 0 ? d.entries.size() : std::min(limit, d.entries.size());
  out += "\n" + indent + (d.actions_only ? "differences in intended actions" : "differences");
  if (shown < d.entries.size()) {
    out += " (first " + std::to_string(shown) + " of " + std::to_string(d.entries.size()) +
           "; --limit N shows more, --limit 0 all)";
  }
  out += "\n";
  // Side by side: each side clipped to a fixed width so the columns line up.
  constexpr std::size_t kSide = 60;
  TextTable t({"time", "unit", "entity", "change", "old", "new"},
              {false, false, false, false, false, false});
  for (std::size_t k = 0; k < shown; ++k) {
    const DiffEntry& e = d.entries[k];
    const DecisionDigest& any = e.new_decision ? *e.new_decision : *e.old_decision;
    t.Row({rules::FormatTime(any.time), any.rule, any.Entity().empty() ? "-" : any.Entity(),
           e.change, Pad(Clip(Side(e.old_decision), kSide), kSide, false) + " |",
           Clip(Side(e.new_decision), kSide)});
  }
  out += t.Render(indent);
  return out;
}

std::string RenderDiffText(const DiffResult& d, std::size_t limit) {
  std::string out = "gavel diff: " + d.old_rules + " (old) -> " + d.new_rules + " (new), " +
                    rules::FormatTime(d.from) + " .. " + rules::FormatTime(d.to) + "\n";
  return out + RenderDiffBody(d, limit, "");
}

// ------------------------------------------------------------------ JSON

Json RenderDiffJson(const DiffResult& d) {
  Json j;
  j["schema"] = "gavel.diff/1";
  j["old_rules"] = d.old_rules;
  j["new_rules"] = d.new_rules;
  j["from"] = rules::FormatTime(d.from);
  j["to"] = rules::FormatTime(d.to);
  j["units_removed"] = d.units_removed;
  j["units_added"] = d.units_added;
  j["units_changed_version"] = d.units_changed_version;
  auto counts = [](const DiffUnitCounts& c) {
    Json x;
    x["same"] = c.same;
    x["changed"] = c.changed;
    x["removed"] = c.removed;
    x["added"] = c.added;
    x["actions_differ"] = c.actions_differ;
    return x;
  };
  Json totals = counts(d.total);
  totals["old_decisions"] = d.old_decisions;
  totals["new_decisions"] = d.new_decisions;
  j["totals"] = totals;
  Json units = Json::object();
  for (const auto& [unit, c] : d.by_unit) units[unit] = counts(c);
  j["units"] = units;
  Json entries = Json::array();
  for (const auto& e : d.entries) {
    const DecisionDigest& any = e.new_decision ? *e.new_decision : *e.old_decision;
    Json x;
    x["change"] = e.change;
    x["time"] = rules::FormatTime(any.time);
    x["unit"] = any.Unit();
    x["entity"] = any.Entity();
    x["old"] = e.old_decision ? DigestJson(*e.old_decision) : Json(nullptr);
    x["new"] = e.new_decision ? DigestJson(*e.new_decision) : Json(nullptr);
    entries.push_back(std::move(x));
  }
  j["actions_only"] = d.actions_only;
  j["differences"] = std::move(entries);
  return j;
}

Json RenderJson(const Report& r) {
  Json j;
  j["schema"] = "gavel.backtest/1";
  Json run;
  run["rules"] = r.rules_dir;
  run["program_version"] = r.program_version;
  run["events"] = r.events_path;
  run["warehouse"] = r.warehouse_path.empty() ? Json(nullptr) : Json(r.warehouse_path);
  run["from"] = rules::FormatTime(r.from);
  run["to"] = rules::FormatTime(r.to);
  run["days"] = r.days.size();
  run["events_read"] = r.events_read;
  run["events_in_range"] = r.events_in_range;
  run["events_applied"] = r.events_applied;
  run["duplicate_events"] = r.duplicates;
  run["rejected_lines"] = r.events_rejected;
  run["conflict_window_hours"] = r.conflict_window / rules::kHour;
  j["run"] = run;
  j["totals"] = CellJson(r.total);
  Json units = Json::array();
  for (const auto& u : r.units) {
    Json x;
    x["unit"] = u.key;
    x["kind"] = u.kind;
    x["name"] = u.name;
    x["mode"] = u.mode;
    x["version"] = u.version;
    x["file"] = u.file;
    x["line"] = u.line;
    x["trigger"] = u.trigger;
    x["totals"] = CellJson(UnitTotal(r, u.key));
    units.push_back(std::move(x));
  }
  j["units"] = std::move(units);
  Json days = Json::array();
  for (const auto& day : r.days) {
    Json x;
    x["day"] = day;
    auto it = r.by_day.find(day);
    x["totals"] = CellJson(it == r.by_day.end() ? kEmptyCell : it->second);
    Json per = Json::object();
    for (const auto& u : r.units) {
      const Cell& c = CellAt(r, u.key, day);
      if (c.decisions == 0 && c.not_fired == 0) continue;
      per[u.key] = CellJson(c);
    }
    x["units"] = std::move(per);
    days.push_back(std::move(x));
  }
  j["days"] = std::move(days);
  Json conflicts = Json::array();
  for (const auto& c : r.conflicts) {
    Json x;
    x["type"] = c.type;
    x["pattern"] = c.pattern;
    x["target"] = c.target;
    x["same_rule"] = c.same_rule;
    x["gap_hours"] =
        std::round(static_cast<double>(c.second.time - c.first.time) / rules::kHour * 100) / 100;
    x["first"] = ActionRefJson(c.first);
    x["second"] = ActionRefJson(c.second);
    conflicts.push_back(std::move(x));
  }
  j["conflicts"] = std::move(conflicts);
  Json groups = Json::array();
  for (const auto& g : GroupConflicts(r.conflicts)) {
    Json x;
    x["type"] = g.type;
    x["rules"] = g.who;
    x["same_rule"] = g.same_rule;
    x["conflicts"] = g.count;
    x["entities"] = Json(std::vector<std::string>(g.targets.begin(), g.targets.end()));
    groups.push_back(std::move(x));
  }
  j["conflict_groups"] = std::move(groups);
  j["against"] = r.against ? RenderDiffJson(*r.against) : Json(nullptr);
  return j;
}

}  // namespace gavel::backtest

// ------------------------------------------------------------------ HTML

namespace gavel::backtest {

namespace {

std::string Esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// A colour per unit, in unit order (Tableau 10: distinguishable, and readable when printed).
const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

struct Series {
  std::string name;
  std::string color;
  std::vector<double> values;  // one per day
};

// The step between the four gridlines: 1, 2, 2.5 or 5 times a power of ten, at least max/4;
// whole numbers only for counts.
double NiceStep(double max, bool money) {
  double v = max / 4;
  if (v <= 0) return 1;
  double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (!money && m == 2.5 && p < 10) continue;
    double step = m * p;
    if (!money && step < 1) continue;
    if (step >= v - 1e-9) return step;
  }
  return 10 * p;
}

std::string AxisLabel(double v, bool money) {
  if (v >= 1e6) return Fmt(std::fmod(v, 1e6) == 0 ? "%.0fM" : "%.2fM", v / 1e6);
  if (v >= 1e4) return Fmt(std::fmod(v, 1e3) == 0 ? "%.0fk" : "%.1fk", v / 1e3);
  if (money && std::fmod(v, 1) != 0) return Fmt("%.2f", v);
  return Fmt("%.0f", v);
}

// A stacked bar chart as inline SVG: one bar per day, one colour per series, a <title> on
// every segment for the exact number.
std::string StackedBars(const std::string& id, const std::string& title,
                        const std::vector<std::string>& days, const std::vector<Series>& all_series,
                        bool money) {
  std::vector<const Series*> series;
  for (const auto& s : all_series) {
    bool any = false;
    for (double v : s.values) any = any || v > 0;
    if (any) series.push_back(&s);
  }
  constexpr double kW = 960, kH = 280, kLeft = 64, kRight = 12, kTop = 14, kBottom = 36;
  const double plot_w = kW - kLeft - kRight, plot_h = kH - kTop - kBottom;
  std::vector<double> totals(days.size(), 0);
  for (const auto* s : series) {
    for (std::size_t i = 0; i < days.size() && i < s->values.size(); ++i) totals[i] += s->values[i];
  }
  const double top =
      4 * NiceStep(totals.empty() ? 0 : *std::max_element(totals.begin(), totals.end()), money);
  std::string svg = "<figure class=\"chart\" id=\"" + Esc(id) + "\"><figcaption>" + Esc(title) +
                    "</figcaption>\n";
  svg += "<svg viewBox=\"0 0 960 280\" role=\"img\" aria-label=\"" + Esc(title) +
         "\" xmlns=\"http://www.w3.org/2000/svg\">\n";
  for (int k = 0; k <= 4; ++k) {
    double v = top * k / 4, y = kTop + plot_h - plot_h * k / 4;
    svg += "<line class=\"grid\" x1=\"" + Fmt("%.1f", kLeft) + "\" x2=\"" +
           Fmt("%.1f", kW - kRight) + "\" y1=\"" + Fmt("%.1f", y) + "\" y2=\"" + Fmt("%.1f", y) +
           "\"/>";
    svg += "<text class=\"axis\" x=\"" + Fmt("%.1f", kLeft - 6) + "\" y=\"" + Fmt("%.1f", y + 4) +
           "\" text-anchor=\"end\">" + Esc(AxisLabel(v, money)) + "</text>\n";
  }
  const double slot = days.empty() ? plot_w : plot_w / static_cast<double>(days.size());
  const std::size_t label_every = std::max<std::size_t>(1, (days.size() + 13) / 14);
  for (std::size_t i = 0; i < days.size(); ++i) {
    double x = kLeft + slot * static_cast<double>(i);
    double y = kTop + plot_h;
    for (const auto* s : series) {
      double v = i < s->values.size() ? s->values[i] : 0;
      if (v <= 0) continue;
      double h = plot_h * v / top;
      y -= h;
      svg += "<rect x=\"" + Fmt("%.2f", x + slot * 0.1) + "\" y=\"" + Fmt("%.2f", y) +
             "\" width=\"" + Fmt("%.2f", slot * 0.8) + "\" height=\"" + Fmt("%.2f", h) +
             "\" fill=\"" + s->color + "\"><title>" +
             Esc(days[i] + " " + s->name + ": " + (money ? Fixed2(v) : Fmt("%.0f", v))) +
             "</title></rect>";
    }
    if (i % label_every == 0) {
      svg += "<text class=\"axis\" x=\"" + Fmt("%.2f", x + slot / 2) + "\" y=\"" +
             Fmt("%.1f", kH - kBottom + 16) + "\" text-anchor=\"middle\">" +
             Esc(days[i].substr(5)) + "</text>";
    }
    svg += "\n";
  }
  svg += "<line class=\"baseline\" x1=\"" + Fmt("%.1f", kLeft) + "\" x2=\"" +
         Fmt("%.1f", kW - kRight) + "\" y1=\"" + Fmt("%.1f", kTop + plot_h) + "\" y2=\"" +
         Fmt("%.1f", kTop + plot_h) + "\"/>\n";
  if (series.empty()) {
    svg +=
        "<text class=\"empty\" x=\"480\" y=\"130\" text-anchor=\"middle\">nothing in this "
        "period</text>\n";
  }
  svg += "</svg>\n<div class=\"legend\">";
  for (const auto* s : series) {
    svg += "<span><i style=\"background:" + s->color + "\"></i>" + Esc(s->name) + "</span>";
  }
  svg += "</div></figure>\n";
  return svg;
}

const char* const kCss = R"CSS(
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #ffffff; --band: #f5f7fa; --accent: #4e79a7; --bad: #c0392b; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
p.note { color: var(--muted); margin: 4px 0 12px; max-width: 72em; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.run dt { color: var(--muted); }
dl.run dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 20px 0 8px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 140px; background: var(--band); }
.card b { display: block; font-size: 20px; }
.card span { color: var(--muted); font-size: 12px; }
.card.bad b { color: var(--bad); }
figure.chart { margin: 12px 0 20px; max-width: 1000px; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
figure.chart svg { width: 100%; height: auto; display: block; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .baseline { stroke: var(--muted); stroke-width: 1; }
svg .axis { fill: var(--muted); font-size: 11px; }
svg .empty { fill: var(--muted); font-size: 14px; }
svg rect:hover { opacity: 0.75; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; vertical-align: -1px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--band); position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \25B2"; font-size: 10px; }
table.sortable th[aria-sort=descending]::after { content: " \25BC"; font-size: 10px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.detail { color: var(--muted); font-size: 12px; max-width: 36em; }
td.mono, span.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
tr.osc td:first-child { border-left: 3px solid var(--bad); }
td.old { background: #fdf0ef; } td.new { background: #eef7ee; }
input#days-filter { padding: 4px 8px; border: 1px solid var(--line); border-radius: 4px; min-width: 24em; }
.none { color: var(--muted); }
.scroll { overflow-x: auto; max-width: 100%; }
)CSS";

const char* const kScript = R"JS(
(function () {
  'use strict';
  function value(td) {
    var v = td.getAttribute('data-v');
    return v !== null ? parseFloat(v) : td.textContent;
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        rows.sort(function (a, b) {
          var x = value(a.cells[col]), y = value(b.cells[col]);
          var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  var filter = document.getElementById('days-filter');
  if (filter) {
    filter.addEventListener('input', function () {
      var q = filter.value.toLowerCase();
      document.querySelectorAll('#days-table tbody tr').forEach(function (tr) {
        tr.hidden = q !== '' && tr.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }
  document.documentElement.setAttribute('data-report-ready', 'yes');
})();
)JS";

std::string Head(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta name=\"generator\" content=\"gavel\">\n<title>" +
         Esc(title) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
}

std::string Foot() { return std::string("<script>") + kScript + "</script>\n</body>\n</html>\n"; }

std::string Td(const std::string& text, const char* cls = nullptr) {
  return cls ? "<td class=\"" + std::string(cls) + "\">" + Esc(text) + "</td>"
             : "<td>" + Esc(text) + "</td>";
}
std::string TdN(std::int64_t v) {
  return "<td class=\"n\" data-v=\"" + std::to_string(v) + "\">" + std::to_string(v) + "</td>";
}
std::string TdMoney(double v) {
  std::string f = Fixed2(v);
  return "<td class=\"n\" data-v=\"" + f + "\">" + f + "</td>";
}
std::string Card(const std::string& value, const std::string& label, bool bad = false) {
  return std::string("<div class=\"card") + (bad ? " bad" : "") + "\"><b>" + Esc(value) +
         "</b><span>" + Esc(label) + "</span></div>";
}

std::string DiffSection(const DiffResult& d, std::size_t limit, const std::string& heading) {
  std::string h = "<section id=\"diff\">\n<h2>" + Esc(heading) + "</h2>\n";
  h += "<p class=\"note\">Decisions of <span class=\"mono\">" + Esc(d.old_rules) +
       "</span> (old) and <span class=\"mono\">" + Esc(d.new_rules) +
       "</span> (new) over the same history, paired by time, unit and entity. Changed: outcome, "
       "reason or "
       "actions differ. Removed: only the old rules decided. Added: only the new rules "
       "decided.</p>\n";
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s.empty() ? std::string("none") : s;
  };
  h += "<dl class=\"run\"><dt>units only in old</dt><dd>" + Esc(list(d.units_removed)) +
       "</dd><dt>units only in new</dt><dd>" + Esc(list(d.units_added)) +
       "</dd><dt>units changed</dt><dd>" + Esc(list(d.units_changed_version)) + "</dd></dl>\n";
  h += "<div class=\"cards\">" + Card(Num(d.old_decisions), "old decisions") +
       Card(Num(d.new_decisions), "new decisions") + Card(Num(d.total.same), "same") +
       Card(Num(d.total.changed), "changed", d.total.changed > 0) +
       Card(Num(d.total.removed), "removed", d.total.removed > 0) +
       Card(Num(d.total.added), "added", d.total.added > 0) +
       Card(Num(d.total.actions_differ), "with different actions", d.total.actions_differ > 0) +
       "</div>\n";
  h += "<table id=\"diff-units\" "
       "class=\"sortable\"><thead><tr><th>unit</th><th>same</th><th>changed</th><th>removed</th>"
       "<th>added</th><th>actions differ</th></tr></thead><tbody>\n";
  for (const auto& [unit, c] : d.by_unit) {
    h += "<tr>" + Td(unit) + TdN(c.same) + TdN(c.changed) + TdN(c.removed) + TdN(c.added) +
         TdN(c.actions_differ) + "</tr>\n";
  }
  h += "</tbody></table>\n";
  if (d.entries.empty()) {
    return h + "<p class=\"none\">No differences" + (d.actions_only ? " in intended actions" : "") +
           ".</p>\n</section>\n";
  }
  if (d.actions_only)
    h += "<p class=\"note\">Only the differences in intended actions are listed.</p>\n";
  std::size_t shown = limit == 0 ? d.entries.size() : std::min(limit, d.entries.size());
  if (shown < d.entries.size()) {
    h += "<p class=\"note\">The first " + std::to_string(shown) + " of " +
         std::to_string(d.entries.size()) + " differences (the JSON output lists all).</p>\n";
  }
  h += "<div class=\"scroll\"><table "
       "id=\"diff-table\"><thead><tr><th>time</th><th>unit</th><th>entity</th><th>change</"
       "th><th>old</th>"
       "<th>new</th></tr></thead><tbody>\n";
  for (std::size_t k = 0; k < shown; ++k) {
    const DiffEntry& e = d.entries[k];
    const DecisionDigest& any = e.new_decision ? *e.new_decision : *e.old_decision;
    h += "<tr>" + Td(rules::FormatTime(any.time), "mono") + Td(any.rule) +
         Td(any.Entity().empty() ? "-" : any.Entity(), "mono") + Td(e.change) +
         Td(Side(e.old_decision), "old") + Td(Side(e.new_decision), "new") + "</tr>\n";
  }
  return h + "</tbody></table></div>\n</section>\n";
}

}  // namespace

std::string RenderHtml(const Report& r, std::size_t diff_limit) {
  std::string title = "gavel backtest: " + r.rules_dir + ", " + rules::FormatTime(r.from) + " .. " +
                      rules::FormatTime(r.to);
  std::string h = Head(title);
  h += "<header>\n<h1>gavel backtest</h1>\n<dl class=\"run\">";
  h += "<dt>rules</dt><dd>" + Esc(r.rules_dir) + " (program " +
       Esc(ShortVersion(r.program_version)) + ")</dd>";
  h += "<dt>events</dt><dd>" + Esc(r.events_path) + ": " + Num(r.events_read) + " valid, " +
       Num(r.events_in_range) + " in range, " + Num(r.events_applied) + " applied, " +
       Num(r.duplicates) + " duplicates, " + Num(r.events_rejected) + " rejected lines</dd>";
  h += "<dt>warehouse</dt><dd>" +
       Esc(r.warehouse_path.empty() ? "(none: scheduled rules and alerts not run)"
                                    : r.warehouse_path) +
       "</dd>";
  h += "<dt>range</dt><dd>" + Esc(rules::FormatTime(r.from)) + " .. " +
       Esc(rules::FormatTime(r.to)) + " (" + std::to_string(r.days.size()) +
       " simulated days, UTC, end excluded)</dd>";
  h += "</dl>\n</header>\n";
  const Cell& t = r.total;
  h += "<section id=\"summary\" class=\"cards\">" + Card(Num(t.decisions), "decisions") +
       Card(Num(t.Fired()), "fired") + Card(Num(t.Skipped()), "skipped") +
       Card(Num(t.ActionTotal()), "intended actions") +
       Card(Fixed2(t.spend_touched), "spend touched") +
       Card(Fixed2(t.budget_moved), "budget moved") + Card(Num(t.AlertsSent()), "alerts sent") +
       Card(Num(t.journey_steps), "journey steps") +
       Card(std::to_string(r.conflicts.size()), "conflicts", !r.conflicts.empty()) + "</section>\n";

  // Charts: one series per unit, in unit order and colour.
  std::vector<Series> actions, spend, alerts, budget;
  for (std::size_t u = 0; u < r.units.size(); ++u) {
    const std::string color = kPalette[u % (sizeof kPalette / sizeof kPalette[0])];
    Series a{r.units[u].name, color, {}}, s = a, al = a, b = a;
    for (const auto& day : r.days) {
      const Cell& c = CellAt(r, r.units[u].key, day);
      a.values.push_back(static_cast<double>(c.ActionTotal()));
      s.values.push_back(c.spend_touched);
      al.values.push_back(static_cast<double>(c.AlertsSent()));
      b.values.push_back(c.budget_moved);
    }
    actions.push_back(std::move(a));
    spend.push_back(std::move(s));
    alerts.push_back(std::move(al));
    budget.push_back(std::move(b));
  }
  h += "<section id=\"charts\">\n<h2>Per day</h2>\n";
  h += StackedBars("chart-actions", "Intended actions per day, by rule", r.days, actions, false);
  h += StackedBars(
      "chart-spend",
      "Spend touched per day, by rule (window spend of paused, enabled or re-budgeted entities)",
      r.days, spend, true);
  h += StackedBars("chart-budget", "Budget moved per day, by rule (sum of |after - before|)",
                   r.days, budget, true);
  h += StackedBars("chart-alerts", "Alert notifications per day, by alert", r.days, alerts, false);
  h += "</section>\n";

  h += "<section id=\"units\">\n<h2>Rules</h2>\n<p class=\"note\">Totals over the whole range. "
       "Click a column to sort. "
       "Not fired: evaluations whose condition did not hold (from the engine's per-day "
       "summaries).</p>\n";
  h += "<div class=\"scroll\"><table id=\"units-table\" "
       "class=\"sortable\"><thead><tr><th>unit</th><th>kind</th><th>mode</th><th>trigger</th>"
       "<th>decisions</th><th>fired</th><th>skipped</th><th>not "
       "fired</th><th>actions</th><th>spend touched</th>"
       "<th>budget moved</th><th>alerts sent</th><th>journey "
       "steps</th><th>entities</th><th>conflicts</th>"
       "<th>outcomes</th><th>intended actions</th><th>version</th></tr></thead><tbody>\n";
  for (const auto& u : r.units) {
    const Cell& c = UnitTotal(r, u.key);
    h += "<tr>" + Td(u.name) + Td(u.kind) + Td(u.mode.empty() ? "-" : u.mode) +
         Td(u.trigger.empty() ? "-" : u.trigger, "detail") + TdN(c.decisions) + TdN(c.Fired()) +
         TdN(c.Skipped()) + TdN(c.not_fired) + TdN(c.ActionTotal()) + TdMoney(c.spend_touched) +
         TdMoney(c.budget_moved) + TdN(c.AlertsSent()) + TdN(c.journey_steps) +
         TdN(static_cast<std::int64_t>(c.targets.size())) + TdN(c.conflicts) +
         Td(Counts(c.outcomes), "detail") + Td(Counts(c.actions), "detail") +
         Td(ShortVersion(u.version), "mono") + "</tr>\n";
  }
  h += "</tbody></table></div>\n</section>\n";

  h += "<section id=\"conflicts\">\n<h2>Conflicts</h2>\n<p class=\"note\">An entity paused and "
       "then enabled (or the "
       "reverse), or its budget moved up and then down (or the reverse), within " +
       WindowText(r.conflict_window) + ". One rule undoing itself is an oscillation.</p>\n";
  if (r.conflicts.empty()) {
    h += "<p class=\"none\" id=\"no-conflicts\">No conflicts.</p>\n";
  } else {
    h += "<table "
         "id=\"conflict-groups\"><thead><tr><th>type</th><th>rules</th><th>conflicts</"
         "th><th>entities</th></tr></thead><tbody>\n";
    for (const auto& g : GroupConflicts(r.conflicts)) {
      h += std::string(g.same_rule ? "<tr class=\"osc\">" : "<tr>") + Td(g.type) + Td(g.who) +
           TdN(g.count) + TdN(static_cast<std::int64_t>(g.targets.size())) + "</tr>\n";
    }
    h += "</tbody></table>\n";
    h += "<div class=\"scroll\"><table id=\"conflicts-table\" "
         "class=\"sortable\"><thead><tr><th>#</th><th>target</th><th>pattern</th><th>who</th>"
         "<th>gap (h)</th><th>first</th><th>second</th></tr></thead><tbody>\n";
    std::size_t n = 0;
    for (const auto& c : r.conflicts) {
      double gap_h = static_cast<double>(c.second.time - c.first.time) / rules::kHour;
      h += std::string(c.same_rule ? "<tr class=\"osc\">" : "<tr>") +
           TdN(static_cast<std::int64_t>(++n)) + Td(c.target, "mono") + Td(c.pattern) +
           Td(c.same_rule ? "oscillation: " + DisplayName(c.first.unit)
                          : DisplayName(c.first.unit) + " vs " + DisplayName(c.second.unit)) +
           "<td class=\"n\" data-v=\"" + Fmt("%.2f", gap_h) + "\">" + Fmt("%.1f", gap_h) + "</td>" +
           Td(ActionRefText(c.first), "mono") + Td(ActionRefText(c.second), "mono") + "</tr>\n";
    }
    h += "</tbody></table></div>\n";
  }
  h += "</section>\n";

  h += "<section id=\"days\">\n<h2>Per rule and day</h2>\n<p class=\"note\"><label>Filter rows: "
       "<input id=\"days-filter\" "
       "type=\"search\" placeholder=\"a day, a rule, a reason\"></label></p>\n";
  h += "<div class=\"scroll\"><table id=\"days-table\" "
       "class=\"sortable\"><thead><tr><th>day</th><th>unit</th><th>decisions</th><th>not fired</th>"
       "<th>fired</th><th>skipped</th><th>actions</th><th>spend touched</th><th>budget "
       "moved</th><th>alerts sent</th>"
       "<th>outcomes</th><th>intended actions</th></tr></thead><tbody>\n";
  for (const auto& day : r.days) {
    for (const auto& u : r.units) {
      const Cell& c = CellAt(r, u.key, day);
      if (c.decisions == 0 && c.not_fired == 0) continue;
      h += "<tr>" + Td(day, "mono") + Td(u.name) + TdN(c.decisions) + TdN(c.not_fired) +
           TdN(c.Fired()) + TdN(c.Skipped()) + TdN(c.ActionTotal()) + TdMoney(c.spend_touched) +
           TdMoney(c.budget_moved) + TdN(c.AlertsSent()) + Td(Counts(c.outcomes), "detail") +
           Td(Counts(c.actions), "detail") + "</tr>\n";
    }
  }
  h += "</tbody></table></div>\n</section>\n";
  if (r.against) h += DiffSection(*r.against, diff_limit, "Against " + r.against->old_rules);
  return h + Foot();
}

std::string RenderDiffHtml(const DiffResult& d, std::size_t limit) {
  std::string title = "gavel diff: " + d.old_rules + " -> " + d.new_rules;
  std::string h = Head(title);
  h += "<header>\n<h1>gavel diff</h1>\n<dl class=\"run\"><dt>old</dt><dd>" + Esc(d.old_rules) +
       "</dd><dt>new</dt><dd>" + Esc(d.new_rules) + "</dd><dt>range</dt><dd>" +
       Esc(rules::FormatTime(d.from)) + " .. " + Esc(rules::FormatTime(d.to)) +
       "</dd></dl>\n</header>\n";
  h += DiffSection(d, limit, "Differences");
  return h + Foot();
}

}  // namespace gavel::backtest
