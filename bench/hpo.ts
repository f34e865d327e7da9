/**
 * bench/hpo: on the shared datasets (leave-one-out, full ranking), hrnn with its defaults beside hrnn
 * with a hyperparameter search (STREAMREC_BENCH_HPO_BUDGET, default 5m), sims with its defaults and
 * with a search (STREAMREC_BENCH_SIMS_BUDGET, default 1m), and popularity-count. NDCG@10 and HR@10
 * on the reported test split; the search sees the split's train part only. Prints one JSON table
 * (the last line of stdout). STREAMREC_BENCH_DATASETS (names, `synthetic`: 60k generated events,
 * where hrnn trains on both cores), STREAMREC_BENCH_RUNS (run names) select; STREAMREC_BENCH_HPO_PARALLEL
 * sets the trials at a time; STREAMREC_BENCH_HPO_OUT: a file for the whole search reports.
 *
 *   npm run bench:hpo
 */
import { existsSync, writeFileSync } from 'node:fs';
import { syntheticInteractions } from '../src/data/synthetic.js';
import type { InteractionFields } from '../src/state/apply.js';
import { loadInteractions } from '../src/training/data.js';
import { parseBudget, type HpoReport } from '../src/training/hpo.js';
import { trainAndEvaluate } from '../src/training/train.js';
import { sharedSets } from './datasets.js';

const log = (msg: string) => process.stderr.write(`[bench:hpo] ${msg}\n`);
const hrnnBudget = parseBudget(process.env.STREAMREC_BENCH_HPO_BUDGET ?? '5m', 'STREAMREC_BENCH_HPO_BUDGET');
const simsBudget = parseBudget(process.env.STREAMREC_BENCH_SIMS_BUDGET ?? '1m', 'STREAMREC_BENCH_SIMS_BUDGET');
const only = process.env.STREAMREC_BENCH_DATASETS?.split(',');
const onlyRuns = process.env.STREAMREC_BENCH_RUNS?.split(',');
const parallel = Number(process.env.STREAMREC_BENCH_HPO_PARALLEL ?? 1);

interface Row {
  dataset: string;
  run: string;
  ndcg_at_10: number;
  hr_at_10: number;
  popularity_ndcg_at_10: number;
  budget_s?: number;
  used_s?: number;
  trials?: number;
  validation_ndcg_at_10?: number | null;
  chosen?: Record<string, unknown>;
  train_s: number;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

async function main(): Promise<void> {
  const table: Row[] = [];
  const reports: (HpoReport & { dataset: string })[] = [];
  const sets: { name: string; load: () => Promise<InteractionFields[]> }[] = [
    ...sharedSets.filter((s) => existsSync(s.spec.file)).map((s) => ({ name: s.name, load: async () => (await loadInteractions(s.spec)).rows })),
    { name: 'synthetic', load: async () => [...syntheticInteractions({ seed: 7, users: 2000, items: 3000, events: 60_000 })] },
  ];
  for (const s of sets) {
    if (only ? !only.includes(s.name) : s.name === 'synthetic') continue;
    const rows = await s.load();
    const runs: { run: string; recipe: string; budgetMs?: number }[] = [
      { run: 'popularity-count', recipe: 'popularity-count' },
      { run: 'sims', recipe: 'sims' },
      { run: 'sims + hpo', recipe: 'sims', budgetMs: simsBudget },
      { run: 'hrnn', recipe: 'hrnn' },
      { run: 'hrnn + hpo', recipe: 'hrnn', budgetMs: hrnnBudget },
    ];
    for (const r of runs) {
      if (onlyRuns && !onlyRuns.includes(r.run)) continue;
      const t0 = performance.now();
      const { report } = await trainAndEvaluate(rows, { recipe: r.recipe, split: 'loo', final: false, ...(r.budgetMs ? { hpo: { budgetMs: r.budgetMs, seed: 42, parallel } } : {}) });
      if (report.hpo) reports.push({ dataset: s.name, ...report.hpo });
      const row: Row = {
        dataset: s.name,
        run: r.run,
        ndcg_at_10: round(report.metrics.normalized_discounted_cumulative_gain_at_10),
        hr_at_10: round(report.metrics.hit_at_10),
        popularity_ndcg_at_10: round(report.baseline.metrics.normalized_discounted_cumulative_gain_at_10),
        train_s: Math.round((performance.now() - t0) / 100) / 10,
        ...(report.hpo
          ? { budget_s: report.hpo.budgetMs / 1000, used_s: Math.round(report.hpo.usedMs / 100) / 10, trials: report.hpo.trials.length, validation_ndcg_at_10: report.hpo.chosen.ndcg10 === null ? null : round(report.hpo.chosen.ndcg10), chosen: report.hpo.chosen.params }
          : {}),
      };
      log(JSON.stringify(row));
      table.push(row);
    }
  }
  if (process.env.STREAMREC_BENCH_HPO_OUT) writeFileSync(process.env.STREAMREC_BENCH_HPO_OUT, JSON.stringify(reports, null, 1));
  console.log(JSON.stringify(table));
}

await main();
