// The `gavel` command: dispatches to one verb per subcommand.
#include <iostream>
#include <string>
#include <vector>

#include "daemon/cli_backtest.hpp"
#include "daemon/cli_check.hpp"
#include "daemon/cli_explain.hpp"
#include "daemon/cli_log.hpp"
#include "daemon/cli_operator.hpp"
#include "daemon/cli_plan.hpp"
#include "daemon/cli_replay.hpp"
#include "daemon/cli_run.hpp"
#include "daemon/cli_test.hpp"

namespace {

constexpr const char* kUsage =
    "usage: gavel <command> [options]\n"
    "commands:\n"
    "  run       the daemon: events over HTTP, schedules, reloads, actions, crash-safe state\n"
    "  check     compile rule files and report diagnostics and the compiled program\n"
    "  test      run rule unit tests (.test files, docs/testing.md)\n"
    "  replay    run the engine over recorded events (and a warehouse) on a simulated clock\n"
    "  backtest  what the rules would have done over history (report: text, JSON, HTML)\n"
    "  diff      the same history through two versions of the rules, side by side\n"
    "  plan      what the scheduled rules would do now, each action with its gate verdicts\n"
    "  apply     execute exactly a saved plan; refused if its rules, state or data changed\n"
    "  log       list decisions, `log verify` the hash chain, `log shadow` shadow vs live\n"
    "  explain   why a decision was made (or why a rule did not act on an entity)\n"
    "operating a running daemon (over its HTTP API):\n"
    "  kill-switch status|on|off     stop every action at once, or let them run again\n"
    "  flags list|on NAME|off NAME   feature flags that rules name with `flag \"NAME\"`\n"
    "  override list|add|remove      pin an entity: no rule touches it until the pin ends\n"
    "  approvals list|approve|reject actions waiting for an operator (`require approval`)\n"
    "run `gavel <command> --help` for the options of a command\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  std::string verb = args[0];
  args.erase(args.begin());
  try {
    if (verb == "check") return gavel::cli::RunCheck(args, std::cout, std::cerr);
    if (verb == "replay") return gavel::cli::RunReplay(args, std::cout, std::cerr);
    if (verb == "log") return gavel::cli::RunLog(args, std::cout, std::cerr);
    if (verb == "backtest") return gavel::cli::RunBacktest(args, std::cout, std::cerr);
    if (verb == "diff") return gavel::cli::RunDiff(args, std::cout, std::cerr);
    if (verb == "plan") return gavel::cli::RunPlan(args, std::cout, std::cerr);
    if (verb == "apply") return gavel::cli::RunApply(args, std::cout, std::cerr);
    if (verb == "explain") return gavel::cli::RunExplain(args, std::cout, std::cerr);
    if (verb == "test") return gavel::cli::RunTest(args, std::cout, std::cerr);
    if (verb == "kill-switch") return gavel::cli::RunKillSwitch(args, std::cout, std::cerr);
    if (verb == "flags") return gavel::cli::RunFlags(args, std::cout, std::cerr);
    if (verb == "override") return gavel::cli::RunOverride(args, std::cout, std::cerr);
    if (verb == "approvals") return gavel::cli::RunApprovals(args, std::cout, std::cerr);
    if (verb == "run") return gavel::cli::RunDaemon(args, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "gavel " << verb << ": internal error: " << e.what() << "\n";
    return 2;
  }
  std::cerr << "gavel: unknown command `" << verb << "`\n" << kUsage;
  return 2;
}
