// `gavel replay`. See cli_replay.hpp.
#include "daemon/cli_replay.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "dsl/compiler.hpp"
#include "rules/compact_decision.hpp"
#include "rules/engine.hpp"
#include "rules/store/decision_log.hpp"
#include "rules/store/sqlite_warehouse.hpp"
#include "rules/store/rule_sources.hpp"
#include "rules/store/state_store.hpp"

namespace gavel::cli {

namespace {

constexpr const char* kUsage =
    "usage: gavel replay --rules DIR --events FILE.ndjson [--warehouse DB] [--from T1] [--to T2]\n"
    "                    [--log FILE.db] [--format text|json|none] [--all-evaluations] [--timings]\n"
    "  Runs the engine on a simulated clock over history: events in event-time order, every\n"
    "  schedule tick and timer in between. Prints one line per decision.\n"
    "  --from/--to       RFC 3339 times (default: the first and last event)\n"
    "  --warehouse DB    SQLite warehouse for scheduled rules and alerts (without it they\n"
    "                    are not run)\n"
    "  --log FILE.db     also append every decision to a hash-chained decision log (SQLite), and\n"
    "                    save the engine's state at the end of the replay in the same file and\n"
    "                    transaction (the state database `gavel run` uses)\n"
    "  --format json     decisions as JSON lines\n"
    "  --all-evaluations log evaluations that did not fire too (default: counts in a summary)\n"
    "  --timings         print where the time went (read and parse, engine, state and commit)\n"
    "  --format none     print no decisions, only the summary line (with --log: they are in the log)\n"
    "exit status: 0 done, 1 the rule files do not compile, 2 usage or I/O problems\n";

// Prints each decision as it is made.
class PrintSink final : public rules::DecisionSink {
 public:
  PrintSink(std::ostream& out, bool json, bool quiet, rules::DecisionLog* log)
      : out_(out), json_(json), quiet_(quiet), log_(log) {}
  bool Append(rules::Decision& d) override {
    // Log first: a decision that is not durable is not printed as made.
    if (log_) {
      if (!log_->Append(d)) return false;
      ++count_;
    } else {
      d.id = ++count_;
    }
    ++by_outcome_[d.outcome];
    if (quiet_) return true;
    if (json_) out_ << rules::ToJson(d, false).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    else out_ << rules::RenderLine(d) << "\n";
    return static_cast<bool>(out_);
  }
  std::int64_t count() const { return count_; }
  const std::map<std::string, std::int64_t>& by_outcome() const { return by_outcome_; }

 private:
  std::ostream& out_;
  bool json_;
  bool quiet_;
  rules::DecisionLog* log_;
  std::int64_t count_ = 0;
  std::map<std::string, std::int64_t> by_outcome_;
};

// Hands decisions to another sink on a writer thread of its own, in order: the engine thread
// copies each compact record (rules/compact_decision.hpp) or moves each full Decision into a
// chunk, and the writer materializes the compact ones and appends (log, then print). So the
// JSON, the hash chain and SQLite run beside the engine instead of inside it. The target is
// used only by the writer thread until Finish() returns. Chunks are recycled, with their
// buffers, and at most kMaxChunks wait: memory stays bounded when the writer is slower.
class ThreadedSink final : public rules::DecisionSink {
 public:
  explicit ThreadedSink(rules::DecisionSink& target) : target_(target), writer_([this] { Write(); }) {}
  ~ThreadedSink() override { Finish(); }

  bool Append(rules::Decision& d) override {
    Item* it = Next();
    if (!it) return false;
    it->compact = false;
    it->full = std::move(d);  // the engine does not read a Decision after appending it
    Filled();
    return true;
  }
  bool AppendCompact(const rules::CompactDecision& c) override {
    Item* it = Next();
    if (!it) return false;
    it->compact = true;
    it->c = c;  // copy-assignment keeps the slot's buffers
    Filled();
    return true;
  }
  // Waits until everything queued is written. False if the target refused a decision (the
  // ones after it were not written).
  bool Finish() {
    if (writer_.joinable()) {
      Flush();
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_ = true;
      }
      ready_.notify_all();
      writer_.join();
    }
    return !failed_.load();
  }

