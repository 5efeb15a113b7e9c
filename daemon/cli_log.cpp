// `gavel log`. See cli_log.hpp.
#include "daemon/cli_log.hpp"

#include <cstdio>

#include "rules/shadow.hpp"
#include "rules/store/decision_log.hpp"

namespace gavel::cli {

namespace {

constexpr const char* kUsage =
    "usage: gavel log --db FILE.db [--rule R] [--entity TYPE:ID] [--outcome O] [--reason R]\n"
    "                 [--from T] [--to T] [--limit N] [--format text|jsonl]\n"
    "       gavel log verify --db FILE.db\n"
    "       gavel log shadow --db FILE.db [--from T] [--to T] [--window 1h] [--format text|json]\n"
    "  Lists decisions (oldest first), checks the hash chain and reports its first broken link, or\n"
    "  reports where rules in `mode shadow` would have acted differently from the live rules.\n"
    "exit status: 0 done / chain intact, 1 chain broken, 2 usage or I/O problems\n";

}  // namespace

int RunLog(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  bool verify = !args.empty() && args[0] == "verify";
  bool shadow = !args.empty() && args[0] == "shadow";
  std::string db, format = "text", entity;
  rules::TimeMs window = 3600 * 1000;
  rules::DecisionQuery q;
  q.limit = 0;
  for (std::size_t i = verify || shadow ? 1 : 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    }
    if (i + 1 >= args.size()) {
      err << "gavel log: unknown or incomplete argument `" << a << "`\n" << kUsage;
      return 2;
    }
    std::string v = args[++i];
    if (a == "--db") db = v;
    else if (a == "--rule") q.rule = v;
    else if (a == "--outcome") q.outcome = v;
    else if (a == "--reason") q.reason = v;
    else if (a == "--format") format = v;
    else if (a == "--entity") entity = v;
    else if (a == "--window" && shadow) {
      std::int64_t n = 0;
      char unit = 0;
      if (std::sscanf(v.c_str(), "%lld%c", reinterpret_cast<long long*>(&n), &unit) != 2 || n <= 0 ||
          (unit != 's' && unit != 'm' && unit != 'h' && unit != 'd')) {
        err << "gavel log shadow: --window is a duration like 30m, 1h or 1d\n";
        return 2;
      }
      window = n * 1000 * (unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400);
    } else if (a == "--limit") {
      try {
        q.limit = std::stoll(v);
      } catch (...) {
        err << "gavel log: --limit needs a number\n";
        return 2;
      }
    } else if (a == "--from" || a == "--to") {
      rules::TimeMs t;
      if (!rules::ParseTime(v, t)) {
        err << "gavel log: " << a << " is not an RFC 3339 time: " << v << "\n";
        return 2;
      }
      (a == "--from" ? q.from : q.to) = t;
    } else {
      err << "gavel log: unknown argument `" << a << "`\n" << kUsage;
      return 2;
    }
  }
  if (db.empty()) {
    err << "gavel log: --db is required\n" << kUsage;
    return 2;
  }
  if (!entity.empty()) {
    auto colon = entity.find(':');
    if (colon == std::string::npos) {
      err << "gavel log: --entity is TYPE:ID, e.g. lead:L1\n";
      return 2;
    }
    q.entity_type = entity.substr(0, colon);
    q.entity_id = entity.substr(colon + 1);
  }
  if (shadow && format != "text" && format != "json") {
    err << "gavel log shadow: --format must be `text` or `json`\n";
    return 2;
  }
  if (!shadow && format != "text" && format != "jsonl") {
    err << "gavel log: --format must be `text` or `jsonl`\n";
    return 2;
  }
  auto log = rules::DecisionLog::Open(db);
  if (!log.ok()) {
    err << "gavel log: " << log.status().message() << "\n";
    return 2;
  }
  if (verify) {
    auto report = log.value()->Verify();
    if (!report.ok()) {
      err << "gavel log verify: " << report.status().message() << "\n";
      return 2;
    }
    if (report.value().ok()) {
      out << "ok: " << report.value().count << " records, the hash chain is intact\n";
      return 0;
    }
    out << "broken: " << report.value().message << "\n";
    return 1;
  }
  if (shadow) {
    q.time_field = rules::TimeField::kEvent;
    auto rows = log.value()->Query(q);
    if (!rows.ok()) {
      err << "gavel log shadow: " << rows.status().message() << "\n";
      return 2;
    }
    auto report = rules::BuildShadowReport(rows.value(), window);
    if (format == "json") out << rules::ShadowReportJson(report).dump(2) << "\n";
    else out << rules::ShadowReportText(report);
    return 0;
  }
  if (format == "jsonl") {
    auto n = log.value()->ExportJsonl(out, q);
    if (!n.ok()) {
      err << "gavel log: " << n.status().message() << "\n";
      return 2;
    }
    return 0;
  }
  auto rows = log.value()->Query(q);
  if (!rows.ok()) {
    err << "gavel log: " << rows.status().message() << "\n";
    return 2;
  }
  for (const auto& d : rows.value()) out << "#" << d.id << " " << rules::RenderLine(d) << "\n";
  return 0;
}

}  // namespace gavel::cli
