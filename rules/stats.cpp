// Statistics for decisions: special functions, Poisson limits, cost-per-count confidence and
// anomaly baselines. See stats.hpp for the definitions; comments here explain the numerics.
#include "rules/stats.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>
#include <vector>

namespace gavel::rules {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = DBL_EPSILON;
constexpr double kTiny = 1e-300;                       // Lentz's guard against division by 0
constexpr double kLnSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))
constexpr double kPi = 3.14159265358979323846;
// Above this shape the incomplete gamma uses the Wilson-Hilferty approximation.
constexpr double kHugeShape = 1e10;

// Stirling's error: log Gamma(x) - ((x - 0.5) log x - x + log sqrt(2 pi)), x > 0.
double StirlingError(double x);

// Lanczos (g = 7, n = 9) for 0.5 <= x < 15.
double LanczosLogGamma(double x) {
  static constexpr double kC[9] = {
      0.99999999999980993,  676.5203681218851,     -1259.1392167224028,
      771.32342877765313,   -176.61502916214059,   12.507343278686905,
      -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
  const double z = x - 1;
  double sum = kC[0];
  for (int i = 1; i < 9; ++i) sum += kC[i] / (z + i);
  const double t = z + 7.5;
  return kLnSqrt2Pi + (z + 0.5) * std::log(t) - t + std::log(sum);
}

double StirlingError(double x) {
  if (x >= 15) {
    // Asymptotic series; the first omitted term is below 2e-16 at x = 15.
    const double r = 1 / x, r2 = r * r;
    return r *
           (1.0 / 12 -
            r2 * (1.0 / 360 -
                  r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 * (1.0 / 1188 - r2 * 691.0 / 360360)))));
  }
  return LogGamma(x) - ((x - 0.5) * std::log(x) - x + kLnSqrt2Pi);
}

// Loader's deviance term bd0(x, m) = x log(x / m) + m - x >= 0, accurate when x ~ m.
double Bd0(double x, double m) {
  if (std::fabs(x - m) < 0.1 * (x + m)) {
    double v = (x - m) / (x + m);
    double s = (x - m) * v;
    double ej = 2 * x * v;
    v *= v;
    for (int j = 1; j < 1000; ++j) {
      ej *= v;
      const double s1 = s + ej / (2 * j + 1);
      if (s1 == s) return s1;
      s = s1;
    }
    return s;
  }
  return x * std::log(x / m) + m - x;
}

// The prefactor x^a e^-x / Gamma(a) (x > 0, 0 < a). For a >= 1 through Loader's form
// sqrt(a / 2pi) exp(-stirlerr(a) - bd0(a, x)), which keeps full relative accuracy for large a
// where a log x, x and log Gamma(a) are each huge and nearly cancel.
double GammaPrefactor(double a, double x) {
  if (x <= 0) return 0;
  if (a < 1) return std::exp(a * std::log(x) - x - LogGamma(a));
  return std::sqrt(a / (2 * kPi)) * std::exp(-StirlingError(a) - Bd0(a, x));
}

int IterationCap(double a) { return static_cast<int>(std::min(2e7, 200 + 20 * std::sqrt(a))); }

// P(a, x) by its power series (x < a + 1).
double GammaSeries(double a, double x) {
  double ap = a, del = 1 / a, sum = del;
  const int cap = IterationCap(a);
  for (int n = 0; n < cap; ++n) {
    ap += 1;
    del *= x / ap;
    sum += del;
    if (std::fabs(del) < std::fabs(sum) * kEps) break;
  }
  return std::min(1.0, sum * GammaPrefactor(a, x));
}

// Q(a, x) by its continued fraction (modified Lentz), for x >= a + 1 (or x >= 1 when a < 1).
double GammaContinuedFraction(double a, double x) {
  double b = x + 1 - a;
  double c = 1 / kTiny;
  double d = 1 / b;
  double h = d;
  const int cap = IterationCap(a);
  for (int i = 1; i <= cap; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) break;
  }
  return std::min(1.0, GammaPrefactor(a, x) * h);
}

