// The HTTP API's routes. See http_api.hpp and docs/http-api.md.
#include "daemon/http_api.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace gavel::daemon {

namespace {

void SendJson(httplib::Response& res, int status, const nlohmann::ordered_json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status, {{"error", message}});
}

}  // namespace

HttpApi::HttpApi(Daemon& daemon) : daemon_(daemon), server_(std::make_unique<httplib::Server>()) {}

HttpApi::~HttpApi() { Stop(); }

Status HttpApi::Bind(const std::string& host, int port) {
  const Config& c = daemon_.config();
  const int threads = c.http_threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  server_->set_payload_max_length(static_cast<std::size_t>(c.max_body_bytes));
  server_->set_read_timeout(30, 0);
  server_->set_write_timeout(30, 0);
  server_->set_keep_alive_max_count(100000);
  Routes();
  // cpp-httplib 0.11 listens with a backlog of 5 (compiled into the library): many clients
  // connecting at once then see resets. The socket-options hook hands us the listening
  // socket before bind; listen() again on it afterwards raises the backlog (Linux).
  int listen_fd = -1;
  server_->set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ <= 0) return Status::IoError("cannot listen on " + host + " (any port)");
  } else {
    if (!server_->bind_to_port(host, port)) {
      return Status::IoError("cannot listen on " + host + ":" + std::to_string(port) +
                             " (in use, or not an address of this machine)");
    }
    port_ = port;
  }
  if (listen_fd >= 0) ::listen(listen_fd, 1024);
  return Status::Ok();
}