 private:
  struct Item {
    bool compact = false;
    rules::CompactDecision c;
    rules::Decision full;
  };
  struct Chunk {
    std::vector<Item> items;
    std::size_t n = 0;
  };
  static constexpr std::size_t kChunk = 256;
  static constexpr std::size_t kMaxChunks = 64;

  Item* Next() {
    if (failed_.load(std::memory_order_relaxed)) return nullptr;
    if (!open_) {
      std::unique_lock<std::mutex> lock(mu_);
      space_.wait(lock, [&] { return full_.size() < kMaxChunks || failed_.load(); });
      if (failed_.load()) return nullptr;
      if (!free_.empty()) {
        open_ = std::move(free_.back());
        free_.pop_back();
      } else {
        open_ = std::make_unique<Chunk>();
      }
    }
    if (open_->n == open_->items.size()) open_->items.emplace_back();
    return &open_->items[open_->n++];
  }
  // After the slot from Next() is filled in: a full chunk goes to the writer.
  void Filled() {
    if (open_->n == kChunk) Flush();
  }
  // Hands the open chunk to the writer.
  void Flush() {
    if (!open_ || open_->n == 0) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      full_.push_back(std::move(open_));
    }
    ready_.notify_one();
  }
  void Write() {
    while (true) {
      std::unique_ptr<Chunk> chunk;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_.wait(lock, [&] { return !full_.empty() || done_; });
        if (full_.empty()) return;
        chunk = std::move(full_.front());
        full_.pop_front();
      }
      space_.notify_one();
      for (std::size_t i = 0; i < chunk->n && !failed_.load(); ++i) {
        Item& it = chunk->items[i];
        bool ok;
        if (it.compact) {
          rules::Decision d = rules::Materialize(it.c);
          ok = target_.Append(d);
        } else {
          ok = target_.Append(it.full);
        }
        if (!ok) {
          failed_ = true;
          space_.notify_all();
        }
      }
      chunk->n = 0;
      std::lock_guard<std::mutex> lock(mu_);
      free_.push_back(std::move(chunk));
    }
  }

  rules::DecisionSink& target_;
  std::unique_ptr<Chunk> open_;  // engine thread
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<std::unique_ptr<Chunk>> full_;   // under mu_
  std::vector<std::unique_ptr<Chunk>> free_;  // under mu_
  bool done_ = false;                         // under mu_
  std::atomic<bool> failed_{false};
  std::thread writer_;  // last: starts once the members above exist
};

struct Input {
  rules::Event event;
  std::size_t line;
};

}  // namespace

