// Structured logs. See log.hpp.
#include "daemon/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace gavel::daemon {

namespace {

bool g_json = false;
std::shared_ptr<spdlog::logger> g_logger;

spdlog::level::level_enum ToSpd(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

Status InitLogging(const Config& c) {
  try {
    spdlog::sink_ptr sink;
    if (c.log_file.empty()) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    else sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(c.log_file);
    g_logger = std::make_shared<spdlog::logger>("gavel", sink);
    g_json = c.log_format == "json";
    if (g_json) {
      g_logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
    } else {
      g_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    }
    g_logger->set_level(spdlog::level::from_str(c.log_level == "warn" ? "warning" : c.log_level));
    g_logger->flush_on(spdlog::level::info);
  } catch (const std::exception& e) {
    return Status::IoError(std::string("cannot open the log: ") + e.what());
  }
  return Status::Ok();
}

void Log(LogLevel level, std::string_view msg, const nlohmann::json& fields) {
  if (!g_logger) return;
  const auto lvl = ToSpd(level);
  if (!g_logger->should_log(lvl)) return;
  std::string line;
  try {
    if (g_json) {
      line = "\"msg\":" + nlohmann::json(std::string(msg)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      for (const auto& [k, v] : fields.items()) {
        line += "," + nlohmann::json(k).dump() + ":" + v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
    } else {
      line = std::string(msg);
      for (const auto& [k, v] : fields.items()) {
        line += " " + k + "=";
        if (v.is_string()) {
          const std::string& s = v.get_ref<const std::string&>();
          if (s.find_first_of(" \"=\n") == std::string::npos && !s.empty()) line += s;
          else line += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        } else {
          line += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
      }
    }
    g_logger->log(lvl, line);
  } catch (const std::exception&) {
    // A log line is never worth an exception across a thread.
  }
}

void FlushLog() {
  if (g_logger) g_logger->flush();
}

}  // namespace gavel::daemon
