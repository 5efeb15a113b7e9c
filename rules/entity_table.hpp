// Internal to rules/: the engine's dense per-entity storage, built for millions of entities.
//
//   SeenIds      the set of event ids already applied (duplicate detection), stored as 128-bit
//                XXH3 hashes (16 bytes per id, in the order added) found through an
//                open-addressing table of 8-byte slots at most 75% full (a tag of the hash and
//                the hash's position), so 27-53 bytes per event (the array grows by
//                doubling unless reserved); a lookup touches one random line of the table.
//                Two different ids share a hash with probability about
//                n^2 / 2^129 (below 1e-20 for ten billion events), which we accept instead of
//                keeping every id's text.
//   EntityTable  one entity type: its ids interned to dense numbers 0, 1, 2, ... (open
//                addressing over 8-byte slots; short ids inline in the entity's header), and
//                its state indexed by entity number: a 32-byte header (last event, dirty mark,
//                id), the scores row by row (32 bytes each, what every event touches; decay
//                timers and `once` marks in rows of their own), and entity fields in columns.
//                One lead with one score and one text field costs about 150 bytes instead of
//                hash-map nodes. The index hashes ids with HashId (in memory only).
//
// Both hash tables' slot arrays are ZeroedArrays and the entity headers and score rows use
// HugePageAllocator (huge_pages.hpp): from 2 MiB on they sit on transparent huge pages, so a
// random lookup misses the cache but rarely the TLB.
//
// Not thread-safe: owned by one Engine, used by one thread at a time.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "dsl/program.hpp"
#include "rules/clock.hpp"
#include "rules/eval.hpp"
#include "rules/event.hpp"
#include "rules/huge_pages.hpp"

