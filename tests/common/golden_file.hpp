// Golden-file comparison shared by the tests that render whole outputs (backtest, diff, plan,
// explain): compare with the file, or rewrite it when GAVEL_UPDATE_GOLDEN=1, and on a
// difference show the first differing line.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace gavel_test {

// The first line where two texts differ, as "- expected / + actual".
inline std::string FirstDifference(const std::string& expected, const std::string& actual) {
  std::istringstream a(expected), b(actual);
  std::string x, y;
  for (int line = 1;; ++line) {
    bool more_a = static_cast<bool>(std::getline(a, x)), more_b = static_cast<bool>(std::getline(b, y));
    if (!more_a && !more_b) return "(they differ only in line endings)";
    if (!more_a || !more_b || x != y) {
      return "line " + std::to_string(line) + ":\n- " + (more_a ? x : "(end of file)") + "\n+ " +
             (more_b ? y : "(end of file)") + "\n";
    }
  }
}

// `actual` (already normalised by the caller) against the golden file at `path`.
inline void CheckGoldenFile(const std::filesystem::path& path, const std::string& actual) {
  const char* update = std::getenv("GAVEL_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
    WARN("updated " << path.string());
    return;
  }
  if (!std::filesystem::exists(path)) {
    FAIL("missing " << path.string() << "; run with GAVEL_UPDATE_GOLDEN=1 to write it. The output is:\n" << actual);
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string expected = ss.str();
  if (expected != actual) {
    FAIL(path.filename().string() << " differs from the golden file at " << FirstDifference(expected, actual)
                                  << "if the new output is right, accept it with GAVEL_UPDATE_GOLDEN=1");
  }
  SUCCEED();
}

}  // namespace gavel_test
