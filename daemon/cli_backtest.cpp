// `gavel backtest` and `gavel diff`. See cli_backtest.hpp.
#include "daemon/cli_backtest.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "daemon/backtest.hpp"

namespace gavel::cli {

namespace {

namespace fs = std::filesystem;
using backtest::TimeMs;

constexpr const char* kDefaultRules = "playbooks";
constexpr const char* kDefaultEvents = "out/sample/events.ndjson";
constexpr const char* kDefaultWarehouse = "out/sample/warehouse.db";

constexpr const char* kBacktestUsage =
    "usage: gavel backtest [--rules DIR] [--events FILE.ndjson] [--warehouse DB|none]\n"
    "                      [--from T] [--to T] [--format text|json|html] [--out FILE]\n"
    "                      [--against OLD_DIR] [--conflict-window D] [--limit N]\n"
    "                      [--actions-only] [--progress|--no-progress]\n"
    "  Replays history through the whole engine on a simulated clock (windows, confidence,\n"
    "  decay, journeys, alert states, limits, cooldowns) and reports, per rule and per day,\n"
    "  what the rules would have done: decisions by outcome and skip reason, intended actions,\n"
    "  the spend they would have touched, budget moved, alerts sent, journey steps, and the\n"
    "  conflicts (an entity paused then enabled, or its budget moved up then down, by two\n"
    "  rules or by one rule oscillating). Nothing is executed or written but the report.\n"
    "  --rules DIR          rule files (default: playbooks)\n"
    "  --events FILE        NDJSON event history (default: out/sample/events.ndjson)\n"
    "  --warehouse DB       SQLite warehouse for scheduled rules and alerts (default:\n"
    "                       out/sample/warehouse.db if it exists; `none`: do not run them)\n"
    "                       (the defaults are what `build/gavel-sample-data --out out/sample`\n"
    "                       writes, relative to the working directory)\n"
    "  --from T, --to T     RFC 3339 times or dates (UTC); history [from, to), `to` excluded:\n"
    "                       --from 2026-10-01 --to 2026-10-08 is seven days. Default: the days\n"
    "                       of the first and last event\n"
    "  --format F           text (default), json (schema gavel.backtest/1) or html (one\n"
    "                       self-contained page with charts); --out FILE.html or FILE.json\n"
    "                       picks the format when --format is not given\n"
    "  --out FILE           write the report there (default: stdout)\n"
    "  --against OLD_DIR    also run OLD_DIR on the same history and add the differences\n"
    "  --conflict-window D  a change undone within D is a conflict (default 7d; 36h, 90m)\n"
    "  --limit N            differences listed in text and html (default 50; 0: all)\n"
    "  --actions-only       list only the differences in intended actions (counts: all)\n"
    "  --progress           progress bar on stderr (default: only when stderr is a terminal)\n"
    "exit status: 0 done, 1 the rule files do not compile, 2 usage or I/O problems\n";

constexpr const char* kDiffUsage =
    "usage: gavel diff OLD_DIR NEW_DIR [--events FILE.ndjson] [--warehouse DB|none]\n"
    "                  [--from T] [--to T] [--format text|json|html] [--out FILE]\n"
    "                  [--limit N] [--actions-only] [--exit-code] [--progress|--no-progress]\n"
    "  Runs the same history through two versions of the rules (as `gavel backtest`) and\n"
    "  shows, side by side, where their decisions differ: paired by time, unit and entity;\n"
    "  changed (outcome, reason or actions), removed (only OLD decided) or added (only NEW).\n"
    "  Data and range options and their defaults are those of `gavel backtest`.\n"
    "  --limit N     differences listed in text and html (default 200; 0: all; json: all)\n"
    "  --actions-only  list only the differences in intended actions (a pause, a budget, a\n"
    "                message), not those in skip reasons or alert states (counts: all)\n"
    "  --exit-code   exit 3 when the versions decided differently (for CI)\n"
    "exit status: 0 done, 1 rule files do not compile, 2 usage or I/O problems,\n"
    "             3 differences (with --exit-code)\n";

struct Args {
  std::vector<std::string> positional;
  std::string rules_dir, events, warehouse, from, to, format, out, against, window = "7d", limit;
  bool rules_given = false, events_given = false, warehouse_given = false;
  std::optional<bool> progress;
  bool exit_code = false;
  bool actions_only = false;
  bool help = false;
};

// Parses the shared options; returns false with a message in `error`.
bool Parse(const std::vector<std::string>& args, bool diff, Args& a, std::string& error) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& s = args[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= args.size()) {
        error = s + " needs a value";
        return false;
      }
      dst = args[++i];
      return true;
    };
    bool ok = true;
    if (s == "--help" || s == "-h") {
      a.help = true;
    } else if (s == "--rules" && !diff) {
      ok = a.rules_given = value(a.rules_dir);
    } else if (s == "--events") {
      ok = a.events_given = value(a.events);
    } else if (s == "--warehouse") {
      ok = a.warehouse_given = value(a.warehouse);
    } else if (s == "--from") {
      ok = value(a.from);
    } else if (s == "--to") {
      ok = value(a.to);
    } else if (s == "--format") {
      ok = value(a.format);
    } else if (s == "--out") {
      ok = value(a.out);
    } else if (s == "--against" && !diff) {
      ok = value(a.against);
    } else if (s == "--conflict-window" && !diff) {
      ok = value(a.window);
    } else if (s == "--limit") {
      ok = value(a.limit);
    } else if (s == "--progress") {
      a.progress = true;
    } else if (s == "--no-progress") {
      a.progress = false;
    } else if (s == "--actions-only") {
      a.actions_only = true;
    } else if (s == "--exit-code" && diff) {
      a.exit_code = true;
    } else if (diff && !s.empty() && s[0] != '-') {
      a.positional.push_back(s);
    } else {
      error = "unknown argument `" + s + "`";
      return false;
    }
    if (!ok) return false;
  }
  return true;
}

