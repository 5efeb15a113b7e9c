// Bearer tokens with roles. See auth.hpp.
#include "daemon/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace gavel::daemon {

namespace {

std::array<unsigned char, 32> Digest(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

}  // namespace

Authenticator::Authenticator(const std::vector<TokenConfig>& tokens) {
  for (const auto& t : tokens) tokens_.push_back({t.name, t.role, Digest(t.token.value())});
}

bool Authenticator::Allows(Role role, Permission need) {
  switch (need) {
    case Permission::kIngest: return role == Role::kIngest || role == Role::kAdmin;
    case Permission::kRead: return role == Role::kAuditor || role == Role::kOperator || role == Role::kAdmin;
    case Permission::kOperate: return role == Role::kOperator || role == Role::kAdmin;
    case Permission::kAdmin: return role == Role::kAdmin;
  }
  return false;
}

std::string Authenticator::RolesFor(Permission need) {
  switch (need) {
    case Permission::kIngest: return "ingest or admin";
    case Permission::kRead: return "auditor, operator or admin";
    case Permission::kOperate: return "operator or admin";
    case Permission::kAdmin: return "admin";
  }
  return "admin";
}

AuthResult Authenticator::Check(std::string_view authorization, Permission need, const std::string& what) const {
  AuthResult r;
  if (tokens_.empty()) {
    r.who = "anonymous";
    r.role = Role::kAdmin;
    return r;
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty()) {
    r.status = 401;
    r.reason = "missing bearer token: send `Authorization: Bearer <token>`";
    return r;
  }
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer) {
    r.status = 401;
    r.reason = "the Authorization header must be `Bearer <token>`";
    return r;
  }
  const auto presented = Digest(authorization.substr(kBearer.size()));
  const Entry* match = nullptr;
  for (const auto& e : tokens_) {
    // Every token is compared, whatever matched before.
    const bool equal = CRYPTO_memcmp(presented.data(), e.digest.data(), presented.size()) == 0;
    if (equal && !match) match = &e;
  }
  if (!match) {
    r.status = 401;
    r.reason = "unknown token";
    return r;
  }
  r.who = match->name;
  r.role = match->role;
  if (!Allows(match->role, need)) {
    r.status = 403;
    r.reason = "token `" + match->name + "` has role " + RoleName(match->role) + "; " + what + " needs " +
               RolesFor(need);
  }
  return r;
}

}  // namespace gavel::daemon
