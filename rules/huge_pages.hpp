// Internal to rules/: zero-filled arrays for the engine's big hash tables (seen event ids,
// entity indexes), backed by transparent huge pages when the kernel allows it.
//
// A lookup in a table of tens of MB lands on a random 4 KiB page: besides the cache miss it
// misses the TLB, and under a hypervisor a page walk is expensive. An array of at least
// kHugePageBytes is therefore mapped with mmap, 2 MiB aligned, and marked
// madvise(MADV_HUGEPAGE) (Linux; THP in `madvise` or `always` mode), so that one TLB entry
// covers 2 MiB. If the advice is refused (THP disabled, another kernel) the pages are
// ordinary ones: same contents, same behaviour, only slower. If the mapping itself fails, or
// on other systems, the array comes from calloc. Smaller arrays always come from calloc.
//
// ZeroedArray is a fixed-size array of a trivially copyable T, every byte zero at start
// (the tables' "empty slot" is all zeros, so no fill pass is needed: the kernel hands out
// zeroed pages on first touch). Move-only. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace gavel::rules::engine_detail {

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// How a block was obtained (for tests and the bench's report).
enum class Backing : unsigned char {
  kNone,        // empty array
  kHeap,        // calloc (small, or mapping failed / unavailable)
  kMapped,      // mmap, but madvise(MADV_HUGEPAGE) was refused: ordinary pages
  kHugeAdvised  // mmap, 2 MiB aligned, madvise(MADV_HUGEPAGE) accepted
};

// A zero-filled block of `bytes` (nullptr only when bytes == 0; throws std::bad_alloc when
// out of memory). `backing` says how; pass it back to FreeZeroed.
void* AllocateZeroed(std::size_t bytes, Backing& backing);
void FreeZeroed(void* p, std::size_t bytes, Backing backing);

// Test hooks (process-wide): behave as if mmap failed / as if the kernel refused the advice.
void SetHugePageFailuresForTesting(bool fail_map, bool fail_advice);

template <typename T>
class ZeroedArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  ZeroedArray() = default;
  explicit ZeroedArray(std::size_t n) : n_(n) {
    p_ = static_cast<T*>(AllocateZeroed(n * sizeof(T), backing_));
  }
  ~ZeroedArray() { FreeZeroed(p_, n_ * sizeof(T), backing_); }
  ZeroedArray(ZeroedArray&& o) noexcept { swap(o); }
  ZeroedArray& operator=(ZeroedArray&& o) noexcept {
    ZeroedArray(std::move(o)).swap(*this);
    return *this;
  }
  ZeroedArray(const ZeroedArray&) = delete;
  ZeroedArray& operator=(const ZeroedArray&) = delete;

  void swap(ZeroedArray& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(backing_, o.backing_);
  }
  T& operator[](std::size_t i) { return p_[i]; }
  const T& operator[](std::size_t i) const { return p_[i]; }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }
  const T* begin() const { return p_; }
  const T* end() const { return p_ + n_; }
  std::size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  Backing backing() const { return backing_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
  Backing backing_ = Backing::kNone;
};

// A std::allocator for the engine's big per-entity vectors (headers, score rows): blocks of
// at least kHugePageBytes come from AllocateZeroed (huge pages where possible), smaller ones
// from operator new. How a block was obtained is kept in a few bytes after it, so
// deallocate frees it the same way whatever happened at allocation.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT: rebinding
  static constexpr std::size_t kTail = alignof(std::max_align_t);

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) return static_cast<T*>(::operator new(bytes));
    Backing backing;
    void* p = AllocateZeroed(Padded(bytes) + kTail, backing);
    static_cast<unsigned char*>(p)[Padded(bytes)] = static_cast<unsigned char>(backing);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) {
      ::operator delete(p);
      return;
    }
    const auto backing = static_cast<Backing>(reinterpret_cast<unsigned char*>(p)[Padded(bytes)]);
    FreeZeroed(p, Padded(bytes) + kTail, backing);
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }

 private:
  static std::size_t Padded(std::size_t bytes) { return (bytes + kTail - 1) / kTail * kTail; }
};

}  // namespace gavel::rules::engine_detail
