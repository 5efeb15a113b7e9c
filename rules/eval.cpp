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

inline int Compare(const Value& a, const Value& b, bool& ok) {
  ok = true;
  if (a.kind == Kind::kText && b.kind == Kind::kText) {
    int c = a.text.compare(b.text);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if ((a.kind == Kind::kNumber || a.kind == Kind::kBool) && (b.kind == Kind::kNumber || b.kind == Kind::kBool)) {
    return a.num < b.num ? -1 : a.num > b.num ? 1 : 0;
  }
  ok = false;
  return 0;
}

}  // namespace

Value Evaluator::Run(const dsl::CompiledExpr& e, const Value* slots) {
  auto& st = stack_;
  st.clear();
  const auto& code = e.code;
  std::size_t pc = 0;
  while (pc < code.size()) {
    const dsl::Instr& in = code[pc++];
    switch (in.op) {
      case OpCode::kConstNum: st.push_back(Value::Number(e.nums[in.a])); break;
      case OpCode::kConstStr: st.push_back(Value::Text(e.strs[in.a])); break;
      case OpCode::kConstBool: st.push_back(Value::Bool(in.a != 0)); break;
      case OpCode::kLoad: st.push_back(slots[in.a]); break;
      case OpCode::kAdd:
      case OpCode::kSub:
      case OpCode::kMul:
      case OpCode::kDiv:
      case OpCode::kMin2:
      case OpCode::kMax2: {
        Value b = st.back();
        st.pop_back();
        Value& a = st.back();
        if (a.kind != Kind::kNumber || b.kind != Kind::kNumber) {
          a = Value::Null();
          break;
        }
        double r = 0;
        switch (in.op) {
          case OpCode::kAdd: r = a.num + b.num; break;
          case OpCode::kSub: r = a.num - b.num; break;
          case OpCode::kMul: r = a.num * b.num; break;
          case OpCode::kMin2: r = std::min(a.num, b.num); break;
          case OpCode::kMax2: r = std::max(a.num, b.num); break;
          default:
            if (b.num == 0) {
              a = Value::Null();
              continue;
            }
            r = a.num / b.num;
        }
        a = std::isfinite(r) ? Value::Number(r) : Value::Null();
        break;
      }
      case OpCode::kNeg: {
        Value& a = st.back();
        if (a.kind == Kind::kNumber) a.num = -a.num;
        else a = Value::Null();
        break;
      }
      case OpCode::kAbs: {
        Value& a = st.back();
        if (a.kind == Kind::kNumber) a.num = std::fabs(a.num);
        break;
      }
      case OpCode::kRound: {
        Value& a = st.back();
        if (a.kind == Kind::kNumber) a.num = std::round(a.num);
        break;
      }
      case OpCode::kNot: {
        Value& a = st.back();
        a = a.kind == Kind::kBool ? Value::Bool(a.num == 0) : Value::Null();
        break;
      }
      case OpCode::kEq:
      case OpCode::kNe:
      case OpCode::kLt:
      case OpCode::kLe:
      case OpCode::kGt:
      case OpCode::kGe: {
        Value b = st.back();
        st.pop_back();
        Value& a = st.back();
        bool ok = false;
        int c = (a.is_null() || b.is_null()) ? 0 : Compare(a, b, ok);
        bool r = false;
        if (ok) {
          switch (in.op) {
            case OpCode::kEq: r = c == 0; break;
            case OpCode::kNe: r = c != 0; break;
            case OpCode::kLt: r = c < 0; break;
            case OpCode::kLe: r = c <= 0; break;
            case OpCode::kGt: r = c > 0; break;
            default: r = c >= 0; break;
          }
        }
        a = Value::Bool(r);
        break;
      }
      case OpCode::kJumpIfFalseKeep:
        if (!st.back().truthy()) {
          st.back() = Value::Bool(false);
          pc = in.a;
        }
        break;
      case OpCode::kJumpIfTrueKeep:
        if (st.back().truthy()) pc = in.a;
        break;
      case OpCode::kPop: st.pop_back(); break;
      case OpCode::kToBool: {
        Value& a = st.back();
        if (a.kind != Kind::kBool) a = Value::Bool(false);
        break;
      }
      case OpCode::kInSet: {
        Value& a = st.back();
        const dsl::ConstSet& set = e.sets[in.a];
        bool found = false;
        if (a.kind == Kind::kText) {
          found = std::binary_search(set.texts.begin(), set.texts.end(), a.text,
                                     [](const auto& x, const auto& y) { return std::string_view(x) < std::string_view(y); });
        } else if (a.kind == Kind::kNumber) {
          found = std::binary_search(set.numbers.begin(), set.numbers.end(), a.num);
        } else {
          a = Value::Bool(false);
          break;
        }
        a = Value::Bool(in.b ? !found : found);
        break;
      }
      case OpCode::kLike: {
        Value& a = st.back();
        if (a.kind != Kind::kText) {
          a = Value::Bool(false);
          break;
        }
        bool m = GlobMatch(e.globs[in.a], a.text);
        a = Value::Bool(in.b ? !m : m);
        break;
      }
    }
  }
  return st.empty() ? Value::Null() : st.back();
}

}  // namespace gavel::rules
