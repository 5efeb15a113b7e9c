// The bytecode interpreter. See eval.hpp.
#include "rules/eval.hpp"

#include <algorithm>
#include <cmath>

namespace gavel::rules {

bool GlobMatch(std::string_view p, std::string_view t) {
  // Iterative matcher with one backtrack point: linear in practice, never exponential.
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

namespace {

using Kind = Value::Kind;
using dsl::OpCode;

// Result of a comparison opcode given the three-way order c (-1, 0, 1).
inline bool CompareResult(OpCode op, int c) {
  switch (op) {
    case OpCode::kEq: return c == 0;
    case OpCode::kNe: return c != 0;
    case OpCode::kLt: return c < 0;
    case OpCode::kLe: return c <= 0;
    case OpCode::kGt: return c > 0;
    default: return c >= 0;
  }
}

}  // namespace

// The stack is kept as three parallel arrays (kind, number, text) rather than an array of
// Values: the hot path (numbers and yes/no) then moves 9 bytes per push instead of 32, and
// never reads back a 16-byte text it did not write (a store-forwarding stall that once cost
// a quarter of the time). Texts are written and read only for kText.
//
// The arrays are sized before the loop: every instruction pushes at most one value and jumps
// only go forward (checked), so the depth never exceeds the code size. No bounds checks or
// growth on the hot path.
[[gnu::always_inline]] inline std::size_t Evaluator::Exec(const dsl::CompiledExpr& e, const Value* slots) {
  const std::size_t n = e.code.size();
  if (kinds_.size() < n) {
    kinds_.resize(n);
    nums_.resize(n);
    texts_.resize(n);
  }
  Kind* const K = kinds_.data();
  double* const N = nums_.data();
  std::string_view* const T = texts_.data();
  std::size_t sp = 0;  // the next free cell; sp - 1 is the top
  const dsl::Instr* const code = e.code.data();
  const dsl::Instr* const end = code + n;
  const dsl::Instr* ip = code;
  while (ip != end) {
    const dsl::Instr& in = *ip++;
    switch (in.op) {
      case OpCode::kConstNum:
        K[sp] = Kind::kNumber;
        N[sp++] = e.nums[in.a];
        break;
      case OpCode::kConstStr:
        K[sp] = Kind::kText;
        T[sp++] = e.strs[in.a];
        break;
      case OpCode::kConstBool:
        K[sp] = Kind::kBool;
        N[sp++] = in.a != 0 ? 1.0 : 0.0;
        break;
      case OpCode::kLoad: {
        const Value& v = slots[in.a];
        K[sp] = v.kind;
        N[sp] = v.num;
        if (v.kind == Kind::kText) T[sp] = v.text;
        ++sp;
        break;
      }
      case OpCode::kAdd:
      case OpCode::kSub:
      case OpCode::kMul:
      case OpCode::kDiv:
      case OpCode::kMin2:
      case OpCode::kMax2: {
        const std::size_t b = --sp, a = sp - 1;
        if (K[a] != Kind::kNumber || K[b] != Kind::kNumber) {
          K[a] = Kind::kNull;
          break;
        }
        const double x = N[a], y = N[b];
        double r = 0;
        switch (in.op) {
          case OpCode::kAdd: r = x + y; break;
          case OpCode::kSub: r = x - y; break;
          case OpCode::kMul: r = x * y; break;
          case OpCode::kMin2: r = std::min(x, y); break;
          case OpCode::kMax2: r = std::max(x, y); break;
          default:
            if (y == 0) {
              K[a] = Kind::kNull;
              continue;
            }
            r = x / y;
        }
        if (std::isfinite(r)) N[a] = r;
        else K[a] = Kind::kNull;
        break;
      }
      case OpCode::kNeg:
        if (K[sp - 1] == Kind::kNumber) N[sp - 1] = -N[sp - 1];
        else K[sp - 1] = Kind::kNull;
        break;
      case OpCode::kAbs:
        if (K[sp - 1] == Kind::kNumber) N[sp - 1] = std::fabs(N[sp - 1]);
        break;
      case OpCode::kRound:
        if (K[sp - 1] == Kind::kNumber) N[sp - 1] = std::round(N[sp - 1]);
        break;
      case OpCode::kNot:
        if (K[sp - 1] == Kind::kBool) N[sp - 1] = N[sp - 1] == 0 ? 1.0 : 0.0;
        else K[sp - 1] = Kind::kNull;
        break;
      case OpCode::kEq:
      case OpCode::kNe:
      case OpCode::kLt:
      case OpCode::kLe:
      case OpCode::kGt:
      case OpCode::kGe: {
        const std::size_t b = --sp, a = sp - 1;
        const Kind ka = K[a], kb = K[b];
        bool r = false;
        if (ka == Kind::kNumber && kb == Kind::kNumber) {  // the common case, without branches
          const double x = N[a], y = N[b];
          // Written with < and > only, so that the result is the one of the three-way order
          // below (c = x < y ? -1 : x > y ? 1 : 0) for every input.
          switch (in.op) {
            case OpCode::kEq: r = !(x < y) & !(x > y); break;
            case OpCode::kNe: r = (x < y) | (x > y); break;
            case OpCode::kLt: r = x < y; break;
            case OpCode::kLe: r = !(x > y); break;
            case OpCode::kGt: r = x > y; break;
            default: r = !(x < y); break;
          }
        } else if (ka == Kind::kText && kb == Kind::kText) {
          const int c = T[a].compare(T[b]);
          r = CompareResult(in.op, c < 0 ? -1 : c > 0 ? 1 : 0);
        } else if ((ka == Kind::kNumber || ka == Kind::kBool) && (kb == Kind::kNumber || kb == Kind::kBool)) {
          const double x = N[a], y = N[b];
          r = CompareResult(in.op, x < y ? -1 : x > y ? 1 : 0);
        }  // else: null or mixed kinds, false
        K[a] = Kind::kBool;
        N[a] = r ? 1.0 : 0.0;
        break;
      }
      case OpCode::kJumpIfFalseKeep:
        if (!(K[sp - 1] == Kind::kBool && N[sp - 1] != 0)) {
          K[sp - 1] = Kind::kBool;
          N[sp - 1] = 0;
          if (in.a < static_cast<std::size_t>(ip - code) || in.a > n) return kBadJump;
          ip = code + in.a;
        }
        break;
      case OpCode::kJumpIfTrueKeep:
        if (K[sp - 1] == Kind::kBool && N[sp - 1] != 0) {
          if (in.a < static_cast<std::size_t>(ip - code) || in.a > n) return kBadJump;
          ip = code + in.a;
        }
        break;
      case OpCode::kPop: --sp; break;
      case OpCode::kToBool:
        if (K[sp - 1] != Kind::kBool) {
          K[sp - 1] = Kind::kBool;
          N[sp - 1] = 0;
        }
        break;
      case OpCode::kInSet: {
        const std::size_t a = sp - 1;
        const dsl::ConstSet& set = e.sets[in.a];
        bool found = false;
        if (K[a] == Kind::kText) {
          found = std::binary_search(set.texts.begin(), set.texts.end(), T[a],
                                     [](const auto& x, const auto& y) { return std::string_view(x) < std::string_view(y); });
        } else if (K[a] == Kind::kNumber) {
          found = std::binary_search(set.numbers.begin(), set.numbers.end(), N[a]);
        } else {
          K[a] = Kind::kBool;
          N[a] = 0;
          break;
        }
        K[a] = Kind::kBool;
        N[a] = (in.b ? !found : found) ? 1.0 : 0.0;
        break;
      }
      case OpCode::kLike: {
        const std::size_t a = sp - 1;
        bool m = K[a] == Kind::kText && GlobMatch(e.globs[in.a], T[a]);
        if (K[a] == Kind::kText && in.b) m = !m;
        K[a] = Kind::kBool;
        N[a] = m ? 1.0 : 0.0;
        break;
      }
    }
  }
  return sp;
}

Value Evaluator::Run(const dsl::CompiledExpr& e, const Value* slots) {
  const std::size_t sp = Exec(e, slots);
  if (sp == 0 || sp == kBadJump) return Value::Null();
  const std::size_t top = sp - 1;
  switch (kinds_[top]) {
    case Kind::kNumber: return Value::Number(nums_[top]);
    case Kind::kBool: return Value::Bool(nums_[top] != 0);
    case Kind::kText: return Value::Text(texts_[top]);
    case Kind::kNull: break;
  }
  return Value::Null();
}

bool Evaluator::Test(const dsl::CompiledExpr& e, const Value* slots) {
  if (e.empty()) return true;
  const std::size_t sp = Exec(e, slots);
  if (sp == 0 || sp == kBadJump) return false;
  return kinds_[sp - 1] == Kind::kBool && nums_[sp - 1] != 0;
}

// ---------------------------------------------------------------- batches

namespace {

constexpr std::size_t kBlock = 256;  // rows per block: the stack of a block stays in L1

// True if the code can be run straight through with masks: every instruction finds its
// operands, jumps go forward to a point inside the code, nest like the `and`/`or` the
// compiler emits, and leave the stack as deep at their target as at the jump. Anything else
// runs row by row (with Run's exact semantics).
bool Structured(const dsl::CompiledExpr& e) {
  const std::size_t n = e.code.size();
  std::vector<std::pair<std::size_t, std::size_t>> open;  // (target, depth at the jump)
  std::size_t depth = 0;
  for (std::size_t pc = 0; pc <= n; ++pc) {
    while (!open.empty() && open.back().first == pc) {
      if (open.back().second != depth) return false;
      open.pop_back();
    }
    if (!open.empty() && open.back().first < pc) return false;
    if (pc == n) break;
    const dsl::Instr& in = e.code[pc];
    switch (in.op) {
      case OpCode::kConstNum:
      case OpCode::kConstStr:
      case OpCode::kConstBool:
      case OpCode::kLoad: ++depth; break;
      case OpCode::kAdd: case OpCode::kSub: case OpCode::kMul: case OpCode::kDiv:
      case OpCode::kMin2: case OpCode::kMax2:
      case OpCode::kEq: case OpCode::kNe: case OpCode::kLt: case OpCode::kLe: case OpCode::kGt: case OpCode::kGe:
        if (depth < 2) return false;
        --depth;
        break;
      case OpCode::kPop:
        if (depth < 1) return false;
        --depth;
        break;
      case OpCode::kJumpIfFalseKeep:
      case OpCode::kJumpIfTrueKeep:
        if (depth < 1 || in.a <= pc + 1 || in.a > n) return false;
        if (!open.empty() && in.a > open.back().first) return false;
        open.emplace_back(in.a, depth);
        break;
      default:  // unary: Neg, Not, Abs, Round, ToBool, InSet, Like
        if (depth < 1) return false;
        break;
    }
  }
  return open.empty();
}

}  // namespace

template <typename Emit>
void Evaluator::ExecBatch(const dsl::CompiledExpr& e, const SlotColumn* cols, std::size_t rows, Emit&& emit) {
  const std::size_t n = e.code.size();
  if (n == 0 || !Structured(e)) {
    // Row by row, on a gathered slot array.
    std::size_t n_slots = 0;
    for (const auto& in : e.code) {
      if (in.op == OpCode::kLoad) n_slots = std::max<std::size_t>(n_slots, in.a + 1);
    }
    row_slots_.assign(n_slots, Value::Null());
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t k = 0; k < n_slots; ++k) {
        row_slots_[k] = cols[k].numbers ? Value::Number(cols[k].numbers[i]) : cols[k].values ? cols[k].values[i] : Value::Null();
      }
      emit.Row(i, Run(e, row_slots_.data()));
    }
    return;
  }
  if (batch_kinds_.size() < n * kBlock) {
    batch_kinds_.resize(n * kBlock);
    batch_nums_.resize(n * kBlock);
    batch_texts_.resize(n * kBlock);
    batch_masks_.resize(n * kBlock);
  }
  Kind kinds_null_[kBlock];
  struct Pending {
    std::size_t target, depth, mask;
    bool is_and;
  };
  std::vector<Pending> pending;
  const dsl::Instr* const code = e.code.data();
  for (std::size_t begin = 0; begin < rows; begin += kBlock) {
    const std::size_t m = std::min(kBlock, rows - begin);
    std::size_t sp = 0, masks = 0;
    pending.clear();
    // Column of stack depth d.
    auto K = [&](std::size_t d) { return batch_kinds_.data() + d * kBlock; };
    auto N = [&](std::size_t d) { return batch_nums_.data() + d * kBlock; };
    auto T = [&](std::size_t d) { return batch_texts_.data() + d * kBlock; };
    auto merge = [&](const Pending& p) {
      Kind* k = K(p.depth - 1);
      double* x = N(p.depth - 1);
      const std::uint8_t* mask = batch_masks_.data() + p.mask * kBlock;
      const double v = p.is_and ? 0.0 : 1.0;  // `and` jumped on not-true (false), `or` on true
      for (std::size_t i = 0; i < m; ++i) {
        if (mask[i]) {
          k[i] = Kind::kBool;
          x[i] = v;
        }
      }
    };
    for (std::size_t pc = 0; pc < n; ++pc) {
      while (!pending.empty() && pending.back().target == pc) {
        merge(pending.back());
        pending.pop_back();
      }
      const dsl::Instr& in = code[pc];
      switch (in.op) {
        case OpCode::kConstNum: {
          Kind* k = K(sp);
          double* x = N(sp);
          const double v = e.nums[in.a];
          for (std::size_t i = 0; i < m; ++i) k[i] = Kind::kNumber, x[i] = v;
          ++sp;
          break;
        }
        case OpCode::kConstStr: {
          Kind* k = K(sp);
          std::string_view* t = T(sp);
          const std::string_view v = e.strs[in.a];
          for (std::size_t i = 0; i < m; ++i) k[i] = Kind::kText, t[i] = v;
          ++sp;
          break;
        }
        case OpCode::kConstBool: {
          Kind* k = K(sp);
          double* x = N(sp);
          const double v = in.a != 0 ? 1.0 : 0.0;
          for (std::size_t i = 0; i < m; ++i) k[i] = Kind::kBool, x[i] = v;
          ++sp;
          break;
        }
        case OpCode::kLoad: {
          Kind* k = K(sp);
          double* x = N(sp);
          std::string_view* t = T(sp);
          const SlotColumn& c = cols[in.a];
          if (c.numbers) {
            const double* src = c.numbers + begin;
            for (std::size_t i = 0; i < m; ++i) k[i] = Kind::kNumber, x[i] = src[i];
          } else if (c.values) {
            const Value* src = c.values + begin;
            for (std::size_t i = 0; i < m; ++i) {
              k[i] = src[i].kind;
              x[i] = src[i].num;
              if (src[i].kind == Kind::kText) t[i] = src[i].text;
            }
          } else {
            for (std::size_t i = 0; i < m; ++i) k[i] = Kind::kNull;
          }
          ++sp;
          break;
        }
        case OpCode::kAdd:
        case OpCode::kSub:
        case OpCode::kMul:
        case OpCode::kDiv:
        case OpCode::kMin2:
        case OpCode::kMax2: {
          --sp;
          Kind* ka = K(sp - 1);
          double* xa = N(sp - 1);
          const Kind* kb = K(sp);
          const double* xb = N(sp);
          // Branch-free per row: compute, then mark null where an operand is not a number,
          // a divisor is 0 or the result is not finite.
          auto loop = [&](auto op, bool div) {
            for (std::size_t i = 0; i < m; ++i) {
              const double x = xa[i], y = xb[i];
              const double r = op(x, y);
              const bool ok = (ka[i] == Kind::kNumber) & (kb[i] == Kind::kNumber) & (!div | (y != 0)) &
                              std::isfinite(r);
              xa[i] = r;
              ka[i] = ok ? Kind::kNumber : Kind::kNull;
            }
          };
          switch (in.op) {
            case OpCode::kAdd: loop([](double x, double y) { return x + y; }, false); break;
            case OpCode::kSub: loop([](double x, double y) { return x - y; }, false); break;
            case OpCode::kMul: loop([](double x, double y) { return x * y; }, false); break;
            case OpCode::kMin2: loop([](double x, double y) { return std::min(x, y); }, false); break;
            case OpCode::kMax2: loop([](double x, double y) { return std::max(x, y); }, false); break;
            default: loop([](double x, double y) { return x / y; }, true); break;
          }
          break;
        }
        case OpCode::kNeg:
        case OpCode::kAbs:
        case OpCode::kRound: {
          Kind* k = K(sp - 1);
          double* x = N(sp - 1);
          for (std::size_t i = 0; i < m; ++i) {
            if (k[i] != Kind::kNumber) {
              if (in.op == OpCode::kNeg) k[i] = Kind::kNull;
              continue;
            }
            x[i] = in.op == OpCode::kNeg ? -x[i] : in.op == OpCode::kAbs ? std::fabs(x[i]) : std::round(x[i]);
          }
          break;
        }
        case OpCode::kNot: {
          Kind* k = K(sp - 1);
          double* x = N(sp - 1);
          for (std::size_t i = 0; i < m; ++i) {
            if (k[i] == Kind::kBool) x[i] = x[i] == 0 ? 1.0 : 0.0;
            else k[i] = Kind::kNull;
          }
          break;
        }
        case OpCode::kEq:
        case OpCode::kNe:
        case OpCode::kLt:
        case OpCode::kLe:
        case OpCode::kGt:
        case OpCode::kGe: {
          --sp;
          Kind* ka = K(sp - 1);
          double* xa = N(sp - 1);
          const std::string_view* ta = T(sp - 1);
          const Kind* kb = K(sp);
          const double* xb = N(sp);
          const std::string_view* tb = T(sp);
          // Numbers without branches (as in Exec), everything else row by row.
          auto loop = [&](auto cmp) {
            for (std::size_t i = 0; i < m; ++i) {
              bool r;
              if ((ka[i] == Kind::kNumber) & (kb[i] == Kind::kNumber)) {
                r = cmp(xa[i], xb[i]);
              } else if (ka[i] == Kind::kText && kb[i] == Kind::kText) {
                const int c = ta[i].compare(tb[i]);
                r = CompareResult(in.op, c < 0 ? -1 : c > 0 ? 1 : 0);
              } else if ((ka[i] == Kind::kNumber || ka[i] == Kind::kBool) &&
                         (kb[i] == Kind::kNumber || kb[i] == Kind::kBool)) {
                r = CompareResult(in.op, xa[i] < xb[i] ? -1 : xa[i] > xb[i] ? 1 : 0);
              } else {
                r = false;
              }
              ka[i] = Kind::kBool;
              xa[i] = r ? 1.0 : 0.0;
            }
          };
          switch (in.op) {
            case OpCode::kEq: loop([](double x, double y) { return !(x < y) & !(x > y); }); break;
            case OpCode::kNe: loop([](double x, double y) { return (x < y) | (x > y); }); break;
            case OpCode::kLt: loop([](double x, double y) { return x < y; }); break;
            case OpCode::kLe: loop([](double x, double y) { return !(x > y); }); break;
            case OpCode::kGt: loop([](double x, double y) { return x > y; }); break;
            default: loop([](double x, double y) { return !(x < y); }); break;
          }
          break;
        }
        case OpCode::kJumpIfFalseKeep:
        case OpCode::kJumpIfTrueKeep: {
          const bool is_and = in.op == OpCode::kJumpIfFalseKeep;
          const Kind* k = K(sp - 1);
          const double* x = N(sp - 1);
          std::uint8_t* mask = batch_masks_.data() + masks * kBlock;
          for (std::size_t i = 0; i < m; ++i) {
            const bool truthy = (k[i] == Kind::kBool) & (x[i] != 0);
            mask[i] = is_and ? !truthy : truthy;  // rows that take the jump
          }
          pending.push_back({in.a, sp, masks++, is_and});
          break;
        }
        case OpCode::kPop: --sp; break;
        case OpCode::kToBool: {
          Kind* k = K(sp - 1);
          double* x = N(sp - 1);
          for (std::size_t i = 0; i < m; ++i) {
            if (k[i] != Kind::kBool) k[i] = Kind::kBool, x[i] = 0;
          }
          break;
        }
        case OpCode::kInSet: {
          Kind* k = K(sp - 1);
          double* x = N(sp - 1);
          const std::string_view* t = T(sp - 1);
          const dsl::ConstSet& set = e.sets[in.a];
          for (std::size_t i = 0; i < m; ++i) {
            bool r = false;
            if (k[i] == Kind::kText) {
              const bool found = std::binary_search(set.texts.begin(), set.texts.end(), t[i], [](const auto& a, const auto& b) {
                return std::string_view(a) < std::string_view(b);
              });
              r = in.b ? !found : found;
            } else if (k[i] == Kind::kNumber) {
              const bool found = std::binary_search(set.numbers.begin(), set.numbers.end(), x[i]);
              r = in.b ? !found : found;
            }
            k[i] = Kind::kBool;
            x[i] = r ? 1.0 : 0.0;
          }
          break;
        }
        case OpCode::kLike: {
          Kind* k = K(sp - 1);
          double* x = N(sp - 1);
          const std::string_view* t = T(sp - 1);
          for (std::size_t i = 0; i < m; ++i) {
            bool r = false;
            if (k[i] == Kind::kText) {
              r = GlobMatch(e.globs[in.a], t[i]);
              if (in.b) r = !r;
            }
            k[i] = Kind::kBool;
            x[i] = r ? 1.0 : 0.0;
          }
          break;
        }
      }
    }
    while (!pending.empty()) {  // jumps to the end of the code
      merge(pending.back());
      pending.pop_back();
    }
    if (sp == 0) {
      for (std::size_t i = 0; i < m; ++i) kinds_null_[i] = Kind::kNull;
      emit.Block(begin, m, kinds_null_, N(0), T(0));
      continue;
    }
    emit.Block(begin, m, K(sp - 1), N(sp - 1), T(sp - 1));
  }
}

