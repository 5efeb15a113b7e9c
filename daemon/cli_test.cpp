// `gavel test`. See cli_test.hpp; the format and the runner are in rule_test.hpp.
#include "daemon/cli_test.hpp"

#include <algorithm>
#include <filesystem>

#include "daemon/rule_test.hpp"
#include "rules/decision.hpp"

namespace gavel::cli {

namespace {

constexpr const char* kUsage =
    "usage: gavel test [--verbose] [--run PATTERN] FILE_OR_DIR...\n"
    "  Runs rule unit tests: each .test file names the rule files it tests and holds test\n"
    "  cases (warehouse rows, events, expected decisions, alert states, journey positions,\n"
    "  scores). A directory means every *.test file in it. The format: docs/testing.md.\n"
    "  --verbose, -v   also print every decision each case made, with its evidence (handy when\n"
    "                  writing a test: the lines are in the syntax of expectations)\n"
    "  --run PATTERN   only the cases whose name matches PATTERN (`*` and `?` wildcards;\n"
    "                  a pattern without wildcards matches anywhere in the name)\n"
    "exit status: 0 all passed, 1 failures, 2 usage, unreadable or malformed test files, or\n"
    "rule files that do not compile\n";

bool NameMatches(const std::string& pattern, const std::string& name) {
  if (pattern.empty()) return true;
  if (pattern.find_first_of("*?") == std::string::npos) return name.find(pattern) != std::string::npos;
  // Glob over the whole name.
  std::size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace

int RunTest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  namespace fs = std::filesystem;
  bool verbose = false;
  std::string pattern;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (a == "--run") {
      if (i + 1 >= args.size()) {
        err << "gavel test: --run needs a pattern\n";
        return 2;
      }
      pattern = args[++i];
    } else if (a.rfind("--run=", 0) == 0) {
      pattern = a.substr(6);
    } else if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      err << "gavel test: unknown option `" << a << "`\n" << kUsage;
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  if (paths.empty()) {
    err << "gavel test: no test files given\n" << kUsage;
    return 2;
  }
  // Files, with directories expanded to their *.test files.
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        if (entry.is_regular_file() && entry.path().extension() == ".test") found.push_back(entry.path().string());
      }
      if (ec) {
        err << "gavel test: cannot read directory " << p << ": " << ec.message() << "\n";
        return 2;
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        err << "gavel test: no *.test files in " << p << "\n";
        return 2;
      }
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      err << "gavel test: " << p << ": no such file or directory\n";
      return 2;
    }
  }
  int passed = 0, failed = 0, broken = 0, broken_files = 0, selected = 0;
  for (const auto& path : files) {
    ruletest::TestFile file;
    std::vector<ruletest::Problem> problems;
    if (!ruletest::LoadTestFile(path, file, problems)) {
      ++broken_files;
      for (const auto& p : problems) err << p.Render() << "\n";
      continue;
    }
    std::string diagnostics;
    auto program = ruletest::CompileTestRules(file, diagnostics);
    if (!program) {
      ++broken_files;
      err << diagnostics;
      continue;
    }
    for (const auto& c : file.cases) {
      if (!NameMatches(pattern, c.name)) continue;
      ++selected;
      ruletest::CaseResult r = ruletest::RunCase(file, c, program);
      if (r.passed()) {
        ++passed;
        out << "PASS " << path << ":" << c.line << ": " << c.name << "\n";
      } else {
        (r.errors.empty() ? failed : broken)++;
        out << ruletest::RenderFailures(file, r);
      }
      if (verbose) {
        out << "  decisions of \"" << c.name << "\" (" << r.decisions.size() << "):\n";
        for (const auto& d : r.decisions) {
          out << "    " << ruletest::RenderDecision(d) << "\n";
          // The evidence keys are what KEY=VALUE checks on a decision line name.
          if (!d.evidence.empty()) {
            out << "        evidence " << d.evidence.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
          }
        }
      }
    }
  }
  out << "gavel test: " << passed << " passed, " << failed << " failed";
  if (broken) out << ", " << broken << " could not run";
  if (broken_files) out << ", " << broken_files << " test file" << (broken_files == 1 ? "" : "s") << " with errors";
  out << " (" << files.size() << " file" << (files.size() == 1 ? "" : "s") << ")\n";
  if (!pattern.empty() && selected == 0 && broken_files == 0) {
    err << "gavel test: no test case matches `" << pattern << "`\n";
    return 2;
  }
  if (broken || broken_files) return 2;
  return failed ? 1 : 0;
}

}  // namespace gavel::cli
