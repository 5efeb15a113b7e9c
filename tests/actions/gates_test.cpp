// Tests of the safety gates (actions/gates.hpp) and the outbox's approval states, on a real
// SQLite state database: every gate on and off, in order, with its verdict in the decision.
#include "actions/gates.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "dsl/compiler.hpp"
#include "rules/store/state_store.hpp"

namespace {

using gavel::actions::Controls;
using gavel::actions::GateConfig;
using gavel::actions::GateKeeper;
using gavel::actions::Outbox;
using gavel::actions::OutboxState;
using gavel::rules::Decision;
using gavel::rules::TimeMs;

constexpr const char* kRules = R"(
table adset_daily from warehouse "adset_daily" {
  key adset_id
  time day
  dims channel: text
  facts spend: money(USD), conversions: count
}
rule live_pause {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
  mode live
  limit 2 per 1h
}
rule dry_pause {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
}
rule shadow_pause {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
  mode shadow
}
rule flagged_pause {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
  mode live
  flag "cpa_v2"
}
rule approved_pause {
  owner "paid@example.com"
  every 1h
  for each adset in adset_daily over last 1d
  when sum(spend) > 100 USD
  then pause adset
  mode live
  require approval expires after 1h
}
)";

TimeMs T(const std::string& s) {
  TimeMs t = 0;
  REQUIRE(gavel::rules::ParseTime(s, t));
  return t;
}

struct Fixture {
  std::string path;
  std::unique_ptr<gavel::rules::StateDatabase> db;
  std::unique_ptr<Controls> controls;
  std::unique_ptr<Outbox> outbox;
  std::unique_ptr<GateKeeper> gates;
  explicit Fixture(GateConfig config = {}) {
    path = (std::filesystem::temp_directory_path() /
            ("gavel-gates-" + std::to_string(::getpid()) + ".db"))
               .string();
    std::filesystem::remove(path);
    auto compiled = gavel::dsl::CompileSources({{"r.gavel", kRules}});
    INFO(gavel::dsl::RenderText(compiled.sources, compiled.diags.list()));
    REQUIRE(compiled.program);
    auto opened = gavel::rules::StateDatabase::Open(path);
    REQUIRE(opened.ok());
    db = std::move(opened.value());
    auto c = Controls::Attach(db->log().db());
    REQUIRE(c.ok());
    controls = std::move(c.value());
    auto o = Outbox::Attach(db->log().db());
    REQUIRE(o.ok());
    outbox = std::move(o.value());
    gates = std::make_unique<GateKeeper>(compiled.program, *controls, *outbox, config);
  }
  ~Fixture() {
    gates.reset();
    outbox.reset();
    controls.reset();
    db.reset();
    std::filesystem::remove(path);
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
  }
  // A decision as the engine makes it: one pause of `adset`, in the rule's mode.
  static Decision Pause(const std::string& rule, const std::string& adset,
                        const std::string& mode) {
    Decision d;
    d.kind = "rule";
    d.rule = rule;
    d.version = "v1";
    d.outcome = "fired";
    d.entity_type = "adset_daily";
    d.entity_id = adset;
    nlohmann::ordered_json a;
    a["action"] = "pause";
    a["target"] = "adset_daily:" + adset;
    a["mode"] = mode;
    d.actions.push_back(a);
    return d;
  }
  // Reviews, logs and enqueues like the daemon does; returns the logged decision.
  Decision Run(Decision d, TimeMs now) {
    d.event_time = now;
    d.processing_time = now;
    auto plans = gates->Review(d, now);
    REQUIRE(db->log().Append(d));
    REQUIRE(gates->Enqueue(d, plans, now).ok());
    return d;
  }
};

std::string Gates(const Decision& d, std::size_t i = 0) {
  std::string out;
  for (const auto& v : d.actions[i]["gates"]) {
    out += v["gate"].get<std::string>() + "=" + v["verdict"].get<std::string>() + " ";
  }
  return out + "-> " + d.actions[i]["disposition"].get<std::string>();
}

}  // namespace

TEST_CASE("a live action passes every gate in order and waits in the outbox", "[gates]") {
  Fixture f;
  Decision d = f.Run(Fixture::Pause("live_pause", "a1", "live"), T("2026-11-02T09:00:00Z"));
  CHECK(Gates(d) == "kill_switch=pass mode=pass override=pass execute=pass -> execute");
  auto row = f.outbox->Get(std::to_string(d.id) + ".0");
  REQUIRE(row.ok());
  CHECK(row.value().state == OutboxState::kPending);
  CHECK(row.value().executor == "ad_platform");
  CHECK(row.value().target == "adset_daily:a1");
  CHECK(row.value().request.intent["action"] == "pause");
  CHECK(f.outbox->Depth().value() == 1);
}