namespace {

// Result of one block of rows, as values (RunBatch) or yes/no (TestBatch); `Row` is the
// row-by-row fallback's.
struct ValuesOut {
  Value* out;
  void Row(std::size_t i, const Value& v) { out[i] = v; }
  void Block(std::size_t begin, std::size_t m, const Kind* k, const double* x, const std::string_view* t) {
    for (std::size_t i = 0; i < m; ++i) {
      switch (k[i]) {
        case Kind::kNumber: out[begin + i] = Value::Number(x[i]); break;
        case Kind::kBool: out[begin + i] = Value::Bool(x[i] != 0); break;
        case Kind::kText: out[begin + i] = Value::Text(t[i]); break;
        case Kind::kNull: out[begin + i] = Value::Null(); break;
      }
    }
  }
};

struct BoolsOut {
  bool* out;
  std::size_t count = 0;
  void Row(std::size_t i, const Value& v) {
    out[i] = v.truthy();
    count += out[i];
  }
  void Block(std::size_t begin, std::size_t m, const Kind* k, const double* x, const std::string_view*) {
    std::size_t c = 0;
    for (std::size_t i = 0; i < m; ++i) {
      const bool r = (k[i] == Kind::kBool) & (x[i] != 0);
      out[begin + i] = r;
      c += r;
    }
    count += c;
  }
};

}  // namespace

void Evaluator::RunBatch(const dsl::CompiledExpr& e, const SlotColumn* columns, std::size_t rows, Value* out) {
  ValuesOut o{out};
  ExecBatch(e, columns, rows, o);
}

std::size_t Evaluator::TestBatch(const dsl::CompiledExpr& e, const SlotColumn* columns, std::size_t rows, bool* out) {
  if (e.empty()) {
    for (std::size_t i = 0; i < rows; ++i) out[i] = true;
    return rows;
  }
  BoolsOut o{out};
  ExecBatch(e, columns, rows, o);
  return o.count;
}

}  // namespace gavel::rules
