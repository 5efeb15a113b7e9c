// See http_client.hpp.
#include "actions/http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>

namespace gavel::actions {

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

struct Sink {
  HttpResponse* response;
  std::size_t max_bytes;
};

std::size_t OnBody(char* data, std::size_t size, std::size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const std::size_t bytes = size * n;
  std::string& body = sink->response->body;
  if (body.size() < sink->max_bytes) {
    const std::size_t take = std::min(bytes, sink->max_bytes - body.size());
    body.append(data, take);
    if (take < bytes) sink->response->body_truncated = true;
  } else if (bytes > 0) {
    sink->response->body_truncated = true;
  }
  return bytes;  // everything "consumed": the transfer completes normally
}

std::size_t OnHeader(char* data, std::size_t size, std::size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const std::size_t bytes = size * n;
  std::string_view line(data, bytes);
  if (line.rfind("HTTP/", 0) == 0) {
    sink->response->headers.clear();  // a new answer (after a 100 Continue, say)
    return bytes;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  if (sink->response->headers.size() < 200) {
    sink->response->headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                                         std::string(Trim(line.substr(colon + 1))));
  }
  return bytes;
}

const char* TransportWords(HttpResponse::Transport t) {
  switch (t) {
    case HttpResponse::Transport::kTimeout:
      return "timeout";
    case HttpResponse::Transport::kConnect:
      return "connection failed";
    case HttpResponse::Transport::kTls:
      return "TLS failure";
    case HttpResponse::Transport::kBadRequest:
      return "bad request";
    case HttpResponse::Transport::kOther:
      return "transport error";
    case HttpResponse::Transport::kOk:
      break;
  }
  return "ok";
}

}  // namespace

void EnsureCurlInitialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

const std::string* HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (IEquals(k, name)) return &v;
  return nullptr;
}

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  EnsureCurlInitialized();
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpClient::HttpClient(HttpClient&& other) noexcept
    : options_(std::move(other.options_)), curl_(other.curl_) {
  other.curl_ = nullptr;
}

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
    options_ = std::move(other.options_);
    curl_ = other.curl_;
    other.curl_ = nullptr;
  }
  return *this;
}

HttpResponse HttpClient::Send(const HttpRequest& request) {
  HttpResponse response;
  const std::string label = request.label.empty() ? std::string("endpoint") : request.label;
  auto fail = [&](HttpResponse::Transport t, const std::string& why) {
    response.transport = t;
    response.error = label + ": " + why;
    return response;
  };
  if (!curl_) curl_ = curl_easy_init();  // a moved-from client makes a new handle
  CURL* curl = static_cast<CURL*>(curl_);
  if (!curl) return fail(HttpResponse::Transport::kOther, "libcurl could not be initialised");
  if (request.url.rfind("http://", 0) != 0 && request.url.rfind("https://", 0) != 0)
    return fail(HttpResponse::Transport::kBadRequest,
                "the URL must start with http:// or https://");
  std::string method = request.method;
  for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (method != "GET" && method != "POST" && method != "PUT" && method != "PATCH" &&
      method != "DELETE")
    return fail(HttpResponse::Transport::kBadRequest, "unsupported HTTP method '" + method + "'");

  curl_easy_reset(curl);  // keeps the connection cache, forgets the previous request's options
  char errbuf[CURL_ERROR_SIZE] = {0};
  Sink sink{&response, options_.max_response_bytes};
  const HttpTimeouts t = request.timeouts.value_or(options_.timeouts);

  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: we run on threads
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, t.connect_ms));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, std::max(1L, t.total_ms));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is an answer, not followed
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &sink);

  if (method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    if (method != "POST") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
  }

  curl_slist* headers = nullptr;
  bool bad_header = false;
  for (const auto& [k, v] : request.headers) {
    if (k.empty() || k.find_first_of(":\r\n") != std::string::npos ||
        v.find_first_of("\r\n") != std::string::npos) {
      bad_header = true;  // header injection: refuse rather than send something else
      break;
    }
    headers = curl_slist_append(headers, (k + ": " + v).c_str());
  }
  if (bad_header) {
    curl_slist_free_all(headers);
    return fail(HttpResponse::Transport::kBadRequest,
                "a header name or value contains a line break or colon");
  }
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

  const auto start = std::chrono::steady_clock::now();
  const CURLcode rc = curl_easy_perform(curl);
  response.latency_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  curl_slist_free_all(headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);

  if (rc != CURLE_OK) {
    HttpResponse::Transport tr = HttpResponse::Transport::kOther;
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        tr = HttpResponse::Transport::kTimeout;
        break;
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
        tr = HttpResponse::Transport::kConnect;
        break;
      case CURLE_SSL_CONNECT_ERROR:
        tr = HttpResponse::Transport::kConnect;
        break;  // handshake cut off
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
        tr = HttpResponse::Transport::kTls;
        break;
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        tr = HttpResponse::Transport::kBadRequest;
        break;
      default:
        break;
    }
    // The error buffer names host and port at most (never the path, where webhook secrets live).
    std::string words = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    response.body.clear();
    response.headers.clear();
    response.status = 0;
    return fail(tr, std::string(TransportWords(tr)) + " (" + words + ")");
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  if (const std::string* ra = response.Header("Retry-After"))
    response.retry_after_ms = ParseRetryAfter(*ra, std::time(nullptr));
  return response;
}

