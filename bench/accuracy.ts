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
import { loadInteractions, type DataSpec } from '../src/training/data.js';
import { RECIPES, trainAndEvaluate, type SplitName } from '../src/training/train.js';
import { packagePath } from '../src/util/paths.js';

const log = (msg: string) => process.stderr.write(`[bench:accuracy] ${msg}\n`);
const SPLITS: SplitName[] = ['personalize', 'loo', 'time'];
const SHARED = packagePath('..', 'shared', 'datasets');

const sharedSets: { name: string; spec: DataSpec }[] = [
  { name: 'amazon-musical-instruments', spec: { file: join(SHARED, 'amazon-musical-instruments', 'interactions.tsv') } },
  {
    name: 'diginetica-sample',
    spec: {
      file: join(SHARED, 'diginetica-sample', 'sample_train-item-views.csv'),
      delimiter: ';',
      map: { USER_ID: 'session_id', ITEM_ID: 'item_id', TIMESTAMP: 'eventdate' },
    },
  },
];

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
      for (const recipe of Object.keys(RECIPES)) {
        const { report } = trainAndEvaluate(d.rows, { recipe, split });
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
  const groups = [...new Set(rows.map((r) => `${r.dataset} / ${r.split}`))];
  const recipes = [...new Set(rows.map((r) => r.recipe))];
  const colors = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759'];
  const max = Math.max(...rows.map((r) => r.ndcg_at_10), 0.0001);
  const bar = 18;
  const gap = 24;
  const left = 260;
  const width = 760;
  const height = 40 + groups.length * (recipes.length * bar + gap) + 40;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`];
  parts.push(`<text x="10" y="20" font-size="14">NDCG@10 by dataset and split (streamrec bench:accuracy)</text>`);
  groups.forEach((g, gi) => {
    const y0 = 40 + gi * (recipes.length * bar + gap);
    parts.push(`<text x="10" y="${y0 + (recipes.length * bar) / 2 + 4}">${g}</text>`);
    recipes.forEach((recipe, ri) => {
      const r = rows.find((x) => `${x.dataset} / ${x.split}` === g && x.recipe === recipe);
      if (!r) return;
      const w = ((width - left - 80) * r.ndcg_at_10) / max;
      const y = y0 + ri * bar;
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${bar - 3}" fill="${colors[ri % colors.length]}"/>`);
      parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + bar - 6}">${r.ndcg_at_10.toFixed(4)}</text>`);
    });
  });
  const ly = height - 20;
  recipes.forEach((recipe, ri) => {
    parts.push(`<rect x="${left + ri * 170}" y="${ly - 10}" width="12" height="12" fill="${colors[ri % colors.length]}"/>`);
    parts.push(`<text x="${left + ri * 170 + 16}" y="${ly}">${recipe}</text>`);
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
