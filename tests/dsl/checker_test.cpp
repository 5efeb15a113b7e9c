// The checker: the unit algebra of dsl/units.hpp, table by table, and the checks of
// dsl/compiler.cpp end to end on small in-memory programs (code and exact position of each
// diagnostic), plus the playbooks, rule versions and the SQL a rule pushes down.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dsl/compiler.hpp"
#include "dsl/units.hpp"

namespace {

namespace fs = std::filesystem;
using gavel::dsl::BaseType;
using gavel::dsl::CompileResult;
using gavel::dsl::Diagnostic;
using gavel::dsl::DiagSeverity;
using gavel::dsl::Op;
using gavel::dsl::TypeRef;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Playbook(const std::string& name) {
  return ReadText(fs::path(GAVEL_SOURCE_DIR) / "playbooks" / name);
}

TypeRef T(BaseType b, std::string currency = {}) {
  TypeRef t;
  t.base = b;
  t.currency = std::move(currency);
  return t;
}

const TypeRef kUsd = T(BaseType::kMoney, "USD");
const TypeRef kEur = T(BaseType::kMoney, "EUR");
const TypeRef kCount = T(BaseType::kCount);
const TypeRef kNumber = T(BaseType::kNumber);
const TypeRef kRatio = T(BaseType::kRatio);
const TypeRef kPercent = T(BaseType::kPercent);
const TypeRef kDuration = T(BaseType::kDuration);
const TypeRef kText = T(BaseType::kText);
const TypeRef kBool = T(BaseType::kBool);
const TypeRef kError = T(BaseType::kError);

bool SameType(const TypeRef& a, const TypeRef& b) { return a.base == b.base && a.currency == b.currency; }

const char* OpName(Op op) {
  switch (op) {
    case Op::kAdd: return "+";
    case Op::kSub: return "-";
    case Op::kMul: return "*";
    case Op::kDiv: return "/";
    default: return "?";
  }
}

// `program` compiled next to the real schema (and, with `with_scores`, the lead scoring
// playbook), as "test.gavel".
CompileResult CompileProgram(const std::string& program, bool with_scores = false) {
  std::vector<std::pair<std::string, std::string>> sources = {{"schema.gavel", Playbook("schema.gavel")}};
  if (with_scores) sources.emplace_back("lead_scoring.gavel", Playbook("lead_scoring.gavel"));
  sources.emplace_back("test.gavel", program);
  return gavel::dsl::CompileSources(sources);
}

// A diagnostic as the tests look at it: code, position and the text under the caret.
struct Seen {
  std::string code;
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string underlined;
  std::string message;
  std::string hint;
  bool error = true;
};

std::vector<Seen> Diags(const CompileResult& r) {
  std::vector<Seen> out;
  for (const Diagnostic& d : r.diags.list()) {
    auto pos = r.sources.Position(d.span.file, d.span.begin);
    out.push_back({d.code, r.sources.file(d.span.file).path, pos.line, pos.column,
                   std::string(r.sources.Text(d.span)), d.message, d.hint,
                   d.severity == DiagSeverity::kError});
  }
  return out;
}

std::string Describe(const CompileResult& r) { return gavel::dsl::RenderText(r.sources, r.diags.list()); }

// The one diagnostic of a compile.
Seen Only(const CompileResult& r) {
  INFO(Describe(r));
  REQUIRE(r.diags.list().size() == 1);
  return Diags(r)[0];
}

// A scheduled rule over adset_daily with `body` as its clauses after the scope.
std::string AdsetRule(const std::string& body, const std::string& scope_window = " over last 3d") {
  return "rule r {\n"
         "  owner \"a@example.com\"\n"
         "  every 1h\n"
         "  for each adset in adset_daily" + scope_window + "\n" + body + "}\n";
}

// ---------------------------------------------------------------- the unit algebra

struct ArithmeticRow {
  Op op;
  TypeRef a, b, result;
};

TEST_CASE("arithmetic gives the unit that the unit table promises", "[checker][units]") {
  const std::vector<ArithmeticRow> rows = {
      {Op::kAdd, kUsd, kUsd, kUsd},         {Op::kSub, kUsd, kUsd, kUsd},
      {Op::kAdd, kCount, kCount, kCount},   {Op::kAdd, kCount, kNumber, kCount},
      {Op::kAdd, kRatio, kPercent, kRatio}, {Op::kAdd, kDuration, kDuration, kDuration},
      {Op::kDiv, kUsd, kCount, kUsd},       // a cost per thing (CPA)
      {Op::kDiv, kUsd, kUsd, kRatio},       // ROAS
      {Op::kDiv, kCount, kCount, kRatio},   // CTR
      {Op::kDiv, kCount, kUsd, kNumber},    // things per unit of money
      {Op::kDiv, kUsd, kNumber, kUsd},      {Op::kDiv, kUsd, kPercent, kUsd},
      {Op::kMul, kNumber, kUsd, kUsd},      {Op::kMul, kUsd, kNumber, kUsd},
      {Op::kMul, kUsd, kPercent, kUsd},     {Op::kMul, kRatio, kUsd, kUsd},
      {Op::kMul, kNumber, kCount, kCount},  {Op::kMul, kRatio, kPercent, kRatio},
      {Op::kMul, kDuration, kNumber, kDuration},
  };
  for (const auto& row : rows) {
    std::string why;
    TypeRef got = gavel::dsl::Arithmetic(row.op, row.a, row.b, why);
    INFO(gavel::dsl::TypeName(row.a) << " " << OpName(row.op) << " " << gavel::dsl::TypeName(row.b)
                                     << " gave " << gavel::dsl::TypeName(got) << " (" << why << ")");
    CHECK(SameType(got, row.result));
    CHECK(why.empty());
  }
}

struct RefusedRow {
  Op op;
  TypeRef a, b;
  std::string hint_contains;
};

TEST_CASE("arithmetic that mixes units is refused with a hint for the author", "[checker][units]") {
  const std::vector<RefusedRow> rows = {
      {Op::kAdd, kUsd, kEur, "never mixes currencies"},
      {Op::kDiv, kUsd, kEur, "never mixes currencies"},
      {Op::kAdd, kUsd, kCount, "only money adds to money"},
      {Op::kSub, kCount, kUsd, "only money adds to money"},
      {Op::kAdd, kUsd, kNumber, "`5 USD`"},
      {Op::kAdd, kCount, kRatio, "measure different things"},
      {Op::kAdd, kDuration, kNumber, "`1d`"},
      {Op::kMul, kUsd, kUsd, "money times money"},
      {Op::kMul, kUsd, kCount, "plain number or a ratio"},
      {Op::kMul, kDuration, kCount, "plain number"},
      {Op::kDiv, kDuration, kCount, "duration"},
      {Op::kAdd, kText, kNumber, "arithmetic works on numbers"},
      {Op::kMul, kBool, kCount, "arithmetic works on numbers"},
  };
  for (const auto& row : rows) {
    std::string why;
    TypeRef got = gavel::dsl::Arithmetic(row.op, row.a, row.b, why);
    INFO(gavel::dsl::TypeName(row.a) << " " << OpName(row.op) << " " << gavel::dsl::TypeName(row.b));
    CHECK(got.base == BaseType::kError);
    CHECK_THAT(why, Catch::Contains(row.hint_contains));
  }
}

TEST_CASE("arithmetic on a value that already failed stays quiet", "[checker][units]") {
  for (const TypeRef& other : {kUsd, kText, kCount}) {
    std::string why;
    CHECK(gavel::dsl::Arithmetic(Op::kAdd, kError, other, why).base == BaseType::kError);
    CHECK(gavel::dsl::Arithmetic(Op::kMul, other, kError, why).base == BaseType::kError);
    CHECK(why.empty());
  }
}

struct CompareRow {
  TypeRef a, b;
  bool ok;
  std::string hint_contains;  // when refused
};

TEST_CASE("comparisons need the same unit, and a bare number only for unit-free measures",
          "[checker][units]") {
  const std::vector<CompareRow> rows = {
      {kUsd, kUsd, true, ""},
      {kCount, kCount, true, ""},
      {kCount, kNumber, true, ""},
      {kNumber, kRatio, true, ""},
      {kRatio, kPercent, true, ""},    // 90% == 0.9
      {kText, kText, true, ""},
      {kDuration, kDuration, true, ""},
      {kUsd, kNumber, false, "`40 USD`"},
      {kNumber, kEur, false, "`40 EUR`"},
      {kUsd, kEur, false, "never mixes currencies"},
      {kUsd, kPercent, false, "multiply the amount by the percentage"},
      {kUsd, kCount, false, "only money compares with money"},
      {kDuration, kNumber, false, "`30d`"},
      {kCount, kRatio, false, "measure different things"},
      {kText, kNumber, false, "put quotes around text"},
  };
  for (const auto& row : rows) {
    std::string why;
    bool ok = gavel::dsl::Comparable(row.a, row.b, why);
    INFO(gavel::dsl::TypeName(row.a) << " vs " << gavel::dsl::TypeName(row.b) << ": " << why);
    CHECK(ok == row.ok);
    if (!row.ok) CHECK_THAT(why, Catch::Contains(row.hint_contains));
  }
}

TEST_CASE("a field accepts values of its own unit and plain numbers where it is unit-free",
          "[checker][units]") {
  CHECK(gavel::dsl::Compatible(kUsd, kUsd));
  CHECK_FALSE(gavel::dsl::Compatible(kUsd, kEur));
  CHECK_FALSE(gavel::dsl::Compatible(kUsd, kNumber));
  CHECK(gavel::dsl::Compatible(kCount, kNumber));
  CHECK(gavel::dsl::Compatible(kPercent, kRatio));
  CHECK_FALSE(gavel::dsl::Compatible(kText, kNumber));
  CHECK(gavel::dsl::Compatible(kText, kError));
}

TEST_CASE("type names are written in the author's words", "[checker][units]") {
  CHECK(gavel::dsl::TypeName(kUsd) == "money(USD)");
  CHECK(gavel::dsl::TypeName(kCount) == "a count");
  CHECK(gavel::dsl::TypeName(kBool) == "a yes/no condition");
  CHECK(gavel::dsl::TypeName(kPercent) == "a percentage");
}

// ---------------------------------------------------------------- end to end

TEST_CASE("money compared with a bare number is reported at the number, with its own currency fix",
          "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(spend) > 500\n  then pause adset\n")));
  CHECK(d.code == "unit-mismatch");
  CHECK(d.file == "test.gavel");
  CHECK(d.line == 5);
  CHECK(d.column == 21);
  CHECK(d.underlined == "500");
  CHECK(d.hint == "give the number a currency: `500 USD`");
}

