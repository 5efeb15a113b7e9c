// Zero-filled blocks for the engine's big tables, on transparent huge pages where possible.
// See huge_pages.hpp.
#include "rules/huge_pages.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gavel::rules::engine_detail {

namespace {

std::atomic<bool> fail_map_for_testing{false};
std::atomic<bool> fail_advice_for_testing{false};

std::size_t RoundToHugePages(std::size_t bytes) { return (bytes + kHugePageBytes - 1) & ~(kHugePageBytes - 1); }

#if defined(__linux__)
// An anonymous mapping of `len` bytes (a multiple of kHugePageBytes) starting on a 2 MiB
// boundary, or nullptr. Over-maps by 2 MiB and gives back the unaligned head and tail.
void* MapAligned(std::size_t len) {
  if (fail_map_for_testing.load(std::memory_order_relaxed)) return nullptr;
  const std::size_t over = len + kHugePageBytes;
  void* raw = mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHugePageBytes - 1) & ~(std::uintptr_t{kHugePageBytes} - 1);
  const std::size_t head = aligned - start;
  const std::size_t tail = over - head - len;
  if (head) munmap(raw, head);
  if (tail) munmap(reinterpret_cast<void*>(aligned + len), tail);
  return reinterpret_cast<void*>(aligned);
}
#endif

}  // namespace

void SetHugePageFailuresForTesting(bool fail_map, bool fail_advice) {
  fail_map_for_testing.store(fail_map, std::memory_order_relaxed);
  fail_advice_for_testing.store(fail_advice, std::memory_order_relaxed);
}

void* AllocateZeroed(std::size_t bytes, Backing& backing) {
  backing = Backing::kNone;
  if (bytes == 0) return nullptr;
#if defined(__linux__)
  if (bytes >= kHugePageBytes) {
    const std::size_t len = RoundToHugePages(bytes);
    if (void* p = MapAligned(len)) {
      const bool advised =
          !fail_advice_for_testing.load(std::memory_order_relaxed) && madvise(p, len, MADV_HUGEPAGE) == 0;
      backing = advised ? Backing::kHugeAdvised : Backing::kMapped;
      return p;  // fresh anonymous pages read as zero
    }
  }
#endif
  void* p = std::calloc(bytes, 1);
  if (!p) throw std::bad_alloc();
  backing = Backing::kHeap;
  return p;
}

void FreeZeroed(void* p, std::size_t bytes, Backing backing) {
  switch (backing) {
    case Backing::kNone:
      return;
    case Backing::kHeap:
      std::free(p);
      return;
    case Backing::kMapped:
    case Backing::kHugeAdvised:
#if defined(__linux__)
      munmap(p, RoundToHugePages(bytes));
#endif
      return;
  }
}

}  // namespace gavel::rules::engine_detail
