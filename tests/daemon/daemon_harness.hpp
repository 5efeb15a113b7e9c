// Test harness for `gavel run`: the real binary as a subprocess on a free loopback port, with
// its own temp directory (rules, config, state database, log), driven with httplib::Client.
// Each DaemonProcess kills its process (SIGKILL) in its destructor if a test left it running.
#pragma once

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace gavel_test {

namespace fs = std::filesystem;
using nlohmann::json;

inline std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// A port nobody listens on right now (the kernel's choice for an ephemeral bind).
inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// A fresh directory per test, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("gavel-daemon-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The lead-scoring playbook and its schema, copied so that a test may change them.
inline void CopyLeadScoring(const fs::path& rules_dir) {
  fs::create_directories(rules_dir);
  const fs::path src = fs::path(GAVEL_SOURCE_DIR) / "playbooks";
  fs::copy_file(src / "schema.gavel", rules_dir / "schema.gavel", fs::copy_options::overwrite_existing);
  fs::copy_file(src / "lead_scoring.gavel", rules_dir / "lead_scoring.gavel", fs::copy_options::overwrite_existing);
}

class DaemonProcess {
 public:
  // `config` is the JSON config without `listen` (added here) and is written to dir/gavel.conf.
  DaemonProcess(const fs::path& dir, json config, std::map<std::string, std::string> env = {})
      : dir_(dir), env_(std::move(env)), config_(std::move(config)) {
    if (!config_.contains("log")) config_["log"] = json::object();
    config_["log"]["file"] = (dir / "daemon.log").string();
    config_path_ = dir / "gavel.conf";
    NewPort();
  }

  // Picks a free port and writes the config with it.
  void NewPort() {
    port_ = FreePort();
    config_["listen"] = "127.0.0.1:" + std::to_string(port_);
    WriteFile(config_path_, "// written by the test\n" + config_.dump(2) + "\n");
  }
  ~DaemonProcess() { Kill(); }

  void Start() {
    std::fflush(nullptr);  // or the child flushes the parent's buffered output again
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
      const std::string out = (dir_ / "stdout.txt").string();
      FILE* f = std::freopen(out.c_str(), "a", stdout);
      FILE* g = std::freopen(out.c_str(), "a", stderr);
      (void)f;
      (void)g;
      const std::string bin = std::string(GAVEL_BINARY_DIR) + "/gavel";
      const std::string cfg = config_path_.string();
      ::execl(bin.c_str(), bin.c_str(), "run", "--config", cfg.c_str(), static_cast<char*>(nullptr));
      std::_Exit(127);
    }
  }

  // Polls GET /readyz (generously); false if the process died or never got ready.
  bool WaitReady(int seconds = 60) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      httplib::Client c("127.0.0.1", port_);
      c.set_connection_timeout(1, 0);
      auto r = c.Get("/readyz");
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Starts and waits until ready. If another process took the port between our probe and
  // the daemon's bind, starts again on another port.
  void StartReady() {
    bool ready = false;
    for (int attempt = 0; attempt < 5 && !ready; ++attempt) {
      Start();
      ready = WaitReady();
      if (!ready && !running() && Output().find("cannot listen") != std::string::npos) {
        NewPort();
        continue;
      }
      break;
    }
    INFO("daemon output:\n" << Output() << "\nlog:\n" << Log());
    REQUIRE(ready);
  }

  // SIGTERM, then waits (generously) for the exit; returns the exit code (-1: did not exit).
  int Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    for (int i = 0; i < 600; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Kill();
    return -1;
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  void Signal(int sig) { ::kill(pid_, sig); }
  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string Log() const { return ReadFile(dir_ / "daemon.log"); }
  std::string Output() const { return ReadFile(dir_ / "stdout.txt"); }

  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(120, 0);
    c.set_write_timeout(120, 0);
    return c;
  }

 private:
  fs::path dir_;
  std::map<std::string, std::string> env_;
  json config_;
  fs::path config_path_;
  int port_ = 0;
  pid_t pid_ = -1;
};

inline httplib::Headers Bearer(const std::string& token) {
  if (token.empty()) return {};
  return {{"Authorization", "Bearer " + token}};
}

inline json Body(const httplib::Result& r) {
  REQUIRE(r);
  return json::parse(r->body, nullptr, false);
}

// Every decision matching `query` (paged through).
inline std::vector<json> AllDecisions(DaemonProcess& d, const std::string& query, const std::string& token = "") {
  std::vector<json> out;
  std::int64_t after = 0;
  auto c = d.Client();
  while (true) {
    std::string path = "/v1/decisions?limit=1000&after=" + std::to_string(after) + (query.empty() ? "" : "&" + query);
    auto r = c.Get(path.c_str(), Bearer(token));
    REQUIRE(r);
    REQUIRE(r->status == 200);
    json b = json::parse(r->body);
    for (auto& x : b["decisions"]) out.push_back(x);
    if (b["next_after"].is_null()) break;
    after = b["next_after"].get<std::int64_t>();
  }
  return out;
}

inline std::string Event(const std::string& type, const std::string& id, const std::string& time,
                         const std::string& lead, const std::string& extra) {
  return R"({"event":")" + type + R"(","id":")" + id + R"(","time":")" + time + R"(","lead_id":")" + lead + "\"" +
         extra + "}";
}

}  // namespace gavel_test
