// One HTTP attempt against a real local receiver, and how its answer is classified.
#include "actions/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>

#include "receiver.hpp"

using gavel::actions::ActionResult;
using gavel::actions::Classify;
using gavel::actions::HttpClient;
using gavel::actions::HttpClientOptions;
using gavel::actions::HttpRequest;
using gavel::actions::HttpResponse;
using gavel::actions::ParseRetryAfter;
using gavel::actions::ToActionResult;
using gavel_test::Receiver;
using gavel_test::Reply;
using O = ActionResult::Outcome;

namespace {

HttpRequest Post(const std::string& url, const std::string& body = "{}") {
  HttpRequest r;
  r.method = "POST";
  r.url = url;
  r.body = body;
  r.label = "test receiver";
  r.headers = {{"Content-Type", "application/json"}, {"X-Test", "1"}};
  return r;
}

// A loopback port with nothing listening (bound, then closed).
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

}  // namespace

TEST_CASE("a 2xx answer is a success with status, body excerpt, headers and latency",
          "[actions][http]") {
  Receiver rx;
  rx.Script({Reply{201, "created", {{"X-Answer", "yes"}}}});
  HttpClient client;
  HttpResponse resp = client.Send(Post(rx.Url("/hook"), R"({"a":1})"));
  REQUIRE(resp.status == 201);
  CHECK(resp.body == "created");
  REQUIRE(resp.Header("x-answer") != nullptr);
  CHECK(*resp.Header("x-answer") == "yes");
  CHECK(resp.latency_ms >= 0);
  ActionResult r = ToActionResult(resp);
  CHECK(r.outcome == O::kSucceeded);
  CHECK(r.http_status == 201);
  CHECK(r.response_excerpt == "created");
  CHECK(r.error.empty());

  auto seen = rx.Requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "POST");
  CHECK(seen[0].path == "/hook");
  CHECK(seen[0].body == R"({"a":1})");
  CHECK(seen[0].Header("X-Test") == "1");
  CHECK(seen[0].Header("Content-Type") == "application/json");
}

TEST_CASE("GET and PUT carry their method and body", "[actions][http]") {
  Receiver rx;
  HttpClient client;
  HttpRequest get;
  get.method = "GET";
  get.url = rx.Url("/thing");
  CHECK(client.Send(get).status == 200);
  HttpRequest put = Post(rx.Url("/thing/budget"), R"({"daily_budget":1})");
  put.method = "PUT";
  CHECK(client.Send(put).status == 200);
  auto seen = rx.Requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].method == "GET");
  CHECK(seen[1].method == "PUT");
  CHECK(seen[1].body == R"({"daily_budget":1})");
}

TEST_CASE("a 500 answer is retryable", "[actions][http]") {
  Receiver rx;
  rx.Script({Reply{500, "boom"}});
  HttpClient client;
  ActionResult r = ToActionResult(client.Send(Post(rx.Url())));
  CHECK(r.outcome == O::kRetryable);
  CHECK(r.http_status == 500);
  CHECK(r.error.find("HTTP 500") != std::string::npos);
}

TEST_CASE("a 429 with Retry-After in seconds is retryable with retry_after_ms", "[actions][http]") {
  Receiver rx;
  rx.Script({Reply{429, "slow down", {{"Retry-After", "7"}}}});
  HttpClient client;
  ActionResult r = ToActionResult(client.Send(Post(rx.Url())));
  CHECK(r.outcome == O::kRetryable);
  CHECK(r.http_status == 429);
  REQUIRE(r.retry_after_ms.has_value());
  CHECK(*r.retry_after_ms == 7000);
}

TEST_CASE("Retry-After is read as seconds or as an HTTP date", "[actions][http]") {
  const std::time_t now = 1445412480;  // Wed, 21 Oct 2015 07:28:00 GMT
  CHECK(ParseRetryAfter("120", now) == 120000);
  CHECK(ParseRetryAfter(" 0 ", now) == 0);
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30000);
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0);  // in the past: now
  CHECK(ParseRetryAfter("99999999999999", now) == 7LL * 24 * 3600 * 1000);
  CHECK_FALSE(ParseRetryAfter("soon", now).has_value());
  CHECK_FALSE(ParseRetryAfter("", now).has_value());
  CHECK_FALSE(ParseRetryAfter("-5", now).has_value());
}

TEST_CASE("a receiver slower than the total timeout gives a retryable timeout", "[actions][http]") {
  Receiver rx;
  rx.Script({Reply{200, "late", {}, 1500}});
  HttpClientOptions o;
  o.timeouts.total_ms = 200;
  HttpClient client(o);
  HttpResponse resp = client.Send(Post(rx.Url()));
  CHECK(resp.status == 0);
  CHECK(resp.transport == HttpResponse::Transport::kTimeout);
  ActionResult r = ToActionResult(resp);
  CHECK(r.outcome == O::kRetryable);
  CHECK(r.error.find("timeout") != std::string::npos);
}

TEST_CASE("a 404 answer is a permanent failure", "[actions][http]") {
  Receiver rx;
  rx.Script({Reply{404, "no_service"}});
  HttpClient client;
  ActionResult r = ToActionResult(client.Send(Post(rx.Url())));
  CHECK(r.outcome == O::kFailed);
  CHECK(r.http_status == 404);
  CHECK(r.error.find("no_service") != std::string::npos);
}

