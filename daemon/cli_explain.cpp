// `gavel explain`. See cli_explain.hpp.
#include "daemon/cli_explain.hpp"

#include <cstdio>

#include "rules/store/decision_log.hpp"
#include "rules/store/rule_sources.hpp"

namespace gavel::cli {

namespace {

constexpr const char* kUsage =
    "usage: gavel explain ID --db FILE.db [--format text|json]\n"
    "       gavel explain --db FILE.db --rule RULE --entity TYPE:ID [--at TIME] [--format text|json]\n"
    "  Explains one decision: the rule text and version it ran, its trigger, the values it read,\n"
    "  the confidence computation, each gate's verdict and what the receivers answered. With\n"
    "  --rule and --entity: the latest decision of that rule about that entity (why it was or\n"
    "  was not acted on).\n"
    "exit status: 0 explained, 1 no such decision, 2 usage or I/O problems\n";

using Json = nlohmann::ordered_json;

std::string Scalar(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v.get<double>());
    return buf;
  }
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Pad(const std::string& s, std::size_t width) { return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' '); }

// The `action` records that report on decision `id`'s actions (they come after it).
std::vector<rules::Decision> Responses(const rules::DecisionLog& log, std::int64_t id) {
  std::vector<rules::Decision> out;
  rules::DecisionQuery q;
  q.kind = "action";
  q.after_id = id;
  q.limit = 0;
  auto rows = log.Query(q);
  if (!rows.ok()) return out;
  for (auto& d : rows.value()) {
    auto it = d.evidence.find("decision_id");
    if (it != d.evidence.end() && it->is_number_integer() && it->get<std::int64_t>() == id) out.push_back(std::move(d));
  }
  return out;
}

Json ExplainJson(const rules::DecisionLog& log, const rules::Decision& d) {
  Json j = rules::ToJson(d, true);
  j["id"] = d.id;
  auto source = rules::FindRuleSource(log.db(), d.kind, d.rule, d.version);
  if (source.ok()) {
    j["rule_text"] = {{"file", source.value().file}, {"line", source.value().line}, {"text", source.value().text}};
  }
  Json responses = Json::array();
  for (const auto& r : Responses(log, d.id)) {
    Json rj = rules::ToJson(r, false);
    rj["id"] = r.id;
    responses.push_back(rj);
  }
  j["responses"] = responses;
  return j;
}

