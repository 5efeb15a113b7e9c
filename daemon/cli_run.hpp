// `gavel run [--config FILE] [--listen HOST:PORT] [--ingest FILE.ndjson]...`: the daemon.
// See daemon/daemon.hpp and docs/operations.md.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace gavel::cli {

// Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 if the final flush failed, 2 for
// usage, configuration or start-up problems (the message says what and where).
int RunDaemon(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
