// Compiler throughput: how long `gavel check` / a daemon reload takes on a large program.
//
// Generates a realistic program of 1,000 rules on top of the playbooks' schema (a copy of
// playbooks/schema.gavel is embedded below): event rules, score-crossing rules, scheduled CPA
// rules with windows, lets and confidence, budget reallocations, alerts with baselines and a
// few journeys, plus the scores they use. Compiles it N times and prints the time per compile
// (median, min), rules per second and the peak RSS of the process; then the same for the
// playbooks directory as `gavel check playbooks/` compiles it.
//
//   build/bench/compile_bench [RULES [RUNS [PLAYBOOKS_DIR]]]   (defaults: 1000 10 playbooks/)
//   build/bench/compile_bench --dump [RULES]                   (prints the generated program)
//
// The generated program is held in memory (schema.gavel, scores.gavel, rules_000.gavel, ...,
// 100 rules per file) and compiled with CompileSources; the playbooks are read from disk.
//
// Target (docs/performance.md): 1,000 rules in under 1 s and 200 MB on one core.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dsl/compiler.hpp"
#include "dsl/diagnostic.hpp"

namespace {

using gavel::dsl::CompileResult;
namespace fs = std::filesystem;

// playbooks/schema.gavel, kept in sync by hand (the benchmark must not depend on the working
// directory). A change there that the generator does not match makes the compile fail loudly.
constexpr const char* kSchema = R"(# Shared schema for every playbook.
table adset_daily from warehouse "adset_daily" {
  key    adset_id
  time   day
  dims   channel: text, campaign_id: text, name: text, target_cpa: money(USD)
  facts  spend: money(USD), impressions: count, clicks: count, conversions: count
  freshness 36h
}

table campaign_hourly from warehouse "campaign_hourly" {
  key    campaign_id
  time   hour
  dims   channel: text, name: text
  facts  spend: money(USD), impressions: count, clicks: count, conversions: count
  freshness 3h
}

table channel_daily from warehouse "channel_daily" {
  key    channel
  time   day
  dims   budget: money(USD)
  facts  spend: money(USD), revenue: money(USD), conversions: count
  freshness 36h
}

event lead_profile updates lead {
  lead_id: text, title: text, company_size: count, timezone: text
}
event page_view      { lead_id: text, page: text }
event guide_download { lead_id: text, guide: text }
event webinar_signup { lead_id: text, webinar: text }
event email_open     { lead_id: text, message: text }

entity lead keyed by lead_id {
  title: text, company_size: count, stage: text = "new", timezone: text = "UTC"
}
)";

struct Generated {
  // (file name, text): the scores in one file, the rules 100 to a file, as a team keeps them.
  std::vector<std::pair<std::string, std::string>> files;
  int rules = 0;  // rules + alerts + journeys
  int scores = 0;
};

constexpr int kRulesPerFile = 100;

const char* const kChannels[] = {"meta", "google", "tiktok", "linkedin", "bing"};
const char* const kStages[] = {"new", "nurture", "MQL", "SQL", "customer"};
const char* const kOwners[] = {"paid-social@example.com", "growth@example.com",
                               "revops@example.com", "lifecycle@example.com",
                               "marketing-oncall@example.com"};
const char* const kModes[] = {"live", "dry_run", "shadow"};

