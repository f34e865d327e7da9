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
 * STREAMREC_BENCH_EVENTS, STREAMREC_BENCH_ITEMS, STREAMREC_BENCH_USERS: the synthetic set's size
 * (default 40,000 events, 3,000 items, 1,500 users; quick: 12,000 / 800 / 500).
 *
 * 3. Training throughput (STREAMREC_BENCH_THROUGHPUT=1, instead of 1 and 2): hrnn trained on the
 *    whole synthetic set (default 500,000 events over 3,700 items and 3,030 users: ML-1M's shape,
 *    the issue's set; the size variables above override it), STREAMREC_BENCH_RUNS times (3) for each
 *    worker count in STREAMREC_BENCH_WORKERS (1,2), STREAMREC_BENCH_EPOCHS epochs (the recipe's 10),
 *    the recipe's defaults otherwise (seed 42 + run). STREAMREC_BENCH_TARGETS=n stops each run after
 *    about n targets (a steady-state speed without waiting for 10 epochs of 500k events). Events
 *    per second is the training's own figure, as in 1: the targets trained on (every event of every
 *    user, once per epoch) over the training's wall time (worker start included, encoding not).
 *    Beside it, targets per CPU second of the process (all threads, user + system): on a shared
 *    machine the wall-clock figure moves with the other load, this one much less. Median, min and
 *    max over the runs.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticInteractions } from '../src/data/synthetic.js';
import { initBackend } from '../src/model/backend.js';
import { topK, type HrnnState } from '../src/model/hrnn-math.js';
import { hrnn, hrnnParams, type HrnnModel } from '../src/recipes/hrnn.js';
import { trainHrnnParallel } from '../src/model/hrnn-parallel.js';
import { encode, trainHrnn } from '../src/model/hrnn-train.js';
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
/** STREAMREC_BENCH_PARAMS='{"batchSize":128}': hrnn parameters over the recipe's defaults (offline and online parts). */
const PARAMS: Record<string, unknown> = { ...(QUICK ? { epochs: 2 } : {}), ...benchParams() };

function benchParams(): Record<string, unknown> {
  const raw = process.env.STREAMREC_BENCH_PARAMS;
  if (!raw) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new Error(`STREAMREC_BENCH_PARAMS: not JSON (${(err as Error).message}): ${raw}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`STREAMREC_BENCH_PARAMS: expected a JSON object of hrnn parameters, got ${raw}`);
  return v as Record<string, unknown>;
}
const SEEDS = (process.env.STREAMREC_BENCH_SEEDS ?? '42').split(',').map(Number);
const ONLY = process.env.STREAMREC_BENCH_DATASETS?.split(',');
const ONLINE = process.env.STREAMREC_BENCH_ONLINE !== '0';
const THROUGHPUT = process.env.STREAMREC_BENCH_THROUGHPUT === '1';

/** A positive integer from the environment, or a clear error naming the variable. */
function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

function envInts(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  return raw.split(',').map((part) => {
    const n = Number(part);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected positive integers separated by commas, got ${JSON.stringify(raw)}`);
    return n;
  });
}

const SYNTHETIC_DEFAULT = THROUGHPUT ? { events: 500_000, items: 3_700, users: 3_030 } : QUICK ? { events: 12_000, items: 800, users: 500 } : { events: 40_000, items: 3_000, users: 1_500 };
const SYNTHETIC = {
  seed: 11,
  events: envInt('STREAMREC_BENCH_EVENTS', SYNTHETIC_DEFAULT.events),
  items: envInt('STREAMREC_BENCH_ITEMS', SYNTHETIC_DEFAULT.items),
  users: envInt('STREAMREC_BENCH_USERS', SYNTHETIC_DEFAULT.users),
};


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

interface ThroughputRow {
  workers: number;
  epochs: number;
  /** STREAMREC_BENCH_TARGETS (null: all epochs), and the targets each run trained on. */
  targets_limit: number | null;
  targets_by_run: number[];
  /** Training events per second of each run, then their median, min and max. */
  events_per_s_by_run: number[];
  events_per_s_median: number;
  events_per_s_min: number;
  events_per_s_max: number;
  train_ms_by_run: number[];
  final_loss_by_run: number[];
  /** Targets per CPU second of the process (all threads). */
  events_per_cpu_s_by_run: number[];
  events_per_cpu_s_median: number;
}

