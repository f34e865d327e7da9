/**
 * Offline ranking metrics, as Amazon Personalize defines them, plus recall@K and hit@K. Pure: lists in,
 * numbers out. The formulas (README-ready text is at the top of `split.ts`, "Metrics"):
 *
 * For one evaluated user, `rec` is the ranked recommendation list (best first, positions p = 1, 2, ...)
 * and `truth` the set of the user's held-out items (duplicates count once). An item at position p is a
 * hit when it is in `truth` and has not appeared at an earlier position (a repeated id counts once,
 * at its first position, so no metric can exceed 1).
 *
 * - precision@K  = hits in the top K / K (divided by K even when fewer than K items were recommended)
 * - recall@K     = hits in the top K / |truth|
 * - hit@K        = 1 if there is at least one hit in the top K, else 0
 * - DCG@K        = sum over hits at positions p <= K of 1 / log2(1 + p)
 * - IDCG@K       = sum for p = 1 .. min(K, |truth|) of 1 / log2(1 + p)
 * - NDCG@K       = DCG@K / IDCG@K
 * - RR@25        = 1 / p of the first hit within the top 25, else 0 (its mean is MRR@25)
 * - coverage     = |distinct items in the top 25 of all evaluated users' lists| / catalogue size
 *
 * Every per-user metric is averaged over evaluated users: users whose truth is non-empty.
 */

/** The cutoffs reported for precision, NDCG, recall and hit. */
export const CUTOFFS = [5, 10, 25] as const;
/** The cutoff of mean reciprocal rank and of coverage, as in Personalize. */
export const MRR_CUTOFF = 25;

/** One evaluated list: the recommendations (best first) and the user's held-out items. */
export interface EvaluatedList {
  recommended: readonly string[];
  truth: Iterable<string>;
}

/** Personalize's metric names (snake_case, as its API returns them) plus recall, hit and the user count. */
export interface MetricReport {
  /** Number of evaluated users (non-empty truth); every other value except coverage is a mean over them. */
  users: number;
  coverage: number;
  mean_reciprocal_rank_at_25: number;
  normalized_discounted_cumulative_gain_at_5: number;
  normalized_discounted_cumulative_gain_at_10: number;
  normalized_discounted_cumulative_gain_at_25: number;
  precision_at_5: number;
  precision_at_10: number;
  precision_at_25: number;
  recall_at_5: number;
  recall_at_10: number;
  recall_at_25: number;
  hit_at_5: number;
  hit_at_10: number;
  hit_at_25: number;
}

/** Per-user values of the report's metrics (everything but `users` and `coverage`). */
export type ListMetrics = Omit<MetricReport, 'users' | 'coverage'>;

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`K must be a positive integer, got ${k}`);
}

function asSet(truth: Iterable<string>): ReadonlySet<string> {
  return truth instanceof Set ? (truth as ReadonlySet<string>) : new Set(truth);
}

/**
 * The 1-based positions of the hits within the top `k` of `recommended`, ascending. An item is a hit at
 * its first position only: a repeated id is not a second hit.
 */
export function hitPositions(recommended: readonly string[], truth: Iterable<string>, k: number): number[] {
  checkK(k);
  const relevant = asSet(truth);
  const seen = new Set<string>();
  const positions: number[] = [];
  const n = Math.min(k, recommended.length);
  for (let i = 0; i < n; i++) {
    const item = recommended[i]!;
    if (seen.has(item)) continue;
    seen.add(item);
    if (relevant.has(item)) positions.push(i + 1);
  }
  return positions;
}

/** Hits in the top K / K. */
export function precisionAtK(recommended: readonly string[], truth: Iterable<string>, k: number): number {
  return hitPositions(recommended, truth, k).length / k;
}

/** Hits in the top K / |truth|; 0 when truth is empty. */
export function recallAtK(recommended: readonly string[], truth: Iterable<string>, k: number): number {
  const relevant = asSet(truth);
  if (relevant.size === 0) return 0;
  return hitPositions(recommended, relevant, k).length / relevant.size;
}

/** 1 when any of the top K is relevant, else 0. */
export function hitAtK(recommended: readonly string[], truth: Iterable<string>, k: number): number {
  return hitPositions(recommended, truth, k).length > 0 ? 1 : 0;
}