TEST_CASE("money added to a count is reported at the count", "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(spend) + sum(clicks) > 5 USD\n  then pause adset\n")));
  CHECK(d.code == "unit-mismatch");
  CHECK(d.line == 5);
  CHECK(d.column == 21);
  CHECK(d.underlined == "sum(clicks)");
  CHECK(d.message == "cannot add money(USD) and a count");
}

TEST_CASE("dollars compared with euros are reported as a unit mismatch", "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(spend) > 100 EUR\n  then pause adset\n")));
  CHECK(d.code == "unit-mismatch");
  CHECK(d.underlined == "100 EUR");
  CHECK(d.message == "cannot compare money(USD) with money(EUR)");
}

TEST_CASE("a `when` that is not a yes/no condition is reported under the whole condition", "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(clicks) / sum(impressions)\n  then pause adset\n")));
  CHECK(d.code == "not-a-condition");
  CHECK(d.line == 5);
  CHECK(d.column == 8);
  CHECK(d.underlined == "sum(clicks) / sum(impressions)");
}

TEST_CASE("`and` between numbers is reported at the side that is not a condition", "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(clicks) > 10 and sum(conversions)\n  then pause adset\n")));
  CHECK(d.code == "unit-mismatch");
  CHECK(d.underlined == "sum(conversions)");
  CHECK_THAT(d.message, Catch::Contains("`and` joins conditions"));
}

