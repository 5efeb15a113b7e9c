// The SQL the compiler pushes down to the warehouse, run against a real SQLite warehouse made
// by the sample-data generator (examples/gen_sample_data.cpp): it must be valid, return one
// row per entity, and agree with a plain aggregation written by hand.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "dsl/compiler.hpp"

namespace {

namespace fs = std::filesystem;

// Generates the sample warehouse once per test run into a temp directory.
std::string SampleWarehouse() {
  static std::string path = [] {
    fs::path dir = fs::temp_directory_path() / ("gavel-sql-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string cmd = std::string(GAVEL_BINARY_DIR) + "/gavel-sample-data --out " + dir.string() +
                      " --leads 50 --events 200 > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return (dir / "warehouse.db").string();
  }();
  return path;
}

struct Db {
  sqlite3* db = nullptr;
  explicit Db(const std::string& path) { REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK); }
  ~Db() { sqlite3_close(db); }
  // Runs sql with :from/:to bound; returns rows as column-name -> text.
  std::vector<std::map<std::string, std::string>> Query(const std::string& sql, const std::string& from,
                                                         const std::string& to) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    INFO(sql << "\n" << sqlite3_errmsg(db));
    REQUIRE(rc == SQLITE_OK);
    int i_from = sqlite3_bind_parameter_index(st, ":from");
    int i_to = sqlite3_bind_parameter_index(st, ":to");
    if (i_from) sqlite3_bind_text(st, i_from, from.c_str(), -1, SQLITE_TRANSIENT);
    if (i_to) sqlite3_bind_text(st, i_to, to.c_str(), -1, SQLITE_TRANSIENT);
    std::vector<std::map<std::string, std::string>> rows;
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::map<std::string, std::string> row;
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const unsigned char* t = sqlite3_column_text(st, c);
        row[sqlite3_column_name(st, c)] = t ? reinterpret_cast<const char*>(t) : "";
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    return rows;
  }
};

std::shared_ptr<const gavel::dsl::Program> Playbooks() {
  auto r = gavel::dsl::Compile({std::string(GAVEL_SOURCE_DIR) + "/playbooks"});
  INFO(gavel::dsl::RenderText(r.sources, r.diags.list()));
  REQUIRE(r.program);
  return r.program;
}

}  // namespace

TEST_CASE("the CPA rule's pushed-down query returns one row per Meta ad set with the window's sums", "[sql]") {
  auto program = Playbooks();
  const gavel::dsl::CompiledRule* rule = nullptr;
  for (const auto& r : program->rules) {
    if (r.name == "pause_high_cpa") rule = &r;
  }
  REQUIRE(rule);
  REQUIRE(rule->queries.size() == 1);
  Db db(SampleWarehouse());
  auto rows = db.Query(rule->queries[0].sql, "2026-10-29", "2026-11-01");
  REQUIRE(!rows.empty());
  auto plain = db.Query(
      "SELECT adset_id, SUM(spend) AS s, SUM(conversions) AS c FROM adset_daily WHERE day >= :from AND day < :to "
      "AND channel = 'meta' GROUP BY adset_id ORDER BY adset_id",
      "2026-10-29", "2026-11-01");
  REQUIRE(rows.size() == plain.size());
  // a0 is sum(spend) and a1 sum(conversions), in the order the rule uses them.
  const auto& aggs = rule->queries[0].aggregates;
  REQUIRE(aggs.size() == 2);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i]["key"] == plain[i]["adset_id"]);
    CHECK(std::stod(rows[i]["a0"]) == Approx(std::stod(plain[i]["s"])));
    CHECK(std::stod(rows[i]["a1"]) == Approx(std::stod(plain[i]["c"])));
    CHECK(rows[i]["last_time"] <= "2026-10-31");
    CHECK(!rows[i]["name"].empty());
    CHECK(!rows[i]["target_cpa"].empty());
  }
}

TEST_CASE("every pushed-down query of every playbook is valid SQL on the sample warehouse", "[sql]") {
  auto program = Playbooks();
  Db db(SampleWarehouse());
  int queries = 0;
  for (const auto& r : program->rules) {
    for (const auto& q : r.queries) {
      bool daily = q.table != "campaign_hourly";
      auto rows = daily ? db.Query(q.sql, "2026-10-01", "2026-11-01")
                        : db.Query(q.sql, "2026-10-30 00:00:00", "2026-10-31 00:00:00");
      CHECK(!rows.empty());
      ++queries;
    }
  }
  for (const auto& a : program->alerts) {
    for (const auto& q : a.queries) {
      bool daily = q.table != "campaign_hourly";
      auto rows = daily ? db.Query(q.sql, "2026-10-01", "2026-11-01")
                        : db.Query(q.sql, "2026-10-30 00:00:00", "2026-10-31 00:00:00");
      CHECK(!rows.empty());
      ++queries;
    }
    for (const auto& an : a.anomalies) {
      auto rows = db.Query(an.history_sql, "2026-10-01 00:00:00", "2026-10-31 00:00:00");
      CHECK(rows.size() > 1000);  // one row per campaign and hour
      ++queries;
    }
  }
  CHECK(queries >= 6);
}

TEST_CASE("a lifetime window binds an empty lower bound and covers every row", "[sql]") {
  gavel::dsl::CompileOptions options;
  options.read_file = [](const std::string& path, std::string& out) {
    std::ifstream in(std::string(GAVEL_SOURCE_DIR) + "/playbooks/" + std::filesystem::path(path).filename().string());
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return static_cast<bool>(in);
  };
  auto r = gavel::dsl::CompileSources(
      {{"t.gavel", "import \"schema.gavel\"\n"
                   "rule lifetime_spend {\n  owner \"t@example.com\"\n  every 1d\n"
                   "  for each adset in adset_daily over lifetime where name like \"*Retarget*\" or channel == \"google\"\n"
                   "  when sum(spend) > 100000 USD\n  then pause adset\n}\n"}},
      options);
  INFO(gavel::dsl::RenderText(r.sources, r.diags.list()));
  REQUIRE(r.program);
  const auto& q = r.program->rules.at(0).queries.at(0);
  Db db(SampleWarehouse());
  auto rows = db.Query(q.sql, "", "9999");
  auto plain = db.Query(
      "SELECT COUNT(DISTINCT adset_id) AS n FROM adset_daily WHERE name LIKE '%Retarget%' OR channel = 'google'", "", "");
  CHECK(rows.size() == std::stoul(plain[0]["n"]));
}
