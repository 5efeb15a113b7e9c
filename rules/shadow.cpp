// See shadow.hpp.
#include "rules/shadow.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace gavel::rules {

namespace {

struct Intent {
  const Decision* d;
  std::string rule;
  std::string action;
  std::string target;
  std::string entity_type;
  double budget = NAN;
  bool matched = false;
};

std::string Str(const nlohmann::ordered_json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::vector<Intent> IntentsOf(const std::vector<Decision>& decisions, const std::string& mode) {
  std::vector<Intent> out;
  for (const auto& d : decisions) {
    if (d.outcome != "fired" && d.outcome != "notify" && d.outcome != "step") continue;
    if (!d.actions.is_array()) continue;
    for (const auto& a : d.actions) {
      if (Str(a, "mode") != mode) continue;
      Intent in;
      in.d = &d;
      in.rule = d.rule;
      in.action = Str(a, "action");
      in.target = Str(a, "target");
      if (in.target.empty()) in.target = d.entity_type + ":" + d.entity_id;
      in.entity_type = in.target.substr(0, in.target.find(':'));
      auto b = a.find("budget");
      if (b != a.end() && b->is_number()) in.budget = b->get<double>();
      out.push_back(std::move(in));
    }
  }
  return out;
}

bool SameAction(const Intent& a, const Intent& b) {
  if (a.action != b.action || a.target != b.target) return false;
  if (std::isnan(a.budget) != std::isnan(b.budget)) return false;
  return std::isnan(a.budget) || std::fabs(a.budget - b.budget) < 0.005;
}

std::string Money(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

ShadowReport BuildShadowReport(const std::vector<Decision>& decisions, TimeMs window_ms) {
  ShadowReport report;
  std::vector<Intent> shadow = IntentsOf(decisions, "shadow");
  std::vector<Intent> live = IntentsOf(decisions, "live");
  // Which (action, entity type) pairs each shadow rule takes: live intents outside them are
  // not its business.
  std::map<std::string, std::set<std::pair<std::string, std::string>>> scope;
  for (const auto& s : shadow) scope[s.rule].insert({s.action, s.entity_type});
  for (auto& s : shadow) {
    ShadowRuleReport& r = report.rules[s.rule];
    r.rule = s.rule;
    r.intents++;
    const Intent* same = nullptr;
    const Intent* near_budget = nullptr;
    for (auto& l : live) {
      if (std::llabs(l.d->event_time - s.d->event_time) > window_ms) continue;
      if (SameAction(s, l)) {
        same = &l;
        l.matched = true;
        break;
      }
      if (l.action == s.action && l.target == s.target) near_budget = &l;
    }
    if (same) {
      r.agreed++;
      continue;
    }
    r.shadow_only++;
    ShadowDisagreement dis{"shadow_only", s.rule, "", s.action, s.target, s.d->id, s.d->event_time, ""};
    if (!std::isnan(s.budget)) {
      dis.detail = "budget " + Money(s.budget);
      if (near_budget && !std::isnan(near_budget->budget)) {
        dis.detail += " (live `" + near_budget->rule + "`: " + Money(near_budget->budget) + ")";
      }
    }
    report.disagreements.push_back(dis);
  }
  for (const auto& [rule, pairs] : scope) {
    for (const auto& l : live) {
      if (!pairs.count({l.action, l.entity_type})) continue;
      // Matched by any shadow intent of this rule within the window?
      bool matched = false;
      for (const auto& s : shadow) {
        if (s.rule == rule && std::llabs(l.d->event_time - s.d->event_time) <= window_ms && SameAction(s, l)) {
          matched = true;
          break;
        }
      }
      if (matched) continue;
      report.rules[rule].live_only++;
      ShadowDisagreement dis{"live_only", rule, l.rule, l.action, l.target, l.d->id, l.d->event_time, ""};
      if (!std::isnan(l.budget)) dis.detail = "budget " + Money(l.budget);
      report.disagreements.push_back(dis);
    }
  }
  std::stable_sort(report.disagreements.begin(), report.disagreements.end(),
                   [](const ShadowDisagreement& a, const ShadowDisagreement& b) {
                     return a.at != b.at ? a.at < b.at : a.decision_id < b.decision_id;
                   });
  return report;
}

nlohmann::ordered_json ShadowReportJson(const ShadowReport& r) {
  nlohmann::ordered_json j;
  j["rules"] = nlohmann::ordered_json::array();
  for (const auto& [name, s] : r.rules) {
    j["rules"].push_back({{"rule", name},
                          {"intents", s.intents},
                          {"agreed", s.agreed},
                          {"shadow_only", s.shadow_only},
                          {"live_only", s.live_only}});
  }
  j["disagreements"] = nlohmann::ordered_json::array();
  for (const auto& d : r.disagreements) {
    nlohmann::ordered_json e = {{"kind", d.kind},       {"shadow_rule", d.shadow_rule}, {"action", d.action},
                                {"target", d.target},   {"decision_id", d.decision_id}, {"at", FormatTime(d.at)}};
    if (!d.live_rule.empty()) e["live_rule"] = d.live_rule;
    if (!d.detail.empty()) e["detail"] = d.detail;
    j["disagreements"].push_back(e);
  }
  return j;
}

std::string ShadowReportText(const ShadowReport& r) {
  if (r.rules.empty()) return "no shadow decisions in this range\n";
  std::string out = "shadow rule                     intents  agreed  shadow only  live only\n";
  for (const auto& [name, s] : r.rules) {
    char line[256];
    std::snprintf(line, sizeof line, "%-30s %8lld %7lld %12lld %10lld\n", name.c_str(), static_cast<long long>(s.intents),
                  static_cast<long long>(s.agreed), static_cast<long long>(s.shadow_only),
                  static_cast<long long>(s.live_only));
    out += line;
  }
  if (!r.disagreements.empty()) out += "\n";
  for (const auto& d : r.disagreements) {
    out += FormatTime(d.at) + "  " + d.shadow_rule + "  " + d.kind + "  " + d.action + " " + d.target;
    if (!d.live_rule.empty()) out += "  (live: " + d.live_rule + ")";
    if (!d.detail.empty()) out += "  " + d.detail;
    out += "  #" + std::to_string(d.decision_id) + "\n";
  }
  return out;
}

}  // namespace gavel::rules