TEST_CASE("a window shorter than the table's grain is reported at the window", "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(spend) > 5 USD\n  then pause adset\n", " over last 12h")));
  CHECK(d.code == "grain-mismatch");
  CHECK(d.line == 4);
  CHECK(d.underlined == "last 12h");
}

TEST_CASE("an unknown column is reported at the column and the closest one is suggested", "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(spend) > adset.target_cap\n  then pause adset\n")));
  CHECK(d.code == "unknown-name");
  CHECK(d.underlined == "target_cap");
  CHECK(d.message == "table `adset_daily` has no column `target_cap`");
  CHECK(d.hint == "did you mean `target_cpa`?");
}

TEST_CASE("a misspelt name with two letters swapped still gets a suggestion", "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when sum(spend) > 5 USD\n  then pause adset\n"
                                         "       notify slack \"#a\" \"{adset.nmae}\"\n")));
  CHECK(d.underlined == "nmae");
  CHECK(d.hint == "did you mean `name`?");
}

TEST_CASE("an unknown trigger event is reported once, not again for the names it would bring",
          "[checker]") {
  CompileResult r = CompileProgram(
      "rule r {\n  owner \"a@example.com\"\n  on page_veiw where page == \"/\"\n"
      "  then webhook \"w\" with { lead: lead.lead_id }\n       email \"hello\"\n}\n");
  Seen d = Only(r);
  CHECK(d.code == "unknown-name");
  CHECK(d.underlined == "page_veiw");
  CHECK(d.hint == "did you mean `page_view`?");
}

