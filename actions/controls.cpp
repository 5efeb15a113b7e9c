// See controls.hpp.
#include "actions/controls.hpp"

#include <nlohmann/json.hpp>

namespace gavel::actions {

Result<std::unique_ptr<Controls>> Controls::Attach(sqlite3* db) {
  Status s = sqlite::Exec(db,
                          "CREATE TABLE IF NOT EXISTS controls("
                          " kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                          " PRIMARY KEY(kind, key))",
                          "controls: create");
  if (!s.ok()) return s;
  std::unique_ptr<Controls> c(new Controls(db));
  s = c->Load();
  if (!s.ok()) return s;
  return c;
}

Status Controls::Load() {
  auto st = sqlite::Prepare(db_, "SELECT kind, key, value FROM controls", "controls: load");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    std::string kind(sqlite::ColumnText(q, 0)), key(sqlite::ColumnText(q, 1));
    nlohmann::json v = nlohmann::json::parse(sqlite::ColumnText(q, 2), nullptr, false);
    if (v.is_discarded() || !v.is_object()) return Status::Internal("controls: row " + kind + "/" + key + " is damaged");
    if (kind == "kill_switch") {
      kill_.on = v.value("on", false);
      kill_.reason = v.value("reason", "");
      kill_.who = v.value("who", "");
      kill_.since = v.value("since", rules::TimeMs{0});
    } else if (kind == "flag") {
      flags_[key] = v.value("on", false);
    } else if (kind == "pin") {
      Pin p;
      p.target = key;
      p.until = v.value("until", rules::TimeMs{0});
      p.reason = v.value("reason", "");
      p.who = v.value("who", "");
      p.since = v.value("since", rules::TimeMs{0});
      pins_[key] = p;
    }
  }
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "controls: load");
}

bool Controls::FlagOn(const std::string& name) const {
  auto it = flags_.find(name);
  return it != flags_.end() && it->second;
}

const Pin* Controls::PinOn(const std::string& target, rules::TimeMs now) const {
  auto it = pins_.find(target);
  if (it == pins_.end() || now >= it->second.until) return nullptr;
  return &it->second;
}

std::vector<Pin> Controls::Pins(rules::TimeMs now) const {
  std::vector<Pin> out;
  for (const auto& [target, p] : pins_) {
    if (now < p.until) out.push_back(p);
  }
  return out;
}

Status Controls::Put(const std::string& kind, const std::string& key, const std::string& value) {
  auto st = sqlite::Prepare(db_, "INSERT OR REPLACE INTO controls(kind, key, value) VALUES(?, ?, ?)", "controls: write");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  sqlite::BindStatic(q, 1, kind);
  sqlite::BindStatic(q, 2, key);
  sqlite::BindStatic(q, 3, value);
  int rc = sqlite3_step(q);
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "controls: write");
}

Status Controls::Erase(const std::string& kind, const std::string& key) {
  auto st = sqlite::Prepare(db_, "DELETE FROM controls WHERE kind = ? AND key = ?", "controls: erase");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  sqlite::BindStatic(q, 1, kind);
  sqlite::BindStatic(q, 2, key);
  int rc = sqlite3_step(q);
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db_, rc, "controls: erase");
}

Status Controls::SetKillSwitch(bool on, const std::string& who, const std::string& reason, rules::TimeMs now) {
  KillSwitch k{on, reason, who, now};
  nlohmann::json v = {{"on", on}, {"reason", reason}, {"who", who}, {"since", now}};
  Status s = Put("kill_switch", "", v.dump());
  if (s.ok()) kill_ = k;
  return s;
}

Status Controls::SetFlag(const std::string& name, bool on) {
  if (name.empty()) return Status::InvalidArgument("a flag needs a name");
  Status s = Put("flag", name, nlohmann::json({{"on", on}}).dump());
  if (s.ok()) flags_[name] = on;
  return s;
}

Status Controls::SetPin(const Pin& pin) {
  if (pin.target.find(':') == std::string::npos) {
    return Status::InvalidArgument("a pin's target is `<entity type>:<id>`, got `" + pin.target + "`");
  }
  if (pin.until <= pin.since) return Status::InvalidArgument("a pin must end after it starts");
  nlohmann::json v = {{"until", pin.until}, {"reason", pin.reason}, {"who", pin.who}, {"since", pin.since}};
  Status s = Put("pin", pin.target, v.dump());
  if (s.ok()) pins_[pin.target] = pin;
  return s;
}

Status Controls::RemovePin(const std::string& target) {
  if (!pins_.count(target)) return Status::NotFound("no pin on `" + target + "`");
  Status s = Erase("pin", target);
  if (s.ok()) pins_.erase(target);
  return s;
}

}  // namespace gavel::actions
