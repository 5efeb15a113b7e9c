// See rule_sources.hpp.
#include "rules/store/rule_sources.hpp"

#include "rules/store/sqlite_util.hpp"

namespace gavel::rules {

namespace {

Status CreateTable(sqlite3* db) {
  return sqlite::Exec(db,
                      "CREATE TABLE IF NOT EXISTS rule_sources("
                      " kind TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,"
                      " file TEXT NOT NULL, line INTEGER NOT NULL, text TEXT NOT NULL,"
                      " PRIMARY KEY(kind, name, version))",
                      "rule sources: create");
}

}  // namespace

std::string DeclarationAt(const std::string& text, int line) {
  std::size_t pos = 0;
  for (int l = 1; l < line && pos < text.size(); ++l) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) return "";
    pos = nl + 1;
  }
  const std::size_t begin = pos;
  int depth = 0;
  bool opened = false, in_string = false, in_comment = false;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (in_comment) {
      if (c == '\n') in_comment = false;
      continue;
    }
    if (in_string) {
      if (c == '\\') ++pos;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '#') in_comment = true;
    else if (c == '"') in_string = true;
    else if (c == '{') ++depth, opened = true;
    else if (c == '}' && --depth == 0 && opened) return text.substr(begin, pos + 1 - begin);
  }
  return text.substr(begin);
}

Status RecordRuleSources(sqlite3* db, const dsl::Program& program, const dsl::SourceManager& sources) {
  Status s = CreateTable(db);
  if (!s.ok()) return s;
  auto st = sqlite::Prepare(db,
                            "INSERT OR IGNORE INTO rule_sources(kind, name, version, file, line, text)"
                            " VALUES(?, ?, ?, ?, ?, ?)",
                            "rule sources: record");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  auto put = [&](const char* kind, const std::string& name, const std::string& version, const std::string& file,
                 int line) -> Status {
    std::string text;
    for (std::size_t f = 0; f < sources.size(); ++f) {
      if (sources.file(static_cast<std::uint32_t>(f)).path == file) {
        text = DeclarationAt(sources.file(static_cast<std::uint32_t>(f)).text, line);
      }
    }
    sqlite::ResetGuard reset(q);
    sqlite::BindStatic(q, 1, kind);
    sqlite::BindStatic(q, 2, name);
    sqlite::BindStatic(q, 3, version);
    sqlite::BindStatic(q, 4, file);
    sqlite3_bind_int(q, 5, line);
    sqlite::BindStatic(q, 6, text);
    int rc = sqlite3_step(q);
    return rc == SQLITE_DONE ? Status::Ok() : sqlite::Error(db, rc, "rule sources: record");
  };
  for (const auto& r : program.rules) {
    if (Status e = put("rule", r.name, r.version, r.file, r.line); !e.ok()) return e;
  }
  for (const auto& j : program.journeys) {
    if (Status e = put("journey", j.name, j.version, j.file, j.line); !e.ok()) return e;
  }
  for (const auto& a : program.alerts) {
    if (Status e = put("alert", a.name, a.version, a.file, a.line); !e.ok()) return e;
  }
  return Status::Ok();
}

Result<RuleSource> FindRuleSource(sqlite3* db, const std::string& kind, const std::string& name,
                                  const std::string& version) {
  Status s = CreateTable(db);
  if (!s.ok()) return s;
  auto st = sqlite::Prepare(db,
                            "SELECT file, line, text FROM rule_sources WHERE kind = ? AND name = ? AND version = ?",
                            "rule sources: find");
  if (!st.ok()) return st.status();
  sqlite3_stmt* q = st.value().get();
  sqlite::BindStatic(q, 1, kind);
  sqlite::BindStatic(q, 2, name);
  sqlite::BindStatic(q, 3, version);
  int rc = sqlite3_step(q);
  if (rc == SQLITE_DONE) return Status::NotFound("the text of " + kind + " " + name + " version " + version + " was not recorded");
  if (rc != SQLITE_ROW) return sqlite::Error(db, rc, "rule sources: find");
  RuleSource out;
  out.kind = kind;
  out.name = name;
  out.version = version;
  out.file = std::string(sqlite::ColumnText(q, 0));
  out.line = sqlite3_column_int(q, 1);
  out.text = std::string(sqlite::ColumnText(q, 2));
  return out;
}

}  // namespace gavel::rules
