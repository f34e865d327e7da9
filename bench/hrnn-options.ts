/**
 * bench/hrnn-options: hrnn's training options against each other (issue 16, item 1): named
 * parameter sets (the current defaults, GRU4Rec's published settings for cross-entropy and
 * bpr-max, single changes) trained on each dataset for each seed, chronological leave-one-out with
 * full ranking (the seen-items rule as `streamrec train` picks it), NDCG@10 and HR@10;
 * popularity-count beside them. One JSON line per run on stdout (and appended to
 * bench/out/hrnn-options.jsonl), then a summary line: per dataset and set, the median over the
 * seeds and the range.
 *
 *   npm run bench:options
 * STREAMREC_BENCH_SEEDS=1,2 (default 1,2), STREAMREC_BENCH_DATASETS=name,... (synthetic,
 * amazon-musical-instruments, diginetica-sample), STREAMREC_BENCH_SETS=name,... (default all),
 * STREAMREC_BENCH_EVENTS / _ITEMS / _USERS: the synthetic set's size (20,000 / 2,000 / 1,000, seed 7).
 * Every run uses `workers: 1` (bit-for-bit reproducible for a seed).
 */
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticInteractions } from '../src/data/synthetic.js';
import type { InteractionFields } from '../src/state/apply.js';
import { loadInteractions } from '../src/training/data.js';
import { trainAndEvaluate } from '../src/training/train.js';
import { packagePath } from '../src/util/paths.js';
import { sharedSets } from './datasets.js';

const log = (msg: string) => process.stderr.write(`[bench:options] ${msg}\n`);

/** The parameter sets compared; each over the recipe's defaults. */
export const SETS: Record<string, Record<string, unknown>> = {
  /** The defaults as they are. */
  current: {},
  /** GRU4Rec's cross-entropy files (rees46: lr 0.065, no momentum, embedding dropout 0.45, no hidden dropout, batch 240, alpha 0.5). */
  'xe-rees46': { loss: 'cross-entropy', logq: 1, learningRate: 0.065, momentum: 0, dropoutEmbed: 0.45, dropoutHidden: 0, batchSize: 240, sampleAlpha: 0.5 },
  /** yoochoose: lr 0.07, no momentum, hidden dropout 0.2, batch 48, alpha 0.2. */
  'xe-yoochoose': { loss: 'cross-entropy', logq: 1, learningRate: 0.07, momentum: 0, dropoutEmbed: 0, dropoutHidden: 0.2, batchSize: 48, sampleAlpha: 0.2 },
  /** GRU4Rec's bpr-max file for diginetica (elu 1, batch 128, dropouts 0.5 / 0.3, momentum 0.15, alpha 0.3, bpreg 0.9). */
  'bprmax-diginetica': { loss: 'bpr-max', finalAct: 'elu-1', batchSize: 128, dropoutEmbed: 0.5, dropoutHidden: 0.3, learningRate: 0.05, momentum: 0.15, sampleAlpha: 0.3, bpreg: 0.9 },
  /** retailrocket (elu 0.5, batch 80, dropouts 0.5 / 0.05, momentum 0.4, alpha 0.4, bpreg 1.95). */
  'bprmax-retailrocket': { loss: 'bpr-max', finalAct: 'elu-0.5', batchSize: 80, dropoutEmbed: 0.5, dropoutHidden: 0.05, learningRate: 0.05, momentum: 0.4, sampleAlpha: 0.4, bpreg: 1.95 },
  /** bprmax-diginetica without the final activation: what elu-1 adds to bpr-max. */
  'bprmax-diginetica-linear': { loss: 'bpr-max', finalAct: 'linear', batchSize: 128, dropoutEmbed: 0.5, dropoutHidden: 0.3, learningRate: 0.05, momentum: 0.15, sampleAlpha: 0.3, bpreg: 0.9 },
  /** Single changes to the current defaults. */
  'current+dropoutEmbed0.3': { dropoutEmbed: 0.3 },
  'current+momentum0': { momentum: 0 },
  'current+tanh': { finalAct: 'tanh' },
};

