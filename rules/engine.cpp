// The decision engine's public methods. See engine.hpp; the machinery is in engine_impl.hpp
// (events, scores, journeys, timers) and engine_scheduled.cpp (metric rules, alerts).
#include "rules/engine.hpp"

#include "rules/engine_impl.hpp"

#include <limits>

namespace gavel::rules {

Engine::Engine(std::shared_ptr<const dsl::Program> program, EngineDeps deps, EngineOptions options)
    : impl_(std::make_unique<Impl>(*this, std::move(program), deps, options)) {}

Engine::~Engine() = default;

Status Engine::AdvanceTo(TimeMs t) {
  if (impl_->NothingDue(t)) {  // the common case between two events, without a call
    now_ = std::max(now_, t);
    return Status::Ok();
  }
  return impl_->AdvanceToDue(t);
}

Status Engine::OnEvent(const Event& e) {
  Status s = impl_->OnEvent(e);
  now_ = std::max(now_, e.time);
  return s;
}

Status Engine::OnEvents(std::span<const Event> events, std::vector<Status>* per_event) {
  return impl_->OnEvents(events, per_event);
}

void Engine::Start(TimeMs t) { now_ = t; }

void Engine::ReserveEvents(std::size_t events) {
  impl_->seen_events.Reserve(impl_->seen_events.size() + events);
  if (impl_->opts.track_state) impl_->new_event_hashes.reserve(impl_->new_event_hashes.size() + events);
}

Status Engine::RunSchedulesNow(TimeMs t) {
  Impl& im = *impl_;
  for (const auto& r : im.p.rules) {
    if (r.trigger != dsl::TriggerKind::kSchedule) continue;
    Status s = im.RunScheduledRule(r, t);
    if (!s.ok()) return s;
  }
  for (const auto& a : im.p.alerts) {
    Status s = im.RunAlert(a, t);
    if (!s.ok()) return s;
  }
  now_ = std::max(now_, t);
  return Status::Ok();
}

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
  EntityRef e = im.FindEntity(entity_type, id);
  if (!e.t) return 0;
  int k = Impl::ScorePosition(im.p, *e.t, score);
  if (k < 0) return 0;
  im.Decay(e, k, now_);
  return e.t->score(k, e.n).value;
}

Status Engine::JourneyRows(const std::string& entity_type, const std::string& id, StateSink& sink) {
  return impl_->JourneyRows(entity_type, id, sink);
}

std::string Engine::DescribeEntity(const std::string& entity_type, const std::string& id) const {
  Impl& im = *impl_;
  EntityRef e = im.FindEntity(entity_type, id);
  if (!e.t) return "";
  nlohmann::ordered_json j;
  for (std::size_t i = 0; i < e.t->info->fields.size(); ++i) {
    j["fields"][e.t->info->fields[i].name] = ToJsonValue(e.t->fields[i].Get(e.n));
  }
  for (std::size_t k = 0; k < e.t->score_ids.size(); ++k) {
    j["scores"][im.p.scores[e.t->score_ids[k]].name] = e.t->score(k, e.n).value;
  }
  return j.dump();
}

}  // namespace gavel::rules
