// libFuzzer target for event input: ParseEvent (simdjson) on arbitrary bytes against a
// program with every field type, and every event it accepts applied to an engine (scores,
// crossings, journeys, an event rule). Bad input must be refused with a reason, never crash,
// hang or leak. Build and run: see tests/fuzz/CMakeLists.txt (target event_fuzzer).
#include <cstddef>
#include <cstdint>
#include <string_view>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
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
