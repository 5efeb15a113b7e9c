// The daemon's HTTP API (docs/http-api.md), on cpp-httplib.
//
// Routes authenticate (daemon/auth.hpp), then call the Daemon's entry points, which hand work
// to the engine thread and wait (see daemon/daemon.hpp for the threading model). Each
// handler catches everything: an exception becomes a 500 with its message, never a crash.
// Every response is JSON except GET /metrics (Prometheus text) and
// GET /v1/decisions?format=text.
//
// Threads: Bind and Listen on the daemon's start-up thread (Listen starts the accept thread);
// handlers run on httplib's worker pool; Stop from any thread other than a worker: it stops
// accepting, lets the workers finish the requests in flight, and joins the accept thread.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "dsl/base/status.hpp"

namespace httplib {
class Server;
}

namespace gavel::daemon {

class Daemon;

class HttpApi {
 public:
  explicit HttpApi(Daemon& daemon);
  ~HttpApi();
  Status Bind(const std::string& host, int port);
  void Listen();
  void Stop();
  int port() const { return port_; }

 private:
  void Routes();
  Daemon& daemon_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace gavel::daemon
