/**
 * Hyperparameter search (Personalize's `performHPO`): documented ranges per recipe (SEARCH_SPACES,
 * rendered into docs/tuning.md by `rangesMarkdown`), trials scored on a validation split carved from
 * the training part only (src/training/validation.ts), within a time budget.
 *
 * - Recipes with epochs (the hrnn family): successive halving over epochs, run asynchronously (ASHA,
 *   Li et al. 2020) so that it fits any budget: rungs of increasing epochs (maxEpochs / η^k, ...,
 *   maxEpochs); a trial finished at rung k is promoted to rung k+1 once it is in the top 1/η of the
 *   results at rung k; when nothing can be promoted a new trial is sampled at the first rung. A
 *   promoted trial is trained again from the start for the rung's epochs (hrnn has no learning-rate
 *   schedule, so with the same seed its first epochs are the same as the shorter run's).
 * - Other recipes: plain seeded random search.
 *
 * Trial 0 is the defaults (with the user's fixed parameters; the hrnn family: at the last rung, the
 * full epochs), so the search never chooses worse than the defaults on validation. Parameters the user set are fixed; the search varies only the others.
 * No trial or promotion starts after the budget; a running hrnn training is stopped at its next
 * progress report after it (TrainHooks.shouldStop) and recorded as `aborted`.
 */
