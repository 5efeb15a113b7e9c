// See action.hpp.
#include "actions/action.hpp"

namespace gavel::actions {

const char* OutcomeName(ActionResult::Outcome o) {
  switch (o) {
    case ActionResult::Outcome::kSucceeded: return "succeeded";
    case ActionResult::Outcome::kRetryable: return "retryable";
    case ActionResult::Outcome::kFailed: break;
  }
  return "failed";
}

}  // namespace gavel::actions