TEST_CASE("an unknown table is reported once, not again for the aggregates and actions that use it",
          "[checker]") {
  CompileResult r = CompileProgram(
      "rule r {\n  owner \"a@example.com\"\n  every 1h\n  for each adset in adsets over last 3d\n"
      "  let cpa = sum(spend) / sum(conversions)\n  when cpa > adset.target_cpa\n  then pause adset\n}\n");
  Seen d = Only(r);
  CHECK(d.code == "unknown-name");
  CHECK(d.underlined == "adsets");
}

TEST_CASE("a rule whose aggregates have no window is told so once", "[checker]") {
  Seen d = Only(CompileProgram(
      AdsetRule("  let cpa = sum(spend) / sum(conversions)\n  when cpa > adset.target_cpa\n  then pause adset\n", "")));
  CHECK(d.code == "missing-window");
  CHECK(d.underlined == "sum(spend)");
  CHECK(d.hint == "say how far back to look: `for each adset in adset_daily over last 3d`");
}

TEST_CASE("a fact used without an aggregate is reported with a window that fits the table",
          "[checker]") {
  Seen d = Only(CompileProgram(AdsetRule("  when spend > 5 USD\n  then pause adset\n")));
  CHECK(d.code == "fact-outside-aggregate");
  CHECK(d.underlined == "spend");
  CHECK(d.hint == "or give it a window of its own: `spend over last 1d`");
}

TEST_CASE("a message placeholder naming an unknown column is reported under the placeholder",
          "[checker]") {
  CompileResult r = CompileProgram(
      AdsetRule("  when sum(spend) > 5 USD\n  then pause adset\n       notify slack \"#a\" \"é {adset.nam}\"\n"));
  Seen d = Only(r);
  CHECK(d.code == "unknown-name");
  CHECK(d.line == 7);
  CHECK(d.column == 36);  // characters, not bytes: `é` is two bytes
  CHECK(d.underlined == "nam");
}

TEST_CASE("a message with a `{` that is never closed is reported at that brace", "[checker]") {
  Seen d = Only(CompileProgram(
      AdsetRule("  when sum(spend) > 5 USD\n  then notify slack \"#a\" \"{adset.name is over\"\n")));
  CHECK(d.code == "bad-template");
  CHECK(d.underlined == "{adset.name");
  CHECK(d.message == "this `{` is never closed");
}

