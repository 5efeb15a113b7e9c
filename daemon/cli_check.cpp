// `gavel check`. See cli_check.hpp.
#include "daemon/cli_check.hpp"

#include "dsl/compiler.hpp"

namespace gavel::cli {

namespace {
constexpr const char* kUsage =
    "usage: gavel check [--format text|json] [--sql] [--quiet] PATH...\n"
    "  PATH is a rule file or a directory (searched for *.gavel); all are compiled together.\n"
    "  --format json  diagnostics as a JSON array (file, line, column, end, severity, code,\n"
    "                 message, hint), for editors and CI\n"
    "  --sql          also print the SQL each scheduled rule pushes down to the warehouse\n"
    "  --quiet        print diagnostics only, not the program summary\n"
    "exit status: 0 clean, 1 errors in the rule files, 2 usage or I/O problems\n";
}

int RunCheck(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string format = "text";
  bool sql = false;
  bool quiet = false;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--format" && i + 1 < args.size()) {
      format = args[++i];
    } else if (a.rfind("--format=", 0) == 0) {
      format = a.substr(9);
    } else if (a == "--sql") {
      sql = true;
    } else if (a == "--quiet" || a == "-q") {
      quiet = true;
    } else if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      err << "gavel check: unknown option `" << a << "`\n" << kUsage;
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  if (format != "text" && format != "json") {
    err << "gavel check: --format must be `text` or `json`, not `" << format << "`\n";
    return 2;
  }
  if (paths.empty()) {
    err << "gavel check: no rule files given\n" << kUsage;
    return 2;
  }
  dsl::CompileResult r = dsl::Compile(paths);
  if (!r.io_error.empty()) {
    err << "gavel check: " << r.io_error << "\n";
    return 2;
  }
  const auto& diags = r.diags.list();
  if (format == "json") {
    out << dsl::RenderJson(r.sources, diags);
  } else {
    out << dsl::RenderText(r.sources, diags);
    int e = r.diags.error_count(), w = r.diags.warning_count();
    if (e || w) {
      out << e << " error" << (e == 1 ? "" : "s") << ", " << w << " warning" << (w == 1 ? "" : "s") << "\n";
    }
    if (r.program && !quiet) out << dsl::DescribeProgram(*r.program, sql);
  }
  return r.diags.has_errors() ? 1 : 0;
}

}  // namespace gavel::cli
