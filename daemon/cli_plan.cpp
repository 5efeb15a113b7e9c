// `gavel plan` and `gavel apply`. See cli_plan.hpp and daemon/plan.hpp.
#include "daemon/cli_plan.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/plan.hpp"
#include "dsl/base/sha256.hpp"
#include "dsl/compiler.hpp"
#include "dsl/diagnostic.hpp"

namespace gavel::cli {

namespace {

constexpr const char* kPlanUsage =
    "usage: gavel plan [--rules DIR] [--state STATE.db] [--warehouse WH.db] [--at TIME]\n"
    "                  [--format text|json] [--out PLAN.json]\n"
    "                  [--max-changes-per-day N] [--escalation-channel CHANNEL]\n"
    "  What the scheduled rules and alerts would do now, against the current warehouse and\n"
    "  state: each action with its entity, before and after, evidence and gate verdicts.\n"
    "  The state database is only read. Event-driven rules act on events and are not planned.\n"
    "  --rules DIR        the rule files (default: playbooks)\n"
    "  --state FILE       the state database (decision log + engine state; default:\n"
    "                     out/gavel-state.db, the daemon's default `state_db`)\n"
    "  --warehouse FILE   the SQLite warehouse (default: out/sample/warehouse.db)\n"
    "  --at TIME          RFC 3339 time the rules run at (default: now)\n"
    "  --format           text (default) or json (schema gavel.plan/1)\n"
    "  --out FILE         also save the plan, with what it was computed from, for `gavel apply`\n"
    "  --max-changes-per-day N, --escalation-channel C\n"
    "                     the daemon's gate settings (actions.max_changes_per_entity_per_day,\n"
    "                     actions.escalation_channel); default: none, as the daemon's default\n"
    "exit status: 0 done, 1 the rule files do not compile, 2 usage or I/O problems\n";

constexpr const char* kApplyUsage =
    "usage: gavel apply PLAN.json [--rules DIR] [--state STATE.db] [--warehouse WH.db]\n"
    "                   [--max-changes-per-day N] [--escalation-channel CHANNEL]\n"
    "  Executes exactly the plan saved by `gavel plan --out`: logs its decisions and queues\n"
    "  their actions in the outbox (performed by the daemon's outbox worker, or the next\n"
    "  `gavel run`), in one transaction. Refuses, with the reason, a plan whose rules, state,\n"
    "  controls or warehouse data changed since it was made. Meant for a stopped daemon or a\n"
    "  plan-only workflow. Paths default to the ones the plan recorded.\n"
    "exit status: 0 applied, 1 refused, 2 usage or I/O problems\n";

struct Args {
  std::string rules, state, warehouse, at, format = "text", out, plan_file;
  int max_changes = 0;
  std::string escalation_channel;
};

// Parses the shared options; returns 0 when fine, else the exit code (usage printed).
int Parse(const char* verb, const char* usage, const std::vector<std::string>& args, bool is_plan,
          Args& a, std::ostream& out, std::ostream& err) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out << usage;
      return -1;
    }
    if (!is_plan && !arg.empty() && arg[0] != '-') {
      if (!a.plan_file.empty()) {
        err << "gavel " << verb << ": one plan file at a time (got `" << a.plan_file << "` and `"
            << arg << "`)\n";
        return 2;
      }
      a.plan_file = arg;
      continue;
    }
    if (i + 1 >= args.size()) {
      err << "gavel " << verb << ": unknown or incomplete argument `" << arg << "`\n" << usage;
      return 2;
    }
    const std::string& v = args[++i];
    if (arg == "--rules")
      a.rules = v;
    else if (arg == "--state")
      a.state = v;
    else if (arg == "--warehouse")
      a.warehouse = v;
    else if (is_plan && arg == "--at")
      a.at = v;
    else if (is_plan && arg == "--format")
      a.format = v;
    else if (is_plan && arg == "--out")
      a.out = v;
    else if (arg == "--escalation-channel")
      a.escalation_channel = v;
    else if (arg == "--max-changes-per-day") {
      try {
        std::size_t used = 0;
        a.max_changes = std::stoi(v, &used);
        if (used != v.size() || a.max_changes < 0) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        err << "gavel " << verb << ": --max-changes-per-day needs a number >= 0, got `" << v
            << "`\n";
        return 2;
      }
    } else {
      err << "gavel " << verb << ": unknown argument `" << arg << "`\n" << usage;
      return 2;
    }
  }
  return 0;
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

