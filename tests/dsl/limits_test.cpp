// Hostile and huge inputs: bounded output, suggestions that stay cheap.
#include <catch2/catch.hpp>

#include "dsl/compiler.hpp"

TEST_CASE("a file with thousands of mistakes reports the first 200 and says how many more", "[limits]") {
  std::string src;
  for (int i = 0; i < 1000; ++i) src += "rule r" + std::to_string(i) + " { ownr \"x\" }\n";
  auto r = gavel::dsl::CompileSources({{"many.gavel", src}});
  REQUIRE(r.diags.error_count() == 201);
  const auto& last = r.diags.list().back();
  CHECK(last.code == "too-many-errors");
  CHECK(last.message == "800 more errors are not shown");
}

TEST_CASE("a mistake on a very long line shows a window of the line around the caret", "[limits]") {
  std::string src = "rule r {\n  owner \"x\"\n  every 1h\n  when " + std::string(5000, 'a') + " > 1 and zzz > 2\n"
                    "  then notify slack \"#x\" \"y\"\n}\n";
  auto r = gavel::dsl::CompileSources({{"long.gavel", src}});
  std::string text = gavel::dsl::RenderText(r.sources, r.diags.list());
  INFO(text);
  CHECK(text.size() < 2000);
  CHECK(text.find("...") != std::string::npos);
  CHECK(text.find("unknown name `zzz`") != std::string::npos);
}

TEST_CASE("a very long unknown name gets no suggestion and costs no edit-distance table", "[limits]") {
  CHECK(gavel::dsl::ClosestMatch(std::string(30000, 'a'), {std::string(30000, 'b')}).empty());
  CHECK(gavel::dsl::ClosestMatch("ownr", {"owner", "description"}) == "owner");
}
