// Event parsing and validation. See event.hpp.
#include "rules/event.hpp"

#include <cmath>
#include <simdjson.h>

namespace gavel::rules {

namespace {

namespace dom = simdjson::dom;

const char* JsonKind(const dom::element& j) {
  switch (j.type()) {
    case dom::element_type::STRING: return "text";
    case dom::element_type::BOOL: return "true/false";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: return "a number";
    case dom::element_type::NULL_VALUE: return "null";
    case dom::element_type::ARRAY: return "a list";
    case dom::element_type::OBJECT: break;
  }
  return "an object";
}

bool IsNumber(const dom::element& j) {
  auto t = j.type();
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 || t == dom::element_type::DOUBLE;
}

Status Convert(const dsl::FieldInfo& f, const dom::element& j, OwnedValue& out) {
  using dsl::BaseType;
  auto mistyped = [&](const char* want) {
    return Status::InvalidArgument("field `" + f.name + "` must be " + want + ", got " + JsonKind(j));
  };
  switch (f.type.base) {
    case BaseType::kText: {
      std::string_view text;
      if (j.get_string().get(text)) return mistyped("text");
      out.kind = Value::Kind::kText;
      out.text.assign(text);
      return Status::Ok();
    }
    case BaseType::kBool: {
      bool b = false;
      if (j.get_bool().get(b)) return mistyped("true or false");
      out.kind = Value::Kind::kBool;
      out.num = b ? 1 : 0;
      return Status::Ok();
    }
    case BaseType::kTimestamp: {
      std::string_view text;
      TimeMs t;
      if (j.get_string().get(text) || !ParseTime(text, t)) return mistyped("an RFC 3339 time");
      out.kind = Value::Kind::kNumber;
      out.num = static_cast<double>(t);
      return Status::Ok();
    }
    case BaseType::kCount: {
      double v = 0;
      if (!IsNumber(j) || j.get_double().get(v)) return mistyped("a whole number");
      if (v < 0 || v != std::floor(v)) {
        return Status::InvalidArgument("field `" + f.name + "` is a count and must be a whole number >= 0");
      }
      out.kind = Value::Kind::kNumber;
      out.num = v;
      return Status::Ok();
    }
    default: {
      double v = 0;
      if (!IsNumber(j) || j.get_double().get(v)) return mistyped("a number");
      if (!std::isfinite(v)) return mistyped("a finite number");
      out.kind = Value::Kind::kNumber;
      out.num = v;
      return Status::Ok();
    }
  }
}

// One parser per thread: the daemon's HTTP workers parse concurrently. A parser keeps its
// buffers between calls, so parsing allocates nothing once warm.
dom::parser& Parser() {
  thread_local dom::parser parser;
  return parser;
}

}  // namespace

Status ParseEvent(const dsl::Program& program, std::string_view text, Event& out) {
  dom::element doc;
  if (auto error = Parser().parse(text.data(), text.size()).get(doc)) {
    return Status::InvalidArgument(std::string("not valid JSON (") + simdjson::error_message(error) + ")");
  }
  dom::object obj;
  if (doc.get_object().get(obj)) return Status::InvalidArgument("an event must be a JSON object");
  // One pass over the members: the envelope, and each member kept for its declared field.
  std::string_view type_name, id, time_text;
  bool has_type = false, has_id = false, has_time = false;
  for (auto member : obj) {
    if (member.key == "event") {
      has_type = !member.value.get_string().get(type_name);
    } else if (member.key == "id") {
      has_id = !member.value.get_string().get(id);
    } else if (member.key == "time") {
      has_time = !member.value.get_string().get(time_text);
    }
  }
  if (!has_type) return Status::InvalidArgument("missing `event` (the event's type, e.g. \"page_view\")");
  const dsl::EventInfo* info = program.FindEvent(std::string(type_name));
  if (!info) return Status::InvalidArgument("unknown event type `" + std::string(type_name) + "`");
  if (!has_id || id.empty()) return Status::InvalidArgument("missing `id` (a unique text per event)");
  if (id.size() > 256) return Status::InvalidArgument("`id` is longer than 256 characters");
  if (!has_time) return Status::InvalidArgument("missing `time` (RFC 3339, e.g. \"2026-11-01T09:00:00Z\")");
  TimeMs t = 0;
  if (!ParseTime(time_text, t)) {
    return Status::InvalidArgument("`time` is not an RFC 3339 time: \"" + std::string(time_text) + "\"");
  }
  out.type = info->name;
  out.type_index = static_cast<int>(info - program.events.data());
  out.id.assign(id);
  out.time = t;
  out.fields.resize(info->fields.size());
  // Members by declared field: each declared field exactly once, nothing undeclared.
  thread_local std::vector<dom::element> found;
  thread_local std::vector<std::uint8_t> seen;
  found.assign(info->fields.size(), dom::element());
  seen.assign(info->fields.size(), 0);
  for (auto member : obj) {
    if (member.key == "event" || member.key == "id" || member.key == "time") continue;
    std::size_t f = 0;
    while (f < info->fields.size() && info->fields[f].name != member.key) ++f;
    if (f == info->fields.size()) {
      return Status::InvalidArgument("unknown field `" + std::string(member.key) + "` for event `" + info->name + "`");
    }
    if (seen[f]) return Status::InvalidArgument("field `" + info->fields[f].name + "` is given twice");
    seen[f] = 1;
    found[f] = member.value;
  }
  for (std::size_t f = 0; f < info->fields.size(); ++f) {
    const dsl::FieldInfo& field = info->fields[f];
    if (!seen[f] || found[f].is_null()) return Status::InvalidArgument("missing field `" + field.name + "`");
    auto& slot = out.fields[f];
    if (slot.first != field.name) slot.first = field.name;
    slot.second = OwnedValue();
    Status s = Convert(field, found[f], slot.second);
    if (!s.ok()) return s;
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
