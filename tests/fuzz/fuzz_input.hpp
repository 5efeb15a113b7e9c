// The one code path shared by the libFuzzer target (tests/fuzz/compile_fuzzer.cpp) and the
// corpus replay test (tests/dsl/fuzz_corpus_test.cpp): every input the fuzzer ever found
// interesting is replayed by the ordinary test build, so a fix stays fixed.
//
// An input is compiled in one of two modes:
//  - one file: the whole input is "fuzz.gavel";
//  - two files: if the input has a line that is exactly `---` (a trailing `\r` allowed), the
//    text before it is "a.gavel" and the text after it is "b.gavel"; a gets a first line
//    `import "b.gavel"` and b is served from memory through CompileOptions::read_file, so
//    imports (including cycles, since both names are served) are exercised.
// The diagnostics are rendered as text and as JSON, and a program, if one comes out, is
// described (with its SQL): none of it may crash, hang or leak.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsl/compiler.hpp"
#include "dsl/diagnostic.hpp"
#include "dsl/program.hpp"

namespace gavel::fuzz {

struct FuzzOutcome {
  bool two_files = false;
  bool compiled = false;         // a Program came out
  std::size_t files = 0;         // files loaded, imports included
  std::size_t diagnostics = 0;
  std::size_t text_bytes = 0;    // size of RenderText's output
  std::size_t json_bytes = 0;    // size of RenderJson's output
  std::size_t describe_bytes = 0;
};

// Splits at the first line that is exactly `---`. Returns false if there is none.
inline bool SplitAtSeparator(std::string_view in, std::string& a, std::string& b) {
  std::size_t line = 0;
  while (line <= in.size()) {
    std::size_t nl = in.find('\n', line);
    std::size_t stop = nl == std::string_view::npos ? in.size() : nl;
    std::string_view l = in.substr(line, stop - line);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l == "---") {
      a.assign(in.substr(0, line));
      b.assign(nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1));
      return true;
    }
    if (nl == std::string_view::npos) break;
    line = nl + 1;
  }
  return false;
}

inline FuzzOutcome CompileFuzzInput(std::string_view input) {
  FuzzOutcome out;
  std::vector<std::pair<std::string, std::string>> sources;
  dsl::CompileOptions options;
  std::string a, b;
  if (SplitAtSeparator(input, a, b)) {
    out.two_files = true;
    a.insert(0, "import \"b.gavel\"\n");
    options.read_file = [&a, &b](const std::string& path, std::string& text) {
      if (path == "b.gavel") {
        text = b;
        return true;
      }
      if (path == "a.gavel") {
        text = a;
        return true;
      }
      return false;
    };
    sources.emplace_back("a.gavel", a);
  } else {
    sources.emplace_back("fuzz.gavel", std::string(input));
  }
  // Time zones are checked against the system database (the default), so hostile zone
  // names reach SystemZoneExists too.

  dsl::CompileResult r = dsl::CompileSources(sources, options);
  out.files = r.sources.size();
  out.compiled = r.program != nullptr;
  out.diagnostics = r.diags.list().size();
  out.text_bytes = dsl::RenderText(r.sources, r.diags.list()).size();
  out.json_bytes = dsl::RenderJson(r.sources, r.diags.list()).size();
  if (r.program) out.describe_bytes = dsl::DescribeProgram(*r.program, /*with_sql=*/true).size();
  return out;
}

}  // namespace gavel::fuzz