bool ReadFile(const std::string& path, std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  text = ss.str();
  return static_cast<bool>(in) || in.eof();
}

}  // namespace

int RunPlan(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Args a;
  int code = Parse("plan", kPlanUsage, args, true, a, out, err);
  if (code != 0) return code < 0 ? 0 : code;
  if (a.format != "text" && a.format != "json") {
    err << "gavel plan: --format must be `text` or `json`\n";
    return 2;
  }
  if (a.rules.empty()) a.rules = "playbooks";
  if (a.state.empty()) a.state = "out/gavel-state.db";
  if (a.warehouse.empty()) a.warehouse = "out/sample/warehouse.db";
  plan::PlanInputs in;
  if (a.at.empty()) {
    in.at = rules::WallClock().Now();
  } else if (!rules::ParseTime(a.at, in.at)) {
    err << "gavel plan: --at is not an RFC 3339 time: " << a.at << "\n";
    return 2;
  }
  dsl::CompileResult compiled = dsl::Compile({a.rules});
  if (!compiled.io_error.empty()) {
    err << "gavel plan: " << compiled.io_error << "\n";
    return 2;
  }
  if (!compiled.program) {
    err << dsl::RenderText(compiled.sources, compiled.diags.list());
    return 1;
  }
  in.program = compiled.program;
  in.rules_dir = Absolute(a.rules);
  in.state_path = Absolute(a.state);
  in.warehouse_path = Absolute(a.warehouse);
  in.gates.max_changes_per_entity_per_day = a.max_changes;
  in.gates.escalation_channel = a.escalation_channel;
  auto made = plan::MakePlan(in);
  if (!made.ok()) {
    err << "gavel plan: " << made.status().message() << "\n";
    return 2;
  }
  const plan::Plan& p = made.value();
  plan::Json j = plan::PlanToJson(p);
  const std::string json_text =
      j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (a.format == "json")
    out << json_text;
  else
    out << plan::RenderPlanText(p);
  if (!a.out.empty()) {
    // Written whole and renamed into place: a plan file is never half a plan.
    const std::string tmp = a.out + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << json_text;
      f.close();
      if (!f) {
        err << "gavel plan: cannot write " << a.out << "\n";
        return 2;
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, a.out, ec);
    if (ec) {
      err << "gavel plan: cannot write " << a.out << ": " << ec.message() << "\n";
      return 2;
    }
    err << "plan saved to " << a.out << " (sha256 " << Sha256Hex(json_text).substr(0, 16)
        << "…); execute exactly this plan with: gavel apply " << a.out << "\n";
  }
  return 0;
}

