// Tests of the bytecode evaluator on expressions compiled from real rule text.
#include "rules/eval.hpp"

#include <catch2/catch.hpp>
#include <map>

#include "dsl/compiler.hpp"

namespace {

using gavel::dsl::CompileSources;
using gavel::dsl::SlotKind;
using gavel::rules::Evaluator;
using gavel::rules::GlobMatch;
using gavel::rules::Value;

constexpr const char* kSchema = R"(
event page_view { lead_id: text, page: text, seconds: count }
entity lead keyed by lead_id { title: text, company_size: count, stage: text = "new" }
score lead_score for lead {
  on page_view add 1
}
)";

// Compiles one event rule with the given `where` filter and evaluates it against the event
// fields and entity fields given, returning the filter's result.
bool Filter(const std::string& where, const std::map<std::string, Value>& values) {
  std::string src = std::string(kSchema) + "rule r {\n  owner \"t@example.com\"\n  on page_view where " + where +
                    "\n  then set lead.stage = \"seen\"\n}\n";
  auto result = CompileSources({{"t.gavel", src}});
  INFO(gavel::dsl::RenderText(result.sources, result.diags.list()));
  REQUIRE(result.program);
  const auto& rule = result.program->rules.at(0);
  std::vector<Value> slots;
  for (const auto& s : rule.slots) {
    auto it = values.find(s.name);
    slots.push_back(it == values.end() ? Value::Null() : it->second);
  }
  Evaluator ev;
  return ev.Test(rule.event_filter, slots.data());
}

}  // namespace

TEST_CASE("glob patterns match with * and ?", "[eval]") {
  CHECK(GlobMatch("/pricing*", "/pricing"));
  CHECK(GlobMatch("/pricing*", "/pricing/enterprise"));
  CHECK_FALSE(GlobMatch("/pricing*", "/blog/pricing"));
  CHECK(GlobMatch("*pricing*", "/blog/pricing-guide"));
  CHECK(GlobMatch("/p?ge", "/page"));
  CHECK_FALSE(GlobMatch("/p?ge", "/pge"));
  CHECK(GlobMatch("*", ""));
  CHECK(GlobMatch("a*b*c", "axxbyyc"));
  CHECK_FALSE(GlobMatch("a*b*c", "axxbyy"));
}

TEST_CASE("a long glob against a long text finishes quickly and correctly", "[eval]") {
  std::string text(5000, 'a');
  std::string pat;
  for (int i = 0; i < 50; ++i) pat += "*a";
  pat += "*b";
  CHECK_FALSE(GlobMatch(pat, text));
}

TEST_CASE("event filters compare text, use like, in and boolean logic", "[eval]") {
  Value pricing = Value::Text("/pricing/enterprise");
  CHECK(Filter("page like \"/pricing*\"", {{"page", pricing}}));
  CHECK_FALSE(Filter("page like \"/docs*\"", {{"page", pricing}}));
  CHECK(Filter("page not like \"/docs*\"", {{"page", pricing}}));
  CHECK(Filter("lead.title in [\"VP\", \"Director\"]", {{"title", Value::Text("VP")}}));
  CHECK_FALSE(Filter("lead.title in [\"VP\", \"Director\"]", {{"title", Value::Text("Engineer")}}));
  CHECK(Filter("lead.title not in [\"VP\"]", {{"title", Value::Text("Engineer")}}));
  CHECK(Filter("page == \"/\" or seconds > 30", {{"page", Value::Text("/x")}, {"seconds", Value::Number(31)}}));
  CHECK_FALSE(Filter("page == \"/\" and seconds > 30", {{"page", Value::Text("/x")}, {"seconds", Value::Number(31)}}));
  CHECK(Filter("not (page == \"/\")", {{"page", Value::Text("/x")}}));
}

TEST_CASE("arithmetic follows precedence and division by zero gives no value", "[eval]") {
  CHECK(Filter("seconds + 2 * 3 == 10", {{"seconds", Value::Number(4)}}));
  CHECK(Filter("(seconds + 2) * 3 == 18", {{"seconds", Value::Number(4)}}));
  CHECK(Filter("seconds / 2 > 1", {{"seconds", Value::Number(4)}}));
  // 4 / 0 is no value: every comparison with it is false, in both directions.
  CHECK_FALSE(Filter("seconds / (seconds - 4) > 0", {{"seconds", Value::Number(4)}}));
  CHECK_FALSE(Filter("seconds / (seconds - 4) <= 0", {{"seconds", Value::Number(4)}}));
  CHECK(Filter("-seconds < 0", {{"seconds", Value::Number(4)}}));
  CHECK(Filter("abs(0 - seconds) == 4", {{"seconds", Value::Number(4)}}));
  CHECK(Filter("max(seconds, 10) == 10 and min(seconds, 10) == 4", {{"seconds", Value::Number(4)}}));
}

