// The SQLite decision log. See decision_log.hpp and docs/decision-log.md.
#include "rules/store/decision_log.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <ostream>
#include <system_error>
#include <thread>
#include <utility>

#include "dsl/base/sha256.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define GAVEL_LOG_SHA_NI 1
#endif

namespace gavel::rules {
namespace {

using sqlite::BindStatic;
using sqlite::ColumnText;
using sqlite::ResetGuard;
using sqlite::StmtPtr;

// ---------------------------------------------------------------------------------------
// SHA-256. The chain hashes every record, so the hash is on the append path: the portable
// gavel::Sha256Hex costs ~2.3 us for a typical 700-byte record, the SHA extensions (Intel
// since Goldmont/Ice Lake, AMD since Zen) ~0.3 us. Same function, checked against
// Sha256Hex in tests/rules/decision_log_test.cpp.

#ifdef GAVEL_LOG_SHA_NI
alignas(16) constexpr std::uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

bool CpuHasShaNi() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool sha = (b >> 29) & 1;
  return ssse3 && sse41 && sha;
}

// Processes `blocks` 64-byte blocks. state is a..h.
__attribute__((target("sha,sse4.1,ssse3"))) void CompressShaNi(std::uint32_t state[8],
                                                               const unsigned char* data,
                                                               std::size_t blocks) {
  const __m128i kMask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[0]));
  __m128i state1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[4]));
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                // CDAB
  state1 = _mm_shuffle_epi32(state1, 0x1B);          // EFGH
  __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);  // ABEF
  state1 = _mm_blend_epi16(state1, tmp, 0xF0);       // CDGH
  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef = state0, cdgh = state1;
    __m128i w[4];
    for (std::size_t i = 0; i < 16; ++i) {
      __m128i wi;
      if (i < 4) {
        wi = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)),
                              kMask);
      } else {
        // W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time.
        __m128i x = _mm_sha256msg1_epu32(w[(i - 4) & 3], w[(i - 3) & 3]);
        x = _mm_add_epi32(x, _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4));
        wi = _mm_sha256msg2_epu32(x, w[(i - 1) & 3]);
      }
      w[i & 3] = wi;
      __m128i msg = _mm_add_epi32(wi, _mm_load_si128(reinterpret_cast<const __m128i*>(&kK[4 * i])));
      state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
      msg = _mm_shuffle_epi32(msg, 0x0E);
      state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
    }
    state0 = _mm_add_epi32(state0, abef);
    state1 = _mm_add_epi32(state1, cdgh);
  }
  tmp = _mm_shuffle_epi32(state0, 0x1B);        // FEBA
  state1 = _mm_shuffle_epi32(state1, 0xB1);     // DCHG
  state0 = _mm_blend_epi16(tmp, state1, 0xF0);  // DCBA
  state1 = _mm_alignr_epi8(state1, tmp, 8);     // HGFE
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[0]), state0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[4]), state1);
}

void Sha256HexShaNi(std::string_view data, char* out) {
  std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t n = data.size();
  const std::size_t full = n / 64;
  if (full > 0) CompressShaNi(h, p, full);
  unsigned char tail[128] = {0};
  const std::size_t rem = n - full * 64;
  if (rem > 0) std::memcpy(tail, p + full * 64, rem);
  tail[rem] = 0x80;
  const std::size_t tail_len = rem + 1 + 8 <= 64 ? 64 : 128;
  const std::uint64_t bits = static_cast<std::uint64_t>(n) * 8;
  for (int i = 0; i < 8; ++i) tail[tail_len - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
  CompressShaNi(h, tail, tail_len / 64);
  static const char* kHex = "0123456789abcdef";
  for (int k = 0; k < 8; ++k) {
    for (int i = 0; i < 8; ++i) out[8 * k + i] = kHex[(h[k] >> (28 - 4 * i)) & 0xf];
  }
}
#endif

// Lowercase hex SHA-256 of data into out[0..63].
void HashHexInto(std::string_view data, char* out) {
#ifdef GAVEL_LOG_SHA_NI
  static const bool kShaNi = CpuHasShaNi();
  if (kShaNi) {
    Sha256HexShaNi(data, out);
    return;
  }
#endif
  const std::string h = gavel::Sha256Hex(data);
  std::memcpy(out, h.data(), 64);
}

std::string HashHex(std::string_view data) {
  std::string out(64, '0');
  HashHexInto(data, out.data());
  return out;
}

// Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), the same
// acceptance as nlohmann's serializer. The length of the multi-byte sequence at p[0..n)
// (p[0] >= 0x80), or 0 if it is not valid.
inline std::size_t Utf8SequenceLength(const unsigned char* p, std::size_t n) {
  const unsigned char c = p[0];
  std::size_t len;
  std::uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (len > n) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[k] & 0x3F);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return len;
}

bool ValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t chunk;
      std::memcpy(&chunk, p + i, 8);
      if (chunk & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = Utf8SequenceLength(p + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// Replaces each invalid UTF-8 sequence with U+FFFD, exactly as nlohmann's
// error_handler_t::replace does.
std::string RepairUtf8(std::string_view s) {
  std::string dumped =
      nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto back = nlohmann::json::parse(dumped, nullptr, /*allow_exceptions=*/false);
  return back.is_string() ? back.get<std::string>() : std::string();
}

// The append path's output buffer: std::string's push_back/append, inlined, over a string
// kept at its capacity (DecisionLog::buf_) and reused between appends, so that a record is
// rendered without allocations or out-of-line calls per piece. size() is the rendered length.
class Writer {
 public:
  explicit Writer(std::string& storage) : s_(storage) {
    if (s_.size() < 4096) s_.resize(4096);
    p_ = s_.data();
    cap_ = s_.size();
  }
  void push_back(char c) {
    if (n_ == cap_) Grow(1);
    p_[n_++] = c;
  }
  void append(const char* d, std::size_t k) {
    if (cap_ - n_ < k) Grow(k);
    std::memcpy(p_ + n_, d, k);
    n_ += k;
  }
  void append(std::string_view v) { append(v.data(), v.size()); }
  std::size_t size() const { return n_; }
  void resize(std::size_t n) { n_ = std::min(n, n_); }  // shrinks only
  char* data() { return p_; }
  std::string_view view(std::size_t from, std::size_t to) const { return {p_ + from, to - from}; }

 private:
  [[gnu::noinline]] void Grow(std::size_t k) {
    s_.resize(std::max(2 * cap_, n_ + k));
    p_ = s_.data();
    cap_ = s_.size();
  }
  std::string& s_;
  char* p_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;
};

// ---------------------------------------------------------------------------------------
// Canonical JSON pieces, byte-identical to nlohmann's dump() (compact, ensure_ascii=false).
// Out is std::string or Writer.

// True if any of the 8 bytes of x is below 0x20, '"' or '\'. Exact as a yes/no answer
// (a borrow only propagates out of a byte that already matches).
inline bool NeedsEscape8(std::uint64_t x) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  const std::uint64_t quote = x ^ (kOnes * '"'), backslash = x ^ (kOnes * '\\');
  return (((x - kOnes * 0x20) & ~x) | ((quote - kOnes) & ~quote) |
          ((backslash - kOnes) & ~backslash)) &
         kHigh;
}

// Appends s as a JSON string. With kCheck, also checks that s is valid UTF-8 in the same pass
// and returns false (leaving `out` partly written) if it is not; without, bytes >= 0x80 are
// copied as they are (for text read back from the database) and it returns true. Runs of
// bytes that need no escape are found 8 at a time and copied in one append (this is on the
// append path for every string of every record).
template <bool kCheck, class Out>
bool AppendJsonStringImpl(Out& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  out.push_back('"');
  const char* p = s.data();
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  const std::size_t n = s.size();
  std::size_t start = 0, i = 0;
  while (i < n) {
    while (i + 8 <= n) {
      std::uint64_t x;
      std::memcpy(&x, p + i, 8);
      if (NeedsEscape8(x) || (kCheck && (x & kHigh))) break;
      i += 8;
    }
    if (i >= n) break;
    const auto c = u[i];
    if (c >= 0x80) {
      if constexpr (kCheck) {
        const std::size_t len = Utf8SequenceLength(u + i, n - i);
        if (len == 0) return false;
        i += len;
      } else {
        ++i;
      }
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    out.append(p + start, i - start);
    start = ++i;
    switch (c) {
      case '"':
        out.append("\\\"", 2);
        break;
      case '\\':
        out.append("\\\\", 2);
        break;
      case '\b':
        out.append("\\b", 2);
        break;
      case '\f':
        out.append("\\f", 2);
        break;
      case '\n':
        out.append("\\n", 2);
        break;
      case '\r':
        out.append("\\r", 2);
        break;
      case '\t':
        out.append("\\t", 2);
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out.append(esc, 6);
      }
    }
  }
  out.append(p + start, n - start);
  out.push_back('"');
  return true;
}

// Stored text, copied as it is.
template <class Out>
void AppendJsonString(Out& out, std::string_view s) {
  AppendJsonStringImpl<false>(out, s);
}
// False if s is not valid UTF-8.
template <class Out>
bool AppendJsonStringChecked(Out& out, std::string_view s) {
  return AppendJsonStringImpl<true>(out, s);
}

// The body's string fields, in ToJson's order; then "evidence" and "actions" (raw JSON).
constexpr std::array<const char*, 10> kBodyStringKeys = {
    "event_time", "processing_time", "kind",      "rule",    "version",
    "trigger",    "entity_type",     "entity_id", "outcome", "reason"};

// ",\"<key>\":" for each string key (without the comma for the first).
constexpr std::array<std::string_view, 10> kBodyKeyPrefixes = {
    "\"event_time\":", ",\"processing_time\":", ",\"kind\":",      ",\"rule\":",    ",\"version\":",
    ",\"trigger\":",   ",\"entity_type\":",     ",\"entity_id\":", ",\"outcome\":", ",\"reason\":"};
constexpr std::string_view kEvidencePrefix = ",\"evidence\":", kActionsPrefix = ",\"actions\":";

// Appends the members of the canonical body without the surrounding braces, from stored text
// (Verify, export).
template <class Out>
void AppendBodyMembers(Out& out, const std::array<std::string_view, 10>& strings,
                       std::string_view evidence, std::string_view actions) {
  for (std::size_t i = 0; i < kBodyStringKeys.size(); ++i) {
    out.append(kBodyKeyPrefixes[i]);
    AppendJsonString(out, strings[i]);
  }
  out.append(kEvidencePrefix);
  out.append(evidence);
  out.append(kActionsPrefix);
  out.append(actions);
}

std::string DumpJson(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Appends j as nlohmann's j.dump() would (compact, ensure_ascii=false), faster. Returns false
// (leaving `out` partly written) for what dump() would refuse or render oddly: strings that
// are not valid UTF-8, binary values, discarded values.
template <class Out>
bool AppendCanonicalJson(Out& out, const nlohmann::ordered_json& j) {
  using V = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case V::null:
      out.append("null", 4);
      return true;
    case V::boolean:
      if (*j.get_ptr<const nlohmann::ordered_json::boolean_t*>()) {
        out.append("true", 4);
      } else {
        out.append("false", 5);
      }
      return true;
    case V::number_integer: {
      char b[24];
      auto r = std::to_chars(b, b + sizeof b,
                             *j.get_ptr<const nlohmann::ordered_json::number_integer_t*>());
      out.append(b, static_cast<std::size_t>(r.ptr - b));
      return true;
    }
    case V::number_unsigned: {
      char b[24];
      auto r = std::to_chars(b, b + sizeof b,
                             *j.get_ptr<const nlohmann::ordered_json::number_unsigned_t*>());
      out.append(b, static_cast<std::size_t>(r.ptr - b));
      return true;
    }
    case V::number_float: {
      const double x = *j.get_ptr<const nlohmann::ordered_json::number_float_t*>();
      if (!std::isfinite(x)) {
        out.append("null", 4);
      } else {
        char b[64];
        char* e = nlohmann::detail::to_chars(b, b + sizeof b, x);  // what dump() uses
        out.append(b, static_cast<std::size_t>(e - b));
      }
      return true;
    }
    case V::string:
      return AppendJsonStringChecked(out, *j.get_ptr<const nlohmann::ordered_json::string_t*>());
    case V::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : *j.get_ptr<const nlohmann::ordered_json::array_t*>()) {
        if (!first) out.push_back(',');
        first = false;
        if (!AppendCanonicalJson(out, e)) return false;
      }
      out.push_back(']');
      return true;
    }
    case V::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, value] : *j.get_ptr<const nlohmann::ordered_json::object_t*>()) {
        if (!first) out.push_back(',');
        first = false;
        if (!AppendJsonStringChecked(out, key)) return false;
        out.push_back(':');
        if (!AppendCanonicalJson(out, value)) return false;
      }
      out.push_back('}');
      return true;
    }
    default:
      return false;
  }
}

