// Internal to rules/: the engine's dense per-entity storage, built for millions of entities.
//
//   IdTable      interns entity ids: id text <-> a dense number 0, 1, 2, ... (open addressing
//                over 8-byte slots, ids packed in one buffer). About 20 bytes per id plus the
//                id's own bytes.
//   SeenIds      the set of event ids already applied (duplicate detection), stored as 128-bit
//                XXH3 hashes in an open-addressing table: 16 bytes per id at most 75% full, so
//                21-43 bytes per event. Two different ids share a hash with probability about
//                n^2 / 2^129 (below 1e-20 for ten billion events), which we accept instead of
//                keeping every id's text.
//   EntityTable  one entity type: its ids, and its state in columns indexed by entity number
//                (entity fields, scores, the last event time, a dirty mark for checkpoints),
//                so that one lead costs about 120 bytes instead of a hash-map node per lead.
//
// Not thread-safe: owned by one Engine, used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "dsl/program.hpp"
#include "rules/clock.hpp"
#include "rules/eval.hpp"
#include "rules/event.hpp"

namespace gavel::rules::engine_detail {

inline std::uint64_t HashId(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

class IdTable {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;

  std::uint32_t Find(std::string_view id) const {
    if (slots_.empty()) return kNone;
    const std::uint64_t h = HashId(id);
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) return kNone;
      if (static_cast<std::uint32_t>(s >> 32) == tag) {
        const std::uint32_t n = static_cast<std::uint32_t>(s) - 1;
        if (Get(n) == id) return n;
      }
    }
  }

  // The number of `id`, adding it if new (`added` tells).
  std::uint32_t Intern(std::string_view id, bool& added) {
    if ((ends_.size() + 1) * 4 >= slots_.size() * 3) Grow();
    const std::uint64_t h = HashId(id);
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
    std::size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) break;
      if (static_cast<std::uint32_t>(s >> 32) == tag) {
        const std::uint32_t n = static_cast<std::uint32_t>(s) - 1;
        if (Get(n) == id) {
          added = false;
          return n;
        }
      }
    }
    const auto n = static_cast<std::uint32_t>(ends_.size());
    blob_.append(id);
    ends_.push_back(static_cast<std::uint64_t>(blob_.size()));
    slots_[i] = (static_cast<std::uint64_t>(tag) << 32) | (n + 1);
    added = true;
    return n;
  }

  std::string_view Get(std::uint32_t n) const {
    const std::uint64_t begin = n == 0 ? 0 : ends_[n - 1];
    return std::string_view(blob_).substr(begin, ends_[n] - begin);
  }
  std::size_t size() const { return ends_.size(); }

 private:
  void Grow() {
    std::size_t cap = slots_.empty() ? 64 : slots_.size() * 2;
    std::vector<std::uint64_t> next(cap, 0);
    const std::size_t mask = cap - 1;
    for (std::uint32_t n = 0; n < ends_.size(); ++n) {
      const std::uint64_t h = HashId(Get(n));
      std::size_t i = h & mask;
      while (next[i] != 0) i = (i + 1) & mask;
      next[i] = ((h >> 32) << 32) | (n + 1);
    }
    slots_.swap(next);
    mask_ = mask;
  }

  std::vector<std::uint64_t> slots_;  // 0: empty; else (hash >> 32) << 32 | (number + 1)
  std::size_t mask_ = 0;
  std::string blob_;                  // every id, back to back
  std::vector<std::uint64_t> ends_;   // end offset of id n in blob_
};

class SeenIds {
 public:
  // Adds the id; false if it was already there.
  bool Insert(std::string_view id) {
    if ((size_ + 1) * 4 >= slots_.size() * 3) Grow();
    const XXH128_hash_t h = XXH3_128bits(id.data(), id.size());
    const Slot want{h.low64 | 1, h.high64};  // lo never 0: 0 marks an empty slot
    for (std::size_t i = h.high64 & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.lo == 0) {
        s = want;
        ++size_;
        return true;
      }
      if (s.lo == want.lo && s.hi == want.hi) return false;
    }
  }
  std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::uint64_t lo = 0, hi = 0;
  };
  void Grow() {
    std::size_t cap = slots_.empty() ? 1024 : slots_.size() * 2;
    std::vector<Slot> next(cap);
    const std::size_t mask = cap - 1;
    for (const Slot& s : slots_) {
      if (s.lo == 0) continue;
      std::size_t i = s.hi & mask;
      while (next[i].lo != 0) i = (i + 1) & mask;
      next[i] = s;
    }
    slots_.swap(next);
    mask_ = mask;
  }

  std::vector<Slot> slots_;  // one cache line holds four: a lookup costs one miss
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