namespace gavel::rules::engine_detail {

// The hash of an entity id in the entity index (in memory only: never stored, so it may
// change). Ids of up to 16 bytes (most) are read as two overlapping words, each multiplied
// by an odd constant, combined with the length and finished with murmur3's 64-bit mixer:
// a third of XXH3's instructions on the event path. Longer ids take XXH3.
[[gnu::always_inline]] inline std::uint64_t HashId(std::string_view s) {
  const std::size_t n = s.size();
  const char* d = s.data();
  std::uint64_t a = 0, b = 0;
  if (n >= 8) {
    if (n > 16) return XXH3_64bits(d, n);
    std::memcpy(&a, d, 8);
    std::memcpy(&b, d + n - 8, 8);
  } else if (n >= 4) {
    std::uint32_t x, y;
    std::memcpy(&x, d, 4);
    std::memcpy(&y, d + n - 4, 4);
    a = x;
    b = y;
  } else if (n > 0) {
    a = std::uint64_t{static_cast<unsigned char>(d[0])} | std::uint64_t{static_cast<unsigned char>(d[n / 2])} << 8 |
        std::uint64_t{static_cast<unsigned char>(d[n - 1])} << 16;
  }
  std::uint64_t h = a * 0x9E3779B97F4A7C15ull ^ std::rotl((b + n) * 0xC2B2AE3D27D4EB4Full, 31);
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

// The bytes of a text of at most 8 bytes as one word, zero-padded (its first byte lowest),
// read without a loop or a call: two overlapping loads from 4 bytes on.
[[gnu::always_inline]] inline std::uint64_t ShortWord(std::string_view s) {
  const std::size_t n = s.size();
  const char* d = s.data();
  if constexpr (std::endian::native == std::endian::little) {
    if (n >= 4) {
      std::uint32_t a, b;
      std::memcpy(&a, d, 4);
      std::memcpy(&b, d + n - 4, 4);
      return a | (std::uint64_t{b} << ((n - 4) * 8));
    }
    if (n == 0) return 0;
    // 1-3 bytes: the first, the middle and the last byte cover them all.
    return std::uint64_t{static_cast<unsigned char>(d[0])} |
           (std::uint64_t{static_cast<unsigned char>(d[n / 2])} << (n / 2 * 8)) |
           (std::uint64_t{static_cast<unsigned char>(d[n - 1])} << ((n - 1) * 8));
  } else {
    std::uint64_t w = 0;
    for (std::size_t i = 0; i < n; ++i) w |= std::uint64_t{static_cast<unsigned char>(d[i])} << (i * 8);
    return w;
  }
}

// a == b, inline for the short texts of the event path (event type names, ids); memcmp
// for texts longer than 16 bytes.
[[gnu::always_inline]] inline bool SameText(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n <= 8) return ShortWord(a) == ShortWord(b);
  if (n <= 16) {
    std::uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.data(), 8);
    std::memcpy(&b0, b.data(), 8);
    std::memcpy(&a1, a.data() + n - 8, 8);
    std::memcpy(&b1, b.data() + n - 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
  }
  return std::memcmp(a.data(), b.data(), n) == 0;
}

// Asks the cache for the line holding `p` (a hint: never faults). GCC may drop a
// __builtin_prefetch whose surrounding code has no other effect (it did, in OnEvents and in
// PrefetchEntity below), so on x86-64 it is a volatile asm statement that stays.
inline void Prefetch(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}
// The same into the second-level cache only (for data needed a while later: no first-level
// fill buffer is held for it).
inline void PrefetchL2(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

class SeenIds {
 public:
  SeenIds() = default;
  // `max_ids`: how many hashes the table holds before the rest go to a plain set (tests make
  // it small; the default is the most a slot can number).
  explicit SeenIds(std::size_t max_ids) : max_ids_(std::min(max_ids, kMaxIds)) {}
  // XXH3_128bits of the id (the value checkpoints store), short ids inline as in HashId.
  [[gnu::always_inline]] static XXH128_hash_t HashOf(std::string_view id) {
    if (id.size() <= 16) {
      return XXH3_len_0to16_128b(reinterpret_cast<const xxh_u8*>(id.data()), id.size(), XXH3_kSecret, 0);
    }
    return XXH3_128bits(id.data(), id.size());
  }
  // Adds the id; false if it was already there.
  bool Insert(std::string_view id) { return InsertHashed(HashOf(id)); }
  // The same with the id's hash (HashOf) computed earlier (the batch path hashes once).
  bool InsertHashed(const XXH128_hash_t& h) {
    // The table holds only the ids in `hashes_` (the overflow set's are never in it), so it
    // stops growing with them: at most 2^32 slots, the most the tag can place.
    if ((hashes_.size() + 1) * 4 >= slots_.size() * 3 && hashes_.size() < max_ids_) Grow();
    const std::uint64_t tag = h.high64 & kTagMask;
    for (std::size_t i = h.high64 >> shift_;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) {
        if (hashes_.size() >= max_ids_) [[unlikely]] return InsertOverflow(h);
        hashes_.push_back(h);
        slots_[i] = tag | hashes_.size();
        ++size_;
        return true;
      }
      if ((s & kTagMask) == tag) {
        const XXH128_hash_t& have = hashes_[(s & ~kTagMask) - 1];
        if (have.low64 == h.low64 && have.high64 == h.high64) return false;
      }
    }
  }
  // Asks the cache for the slot where the id of hash `h` would be looked up first.
  void Prefetch(const XXH128_hash_t& h) const {
    if (!slots_.empty()) engine_detail::Prefetch(&slots_[h.high64 >> shift_]);
  }
  std::size_t size() const { return size_; }
  // Makes room for `n` ids without growing again (a replay knows its event count). Called
  // once per restored checkpoint row with a few more ids each time, so the hash array grows
  // at least twofold when it grows (an exact reserve would copy it once per row).
  void Reserve(std::size_t n) {
    n = std::min(n, max_ids_);
    std::size_t cap = slots_.empty() ? 1024 : slots_.size();
    while ((n + 1) * 4 >= cap * 3) cap *= 2;
    if (cap != slots_.size()) Grow(cap);
    if (n > hashes_.capacity()) hashes_.reserve(std::min(std::max(n, 2 * hashes_.capacity()), max_ids_));
  }
  std::size_t hash_capacity() const { return hashes_.capacity(); }  // for tests

 private:
  // A slot is 0 (empty) or the top 32 bits of the id's hash.high64 (its tag) and, below them,
  // 1 + the position of the whole hash in `hashes_`. The tag holds the bits that choose the
  // home slot (tables of up to 2^32 slots), so a rehash needs only the slots; a lookup reads
  // the whole hash only when the tags match (a duplicate, or 1 in about 2^(32 - log2 slots)
  // of the neighbours it passes).
  static constexpr std::uint64_t kTagMask = 0xffffffff00000000ull;
  // Ids in `hashes_`; more go to `overflow_`. At most 3 * 2^30 - 2, so that the table, kept at
  // most 75% full, never needs more than 2^32 slots (beyond that the tag no longer holds every
  // bit of the home slot, and a rehash from the slots alone would misplace ids).
  static constexpr std::size_t kMaxIds = (std::size_t{3} << 30) - 2;
  // An id's home slot is given by the top bits of its hash, so the table is (but for the few
  // ids that wrapped around its end) in hash order, and doubling it moves each id to about
  // twice its position: the rehash below writes the new table front to back, a stream
  // instead of one cache miss per id.
  // Moves the ids to a table of `cap` slots (a power of two; default: twice the size).
  [[gnu::noinline]] void Grow(std::size_t cap = 0) {
    if (cap == 0) cap = slots_.empty() ? 1024 : slots_.size() * 2;
    int shift = 64;
    for (std::size_t c = cap; c > 1; c >>= 1) --shift;
    ZeroedArray<std::uint64_t> next(cap);
    const std::size_t mask = cap - 1;
    for (const std::uint64_t s : slots_) {
      if (s == 0) continue;
      std::size_t i = s >> shift;
      while (next[i] != 0) i = (i + 1) & mask;
      next[i] = s;
    }
    slots_.swap(next);
    mask_ = mask;
    shift_ = shift;
  }
  // Past max_ids_ ids (48 GiB of hashes at kMaxIds): a plain set, so that nothing is ever refused.
  [[gnu::noinline]] bool InsertOverflow(const XXH128_hash_t& h) {
    const bool added = overflow_.insert({h.high64, h.low64}).second;
    size_ += added;
    return added;
  }

  // One cache line holds eight: a lookup costs one miss. From 2 MiB (262,144 slots) on, on
  // transparent huge pages (huge_pages.hpp): one TLB entry per 2 MiB of table.
  ZeroedArray<std::uint64_t> slots_;
  std::vector<XXH128_hash_t, HugePageAllocator<XXH128_hash_t>> hashes_;  // in the order added
  std::set<std::pair<std::uint64_t, std::uint64_t>> overflow_;
  std::size_t max_ids_ = kMaxIds;
  std::size_t mask_ = 0;
  int shift_ = 64;  // home slot: hash.high64 >> shift_ (64 - log2 of the slot count)
  std::size_t size_ = 0;
};

// One score of one entity: what every event of the entity reads and writes (32 bytes: two
// to a cache line)...
struct ScoreState {
  double value = 0;
  TimeMs as_of = 0;               // time `value` is valid at
  TimeMs last_activity = -1;      // -1: never active
  std::int64_t steps_applied = 0; // inactivity decay steps since last_activity
};
// ...and what only some programs use, kept apart so that the rows above stay small (the
// fewer bytes per entity, the more entities stay in the cache).
struct ScoreMarks {
  TimeMs timer_at = -1;           // the decay-crossing timer currently scheduled
  std::uint64_t once_mask = 0;    // `once` rules already applied (bit = rule index)
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
  // Adds a row holding `v` (as Put would store it).
  void Append(const Value& v) {
    const bool ok = v.kind == kind;
    set.push_back(ok ? 1 : 0);
    if (kind == Value::Kind::kText) {
      if (ok) text.emplace_back(v.text);
      else text.emplace_back();
    } else {
      num.push_back(ok ? v.num : 0);
    }
  }
};

// The per-entity header: the last event time, the dirty mark, and where the id is. An id of
// at most 8 bytes lives here (most ids: "L123456", "adset-42"), so finding an entity by id
// touches one index slot and this header; longer ids are compared in the id buffer.
struct EntityHeader {
  TimeMs last_event = -1;           // -1: no event yet
  std::uint64_t id_offset = 0;      // ids longer than 8 bytes: their offset in `id_blob`
  std::uint32_t id_length = 0;
  std::uint8_t dirty = 0;           // listed in `dirty_list` since the last checkpoint
  char short_id[8] = {};            // ids of at most 8 bytes
};

struct EntityTable {
  static constexpr std::uint32_t kNone = 0xffffffffu;

