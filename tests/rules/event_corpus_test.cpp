// Replays the event fuzzer's corpus (tests/fuzz/event_corpus/) in the normal test build: every
// input is parsed against the fuzzer's program, refused with a reason or applied to an engine,
// never a crash (the ASan build runs this too); and, as the fuzzer does, against its second
// program, applied event by event and in batches of eight, which must agree.
#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dsl/compiler.hpp"
#include "rules/engine.hpp"

namespace {

// The fuzzer's source, and the program text of its n-th raw string (0: kProgram,
// 1: kSimpleProgram), read from it so that the two cannot drift.
std::string FuzzerSource() {
  std::ifstream src(std::filesystem::path(GAVEL_SOURCE_DIR) / "tests" / "fuzz" / "event_fuzzer.cpp");
  std::stringstream ss;
  ss << src.rdbuf();
  return ss.str();
}

std::string ProgramText(const std::string& source, int n) {
  std::size_t begin = 0;
  for (int i = 0; i <= n; ++i) {
    begin = source.find("R\"(", begin);
    REQUIRE(begin != std::string::npos);
    begin += 3;
  }
  const std::size_t end = source.find(")\";", begin);
  REQUIRE(end != std::string::npos);
  return source.substr(begin, end - begin);
}

std::vector<std::string> CorpusInputs() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(GAVEL_SOURCE_DIR) / "tests" / "fuzz" / "event_corpus")) {
    paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream data;
    data << in.rdbuf();
    out.push_back(data.str());
  }
  return out;
}

}  // namespace

TEST_CASE("every input of the event fuzz corpus is refused with a reason or applied", "[eval][fuzz]") {
  // The program of tests/fuzz/event_fuzzer.cpp, read from its source so the two cannot drift.
  auto compiled = gavel::dsl::CompileSources({{"fuzz.gavel", ProgramText(FuzzerSource(), 0)}});
  INFO(gavel::dsl::RenderText(compiled.sources, compiled.diags.list()));
  REQUIRE(compiled.program);
  gavel::rules::SimulatedClock clock(1790000000000);
  gavel::rules::VectorSink sink;
  gavel::rules::Engine engine(compiled.program, {&clock, &sink, nullptr});
  engine.Start(1790000000000);
  int files = 0, accepted = 0;
  for (const std::string& input : CorpusInputs()) {
    gavel::rules::Event e;
    gavel::Status s = gavel::rules::ParseEvent(*compiled.program, input, e);
    ++files;
    if (!s.ok()) {
      CHECK_FALSE(s.message().empty());
      continue;
    }
    ++accepted;
    const gavel::rules::TimeMs t = std::max(e.time, engine.now());
    clock.Set(t);
    (void)engine.AdvanceTo(t);
    (void)engine.OnEvent(e);
  }
  CHECK(files >= 20);
  INFO(accepted << " of " << files << " accepted");
  CHECK(accepted > 0);
}

TEST_CASE("the event fuzz corpus gives the same in batches as event by event", "[eval][fuzz]") {
  auto compiled = gavel::dsl::CompileSources({{"simple.gavel", ProgramText(FuzzerSource(), 1)}});
  INFO(gavel::dsl::RenderText(compiled.sources, compiled.diags.list()));
  REQUIRE(compiled.program);
  gavel::rules::SimulatedClock clock(1790000000000);
  gavel::rules::VectorSink one_sink, batch_sink;
  gavel::rules::Engine one(compiled.program, {&clock, &one_sink, nullptr});
  gavel::rules::Engine batch(compiled.program, {&clock, &batch_sink, nullptr});
  one.Start(1790000000000);
  batch.Start(1790000000000);
  std::vector<gavel::rules::Event> events;
  for (const std::string& input : CorpusInputs()) {
    gavel::rules::Event e;
    if (gavel::rules::ParseEvent(*compiled.program, input, e).ok()) events.push_back(std::move(e));
  }
  REQUIRE(events.size() > 20);
  std::vector<std::string> one_statuses, batch_statuses;
  for (const auto& e : events) {
    gavel::Status s = one.AdvanceTo(e.time);
    if (s.ok()) s = one.OnEvent(e);
    one_statuses.push_back(std::to_string(static_cast<int>(s.code())) + " " + s.message());
  }
  for (std::size_t i = 0; i < events.size(); i += 8) {
    std::vector<gavel::Status> part;
    const std::size_t n = std::min<std::size_t>(8, events.size() - i);
    (void)batch.OnEvents(std::span<const gavel::rules::Event>(events).subspan(i, n), &part);
    for (const auto& s : part) batch_statuses.push_back(std::to_string(static_cast<int>(s.code())) + " " + s.message());
  }
  CHECK(batch_statuses == one_statuses);
  REQUIRE(batch_sink.decisions.size() == one_sink.decisions.size());
  for (std::size_t i = 0; i < one_sink.decisions.size(); ++i) {
    CHECK(gavel::rules::ToJson(batch_sink.decisions[i]).dump() == gavel::rules::ToJson(one_sink.decisions[i]).dump());
  }
  for (const auto& e : events) {
    const gavel::rules::OwnedValue* lead = e.Get("lead_id");
    if (lead) CHECK(batch.DescribeEntity("lead", lead->text) == one.DescribeEntity("lead", lead->text));
  }
}