struct ScoreState {
  double value = 0;
  TimeMs as_of = 0;               // time `value` is valid at
  TimeMs last_activity = -1;      // -1: never active
  TimeMs timer_at = -1;           // the decay-crossing timer currently scheduled
  std::uint64_t once_mask = 0;    // `once` rules already applied (bit = rule index)
  std::int64_t steps_applied = 0; // inactivity decay steps since last_activity
};

// One entity field for every entity of a type: text or number (bools as 0/1), or null.
struct FieldColumn {
  Value::Kind kind = Value::Kind::kNumber;   // the declared kind
  std::vector<std::uint8_t> set;             // 0: null
  std::vector<double> num;                   // numbers and bools (empty for text fields)
  std::vector<std::string> text;             // text fields (empty otherwise)

  Value Get(std::uint32_t n) const {
    if (!set[n]) return Value::Null();
    if (kind == Value::Kind::kText) return Value::Text(text[n]);
    if (kind == Value::Kind::kBool) return Value::Bool(num[n] != 0);
    return Value::Number(num[n]);
  }
  // Stores `v` (a value of another kind than the declared one is stored as null).
  void Put(std::uint32_t n, const Value& v) {
    if (v.kind != kind) {
      set[n] = 0;
      return;
    }
    set[n] = 1;
    if (kind == Value::Kind::kText) text[n].assign(v.text);
    else num[n] = v.num;
  }
  void Append(const Value& v) {
    set.push_back(0);
    if (kind == Value::Kind::kText) text.emplace_back();
    else num.push_back(0);
    Put(static_cast<std::uint32_t>(set.size() - 1), v);
  }
};

struct EntityTable {
  const dsl::EntityInfo* info = nullptr;
  std::vector<int> score_ids;              // program score indexes of this entity type
  IdTable ids;
  std::vector<TimeMs> last_event;          // -1: no event yet
  std::vector<std::uint8_t> dirty;         // listed in `dirty_list` since the last checkpoint
  std::vector<std::uint32_t> dirty_list;
  std::vector<FieldColumn> fields;         // aligned with info->fields
  std::vector<std::vector<ScoreState>> scores;  // [position in score_ids][entity]
  std::vector<OwnedValue> defaults;        // the declared default of each field (or null)

  std::size_t size() const { return last_event.size(); }
  std::string_view id(std::uint32_t n) const { return ids.Get(n); }

  // The number of `id`, creating the entity with its declared defaults if new.
  std::uint32_t Intern(std::string_view id_text) {
    bool added = false;
    std::uint32_t n = ids.Intern(id_text, added);
    if (added) {
      last_event.push_back(-1);
      dirty.push_back(0);
      for (std::size_t f = 0; f < fields.size(); ++f) fields[f].Append(defaults[f].view());
      for (auto& column : scores) column.emplace_back();
    }
    return n;
  }
  // Returns the position of field `name`, or -1.
  int FieldIndex(std::string_view name) const {
    for (std::size_t i = 0; i < info->fields.size(); ++i) {
      if (info->fields[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }
};

// Sets up a table for `info` with the given scores.
inline void InitEntityTable(EntityTable& t, const dsl::EntityInfo& info, std::vector<int> score_ids) {
  t.info = &info;
  t.score_ids = std::move(score_ids);
  t.scores.resize(t.score_ids.size());
  for (const auto& f : info.fields) {
    FieldColumn c;
    OwnedValue def;
    switch (f.type.base) {
      case dsl::BaseType::kText:
        c.kind = Value::Kind::kText;
        if (f.has_default) def.kind = Value::Kind::kText, def.text = f.default_text;
        break;
      case dsl::BaseType::kBool:
        c.kind = Value::Kind::kBool;
        if (f.has_default) def.kind = Value::Kind::kBool, def.num = f.default_bool ? 1 : 0;
        break;
      default:
        c.kind = Value::Kind::kNumber;
        if (f.has_default) def.kind = Value::Kind::kNumber, def.num = f.default_number;
    }
    t.fields.push_back(std::move(c));
    t.defaults.push_back(std::move(def));
  }
}

}  // namespace gavel::rules::engine_detail
