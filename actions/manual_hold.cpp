// See manual_hold.hpp.
#include "actions/manual_hold.hpp"

namespace gavel::actions {

ManualChangeGuard::ManualChangeGuard(AdPlatformExecutorOptions platforms, ManualHoldOptions options,
                                     const rules::Clock& clock)
    : platforms_(std::move(platforms)), options_(std::move(options)), clock_(clock) {}

std::string ManualChangeGuard::Check(const ActionRequest& request) {
  const std::string action = request.intent.value("action", "");
  if (action != "pause" && action != "enable" && action != "set_budget") return "";
  const std::string target = request.intent.value("target", "");
  const auto colon = target.find(':');
  if (colon == std::string::npos) return "";
  auto mapping = platforms_.entity_types.find(target.substr(0, colon));
  if (mapping == platforms_.entity_types.end()) return "";
  auto platform = platforms_.platforms.find(mapping->second.platform);
  if (platform == platforms_.platforms.end() || !platform->second) return "";
  AdObjectRead read = platform->second->Get({mapping->second.object_kind, target.substr(colon + 1)});
  if (!read.state) {
    if (!options_.fail_closed) return "";
    return "held: the platform could not be read to check for manual changes (" + read.result.error + ")";
  }
  const AdObjectState& s = *read.state;
  if (s.updated_by.empty() || s.updated_by == options_.actor) return "";
  rules::TimeMs changed = 0;
  if (!rules::ParseTime(s.updated_at, changed)) return "";
  const rules::TimeMs until = changed + options_.hold_seconds * 1000;
  if (clock_.Now() >= until) return "";
  // A change that already matches what the rule wants is no conflict (paused and to pause).
  if ((action == "pause" && s.status == "paused") || (action == "enable" && s.status == "active")) return "";
  return "held: " + s.updated_by + " changed " + target + " at " + s.updated_at + " (now " + s.status +
         "); gavel leaves it alone until " + rules::FormatTime(until);
}

}  // namespace gavel::actions