// Where the evidence and actions text lie in a rendered body.
struct BodySpans {
  std::size_t evidence_begin = 0, evidence_end = 0, actions_begin = 0, actions_end = 0;
};

// Appends the canonical body {"event_time":...,"actions":...} of a decision whose time texts
// are et and pt. Returns false (leaving `out` partly written) if a string, or a string in
// evidence or actions, is not valid UTF-8: RepairDecision, then render again.
template <class Out>
bool AppendBody(Out& out, std::string_view et, std::string_view pt, const Decision& d,
                BodySpans& spans) {
  const std::array<std::string_view, 10> strings = {
      et,          pt,        d.kind,  d.rule, d.version, d.trigger, d.entity_type,
      d.entity_id, d.outcome, d.reason};
  out.push_back('{');
  for (std::size_t i = 0; i < strings.size(); ++i) {
    out.append(kBodyKeyPrefixes[i]);
    if (!AppendJsonStringChecked(out, strings[i])) return false;
  }
  out.append(kEvidencePrefix);
  spans.evidence_begin = out.size();
  if (!AppendCanonicalJson(out, d.evidence)) return false;
  spans.evidence_end = out.size();
  out.append(kActionsPrefix);
  spans.actions_begin = out.size();
  if (!AppendCanonicalJson(out, d.actions)) return false;
  spans.actions_end = out.size();
  out.push_back('}');
  return true;
}

// Makes j hold what its text says after invalid UTF-8 is replaced (U+FFFD for bad bytes), or
// null if dump() cannot represent it at all.
void RepairJson(nlohmann::ordered_json& j) {
  std::string probe;
  if (AppendCanonicalJson(probe, j)) return;
  j = nlohmann::ordered_json::parse(DumpJson(j), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) j = nullptr;
}

// Makes every string of d valid UTF-8 (each bad sequence becomes U+FFFD), so that what is
// stored, hashed and returned agree.
void RepairDecision(Decision& d) {
  for (std::string* f : {&d.kind, &d.rule, &d.version, &d.trigger, &d.entity_type, &d.entity_id,
                         &d.outcome, &d.reason}) {
    if (!ValidUtf8(*f)) *f = RepairUtf8(*f);
  }
  RepairJson(d.evidence);
  RepairJson(d.actions);
}

// Column order of every SELECT of whole records.
constexpr const char* kColumns =
    "id, event_time, processing_time, kind, rule, version, \"trigger\", entity_type, entity_id, "
    "outcome, reason, "
    "evidence, actions, prev_hash, hash, event_ms, processing_ms";
enum Col {
  kId = 0,
  kEventTime,
  kProcessingTime,
  kKind,
  kRule,
  kVersion,
  kTrigger,
  kEntityType,
  kEntityId,
  kOutcome,
  kReason,
  kEvidence,
  kActions,
  kPrevHash,
  kHash,
  kEventMs,
  kProcessingMs
};

std::array<std::string_view, 10> RowStrings(sqlite3_stmt* s) {
  std::array<std::string_view, 10> out;
  for (int i = 0; i < 10; ++i) out[i] = ColumnText(s, kEventTime + i);
  return out;
}

// The canonical body of the current row, rebuilt from the stored text.
void RowBody(sqlite3_stmt* s, std::string& out) {
  out.push_back('{');
  AppendBodyMembers(out, RowStrings(s), ColumnText(s, kEvidence), ColumnText(s, kActions));
  out.push_back('}');
}

Result<Decision> RowDecision(sqlite3_stmt* s) {
  Decision d;
  d.id = sqlite3_column_int64(s, kId);
  d.event_time = sqlite3_column_int64(s, kEventMs);
  d.processing_time = sqlite3_column_int64(s, kProcessingMs);
  d.kind = ColumnText(s, kKind);
  d.rule = ColumnText(s, kRule);
  d.version = ColumnText(s, kVersion);
  d.trigger = ColumnText(s, kTrigger);
  d.entity_type = ColumnText(s, kEntityType);
  d.entity_id = ColumnText(s, kEntityId);
  d.outcome = ColumnText(s, kOutcome);
  d.reason = ColumnText(s, kReason);
  auto ev = ColumnText(s, kEvidence);
  d.evidence =
      nlohmann::ordered_json::parse(ev.begin(), ev.end(), nullptr, /*allow_exceptions=*/false);
  if (d.evidence.is_discarded()) {
    return Status::Internal("decision log: record " + std::to_string(d.id) +
                            ": evidence is not valid JSON");
  }
  auto ac = ColumnText(s, kActions);
  d.actions =
      nlohmann::ordered_json::parse(ac.begin(), ac.end(), nullptr, /*allow_exceptions=*/false);
  if (d.actions.is_discarded()) {
    return Status::Internal("decision log: record " + std::to_string(d.id) +
                            ": actions are not valid JSON");
  }
  d.prev_hash = ColumnText(s, kPrevHash);
  d.hash = ColumnText(s, kHash);
  return d;
}

