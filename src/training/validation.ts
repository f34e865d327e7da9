/**
 * Validation for choices made before the reported evaluation (hyperparameter search, the `auto`
 * recipe, hrnn-metadata's feature choice): a split carved from the training part only, so the
 * test split the metrics are reported on is never seen while choosing.
 *
 * The validation split is a chronological leave-one-out over the training interactions: each user
 * with at least 2 of them has the latest held out; everything before it is the validation train
 * part. At most `maxUsers` users are evaluated (a seeded hash sample; training still sees all of
 * them), which bounds the cost of every trial.
 */
import type { AnyRecipe, Model, TrainHooks, TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import { testRecommendations } from './evaluate-model.js';
import { evaluate, ndcgAtK, type MetricReport } from './metrics.js';
import { leaveOneOutSplit, userHash, type SplitResult } from './split.js';

/** Validation users evaluated per trial by default. */
export const VALIDATION_USERS = 2000;

export interface ValidationOptions {
  /** At most this many validation users (default VALIDATION_USERS). */
  maxUsers?: number;
  /** Seed of the user sample (default 42). */
  seed?: number;
}

/** The validation split of a training part (see the module comment). */
export function validationSplit<T extends InteractionFields>(train: readonly T[], o: ValidationOptions = {}): SplitResult<T> {
  const maxUsers = o.maxUsers ?? VALIDATION_USERS;
  const seed = o.seed ?? 42;
  const s = leaveOneOutSplit(train);
  if (s.tests.length <= maxUsers) return s;
  // The maxUsers users with the smallest seeded hashes: deterministic, independent of input order.
  const keep = new Set(
    s.tests
      .map((t) => ({ id: t.userId, h: userHash(t.userId, seed) }))
      .sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1))
      .slice(0, maxUsers)
      .map((t) => t.id),
  );
  return { train: s.train, tests: s.tests.filter((t) => keep.has(t.userId)) };
}

/** What a choice is judged by: NDCG@10 on the validation users (HR@10 beside it). */
export interface ValidationScore {
  ndcg10: number;
  hr10: number;
  metrics: MetricReport;
  trainMs: number;
  evaluateMs: number;
}

export interface ValidationContext {
  split: SplitResult<InteractionFields>;
  catalogueSize: number;
  excludeSeen: boolean;
  seenBound?: number;
  metadata?: TrainingMetadata;
  hooks?: TrainHooks;
}

/**
 * Trains `r` (an entry of src/training/recipes.ts, or a recipe choosing its own features) with
 * `params` on the validation train part and scores it on the validation users.
 */
export async function validationScore(r: AnyRecipe, params: Record<string, unknown>, v: ValidationContext): Promise<ValidationScore & { model: Model; perUserNdcg10: number[] }> {
  const t0 = performance.now();
  const model = await r.train(v.split.train, params, { ...v.hooks, ...(v.metadata ? { metadata: v.metadata } : {}) });
  const t1 = performance.now();
  const tests = testRecommendations(model, v.split, v.excludeSeen, v.seenBound);
  const metrics = evaluate(tests, v.catalogueSize);
  // Each validation user's NDCG@10, in the split's user order: for paired comparisons of candidates.
  const perUserNdcg10 = tests.map((t) => ndcgAtK(t.recommended, t.truth, 10));
  const t2 = performance.now();
  return { model, ndcg10: metrics.normalized_discounted_cumulative_gain_at_10, hr10: metrics.hit_at_10, metrics, trainMs: Math.round(t1 - t0), evaluateMs: Math.round(t2 - t1), perUserNdcg10 };
}

/**
 * The paired difference of two candidates' per-user scores on the same validation users: its mean
 * and the standard error of that mean (0 with fewer than 2 users).
 */
export function pairedDifference(a: readonly number[], b: readonly number[]): { mean: number; standardError: number } {
  const n = Math.min(a.length, b.length);
  if (n === 0) return { mean: 0, standardError: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i]! - b[i]!;
  const mean = sum / n;
  if (n < 2) return { mean, standardError: 0 };
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (a[i]! - b[i]! - mean) ** 2;
  return { mean, standardError: Math.sqrt(sq / (n - 1) / n) };
}
