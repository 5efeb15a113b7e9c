// Unit algebra. See units.hpp.
#include "dsl/units.hpp"

namespace gavel::dsl {
namespace {

TypeRef Make(BaseType b, std::string cur = {}) {
  TypeRef t;
  t.base = b;
  t.currency = std::move(cur);
  return t;
}

bool IsRatioLike(BaseType b) { return b == BaseType::kRatio || b == BaseType::kPercent; }

}  // namespace

bool IsNumeric(BaseType b) {
  switch (b) {
    case BaseType::kNumber:
    case BaseType::kCount:
    case BaseType::kMoney:
    case BaseType::kPercent:
    case BaseType::kRatio:
    case BaseType::kDuration:
      return true;
    default:
      return false;
  }
}

std::string TypeName(const TypeRef& t) {
  switch (t.base) {
    case BaseType::kError: return "an unknown type";
    case BaseType::kText: return "text";
    case BaseType::kBool: return "a yes/no condition";
    case BaseType::kNumber: return "a plain number";
    case BaseType::kCount: return "a count";
    case BaseType::kMoney: return "money(" + t.currency + ")";
    case BaseType::kPercent: return "a percentage";
    case BaseType::kRatio: return "a ratio";
    case BaseType::kDuration: return "a duration";
    case BaseType::kTimestamp: return "a timestamp";
    case BaseType::kList: return "a list";
  }
  return "?";
}

bool Compatible(const TypeRef& field, const TypeRef& value) {
  if (field.base == BaseType::kError || value.base == BaseType::kError) return true;
  if (field.base == value.base) return field.base != BaseType::kMoney || field.currency == value.currency;
  if (value.base == BaseType::kNumber && (field.base == BaseType::kCount || IsRatioLike(field.base))) return true;
  if (field.base == BaseType::kNumber && (value.base == BaseType::kCount || IsRatioLike(value.base))) return true;
  return IsRatioLike(field.base) && IsRatioLike(value.base);
}

bool Comparable(const TypeRef& a, const TypeRef& b, std::string& why) {
  if (a.base == BaseType::kError || b.base == BaseType::kError) return true;
  if (a.base == BaseType::kMoney && b.base == BaseType::kMoney) {
    if (a.currency != b.currency) {
      why = "convert one of them first; gavel never mixes currencies";
      return false;
    }
    return true;
  }
  if (a.base == BaseType::kMoney || b.base == BaseType::kMoney) {
    const TypeRef& other = a.base == BaseType::kMoney ? b : a;
    const TypeRef& money = a.base == BaseType::kMoney ? a : b;
    if (other.base == BaseType::kNumber) {
      why = "give the number a currency, e.g. `40 " + money.currency + "`";
    } else if (IsRatioLike(other.base)) {
      why = "only money compares with money; to compare with a share of an amount, multiply the "
            "amount by the " + std::string(other.base == BaseType::kPercent ? "percentage" : "ratio");
    } else {
      why = "only money compares with money";
    }
    return false;
  }
  if (a.base == b.base) return true;
  if (a.base == BaseType::kDuration || b.base == BaseType::kDuration) {
    why = "give the number a unit, e.g. `30d` or `12h`";
    return false;
  }
  bool a_num = IsNumeric(a.base);
  bool b_num = IsNumeric(b.base);
  if (a_num && b_num) {
    if (a.base == BaseType::kNumber || b.base == BaseType::kNumber) return true;
    if (IsRatioLike(a.base) && IsRatioLike(b.base)) return true;
    why = "these measure different things";
    return false;
  }
  if (a.base == BaseType::kText || b.base == BaseType::kText) {
    why = a_num || b_num ? "put quotes around text, or compare numbers with numbers" : "";
  }
  return false;
}

TypeRef Arithmetic(Op op, const TypeRef& a, const TypeRef& b, std::string& why) {
  if (a.base == BaseType::kError || b.base == BaseType::kError) return Make(BaseType::kError);
  if (!IsNumeric(a.base) || !IsNumeric(b.base)) {
    why = "arithmetic works on numbers, money, counts, ratios and durations";
    return Make(BaseType::kError);
  }
  bool a_money = a.base == BaseType::kMoney, b_money = b.base == BaseType::kMoney;
  if (a_money && b_money && a.currency != b.currency) {
    why = "gavel never mixes currencies";
    return Make(BaseType::kError);
  }
  switch (op) {
    case Op::kAdd:
    case Op::kSub:
      if (a.base == b.base) return a;
      if (IsRatioLike(a.base) && IsRatioLike(b.base)) return Make(BaseType::kRatio);
      if (a_money || b_money) {
        const TypeRef& money = a_money ? a : b;
        const TypeRef& other = a_money ? b : a;
        why = other.base == BaseType::kNumber ? "give the number a currency, e.g. `5 " + money.currency + "`"
                                              : "only money adds to money";
        return Make(BaseType::kError);
      }
      if (a.base == BaseType::kDuration || b.base == BaseType::kDuration) {
        why = "give the number a unit, e.g. `1d`";
        return Make(BaseType::kError);
      }
      if (a.base == BaseType::kNumber) return b;
      if (b.base == BaseType::kNumber) return a;
      if ((a.base == BaseType::kCount && IsRatioLike(b.base)) || (b.base == BaseType::kCount && IsRatioLike(a.base))) {
        why = "a count and a ratio measure different things";
        return Make(BaseType::kError);
      }
      return Make(BaseType::kNumber);
    case Op::kMul:
      if (a.base == BaseType::kNumber) return b;
      if (b.base == BaseType::kNumber) return a;
      if (a_money && b_money) {
        why = "money times money has no meaning";
        return Make(BaseType::kError);
      }
      if (a_money && IsRatioLike(b.base)) return a;
      if (b_money && IsRatioLike(a.base)) return b;
      if (IsRatioLike(a.base) && IsRatioLike(b.base)) return Make(BaseType::kRatio);
      if (a.base == BaseType::kDuration || b.base == BaseType::kDuration) {
        why = "a duration can only be multiplied by a plain number";
        return Make(BaseType::kError);
      }
      if (a_money || b_money) {
        why = "multiply money by a plain number or a ratio";
        return Make(BaseType::kError);
      }
      return Make(BaseType::kNumber);
    case Op::kDiv:
      if (b.base == BaseType::kNumber) return a;
      if (a_money && b_money) return Make(BaseType::kRatio);
      if (a_money && b.base == BaseType::kCount) return a;
      if (a_money && IsRatioLike(b.base)) return a;
      if (a.base == BaseType::kCount && b.base == BaseType::kCount) return Make(BaseType::kRatio);
      if (a.base == b.base) return Make(BaseType::kRatio);
      if (b_money) return Make(BaseType::kNumber);
      if (a.base == BaseType::kDuration || b.base == BaseType::kDuration) {
        why = "divide a duration by a duration or a plain number";
        return Make(BaseType::kError);
      }
      return Make(BaseType::kNumber);
    default:
      break;
  }
  return Make(BaseType::kError);
}

}  // namespace gavel::dsl
