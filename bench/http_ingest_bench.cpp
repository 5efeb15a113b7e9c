// Events over HTTP into the daemon: `gavel run` as a subprocess (the lead-scoring playbook,
// state and decision log on disk, wall clock), and this process as the load generator on
// loopback: NDJSON batches of 1,000 events from several connections, each waiting for its
// answer (an answer means durable). Prints events/s (sustained over the whole run) and the
// batch latency percentiles.
//
//   build/bench/http_ingest_bench [--batches N] [--connections C] [--leads L] [--keep DIR] [--kill]
//
// With --kill the daemon is stopped with SIGKILL instead of SIGTERM, then started again: the
// time until it is ready is the restore of the last snapshot plus the replay of the event
// journal written since (daemon/event_journal.hpp).
//
// Defaults: 1000 batches (1,000,000 events), 16 connections, 20,000 leads. The daemon's state
// database goes to a temp directory (kept with --keep). See docs/performance.md,
// "Daemon ingest over HTTP".
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "rules/clock.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// Lead-scoring events, realistic mix: page views, downloads, signups, profiles.
std::string Batch(std::int64_t first, int n, int leads, gavel::rules::TimeMs t0) {
  static const char* kPages[] = {"/", "/pricing", "/pricing/enterprise", "/blog/attribution", "/docs"};
  std::string out;
  out.reserve(static_cast<std::size_t>(n) * 130);
  for (int i = 0; i < n; ++i) {
    const std::int64_t k = first + i;
    const std::string lead = "ld-" + std::to_string(k * 7919 % leads);
    const std::string time = gavel::rules::FormatTime(t0 + k * 10);
    const std::string head = "\",\"id\":\"e" + std::to_string(k) + "\",\"time\":\"" + time + "\",\"lead_id\":\"" + lead;
    switch (k % 10) {
      case 0:
        out += "{\"event\":\"lead_profile" + head + "\",\"title\":\"VP\",\"company_size\":200,\"timezone\":\"UTC\"}\n";
        break;
      case 1: out += "{\"event\":\"guide_download" + head + "\",\"guide\":\"playbook\"}\n"; break;
      case 2: out += "{\"event\":\"webinar_signup" + head + "\",\"webinar\":\"q4\"}\n"; break;
      default: out += "{\"event\":\"page_view" + head + "\",\"page\":\"" + kPages[k % 5] + "\"}\n"; break;
    }
  }
  return out;
}

double CpuSecondsOf(const std::string& stat_path) {
  // utime + stime from a /proc stat file (clock ticks).
  std::ifstream in(stat_path);
  std::string s;
  std::getline(in, s);
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> f;
  std::string cur;
  for (std::size_t i = close + 2; i < s.size(); ++i) {
    if (s[i] == ' ') f.push_back(cur), cur.clear();
    else cur += s[i];
  }
  if (f.size() < 13) return 0;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::stod(f[11]) + std::stod(f[12])) / tick;
}

double CpuSeconds(pid_t pid) { return CpuSecondsOf("/proc/" + std::to_string(pid) + "/stat"); }
// The daemon's main thread is its engine thread (it runs the io_context).
double EngineThreadCpuSeconds(pid_t pid) {
  return CpuSecondsOf("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/stat");
}

}  // namespace