void HttpApi::Listen() {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void HttpApi::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

void HttpApi::Routes() {
  httplib::Server& s = *server_;
  Daemon& d = daemon_;

  // Authenticates, runs the handler, catches everything, counts the response.
  auto route = [&d](const std::string& name, Permission need,
                    std::function<void(const httplib::Request&, httplib::Response&, const std::string& who)> h) {
    return [&d, name, need, h](const httplib::Request& req, httplib::Response& res) {
      try {
        AuthResult a = d.auth().Check(req.get_header_value("Authorization"), need, req.method + " " + req.path);
        if (a.status != 200) {
          if (a.status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"gavel\"");
          SendError(res, a.status, a.reason);
          if (a.status == 403) {
            Log(LogLevel::kWarn, "forbidden", {{"who", a.who}, {"request", req.method + " " + req.path}});
          }
        } else {
          h(req, res, a.who);
        }
      } catch (const std::exception& e) {
        Log(LogLevel::kError, "request failed", {{"request", req.method + " " + req.path}, {"error", e.what()}});
        SendError(res, 500, std::string("internal error: ") + e.what());
      }
      d.metrics().http_responses.Add(name + " " + std::to_string(res.status));
    };
  };

  s.Post("/v1/events", route("/v1/events", Permission::kIngest,
                             [&d](const httplib::Request& req, httplib::Response& res, const std::string& who) {
                               const std::string type = req.get_header_value("Content-Type");
                               const bool single = type.rfind("application/json", 0) == 0;
                               Reply r = d.Ingest(req.body, single, who);
                               SendJson(res, r.status, r.body);
                             }));
  s.Get("/v1/decisions", route("/v1/decisions", Permission::kRead,
                               [&d](const httplib::Request& req, httplib::Response& res, const std::string&) {
                                 std::map<std::string, std::string> params;
                                 for (const auto& [k, v] : req.params) params[k] = v;
                                 const bool text = params.count("format") && params["format"] == "text";
                                 std::string out;
                                 Reply r = d.Decisions(params, text ? &out : nullptr);
                                 if (text && r.status == 200) {
                                   res.status = 200;
                                   res.set_content(out, "text/plain; charset=utf-8");
                                 } else {
                                   SendJson(res, r.status, r.body);
                                 }
                               }));
  s.Get(R"(/v1/entities/([^/]+)/([^/]+))",
        route("/v1/entities", Permission::kRead,
              [&d](const httplib::Request& req, httplib::Response& res, const std::string&) {
                Reply r = d.Entity(req.matches[1], req.matches[2]);
                SendJson(res, r.status, r.body);
              }));
  s.Get("/v1/rules", route("/v1/rules", Permission::kRead,
                           [&d](const httplib::Request&, httplib::Response& res, const std::string&) {
                             Reply r = d.Rules();
                             SendJson(res, r.status, r.body);
                           }));
  s.Post("/v1/reload", route("/v1/reload", Permission::kOperate,
                             [&d](const httplib::Request&, httplib::Response& res, const std::string& who) {
                               Reply r = d.Reload(who, "api:POST /v1/reload");
                               SendJson(res, r.status, r.body);
                             }));
  // Operator controls and approvals (docs/operations.md, "Actions").
  s.Get("/v1/controls", route("/v1/controls", Permission::kRead,
                              [&d](const httplib::Request&, httplib::Response& res, const std::string&) {
                                Reply r = d.Controls();
                                SendJson(res, r.status, r.body);
                              }));
  s.Post("/v1/kill-switch", route("/v1/kill-switch", Permission::kOperate,
                                  [&d](const httplib::Request& req, httplib::Response& res, const std::string& who) {
                                    Reply r = d.SetKillSwitch(req.body, who);
                                    SendJson(res, r.status, r.body);
                                  }));
  s.Put(R"(/v1/flags/([^/]+))", route("/v1/flags", Permission::kOperate,
                                      [&d](const httplib::Request& req, httplib::Response& res, const std::string& who) {
                                        Reply r = d.SetFlag(req.matches[1], req.body, who);
                                        SendJson(res, r.status, r.body);
                                      }));
  s.Post("/v1/overrides", route("/v1/overrides", Permission::kOperate,
                                [&d](const httplib::Request& req, httplib::Response& res, const std::string& who) {
                                  Reply r = d.AddOverride(req.body, who);
                                  SendJson(res, r.status, r.body);
                                }));
  s.Delete(R"(/v1/overrides/([^/]+))",
           route("/v1/overrides", Permission::kOperate,
                 [&d](const httplib::Request& req, httplib::Response& res, const std::string& who) {
                   Reply r = d.RemoveOverride(req.matches[1], req.body, who);
                   SendJson(res, r.status, r.body);
                 }));
  s.Get("/v1/approvals", route("/v1/approvals", Permission::kRead,
                               [&d](const httplib::Request&, httplib::Response& res, const std::string&) {
                                 Reply r = d.Approvals();
                                 SendJson(res, r.status, r.body);
                               }));
  s.Post(R"(/v1/approvals/([^/]+)/(approve|reject))",
         route("/v1/approvals", Permission::kOperate,
               [&d](const httplib::Request& req, httplib::Response& res, const std::string& who) {
                 Reply r = d.DecideApproval(req.matches[1], req.matches[2] == "approve", req.body, who);
                 SendJson(res, r.status, r.body);
               }));
  s.Get("/v1/outbox", route("/v1/outbox", Permission::kRead,
                            [&d](const httplib::Request& req, httplib::Response& res, const std::string&) {
                              std::map<std::string, std::string> params;
                              for (const auto& [k, v] : req.params) params[k] = v;
                              Reply r = d.Outbox(params);
                              SendJson(res, r.status, r.body);
                            }));
  s.Post("/v1/clock", route("/v1/clock", Permission::kAdmin,
                            [&d](const httplib::Request& req, httplib::Response& res, const std::string& who) {
                              Reply r = d.SetClock(req.body, who);
                              SendJson(res, r.status, r.body);
                            }));
  s.Get("/metrics", route("/metrics", Permission::kRead,
                          [&d](const httplib::Request&, httplib::Response& res, const std::string&) {
                            res.status = 200;
                            res.set_content(d.RenderMetrics(), "text/plain; version=0.0.4");
                          }));
  // Probes answer without a token: they reveal nothing but up/ready.
  s.Get("/healthz", [&d](const httplib::Request&, httplib::Response& res) {
    Reply r = d.Health();
    SendJson(res, r.status, r.body);
  });
  s.Get("/readyz", [&d](const httplib::Request&, httplib::Response& res) {
    Reply r = d.Readiness();
    SendJson(res, r.status, r.body);
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    // Bodies set by handlers stay; this fills in httplib's own errors (404, 413, 400).
    if (!res.body.empty()) return;
    std::string msg;
    switch (res.status) {
      case 404: msg = "no such endpoint: " + req.method + " " + req.path + " (see docs/http-api.md)"; break;
      case 413: msg = "request body too large (limit http.max_body_bytes); split the batch"; break;
      case 405: msg = "method not allowed"; break;
      default:
        msg = "bad request (a POST needs a Content-Length header or a chunked body; with curl: -d '')";
        break;
    }
    SendError(res, res.status, msg);
  });
}

}  // namespace gavel::daemon
