// The engine's fast paths give exactly what its plain paths give: compact decisions
// (EngineOptions::compact_decisions, DecisionSink::AppendCompact, Materialize) against the
// engine's own JSON decisions, and the batch call Engine::OnEvents against AdvanceTo + OnEvent
// per event. Compared byte for byte on canonical JSON over a workload with crossings up (by
// events) and down (by decay timers), cooldown and limit skips, `set` actions, message
// templates, lets, an event without an entity, duplicates, late and hand-built events.
#include <catch2/catch.hpp>
#include <algorithm>
#include <random>
#include <map>
#include <set>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dsl/compiler.hpp"
#include "rules/compact_decision.hpp"
#include "rules/engine.hpp"

namespace {

using gavel::Status;
using gavel::rules::CompactDecision;
using gavel::rules::Decision;
using gavel::rules::Engine;
using gavel::rules::Event;
using gavel::rules::SimulatedClock;
using gavel::rules::TimeMs;
using gavel::rules::VectorSink;

// The events and the lead, shared by both programs below.
constexpr const char* kDeclarations = R"gavel(
event page_view { lead_id: text, page: text }
event signup { lead_id: text, plan: text, seats: count }
event ping { source: text }
entity lead keyed by lead_id { stage: text = "new", plan: text }
)gavel";

constexpr const char* kProgram = R"gavel(
score lead_score for lead {
  on page_view where page == "/" add 2
  on page_view where page like "/pricing*" add 30
  on page_view where page != "/" and page != "/blog" add 1
  on signup where seats > 5 add 25
  on signup add 5
  when lead.stage == "MQL" add 1 once
  decay 20 every 30d without activity
  floor 0
  cap 80
}
rule mql_handoff {
  owner "t@example.com"
  on lead_score crosses above 50
  then webhook "sales_queue" with { lead: lead.lead_id, score: lead_score, stage: lead.stage }
       set lead.stage = "MQL"
  mode live
}
rule mql_cooled_off {
  owner "t@example.com"
  on lead_score crosses below 30
  when lead.stage == "MQL"
  then set lead.stage = "nurture"
       notify slack "#revops" "Lead {lead.lead_id} cooled off (score {lead_score})"
  mode live
}
rule big_signup {
  owner "t@example.com"
  on signup where seats >= 10
  let per_seat = lead_score / seats
  then webhook "big" with { lead: lead.lead_id, plan: plan, per: per_seat, stage: lead.stage }
  cooldown 1h
  limit 3 per 1d
  mode live
}
rule pinged {
  owner "t@example.com"
  on ping where source == "x"
  then webhook "pinged" with { source: source }
  mode dry_run
}
)gavel";

// The same events and lead with only what the engine's straight-line batch path for an event
// type takes (Engine::Impl::ApplySimple: one entity with one score, conditions on one event
// field, no field updates, event rules, journeys or `crosses below`), plus an event type
// that does not qualify, so that batches mix the two paths.
constexpr const char* kSimpleProgram = R"gavel(
score lead_score for lead {
  on page_view where page == "/" add 2
  on page_view where page like "/pricing*" add 30
  on page_view where page != "/blog" add 1
  on page_view where page == "/docs" subtract 40
  on signup where seats > 5 add 25
  on signup add 5 once
  decay 20 every 30d without activity
  floor 0
  cap 80
}
rule mql_handoff {
  owner "t@example.com"
  on lead_score crosses above 50
  then webhook "sales_queue" with { lead: lead.lead_id, score: lead_score, stage: lead.stage }
       set lead.stage = "MQL"
  cooldown 1d
  limit 40 per 30d
  mode live
}
rule hot {
  owner "t@example.com"
  on lead_score crosses above 75
  when lead.stage == "MQL"
  then notify slack "#revops" "Lead {lead.lead_id} is hot ({lead_score})"
  mode live
}
rule pinged {
  owner "t@example.com"
  on ping where source == "x"
  then webhook "pinged" with { source: source }
  mode dry_run
}
)gavel";

std::shared_ptr<const gavel::dsl::Program> Compile(const char* text) {
  auto r = gavel::dsl::CompileSources({{"t.gavel", std::string(kDeclarations) + text}});
  INFO(gavel::dsl::RenderText(r.sources, r.diags.list()));
  REQUIRE(r.program);
  return r.program;
}

std::shared_ptr<const gavel::dsl::Program> Program() {
  static std::shared_ptr<const gavel::dsl::Program> program = Compile(kProgram);
  return program;
}

