/**
 * bench/auto: the `auto` recipe and hrnn-metadata's feature choice (src/training/auto.ts) beside the
 * single recipes, chronological leave-one-out with full ranking, the seen-items rule `auto`, on the
 * synthetic set (with its items file: CATEGORY and PRICE drawn at random, i.e. noise) and on
 * ../shared/datasets when present (Amazon: the rating column is event context; Diginetica: user_id
 * and timeframe are). Every choice is made on a validation split of the train part only.
 *
 *   npx tsx bench/auto.ts      STREAMREC_BENCH_SEEDS=1,2 (hrnn's seed; default 1,2)
 *   STREAMREC_BENCH_DATASETS=name,...  STREAMREC_BENCH_RUNS=hrnn,auto,... (by name; default all)
 *   STREAMREC_BENCH_PARAMS='{"epochs":5}' (hrnn parameters)
 *
 * Prints one JSON object (the last line of stdout): per dataset, recipe and seed NDCG@10 and HR@10,
 * training time (choices included), and what auto / features auto chose.
 *
 * STREAMREC_BENCH_COLDSTART=1 instead: whether hrnn-coldstart belongs among auto's candidates. On the
 * synthetic set with a fifth of the items created when the events start (young for the whole
 * period, so exploration has items to show) and the rest a year before, the validation NDCG@10 of
 * hrnn-metadata and hrnn-coldstart (both features all) on the same validation split, per seed.
 */
import { existsSync } from 'node:fs';
import { syntheticInteractions, syntheticItems } from '../src/data/synthetic.js';
import type { TrainingMetadata } from '../src/recipes/types.js';
import type { InteractionFields } from '../src/state/apply.js';
import { loadInteractions } from '../src/training/data.js';
import { leaveOneOutSplit } from '../src/training/split.js';
import { trainAndEvaluate } from '../src/training/train.js';
import { recipeNamed } from '../src/training/recipes.js';
import { validationScore, validationSplit } from '../src/training/validation.js';
import { sharedSets } from './datasets.js';

const log = (msg: string) => process.stderr.write(`[bench:auto] ${msg}\n`);
const SEEDS = (process.env.STREAMREC_BENCH_SEEDS ?? '1,2').split(',').map(Number);
const ONLY = process.env.STREAMREC_BENCH_DATASETS?.split(',');
const ONLY_RUNS = process.env.STREAMREC_BENCH_RUNS?.split(',');
const PARAMS = JSON.parse(process.env.STREAMREC_BENCH_PARAMS ?? '{}') as Record<string, unknown>;

const RUNS: { name: string; recipe: string; params?: Record<string, unknown>; hrnn: boolean }[] = [
  { name: 'popularity-count', recipe: 'popularity-count', hrnn: false },
  { name: 'sims', recipe: 'sims', hrnn: false },
  { name: 'hrnn', recipe: 'hrnn', hrnn: true },
  { name: 'hrnn-metadata (features all)', recipe: 'hrnn-metadata', params: { features: 'all' }, hrnn: true },
  { name: 'hrnn-metadata (features auto)', recipe: 'hrnn-metadata', params: { features: 'auto' }, hrnn: true },
  { name: 'auto', recipe: 'auto', hrnn: true },
];

const round = (x: number) => Math.round(x * 10_000) / 10_000;

async function coldstart(): Promise<void> {
  const synth = { seed: 11, users: 1000, items: 1500, events: 20_000 };
  const rows = [...syntheticInteractions(synth)];
  const start = rows[0]!.TIMESTAMP;
  const items = [...syntheticItems({ seed: synth.seed, items: synth.items })].map((it, k) => ({ ...it, CREATION_TIMESTAMP: k % 5 === 0 ? start : start - 365 * 86_400_000 }));
  const split = validationSplit(leaveOneOutSplit(rows).train);
  const ctx = { split, catalogueSize: new Set(rows.map((e) => e.ITEM_ID)).size, excludeSeen: false, metadata: { items } };
  const out: Record<string, unknown>[] = [];
  for (const seed of SEEDS) {
    for (const recipe of ['hrnn-metadata', 'hrnn-coldstart']) {
      const v = await validationScore(recipeNamed(recipe), { ...PARAMS, features: 'all', seed, workers: 1 }, ctx);
      out.push({ recipe, seed, validation_ndcg_at_10: round(v.ndcg10), validation_hit_at_10: round(v.hr10), train_ms: v.trainMs });
      log(`coldstart check seed ${seed} ${recipe}: validation NDCG@10 ${round(v.ndcg10)} HR@10 ${round(v.hr10)}`);
    }
  }
  process.stdout.write(`${JSON.stringify({ bench: 'auto-coldstart', validationUsers: split.tests.length, rows: out })}\n`);
}

async function main(): Promise<void> {
  if (process.env.STREAMREC_BENCH_COLDSTART === '1') return coldstart();
  const datasets: { name: string; rows: InteractionFields[]; metadata: TrainingMetadata }[] = [];
  const synth = { seed: 11, users: 1000, items: 1500, events: 20_000 };
  datasets.push({ name: 'synthetic', rows: [...syntheticInteractions(synth)], metadata: { items: [...syntheticItems({ seed: synth.seed, items: synth.items })] } });
  for (const s of sharedSets) {
    if (!existsSync(s.spec.file)) {
      log(`${s.name}: not present, skipped`);
      continue;
    }
    datasets.push({ name: s.name, rows: (await loadInteractions(s.spec)).rows, metadata: {} });
  }
  const out: Record<string, unknown>[] = [];
  for (const d of datasets.filter((x) => !ONLY || ONLY.includes(x.name))) {
    for (const run of RUNS.filter((r) => !ONLY_RUNS || ONLY_RUNS.includes(r.name))) {
      for (const seed of run.hrnn ? SEEDS : [SEEDS[0]!]) {
        const t0 = performance.now();
        const { report } = await trainAndEvaluate(d.rows, {
          recipe: run.recipe,
          split: 'loo',
          final: false,
          metadata: d.metadata,
          ...(run.hrnn ? { params: { ...PARAMS, ...run.params, seed, workers: 1 } } : {}),
        });
        const row = {
          dataset: d.name,
          run: run.name,
          seed: run.hrnn ? seed : null,
          ndcg_at_10: round(report.metrics.normalized_discounted_cumulative_gain_at_10),
          hit_at_10: round(report.metrics.hit_at_10),
          test_users: report.testUsers,
          ms: Math.round(performance.now() - t0),
          ...(report.auto ? { auto_chose: report.recipe, auto_table: report.auto.table, auto_reason: report.auto.reason } : {}),
          ...(report.features ? { features_used: report.features.used, features_table: report.features.table ?? null, features_reason: report.features.reason } : {}),
        };
        out.push(row);
        log(JSON.stringify(row));
        log(`${d.name} ${run.name} seed ${row.seed}: NDCG@10 ${row.ndcg_at_10} HR@10 ${row.hit_at_10} (${row.ms} ms)${row.auto_chose ? ` auto chose ${row.auto_chose} ${JSON.stringify((report.auto!.params as { features?: unknown }).features ?? '')}` : ''}${row.features_used ? ` features ${JSON.stringify(row.features_used)}` : ''}`);
      }
    }
  }
  process.stdout.write(`${JSON.stringify({ bench: 'auto', seeds: SEEDS, params: PARAMS, rows: out })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
