// The engine's big tables on transparent huge pages (rules/huge_pages.hpp): zero-filled
// whatever the backing, 2 MiB aligned when mapped, and the same table contents when the
// mapping or the huge-page advice fails (the fallbacks are forced with the test hooks).
#include "rules/huge_pages.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rules/entity_table.hpp"

namespace {

using gavel::rules::engine_detail::Backing;
using gavel::rules::engine_detail::kHugePageBytes;
using gavel::rules::engine_detail::SetHugePageFailuresForTesting;
using gavel::rules::engine_detail::ZeroedArray;

// Resets the failure hooks when a test ends, even a failing one.
struct Failures {
  Failures(bool map, bool advice) { SetHugePageFailuresForTesting(map, advice); }
  ~Failures() { SetHugePageFailuresForTesting(false, false); }
};

bool AllZero(const ZeroedArray<std::uint64_t>& a) {
  for (std::uint64_t x : a) {
    if (x != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a small zeroed array comes from the heap, zero-filled", "[huge_pages]") {
  ZeroedArray<std::uint64_t> a(1000);
  CHECK(a.backing() == Backing::kHeap);
  CHECK(a.size() == 1000);
  CHECK(AllZero(a));
  a[999] = 7;
  CHECK(a[999] == 7);
  ZeroedArray<std::uint64_t> none;
  CHECK(none.empty());
  CHECK(none.backing() == Backing::kNone);
}

TEST_CASE("a large zeroed array is mapped 2 MiB aligned, with huge pages advised where the kernel allows",
          "[huge_pages]") {
  const std::size_t n = 3 * kHugePageBytes / sizeof(std::uint64_t) + 5;  // not a multiple of 2 MiB
  ZeroedArray<std::uint64_t> a(n);
  // kMapped only where the kernel refuses the advice (THP not built in).
  CHECK((a.backing() == Backing::kHugeAdvised || a.backing() == Backing::kMapped));
  CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % kHugePageBytes == 0);
  CHECK(AllZero(a));
  a[0] = 1;
  a[n - 1] = 2;
  // Moving hands the block over; the moved-from array is empty.
  ZeroedArray<std::uint64_t> b(std::move(a));
  CHECK(a.empty());
  CHECK(b[0] == 1);
  CHECK(b[n - 1] == 2);
  b = ZeroedArray<std::uint64_t>(16);
  CHECK(b.backing() == Backing::kHeap);
  CHECK(AllZero(b));
}

TEST_CASE("when the huge-page advice or the mapping fails, the array falls back and reads the same",
          "[huge_pages]") {
  const std::size_t n = kHugePageBytes / sizeof(std::uint64_t);
  {
    Failures f(false, true);
    ZeroedArray<std::uint64_t> a(n);
    CHECK(a.backing() == Backing::kMapped);
    CHECK(AllZero(a));
    a[n - 1] = 3;
    CHECK(a[n - 1] == 3);
  }
  {
    Failures f(true, false);
    ZeroedArray<std::uint64_t> a(n);
    CHECK(a.backing() == Backing::kHeap);
    CHECK(AllZero(a));
    a[n - 1] = 4;
    CHECK(a[n - 1] == 4);
  }
}

TEST_CASE("the seen-id table finds the same duplicates on huge pages, mapped pages and heap", "[huge_pages]") {
  // 300,000 ids grow the table past 2 MiB (from 131,072 slots on it is mapped).
  auto run = [](bool fail_map, bool fail_advice) {
    Failures f(fail_map, fail_advice);
    gavel::rules::engine_detail::SeenIds seen;
    std::size_t added = 0;
    for (int i = 0; i < 300000; ++i) added += seen.Insert("e" + std::to_string(i));
    std::size_t again = 0;
    for (int i = 0; i < 300000; i += 7) again += seen.Insert("e" + std::to_string(i));
    return std::make_pair(added, again + seen.size());
  };
  const auto huge = run(false, false);
  CHECK(huge.first == 300000);
  CHECK(huge.second == 300000);
  CHECK(run(false, true) == huge);
  CHECK(run(true, false) == huge);
}

TEST_CASE("a vector on the huge-page allocator keeps its elements across growth, whatever the backing",
          "[huge_pages]") {
  using Vec = std::vector<std::uint64_t, gavel::rules::engine_detail::HugePageAllocator<std::uint64_t>>;
  for (const auto& [fail_map, fail_advice] : {std::pair{false, false}, {false, true}, {true, false}}) {
    INFO(fail_map << " " << fail_advice);
    Failures f(fail_map, fail_advice);
    Vec v;
    // Past 2 MiB (262,144 words) and through several reallocations on both sides of it.
    for (std::uint64_t i = 0; i < 1000000; ++i) v.push_back(i * 3);
    bool same = true;
    for (std::uint64_t i = 0; i < v.size(); ++i) same &= v[i] == i * 3;
    CHECK(same);
    CHECK(v.size() == 1000000);
    v.resize(10);
    v.shrink_to_fit();  // back to operator new
    CHECK(v[9] == 27);
  }
}
