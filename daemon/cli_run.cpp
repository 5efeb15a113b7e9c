// `gavel run`. See cli_run.hpp.
#include "daemon/cli_run.hpp"

#include <ostream>

#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace gavel::cli {

namespace {

constexpr const char* kUsage =
    "usage: gavel run [--config FILE] [--listen HOST:PORT] [--ingest FILE.ndjson]...\n"
    "  Runs the daemon: events over HTTP, schedules on time, safe reloads (SIGHUP,\n"
    "  POST /v1/reload, or a change to a rule file), crash-safe state. Stops cleanly on\n"
    "  SIGINT/SIGTERM. See docs/operations.md and docs/http-api.md.\n"
    "  --config FILE       the configuration (JSON with comments; see examples/gavel.conf).\n"
    "                      Without it: rules from playbooks/, warehouse out/sample/warehouse.db,\n"
    "                      state out/gavel-state.db, listening on 127.0.0.1:8080\n"
    "  --listen HOST:PORT  overrides `listen` (port 0 picks a free port; the log says which)\n"
    "  --ingest FILE       ingests an NDJSON file at start (adds to events.ingest_at_start)\n"
    "exit status: 0 stopped cleanly, 1 the final flush failed, 2 usage, config or start-up problems\n";

}  // namespace

int RunDaemon(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string config_path, listen;
  std::vector<std::string> ingest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= args.size()) return false;
      dst = args[++i];
      return true;
    };
    bool ok = true;
    if (a == "--config") ok = value(config_path);
    else if (a == "--listen") ok = value(listen);
    else if (a == "--ingest") {
      std::string f;
      ok = value(f);
      ingest.push_back(f);
    } else if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    } else {
      err << "gavel run: unknown argument `" << a << "`\n" << kUsage;
      return 2;
    }
    if (!ok) {
      err << "gavel run: " << a << " needs a value\n";
      return 2;
    }
  }
  daemon::Config config = daemon::DefaultConfig();
  if (!config_path.empty()) {
    auto c = daemon::LoadConfig(config_path);
    if (!c.ok()) {
      err << "gavel run: " << c.status().message() << "\n";
      return 2;
    }
    config = std::move(c.value());
  }
  if (!listen.empty()) {
    auto colon = listen.rfind(':');
    int port = -1;
    if (colon != std::string::npos && colon > 0) {
      try {
        std::size_t used = 0;
        port = std::stoi(listen.substr(colon + 1), &used);
        if (used != listen.size() - colon - 1) port = -1;
      } catch (const std::exception&) {
        port = -1;
      }
    }
    if (port < 0 || port > 65535) {
      err << "gavel run: --listen `" << listen << "` is not HOST:PORT\n";
      return 2;
    }
    config.listen_host = listen.substr(0, colon);
    config.listen_port = port;
  }
  for (auto& f : ingest) config.ingest_at_start.push_back(f);
  Status s = daemon::InitLogging(config);
  if (!s.ok()) {
    err << "gavel run: " << s.message() << "\n";
    return 2;
  }
  daemon::Daemon d(config);
  s = d.Start();
  if (!s.ok()) {
    if (!config.log_file.empty()) {  // on stderr, the line below says it once
      daemon::Log(daemon::LogLevel::kError, "cannot start", {{"error", s.message()}});
      daemon::FlushLog();
    }
    err << "gavel run: " << s.message() << "\n";
    return 2;
  }
  return d.Run();
}

}  // namespace gavel::cli