// Q(a, x) for a < 1, 0 < x < 1, without the cancellation of 1 - P:
//   Q(a, x) = Q(a, 1) + (1 / Gamma(a)) * integral_x^1 t^(a-1) e^-t dt
//           = Q(a, 1) + (a / Gamma(a+1)) * sum_n (-1)^n (1 - x^(a+n)) / (n! (a+n)),
// where the n = 0 term times a is -expm1(a log x), exact even for tiny a.
double GammaQSmallShape(double a, double x) {
  const double q1 = GammaContinuedFraction(a, 1.0);
  const double lx = std::log(x);
  double sum = -std::expm1(a * lx);  // a * (1 - x^a) / a
  double fact = 1;                   // n!
  for (int n = 1; n < 60; ++n) {
    fact *= n;
    const double term = a * (1 - std::exp((a + n) * lx)) / (fact * (a + n));
    sum += (n % 2 ? -term : term);
    if (term < kEps * std::fabs(sum)) break;
  }
  return q1 + sum / std::exp(LogGamma(a + 1));
}

// Standard normal upper tail.
double NormalSf(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

// Wilson-Hilferty: P(a, x) ~ Phi(((x/a)^(1/3) - (1 - 1/(9a))) / sqrt(1/(9a))).
double WilsonHilfertyZ(double a, double x) {
  const double s = 1 / (9 * a);
  return (std::cbrt(x / a) - (1 - s)) / std::sqrt(s);
}

bool BadShape(double a) { return !(a > 0) || !std::isfinite(a); }

// Acklam-style rational approximation of the standard normal quantile (about 1e-9 relative);
// only an initial guess here.
double NormalQuantileGuess(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549671010243825e+00,
                                 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  const double lo = 0.02425;
  if (p < lo) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -NormalQuantileGuess(1 - p);
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// I_x(a, b) continued fraction (Numerical Recipes betacf, modified Lentz).
double BetaContinuedFraction(double a, double b, double x) {
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  const int cap = IterationCap(std::max(a, b));
  for (int m = 1; m <= cap; ++m) {
    const int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) break;
  }
  return h;
}

// log B(a, b) = log Gamma(a) + log Gamma(b) - log Gamma(a + b), with the Stirling parts
// combined so that large arguments do not cancel catastrophically.
double LogBeta(double a, double b) {
  if (a > b) std::swap(a, b);  // a <= b
  const double s = a + b;
  if (a >= 15) {
    // Both large. With lgamma(x) = (x - 0.5) log x - x + log sqrt(2 pi) + stirlerr(x):
    //   log B = log sqrt(2 pi) + stirlerr(a) + stirlerr(b) - stirlerr(s)
    //           + (a - 0.5) log(a / s) + b log(b / s) - 0.5 log b.
    return kLnSqrt2Pi + StirlingError(a) + StirlingError(b) - StirlingError(s) +
           (a - 0.5) * std::log(a / s) + b * std::log1p(-a / s) - 0.5 * std::log(b);
  }
  if (b >= 15) {
    // Small a, large b: lgamma(b) - lgamma(s) = (b - 0.5) log(b / s) - a log s + a
    //                                           + stirlerr(b) - stirlerr(s).
    return LogGamma(a) + StirlingError(b) - StirlingError(s) + (b - 0.5) * std::log1p(-a / s) -
           a * std::log(s) + a;
  }
  return LogGamma(a) + LogGamma(b) - LogGamma(a + b);
}

}  // namespace

// ------------------------------------------------------------------ special functions

double LogGamma(double x) {
  if (!(x > 0)) return kNaN;
  if (std::isinf(x)) return kInf;
  if (x < 0.5) return LogGamma(x + 1) - std::log(x);
  if (x < 15) return LanczosLogGamma(x);
  return (x - 0.5) * std::log(x) - x + kLnSqrt2Pi + StirlingError(x);
}

