/**
 * bench/train: HRNN against popularity-count and sims, on synthetic data and on ../shared/datasets
 * when present.
 *
 * 1. Offline, chronological leave-one-out, full ranking (src/training/split.ts): NDCG@10, hit@10,
 *    MRR@25 and coverage of hrnn, hrnn-metadata (event types as context), sims and popularity-count, the seen-items rule as `streamrec train` picks it; where
 *    that rule keeps seen items (session data with repeats), the same again with seen items left
 *    out, so a win is not only repeats. Training time and training events per second (hrnn: the
 *    targets trained on, all epochs, over the training wall time).
 * 2. Online (prequential) over a replayed stream: hrnn trained on the first 80% of the events (by
 *    time), then every later event of a user with an earlier event is predicted before it is
 *    applied: by the frozen model (the user's state as of the training data) and with incremental
 *    state updates (one GRU step per replayed event). hit@10 and NDCG@10 (one target per event).
 *
 * Prints one JSON object as the last line of stdout; writes bench/out/train.svg.
 *   npm run bench:train            (STREAMREC_BENCH_QUICK=1: small synthetic set, 2 epochs)
 * STREAMREC_BENCH_SEEDS=1,2,3: each hrnn recipe trained once per seed; NDCG@10 etc. are then the
 * median over the seeds, with each seed's NDCG@10 beside it (the spread is the seed noise).
 * STREAMREC_BENCH_DATASETS=name,...: only those datasets; STREAMREC_BENCH_ONLINE=0: no online part.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticInteractions } from '../src/data/synthetic.js';
import { initBackend } from '../src/model/backend.js';
import { topK, type HrnnState } from '../src/model/hrnn-math.js';
import { hrnn, type HrnnModel } from '../src/recipes/hrnn.js';
import type { InteractionFields } from '../src/state/apply.js';
import { loadInteractions } from '../src/training/data.js';
import { quantileCutoff } from '../src/training/split.js';
import { seenRule, trainAndEvaluate } from '../src/training/train.js';
import { packagePath } from '../src/util/paths.js';
import { groupedBars } from './chart.js';
import { sharedSets } from './datasets.js';

const log = (msg: string) => process.stderr.write(`[bench:train] ${msg}\n`);
const QUICK = process.env.STREAMREC_BENCH_QUICK === '1';
const RECIPES = ['hrnn', 'hrnn-metadata', 'sims', 'popularity-count'] as const;
const PARAMS: Record<string, unknown> = QUICK ? { epochs: 2 } : {};
const SEEDS = (process.env.STREAMREC_BENCH_SEEDS ?? '42').split(',').map(Number);
const ONLY = process.env.STREAMREC_BENCH_DATASETS?.split(',');
const ONLINE = process.env.STREAMREC_BENCH_ONLINE !== '0';


interface OfflineRow {
  dataset: string;
  recipe: string;
  seen: 'include' | 'exclude';
  test_users: number;
  ndcg_at_10: number;
  hit_at_10: number;
  mrr_at_25: number;
  coverage: number;
  train_ms: number;
  train_events_per_s: number | null;
  /** hrnn recipes: NDCG@10 per seed (the row's metrics are the median run's). */
  ndcg_at_10_by_seed?: Record<string, number>;
}

