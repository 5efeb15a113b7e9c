// The decision engine's public methods. See engine.hpp; the machinery is in engine_impl.hpp
// (events, scores, journeys, timers) and engine_scheduled.cpp (metric rules, alerts).
#include "rules/engine.hpp"

#include "rules/engine_impl.hpp"

#include <limits>

namespace gavel::rules {

Engine::Engine(std::shared_ptr<const dsl::Program> program, EngineDeps deps, EngineOptions options)
    : impl_(std::make_unique<Impl>(*this, std::move(program), deps, options)) {}

Engine::~Engine() = default;

Status Engine::AdvanceTo(TimeMs t) { return impl_->AdvanceTo(t); }

Status Engine::OnEvent(const Event& e) {
  Status s = impl_->OnEvent(e);
  now_ = std::max(now_, e.time);
  return s;
}

void Engine::Start(TimeMs t) { now_ = t; }

TimeMs Engine::NextWakeup() {
  Impl& im = *impl_;
  TimeMs next = im.timers.empty() ? -1 : im.timers.top().at;
  if (im.opts.run_schedules) {
    std::string unit;
    TimeMs tick = -1;
    im.NextSchedule(std::numeric_limits<TimeMs>::max(), unit, tick);
    if (tick >= 0 && (next < 0 || tick < next)) next = tick;
  }
  return next;
}

Status Engine::FlushSummary() {
  Impl& im = *impl_;
  im.MergeCounters();
  if (im.not_fired.empty() && duplicates_ == 0) return Status::Ok();
  Decision d = im.NewDecision("summary", "", "", now_);
  d.trigger = "summary";
  d.outcome = "summary";
  nlohmann::ordered_json counts = nlohmann::ordered_json::object();
  for (const auto& [unit, n] : im.not_fired) counts[unit] = n;
  d.evidence["not_fired"] = counts;
  d.evidence["duplicate_events"] = duplicates_;
  im.not_fired.clear();
  return im.Emit(d);
}

double Engine::ScoreOf(const std::string& entity_type, const std::string& id, const std::string& score) {
  Impl& im = *impl_;
  auto& map = im.entities[entity_type];
  auto it = map.find(id);
  if (it == map.end()) return 0;
  const auto& idx = im.entity_scores[entity_type];
  for (std::size_t i = 0; i < idx.size(); ++i) {
    if (im.p.scores[idx[i]].name == score) {
      im.Decay(entity_type, id, it->second, static_cast<int>(i), now_);
      return it->second.scores[i].value;
    }
  }
  return 0;
}

std::string Engine::DescribeEntity(const std::string& entity_type, const std::string& id) const {
  const Impl& im = *impl_;
  auto tm = im.entities.find(entity_type);
  if (tm == im.entities.end()) return "";
  auto it = tm->second.find(id);
  if (it == tm->second.end()) return "";
  nlohmann::ordered_json j;
  const dsl::EntityInfo* info = im.p.FindEntity(entity_type);
  for (std::size_t i = 0; info && i < info->fields.size(); ++i) j["fields"][info->fields[i].name] = ToJsonValue(it->second.fields[i].view());
  auto sc = im.entity_scores.find(entity_type);
  if (sc != im.entity_scores.end()) {
    for (std::size_t i = 0; i < sc->second.size(); ++i) {
      j["scores"][im.p.scores[sc->second[i]].name] = it->second.scores[i].value;
    }
  }
  return j.dump();
}

}  // namespace gavel::rules
