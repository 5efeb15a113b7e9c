// Statistics for decisions: the numbers behind `with confidence P%` and `baseline(...)`.
//
// A rule that pauses an ad set or pages on-call must not act on noise. This module holds the
// small, exact pieces of statistics that the engine needs to decide that "the true CPA is above
// the target with 90% confidence" or that "this hour's spend is 3 sigma above what this hour of
// the week normally looks like": the regularized incomplete gamma and beta functions and their
// inverse, exact (Garwood) confidence limits for a Poisson mean, the cost-per-count confidence
// test of `when cpa > x with confidence 90%`, and two anomaly tests against a per-entity
// history of buckets (a robust, pooled sigma test on a log scale for amounts, and a count-aware
// Poisson / negative-binomial test for counts such as conversions).
//
// Properties every function here keeps:
//   - Pure and deterministic: no clock, no globals, no allocation shared between calls, no
//     randomness; the same inputs give bit-identical outputs on the same platform. Safe to call
//     from several threads at once (log-gamma is our own Lanczos code, not std::lgamma, which
//     writes the global `signgam`).
//   - Never throws and never loops forever (every iteration has a hard cap). Bad input (NaN,
//     infinities where a finite number is needed, negative counts or costs, levels outside
//     (0, 1)) gives NaN from the special functions and a defined, non-passing result with
//     status kInvalidInput from the tests.
//   - Only <cmath>; no third-party math library.
//
// Accuracy: RegularizedGammaP/Q are accurate to about 1e-13 relative in the tail that is
// returned (we compute the smaller of P and Q directly), for 0 < a <= 1e10; the prefactor
// x^a e^-x / Gamma(a) uses Loader's saddle-point form so that large a (many events) loses no
// precision. Above a = 1e10 (never reached by real counts) a Wilson-Hilferty normal
// approximation is used (about 1e-6 absolute). GammaQuantile is solved until its Halley step
// is below 1e-15 relative; over 200,000 random (p, a) with a in [1e-6, 1e9] the residual of
// P(a, x) (or Q) against p was below 6e-11 relative.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>
#include <span>

