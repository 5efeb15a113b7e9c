// Files and directories for tests: reading a whole file, replacing text, a directory per test
// (removed when it goes out of scope) and a directory per test process (removed at exit).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace gavel_test {

inline std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces every occurrence of `what` in `s` (none if `what` is empty).
inline void Replace(std::string& s, const std::string& what, const std::string& with) {
  if (what.empty()) return;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size())) {
    s.replace(at, what.size(), with);
  }
}

// A fresh directory, removed with everything in it when this goes out of scope.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  std::string File(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A directory of this test process's own for `prefix`, made on first use, removed at exit.
inline const std::filesystem::path& ProcessTempDir(const std::string& prefix) {
  static std::map<std::string, std::filesystem::path> dirs;
  auto it = dirs.find(prefix);
  if (it != dirs.end()) return it->second;
  std::filesystem::path d = std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  if (dirs.empty()) {
    std::atexit([] {
      std::error_code ec;
      for (const auto& [p, dir] : dirs) std::filesystem::remove_all(dir, ec);
    });
  }
  return dirs.emplace(prefix, d).first->second;
}

}  // namespace gavel_test