// The table has no per-row secondary index. An index entry costs SQLite about a microsecond
// per append, and the entity index, whose entries land on random pages, several (it dirtied
// about one page per record per transaction); schema 1's four indexes capped batched appends
// near 100,000 per CPU-second. Instead the log keeps a *batched* index (schema version 2,
// docs/decision-log.md "Indexes"):
//
//   decisions_blocks: one row per block of up to kBlockRecords consecutive records: its id
//     range and the min/max of processing_ms and event_ms (a zone map for time ranges).
//   decisions_index: per block, per filterable field, per hash bucket of the value, one row
//     listing the block's records whose value falls in that bucket, each as (2-byte offset
//     from the block's first id, 4-byte check = high half of the value's hash).
//
// A block is written by the appender when kBlockRecords records are pending, in the same
// transaction as an append: ~300 small rows per 4,096 records instead of 16,384 index
// entries. Records after the last block (at most a few thousand) are found by scanning them.
// A query is driven by one field's postings (or by the zone map for a time range alone) and
// checks every filter on the record itself, so hash collisions only cost a wasted lookup.
// The index table's columns and key, shared by the schema and the re-keying below.
#define GAVEL_INDEX_TABLE_BODY                                                                    \
  "(\n  field    INTEGER NOT NULL,\n  bucket   INTEGER NOT NULL,\n  last_id  INTEGER NOT NULL,\n" \
  "  first_id INTEGER NOT NULL,\n  ids      BLOB NOT NULL,\n  PRIMARY KEY (last_id, field, bucket)\n) WITHOUT ROWID"
constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS decisions (
  id              INTEGER PRIMARY KEY,
  event_time      TEXT NOT NULL,
  processing_time TEXT NOT NULL,
  kind            TEXT NOT NULL,
  rule            TEXT NOT NULL,
  version         TEXT NOT NULL,
  "trigger"       TEXT NOT NULL,
  entity_type     TEXT NOT NULL,
  entity_id       TEXT NOT NULL,
  outcome         TEXT NOT NULL,
  reason          TEXT NOT NULL,
  evidence        TEXT NOT NULL,
  actions         TEXT NOT NULL,
  prev_hash       TEXT NOT NULL,
  hash            TEXT NOT NULL,
  event_ms        INTEGER NOT NULL,
  processing_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions_blocks (
  last_id           INTEGER PRIMARY KEY,
  first_id          INTEGER NOT NULL,
  min_processing_ms INTEGER NOT NULL,
  max_processing_ms INTEGER NOT NULL,
  min_event_ms      INTEGER NOT NULL,
  max_event_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions_index )sql" GAVEL_INDEX_TABLE_BODY R"sql(;
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
  BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
  BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
)sql";

// decisions_index is keyed block first, (last_id, field, bucket), so that a block's ~300 rows
// are appended at the end of the table. The first schema-2 databases keyed it (field, bucket,
// last_id): every block then added a row at the end of each of its ~300 (field, bucket)
// groups, scattered over the whole index, and dirtied about one index page per group — ~300
// pages (9 MiB of WAL with 32 KiB pages) per 4,096 records once the log holds a few million
// records, more than the records themselves. Same columns, same rows, same meaning: a file
// with the old key is converted in place when attached (a copy of the index rows, ~0.2 s per
// million records, once), and older gavel builds read and write the converted file as before.
constexpr const char* kIndexKeyedByFieldSql =
    "SELECT count(*) FROM pragma_table_info('decisions_index') WHERE pk = 1 AND name = 'field'";
constexpr const char* kRekeyIndexSql = R"sql(
CREATE TABLE decisions_index_rekeyed )sql" GAVEL_INDEX_TABLE_BODY R"sql(;
INSERT INTO decisions_index_rekeyed (field, bucket, last_id, first_id, ids)
  SELECT field, bucket, last_id, first_id, ids FROM decisions_index ORDER BY last_id, field, bucket;
DROP TABLE decisions_index;
ALTER TABLE decisions_index_rekeyed RENAME TO decisions_index;
)sql";

// Version 1 had four per-row indexes; opening a version-1 database drops them and builds the
// batched index from the records (see Init).
#undef GAVEL_INDEX_TABLE_BODY

constexpr const char* kDropV1IndexesSql = R"sql(
DROP INDEX IF EXISTS decisions_by_rule;
DROP INDEX IF EXISTS decisions_by_entity;
DROP INDEX IF EXISTS decisions_by_outcome;
DROP INDEX IF EXISTS decisions_by_processing_time;
)sql";

// Ids are explicit (the chain head's id + 1): a second writer that appends between the head
// check and the insert makes the insert fail on the primary key, and the append is retried
// on top of its record instead of forking the chain.
//
// (Folding the head check into the insert, INSERT ... SELECT ... WHERE (SELECT hash FROM
// decisions WHERE id = ?1 - 1) = ?14, was measured and is 3x slower: SQLite materialises a
// SELECT that reads the table it inserts into. A BEFORE INSERT trigger doing the same check
// costs 2x. The separate indexed read of the head costs ~0.4 us, and is skipped within a
// batch on a connection the log owns: see AppendImpl.)
constexpr const char* kInsertSql = R"sql(
INSERT INTO decisions (id, event_time, processing_time, kind, rule, version, "trigger", entity_type, entity_id,
                       outcome, reason, evidence, actions, prev_hash, hash, event_ms, processing_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
)sql";

// The batched index. Field numbers are stored: do not renumber.
enum IndexField {
  kFieldKind = 0,
  kFieldRule,
  kFieldEntityType,
  kFieldEntityId,
  kFieldOutcome,
  kFieldReason,
  kIndexFields
};
constexpr std::int64_t kBlockRecords = 4096;  // records per block (offsets fit 2 bytes)
constexpr std::uint64_t kBuckets = 256;       // hash buckets per field and block
constexpr std::size_t kEntryBytes = 6;        // 2-byte offset + 4-byte check, little-endian

// FNV-1a, 64 bits, of the value's UTF-8 bytes. Stored (bucket = low 8 bits, check = high 32
// bits), so it must never change.
std::uint64_t IndexHash(std::string_view v) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : v) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

constexpr const char* kPendingSql =
    "SELECT id, kind, rule, entity_type, entity_id, outcome, reason, processing_ms, event_ms "
    "FROM decisions WHERE id > ?1 ORDER BY id LIMIT ?2";

}  // namespace

// ---------------------------------------------------------------------------------------

std::string CanonicalBody(const Decision& d) {
  // The same renderer as the append path, so that this is byte for byte what Append hashes.
  const std::string et = FormatTime(d.event_time), pt = FormatTime(d.processing_time);
  std::string out;
  BodySpans spans;
  if (AppendBody(out, et, pt, d, spans)) return out;
  Decision repaired = d;
  RepairDecision(repaired);
  out.clear();
  AppendBody(out, et, pt, repaired, spans);
  return out;
}

std::string ChainHash(std::string_view prev_hash, std::string_view body) {
  std::string msg;
  msg.reserve(prev_hash.size() + 1 + body.size());
  msg.append(prev_hash);
  msg.push_back('\n');
  msg.append(body);
  return HashHex(msg);
}

const char* ProblemName(VerifyReport::Problem p) {
  switch (p) {
    case VerifyReport::Problem::kNone:
      return "ok";
    case VerifyReport::Problem::kGap:
      return "gap";
    case VerifyReport::Problem::kLink:
      return "link";
    case VerifyReport::Problem::kBody:
      return "body";
    case VerifyReport::Problem::kTimeIndex:
      return "time_index";
    case VerifyReport::Problem::kAnchor:
      return "anchor";
  }
  return "?";
}

DecisionLog::DecisionLog(sqlite3* db) : db_(db) {}

// ---------------------------------------------------------------------------------------
// Checkpoints off the writer's thread (connections from Open only).
//
// In WAL mode every page is written twice: to the WAL at commit, and to the database file by
// a checkpoint, which also reads the WAL back and fsyncs both files. With SQLite's automatic
// checkpoint that work (~0.3-0.4 us of CPU per record, and the fsyncs' wait) falls on the
// writer: the commit that crosses the threshold copies the whole WAL. Here a thread with its
// own connection runs PASSIVE checkpoints (which never wait for, nor block, the writer) each
// time kCheckpointEvery more frames have been committed, and the writer, once the WAL holds
// kWalLimit frames, runs one PASSIVE checkpoint itself from the WAL hook: by then the thread
// has copied all but the last transaction or two, and a WAL checkpointed to its end lets the
// next write transaction start it over, so the file stays near kWalLimit pages as before.
// (Checkpoints on a second connection alone never catch up with a busy writer: the WAL is
// only started over when it is checkpointed to its end as a transaction begins.) Durability
// is unchanged: a checkpoint copies committed pages only. The thread is started by the first
// commit that finds kCheckpointEvery frames in the WAL, so a log that is only read (a query
// tool, the daemon's readers) never has one; if it cannot be started, the writer's own
// checkpoint at kWalLimit is SQLite's automatic checkpoint as before.
constexpr int kCheckpointEvery = 256;  // frames (8 MiB with 32 KiB pages)
constexpr int kWalLimit = 4096;        // frames; what wal_autocheckpoint was