// A deterministic mix; the proportions are those of a large marketing team's rule base.
Generated Generate(int total) {
  Generated g;
  g.files.emplace_back("scores.gavel", "");
  std::string* out = &g.files.back().second;
  auto n = [](int i) { return std::to_string(i); };
  auto pick = [](auto& arr, int i) { return arr[static_cast<std::size_t>(i) % std::size(arr)]; };

  g.scores = std::max(1, total / 50);
  for (int k = 0; k < g.scores; ++k) {
    *out += "score score_" + n(k) + " for lead {\n";
    *out += "  on page_view where page == \"/p" + n(k) + "\" add " + n(1 + k % 5) + "\n";
    *out += "  on page_view where page like \"/pricing/" + n(k) + "*\" add 10\n";
    *out += "  on guide_download add 15\n";
    *out += "  on webinar_signup where webinar in [\"w" + n(k) + "\", \"w" + n(k + 1) + "\"] add 20\n";
    *out += "  when lead.title in [\"VP\", \"Director\", \"Head\"] add 10 once\n";
    *out += "  when lead.company_size > " + n(100 + k) + " add 5 once\n";
    if (k % 2 == 0) {
      *out += "  decay " + n(5 + k % 20) + " every 30d without activity\n";
    } else {
      *out += "  decay half-life " + n(7 + k % 21) + "d\n";
    }
    *out += "  floor 0\n  cap 200\n}\n\n";
  }

  for (int i = 0; i < total; ++i) {
    if (i % kRulesPerFile == 0) {
      char name[32];
      std::snprintf(name, sizeof name, "rules_%03d.gavel", i / kRulesPerFile);
      g.files.emplace_back(name, "");
      out = &g.files.back().second;
    }
    int kind = i % 50;  // 19 event, 8 crossing, 15 CPA, 1 reallocation, 6 alerts, 1 journey
    std::string owner = std::string("  owner \"") + pick(kOwners, i) + "\"\n";
    std::string score = "score_" + n(i % g.scores);
    if (kind < 19) {
      *out += "rule event_rule_" + n(i) + " {\n" + owner;
      *out += "  description \"Route visitors of page " + n(i) + "\"\n";
      *out += "  tags \"lifecycle\", \"generated\"\n";
      *out += "  on page_view where page like \"/docs/" + n(i) + "*\" and lead.stage != \"" +
           pick(kStages, i) + "\"\n";
      *out += "  when " + score + " > " + n(10 + i % 40) + " and lead.company_size >= " +
           n(i % 500) + "\n";
      switch (i % 4) {
        case 0: *out += "  then set lead.stage = \"" + std::string(pick(kStages, i + 1)) + "\"\n"; break;
        case 1: *out += "  then email \"template_" + n(i) + "\"\n"; break;
        case 2: *out += "  then message \"msg_" + n(i) + "\" via sms\n"; break;
        default:
          *out += "  then webhook \"crm\" with { lead: lead.lead_id, page: page, score: " + score +
               " }\n";
      }
      *out += "  cooldown " + n(1 + i % 48) + "h\n";
      *out += std::string("  mode ") + pick(kModes, i) + "\n}\n\n";
    } else if (kind < 27) {
      *out += "rule crossing_rule_" + n(i) + " {\n" + owner;
      *out += "  on " + score + (i % 2 ? " crosses above " : " crosses below ") + n(20 + i % 60) +
           "\n";
      *out += "  when lead.stage == \"" + std::string(pick(kStages, i)) + "\"\n";
      *out += "  then webhook \"sales_queue\" with { lead: lead.lead_id, score: " + score + " }\n";
      *out += "       set lead.stage = \"" + std::string(pick(kStages, i + 2)) + "\"\n";
      *out += "       notify slack \"#revops\" \"Lead {lead.lead_id} crossed ({" + score + "})\"\n";
      *out += "  mode live\n}\n\n";
    } else if (kind < 42) {
      int days = 1 + i % 14;
      *out += "rule cpa_rule_" + n(i) + " {\n" + owner;
      *out += "  description \"Pause " + std::string(pick(kChannels, i)) + " ad sets over target\"\n";
      *out += "  every " + n(1 + i % 6) + "h\n";
      *out += "  for each adset in adset_daily over last " + n(days) + "d where channel == \"" +
           pick(kChannels, i) + "\"\n";
      *out += "  let cpa = sum(spend) / sum(conversions)\n";
      *out += "  let ctr = sum(clicks) / sum(impressions)\n";
      *out += "  let cost = sum(spend)\n";
      *out += "  when cpa > " + n(1 + i % 3) + "." + n(i % 10) +
           " * adset.target_cpa with confidence " + n(80 + i % 19) + "%\n";
      *out += "  then pause adset\n";
      *out += "       notify slack \"#paid-alerts\" \"Paused {adset.name}: CPA {cpa} (CTR {ctr}, "
           "spend {cost}) vs {adset.target_cpa}\"\n";
      *out += "  limit " + n(5 + i % 20) + " per 1h\n";
      *out += "  cooldown 24h\n";
      if (i % 5 == 0) *out += "  require approval expires after 12h\n";
      *out += std::string("  mode ") + pick(kModes, i) + "\n}\n\n";
    } else if (kind < 43) {
      *out += "rule realloc_rule_" + n(i) + " {\n" + owner;
      *out += "  every day at 0" + n(i % 10) + ":30 in \"America/New_York\"\n";
      *out += "  across channel in channel_daily over last " + n(3 + i % 11) + "d\n";
      *out += "  let roas = sum(revenue) / sum(spend)\n";
      *out += "  then reallocate budget toward roas keep total step at most " + n(10 + i % 20) +
           "% min " + n(50 + i % 100) + " USD per channel max 5000 USD per channel\n";
      *out += "  require approval expires after 24h\n}\n\n";
    } else if (kind < 49) {
      *out += "alert alert_" + n(i) + " {\n" + owner;
      if (i % 3 == 0) {
        *out += "  every 15m\n  for each campaign in campaign_hourly\n";
        *out += "  when spend over last " + n(1 + i % 6) +
             "h is above baseline(spend, 28d, same hour of week) by " + n(2 + i % 3) +
             " sigma\n";
        *out += "  for 30m\n  severity page\n";
        *out += "  notify slack \"#marketing-oncall\" runbook \"https://wiki.example.com/rb/" + n(i) +
             "\"\n";
        *out += "  repeat every 4h while firing\n  resolve notify\n";
      } else if (i % 3 == 1) {
        *out += "  every 1h\n  for each campaign in campaign_hourly where channel == \"" +
             std::string(pick(kChannels, i)) + "\"\n";
        *out += "  when conversions over last 12h is below baseline(conversions per spend, 28d) "
             "with confidence 99%\n";
        *out += "  severity page\n";
        *out += "  notify slack \"#marketing-oncall\" \"{campaign.name}: conversions stopped\"\n"
             "         runbook \"https://wiki.example.com/runbooks/tag-breakage\"\n";
        *out += "  repeat every 6h while firing\n  resolve notify\n  group by campaign.channel\n";
      } else {
        *out += "  every day at 07:00 in \"UTC\"\n";
        *out += "  for each adset in adset_daily over last 7d\n";
        *out += "  let cpa = sum(spend) / sum(conversions)\n";
        *out += "  when cpa > 2 * adset.target_cpa\n  for 2d\n  severity warning\n";
        *out += "  notify slack \"#paid-alerts\" \"{adset.name}: 7-day CPA {cpa} over twice target\"\n";
      }
      *out += "}\n\n";
    } else {
      *out += "journey journey_" + n(i) + " for lead {\n" + owner;
      *out += "  enter on guide_download when " + score + " < 50\n";
      *out += "  exit when lead.stage in [\"MQL\", \"SQL\"]\n";
      *out += "  cap 3 messages per 7d\n";
      *out += "  quiet hours 21:00-08:00 in lead.timezone\n";
      *out += "  step welcome: email \"welcome_" + n(i) + "\"\n";
      *out += "  wait up to 48h for email_open, webinar_signup\n";
      *out += "    on email_open: step case_study: email \"case_study\"\n";
      *out += "    on webinar_signup: {\n      step thanks: email \"thanks\"\n      end\n    }\n";
      *out += "    on timeout: step nudge: message \"ugc_video\" via whatsapp\n";
      *out += "  wait 2d\n";
      *out += "  step last_call: email \"last_call\"\n}\n\n";
    }
    ++g.rules;
  }
  return g;
}