std::shared_ptr<const gavel::dsl::Program> SimpleProgram() {
  static std::shared_ptr<const gavel::dsl::Program> program = Compile(kSimpleProgram);
  return program;
}

constexpr TimeMs kStart = 1790000000000;  // 2026-09-21

// A deterministic workload: page views, signups and pings over a few leads, with gaps long
// enough for decay to take scores back down, duplicate ids, late events and hand-built events
// whose fields are not in declaration order.
std::vector<Event> Workload(const gavel::dsl::Program& program = *Program()) {
  std::vector<Event> events;
  std::uint64_t s = 7;
  auto next = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 33;
  };
  TimeMs t = kStart;
  const char* pages[] = {"/", "/pricing", "/pricing/teams", "/blog", "/docs"};
  const char* plans[] = {"team", "enterprise"};
  for (int i = 0; i < 3000; ++i) {
    const std::uint64_t r = next();
    t += static_cast<TimeMs>(r % 7) * 3600 * 1000;  // up to 6 hours; long quiet spells below
    if (i % 500 == 250) t += 100LL * 24 * 3600 * 1000;
    Event e;
    e.id = "e" + std::to_string(i);
    if (i % 97 == 5) e.id = "e" + std::to_string(i - 3);  // a duplicate
    e.time = t;
    if (i % 41 == 7) e.time = t - 5LL * 3600 * 1000;        // late for its lead
    const std::string lead = "L" + std::to_string(r / 7 % 6) + (r % 3 == 0 ? "-with-a-long-id" : "");
    const int kind = static_cast<int>(r / 50 % 10);
    gavel::rules::OwnedValue id{gavel::rules::Value::Kind::kText, 0, lead};
    if (kind < 7) {
      e.type = "page_view";
      e.fields = {{"page", {gavel::rules::Value::Kind::kText, 0, pages[r / 600 % 5]}}, {"lead_id", id}};
    } else if (kind < 9) {
      e.type = "signup";
      e.fields = {{"lead_id", id},
                  {"plan", {gavel::rules::Value::Kind::kText, 0, plans[r / 900 % 2]}},
                  {"seats", {gavel::rules::Value::Kind::kNumber, static_cast<double>(r / 1000 % 20), ""}}};
    } else {
      e.type = "ping";
      e.fields = {{"source", {gavel::rules::Value::Kind::kText, 0, r % 2 ? "x" : "y"}}};
    }
    // Most events as ParseEvent delivers them; every fifth built by hand (normalized by the
    // engine on a copy).
    if (i % 5 != 0) REQUIRE(gavel::rules::NormalizeEvent(program, e).ok());
    events.push_back(std::move(e));
  }
  return events;
}

// Keeps every compact record and materializes them all at the end, after the engine has
// moved on (fields changed by `set`, events gone): the records must not point into either.
class DeferredSink final : public gavel::rules::DecisionSink {
 public:
  bool Append(Decision& d) override {
    order.push_back(-1 - static_cast<long>(plain.size()));
    plain.push_back(d);
    return true;
  }
  bool AppendCompact(const CompactDecision& c) override {
    order.push_back(static_cast<long>(compact.size()));
    compact.push_back(c);
    return true;
  }
  std::vector<Decision> Decisions() const {
    std::vector<Decision> out;
    for (long o : order) out.push_back(o >= 0 ? gavel::rules::Materialize(compact[o]) : plain[-1 - o]);
    for (std::size_t i = 0; i < out.size(); ++i) out[i].id = static_cast<std::int64_t>(i + 1);
    return out;
  }
  std::vector<long> order;
  std::vector<CompactDecision> compact;
  std::vector<Decision> plain;
};

// Refuses the n-th record (1-based), compact or not.
class FailingSink final : public gavel::rules::DecisionSink {
 public:
  explicit FailingSink(int fail_at) : fail_at_(fail_at) {}
  bool Append(Decision&) override { return ++count != fail_at_; }
  int count = 0;

 private:
  int fail_at_;
};

enum class Drive { kPerEvent, kBatch, kBatchInChunks };

struct Run {
  std::vector<Decision> decisions;
  std::vector<Status> statuses;
  std::int64_t duplicates = 0;
  TimeMs now = 0;
  std::string leads;  // every lead's fields and scores
};