class DecisionLog::Checkpointer {
 public:
  // Null if the thread cannot be had (SQLite built without threads, no thread, no connection).
  static std::unique_ptr<Checkpointer> Start(const std::string& path) {
    if (sqlite3_threadsafe() == 0) return nullptr;
    sqlite::OpenOptions options;  // WAL, synchronous=NORMAL like the writer's connection
    options.cache_size_kib = 1024;
    auto db = sqlite::OpenDatabase(path, options);
    if (!db.ok()) return nullptr;
    std::unique_ptr<Checkpointer> c(new Checkpointer(std::move(db).value()));
    try {
      c->thread_ = std::thread([p = c.get()] { p->Run(); });
    } catch (const std::system_error&) {
      return nullptr;
    }
    return c;
  }
  ~Checkpointer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Called by the writer after each commit with the WAL's size in frames.
  void Committed(int frames) {
    if (frames < last_kick_) last_kick_ = 0;  // the WAL was started over
    if (frames - last_kick_ < kCheckpointEvery) return;
    last_kick_ = frames;
    {
      std::lock_guard<std::mutex> lock(mu_);
      kicked_ = true;
    }
    cv_.notify_one();
  }

 private:
  explicit Checkpointer(sqlite::DbPtr db) : db_(std::move(db)) {}
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return kicked_ || stop_; });
      if (stop_) return;
      kicked_ = false;
      lock.unlock();
      // Best effort: a failure (a reader holding old frames, an I/O error) leaves the work to
      // the writer's own checkpoint and to the next kick.
      sqlite3_wal_checkpoint_v2(db_.get(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      lock.lock();
    }
  }

  sqlite::DbPtr db_;   // used by the thread only
  int last_kick_ = 0;  // the writer's thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false, stop_ = false;  // guarded by mu_
  std::thread thread_;
};

// The WAL hook of a connection from Open, called by the writer after each commit with the
// WAL's size in frames. It replaces SQLite's automatic checkpoint.
int DecisionLog::OnWalCommit(void* self, sqlite3* db, const char* name, int frames) {
  auto* log = static_cast<DecisionLog*>(self);
  if (frames >= kWalLimit) {
    // The rest of the WAL (the thread has done most of it); SQLITE_BUSY if the thread is at
    // it right now, and then the next commit tries again.
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    return SQLITE_OK;
  }
  if (frames < kCheckpointEvery) return SQLITE_OK;
  if (!log->checkpointer_ && !log->no_checkpointer_) {
    const char* file = sqlite3_db_filename(db, name);
    if (file != nullptr && *file != '\0') log->checkpointer_ = Checkpointer::Start(file);
    log->no_checkpointer_ = log->checkpointer_ == nullptr;
  }
  if (log->checkpointer_) log->checkpointer_->Committed(frames);
  return SQLITE_OK;
}

// Members are destroyed in reverse order: the statements before the owned connection.
DecisionLog::~DecisionLog() {
  if (wal_hook_) sqlite3_wal_hook(db_, nullptr, nullptr);
  checkpointer_.reset();  // stops and joins the thread, closes its connection
  if (watching_) sqlite3_trace_v2(db_, 0, nullptr, nullptr);
}

// The statement trace of a connection the log owns (Open): counts every statement run on it
// other than the log's own INSERT, and notes that the INSERT itself was seen.
int DecisionLog::OnStatement(unsigned type, void* self, void* stmt, void*) {
  auto* log = static_cast<DecisionLog*>(self);
  if (type == SQLITE_TRACE_STMT) {
    if (stmt == log->insert_.get()) {
      log->insert_seen_ = true;
    } else {
      ++log->other_statements_;
    }
  }
  return 0;
}

Result<std::unique_ptr<DecisionLog>> DecisionLog::Attach(sqlite3* db) {
  if (db == nullptr) return Status::InvalidArgument("decision log: no database connection");
  std::unique_ptr<DecisionLog> log(new DecisionLog(db));
  Status s = log->Init();
  if (!s.ok()) return s;
  return log;
}

Result<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path) {
  // WAL is switched on below, after the page size: a new database's page size can only be
  // chosen before its first page is written, and switching to WAL writes it.
  sqlite::OpenOptions options;
  options.wal = false;
  auto db = sqlite::OpenDatabase(path, options);
  if (!db.ok()) return Status(db.status());
  sqlite3* raw = db->get();
  const std::string what = "open " + path;
  // 32 KiB pages: a ~750-byte record and its share of the batched index cost fewer page
  // headers, B-tree splits and WAL frames than with 4 KiB pages (+15-25% rows/s in SQLite
  // alone, a few percent with gavel's own work on top). Ignored for an existing database.
  Status s = sqlite::Exec(raw, "PRAGMA page_size=32768", what);
  if (!s.ok()) return s;
  {
    auto st = sqlite::Prepare(raw, "PRAGMA journal_mode=WAL", what);
    if (!st.ok()) return st.status();
    int rc = sqlite3_step(st->get());
    if (rc != SQLITE_ROW) return sqlite::Error(raw, rc, what + ": journal_mode=WAL");
    std::string mode(ColumnText(st->get(), 0));
    if (mode != "wal")
      return Status::IoError(what + ": the database cannot use WAL (journal mode is " + mode + ")");
  }
  // Reads through a memory map of the first GiB: a query reads scattered records by id, and
  // without the map each page-cache miss copies a whole 32 KiB page out of the kernel for
  // one ~750-byte record (paging through a common rule: ~2.1 s -> ~0.8 s per 100,000 rows).
  // Writes still go through the WAL.
  s = sqlite::Exec(raw, "PRAGMA mmap_size=1073741824", what);
  if (!s.ok()) return s;
  std::unique_ptr<DecisionLog> log(new DecisionLog(raw));
  log->owned_ = std::move(db).value();
  s = log->Init();
  if (!s.ok()) return s;
  // The connection is the log's own, so it can watch every statement run on it and skip the
  // head check while nothing but its own appends has run (see AppendImpl).
  if (sqlite3_trace_v2(raw, SQLITE_TRACE_STMT, &DecisionLog::OnStatement, log.get()) == SQLITE_OK)
    log->watching_ = true;
  // Checkpoints every 4,096 pages (128 MiB of 32 KiB pages) instead of SQLite's 1,000, as
  // each ends with an fsync that the writer would wait for, and mostly on a thread of their
  // own (see "Checkpoints off the writer's thread"). The WAL grows to about 4,096 pages and
  // is then reused.
  sqlite3_wal_hook(raw, &DecisionLog::OnWalCommit, log.get());
  log->wal_hook_ = true;
  return log;
}

Status DecisionLog::Init() {
  const char* what = "decision log: create schema";
  sqlite::Savepoint sp(db_, "gavel_decision_log_init");
  Status s = sp.Begin();
  if (!s.ok()) return s;
  s = sqlite::Exec(db_, "CREATE TABLE IF NOT EXISTS decisions_schema (version INTEGER NOT NULL)",
                   what);
  if (!s.ok()) return s;
  std::int64_t version = kSchemaVersion;
  {
    auto st = sqlite::Prepare(db_, "SELECT max(version) FROM decisions_schema", what);
    if (!st.ok()) return st.status();
    int rc = sqlite3_step(st->get());
    if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, what);
    if (sqlite3_column_type(st->get(), 0) == SQLITE_NULL) {
      st->reset();
      s = sqlite::Exec(
          db_,
          ("INSERT INTO decisions_schema (version) VALUES (" + std::to_string(kSchemaVersion) + ")")
              .c_str(),
          what);
      if (!s.ok()) return s;
    } else {
      version = sqlite3_column_int64(st->get(), 0);
      if (version > kSchemaVersion) {
        return Status::Unavailable("decision log: the database has decision log schema version " +
                                   std::to_string(version) +
                                   ", newer than this gavel understands (" +
                                   std::to_string(kSchemaVersion) + ")");
      }
    }
  }
  if (version < kSchemaVersion) {
    // Version 1 -> 2: the records are unchanged; the four per-row indexes give way to the
    // batched index, built below from the records.
    s = sqlite::Exec(db_, kDropV1IndexesSql, "decision log: upgrade schema 1 to 2");
    if (!s.ok()) return s;
    s = sqlite::Exec(
        db_, ("UPDATE decisions_schema SET version = " + std::to_string(kSchemaVersion)).c_str(),
        "decision log: upgrade schema 1 to 2");
    if (!s.ok()) return s;
  }
  s = sqlite::Exec(db_, kSchemaSql, what);
  if (!s.ok()) return s;
  {
    auto st = sqlite::Prepare(db_, kIndexKeyedByFieldSql, what);
    if (!st.ok()) return st.status();
    int rc = sqlite3_step(st->get());
    if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, what);
    const bool old_key = sqlite3_column_int64(st->get(), 0) != 0;
    st->reset();
    if (old_key) {
      s = sqlite::Exec(db_, kRekeyIndexSql, "decision log: re-key the index");
      if (!s.ok()) return s;
    }
  }

  struct {
    StmtPtr* stmt;
    std::string sql;
  } statements[] = {
      {&insert_, kInsertSql},
      {&head_, "SELECT id, hash FROM decisions ORDER BY id DESC LIMIT 1"},
      {&get_, std::string("SELECT ") + kColumns + " FROM decisions WHERE id = ?1"},
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&upto_, "SELECT max(last_id) FROM decisions_blocks"},
      {&hash_of_, "SELECT hash FROM decisions WHERE id = ?1"},
      {&pending_rows_, kPendingSql},
      {&block_insert_,
       "INSERT INTO decisions_blocks (last_id, first_id, min_processing_ms, max_processing_ms, "
       "min_event_ms, max_event_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&index_insert_,
       "INSERT INTO decisions_index (field, bucket, last_id, first_id, ids) "
       "VALUES (?1, ?2, ?3, ?4, ?5)"},
  };
  for (auto& st : statements) {
    auto prepared = sqlite::Prepare(db_, st.sql, "decision log: prepare");
    if (!prepared.ok()) return prepared.status();
    *st.stmt = std::move(prepared).value();
  }
  auto h = Head();
  if (!h.ok()) return h.status();
  head_cache_ = std::move(h).value();
  if (version < kSchemaVersion) {
    // Index the existing records, a bounded number at a time.
    for (;;) {
      s = ReloadPending(64 * kBlockRecords);
      if (!s.ok()) return s;
      const std::size_t read = pending_.size();
      s = WriteBlocks();
      if (!s.ok()) return s;
      if (read < static_cast<std::size_t>(64 * kBlockRecords)) break;
    }
  }
  s = ReloadPending(-1);
  if (!s.ok()) return s;
  return sp.Release();
}