interface OnlineRow {
  dataset: string;
  events: number;
  frozen: { hit_at_10: number; ndcg_at_10: number };
  incremental: { hit_at_10: number; ndcg_at_10: number };
  train_ms: number;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

async function offline(name: string, rows: InteractionFields[], out: OfflineRow[]): Promise<void> {
  const auto = seenRule('auto', rows);
  const rules: ('include' | 'exclude')[] = auto.excludeSeen ? ['exclude'] : ['include', 'exclude'];
  for (const seen of rules) {
    // hrnn-metadata (here: event types as context; the shared datasets have no item metadata) on the first rule only, for time.
    for (const recipe of RECIPES.filter((r) => r !== 'hrnn-metadata' || seen === rules[0])) {
      const t0 = performance.now();
      const runs = [];
      for (const seed of recipe.startsWith('hrnn') ? SEEDS : [42]) {
        runs.push({ seed, ...(await trainAndEvaluate(rows, { recipe, split: 'loo', seen, final: false, ...(recipe.startsWith('hrnn') ? { params: { ...PARAMS, seed } } : {}) })) });
      }
      runs.sort((a, b) => a.report.metrics.normalized_discounted_cumulative_gain_at_10 - b.report.metrics.normalized_discounted_cumulative_gain_at_10);
      const { model, report } = runs[Math.floor((runs.length - 1) / 2)]!;
      const m = report.metrics;
      const eps = recipe.startsWith('hrnn') ? Math.round((model as HrnnModel).training.eventsPerSecond) : null;
      out.push({
        dataset: name,
        recipe,
        seen,
        test_users: report.testUsers,
        ndcg_at_10: round(m.normalized_discounted_cumulative_gain_at_10),
        hit_at_10: round(m.hit_at_10),
        mrr_at_25: round(m.mean_reciprocal_rank_at_25),
        coverage: round(m.coverage),
        train_ms: report.trainMs,
        train_events_per_s: eps,
        ...(runs.length > 1 ? { ndcg_at_10_by_seed: Object.fromEntries(runs.map((r) => [String(r.seed), round(r.report.metrics.normalized_discounted_cumulative_gain_at_10)])) } : {}),
      });
      log(`${name} loo seen=${seen} ${recipe}: NDCG@10 ${round(m.normalized_discounted_cumulative_gain_at_10)}${runs.length > 1 ? ` (median of seeds ${runs.map((r) => `${r.seed}: ${round(r.report.metrics.normalized_discounted_cumulative_gain_at_10)}`).join(', ')})` : ''}, train ${report.trainMs} ms${eps ? `, ${eps} events/s` : ''} (${Math.round(performance.now() - t0)} ms in all)`);
    }
  }
}

/** Prequential evaluation of one hrnn model, frozen against incrementally updated states. */
async function online(name: string, rows: InteractionFields[]): Promise<OnlineRow> {
  const cutoff = quantileCutoff(rows.map((r) => r.TIMESTAMP), 0.8)!;
  const train = rows.filter((r) => r.TIMESTAMP < cutoff);
  const replay = rows.filter((r) => r.TIMESTAMP >= cutoff);
  const excludeSeen = seenRule('auto', rows).excludeSeen;
  const t0 = performance.now();
  const model = await hrnn.train(train, PARAMS);
  const trainMs = Math.round(performance.now() - t0);
  const frozen = new Map<string, HrnnState>();
  const seen = new Map<string, Set<number>>();
  for (const e of train) {
    frozen.set(e.USER_ID, model.state([e], frozen.get(e.USER_ID)));
    const i = model.index.get(e.ITEM_ID);
    if (i !== undefined) (seen.get(e.USER_ID) ?? seen.set(e.USER_ID, new Set()).get(e.USER_ID)!).add(i);
  }
  const live = new Map(frozen);
  const score = { frozen: { hit: 0, ndcg: 0 }, incremental: { hit: 0, ndcg: 0 } };
  let events = 0;
  for (const e of replay) {
    const target = model.index.get(e.ITEM_ID);
    const state = live.get(e.USER_ID);
    if (state !== undefined && target !== undefined) {
      events++;
      const mine = seen.get(e.USER_ID);
      const skip = excludeSeen && mine ? (j: number) => mine.has(j) : undefined;
      for (const [kind, s] of [['frozen', frozen.get(e.USER_ID) ?? model.initialState()], ['incremental', state]] as const) {
        const top = topK(model.scores(s, e.TIMESTAMP), 10, skip);
        const rank = top.indexOf(target);
        if (rank >= 0) {
          score[kind].hit++;
          score[kind].ndcg += 1 / Math.log2(2 + rank);
        }
      }
    }
    if (target !== undefined) {
      live.set(e.USER_ID, model.step(state ?? model.initialState(), e));
      (seen.get(e.USER_ID) ?? seen.set(e.USER_ID, new Set()).get(e.USER_ID)!).add(target);
    }
  }
  const norm = (x: number) => round(events ? x / events : 0);
  const row = {
    dataset: name,
    events,
    frozen: { hit_at_10: norm(score.frozen.hit), ndcg_at_10: norm(score.frozen.ndcg) },
    incremental: { hit_at_10: norm(score.incremental.hit), ndcg_at_10: norm(score.incremental.ndcg) },
    train_ms: trainMs,
  };
  log(`${name} online over ${events} events: frozen NDCG@10 ${row.frozen.ndcg_at_10}, incremental ${row.incremental.ndcg_at_10}`);
  return row;
}

async function main(): Promise<void> {
  const backend = await initBackend();
  log(`tfjs backend: ${backend}`);
  const datasets: { name: string; rows: InteractionFields[] }[] = [
    { name: 'synthetic', rows: [...syntheticInteractions(QUICK ? { seed: 11, users: 500, items: 800, events: 12_000 } : { seed: 11, users: 1500, items: 3000, events: 40_000 })] },
  ];
  for (const s of QUICK ? [] : sharedSets) {
    if (!existsSync(s.spec.file)) {
      log(`${s.name}: not present (${s.spec.file}), skipped`);
      continue;
    }
    datasets.push({ name: s.name, rows: (await loadInteractions(s.spec)).rows });
  }
  const offlineRows: OfflineRow[] = [];
  const onlineRows: OnlineRow[] = [];
  for (const d of datasets.filter((x) => !ONLY || ONLY.includes(x.name))) {
    await offline(d.name, d.rows, offlineRows);
    if (ONLINE) onlineRows.push(await online(d.name, d.rows));
  }
  const outDir = packagePath('bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const svg = join(outDir, 'train.svg');
  writeFileSync(
    svg,
    groupedBars('NDCG@10: leave-one-out by recipe, and online hrnn frozen vs incremental (streamrec bench:train)', [
      ...offlineRows.map((r) => ({ group: `${r.dataset} / loo / seen ${r.seen}`, series: r.recipe, value: r.ndcg_at_10 })),
      ...onlineRows.flatMap((r) => [
        { group: `${r.dataset} / online`, series: 'hrnn frozen', value: r.frozen.ndcg_at_10 },
        { group: `${r.dataset} / online`, series: 'hrnn incremental', value: r.incremental.ndcg_at_10 },
      ]),
    ]),
  );
  log(`plot: ${svg}`);
  process.stdout.write(`${JSON.stringify({ bench: 'train', backend, quick: QUICK, cpus: (await import('node:os')).cpus().length, seeds: SEEDS, plot: svg, offline: offlineRows, online: onlineRows })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