namespace gavel::rules {

// ------------------------------------------------------------------ special functions

// Natural log of the gamma function for x > 0 (Lanczos, about 1e-15 relative away from the
// zeros at 1 and 2, about 1e-15 absolute near them). NaN for x <= 0 or NaN.
double LogGamma(double x);

// Regularized lower incomplete gamma function
//   P(a, x) = (1 / Gamma(a)) * integral_0^x t^(a-1) e^-t dt,   a > 0, x >= 0.
// P(a, 0) = 0, P(a, +inf) = 1. Series for x < a + 1 (x < 1 when a < 1), Lentz continued
// fraction for Q otherwise (Numerical Recipes, 3rd ed., 6.2). NaN for a <= 0, a = +inf, x < 0
// or NaN inputs.
double RegularizedGammaP(double a, double x);

// Regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x), computed directly (not as
// 1 - P) where it is the small tail; for a < 1 and x < 1 as Q(a, 1) plus a series for the
// integral from x to 1, so that Q keeps its accuracy for tiny a. Same domain as P.
double RegularizedGammaQ(double a, double x);

// The gamma quantile: the x >= 0 with P(a, x) = p, for a > 0 and 0 < p < 1 (for p > 0.5 the
// equation Q(a, x) = 1 - p is solved instead, which keeps full accuracy near p = 1).
// Method: an initial guess (Wilson-Hilferty for a > 1, the small-x expansion for a <= 1), a
// bracket [lo, hi] with P(lo) < p < P(hi) grown geometrically, then Halley steps that fall back
// to bisection (geometric while the bracket spans more than a factor 4) whenever a step leaves
// the bracket. Bounded work: the bracket grows or shrinks by x4 at most 1100 times, then at
// most 300 Halley/bisection steps (in practice 3 to 8 evaluations in all). When the answer is
// below the smallest normal double (tiny a, e.g. a = 1e-3 with p = 0.5 gives about 5e-302)
// the closed form (p * Gamma(a + 1))^(1/a) is returned, possibly 0 after underflow.
// NaN outside the domain.
double GammaQuantile(double p, double a);

// Regularized incomplete beta function
//   I_x(a, b) = (1 / B(a, b)) * integral_0^x t^(a-1) (1-t)^(b-1) dt,   a, b > 0, 0 <= x <= 1.
// Lentz continued fraction on whichever of I_x(a, b) and 1 - I_{1-x}(b, a) converges
// (Numerical Recipes 6.4); iteration cap grows with sqrt(max(a, b)). NaN outside the domain.
double RegularizedBeta(double x, double a, double b);

// ------------------------------------------------------------------ Poisson and NB

// P(X <= k) for X ~ Poisson(mu): Q(floor(k) + 1, mu). 0 for k < 0; 1 for mu = 0 and k >= 0.
// NaN for mu < 0 or NaN inputs.
double PoissonCdf(double k, double mu);

// Exact (Garwood) one-sided confidence limits for a Poisson mean, given k >= 0 observed events
// (k may be fractional; the formulas are continuous in k) at confidence level 0 < c < 1:
//   PoissonUpper(k, c) = GammaQuantile(c, k + 1)          P(X <= k | mu = upper) = 1 - c
//   PoissonLower(k, c) = k == 0 ? 0 : GammaQuantile(1 - c, k)    P(X >= k | mu = lower) = 1 - c
// e.g. PoissonUpper(0, 0.9) = -ln(0.1) = 2.302585...; PoissonUpper(3, 0.9) = 6.680783...
// NaN for invalid input.
double PoissonUpper(double k, double c);
double PoissonLower(double k, double c);

// Negative binomial with mean m >= 0 and dispersion alpha >= 0 (variance m + alpha * m^2;
// alpha = 0 is Poisson). With r = 1 / alpha and p = r / (r + m):
//   NegBinomialCdf(k, m, alpha) = P(X <= floor(k)) = I_p(r, floor(k) + 1)
//   NegBinomialSf(k, m, alpha)  = P(X >= ceil(k))  = I_{1-p}(ceil(k), r)   (1 for k <= 0)
// Both use the Poisson formulas when alpha * m < 1e-9 (the extra variance is negligible).
// NaN for invalid input.
double NegBinomialCdf(double k, double mean, double alpha);
double NegBinomialSf(double k, double mean, double alpha);

// ------------------------------------------------------------------ results

enum class StatStatus : std::uint8_t {
  kOk,                   // the test ran; `pass` says whether it holds
  kInvalidInput,         // NaN / negative / out-of-range input; pass == false
  kInsufficientHistory,  // too little history to judge; pass == false (no alert, no action)
  kNoData,               // a rate baseline whose tested window has no denominator (per <= 0)
};
// "ok", "invalid_input", "insufficient_history", "no_data".
const char* StatStatusName(StatStatus s);

// ------------------------------------------------------------------ cost per count

// `when cost / count > threshold with confidence level` (e.g. `cpa > 1.5 * target with
// confidence 90%`). Conversions are modelled as Poisson with a mean proportional to spend;
// the true cost per count is cost / mu, with mu the Poisson mean of `count`.
struct CostPerCountTest {
  double cost = 0;       // >= 0, e.g. sum(spend) over the window
  double count = 0;      // >= 0, e.g. sum(conversions) (fractional counts are accepted)
  double threshold = 0;  // finite, e.g. 1.5 * target_cpa
  double level = 0.9;    // confidence, 0 < level < 1
  bool above = true;     // true: `>` / `>=`; false: `<` / `<=` (bounds are continuous, so
                         // strict and non-strict comparisons decide the same)
};

struct CostPerCountResult {
  bool pass = false;
  StatStatus status = StatStatus::kInvalidInput;
  // cost / count; empty when count == 0 (no finite point estimate).
  std::optional<double> point_estimate;
  // above: the lower confidence bound of the true cost per count,
  //          cost / PoissonUpper(count, level)         (pass iff bound > threshold)
  // below: the upper confidence bound,
  //          cost / PoissonLower(count, level)         (pass iff bound < threshold)
  //        which is +inf when count == 0 (never passes: no evidence the CPA is low).
  // 0 when status != kOk.
  double bound = 0;
};

// Decides a cost-per-count confidence test (see the field comments for the exact rule).
// Zero conversions still decide: at level 0.9 the lower bound is cost / 2.302585, so with
// threshold 90 the test passes once cost > 207.23. Cost <= 0 never passes `above`.
// Invalid input (NaN, infinities, cost < 0, count < 0, level outside (0, 1)) gives
// {pass = false, status = kInvalidInput}.
CostPerCountResult TestCostPerCount(const CostPerCountTest& t);

// The Poisson bounds a run of TestCostPerCount calls has computed, by whole count (a tick of a
// CPA rule tests every ad set at one level, and most have one of a few dozen conversion
// counts). Holds one level and direction; another resets it. The results are the same as
// without it, bit for bit.
class PoissonBoundMemo {
 public:
  double Bound(double count, double level, bool above);

