// Structured logs for the daemon (spdlog): one line per event, as text
// (`2026-11-23T22:10:00.123Z info reloaded rules=12 who=ops`) or as JSON lines
// (`{"time":"...","level":"info","msg":"reloaded","rules":12,"who":"ops"}`), chosen by
// `log.format` in the config. Fields are a JSON object so both forms carry the same data.
// Never pass a Secret's value here.
//
// Thread-safety: InitLogging once before any thread logs; Log from any thread (spdlog's
// sinks are the _mt variants).
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "daemon/config.hpp"

namespace gavel::daemon {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

Status InitLogging(const Config& c);
void Log(LogLevel level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());
void FlushLog();

}  // namespace gavel::daemon
