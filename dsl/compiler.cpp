// The checker and code generator. See compiler.hpp.
//
// One pass per unit (score, rule, journey, alert): expressions are type-checked and emitted
// as bytecode at the same time; a sub-expression whose type is kError already has its
// diagnostic, and everything built on it stays quiet (no cascades).
#include "dsl/compiler.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "dsl/base/sha256.hpp"
#include "dsl/units.hpp"

namespace gavel::dsl {
namespace fs = std::filesystem;

bool SystemZoneExists(const std::string& zone) {
  if (zone == "UTC") return true;
  if (zone.empty() || zone.size() > 64 || zone.front() == '/' || zone.find("..") != std::string::npos) {
    return false;
  }
  for (char c : zone) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+')) {
      return false;
    }
  }
  std::error_code ec;
  return fs::is_regular_file(fs::path("/usr/share/zoneinfo") / zone, ec);
}

namespace {

bool ReadDiskFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return false;
  out = ss.str();
  return true;
}

// Normalised source for version hashes: comments dropped, blanks folded, strings kept.
std::string Normalise(std::string_view text) {
  std::string out;
  bool space = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
      space = true;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    if (c == '"') {
      std::size_t j = i + 1;
      while (j < text.size() && text[j] != '"' && text[j] != '\n') j += text[j] == '\\' ? 2 : 1;
      j = std::min(j, text.size() - 1);
      out.append(text.substr(i, j - i + 1));
      i = j;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string QuoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += "\"\"";
    else out.push_back(c);
  }
  return out + "\"";
}

// "mart.adset_daily" -> "mart"."adset_daily"
std::string QuoteRelation(const std::string& source) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    std::size_t dot = source.find('.', pos);
    out += QuoteIdent(source.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos));
    if (dot == std::string::npos) break;
    out += ".";
    pos = dot + 1;
  }
  return out;
}

std::string SqlString(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else out.push_back(c);
  }
  return out + "'";
}

std::string SqlNumber(double v) {
  std::ostringstream ss;
  ss.precision(17);
  ss << v;
  return ss.str();
}

const char* AggName(AggFn f) {
  switch (f) {
    case AggFn::kSum: return "SUM";
    case AggFn::kAvg: return "AVG";
    case AggFn::kMin: return "MIN";
    case AggFn::kMax: return "MAX";
    case AggFn::kCount: return "COUNT";
  }
  return "SUM";
}

struct UnitCtx {
  std::string kind;                       // "rule", "alert", "score", "journey"
  const EventInfo* event = nullptr;       // bare names may be this event's fields
  const EntityInfo* entity = nullptr;     // entity.field and the entity's scores
  const TableInfo* table = nullptr;       // scheduled units: the table in scope
  std::string var;                        // the `for each` / `across` variable
  bool row_level = false;                 // a `where` pushed to SQL: columns, no aggregates
  std::vector<SlotRef>* slots = nullptr;
  std::map<std::string, std::pair<int, TypeRef>> lets;     // name -> slot, type
  std::map<std::string, const Expr*> let_exprs;
  std::set<std::string> used_lets;
  std::vector<WindowQuery>* queries = nullptr;
  std::vector<AnomalySpec>* anomalies = nullptr;
  std::vector<Window> windows;            // innermost last; back() applies to aggregates
  std::string where_sql;
  std::set<std::string>* deps = nullptr;  // declarations this unit reads (for its version)
  // The trigger's event or score, or the scope's table, is unknown (already reported): names
  // and aggregates that would have come from it are not reported again.
  bool unresolved = false;
  bool in_template = false;               // resolving a `{placeholder}` of a message
  // Slot()'s index over *slots, (kind, name, index, query) -> slot: a unit with thousands of
  // `let`s would otherwise cost slots^2. Rebuilt when it is not in step with *slots.
  std::map<std::tuple<SlotKind, std::string, int, int>, int> slot_index;
  const std::vector<SlotRef>* slot_index_of = nullptr;
  std::size_t slot_index_size = 0;
};

class Compiler {
 public:
  Compiler(CompileResult& r, const CompileOptions& o) : r_(r), o_(o), d_(r.diags) {}

  // ---------------------------------------------------------------- loading

  void LoadAll(const std::vector<std::pair<std::string, std::string>>& named) {
    for (const auto& [name, text] : named) Enqueue(name, text, Span{});
    Drain();
  }

  bool LoadPaths(const std::vector<std::string>& paths) {
    std::vector<std::string> files;
    for (const auto& p : paths) {
      std::error_code ec;
      if (fs::is_directory(p, ec)) {
        std::vector<std::string> found;
        for (fs::recursive_directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
          if (it->is_regular_file(ec) && it->path().extension() == ".gavel") {
            found.push_back(it->path().string());
          }
        }
        if (ec) {
          r_.io_error = "cannot read directory " + p + ": " + ec.message();
          return false;
        }
        std::sort(found.begin(), found.end());
        if (found.empty()) {
          r_.io_error = "no .gavel files in directory " + p;
          return false;
        }
        files.insert(files.end(), found.begin(), found.end());
      } else if (fs::exists(p, ec)) {
        files.push_back(p);
      } else {
        r_.io_error = "cannot read " + p + ": no such file or directory";
        return false;
      }
    }
    for (const auto& f : files) {
      std::string text;
      if (!Read(f, text)) {
        r_.io_error = "cannot read " + f;
        return false;
      }
      Enqueue(f, std::move(text), Span{});
    }
    Drain();
    return true;
  }

  bool Read(const std::string& path, std::string& out) {
    if (o_.read_file) return o_.read_file(path, out);
    return ReadDiskFile(path, out);
  }

  static std::string Canonical(const std::string& path) {
    std::error_code ec;
    fs::path c = fs::weakly_canonical(fs::path(path), ec);
    return ec ? fs::path(path).lexically_normal().string() : c.string();
  }

  // `import_span` is the import that asked for the file (end == 0 for a file named by the
  // caller). Imported files are libraries: what they declare need not all be used.
  void Enqueue(const std::string& name, std::string text, Span import_span) {
    std::string key = Canonical(name);
    if (loaded_.count(key)) return;
    loaded_.insert(key);
    std::uint32_t id = r_.sources.Add(name, std::move(text));
    if (import_span.end != 0) imported_files_.insert(id);
    pending_.push_back(id);
  }

  void Drain() {
    while (!pending_.empty()) {
      std::uint32_t id = pending_.front();
      pending_.erase(pending_.begin());
      std::size_t before = d_.list().size();
      files_.push_back(ParseFile(r_.sources, id, d_, o_.limits));
      for (std::size_t i = before; i < d_.list().size(); ++i) {
        static const std::set<std::string> kDropsDeclarations = {
            "syntax", "unknown-clause", "too-deep", "file-too-large", "binary-file"};
        if (kDropsDeclarations.count(d_.list()[i].code)) declarations_dropped_ = true;
      }
      File& f = files_.back();
      for (const auto& imp : f.imports) {
        fs::path base = fs::path(r_.sources.file(id).path).parent_path();
        std::string target = (base / imp.path).lexically_normal().string();
        if (loaded_.count(Canonical(target))) continue;
        if (static_cast<int>(r_.sources.size()) >= o_.max_files) {
          d_.Error("too-many-files", imp.span, "too many files in one program (the limit is " +
                                                   std::to_string(o_.max_files) + ")");
          continue;
        }
        std::string text;
        if (!Read(target, text)) {
          d_.Error("missing-import", imp.span, "cannot read imported file `" + target + "`",
                   "import paths are relative to the importing file");
          loaded_.insert(Canonical(target));
          continue;
        }
        Enqueue(target, std::move(text), imp.span);
      }
    }
  }

  // ---------------------------------------------------------------- helpers

  std::string Where(const Span& s) const {
    LineCol lc = r_.sources.Position(s.file, s.begin);
    return r_.sources.file(s.file).path + ":" + std::to_string(lc.line);
  }
  int Line(const Span& s) const { return static_cast<int>(r_.sources.Position(s.file, s.begin).line); }

  bool ZoneOk(const std::string& zone) const {
    return o_.zone_exists ? o_.zone_exists(zone) : SystemZoneExists(zone);
  }

  void CheckZone(const std::string& zone, Span span) {
    if (!ZoneOk(zone)) {
      d_.Error("unknown-zone", span, "`" + zone + "` is not a time zone",
               "use an IANA name such as \"America/New_York\", \"Europe/Berlin\" or \"UTC\"");
    }
  }

  // Registers a name in the global namespace of its kind; reports duplicates.
  bool Declare(std::map<std::string, Span>& space, const Ident& id, const char* what) {
    auto [it, inserted] = space.emplace(id.name, id.span);
    if (!inserted) {
      d_.Error("duplicate-name", id.span,
               std::string(what) + " `" + id.name + "` is declared twice",
               "the first one is at " + Where(it->second) + "; rename one of them");
      return false;
    }
    return true;
  }

  static FieldInfo ToField(const FieldDecl& f) {
    FieldInfo fi;
    fi.name = f.name.name;
    fi.type = f.type;
    if (f.default_value) {
      fi.has_default = true;
      fi.default_text = f.default_value->text;
      fi.default_number = f.default_value->number;
      fi.default_bool = f.default_value->number != 0;
    }
    return fi;
  }

