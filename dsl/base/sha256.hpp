// SHA-256 of a byte string, as lowercase hex. Used for rule version hashes (and later for the
// decision log's hash chain). A self-contained implementation so that dsl/ needs no crypto
// library; it is checked against the FIPS 180-4 test vectors in tests/dsl/base/sha256_test.cpp.
#pragma once

#include <string>
#include <string_view>

namespace gavel {

std::string Sha256Hex(std::string_view data);

}  // namespace gavel
