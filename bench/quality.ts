/**
 * bench/quality: issue 16's table. For each dataset (a seeded synthetic set with its generator's item
 * metadata, ../shared/datasets when present, and the public sets of bench/datasets.ts' externalSets
 * when fetched: ml-100k by `bash bench/fetch-ml100k.sh`), chronological leave-one-out with full
 * ranking (src/training/split.ts; the seen-items rule as `streamrec train` picks it), NDCG@10 and
 * HR@10 of
 *   popularity-count and sims (deterministic: one run each),
 *   hrnn with its defaults, hrnn with HPO (budget below), hrnn-metadata (its defaults: features
 *   chosen on validation) and `auto` (the recipe chosen on validation),
 * each hrnn-based row over STREAMREC_BENCH_SEEDS (default 1,2,3): median, min and max, every seed's
 * value beside. The choices (HPO, auto, features) only ever see a validation split carved from the
 * training part (src/training/validation.ts), never the test users reported here.
 *
 * Checks printed with the table: `auto` against the best single recipe's median (its defaults;
 * within the seed noise: the largest seed range among those rows), hrnn-metadata against hrnn.
 *
 *   npm run bench:quality
 * STREAMREC_BENCH_SEEDS=1,2,3; STREAMREC_BENCH_DATASETS=name,...; STREAMREC_BENCH_HPO_BUDGET=2m
 * (per HPO run; anything `streamrec train --budget` takes); STREAMREC_BENCH_QUICK=1: a small
 * synthetic set, 2 epochs, a 20 s budget, one seed (a smoke run, not figures);
 * STREAMREC_BENCH_MERGE=a.json,b.json: one table from runs on other seeds (see merge());
 * STREAMREC_BENCH_SYNTHETIC=events,items,users: another size of synthetic set; STREAMREC_BENCH_RECIPES=
 * hrnn,sims,...: only these rows (the checks need popularity-count, sims, hrnn, hrnn-metadata, auto).
 * A row whose training fails with an AppError (HPO: no trial finished within the budget) is listed
 * under `failures` and the run goes on.
 */
import { existsSync, readFileSync } from 'node:fs';
import ms from 'ms';
import { syntheticInteractions, syntheticItems } from '../src/data/synthetic.js';
import type { TrainingMetadata } from '../src/recipes/types.js';
import type { InteractionFields } from '../src/state/apply.js';
import { loadInteractions, loadTrainingMetadata } from '../src/training/data.js';
import { AppError } from '../src/errors/index.js';
import { trainAndEvaluate, type TrainReport } from '../src/training/train.js';
import { externalSets, sharedSets } from './datasets.js';

const log = (msg: string) => process.stderr.write(`[bench:quality] ${msg}\n`);
const QUICK = process.env.STREAMREC_BENCH_QUICK === '1';
const SEEDS = (process.env.STREAMREC_BENCH_SEEDS ?? (QUICK ? '1' : '1,2,3')).split(',').map(Number);
const ONLY = process.env.STREAMREC_BENCH_DATASETS?.split(',');
const BUDGET = process.env.STREAMREC_BENCH_HPO_BUDGET ?? (QUICK ? '20s' : '2m');
const BUDGET_MS = ms(BUDGET as ms.StringValue);
if (typeof BUDGET_MS !== 'number' || !(BUDGET_MS > 0)) throw new Error(`STREAMREC_BENCH_HPO_BUDGET: not a duration (20m, 90s): ${BUDGET}`);
const EPOCHS: Record<string, unknown> = QUICK ? { epochs: 2 } : {};
const SIZE = process.env.STREAMREC_BENCH_SYNTHETIC?.split(',').map(Number);
if (SIZE && (SIZE.length !== 3 || SIZE.some((n) => !(Number.isInteger(n) && n > 0)))) throw new Error(`STREAMREC_BENCH_SYNTHETIC: events,items,users (three positive integers), got ${process.env.STREAMREC_BENCH_SYNTHETIC}`);
const SYNTHETIC = SIZE ? { seed: 11, events: SIZE[0]!, items: SIZE[1]!, users: SIZE[2]! } : QUICK ? { seed: 11, events: 12_000, items: 800, users: 500 } : { seed: 11, events: 40_000, items: 3_000, users: 1_500 };
const RECIPES_ONLY = process.env.STREAMREC_BENCH_RECIPES?.split(',');