TEST_CASE("dry_run and shadow decide and log but put nothing in the outbox", "[gates]") {
  Fixture f;
  Decision dry = f.Run(Fixture::Pause("dry_pause", "a1", "dry_run"), T("2026-11-02T09:00:00Z"));
  Decision shadow =
      f.Run(Fixture::Pause("shadow_pause", "a1", "shadow"), T("2026-11-02T09:00:00Z"));
  CHECK(Gates(dry) == "kill_switch=pass mode=stop -> dry_run");
  CHECK(Gates(shadow) == "kill_switch=pass mode=stop -> shadow");
  CHECK(f.outbox->Depth().value() == 0);
}

TEST_CASE("the kill switch blocks every action and says who turned it on and why", "[gates]") {
  Fixture f;
  REQUIRE(f.controls->SetKillSwitch(true, "ana@ops", "platform outage", T("2026-11-02T08:00:00Z"))
              .ok());
  Decision d = f.Run(Fixture::Pause("live_pause", "a1", "live"), T("2026-11-02T09:00:00Z"));
  CHECK(Gates(d) == "kill_switch=stop -> blocked");
  CHECK(d.actions[0]["gates"][0]["detail"] ==
        "on since 2026-11-02T08:00:00Z by ana@ops: platform outage");
  CHECK(f.outbox->Depth().value() == 0);
  // Off again: actions flow. The switch survives a restart of the controls (durable).
  REQUIRE(f.controls->SetKillSwitch(false, "ana@ops", "resolved", T("2026-11-02T10:00:00Z")).ok());
  auto reloaded = Controls::Attach(f.db->log().db());
  REQUIRE(reloaded.ok());
  CHECK_FALSE(reloaded.value()->kill_switch().on);
  CHECK(reloaded.value()->kill_switch().reason == "resolved");
  Decision d2 = f.Run(Fixture::Pause("live_pause", "a2", "live"), T("2026-11-02T10:01:00Z"));
  CHECK(d2.actions[0]["disposition"] == "execute");
}

TEST_CASE("a rule behind a feature flag acts only while the flag is on", "[gates]") {
  Fixture f;
  Decision off = f.Run(Fixture::Pause("flagged_pause", "a1", "live"), T("2026-11-02T09:00:00Z"));
  CHECK(Gates(off) == "kill_switch=pass mode=pass flag=stop -> blocked");
  CHECK(off.actions[0]["gates"][2]["detail"] == "flag `cpa_v2` is off");
  REQUIRE(f.controls->SetFlag("cpa_v2", true).ok());
  Decision on = f.Run(Fixture::Pause("flagged_pause", "a1", "live"), T("2026-11-02T09:05:00Z"));
  CHECK(Gates(on) == "kill_switch=pass mode=pass flag=pass override=pass execute=pass -> execute");
}

TEST_CASE("an entity pinned by an operator is left alone until the pin ends", "[gates]") {
  Fixture f;
  gavel::actions::Pin pin;
  pin.target = "adset_daily:a1";
  pin.since = T("2026-11-01T00:00:00Z");
  pin.until = T("2026-12-01T00:00:00Z");
  pin.who = "ana@ops";
  pin.reason = "launch week";
  REQUIRE(f.controls->SetPin(pin).ok());
  Decision pinned = f.Run(Fixture::Pause("live_pause", "a1", "live"), T("2026-11-02T09:00:00Z"));
  CHECK(Gates(pinned) == "kill_switch=pass mode=pass override=stop -> blocked");
  CHECK(pinned.actions[0]["gates"][2]["detail"] ==
        "pinned by ana@ops until 2026-12-01T00:00:00Z: launch week");
  Decision other = f.Run(Fixture::Pause("live_pause", "a2", "live"), T("2026-11-02T09:00:00Z"));
  CHECK(other.actions[0]["disposition"] == "execute");
  Decision after = f.Run(Fixture::Pause("live_pause", "a1", "live"), T("2026-12-01T00:00:00Z"));
  CHECK(after.actions[0]["disposition"] == "execute");
  CHECK_FALSE(f.controls->SetPin({"no-colon", 2, "", "", 1}).ok());
  CHECK(f.controls->RemovePin("adset_daily:zzz").code() == gavel::Status::Code::kNotFound);
}