/** hrnn trained on the whole synthetic set, `runs` times per worker count: training events per second. */
async function throughput(rows: InteractionFields[]): Promise<ThroughputRow[]> {
  const workers = envInts('STREAMREC_BENCH_WORKERS', [1, 2]);
  const runs = envInt('STREAMREC_BENCH_RUNS', 3);
  const epochs = envInt('STREAMREC_BENCH_EPOCHS', QUICK ? 2 : 10);
  const limit = process.env.STREAMREC_BENCH_TARGETS ? envInt('STREAMREC_BENCH_TARGETS', 1) : undefined;
  const backend = await initBackend();
  const out: ThroughputRow[] = [];
  for (const w of workers) {
    const eps: number[] = [];
    const cpuEps: number[] = [];
    const ms: number[] = [];
    const loss: number[] = [];
    const done: number[] = [];
    for (let r = 0; r < runs; r++) {
      // The recipe's path (src/recipes/hrnn.ts), with a target limit it has no parameter for.
      const p = hrnnParams({ ...PARAMS, epochs, workers: w, seed: 42 + r });
      const data = encode(rows, p.sessionTimeoutMs);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      let targets = 0;
      const onProgress = (x: { done: number }) => (targets = x.done);
      const t = w > 1 ? await trainHrnnParallel(data, p, w, backend, onProgress, limit) : trainHrnn(data, p, onProgress, limit);
      const cpu = process.cpuUsage(cpu0);
      ms.push(Math.round(performance.now() - t0));
      done.push(targets);
      eps.push(Math.round(t.eventsPerSecond));
      cpuEps.push(Math.round(targets / ((cpu.user + cpu.system) / 1e6)));
      loss.push(round(t.lossByEpoch.at(-1) ?? 0));
      log(`throughput workers=${w} run ${r + 1}/${runs}: ${eps.at(-1)} events/s (${cpuEps.at(-1)} per CPU second), ${targets} targets in ${ms.at(-1)} ms, last epoch's loss ${loss.at(-1)}`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
    const sorted = [...eps].sort((a, b) => a - b);
    out.push({
      workers: w,
      epochs,
      targets_limit: limit ?? null,
      targets_by_run: done,
      events_per_s_by_run: eps,
      events_per_s_median: sorted[Math.floor((sorted.length - 1) / 2)]!,
      events_per_s_min: sorted[0]!,
      events_per_s_max: sorted.at(-1)!,
      train_ms_by_run: ms,
      final_loss_by_run: loss,
      events_per_cpu_s_by_run: cpuEps,
      events_per_cpu_s_median: median(cpuEps),
    });
  }
  return out;
}

async function main(): Promise<void> {
  const backend = await initBackend();
  log(`tfjs backend: ${backend}`);
  const syntheticRows = [...syntheticInteractions(SYNTHETIC)];
  if (THROUGHPUT) {
    const items = new Set(syntheticRows.map((r) => r.ITEM_ID)).size;
    const users = new Set(syntheticRows.map((r) => r.USER_ID)).size;
    log(`throughput: synthetic set of ${syntheticRows.length} events, ${items} items, ${users} users (seed ${SYNTHETIC.seed})`);
    const rows = await throughput(syntheticRows);
    const dataset = { name: 'synthetic', seed: SYNTHETIC.seed, events: syntheticRows.length, items, users };
    const eff = hrnnParams(PARAMS);
    process.stdout.write(`${JSON.stringify({ bench: 'train', part: 'throughput', backend, cpus: (await import('node:os')).cpus().length, params: PARAMS, hidden_size: eff.hiddenSize, batch_size: eff.batchSize, negatives: eff.negatives, dataset, throughput: rows })}\n`);
    return;
  }
  const datasets: { name: string; rows: InteractionFields[] }[] = [{ name: 'synthetic', rows: syntheticRows }];
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
  process.stdout.write(`${JSON.stringify({ bench: 'train', backend, quick: QUICK, params: PARAMS, synthetic: SYNTHETIC, cpus: (await import('node:os')).cpus().length, seeds: SEEDS, plot: svg, offline: offlineRows, online: onlineRows })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
