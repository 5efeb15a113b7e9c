// The operator's commands, talking to a running daemon over its HTTP API (role `operator`
// for changes, any reading role for lists):
//
//   gavel kill-switch status | on | off            [--reason R]
//   gavel flags list | on NAME | off NAME          [--reason R]
//   gavel override list | add TARGET (--until TIME | --for DURATION) --reason R | remove TARGET
//   gavel approvals list | approve KEY | reject KEY [--reason R]
//
// Common options: --url URL (default $GAVEL_URL, else http://127.0.0.1:8080) and --token T
// (default $GAVEL_TOKEN; --token-file F reads it from a file). Who made a change is the
// token's name in the daemon's configuration; the reason goes into the decision log with it.
// Exit status: 0 done, 1 the daemon refused (the reason is printed), 2 usage or connection
// problems.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

int RunKillSwitch(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunFlags(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunOverride(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunApprovals(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
