/**
 * Choices made on a validation split carved from the training input only (src/training/validation.ts),
 * never on the test split the metrics are reported on:
 *
 * - **`recipe: 'auto'`** (`chooseRecipe`): popularity-count, sims and hrnn are trained on the
 *   validation train part and scored on the validation users; when the data has features
 *   (item / user metadata fields or event context with 2 or more distinct values), hrnn-metadata
 *   too, once per candidate feature set (`featureCandidates`; hrnn is its "no features" row). The
 *   best validation NDCG@10 wins; on a tie the earlier (simpler) candidate stays. hrnn-coldstart is
 *   not a candidate: on interactions it trains hrnn-metadata's model, and what it adds (vectors for
 *   items without interactions, exploration slots for young items) is not what a split of past
 *   interactions can reward — its exploration only moves other items out of the lists
 *   (docs/benchmarks.md has the measurement).
 * - hrnn-metadata's `features: 'auto'` is src/training/feature-choice.ts.
 *
 * Cost: one training per candidate on the validation train part (about the size of the input), on
 * top of the final training. Feature sets: "none", "all", and with 2..MAX_DROP_GROUPS informative
 * groups also "all but g" for each group g: at most 2 + MAX_DROP_GROUPS trainings.
 */
import { AppError } from '../errors/index.js';
import { HRNN_DEFAULTS } from '../recipes/hrnn.js';
import { SIMS_DEFAULTS } from '../recipes/sims.js';
import type { InteractionFields } from '../state/apply.js';
import { clearsMargin, FEATURE_MARGIN_SE, featureCandidates, featureGroups, round, scoreCandidates, validationContext, type CandidateRow, type ChoiceContext, type FeatureSelection } from './feature-choice.js';
import { recipeNamed } from './recipes.js';

export { featureCandidates, featureChoiceOf, featureGroups, type CandidateRow, type ChoiceContext, type FeatureChoice, type FeatureSelection } from './feature-choice.js';

/** The `auto` recipe's choice: the recipe, its parameters, and the table it was chosen from. */
export interface AutoChoice {
  recipe: string;
  params: Record<string, unknown>;
  table: CandidateRow[];
  validationUsers: number;
  reason: string;
}

/**
 * `params` for `auto`: each key goes to the recipes that know it (hrnn's to the hrnn family, sims'
 * to sims); a key no candidate knows is INVALID_ARGUMENT.
 */
function paramsByRecipe(params: Record<string, unknown>): { hrnn: Record<string, unknown>; sims: Record<string, unknown> } {
  const hrnn: Record<string, unknown> = {};
  const sims: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    if (k in HRNN_DEFAULTS) hrnn[k] = v;
    else if (k in SIMS_DEFAULTS) sims[k] = v;
    else throw new AppError('INVALID_ARGUMENT', `recipe auto: parameter ${JSON.stringify(k)} belongs to no candidate recipe (hrnn: ${Object.keys(HRNN_DEFAULTS).join(', ')}; sims: ${Object.keys(SIMS_DEFAULTS).join(', ')})`, { field: `params.${k}` });
  }
  return { hrnn, sims };
}

/**
 * Chooses a recipe for `trainPart` (time-ordered; the split's train part, never its test users'
 * truth) on a validation split of it; see the module comment. With `features` among `params`,
 * hrnn-metadata is scored with those features only.
 */
export async function chooseRecipe(trainPart: readonly InteractionFields[], c: ChoiceContext & { params?: Record<string, unknown> } = {}): Promise<AutoChoice> {
  const p = paramsByRecipe(c.params ?? {});
  const v = validationContext(trainPart, c);
  if (v.split.tests.length === 0) throw new AppError('TRAINING_DATA_TOO_SMALL', 'recipe auto needs validation users: no user has 2 or more interactions in the training part', { field: 'interactions' });
  const { features, ...hrnnParams } = p.hrnn as { features?: FeatureSelection };
  const groups = featureGroups(trainPart, c.metadata);
  const featureSets =
    features === undefined || features === 'auto'
      ? featureCandidates(groups).slice(1)
      : [{ label: 'given', features: features === 'all' ? groups.map((g) => g.name) : features }];
  const candidates = [
    { recipe: 'popularity-count', impl: recipeNamed('popularity-count'), params: {} },
    { recipe: 'sims', impl: recipeNamed('sims'), params: p.sims },
    { recipe: 'hrnn', impl: recipeNamed('hrnn'), params: hrnnParams },
    ...featureSets.map((k) => ({ recipe: 'hrnn-metadata', impl: recipeNamed('hrnn-metadata'), params: { ...hrnnParams, features: k.features }, features: k.features })),
  ];
  const { rows, best: top, perUser } = await scoreCandidates(candidates, v);
  const name = (r: CandidateRow) => (r.features ? `${r.recipe} [${r.features.join(', ')}]` : r.recipe);
  // Features must earn their place as in hrnn-metadata's own choice: a feature set that beats plain
  // hrnn (its "none") by no more than FEATURE_MARGIN_SE standard errors gives way to hrnn.
  const hrnnRow = candidates.findIndex((k) => k.recipe === 'hrnn');
  const margin = candidates[top]!.recipe === 'hrnn-metadata' && (candidates[top] as { features?: string[] }).features?.length ? clearsMargin(perUser[top]!, perUser[hrnnRow]!) : undefined;
  const best = margin && !margin.clears ? hrnnRow : top;
  const chosen = candidates[best]!;
  const runnerUp = rows.filter((_, i) => i !== best).sort((a, b) => b.ndcg10 - a.ndcg10)[0];
  return {
    recipe: chosen.recipe,
    params: chosen.params,
    table: rows,
    validationUsers: v.split.tests.length,
    reason:
      (best === top
        ? `${name(rows[best]!)} has the best validation NDCG@10 (${rows[best]!.ndcg10}) on ${v.split.tests.length} validation users`
        : `${name(rows[top]!)} has the best validation NDCG@10 (${rows[top]!.ndcg10}) on ${v.split.tests.length} validation users, but its gain over hrnn (${round(margin!.mean)}) is within ${FEATURE_MARGIN_SE} standard errors (${round(margin!.standardError)}) of the paired per-user difference: hrnn (${rows[best]!.ndcg10})`) +
      (runnerUp ? `; next ${name(runnerUp)} (${runnerUp.ndcg10})` : ''),
  };
}