// A fresh engine on the test program, started at kStart, without schedules.
std::unique_ptr<Engine> StartedEngine(SimulatedClock& clock, gavel::rules::DecisionSink& sink, bool compact,
                                      std::shared_ptr<const gavel::dsl::Program> program = Program()) {
  gavel::rules::EngineOptions options;
  options.run_schedules = false;
  options.compact_decisions = compact;
  auto engine = std::make_unique<Engine>(std::move(program), gavel::rules::EngineDeps{&clock, &sink, nullptr}, options);
  engine->Start(kStart);
  return engine;
}

// Runs the workload on a fresh engine; the clock stays at the start (the batch call cannot
// move it per event), then everything due is run to the end.
Run Go(gavel::rules::DecisionSink& sink, bool compact, Drive drive, const std::vector<Event>& events,
       std::shared_ptr<const gavel::dsl::Program> program = Program()) {
  SimulatedClock clock(kStart);
  auto engine_ptr = StartedEngine(clock, sink, compact, std::move(program));
  Engine& engine = *engine_ptr;
  Run run;
  if (drive == Drive::kPerEvent) {
    for (const Event& e : events) {
      Status s = engine.AdvanceTo(e.time);
      if (s.ok()) s = engine.OnEvent(e);
      run.statuses.push_back(s);
    }
  } else if (drive == Drive::kBatch) {
    REQUIRE(engine.OnEvents(events, &run.statuses).ok());
  } else {
    for (std::size_t i = 0; i < events.size(); i += 7) {
      std::vector<Status> part;
      const std::size_t n = std::min<std::size_t>(7, events.size() - i);
      REQUIRE(engine.OnEvents(std::span<const Event>(events).subspan(i, n), &part).ok());
      run.statuses.insert(run.statuses.end(), part.begin(), part.end());
    }
  }
  REQUIRE(engine.AdvanceTo(events.back().time + 100LL * 24 * 3600 * 1000).ok());
  REQUIRE(engine.FlushSummary().ok());
  run.duplicates = engine.duplicates();
  run.now = engine.now();
  for (int l = 0; l < 6; ++l) {
    for (std::string suffix : {"", "-with-a-long-id"}) {
      const std::string id = "L" + std::to_string(l) + suffix;
      run.leads += id + " " + engine.DescribeEntity("lead", id) + "\n";
    }
  }
  return run;
}

std::vector<std::string> Canonical(const std::vector<Decision>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(gavel::rules::ToJson(d, true).dump() + " | " + gavel::rules::RenderLine(d));
  return out;
}

std::vector<std::string> Texts(const std::vector<Status>& ss) {
  std::vector<std::string> out;
  for (const auto& s : ss) out.push_back(std::to_string(static_cast<int>(s.code())) + " " + s.message());
  return out;
}

}  // namespace

TEST_CASE("compact decisions materialize to exactly the engine's own JSON decisions", "[engine][compact]") {
  const std::vector<Event> events = Workload();
  VectorSink plain_sink;
  const Run plain = Go(plain_sink, false, Drive::kPerEvent, events);
  VectorSink compact_sink;  // AppendCompact's default: materialize, then Append
  const Run compact = Go(compact_sink, true, Drive::kPerEvent, events);
  DeferredSink deferred_sink;
  const Run deferred = Go(deferred_sink, true, Drive::kPerEvent, events);

  // The workload exercises what it should.
  std::map<std::string, int> seen;
  for (const auto& d : plain_sink.decisions) seen[d.rule + " " + d.outcome + " " + d.reason]++;
  CHECK(seen["mql_handoff fired live"] > 3);
  CHECK(seen["mql_cooled_off fired live"] > 0);
  CHECK(seen["big_signup fired live"] > 0);
  CHECK(seen["big_signup skipped cooldown"] > 0);
  CHECK(seen["big_signup skipped limit"] > 0);
  CHECK(seen["pinged fired dry_run"] > 0);
  CHECK(plain.duplicates > 0);
  CHECK(deferred_sink.compact.size() > 10);
  CHECK(!deferred_sink.plain.empty());  // the summary goes the plain way

  CHECK(Canonical(compact_sink.decisions) == Canonical(plain_sink.decisions));
  CHECK(Canonical(deferred_sink.Decisions()) == Canonical(plain_sink.decisions));
  CHECK(Texts(compact.statuses) == Texts(plain.statuses));
  CHECK(compact.leads == plain.leads);
  CHECK(deferred.leads == plain.leads);
}