long PeakRssKb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;  // kilobytes on Linux
}

struct Timing {
  double median_ms = 0;
  double min_ms = 0;
};

template <typename F>
Timing Measure(int runs, F&& compile) {
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    CompileResult res = compile();
    auto t1 = std::chrono::steady_clock::now();
    if (!res.program) {
      std::fprintf(stderr, "compile failed:\n%s%s\n",
                   gavel::dsl::RenderText(res.sources, res.diags.list()).c_str(),
                   res.io_error.c_str());
      std::exit(1);
    }
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  Timing t;
  t.min_ms = ms.front();
  t.median_ms = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
  return t;
}

void Report(const char* what, int rules, std::size_t bytes, int runs, const Timing& t) {
  std::printf("%-22s %5d rules %8.1f KB  runs %3d  median %8.2f ms  min %8.2f ms  %9.0f rules/s"
              "  peak RSS %6.1f MB\n",
              what, rules, bytes / 1024.0, runs, t.median_ms, t.min_ms,
              rules / (t.median_ms / 1000.0), PeakRssKb() / 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--dump") {
    std::fputs(kSchema, stdout);
    for (const auto& [name, text] : Generate(argc >= 3 ? std::atoi(argv[2]) : 1000).files) {
      std::printf("# ---------------- %s\n%s", name.c_str(), text.c_str());
    }
    return 0;
  }
  int total = argc >= 2 ? std::atoi(argv[1]) : 1000;
  int runs = argc >= 3 ? std::atoi(argv[2]) : 10;
  fs::path playbooks = argc >= 4 ? fs::path(argv[3])
                                 : fs::path(__FILE__).parent_path().parent_path() / "playbooks";
  if (total < 1 || runs < 1) {
    std::fprintf(stderr, "usage: compile_bench [RULES [RUNS [PLAYBOOKS_DIR]]]\n");
    return 2;
  }
  std::printf("baseline peak RSS %.1f MB\n", PeakRssKb() / 1024.0);

  // The playbooks first (small), so that the peak RSS printed after them is theirs.
  std::size_t pb_bytes = 0;
  int pb_rules = 0;
  {
    CompileResult once = gavel::dsl::Compile({playbooks.string()});
    if (!once.program) {
      std::fprintf(stderr, "cannot compile %s: %s%s\n", playbooks.c_str(), once.io_error.c_str(),
                   gavel::dsl::RenderText(once.sources, once.diags.list()).c_str());
      return 1;
    }
    for (std::size_t i = 0; i < once.sources.size(); ++i) {
      pb_bytes += once.sources.file(static_cast<std::uint32_t>(i)).text.size();
    }
    pb_rules = static_cast<int>(once.program->rules.size() + once.program->alerts.size() +
                                once.program->journeys.size());
  }
  Timing pb = Measure(runs * 10, [&] { return gavel::dsl::Compile({playbooks.string()}); });
  Report("playbooks (from disk)", pb_rules, pb_bytes, runs * 10, pb);

  Generated g = Generate(total);
  std::vector<std::pair<std::string, std::string>> sources = {{"schema.gavel", kSchema}};
  sources.insert(sources.end(), g.files.begin(), g.files.end());
  std::size_t bytes = 0, lines = 0;
  for (const auto& [name, text] : sources) {
    bytes += text.size();
    lines += std::count(text.begin(), text.end(), '\n');
  }
  std::printf("generated: %d rules (rules, alerts, journeys) + %d scores in %zu files, %zu lines\n",
              g.rules, g.scores, sources.size(), lines);
  Timing t = Measure(runs, [&] { return gavel::dsl::CompileSources(sources); });
  Report("generated (in memory)", g.rules, bytes, runs, t);
  return 0;
}