void ExplainText(const rules::DecisionLog& log, const rules::Decision& d, std::ostream& out) {
  out << "decision " << d.id << " · " << d.kind << " " << d.rule;
  if (!d.version.empty()) out << " · version " << d.version.substr(0, 12);
  out << "\n";
  out << "  made      " << rules::FormatTime(d.processing_time) << " (input time " << rules::FormatTime(d.event_time)
      << ")\n";
  out << "  trigger   " << d.trigger << "\n";
  if (!d.entity_type.empty() || !d.entity_id.empty()) out << "  entity    " << d.entity_type << " " << d.entity_id << "\n";
  out << "  outcome   " << d.outcome;
  if (!d.reason.empty()) out << " (" << d.reason << ")";
  out << "\n";
  if (d.outcome == "skipped") {
    out << "  why not   ";
    if (d.reason == "stale_data") out << "the warehouse data was older than the table's freshness limit\n";
    else if (d.reason == "cooldown") out << "the rule acted on this entity recently (cooldown)\n";
    else if (d.reason == "limit") out << "the rule reached its `limit N per DURATION`\n";
    else if (d.reason == "below_confidence") out << "the condition held, but not at the required confidence\n";
    else if (d.reason == "error") out << "the rule could not read its data (see evidence.error)\n";
    else out << d.reason << "\n";
  }
  if (!d.version.empty()) {
    auto source = rules::FindRuleSource(log.db(), d.kind, d.rule, d.version);
    if (source.ok()) {
      out << "\nthe " << d.kind << " as it ran (" << source.value().file << ":" << source.value().line << ")\n";
      std::size_t pos = 0;
      int line = source.value().line;
      const std::string& text = source.value().text;
      while (pos <= text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string l = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        char num[16];
        std::snprintf(num, sizeof num, "%5d | ", line++);
        out << num << l << "\n";
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
    } else {
      out << "\n(the text of this version was not recorded: " << source.status().message() << ")\n";
    }
  }
  if (d.evidence.is_object() && !d.evidence.empty()) {
    out << "\nwhat it read\n";
    for (auto it = d.evidence.begin(); it != d.evidence.end(); ++it) {
      if (it.key() == "confidence") continue;
      if (it.key() == "window" && it->is_object()) {
        out << "  " << Pad("window", 28) << it->value("from", "") << " .. " << it->value("to", "") << "\n";
        continue;
      }
      out << "  " << Pad(it.key(), 28) << Scalar(it.value()) << "\n";
    }
    auto c = d.evidence.find("confidence");
    if (c != d.evidence.end() && c->is_object()) {
      out << "\nconfidence\n  at " << Scalar(Json(c->value("level", 0.0) * 100)) << "%: cost " << Scalar(c->value("cost", Json()))
          << ", count " << Scalar(c->value("count", Json())) << ", threshold " << Scalar(c->value("threshold", Json()))
          << " -> bound " << Scalar(c->value("bound", Json())) << ": " << (c->value("pass", false) ? "pass" : "not sure enough")
          << "\n";
    }
  }
  if (d.actions.is_array() && !d.actions.empty()) {
    out << "\nactions and gates\n";
    for (std::size_t i = 0; i < d.actions.size(); ++i) {
      const Json& a = d.actions[i];
      out << "  " << i + 1 << ". " << a.value("action", "?");
      if (a.contains("target")) out << " " << Scalar(a["target"]);
      if (a.contains("channel")) out << " " << Scalar(a["channel"]);
      if (a.contains("budget")) {
        out << " budget ";
        if (a.contains("before")) out << Scalar(a["before"]) << " -> ";
        out << Scalar(a["budget"]) << " " << a.value("currency", "");
      }
      out << "  -> " << a.value("disposition", a.value("mode", "")) << "\n";
      if (a.contains("gates")) {
        out << "       ";
        bool first = true;
        for (const auto& g : a["gates"]) {
          out << (first ? "" : " · ") << g.value("gate", "?") << " " << g.value("verdict", "?");
          if (g.contains("detail")) out << " (" << g.value("detail", "") << ")";
          first = false;
        }
        out << "\n";
      }
    }
  }
  auto responses = Responses(log, d.id);
  if (!responses.empty()) {
    out << "\nwhat the receivers answered\n";
    for (const auto& r : responses) {
      const Json& res = r.evidence.contains("result") ? r.evidence["result"] : Json();
      out << "  " << rules::FormatTime(r.processing_time) << "  #" << r.id << "  action "
          << r.evidence.value("action_index", 0) + 1 << "  " << r.outcome << "  attempt "
          << Scalar(r.evidence.value("attempt", Json(0)));
      if (res.is_object()) {
        if (res.value("http_status", 0) != 0) out << "  HTTP " << res.value("http_status", 0);
        out << "  " << Scalar(res.value("latency_ms", Json(0))) << " ms";
        if (!res.value("error", "").empty()) out << "  " << res.value("error", "");
        if (res.contains("before")) out << "  before " << Scalar(res["before"]);
        if (res.contains("after")) out << "  after " << Scalar(res["after"]);
      }
      out << "\n";
    }
  }
  out << "\nchain  prev " << d.prev_hash.substr(0, 16) << "…  hash " << d.hash.substr(0, 16)
      << "…  (check the whole log: gavel log verify --db FILE)\n";
}

}  // namespace

