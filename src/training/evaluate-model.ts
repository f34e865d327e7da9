/**
 * A model's metrics on a split's test users: what training (src/training/train.ts) and choosing
 * before it (validation.ts, hpo.ts, feature-choice.ts) share. It imports no recipe, so a recipe may
 * use validation (hrnn-metadata's feature choice) without an import cycle.
 */
import type { Model } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import { evaluate, MRR_CUTOFF, type MetricReport } from './metrics.js';
import { SEEN_ITEMS_PER_USER, seenItems } from './seen.js';
import type { SplitResult } from './split.js';

/**
 * Each test user's top `numResults` from the user's input, as evaluation asks for it. With
 * `excludeSeen`, the user's seen items over the input (src/training/seen.ts: distinct, at most
 * `seenBound`, as the stream's user state and a model folder keep them) are left out.
 */
export function testRecommendations(
  model: Model,
  s: SplitResult<InteractionFields>,
  excludeSeen: boolean,
  seenBound: number = SEEN_ITEMS_PER_USER,
  numResults: number = MRR_CUTOFF,
): { userId: string; recommended: string[]; truth: string[] }[] {
  const requests = s.tests.map((t) => ({
    history: t.input,
    numResults,
    // The request comes when the user's next (held-out) event happens.
    ...(t.truth[0] ? { at: t.truth[0].TIMESTAMP } : {}),
    ...(excludeSeen ? { exclude: new Set(seenItems(t.input.map((e) => e.ITEM_ID), seenBound)) } : {}),
  }));
  const answers = model.recommendMany ? model.recommendMany(requests) : requests.map((r) => model.recommend(r));
  return s.tests.map((t, i) => ({ userId: t.userId, recommended: answers[i]!.map((r) => r.itemId), truth: t.truth.map((e) => e.ITEM_ID) }));
}

/** Metrics of `model` on the split's test users (top 25 from each user's input). */
export function evaluateModel(model: Model, s: SplitResult<InteractionFields>, catalogueSize: number, excludeSeen: boolean, seenBound: number = SEEN_ITEMS_PER_USER): MetricReport {
  return evaluate(
    testRecommendations(model, s, excludeSeen, seenBound).map(({ recommended, truth }) => ({ recommended, truth })),
    catalogueSize,
  );
}

