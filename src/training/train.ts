/**
 * Offline training and evaluation of a recipe on interactions: Personalize's minimums, the
 * seen-items rule, a documented split, the recipe's metrics and popularity-count's on the same
 * split beside them (a number always has a baseline).
 */
import { AppError } from '../errors/index.js';
import { hrnn, hrnnColdstart, hrnnMetadata } from '../recipes/hrnn.js';
import { popularityCount } from '../recipes/popularity.js';
import { sims } from '../recipes/sims.js';
import type { Model, Recipe, TrainHooks, TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import { chooseRecipe, featureChoiceOf, type AutoChoice, type FeatureChoice } from './auto.js';
import { evaluate, MRR_CUTOFF, type MetricReport } from './metrics.js';
import { SEEN_ITEMS_PER_USER, seenItems } from './seen.js';
import { leaveOneOutSplit, personalizeSplit, timeSplit, type SplitResult } from './split.js';

type AnyRecipe = Recipe<Record<string, unknown>, Model, Model | Promise<Model>>;

export const RECIPES: Record<string, AnyRecipe> = {
  'popularity-count': popularityCount as unknown as AnyRecipe,
  sims: sims as unknown as AnyRecipe,
  hrnn: hrnn as unknown as AnyRecipe,
  'hrnn-metadata': hrnnMetadata as unknown as AnyRecipe,
  'hrnn-coldstart': hrnnColdstart as unknown as AnyRecipe,
};

export type SplitName = 'personalize' | 'loo' | 'time';
export type SeenRule = 'auto' | 'exclude' | 'include';

/** Personalize's minimum training data. */
export const MIN_INTERACTIONS = 1000;
export const MIN_USERS_WITH_TWO = 25;

export function checkMinimums(interactions: readonly InteractionFields[]): void {
  const perUser = new Map<string, number>();
  for (const e of interactions) perUser.set(e.USER_ID, (perUser.get(e.USER_ID) ?? 0) + 1);
  const usersWithTwo = [...perUser.values()].filter((n) => n >= 2).length;
  if (interactions.length < MIN_INTERACTIONS || usersWithTwo < MIN_USERS_WITH_TWO) {
    throw new AppError(
      'TRAINING_DATA_TOO_SMALL',
      `training needs at least ${MIN_INTERACTIONS} interactions and ${MIN_USERS_WITH_TWO} users with 2 or more (as Amazon Personalize); ` +
        `after filtering there are ${interactions.length} interactions and ${usersWithTwo} such users`,
      { field: 'interactions' },
    );
  }
}

/**
 * The share of interactions whose user had already touched the item (repeats). Below `threshold`
 * users practically never come back to an item (ratings, durable purchases): seen items are left
 * out of their lists; above it (session clicks) they are ranked like any other.
 */
export function repeatRate(interactions: readonly InteractionFields[]): number {
  const seen = new Set<string>();
  let repeats = 0;
  for (const e of interactions) {
    const k = `${e.USER_ID}\u0000${e.ITEM_ID}`;
    if (seen.has(k)) repeats++;
    else seen.add(k);
  }
  return interactions.length === 0 ? 0 : repeats / interactions.length;
}

export const REPEAT_THRESHOLD = 0.01;

export function seenRule(rule: SeenRule, interactions: readonly InteractionFields[]): { excludeSeen: boolean; repeatRate: number } {
  const rate = repeatRate(interactions);
  return { excludeSeen: rule === 'exclude' || (rule === 'auto' && rate < REPEAT_THRESHOLD), repeatRate: rate };
}

export function split<T extends InteractionFields>(interactions: readonly T[], name: SplitName, seed = 42): SplitResult<T> {
  if (name === 'personalize') return personalizeSplit(interactions, { seed });
  if (name === 'loo') return leaveOneOutSplit(interactions);
  return timeSplit(interactions);
}

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

export interface TrainReport {
  recipe: string;
  split: SplitName;
  interactions: number;
  users: number;
  items: number;
  testUsers: number;
  /** `bound`: how many distinct seen items per user the rule covers (state.maxSeenItemsPerUser). */
  seen: { rule: SeenRule; excludeSeen: boolean; repeatRate: number; bound: number };
  metrics: MetricReport;
  baseline: { recipe: 'popularity-count'; metrics: MetricReport };
  trainMs: number;
  evaluateMs: number;
  /** recipe `auto`: the validation table and the chosen recipe (`recipe` above) with its parameters. */
  auto?: AutoChoice;
  /** hrnn-metadata / -coldstart: the feature groups the evaluated model used and how they were chosen. */
  features?: FeatureChoice;
}

/**
 * Trains `recipe` on the split's train part, evaluates it and popularity-count on the test users,
 * then trains the final model on everything. `interactions` must be in time order.
 */
export async function trainAndEvaluate(
  interactions: readonly InteractionFields[],
  o: {
    recipe: string;
    split?: SplitName;
    seen?: SeenRule;
    /** Seen items per user the `exclude` rule covers (state.maxSeenItemsPerUser); default SEEN_ITEMS_PER_USER. */
    seenBound?: number;
    params?: Record<string, unknown>;
    seed?: number;
    /** Also train the returned model on everything (default); false: return the evaluated model. */
    final?: boolean;
    /** Item and user metadata (hrnn-metadata, hrnn-coldstart). */
    metadata?: TrainingMetadata;
    /** Progress of the two trainings: `evaluation` (on the split's train part), then `final` (on everything). */
    hooks?: (phase: 'evaluation' | 'final') => TrainHooks;
  },
): Promise<{ model: Model; report: TrainReport }> {
  if (!RECIPES[o.recipe] && o.recipe !== 'auto') {
    throw new AppError('INVALID_ARGUMENT', `unknown recipe ${JSON.stringify(o.recipe)}; known: ${Object.keys(RECIPES).join(', ')}, auto`, { field: 'recipe' });
  }
  checkMinimums(interactions);
  const splitName = o.split ?? 'personalize';
  const seenChoice = o.seen ?? 'auto';
  const seen = seenRule(seenChoice, interactions);
  const s = split(interactions, splitName, o.seed);
  const catalogue = new Set(interactions.map((e) => e.ITEM_ID)).size;
  const t0 = performance.now();
  const hooks = (phase: 'evaluation' | 'final'): TrainHooks => ({ ...o.hooks?.(phase), ...(o.metadata ? { metadata: o.metadata } : {}) });
  const seenBound = o.seenBound ?? SEEN_ITEMS_PER_USER;
  // auto: the recipe is chosen on a validation split of the train part (src/training/auto.ts).
  const auto = o.recipe === 'auto' ? await chooseRecipe(s.train, { excludeSeen: seen.excludeSeen, seenBound, ...(o.metadata ? { metadata: o.metadata } : {}), ...(o.params ? { params: o.params } : {}), ...(o.seed === undefined ? {} : { seed: o.seed }), hooks: hooks('evaluation') }) : undefined;
  const recipe = RECIPES[auto?.recipe ?? o.recipe]!;
  const params = auto ? auto.params : o.params;
  const evalModel = await recipe.train(s.train, params, hooks('evaluation'));
  const t1 = performance.now();
  const metrics = evaluateModel(evalModel, s, catalogue, seen.excludeSeen, seenBound);
  const t2 = performance.now();
  const baseline = evaluateModel(popularityCount.train(s.train), s, catalogue, seen.excludeSeen, seenBound);
  const model = o.final === false ? evalModel : await recipe.train(interactions, params, hooks('final'));
  return {
    model,
    report: {
      recipe: recipe.name,
      split: splitName,
      interactions: interactions.length,
      users: new Set(interactions.map((e) => e.USER_ID)).size,
      items: catalogue,
      testUsers: s.tests.length,
      seen: { rule: seenChoice, ...seen, bound: seenBound },
      metrics,
      baseline: { recipe: 'popularity-count', metrics: baseline },
      trainMs: Math.round(t1 - t0),
      evaluateMs: Math.round(t2 - t1),
      ...(auto ? { auto } : {}),
      ...(featureChoiceOf(evalModel) ? { features: featureChoiceOf(evalModel)! } : {}),
    },
  };
}