interface Stat {
  median: number;
  min: number;
  max: number;
  by_seed: Record<string, number>;
}

interface Row {
  dataset: string;
  recipe: string;
  test_users: number;
  ndcg_at_10: Stat;
  hit_at_10: Stat;
  train_ms_median: number;
  /** auto: the recipe chosen per seed; hpo: the chosen parameters per seed; hrnn-metadata: the features used. */
  chosen?: Record<string, unknown>;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const stat = (bySeed: Map<number, number>): Stat => {
  const v = [...bySeed.values()];
  return { median: round(median(v)), min: round(Math.min(...v)), max: round(Math.max(...v)), by_seed: Object.fromEntries([...bySeed].map(([s, x]) => [String(s), round(x)])) };
};

type Variant = { name: string; seeded: boolean; options: (seed: number) => Parameters<typeof trainAndEvaluate>[1]; chosen?: (r: TrainReport) => unknown };

const VARIANTS: Variant[] = [
  { name: 'popularity-count', seeded: false, options: () => ({ recipe: 'popularity-count' }) },
  { name: 'sims', seeded: false, options: () => ({ recipe: 'sims' }) },
  { name: 'hrnn', seeded: true, options: (seed) => ({ recipe: 'hrnn', params: { ...EPOCHS, seed } }) },
  {
    name: 'hrnn+hpo',
    seeded: true,
    options: (seed) => ({ recipe: 'hrnn', params: { ...EPOCHS, seed }, hpo: { budgetMs: BUDGET_MS, seed } }),
    chosen: (r) => r.hpo?.chosen.params,
  },
  { name: 'hrnn-metadata', seeded: true, options: (seed) => ({ recipe: 'hrnn-metadata', params: { ...EPOCHS, seed } }), chosen: (r) => r.features?.used },
  { name: 'auto', seeded: true, options: (seed) => ({ recipe: 'auto', params: { ...EPOCHS, seed } }), chosen: (r) => r.auto?.recipe },
];

interface Dataset {
  name: string;
  rows: InteractionFields[];
  /** Item / user metadata for hrnn-metadata and auto (the synthetic set: the generator's catalogue, CATEGORY and PRICE). */
  metadata?: TrainingMetadata;
}

async function datasets(): Promise<Dataset[]> {
  const out: Dataset[] = [{ name: 'synthetic', rows: [...syntheticInteractions(SYNTHETIC)], metadata: { items: [...syntheticItems({ seed: SYNTHETIC.seed, items: SYNTHETIC.items })] } }];
  for (const s of sharedSets) {
    if (!existsSync(s.spec.file)) {
      log(`${s.name}: not present (${s.spec.file}), skipped`);
      continue;
    }
    out.push({ name: s.name, rows: (await loadInteractions(s.spec)).rows });
  }
  for (const s of externalSets) {
    if (!existsSync(s.spec.file)) {
      log(`${s.name}: not present (${s.spec.file}), skipped (fetched by: ${s.fetch})`);
      continue;
    }
    out.push({ name: s.name, rows: (await loadInteractions(s.spec)).rows, metadata: await loadTrainingMetadata(s.spec) });
  }
  return out.filter((d) => !ONLY || ONLY.includes(d.name));
}

/**
 * STREAMREC_BENCH_MERGE=a.json,b.json,...: one table from runs of this bench on other seeds (e.g.
 * one process per seed, run side by side), each file its stdout. Seeded rows join their seeds'
 * values; a deterministic row (popularity-count, sims) is the first file's; train_ms_median is the
 * median of the files' medians (each a single seed's time when each file ran one seed).
 */
function merge(files: string[]): void {
  const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8').trim().split('\n').pop()!) as { seeds: number[]; hpo_budget: string; quick: boolean; synthetic: unknown; minutes: number; rows: Row[]; failures?: unknown[] });
  // The budget of the runs that have an hrnn+hpo row (a run whose HPO failed lists it under failures).
  const budgets = new Set(runs.filter((r) => r.rows.some((x) => x.recipe === 'hrnn+hpo')).map((r) => r.hpo_budget));
  if (budgets.size > 1 || new Set(runs.map((r) => r.quick)).size > 1) throw new Error(`STREAMREC_BENCH_MERGE: the runs differ in hpo_budget or quick (${[...budgets].join(', ')})`);
  const rows: Row[] = [];
  const checks: Record<string, unknown>[] = [];
  const datasetNames = [...new Set(runs.flatMap((r) => r.rows.map((x) => x.dataset)))];
  for (const dataset of datasetNames) {
    const byName = new Map<string, Row>();
    for (const v of VARIANTS) {
      const parts = runs.flatMap((r) => r.rows.filter((x) => x.dataset === dataset && x.recipe === v.name));
      if (parts.length === 0) continue;
      const used = v.seeded ? parts : parts.slice(0, 1);
      const joined = (k: 'ndcg_at_10' | 'hit_at_10') => stat(new Map(used.flatMap((x) => Object.entries(x[k].by_seed)).map(([seed, y]) => [Number(seed), y])));
      const chosen = v.chosen ? Object.assign({}, ...used.map((x) => x.chosen ?? {})) : undefined;
      const row: Row = { dataset, recipe: v.name, test_users: used[0]!.test_users, ndcg_at_10: joined('ndcg_at_10'), hit_at_10: joined('hit_at_10'), train_ms_median: Math.round(median(used.map((x) => x.train_ms_median))), ...(chosen ? { chosen } : {}) };
      rows.push(row);
      byName.set(v.name, row);
    }
    checks.push(check(dataset, byName));
  }
  const seeds = [...new Set(runs.flatMap((r) => r.seeds))].sort((a, b) => a - b);
  process.stdout.write(`${JSON.stringify({ bench: 'quality', split: 'loo', seeds, hpo_budget: [...budgets][0] ?? runs[0]!.hpo_budget, quick: runs[0]!.quick, synthetic: runs[0]!.synthetic, merged_from: files, minutes: round(Math.max(...runs.map((r) => r.minutes))), rows, checks, ...(runs.some((r) => r.failures) ? { failures: runs.flatMap((r) => r.failures ?? []) } : {}) })}\n`);
}

async function main(): Promise<void> {
  const MERGE = process.env.STREAMREC_BENCH_MERGE?.split(',');
  if (MERGE) return merge(MERGE);
  const rows: Row[] = [];
  const checks: Record<string, unknown>[] = [];
  const failures: { dataset: string; recipe: string; seed: number; error: string }[] = [];
  const t00 = performance.now();
  for (const d of await datasets()) {
    const byName = new Map<string, Row>();
    for (const v of VARIANTS.filter((x) => !RECIPES_ONLY || RECIPES_ONLY.includes(x.name))) {
      const ndcg = new Map<number, number>();
      const hit = new Map<number, number>();
      const times: number[] = [];
      const chosen: Record<string, unknown> = {};
      let testUsers = 0;
      for (const seed of v.seeded ? SEEDS : [SEEDS[0]!]) {
        const run = await trainAndEvaluate(d.rows, { split: 'loo', final: false, ...(d.metadata ? { metadata: d.metadata } : {}), ...v.options(seed) }).catch((err: unknown) => {
          // e.g. HPO: no trial finished within the budget (a loaded machine); recorded, the other rows go on.
          if (!(err instanceof AppError)) throw err;
          failures.push({ dataset: d.name, recipe: v.name, seed, error: err.message });
          log(`${d.name} ${v.name} seed ${seed}: failed: ${err.message}`);
          return undefined;
        });
        if (!run) continue;
        const { report } = run;
        ndcg.set(seed, report.metrics.normalized_discounted_cumulative_gain_at_10);
        hit.set(seed, report.metrics.hit_at_10);
        times.push(report.trainMs);
        testUsers = report.testUsers;
        if (v.chosen) chosen[String(seed)] = v.chosen(report);
        if (report.hpo) {
          const h = report.hpo;
          const defaults = h.trials[0]?.results.at(-1);
          log(`${d.name} ${v.name} seed ${seed}: HPO ${h.trials.length} trials in ${Math.round(h.usedMs / 1000)} s, validation NDCG@10 (${h.validation.users} users): defaults ${defaults ? round(defaults.ndcg10) : 'not finished'}, chosen ${h.chosen.ndcg10 === null ? `none (${h.fallback ?? 'no trial finished'})` : `(trial ${h.chosen.trial}) ${round(h.chosen.ndcg10)}`}`);
        }
        if (report.features?.table) log(`${d.name} ${v.name} seed ${seed}: features ${JSON.stringify(report.features.used)} of ${JSON.stringify(report.features.groups.map((g) => g.name))}, validation ${JSON.stringify(report.features.table)}`);
        log(`${d.name} ${v.name} seed ${seed}: NDCG@10 ${round(report.metrics.normalized_discounted_cumulative_gain_at_10)}, HR@10 ${round(report.metrics.hit_at_10)}, train ${report.trainMs} ms`);
      }
      if (ndcg.size === 0) continue;
      const row: Row = { dataset: d.name, recipe: v.name, test_users: testUsers, ndcg_at_10: stat(ndcg), hit_at_10: stat(hit), train_ms_median: Math.round(median(times)), ...(v.chosen ? { chosen } : {}) };
      rows.push(row);
      byName.set(v.name, row);
    }
    checks.push(check(d.name, byName));
  }
  process.stdout.write(`${JSON.stringify({ bench: 'quality', split: 'loo', seeds: SEEDS, hpo_budget: BUDGET, quick: QUICK, synthetic: SYNTHETIC, minutes: round((performance.now() - t00) / 60_000), rows, checks, ...(failures.length ? { failures } : {}) })}\n`);
}

/**
 * auto against the best single recipe with its defaults (within the seed noise; auto chooses among
 * them and searches no parameters, so hrnn+hpo is beside it, not in it), hrnn-metadata against hrnn.
 */
function check(dataset: string, r: Map<string, Row>): Record<string, unknown> {
  const missing = ['popularity-count', 'sims', 'hrnn', 'hrnn-metadata', 'auto'].filter((n) => !r.has(n));
  if (missing.length > 0) return { dataset, not_checked: `rows missing: ${missing.join(', ')}` };
  const singles = ['popularity-count', 'sims', 'hrnn', 'hrnn-metadata'].map((n) => r.get(n)!);
  const best = singles.reduce((a, b) => (b.ndcg_at_10.median > a.ndcg_at_10.median ? b : a));
  const noise = Math.max(...singles.map((s) => s.ndcg_at_10.max - s.ndcg_at_10.min));
  const auto = r.get('auto')!.ndcg_at_10.median;
  const meta = r.get('hrnn-metadata')!.ndcg_at_10.median;
  const plain = r.get('hrnn')!.ndcg_at_10.median;
  return {
    dataset,
    best_single: best.recipe,
    best_single_median: best.ndcg_at_10.median,
    auto_median: auto,
    seed_noise: round(noise),
    auto_within_noise: auto >= best.ndcg_at_10.median - noise,
    metadata_not_below_hrnn: meta >= plain,
  };
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
