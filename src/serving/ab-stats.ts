/**
 * The statistics of an A/B report on click-through rates (binomial proportions), as textbooks give
 * them; the normal distribution's CDF is simple-statistics' error function (Numerical Recipes'
 * erfc, fractional error below 1.2e-7 everywhere, so small p-values keep their digits).
 *
 * - Wilson score interval of a proportion x/n (Wilson 1927): centre (p + z²/2n) / (1 + z²/n),
 *   half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n). Unlike p ± z·sqrt(p(1-p)/n) it stays inside
 *   [0, 1] and is sensible for 0 or n successes and small n.
 * - Two-proportion z-test (pooled): z = (p1 - p2) / sqrt(p(1-p)(1/n1 + 1/n2)), p the pooled rate;
 *   two-sided p-value 2·(1 - Φ(|z|)). Valid when each arm has about 5 or more clicks and non-clicks;
 *   `reliable` says so.
 * - Minimum detectable effect at the current sample sizes (two-sided alpha, power):
 *   (z_{1-alpha/2} + z_{power}) · sqrt(p(1-p)(1/n1 + 1/n2)), p the pooled rate; and the impressions
 *   per arm still needed to detect the observed difference:
 *   (z_{1-alpha/2} + z_{power})² · (p1(1-p1) + p2(1-p2)) / (p1 - p2)², less what each arm has.
 */
import { errorFunction } from 'simple-statistics';

/** Φ, the standard normal CDF. */
export function normalCdf(z: number): number {
  return 0.5 * (1 + errorFunction(z / Math.SQRT2));
}

/**
 * Φ⁻¹, the standard normal quantile: Acklam's rational approximation (relative error below 1.2e-9),
 * for the z of an alpha or a power (simple-statistics' probit is table-based: 1.9572 for 0.975).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`a probability strictly between 0 and 1 is needed, not ${p}`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

export interface Interval {
  low: number;
  high: number;
}

/** The Wilson score interval of x successes in n trials at `confidence` (0.95 by default); [0, 1] when n is 0. */
export function wilsonInterval(x: number, n: number, confidence = 0.95): Interval {
  if (n <= 0) return { low: 0, high: 1 };
  if (x < 0 || x > n) throw new RangeError(`successes must be within 0..${n}, not ${x}`);
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const p = x / n;
  const z2n = (z * z) / n;
  const centre = (p + z2n / 2) / (1 + z2n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2n / (4 * n))) / (1 + z2n);
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

export interface ProportionTest {
  /** p1 - p2. */
  difference: number;
  /** (p1 - p2) / p2; null when p2 is 0. */
  relativeDifference: number | null;
  /** null when neither arm has a success or both have only successes (no variance). */
  z: number | null;
  /** Two-sided; null with z. */
  pValue: number | null;
  alpha: number;
  significant: boolean;
  /** Whether each arm has at least 5 successes and 5 failures (the normal approximation holds). */
  reliable: boolean;
  /** The smallest absolute difference in rates these sample sizes detect at `alpha` with `power`; null without variance. */
  minimumDetectableEffect: number | null;
  /** Trials per arm still needed to detect the observed difference (0: enough already); null when the rates are equal. */
  samplesStillNeeded: number | null;
}

/** The pooled two-proportion z-test of x1/n1 against x2/n2 (two-sided), with the power figures at `power`. */
export function twoProportionTest(x1: number, n1: number, x2: number, n2: number, alpha = 0.05, power = 0.8): ProportionTest {
  if (n1 <= 0 || n2 <= 0) {
    return { difference: 0, relativeDifference: null, z: null, pValue: null, alpha, significant: false, reliable: false, minimumDetectableEffect: null, samplesStillNeeded: null };
  }
  const p1 = x1 / n1;
  const p2 = x2 / n2;
  const pooled = (x1 + x2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  const z = se > 0 ? (p1 - p2) / se : null;
  const pValue = z === null ? null : Math.min(1, 2 * (1 - normalCdf(Math.abs(z))));
  const k = normalQuantile(1 - alpha / 2) + normalQuantile(power);
  const d = p1 - p2;
  const needed = d === 0 ? null : Math.ceil((k * k * (p1 * (1 - p1) + p2 * (1 - p2))) / (d * d));
  return {
    difference: d,
    relativeDifference: p2 > 0 ? d / p2 : null,
    z,
    pValue,
    alpha,
    significant: pValue !== null && pValue < alpha,
    reliable: Math.min(x1, n1 - x1, x2, n2 - x2) >= 5,
    minimumDetectableEffect: se > 0 ? k * se : null,
    samplesStillNeeded: needed === null ? null : Math.max(0, needed - Math.min(n1, n2)),
  };
}