int RunReplay(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string rules_dir, events_path, warehouse_path, from_text, to_text, log_path, format = "text";
  bool all = false, timings = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= args.size()) return false;
      dst = args[++i];
      return true;
    };
    bool ok = true;
    if (a == "--rules") ok = value(rules_dir);
    else if (a == "--events") ok = value(events_path);
    else if (a == "--warehouse") ok = value(warehouse_path);
    else if (a == "--from") ok = value(from_text);
    else if (a == "--to") ok = value(to_text);
    else if (a == "--format") ok = value(format);
    else if (a == "--log") ok = value(log_path);
    else if (a == "--all-evaluations") all = true;
    else if (a == "--timings") timings = true;
    else if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    } else {
      err << "gavel replay: unknown argument `" << a << "`\n" << kUsage;
      return 2;
    }
    if (!ok) {
      err << "gavel replay: " << a << " needs a value\n";
      return 2;
    }
  }
  if (rules_dir.empty() || events_path.empty()) {
    err << "gavel replay: --rules and --events are required\n" << kUsage;
    return 2;
  }
  if (format != "text" && format != "json" && format != "none") {
    err << "gavel replay: --format must be `text`, `json` or `none`\n";
    return 2;
  }
  rules::TimeMs from = 0, to = 0;
  if (!from_text.empty() && !rules::ParseTime(from_text, from)) {
    err << "gavel replay: --from is not an RFC 3339 time: " << from_text << "\n";
    return 2;
  }
  if (!to_text.empty() && !rules::ParseTime(to_text, to)) {
    err << "gavel replay: --to is not an RFC 3339 time: " << to_text << "\n";
    return 2;
  }
  dsl::CompileResult compiled = dsl::Compile({rules_dir});
  if (!compiled.io_error.empty()) {
    err << "gavel replay: " << compiled.io_error << "\n";
    return 2;
  }
  if (!compiled.program) {
    err << dsl::RenderText(compiled.sources, compiled.diags.list());
    return 1;
  }
  std::unique_ptr<rules::SqliteWarehouse> warehouse;
  if (!warehouse_path.empty()) {
    auto w = rules::SqliteWarehouse::Open(warehouse_path);
    if (!w.ok()) {
      err << "gavel replay: " << w.status().message() << "\n";
      return 2;
    }
    warehouse = std::move(w.value());
  }
  using Steady = std::chrono::steady_clock;
  const auto t_read = Steady::now();
  // The whole file at once; its lines are parsed and validated on every core (each thread
  // a contiguous range of lines, so the events and the messages stay in file order).
  std::string text;
  {
    std::ifstream in(events_path, std::ios::binary);
    if (!in) {
      err << "gavel replay: cannot read " << events_path << "\n";
      return 2;
    }
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(events_path, ec);
    if (!ec) text.resize(static_cast<std::size_t>(bytes));
    if (!ec && !in.read(text.data(), static_cast<std::streamsize>(text.size()))) {
      err << "gavel replay: cannot read " << events_path << "\n";
      return 2;
    }
    if (ec) {  // not a regular file (a pipe): read it as a stream
      std::ostringstream all;
      all << in.rdbuf();
      text = all.str();
    }
  }
  std::vector<std::string_view> lines;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    lines.emplace_back(text.data() + at, nl - at);
    at = nl + 1;
  }
  struct Chunk {
    std::vector<Input> inputs;
    std::vector<std::pair<std::size_t, std::string>> rejected;  // line, reason
  };
  const std::size_t threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  const std::size_t per = (lines.size() + threads - 1) / std::max<std::size_t>(threads, 1);
  std::vector<Chunk> chunks(threads);
  auto parse = [&](std::size_t c) {
    const std::size_t first = c * per, last = std::min(lines.size(), first + per);
    Chunk& chunk = chunks[c];
    if (first < last) chunk.inputs.reserve(last - first);
    for (std::size_t i = first; i < last; ++i) {
      std::string_view line = lines[i];
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      Input input{{}, i + 1};
      Status s = rules::ParseEvent(*compiled.program, line, input.event);
      if (!s.ok()) {
        chunk.rejected.emplace_back(i + 1, s.message());
        continue;
      }
      chunk.inputs.push_back(std::move(input));
    }
  };
  {
    std::vector<std::thread> pool;
    for (std::size_t c = 1; c < threads; ++c) pool.emplace_back(parse, c);
    parse(0);
    for (auto& t : pool) t.join();
  }
  std::vector<Input> inputs;
  std::size_t rejected = 0;
  {
    std::size_t total = 0;
    for (const auto& c : chunks) total += c.inputs.size();
    inputs.reserve(total);
    for (auto& c : chunks) {
      for (const auto& [n, why] : c.rejected) err << events_path << ":" << n << ": rejected: " << why << "\n";
      rejected += c.rejected.size();
      std::move(c.inputs.begin(), c.inputs.end(), std::back_inserter(inputs));
      std::vector<Input>().swap(c.inputs);
    }
    std::vector<std::string_view>().swap(lines);
    std::string().swap(text);
  }
  // Event-time order, ties in file order. History files are usually in order already; when
  // not, an order of indexes is sorted rather than the events themselves.
  std::vector<std::uint32_t> order(inputs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::uint32_t>(i);
  auto earlier = [&](std::uint32_t a, std::uint32_t b) { return inputs[a].event.time < inputs[b].event.time; };
  if (!std::is_sorted(order.begin(), order.end(), earlier)) std::stable_sort(order.begin(), order.end(), earlier);
  if (from_text.empty()) from = inputs.empty() ? 0 : inputs[order.front()].event.time;
  if (to_text.empty()) to = inputs.empty() ? from : inputs[order.back()].event.time;
  if (to < from) {
    err << "gavel replay: --to is before --from\n";
    return 2;
  }
  std::unique_ptr<rules::StateDatabase> db;
  rules::DecisionLog* log = nullptr;
  if (!log_path.empty()) {
    auto opened = rules::StateDatabase::Open(log_path);
    if (!opened.ok()) {
      err << "gavel replay: " << opened.status().message() << "\n";
      return 2;
    }
    db = std::move(opened.value());
    log = &db->log();
    // One transaction for the whole replay: fast, and all-or-nothing.
    Status b = db->Begin();
    // The text of each unit version, for `gavel explain`.
    if (b.ok()) b = rules::RecordRuleSources(db->log().db(), *compiled.program, compiled.sources);
    if (!b.ok()) {
      err << "gavel replay: " << b.message() << "\n";
      return 2;
    }
  }
  const auto t_engine = Steady::now();
  rules::SimulatedClock clock(from);
  PrintSink printer(out, format == "json", format == "none", log);
  ThreadedSink sink(printer);
  rules::EngineOptions options;
  options.log_every_evaluation = all;
  options.run_schedules = warehouse != nullptr;
  options.track_state = db != nullptr;
  rules::Engine engine(compiled.program, {&clock, &sink, warehouse.get()}, options);
  engine.Start(from);
  engine.ReserveEvents(inputs.size());
  std::size_t applied = 0, duplicates = 0;
  for (std::uint32_t index : order) {
    const Input& input = inputs[index];
    if (input.event.time < from || input.event.time > to) continue;
    clock.Set(input.event.time);
    Status s = engine.AdvanceTo(input.event.time);
    if (s.ok()) s = engine.OnEvent(input.event);
    if (s.code() == Status::Code::kInvalidArgument) {
      ++duplicates;
      continue;
    }
    if (!s.ok()) {
      // A refused decision: the writer has stopped; its own error says why.
      if (!sink.Finish() && log && !log->last_error().ok()) s = log->last_error();
      err << "gavel replay: " << s.message() << "\n";
      return 2;
    }
    ++applied;
  }
  clock.Set(to);
  Status s = engine.AdvanceTo(to);
  if (s.ok()) s = engine.FlushSummary();
  // Every decision written (log, then output) before the state joins them in the transaction.
  if (!sink.Finish() && s.ok()) {
    s = log && !log->last_error().ok() ? log->last_error() : Status::IoError("could not write the decisions");
  }
  const auto t_commit = Steady::now();
  if (s.ok() && db) s = engine.Checkpoint(db->state());
  if (s.ok() && db) s = db->Commit();
  if (!s.ok()) {
    err << "gavel replay: " << s.message() << "\n";
    return 2;
  }
  err << "replayed " << applied << " events from " << rules::FormatTime(from) << " to " << rules::FormatTime(to)
      << ": " << printer.count() << " decisions";
  for (const auto& [o, c] : printer.by_outcome()) err << ", " << c << " " << o;
  err << "; " << rejected << " lines rejected, " << duplicates << " duplicate events skipped\n";
  if (timings) {
    auto secs = [](Steady::duration d) { return std::chrono::duration<double>(d).count(); };
    const auto t_end = Steady::now();
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "timings: read, parse and sort %.3f s (%zu threads); engine and decisions %.3f s; state and "
                  "commit %.3f s; total %.3f s\n",
                  secs(t_engine - t_read), threads, secs(t_commit - t_engine), secs(t_end - t_commit),
                  secs(t_end - t_read));
    err << buf;
  }
  return 0;
}

}  // namespace gavel::cli
