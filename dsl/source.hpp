// SourceManager: owns the text of every rule file in one compile and turns a Span into
// file:line:column for diagnostics.
//
// Files are added once and never change; the ids are stable for the compile (0, 1, 2, ...).
// Columns are 1-based and count Unicode code points (not bytes), so a caret lands under the
// right character in a line with accents or emoji. Not thread-safe; one per compile.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/ast.hpp"

namespace gavel::dsl {

struct SourceFile {
  std::string path;     // as given by the user (shown in diagnostics)
  std::string text;
  std::vector<std::uint32_t> line_starts;  // byte offset where each line begins
  // UTF-8 continuation bytes before each 64-byte block (text.size() / 64 + 1 entries): turns
  // an offset into a column without scanning the line, however long it is.
  std::vector<std::uint32_t> continuations_before_block;
};

struct LineCol {
  std::uint32_t line = 1;    // 1-based
  std::uint32_t column = 1;  // 1-based, in code points
};

class SourceManager {
 public:
  std::uint32_t Add(std::string path, std::string text);
  const SourceFile& file(std::uint32_t id) const { return files_[id]; }
  std::size_t size() const { return files_.size(); }

  LineCol Position(std::uint32_t file, std::uint32_t offset) const;
  // The text of a 1-based line, without its line break.
  std::string_view Line(std::uint32_t file, std::uint32_t line) const;
  std::string_view Text(const Span& span) const;

 private:
  std::vector<SourceFile> files_;
};

}  // namespace gavel::dsl