import { Worker } from 'node:worker_threads';
import ms from 'ms';
import { AppError, type ErrorCode } from '../errors/index.js';
import { prng } from '../data/synthetic.js';
import { TrainingStopped, type TrainHooks, type TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import { workerScript } from '../util/worker.js';
import type { HpoWorkerInput, HpoWorkerReply, HpoWorkerRequest } from './hpo-worker.js';
import { chooseFeatures, type FeatureChoice } from './feature-choice.js';
import { recipeNamed } from './recipes.js';
import { SEEN_ITEMS_PER_USER } from './seen.js';
import { VALIDATION_USERS, validationScore, validationSplit, type ValidationContext } from './validation.js';

/** A parameter's search range: uniform (`float`, `int`), log-uniform (`log`, `log-int`) or a choice. */
export type ParamRange =
  | { kind: 'float' | 'log'; min: number; max: number }
  | { kind: 'int' | 'log-int'; min: number; max: number }
  | { kind: 'choice'; values: readonly (number | string)[] };

const HRNN_SPACE: Record<string, ParamRange> = {
  hiddenSize: { kind: 'log-int', min: 32, max: 256 },
  learningRate: { kind: 'log', min: 0.01, max: 0.3 },
  momentum: { kind: 'float', min: 0, max: 0.9 },
  dropoutHidden: { kind: 'float', min: 0, max: 0.6 },
  dropoutEmbed: { kind: 'float', min: 0, max: 0.5 },
  batchSize: { kind: 'choice', values: [32, 64, 128, 256] },
  negatives: { kind: 'choice', values: [512, 1024, 2048, 4096] },
  sampleAlpha: { kind: 'float', min: 0, max: 1 },
  loss: { kind: 'choice', values: ['cross-entropy', 'bpr-max'] },
  bpreg: { kind: 'float', min: 0, max: 2 },
  logq: { kind: 'float', min: 0, max: 1 },
};

/** The documented search ranges per recipe (docs/tuning.md is rendered from these). */
export const SEARCH_SPACES: Readonly<Record<string, Readonly<Record<string, ParamRange>>>> = {
  hrnn: HRNN_SPACE,
  'hrnn-metadata': HRNN_SPACE,
  'hrnn-coldstart': HRNN_SPACE,
  sims: {
    popularityDiscountFactor: { kind: 'float', min: 0, max: 1 },
    minCointeractionCount: { kind: 'int', min: 1, max: 5 },
    coOccurrenceWindow: { kind: 'log-int', min: 2, max: 30 },
    coOccurrenceMaxPerItem: { kind: 'choice', values: [100, 200, 500] },
    recentItems: { kind: 'log-int', min: 1, max: 30 },
  },
  'popularity-count': {
    trendingHalfLifeMs: { kind: 'choice', values: [0, 3_600_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000] },
  },
};

/** Recipes trained for a number of epochs: searched by successive halving over them. */
export const EPOCH_RECIPES: Readonly<Record<string, { defaultEpochs: number }>> = {
  hrnn: { defaultEpochs: 10 },
  'hrnn-metadata': { defaultEpochs: 10 },
  'hrnn-coldstart': { defaultEpochs: 10 },
};

/** The budget when HPO is asked for without one. */
export const DEFAULT_HPO_BUDGET_MS = 10 * 60_000;

/**
 * A search budget: a duration text (`20m`, `90s`, `1.5h`: the `ms` package) or a number of seconds
 * (a number, or a text of digits); INVALID_ARGUMENT naming `field` otherwise.
 */
export function parseBudget(value: string | number, field: string): number {
  const text = String(value).trim();
  const out = typeof value === 'number' || /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : text.length > 0 && text.length < 100 ? ms(text as ms.StringValue) : undefined;
  if (typeof out !== 'number' || !Number.isFinite(out) || out <= 0) {
    throw new AppError('INVALID_ARGUMENT', `${field} must be a positive duration such as 20m, 90s, 1.5h or a number of seconds, got ${JSON.stringify(value)}`, { field });
  }
  return Math.round(out);
}

/** Successive halving's reduction factor: the top 1/η of a rung go on. */
export const ETA = 3;
/** Trials sampled at most when maxTrials is not given (the budget usually ends the search first). */
export const DEFAULT_MAX_TRIALS = 64;

const rangeText = (r: ParamRange): string =>
  r.kind === 'choice' ? `one of ${r.values.join(', ')}` : `${r.min} to ${r.max}, ${{ float: 'uniform', int: 'uniform integer', log: 'log-uniform', 'log-int': 'log-uniform integer' }[r.kind]}`;

/** The ranges as the Markdown table in docs/tuning.md (a test checks that the docs contain it). */
export function rangesMarkdown(): string {
  const lines = ['| recipe | parameter | range |', '|---|---|---|'];
  for (const [recipe, space] of Object.entries(SEARCH_SPACES)) for (const [name, r] of Object.entries(space)) lines.push(`| ${recipe} | ${name} | ${rangeText(r)} |`);
  return lines.join('\n');
}

/** One value of a range from a uniform random number in [0, 1). */
export function sampleRange(r: ParamRange, u: number): number | string {
  switch (r.kind) {
    case 'choice':
      return r.values[Math.min(r.values.length - 1, Math.floor(u * r.values.length))]!;
    case 'float':
      return Number((r.min + u * (r.max - r.min)).toPrecision(4));
    case 'log':
      return Number(Math.exp(Math.log(r.min) + u * (Math.log(r.max) - Math.log(r.min))).toPrecision(4));
    case 'int':
      return Math.min(r.max, r.min + Math.floor(u * (r.max - r.min + 1)));
    case 'log-int':
      return Math.min(r.max, Math.floor(Math.exp(Math.log(r.min) + u * (Math.log(r.max + 1) - Math.log(r.min)))));
  }
}

/** Rung epochs for successive halving: maxEpochs / η^k down to at least 1, increasing, distinct. */
export function rungEpochs(maxEpochs: number, eta = ETA, count = 3): number[] {
  const out = new Set<number>();
  for (let k = count - 1; k >= 0; k--) out.add(Math.max(1, Math.round(maxEpochs / eta ** k)));
  return [...out].sort((a, b) => a - b);
}

/** A trial's result at a rung, as the promotion rule sees it. */
export interface RungResult {
  trial: number;
  score: number;
}

/**
 * ASHA's promotion: the highest rung below the top with a trial in its top ⌊n/η⌋ (n: results at that
 * rung) not yet promoted; that trial and the rung it goes to. Ties: the earlier trial.
 */
export function nextPromotion(results: readonly (readonly RungResult[])[], promoted: ReadonlySet<number>[], eta = ETA): { trial: number; rung: number } | undefined {
  for (let k = results.length - 2; k >= 0; k--) {
    const ranked = [...results[k]!].sort((a, b) => b.score - a.score || a.trial - b.trial);
    for (const r of ranked.slice(0, Math.floor(ranked.length / eta))) if (!promoted[k]!.has(r.trial)) return { trial: r.trial, rung: k + 1 };
  }
  return undefined;
}

export interface HpoRungResult {
  rung: number;
  epochs?: number;
  ndcg10: number;
  hr10: number;
  trainMs: number;
  evaluateMs: number;
}

export interface HpoTrial {
  trial: number;
  /** The searched parameters (the fixed ones are in HpoReport.fixed). */
  params: Record<string, unknown>;
  /** One entry per rung trained (random search: one). */
  results: HpoRungResult[];
  /** `top`: reached the last rung (or random search: scored); `stopped-early`: not promoted; `aborted`: stopped by the budget while training; `failed`: training threw. */
  status: 'top' | 'stopped-early' | 'aborted' | 'failed';
  /** The highest rung completed (-1: none). */
  rung: number;
  error?: string;
}

export interface HpoReport {
  recipe: string;
  method: 'successive-halving' | 'random';
  /** successive halving: the rungs' epochs and η. */
  rungs?: number[];
  eta?: number;
  seed: number;
  budgetMs: number;
  usedMs: number;
  maxTrials: number;
  /** Why the search ended. */
  stoppedBy: 'budget' | 'max-trials';
  validation: { interactions: number; users: number };
  /** Parameters the user set (not searched). */
  fixed: Record<string, unknown>;
  /** hrnn-metadata without `features` given: the feature choice made once, before the trials, and fixed for all of them. */
  features?: FeatureChoice;
  searched: string[];
  trials: HpoTrial[];
  /** The chosen trial; trial, ndcg10 and hr10 are null when no trial finished (`fallback`: the defaults are used). */
  chosen: { trial: number | null; params: Record<string, unknown>; epochs?: number; ndcg10: number | null; hr10: number | null };
  /** Why the defaults are used unsearched: the budget ended before any trial finished. */
  fallback?: string;
}

export interface HpoOptions {
  budgetMs: number;
  seed?: number;
  maxTrials?: number;
  /** The user's parameters: fixed, not searched. */
  fixed?: Record<string, unknown>;
  excludeSeen: boolean;
  seenBound?: number;
  metadata?: TrainingMetadata;
  /** Validation users per trial (default VALIDATION_USERS). */
  validationUsers?: number;
  /** After each trial result (progress for the CLI). */
  onTrial?: (t: HpoTrial) => void;
  /** Trials at a time, each in a thread of its own with one core (hrnn workers: 1) (default 1: one trial at a time, hrnn on all cores). */
  parallel?: number;
  /** Successive halving's rungs (default rungEpochs(maxEpochs)). */
  rungs?: number[];
  now?: () => number;
}

/**
 * Searches `recipe`'s parameters on a validation split of `trainPart` (never on anything else) within
 * `budgetMs`; returns the chosen parameters (the fixed ones included) and the report.
 */
export async function searchParams(recipe: string, trainPart: readonly InteractionFields[], o: HpoOptions): Promise<{ params: Record<string, unknown>; report: HpoReport }> {
  const space = SEARCH_SPACES[recipe];
  if (!space) throw new AppError('INVALID_ARGUMENT', `no hyperparameter search for recipe ${JSON.stringify(recipe)}; searchable: ${Object.keys(SEARCH_SPACES).join(', ')}`, { field: 'recipe' });
  if (!Number.isFinite(o.budgetMs) || o.budgetMs <= 0) throw new AppError('INVALID_ARGUMENT', `the HPO budget must be a positive time, got ${o.budgetMs} ms`, { field: 'hpo.budgetMs' });
  const maxTrials = o.maxTrials ?? DEFAULT_MAX_TRIALS;
  if (!Number.isInteger(maxTrials) || maxTrials < 1) throw new AppError('INVALID_ARGUMENT', `hpo.maxTrials must be a positive integer, got ${maxTrials}`, { field: 'hpo.maxTrials' });
  const now = o.now ?? (() => performance.now());
  const start = now();
  const deadline = start + o.budgetMs;
  const seed = o.seed ?? 42;
  const userFixed = o.fixed ?? {};
  // hrnn-metadata's features: 'auto' would make every trial up to 7 trainings: they are chosen once,
  // first (the user's fixed parameters, else the defaults; the train part's validation split, as
  // trainAndEvaluate chooses), and fixed for every trial.
  const features = recipe === 'hrnn-metadata' && (userFixed.features === undefined || userFixed.features === 'auto') ? await chooseFeaturesWithin(trainPart, userFixed, o, seed, () => now() >= deadline) : undefined;
  const fixed = features ? { ...userFixed, features: features.used } : userFixed;
  const searched = Object.keys(space).filter((k) => !(k in fixed));
  const random = prng(seed);

  const split = validationSplit(trainPart, { seed, maxUsers: o.validationUsers ?? VALIDATION_USERS });
  if (split.tests.length === 0) throw new AppError('TRAINING_DATA_TOO_SMALL', 'hyperparameter search needs users with at least 2 interactions in the training part', { field: 'interactions' });
  const ctx: ValidationContext = {
    split,
    catalogueSize: new Set(split.train.map((e) => e.ITEM_ID)).size,
    excludeSeen: o.excludeSeen,
    seenBound: o.seenBound ?? SEEN_ITEMS_PER_USER,
    ...(o.metadata ? { metadata: o.metadata } : {}),
    hooks: { shouldStop: () => now() >= deadline } satisfies TrainHooks,
  };

  const epochsSearched = recipe in EPOCH_RECIPES;
  const maxEpochs = typeof fixed.epochs === 'number' ? fixed.epochs : EPOCH_RECIPES[recipe]?.defaultEpochs ?? 1;
  const rungs = epochsSearched ? (o.rungs ?? rungEpochs(maxEpochs)) : [0];
  const trials: HpoTrial[] = [];
  const results: RungResult[][] = rungs.map(() => []);
  const promoted = rungs.map(() => new Set<number>());

  const sample = (): Record<string, unknown> => {
    // Trial 0: the defaults. Every trial draws from all ranges, so a trial's values do not depend on which are fixed.
    const draws = Object.entries(space).map(([k, r]) => [k, sampleRange(r, random())] as const);
    if (trials.length === 0) return {};
    return Object.fromEntries(draws.filter(([k]) => searched.includes(k)));
  };

  const parallel = o.parallel ?? 1;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) throw new AppError('INVALID_ARGUMENT', `hpo.parallel must be an integer from 1 to 64, got ${parallel}`, { field: 'hpo.parallel' });
  const pool =
    parallel > 1
      ? new TrialPool(parallel, { trainPart: [...trainPart], seed, maxUsers: o.validationUsers ?? VALIDATION_USERS, excludeSeen: o.excludeSeen, seenBound: ctx.seenBound!, ...(o.metadata ? { metadata: o.metadata } : {}) }, Math.max(0, deadline - now()))
      : undefined;
  const run = async (t: HpoTrial, rung: number): Promise<void> => {
    const epochs = epochsSearched ? rungs[rung]! : undefined;
    // Trials side by side get one core each (hrnn's workers), unless the user fixed it.
    const params = { ...t.params, ...(pool && epochsSearched ? { workers: 1 } : {}), ...fixed, ...(epochs !== undefined ? { epochs } : {}) };
    try {
      const s = pool ? await pool.score(recipe, params) : await validationScore(recipeNamed(recipe), params, ctx);
      t.results.push({ rung, ...(epochs !== undefined ? { epochs } : {}), ndcg10: s.ndcg10, hr10: s.hr10, trainMs: s.trainMs, evaluateMs: s.evaluateMs });
      t.rung = rung;
      results[rung]!.push({ trial: t.trial, score: s.ndcg10 });
      t.status = rung === rungs.length - 1 ? 'top' : 'stopped-early';
    } catch (err) {
      if (err instanceof TrainingStopped || err instanceof PoolStopped || now() >= deadline) {
        t.status = 'aborted';
      } else {
        // A bad combination (or a failing training) costs its trial, not the search; a fixed parameter the recipe rejects fails them all.
        t.status = 'failed';
        t.error = err instanceof Error ? err.message : String(err);
        if (err instanceof AppError && t.trial === 0) throw err;
      }
    }
    o.onTrial?.(t);
  };

  // `parallel` trials at a time: a free slot takes a promotion if one is due (on the results so far), else a new trial.
  const running = new Set<Promise<void>>();
  try {
    for (;;) {
      while (running.size < parallel && now() < deadline) {
        const promotion = nextPromotion(results, promoted);
        let job: Promise<void>;
        if (promotion) {
          promoted[promotion.rung - 1]!.add(promotion.trial);
          job = run(trials[promotion.trial]!, promotion.rung);
        } else if (trials.length < maxTrials) {
          const t: HpoTrial = { trial: trials.length, params: sample(), results: [], status: 'stopped-early', rung: -1 };
          trials.push(t);
          // The defaults are trained for their full epochs: the baseline every choice must beat.
          job = run(t, t.trial === 0 ? rungs.length - 1 : 0);
        } else break;
        const tracked: Promise<void> = job.finally(() => running.delete(tracked));
        running.add(tracked);
      }
      if (running.size === 0) break;
      await Promise.race(running);
    }
  } finally {
    await Promise.allSettled(running);
    await pool?.close();
  }
  const stoppedBy: HpoReport['stoppedBy'] = now() >= deadline ? 'budget' : 'max-trials';

  const chosen = choose(trials, epochsSearched && typeof fixed.epochs === 'number');
  const why = trials.find((t) => t.error)?.error;
  if (!chosen && why !== undefined) {
    throw new AppError('INVALID_ARGUMENT', `hyperparameter search: no trial finished within the budget of ${o.budgetMs} ms (${why}); give a larger budget`, { field: 'hpo.budgetMs' });
  }
  // The budget ended before even the defaults finished (a busy machine, a large set): the
  // training goes on with the defaults (and the fixed parameters), and the report says so.
  const t = chosen && trials[chosen.trial]!;
  const r = chosen && t!.results.find((x) => x.rung === chosen.rung)!;
  const params = t && r ? { ...t.params, ...fixed, ...(r.epochs !== undefined ? { epochs: r.epochs } : {}) } : { ...fixed };
  return {
    params,
    report: {
      ...(r ? {} : { fallback: `no trial finished within the budget of ${o.budgetMs} ms (not even the defaults at full epochs): the defaults are used; give a larger budget to search` }),
      recipe,
      method: epochsSearched ? 'successive-halving' : 'random',
      ...(epochsSearched ? { rungs, eta: ETA } : {}),
      seed,
      budgetMs: o.budgetMs,
      usedMs: Math.round(now() - start),
      maxTrials,
      stoppedBy,
      validation: { interactions: split.train.length, users: split.tests.length },
      fixed: userFixed,
      ...(features ? { features } : {}),
      searched,
      trials,
      chosen: t && r ? { trial: t.trial, params, ...(r.epochs !== undefined ? { epochs: r.epochs } : {}), ndcg10: r.ndcg10, hr10: r.hr10 } : { trial: null, params, ndcg10: null, hr10: null },
    },
  };
}