Status DecisionLog::ReloadHead() {
  const ChainHead old = head_cache_;
  auto h = Head();
  if (!h.ok()) return h.status();
  head_cache_ = std::move(h).value();
  auto upto = IndexedUpTo();
  if (!upto.ok()) return upto.status();
  // Usually another writer appended on top of this log's head: if the old head is still
  // there with its hash, every record up to it is unchanged (that is the chain), and only
  // the newer records join the pending ones.
  if (upto.value() == indexed_upto_ && indexed_upto_ >= 0 && old.id <= head_cache_.id &&
      (pending_.empty() ? old.id == indexed_upto_ : pending_.back().id == old.id)) {
    bool same = old.id == 0;
    if (!same) {
      sqlite3_stmt* s = hash_of_.get();
      ResetGuard guard(s);
      sqlite3_bind_int64(s, 1, old.id);
      int rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) {
        same = ColumnText(s, 0) == old.hash;
      } else if (rc != SQLITE_DONE) {
        return sqlite::Error(db_, rc, "decision log: read head");
      }
    }
    if (same) return ReadPending(old.id, -1);
  }
  return ReloadPending(-1);
}

Result<std::int64_t> DecisionLog::IndexedUpTo() const {
  sqlite3_stmt* s = upto_.get();
  ResetGuard guard(s);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "decision log: read index");
  return sqlite3_column_int64(s, 0);  // 0 when there is no block (NULL)
}

Status DecisionLog::ReloadPending(std::int64_t limit) {
  pending_.clear();
  auto upto = IndexedUpTo();
  if (!upto.ok()) return upto.status();
  indexed_upto_ = upto.value();
  return ReadPending(indexed_upto_, limit);
}

Status DecisionLog::ReadPending(std::int64_t after, std::int64_t limit) {
  sqlite3_stmt* s = pending_rows_.get();
  ResetGuard guard(s);
  sqlite3_bind_int64(s, 1, after);
  sqlite3_bind_int64(s, 2, limit);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    PendingEntry e;
    e.id = sqlite3_column_int64(s, 0);
    for (int f = 0; f < kIndexFields; ++f) e.keys[f] = IndexHash(ColumnText(s, 1 + f));
    e.processing_ms = sqlite3_column_int64(s, 7);
    e.event_ms = sqlite3_column_int64(s, 8);
    pending_.push_back(e);
  }
  if (rc != SQLITE_DONE) return sqlite::Error(db_, rc, "decision log: read unindexed records");
  return Status::Ok();
}

Status DecisionLog::FlushIndex() {
  // The pending records must be what the database holds after its last block: a caller's
  // rollback (or ROLLBACK TO a savepoint) may have removed records or an earlier block, and
  // another log on the database may have appended or written blocks. Checked once per block.
  auto upto = IndexedUpTo();
  if (!upto.ok()) return upto.status();
  auto head = Head();
  if (!head.ok()) return head.status();
  if (upto.value() != indexed_upto_ || head->id != head_cache_.id ||
      head->hash != head_cache_.hash) {
    head_cache_ = std::move(head).value();
    Status s = ReloadPending(-1);
    if (!s.ok()) return s;
  }
  return WriteBlocks();
}

// Writes the pending records as blocks of kBlockRecords (fewer only where ids jump by more
// than 65,536, so that offsets fit two bytes); the remainder stays pending. Blocks therefore
// end at multiples of kBlockRecords in a log without gaps.
Status DecisionLog::WriteBlocks() {
  std::size_t start = 0;
  // Entries of one field, grouped by bucket (counting sort, stable: ids stay ascending).
  std::vector<std::uint32_t> order;
  std::array<std::uint32_t, kBuckets + 1> first{};
  while (start < pending_.size()) {
    const std::int64_t first_id = pending_[start].id;
    std::size_t end = start;
    while (end < pending_.size() && end - start < static_cast<std::size_t>(kBlockRecords) &&
           pending_[end].id - first_id < 65536)
      ++end;
    if (end == pending_.size() && end - start < static_cast<std::size_t>(kBlockRecords)) break;
    const std::int64_t last_id = pending_[end - 1].id;
    TimeMs min_p = pending_[start].processing_ms, max_p = min_p;
    TimeMs min_e = pending_[start].event_ms, max_e = min_e;
    for (std::size_t i = start; i < end; ++i) {
      min_p = std::min(min_p, pending_[i].processing_ms);
      max_p = std::max(max_p, pending_[i].processing_ms);
      min_e = std::min(min_e, pending_[i].event_ms);
      max_e = std::max(max_e, pending_[i].event_ms);
    }
    {
      sqlite3_stmt* s = block_insert_.get();
      ResetGuard guard(s);
      sqlite3_bind_int64(s, 1, last_id);
      sqlite3_bind_int64(s, 2, first_id);
      sqlite3_bind_int64(s, 3, min_p);
      sqlite3_bind_int64(s, 4, max_p);
      sqlite3_bind_int64(s, 5, min_e);
      sqlite3_bind_int64(s, 6, max_e);
      int rc = sqlite3_step(s);
      if (rc != SQLITE_DONE) {
        indexed_upto_ = -1;  // unknown now: the next flush re-reads the database
        return sqlite::Error(db_, rc, "decision log: write index block");
      }
    }
    order.resize(end - start);
    for (int f = 0; f < kIndexFields; ++f) {
      first.fill(0);
      for (std::size_t i = start; i < end; ++i) ++first[(pending_[i].keys[f] % kBuckets) + 1];
      for (std::size_t b = 1; b <= kBuckets; ++b) first[b] += first[b - 1];
      std::array<std::uint32_t, kBuckets> next;
      std::copy(first.begin(), first.end() - 1, next.begin());
      for (std::size_t i = start; i < end; ++i)
        order[next[pending_[i].keys[f] % kBuckets]++] = static_cast<std::uint32_t>(i);
      for (std::size_t b = 0; b < kBuckets; ++b) {
        if (first[b] == first[b + 1]) continue;
        blob_buf_.clear();
        for (std::uint32_t k = first[b]; k < first[b + 1]; ++k) {
          const PendingEntry& e = pending_[order[k]];
          const auto offset = static_cast<std::uint32_t>(e.id - first_id);
          const auto check = static_cast<std::uint32_t>(e.keys[f] >> 32);
          const char entry[kEntryBytes] = {
              static_cast<char>(offset & 0xff),        static_cast<char>(offset >> 8),
              static_cast<char>(check & 0xff),         static_cast<char>((check >> 8) & 0xff),
              static_cast<char>((check >> 16) & 0xff), static_cast<char>(check >> 24)};
          blob_buf_.append(entry, kEntryBytes);
        }
        sqlite3_stmt* s = index_insert_.get();
        ResetGuard guard(s);
        sqlite3_bind_int(s, 1, f);
        sqlite3_bind_int64(s, 2, static_cast<std::int64_t>(b));
        sqlite3_bind_int64(s, 3, last_id);
        sqlite3_bind_int64(s, 4, first_id);
        sqlite3_bind_blob(s, 5, blob_buf_.data(), static_cast<int>(blob_buf_.size()),
                          SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE) {
          indexed_upto_ = -1;  // unknown now: the next flush re-reads the database
          return sqlite::Error(db_, rc, "decision log: write index");
        }
      }
    }
    indexed_upto_ = last_id;
    start = end;
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(start));
  return Status::Ok();
}