const SEEDS = (process.env.STREAMREC_BENCH_SEEDS ?? '1,2').split(',').map(Number);
const ONLY = process.env.STREAMREC_BENCH_DATASETS?.split(',');
const ONLY_SETS = process.env.STREAMREC_BENCH_SETS?.split(',');
const envInt = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SYNTHETIC = { seed: 7, events: envInt('STREAMREC_BENCH_EVENTS', 20_000), items: envInt('STREAMREC_BENCH_ITEMS', 2_000), users: envInt('STREAMREC_BENCH_USERS', 1_000) };
const round = (x: number) => Math.round(x * 10_000) / 10_000;

interface Run {
  dataset: string;
  set: string;
  seed: number | null;
  ndcg_at_10: number;
  hit_at_10: number;
  train_ms: number;
}

async function main(): Promise<void> {
  for (const s of ONLY_SETS ?? []) if (!SETS[s]) throw new Error(`STREAMREC_BENCH_SETS: unknown set ${s}; known: ${Object.keys(SETS).join(', ')}`);
  const datasets: { name: string; rows: InteractionFields[] }[] = [];
  if (!ONLY || ONLY.includes('synthetic')) datasets.push({ name: 'synthetic', rows: [...syntheticInteractions(SYNTHETIC)] });
  for (const s of sharedSets) {
    if (ONLY && !ONLY.includes(s.name)) continue;
    if (!existsSync(s.spec.file)) {
      log(`${s.name}: not present, skipped`);
      continue;
    }
    datasets.push({ name: s.name, rows: (await loadInteractions(s.spec)).rows });
  }
  const outDir = packagePath('bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, 'hrnn-options.jsonl');
  const runs: Run[] = [];
  const emit = (r: Run) => {
    runs.push(r);
    const line = JSON.stringify({ bench: 'hrnn-options', ...r });
    process.stdout.write(`${line}\n`);
    appendFileSync(file, `${line}\n`);
  };
  for (const d of datasets) {
    const pop = await trainAndEvaluate(d.rows, { recipe: 'popularity-count', split: 'loo', final: false });
    emit({ dataset: d.name, set: 'popularity-count', seed: null, ndcg_at_10: round(pop.report.metrics.normalized_discounted_cumulative_gain_at_10), hit_at_10: round(pop.report.metrics.hit_at_10), train_ms: pop.report.trainMs });
    for (const [set, params] of Object.entries(SETS)) {
      if (ONLY_SETS && !ONLY_SETS.includes(set)) continue;
      for (const seed of SEEDS) {
        const { report } = await trainAndEvaluate(d.rows, { recipe: 'hrnn', split: 'loo', final: false, params: { ...params, seed, workers: 1 } });
        const m = report.metrics;
        emit({ dataset: d.name, set, seed, ndcg_at_10: round(m.normalized_discounted_cumulative_gain_at_10), hit_at_10: round(m.hit_at_10), train_ms: report.trainMs });
        log(`${d.name} ${set} seed ${seed}: NDCG@10 ${round(m.normalized_discounted_cumulative_gain_at_10)} HR@10 ${round(m.hit_at_10)} (${report.trainMs} ms)`);
      }
    }
  }
  const summary: Record<string, Record<string, { ndcg_at_10: number; ndcg_range: [number, number]; hit_at_10: number }>> = {};
  for (const r of runs) {
    const same = runs.filter((x) => x.dataset === r.dataset && x.set === r.set);
    const median = (xs: number[]) => {
      const s = xs.slice().sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const n = same.map((x) => x.ndcg_at_10);
    (summary[r.dataset] ??= {})[r.set] = { ndcg_at_10: round(median(n)), ndcg_range: [Math.min(...n), Math.max(...n)], hit_at_10: round(median(same.map((x) => x.hit_at_10))) };
  }
  process.stdout.write(`${JSON.stringify({ bench: 'hrnn-options', seeds: SEEDS, synthetic: SYNTHETIC, summary })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
