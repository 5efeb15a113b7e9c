// `gavel plan` and `gavel apply`: what the scheduled rules would do now, with each action's
// gate verdicts, and the execution of exactly that plan (daemon/plan.hpp, docs/review.md).
//
//   gavel plan  [--rules DIR] [--state STATE.db] [--warehouse WH.db] [--at TIME]
//               [--format text|json] [--out PLAN.json]
//               [--max-changes-per-day N] [--escalation-channel CHANNEL]
//   gavel apply PLAN.json [--rules DIR] [--state STATE.db] [--warehouse WH.db]
//               [--max-changes-per-day N] [--escalation-channel CHANNEL]
//
// `plan` never writes the state database. `apply` refuses (exit 1, with the reasons) a plan
// whose rules, state, controls or warehouse data changed since it was made; otherwise it logs
// the planned decisions and queues their actions in one transaction.
// Exit status: plan 0 done, 1 the rule files do not compile, 2 usage or I/O problems;
// apply 0 applied, 1 refused (stale plan, or rules that no longer compile), 2 usage or I/O.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

int RunPlan(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunApply(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
