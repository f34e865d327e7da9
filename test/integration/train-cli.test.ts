/**
 * The offline path through the CLI, no Kafka needed: generate a dataset, train, read the report;
 * a file with the wrong delimiter and a too small file fail with their codes.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TrainReport } from '../../src/training/train.js';
import { runCli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'streamrec-train-cli-'));

describe('streamrec generate + train', () => {
  it('trains sims on a generated dataset and reports it beside popularity-count on the same split', async () => {
    const csv = join(dir, 'clicks.csv');
    const gen = await runCli(['generate', '-o', csv, '-n', '30000', '--users', '600', '--items', '1200', '--seed', '5']);
    expect(gen.code, gen.stderr).toBe(0);
    const out = await runCli(['train', '-i', csv, '-r', 'sims', '--split', 'loo', '-o', join(dir, 'model'), '--json']);
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as TrainReport;
    expect(report.interactions).toBe(30_000);
    expect(report.split).toBe('loo');
    expect(report.metrics.users).toBe(report.testUsers);
    expect(report.metrics.normalized_discounted_cumulative_gain_at_10).toBeGreaterThan(report.baseline.metrics.normalized_discounted_cumulative_gain_at_10);
    expect(JSON.parse(readFileSync(join(dir, 'model', 'metrics.json'), 'utf8'))).toEqual(report);
    expect(out.stderr).toMatch(/read 30000 interactions \(0 rejected\)/);
  });

  it('batch-infers in Personalize\'s line format from the model folder; a bad line gets its own error', async () => {
    const model = join(dir, 'model');
    const input = join(dir, 'in.jsonl');
    const output = join(dir, 'out.jsonl');
    writeFileSync(
      input,
      [
        '{"userId":"u1"}',
        '{"itemId":"i0"}',
        '{"itemId":"no-such-item"}',
        '{"userId":"u1","itemList":["i0","no-such-item","i1"]}',
        'this is not json',
        '{"userId":"never-seen"}',
      ].join('\n'),
    );
    const out = await runCli(['batch-infer', '--model', model, '-i', input, '-o', output, '-n', '7']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/6 lines .* 2 with an error/);
    type Line = { input: unknown; output: { recommendedItems: string[]; scores: number[] } | null; error: string | null };
    const lines = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
    expect(lines).toHaveLength(6);
    expect(lines[0]!.input).toEqual({ userId: 'u1' });
    expect(lines[0]!.output!.recommendedItems).toHaveLength(7);
    expect(lines[0]!.output!.scores[0]).toBeGreaterThan(0);
    expect(lines[1]!.output!.recommendedItems).not.toContain('i0');
    expect(lines[2]).toEqual({ input: { itemId: 'no-such-item' }, output: null, error: 'item "no-such-item" is not in the training data' });
    expect(lines[3]!.output!.recommendedItems.at(-1)).toBe('no-such-item'); // unknown items last, as Personalize
    expect([...lines[3]!.output!.recommendedItems].sort()).toEqual(['i0', 'i1', 'no-such-item']);
    expect(lines[4]!.error).toMatch(/not JSON/);
    // a user without history gets the most popular items, the same for any unknown user
    expect(lines[5]!.output!.scores.every((x) => x === 0)).toBe(true);
    expect(lines[5]!.output!.recommendedItems).toHaveLength(7);
  });

  it('evaluates a saved model on another split, and selects event types and values as Personalize', async () => {
    const model = join(dir, 'model');
    const ev = await runCli(['evaluate', '--model', model, '--split', 'time', '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    const report = JSON.parse(ev.stdout) as TrainReport;
    expect(report.recipe).toBe('sims');
    expect(report.split).toBe('time');
    expect(report.interactions).toBe(30_000);

    const csv = join(dir, 'typed.csv');
    const lines = ['USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE'];
    for (let i = 0; i < 3000; i++) lines.push(`u${i % 61},i${(i * 7) % 97},${1_700_000_000 + i},${i % 3 === 0 ? 'purchase' : 'click'},${i % 5}`);
    writeFileSync(csv, `${lines.join('\n')}\n`);
    const purchases = await runCli(['train', '-i', csv, '-r', 'popularity-count', '--event-type', 'purchase', '--json']);
    expect(purchases.code, purchases.stderr).toBe(0);
    expect((JSON.parse(purchases.stdout) as TrainReport).interactions).toBe(1000);
    expect(purchases.stderr).toMatch(/2000 left out by the event filters/);
    const valued = await runCli(['train', '-i', csv, '-r', 'popularity-count', '--event-value-threshold', '3', '--json']);
    expect((JSON.parse(valued.stdout) as TrainReport).interactions).toBe(1200); // values 3 and 4 of 0..4
    const tooFew = await runCli(['train', '-i', csv, '-r', 'popularity-count', '--event-value-threshold', '4', '--event-type', 'purchase']);
    expect(tooFew.code).toBe(1);
    expect(tooFew.stderr).toMatch(/TRAINING_DATA_TOO_SMALL/);
  });

  it('says what is wrong with a file: the delimiter, and too little data', async () => {
    const semi = join(dir, 'semi.csv');
    writeFileSync(semi, 'USER_ID;ITEM_ID;TIMESTAMP\nu1;i1;1700000000\n');
    const bad = await runCli(['train', '-i', semi, '-r', 'sims']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT.*delimiter may be wrong/s);
    const small = join(dir, 'small.csv');
    writeFileSync(small, `USER_ID,ITEM_ID,TIMESTAMP\n${Array.from({ length: 50 }, (_, i) => `u${i % 5},i${i},${1_700_000_000 + i}`).join('\n')}\n`);
    const tiny = await runCli(['train', '-i', small, '-r', 'popularity-count']);
    expect(tiny.code).toBe(1);
    expect(tiny.stderr).toMatch(/TRAINING_DATA_TOO_SMALL.*50 interactions/s);
  });

  it('--recipe auto keeps the best candidate on validation, prints the table and saves the chosen model; a parameter no candidate knows is refused', async () => {
    const csv = join(dir, 'clicks.csv');
    const params = JSON.stringify({ epochs: 1, hiddenSize: 16, negatives: 128, workers: 1, popularityDiscountFactor: 0.3 });
    const out = await runCli(['train', '-i', csv, '-r', 'auto', '--params', params, '--split', 'loo', '-o', join(dir, 'model-auto'), '--json'], {}, 300_000);
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as TrainReport;
    const table = report.auto!.table;
    expect(table.slice(0, 3).map((r) => r.recipe)).toEqual(['popularity-count', 'sims', 'hrnn']);
    const best = table.reduce((b, r) => (r.ndcg10 > b.ndcg10 ? r : b));
    expect(report.recipe).toBe(best.recipe);
    expect(report.auto!.recipe).toBe(best.recipe);
    // sims got its own parameter, hrnn its own.
    if (best.recipe === 'sims') expect(report.auto!.params).toEqual({ popularityDiscountFactor: 0.3 });
    expect(JSON.parse(readFileSync(join(dir, 'model-auto', 'model.json'), 'utf8')).model.recipe).toBe(best.recipe);
    const text = await runCli(['evaluate', '--model', join(dir, 'model-auto'), '--split', 'loo'], {}, 300_000);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`recipe auto chose ${best.recipe} on \\d+ validation users`));
    expect(text.stdout).toMatch(/popularity-count +0\.\d{4} +0\.\d{4}/);
    const bad = await runCli(['train', '-i', csv, '-r', 'auto', '--params', '{"nope":1}', '--split', 'loo']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT.*nope.*belongs to no candidate recipe/s);
  }, 600_000);

  it('trains hrnn-coldstart with an items file, batch-infers from its folder and evaluates it on another split', async () => {
    const csv = join(dir, 'clicks.csv');
    const items = join(dir, 'items.csv');
    writeFileSync(items, `ITEM_ID,CATEGORY,CREATION_TIMESTAMP\n${Array.from({ length: 1200 }, (_, i) => `i${i},c${i % 7},`).join('\n')}\nnew1,c3,${Date.now()}\n`);
    const model = join(dir, 'model-hrnn');
    const params = JSON.stringify({ epochs: 2, hiddenSize: 32, negatives: 256, workers: 1 });
    const out = await runCli(['train', '-i', csv, '--items', items, '-r', 'hrnn-coldstart', '--params', params, '--split', 'loo', '-o', model, '--json'], {}, 300_000);
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as TrainReport;
    expect(report.recipe).toBe('hrnn-coldstart');
    expect(report.metrics.normalized_discounted_cumulative_gain_at_10).toBeGreaterThan(report.baseline.metrics.normalized_discounted_cumulative_gain_at_10);
    const input = join(dir, 'in-hrnn.jsonl');
    const output = join(dir, 'out-hrnn.jsonl');
    writeFileSync(input, ['{"userId":"u1"}', '{"itemId":"i3"}', '{"userId":"u1","itemList":["i0","new1","nope"]}', '{"userId":"never-seen"}'].join('\n'));
    const bi = await runCli(['batch-infer', '--model', model, '-i', input, '-o', output, '-n', '5']);
    expect(bi.code, bi.stderr).toBe(0);
    type Line = { output: { recommendedItems: string[]; scores: number[] } | null; error: string | null };
    const lines = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
    expect(lines.map((l) => l.error)).toEqual([null, null, null, null]);
    expect(lines[0]!.output!.recommendedItems).toHaveLength(5);
    expect(lines[1]!.output!.recommendedItems).not.toContain('i3');
    // new1 has no interactions but metadata: the model scores it; an unknown item goes last.
    expect(lines[2]!.output!.recommendedItems.at(-1)).toBe('nope');
    expect(lines[2]!.output!.recommendedItems).toContain('new1');
    expect(lines[3]!.output!.recommendedItems).toHaveLength(5);
    const ev = await runCli(['evaluate', '--model', model, '--split', 'personalize', '--json'], {}, 300_000);
    expect(ev.code, ev.stderr).toBe(0);
    expect((JSON.parse(ev.stdout) as TrainReport).split).toBe('personalize');
  }, 600_000);

  it('under --seen exclude, batch-infer gives a user with 360 interactions none of them back, the earliest included', async () => {
    // 40 users share the popular items p0..p29; "heavy" touches all of them first, then 330 other
    // items: the latest 50 interactions (all a model folder used to leave out) hold no popular item.
    const lines = ['USER_ID,ITEM_ID,TIMESTAMP'];
    let ts = 1_700_000_000;
    for (let u = 0; u < 40; u++) {
      for (let p = 0; p < 30; p++) if ((u + p) % 5 !== 0) lines.push(`o${u},p${p},${ts++}`);
      for (let t = 330 + u; t < 450; t += 40) lines.push(`o${u},t${t},${ts++}`);
    }
    const heavy = new Set<string>();
    for (let p = 0; p < 30; p++) heavy.add(`p${p}`);
    for (let t = 0; t < 330; t++) heavy.add(`t${t}`);
    for (const item of heavy) lines.push(`heavy,${item},${ts++}`);
    const csv = join(dir, 'heavy.csv');
    writeFileSync(csv, `${lines.join('\n')}\n`);
    const model = join(dir, 'heavy-model');
    // A bound set by config (state.maxSeenItemsPerUser) is the one the model folder keeps.
    const small = await runCli(['train', '-i', csv, '-r', 'popularity-count', '--split', 'loo', '--seen', 'exclude', '-o', join(dir, 'heavy-small'), '--json'], { STREAMREC_STATE_MAX_SEEN_ITEMS_PER_USER: '100' });
    expect(small.code, small.stderr).toBe(0);
    expect((JSON.parse(small.stdout) as TrainReport).seen).toMatchObject({ excludeSeen: true, bound: 100 });
    const train = await runCli(['train', '-i', csv, '-r', 'popularity-count', '--split', 'loo', '--seen', 'exclude', '-o', model, '--json']);
    expect(train.code, train.stderr).toBe(0);
    expect((JSON.parse(train.stdout) as TrainReport).seen).toMatchObject({ rule: 'exclude', excludeSeen: true, bound: 5000 });
    const saved = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')) as { seenBound: number; seen: [string, string[]][] };
    expect(saved.seenBound).toBe(5000);
    expect(new Set(saved.seen.find(([u]) => u === 'heavy')![1])).toEqual(heavy);
    expect(saved.seen.find(([u]) => u === 'heavy')![1]).toHaveLength(360);
    const smallSaved = JSON.parse(readFileSync(join(dir, 'heavy-small', 'model.json'), 'utf8')) as { seenBound: number; seen: [string, string[]][] };
    expect(smallSaved.seenBound).toBe(100);
    expect(smallSaved.seen.find(([u]) => u === 'heavy')![1]).toEqual([...heavy].slice(-100));

    const input = join(dir, 'heavy-in.jsonl');
    const output = join(dir, 'heavy-out.jsonl');
    writeFileSync(input, '{"userId":"heavy"}\n');
    for (const [folder, expectBack] of [[model, false], [join(dir, 'heavy-small'), true]] as const) {
      const bi = await runCli(['batch-infer', '--model', folder, '-i', input, '-o', output, '-n', '60']);
      expect(bi.code, bi.stderr).toBe(0);
      const [line] = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { output: { recommendedItems: string[] } });
      const items = line!.output.recommendedItems;
      expect(items.length, folder).toBeGreaterThan(0);
      if (!expectBack) {
        expect(items).toHaveLength(60);
        expect(items.filter((i) => heavy.has(i))).toEqual([]);
      } else {
        // Bound 100: the 260 items touched first are forgotten, and the popular ones come back first.
        expect(items.slice(0, 5).every((i) => /^p/.test(i))).toBe(true);
        expect(items.filter((i) => [...heavy].slice(-100).includes(i))).toEqual([]);
      }
    }
    const ev = await runCli(['evaluate', '--model', join(dir, 'heavy-small'), '--split', 'loo', '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    expect((JSON.parse(ev.stdout) as TrainReport).seen.bound).toBe(100);
  }, 300_000);

  it('--hpo searches sims within --budget on the train part, prints the trial table and saves the chosen params', async () => {
    const csv = join(dir, 'clicks.csv');
    const out = await runCli(['train', '-i', csv, '-r', 'sims', '--split', 'loo', '--hpo', '--budget', '2m', '--max-trials', '4', '--params', '{"recentItems":5}', '-o', join(dir, 'tuned')]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/hyperparameter search: random, 4 trials in .* of 120 s \(ended by max-trials\)/);
    expect(out.stdout).toMatch(/^chosen: trial \d, validation NDCG@10 0\.\d{4}: \{.*"recentItems":5/m);
    const report = JSON.parse(readFileSync(join(dir, 'tuned', 'metrics.json'), 'utf8')) as TrainReport;
    expect(report.hpo!.trials).toHaveLength(4);
    expect(report.hpo!.chosen.ndcg10).toBe(Math.max(...report.hpo!.trials.map((t) => t.results[0]!.ndcg10)));
    // The folder remembers the chosen params: evaluate trains those.
    const saved = JSON.parse(readFileSync(join(dir, 'tuned', 'model.json'), 'utf8')) as { training: { params: Record<string, unknown> } };
    expect(saved.training.params).toEqual(report.hpo!.chosen.params);
    const bad = await runCli(['train', '-i', csv, '-r', 'sims', '--hpo', '--budget', 'soon']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--budget must be a positive duration/);
    const without = await runCli(['train', '-i', csv, '-r', 'sims', '--budget', '5m']);
    expect(without.stderr).toMatch(/--budget, --max-trials, --hpo-seed and --hpo-parallel go with --hpo/);
  }, 120_000);
});