 private:
  static constexpr std::size_t kCounts = 4096;  // whole counts below this are kept
  double level_ = -1;
  bool above_ = true;
  std::vector<double> mu_;  // NaN: not computed yet
};
CostPerCountResult TestCostPerCount(const CostPerCountTest& t, PoissonBoundMemo& memo);

// ------------------------------------------------------------------ anomaly baselines

// Mirrors dsl::Seasonality (same enumerators, same values; the engine may static_cast).
enum class Season : std::uint8_t { kNone, kHourOfDay, kHourOfWeek, kDayOfWeek };
// Mirrors dsl::BandDirection.
enum class Band : std::uint8_t { kAbove, kBelow, kOutside };

// One row of an entity's history: the sum of the field (and of the `per` denominator, 0 when
// unused) over the bucket that starts at time_ms.
struct Bucket {
  std::int64_t time_ms = 0;
  double value = 0;
  double per = 0;
};

// The data of one anomaly test for ONE entity.
//
// Time grid: buckets are cells of length bucket_ms anchored at t_end_ms (cell i covers
// [t_end - (i+1)*bucket, t_end - i*bucket)). A row is put in the cell whose start is nearest
// to its time_ms (so a daily row shifted by a DST hour still lands in its day); rows in the
// same cell are summed. t_end_ms must therefore be a bucket boundary of the data (the engine
// floors the evaluation time to the end of the last complete bucket).
//
// Tested window: [t_end - window_buckets * bucket, t_end); its value is `observed` (and
// `observed_per`), computed by the caller (normally by the same SQL as the rule's window).
// History: the cells in [t_start - history_ms, t_start), t_start = start of the tested window,
// but only from the entity's first cell on: from entity_start_ms if given, else from the
// earliest row in `history` (rows of any age may be passed; only the history range is used).
// Cells with no row count as value 0, per 0 (the warehouse has no row for an hour with
// nothing). Rows with a non-finite or negative value/per count as 0.
//
// History windows: the rolling sums of window_buckets consecutive cells, stepping by one cell,
// lying entirely inside the history. The season position of a window (and of the tested
// window) is that of its LAST cell's start time shifted by utc_offset_ms (the table's time
// zone offset): kHourOfDay = hour 0..23 of the day, kHourOfWeek = hour 0..167 of the week
// (Monday 00:00 = 0), kDayOfWeek = day 0..6 (Monday = 0), kNone = one position. A fixed offset
// is used for the whole history; across a DST change hour-of-week positions shift by one hour
// for part of the history (a small, conservative blur).
struct BaselineInput {
  std::span<const Bucket> history;  // one entity, any order (sorted by time is usual)
  std::int64_t bucket_ms = 3'600'000;
  int window_buckets = 1;  // w >= 1, e.g. 1 for `over last 1h`, 12 for 12h
  std::int64_t t_end_ms = 0;
  std::int64_t history_ms = 28LL * 86'400'000;
  Season season = Season::kNone;
  std::int64_t utc_offset_ms = 0;
  std::optional<std::int64_t> entity_start_ms;
  bool has_per = false;     // baseline(field per denominator, ...)
  double observed = 0;      // field summed over the tested window
  double observed_per = 0;  // denominator summed over the tested window (has_per)
  Band direction = Band::kAbove;
};

// `X is above|below|outside baseline(...) by N sigma`.
//
// Definition. With y(v) = log1p(max(0, v) / scale) (scale = 1 by default: y = log1p(v); for a
// rate baseline, v = window value sum / window per sum, and windows with per sum <= 0 are
// left out):
//   centre = median of y over the history windows at the tested window's season position
//            (all windows for kNone);
//   residual of history window j = y_j - median of y over the OTHER windows at j's season
//            position (leave-one-out; positions with a single window give no residual);
//   spread = max(1.4826 * median(|residual|) over ALL history windows (pooled across seasons),
//                min_spread_log,
//                (log1p((c + min_abs_change)/scale) - log1p(c/scale)) / sigmas),  c =
//                expm1(centre)*scale;
//   z      = (y(observed) - centre) / spread;
//   pass   = z > sigmas (kAbove), z < -sigmas (kBelow), |z| > sigmas (kOutside).
// Why: money is multiplicative, so the log scale makes the noise of a $50/h and a $5,000/h
// campaign comparable and a x4 spike a fixed distance; the median is robust to past spikes;
// pooling the spread over all ~672 hourly windows (rather than the 4 same-hour-of-week values)
// gives a stable sigma, so 3 sigma means about 0.1% of clean hours instead of several percent.
// The residuals are leave-one-out because a residual from a median fitted on the same 4
// values is biased small (the MAD comes out near 0.6 sigma); leave-one-out residuals have the
// spread of the actual prediction error (observation minus a median of same-season history),
// so z needs no correction factor (it is slightly conservative: a median of n - 1 vs n
// values). Measured on the simulation in tests/rules/stats_test.cpp (100 campaigns, hourly,
// same hour of week, 3 sigma above): in-sample residuals page in 3.4% of clean hours,
// leave-one-out residuals in 0.24% (the naive 4-value sigma: 5.3%).
// The floors: min_spread_log (5% per sigma) stops a perfectly flat history from making z
// explode on a tiny wobble; min_abs_change stops tiny or mostly-idle entities (median 0, MAD 0)
// from paging on a few units: a window can only pass if it differs from the centre by roughly
// min_abs_change in the field's own units. The default 3 suits count fields (a move of fewer
// than 3 events is never an anomaly); for money the engine should pass a currency-aware
// amount (e.g. 20 USD), for rates a rate.
// Insufficient history (status kInsufficientHistory, pass false): fewer than min_windows
// history windows, fewer than min_same_season windows at the tested position, or fewer than
// min_windows / 2 residuals. A rate baseline whose tested window has observed_per <= 0 gives
// status kNoData (pass false).
struct SigmaOptions {
  double sigmas = 3;
  double scale = 1;
  double min_spread_log = 0.05;
  double min_abs_change = 3;
  int min_same_season = 3;
  int min_windows = 24;
};

struct SigmaResult {
  bool pass = false;
  StatStatus status = StatStatus::kInvalidInput;
  double centre = 0;  // expm1(centre on the log scale) * scale, in the field's units
  double spread = 0;  // on the log1p scale (after the floors)
  double z = 0;
  double expected = 0;  // the value the centre predicts for the window (= centre)
  double observed = 0;  // the value tested (the rate, for a `per` baseline)
  int windows = 0;      // history windows used
  int same_season = 0;  // of which at the tested season position
};

SigmaResult TestSigma(const BaselineInput& in, const SigmaOptions& opt = {});

// `X is above|below|outside baseline(count [per denominator], ...) with confidence P%`.
//
// Definition (counts; the history windows and season positions as for TestSigma):
//   with `per`: rate = (sum of value over the history cells) / (sum of per over them);
//               expected = rate * observed_per;  e_j = rate * per_j for history window j.
//   without:    expected = mean window sum over the windows at the tested season position
//               (all windows for kNone);  e_j = the mean of window j's own season position.
//   Over-dispersion (method of moments on the history, clamped to >= 0):
//     alpha = max(0, sum_j (k_j (x_j - e_j)^2 - e_j) / sum_j e_j^2),
//     k_j = n_s / (n_s - 1) without `per` (n_s = windows at j's position; corrects for the
//     fitted mean), 1 with `per`.
//   The expectation is itself estimated; its uncertainty is added as extra dispersion:
//     alpha_eff = alpha + 1 / (total history count)                         (with `per`)
//     alpha_eff = alpha * (1 + 1/n) + 1 / (n * expected), n = same-season windows (without).
//   X ~ NB(mean = expected, dispersion = alpha_eff) (Poisson when alpha_eff * expected ~ 0).
//   kBelow:   p_value = P(X <= observed); pass iff p_value < 1 - confidence and
//             expected >= min_count (zero conversions where 0.4 are expected is no anomaly).
//   kAbove:   p_value = P(X >= observed); pass iff p_value < 1 - confidence and
//             observed >= min_count (one event where 0.01 are expected is no anomaly).
//   kOutside: pass iff either one-sided test passes at 1 - (1 - confidence) / 2;
//             p_value = 2 * min(the two tails), capped at 1.
// Insufficient history: fewer than min_windows history windows, fewer than min_same_season
// windows at the position (without `per`), or no denominator in the history (with `per`).
// Calibration: `confidence` is a per-evaluation promise. On the simulation in the tests
// (12h windows evaluated every hour) 99% fires in 0.7-1.06% of clean evaluations (about 60
// episodes per 100 campaign-weeks) and 99.9% in 0.02-0.11%; the dispersion estimated from 28
// days of windows is noisy, so a single entity can be somewhat anti-conservative.
struct CountOptions {
  double confidence = 0.99;  // 0 < confidence < 1
  double min_count = 3;
  int min_same_season = 3;
  int min_windows = 24;
};

struct CountResult {
  bool pass = false;
  StatStatus status = StatStatus::kInvalidInput;
  double expected = 0;    // expected count in the tested window
  double rate = 0;        // history rate (with `per`), else 0
  double dispersion = 0;  // alpha_eff (0 = Poisson)
  double p_value = 1;
  int windows = 0;
  int same_season = 0;
};

CountResult TestCount(const BaselineInput& in, const CountOptions& opt = {});

// The season position of a cell starting at time_ms (see BaselineInput); exposed for tests and
// for the engine's explanations. 0 for kNone.
int SeasonPosition(Season season, std::int64_t time_ms, std::int64_t utc_offset_ms);

}  // namespace gavel::rules