Result<ChainHead> DecisionLog::Head() const {
  sqlite3_stmt* s = head_.get();
  ResetGuard guard(s);
  int rc = sqlite3_step(s);
  ChainHead head;
  if (rc == SQLITE_ROW) {
    head.id = sqlite3_column_int64(s, 0);
    head.hash = ColumnText(s, 1);
  } else if (rc != SQLITE_DONE) {
    return sqlite::Error(db_, rc, "decision log: read head");
  }
  return head;
}

bool DecisionLog::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

Status DecisionLog::Begin() {
  if (InTransaction())
    return Status::InvalidArgument("decision log: Begin: a transaction is already open");
  return sqlite::Exec(db_, "BEGIN IMMEDIATE", "decision log: begin");
}

Status DecisionLog::Commit() {
  if (!InTransaction())
    return Status::InvalidArgument("decision log: Commit: no transaction is open");
  return sqlite::Exec(db_, "COMMIT", "decision log: commit");
}

Status DecisionLog::Rollback() {
  if (!InTransaction())
    return Status::InvalidArgument("decision log: Rollback: no transaction is open");
  Status s = sqlite::Exec(db_, "ROLLBACK", "decision log: rollback");
  if (!s.ok()) return s;
  return ReloadHead();
}

bool DecisionLog::Append(Decision& d) {
  last_error_ = InTransaction() ? AppendImpl(d) : AppendAlone(d);
  return last_error_.ok();
}

Status DecisionLog::AppendInTransaction(Decision& d) {
  if (!InTransaction()) {
    return Status::InvalidArgument(
        "decision log: AppendInTransaction: no transaction is open on the connection");
  }
  return AppendImpl(d);
}

namespace {
Status StepDone(sqlite3* db, sqlite3_stmt* s, std::string_view what) {
  ResetGuard guard(s);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return sqlite::Error(db, rc, what);
  return Status::Ok();
}
}  // namespace

Status DecisionLog::AppendAlone(Decision& d) {
  Status s = StepDone(db_, begin_.get(), "decision log: append: begin");
  if (!s.ok()) return s;
  s = AppendImpl(d);
  if (s.ok()) s = StepDone(db_, commit_.get(), "decision log: append: commit");
  if (!s.ok() && InTransaction()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    ReloadHead();  // best effort; the next append checks the head again
  }
  return s;
}

namespace {
// FormatTime without snprintf (it is on the append path for every event-triggered record):
// the same text for years 1000..9999, FormatTime itself outside them. Checked against
// FormatTime in the tests.
void FormatTimeFast(TimeMs t, std::string& out) {
  constexpr TimeMs kMin = -30610224000000;  // 1000-01-01T00:00:00Z
  constexpr TimeMs kMax = 253402300799999;  // 9999-12-31T23:59:59.999Z
  if (t < kMin || t > kMax) {
    out = FormatTime(t);
    return;
  }
  std::int64_t secs = t >= 0 ? t / 1000 : (t - 999) / 1000;
  const int ms = static_cast<int>(t - secs * 1000);
  std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  const int rem = static_cast<int>(secs - days * 86400);
  // Howard Hinnant's civil_from_days.
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char b[24] = {};
  auto put2 = [&](int pos, unsigned v) {
    b[pos] = static_cast<char>('0' + v / 10);
    b[pos + 1] = static_cast<char>('0' + v % 10);
  };
  const auto yy = static_cast<unsigned>(y);
  put2(0, yy / 100);
  put2(2, yy % 100);
  b[4] = '-';
  put2(5, m);
  b[7] = '-';
  put2(8, d);
  b[10] = 'T';
  put2(11, static_cast<unsigned>(rem / 3600));
  b[13] = ':';
  put2(14, static_cast<unsigned>(rem / 60 % 60));
  b[16] = ':';
  put2(17, static_cast<unsigned>(rem % 60));
  std::size_t n = 19;
  if (ms != 0) {
    b[19] = '.';
    b[20] = static_cast<char>('0' + ms / 100);
    b[21] = static_cast<char>('0' + ms / 10 % 10);
    b[22] = static_cast<char>('0' + ms % 10);
    n = 23;
  }
  out.assign(b, n);
  out.push_back('Z');
}
}  // namespace

const std::string& DecisionLog::FormatCached(TimeMs t, TimeCache& cache) {
  if (!cache.valid || cache.t != t) {
    FormatTimeFast(t, cache.text);
    cache.t = t;
    cache.valid = true;
  }
  return cache.text;
}

namespace {
// Resets a statement on scope exit without clearing its bindings: for the statements of the
// append path, which bind every parameter before each step (clearing them costs a call per
// parameter).
class ResetOnly {
 public:
  explicit ResetOnly(sqlite3_stmt* s) : s_(s) {}
  ~ResetOnly() { sqlite3_reset(s_); }
  ResetOnly(const ResetOnly&) = delete;
  ResetOnly& operator=(const ResetOnly&) = delete;

 private:
  sqlite3_stmt* s_;
};
}  // namespace

Status DecisionLog::AppendImpl(Decision& d) {
  const std::string& ets = FormatCached(d.event_time, event_time_cache_);
  const std::string& pts = FormatCached(d.processing_time, processing_time_cache_);

  // buf_ = prev_hash + "\n" + canonical body. The body does not depend on prev_hash, so it is
  // rendered once, straight into buf_, and the evidence and actions columns are bound from
  // it; the 64 hex digits in front are filled in once the head is known.
  constexpr std::size_t kPrefix = 65;
  Writer w(buf_);
  w.append(kGenesisHash);
  w.push_back('\n');
  BodySpans spans;
  if (!AppendBody(w, ets, pts, d, spans)) {
    // Invalid UTF-8 somewhere: repair d (each bad sequence becomes U+FFFD) so that what is
    // stored, hashed and returned agree, and render again.
    RepairDecision(d);
    w.resize(kPrefix);
    if (!AppendBody(w, ets, pts, d, spans))
      return Status::Internal("decision log: append: the decision cannot be rendered as JSON");
  }
  const std::size_t body_end = w.size();
  const std::string_view evidence = w.view(spans.evidence_begin, spans.evidence_end);
  const std::string_view actions = w.view(spans.actions_begin, spans.actions_end);

  std::array<std::uint64_t, kIndexFields> keys = {IndexHash(d.kind),        IndexHash(d.rule),
                                                  IndexHash(d.entity_type), IndexHash(d.entity_id),
                                                  IndexHash(d.outcome),     IndexHash(d.reason)};

  if (pending_.size() >= static_cast<std::size_t>(kBlockRecords)) {
    Status f = FlushIndex();
    if (!f.ok()) return f;
  }
  sqlite3_stmt* s = insert_.get();
  std::string odd_message;  // prev_hash + "\n" + body when the stored head hash is not 64 chars
  // The head is known without reading it when, on a connection the log owns and watches, no
  // statement but this log's INSERT has run since its last successful append (which the
  // trace saw): no COMMIT or ROLLBACK (so the transaction of that append is still open and no
  // other connection can have written), no ROLLBACK TO, no other writer on this connection.
  // This saves an indexed read (~0.4 us) per append within a batch.
  const bool head_known = watching_ && head_known_ && other_statements_ == statements_at_append_;
  head_known_ = false;  // until this append succeeds
  for (int attempt = 0;; ++attempt) {
    // The head this log chains to must still be the newest record: a caller's rollback
    // (or ROLLBACK TO a savepoint) removes records, another writer adds some.
    if (!head_known || attempt > 0) {
      sqlite3_stmt* h = head_.get();
      ResetOnly guard(h);
      int rc = sqlite3_step(h);
      const bool same = rc == SQLITE_ROW ? sqlite3_column_int64(h, 0) == head_cache_.id &&
                                               ColumnText(h, 1) == head_cache_.hash
                                         : rc == SQLITE_DONE && head_cache_.id == 0;
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sqlite::Error(db_, rc, "decision log: append: read head");
      if (!same) {
        sqlite3_reset(h);
        Status r = ReloadHead();
        if (!r.ok()) return r;
      }
    }
    std::string_view message;
    if (head_cache_.hash.size() == kPrefix - 1) {
      std::memcpy(w.data(), head_cache_.hash.data(), kPrefix - 1);
      message = w.view(0, body_end);
    } else {
      odd_message.assign(head_cache_.hash);
      odd_message.append(w.view(kPrefix - 1, body_end));
      message = odd_message;
    }
    char hash[64];
    HashHexInto(message, hash);
    const std::int64_t id = head_cache_.id + 1;
    int rc;
    bool taken = false;
    Status failure;
    insert_seen_ = false;
    {
      ResetOnly guard(s);
      sqlite3_bind_int64(s, 1, id);
      BindStatic(s, 2, ets);
      BindStatic(s, 3, pts);
      BindStatic(s, 4, d.kind);
      BindStatic(s, 5, d.rule);
      BindStatic(s, 6, d.version);
      BindStatic(s, 7, d.trigger);
      BindStatic(s, 8, d.entity_type);
      BindStatic(s, 9, d.entity_id);
      BindStatic(s, 10, d.outcome);
      BindStatic(s, 11, d.reason);
      BindStatic(s, 12, evidence);
      BindStatic(s, 13, actions);
      BindStatic(s, 14, head_cache_.hash);
      BindStatic(s, 15, std::string_view(hash, 64));
      sqlite3_bind_int64(s, 16, d.event_time);
      sqlite3_bind_int64(s, 17, d.processing_time);
      rc = sqlite3_step(s);
      if (rc != SQLITE_DONE) {
        taken = sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_PRIMARYKEY;
        failure = sqlite::Error(db_, rc, "decision log: append");
      }
    }
    if (rc == SQLITE_DONE) {
      d.id = id;
      d.prev_hash.assign(head_cache_.hash);
      d.hash.assign(hash, 64);
      head_cache_.id = id;
      head_cache_.hash.assign(hash, 64);
      head_known_ = insert_seen_;  // the trace is still this log's
      statements_at_append_ = other_statements_;
      PendingEntry e;
      e.id = id;
      e.processing_ms = d.processing_time;
      e.event_ms = d.event_time;
      std::copy(keys.begin(), keys.end(), e.keys);
      pending_.push_back(e);
      return Status::Ok();
    }
    if (taken && attempt < 3) {
      // Someone else took the id between the check and the insert: chain to theirs.
      Status r = ReloadHead();
      if (!r.ok()) return r;
      continue;
    }
    return failure;
  }
}

