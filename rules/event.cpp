// Event parsing and validation. See event.hpp.
#include "rules/event.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

namespace gavel::rules {

namespace {

const char* JsonKind(const nlohmann::json& j) {
  if (j.is_string()) return "text";
  if (j.is_boolean()) return "true/false";
  if (j.is_number()) return "a number";
  if (j.is_null()) return "null";
  if (j.is_array()) return "a list";
  return "an object";
}

Status Convert(const dsl::FieldInfo& f, const nlohmann::json& j, OwnedValue& out) {
  using dsl::BaseType;
  auto mistyped = [&](const char* want) {
    return Status::InvalidArgument("field `" + f.name + "` must be " + want + ", got " + JsonKind(j));
  };
  switch (f.type.base) {
    case BaseType::kText:
      if (!j.is_string()) return mistyped("text");
      out.kind = Value::Kind::kText;
      out.text = j.get<std::string>();
      return Status::Ok();
    case BaseType::kBool:
      if (!j.is_boolean()) return mistyped("true or false");
      out.kind = Value::Kind::kBool;
      out.num = j.get<bool>() ? 1 : 0;
      return Status::Ok();
    case BaseType::kTimestamp: {
      TimeMs t;
      if (!j.is_string() || !ParseTime(j.get<std::string>(), t)) return mistyped("an RFC 3339 time");
      out.kind = Value::Kind::kNumber;
      out.num = static_cast<double>(t);
      return Status::Ok();
    }
    case BaseType::kCount: {
      if (!j.is_number()) return mistyped("a whole number");
      double v = j.get<double>();
      if (v < 0 || v != std::floor(v)) {
        return Status::InvalidArgument("field `" + f.name + "` is a count and must be a whole number >= 0");
      }
      out.kind = Value::Kind::kNumber;
      out.num = v;
      return Status::Ok();
    }
    default: {
      if (!j.is_number()) return mistyped("a number");
      double v = j.get<double>();
      if (!std::isfinite(v)) return mistyped("a finite number");
      out.kind = Value::Kind::kNumber;
      out.num = v;
      return Status::Ok();
    }
  }
}

}  // namespace

Status ParseEvent(const dsl::Program& program, std::string_view text, Event& out) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("an event must be a JSON object");
  auto type = j.find("event");
  if (type == j.end() || !type->is_string()) {
    return Status::InvalidArgument("missing `event` (the event's type, e.g. \"page_view\")");
  }
  const dsl::EventInfo* info = program.FindEvent(type->get<std::string>());
  if (!info) return Status::InvalidArgument("unknown event type `" + type->get<std::string>() + "`");
  auto id = j.find("id");
  if (id == j.end() || !id->is_string() || id->get<std::string>().empty()) {
    return Status::InvalidArgument("missing `id` (a unique text per event)");
  }
  if (id->get<std::string>().size() > 256) return Status::InvalidArgument("`id` is longer than 256 characters");
  auto time = j.find("time");
  TimeMs t = 0;
  if (time == j.end() || !time->is_string()) {
    return Status::InvalidArgument("missing `time` (RFC 3339, e.g. \"2026-11-01T09:00:00Z\")");
  }
  if (!ParseTime(time->get<std::string>(), t)) {
    return Status::InvalidArgument("`time` is not an RFC 3339 time: \"" + time->get<std::string>() + "\"");
  }
  out = Event();
  out.type = info->name;
  out.type_index = static_cast<int>(info - program.events.data());
  out.id = id->get<std::string>();
  out.time = t;
  for (const auto& f : info->fields) {
    auto it = j.find(f.name);
    if (it == j.end() || it->is_null()) return Status::InvalidArgument("missing field `" + f.name + "`");
    OwnedValue v;
    Status s = Convert(f, *it, v);
    if (!s.ok()) return s;
    out.fields.emplace_back(f.name, std::move(v));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "event" || k == "id" || k == "time") continue;
    bool known = false;
    for (const auto& f : info->fields) known |= f.name == k;
    if (!known) return Status::InvalidArgument("unknown field `" + k + "` for event `" + info->name + "`");
  }
  return Status::Ok();
}

Status NormalizeEvent(const dsl::Program& program, Event& e) {
  const dsl::EventInfo* info = program.FindEvent(e.type);
  if (!info) return Status::InvalidArgument("unknown event type `" + e.type + "`");
  std::vector<std::pair<std::string, OwnedValue>> ordered;
  ordered.reserve(info->fields.size());
  for (const auto& f : info->fields) {
    const OwnedValue* v = e.Get(f.name);
    if (!v) return Status::InvalidArgument("missing field `" + f.name + "`");
    ordered.emplace_back(f.name, *v);
  }
  for (const auto& [name, v] : e.fields) {
    bool known = false;
    for (const auto& f : info->fields) known |= f.name == name;
    if (!known) return Status::InvalidArgument("unknown field `" + name + "` for event `" + info->name + "`");
  }
  e.fields = std::move(ordered);
  e.type_index = static_cast<int>(info - program.events.data());
  return Status::Ok();
}

}  // namespace gavel::rules