double RegularizedGammaP(double a, double x) {
  if (BadShape(a) || std::isnan(x) || x < 0) return kNaN;
  if (x == 0) return 0;
  if (std::isinf(x)) return 1;
  if (a > kHugeShape) return NormalSf(-WilsonHilfertyZ(a, x));
  if (x < (a < 1 ? 1.0 : a + 1)) return GammaSeries(a, x);
  return 1 - GammaContinuedFraction(a, x);
}

double RegularizedGammaQ(double a, double x) {
  if (BadShape(a) || std::isnan(x) || x < 0) return kNaN;
  if (x == 0) return 1;
  if (std::isinf(x)) return 0;
  if (a > kHugeShape) return NormalSf(WilsonHilfertyZ(a, x));
  if (x < (a < 1 ? 1.0 : a + 1)) return a < 1 ? GammaQSmallShape(a, x) : 1 - GammaSeries(a, x);
  return GammaContinuedFraction(a, x);
}

double GammaQuantile(double p, double a) {
  if (BadShape(a) || !(p > 0 && p < 1)) return kNaN;
  const bool upper = p > 0.5;
  const double q = 1 - p;  // exact for p > 0.5
  // f is increasing in x and has its root at the quantile; each branch evaluates the tail that
  // is small, so f keeps its relative accuracy near p = 0 and p = 1.
  auto f = [&](double x) {
    return upper ? q - RegularizedGammaQ(a, x) : RegularizedGammaP(a, x) - p;
  };

  // Very small answers: P(a, x) = x^a / Gamma(a + 1) * (1 + O(x)), so below the normal range
  // the closed form is exact to double precision (and may underflow to 0).
  {
    const double lx = (std::log(p) + LogGamma(a + 1)) / a;
    if (lx < -700) return std::exp(lx);
  }

  // Initial guess.
  double x0;
  if (a > 1) {
    const double z = NormalQuantileGuess(p);
    const double s = 1 / (9 * a);
    const double base = 1 - s + z * std::sqrt(s);
    x0 = base > 0.05 ? a * base * base * base : std::exp((std::log(p) + LogGamma(a + 1)) / a);
  } else {
    const double t = 1 - a * (0.253 + a * 0.12);
    x0 = p < t ? std::pow(p / t, 1 / a) : 1 - std::log(q / (1 - t));
  }
  if (!(x0 > 0) || !std::isfinite(x0)) x0 = std::max(a, 1e-300);

  // Bracket [lo, hi] with f(lo) < 0 < f(hi). f(0) = -p < 0 always.
  double lo = 0, hi = kInf;
  double x = x0, fx = f(x0);
  if (fx == 0) return x0;
  if (fx < 0) {
    lo = x0;
    double t = std::max(2 * x0, x0 + 1);
    for (int i = 0; i < 1100; ++i) {
      const double ft = f(t);
      if (ft >= 0) {
        hi = t;
        break;
      }
      lo = t;
      x = t;
      fx = ft;
      t *= 4;
      if (!std::isfinite(t)) break;
    }
    if (std::isinf(hi)) return lo;  // cannot happen for valid input; never loop forever
  } else {
    hi = x0;
    double t = x0 / 4;
    for (int i = 0; i < 1100 && t > 0; ++i) {
      const double ft = f(t);
      if (ft <= 0) {
        lo = t;
        break;
      }
      hi = t;
      x = t;
      fx = ft;
      t /= 4;
    }
  }

  // Halley steps, falling back to bisection whenever a step leaves the bracket.
  double best = x, best_f = std::fabs(fx);
  for (int iter = 0; iter < 300; ++iter) {
    double xn = kNaN;
    const double density = GammaPrefactor(a, x) / x;  // dP/dx
    if (density > 0 && std::isfinite(density)) {
      const double u = fx / density;
      const double curvature = (a - 1) / x - 1;  // f'' / f'
      const double denom = 1 - 0.5 * std::clamp(u * curvature, -1.0, 1.0);
      xn = x - u / denom;
    }
    bool bisected = false;
    if (!(xn > lo && xn < hi)) {
      bisected = true;
      if (lo > 0 && hi / lo > 4) {
        xn = std::sqrt(lo) * std::sqrt(hi);
      } else if (lo == 0) {
        xn = hi / 16;
      } else {
        xn = lo + 0.5 * (hi - lo);
      }
    }
    const double fn = f(xn);
    if (fn == 0) return xn;
    if (fn < 0) {
      lo = xn;
    } else {
      hi = xn;
    }
    if (std::fabs(fn) < best_f) {
      best = xn;
      best_f = std::fabs(fn);
    }
    const double step = std::fabs(xn - x);
    x = xn;
    fx = fn;
    if (!bisected && step <= 1e-15 * xn) break;
    if (hi - lo <= 4 * kEps * hi) break;
  }
  return best;
}

