#include "dsl/source.hpp"

#include <algorithm>

namespace gavel::dsl {
namespace {

constexpr std::uint32_t kBlock = 64;

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// UTF-8 continuation bytes in [0, offset).
std::uint32_t ContinuationsBefore(const SourceFile& f, std::uint32_t offset) {
  std::uint32_t block = offset / kBlock;
  std::uint32_t n = f.continuations_before_block[block];
  for (std::uint32_t i = block * kBlock; i < offset; ++i) n += IsContinuation(f.text[i]);
  return n;
}

}  // namespace

std::uint32_t SourceManager::Add(std::string path, std::string text) {
  SourceFile f;
  f.path = std::move(path);
  f.text = std::move(text);
  f.line_starts.push_back(0);
  f.continuations_before_block.reserve(f.text.size() / kBlock + 1);
  std::uint32_t continuations = 0;
  for (std::uint32_t i = 0; i < f.text.size(); ++i) {
    if (i % kBlock == 0) f.continuations_before_block.push_back(continuations);
    continuations += IsContinuation(f.text[i]);
    if (f.text[i] == '\n') f.line_starts.push_back(i + 1);
  }
  if (f.text.size() % kBlock == 0) f.continuations_before_block.push_back(continuations);
  files_.push_back(std::move(f));
  return static_cast<std::uint32_t>(files_.size() - 1);
}

LineCol SourceManager::Position(std::uint32_t file, std::uint32_t offset) const {
  const SourceFile& f = files_[file];
  offset = std::min<std::uint32_t>(offset, static_cast<std::uint32_t>(f.text.size()));
  auto it = std::upper_bound(f.line_starts.begin(), f.line_starts.end(), offset);
  std::uint32_t line = static_cast<std::uint32_t>(it - f.line_starts.begin());
  std::uint32_t start = f.line_starts[line - 1];
  // Count code points: the bytes of the line before `offset`, less UTF-8 continuation bytes.
  std::uint32_t col =
      1 + (offset - start) - (ContinuationsBefore(f, offset) - ContinuationsBefore(f, start));
  return {line, col};
}

std::string_view SourceManager::Line(std::uint32_t file, std::uint32_t line) const {
  const SourceFile& f = files_[file];
  if (line == 0 || line > f.line_starts.size()) return {};
  std::uint32_t start = f.line_starts[line - 1];
  std::uint32_t end = line < f.line_starts.size() ? f.line_starts[line] : f.text.size();
  std::string_view s(f.text.data() + start, end - start);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string_view SourceManager::Text(const Span& span) const {
  const SourceFile& f = files_[span.file];
  std::uint32_t b = std::min<std::uint32_t>(span.begin, f.text.size());
  std::uint32_t e = std::min<std::uint32_t>(std::max(span.end, b), f.text.size());
  return std::string_view(f.text.data() + b, e - b);
}

}  // namespace gavel::dsl