TEST_CASE("a refused connection is retryable and its error names no URL path", "[actions][http]") {
  HttpClient client;
  const std::string url =
      "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/services/T000/B000/SECRETPATH";
  HttpResponse resp = client.Send(Post(url));
  CHECK(resp.status == 0);
  ActionResult r = ToActionResult(resp);
  CHECK(r.outcome == O::kRetryable);
  CHECK(r.error.find("test receiver") != std::string::npos);
  CHECK(r.error.find("SECRETPATH") == std::string::npos);
}

TEST_CASE(
    "a URL that is not http(s), a bad method or a header with a line break fails without sending",
    "[actions][http]") {
  Receiver rx;
  HttpClient client;
  HttpRequest ftp = Post("ftp://127.0.0.1/x");
  CHECK(ToActionResult(client.Send(ftp)).outcome == O::kFailed);
  HttpRequest bad_method = Post(rx.Url());
  bad_method.method = "BREW";
  CHECK(ToActionResult(client.Send(bad_method)).outcome == O::kFailed);
  HttpRequest injected = Post(rx.Url());
  injected.headers.emplace_back("X-Evil", "a\r\nX-Injected: 1");
  CHECK(ToActionResult(client.Send(injected)).outcome == O::kFailed);
  CHECK(rx.Requests().empty());
}

TEST_CASE("the status table: 408/409/425/429/5xx retry, other 4xx and 3xx fail",
          "[actions][http]") {
  struct Row {
    int status;
    O outcome;
  };
  const Row rows[] = {
      {200, O::kSucceeded}, {204, O::kSucceeded}, {301, O::kFailed},    {400, O::kFailed},
      {401, O::kFailed},    {403, O::kFailed},    {404, O::kFailed},    {408, O::kRetryable},
      {409, O::kRetryable}, {410, O::kFailed},    {422, O::kFailed},    {425, O::kRetryable},
      {429, O::kRetryable}, {500, O::kRetryable}, {502, O::kRetryable}, {503, O::kRetryable}};
  for (const Row& row : rows) {
    HttpResponse r;
    r.status = row.status;
    INFO("status " << row.status);
    CHECK(Classify(r) == row.outcome);
  }
  HttpResponse tls;
  tls.transport = HttpResponse::Transport::kTls;
  CHECK(Classify(tls) == O::kFailed);
  HttpResponse conn;
  conn.transport = HttpResponse::Transport::kConnect;
  CHECK(Classify(conn) == O::kRetryable);
}

TEST_CASE("a long answer is kept to the cap and its excerpt to 2 KiB", "[actions][http]") {
  Receiver rx;
  rx.Script({Reply{500, std::string(200000, 'x')}});
  HttpClientOptions o;
  o.max_response_bytes = 10000;
  HttpClient client(o);
  HttpResponse resp = client.Send(Post(rx.Url()));
  CHECK(resp.status == 500);
  CHECK(resp.body.size() == 10000);
  CHECK(resp.body_truncated);
  ActionResult r = ToActionResult(resp);
  CHECK(r.response_excerpt.size() == 2048);
  CHECK(r.error.size() < 300);
}

TEST_CASE("one client sends many requests in a row over its kept connection", "[actions][http]") {
  Receiver rx;
  HttpClient client;
  for (int i = 0; i < 20; ++i)
    CHECK(client.Send(Post(rx.Url("/n/" + std::to_string(i)))).status == 200);
  CHECK(rx.Requests().size() == 20);
}

// ---------------------------------------------------------------- TLS

namespace {

// A self-signed certificate for 127.0.0.1 (subjectAltName IP), written as PEM files.
void WriteSelfSigned(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  REQUIRE(key != nullptr);
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600 * 24);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
  REQUIRE(san != nullptr);
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
  FILE* c = std::fopen(cert_path.c_str(), "wb");
  PEM_write_X509(c, x);
  std::fclose(c);
  FILE* k = std::fopen(key_path.c_str(), "wb");
  PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(k);
  X509_free(x);
  EVP_PKEY_free(key);
}

}  // namespace

TEST_CASE(
    "TLS is verified: an untrusted certificate fails, the same one trusted through ca_file "
    "succeeds",
    "[actions][http]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("gavel-tls-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  WriteSelfSigned(cert, key);
  {
    httplib::SSLServer server(cert.c_str(), key.c_str());
    REQUIRE(server.is_valid());
    int hits = 0;
    server.Post("/hook", [&](const httplib::Request&, httplib::Response& res) {
      ++hits;
      res.set_content("ok", "text/plain");
    });
    const int port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread t([&] { server.listen_after_bind(); });
    for (int i = 0; i < 500 && !server.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/hook";

    HttpClient strict;
    HttpResponse refused = strict.Send(Post(url));
    CHECK(refused.status == 0);
    CHECK(refused.transport == HttpResponse::Transport::kTls);
    CHECK(ToActionResult(refused).outcome == O::kFailed);  // retrying will not make it trusted

    HttpClientOptions trusted_options;
    trusted_options.ca_file = cert;
    HttpClient trusted(trusted_options);
    HttpResponse ok = trusted.Send(Post(url));
    CHECK(ok.status == 200);
    CHECK(hits == 1);
    server.stop();
    t.join();
  }
  fs::remove_all(dir);
}
