// Checkpoint and restore of the engine's state. See rules/state.hpp for the row model.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "rules/engine_impl.hpp"
#include "rules/state.hpp"

namespace gavel::rules {

namespace {

OwnedValue ValueFrom(const nlohmann::json& j) {
  OwnedValue v;
  if (!j.is_object()) return v;
  if (j.contains("t")) v.kind = Value::Kind::kText, v.text = j["t"].get<std::string>();
  else if (j.contains("n")) v.kind = Value::Kind::kNumber, v.num = j["n"].get<double>();
  else if (j.contains("b")) v.kind = Value::Kind::kBool, v.num = j["b"].get<bool>() ? 1 : 0;
  return v;
}

void AppendInt(std::string& out, std::int64_t v) { out += std::to_string(v); }

// Shortest text that reads back as the same double (JSON has no NaN or infinity: null).
void AppendDouble(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  double back = std::strtod(buf, nullptr);
  for (int precision = 15; precision < 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) {
      out += shorter;
      return;
    }
  }
  (void)back;
  out += buf;
}

// An entity field in a compact row: a JSON string, number, true/false or null.
void AppendPlain(std::string& out, const Value& v) {
  switch (v.kind) {
    case Value::Kind::kText:
      out += nlohmann::json(std::string(v.text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    case Value::Kind::kNumber: AppendDouble(out, v.num); return;
    case Value::Kind::kBool: out += v.num != 0 ? "true" : "false"; return;
    case Value::Kind::kNull: break;
  }
  out += "null";
}

// "events" rows in the hashed form: the prefix, then each id's 128-bit hash (SeenIds::HashOf,
// the form the duplicate check keeps) as 22 characters of base64url: its 16 bytes, low64 then
// high64, each little-endian, 6 bits per character (the last character carries 2 bits).
constexpr std::string_view kHashedIdsPrefix = "xxh128:";
constexpr std::size_t kHashedIdChars = 22;
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void AppendHashedId(std::string& out, const XXH128_hash_t& h) {
  unsigned char b[16];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned char>(h.low64 >> (8 * i));
    b[8 + i] = static_cast<unsigned char>(h.high64 >> (8 * i));
  }
  char c[kHashedIdChars];
  std::size_t k = 0;
  for (int i = 0; i < 15; i += 3) {
    const std::uint32_t v = (std::uint32_t{b[i]} << 16) | (std::uint32_t{b[i + 1]} << 8) | b[i + 2];
    c[k++] = kBase64Url[v >> 18];
    c[k++] = kBase64Url[(v >> 12) & 63];
    c[k++] = kBase64Url[(v >> 6) & 63];
    c[k++] = kBase64Url[v & 63];
  }
  c[k++] = kBase64Url[b[15] >> 2];
  c[k++] = kBase64Url[(b[15] & 3) << 4];
  out.append(c, kHashedIdChars);
}

// Reads the ids of a hashed "events" row into `seen`; throws (a damaged row) on anything else.
void InsertHashedIds(std::string_view text, engine_detail::SeenIds& seen) {
  if (!text.starts_with(kHashedIdsPrefix)) throw std::runtime_error("unknown event id form");
  text.remove_prefix(kHashedIdsPrefix.size());
  if (text.size() % kHashedIdChars != 0) throw std::runtime_error("hashed ids of the wrong length");
  auto digit = [](char ch) -> std::uint32_t {
    if (ch >= 'A' && ch <= 'Z') return static_cast<std::uint32_t>(ch - 'A');
    if (ch >= 'a' && ch <= 'z') return static_cast<std::uint32_t>(ch - 'a' + 26);
    if (ch >= '0' && ch <= '9') return static_cast<std::uint32_t>(ch - '0' + 52);
    if (ch == '-') return 62;
    if (ch == '_') return 63;
    throw std::runtime_error("a hashed id holds a character outside base64url");
  };
  seen.Reserve(seen.size() + text.size() / kHashedIdChars);
  for (std::size_t at = 0; at < text.size(); at += kHashedIdChars) {
    const char* c = text.data() + at;
    unsigned char b[16];
    for (int i = 0, k = 0; i < 15; i += 3, k += 4) {
      const std::uint32_t v = digit(c[k]) << 18 | digit(c[k + 1]) << 12 | digit(c[k + 2]) << 6 | digit(c[k + 3]);
      b[i] = static_cast<unsigned char>(v >> 16);
      b[i + 1] = static_cast<unsigned char>(v >> 8);
      b[i + 2] = static_cast<unsigned char>(v);
    }
    const std::uint32_t last = digit(c[21]);
    if (last & 15) throw std::runtime_error("a hashed id does not end on its 128th bit");
    b[15] = static_cast<unsigned char>(digit(c[20]) << 2 | last >> 4);
    XXH128_hash_t h{0, 0};
    for (int i = 0; i < 8; ++i) {
      h.low64 |= std::uint64_t{b[i]} << (8 * i);
      h.high64 |= std::uint64_t{b[8 + i]} << (8 * i);
    }
    seen.InsertHashed(h);
  }
}

// A compact row's field back as a value.
OwnedValue PlainFrom(const nlohmann::json& j) {
  OwnedValue v;
  if (j.is_string()) v.kind = Value::Kind::kText, v.text = j.get<std::string>();
  else if (j.is_boolean()) v.kind = Value::Kind::kBool, v.num = j.get<bool>() ? 1 : 0;
  else if (j.is_number()) v.kind = Value::Kind::kNumber, v.num = j.get<double>();
  return v;
}

}  // namespace

nlohmann::json Engine::Impl::JourneyRow(std::size_t ji, const JourneyInstance& in) const {
  return {{"step", in.step},           {"status", static_cast<int>(in.status)},
          {"entered", in.entered},     {"wait_until", in.wait_until},
          {"resume_at", in.resume_at}, {"generation", in.generation},
          {"sends", in.sends},         {"version", p.journeys[ji].version}};
}

Status Engine::Impl::JourneyRows(std::string_view type, std::string_view id, StateSink& sink) {
  for (std::size_t ji = 0; ji < journeys.size(); ++ji) {
    const int t = journey_table[ji];
    if (t < 0 || tables[t].info->name != type) continue;
    const std::uint32_t n = tables[t].Find(id);
    if (n == EntityTable::kNone) continue;
    auto it = journeys[ji].find(n);
    if (it == journeys[ji].end()) continue;
    Status s = sink.Put("journey", p.journeys[ji].name, std::string(id), JourneyRow(ji, it->second));
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status Engine::Impl::Checkpoint(StateSink& sink) {
  if (!opts.track_state) return Status::Internal("checkpoint needs EngineOptions::track_state");
  MergeCounters();
  std::string row;
  for (EntityTable& t : tables) {
    for (std::uint32_t n : t.dirty_list) {
      t.rows[n].dirty = 0;
      // The row as JSON text, written directly: this runs for every entity an ingest batch
      // touched, and building nlohmann::json values for it cost most of a daemon's commit.
      // Compact: [last_event, [field, ...], [[value, as_of, last_activity, steps, once], ...]]
      // (fields in declaration order, scores in program order; the declared types say how to
      // read each field back). Smaller rows are fewer pages for SQLite to rewrite per commit.
      row.clear();
      row += '[';
      AppendInt(row, t.rows[n].last_event);
      row += ",[";
      for (std::size_t f = 0; f < t.fields.size(); ++f) {
        if (f) row += ',';
        AppendPlain(row, t.fields[f].Get(n));
      }
      row += "],[";
      for (std::size_t k = 0; k < t.nscores(); ++k) {
        const ScoreState& sc = t.score(k, n);
        if (k) row += ',';
        row += '[';
        AppendDouble(row, sc.value);
        row += ',';
        AppendInt(row, sc.as_of);
        row += ',';
        AppendInt(row, sc.last_activity);
        row += ',';
        AppendInt(row, sc.steps_applied);
        row += ',';
        row += std::to_string(t.marks(k, n).once_mask);
        row += ']';
      }
      row += "]]";
      Status s = sink.PutText("entity", t.info->name, std::string(t.id(n)), row);
      if (!s.ok()) return s;
    }
    t.dirty_list.clear();
  }
  for (const auto& [ji, n] : dirty_journeys) {
    auto it = journeys[ji].find(n);
    if (it == journeys[ji].end()) continue;
    Status s = sink.Put("journey", p.journeys[ji].name, std::string(tables[journey_table[ji]].id(n)),
                        JourneyRow(ji, it->second));
    if (!s.ok()) return s;
  }
  for (const auto& [rule, entity] : dirty_cooldowns) {
    Status s = sink.Put("cooldown", rule, entity, last_fired[rule][entity]);
    if (!s.ok()) return s;
  }
  for (const auto& [name, key] : dirty_alerts) {
    const AlertEntity& a = alert_states[name][key];
    if (a.state == AlertState::kInactive) {
      Status s = sink.Erase("alert", name, key);
      if (!s.ok()) return s;
      continue;
    }
    Status s = sink.Put("alert", name, key,
                        {{"state", static_cast<int>(a.state)}, {"since", a.since}, {"last_notified", a.last_notified}});
    if (!s.ok()) return s;
  }
  if (!new_event_hashes.empty()) {
    // The events applied since the last checkpoint, as one row (a row per event would cost a
    // B-tree insert per event) holding each id's 128-bit hash, which is all the duplicate
    // check keeps: recording it costs the event path no copy of the id, and Restore inserts
    // exactly the hashes the check held. Rows written before hold the ids themselves (a JSON
    // array of strings) and are still read.
    char key[24];
    std::snprintf(key, sizeof key, "%020lld", static_cast<long long>(++event_batches));
    std::string text;
    text.reserve(kHashedIdsPrefix.size() + 2 + new_event_hashes.size() * kHashedIdChars);
    text += '"';
    text += kHashedIdsPrefix;
    for (const XXH128_hash_t& h : new_event_hashes) AppendHashedId(text, h);
    text += '"';
    Status s = sink.PutText("events", "", key, text);
    if (!s.ok()) return s;
  }
  // Global bookkeeping: small, written whole.
  nlohmann::json meta;
  meta["now"] = self.now_;
  meta["duplicates"] = self.duplicates_;
  meta["next_tick"] = next_tick;
  meta["fire_times"] = fire_times;
  meta["not_fired"] = not_fired;
  meta["event_batches"] = event_batches;
  Status s = sink.Put("meta", "engine", "state", meta);
  if (!s.ok()) return s;
  dirty_journeys.clear();
  dirty_alerts.clear();
  dirty_cooldowns.clear();
  new_event_hashes.clear();
  return Status::Ok();
}

Status Engine::Impl::Restore(const StateSource& source) {
  std::map<std::string, std::size_t> journey_index;
  for (std::size_t i = 0; i < p.journeys.size(); ++i) journey_index[p.journeys[i].name] = i;
  std::vector<std::pair<Decision, std::pair<std::size_t, std::string>>> migrations;
  Status s = source.ForEach([&](const std::string& kind, const std::string& name, const std::string& key,
                                const nlohmann::json& j) -> Status {
    try {
      if (kind == "entity") {
        int ti = TableIndex(name);
        if (ti < 0) return Status::Ok();  // an entity type the new program no longer declares
        EntityRef e{&tables[ti], tables[ti].Intern(key)};
        EntityTable& t = *e.t;
        if (j.is_array()) {  // the compact row
          t.rows[e.n].last_event = j.at(0).get<TimeMs>();
          const auto& fields = j.at(1);
          for (std::size_t i = 0; i < t.fields.size() && i < fields.size(); ++i) {
            OwnedValue v = PlainFrom(fields[i]);
            t.fields[i].Put(e.n, v.view());
          }
          const auto& scores = j.at(2);
          for (std::size_t i = 0; i < t.nscores() && i < scores.size(); ++i) {
            ScoreState& sc = t.score(i, e.n);
            sc.value = scores[i].at(0).get<double>();
            sc.as_of = scores[i].at(1).get<TimeMs>();
            sc.last_activity = scores[i].at(2).get<TimeMs>();
            sc.steps_applied = scores[i].at(3).get<std::int64_t>();
            t.marks(i, e.n).once_mask = scores[i].at(4).get<std::uint64_t>();
          }
          return Status::Ok();
        }
        // The object row written before the compact form.
        t.rows[e.n].last_event = j.at("last_event").get<TimeMs>();
        const auto& fields = j.at("fields");
        for (std::size_t i = 0; i < t.fields.size() && i < fields.size(); ++i) {
          OwnedValue v = ValueFrom(fields[i]);
          t.fields[i].Put(e.n, v.view());
        }
        const auto& scores = j.at("scores");
        for (std::size_t i = 0; i < t.nscores() && i < scores.size(); ++i) {
          ScoreState& sc = t.score(i, e.n);
          sc.value = scores[i].at("value").get<double>();
          sc.as_of = scores[i].at("as_of").get<TimeMs>();
          sc.last_activity = scores[i].at("last_activity").get<TimeMs>();
          sc.steps_applied = scores[i].at("steps").get<std::int64_t>();
          t.marks(i, e.n).once_mask = scores[i].at("once").get<std::uint64_t>();
        }
      } else if (kind == "journey") {
        auto it = journey_index.find(name);
        if (it == journey_index.end()) return Status::Ok();
        JourneyInstance in;
        in.step = j.at("step").get<int>();
        in.status = static_cast<JourneyStatus>(j.at("status").get<int>());
        in.entered = j.at("entered").get<TimeMs>();
        in.wait_until = j.at("wait_until").get<TimeMs>();
        in.resume_at = j.at("resume_at").get<TimeMs>();
        in.generation = j.at("generation").get<std::uint64_t>();
        in.sends = j.at("sends").get<std::vector<TimeMs>>();
        const dsl::CompiledJourney& jn = p.journeys[it->second];
        std::string old_version = j.value("version", "");
        bool active = in.status != JourneyStatus::kDone;
        if (active && old_version != jn.version) {
          // The journey's rule file changed while this instance was in it: one policy, logged.
          bool keeps = in.step >= 0 && in.step < static_cast<int>(jn.steps.size());
          Decision d = NewDecision("journey", jn.name, jn.version, 0);
          d.trigger = "reload";
          d.entity_type = jn.entity;
          d.entity_id = key;
          d.outcome = "migrated";
          d.reason = keeps ? "rule changed: resumes at step " + std::to_string(in.step)
                           : "rule changed: the step it was at no longer exists, the journey ends";
          d.evidence["old_version"] = old_version;
          d.evidence["new_version"] = jn.version;
          if (!keeps) in.status = JourneyStatus::kDone;
          migrations.emplace_back(std::move(d), std::make_pair(it->second, key));
        }
        const std::uint32_t n = tables[journey_table[it->second]].Intern(key);
        journeys[it->second][n] = in;
      } else if (kind == "alert") {
        AlertEntity a;
        a.state = static_cast<AlertState>(j.at("state").get<int>());
        a.since = j.at("since").get<TimeMs>();
        a.last_notified = j.at("last_notified").get<TimeMs>();
        alert_states[name][key] = a;
      } else if (kind == "cooldown") {
        last_fired[name][key] = j.get<TimeMs>();
      } else if (kind == "events") {
        if (j.is_string()) {  // the hashed form
          InsertHashedIds(j.get_ref<const std::string&>(), seen_events);
        } else {  // the ids themselves, as written before
          for (const auto& id : j) seen_events.Insert(id.get_ref<const std::string&>());
        }
      } else if (kind == "event") {  // one row per event id, as written before batches
        seen_events.Insert(key);
      } else if (kind == "meta" && name == "engine") {
        self.now_ = j.at("now").get<TimeMs>();
        self.duplicates_ = j.at("duplicates").get<std::int64_t>();
        next_tick = j.at("next_tick").get<std::map<std::string, TimeMs>>();
        if (j.contains("last_fired")) {  // state written before cooldowns had rows of their own
          for (const auto& [rule, m] : j.at("last_fired").items()) {
            for (const auto& [entity, t] : m.items()) last_fired[rule][entity] = t.get<TimeMs>();
          }
        }
        fire_times = j.at("fire_times").get<std::map<std::string, std::vector<TimeMs>>>();
        not_fired = j.at("not_fired").get<std::map<std::string, std::int64_t>>();
        event_batches = j.value("event_batches", std::int64_t{0});
      }
    } catch (const std::exception& e) {
      return Status::Internal("state row " + kind + "/" + name + "/" + key + " is damaged: " + e.what());
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  // Rebuild the timers from the state: decay crossings and journey waits and deferrals.
  for (EntityTable& t : tables) {
    const int ti = static_cast<int>(&t - tables.data());
    for (std::uint32_t n = 0; n < t.size(); ++n) {
      for (std::size_t k = 0; k < t.nscores(); ++k) {
        t.marks(k, n).timer_at = -1;
        ScheduleDecayTimer(EntityRef{&tables[ti], n}, static_cast<int>(k));
      }
    }
  }
  for (std::size_t ji = 0; ji < journeys.size(); ++ji) {
    for (auto& [n, in] : journeys[ji]) {
      if (in.status == JourneyStatus::kWaiting) {
        timers.push({in.wait_until, timer_seq++, TimerKind::kJourney, static_cast<int>(ji), journey_table[ji], n,
                     in.generation});
      } else if (in.status == JourneyStatus::kDeferred) {
        timers.push({in.resume_at, timer_seq++, TimerKind::kJourney, static_cast<int>(ji), journey_table[ji], n,
                     in.generation});
      }
    }
  }
  // Nothing restored is "changed", except instances migrated to a new journey version.
  for (EntityTable& t : tables) {
    for (EntityHeader& h : t.rows) h.dirty = 0;
    t.dirty_list.clear();
  }
  dirty_journeys.clear();
  dirty_alerts.clear();
  dirty_cooldowns.clear();
  new_event_hashes.clear();
  for (auto& [d, instance] : migrations) {
    d.event_time = self.now_;
    Status e = Emit(d);
    if (!e.ok()) return e;
    dirty_journeys.insert({instance.first, tables[journey_table[instance.first]].Find(instance.second)});
  }
  return Status::Ok();
}

Status Engine::Checkpoint(StateSink& sink) { return impl_->Checkpoint(sink); }
Status Engine::Restore(const StateSource& source) { return impl_->Restore(source); }

}  // namespace gavel::rules