TEST_CASE("a missing value makes comparisons false and `or` still works", "[eval]") {
  CHECK_FALSE(Filter("seconds > 1", {}));
  CHECK_FALSE(Filter("seconds <= 1", {}));
  CHECK(Filter("seconds > 1 or page == \"/\"", {{"page", Value::Text("/")}}));
}

TEST_CASE("scores and entity fields are slots the engine fills", "[eval]") {
  std::string src = std::string(kSchema) +
                    "rule r {\n owner \"t@example.com\"\n on page_view where lead_score >= 10 and lead.company_size > 50\n"
                    " then set lead.stage = \"big\"\n}\n";
  auto result = CompileSources({{"t.gavel", src}});
  REQUIRE(result.program);
  const auto& rule = result.program->rules.at(0);
  bool has_score = false, has_field = false;
  for (const auto& s : rule.slots) {
    has_score |= s.kind == SlotKind::kScore && s.name == "lead_score";
    has_field |= s.kind == SlotKind::kEntityField && s.name == "company_size";
  }
  CHECK(has_score);
  CHECK(has_field);
}

TEST_CASE("batch evaluation gives exactly what row-by-row evaluation gives", "[eval]") {
  // Conditions over texts, counts, nulls, `in`, `like`, and/or/not and arithmetic, each run
  // over the same generated rows both ways.
  const char* conditions[] = {
      R"(page == "/" or seconds > 30)",
      R"(page like "/pricing*" and not (lead.title in ["CEO", "CTO"]))",
      R"(seconds * 2 > lead.company_size / 10 or lead.stage == "new")",
      R"(not (page == "/docs" and seconds < 5) and lead.company_size >= 50)",
      R"(lead.title like "*VP*" or (seconds > 10 and seconds < 100 and page != "/"))",
      R"(seconds / lead.company_size > 0.5)",
  };
  const char* pages[] = {"/", "/pricing", "/pricing/teams", "/docs", "/blog"};
  const char* titles[] = {"CEO", "CTO", "VP Sales", "Engineer", ""};
  for (const char* where : conditions) {
    INFO(where);
    std::string src = std::string(kSchema) + "rule r {\n  owner \"t@example.com\"\n  on page_view where " + where +
                      "\n  then set lead.stage = \"seen\"\n}\n";
    auto result = CompileSources({{"t.gavel", src}});
    INFO(gavel::dsl::RenderText(result.sources, result.diags.list()));
    REQUIRE(result.program);
    const auto& rule = result.program->rules.at(0);
    const std::size_t rows = 1000, nslots = rule.slots.size();
    // Column k holds slot k of every row; some rows leave a value null.
    std::vector<std::vector<Value>> columns(nslots, std::vector<Value>(rows));
    std::uint64_t seed = 7;
    auto next = [&] {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      return seed >> 33;
    };
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t k = 0; k < nslots; ++k) {
        const std::string& name = rule.slots[k].name;
        Value v;
        if (next() % 11 == 0) v = Value::Null();
        else if (name == "page") v = Value::Text(pages[next() % 5]);
        else if (name == "title") v = Value::Text(titles[next() % 5]);
        else if (name == "stage") v = Value::Text(next() % 2 ? "new" : "MQL");
        else v = Value::Number(static_cast<double>(next() % 200));
        columns[k][i] = v;
      }
    }
    std::vector<gavel::rules::SlotColumn> cols(nslots);
    for (std::size_t k = 0; k < nslots; ++k) cols[k].values = columns[k].data();
    Evaluator batch, single;
    std::vector<Value> out(rows);
    batch.RunBatch(rule.event_filter, cols.data(), rows, out.data());
    std::unique_ptr<bool[]> tested(new bool[rows]);
    std::size_t true_count = batch.TestBatch(rule.event_filter, cols.data(), rows, tested.get());
    std::size_t expected_true = 0;
    for (std::size_t i = 0; i < rows; ++i) {
      std::vector<Value> row(nslots);
      for (std::size_t k = 0; k < nslots; ++k) row[k] = columns[k][i];
      Value one = single.Run(rule.event_filter, row.data());
      REQUIRE(out[i].kind == one.kind);
      if (one.kind != Value::Kind::kText) CHECK(out[i].num == one.num);
      else CHECK(out[i].text == one.text);
      bool t = single.Test(rule.event_filter, row.data());
      CHECK(tested[i] == t);
      expected_true += t;
    }
    CHECK(true_count == expected_true);
  }
}