TEST_CASE("a let used only by an action that is refused is not also reported as unused", "[checker]") {
  CompileResult r = CompileProgram(
      "rule r {\n  owner \"a@example.com\"\n  every 1d\n  for each channel in channel_daily over last 7d\n"
      "  let roas = sum(revenue) / sum(spend)\n  then reallocate budget toward roas keep total\n}\n");
  Seen d = Only(r);
  CHECK(d.code == "wrong-target");
  CHECK_THAT(d.hint, Catch::Contains("across channel in channel_daily"));
}

TEST_CASE("pausing a lead is refused at the lead, with a way to change a lead instead", "[checker]") {
  Seen d = Only(CompileProgram(
      "rule r {\n  owner \"a@example.com\"\n  on lead_score crosses below 10\n  then pause lead\n}\n", true));
  CHECK(d.code == "wrong-target");
  CHECK(d.line == 4);
  CHECK(d.underlined == "lead");
  CHECK_THAT(d.hint, Catch::Contains("set lead."));
}

TEST_CASE("setting a text field to a number is reported at the value with a quoting hint", "[checker]") {
  Seen d = Only(CompileProgram(
      "rule r {\n  owner \"a@example.com\"\n  on lead_score crosses above 80\n  then set lead.stage = 3\n}\n", true));
  CHECK(d.code == "unit-mismatch");
  CHECK(d.underlined == "3");
  CHECK(d.hint == "put quotes around it to store it as text: `\"3\"`");
}

TEST_CASE("the steps of a branch on an event the wait ignores are not reported as unreachable",
          "[checker]") {
  CompileResult r = CompileProgram(
      "journey j for lead {\n  owner \"a@example.com\"\n  enter on guide_download\n"
      "  step a: email \"a\"\n  wait up to 2d for email_open\n"
      "    on webinar_signup: step b: email \"b\"\n}\n",
      true);
  Seen d = Only(r);
  CHECK(d.code == "unknown-branch");
  CHECK(d.underlined == "webinar_signup");
}

TEST_CASE("a step after `end` is reported once, with the line of the `end`", "[checker]") {
  Seen d = Only(CompileProgram("journey j for lead {\n  owner \"a@example.com\"\n  enter on guide_download\n"
                               "  step a: email \"a\"\n  end\n  step b: email \"b\"\n  step c: email \"c\"\n}\n",
                               true));
  CHECK(d.code == "unreachable-step");
  CHECK(d.line == 6);
  CHECK_THAT(d.hint, Catch::Contains("after the `end` on line 5"));
}

TEST_CASE("a rule without an owner is a warning, and the program is still produced", "[checker]") {
  CompileResult r = CompileProgram("rule r {\n  every 1h\n  for each adset in adset_daily over last 1d\n"
                                   "  when sum(spend) > 5 USD\n  then pause adset\n}\n");
  Seen d = Only(r);
  CHECK(d.code == "missing-owner");
  CHECK_FALSE(d.error);
  CHECK(r.program != nullptr);
}

TEST_CASE("events of an imported schema that this file does not use are not warned about",
          "[checker]") {
  gavel::dsl::CompileOptions options;
  std::string schema = Playbook("schema.gavel");
  options.read_file = [&](const std::string& path, std::string& out) {
    if (path != "schema.gavel") return false;
    out = schema;
    return true;
  };
  CompileResult r = gavel::dsl::CompileSources({{"cpa.gavel", Playbook("cpa_pause.gavel")}}, options);
  INFO(Describe(r));
  CHECK(r.diags.list().empty());
  CHECK(r.program != nullptr);
}

TEST_CASE("an event declared next to rules that never use it is a warning", "[checker]") {
  CompileResult r = CompileProgram("event trial { lead_id: text }\n" +
                                   AdsetRule("  when sum(spend) > 5 USD\n  then pause adset\n"));
  Seen d = Only(r);
  CHECK(d.code == "unused");
  CHECK(d.underlined == "trial");
  CHECK_FALSE(d.error);
}