/** Sum over hits at positions p <= K of 1 / log2(1 + p). */
export function dcgAtK(recommended: readonly string[], truth: Iterable<string>, k: number): number {
  let dcg = 0;
  for (const p of hitPositions(recommended, truth, k)) dcg += 1 / Math.log2(1 + p);
  return dcg;
}

/** The best possible DCG@K: min(K, truthSize) hits at positions 1, 2, ... */
export function idcgAtK(truthSize: number, k: number): number {
  checkK(k);
  let idcg = 0;
  const n = Math.min(k, truthSize);
  for (let p = 1; p <= n; p++) idcg += 1 / Math.log2(1 + p);
  return idcg;
}

/** DCG@K / IDCG@K; 0 when truth is empty. */
export function ndcgAtK(recommended: readonly string[], truth: Iterable<string>, k: number): number {
  const relevant = asSet(truth);
  const idcg = idcgAtK(relevant.size, k);
  return idcg === 0 ? 0 : dcgAtK(recommended, relevant, k) / idcg;
}

/** 1 / position of the first relevant item within the top K (default 25), else 0. */
export function reciprocalRankAtK(recommended: readonly string[], truth: Iterable<string>, k: number = MRR_CUTOFF): number {
  const first = hitPositions(recommended, truth, k)[0];
  return first === undefined ? 0 : 1 / first;
}

/** Every per-user metric of the report, for one list. */
export function listMetrics(recommended: readonly string[], truth: Iterable<string>): ListMetrics {
  const relevant = asSet(truth);
  return {
    mean_reciprocal_rank_at_25: reciprocalRankAtK(recommended, relevant, MRR_CUTOFF),
    normalized_discounted_cumulative_gain_at_5: ndcgAtK(recommended, relevant, 5),
    normalized_discounted_cumulative_gain_at_10: ndcgAtK(recommended, relevant, 10),
    normalized_discounted_cumulative_gain_at_25: ndcgAtK(recommended, relevant, 25),
    precision_at_5: precisionAtK(recommended, relevant, 5),
    precision_at_10: precisionAtK(recommended, relevant, 10),
    precision_at_25: precisionAtK(recommended, relevant, 25),
    recall_at_5: recallAtK(recommended, relevant, 5),
    recall_at_10: recallAtK(recommended, relevant, 10),
    recall_at_25: recallAtK(recommended, relevant, 25),
    hit_at_5: hitAtK(recommended, relevant, 5),
    hit_at_10: hitAtK(recommended, relevant, 10),
    hit_at_25: hitAtK(recommended, relevant, 25),
  };
}

const LIST_KEYS = Object.keys(listMetrics([], [])) as (keyof ListMetrics)[];

/**
 * Averages the per-user metrics over evaluated users (those with a non-empty truth; the others are
 * skipped and count nowhere, coverage included) and computes coverage against `catalogueSize`, the
 * number of distinct items in the whole dataset. With no evaluated users every value is 0 and
 * `users` is 0.
 */
export function evaluate(lists: Iterable<EvaluatedList>, catalogueSize: number): MetricReport {
  if (!Number.isInteger(catalogueSize) || catalogueSize < 0) {
    throw new RangeError(`catalogueSize must be a non-negative integer, got ${catalogueSize}`);
  }
  const sums = Object.fromEntries(LIST_KEYS.map((key) => [key, 0])) as ListMetrics;
  const recommendedItems = new Set<string>();
  let users = 0;
  for (const { recommended, truth } of lists) {
    const relevant = asSet(truth);
    if (relevant.size === 0) continue;
    users += 1;
    const m = listMetrics(recommended, relevant);
    for (const key of LIST_KEYS) sums[key] += m[key];
    for (const item of recommended.slice(0, MRR_CUTOFF)) recommendedItems.add(item);
  }
  const means = Object.fromEntries(LIST_KEYS.map((key) => [key, users === 0 ? 0 : sums[key] / users])) as ListMetrics;
  return {
    users,
    coverage: catalogueSize === 0 ? 0 : recommendedItems.size / catalogueSize,
    ...means,
  };
}