TEST_CASE("a compact record stays valid when copied and the engine moves on", "[engine][compact]") {
  DeferredSink sink;
  const std::vector<Event> events = Workload();
  Go(sink, true, Drive::kPerEvent, events);
  REQUIRE(!sink.compact.empty());
  // Copies of copies, rendered out of order, give the same as the originals.
  std::vector<CompactDecision> copies(sink.compact.rbegin(), sink.compact.rend());
  for (std::size_t i = 0; i < copies.size(); ++i) {
    const Decision a = gavel::rules::Materialize(copies[i]);
    const Decision b = gavel::rules::Materialize(sink.compact[sink.compact.size() - 1 - i]);
    REQUIRE(gavel::rules::ToJson(a).dump() == gavel::rules::ToJson(b).dump());
  }
}

TEST_CASE("OnEvents gives exactly what AdvanceTo and OnEvent give event by event", "[engine][batch]") {
  const std::vector<Event> events = Workload();
  for (bool compact : {true, false}) {
    VectorSink one_sink, batch_sink, chunks_sink;
    const Run one = Go(one_sink, compact, Drive::kPerEvent, events);
    const Run batch = Go(batch_sink, compact, Drive::kBatch, events);
    const Run chunks = Go(chunks_sink, compact, Drive::kBatchInChunks, events);
    REQUIRE(one.statuses.size() == events.size());
    CHECK(Texts(batch.statuses) == Texts(one.statuses));
    CHECK(Texts(chunks.statuses) == Texts(one.statuses));
    CHECK(Canonical(batch_sink.decisions) == Canonical(one_sink.decisions));
    CHECK(Canonical(chunks_sink.decisions) == Canonical(one_sink.decisions));
    CHECK(batch.duplicates == one.duplicates);
    CHECK(batch.now == one.now);
    CHECK(batch.leads == one.leads);
    CHECK(chunks.leads == one.leads);
    int rejected = 0;
    for (const auto& s : one.statuses) rejected += s.code() == Status::Code::kInvalidArgument;
    CHECK(rejected == one.duplicates);
  }
}

TEST_CASE("OnEvents' straight-line path gives what OnEvent gives", "[engine][batch]") {
  const std::vector<Event> events = Workload(*SimpleProgram());
  for (bool compact : {true, false}) {
    VectorSink one_sink, batch_sink, chunks_sink;
    const Run one = Go(one_sink, compact, Drive::kPerEvent, events, SimpleProgram());
    const Run batch = Go(batch_sink, compact, Drive::kBatch, events, SimpleProgram());
    const Run chunks = Go(chunks_sink, compact, Drive::kBatchInChunks, events, SimpleProgram());
    // The workload exercises what it should: crossings with cooldown and limit skips, `set`,
    // a condition on a field the crossing set, decay back down, a score at its cap and floor.
    std::map<std::string, int> seen;
    for (const auto& d : one_sink.decisions) seen[d.rule + " " + d.outcome + " " + d.reason]++;
    CHECK(seen["mql_handoff fired live"] > 3);
    CHECK(seen["mql_handoff skipped cooldown"] > 0);
    CHECK(seen["hot fired live"] > 0);
    CHECK(seen["pinged fired dry_run"] > 0);
    CHECK(one.duplicates > 0);
    REQUIRE(one.statuses.size() == events.size());
    CHECK(Texts(batch.statuses) == Texts(one.statuses));
    CHECK(Texts(chunks.statuses) == Texts(one.statuses));
    CHECK(Canonical(batch_sink.decisions) == Canonical(one_sink.decisions));
    CHECK(Canonical(chunks_sink.decisions) == Canonical(one_sink.decisions));
    CHECK(batch.duplicates == one.duplicates);
    CHECK(batch.leads == one.leads);
    CHECK(chunks.leads == one.leads);
  }
}

TEST_CASE("OnEvents stops at an event whose decision the sink refuses", "[engine][batch]") {
  for (const auto& program : {Program(), SimpleProgram()})
  for (bool compact : {true, false}) {
    const std::vector<Event> events = Workload(*program);
    FailingSink sink(3);
    SimulatedClock clock(kStart);
    auto engine = StartedEngine(clock, sink, compact, program);
    std::vector<Status> statuses;
    Status s = engine->OnEvents(events, &statuses);
    CHECK(s.code() == Status::Code::kIoError);
    REQUIRE(!statuses.empty());
    CHECK(statuses.size() < events.size());
    CHECK(statuses.back().code() == Status::Code::kIoError);
    CHECK(sink.count == 3);
  }
}

// ---------------------------------------------------------------- specialised conditions

#include "rules/engine_impl.hpp"