// ---------------------------------------------------------------- playbooks

TEST_CASE("every playbook compiles on its own with no errors and no warnings", "[checker][playbooks]") {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(GAVEL_SOURCE_DIR) / "playbooks")) {
    if (entry.path().extension() == ".gavel") files.push_back(entry.path());
  }
  REQUIRE(files.size() >= 6);
  for (const auto& f : files) {
    CompileResult r = gavel::dsl::Compile({f.string()});
    INFO(f.filename().string() << "\n" << r.io_error << Describe(r));
    CHECK(r.io_error.empty());
    CHECK(r.diags.error_count() == 0);
    CHECK(r.diags.warning_count() == 0);
    CHECK(r.program != nullptr);
  }
}

TEST_CASE("the playbooks directory compiles as one program with no errors and no warnings",
          "[checker][playbooks]") {
  CompileResult r = gavel::dsl::Compile({std::string(GAVEL_SOURCE_DIR) + "/playbooks"});
  INFO(r.io_error << Describe(r));
  REQUIRE(r.program != nullptr);
  CHECK(r.diags.list().empty());
  CHECK(r.program->rules.size() == 4);
  CHECK(r.program->alerts.size() == 3);
  CHECK(r.program->journeys.size() == 1);
  CHECK(r.program->scores.size() == 1);
}

// ---------------------------------------------------------------- versions and SQL

const gavel::dsl::CompiledRule* FindRule(const gavel::dsl::Program& p, const std::string& name) {
  for (const auto& r : p.rules) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

std::string VersionOf(const std::string& cpa_pause_text) {
  CompileResult r = gavel::dsl::CompileSources(
      {{"schema.gavel", Playbook("schema.gavel")}, {"cpa_pause.gavel", cpa_pause_text}});
  INFO(Describe(r));
  REQUIRE(r.program != nullptr);
  const auto* rule = FindRule(*r.program, "pause_high_cpa");
  REQUIRE(rule != nullptr);
  REQUIRE(rule->version.size() == 64);
  return rule->version;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

TEST_CASE("a rule keeps its version when only comments and blank space change", "[checker][version]") {
  std::string original = Playbook("cpa_pause.gavel");
  std::string reformatted = ReplaceAll(original, "\n  ", "\n\n      ");
  reformatted = ReplaceAll(reformatted, "cooldown 24h", "cooldown   24h   # a day between pauses");
  reformatted = "# Reviewed by the paid-social team.\n" + reformatted;
  REQUIRE(reformatted != original);
  CHECK(VersionOf(reformatted) == VersionOf(original));
}

TEST_CASE("a rule gets a new version when its threshold changes", "[checker][version]") {
  std::string original = Playbook("cpa_pause.gavel");
  std::string changed = ReplaceAll(original, "1.5 * adset.target_cpa", "1.6 * adset.target_cpa");
  REQUIRE(changed != original);
  CHECK(VersionOf(changed) != VersionOf(original));
}

TEST_CASE("the SQL of pause_high_cpa filters the ad sets on the channel", "[checker][sql]") {
  CompileResult r = gavel::dsl::Compile({std::string(GAVEL_SOURCE_DIR) + "/playbooks/cpa_pause.gavel"});
  REQUIRE(r.program != nullptr);
  const auto* rule = FindRule(*r.program, "pause_high_cpa");
  REQUIRE(rule != nullptr);
  REQUIRE(rule->scope.has_value());
  CHECK_THAT(rule->scope->where_sql, Catch::Contains("\"channel\" = 'meta'"));
  REQUIRE_FALSE(rule->queries.empty());
  for (const auto& q : rule->queries) {
    INFO(q.sql);
    CHECK_THAT(q.sql, Catch::Contains("\"channel\" = 'meta'"));
    CHECK_THAT(q.sql, Catch::Contains("FROM \"adset_daily\""));
  }
}

}  // namespace
