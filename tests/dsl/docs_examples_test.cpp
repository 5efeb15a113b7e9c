// Every ```gavel example in docs/language.md compiles (with the playbooks' schema), so the
// reference never shows a rule that gavel would refuse.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dsl/compiler.hpp"

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("every gavel example in the language reference compiles", "[docs]") {
  std::string doc = ReadFile(std::string(GAVEL_SOURCE_DIR) + "/docs/language.md");
  REQUIRE(!doc.empty());
  std::vector<std::string> blocks;
  std::size_t pos = 0;
  while ((pos = doc.find("```gavel\n", pos)) != std::string::npos) {
    pos += 9;
    std::size_t end = doc.find("```", pos);
    REQUIRE(end != std::string::npos);
    blocks.push_back(doc.substr(pos, end - pos));
    pos = end + 3;
  }
  REQUIRE(blocks.size() >= 10);
  gavel::dsl::CompileOptions options;
  options.read_file = [](const std::string& path, std::string& out) {
    std::string name = std::filesystem::path(path).filename().string();
    out = ReadFile(std::string(GAVEL_SOURCE_DIR) + "/playbooks/" + name);
    return !out.empty();
  };
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    std::string text = blocks[i];
    // Examples are shown on their own; they read the playbooks' schema and lead score.
    bool declares_schema = text.find("table adset_daily") != std::string::npos;
    bool declares_score = text.find("score lead_score") != std::string::npos;
    std::string prefix;
    if (!declares_schema && text.find("import \"schema.gavel\"") == std::string::npos) {
      prefix += "import \"schema.gavel\"\n";
    }
    if (!declares_score && !declares_schema && text.find("lead_scoring.gavel") == std::string::npos) {
      prefix += "import \"lead_scoring.gavel\"\n";
    }
    auto r = gavel::dsl::CompileSources({{"example" + std::to_string(i + 1) + ".gavel", prefix + text}}, options);
    INFO("example " << i + 1 << ":\n" << text << "\n" << gavel::dsl::RenderText(r.sources, r.diags.list()));
    // An example may show a declaration the playbooks also have (the schema, mql_handoff);
    // that repetition is the only error allowed.
    int errors = 0;
    for (const auto& d : r.diags.list()) {
      if (d.severity == gavel::dsl::DiagSeverity::kError && d.code != "duplicate-name") ++errors;
    }
    CHECK(errors == 0);
  }
}
