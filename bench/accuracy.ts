/**
 * bench/accuracy: every recipe on every split, on synthetic data and on ../shared/datasets when
 * present. Prints one JSON table (the last line of stdout) and writes bench/out/accuracy.svg.
 *
 *   npm run bench:accuracy
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticInteractions } from '../src/data/synthetic.js';
import type { InteractionFields } from '../src/state/apply.js';
import { loadInteractions } from '../src/training/data.js';
import { RECIPES, trainAndEvaluate, type SplitName } from '../src/training/train.js';
import { packagePath } from '../src/util/paths.js';
import { groupedBars } from './chart.js';
import { sharedSets } from './datasets.js';

const log = (msg: string) => process.stderr.write(`[bench:accuracy] ${msg}\n`);
const SPLITS: SplitName[] = ['personalize', 'loo', 'time'];


interface Row {
  dataset: string;
  recipe: string;
  split: SplitName;
  interactions: number;
  test_users: number;
  ndcg_at_10: number;
  precision_at_10: number;
  recall_at_10: number;
  mrr_at_25: number;
  coverage: number;
  train_ms: number;
  inference_ms_per_1k_users: number;
}

async function main(): Promise<void> {
  const datasets: { name: string; rows: InteractionFields[] }[] = [
    { name: 'synthetic', rows: [...syntheticInteractions({ seed: 7, users: 3000, items: 6000, events: 150_000 })] },
  ];
  for (const s of sharedSets) {
    if (!existsSync(s.spec.file)) {
      log(`${s.name}: not present (${s.spec.file}), skipped`);
      continue;
    }
    datasets.push({ name: s.name, rows: (await loadInteractions(s.spec)).rows });
  }
  const table: Row[] = [];
  for (const d of datasets) {
    for (const split of SPLITS) {
      // hrnn has its own benchmark (bench/train.ts): ten epochs on every split would take most of an hour here.
      for (const recipe of Object.keys(RECIPES).filter((r) => r !== 'hrnn')) {
        const { report } = await trainAndEvaluate(d.rows, { recipe, split, final: false });
        const m = report.metrics;
        table.push({
          dataset: d.name,
          recipe,
          split,
          interactions: report.interactions,
          test_users: report.testUsers,
          ndcg_at_10: round(m.normalized_discounted_cumulative_gain_at_10),
          precision_at_10: round(m.precision_at_10),
          recall_at_10: round(m.recall_at_10),
          mrr_at_25: round(m.mean_reciprocal_rank_at_25),
          coverage: round(m.coverage),
          train_ms: report.trainMs,
          inference_ms_per_1k_users: report.testUsers === 0 ? 0 : Math.round((report.evaluateMs / report.testUsers) * 1000),
        });
        log(`${d.name} ${split} ${recipe}: NDCG@10 ${round(m.normalized_discounted_cumulative_gain_at_10)} (${report.testUsers} test users)`);
      }
    }
  }
  const outDir = packagePath('bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const svg = join(outDir, 'accuracy.svg');
  writeFileSync(svg, chart(table));
  log(`plot: ${svg}`);
  process.stdout.write(`${JSON.stringify({ bench: 'accuracy', plot: svg, rows: table })}\n`);
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

/** Grouped bars of NDCG@10: one group per dataset and split, one bar per recipe. */
function chart(rows: Row[]): string {
  return groupedBars(
    'NDCG@10 by dataset and split (streamrec bench:accuracy)',
    rows.map((r) => ({ group: `${r.dataset} / ${r.split}`, series: r.recipe, value: r.ndcg_at_10 })),
  );
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
