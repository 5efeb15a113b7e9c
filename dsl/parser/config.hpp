// The X3 types every part of the grammar agrees on: the iterator, the skipper (blanks and
// `#` comments) and the context. Internal to dsl/parser/.
#pragma once

#include <boost/spirit/home/x3.hpp>
#include <string>

namespace gavel::dsl::parser {

namespace x3 = boost::spirit::x3;

using iterator_type = const char*;

// Blanks and comments. Explicit characters rather than x3::space, so that bytes of UTF-8
// text (negative chars) never reach std::isspace.
inline auto const skipper = x3::char_(" \t\r\n\f\v") | x3::lexeme['#' >> *(x3::char_ - '\n')];
using skipper_type = std::remove_cv_t<decltype(skipper)>;

// Where an expectation failed, filled by the top rule's on_error.
struct FailState {
  const char* where = nullptr;
  std::string which;
};
struct fail_state_tag;

using phrase_context_type = x3::phrase_parse_context<skipper_type>::type;
using context_type =
    x3::context<fail_state_tag, std::reference_wrapper<FailState>, phrase_context_type>;

}  // namespace gavel::dsl::parser
