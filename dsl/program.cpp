// Program lookups and the human-readable summary. See program.hpp.
#include "dsl/program.hpp"

#include <sstream>

namespace gavel::dsl {

const TableInfo* Program::FindTable(const std::string& name) const {
  for (const auto& t : tables) {
    if (t.name == name) return &t;
  }
  return nullptr;
}
const EventInfo* Program::FindEvent(const std::string& name) const {
  for (const auto& e : events) {
    if (e.name == name) return &e;
  }
  return nullptr;
}
const EntityInfo* Program::FindEntity(const std::string& name) const {
  for (const auto& e : entities) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

namespace {

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kLive: return "live";
    case Mode::kShadow: return "shadow";
    case Mode::kDryRun: return "dry_run";
  }
  return "dry_run";
}

std::string Duration(std::int64_t s) {
  if (s % (7 * 86400) == 0) return std::to_string(s / (7 * 86400)) + "w";
  if (s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

std::string ScheduleText(const Schedule& s) {
  if (s.every_seconds > 0) return "every " + Duration(s.every_seconds);
  static const char* kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  std::string days;
  if (s.weekdays == 0x7f) {
    days = "day";
  } else {
    for (int d = 0; d < 7; ++d) {
      if (!(s.weekdays & (1 << d))) continue;
      if (!days.empty()) days += ",";
      days += kDays[d];
    }
  }
  char at[16];
  std::snprintf(at, sizeof at, "%02d:%02d", s.at_minute_of_day / 60, s.at_minute_of_day % 60);
  return "every " + days + " at " + at + " " + s.timezone;
}

std::string WindowText(const Window& w) {
  switch (w.kind) {
    case WindowKind::kLast: return "last " + Duration(w.seconds);
    case WindowKind::kLifetime: return "lifetime";
    case WindowKind::kYesterday: return "yesterday";
    case WindowKind::kToday: return "today";
    case WindowKind::kNone: return "";
  }
  return "";
}

}  // namespace

std::string DescribeProgram(const Program& p, bool with_sql) {
  std::ostringstream o;
  o << "program " << p.version.substr(0, 12) << ": " << p.files.size() << " files, "
    << p.tables.size() << " tables, " << p.events.size() << " events, " << p.entities.size()
    << " entities, " << p.scores.size() << " scores, " << p.rules.size() << " rules, "
    << p.journeys.size() << " journeys, " << p.alerts.size() << " alerts\n";
  for (const auto& s : p.scores) {
    o << "  score   " << s.name << " [" << s.version.substr(0, 12) << "] for " << s.entity << ": "
      << s.rules.size() << " point rules";
    if (s.decay == DecayKind::kInactivity) {
      o << ", decay " << s.decay_amount << " every " << Duration(s.decay_seconds) << " without activity";
    } else if (s.decay == DecayKind::kHalfLife) {
      o << ", half-life " << Duration(s.decay_seconds);
    }
    o << "\n";
  }
  for (const auto& r : p.rules) {
    o << "  rule    " << r.name << " [" << r.version.substr(0, 12) << "] " << ModeName(r.meta.mode) << ", ";
    switch (r.trigger) {
      case TriggerKind::kEvent: o << "on " << r.event; break;
      case TriggerKind::kCrossing:
        o << "on " << r.event << " crosses " << (r.direction == CrossDirection::kAbove ? "above " : "below ")
          << r.threshold;
        break;
      case TriggerKind::kSchedule: o << ScheduleText(r.schedule); break;
      case TriggerKind::kNone: break;
    }
    if (r.scope) {
      o << ", " << (r.scope->across ? "across " : "for each ") << r.scope->var << " in " << r.scope->table;
      if (r.scope->window.kind != WindowKind::kNone) o << " over " << WindowText(r.scope->window);
    }
    o << ", " << r.actions.size() << " action" << (r.actions.size() == 1 ? "" : "s");
    if (r.confidence) o << ", confidence " << r.confidence->level * 100 << "%";
    if (r.meta.require_approval) o << ", approval required";
    o << "\n";
    if (with_sql) {
      for (const auto& q : r.queries) o << "          sql: " << q.sql << "\n";
    }
  }
  for (const auto& j : p.journeys) {
    o << "  journey " << j.name << " [" << j.version.substr(0, 12) << "] for " << j.entity << ", enter on "
      << j.enter_event << ", " << j.steps.size() << " steps\n";
  }
  for (const auto& a : p.alerts) {
    o << "  alert   " << a.name << " [" << a.version.substr(0, 12) << "] " << ScheduleText(a.schedule);
    if (a.scope) o << ", for each " << a.scope->var << " in " << a.scope->table;
    o << ", " << a.anomalies.size() << " baseline test" << (a.anomalies.size() == 1 ? "" : "s") << "\n";
    if (with_sql) {
      for (const auto& q : a.queries) o << "          sql: " << q.sql << "\n";
      for (const auto& an : a.anomalies) o << "          history sql: " << an.history_sql << "\n";
    }
  }
  return o.str();
}

}  // namespace gavel::dsl
