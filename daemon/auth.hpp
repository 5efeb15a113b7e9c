// Access control for the HTTP API: bearer tokens with roles.
//
// Each configured token has a name (who) and one role:
//   ingest    POST /v1/events only
//   auditor   reads: decisions, entities, rules, metrics
//   operator  reads, plus operator commands (POST /v1/reload; override/approve later)
//   admin     everything (including POST /v1/clock on a simulated clock)
// A request's token is compared with every configured token in constant time (SHA-256 of
// both sides compared with CRYPTO_memcmp, and every token is always compared, so neither the
// content nor the position of a match leaks through timing). Tokens are held only as their
// SHA-256; the Authenticator never sees them again after construction.
//
// With no tokens configured, access control is off and every request acts as `admin` under
// the name "anonymous"; the daemon refuses that on a non-loopback address.
//
// Thread-safety: immutable after construction; Check may be called from any thread.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.hpp"

namespace gavel::daemon {

// What an endpoint needs.
enum class Permission { kIngest, kRead, kOperate, kAdmin };

struct AuthResult {
  int status = 200;     // 200, 401 or 403
  std::string who;      // the token's name when authenticated
  Role role = Role::kAdmin;
  std::string reason;   // for 401/403: why, in words
};

class Authenticator {
 public:
  explicit Authenticator(const std::vector<TokenConfig>& tokens);
  bool enabled() const { return !tokens_.empty(); }
  // `authorization` is the Authorization header ("" when absent); `what` names the request
  // for the 403 message ("POST /v1/reload").
  AuthResult Check(std::string_view authorization, Permission need, const std::string& what) const;

  static bool Allows(Role role, Permission need);
  static std::string RolesFor(Permission need);  // "operator or admin"

 private:
  struct Entry {
    std::string name;
    Role role;
    std::array<unsigned char, 32> digest;
  };
  std::vector<Entry> tokens_;
};

}  // namespace gavel::daemon
