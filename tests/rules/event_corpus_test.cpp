// Replays the event fuzzer's corpus (tests/fuzz/event_corpus/) in the normal test build: every
// input is parsed against the fuzzer's program, refused with a reason or applied to an engine,
// never a crash (the ASan build runs this too).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dsl/compiler.hpp"
#include "rules/engine.hpp"

TEST_CASE("every input of the event fuzz corpus is refused with a reason or applied", "[eval][fuzz]") {
  // The program of tests/fuzz/event_fuzzer.cpp, read from its source so the two cannot drift.
  const std::filesystem::path root(GAVEL_SOURCE_DIR);
  std::ifstream src(root / "tests" / "fuzz" / "event_fuzzer.cpp");
  std::stringstream ss;
  ss << src.rdbuf();
  const std::string text = ss.str();
  const auto begin = text.find("R\"(") + 3, end = text.find(")\";", begin);
  REQUIRE(end != std::string::npos);
  auto compiled = gavel::dsl::CompileSources({{"fuzz.gavel", text.substr(begin, end - begin)}});
  INFO(gavel::dsl::RenderText(compiled.sources, compiled.diags.list()));
  REQUIRE(compiled.program);
  gavel::rules::SimulatedClock clock(1790000000000);
  gavel::rules::VectorSink sink;
  gavel::rules::Engine engine(compiled.program, {&clock, &sink, nullptr});
  engine.Start(1790000000000);
  int files = 0, accepted = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root / "tests" / "fuzz" / "event_corpus")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream data;
    data << in.rdbuf();
    gavel::rules::Event e;
    gavel::Status s = gavel::rules::ParseEvent(*compiled.program, data.str(), e);
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
