// Inputs at the 1 MiB size limit that once made the compiler quadratic (found while fuzzing):
// prints the CPU time of compile + JSON rendering for each, and its ratio to a file of the
// same size with a mistake on every line. Exits 1 if any is over 4x that yardstick.
//
//   build/bench/compile_stress_bench
#include <time.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "dsl/compiler.hpp"

namespace {

constexpr std::size_t kSize = gavel::dsl::ParseLimits{}.max_file_bytes - 256;

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double Seconds(const std::function<void()>& f) {
  double t0 = CpuSeconds();
  f();
  return CpuSeconds() - t0;
}

}  // namespace

int main() {
  const std::string header =
      "event page_view { lead_id: text, page: text }\n"
      "entity lead keyed by lead_id { stage: text }\n";
  // Repeats `unit(i)` after `head` while the file stays under `size`, then adds `tail`.
  auto fill = [&](const std::string& head, const std::function<std::string(int)>& unit,
                  const std::string& tail, std::size_t size = kSize) {
    std::string s = head;
    for (int i = 0;; ++i) {
      std::string u = unit(i);
      if (s.size() + u.size() + tail.size() > size) break;
      s += u;
    }
    return s + tail;
  };
  auto hex = [](int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%x", static_cast<unsigned>(i));
    return std::string(buf);
  };
  auto run = [](const std::string& text) {
    return Seconds([&] {
      gavel::dsl::CompileResult c = gavel::dsl::CompileSources({{"big.gavel", text}});
      (void)gavel::dsl::RenderJson(c.sources, c.diags.list()).size();
    });
  };
  // The yardstick: a mistake on every line (200,000 of them).
  const double dense = run(fill("", [](int) { return std::string("rule\n"); }, ""));
  const double budget = 4 * dense;

  struct Shape {
    const char* what;
    std::string text;
  };
  std::vector<Shape> shapes;
  // 37,000 warnings (a rule without owner) on one line: each diagnostic's column was counted
  // from the start of its line (SourceManager::Position).
  shapes.push_back({"one line of warnings",
                    fill("event e { lead_id: text }\nentity lead keyed by lead_id { }\n",
                         [&](int i) { return "rule r" + hex(i) + "{on e then email\"a\"} "; },
                         "\n")});
  // A clause given 130,000 times: each "the first is on line N" counted the lines from the
  // start of the file (Lowerer::LineAt).
  shapes.push_back({"duplicate clauses",
                    fill(header + "rule r {\n  on page_view\n  then email \"a\"\n",
                         [](int) { return std::string("owner\"x\""); }, "\n}\n")});
  // One rule with 95,000 lets: every slot lookup scanned the slot table (Compiler::Slot).
  shapes.push_back({"thousands of lets", fill(header + "rule r {\n  on page_view\n", [&](int i) {
    return "let l" + hex(i) + "=1\n";
  }, "  then email \"a\"\n}\n")});
  // 8,000 unknown event names among 8,000 events (384 KB): each compared with every event
  // for a suggestion and copied all their names (Compiler::UnknownName), and every lookup
  // scanned the events (Program::FindEvent).
  {
    std::string s = header;
    int n = 0;
    while (s.size() < kSize * 3 / 16) s += "event e" + hex(n++) + "{lead_id:text}\n";
    for (int i = 0; i < n; ++i) {
      std::string u = "rule r" + hex(i) + "{on x" + hex(i) + " then email\"a\"}\n";
      if (s.size() + u.size() > kSize * 3 / 8) break;
      s += u;
    }
    shapes.push_back({"unknown names among many declarations", std::move(s)});
  }

  std::printf("%-40s %9s %9s %7s\n", "input at the 1 MiB limit", "bytes", "cpu s", "ratio");
  std::printf("%-40s %9zu %9.3f %7.2f\n", "a mistake on every line (yardstick)", kSize, dense, 1.0);
  int over = 0;
  for (const Shape& shape : shapes) {
    double s = run(shape.text);
    std::printf("%-40s %9zu %9.3f %7.2f%s\n", shape.what, shape.text.size(), s, s / dense,
                s > budget ? "  <- over 4x the yardstick: quadratic?" : "");
    over += s > budget;
  }
  return over ? 1 : 0;
}