  const dsl::EntityInfo* info = nullptr;
  std::vector<int> score_ids;              // program score indexes of this entity type
  // By entity number; both on huge pages from 2 MiB on (a random entity's header and score
  // row then rarely miss the TLB).
  std::vector<EntityHeader, HugePageAllocator<EntityHeader>> rows;
  std::vector<ScoreState, HugePageAllocator<ScoreState>> score_rows;  // row-major: entity n's scores at n * nscores
  std::vector<ScoreMarks, HugePageAllocator<ScoreMarks>> score_marks;  // the same layout
  std::vector<FieldColumn> fields;         // aligned with info->fields
  std::vector<OwnedValue> defaults;        // the declared default of each field (or null)
  std::vector<std::uint32_t> dirty_list;

  std::size_t size() const { return rows.size(); }
  std::size_t nscores() const { return score_ids.size(); }
  ScoreState& score(std::size_t k, std::uint32_t n) { return score_rows[n * score_ids.size() + k]; }
  const ScoreState& score(std::size_t k, std::uint32_t n) const { return score_rows[n * score_ids.size() + k]; }
  ScoreMarks& marks(std::size_t k, std::uint32_t n) { return score_marks[n * score_ids.size() + k]; }
  const ScoreMarks& marks(std::size_t k, std::uint32_t n) const { return score_marks[n * score_ids.size() + k]; }

