/**
 * hrnn-metadata's `features: 'auto'` (`chooseFeatures`): candidate feature sets scored on a
 * validation split carved from the recipe's own training input (src/training/validation.ts), the
 * best set then trained on all of the input. A feature that does not help on validation (Amazon's
 * rating column as context) is dropped, so hrnn-metadata is never worse than hrnn on validation.
 * The `auto` recipe (src/training/auto.ts) scores the same candidate sets.
 *
 * Cost: one training per candidate on the validation train part (about the size of the input), on
 * top of the final training. Feature sets: "none", "all", and with 2..MAX_DROP_GROUPS informative
 * groups also "all but g" for each group g: at most 2 + MAX_DROP_GROUPS trainings.
 *
 * It imports no recipe (the recipe to train is handed in): src/recipes/hrnn.ts uses it.
 */
import { AppError } from '../errors/index.js';
import type { AnyRecipe, Model, TrainHooks, TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import { seenRule } from './seen.js';
import type { SplitResult } from './split.js';
import { pairedDifference, validationScore, validationSplit, type ValidationContext } from './validation.js';

/** hrnn-metadata's `features` parameter: choose on validation, use every feature, or these groups. */
export type FeatureSelection = 'auto' | 'all' | string[];

/** A feature group: one item or user metadata field (`item.GENRE`, `user.AGE`) or one event context key (`context.DEVICE`, `context.EVENT_TYPE`). */
export interface FeatureGroup {
  name: string;
  /** Distinct values seen (counted up to DISTINCT_CAP). A group with fewer than 2 carries nothing and `auto` never uses it. */
  distinct: number;
}

/** With more informative groups than this, `auto` tries only "none" and "all". */
export const MAX_DROP_GROUPS = 4;
const DISTINCT_CAP = 1000;

type ContextEvent = { EVENT_TYPE?: string; CONTEXT?: Readonly<Record<string, string>> };

/** The feature groups of the data, by name. An event without EVENT_TYPE counts as `click` (as hrnn-metadata encodes it). */
export function featureGroups(interactions: readonly ContextEvent[], metadata: TrainingMetadata = {}): FeatureGroup[] {
  const values = new Map<string, Set<string>>();
  const add = (name: string, v: unknown) => {
    if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return;
    let s = values.get(name);
    if (!s) values.set(name, (s = new Set()));
    if (s.size < DISTINCT_CAP) s.add(Array.isArray(v) ? v.join('|') : String(v));
  };
  for (const it of metadata.items ?? []) for (const [k, v] of Object.entries(it.METADATA)) add(`item.${k}`, v);
  for (const u of metadata.users ?? []) for (const [k, v] of Object.entries(u.METADATA)) add(`user.${k}`, v);
  for (const e of interactions) {
    add('context.EVENT_TYPE', e.EVENT_TYPE ?? 'click');
    for (const [k, v] of Object.entries(e.CONTEXT ?? {})) add(`context.${k}`, v);
  }
  return [...values].map(([name, s]) => ({ name, distinct: s.size })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The feature sets `auto` scores: none, all informative groups, and (2..MAX_DROP_GROUPS groups) all but each. Empty when no group is informative. */
export function featureCandidates(groups: readonly FeatureGroup[]): { label: string; features: string[] }[] {
  const informative = groups.filter((g) => g.distinct >= 2).map((g) => g.name);
  if (informative.length === 0) return [];
  const out = [
    { label: 'none', features: [] as string[] },
    { label: 'all', features: informative },
  ];
  if (informative.length >= 2 && informative.length <= MAX_DROP_GROUPS) {
    for (const g of informative) out.push({ label: `all but ${g}`, features: informative.filter((x) => x !== g) });
  }
  return out;
}

/** One scored candidate. */
export interface CandidateRow {
  recipe: string;
  /** hrnn-metadata: the feature groups used. */
  features?: string[];
  ndcg10: number;
  hr10: number;
  trainMs: number;
}

/** Scores each candidate on the validation split; the best by NDCG@10 (ties: the earlier one). */
export async function scoreCandidates(
  candidates: readonly { recipe: string; impl: AnyRecipe; params: Record<string, unknown>; features?: string[] }[],
  v: ValidationContext,
): Promise<{ rows: CandidateRow[]; best: number; perUser: number[][] }> {
  const rows: CandidateRow[] = [];
  // Compared at full precision: the rounded figures are for the table.
  const scores: number[] = [];
  const perUser: number[][] = [];
  for (const c of candidates) {
    const s = await validationScore(c.impl, c.params, v);
    rows.push({ recipe: c.recipe, ...(c.features ? { features: c.features } : {}), ndcg10: round(s.ndcg10), hr10: round(s.hr10), trainMs: s.trainMs });
    scores.push(s.ndcg10);
    perUser.push(s.perUserNdcg10);
  }
  const best = scores.reduce((b, x, i) => (x > scores[b]! ? i : b), 0);
  return { rows, best, perUser };
}

/**
 * Features are kept only when the best feature set beats "none" by more than this many standard
 * errors of the paired per-user NDCG@10 difference on the validation users. A gain within that is
 * what another seed of the same training gives (measured: hrnn's validation NDCG@10 moves by 0.019
 * between seeds on 500 users, and a feature set that won by 0.008 on validation lost on test).
 */
export const FEATURE_MARGIN_SE = 2;

/** Whether per-user scores `withFeatures` beat `without` (the same users) by more than the margin; the paired difference. */
export function clearsMargin(withFeatures: readonly number[], without: readonly number[]): { clears: boolean; mean: number; standardError: number } {
  const d = pairedDifference(withFeatures, without);
  return { clears: d.mean > FEATURE_MARGIN_SE * d.standardError, ...d };
}

/** A score as the tables show it (6 decimals). */
export const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** What hrnn-metadata used and why (the model JSON's `features`, the train report's `features`). */
export interface FeatureChoice {
  requested: 'auto' | 'all' | 'list';
  /** The feature groups the model was trained with. */
  used: string[];
  groups: FeatureGroup[];
  /** `auto`: each candidate set's validation score (recipe hrnn-metadata; features [] is plain hrnn's input). */
  table?: CandidateRow[];
  validationUsers?: number;
  reason: string;
}

/** What choosing needs beside the data: the seen-items rule and its bound (defaults: `auto`'s rule on the input). */
export interface ChoiceContext {
  excludeSeen?: boolean;
  seenBound?: number;
  metadata?: TrainingMetadata;
  hooks?: TrainHooks;
  /** Seed of the validation user sample. */
  seed?: number;
}

export function validationContext(input: readonly InteractionFields[], c: ChoiceContext): ValidationContext {
  const split: SplitResult<InteractionFields> = validationSplit(input, c.seed === undefined ? {} : { seed: c.seed });
  return {
    split,
    catalogueSize: new Set(input.map((e) => e.ITEM_ID)).size,
    excludeSeen: c.excludeSeen ?? seenRule('auto', input).excludeSeen,
    ...(c.seenBound === undefined ? {} : { seenBound: c.seenBound }),
    ...(c.metadata ? { metadata: c.metadata } : {}),
    ...(c.hooks ? { hooks: c.hooks } : {}),
  };
}

/**
 * hrnn-metadata's feature groups for `params.features` (see the module comment); `params` are the
 * recipe's (validated) parameters, used for every validation training.
 */
export async function chooseFeatures(
  input: readonly InteractionFields[],
  params: { features: FeatureSelection },
  c: ChoiceContext = {},
  /** The recipe the candidate sets are trained with (hrnn-metadata). */
  recipe: AnyRecipe,
): Promise<FeatureChoice> {
  const groups = featureGroups(input, c.metadata);
  const names = groups.map((g) => g.name);
  const f = params.features;
  if (f === 'all') return { requested: 'all', used: names, groups, reason: 'features: all' };
  if (Array.isArray(f)) {
    const unknown = f.filter((n) => !names.includes(n));
    if (unknown.length > 0) {
      throw new AppError('INVALID_ARGUMENT', `hrnn parameter features: unknown feature group ${JSON.stringify(unknown[0])}; the data has ${names.length ? names.join(', ') : 'none'}`, { field: 'params.features' });
    }
    return { requested: 'list', used: [...f], groups, reason: 'features: given' };
  }
  const candidates = featureCandidates(groups);
  if (candidates.length === 0) return { requested: 'auto', used: [], groups, reason: 'no feature group has 2 or more distinct values' };
  const v = validationContext(input, c);
  if (v.split.tests.length === 0) return { requested: 'auto', used: candidates[1]!.features, groups, reason: 'no validation users (no user has 2 interactions): all features' };
  const { rows, best, perUser } = await scoreCandidates(
    candidates.map((k) => ({ recipe: 'hrnn-metadata', impl: recipe, params: { ...(params as Record<string, unknown>), features: k.features }, features: k.features })),
    v,
  );
  const label = candidates[best]!.label;
  const users = v.split.tests.length;
  const base = { requested: 'auto' as const, groups, table: rows, validationUsers: users };
  // candidates[0] is "none" (plain hrnn's input): a feature set must beat it by more than the noise.
  if (best !== 0) {
    const d = clearsMargin(perUser[best]!, perUser[0]!);
    if (!d.clears) {
      return {
        ...base,
        used: candidates[0]!.features,
        reason: `${label} has the best validation NDCG@10 (${rows[best]!.ndcg10}) of ${rows.length} feature sets on ${users} validation users, but its gain over none (${round(d.mean)}) is within ${FEATURE_MARGIN_SE} standard errors (${round(d.standardError)}) of the paired per-user difference: no features`,
      };
    }
    return {
      ...base,
      used: candidates[best]!.features,
      reason: `${label} has the best validation NDCG@10 (${rows[best]!.ndcg10}) of ${rows.length} feature sets on ${users} validation users, ${round(d.mean)} above none (more than ${FEATURE_MARGIN_SE} standard errors, ${round(d.standardError)}, of the paired per-user difference)`,
    };
  }
  return { ...base, used: candidates[0]!.features, reason: `${label} has the best validation NDCG@10 (${rows[best]!.ndcg10}) of ${rows.length} feature sets on ${users} validation users` };
}

/** The feature choice a trained model carries (hrnn-metadata), for the train report. */
export function featureChoiceOf(model: Model): FeatureChoice | undefined {
  return (model as { features?: FeatureChoice }).features;
}