double RegularizedBeta(double x, double a, double b) {
  if (BadShape(a) || BadShape(b) || std::isnan(x) || x < 0 || x > 1) return kNaN;
  if (x == 0 || x == 1) return x;
  const double lbt = a * std::log(x) + b * std::log1p(-x) - LogBeta(a, b);
  const double bt = std::exp(lbt);
  if (x < (a + 1) / (a + b + 2))
    return std::clamp(bt * BetaContinuedFraction(a, b, x) / a, 0.0, 1.0);
  return std::clamp(1 - bt * BetaContinuedFraction(b, a, 1 - x) / b, 0.0, 1.0);
}

// ------------------------------------------------------------------ Poisson and NB

double PoissonCdf(double k, double mu) {
  if (std::isnan(k) || std::isnan(mu) || mu < 0 || std::isinf(mu)) return kNaN;
  if (k < 0) return 0;
  if (mu == 0 || std::isinf(k)) return 1;
  return RegularizedGammaQ(std::floor(k) + 1, mu);
}

double PoissonUpper(double k, double c) {
  if (!(k >= 0) || !std::isfinite(k) || !(c > 0 && c < 1)) return kNaN;
  return GammaQuantile(c, k + 1);
}

double PoissonLower(double k, double c) {
  if (!(k >= 0) || !std::isfinite(k) || !(c > 0 && c < 1)) return kNaN;
  if (k == 0) return 0;
  return GammaQuantile(1 - c, k);
}

namespace {
bool BadNb(double k, double mean, double alpha) {
  return std::isnan(k) || !(mean >= 0) || !std::isfinite(mean) || !(alpha >= 0) ||
         !std::isfinite(alpha);
}
}  // namespace

double NegBinomialCdf(double k, double mean, double alpha) {
  if (BadNb(k, mean, alpha)) return kNaN;
  if (k < 0) return 0;
  if (mean == 0 || std::isinf(k)) return 1;
  const double kf = std::floor(k);
  if (alpha * mean < 1e-9) return RegularizedGammaQ(kf + 1, mean);
  // p = r / (r + m) = 1 / (1 + alpha m).
  return RegularizedBeta(1 / (1 + alpha * mean), 1 / alpha, kf + 1);
}

double NegBinomialSf(double k, double mean, double alpha) {
  if (BadNb(k, mean, alpha)) return kNaN;
  const double kc = std::ceil(k);
  if (kc <= 0) return 1;
  if (mean == 0 || std::isinf(k)) return 0;
  if (alpha * mean < 1e-9) return RegularizedGammaP(kc, mean);
  const double am = alpha * mean;
  return RegularizedBeta(am / (1 + am), kc, 1 / alpha);
}

// ------------------------------------------------------------------ status

const char* StatStatusName(StatStatus s) {
  switch (s) {
    case StatStatus::kOk:
      return "ok";
    case StatStatus::kInvalidInput:
      return "invalid_input";
    case StatStatus::kInsufficientHistory:
      return "insufficient_history";
    case StatStatus::kNoData:
      return "no_data";
  }
  return "invalid_input";
}

// ------------------------------------------------------------------ cost per count

