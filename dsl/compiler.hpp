// The compiler: rule files in, an immutable Program (dsl/program.hpp) or diagnostics out.
//
// Compile() loads the given files (directories are searched for *.gavel, sorted), follows
// `import`s (relative to the importing file, each file loaded once), parses every file,
// checks names, types and units, windows against table grains, actions against their
// targets, duplicates, unused names and unreachable journey steps, and emits the Program.
// A Program is returned only when there are no errors; warnings never block it.
//
// Failures to read a path the caller named are reported in `io_error` (the CLI exits 2);
// a missing import is the author's mistake and becomes a diagnostic at the import.
// Never throws. Not thread-safe per call, but independent calls may run in parallel.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dsl/diagnostic.hpp"
#include "dsl/parser.hpp"
#include "dsl/program.hpp"
#include "dsl/source.hpp"

namespace gavel::dsl {

struct CompileOptions {
  ParseLimits limits;
  // Reads a file; returns false (and leaves `out` alone) if it cannot be read.
  std::function<bool(const std::string& path, std::string& out)> read_file;
  // True if `zone` names an IANA time zone. Default: /usr/share/zoneinfo has it.
  std::function<bool(const std::string& zone)> zone_exists;
  int max_files = 1000;
};

struct CompileResult {
  std::shared_ptr<const Program> program;  // null when there are errors
  SourceManager sources;
  Diagnostics diags;
  std::string io_error;                    // non-empty: a named path could not be read
};

// `paths` are files or directories.
CompileResult Compile(const std::vector<std::string>& paths, const CompileOptions& options = {});

// Compiles in-memory sources (name, text); imports are resolved through options.read_file
// (by default: not at all). For tests and the fuzzer.
CompileResult CompileSources(const std::vector<std::pair<std::string, std::string>>& sources,
                             const CompileOptions& options = {});

// True if the zone exists in the system time zone database.
bool SystemZoneExists(const std::string& zone);

}  // namespace gavel::dsl
