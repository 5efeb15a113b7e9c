// libFuzzer target: compiles arbitrary bytes as gavel rule files and renders the diagnostics.
// The per-input work is in fuzz_input.hpp, shared with the corpus replay test
// (tests/dsl/fuzz_corpus_test.cpp). Run it with scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gavel::fuzz::CompileFuzzInput(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
