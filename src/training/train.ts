/**
 * Offline training and evaluation of a recipe on interactions: Personalize's minimums, the
 * seen-items rule, a documented split, the recipe's metrics and popularity-count's on the same
 * split beside them (a number always has a baseline).
 */
import { AppError } from '../errors/index.js';
import { popularityCount } from '../recipes/popularity.js';
import type { Model, TrainHooks, TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import { evaluateModel } from './evaluate-model.js';
import { RECIPES } from './recipes.js';
import { searchParams, type HpoReport } from './hpo.js';
import type { MetricReport } from './metrics.js';
import { SEEN_ITEMS_PER_USER, seenRule, type SeenRule } from './seen.js';
import { chooseRecipe, featureChoiceOf, type AutoChoice, type FeatureChoice } from './auto.js';
import { leaveOneOutSplit, personalizeSplit, timeSplit, type SplitResult } from './split.js';

export { evaluateModel, testRecommendations } from './evaluate-model.js';
export { RECIPES } from './recipes.js';
export { repeatRate, REPEAT_THRESHOLD, seenRule, type SeenRule } from './seen.js';

export type SplitName = 'personalize' | 'loo' | 'time';

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

export function split<T extends InteractionFields>(interactions: readonly T[], name: SplitName, seed = 42): SplitResult<T> {
  if (name === 'personalize') return personalizeSplit(interactions, { seed });
  if (name === 'loo') return leaveOneOutSplit(interactions);
  return timeSplit(interactions);
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
  /** With `hpo`: the search (on the split's train part only) that chose the parameters evaluated and trained. */
  hpo?: HpoReport;
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
    /** Hyperparameter search (src/training/hpo.ts) on the split's train part before the evaluation; `params` stay fixed. */
    hpo?: { budgetMs: number; seed?: number; maxTrials?: number; parallel?: number; onTrial?: (t: HpoReport['trials'][number]) => void };
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
  const hooks = (phase: 'evaluation' | 'final'): TrainHooks => ({ ...o.hooks?.(phase), ...(o.metadata ? { metadata: o.metadata } : {}) });
  const seenBound = o.seenBound ?? SEEN_ITEMS_PER_USER;
  const t0 = performance.now();
  // auto: the recipe is chosen on a validation split of the train part (src/training/auto.ts).
  const auto = o.recipe === 'auto' ? await chooseRecipe(s.train, { excludeSeen: seen.excludeSeen, seenBound, ...(o.metadata ? { metadata: o.metadata } : {}), ...(o.params ? { params: o.params } : {}), ...(o.seed === undefined ? {} : { seed: o.seed }), hooks: hooks('evaluation') }) : undefined;
  const recipe = RECIPES[auto?.recipe ?? o.recipe]!;
  const given = auto ? auto.params : o.params;
  // HPO (on the same train part) searches what `given` leaves open; its time is in the report's hpo.usedMs, not trainMs.
  const hpo = o.hpo
    ? await searchParams(recipe.name, s.train, {
        budgetMs: o.hpo.budgetMs,
        ...(o.hpo.seed !== undefined ? { seed: o.hpo.seed } : {}),
        ...(o.hpo.maxTrials !== undefined ? { maxTrials: o.hpo.maxTrials } : {}),
        ...(o.hpo.parallel !== undefined ? { parallel: o.hpo.parallel } : {}),
        ...(o.hpo.onTrial ? { onTrial: o.hpo.onTrial } : {}),
        ...(given ? { fixed: given } : {}),
        excludeSeen: seen.excludeSeen,
        seenBound,
        ...(o.metadata ? { metadata: o.metadata } : {}),
      })
    : undefined;
  const params = hpo ? hpo.params : given;
  const evalModel = await recipe.train(s.train, params, hooks('evaluation'));
  const t1 = performance.now();
  const metrics = evaluateModel(evalModel, s, catalogue, seen.excludeSeen, seenBound);
  const t2 = performance.now();
  const baseline = evaluateModel(popularityCount.train(s.train), s, catalogue, seen.excludeSeen, seenBound);
  // hrnn-metadata's feature choice (features: auto) was made on a validation split of the train part:
  // the final training takes it rather than choosing again (up to 6 more trainings).
  const features = featureChoiceOf(evalModel);
  const finalParams = features?.requested === 'auto' ? { ...params, features: features.used } : params;
  const model = o.final === false ? evalModel : await recipe.train(interactions, finalParams, hooks('final'));
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
      // auto's choice included, the search's time not (hpo.usedMs).
      trainMs: Math.round(t1 - t0 - (hpo?.report.usedMs ?? 0)),
      evaluateMs: Math.round(t2 - t1),
      ...(hpo ? { hpo: hpo.report } : {}),
      ...(auto ? { auto } : {}),
      ...(features ? { features } : {}),
    },
  };
}
