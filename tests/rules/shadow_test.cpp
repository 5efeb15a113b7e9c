// Tests of the shadow-versus-live report (rules/shadow.hpp).
#include "rules/shadow.hpp"

#include <catch2/catch.hpp>

namespace {

using gavel::rules::Decision;

Decision Fired(std::int64_t id, const std::string& rule, const std::string& mode, const std::string& action,
               const std::string& adset, gavel::rules::TimeMs at, double budget = -1) {
  Decision d;
  d.id = id;
  d.kind = "rule";
  d.rule = rule;
  d.outcome = "fired";
  d.event_time = at;
  d.entity_type = "adset_daily";
  d.entity_id = adset;
  nlohmann::ordered_json a;
  a["action"] = action;
  a["target"] = "adset_daily:" + adset;
  if (budget >= 0) a["budget"] = budget;
  a["mode"] = mode;
  d.actions.push_back(a);
  return d;
}

constexpr gavel::rules::TimeMs kHour = 3600 * 1000;

}  // namespace

TEST_CASE("the shadow report counts agreements and lists each disagreement", "[shadow]") {
  std::vector<Decision> ds = {
      Fired(1, "pause_v1", "live", "pause", "a1", 0),
      Fired(2, "pause_v2", "shadow", "pause", "a1", 120000),  // agrees (2 minutes apart)
      Fired(3, "pause_v2", "shadow", "pause", "a2", kHour),    // live did not pause a2
      Fired(4, "pause_v1", "live", "pause", "a3", 2 * kHour),  // shadow did not pause a3
      Fired(5, "pause_v1", "live", "pause", "a4", 5 * kHour),  // matched only 3h later: too far
      Fired(6, "pause_v2", "shadow", "pause", "a4", 8 * kHour),
      Fired(7, "budget_v1", "live", "set_budget", "b1", 0, 450),
      Fired(8, "budget_v2", "shadow", "set_budget", "b1", 0, 400),  // a different amount
      Fired(9, "budget_v2", "shadow", "set_budget", "b2", 0, 300),
      Fired(10, "budget_v1", "live", "set_budget", "b2", 60000, 300.004),  // the same to the cent
  };
  auto r = gavel::rules::BuildShadowReport(ds, kHour);
  REQUIRE(r.rules.size() == 2);
  const auto& p = r.rules.at("pause_v2");
  CHECK(p.intents == 3);
  CHECK(p.agreed == 1);
  CHECK(p.shadow_only == 2);
  CHECK(p.live_only == 2);  // a3, and a4 at 5h
  const auto& b = r.rules.at("budget_v2");
  CHECK(b.intents == 2);
  CHECK(b.agreed == 1);
  CHECK(b.shadow_only == 1);
  CHECK(b.live_only == 1);  // live set b1 to 450, which the shadow did not
  CHECK(gavel::rules::ShadowReportText(r) ==
        "shadow rule                     intents  agreed  shadow only  live only\n"
        "budget_v2                             2       1            1          1\n"
        "pause_v2                              3       1            2          2\n"
        "\n"
        "1970-01-01T00:00:00Z  budget_v2  live_only  set_budget adset_daily:b1  (live: budget_v1)  budget 450.00  #7\n"
        "1970-01-01T00:00:00Z  budget_v2  shadow_only  set_budget adset_daily:b1  budget 400.00 (live `budget_v1`: 450.00)  #8\n"
        "1970-01-01T01:00:00Z  pause_v2  shadow_only  pause adset_daily:a2  #3\n"
        "1970-01-01T02:00:00Z  pause_v2  live_only  pause adset_daily:a3  (live: pause_v1)  #4\n"
        "1970-01-01T05:00:00Z  pause_v2  live_only  pause adset_daily:a4  (live: pause_v1)  #5\n"
        "1970-01-01T08:00:00Z  pause_v2  shadow_only  pause adset_daily:a4  #6\n");
  auto j = gavel::rules::ShadowReportJson(r);
  CHECK(j["rules"][1]["rule"] == "pause_v2");
  CHECK(j["disagreements"].size() == 6);
}

TEST_CASE("without shadow decisions the report says so", "[shadow]") {
  std::vector<Decision> ds = {Fired(1, "pause_v1", "live", "pause", "a1", 0)};
  auto r = gavel::rules::BuildShadowReport(ds, kHour);
  CHECK(r.rules.empty());
  CHECK(gavel::rules::ShadowReportText(r) == "no shadow decisions in this range\n");
}