double PoissonBoundMemo::Bound(double count, double level, bool above) {
  auto compute = [&] { return above ? PoissonUpper(count, level) : PoissonLower(count, level); };
  if (!(count >= 0 && count < static_cast<double>(kCounts)) || count != std::floor(count)) return compute();
  if (level != level_ || above != above_ || mu_.empty()) {
    level_ = level;
    above_ = above;
    mu_.assign(kCounts, kNaN);
  }
  double& mu = mu_[static_cast<std::size_t>(count)];
  if (std::isnan(mu)) mu = compute();
  return mu;
}

namespace {

template <typename Mu>
CostPerCountResult CostPerCount(const CostPerCountTest& t, Mu&& mu_of) {
  CostPerCountResult r;
  if (!std::isfinite(t.cost) || t.cost < 0 || !std::isfinite(t.count) || t.count < 0 ||
      !std::isfinite(t.threshold) || !(t.level > 0 && t.level < 1)) {
    return r;  // kInvalidInput, pass = false
  }
  r.status = StatStatus::kOk;
  if (t.count > 0) r.point_estimate = t.cost / t.count;
  if (t.above) {
    const double mu_hi = mu_of();
    r.bound = t.cost / mu_hi;  // mu_hi > 0 always (at least -ln(1 - level))
    r.pass = t.cost > 0 && r.bound > t.threshold;
  } else {
    const double mu_lo = mu_of();
    r.bound = mu_lo > 0 ? t.cost / mu_lo : kInf;
    r.pass = std::isfinite(r.bound) && r.bound < t.threshold;
  }
  if (std::isnan(r.bound)) {  // defensive: never report a NaN bound as ok
    r = CostPerCountResult{};
  }
  return r;
}

}  // namespace

CostPerCountResult TestCostPerCount(const CostPerCountTest& t) {
  return CostPerCount(t, [&] { return t.above ? PoissonUpper(t.count, t.level) : PoissonLower(t.count, t.level); });
}

CostPerCountResult TestCostPerCount(const CostPerCountTest& t, PoissonBoundMemo& memo) {
  return CostPerCount(t, [&] { return memo.Bound(t.count, t.level, t.above); });
}

// ------------------------------------------------------------------ anomaly baselines

int SeasonPosition(Season season, std::int64_t time_ms, std::int64_t utc_offset_ms) {
  constexpr std::int64_t kHourMs = 3'600'000, kDayMs = 24 * kHourMs;
  const std::int64_t u = time_ms + utc_offset_ms;
  auto floor_div = [](std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
  };
  const std::int64_t day = floor_div(u, kDayMs);
  const int hour = static_cast<int>(floor_div(u - day * kDayMs, kHourMs));
  const int weekday = static_cast<int>(((day + 3) % 7 + 7) % 7);  // 1970-01-01 was a Thursday
  switch (season) {
    case Season::kNone:
      return 0;
    case Season::kHourOfDay:
      return hour;
    case Season::kHourOfWeek:
      return weekday * 24 + hour;
    case Season::kDayOfWeek:
      return weekday;
  }
  return 0;
}

