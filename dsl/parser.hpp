// The parser facade: rule-file text in, dsl::File (dsl/ast.hpp) and diagnostics out.
//
// ParseFile never throws and never stops at the first mistake: the file is cut into
// top-level declarations (a declaration starts with `import`, `table`, `event`, `entity`,
// `score`, `rule`, `journey` or `alert`, either at the start of a line or outside any braces),
// each is parsed on its own, and a syntax error costs only the declaration it is in, so every
// independent error of a file is reported in one run without a cascade.
//
// Limits protect the machine from hostile or broken input: a size limit per file, a limit on
// bracket nesting and on chains of prefix operators, and on waits per journey (the parser is
// recursive; these bound its stack).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dsl/ast.hpp"
#include "dsl/diagnostic.hpp"
#include "dsl/source.hpp"

namespace gavel::dsl {

struct ParseLimits {
  std::size_t max_file_bytes = 1 << 20;  // 1 MiB: a rule file is text written by people
  int max_nesting = 64;                  // brackets ( [ { and runs of `-` / `not`
  int max_waits_per_declaration = 256;
};

File ParseFile(const SourceManager& sources, std::uint32_t file_id, Diagnostics& diags,
               const ParseLimits& limits = {});

}  // namespace gavel::dsl