/** hrnn-metadata's feature choice, within the search's budget (a budget too small for it is named). */
async function chooseFeaturesWithin(trainPart: readonly InteractionFields[], fixed: Record<string, unknown>, o: HpoOptions, seed: number, shouldStop: () => boolean): Promise<FeatureChoice> {
  try {
    return await chooseFeatures(
      trainPart,
      { ...fixed, features: 'auto' },
      { excludeSeen: o.excludeSeen, seenBound: o.seenBound ?? SEEN_ITEMS_PER_USER, ...(o.metadata ? { metadata: o.metadata } : {}), hooks: { shouldStop }, seed },
      recipeNamed('hrnn-metadata'),
    );
  } catch (err) {
    if (!(err instanceof TrainingStopped)) throw err;
    throw new AppError('INVALID_ARGUMENT', `hyperparameter search: the budget of ${o.budgetMs} ms ended while choosing hrnn-metadata's features (before any trial); give a larger budget, or fix params.features`, { field: 'hpo.budgetMs' });
  }
}

/** A trial stopped because its thread was ended at the budget. */
class PoolStopped extends Error {}

/** Trial threads (src/training/hpo-worker.ts), each with the validation split, ended at the budget. */
class TrialPool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, { id: number; resolve: (r: HpoWorkerReply) => void; reject: (e: Error) => void }>();
  private readonly timer: NodeJS.Timeout;
  private nextId = 0;
  private closed = false;

  constructor(size: number, input: HpoWorkerInput, budgetMs: number) {
    const url = workerScript(import.meta.url, './hpo-worker.js', 'training/hpo-worker.js');
    for (let i = 0; i < size; i++) {
      const w = new Worker(url, { workerData: input });
      w.on('message', (r: HpoWorkerReply) => {
        const job = this.busy.get(w);
        if (!job || job.id !== r.id) return;
        this.busy.delete(w);
        this.idle.push(w);
        job.resolve(r);
      });
      w.on('error', (err) => this.fail(w, err));
      w.on('exit', () => this.fail(w, new PoolStopped('trial thread ended')));
      this.idle.push(w);
    }
    // At the budget the running trials' threads end (their trials: aborted).
    this.timer = setTimeout(() => void this.close(), budgetMs);
  }

  private fail(w: Worker, err: Error): void {
    const job = this.busy.get(w);
    this.busy.delete(w);
    job?.reject(this.closed ? new PoolStopped('budget over') : err);
  }

  async score(recipe: string, params: Record<string, unknown>): Promise<{ ndcg10: number; hr10: number; trainMs: number; evaluateMs: number }> {
    const w = this.idle.pop();
    if (!w || this.closed) throw new PoolStopped('no trial thread');
    const id = this.nextId++;
    const r = await new Promise<HpoWorkerReply>((resolve, reject) => {
      this.busy.set(w, { id, resolve, reject });
      w.postMessage({ id, recipe, params } satisfies HpoWorkerRequest);
    });
    if (!r.ok) throw r.code ? new AppError(r.code as ErrorCode, r.message, r.field ? { field: r.field } : {}) : new Error(r.message);
    return r;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await Promise.all([...this.idle, ...this.busy.keys()].map((w) => w.terminate()));
  }
}