int RunApply(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Args a;
  int code = Parse("apply", kApplyUsage, args, false, a, out, err);
  if (code != 0) return code < 0 ? 0 : code;
  if (a.plan_file.empty()) {
    err << "gavel apply: give the plan file (from `gavel plan --out FILE`)\n" << kApplyUsage;
    return 2;
  }
  std::string text;
  if (!ReadFile(a.plan_file, text)) {
    err << "gavel apply: cannot read " << a.plan_file << "\n";
    return 2;
  }
  plan::Json file = plan::Json::parse(text, nullptr, false);
  if (file.is_discarded() || !file.is_object() || !file.contains("provenance")) {
    err << "gavel apply: " << a.plan_file
        << " is not a plan (write one with `gavel plan --out FILE`)\n";
    return 2;
  }
  auto recorded = plan::ProvenanceFromJson(file["provenance"]);
  if (!recorded.ok()) {
    err << "gavel apply: " << a.plan_file << ": " << recorded.status().message() << "\n";
    return 2;
  }
  // Paths default to the plan's own; the gate settings too, unless given.
  if (a.rules.empty()) a.rules = recorded.value().rules_dir;
  if (a.state.empty()) a.state = recorded.value().state_path;
  if (a.warehouse.empty()) a.warehouse = recorded.value().warehouse_path;
  bool gates_given = false;
  for (const auto& arg : args)
    gates_given |= arg == "--max-changes-per-day" || arg == "--escalation-channel";
  plan::PlanInputs in;
  if (gates_given) {
    in.gates.max_changes_per_entity_per_day = a.max_changes;
    in.gates.escalation_channel = a.escalation_channel;
  } else {
    in.gates.max_changes_per_entity_per_day = recorded.value().max_changes_per_entity_per_day;
    in.gates.escalation_channel = recorded.value().escalation_channel;
  }
  dsl::CompileResult compiled = dsl::Compile({a.rules});
  if (!compiled.io_error.empty()) {
    err << "gavel apply: " << compiled.io_error << "\n";
    return 2;
  }
  if (!compiled.program) {
    err << "gavel apply: refused: the rules no longer compile\n"
        << dsl::RenderText(compiled.sources, compiled.diags.list());
    return 1;
  }
  in.program = compiled.program;
  in.rules_dir = Absolute(a.rules);
  in.state_path = Absolute(a.state);
  in.warehouse_path = Absolute(a.warehouse);
  auto applied = plan::ApplyPlan(in, compiled.sources, text, rules::WallClock().Now());
  if (!applied.ok()) {
    err << "gavel apply: " << applied.status().message() << "\n";
    return 2;
  }
  const plan::ApplyOutcome& o = applied.value();
  if (!o.applied) {
    err << "gavel apply: refused: the plan " << a.plan_file
        << " is stale; nothing was logged or queued\n";
    for (const auto& r : o.reasons) err << "  " << r << "\n";
    err << "make a new plan (gavel plan --out FILE) and review it\n";
    return 1;
  }
  out << "applied plan " << a.plan_file << " (sha256 " << o.plan_sha256.substr(0, 16) << "…)\n";
  if (o.logged.empty()) {
    out << "the plan had no decisions: nothing was logged or queued\n";
    return 0;
  }
  out << "logged " << o.logged.size() << " decision" << (o.logged.size() == 1 ? "" : "s") << " (#"
      << o.logged.front().id << " .. #" << o.logged.back().id
      << ", trigger plan:" << o.plan_sha256.substr(0, 16) << "…)\n";
  out << "queued " << o.queued.size() << " action" << (o.queued.size() == 1 ? "" : "s")
      << " in the outbox";
  out << (o.queued.empty() ? "\n" : ":\n");
  for (const auto& e : o.queued) {
    std::string what = e.request.intent.value("action", "?");
    std::string target = e.target.empty()
                             ? e.request.intent.value("channel", e.request.intent.value("name", ""))
                             : e.target;
    out << "  " << e.key << "  " << e.executor << "  " << what << " " << target << "  "
        << actions::StateName(e.state) << "\n";
  }
  std::size_t not_queued = 0;
  for (const auto& d : o.logged) {
    for (const auto& act : d.actions) {
      std::string disp = act.value("disposition", "");
      not_queued += disp != "execute" && disp != "awaiting_approval";
    }
  }
  if (not_queued > 0) {
    out << not_queued << " action" << (not_queued == 1 ? " was" : "s were")
        << " logged but not queued (dry_run, shadow, blocked or internal; see gavel explain ID)\n";
  }
  if (!o.queued.empty()) {
    bool approvals = false;
    for (const auto& e : o.queued) approvals |= e.state == actions::OutboxState::kAwaitingApproval;
    out << "the daemon's outbox worker (or the next `gavel run`) performs the queued actions"
        << (approvals ? "; rows awaiting approval wait for an operator" : "") << "\n";
  }
  return 0;
}

}  // namespace gavel::cli
