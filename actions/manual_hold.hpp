// Respecting manual changes: gavel does not undo what a person just did.
//
// The most common complaint about ad-platform rules is rules fighting people (and each
// other): a person re-enables an ad set a rule paused, and the rule pauses it again an hour
// later. Before the outbox performs a pause, enable or set_budget, ManualChangeGuard reads
// the object from its platform; if someone other than gavel changed it within the hold
// period, the action is held (not performed; logged as `held` with who changed it and until
// when the hold lasts). After the hold period the rule may act again.
//
// Which changes count: the platform's `updated_by` is not gavel's actor name ("gavel") and
// its `updated_at` is within `hold` of now. A platform read that fails does not block the
// action (the read's error is reported, and the action proceeds as the rule decided) unless
// `fail_closed` is set.
//
// Threads: one thread at a time (the outbox worker's).
#pragma once

#include <memory>
#include <string>

#include "actions/ad_platform.hpp"
#include "actions/outbox.hpp"
#include "rules/clock.hpp"

namespace gavel::actions {

struct ManualHoldOptions {
  std::int64_t hold_seconds = 24 * 3600;
  std::string actor = "gavel";  // the updated_by that marks gavel's own changes
  bool fail_closed = false;     // hold when the platform cannot be read
};

class ManualChangeGuard {
 public:
  // `platforms` maps entity types to connectors, as the ad-platform executor's options do.
  ManualChangeGuard(AdPlatformExecutorOptions platforms, ManualHoldOptions options, const rules::Clock& clock);
  // A reason to hold `request` now, or "" to let it run.
  std::string Check(const ActionRequest& request);

 private:
  AdPlatformExecutorOptions platforms_;
  ManualHoldOptions options_;
  const rules::Clock& clock_;
};

}  // namespace gavel::actions