TEST_CASE("past the per-entity daily change budget an action is blocked and escalated", "[gates]") {
  GateConfig config;
  config.max_changes_per_entity_per_day = 2;
  config.escalation_channel = "oncall";
  Fixture f(config);
  for (int i = 0; i < 2; ++i) {
    Decision d =
        f.Run(Fixture::Pause("live_pause", "a1", "live"), T("2026-11-02T09:00:00Z") + i * 60000);
    CHECK(d.actions[0]["disposition"] == "execute");
  }
  Decision third = f.Run(Fixture::Pause("live_pause", "a1", "live"), T("2026-11-02T10:00:00Z"));
  CHECK(Gates(third) == "kill_switch=pass mode=pass override=pass limits=stop -> blocked");
  CHECK(third.actions[0]["gates"][3]["detail"] ==
        "2 changes to adset_daily:a1 today (budget 2 per day)");
  REQUIRE(third.actions.size() == 2);
  CHECK(third.actions[1]["action"] == "notify_slack");
  CHECK(third.actions[1]["channel"] == "oncall");
  CHECK(third.actions[1]["state"] == "escalation");
  auto escalation = f.outbox->Get(std::to_string(third.id) + ".1");
  REQUIRE(escalation.ok());
  CHECK(escalation.value().executor == "slack");
  // Another entity, and the next UTC day, have budgets of their own.
  CHECK(f.Run(Fixture::Pause("live_pause", "a2", "live"), T("2026-11-02T10:00:00Z"))
            .actions[0]["disposition"] == "execute");
  CHECK(f.Run(Fixture::Pause("live_pause", "a1", "live"), T("2026-11-03T00:00:00Z"))
            .actions[0]["disposition"] == "execute");
}

TEST_CASE("a rule that hits its own limit escalates once per limit window", "[gates]") {
  GateConfig config;
  config.escalation_channel = "oncall";
  Fixture f(config);
  auto limited = [](const std::string& adset) {
    Decision d = Fixture::Pause("live_pause", adset, "live");
    d.outcome = "skipped";
    d.reason = "limit";
    d.actions = nlohmann::ordered_json::array();
    return d;
  };
  Decision first = f.Run(limited("a1"), T("2026-11-02T09:00:00Z"));
  REQUIRE(first.actions.size() == 1);
  CHECK(first.actions[0]["state"] == "escalation");
  CHECK(first.actions[0]["text"].get<std::string>().find("reached its limit (2 per 3600s)") !=
        std::string::npos);
  CHECK(f.Run(limited("a2"), T("2026-11-02T09:30:00Z")).actions.empty());
  CHECK(f.Run(limited("a3"), T("2026-11-02T10:00:00Z")).actions.size() == 1);
}

TEST_CASE("an action that needs approval waits, and is approved, rejected or expires", "[gates]") {
  Fixture f;
  const TimeMs t0 = T("2026-11-02T09:00:00Z");
  Decision a = f.Run(Fixture::Pause("approved_pause", "a1", "live"), t0);
  Decision b = f.Run(Fixture::Pause("approved_pause", "a2", "live"), t0);
  Decision c = f.Run(Fixture::Pause("approved_pause", "a3", "live"), t0);
  CHECK(Gates(a) == "kill_switch=pass mode=pass override=pass approval=wait -> awaiting_approval");
  CHECK(a.actions[0]["gates"][3]["detail"] ==
        "until an operator approves, at most until 2026-11-02T10:00:00Z");
  const std::string ka = std::to_string(a.id) + ".0", kb = std::to_string(b.id) + ".0",
                    kc = std::to_string(c.id) + ".0";
  CHECK(f.outbox->Get(ka).value().state == OutboxState::kAwaitingApproval);
  REQUIRE(f.outbox->Approve(ka, "ana@ops", t0 + 60000).ok());
  CHECK(f.outbox->Get(ka).value().state == OutboxState::kPending);
  CHECK(f.outbox->Get(ka).value().decided_by == "ana@ops");
  CHECK(f.outbox->Approve(ka, "ana@ops", t0 + 60000).code() ==
        gavel::Status::Code::kInvalidArgument);
  REQUIRE(f.outbox->Reject(kb, "bo@ops", t0 + 60000).ok());
  CHECK(f.outbox->Get(kb).value().state == OutboxState::kRejected);
  auto expired = f.outbox->ExpireApprovals(t0 + 3600 * 1000);
  REQUIRE(expired.ok());
  REQUIRE(expired.value().size() == 1);
  CHECK(expired.value()[0].key == kc);
  CHECK(f.outbox->Approve(kc, "ana@ops", t0 + 3700 * 1000).code() ==
        gavel::Status::Code::kInvalidArgument);
  CHECK(f.outbox->Approve("999.0", "ana@ops", t0).code() == gavel::Status::Code::kNotFound);
}

TEST_CASE("a `set` on engine state is internal and passes no gate", "[gates]") {
  Fixture f;
  Decision d = Fixture::Pause("live_pause", "a1", "live");
  d.actions[0] = nlohmann::ordered_json{
      {"action", "set"}, {"field", "lead.stage"}, {"value", "MQL"}, {"mode", "live"}};
  d = f.Run(d, T("2026-11-02T09:00:00Z"));
  CHECK(d.actions[0]["disposition"] == "internal");
  CHECK_FALSE(d.actions[0].contains("gates"));
}