namespace {

constexpr std::int64_t kMaxCells = 400'000;  // ~45 years of hours; bounds memory per call

double Clean(double v) { return std::isfinite(v) && v > 0 ? v : 0; }

double Median(std::vector<double>& v) {  // reorders v; v non-empty
  const std::size_t n = v.size(), mid = n / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double hi = v[mid];
  if (n % 2) return hi;
  const double lo = *std::max_element(v.begin(), v.begin() + mid);
  return 0.5 * (lo + hi);
}

// Median of sorted v[b, e).
double SortedMedian(const std::vector<double>& v, std::size_t b, std::size_t e) {
  const std::size_t n = e - b;
  return n % 2 ? v[b + n / 2] : 0.5 * (v[b + n / 2 - 1] + v[b + n / 2]);
}

// Median of sorted v[b, e) without the element at position b + k.
double LeaveOneOutMedian(const std::vector<double>& v, std::size_t b, std::size_t e,
                         std::size_t k) {
  const std::size_t m = e - b - 1;  // remaining count, >= 1
  auto at = [&](std::size_t rank) { return rank < k ? v[b + rank] : v[b + rank + 1]; };
  return m % 2 ? at(m / 2) : 0.5 * (at(m / 2 - 1) + at(m / 2));
}

// The history windows of one anomaly test.
struct Windows {
  std::vector<double> value;  // window sums of value
  std::vector<double> per;    // window sums of per
  std::vector<int> position;  // season position of each window
  int tested_position = 0;
  double total_value = 0;  // over the history cells used
  double total_per = 0;
};

bool ValidInput(const BaselineInput& in) {
  constexpr std::int64_t kYearMs = 366LL * 86'400'000;
  return in.bucket_ms > 0 && in.bucket_ms <= kYearMs && in.window_buckets >= 1 &&
         in.window_buckets <= 100'000 && in.history_ms >= 0 && in.history_ms <= 50 * kYearMs &&
         in.history_ms / in.bucket_ms <= kMaxCells && std::llabs(in.t_end_ms) < (1LL << 60) &&
         std::llabs(in.utc_offset_ms) <= 7 * 86'400'000LL && std::isfinite(in.observed) &&
         in.observed >= 0 &&
         (!in.has_per || (std::isfinite(in.observed_per) && in.observed_per >= 0));
}

Windows BuildWindows(const BaselineInput& in) {
  Windows out;
  const std::int64_t bucket = in.bucket_ms;
  const std::int64_t w = in.window_buckets;
  const std::int64_t t_start = in.t_end_ms - w * bucket;
  const std::int64_t n = in.history_ms / bucket;     // history cells; cell i starts at
  const std::int64_t origin = t_start - n * bucket;  // origin + i * bucket
  out.tested_position = SeasonPosition(in.season, in.t_end_ms - bucket, in.utc_offset_ms);
  if (n < w) return out;

  // Nearest cell of a time (rounding half up), relative to the origin; may be out of range.
  auto cell_of = [&](std::int64_t t) -> std::int64_t {
    // Guard the arithmetic against absurd timestamps.
    if (t < origin - (std::int64_t{1} << 61) / 2 || t > origin + (std::int64_t{1} << 61) / 2) {
      return t < origin ? std::numeric_limits<std::int64_t>::min() / 2
                        : std::numeric_limits<std::int64_t>::max() / 2;
    }
    const std::int64_t d = t - origin + bucket / 2;
    std::int64_t q = d / bucket;
    if (d % bucket != 0 && d < 0) --q;
    return q;
  };

  std::int64_t first;
  if (in.entity_start_ms) {
    first = cell_of(*in.entity_start_ms);
  } else {
    first = std::numeric_limits<std::int64_t>::max();
    for (const Bucket& b : in.history) first = std::min(first, cell_of(b.time_ms));
  }
  first = std::max<std::int64_t>(first, 0);
  if (first >= n) return out;

  const std::size_t cells = static_cast<std::size_t>(n - first);
  std::vector<double> val(cells, 0.0), per(cells, 0.0);
  for (const Bucket& b : in.history) {
    const std::int64_t c = cell_of(b.time_ms);
    if (c < first || c >= n) continue;
    val[static_cast<std::size_t>(c - first)] += Clean(b.value);
    per[static_cast<std::size_t>(c - first)] += Clean(b.per);
  }
  // Prefix sums, then one window per end cell.
  std::vector<double> pv(cells + 1, 0.0), pp(cells + 1, 0.0);
  for (std::size_t i = 0; i < cells; ++i) {
    pv[i + 1] = pv[i] + val[i];
    pp[i + 1] = pp[i] + per[i];
  }
  out.total_value = pv[cells];
  out.total_per = pp[cells];
  const std::size_t ws = static_cast<std::size_t>(w);
  if (cells < ws) return out;
  const std::size_t count = cells - ws + 1;
  out.value.reserve(count);
  out.per.reserve(count);
  out.position.reserve(count);
  for (std::size_t e = ws; e <= cells; ++e) {  // window = cells [e - w, e)
    // Sums of non-negative numbers: clamp the tiny negative rounding of prefix differences.
    out.value.push_back(std::max(0.0, pv[e] - pv[e - ws]));
    out.per.push_back(std::max(0.0, pp[e] - pp[e - ws]));
    const std::int64_t last_cell_start =
        origin + (first + static_cast<std::int64_t>(e) - 1) * bucket;
    out.position.push_back(SeasonPosition(in.season, last_cell_start, in.utc_offset_ms));
  }
  return out;
}

}  // namespace