// "7d", "36h", "90m" or a bare number of days.
bool ParseWindow(const std::string& text, TimeMs& out) {
  if (text.empty()) return false;
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return false;
  std::int64_t n = std::stoll(text.substr(0, digits));
  std::string unit = text.substr(digits);
  if (unit.empty() || unit == "d")
    out = n * rules::kDay;
  else if (unit == "h")
    out = n * rules::kHour;
  else if (unit == "m")
    out = n * rules::kMinute;
  else
    return false;
  return out > 0;
}

bool ParseLimit(const std::string& text, std::size_t fallback, std::size_t& out) {
  if (text.empty()) {
    out = fallback;
    return true;
  }
  if (text.find_first_not_of("0123456789") != std::string::npos || text.size() > 9) return false;
  out = static_cast<std::size_t>(std::stoul(text));
  return true;
}

// Draws a progress bar on a terminal (at most ten times a second) and times the run.
class ProgressBar {
 public:
  ProgressBar(std::ostream& err, bool draw, std::string label)
      : err_(err),
        draw_(draw),
        label_(std::move(label)),
        start_(std::chrono::steady_clock::now()),
        cpu_start_(std::clock()) {}

  void Update(const backtest::Progress& p) {
    last_ = p;
    if (!draw_) return;
    auto now = std::chrono::steady_clock::now();
    if (drawn_ && p.now < p.to && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    drawn_ = true;
    double span = static_cast<double>(p.to - p.from);
    double f = span > 0 ? std::clamp(static_cast<double>(p.now - p.from) / span, 0.0, 1.0) : 1.0;
    constexpr int kWidth = 30;
    int filled = static_cast<int>(f * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar += std::string(static_cast<std::size_t>(kWidth - filled), '-');
    double elapsed = Seconds();
    std::int64_t total_days = (p.to - p.from + rules::kDay - 1) / rules::kDay;
    std::int64_t days = std::min<std::int64_t>(total_days, (p.now - p.from) / rules::kDay);
    char line[320];
    std::snprintf(
        line, sizeof line,
        "\r%s [%s] %3d%%  %s  day %lld/%lld  %lld/%lld events  %lld decisions  %s elapsed",
        label_.c_str(), bar.c_str(), static_cast<int>(f * 100),
        backtest::DayOf(std::min(p.now, p.to - 1)).c_str(), static_cast<long long>(days),
        static_cast<long long>(total_days), static_cast<long long>(p.events_applied),
        static_cast<long long>(p.events_total), static_cast<long long>(p.decisions),
        Clock(elapsed).c_str());
    std::string text = line;
    if (f > 0.02 && f < 1) text += ", ~" + Clock(elapsed / f - elapsed) + " left";
    err_ << text << "\033[K" << std::flush;
  }

  // Clears the bar and prints the one-line summary.
  void Finish(const backtest::Run& run) {
    if (drawn_) err_ << "\r\033[K";
    double seconds = Seconds();
    double cpu = static_cast<double>(std::clock() - cpu_start_) / CLOCKS_PER_SEC;
    double days = static_cast<double>(run.to - run.from) / rules::kDay;
    char line[400];
    std::snprintf(line, sizeof line,
                  "%s: %.4g simulated days (%s .. %s), %lld events applied, %zu decisions, in %.2f "
                  "s (%.3f s per "
                  "simulated day; CPU %.2f s, %.3f s per day)\n",
                  label_.c_str(), days, rules::FormatTime(run.from).c_str(),
                  rules::FormatTime(run.to).c_str(), static_cast<long long>(run.events_applied),
                  run.decisions.size(), seconds, days > 0 ? seconds / days : 0.0, cpu,
                  days > 0 ? cpu / days : 0.0);
    err_ << line;
  }

 private:
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  static std::string Clock(double seconds) {
    long long s = static_cast<long long>(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    return buf;
  }

  std::ostream& err_;
  bool draw_;
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::clock_t cpu_start_;
  bool drawn_ = false;
  backtest::Progress last_;
};

// Resolves the data options shared by both verbs; returns an exit code (0: go on).
int DataOptions(const char* verb, const Args& a, backtest::RunOptions& o, std::ostream& err) {
  o.events_path = a.events_given ? a.events : kDefaultEvents;
  if (!a.events_given && !fs::exists(o.events_path)) {
    err << "gavel " << verb << ": no --events given and " << kDefaultEvents
        << " does not exist; make the sample data with `build/gavel-sample-data --out out/sample` "
           "or pass "
           "--events FILE\n";
    return 2;
  }
  if (a.warehouse_given)
    o.warehouse_path = a.warehouse == "none" ? "" : a.warehouse;
  else if (fs::exists(kDefaultWarehouse))
    o.warehouse_path = kDefaultWarehouse;
  TimeMs t = 0;
  if (!a.from.empty()) {
    if (!rules::ParseTime(a.from, t)) {
      err << "gavel " << verb << ": --from is not an RFC 3339 time or date: " << a.from << "\n";
      return 2;
    }
    o.from = t;
  }
  if (!a.to.empty()) {
    if (!rules::ParseTime(a.to, t)) {
      err << "gavel " << verb << ": --to is not an RFC 3339 time or date: " << a.to << "\n";
      return 2;
    }
    o.to = t;
  }
  if (o.from && o.to && *o.to <= *o.from) {
    err << "gavel " << verb << ": --to must be after --from (the range is [from, to))\n";
    return 2;
  }
  return 0;
}

// The format asked for, or the one --out's extension names.
bool ResolveFormat(const Args& a, std::string& format) {
  format = a.format;
  if (format.empty()) {
    std::string ext = fs::path(a.out).extension().string();
    format = ext == ".html" || ext == ".htm" ? "html" : ext == ".json" ? "json" : "text";
  }
  return format == "text" || format == "json" || format == "html";
}

bool DrawProgress(const Args& a, const std::ostream& err) {
  if (a.progress) return *a.progress;
  return &err == &std::cerr && ::isatty(STDERR_FILENO);
}

// Runs one version; returns an exit code (0: go on).
int RunOne(const char* verb, backtest::RunOptions o, const std::string& rules_dir,
           const std::string& label, bool draw, backtest::Run& run, std::ostream& err) {
  o.rules_dir = rules_dir;
  ProgressBar bar(err, draw, label);
  o.progress = [&](const backtest::Progress& p) { bar.Update(p); };
  std::string diagnostics;
  Status s = backtest::RunHistory(o, run, diagnostics);
  if (!diagnostics.empty()) {
    err << diagnostics;
    err << "gavel " << verb << ": " << s.message() << "\n";
    return 1;
  }
  if (!s.ok()) {
    err << "gavel " << verb << ": " << s.message() << "\n";
    return 2;
  }
  for (const auto& r : run.rejected) err << r << "\n";
  if (run.events_rejected > static_cast<std::int64_t>(run.rejected.size())) {
    err << "... and " << run.events_rejected - static_cast<std::int64_t>(run.rejected.size())
        << " more rejected lines\n";
  }
  bar.Finish(run);
  return 0;
}

int Write(const char* verb, const std::string& path, const std::string& text, std::ostream& out,
          std::ostream& err) {
  if (path.empty()) {
    out << text;
    return out ? 0 : 2;
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) {
    err << "gavel " << verb << ": cannot write " << path << "\n";
    return 2;
  }
  err << "report written to " << path << "\n";
  return 0;
}

}  // namespace

int RunBacktest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Args a;
  std::string error;
  if (!Parse(args, false, a, error)) {
    err << "gavel backtest: " << error << "\n" << kBacktestUsage;
    return 2;
  }
  if (a.help) {
    out << kBacktestUsage;
    return 0;
  }
  std::string format;
  if (!ResolveFormat(a, format)) {
    err << "gavel backtest: --format must be text, json or html\n";
    return 2;
  }
  backtest::ReportOptions report_options;
  if (!ParseWindow(a.window, report_options.conflict_window)) {
    err << "gavel backtest: --conflict-window must be a duration like 7d, 36h or 90m\n";
    return 2;
  }
  std::size_t limit = 0;
  if (!ParseLimit(a.limit, 50, limit)) {
    err << "gavel backtest: --limit must be a number\n";
    return 2;
  }
  backtest::RunOptions o;
  if (int code = DataOptions("backtest", a, o, err)) return code;
  const std::string rules_dir = a.rules_given ? a.rules_dir : kDefaultRules;
  const bool draw = DrawProgress(a, err);

  backtest::Run run;
  if (int code = RunOne("backtest", o, rules_dir, "backtest", draw, run, err)) return code;
  backtest::Report report = backtest::Aggregate(run, report_options);
  if (!a.against.empty()) {
    // The same range for both, whatever the defaults resolved to.
    o.from = run.from;
    o.to = run.to;
    backtest::Run old_run;
    if (int code = RunOne("backtest", o, a.against, "against", draw, old_run, err)) return code;
    report.against = backtest::Diff(old_run, run);
    if (a.actions_only) backtest::KeepActionDifferences(*report.against);
  }
  std::string text = format == "json"
                         ? backtest::RenderJson(report).dump(
                               2, ' ', false, nlohmann::json::error_handler_t::replace) +
                               "\n"
                     : format == "html" ? backtest::RenderHtml(report, limit)
                                        : backtest::RenderText(report, limit);
  return Write("backtest", a.out, text, out, err);
}

int RunDiff(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Args a;
  std::string error;
  if (!Parse(args, true, a, error)) {
    err << "gavel diff: " << error << "\n" << kDiffUsage;
    return 2;
  }
  if (a.help) {
    out << kDiffUsage;
    return 0;
  }
  if (a.positional.size() != 2) {
    err << "gavel diff: give two rule directories, OLD_DIR and NEW_DIR\n" << kDiffUsage;
    return 2;
  }
  std::string format;
  if (!ResolveFormat(a, format)) {
    err << "gavel diff: --format must be text, json or html\n";
    return 2;
  }
  std::size_t limit = 0;
  if (!ParseLimit(a.limit, 200, limit)) {
    err << "gavel diff: --limit must be a number\n";
    return 2;
  }
  backtest::RunOptions o;
  if (int code = DataOptions("diff", a, o, err)) return code;
  const bool draw = DrawProgress(a, err);
  backtest::Run old_run, new_run;
  if (int code = RunOne("diff", o, a.positional[0], "old", draw, old_run, err)) return code;
  o.from = old_run.from;
  o.to = old_run.to;
  if (int code = RunOne("diff", o, a.positional[1], "new", draw, new_run, err)) return code;
  backtest::DiffResult d = backtest::Diff(old_run, new_run);
  // --exit-code looks at every difference, whatever is listed.
  const bool differ = d.total.changed + d.total.removed + d.total.added > 0;
  if (a.actions_only) backtest::KeepActionDifferences(d);
  std::string text = format == "json"
                         ? backtest::RenderDiffJson(d).dump(
                               2, ' ', false, nlohmann::json::error_handler_t::replace) +
                               "\n"
                     : format == "html" ? backtest::RenderDiffHtml(d, limit)
                                        : backtest::RenderDiffText(d, limit);
  if (int code = Write("diff", a.out, text, out, err)) return code;
  return a.exit_code && differ ? 3 : 0;
}

}  // namespace gavel::cli