  // Whether entity n's id is `id_text` (short ids compared in the header, without a call).
  [[gnu::always_inline]] bool IdIs(std::uint32_t n, std::string_view id_text) const {
    const EntityHeader& h = rows[n];
    if (h.id_length != id_text.size()) return false;
    if (id_text.size() <= sizeof h.short_id) {
      std::uint64_t stored;  // zero-padded, as ShortWord pads
      std::memcpy(&stored, h.short_id, sizeof stored);
      if constexpr (std::endian::native == std::endian::little) return stored == ShortWord(id_text);
      return std::string_view(h.short_id, h.id_length) == id_text;
    }
    return std::string_view(id_blob).substr(h.id_offset, h.id_length) == id_text;
  }

  std::string_view id(std::uint32_t n) const {
    const EntityHeader& h = rows[n];
    if (h.id_length <= sizeof h.short_id) return std::string_view(h.short_id, h.id_length);
    return std::string_view(id_blob).substr(h.id_offset, h.id_length);
  }

  // The number of `id`, or kNone.
  std::uint32_t Find(std::string_view id_text) const {
    if (slots_.empty()) return kNone;
    const std::uint64_t h = HashId(id_text);
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) return kNone;
      if (static_cast<std::uint32_t>(s >> 32) == tag) {
        const std::uint32_t n = static_cast<std::uint32_t>(s) - 1;
        if (IdIs(n, id_text)) return n;
      }
    }
  }

  // The number of `id`, creating the entity with its declared defaults if new.
  std::uint32_t Intern(std::string_view id_text) { return InternHashed(id_text, HashId(id_text)); }
  // The same with the id's hash (HashId) computed earlier (the batch path hashes once). The
  // lookup is inline; creating an entity is a call of its own, so that the common case (the
  // entity exists) is a few instructions with no registers to save.
  [[gnu::always_inline]] std::uint32_t InternHashed(std::string_view id_text, std::uint64_t h) {
    if ((rows.size() + 1) * 4 >= slots_.size() * 3) [[unlikely]] Grow();
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) return Create(id_text, tag, i);
      if (static_cast<std::uint32_t>(s >> 32) == tag) {
        const std::uint32_t n = static_cast<std::uint32_t>(s) - 1;
        if (IdIs(n, id_text)) [[likely]] return n;
      }
    }
  }

  // Prefetching for the batch path (hints only: a wrong guess costs nothing but the fetch).
  // Step 1: the index slot where the id of hash `h` is looked up first.
  void PrefetchSlot(std::uint64_t h) const {
    if (!slots_.empty()) engine_detail::Prefetch(&slots_[h & mask_]);
  }
  // Step 2, once that slot is in the cache: the header and score row of the entity it names
  // (the first slot whose tag matches; the id itself is checked when the event is applied).
  void PrefetchEntity(std::uint64_t h) const {
    if (slots_.empty()) return;
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_, probes = 0; probes < 4; i = (i + 1) & mask_, ++probes) {
      const std::uint64_t s = slots_[i];
      if (s == 0) return;
      if (static_cast<std::uint32_t>(s >> 32) != tag) continue;
      const std::uint32_t n = static_cast<std::uint32_t>(s) - 1;
      if (n >= rows.size()) return;
      engine_detail::Prefetch(&rows[n]);
      if (!score_ids.empty()) {
        const ScoreState* row = &score_rows[n * score_ids.size()];
        engine_detail::Prefetch(row);
        engine_detail::Prefetch(reinterpret_cast<const char*>(row + score_ids.size()) - 1);
      }
      return;
    }
  }

  // Returns the position of field `name`, or -1.
  int FieldIndex(std::string_view name) const {
    for (std::size_t i = 0; i < info->fields.size(); ++i) {
      if (info->fields[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  [[gnu::noinline]] void Grow() {
    std::size_t cap = slots_.empty() ? 64 : slots_.size() * 2;
    ZeroedArray<std::uint64_t> next(cap);
    const std::size_t mask = cap - 1;
    for (std::uint32_t n = 0; n < rows.size(); ++n) {
      const std::uint64_t h = HashId(id(n));
      std::size_t i = h & mask;
      while (next[i] != 0) i = (i + 1) & mask;
      next[i] = ((h >> 32) << 32) | (n + 1);
    }
    slots_.swap(next);
    mask_ = mask;
  }

  // A new entity with its declared defaults, indexed at the empty slot `i`.
  [[gnu::noinline]] std::uint32_t Create(std::string_view id_text, std::uint32_t tag, std::size_t i) {
    const auto n = static_cast<std::uint32_t>(rows.size());
    EntityHeader row;
    row.id_length = static_cast<std::uint32_t>(id_text.size());
    if (id_text.size() <= sizeof row.short_id) {
      id_text.copy(row.short_id, id_text.size());
    } else {
      row.id_offset = id_blob.size();
      id_blob.append(id_text);
    }
    rows.push_back(row);
    score_rows.resize(score_rows.size() + score_ids.size());
    score_marks.resize(score_marks.size() + score_ids.size());
    for (std::size_t f = 0; f < fields.size(); ++f) fields[f].Append(defaults[f].view());
    slots_[i] = (static_cast<std::uint64_t>(tag) << 32) | (n + 1);
    return n;
  }

  // 0: empty; else (hash >> 32) << 32 | (number + 1). Huge pages from 262,144 slots on.
  ZeroedArray<std::uint64_t> slots_;
  std::size_t mask_ = 0;
  std::string id_blob;                // ids longer than 8 bytes, back to back
};

// Sets up a table for `info` with the given scores.
inline void InitEntityTable(EntityTable& t, const dsl::EntityInfo& info, std::vector<int> score_ids) {
  t.info = &info;
  t.score_ids = std::move(score_ids);
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