SigmaResult TestSigma(const BaselineInput& in, const SigmaOptions& opt) {
  SigmaResult r;
  if (!ValidInput(in) || !(opt.sigmas > 0) || !std::isfinite(opt.sigmas) || !(opt.scale > 0) ||
      !std::isfinite(opt.scale) || !(opt.min_spread_log >= 0) ||
      !std::isfinite(opt.min_spread_log) || !(opt.min_abs_change >= 0) ||
      !std::isfinite(opt.min_abs_change)) {
    return r;
  }
  auto y_of = [&](double v) { return std::log1p(std::max(0.0, v) / opt.scale); };
  double observed = in.observed;
  if (in.has_per) {
    if (!(in.observed_per > 0)) {
      r.status = StatStatus::kNoData;
      return r;
    }
    observed = in.observed / in.observed_per;
  }
  r.observed = observed;

  const Windows win = BuildWindows(in);
  // (position, y) of every usable window, sorted so that each position is one sorted run.
  std::vector<std::pair<int, double>> py;
  py.reserve(win.value.size());
  for (std::size_t j = 0; j < win.value.size(); ++j) {
    double v = win.value[j];
    if (in.has_per) {
      if (!(win.per[j] > 0)) continue;
      v /= win.per[j];
    }
    py.emplace_back(win.position[j], y_of(v));
  }
  std::sort(py.begin(), py.end());
  std::vector<double> y(py.size());
  for (std::size_t i = 0; i < py.size(); ++i) y[i] = py[i].second;

  std::vector<double> abs_resid;
  abs_resid.reserve(py.size());
  double centre = 0;
  int same = 0;
  for (std::size_t b = 0; b < py.size();) {
    std::size_t e = b;
    while (e < py.size() && py[e].first == py[b].first) ++e;
    if (py[b].first == win.tested_position) {
      same = static_cast<int>(e - b);
      centre = SortedMedian(y, b, e);
    }
    if (e - b >= 2) {
      for (std::size_t k = 0; k < e - b; ++k) {
        abs_resid.push_back(std::fabs(y[b + k] - LeaveOneOutMedian(y, b, e, k)));
      }
    }
    b = e;
  }
  r.windows = static_cast<int>(py.size());
  r.same_season = same;
  if (r.windows < opt.min_windows || same < std::max(1, opt.min_same_season) ||
      static_cast<int>(abs_resid.size()) < std::max(1, opt.min_windows / 2)) {
    r.status = StatStatus::kInsufficientHistory;
    return r;
  }
  const double mad_sigma = 1.4826 * Median(abs_resid);
  const double centre_value = std::expm1(centre) * opt.scale;
  const double abs_floor =
      (std::log1p((centre_value + opt.min_abs_change) / opt.scale) - centre) / opt.sigmas;
  const double spread = std::max({mad_sigma, opt.min_spread_log, abs_floor, 1e-12});
  const double z = (y_of(observed) - centre) / spread;

  r.status = StatStatus::kOk;
  r.centre = centre_value;
  r.expected = centre_value;
  r.spread = spread;
  r.z = z;
  switch (in.direction) {
    case Band::kAbove:
      r.pass = z > opt.sigmas;
      break;
    case Band::kBelow:
      r.pass = z < -opt.sigmas;
      break;
    case Band::kOutside:
      r.pass = std::fabs(z) > opt.sigmas;
      break;
  }
  return r;
}

