// Test stand-ins for the outside world of actions/: a recording HTTP receiver on 127.0.0.1 (a
// real httplib::Server on a free port) that answers from a script, and the reference
// ad-platform server (build/gavel-ad-platform) as a subprocess.
#pragma once

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "actions/http_client.hpp"

namespace gavel_test {

struct Recorded {
  std::string method;
  std::string path;
  std::string body;
  httplib::Headers headers;  // case-insensitive multimap
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct Reply {
  Reply(int s = 200, std::string b = "ok", std::vector<std::pair<std::string, std::string>> h = {},
        int delay = 0)
      : status(s), body(std::move(b)), headers(std::move(h)), delay_ms(delay) {}
  int status;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  int delay_ms;  // sleep before answering (a client with a shorter timeout gives up)
};

// Records every request; answers with the next scripted reply, else with the handler, else
// with the default reply (200 "ok").
class Receiver {
 public:
  Receiver() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    auto handle = [this](const httplib::Request& req, httplib::Response& res) {
      Recorded r{req.method, req.path, req.body, req.headers};
      Reply reply;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(r);
        if (!script_.empty()) {
          reply = script_.front();
          script_.pop_front();
        } else if (handler_) {
          reply = handler_(r);
        } else {
          reply = default_;
        }
      }
      if (reply.delay_ms > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(reply.delay_ms));
      res.status = reply.status;
      for (const auto& [k, v] : reply.headers) res.set_header(k.c_str(), v);
      res.set_content(reply.body, "text/plain");
    };
    server_.Post(R"(.*)", handle);
    server_.Put(R"(.*)", handle);
    server_.Get(R"(.*)", handle);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(server_.is_running());
  }
  ~Receiver() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  std::string Url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void Script(std::vector<Reply> replies) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : replies) script_.push_back(std::move(r));
  }
  void SetHandler(std::function<Reply(const Recorded&)> h) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(h);
  }
  std::vector<Recorded> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Recorded> requests_;
  std::deque<Reply> script_;
  std::function<Reply(const Recorded&)> handler_;
  Reply default_;
};

// build/gavel-ad-platform on a free port, killed (SIGTERM, then reaped) at the end.
class AdPlatformProcess {
 public:
  explicit AdPlatformProcess(const std::string& token = "test-token", int seed = 5) {
    const std::string binary = std::string(GAVEL_BINARY_DIR) + "/gavel-ad-platform";
    REQUIRE(::access(binary.c_str(), X_OK) == 0);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      const std::string seed_s = std::to_string(seed);
      ::execl(binary.c_str(), binary.c_str(), "--port", "0", "--token", token.c_str(), "--seed",
              seed_s.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* out = ::fdopen(fds[0], "r");
    char line[256] = {0};
    const bool got = std::fgets(line, sizeof line, out) != nullptr;
    std::fclose(out);
    REQUIRE(got);
    const std::string s(line);
    const auto at = s.find("http://");
    REQUIRE(at != std::string::npos);
    url_ = s.substr(at);
    while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
  }
  ~AdPlatformProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  const std::string& url() const { return url_; }

  // Test-only endpoints (no auth): faults, journal, manual changes.
  nlohmann::json Call(const std::string& method, const std::string& path,
                      const std::string& body = "") {
    gavel::actions::HttpClient client;
    gavel::actions::HttpRequest req;
    req.method = method;
    req.url = url_ + path;
    req.body = body;
    req.headers = {{"Content-Type", "application/json"}};
    auto resp = client.Send(req);
    REQUIRE(resp.status >= 200);
    REQUIRE(resp.status < 300);
    return nlohmann::json::parse(resp.body);
  }
  // Journal entries of the API (not the test endpoints) for one path.
  std::vector<nlohmann::json> Journal(const std::string& path) {
    std::vector<nlohmann::json> out;
    const nlohmann::json all =
        Call("GET", "/_journal");  // kept: a range over a temporary's member dangles
    for (const auto& e : all["requests"])
      if (e["path"] == path) out.push_back(e);
    return out;
  }

 private:
  pid_t pid_ = -1;
  std::string url_;
};

}  // namespace gavel_test