int RunExplain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string db_path, format = "text", rule, entity, at_text;
  std::int64_t id = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    }
    if (!a.empty() && a[0] != '-') {
      try {
        std::size_t used = 0;
        id = std::stoll(a, &used);
        if (used != a.size() || id <= 0) throw std::invalid_argument(a);
      } catch (const std::exception&) {
        err << "gavel explain: `" << a << "` is not a decision id (a positive number)\n" << kUsage;
        return 2;
      }
      continue;
    }
    if (i + 1 >= args.size()) {
      err << "gavel explain: unknown or incomplete argument `" << a << "`\n" << kUsage;
      return 2;
    }
    std::string v = args[++i];
    if (a == "--db") db_path = v;
    else if (a == "--format") format = v;
    else if (a == "--rule") rule = v;
    else if (a == "--entity") entity = v;
    else if (a == "--at") at_text = v;
    else {
      err << "gavel explain: unknown argument `" << a << "`\n" << kUsage;
      return 2;
    }
  }
  if (db_path.empty() || (id == 0 && (rule.empty() || entity.empty()))) {
    err << "gavel explain: give --db and a decision id, or --rule and --entity\n" << kUsage;
    return 2;
  }
  if (format != "text" && format != "json") {
    err << "gavel explain: --format must be `text` or `json`\n";
    return 2;
  }
  rules::TimeMs at = 0;
  if (!at_text.empty() && !rules::ParseTime(at_text, at)) {
    err << "gavel explain: --at is not an RFC 3339 time: " << at_text << "\n";
    return 2;
  }
  auto opened = rules::DecisionLog::Open(db_path);
  if (!opened.ok()) {
    err << "gavel explain: " << opened.status().message() << "\n";
    return 2;
  }
  rules::DecisionLog& log = *opened.value();
  rules::Decision d;
  if (id > 0) {
    auto got = log.Get(id);
    if (!got.ok()) {
      err << "gavel explain: " << got.status().message() << "\n";
      return got.status().code() == Status::Code::kNotFound ? 1 : 2;
    }
    d = std::move(got.value());
  } else {
    auto colon = entity.find(':');
    if (colon == std::string::npos) {
      err << "gavel explain: --entity is TYPE:ID, e.g. adset_daily:adset-100123\n";
      return 2;
    }
    rules::DecisionQuery q;
    q.rule = rule;
    q.entity_type = entity.substr(0, colon);
    q.entity_id = entity.substr(colon + 1);
    if (!at_text.empty()) q.to = at + 1, q.time_field = rules::TimeField::kEvent;
    q.limit = 0;
    auto rows = log.Query(q);
    if (!rows.ok()) {
      err << "gavel explain: " << rows.status().message() << "\n";
      return 2;
    }
    if (rows.value().empty()) {
      out << "no decision of `" << rule << "` about " << entity << (at_text.empty() ? "" : " up to " + at_text)
          << " is in the log.\n";
      // Evaluations that did not fire are counted in summaries.
      rules::DecisionQuery sq;
      sq.kind = "summary";
      sq.limit = 0;
      auto sums = log.Query(sq);
      std::int64_t counted = 0;
      if (sums.ok()) {
        for (const auto& s : sums.value()) {
          auto nf = s.evidence.find("not_fired");
          if (nf == s.evidence.end() || !nf->is_object()) continue;
          auto c = nf->find("rule:" + rule);
          if (c != nf->end() && c->is_number_integer()) counted += c->get<std::int64_t>();
        }
      }
      out << "Evaluations that do not fire are counted per rule in summary records, not logged one by one:\n"
             "`"
          << rule << "` did not fire " << counted
          << " times in all. If this entity was evaluated, its condition did not hold; log every\n"
             "evaluation (replay --all-evaluations) to see each one with the values it read.\n";
      return 1;
    }
    d = std::move(rows.value().back());
  }
  if (format == "json") {
    out << ExplainJson(log, d).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    ExplainText(log, d, out);
  }
  return 0;
}

}  // namespace gavel::cli