TEST_CASE("score and filter conditions on one event field give what the VM gives", "[engine][fastcond]") {
  using gavel::rules::engine_detail::FastCondition;
  const char* conditions[] = {
      R"(s == "/")",       R"(s != "/")",         R"(s < "/b")",        R"(s >= "/b")",      R"(s > "")",
      R"(s like "/p*")",   R"(s not like "/p*")", R"(s like "*")",      R"(s like "/p?x*")", R"(s like "")",
      R"(s like "/p")",    "n > 5",               "n >= 5",             "n < -1.5",          "n == 0",
      "n != 0",            "n <= 5",              "b == true",          "b != true",         "b == false",
      R"(s == "/" and n > 1)", R"(s == "/" or n > 1)", "5 < n",        "n + 1 > 5"};
  std::string src = "event e { s: text, n: number, b: bool }\nentity x keyed by s { }\nscore sc for x {\n";
  for (const char* c : conditions) src += std::string("  on e where ") + c + " add 1\n";
  src += "}\n";
  auto compiled = gavel::dsl::CompileSources({{"f.gavel", src}});
  INFO(gavel::dsl::RenderText(compiled.sources, compiled.diags.list()));
  REQUIRE(compiled.program);
  const auto& program = *compiled.program;
  const auto& score = program.scores[0];
  REQUIRE(score.rules.size() == std::size(conditions));
  auto field_of_slot = [&](std::uint32_t slot) {
    if (slot >= score.slots.size() || score.slots[slot].kind != gavel::dsl::SlotKind::kEventField) return -1;
    const auto& fields = program.events[0].fields;
    for (std::size_t f = 0; f < fields.size(); ++f) {
      if (fields[f].name == score.slots[slot].name) return static_cast<int>(f);
    }
    return -1;
  };
  std::vector<Event> events;
  for (const char* s : {"/", "/p", "/pricing", "/pax", "/b", "", "/a", "z"}) {
    for (double n : {-2.0, 0.0, 1.0, 5.0, 6.0}) {
      for (bool b : {false, true}) {
        Event e;
        e.type = "e";
        e.id = "x";
        e.fields = {{"s", {gavel::rules::Value::Kind::kText, 0, s}},
                    {"n", {gavel::rules::Value::Kind::kNumber, n, ""}},
                    {"b", {gavel::rules::Value::Kind::kBool, b ? 1.0 : 0.0, ""}}};
        REQUIRE(gavel::rules::NormalizeEvent(program, e).ok());
        events.push_back(e);
      }
    }
  }
  gavel::rules::Evaluator ev;
  int specialised = 0;
  for (std::size_t r = 0; r < score.rules.size(); ++r) {
    const FastCondition f = FastCondition::Of(score.rules[r].condition, field_of_slot);
    if (f.kind == FastCondition::Kind::kVm) continue;
    ++specialised;
    for (const Event& e : events) {
      std::vector<gavel::rules::Value> slots(score.slots.size());
      for (std::size_t k = 0; k < slots.size(); ++k) {
        const int field = field_of_slot(static_cast<std::uint32_t>(k));
        if (field >= 0) slots[k] = e.fields[field].second.view();
      }
      INFO(conditions[r] << " on s=" << e.fields[0].second.text << " n=" << e.fields[1].second.num
                         << " b=" << e.fields[2].second.num);
      CHECK(f.Test(e) == ev.Test(score.rules[r].condition, slots.data()));
    }
  }
  // All but `and`, `or`, a constant on the left, arithmetic and a negative constant (a negation
  // in the bytecode): those run in the VM.
  CHECK(specialised == 19);
}

// ---------------------------------------------------------------- the straight-line batch path

TEST_CASE("which event types take the straight-line batch path", "[engine][batch]") {
  SimulatedClock clock(kStart);
  VectorSink sink;
  const gavel::rules::EngineDeps deps{&clock, &sink, nullptr};
  Engine engine(SimpleProgram(), deps);
  // Plans as the engine builds them (a second Impl on the same engine, for inspection).
  const Engine::Impl simple(engine, SimpleProgram(), deps, {});
  REQUIRE(simple.type_plans.size() == 3);
  CHECK(simple.type_plans[0].simple);   // page_view
  CHECK(simple.type_plans[1].simple);   // signup
  CHECK(!simple.type_plans[2].simple);  // ping: no entity
  const Engine::Impl full(engine, Program(), deps, {});
  CHECK(!full.type_plans[0].simple);  // `crosses below` watches lead_score (decay timers)
  CHECK(!full.type_plans[1].simple);  // and an event rule watches signup
}