Result<Decision> DecisionLog::Get(std::int64_t id) const {
  sqlite3_stmt* s = get_.get();
  ResetGuard guard(s);
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return Status::NotFound("decision log: no record " + std::to_string(id));
  if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "decision log: get");
  return RowDecision(s);
}

// Query statements, compiled once per distinct SQL text (a paging client runs the same few
// again and again; compiling one costs more than reading a page). Handed out reset.
Result<sqlite3_stmt*> DecisionLog::Cached(const std::string& sql) const {
  auto it = query_cache_.find(sql);
  if (it == query_cache_.end()) {
    auto st = sqlite::Prepare(db_, sql, "decision log: query");
    if (!st.ok()) return st.status();
    it = query_cache_.emplace(sql, std::move(st).value()).first;
  }
  return it->second.get();
}

// Receives the matching rows of a Scan, in id order.
class DecisionLog::RowSink {
 public:
  virtual ~RowSink() = default;
  virtual Status Row(sqlite3_stmt* s) = 0;
};

// How a query runs (see "The batched index" above):
//   1. With a text filter, the postings of one filtered field (the most selective kind:
//      entity id, rule, reason, entity type, outcome, kind) list the candidate ids of each
//      indexed block in id order; each candidate is read by id and checked against all
//      filters.
//   2. With only a time range, the blocks whose min/max time overlaps it are scanned by id.
//   3. Without filters, the records after `after_id` are scanned by id.
//   Then the records after the last block (at most a few thousand) are scanned by id.
// Every read of the table goes through one statement that checks every filter, so the
// index only chooses where to look.
Status DecisionLog::Scan(const DecisionQuery& q, RowSink& sink) const {
  const char* what = "decision log: query";
  if (query_cache_.size() >= 32) query_cache_.clear();  // (never while a statement is in use)
  std::string sql =
      std::string("SELECT ") + kColumns + " FROM decisions WHERE id > ?1 AND id <= ?2";
  struct TextFilter {
    int field;
    const std::optional<std::string>* value;
    const char* column;
  };
  const TextFilter filters[] = {
      {kFieldKind, &q.kind, "kind"},
      {kFieldRule, &q.rule, "rule"},
      {kFieldEntityType, &q.entity_type, "entity_type"},
      {kFieldEntityId, &q.entity_id, "entity_id"},
      {kFieldOutcome, &q.outcome, "outcome"},
      {kFieldReason, &q.reason, "reason"},
  };
  for (const auto& f : filters) {
    if (!*f.value) continue;
    sql += " AND ";
    sql += f.column;
    sql += " = ?";
  }
  const bool event_time = q.time_field == TimeField::kEvent;
  const char* time_col = event_time ? "event_ms" : "processing_ms";
  if (q.from) sql += std::string(" AND ") + time_col + " >= ?";
  if (q.to) sql += std::string(" AND ") + time_col + " < ?";
  sql += " ORDER BY id LIMIT ?";
  auto rows = Cached(sql);
  if (!rows.ok()) return rows.status();
  sqlite3_stmt* r = rows.value();
  ResetGuard guard(r);
  int limit_param = 3;
  for (const auto& f : filters) {
    if (*f.value) sqlite::BindCopy(r, limit_param++, **f.value);
  }
  if (q.from) sqlite3_bind_int64(r, limit_param++, *q.from);
  if (q.to) sqlite3_bind_int64(r, limit_param++, *q.to);

  // Reads the records with ids in (lo, hi] that pass every filter, in id order.
  std::int64_t remaining = q.limit > 0 ? q.limit : -1;  // -1: no limit
  auto scan = [&](std::int64_t lo, std::int64_t hi) -> Status {
    sqlite3_reset(r);
    sqlite3_bind_int64(r, 1, lo);
    sqlite3_bind_int64(r, 2, hi);
    sqlite3_bind_int64(r, limit_param, remaining);
    for (;;) {
      int rc = sqlite3_step(r);
      if (rc == SQLITE_DONE) return Status::Ok();
      if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, what);
      Status s = sink.Row(r);
      if (!s.ok()) return s;
      if (remaining > 0) --remaining;
    }
  };

  // Read the extent of the index once: blocks written after this point are not looked at,
  // and their records are read by the final scan instead.
  auto indexed = IndexedUpTo();
  if (!indexed.ok()) return indexed.status();
  std::int64_t upto = indexed.value();
  const std::int64_t after = std::max<std::int64_t>(q.after_id, 0);

  const TextFilter* driver = nullptr;
  for (int f :
       {kFieldEntityId, kFieldRule, kFieldReason, kFieldEntityType, kFieldOutcome, kFieldKind}) {
    for (const auto& tf : filters) {
      if (tf.field == f && *tf.value && driver == nullptr) driver = &tf;
    }
  }
  if (driver != nullptr && after < upto) {
    const std::uint64_t key = IndexHash(**driver->value);
    const auto check = static_cast<std::uint32_t>(key >> 32);
    // The blocks in id order, and for each one the postings row of the value's bucket (one
    // primary-key lookup per block). With a time range too, blocks whose zone map misses it
    // are skipped. (CROSS JOIN keeps the blocks as the outer loop.)
    std::string sql_postings =
        "SELECT i.first_id, i.ids FROM decisions_blocks b CROSS JOIN decisions_index i "
        "ON i.last_id = b.last_id AND i.field = ?1 AND i.bucket = ?2 "
        "WHERE b.last_id > ?3 AND b.last_id <= ?4";
    if (q.from || q.to) {
      sql_postings += event_time ? " AND b.max_event_ms >= ?5 AND b.min_event_ms < ?6"
                                 : " AND b.max_processing_ms >= ?5 AND b.min_processing_ms < ?6";
    }
    sql_postings += " ORDER BY b.last_id";
    auto st = Cached(sql_postings);
    if (!st.ok()) return st.status();
    sqlite3_stmt* p = st.value();
    ResetGuard postings_guard(p);
    if (q.from || q.to) {
      sqlite3_bind_int64(p, 5, q.from ? *q.from : std::numeric_limits<std::int64_t>::min());
      sqlite3_bind_int64(p, 6, q.to ? *q.to : std::numeric_limits<std::int64_t>::max());
    }
    sqlite3_bind_int(p, 1, driver->field);
    sqlite3_bind_int64(p, 2, static_cast<std::int64_t>(key % kBuckets));
    sqlite3_bind_int64(p, 3, after);
    sqlite3_bind_int64(p, 4, upto);
    std::vector<std::int64_t> candidates;
    while (remaining != 0) {
      int rc = sqlite3_step(p);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, what);
      const std::int64_t first_id = sqlite3_column_int64(p, 0);
      const auto* blob = static_cast<const unsigned char*>(sqlite3_column_blob(p, 1));
      const std::size_t n = static_cast<std::size_t>(sqlite3_column_bytes(p, 1));
      if (n % kEntryBytes != 0)
        return Status::Internal("decision log: the index is damaged (block from record " +
                                std::to_string(first_id) + ")");
      candidates.clear();
      for (std::size_t i = 0; i < n; i += kEntryBytes) {
        const std::int64_t id = first_id + (blob[i] | (blob[i + 1] << 8));
        const std::uint32_t c = static_cast<std::uint32_t>(blob[i + 2]) |
                                (static_cast<std::uint32_t>(blob[i + 3]) << 8) |
                                (static_cast<std::uint32_t>(blob[i + 4]) << 16) |
                                (static_cast<std::uint32_t>(blob[i + 5]) << 24);
        if (c == check && id > after) candidates.push_back(id);
      }
      for (std::int64_t id : candidates) {
        if (remaining == 0) break;
        Status s = scan(id - 1, id);
        if (!s.ok()) return s;
      }
    }
  } else if ((q.from || q.to) && after < upto) {
    const std::string sql_blocks =
        std::string(
            "SELECT first_id, last_id FROM decisions_blocks WHERE last_id > ?1 AND "
            "last_id <= ?2 AND ") +
        (event_time ? "max_event_ms >= ?3 AND min_event_ms < ?4"
                    : "max_processing_ms >= ?3 AND min_processing_ms < ?4") +
        " ORDER BY last_id";
    auto st = Cached(sql_blocks);
    if (!st.ok()) return st.status();
    sqlite3_stmt* b = st.value();
    ResetGuard blocks_guard(b);
    sqlite3_bind_int64(b, 1, after);
    sqlite3_bind_int64(b, 2, upto);
    sqlite3_bind_int64(b, 3, q.from ? *q.from : std::numeric_limits<std::int64_t>::min());
    sqlite3_bind_int64(b, 4, q.to ? *q.to : std::numeric_limits<std::int64_t>::max());
    while (remaining != 0) {
      int rc = sqlite3_step(b);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, what);
      const std::int64_t first_id = sqlite3_column_int64(b, 0);
      const std::int64_t last_id = sqlite3_column_int64(b, 1);
      Status s = scan(std::max(after, first_id - 1), last_id);
      if (!s.ok()) return s;
    }
  } else {
    upto = std::min(upto, after);  // no index to use: scan everything after `after`
  }
  if (remaining == 0) return Status::Ok();
  return scan(std::max(after, upto), std::numeric_limits<std::int64_t>::max());
}

