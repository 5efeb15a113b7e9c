// libFuzzer target for event input: ParseEvent (simdjson) on arbitrary bytes against a
// program with every field type, and every event it accepts applied to an engine (scores,
// crossings, journeys, an event rule). Bad input must be refused with a reason, never crash,
// hang or leak. The same input is also parsed against a program whose event type takes the
// engine's straight-line batch path; accepted events are applied both one by one and in
// batches of eight (Engine::OnEvents), and the two engines must agree on every status,
// decision and lead. Build and run: see tests/fuzz/CMakeLists.txt (target event_fuzzer).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dsl/compiler.hpp"
#include "rules/engine.hpp"

namespace {

constexpr const char* kProgram = R"(
event page_view { lead_id: text, page: text, seconds: count, at: timestamp, ratio: number, ok: bool }
event lead_profile updates lead { lead_id: text, title: text, timezone: text }
entity lead keyed by lead_id { title: text = "", timezone: text = "UTC", stage: text = "new" }
score lead_score for lead {
  on page_view where page like "/pricing*" add 30
  on page_view where seconds > 10 and ok add 5
  decay 20 every 30d without activity
  floor 0
}
rule mql {
  owner "fuzz@example.com"
  on lead_score crosses above 50
  then webhook "crm" with { lead: lead.lead_id, score: lead_score }
       set lead.stage = "MQL"
  mode live
}
rule long_views {
  owner "fuzz@example.com"
  on page_view where ratio > 0.5
  then webhook "crm" with { page: page }
}
journey welcome for lead {
  owner "fuzz@example.com"
  enter on lead_profile
  exit when lead.stage == "MQL"
  cap 3 messages per 7d
  quiet hours 21:00-08:00 in lead.timezone
  step hello: email "welcome"
  wait up to 48h for page_view
    on page_view: step more: email "more"
    on timeout:    step nudge: message "nudge" via whatsapp
}
)";

struct Fixture {
  std::shared_ptr<const gavel::dsl::Program> program;
  gavel::rules::SimulatedClock clock{1790000000000};
  gavel::rules::VectorSink sink;
  std::unique_ptr<gavel::rules::Engine> engine;
  Fixture() {
    auto compiled = gavel::dsl::CompileSources({{"fuzz.gavel", kProgram}});
    if (!compiled.program) __builtin_trap();
    program = compiled.program;
    engine = std::make_unique<gavel::rules::Engine>(program, gavel::rules::EngineDeps{&clock, &sink, nullptr});
    engine->Start(1790000000000);
  }
};

// One keyed lead with one score, conditions on one field each: OnEvents applies these with
// its straight-line path; OnEvent with the general one.
constexpr const char* kSimpleProgram = R"(
event page_view { lead_id: text, page: text, seconds: count, at: timestamp, ratio: number, ok: bool }
entity lead keyed by lead_id { stage: text = "new" }
score lead_score for lead {
  on page_view where page like "/pricing*" add 30
  on page_view where page == "/" add 2
  on page_view where seconds > 10 add 5
  on page_view where ok == true add 1 once
  decay 20 every 30d without activity
  floor 0
  cap 90
}
rule mql {
  owner "fuzz@example.com"
  on lead_score crosses above 50
  then webhook "crm" with { lead: lead.lead_id, score: lead_score }
       set lead.stage = "MQL"
  cooldown 1h
  mode live
}
)";

struct Differential {
  std::shared_ptr<const gavel::dsl::Program> program;
  gavel::rules::SimulatedClock clock{1790000000000};
  gavel::rules::VectorSink one_sink, batch_sink;
  std::unique_ptr<gavel::rules::Engine> one, batch;
  std::vector<gavel::rules::Event> pending;
  std::vector<gavel::Status> one_statuses;
  Differential() {
    auto compiled = gavel::dsl::CompileSources({{"simple.gavel", kSimpleProgram}});
    if (!compiled.program) __builtin_trap();
    program = compiled.program;
    one = std::make_unique<gavel::rules::Engine>(program, gavel::rules::EngineDeps{&clock, &one_sink, nullptr});
    batch = std::make_unique<gavel::rules::Engine>(program, gavel::rules::EngineDeps{&clock, &batch_sink, nullptr});
    one->Start(1790000000000);
    batch->Start(1790000000000);
  }
  void Add(gavel::rules::Event e) {
    gavel::Status s = one->AdvanceTo(e.time);
    if (s.ok()) s = one->OnEvent(e);
    one_statuses.push_back(s);
    pending.push_back(std::move(e));
    if (pending.size() == 8) Flush();
  }
  void Flush() {
    std::vector<gavel::Status> statuses;
    (void)batch->OnEvents(pending, &statuses);
    if (statuses.size() != one_statuses.size()) __builtin_trap();
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      if (statuses[i].code() != one_statuses[i].code() || statuses[i].message() != one_statuses[i].message()) {
        __builtin_trap();
      }
    }
    if (batch_sink.decisions.size() != one_sink.decisions.size()) __builtin_trap();
    for (std::size_t i = 0; i < one_sink.decisions.size(); ++i) {
      const auto& a = one_sink.decisions[i];
      const auto& b = batch_sink.decisions[i];
      if (a.rule != b.rule || a.outcome != b.outcome || a.entity_id != b.entity_id || a.event_time != b.event_time ||
          a.evidence != b.evidence || a.trigger != b.trigger) {
        __builtin_trap();
      }
    }
    for (const auto& e : pending) {
      const gavel::rules::OwnedValue* lead = e.Get("lead_id");
      if (lead && one->DescribeEntity("lead", lead->text) != batch->DescribeEntity("lead", lead->text)) {
        __builtin_trap();
      }
    }
    if (one->duplicates() != batch->duplicates()) __builtin_trap();
    pending.clear();
    one_statuses.clear();
    one_sink.decisions.clear();
    batch_sink.decisions.clear();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  static Differential d;
  {
    gavel::rules::Event e;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    gavel::Status s = gavel::rules::ParseEvent(*d.program, text, e);
    if (s.ok()) d.Add(std::move(e));
    else if (s.message().empty()) __builtin_trap();
  }
  gavel::rules::Event e;
  gavel::Status s = gavel::rules::ParseEvent(*f.program, std::string_view(reinterpret_cast<const char*>(data), size), e);
  if (!s.ok()) {
    if (s.message().empty()) __builtin_trap();  // a refusal always says why
    return 0;
  }
  const gavel::rules::TimeMs t = std::max(e.time, f.engine->now());
  f.clock.Set(t);
  (void)f.engine->AdvanceTo(t);
  (void)f.engine->OnEvent(e);
  if (f.sink.decisions.size() > 10000) f.sink.decisions.clear();
  return 0;
}
