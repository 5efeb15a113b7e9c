// The operators' switches: the global kill switch, feature flags and entity pins ("never
// touch ad set 123 until 2026-12-01"). The gates (actions/gates.hpp) read them for every
// intended action; operators change them over the HTTP API or `gavel flags|override|
// kill-switch`, without a reload.
//
// Durable in the state database (table `controls`, same file as the decision log): every
// change is written on the connection given to Attach, inside the caller's transaction when
// one is open, so the change and the `operator` decision that records who made it and why
// commit together. The in-memory copy is what the gates read.
//
// Threads: one thread at a time (the daemon's engine thread owns it).
#pragma once

#include <sqlite3.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dsl/base/status.hpp"
#include "rules/clock.hpp"
#include "rules/store/sqlite_util.hpp"

namespace gavel::actions {

// An entity pinned by an operator: no action touches it until `until`.
struct Pin {
  std::string target;        // "<entity type>:<id>", e.g. "adset_daily:adset-100123"
  rules::TimeMs until = 0;   // exclusive
  std::string reason;
  std::string who;
  rules::TimeMs since = 0;
};

struct KillSwitch {
  bool on = false;
  std::string reason;
  std::string who;
  rules::TimeMs since = 0;
};

class Controls {
 public:
  // Uses `db` (not owned); creates the table if missing and loads what it holds.
  static Result<std::unique_ptr<Controls>> Attach(sqlite3* db);

  const KillSwitch& kill_switch() const { return kill_; }
  // Flags are off until an operator turns them on.
  bool FlagOn(const std::string& name) const;
  const std::map<std::string, bool>& flags() const { return flags_; }
  // The pin on `target` in force at `now`, or null.
  const Pin* PinOn(const std::string& target, rules::TimeMs now) const;
  std::vector<Pin> Pins(rules::TimeMs now) const;  // in force at `now`, by target

  Status SetKillSwitch(bool on, const std::string& who, const std::string& reason, rules::TimeMs now);
  Status SetFlag(const std::string& name, bool on);
  Status SetPin(const Pin& pin);
  // NotFound if `target` has no pin.
  Status RemovePin(const std::string& target);

 private:
  explicit Controls(sqlite3* db) : db_(db) {}
  Status Load();
  Status Put(const std::string& kind, const std::string& key, const std::string& value);
  Status Erase(const std::string& kind, const std::string& key);

  sqlite3* db_;
  KillSwitch kill_;
  std::map<std::string, bool> flags_;
  std::map<std::string, Pin> pins_;
};

}  // namespace gavel::actions