/**
 * The best validation NDCG@10 over every trial's results (ties: the earlier trial, then the lower
 * rung: fewer epochs). With `topRungOnly` (the user fixed epochs), only results at the highest rung
 * reached compete, since the final model is trained for the user's epochs.
 */
export function choose(trials: readonly HpoTrial[], topRungOnly = false): { trial: number; rung: number } | undefined {
  const all = trials.flatMap((t) => t.results.map((r) => ({ trial: t.trial, rung: r.rung, score: r.ndcg10 })));
  const top = Math.max(...all.map((x) => x.rung));
  let best: { trial: number; rung: number; score: number } | undefined;
  for (const x of topRungOnly ? all.filter((y) => y.rung === top) : all) if (!best || x.score > best.score) best = x;
  return best && { trial: best.trial, rung: best.rung };
}

/** The trial table (CLI). */
export function trialTable(report: HpoReport): string[] {
  const lines = [
    `hyperparameter search: ${report.method}${report.rungs ? ` over epochs ${report.rungs.join('/')} (keep top 1/${report.eta})` : ''}, ${report.trials.length} trials in ${(report.usedMs / 1000).toFixed(1)} s of ${(report.budgetMs / 1000).toFixed(0)} s (ended by ${report.stoppedBy}); validation: ${report.validation.users} users`,
    `${'trial'.padStart(5)} ${'status'.padEnd(13)} ${'epochs'.padStart(6)} ${'ndcg@10'.padStart(8)} ${'hr@10'.padStart(7)} ${'train'.padStart(8)} ${'eval'.padStart(7)}  params`,
  ];
  for (const t of report.trials) {
    const r = t.results.at(-1);
    const mark = t.trial === report.chosen.trial ? '*' : ' ';
    const params = Object.keys(t.params).length === 0 ? '(defaults)' : JSON.stringify(t.params);
    lines.push(
      `${mark}${String(t.trial).padStart(4)} ${t.status.padEnd(13)} ${String(r?.epochs ?? '-').padStart(6)} ${(r ? r.ndcg10.toFixed(4) : '-').padStart(8)} ${(r ? r.hr10.toFixed(4) : '-').padStart(7)} ${(r ? `${(t.results.reduce((a, x) => a + x.trainMs, 0) / 1000).toFixed(1)} s` : '-').padStart(8)} ${(r ? `${(t.results.reduce((a, x) => a + x.evaluateMs, 0) / 1000).toFixed(1)} s` : '-').padStart(7)}  ${params}${t.error ? ` error: ${t.error}` : ''}`,
    );
  }
  const c = report.chosen;
  lines.push(c.ndcg10 === null ? `chosen: none (${report.fallback ?? 'no trial finished'}): ${JSON.stringify(c.params)}` : `chosen: trial ${c.trial}${c.epochs !== undefined ? `, ${c.epochs} epochs` : ''}, validation NDCG@10 ${c.ndcg10.toFixed(4)}: ${JSON.stringify(c.params)}`);
  return lines;
}