  static const FieldInfo* FindField(const std::vector<FieldInfo>& fs, const std::string& name) {
    for (const auto& f : fs) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  // ---------------------------------------------------------------- schema

  void CollectSchema() {
    std::map<std::string, Span> tables, events, entities;
    for (const File& f : files_) {
      for (const auto& t : f.tables) {
        if (!Declare(tables, t.name, "table")) continue;
        TableInfo ti;
        ti.name = t.name.name;
        ti.source = t.source;
        ti.key = t.key.name;
        ti.time_column = t.time_column.name;
        ti.grain = t.grain == Grain::kNone ? Grain::kDay : t.grain;
        ti.timezone = t.timezone;
        ti.freshness_seconds = t.freshness_seconds;
        if (t.timezone_span.end) CheckZone(t.timezone, t.timezone_span);
        std::set<std::string> seen = {ti.key, ti.time_column};
        for (const auto* list : {&t.dims, &t.facts}) {
          for (const auto& fd : *list) {
            if (fd.default_value) {
              d_.Error("bad-default", fd.default_value->span, "warehouse columns cannot have defaults",
                       "the warehouse provides every value; defaults belong to entity fields");
            }
          }
        }
        for (const auto& fd : t.dims) {
          if (!seen.insert(fd.name.name).second) DuplicateField(fd, "table `" + t.name.name + "`");
          ti.dims.push_back(ToField(fd));
        }
        for (const auto& fd : t.facts) {
          if (!seen.insert(fd.name.name).second) DuplicateField(fd, "table `" + t.name.name + "`");
          BaseType b = fd.type.base;
          if (b != BaseType::kError && !IsNumeric(b)) {
            d_.Error("bad-fact", fd.type.span,
                     "fact `" + fd.name.name + "` must be a measure (money, count, number, ratio, "
                     "percent or duration), not " + TypeName(fd.type),
                     "descriptive columns go under `dims`");
          }
          ti.facts.push_back(ToField(fd));
        }
        table_spans_[ti.name] = t.span;
        program_.tables.push_back(std::move(ti));
      }
      for (const auto& e : f.entities) {
        if (!Declare(entities, e.name, "entity")) continue;
        EntityInfo ei;
        ei.name = e.name.name;
        ei.key = e.key.name;
        std::set<std::string> seen = {ei.key};
        for (const auto& fd : e.fields) {
          if (!seen.insert(fd.name.name).second) DuplicateField(fd, "entity `" + ei.name + "`");
          if (fd.default_value) CheckDefault(fd);
          ei.fields.push_back(ToField(fd));
        }
        decl_spans_["entity " + ei.name] = e.span;
        program_.entities.push_back(std::move(ei));
      }
    }
    for (const File& f : files_) {
      for (const auto& e : f.events) {
        if (!Declare(events, e.name, "event")) continue;
        EventInfo ev;
        ev.name = e.name.name;
        std::set<std::string> seen;
        static const std::set<std::string> kEnvelope = {"id", "time", "event"};
        for (const auto& fd : e.fields) {
          if (kEnvelope.count(fd.name.name)) {
            d_.Error("reserved-field", fd.name.span,
                     "`" + fd.name.name + "` is part of every event's envelope and cannot be declared",
                     "every event already has `id`, `time` and `event`");
            continue;
          }
          if (!seen.insert(fd.name.name).second) DuplicateField(fd, "event `" + ev.name + "`");
          if (fd.default_value) {
            d_.Error("bad-default", fd.default_value->span, "event fields cannot have defaults",
                     "an event must carry every field it declares");
          }
          ev.fields.push_back(ToField(fd));
        }
        for (const auto& en : program_.entities) {
          if (FindField(ev.fields, en.key)) ev.entities.push_back(en.name);
        }
        if (e.updates) {
          const EntityInfo* en = program_.FindEntity(e.updates->name);
          if (!en) {
            UnknownName(e.updates->name, e.updates->span, EntityNames(), "entity");
          } else {
            ev.updates = en->name;
            if (!FindField(ev.fields, en->key)) {
              d_.Error("missing-key-field", e.updates->span,
                       "event `" + ev.name + "` updates `" + en->name + "` but has no `" + en->key +
                           "` field to say which one",
                       "add `" + en->key + ": text` to the event");
            }
            for (const auto& fld : ev.fields) {
              const FieldInfo* target = FindField(en->fields, fld.name);
              if (target && !Compatible(target->type, fld.type)) {
                d_.Error("unit-mismatch", e.name.span,
                         "field `" + fld.name + "` is " + TypeName(fld.type) + " here but " +
                             TypeName(target->type) + " in entity `" + en->name + "`");
              }
            }
          }
        }
        decl_spans_["event " + ev.name] = e.span;
        event_index_.emplace(ev.name, program_.events.size());
        program_.events.push_back(std::move(ev));
      }
    }
  }

  void DuplicateField(const FieldDecl& fd, const std::string& owner) {
    d_.Error("duplicate-name", fd.name.span,
             "field `" + fd.name.name + "` appears twice in " + owner, "remove one of them");
  }

  void CheckDefault(const FieldDecl& fd) {
    const Expr& v = *fd.default_value;
    BaseType want = fd.type.base;
    bool ok = (v.kind == ExprKind::kString && want == BaseType::kText) ||
              (v.kind == ExprKind::kBool && want == BaseType::kBool) ||
              (v.kind == ExprKind::kNumber && IsNumeric(want) && want != BaseType::kDuration) ||
              (v.kind == ExprKind::kDuration && want == BaseType::kDuration);
    if (!ok && want != BaseType::kError) {
      d_.Error("bad-default", v.span,
               "the default of `" + fd.name.name + "` must be a constant of type " + TypeName(fd.type));
    }
  }

  // program_.FindEvent through an index: thousands of rules naming thousands of events must
  // not cost rules x events.
  const EventInfo* FindEvent(const std::string& name) const {
    auto it = event_index_.find(name);
    return it == event_index_.end() ? nullptr : &program_.events[it->second];
  }

  // The names of all events, for suggestions; kept, since events are all declared before any
  // unit is checked (thousands of unknown names must not copy thousands of names each).
  const std::vector<std::string>& EventNames() {
    if (event_names_.size() != program_.events.size()) {
      event_names_.clear();
      for (const auto& e : program_.events) event_names_.push_back(e.name);
    }
    return event_names_;
  }

  std::vector<std::string> EntityNames() const {
    std::vector<std::string> v;
    for (const auto& e : program_.entities) v.push_back(e.name);
    return v;
  }

  // "unknown event `x`", or with an owner: "table `adset_daily` has no column `x`". The hint
  // suggests the closest candidate, or lists them all when there are few.
  void UnknownName(const std::string& name, Span span, const std::vector<std::string>& candidates,
                   const std::string& what, const std::string& owner = {}) {
    std::string s;
    if (suggestion_budget_ > 0) {
      suggestion_budget_ -= static_cast<long>(candidates.size());
      s = ClosestMatch(name, candidates);
    }
    std::string hint;
    if (!s.empty()) {
      hint = "did you mean `" + s + "`?";
    } else if (!candidates.empty() && candidates.size() <= 12) {
      hint = owner.empty() ? "known " + what + "s: " : "the " + what + "s of " + owner + " are ";
      for (std::size_t i = 0; i < candidates.size(); ++i) hint += (i ? ", " : "") + candidates[i];
    }
    // A name of thousands of letters is shown by its start (the caret marks all of it).
    std::string shown = name.size() > 60 ? name.substr(0, 57) + "..." : name;
    d_.Error("unknown-name", span,
             owner.empty() ? "unknown " + what + " `" + shown + "`"
                           : owner + " has no " + what + " `" + shown + "`",
             hint);
  }

  // ---------------------------------------------------------------- slots

  int Slot(UnitCtx& c, SlotKind kind, const std::string& name, int index, int query, TypeRef type) {
    auto& slots = *c.slots;
    if (c.slot_index_of != &slots || c.slot_index_size != slots.size()) {
      c.slot_index.clear();
      for (std::size_t i = 0; i < slots.size(); ++i) {
        c.slot_index.emplace(std::make_tuple(slots[i].kind, slots[i].name, slots[i].index,
                                             slots[i].query),
                             static_cast<int>(i));
      }
      c.slot_index_of = &slots;
      c.slot_index_size = slots.size();
    }
    auto [it, inserted] = c.slot_index.emplace(std::make_tuple(kind, name, index, query),
                                               static_cast<int>(slots.size()));
    if (!inserted) return it->second;
    ++c.slot_index_size;
    SlotRef s;
    s.kind = kind;
    s.name = name;
    s.index = index;
    s.query = query;
    s.type = type;
    slots.push_back(s);
    return static_cast<int>(slots.size() - 1);
  }

  // The window query for the innermost window of `c`, created on first use.
  int Query(UnitCtx& c, Span at) {
    if (c.windows.empty() || c.windows.back().kind == WindowKind::kNone) {
      // One report per unit: every aggregate of the unit misses the same window.
      if (!missing_window_reported_) {
        missing_window_reported_ = true;
        std::string example = c.table->grain == Grain::kHour ? "24h" : "3d";
        d_.Error("missing-window", at,
                 "an aggregate needs a window, and this " + c.kind + " has none",
                 "say how far back to look: `" + std::string(across_ ? "across " : "for each ") + c.var +
                     " in " + c.table->name + " over last " + example + "`");
      }
      return -1;
    }
    const Window& w = c.windows.back();
    for (std::size_t i = 0; i < c.queries->size(); ++i) {
      const Window& o = (*c.queries)[i].window;
      if (o.kind == w.kind && o.seconds == w.seconds) return static_cast<int>(i);
    }
    WindowQuery q;
    q.table = c.table->name;
    q.window = w;
    c.queries->push_back(std::move(q));
    return static_cast<int>(c.queries->size() - 1);
  }

  // "sum(spend)" for the unit's own window, "sum(spend) over last 1h" for another one.
  std::string AggLabel(UnitCtx& c, int query, AggFn fn, const std::string& column) {
    static const char* kNames[] = {"sum", "avg", "min", "max", "count"};
    std::string label = std::string(kNames[static_cast<int>(fn)]) + "(" + column + ")";
    const Window& w = (*c.queries)[query].window;
    if (query > 0 || (c.windows.size() > 1)) {
      switch (w.kind) {
        case WindowKind::kLast: {
          std::int64_t s = w.seconds;
          label += " over last " + (s % 86400 == 0 ? std::to_string(s / 86400) + "d"
                                  : s % 3600 == 0 ? std::to_string(s / 3600) + "h"
                                                  : std::to_string(s / 60) + "m");
          break;
        }
        case WindowKind::kLifetime: label += " over lifetime"; break;
        case WindowKind::kYesterday: label += " over yesterday"; break;
        case WindowKind::kToday: label += " over today"; break;
        case WindowKind::kNone: break;
      }
    }
    return label;
  }

  int Aggregate(UnitCtx& c, int query, AggFn fn, const std::string& column) {
    auto& aggs = (*c.queries)[query].aggregates;
    for (std::size_t i = 0; i < aggs.size(); ++i) {
      if (aggs[i].fn == fn && aggs[i].column == column) return static_cast<int>(i);
    }
    aggs.push_back({fn, column});
    return static_cast<int>(aggs.size() - 1);
  }

  // ---------------------------------------------------------------- expressions

  TypeRef Err() { return TypeRef{}; }
  static TypeRef T(BaseType b, std::string cur = {}) {
    TypeRef t;
    t.base = b;
    t.currency = std::move(cur);
    return t;
  }

  void EmitLoad(CompiledExpr& out, int slot) { out.code.push_back({OpCode::kLoad, static_cast<std::uint32_t>(slot)}); }

  // Resolves a path to a slot. Returns the type (kError after a diagnostic).
  TypeRef EmitPath(const Expr& e, CompiledExpr& out, UnitCtx& c, bool in_aggregate_window) {
    const std::string& head = e.path[0];
    if (e.path.size() > 2) {
      d_.Error("unknown-name", e.span, "`" + Join(e.path) + "` has too many parts",
               "write `name` or `entity.field`");
      return Err();
    }
    if (e.path.size() == 1) {
      if (auto it = c.lets.find(head); it != c.lets.end()) {
        c.used_lets.insert(head);
        EmitLoad(out, it->second.first);
        return it->second.second;
      }
      if (c.event) {
        if (const FieldInfo* f = FindField(c.event->fields, head)) {
          EmitLoad(out, Slot(c, SlotKind::kEventField, head, -1, -1, f->type));
          return f->type;
        }
      }
      if (c.entity) {
        if (const CompiledScore* s = FindScore(head, c.entity->name)) {
          Dep(c, "score " + s->name);
          EmitLoad(out, Slot(c, SlotKind::kScore, head, -1, -1, T(BaseType::kNumber)));
          return T(BaseType::kNumber);
        }
        if (head == c.entity->name) {
          d_.Error("not-a-value", e.span, "`" + head + "` is an entity, not a value",
                   "name one of its fields, such as `" + head + "." + c.entity->key + "`");
          return Err();
        }
      }
      if (c.table) {
        TypeRef t;
        if (TableColumn(c, head, e.span, in_aggregate_window, out, t)) return t;
        if (head == c.var) {
          d_.Error("not-a-value", e.span, "`" + head + "` is a row of `" + c.table->name + "`, not a value",
                   "name one of its columns, such as `" + head + "." + c.table->key + "`");
          return Err();
        }
      }
      if (c.unresolved) return Err();
      if (FindScore(head, "")) {
        d_.Error("unknown-name", e.span,
                 "score `" + head + "` belongs to another entity than this " + c.kind + " works on");
        return Err();
      }
      UnknownName(head, e.span, VisibleNames(c), "name");
      return Err();
    }
    const std::string& field = e.path[1];
    Span fspan = e.path_spans[1];
    if (c.entity && head == c.entity->name) {
      Dep(c, "entity " + c.entity->name);
      if (field == c.entity->key) {
        EmitLoad(out, Slot(c, SlotKind::kEntityKey, field, -1, -1, T(BaseType::kText)));
        return T(BaseType::kText);
      }
      if (const FieldInfo* f = FindField(c.entity->fields, field)) {
        EmitLoad(out, Slot(c, SlotKind::kEntityField, field, -1, -1, f->type));
        return f->type;
      }
      if (const CompiledScore* s = FindScore(field, c.entity->name)) {
        Dep(c, "score " + s->name);
        EmitLoad(out, Slot(c, SlotKind::kScore, field, -1, -1, T(BaseType::kNumber)));
        return T(BaseType::kNumber);
      }
      std::vector<std::string> names = {c.entity->key};
      for (const auto& f : c.entity->fields) names.push_back(f.name);
      UnknownName(field, fspan, names, "field", "`" + head + "`");
      return Err();
    }
    if (c.table && head == c.var) {
      TypeRef t;
      if (TableColumn(c, field, fspan, in_aggregate_window, out, t)) return t;
      std::vector<std::string> names = {c.table->key};
      for (const auto& f : c.table->dims) names.push_back(f.name);
      for (const auto& f : c.table->facts) names.push_back(f.name);
      UnknownName(field, fspan, names, "column", "table `" + c.table->name + "`");
      return Err();
    }
    if (c.event && head == c.event->name) {
      if (const FieldInfo* f = FindField(c.event->fields, field)) {
        EmitLoad(out, Slot(c, SlotKind::kEventField, field, -1, -1, f->type));
        return f->type;
      }
      std::vector<std::string> names;
      for (const auto& f : c.event->fields) names.push_back(f.name);
      UnknownName(field, fspan, names, "field", "event `" + head + "`");
      return Err();
    }
    if (c.unresolved) return Err();
    if (program_.FindEntity(head)) {
      d_.Error("wrong-entity", e.path_spans[0],
               "this " + c.kind + " does not work on a `" + head + "`",
               c.entity ? "it works on `" + c.entity->name + "`"
                        : "only event, score and journey rules have an entity");
      return Err();
    }
    UnknownName(head, e.path_spans[0], VisibleNames(c), "name");
    return Err();
  }

  // A column of the table in scope. Facts are only values inside an aggregate.
  bool TableColumn(UnitCtx& c, const std::string& name, Span span, bool in_aggregate_window,
                   CompiledExpr& out, TypeRef& type) {
    Dep(c, "table " + c.table->name);
    if (name == c.table->key) {
      type = T(BaseType::kText);
      if (!c.row_level) EmitLoad(out, Slot(c, SlotKind::kDim, name, -1, -1, type));
      return true;
    }
    if (const FieldInfo* f = FindField(c.table->dims, name)) {
      type = f->type;
      if (!c.row_level) EmitLoad(out, Slot(c, SlotKind::kDim, name, -1, -1, type));
      return true;
    }
    if (const FieldInfo* f = FindField(c.table->facts, name)) {
      type = f->type;
      if (c.row_level) return true;
      if (in_aggregate_window) {
        // `spend over last 1h`: the sum of the fact over that window.
        int q = Query(c, span);
        if (q < 0) {
          type = Err();
          return true;
        }
        int a = Aggregate(c, q, AggFn::kSum, name);
        int slot = Slot(c, SlotKind::kAggregate, name, a, q, type);
        (*c.slots)[slot].label = AggLabel(c, q, AggFn::kSum, name);
        EmitLoad(out, slot);
        return true;
      }
      std::string grain = c.table->grain == Grain::kHour ? "hour" : "day";
      if (c.in_template) {
        d_.Error("fact-outside-aggregate", span,
                 "`" + name + "` has one value per " + grain + ", so a message cannot show it as it is",
                 "add it up first: `let total_" + name + " = sum(" + name + ")`, then write `{total_" + name +
                     "}`");
      } else {
        d_.Error("fact-outside-aggregate", span,
                 "`" + name + "` has one value per " + grain +
                     "; use it inside an aggregate such as `sum(" + name + ")`",
                 "or give it a window of its own: `" + name + " over last " +
                     (c.table->grain == Grain::kHour ? "1h" : "1d") + "`");
      }
      type = Err();
      return true;
    }
    return false;
  }

  std::vector<std::string> VisibleNames(const UnitCtx& c) const {
    std::vector<std::string> v;
    for (const auto& [n, s] : c.lets) v.push_back(n);
    if (c.event) {
      for (const auto& f : c.event->fields) v.push_back(f.name);
    }
    if (c.entity) {
      v.push_back(c.entity->name);
      for (const auto& s : program_.scores) {
        if (s.entity == c.entity->name) v.push_back(s.name);
      }
    }
    if (c.table) {
      v.push_back(c.var);
      v.push_back(c.table->key);
      for (const auto& f : c.table->dims) v.push_back(f.name);
      for (const auto& f : c.table->facts) v.push_back(f.name);
    }
    return v;
  }

  static std::string Join(const std::vector<std::string>& p) {
    std::string s;
    for (std::size_t i = 0; i < p.size(); ++i) s += (i ? "." : "") + p[i];
    return s;
  }

  const CompiledScore* FindScore(const std::string& name, const std::string& entity) const {
    for (const auto& s : program_.scores) {
      if (s.name == name && (entity.empty() || s.entity == entity)) return &s;
    }
    return nullptr;
  }

  void Dep(UnitCtx& c, const std::string& what) {
    if (c.deps) c.deps->insert(what);
  }

  void UnitError(const char* code, Span span, const std::string& msg, const std::string& hint = {}) {
    d_.Error(code, span, msg, hint);
  }

  TypeRef EmitCall(const Expr& e, CompiledExpr& out, UnitCtx& c, bool in_window) {
    const std::string& fn = e.text;
    static const std::map<std::string, AggFn> kAggs = {
        {"sum", AggFn::kSum}, {"avg", AggFn::kAvg}, {"min", AggFn::kMin},
        {"max", AggFn::kMax}, {"count", AggFn::kCount}};
    auto agg = kAggs.find(fn);
    bool scalar_minmax = (fn == "min" || fn == "max") && e.args.size() == 2;
    if (agg != kAggs.end() && !scalar_minmax) {
      if (!c.table && c.unresolved) return Err();
      if (!c.table || c.row_level) {
        if (c.row_level) {
          d_.Error("aggregate-not-allowed", e.span, "an aggregate cannot be used in a `where` filter",
                   "`where` picks rows one at a time; test the total in `when` instead");
        } else if (c.kind == "rule" && c.event) {
          d_.Error("aggregate-not-allowed", e.span,
                   "`" + fn + "(...)` adds up rows of a warehouse table, and this rule reacts to one `" +
                       c.event->name + "` event",
                   "aggregates belong in scheduled rules: `every 1h` with `for each VAR in TABLE over last 3d`");
        } else {
          d_.Error("aggregate-not-allowed", e.span,
                   "`" + fn + "(...)` adds up rows of a warehouse table, and this " + c.kind + " reads no table",
                   c.kind == "rule" || c.kind == "alert"
                       ? "add `for each VAR in TABLE over last 3d` to the " + c.kind
                       : "aggregates belong in scheduled rules and alerts");
        }
        return Err();
      }
      std::string column;
      TypeRef type = T(BaseType::kCount);
      if (agg->second == AggFn::kCount) {
        if (!e.args.empty()) {
          d_.Error("bad-arguments", e.span, "`count()` counts rows and takes no argument",
                   "to add up a fact, use `sum(...)`");
          return Err();
        }
      } else {
        if (e.args.size() != 1) {
          d_.Error("bad-arguments", e.span, "`" + fn + "` takes one fact, such as `" + fn + "(spend)`");
          return Err();
        }
        const Expr& a = *e.args[0];
        std::string name;
        if (a.kind == ExprKind::kPath && a.path.size() == 1) name = a.path[0];
        if (a.kind == ExprKind::kPath && a.path.size() == 2 && a.path[0] == c.var) name = a.path[1];
        const FieldInfo* f = name.empty() ? nullptr : FindField(c.table->facts, name);
        if (!f) {
          bool is_dim = !name.empty() && (FindField(c.table->dims, name) || name == c.table->key);
          if (is_dim) {
            d_.Error("bad-arguments", a.span,
                     "`" + name + "` is a dim (a description), not a measure; `" + fn + "` needs a fact",
                     "facts of `" + c.table->name + "`: " + FactList(*c.table));
          } else if (name.empty()) {
            d_.Error("bad-arguments", a.span, "`" + fn + "` takes the name of a fact",
                     "facts of `" + c.table->name + "`: " + FactList(*c.table));
          } else {
            std::vector<std::string> names;
            for (const auto& ff : c.table->facts) names.push_back(ff.name);
            UnknownName(name, a.span, names, "fact", "table `" + c.table->name + "`");
          }
          return Err();
        }
        column = name;
        type = f->type;
      }
      Dep(c, "table " + c.table->name);
      int q = Query(c, e.span);
      if (q < 0) return Err();
      int idx = Aggregate(c, q, agg->second, column);
      int slot = Slot(c, SlotKind::kAggregate, column, idx, q, type);
      (*c.slots)[slot].label = AggLabel(c, q, agg->second, column);
      EmitLoad(out, slot);
      return type;
    }
    (void)in_window;
    if (fn == "abs" || fn == "round") {
      if (e.args.size() != 1) {
        d_.Error("bad-arguments", e.span, "`" + fn + "` takes one value");
        return Err();
      }
      TypeRef t = Emit(*e.args[0], out, c);
      if (t.base == BaseType::kError) return t;
      if (!IsNumeric(t.base)) {
        d_.Error("unit-mismatch", e.args[0]->span, "`" + fn + "` needs a number, not " + TypeName(t));
        return Err();
      }
      out.code.push_back({fn == "abs" ? OpCode::kAbs : OpCode::kRound});
      return t;
    }
    if (scalar_minmax) {
      TypeRef a = Emit(*e.args[0], out, c);
      TypeRef b = Emit(*e.args[1], out, c);
      if (a.base == BaseType::kError || b.base == BaseType::kError) return Err();
      std::string why;
      if (!Comparable(a, b, why)) {
        d_.Error("unit-mismatch", e.span, "`" + fn + "` of " + TypeName(a) + " and " + TypeName(b), why);
        return Err();
      }
      out.code.push_back({fn == "min" ? OpCode::kMin2 : OpCode::kMax2});
      return a.base == BaseType::kNumber ? b : a;
    }
    UnknownName(fn, Span{e.span.file, e.span.begin, e.span.begin + static_cast<std::uint32_t>(fn.size())},
                {"sum", "avg", "min", "max", "count", "abs", "round"}, "function");
    return Err();
  }

  static std::string FactList(const TableInfo& t) {
    std::string s;
    for (std::size_t i = 0; i < t.facts.size(); ++i) s += (i ? ", " : "") + t.facts[i].name;
    return s;
  }

  TypeRef EmitBaseline(const Expr& e, CompiledExpr& out, UnitCtx& c) {
    if (!c.table && c.unresolved) return Err();
    if (!c.anomalies || !c.table) {
      d_.Error("baseline-not-allowed", e.span,
               "a baseline test belongs in an `alert` with `for each VAR in TABLE`");
      return Err();
    }
    const BaselineSpec& b = *e.baseline;
    // The observed value: must be a single aggregate, e.g. `spend over last 1h`.
    CompiledExpr scratch;
    TypeRef st = Emit(*e.args[0], scratch, c);
    if (st.base == BaseType::kError) return Err();
    if (scratch.code.size() != 1 || scratch.code[0].op != OpCode::kLoad ||
        (*c.slots)[scratch.code[0].a].kind != SlotKind::kAggregate) {
      d_.Error("bad-baseline", e.args[0]->span,
               "the value tested against a baseline must be one aggregate over a window",
               "for example `spend over last 1h` or `sum(conversions) over last 12h`");
      return Err();
    }
    const SlotRef& subject = (*c.slots)[scratch.code[0].a];
    AnomalySpec a;
    a.spec = b;
    a.subject_query = subject.query;
    a.subject_aggregate = subject.index;
    const Window& sw = (*c.queries)[subject.query].window;
    a.subject_window_seconds = sw.kind == WindowKind::kLast ? sw.seconds : 0;
    auto fact = [&](const std::vector<std::string>& path, Span span) -> const FieldInfo* {
      std::string name = path.size() == 2 && path[0] == c.var ? path[1] : path.size() == 1 ? path[0] : "";
      const FieldInfo* f = name.empty() ? nullptr : FindField(c.table->facts, name);
      if (!f) {
        std::vector<std::string> names;
        for (const auto& ff : c.table->facts) names.push_back(ff.name);
        UnknownName(Join(path), span, names, "fact", "table `" + c.table->name + "`");
      }
      return f;
    };
    const FieldInfo* field = fact(b.field, b.field_span);
    if (!field) return Err();
    a.spec.field = {field->name};
    std::string per_col;
    if (!b.per.empty()) {
      const FieldInfo* per = fact(b.per, b.per_span);
      if (!per) return Err();
      per_col = per->name;
      a.spec.per = {per_col};
      a.per_aggregate = Aggregate(c, subject.query, AggFn::kSum, per_col);
    }
    if (b.confidence > 0 && field->type.base != BaseType::kCount) {
      d_.Error("bad-baseline", b.test_span,
               "`with confidence` is the count-aware test and needs a count such as conversions; `" +
                   field->name + "` is " + TypeName(field->type),
               "for money and other measures, use `by 3 sigma`");
      return Err();
    }
    std::int64_t grain = c.table->grain == Grain::kHour ? 3600 : 86400;
    std::string unit = grain == 3600 ? "hour" : "day";
    if (b.history_seconds % grain != 0) {
      d_.Error("grain-mismatch", b.history_span,
               "table `" + c.table->name + "` has one row per " + unit +
                   ", so the baseline history must be a whole number of " + unit + "s",
               grain == 3600 ? "use e.g. `7d` or `168h`" : "use e.g. `28d`");
      return Err();
    }
    if (b.history_seconds <= a.subject_window_seconds) {
      d_.Error("short-history", b.history_span,
               "the baseline history (" + std::string(r_.sources.Text(b.history_span)) +
                   ") must be longer than the window it is compared with",
               "a baseline describes what is usual over a long stretch, such as `28d`");
      return Err();
    }
    if (b.season == Seasonality::kHourOfWeek && b.history_seconds < 14 * 86400) {
      d_.Error("short-history", b.history_span,
               "`same hour of week` needs at least 14d of history to have more than one week to compare",
               "use 28d or more");
      return Err();
    }
    if ((b.season == Seasonality::kHourOfWeek || b.season == Seasonality::kHourOfDay) &&
        c.table->grain != Grain::kHour) {
      // Underline the seasonality itself: it follows the history inside the baseline(...).
      Span ss = e.span;
      std::string_view rest = r_.sources.Text(Span{e.span.file, b.history_span.end, e.span.end});
      if (auto at = rest.find("same"); at != std::string_view::npos) {
        std::string_view season = rest.substr(at);
        std::size_t len = season.find(')');
        if (len != std::string_view::npos) {
          while (len > 0 && (season[len - 1] == ' ' || season[len - 1] == '\t')) --len;
          ss.begin = b.history_span.end + static_cast<std::uint32_t>(at);
          ss.end = ss.begin + static_cast<std::uint32_t>(len);
        }
      }
      std::string what = b.season == Seasonality::kHourOfWeek ? "same hour of week" : "same hour of day";
      d_.Error("grain-mismatch", ss,
               "`" + what + "` compares hours, and table `" + c.table->name + "` has one row per day",
               b.season == Seasonality::kHourOfWeek
                   ? "use `same day of week`, or watch an hourly table"
                   : "remove it, or watch an hourly table");
      return Err();
    }
    std::string sql = "SELECT " + QuoteIdent(c.table->key) + " AS key, " + QuoteIdent(c.table->time_column) +
                      " AS time, SUM(" + QuoteIdent(field->name) + ") AS value";
    if (!per_col.empty()) sql += ", SUM(" + QuoteIdent(per_col) + ") AS per";
    sql += " FROM " + QuoteRelation(c.table->source) + " WHERE " + QuoteIdent(c.table->time_column) +
           " >= :from AND " + QuoteIdent(c.table->time_column) + " < :to";
    if (!c.where_sql.empty()) sql += " AND (" + c.where_sql + ")";
    sql += " GROUP BY " + QuoteIdent(c.table->key) + ", " + QuoteIdent(c.table->time_column) +
           " ORDER BY key, time";
    a.history_sql = sql;
    a.text = std::string(r_.sources.Text(e.span));
    if (b.sigma > 0) a.text += " sigma";
    c.anomalies->push_back(std::move(a));
    int idx = static_cast<int>(c.anomalies->size() - 1);
    int slot = Slot(c, SlotKind::kAnomaly, "anomaly", idx, -1, T(BaseType::kBool));
    (*c.slots)[slot].label = (*c.anomalies)[idx].text;
    EmitLoad(out, slot);
    return T(BaseType::kBool);
  }

  TypeRef Emit(const Expr& e, CompiledExpr& out, UnitCtx& c, bool in_window = false) {
    switch (e.kind) {
      case ExprKind::kNumber: {
        out.nums.push_back(e.number);
        out.code.push_back({OpCode::kConstNum, static_cast<std::uint32_t>(out.nums.size() - 1)});
        if (e.unit == "%") return T(BaseType::kPercent);
        if (!e.unit.empty()) return T(BaseType::kMoney, e.unit);
        return T(BaseType::kNumber);
      }
      case ExprKind::kDuration:
        out.nums.push_back(e.number);
        out.code.push_back({OpCode::kConstNum, static_cast<std::uint32_t>(out.nums.size() - 1)});
        return T(BaseType::kDuration);
      case ExprKind::kString:
        out.strs.push_back(e.text);
        out.code.push_back({OpCode::kConstStr, static_cast<std::uint32_t>(out.strs.size() - 1)});
        return T(BaseType::kText);
      case ExprKind::kBool:
        out.code.push_back({OpCode::kConstBool, static_cast<std::uint32_t>(e.number != 0)});
        return T(BaseType::kBool);
      case ExprKind::kList:
        d_.Error("bad-list", e.span, "a list can only follow `in`",
                 "write `field in [\"a\", \"b\"]`");
        return Err();
      case ExprKind::kPath:
        return EmitPath(e, out, c, in_window);
      case ExprKind::kCall:
        return EmitCall(e, out, c, in_window);
      case ExprKind::kWindowed: {
        if (!c.table && c.unresolved) return Err();
        if (!c.table || c.row_level) {
          d_.Error("window-not-allowed", e.window.span,
                   "`over` needs a table: this " + c.kind + " has no `for each VAR in TABLE`");
          return Err();
        }
        // A window the lowering refused (`over last 12`) is already reported.
        if (e.window.kind == WindowKind::kNone || !CheckGrain(e.window, *c.table)) return Err();
        c.windows.push_back(e.window);
        TypeRef t = Emit(*e.args[0], out, c, true);
        c.windows.pop_back();
        return t;
      }
      case ExprKind::kBaseline:
        return EmitBaseline(e, out, c);
      case ExprKind::kUnary: {
        TypeRef t = Emit(*e.args[0], out, c, in_window);
        if (t.base == BaseType::kError) return t;
        if (e.op == Op::kNot) {
          if (t.base != BaseType::kBool) {
            d_.Error("unit-mismatch", e.args[0]->span, "`not` needs a condition (yes/no), not " + TypeName(t));
            return Err();
          }
          out.code.push_back({OpCode::kNot});
          return t;
        }
        if (!IsNumeric(t.base)) {
          d_.Error("unit-mismatch", e.args[0]->span, "cannot negate " + TypeName(t));
          return Err();
        }
        out.code.push_back({OpCode::kNeg});
        return t;
      }
      case ExprKind::kIn: {
        TypeRef t = Emit(*e.args[0], out, c, in_window);
        const Expr& list = *e.args[1];
        ConstSet set;
        bool ok = t.base != BaseType::kError;
        for (const auto& item : list.args) {
          if (item->kind == ExprKind::kString && (t.base == BaseType::kText || t.base == BaseType::kError)) {
            set.texts.push_back(item->text);
          } else if (item->kind == ExprKind::kNumber && IsNumeric(t.base) &&
                     t.base != BaseType::kMoney) {
            set.numbers.push_back(item->number);
          } else if (item->kind == ExprKind::kNumber && t.base == BaseType::kMoney &&
                     item->unit == t.currency) {
            set.numbers.push_back(item->number);
          } else if (t.base != BaseType::kError) {
            d_.Error("unit-mismatch", item->span,
                     "this list item cannot be compared with " + TypeName(t),
                     item->kind == ExprKind::kString || item->kind == ExprKind::kNumber
                         ? "every item must be " + TypeName(t)
                         : "list items must be constants");
            ok = false;
          }
        }
        if (!ok) return Err();
        std::sort(set.texts.begin(), set.texts.end());
        std::sort(set.numbers.begin(), set.numbers.end());
        out.sets.push_back(std::move(set));
        out.code.push_back({OpCode::kInSet, static_cast<std::uint32_t>(out.sets.size() - 1), e.negated ? 1u : 0u});
        return T(BaseType::kBool);
      }
      case ExprKind::kLike: {
        TypeRef t = Emit(*e.args[0], out, c, in_window);
        if (t.base == BaseType::kError) return t;
        if (t.base != BaseType::kText) {
          d_.Error("unit-mismatch", e.args[0]->span, "`like` matches text, and this is " + TypeName(t));
          return Err();
        }
        out.globs.push_back(e.text);
        out.code.push_back({OpCode::kLike, static_cast<std::uint32_t>(out.globs.size() - 1), e.negated ? 1u : 0u});
        return T(BaseType::kBool);
      }
      case ExprKind::kBinary:
        return EmitBinary(e, out, c, in_window);
    }
    return Err();
  }

  TypeRef EmitBinary(const Expr& e, CompiledExpr& out, UnitCtx& c, bool in_window) {
    if (e.op == Op::kAnd || e.op == Op::kOr) {
      TypeRef a = Emit(*e.args[0], out, c, in_window);
      std::size_t jump = out.code.size();
      out.code.push_back({e.op == Op::kAnd ? OpCode::kJumpIfFalseKeep : OpCode::kJumpIfTrueKeep});
      out.code.push_back({OpCode::kPop});
      TypeRef b = Emit(*e.args[1], out, c, in_window);
      out.code.push_back({OpCode::kToBool});
      out.code[jump].a = static_cast<std::uint32_t>(out.code.size());
      bool bad = false;
      for (auto [t, x] : {std::pair{a, e.args[0].get()}, std::pair{b, e.args[1].get()}}) {
        if (t.base != BaseType::kError && t.base != BaseType::kBool) {
          d_.Error("unit-mismatch", x->span,
                   std::string("`") + (e.op == Op::kAnd ? "and" : "or") +
                       "` joins conditions (yes/no), and this is " + TypeName(t),
                   "compare it with something, e.g. `... > 0`");
          bad = true;
        }
      }
      if (bad || a.base == BaseType::kError || b.base == BaseType::kError) return Err();
      return T(BaseType::kBool);
    }
    TypeRef a = Emit(*e.args[0], out, c, in_window);
    TypeRef b = Emit(*e.args[1], out, c, in_window);
    if (a.base == BaseType::kError || b.base == BaseType::kError) return Err();
    static const std::map<Op, OpCode> kCodes = {
        {Op::kAdd, OpCode::kAdd}, {Op::kSub, OpCode::kSub}, {Op::kMul, OpCode::kMul},
        {Op::kDiv, OpCode::kDiv}, {Op::kEq, OpCode::kEq},   {Op::kNe, OpCode::kNe},
        {Op::kLt, OpCode::kLt},   {Op::kLe, OpCode::kLe},   {Op::kGt, OpCode::kGt},
        {Op::kGe, OpCode::kGe}};
    out.code.push_back({kCodes.at(e.op)});
    std::string why;
    if (e.op == Op::kEq || e.op == Op::kNe || e.op == Op::kLt || e.op == Op::kLe ||
        e.op == Op::kGt || e.op == Op::kGe) {
      if (!Comparable(a, b, why)) {
        CurrencyHint(e, a, b, why);
        d_.Error("unit-mismatch", e.args[1]->span,
                 "cannot compare " + TypeName(a) + " with " + TypeName(b), why);
        return Err();
      }
      if ((a.base == BaseType::kText || a.base == BaseType::kBool) && e.op != Op::kEq && e.op != Op::kNe &&
          a.base == BaseType::kBool) {
        d_.Error("unit-mismatch", e.span, "yes/no values can only be compared with == and !=");
        return Err();
      }
      return T(BaseType::kBool);
    }
    TypeRef r = Arithmetic(e.op, a, b, why);
    if (r.base == BaseType::kError) {
      CurrencyHint(e, a, b, why);
      const char* verb = e.op == Op::kAdd ? "add" : e.op == Op::kSub ? "subtract"
                         : e.op == Op::kMul ? "multiply" : "divide";
      d_.Error("unit-mismatch", e.args[1]->span,
               std::string("cannot ") + verb + " " + TypeName(a) + " and " + TypeName(b), why);
    }
    return r;
  }

  // Money against a bare number literal: show the fix with the author's own number.
  void CurrencyHint(const Expr& e, const TypeRef& a, const TypeRef& b, std::string& why) {
    for (int i = 0; i < 2; ++i) {
      const TypeRef& money = i == 0 ? a : b;
      const Expr& other = *e.args[1 - i];
      const TypeRef& other_type = i == 0 ? b : a;
      if (money.base == BaseType::kMoney && other_type.base == BaseType::kNumber &&
          other.kind == ExprKind::kNumber && other.unit.empty()) {
        why = "give the number a currency: `" + std::string(r_.sources.Text(other.span)) + " " +
              money.currency + "`";
      }
    }
  }

  bool CheckGrain(const Window& w, const TableInfo& t) {
    if (w.kind != WindowKind::kLast) return true;
    std::int64_t grain = t.grain == Grain::kHour ? 3600 : 86400;
    if (w.seconds % grain != 0) {
      std::string g = t.grain == Grain::kHour ? "hour" : "day";
      d_.Error("grain-mismatch", w.span,
               "table `" + t.name + "` has one row per " + g + ", so a window must be a whole number of " +
                   g + "s",
               t.grain == Grain::kHour ? "use a window such as `over last 3h`"
                                       : "use a window such as `over last 1d` or `over today`");
      return false;
    }
    return true;
  }

  // A condition: must be yes/no.
  CompiledExpr Condition(const Expr& e, UnitCtx& c, const char* where) {
    CompiledExpr out;
    TypeRef t = Emit(e, out, c);
    out.code.push_back({OpCode::kToBool});
    out.type = t;
    out.text = std::string(r_.sources.Text(e.span));
    if (t.base != BaseType::kError && t.base != BaseType::kBool) {
      d_.Error("not-a-condition", e.span,
               std::string("`") + where + "` needs a condition (yes/no), and this is " + TypeName(t),
               "compare it with something, e.g. `... > 0`");
    }
    return out;
  }

  CompiledExpr Value(const Expr& e, UnitCtx& c) {
    CompiledExpr out;
    out.type = Emit(e, out, c);
    out.text = std::string(r_.sources.Text(e.span));
    return out;
  }

  // ---------------------------------------------------------------- SQL for `where`

  std::string WhereSql(const Expr& e, UnitCtx& c) {
    // Type-check first, in row context (columns, no aggregates).
    UnitCtx row = c;
    row.row_level = true;
    row.lets.clear();
    std::vector<SlotRef> scratch_slots;
    row.slots = &scratch_slots;
    CompiledExpr scratch;
    TypeRef t = Emit(e, scratch, row);
    if (t.base == BaseType::kError) return {};
    if (t.base != BaseType::kBool) {
      d_.Error("not-a-condition", e.span, "`where` needs a condition (yes/no), and this is " + TypeName(t));
      return {};
    }
    return Sql(e, *c.table, c.var);
  }

  std::string Sql(const Expr& e, const TableInfo& t, const std::string& var) {
    switch (e.kind) {
      case ExprKind::kNumber:
      case ExprKind::kDuration:
        return SqlNumber(e.number);
      case ExprKind::kString:
        return SqlString(e.text);
      case ExprKind::kBool:
        return e.number != 0 ? "1" : "0";
      case ExprKind::kPath:
        return QuoteIdent(e.path.size() == 2 && e.path[0] == var ? e.path[1] : e.path[0]);
      case ExprKind::kUnary:
        return e.op == Op::kNot ? "(NOT " + Sql(*e.args[0], t, var) + ")"
                                : "(-" + Sql(*e.args[0], t, var) + ")";
      case ExprKind::kIn: {
        std::string s = "(" + Sql(*e.args[0], t, var) + (e.negated ? " NOT IN (" : " IN (");
        const Expr& list = *e.args[1];
        for (std::size_t i = 0; i < list.args.size(); ++i) s += (i ? ", " : "") + Sql(*list.args[i], t, var);
        return s + "))";
      }
      case ExprKind::kLike: {
        std::string pat;
        for (char ch : e.text) {
          if (ch == '*') pat += '%';
          else if (ch == '?') pat += '_';
          else if (ch == '%' || ch == '_' || ch == '\\') pat += std::string("\\") + ch;
          else pat += ch;
        }
        return "(" + Sql(*e.args[0], t, var) + (e.negated ? " NOT" : "") + " LIKE " + SqlString(pat) +
               " ESCAPE '\\')";
      }
      case ExprKind::kBinary: {
        static const std::map<Op, const char*> kSql = {
            {Op::kAdd, "+"}, {Op::kSub, "-"}, {Op::kMul, "*"}, {Op::kDiv, "/"}, {Op::kAnd, "AND"},
            {Op::kOr, "OR"}, {Op::kEq, "="},  {Op::kNe, "<>"}, {Op::kLt, "<"},  {Op::kLe, "<="},
            {Op::kGt, ">"},  {Op::kGe, ">="}};
        std::string l = Sql(*e.args[0], t, var);
        std::string r = Sql(*e.args[1], t, var);
        if (e.op == Op::kDiv) r = "NULLIF(" + r + ", 0)";
        if (e.op == Op::kDiv) l = "CAST(" + l + " AS REAL)";
        return "(" + l + " " + kSql.at(e.op) + " " + r + ")";
      }
      default:
        return "1";
    }
  }

  void BuildQuerySql(WindowQuery& q, const TableInfo& t, const std::string& where_sql) {
    std::string time = QuoteIdent(t.time_column);
    std::string key = QuoteIdent(t.key);
    std::string sql = "WITH w AS (SELECT * FROM " + QuoteRelation(t.source) + " WHERE " + time +
                      " >= :from AND " + time + " < :to";
    if (!where_sql.empty()) sql += " AND (" + where_sql + ")";
    sql += "), agg AS (SELECT " + key + " AS key";
    for (std::size_t i = 0; i < q.aggregates.size(); ++i) {
      const auto& a = q.aggregates[i];
      sql += ", " + std::string(AggName(a.fn)) + "(" + (a.column.empty() ? "*" : QuoteIdent(a.column)) +
             ") AS a" + std::to_string(i);
    }
    sql += ", MIN(" + time + ") AS first_time, MAX(" + time + ") AS last_time, COUNT(*) AS row_count FROM w GROUP BY " +
           key + ")";
    if (q.dims.empty()) {
      sql += " SELECT agg.* FROM agg ORDER BY agg.key";
    } else {
      sql += " SELECT agg.*";
      for (const auto& d : q.dims) sql += ", w." + QuoteIdent(d);
      sql += " FROM agg JOIN w ON w." + key + " = agg.key AND w." + time + " = agg.last_time ORDER BY agg.key";
    }
    q.sql = sql;
  }

  // ---------------------------------------------------------------- templates

  // Where each byte of a decoded text literal came from in the source: offsets[k] is the source
  // offset of decoded byte k, offsets[size] the closing quote. Mirrors DecodeString (lower.cpp);
  // returns false if the two disagree (then callers fall back to the whole literal).
  static bool TextOffsets(std::string_view raw, std::uint32_t base, std::size_t decoded_size,
                          std::vector<std::uint32_t>& offsets) {
    offsets.clear();
    if (raw.size() < 2 || raw.front() != '"') return false;
    std::size_t p = 1, e = raw.size() - 1;
    auto at = [&](std::size_t k) { return base + static_cast<std::uint32_t>(k); };
    while (p < e) {
      if (raw[p] != '\\') {
        offsets.push_back(at(p++));
        continue;
      }
      std::size_t esc = p++;
      char ch = p < e ? raw[p++] : '\0';
      if (std::strchr("ntr\"\\/", ch) != nullptr && ch != '\0') {
        offsets.push_back(at(esc));
      } else if (ch == 'u') {
        std::size_t q = p;
        bool braces = q < e && raw[q] == '{';
        if (braces) ++q;
        std::size_t digits = q;
        while (q < e && std::isxdigit(static_cast<unsigned char>(raw[q])) && q - digits < 6) ++q;
        std::size_t n = q - digits;
        bool ok = braces ? (n >= 1 && q < e && raw[q] == '}') : n >= 4;
        if (!braces && n > 4) q = digits + 4, n = 4;
        unsigned long cp = 0;
        if (ok) {
          cp = std::stoul(std::string(raw.substr(digits, n)), nullptr, 16);
          if (braces) ++q;
        }
        p = q;
        if (!ok || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) continue;
        int len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        for (int k = 0; k < len; ++k) offsets.push_back(at(esc));
      }
      // any other escape was reported and decodes to nothing
    }
    offsets.push_back(at(e));
    return offsets.size() == decoded_size + 1;
  }

  static bool PlaceholderChar(char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.';
  }

  CompiledTemplate Template(const std::string& text, Span span, UnitCtx& c) {
    CompiledTemplate t;
    t.source = text;
    std::string lit;
    std::vector<std::uint32_t> offsets;
    bool exact = TextOffsets(r_.sources.Text(span), span.begin, text.size(), offsets);
    // The source span of decoded bytes [i, j).
    auto at = [&](std::size_t i, std::size_t j) {
      return exact ? Span{span.file, offsets[i], offsets[j]} : span;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
      char ch = text[i];
      if (ch == '{' && i + 1 < text.size() && text[i + 1] == '{') {
        lit += '{';
        ++i;
        continue;
      }
      if (ch == '}' && i + 1 < text.size() && text[i + 1] == '}') {
        lit += '}';
        ++i;
        continue;
      }
      if (ch == '}') {
        d_.Error("bad-template", at(i, i + 1), "this `}` in the message has no `{` before it",
                 "write `}}` for a literal brace");
        continue;
      }
      if (ch != '{') {
        lit += ch;
        continue;
      }
      std::size_t close = text.find('}', i + 1);
      std::size_t next_open = text.find('{', i + 1);
      if (close == std::string::npos || (next_open != std::string::npos && next_open < close)) {
        std::size_t name_end = i + 1;
        while (name_end < text.size() && PlaceholderChar(text[name_end])) ++name_end;
        std::string name = text.substr(i + 1, name_end - i - 1);
        d_.Error("bad-template", at(i, name_end), "this `{` is never closed",
                 name.empty() ? "write `{{` for a literal brace"
                              : "end the placeholder with `}`: `{" + name + "}`; write `{{` for a literal brace");
        i = name_end - 1;
        continue;
      }
      std::string inner = text.substr(i + 1, close - i - 1);
      std::size_t b = i + 1, e = close;
      while (b < e && text[b] == ' ') ++b;
      while (e > b && text[e - 1] == ' ') --e;
      std::string trimmed = text.substr(b, e - b);
      Expr path;
      path.kind = ExprKind::kPath;
      path.span = at(b, e);
      bool valid = !trimmed.empty();
      std::size_t pos = 0;
      while (valid && pos <= trimmed.size()) {
        std::size_t dot = trimmed.find('.', pos);
        if (dot == std::string::npos) dot = trimmed.size();
        std::string part = trimmed.substr(pos, dot - pos);
        valid = !part.empty() && (std::isalpha(static_cast<unsigned char>(part[0])) || part[0] == '_');
        for (char pc : part) valid = valid && (std::isalnum(static_cast<unsigned char>(pc)) || pc == '_');
        path.path.push_back(part);
        path.path_spans.push_back(at(b + pos, b + dot));
        pos = dot + 1;
      }
      if (!valid) {
        d_.Error("bad-template", at(i, close + 1), "`{" + inner + "}` is not a placeholder",
                 "a placeholder names a value, such as `{adset.name}` or `{cpa}`; write `{{` for a brace");
        i = close;
        continue;
      }
      CompiledExpr scratch;
      bool was_in_template = c.in_template;
      c.in_template = true;
      TypeRef type = EmitPath(path, scratch, c, false);
      c.in_template = was_in_template;
      if (type.base != BaseType::kError && scratch.code.size() == 1) {
        if (!lit.empty()) t.parts.push_back({lit, -1});
        lit.clear();
        t.parts.push_back({"", static_cast<int>(scratch.code[0].a)});
      }
      i = close;
    }
    if (!lit.empty()) t.parts.push_back({lit, -1});
    return t;
  }

  // ---------------------------------------------------------------- actions

  static void MarkLetsUsed(const Expr& e, UnitCtx& c) {
    if (e.kind == ExprKind::kPath && e.path.size() == 1 && c.lets.count(e.path[0])) {
      c.used_lets.insert(e.path[0]);
    }
    for (const auto& a : e.args) MarkLetsUsed(*a, c);
  }

  CompiledAction EmitAction(const Action& a, UnitCtx& c) {
    CompiledAction out;
    out.kind = a.kind;
    out.text_source = std::string(r_.sources.Text(a.span));
    // The lets an action names count as used even when the action itself is refused below:
    // "never used" would only repeat that error.
    if (a.value) MarkLetsUsed(*a.value, c);
    if (a.realloc.toward) MarkLetsUsed(*a.realloc.toward, c);
    for (const auto& w : a.with) MarkLetsUsed(*w.value, c);
    auto needs_table_var = [&](const char* verb) -> bool {
      std::string target = a.target.empty() ? "" : a.target[0];
      Span ts = a.target_spans.empty() ? a.span : a.target_spans[0];
      if (a.target.size() != 1) {
        d_.Error("wrong-target", ts, std::string("`") + verb + "` acts on a whole ad-platform object; name it, e.g. `" +
                                         verb + " adset`");
        return false;
      }
      if (c.table && target == c.var) {
        if (c.var.empty()) return false;
        out.target_var = target;
        return true;
      }
      if (const EntityInfo* en = program_.FindEntity(target)) {
        std::string act = std::string(verb) == "set budget of" ? "set the budget of" : verb;
        std::string field = en->fields.empty() ? "FIELD" : en->fields.front().name;
        d_.Error("wrong-target", ts,
                 "cannot " + act + " a " + target + ": `" + verb +
                     "` acts on ad-platform objects (ad sets, campaigns, channels)",
                 "to change a " + target + ", set one of its fields, e.g. `set " + target + "." + field +
                     " = ...`");
        return false;
      }
      if (!c.table) {
        if (c.unresolved) return false;
        d_.Error("wrong-target", ts,
                 std::string("`") + verb + "` needs an ad-platform object, and this " + c.kind +
                     " has no `for each VAR in TABLE`",
                 std::string("ad sets and campaigns are rows of a table: use a schedule such as `every 1h` "
                             "with `for each adset in TABLE over last 3d`, then `") + verb + " adset`");
        return false;
      }
      UnknownName(target, ts, {c.var}, "object");
      return false;
    };
    switch (a.kind) {
      case ActionKind::kPause:
      case ActionKind::kEnable:
        needs_table_var(a.kind == ActionKind::kPause ? "pause" : "enable");
        if (c.table && c.kind == "rule" && across_) {
          d_.Error("wrong-target", a.span, "`pause` and `enable` act on one row at a time; use `for each`, not `across`");
        }
        break;
      case ActionKind::kSetBudget: {
        if (!needs_table_var("set budget of")) break;
        out.value = Value(*a.value, c);
        if (out.value.type.base != BaseType::kError && out.value.type.base != BaseType::kMoney) {
          d_.Error("unit-mismatch", a.value->span,
                   "a budget is money, and this is " + TypeName(out.value.type), "write e.g. `500 USD`");
        }
        out.currency = out.value.type.currency;
        break;
      }
      case ActionKind::kReallocate: {
        if (!c.table) {
          if (c.unresolved) break;
          d_.Error("wrong-target", a.span,
                   "`reallocate` moves budget between the rows of a table, and this " + c.kind +
                       " reads no table",
                   "use a schedule with `across VAR in TABLE over last 7d`");
          break;
        }
        if (!across_) {
          d_.Error("wrong-target", a.span,
                   "`reallocate` moves budget between the rows of a group, but `for each` looks at one `" +
                       c.var + "` at a time",
                   "write `across " + c.var + " in " + c.table->name + "` instead of `for each " + c.var +
                       " in " + c.table->name + "`");
          break;
        }
        out.target_var = c.var;
        const FieldInfo* budget = FindField(c.table->dims, "budget");
        if (!budget || budget->type.base != BaseType::kMoney) {
          d_.Error("missing-budget", a.span,
                   "`reallocate budget` needs a `budget: money(...)` dim in table `" + c.table->name + "`");
          break;
        }
        out.currency = budget->type.currency;
        // Make the budget dim part of every query's output.
        Slot(c, SlotKind::kDim, "budget", -1, -1, budget->type);
        out.toward = Value(*a.realloc.toward, c);
        if (out.toward.type.base != BaseType::kError && !IsNumeric(out.toward.type.base)) {
          d_.Error("unit-mismatch", a.realloc.toward->span,
                   "budget moves toward a measure (such as ROAS); this is " + TypeName(out.toward.type));
        }
        out.keep_total = a.realloc.keep_total;
        out.max_step = a.realloc.max_step;
        if (a.realloc.max_step_span.end && (out.max_step <= 0 || out.max_step > 1)) {
          d_.Error("bad-step", a.realloc.max_step_span, "a step must be between 0% and 100%");
        }
        auto bound = [&](const ExprPtr& e, std::optional<double>& dst) {
          if (!e) return;
          if (e->kind != ExprKind::kNumber || e->unit.empty() || e->unit == "%") {
            d_.Error("unit-mismatch", e->span, "a budget bound is an amount of money, such as `100 " + out.currency + "`");
            return;
          }
          if (e->unit != out.currency) {
            d_.Error("unit-mismatch", e->span,
                     "this bound is in " + e->unit + " but the budgets are in " + out.currency);
            return;
          }
          dst = e->number;
        };
        bound(a.realloc.min_budget, out.min_budget);
        bound(a.realloc.max_budget, out.max_budget);
        if (out.min_budget && out.max_budget && *out.min_budget > *out.max_budget) {
          d_.Error("bad-bounds", a.realloc.max_budget->span, "the maximum budget is below the minimum");
        }
        if (!a.realloc.per.name.empty() && a.realloc.per.name != c.var) {
          d_.Error("unknown-name", a.realloc.per.span,
                   "`per " + a.realloc.per.name + "`: the group members are `" + c.var + "`",
                   "write `per " + c.var + "`");
        }
        break;
      }
      case ActionKind::kWebhook:
        out.name = a.name;
        for (const auto& w : a.with) out.with.emplace_back(w.name.name, Value(*w.value, c));
        {
          std::set<std::string> seen;
          for (const auto& w : a.with) {
            if (!seen.insert(w.name.name).second) {
              d_.Error("duplicate-name", w.name.span, "`" + w.name.name + "` appears twice in this payload");
            }
          }
        }
        break;
      case ActionKind::kNotifySlack:
        out.name = a.name;
        out.runbook = a.runbook;
        if (a.name.empty() || (a.name[0] != '#' && a.name[0] != '@')) {
          d_.Error("bad-channel", a.name_span, "a Slack channel starts with `#` (or `@` for a person)",
                   "write e.g. \"#paid-alerts\"");
        }
        out.text = Template(a.text, a.text_span, c);
        break;
      case ActionKind::kEmail:
      case ActionKind::kMessage:
        out.name = a.name;
        out.via = a.via;
        if (!c.entity) {
          std::string verb = a.kind == ActionKind::kEmail ? "email" : "message";
          if (c.unresolved) {
            // the trigger that would have named the person is already reported
          } else if (c.table) {
            d_.Error("wrong-target", a.span,
                     "`" + verb + "` sends to one person, and this " + c.kind + " looks at rows of `" +
                         c.table->name + "`, not at people",
                     "to tell your team, use `notify slack \"#channel\" \"...\"`; to write to a lead, "
                     "put the " + verb + " in a rule triggered by one of the lead's events, or in a journey");
          } else {
            d_.Error("wrong-target", a.span,
                     "`" + verb + "` sends to one person, and this " + c.kind + " is about no one",
                     "put the " + verb + " in a rule triggered by one of the lead's events, or in a journey");
          }
        } else {
          out.target_entity = c.entity->name;
        }
        if (a.kind == ActionKind::kMessage && a.via != "whatsapp" && a.via != "sms" && a.via != "push") {
          std::string s = ClosestMatch(a.via, {"whatsapp", "sms", "push"});
          d_.Error("bad-channel", a.via_span, "`" + a.via + "` is not a messaging channel",
                   s.empty() ? "the channels are whatsapp, sms and push" : "did you mean `" + s + "`?");
        }
        break;
      case ActionKind::kSetField: {
        if (a.target.size() != 2 || !c.entity || a.target[0] != c.entity->name) {
          if (!c.entity && c.unresolved) break;
          std::string what = a.target.empty() ? "" : a.target[0];
          if (c.table && what == c.var) {
            d_.Error("wrong-target", a.target_spans[0],
                     "`set` changes a field of an entity such as a lead; `" + what +
                         "` is a warehouse row, which gavel does not write",
                     "to change a budget, use `set budget of " + what + " to ...`");
          } else {
            d_.Error("wrong-target", a.span, "`set` needs a field of this " + c.kind + "'s entity",
                     c.entity ? "write `set " + c.entity->name + ".FIELD = ...`"
                              : "only event, score and journey rules have an entity to set");
          }
          break;
        }
        out.target_entity = c.entity->name;
        out.field = a.target[1];
        const FieldInfo* f = FindField(c.entity->fields, out.field);
        if (!f) {
          std::vector<std::string> names;
          for (const auto& ff : c.entity->fields) names.push_back(ff.name);
          UnknownName(out.field, a.target_spans[1], names, "field", "`" + c.entity->name + "`");
          break;
        }
        out.value = Value(*a.value, c);
        std::string why;
        if (out.value.type.base != BaseType::kError && !Compatible(f->type, out.value.type)) {
          d_.Error("unit-mismatch", a.value->span,
                   "`" + c.entity->name + "." + out.field + "` is " + TypeName(f->type) + ", and this is " +
                       TypeName(out.value.type),
                   f->type.base == BaseType::kText && IsNumeric(out.value.type.base)
                       ? "put quotes around it to store it as text: `\"" +
                             std::string(r_.sources.Text(a.value->span)) + "\"`"
                       : "the value must be " + TypeName(f->type));
        }
        break;
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- units

  RuleMeta Meta(const RuleOptions& o, const Ident& name, const char* kind) {
    RuleMeta m;
    if (o.owner) {
      m.owner = *o.owner;
    } else {
      d_.Warning("missing-owner", name.span, std::string(kind) + " `" + name.name + "` has no owner",
                 "add `owner \"team@example.com\"` so alerts and audits know whom to ask");
    }
    m.description = o.description;
    m.tags = o.tags;
    m.mode = o.mode.value_or(Mode::kDryRun);
    m.flag = o.flag;
    m.limit_count = o.limit_count;
    m.limit_seconds = o.limit_seconds;
    if (o.limit_span.end && o.limit_count <= 0) {
      d_.Error("bad-limit", o.limit_span, "a limit must allow at least 1 action");
    }
    m.require_approval = o.require_approval;
    m.approval_expires_seconds = o.approval_expires_seconds;
    m.cooldown_seconds = o.cooldown_seconds;
    return m;
  }

  std::string Version(Span span, const std::set<std::string>& deps) {
    std::string text = Normalise(r_.sources.Text(span));
    for (const auto& d : deps) {
      auto it = decl_spans_.find(d);
      if (it != decl_spans_.end()) text += "\n" + d + ": " + Normalise(r_.sources.Text(it->second));
      auto ts = table_spans_.find(d.substr(d.find(' ') + 1));
      if (d.rfind("table ", 0) == 0 && ts != table_spans_.end()) {
        text += "\n" + d + ": " + Normalise(r_.sources.Text(ts->second));
      }
    }
    return Sha256Hex(text);
  }

  void CheckSchedule(const Schedule& s) {
    if (s.every_seconds > 0 && s.every_seconds < 60) {
      d_.Error("schedule-too-fast", s.span,
               "`" + std::string(r_.sources.Text(s.span)) + "` is too often: the shortest schedule is every 1m",
               "the warehouse is not asked more often than once a minute per rule; write `every 1m` or more");
    }
    if (s.timezone_span.end) CheckZone(s.timezone, s.timezone_span);
  }

  void BeginScope(UnitCtx& c, const Scope& sc) {
    const TableInfo* t = program_.FindTable(sc.table.name);
    if (!t) {
      std::vector<std::string> names;
      for (const auto& tt : program_.tables) names.push_back(tt.name);
      UnknownName(sc.table.name, sc.table.span, names, "table");
      c.unresolved = true;
      return;
    }
    c.table = t;
    c.var = sc.var.name;
    Dep(c, "table " + t->name);
    if (sc.window.kind != WindowKind::kNone && CheckGrain(sc.window, *t)) {
      c.windows.push_back(sc.window);
    } else {
      c.windows.push_back(Window{});
      // A window was written but refused (already reported): the aggregates that needed it
      // are not reported again as having none.
      if (sc.window.span.end != 0) missing_window_reported_ = true;
    }
    if (sc.where) c.where_sql = WhereSql(*sc.where, c);
  }

  // Lets in order; each can use the ones before it.
  void EmitLets(const std::vector<LetDecl>& lets, UnitCtx& c,
                std::vector<std::pair<std::string, CompiledExpr>>& out) {
    std::map<std::string, Span> first;
    for (std::size_t i = 0; i < lets.size(); ++i) {
      const LetDecl& l = lets[i];
      if (auto [it, fresh] = first.emplace(l.name.name, l.name.span); !fresh) {
        d_.Error("duplicate-name", l.name.span,
                 "`" + l.name.name + "` is defined twice in this " + c.kind,
                 "the first `let " + l.name.name + "` is on line " + std::to_string(Line(it->second)) +
                     "; give this one another name");
        c.used_lets.insert(l.name.name);  // the author did mean to use it
        continue;
      }
      CompiledExpr v = Value(*l.value, c);
      int slot = Slot(c, SlotKind::kLet, l.name.name, static_cast<int>(out.size()), -1, v.type);
      c.lets[l.name.name] = {slot, v.type};
      c.let_exprs[l.name.name] = l.value.get();
      let_spans_[l.name.name] = l.name.span;
      out.emplace_back(l.name.name, std::move(v));
    }
  }

  void WarnUnusedLets(const std::vector<LetDecl>& lets, const UnitCtx& c) {
    for (const auto& l : lets) {
      if (!c.used_lets.count(l.name.name)) {
        d_.Warning("unused", l.name.span, "`" + l.name.name + "` is defined but never used",
                   "remove it, or use it in `when`, an action or a message");
      }
    }
  }

  void FinishQueries(std::vector<WindowQuery>& queries, const std::vector<SlotRef>& slots, UnitCtx& c) {
    if (!c.table) return;
    for (auto& q : queries) {
      for (const auto& s : slots) {
        if (s.kind == SlotKind::kDim && s.name != c.table->key &&
            std::find(q.dims.begin(), q.dims.end(), s.name) == q.dims.end()) {
          q.dims.push_back(s.name);
        }
      }
      BuildQuerySql(q, *c.table, c.where_sql);
    }
  }

  // `with confidence`: the condition must be `COST / COUNT <op> threshold`.
  void EmitConfidence(const RuleDecl& r, UnitCtx& c, CompiledRule& out) {
    const Expr& cond = *r.condition;
    auto fail = [&](Span s, const std::string& msg) {
      d_.Error("bad-confidence", s, msg,
               "for a cost per conversion write `let cpa = sum(spend) / sum(conversions)` and "
               "`when cpa > 1.5 * adset.target_cpa with confidence 90%`; for other measures, remove "
               "`with confidence`");
    };
    if (!c.table) {
      if (c.unresolved) return;
      // Underline the whole `with confidence 95%`.
      Span span = r.confidence_span;
      std::string_view gap = r_.sources.Text(Span{span.file, cond.span.end, span.begin});
      if (auto w = gap.find("with"); w != std::string_view::npos) span.begin = cond.span.end + static_cast<std::uint32_t>(w);
      d_.Error("bad-confidence", span,
               "`with confidence` weighs costs measured in the warehouse, and this rule reads no table",
               "remove it: the values this rule compares are exact, so a plain `when` is enough");
      return;
    }
    if (cond.kind != ExprKind::kBinary ||
        !(cond.op == Op::kGt || cond.op == Op::kGe || cond.op == Op::kLt || cond.op == Op::kLe)) {
      fail(cond.span, "`with confidence` needs one comparison such as `cpa > target`");
      return;
    }
    const Expr* lhs = cond.args[0].get();
    for (int hops = 0; hops < 16 && lhs->kind == ExprKind::kPath && lhs->path.size() == 1; ++hops) {
      auto it = c.let_exprs.find(lhs->path[0]);
      if (it == c.let_exprs.end()) break;
      lhs = it->second;
    }
    auto sum_of = [&](const Expr* e, BaseType want) -> const FieldInfo* {
      if (e->kind != ExprKind::kCall || e->text != "sum" || e->args.size() != 1) return nullptr;
      const Expr& a = *e->args[0];
      if (a.kind != ExprKind::kPath) return nullptr;
      std::string name = a.path.size() == 2 && a.path[0] == c.var ? a.path[1] : a.path[0];
      const FieldInfo* f = FindField(c.table->facts, name);
      return f && f->type.base == want ? f : nullptr;
    };
    if (lhs->kind != ExprKind::kBinary || lhs->op != Op::kDiv) {
      fail(cond.args[0]->span, "`with confidence` needs a cost per count on the left, such as `sum(spend) / sum(conversions)`");
      return;
    }
    const FieldInfo* cost = sum_of(lhs->args[0].get(), BaseType::kMoney);
    const FieldInfo* count = sum_of(lhs->args[1].get(), BaseType::kCount);
    if (!cost || !count) {
      fail(cond.args[0]->span, "`with confidence` needs a cost per count on the left, such as `sum(spend) / sum(conversions)`");
      return;
    }
    ConfidenceSpec spec;
    spec.level = r.confidence;
    int q = Query(c, cond.span);
    if (q < 0) return;
    spec.cost_query = q;
    spec.cost_aggregate = Aggregate(c, q, AggFn::kSum, cost->name);
    spec.count_aggregate = Aggregate(c, q, AggFn::kSum, count->name);
    spec.above = cond.op == Op::kGt || cond.op == Op::kGe;
    spec.threshold = Value(*cond.args[1], c);
    out.confidence = std::move(spec);
  }

  void CompileRule(const RuleDecl& r, const std::string& file) {
    CompiledRule out;
    out.name = r.name.name;
    out.file = file;
    out.line = Line(r.span);
    out.meta = Meta(r.options, r.name, "rule");
    std::set<std::string> deps;
    UnitCtx c;
    c.kind = "rule";
    c.slots = &out.slots;
    c.queries = &out.queries;
    c.deps = &deps;
    across_ = false;
    missing_window_reported_ = false;
    out.trigger = r.trigger.kind;
    switch (r.trigger.kind) {
      case TriggerKind::kNone:
        d_.Error("missing-trigger", r.name.span, "rule `" + r.name.name + "` has no trigger",
                 "say when it runs: `on EVENT`, `on SCORE crosses above N` or `every 1h`");
        break;
      case TriggerKind::kEvent: {
        const EventInfo* ev = FindEvent(r.trigger.subject.name);
        if (!ev) {
          const std::vector<std::string>& names = EventNames();
          if (FindScore(r.trigger.subject.name, "")) {
            d_.Error("unknown-name", r.trigger.subject.span,
                     "`" + r.trigger.subject.name + "` is a score, not an event",
                     "to react to a score, write `on " + r.trigger.subject.name + " crosses above 50`");
          } else {
            UnknownName(r.trigger.subject.name, r.trigger.subject.span, names, "event");
          }
          c.unresolved = true;
          break;
        }
        out.event = ev->name;
        used_events_.insert(ev->name);
        Dep(c, "event " + ev->name);
        c.event = ev;
        if (!ev->entities.empty()) c.entity = program_.FindEntity(ev->entities[0]);
        if (c.entity) out.entity = c.entity->name;
        if (r.trigger.where) out.event_filter = Condition(*r.trigger.where, c, "where");
        break;
      }
      case TriggerKind::kCrossing: {
        const CompiledScore* s = FindScore(r.trigger.subject.name, "");
        if (!s) {
          std::vector<std::string> names;
          for (const auto& sc : program_.scores) names.push_back(sc.name);
          UnknownName(r.trigger.subject.name, r.trigger.subject.span, names, "score");
          c.unresolved = true;
          break;
        }
        out.event = s->name;
        Dep(c, "score " + s->name);
        c.entity = program_.FindEntity(s->entity);
        out.entity = s->entity;
        out.direction = r.trigger.direction;
        const Expr& th = *r.trigger.threshold;
        if (th.kind == ExprKind::kNumber && th.unit.empty()) {
          out.threshold = th.number;
        } else if (th.kind == ExprKind::kUnary && th.op == Op::kNeg && th.args[0]->kind == ExprKind::kNumber &&
                   th.args[0]->unit.empty()) {
          out.threshold = -th.args[0]->number;
        } else {
          d_.Error("bad-threshold", th.span, "a crossing threshold is a plain number of points, such as `50`");
        }
        break;
      }
      case TriggerKind::kSchedule:
        out.schedule = r.trigger.schedule;
        CheckSchedule(out.schedule);
        break;
    }
    if (r.scope) {
      if (r.trigger.kind != TriggerKind::kSchedule && r.trigger.kind != TriggerKind::kNone) {
        d_.Error("scope-needs-schedule", r.scope->span,
                 "`" + std::string(r.scope->across ? "across" : "for each") +
                     "` reads the warehouse, which happens on a schedule",
                 "use `every 1h` (or another schedule) as the trigger");
        c.unresolved = true;
      } else {
        across_ = r.scope->across;
        BeginScope(c, *r.scope);
        if (c.table) {
          CompiledScope cs;
          cs.across = r.scope->across;
          cs.var = c.var;
          cs.table = c.table->name;
          cs.window = r.scope->window;
          cs.where_sql = c.where_sql;
          out.scope = cs;
          if (r.scope->across && r.scope->window.kind == WindowKind::kNone) {
            missing_window_reported_ = true;
            d_.Error("missing-window", r.scope->span, "`across` needs a window such as `over last 7d`");
          }
        }
      }
    }
    EmitLets(r.lets, c, out.lets);
    if (r.condition) {
      out.condition = Condition(*r.condition, c, "when");
      if (r.confidence > 0 && out.condition.type.base == BaseType::kBool) EmitConfidence(r, c, out);
    }
    if (r.actions.empty()) {
      d_.Error("missing-then", r.name.span, "rule `" + r.name.name + "` does nothing",
               "add `then` and at least one action (pause, notify slack, webhook, ...)");
    }
    for (const auto& a : r.actions) out.actions.push_back(EmitAction(a, c));
    if (out.meta.require_approval) {
      bool budget = false;
      for (const auto& a : out.actions) budget |= a.kind == ActionKind::kReallocate || a.kind == ActionKind::kSetBudget ||
                                                  a.kind == ActionKind::kPause || a.kind == ActionKind::kEnable;
      (void)budget;
    }
    WarnUnusedLets(r.lets, c);
    FinishQueries(out.queries, out.slots, c);
    out.version = Version(r.span, deps);
    program_.rules.push_back(std::move(out));
  }

  void CompileScore(const ScoreDecl& s, const std::string&) {
    CompiledScore out;
    out.name = s.name.name;
    const EntityInfo* en = program_.FindEntity(s.entity.name);
    if (!en) {
      UnknownName(s.entity.name, s.entity.span, EntityNames(), "entity");
      return;
    }
    out.entity = en->name;
    std::set<std::string> deps = {"entity " + en->name};
    for (std::size_t i = 0; i < s.rules.size(); ++i) {
      const ScoreRule& sr = s.rules[i];
      UnitCtx c;
      c.kind = "score";
      c.entity = en;
      c.slots = &out.slots;
      c.deps = &deps;
      CompiledScoreRule cr;
      cr.kind = sr.kind;
      cr.amount = sr.amount;
      cr.once = sr.once;
      cr.index = static_cast<int>(i);
      if (sr.kind == ScoreRuleKind::kOnEvent) {
        const EventInfo* ev = FindEvent(sr.event.name);
        if (!ev) {
          const std::vector<std::string>& names = EventNames();
          UnknownName(sr.event.name, sr.event.span, names, "event");
          continue;
        }
        if (std::find(ev->entities.begin(), ev->entities.end(), en->name) == ev->entities.end()) {
          d_.Error("wrong-entity", sr.event.span,
                   "event `" + ev->name + "` has no `" + en->key + "` field, so it cannot change a " + en->name +
                       "'s score",
                   "add `" + en->key + ": text` to the event");
          continue;
        }
        used_events_.insert(ev->name);
        deps.insert("event " + ev->name);
        cr.event = ev->name;
        c.event = ev;
      }
      if (sr.condition) cr.condition = Condition(*sr.condition, c, sr.kind == ScoreRuleKind::kOnEvent ? "where" : "when");
      if (sr.kind == ScoreRuleKind::kWhen && !sr.once) {
        d_.Error("when-needs-once", sr.span,
                 "a `when` rule in a score would add its points again at every event",
                 "add `once` at the end: `when ... add 10 once`");
      }
      if (sr.amount == 0) d_.Warning("zero-points", sr.amount_span, "this rule adds 0 points");
      out.rules.push_back(std::move(cr));
    }
    // Conditions of a score must not read the score itself through another path: scores are
    // read decayed to "now", which is fine; nothing else to check here.
    out.decay = s.decay;
    out.decay_amount = s.decay_amount;
    out.decay_seconds = s.decay_seconds;
    if (s.decay == DecayKind::kInactivity && s.decay_amount <= 0) {
      d_.Error("bad-decay", s.decay_span, "decay must remove a positive number of points");
    }
    out.floor = s.floor;
    out.cap = s.cap;
    if (s.floor && s.cap && *s.floor > *s.cap) {
      d_.Error("bad-bounds", s.span, "the floor of `" + s.name.name + "` is above its cap");
    }
    out.version = Version(s.span, deps);
    program_.scores.push_back(std::move(out));
  }

  // Flattens journey items; returns the index of the first step (or `cont` if none).
  int Flatten(const std::vector<JourneyItem>& items, int cont, CompiledJourney& j, UnitCtx& c,
              std::vector<Span>& spans, std::map<std::string, int>& names,
              std::vector<std::pair<int, const JourneyItem*>>& gotos) {
    if (items.empty()) return cont;
    std::vector<int> idx;
    for (std::size_t i = 0; i < items.size(); ++i) {
      j.steps.emplace_back();
      spans.push_back(items[i].span);
      idx.push_back(static_cast<int>(j.steps.size() - 1));
      if (i > 0) prev_in_list_[idx[i]] = idx[i - 1];
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      const JourneyItem& it = items[i];
      int next = i + 1 < items.size() ? idx[i + 1] : cont;
      int me = idx[i];
      switch (it.kind) {
        case JourneyItemKind::kStep: {
          CompiledAction act = EmitAction(it.action, c);
          j.steps[me].kind = StepKind::kAction;
          j.steps[me].name = it.name.name;
          j.steps[me].action = std::move(act);
          j.steps[me].next = next;
          if (auto [prev, fresh] = names.emplace(it.name.name, me); !fresh) {
            d_.Error("duplicate-name", it.name.span, "step `" + it.name.name + "` is defined twice in this journey",
                     "the first is on line " + std::to_string(Line(spans[prev->second])) +
                         "; give each step its own name");
          }
          break;
        }
        case JourneyItemKind::kWait: {
          j.steps[me].kind = StepKind::kWait;
          j.steps[me].wait_seconds = it.wait_seconds;
          j.steps[me].next = next;
          std::set<std::string> wait_events;
          for (const auto& ev : it.wait_events) {
            if (!FindEvent(ev.name)) {
              const std::vector<std::string>& evn = EventNames();
              UnknownName(ev.name, ev.span, evn, "event");
            } else {
              used_events_.insert(ev.name);
              wait_events.insert(ev.name);
            }
          }
          bool timeout_seen = false;
          for (const auto& b : it.branches) {
            std::size_t branch_begin = j.steps.size();
            int first = Flatten(b.items, next, j, c, spans, names, gotos);
            // The steps of a refused branch are reported with it, not again as unreachable.
            auto excuse = [&] {
              for (std::size_t k = branch_begin; k < j.steps.size(); ++k) excused_steps_.insert(static_cast<int>(k));
            };
            if (b.timeout) {
              if (timeout_seen) {
                d_.Error("duplicate-branch", b.span, "a wait has one `on timeout` branch");
                excuse();
              }
              timeout_seen = true;
              if (j.steps[me].on_timeout < 0) j.steps[me].on_timeout = first;
            } else if (!wait_events.count(b.event.name)) {
              excuse();
              if (FindEvent(b.event.name)) {
                d_.Error("unknown-branch", b.event.span,
                         "this wait is not waiting for `" + b.event.name + "`",
                         it.wait_events.empty()
                             ? "wait for it: `wait up to 48h for " + b.event.name + "`"
                             : "add it to the events of the wait: `" + std::string(r_.sources.Text(it.span)) +
                                   ", " + b.event.name + "`");
              } else {
                std::vector<std::string> cand(wait_events.begin(), wait_events.end());
                cand.push_back("timeout");
                UnknownName(b.event.name, b.event.span, cand, "branch");
              }
            } else {
              j.steps[me].on_event.emplace_back(b.event.name, first);
            }
          }
          if (!it.branches.empty() && it.wait_events.empty()) {
            d_.Error("unknown-branch", it.span, "branches need a wait for events: `wait up to 48h for EVENT`");
          }
          break;
        }
        case JourneyItemKind::kGoto:
          j.steps[me].kind = StepKind::kGoto;
          gotos.emplace_back(me, &it);
          break;
        case JourneyItemKind::kEnd:
          j.steps[me].kind = StepKind::kEnd;
          j.steps[me].next = -1;
          break;
      }
    }
    return idx[0];
  }

  void CompileJourney(const JourneyDecl& jd, const std::string& file) {
    CompiledJourney out;
    out.name = jd.name.name;
    out.file = file;
    out.line = Line(jd.span);
    out.meta = Meta(jd.options, jd.name, "journey");
    const EntityInfo* en = program_.FindEntity(jd.entity.name);
    if (!en) {
      UnknownName(jd.entity.name, jd.entity.span, EntityNames(), "entity");
      return;
    }
    out.entity = en->name;
    std::set<std::string> deps = {"entity " + en->name};
    UnitCtx c;
    c.kind = "journey";
    c.entity = en;
    c.slots = &out.slots;
    c.deps = &deps;
    if (!jd.enter_event.name.empty()) {
      const EventInfo* ev = FindEvent(jd.enter_event.name);
      if (!ev) {
        const std::vector<std::string>& names = EventNames();
        UnknownName(jd.enter_event.name, jd.enter_event.span, names, "event");
      } else if (std::find(ev->entities.begin(), ev->entities.end(), en->name) == ev->entities.end()) {
        d_.Error("wrong-entity", jd.enter_event.span,
                 "event `" + ev->name + "` carries no `" + en->key + "`, so it cannot start a " + en->name + "'s journey");
      } else {
        out.enter_event = ev->name;
        used_events_.insert(ev->name);
        deps.insert("event " + ev->name);
        UnitCtx ec = c;
        ec.event = ev;
        if (jd.enter_condition) out.enter_condition = Condition(*jd.enter_condition, ec, "when");
      }
    }
    if (jd.exit_condition) out.exit_condition = Condition(*jd.exit_condition, c, "exit when");
    out.cap_count = jd.cap_count;
    out.cap_seconds = jd.cap_seconds;
    if (jd.cap_span.end && jd.cap_count <= 0) d_.Error("bad-cap", jd.cap_span, "a cap must allow at least 1 message");
    out.quiet_start_minute = jd.quiet.start_minute;
    out.quiet_end_minute = jd.quiet.end_minute;
    if (jd.quiet.span.end) {
      if (jd.quiet.start_minute == jd.quiet.end_minute && jd.quiet.start_minute >= 0) {
        d_.Error("bad-quiet-hours", jd.quiet.span, "quiet hours start and end at the same time");
      }
      if (!jd.quiet.zone_field.empty()) {
        const auto& zf = jd.quiet.zone_field;
        const FieldInfo* f = zf.size() == 2 && zf[0] == en->name ? FindField(en->fields, zf[1]) : nullptr;
        if (!f || f->type.base != BaseType::kText) {
          d_.Error("bad-zone-field", jd.quiet.span,
                   "the time zone of quiet hours must be a text field of the " + en->name + ", such as `" +
                       en->name + ".timezone`, or a quoted zone name");
        } else {
          out.quiet_timezone_field = zf[1];
        }
      } else {
        out.quiet_timezone = jd.quiet.timezone;
        CheckZone(jd.quiet.timezone, jd.quiet.span);
      }
    }
    std::vector<Span> spans;
    std::map<std::string, int> names;
    std::vector<std::pair<int, const JourneyItem*>> gotos;
    excused_steps_.clear();
    prev_in_list_.clear();
    Flatten(jd.items, -1, out, c, spans, names, gotos);
    for (auto [at, item] : gotos) {
      auto it = names.find(item->name.name);
      if (it == names.end()) {
        std::vector<std::string> cand;
        for (const auto& [n, i] : names) cand.push_back(n);
        UnknownName(item->name.name, item->name.span, cand, "step");
      } else {
        out.steps[at].target = it->second;
        out.steps[at].next = it->second;
      }
    }
    if (out.steps.empty()) {
      d_.Error("empty-journey", jd.name.span, "journey `" + jd.name.name + "` has no steps",
               "add at least one, e.g. `step welcome: email \"welcome\"`");
    } else {
      // Reachability from the first step.
      std::vector<bool> seen(out.steps.size(), false);
      std::vector<int> stack = {0};
      while (!stack.empty()) {
        int s = stack.back();
        stack.pop_back();
        if (s < 0 || seen[s]) continue;
        seen[s] = true;
        const CompiledStep& st = out.steps[s];
        stack.push_back(st.next);
        if (st.kind == StepKind::kWait) {
          stack.push_back(st.on_timeout);
          for (const auto& [e, i] : st.on_event) stack.push_back(i);
        }
      }
      for (std::size_t i = 0; i < out.steps.size(); ++i) {
        if (!seen[i] && !excused_steps_.count(static_cast<int>(i))) {
          std::string hint = "nothing leads here: it follows an `end` or a `goto`, or every branch before it leaves";
          auto prev = prev_in_list_.find(static_cast<int>(i));
          if (prev != prev_in_list_.end() && (out.steps[prev->second].kind == StepKind::kEnd ||
                                              out.steps[prev->second].kind == StepKind::kGoto)) {
            bool end = out.steps[prev->second].kind == StepKind::kEnd;
            hint = std::string("it comes right after the `") + (end ? "end" : "goto") + "` on line " +
                   std::to_string(Line(spans[prev->second])) + ", which " +
                   (end ? "finishes the journey" : "always jumps away") +
                   "; move the step before it, or remove the `" + (end ? "end" : "goto") + "`";
          }
          d_.Error("unreachable-step", spans[i],
                   out.steps[i].name.empty() ? "this part of the journey can never run"
                                             : "step `" + out.steps[i].name + "` can never run",
                   hint);
          break;  // one report per journey: the rest of a dead stretch is the same mistake
        }
      }
    }
    out.version = Version(jd.span, deps);
    program_.journeys.push_back(std::move(out));
  }

  void CompileAlert(const AlertDecl& a, const std::string& file) {
    CompiledAlert out;
    out.name = a.name.name;
    out.file = file;
    out.line = Line(a.span);
    out.meta = Meta(a.options, a.name, "alert");
    out.schedule = a.schedule;
    if (a.has_schedule) CheckSchedule(out.schedule);
    std::set<std::string> deps;
    UnitCtx c;
    c.kind = "alert";
    c.slots = &out.slots;
    c.queries = &out.queries;
    c.anomalies = &out.anomalies;
    c.deps = &deps;
    across_ = false;
    missing_window_reported_ = false;
    if (a.scope) {
      if (a.scope->across) {
        d_.Error("bad-scope", a.scope->span, "an alert watches each row on its own: use `for each`, not `across`");
      }
      BeginScope(c, *a.scope);
      if (c.table) {
        CompiledScope cs;
        cs.var = c.var;
        cs.table = c.table->name;
        cs.window = a.scope->window;
        cs.where_sql = c.where_sql;
        out.scope = cs;
      }
    }
    EmitLets(a.lets, c, out.lets);
    if (a.condition) out.condition = Condition(*a.condition, c, "when");
    out.for_seconds = a.for_seconds;
    out.severity = a.severity;
    out.slack_channel = a.slack_channel;
    out.runbook = a.runbook;
    out.repeat_seconds = a.repeat_seconds;
    out.resolve_notify = a.resolve_notify;
    if (a.slack_channel.empty()) {
      d_.Error("missing-notify", a.name.span, "alert `" + a.name.name + "` tells nobody",
               "add `notify slack \"#channel\" runbook \"https://...\"`");
    } else if (a.slack_channel[0] != '#' && a.slack_channel[0] != '@') {
      d_.Error("bad-channel", a.slack_span, "a Slack channel starts with `#` (or `@` for a person)");
    }
    if (a.severity == Severity::kPage && a.runbook.empty() && !a.slack_channel.empty()) {
      d_.Warning("missing-runbook", a.slack_span,
                 "alert `" + a.name.name + "` pages on-call but gives no runbook",
                 "add `runbook \"https://...\"` after the message so on-call knows what to do");
    }
    out.message = Template(a.message, a.message_span, c);
    if (!a.group_by.empty()) {
      std::vector<std::string> g = a.group_by;
      if (g.size() == 2 && g[0] == c.var) g.erase(g.begin());
      if (!c.table) {
        if (!c.unresolved) {
          d_.Error("bad-group", a.group_span,
                   "`group by` takes a dim of the alert's table, and this alert has no `for each VAR in TABLE`");
        }
      } else if (g.size() != 1 || (!FindField(c.table->dims, g[0]) && g[0] != c.table->key)) {
        std::string dims;
        for (const auto& d : c.table->dims) dims += (dims.empty() ? "" : ", ") + d.name;
        std::string example = c.table->dims.empty() ? c.table->key : c.table->dims.front().name;
        bool fact = g.size() == 1 && FindField(c.table->facts, g[0]);
        d_.Error("bad-group", a.group_span,
                 fact ? "`" + g[0] + "` is a fact (a measure); `group by` takes a dim of `" + c.table->name + "`"
                      : "`group by` takes a dim of `" + c.table->name + "`",
                 "the dims are: " + (dims.empty() ? c.table->key : dims) + " (e.g. `group by " + c.var + "." +
                     example + "`)");
      } else {
        out.group_by = g;
        Slot(c, SlotKind::kDim, g[0], -1, -1, T(BaseType::kText));
      }
    }
    WarnUnusedLets(a.lets, c);
    FinishQueries(out.queries, out.slots, c);
    out.version = Version(a.span, deps);
    program_.alerts.push_back(std::move(out));
  }

  // ---------------------------------------------------------------- driver

  void CompileAll() {
    CollectSchema();
    std::map<std::string, Span> units, scores;
    // Scores first: rules and journeys read them.
    for (const File& f : files_) {
      for (const auto& s : f.scores) {
        if (Declare(scores, s.name, "score")) CompileScore(s, r_.sources.file(f.id).path);
      }
    }
    for (const File& f : files_) {
      const std::string& path = r_.sources.file(f.id).path;
      for (const auto& r : f.rules) {
        if (Declare(units, r.name, "rule")) CompileRule(r, path);
      }
      for (const auto& j : f.journeys) {
        if (Declare(units, j.name, "journey")) CompileJourney(j, path);
      }
      for (const auto& a : f.alerts) {
        if (Declare(units, a.name, "alert")) CompileAlert(a, path);
      }
    }
    // An unused event is worth a warning only in a file the author named that also has rules
    // of its own: a shared schema (imported, or a file of declarations only) declares more
    // than each user needs. After a syntax error the declaration that used it may be the one
    // that was dropped, so stay quiet then too.
    for (const File& f : files_) {
      bool schema_only = f.scores.empty() && f.rules.empty() && f.journeys.empty() && f.alerts.empty();
      if (imported_files_.count(f.id) || schema_only || declarations_dropped_) continue;
      for (const auto& e : f.events) {
        if (!used_events_.count(e.name.name)) {
          bool updates = e.updates.has_value();
          if (!updates) {
            d_.Warning("unused", e.name.span, "event `" + e.name.name + "` is declared but nothing uses it",
                       "a score, rule or journey can react to it with `on " + e.name.name + "`");
          }
        }
      }
    }
    for (std::uint32_t i = 0; i < r_.sources.size(); ++i) program_.files.push_back(r_.sources.file(i).path);
    std::string all;
    for (const auto& s : program_.scores) all += "score " + s.name + " " + s.version + "\n";
    for (const auto& r : program_.rules) all += "rule " + r.name + " " + r.version + "\n";
    for (const auto& j : program_.journeys) all += "journey " + j.name + " " + j.version + "\n";
    for (const auto& a : program_.alerts) all += "alert " + a.name + " " + a.version + "\n";
    program_.version = Sha256Hex(all);
  }

  Program TakeProgram() { return std::move(program_); }

 private:
  CompileResult& r_;
  const CompileOptions& o_;
  Diagnostics& d_;
  std::vector<File> files_;
  std::vector<std::uint32_t> pending_;
  std::set<std::string> loaded_;
  std::set<std::uint32_t> imported_files_;
  bool declarations_dropped_ = false;  // a syntax error cost a whole declaration
  Program program_;
  std::map<std::string, Span> decl_spans_;
  std::map<std::string, Span> table_spans_;
  std::map<std::string, Span> let_spans_;
  std::set<std::string> used_events_;
  bool across_ = false;
  bool missing_window_reported_ = false;
  std::set<int> excused_steps_;  // journey steps whose mistake is already reported
  std::map<int, int> prev_in_list_;  // journey step -> the item before it in the same list
  // Name suggestions compare a name with every candidate: bounded per compile, so that
  // thousands of unknown names among thousands of declarations stay linear.
  long suggestion_budget_ = 1 << 18;
  std::vector<std::string> event_names_;            // EventNames()
  std::map<std::string, std::size_t> event_index_;  // FindEvent(): name -> program_.events
};

void Finish(Compiler& c, CompileResult& r) {
  c.CompileAll();
  r.diags.Sort();
  // Past this many errors, more of them help nobody (and a hostile file could make millions).
  constexpr std::size_t kMaxErrors = 200;
  r.diags.Limit(kMaxErrors);
  if (!r.diags.has_errors()) r.program = std::make_shared<const Program>(c.TakeProgram());
}

}  // namespace

CompileResult Compile(const std::vector<std::string>& paths, const CompileOptions& options) {
  CompileResult r;
  Compiler c(r, options);
  if (!c.LoadPaths(paths)) return r;
  Finish(c, r);
  return r;
}

CompileResult CompileSources(const std::vector<std::pair<std::string, std::string>>& sources,
                             const CompileOptions& options) {
  CompileResult r;
  CompileOptions o = options;
  if (!o.read_file) o.read_file = [](const std::string&, std::string&) { return false; };
  Compiler c(r, o);
  c.LoadAll(sources);
  Finish(c, r);
  return r;
}

}  // namespace gavel::dsl
