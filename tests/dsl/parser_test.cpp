// The parser facade (dsl/parser.hpp): every construct the playbooks use lowers to the AST fields
// the checker expects, and a broken declaration costs only itself.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "dsl/compiler.hpp"
#include "dsl/parser.hpp"

namespace {

namespace fs = std::filesystem;
using namespace gavel::dsl;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One parsed file, with the sources and diagnostics it was parsed with.
struct Parsed {
  SourceManager sources;
  Diagnostics diags;
  File file;

  std::string Text(const Span& s) const { return std::string(sources.Text(s)); }
  std::string Rendered() const { return RenderText(sources, diags.list()); }
};

std::unique_ptr<Parsed> Parse(const std::string& name, const std::string& text) {
  auto p = std::make_unique<Parsed>();
  std::uint32_t id = p->sources.Add(name, text);
  p->file = ParseFile(p->sources, id, p->diags);
  p->diags.Sort();
  return p;
}

std::unique_ptr<Parsed> ParsePlaybook(const std::string& name) {
  auto p = Parse(name, ReadText(fs::path(GAVEL_SOURCE_DIR) / "playbooks" / name));
  INFO(p->Rendered());
  REQUIRE(p->diags.list().empty());
  return p;
}

const TableDecl& Table(const File& f, const std::string& name) {
  for (const auto& t : f.tables) {
    if (t.name.name == name) return t;
  }
  FAIL("no table " << name);
  throw;
}

const RuleDecl& Rule(const File& f, const std::string& name) {
  for (const auto& r : f.rules) {
    if (r.name.name == name) return r;
  }
  FAIL("no rule " << name);
  throw;
}

const AlertDecl& Alert(const File& f, const std::string& name) {
  for (const auto& a : f.alerts) {
    if (a.name.name == name) return a;
  }
  FAIL("no alert " << name);
  throw;
}

std::vector<std::string> FieldNames(const std::vector<FieldDecl>& fs) {
  std::vector<std::string> out;
  for (const auto& f : fs) out.push_back(f.name.name);
  return out;
}

// ---------------------------------------------------------------- the playbooks

TEST_CASE("every playbook parses without a diagnostic", "[parser]") {
  for (const auto& entry : fs::directory_iterator(fs::path(GAVEL_SOURCE_DIR) / "playbooks")) {
    if (entry.path().extension() != ".gavel") continue;
    auto p = Parse(entry.path().filename().string(), ReadText(entry.path()));
    INFO(entry.path().filename().string() << "\n" << p->Rendered());
    CHECK(p->diags.list().empty());
  }
}

TEST_CASE("an import lowers to the path it names", "[parser]") {
  auto p = ParsePlaybook("onboarding_journey.gavel");
  REQUIRE(p->file.imports.size() == 2);
  CHECK(p->file.imports[0].path == "schema.gavel");
  CHECK(p->file.imports[1].path == "lead_scoring.gavel");
  CHECK(p->Text(p->file.imports[1].span) == "\"lead_scoring.gavel\"");
}

TEST_CASE("a table lowers its source, key, time column, grain, dims, facts and freshness", "[parser]") {
  auto p = ParsePlaybook("schema.gavel");
  REQUIRE(p->file.tables.size() == 3);
  const TableDecl& t = Table(p->file, "adset_daily");
  CHECK(t.source == "adset_daily");
  CHECK(t.key.name == "adset_id");
  CHECK(t.time_column.name == "day");
  CHECK(t.grain == Grain::kDay);
  CHECK(FieldNames(t.dims) == std::vector<std::string>{"channel", "campaign_id", "name", "target_cpa"});
  CHECK(t.dims[3].type.base == BaseType::kMoney);
  CHECK(t.dims[3].type.currency == "USD");
  CHECK(FieldNames(t.facts) == std::vector<std::string>{"spend", "impressions", "clicks", "conversions"});
  CHECK(t.facts[2].type.base == BaseType::kCount);
  CHECK(t.freshness_seconds == 36 * 3600);
  CHECK(Table(p->file, "campaign_hourly").grain == Grain::kHour);
}

TEST_CASE("an event lowers its fields and the entity it updates", "[parser]") {
  auto p = ParsePlaybook("schema.gavel");
  REQUIRE(p->file.events.size() == 5);
  const EventDecl& profile = p->file.events[0];
  CHECK(profile.name.name == "lead_profile");
  REQUIRE(profile.updates.has_value());
  CHECK(profile.updates->name == "lead");
  CHECK(FieldNames(profile.fields) == std::vector<std::string>{"lead_id", "title", "company_size", "timezone"});
  CHECK(profile.fields[2].type.base == BaseType::kCount);
  CHECK_FALSE(p->file.events[1].updates.has_value());
  CHECK(p->file.events[1].name.name == "page_view");
}

TEST_CASE("an entity lowers its key and its fields with their defaults", "[parser]") {
  auto p = ParsePlaybook("schema.gavel");
  REQUIRE(p->file.entities.size() == 1);
  const EntityDecl& lead = p->file.entities[0];
  CHECK(lead.name.name == "lead");
  CHECK(lead.key.name == "lead_id");
  REQUIRE(lead.fields.size() == 4);
  CHECK(lead.fields[2].name.name == "stage");
  REQUIRE(lead.fields[2].default_value);
  CHECK(lead.fields[2].default_value->kind == ExprKind::kString);
  CHECK(lead.fields[2].default_value->text == "new");
  CHECK_FALSE(lead.fields[0].default_value);
}

TEST_CASE("a score lowers its event rules, its once-only condition, its decay and its floor", "[parser]") {
  auto p = ParsePlaybook("lead_scoring.gavel");
  REQUIRE(p->file.scores.size() == 1);
  const ScoreDecl& s = p->file.scores[0];
  CHECK(s.name.name == "lead_score");
  CHECK(s.entity.name == "lead");
  REQUIRE(s.rules.size() == 5);
  CHECK(s.rules[0].kind == ScoreRuleKind::kOnEvent);
  CHECK(s.rules[0].event.name == "page_view");
  REQUIRE(s.rules[0].condition);
  CHECK(s.rules[0].condition->op == Op::kEq);
  CHECK(s.rules[0].amount == 2);
  REQUIRE(s.rules[1].condition);
  CHECK(s.rules[1].condition->kind == ExprKind::kLike);
  CHECK(s.rules[1].condition->text == "/pricing*");
  CHECK_FALSE(s.rules[2].condition);
  CHECK(s.rules[2].amount == 15);
  CHECK(s.rules[4].kind == ScoreRuleKind::kWhen);
  CHECK(s.rules[4].once);
  REQUIRE(s.rules[4].condition);
  CHECK(s.rules[4].condition->kind == ExprKind::kIn);
  CHECK(s.rules[4].condition->args[1]->args.size() == 3);
  CHECK(s.decay == DecayKind::kInactivity);
  CHECK(s.decay_amount == 20);
  CHECK(s.decay_seconds == 30 * 86400);
  REQUIRE(s.floor.has_value());
  CHECK(*s.floor == 0);
  CHECK_FALSE(s.cap.has_value());
}

TEST_CASE("a scheduled rule lowers its options, scope, let, confidence, actions, limit and cooldown",
          "[parser]") {
  auto p = ParsePlaybook("cpa_pause.gavel");
  const RuleDecl& r = Rule(p->file, "pause_high_cpa");
  REQUIRE(r.options.owner.has_value());
  CHECK(*r.options.owner == "paid-social@example.com");
  CHECK_THAT(r.options.description, Catch::StartsWith("Pause Meta ad sets"));
  CHECK(r.trigger.kind == TriggerKind::kSchedule);
  CHECK(r.trigger.schedule.every_seconds == 3600);
  REQUIRE(r.scope.has_value());
  CHECK_FALSE(r.scope->across);
  CHECK(r.scope->var.name == "adset");
  CHECK(r.scope->table.name == "adset_daily");
  CHECK(r.scope->window.kind == WindowKind::kLast);
  CHECK(r.scope->window.seconds == 3 * 86400);
  REQUIRE(r.scope->where);
  CHECK(p->Text(r.scope->where->span) == "channel == \"meta\"");
  REQUIRE(r.lets.size() == 1);
  CHECK(r.lets[0].name.name == "cpa");
  CHECK(r.lets[0].value->op == Op::kDiv);
  REQUIRE(r.condition);
  CHECK(r.condition->op == Op::kGt);
  CHECK(r.confidence == Approx(0.9));
  CHECK(p->Text(r.confidence_span) == "90%");
  REQUIRE(r.actions.size() == 2);
  CHECK(r.actions[0].kind == ActionKind::kPause);
  CHECK(r.actions[0].target == std::vector<std::string>{"adset"});
  CHECK(r.actions[1].kind == ActionKind::kNotifySlack);
  CHECK(r.actions[1].name == "#paid-alerts");
  CHECK(r.actions[1].text == "Paused {adset.name}: CPA {cpa} vs target {adset.target_cpa}");
  CHECK(r.options.limit_count == 10);
  CHECK(r.options.limit_seconds == 3600);
  CHECK(r.options.cooldown_seconds == 24 * 3600);
  REQUIRE(r.options.mode.has_value());
  CHECK(*r.options.mode == Mode::kLive);
}

TEST_CASE("a budget rule lowers `across`, a calendar schedule with its zone and the reallocation",
          "[parser]") {
  auto p = ParsePlaybook("budget_reallocation.gavel");
  const RuleDecl& r = Rule(p->file, "shift_budget");
  CHECK(r.trigger.schedule.every_seconds == 0);
  CHECK(r.trigger.schedule.at_minute_of_day == 6 * 60);
  CHECK(r.trigger.schedule.weekdays == 0x7f);
  CHECK(r.trigger.schedule.timezone == "America/New_York");
  CHECK(p->Text(r.trigger.schedule.timezone_span) == "\"America/New_York\"");
  REQUIRE(r.scope.has_value());
  CHECK(r.scope->across);
  CHECK(r.scope->window.seconds == 7 * 86400);
  REQUIRE(r.actions.size() == 1);
  const Action& a = r.actions[0];
  CHECK(a.kind == ActionKind::kReallocate);
  REQUIRE(a.realloc.toward);
  CHECK(a.realloc.toward->path == std::vector<std::string>{"roas"});
  CHECK(a.realloc.keep_total);
  CHECK(a.realloc.max_step == Approx(0.2));
  REQUIRE(a.realloc.min_budget);
  CHECK(a.realloc.min_budget->number == 100);
  CHECK(a.realloc.min_budget->unit == "USD");
  CHECK(a.realloc.per.name == "channel");
  CHECK(r.options.require_approval);
  CHECK(r.options.approval_expires_seconds == 24 * 3600);
}

TEST_CASE("a crossing rule lowers its score, direction, threshold, tags, webhook payload and set",
          "[parser]") {
  auto p = ParsePlaybook("lead_scoring.gavel");
  const RuleDecl& r = Rule(p->file, "mql_handoff");
  CHECK(r.trigger.kind == TriggerKind::kCrossing);
  CHECK(r.trigger.subject.name == "lead_score");
  CHECK(r.trigger.direction == CrossDirection::kAbove);
  REQUIRE(r.trigger.threshold);
  CHECK(r.trigger.threshold->number == 50);
  CHECK(r.options.tags == std::vector<std::string>{"lifecycle", "sales"});
  REQUIRE(r.actions.size() == 2);
  CHECK(r.actions[0].kind == ActionKind::kWebhook);
  CHECK(r.actions[0].name == "sales_queue");
  REQUIRE(r.actions[0].with.size() == 2);
  CHECK(r.actions[0].with[0].name.name == "lead");
  CHECK(r.actions[0].with[0].value->path == std::vector<std::string>{"lead", "lead_id"});
  CHECK(r.actions[1].kind == ActionKind::kSetField);
  CHECK(r.actions[1].target == std::vector<std::string>{"lead", "stage"});
  CHECK(r.actions[1].value->text == "MQL");
  CHECK(Rule(p->file, "mql_cooled_off").trigger.direction == CrossDirection::kBelow);
}

TEST_CASE("a journey lowers enter, exit, cap, quiet hours and steps with wait branches", "[parser]") {
  auto p = ParsePlaybook("onboarding_journey.gavel");
  REQUIRE(p->file.journeys.size() == 1);
  const JourneyDecl& j = p->file.journeys[0];
  CHECK(j.name.name == "onboarding");
  CHECK(j.entity.name == "lead");
  CHECK(j.enter_event.name == "guide_download");
  REQUIRE(j.enter_condition);
  CHECK(j.enter_condition->op == Op::kLt);
  REQUIRE(j.exit_condition);
  CHECK(j.cap_count == 3);
  CHECK(j.cap_seconds == 7 * 86400);
  CHECK(j.quiet.start_minute == 21 * 60);
  CHECK(j.quiet.end_minute == 8 * 60);
  CHECK(j.quiet.zone_field == std::vector<std::string>{"lead", "timezone"});
  REQUIRE(j.items.size() == 2);
  CHECK(j.items[0].kind == JourneyItemKind::kStep);
  CHECK(j.items[0].name.name == "welcome");
  CHECK(j.items[0].action.kind == ActionKind::kEmail);
  CHECK(j.items[0].action.name == "welcome_guide");
  const JourneyItem& wait = j.items[1];
  CHECK(wait.kind == JourneyItemKind::kWait);
  CHECK(wait.wait_seconds == 48 * 3600);
  REQUIRE(wait.wait_events.size() == 1);
  CHECK(wait.wait_events[0].name == "email_open");
  REQUIRE(wait.branches.size() == 2);
  CHECK_FALSE(wait.branches[0].timeout);
  CHECK(wait.branches[0].event.name == "email_open");
  REQUIRE(wait.branches[0].items.size() == 1);
  CHECK(wait.branches[0].items[0].name.name == "case_study");
  CHECK(wait.branches[1].timeout);
  const Action& msg = wait.branches[1].items[0].action;
  CHECK(msg.kind == ActionKind::kMessage);
  CHECK(msg.name == "ugc_video");
  CHECK(msg.via == "whatsapp");
}

TEST_CASE("an alert lowers a seasonal baseline, `for`, severity, runbook, repeat and resolve",
          "[parser]") {
  auto p = ParsePlaybook("anomaly_alerts.gavel");
  const AlertDecl& a = Alert(p->file, "spend_spike");
  CHECK(a.has_schedule);
  CHECK(a.schedule.every_seconds == 15 * 60);
  REQUIRE(a.scope.has_value());
  CHECK(a.scope->table.name == "campaign_hourly");
  REQUIRE(a.condition);
  CHECK(a.condition->kind == ExprKind::kBaseline);
  const BaselineSpec& b = *a.condition->baseline;
  CHECK(b.direction == BandDirection::kAbove);
  CHECK(b.field == std::vector<std::string>{"spend"});
  CHECK(b.history_seconds == 28 * 86400);
  CHECK(b.season == Seasonality::kHourOfWeek);
  CHECK(b.sigma == 3);
  CHECK(a.condition->args[0]->kind == ExprKind::kWindowed);
  CHECK(a.condition->args[0]->window.seconds == 3600);
  CHECK(a.for_seconds == 30 * 60);
  CHECK(a.severity == Severity::kPage);
  CHECK(a.slack_channel == "#marketing-oncall");
  CHECK(a.runbook == "https://wiki.example.com/runbooks/spend-spike");
  CHECK(a.repeat_seconds == 4 * 3600);
  CHECK(a.resolve_notify);
}

TEST_CASE("an alert lowers `group by`, a rate baseline with a confidence and a message", "[parser]") {
  auto p = ParsePlaybook("anomaly_alerts.gavel");
  const AlertDecl& a = Alert(p->file, "conversions_dropped");
  REQUIRE(a.condition);
  const BaselineSpec& b = *a.condition->baseline;
  CHECK(b.direction == BandDirection::kBelow);
  CHECK(b.per == std::vector<std::string>{"spend"});
  CHECK(b.confidence == Approx(0.99));
  CHECK(b.sigma == 0);
  CHECK(a.group_by == std::vector<std::string>{"campaign", "channel"});
  CHECK(a.message == "{campaign.name}: conversions stopped while spend continues");
  const AlertDecl& drift = Alert(p->file, "cpa_drift");
  CHECK(drift.schedule.at_minute_of_day == 7 * 60);
  CHECK(drift.for_seconds == 2 * 86400);
  CHECK(drift.severity == Severity::kWarning);
}

TEST_CASE("lowered names carry the span of the name in the source", "[parser]") {
  auto p = ParsePlaybook("cpa_pause.gavel");
  const RuleDecl& r = Rule(p->file, "pause_high_cpa");
  CHECK(p->Text(r.name.span) == "pause_high_cpa");
  CHECK(p->Text(r.scope->table.span) == "adset_daily");
  CHECK(p->Text(r.condition->span) == "cpa > 1.5 * adset.target_cpa");
  auto pos = p->sources.Position(r.name.span.file, r.name.span.begin);
  CHECK(pos.line == 4);
  CHECK(pos.column == 6);
}

// ---------------------------------------------------------------- smaller constructs

TEST_CASE("text escapes are decoded", "[parser]") {
  auto p = Parse("t.gavel",
                 "rule r {\n  on e\n  then notify slack \"#a\" \"a\\\"b\\\\c\\nd \\u{1F600} \\u00E9 {{x}}\"\n}\n");
  INFO(p->Rendered());
  REQUIRE(p->diags.list().empty());
  CHECK(p->file.rules[0].actions[0].text == "a\"b\\c\nd \xF0\x9F\x98\x80 \xC3\xA9 {{x}}");
}

TEST_CASE("a single `=` in a condition is reported and still read as a comparison", "[parser]") {
  auto p = Parse("t.gavel", "rule r {\n  on e\n  when x = 1\n  then webhook \"w\"\n}\n");
  REQUIRE(p->diags.list().size() == 1);
  CHECK(p->diags.list()[0].code == "single-equals");
  REQUIRE(p->file.rules.size() == 1);
  CHECK(p->file.rules[0].condition->op == Op::kEq);
}

TEST_CASE("a chain of operators past the limit is reported once, at the first operator over it",
          "[parser]") {
  std::string chain = "1";
  for (int i = 0; i < 300; ++i) chain += " + 1";
  auto p = Parse("t.gavel", "rule r {\n  on e\n  when " + chain + " > 0\n  then webhook \"w\"\n}\n");
  REQUIRE(p->diags.list().size() == 1);
  const Diagnostic& d = p->diags.list()[0];
  CHECK(d.code == "expression-too-long");
  CHECK(p->Text(d.span) == "+");
  // `  when 1 + 1 + ...`: the first `+` is at column 10, each next one 4 columns on.
  CHECK(p->sources.Position(d.span.file, d.span.begin).column == 10 + 256 * 4);
}

TEST_CASE("brackets nested past the limit are reported at the first bracket over it", "[parser]") {
  std::string deep = std::string(70, '(') + "1" + std::string(70, ')');
  auto p = Parse("t.gavel", "rule r {\n  on e\n  when " + deep + " > 0\n  then webhook \"w\"\n}\n");
  REQUIRE(p->diags.list().size() == 1);
  const Diagnostic& d = p->diags.list()[0];
  CHECK(d.code == "too-deep");
  // The rule's `{` is level 1, so the 64th `(` is level 65.
  CHECK(p->sources.Position(d.span.file, d.span.begin).column == 8 + 63);
}

// ---------------------------------------------------------------- error recovery

const char* const kTwoBrokenOneGood =
    "rule broken_one {\n"
    "  owner \"a@example.com\"\n"
    "  every 1h\n"
    "  for each adset in adset_daily over last 3d\n"
    "  when sum(spend) >\n"
    "  then pause adset\n"
    "}\n"
    "\n"
    "rule good {\n"
    "  every 1h\n"
    "  for each adset in adset_daily over last 3d\n"
    "  when sum(spend) > 100 USD\n"
    "  then pause adset\n"
    "}\n"
    "\n"
    "rule broken_two {\n"
    "  owner \"a@example.com\"\n"
    "  every 1h\n"
    "  for each adset in adset_daily over last 3d\n"
    "  then pase adset\n"
    "}\n";

TEST_CASE("two broken declarations give one error each and the good one between them is kept",
          "[parser][recovery]") {
  auto p = Parse("t.gavel", kTwoBrokenOneGood);
  INFO(p->Rendered());
  REQUIRE(p->diags.list().size() == 2);
  CHECK(p->diags.list()[0].code == "syntax");
  CHECK(p->sources.Position(0, p->diags.list()[0].span.begin).line == 6);
  CHECK(p->diags.list()[1].code == "syntax");
  CHECK(p->sources.Position(0, p->diags.list()[1].span.begin).line == 20);
  REQUIRE(p->file.rules.size() == 1);
  CHECK(p->file.rules[0].name.name == "good");
  CHECK(p->file.rules[0].actions.size() == 1);
}

TEST_CASE("the good declaration next to two broken ones is still checked", "[parser][recovery]") {
  std::string schema = ReadText(fs::path(GAVEL_SOURCE_DIR) / "playbooks" / "schema.gavel");
  CompileResult r = CompileSources({{"schema.gavel", schema}, {"t.gavel", kTwoBrokenOneGood}});
  INFO(RenderText(r.sources, r.diags.list()));
  CHECK(r.diags.error_count() == 2);
  // Checking `good` finds that it has no owner.
  REQUIRE(r.diags.warning_count() == 1);
  const Diagnostic* warning = nullptr;
  for (const auto& d : r.diags.list()) {
    if (d.severity == DiagSeverity::kWarning) warning = &d;
  }
  REQUIRE(warning != nullptr);
  CHECK(warning->code == "missing-owner");
  CHECK(r.sources.Text(warning->span) == "good");
}

TEST_CASE("a syntax error says what was expected in the author's words, never in C++ names",
          "[parser][recovery]") {
  const char* const broken[] = {
      "rule r {\n  then\n}\n",
      "rule r {\n  tags\n}\n",
      "table t from warehouse \"t\" {\n  dims\n}\n",
      "alert a {\n  when x is above baseline(spend, 28d, same minute) by 3 sigma\n}\n",
      "alert a {\n  when x is above baseline(spend, 28d) at 3 sigma\n}\n",
      "journey j for lead {\n  wait up to 2d for\n}\n",
      "rule r {\n  on e where\n}\n",
      "score s for lead {\n  on e add\n}\n",
      "entity e keyed by {\n}\n",
      "rule r {\n  every\n}\n",
  };
  for (const char* text : broken) {
    auto p = Parse("t.gavel", text);
    INFO(text << "\n" << p->Rendered());
    REQUIRE_FALSE(p->diags.list().empty());
    for (const auto& d : p->diags.list()) {
      CHECK(d.message.find("::") == std::string::npos);
      CHECK(d.message.find("boost") == std::string::npos);
      CHECK(d.message.find("something else") == std::string::npos);
      CHECK(d.message.find("_r") == std::string::npos);
    }
  }
}

TEST_CASE("a missing `}` is reported at the `{` that is never closed", "[parser][recovery]") {
  auto p = Parse("t.gavel", "rule a {\n  on e\n  then webhook \"w\"\n\nrule b {\n  on e\n  then webhook \"w\"\n}\n");
  REQUIRE(p->diags.list().size() == 1);
  const Diagnostic& d = p->diags.list()[0];
  CHECK(d.message == "this `{` is never closed");
  CHECK(p->sources.Position(0, d.span.begin).line == 1);
  CHECK(p->sources.Position(0, d.span.begin).column == 8);
  CHECK(d.hint == "add a `}` at the end of rule `a`, before the next declaration on line 5");
  REQUIRE(p->file.rules.size() == 1);
  CHECK(p->file.rules[0].name.name == "b");
}

TEST_CASE("an unknown word in a block suggests the clause that was meant", "[parser][recovery]") {
  auto p = Parse("t.gavel", "rule r {\n  on e\n  colldown 1h\n  then webhook \"w\"\n}\n");
  REQUIRE(p->diags.list().size() == 1);
  const Diagnostic& d = p->diags.list()[0];
  CHECK(d.code == "unknown-clause");
  CHECK(d.message == "`colldown` is not a rule clause");
  CHECK(d.hint == "did you mean `cooldown`?");
}

}  // namespace