std::optional<std::int64_t> ParseRetryAfter(std::string_view value, std::time_t now) {
  constexpr std::int64_t kMaxMs = 7LL * 24 * 3600 * 1000;  // beyond a week it is a mistake
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return kMaxMs;
    std::int64_t seconds = 0;
    for (char c : value) seconds = seconds * 10 + (c - '0');
    return std::min(seconds * 1000, kMaxMs);
  }
  const std::string copy(value);
  const time_t at = curl_getdate(copy.c_str(), nullptr);
  if (at == static_cast<time_t>(-1)) return std::nullopt;
  const std::int64_t delta = static_cast<std::int64_t>(at) - static_cast<std::int64_t>(now);
  return std::clamp<std::int64_t>(delta * 1000, 0, kMaxMs);
}

ActionResult::Outcome Classify(const HttpResponse& r) {
  using O = ActionResult::Outcome;
  if (r.status == 0) {
    switch (r.transport) {
      case HttpResponse::Transport::kTimeout:
      case HttpResponse::Transport::kConnect:
      case HttpResponse::Transport::kOther:
        return O::kRetryable;
      default:
        return O::kFailed;  // TLS verification, bad URL: retrying will not help
    }
  }
  if (r.status >= 200 && r.status < 300) return O::kSucceeded;
  if (r.status >= 500) return O::kRetryable;
  if (r.status == 408 || r.status == 409 || r.status == 425 || r.status == 429)
    return O::kRetryable;
  return O::kFailed;
}

std::string Utf8Prefix(std::string_view s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  std::size_t end = max_bytes;
  // Step back over continuation bytes to the start of the character that would be cut.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return std::string(s.substr(0, end));
}

ActionResult ToActionResult(const HttpResponse& r) {
  ActionResult out;
  out.outcome = Classify(r);
  out.http_status = r.status;
  out.latency_ms = r.latency_ms;
  out.response_excerpt = Utf8Prefix(r.body, 2048);
  if (r.status == 429 || r.status == 503 || r.status == 0 || r.status >= 500)
    out.retry_after_ms = r.retry_after_ms;
  if (out.outcome != ActionResult::Outcome::kSucceeded) {
    if (r.status == 0) {
      out.error = r.error;
    } else {
      out.error = "HTTP " + std::to_string(r.status);
      if (r.status >= 300 && r.status < 400) out.error += " (redirects are not followed)";
      const std::string brief = Utf8Prefix(r.body, 200);
      if (!brief.empty()) out.error += ": " + brief;
    }
  }
  return out;
}

}  // namespace gavel::actions