TEST_CASE("event-id hashes are XXH3-128 of the id, as checkpoints store them", "[engine][batch]") {
  // SeenIds::HashOf takes XXH3's short-input branch inline; checkpoints written before and
  // after must agree on every id.
  std::string id;
  for (int n = 0; n <= 40; ++n) {
    const XXH128_hash_t a = gavel::rules::engine_detail::SeenIds::HashOf(id);
    const XXH128_hash_t b = XXH3_128bits(id.data(), id.size());
    CHECK(a.low64 == b.low64);
    CHECK(a.high64 == b.high64);
    id.push_back(static_cast<char>('a' + n % 26 + (n % 3 == 0 ? 0x80 : 0)));
  }
}

TEST_CASE("entity ids of every short length spread over the index", "[engine][batch]") {
  // HashId's short-id mixing: ids that differ in one byte, at any position and length up to
  // 16, get different hashes, and their low bits (the index's home slot) spread.
  std::set<std::uint64_t> hashes, homes;
  int ids = 0;
  for (int n = 1; n <= 20; ++n) {
    for (int pos = 0; pos < n; ++pos) {
      for (int c = 0; c < 16; ++c) {
        std::string id(static_cast<std::size_t>(n), 'x');
        id[static_cast<std::size_t>(pos)] = static_cast<char>('A' + c);
        const std::uint64_t h = gavel::rules::engine_detail::HashId(id);
        hashes.insert(h);
        homes.insert(h & 1023);
        ++ids;
      }
    }
  }
  // All 3,360 ids are distinct (one letter A-P in a run of x's).
  CHECK(hashes.size() == static_cast<std::size_t>(ids));
  CHECK(homes.size() > 900);  // of 1,024 slots
}

TEST_CASE("the seen-id table answers as a set of 128-bit hashes, neighbours and overflow included",
          "[engine][batch]") {
  // Hashes that share the slot tag (the top 32 bits) and the home slot but differ elsewhere,
  // mixed with random ones; each added twice in a shuffled order, so the table grows from
  // 1,024 slots as they come. With room for 3,000 hashes in the table, the rest go to the
  // overflow set; the answers must not change.
  using gavel::rules::engine_detail::SeenIds;
  std::mt19937_64 rng(7);
  std::vector<XXH128_hash_t> hashes;
  for (int i = 0; i < 5000; ++i) {
    XXH128_hash_t h{rng(), rng()};
    if (i % 4 != 0 && !hashes.empty()) {
      const XXH128_hash_t& near = hashes[rng() % hashes.size()];
      h.high64 = (near.high64 & 0xffffffff00000000ull) | (rng() % 2 ? near.high64 & 0xffffffffull : h.high64 & 0xffffffffull);
      if (i % 8 == 1) h.high64 = near.high64;  // the same high half: told apart by the low one
    }
    hashes.push_back(h);
  }
  std::vector<XXH128_hash_t> order = hashes;
  order.insert(order.end(), hashes.begin(), hashes.end());
  std::shuffle(order.begin(), order.end(), rng);
  for (const std::size_t room : {std::size_t{3000}, std::size_t{1} << 20}) {
    SeenIds seen(room);
    std::set<std::pair<std::uint64_t, std::uint64_t>> want;
    std::size_t mismatches = 0;
    for (const XXH128_hash_t& h : order) {
      const bool added = want.insert({h.high64, h.low64}).second;
      if (seen.InsertHashed(h) != added) ++mismatches;
    }
    INFO("room " << room);
    CHECK(mismatches == 0);
    CHECK(seen.size() == want.size());
  }
}

TEST_CASE("restoring many checkpoint rows grows the seen-id hashes geometrically", "[engine][batch]") {
  // A restore reserves room once per "events" row (engine_state.cpp); an exact reserve would
  // copy every hash loaded so far once per row.
  gavel::rules::engine_detail::SeenIds seen;
  std::mt19937_64 rng(11);
  std::set<std::size_t> capacities;
  for (int row = 0; row < 1000; ++row) {
    seen.Reserve(seen.size() + 10);
    for (int i = 0; i < 10; ++i) CHECK(seen.InsertHashed(XXH128_hash_t{rng(), rng()}));
    capacities.insert(seen.hash_capacity());
  }
  CHECK(seen.size() == 10000);
  CHECK(capacities.size() < 20);
}
