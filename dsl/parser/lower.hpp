// Lowering: turns one parsed X3 declaration into the std-only tree of dsl/ast.hpp.
// Internal to dsl/parser/. Decodes numbers, units, string escapes, windows, schedules and
// decay phrases, and reports the mistakes found while doing so (bad escape, unknown weekday,
// a number where a duration is needed, too many operators in a row) as diagnostics.
#pragma once

#include <cstdint>
#include <vector>

#include "dsl/ast.hpp"
#include "dsl/diagnostic.hpp"
#include "dsl/parser/x3_ast.hpp"

namespace gavel::dsl::parser {

// `base` is the first byte of the file's text; every range in `decl` points into it.
// `line_starts` are the file's (SourceFile::line_starts), for "the first is on line N".
void LowerDeclaration(const x3ast::declaration& decl, const char* base, std::uint32_t file_id,
                      const std::vector<std::uint32_t>& line_starts, File& out,
                      Diagnostics& diags);

}  // namespace gavel::dsl::parser