CountResult TestCount(const BaselineInput& in, const CountOptions& opt) {
  CountResult r;
  if (!ValidInput(in) || !(opt.confidence > 0 && opt.confidence < 1) || !(opt.min_count >= 0) ||
      !std::isfinite(opt.min_count)) {
    return r;
  }
  const Windows win = BuildWindows(in);
  const std::size_t nw = win.value.size();
  r.windows = static_cast<int>(nw);

  // Expectation of every history window, and of the tested window.
  std::vector<double> e(nw, 0.0), k(nw, 1.0);
  double expected = 0, alpha_extra = 0;
  int same = 0;
  if (in.has_per) {
    if (!(win.total_per > 0)) {
      r.status = StatStatus::kInsufficientHistory;
      return r;
    }
    const double rate = win.total_value / win.total_per;
    r.rate = rate;
    for (std::size_t j = 0; j < nw; ++j) e[j] = rate * win.per[j];
    expected = rate * in.observed_per;
    for (std::size_t j = 0; j < nw; ++j) same += win.position[j] == win.tested_position;
    alpha_extra = 1 / std::max(1.0, win.total_value);
  } else {
    constexpr int kMaxPositions = 168;
    std::vector<double> sum(kMaxPositions, 0.0);
    std::vector<int> cnt(kMaxPositions, 0);
    for (std::size_t j = 0; j < nw; ++j) {
      sum[static_cast<std::size_t>(win.position[j])] += win.value[j];
      ++cnt[static_cast<std::size_t>(win.position[j])];
    }
    for (std::size_t j = 0; j < nw; ++j) {
      const auto p = static_cast<std::size_t>(win.position[j]);
      e[j] = sum[p] / cnt[p];
      k[j] = cnt[p] >= 2 ? static_cast<double>(cnt[p]) / (cnt[p] - 1) : 0.0;  // 0: no info
    }
    const auto tp = static_cast<std::size_t>(win.tested_position);
    same = cnt[tp];
    expected = same > 0 ? sum[tp] / same : 0;
  }
  r.same_season = same;
  if (static_cast<int>(nw) < opt.min_windows ||
      (!in.has_per && same < std::max(1, opt.min_same_season))) {
    r.status = StatStatus::kInsufficientHistory;
    return r;
  }

  // Method-of-moments dispersion: Var(x) = e + alpha e^2.
  double num = 0, den = 0;
  for (std::size_t j = 0; j < nw; ++j) {
    if (k[j] == 0) continue;
    const double d = win.value[j] - e[j];
    num += k[j] * d * d - e[j];
    den += e[j] * e[j];
  }
  double alpha = den > 0 ? std::max(0.0, num / den) : 0.0;
  if (!std::isfinite(alpha)) alpha = 0;
  if (!in.has_per && expected > 0) {
    alpha_extra = alpha / same + 1 / (same * expected);
  }
  const double alpha_eff = alpha + alpha_extra;

  r.status = StatStatus::kOk;
  r.expected = expected;
  r.dispersion = alpha_eff;
  const double risk = 1 - opt.confidence;
  const double lower_tail = NegBinomialCdf(in.observed, expected, alpha_eff);  // P(X <= obs)
  const double upper_tail = NegBinomialSf(in.observed, expected, alpha_eff);   // P(X >= obs)
  const bool below_ok = expected >= opt.min_count;
  const bool above_ok = in.observed >= opt.min_count;
  switch (in.direction) {
    case Band::kBelow:
      r.p_value = lower_tail;
      r.pass = below_ok && lower_tail < risk;
      break;
    case Band::kAbove:
      r.p_value = upper_tail;
      r.pass = above_ok && upper_tail < risk;
      break;
    case Band::kOutside:
      r.p_value = std::min(1.0, 2 * std::min(lower_tail, upper_tail));
      r.pass = (below_ok && lower_tail < risk / 2) || (above_ok && upper_tail < risk / 2);
      break;
  }
  if (std::isnan(r.p_value)) {
    r.p_value = 1;
    r.pass = false;
  }
  return r;
}

}  // namespace gavel::rules