Result<std::vector<Decision>> DecisionLog::Query(const DecisionQuery& q) const {
  class Collect final : public RowSink {
   public:
    Status Row(sqlite3_stmt* s) override {
      auto d = RowDecision(s);
      if (!d.ok()) return d.status();
      out.push_back(std::move(d).value());
      return Status::Ok();
    }
    std::vector<Decision> out;
  } sink;
  Status s = Scan(q, sink);
  if (!s.ok()) return s;
  return std::move(sink.out);
}

Result<std::int64_t> DecisionLog::ExportJsonl(std::ostream& out) const {
  DecisionQuery all;
  all.limit = 0;
  return ExportJsonl(out, all);
}

Result<std::int64_t> DecisionLog::ExportJsonl(std::ostream& out, const DecisionQuery& q) const {
  class Write final : public RowSink {
   public:
    explicit Write(std::ostream& o) : out(o) {}
    Status Row(sqlite3_stmt* s) override {
      line.clear();
      line += "{\"id\":";
      line += std::to_string(sqlite3_column_int64(s, kId));
      line.push_back(',');
      AppendBodyMembers(line, RowStrings(s), ColumnText(s, kEvidence), ColumnText(s, kActions));
      line += ",\"prev_hash\":";
      AppendJsonString(line, ColumnText(s, kPrevHash));
      line += ",\"hash\":";
      AppendJsonString(line, ColumnText(s, kHash));
      line += "}\n";
      out.write(line.data(), static_cast<std::streamsize>(line.size()));
      ++n;
      return Status::Ok();
    }
    std::ostream& out;
    std::string line;
    std::int64_t n = 0;
  } sink(out);
  Status s = Scan(q, sink);
  if (!s.ok()) return s;
  out.flush();
  if (!out) return Status::IoError("decision log: export: write failed");
  return sink.n;
}

Result<VerifyReport> DecisionLog::Verify(const std::optional<ChainHead>& anchor) const {
  auto st = sqlite::Prepare(db_, std::string("SELECT ") + kColumns + " FROM decisions ORDER BY id",
                            "decision log: verify");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = st->get();
  VerifyReport r;
  std::string msg;
  bool anchor_seen = false;
  auto fail = [&](VerifyReport::Problem p, std::int64_t id, std::string expected,
                  std::string stored, const std::string& what) {
    r.problem = p;
    r.id = id;
    r.expected = std::move(expected);
    r.stored = std::move(stored);
    r.message = "record " + std::to_string(id) + ": " + what;
    return r;
  };
  for (;;) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlite::Error(db_, rc, "decision log: verify");
    const std::int64_t id = sqlite3_column_int64(s, kId);
    const std::int64_t expected_id = r.head.id + 1;
    const std::string_view prev_hash = ColumnText(s, kPrevHash);
    const std::string_view hash = ColumnText(s, kHash);
    if (id != expected_id) {
      std::string what = id - 1 == expected_id
                             ? "record " + std::to_string(expected_id) + " is missing (deleted)"
                             : "records " + std::to_string(expected_id) + " to " +
                                   std::to_string(id - 1) + " are missing (deleted)";
      return fail(VerifyReport::Problem::kGap, id, std::to_string(expected_id), std::to_string(id),
                  what);
    }
    if (prev_hash != r.head.hash) {
      return fail(VerifyReport::Problem::kLink, id, r.head.hash, std::string(prev_hash),
                  "link altered: prev_hash is not the hash of record " + std::to_string(r.head.id) +
                      " (a record was deleted, reordered or its prev_hash edited)");
    }
    msg.assign(prev_hash);
    msg.push_back('\n');
    RowBody(s, msg);
    std::string recomputed = HashHex(msg);
    if (recomputed != hash) {
      return fail(VerifyReport::Problem::kBody, id, recomputed, std::string(hash),
                  "body altered: the stored fields do not hash to the stored hash");
    }
    const auto et = ColumnText(s, kEventTime), pt = ColumnText(s, kProcessingTime);
    const std::string et_ms = FormatTime(sqlite3_column_int64(s, kEventMs));
    const std::string pt_ms = FormatTime(sqlite3_column_int64(s, kProcessingMs));
    if (et_ms != et) {
      return fail(VerifyReport::Problem::kTimeIndex, id, std::string(et), et_ms,
                  "event_ms altered: it does not match event_time");
    }
    if (pt_ms != pt) {
      return fail(VerifyReport::Problem::kTimeIndex, id, std::string(pt), pt_ms,
                  "processing_ms altered: it does not match processing_time");
    }
    if (anchor && anchor->id == id) {
      anchor_seen = true;
      if (anchor->hash != hash) {
        return fail(VerifyReport::Problem::kAnchor, id, anchor->hash, std::string(hash),
                    "differs from the anchor: the log was rewritten from here or earlier");
      }
    }
    r.head.id = id;
    r.head.hash.assign(hash);
    ++r.count;
  }
  if (anchor && anchor->id > 0 && !anchor_seen) {
    return fail(VerifyReport::Problem::kAnchor, anchor->id, anchor->hash, "",
                "missing: the log ends at record " + std::to_string(r.head.id) +
                    " (records were deleted from the end)");
  }
  r.message = "ok: " + std::to_string(r.count) + " records, head " + std::to_string(r.head.id) +
              " " + r.head.hash;
  return r;
}

// ---------------------------------------------------------------------------------------

void EvaluationSummary::Count(std::string_view rule, std::string_view reason, std::int64_t n) {
  auto it = counts_.find(rule);
  if (it == counts_.end())
    it = counts_.emplace(std::string(rule), std::map<std::string, std::int64_t, std::less<>>{})
             .first;
  auto jt = it->second.find(reason);
  if (jt == it->second.end()) jt = it->second.emplace(std::string(reason), 0).first;
  jt->second += n;
  total_ += n;
}

void EvaluationSummary::Clear() {
  counts_.clear();
  total_ = 0;
}

Decision EvaluationSummary::ToDecision(TimeMs event_time, TimeMs processing_time,
                                       std::string trigger) const {
  Decision d;
  d.event_time = event_time;
  d.processing_time = processing_time;
  d.kind = "summary";
  d.outcome = "summary";
  d.trigger = std::move(trigger);
  d.evidence["not_fired"] = total_;
  nlohmann::ordered_json rules = nlohmann::ordered_json::object();
  for (const auto& [rule, reasons] : counts_) {
    nlohmann::ordered_json r = nlohmann::ordered_json::object();
    for (const auto& [reason, n] : reasons) r[reason] = n;
    rules[rule] = std::move(r);
  }
  d.evidence["rules"] = std::move(rules);
  return d;
}

}  // namespace gavel::rules