int main(int argc, char** argv) {
  int batches = 1000, connections = 16, leads = 20000;
  std::string keep;
  bool kill9 = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--batches") batches = std::stoi(next());
    else if (a == "--connections") connections = std::stoi(next());
    else if (a == "--leads") leads = std::stoi(next());
    else if (a == "--keep") keep = next();
    else if (a == "--kill") kill9 = true;
    else {
      std::cerr << "usage: http_ingest_bench [--batches N] [--connections C] [--leads L] [--keep DIR] [--kill]\n";
      return 2;
    }
  }
  const fs::path bin = fs::canonical("/proc/self/exe").parent_path().parent_path() / "gavel";
  const fs::path src = fs::path(GAVEL_SOURCE_DIR);
  fs::path dir = keep.empty() ? fs::temp_directory_path() / ("gavel-http-bench-" + std::to_string(::getpid())) : fs::path(keep);
  fs::remove_all(dir);
  fs::create_directories(dir / "rules");
  fs::copy_file(src / "playbooks/schema.gavel", dir / "rules/schema.gavel");
  fs::copy_file(src / "playbooks/lead_scoring.gavel", dir / "rules/lead_scoring.gavel");
  const int port = FreePort();
  {
    std::ofstream cfg(dir / "gavel.conf");
    cfg << "{\n  \"listen\": \"127.0.0.1:" << port << "\",\n  \"rules\": {\"paths\": [\"" << (dir / "rules").string()
        << "\"], \"watch\": false},\n  \"state\": {\"path\": \"" << (dir / "state.db").string()
        << "\"},\n  \"warehouse\": {\"kind\": \"none\"},\n  \"events\": {\"max_future\": \"0\"},\n"
        << "  \"http\": {\"threads\": " << std::max(8, connections * 2) << "},\n"
        << "  \"log\": {\"file\": \"" << (dir / "daemon.log").string() << "\"}\n}\n";
  }
  // Events are dated a little before now, so the wall clock sees them as the present.
  const gavel::rules::TimeMs t0 = gavel::rules::WallClock().Now() - 30LL * 24 * 3600 * 1000;
  std::cerr << "generating " << batches << " batches of 1000 events...\n";
  std::vector<std::string> bodies;
  bodies.reserve(static_cast<std::size_t>(batches));
  std::size_t bytes = 0;
  for (int b = 0; b < batches; ++b) {
    bodies.push_back(Batch(static_cast<std::int64_t>(b) * 1000, 1000, leads, t0));
    bytes += bodies.back().size();
  }
  auto start_daemon = [&] {
    std::fflush(nullptr);
    pid_t child = ::fork();
    if (child == 0) {
      const std::string cfg = (dir / "gavel.conf").string();
      ::execl(bin.c_str(), bin.c_str(), "run", "--config", cfg.c_str(), static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    return child;
  };
  auto wait_ready = [&] {
    for (int i = 0; i < 6000; ++i) {
      httplib::Client c("127.0.0.1", port);
      auto r = c.Get("/readyz");
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  pid_t pid = start_daemon();
  bool ready = wait_ready();
  if (!ready) {
    std::cerr << "the daemon did not get ready; see " << (dir / "daemon.log") << "\n";
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 1;
  }
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(connections));
  const double cpu_before = CpuSeconds(pid);
  const double engine_before = EngineThreadCpuSeconds(pid);
  rusage self_before{};
  ::getrusage(RUSAGE_SELF, &self_before);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(300, 0);
      c.set_write_timeout(300, 0);
      c.set_keep_alive(true);
      while (!failed) {
        const int b = next++;
        if (b >= batches) break;
        auto t1 = Clock::now();
        auto r = c.Post("/v1/events", bodies[static_cast<std::size_t>(b)], "application/x-ndjson");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
        if (!r || r->status != 200) {
          std::cerr << "batch " << b << " failed: " << (r ? std::to_string(r->status) + " " + r->body.substr(0, 300) : "no answer: " + httplib::to_string(r.error()))
                    << "\n";
          failed = true;
          break;
        }
        latencies[static_cast<std::size_t>(t)].push_back(ms);
      }
    });
  }
  for (auto& th : threads) th.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_daemon = CpuSeconds(pid) - cpu_before;
  const double cpu_engine = EngineThreadCpuSeconds(pid) - engine_before;
  rusage self_after{};
  ::getrusage(RUSAGE_SELF, &self_after);
  auto tv = [](const timeval& v) { return static_cast<double>(v.tv_sec) + static_cast<double>(v.tv_usec) / 1e6; };
  const double cpu_load = tv(self_after.ru_utime) - tv(self_before.ru_utime) + tv(self_after.ru_stime) -
                          tv(self_before.ru_stime);
  // The engine thread's split, from the daemon's own counters.
  std::string split;
  {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/metrics");
    if (r && r->status == 200) {
      for (const char* name : {"gavel_engine_apply_seconds_total", "gavel_engine_checkpoint_seconds_total",
                               "gavel_engine_commit_seconds_total", "gavel_commits_total"}) {
        auto at = r->body.find(std::string("\n") + name + " ");
        if (at == std::string::npos) continue;
        auto end = r->body.find('\n', at + 1);
        split += "    " + r->body.substr(at + 1, end - at - 1) + "\n";
      }
    }
  }
  int status = 0;
  double restart_seconds = -1;
  if (kill9) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    auto r0 = Clock::now();
    pid = start_daemon();
    if (!wait_ready()) {
      std::cerr << "the daemon did not get ready after the kill; see " << (dir / "daemon.log") << "\n";
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return 1;
    }
    restart_seconds = std::chrono::duration<double>(Clock::now() - r0).count();
  }
  ::kill(pid, SIGTERM);
  ::waitpid(pid, &status, 0);
  if (failed) return 1;
  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<std::size_t>(p * all.size()))]; };
  const double events = static_cast<double>(batches) * 1000;
  std::printf("http ingest: %d batches x 1000 events (%.1f MB NDJSON), %d connections, %d leads\n", batches,
              static_cast<double>(bytes) / 1e6, connections, leads);
  std::printf("  sustained         %10.0f events/s  (%.2f s wall)\n", events / wall, wall);
  std::printf("  batch latency ms  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", pct(0.50), pct(0.90), pct(0.99),
              all.empty() ? 0.0 : all.back());
  std::printf("  daemon CPU        %.2f s (%.1f us/event); load generator CPU %.2f s\n", cpu_daemon,
              cpu_daemon / events * 1e6, cpu_load);
  std::printf("  of which engine thread %.2f s (%.1f us/event: apply, decisions, checkpoint, commit);\n"
              "  HTTP threads %.2f s (%.1f us/event: HTTP, parse and validate)\n",
              cpu_engine, cpu_engine / events * 1e6, cpu_daemon - cpu_engine, (cpu_daemon - cpu_engine) / events * 1e6);
  std::printf("  engine thread, from the daemon's metrics (apply / checkpoint / commit):\n%s", split.c_str());
  if (restart_seconds >= 0) {
    std::printf("  after kill -9     ready again in %.2f s (last snapshot restored, event journal replayed)\n",
                restart_seconds);
  }
  std::printf("  daemon exit code  %d (SIGTERM drain)\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  if (keep.empty()) fs::remove_all(dir);
  return 0;
}
