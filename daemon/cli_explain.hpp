// `gavel explain`: the complete answer to "why?" for one decision, or to "why was this NOT
// acted on?" for a rule and an entity.
//
//   gavel explain ID --db FILE.db [--format text|json]
//   gavel explain --db FILE.db --rule RULE --entity TYPE:ID [--at TIME] [--format text|json]
//
// For a decision: the rule text and version it ran (from the rule_sources table), the
// trigger, every value it read, the confidence computation, each action's gate verdicts and
// what the receivers answered (the `action` records that follow it), and its place in the
// hash chain. For a rule and an entity: the latest decision of that rule about that entity at
// or before TIME, explained the same way; if there is none, what the summaries say about
// evaluations that did not fire.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

// Exit status: 0 explained, 1 no such decision, 2 usage or I/O problems.
int RunExplain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
