import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { tf } from '../../src/model/backend.js';
import { hrnn } from '../../src/recipes/hrnn.js';
import { TrainingStopped } from '../../src/recipes/types.js';
import { choose, nextPromotion, parseBudget, rangesMarkdown, rungEpochs, sampleRange, searchParams, SEARCH_SPACES, trialTable, type HpoTrial, type RungResult } from '../../src/training/hpo.js';
import { leaveOneOutSplit } from '../../src/training/split.js';
import { configuredHpo } from '../../src/training/stream-train.js';
import { trainAndEvaluate } from '../../src/training/train.js';
import { recipeNamed } from '../../src/training/recipes.js';
import { validationScore, validationSplit } from '../../src/training/validation.js';

const rows = [...syntheticInteractions({ seed: 5, users: 300, items: 120, events: 6000 })];
const catalogueSize = new Set(rows.map((e) => e.ITEM_ID)).size;
const small = [...syntheticInteractions({ seed: 5, users: 150, items: 80, events: 2500 })];

describe('successive halving', () => {
  it('promotes the top 1/η of a rung, best first, the highest rung first', () => {
    const res = (scores: number[]): RungResult[] => scores.map((score, trial) => ({ trial, score }));
    const none = () => [new Set<number>(), new Set<number>(), new Set<number>()];
    // Two results at rung 0: floor(2/3) = 0 go on: a new trial is due.
    expect(nextPromotion([res([0.1, 0.2]), [], []], none())).toBeUndefined();
    // Three: the best (trial 1) goes to rung 1.
    expect(nextPromotion([res([0.1, 0.3, 0.2]), [], []], none())).toEqual({ trial: 1, rung: 1 });
    // Once promoted, the next best waits until there are six results.
    const promoted = none();
    promoted[0]!.add(1);
    expect(nextPromotion([res([0.1, 0.3, 0.2, 0.05, 0.01]), [], []], promoted)).toBeUndefined();
    expect(nextPromotion([res([0.1, 0.3, 0.2, 0.05, 0.01, 0]), [], []], promoted)).toEqual({ trial: 2, rung: 1 });
    // A rung-1 promotion comes before a rung-0 one.
    const p2 = none();
    expect(nextPromotion([res([0.1, 0.3, 0.2]), [{ trial: 4, score: 0.1 }, { trial: 5, score: 0.5 }, { trial: 6, score: 0.2 }], []], p2)).toEqual({ trial: 5, rung: 2 });
    // Nothing is promoted past the top rung.
    expect(nextPromotion([[], [], res([0.9, 0.8, 0.7])], none())).toBeUndefined();
  });

  it('rungs are maxEpochs / η^k, increasing and distinct', () => {
    expect(rungEpochs(10)).toEqual([1, 3, 10]);
    expect(rungEpochs(27)).toEqual([3, 9, 27]);
    expect(rungEpochs(2)).toEqual([1, 2]);
    expect(rungEpochs(1)).toEqual([1]);
  });

  it('chooses the best validation score; with fixed epochs only at the top rung reached', () => {
    const t = (trial: number, results: [number, number][]): HpoTrial => ({ trial, params: {}, status: 'top', rung: results.length - 1, results: results.map(([rung, ndcg10]) => ({ rung, ndcg10, hr10: 0, trainMs: 0, evaluateMs: 0 })) });
    const trials = [t(0, [[0, 0.2], [1, 0.25]]), t(1, [[0, 0.3]]), t(2, [[0, 0.1]])];
    expect(choose(trials)).toEqual({ trial: 1, rung: 0 });
    expect(choose(trials, true)).toEqual({ trial: 0, rung: 1 });
    expect(choose([])).toBeUndefined();
  });

  it('samples every range within its bounds', () => {
    for (const space of Object.values(SEARCH_SPACES)) {
      for (const r of Object.values(space)) {
        for (const u of [0, 0.25, 0.5, 0.999999]) {
          const v = sampleRange(r, u);
          if (r.kind === 'choice') expect(r.values).toContain(v);
          else {
            expect(v).toBeGreaterThanOrEqual(r.min);
            expect(v).toBeLessThanOrEqual(r.max);
            if (r.kind === 'int' || r.kind === 'log-int') expect(Number.isInteger(v)).toBe(true);
          }
        }
      }
    }
  });

  it('docs/tuning.md holds the ranges table the code searches', () => {
    expect(readFileSync(new URL('../../docs/tuning.md', import.meta.url), 'utf8')).toContain(rangesMarkdown());
  });
});

describe('budgets', () => {
  it('parses duration texts and seconds; names the field of a bad one', () => {
    expect(parseBudget('20m', '--budget')).toBe(1_200_000);
    expect(parseBudget('1.5h', '--budget')).toBe(5_400_000);
    expect(parseBudget('90', '--budget')).toBe(90_000);
    expect(parseBudget(2.5, 'x')).toBe(2500);
    for (const bad of ['', 'soon', '-5m', '0', 0, -1]) expect(() => parseBudget(bad, 'hpoConfig.budget')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'hpoConfig.budget' }));
    expect(configuredHpo('')).toBeUndefined();
    expect(configuredHpo('5m')).toEqual({ budgetMs: 300_000 });
  });
});

describe('searchParams', () => {
  it('random search on sims: every trial scored, the chosen one the best, the user params fixed, the budget honoured', async () => {
    // A clock that advances 1 s per trial: the budget of 3.5 s admits trials at 0, 1, 2 and 3 s.
    let clock = 0;
    const { params, report } = await searchParams('sims', rows, { budgetMs: 3500, seed: 1, fixed: { recentItems: 5 }, excludeSeen: false, validationUsers: 150, now: () => clock, onTrial: () => void (clock += 1000) });
    expect(report.method).toBe('random');
    expect(report.stoppedBy).toBe('budget');
    expect(report.trials).toHaveLength(4);
    expect(report.trials[0]!.params).toEqual({});
    expect(report.searched).not.toContain('recentItems');
    for (const t of report.trials) {
      expect(t.status).toBe('top');
      expect(t.results).toHaveLength(1);
      expect(t.params).not.toHaveProperty('recentItems');
    }
    const best = Math.max(...report.trials.map((t) => t.results[0]!.ndcg10));
    expect(report.chosen.ndcg10).toBe(best);
    expect(params).toEqual({ ...report.trials[report.chosen.trial!]!.params, recentItems: 5 });
    // The chosen params score the reported NDCG again on the same validation split.
    const v = validationSplit(rows, { seed: 1, maxUsers: 150 });
    expect((await validationScore(recipeNamed('sims'), params, { split: v, catalogueSize, excludeSeen: false })).ndcg10).toBe(best);
    // Differently seeded searches draw different trials.
    const other = await searchParams('sims', rows, { budgetMs: 60_000, maxTrials: 4, seed: 2, excludeSeen: false, validationUsers: 150 });
    expect(other.report.stoppedBy).toBe('max-trials');
    expect(other.report.trials[1]!.params).not.toEqual(report.trials[1]!.params);
  });

  it('popularity-count: maxTrials ends the search; bad options are named', async () => {
    const { report } = await searchParams('popularity-count', rows, { budgetMs: 60_000, maxTrials: 3, excludeSeen: false });
    expect(report.trials).toHaveLength(3);
    expect(report.trials.every((t) => t.results[0]!.ndcg10 > 0)).toBe(true);
    await expect(searchParams('popularity-count', rows, { budgetMs: 0, excludeSeen: false })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'hpo.budgetMs' });
    await expect(searchParams('nope', rows, { budgetMs: 1000, excludeSeen: false })).rejects.toMatchObject({ field: 'recipe' });
    await expect(searchParams('sims', rows, { budgetMs: 1000, maxTrials: 0, excludeSeen: false })).rejects.toMatchObject({ field: 'hpo.maxTrials' });
  });

  it('a tiny hrnn: successive halving over epochs, every trial scored, the best chosen', async () => {
    const fixed = { hiddenSize: 8, negatives: 32, workers: 1, batchSize: 32 };
    const { params, report } = await searchParams('hrnn', small, { budgetMs: 120_000, maxTrials: 6, seed: 3, fixed, excludeSeen: false, validationUsers: 100, rungs: [1, 2, 3] });
    expect(report.method).toBe('successive-halving');
    expect(report.rungs).toEqual([1, 2, 3]);
    expect(report.trials).toHaveLength(6);
    expect(report.searched).not.toContain('hiddenSize');
    // Trial 0 (the defaults) at the full epochs; trials 1-5 at rung 0 -> the best 1 (floor(5/3)) to rung 1 -> none to rung 2 (floor(1/3)).
    expect(report.trials[0]!.results.map((r) => r.epochs)).toEqual([3]);
    expect(report.trials[0]!.status).toBe('top');
    const atRung = (k: number) => report.trials.filter((t) => t.results.some((r) => r.rung === k)).length;
    expect([atRung(0), atRung(1), atRung(2)]).toEqual([5, 1, 1]);
    // The promoted one was the best at rung 0.
    const rung0 = report.trials.slice(1).map((t) => ({ t: t.trial, s: t.results[0]!.ndcg10 })).sort((a, b) => b.s - a.s || a.t - b.t);
    expect(report.trials.filter((t) => t.rung === 1).map((t) => t.trial)).toEqual([rung0[0]!.t]);
    expect(report.trials.filter((t) => t.status === 'stopped-early')).toHaveLength(5);
    for (const t of report.trials) for (const r of t.results) expect(r.epochs).toBe([1, 2, 3][r.rung]);
    const best = Math.max(...report.trials.flatMap((t) => t.results.map((r) => r.ndcg10)));
    expect(report.chosen.ndcg10).toBe(best);
    expect(params).toMatchObject({ ...fixed, epochs: report.chosen.epochs });
    expect(trialTable(report).length).toBe(report.trials.length + 3);
  }, 60_000);

  it('trials side by side in threads: the same trials and scores as one at a time (sims), and the budget ends running ones (hrnn)', async () => {
    const o = { budgetMs: 60_000, maxTrials: 5, seed: 6, excludeSeen: false, validationUsers: 120 };
    const one = await searchParams('sims', rows, o);
    const two = await searchParams('sims', rows, { ...o, parallel: 2 });
    const scores = (r: typeof one.report) => r.trials.map((t) => [t.params, t.results[0]!.ndcg10]);
    expect(scores(two.report)).toEqual(scores(one.report));
    expect(two.params).toEqual(one.params);
    // 200 epochs do not finish in 1.5 s: both threads' trials are ended at the budget.
    const t0 = performance.now();
    const slow = await searchParams('hrnn', rows, { budgetMs: 1500, parallel: 2, fixed: { hiddenSize: 8, negatives: 32, epochs: 200, batchSize: 8 }, rungs: [200], excludeSeen: false, validationUsers: 50 });
    expect(slow.report.trials.map((t) => t.status)).toEqual(['aborted', 'aborted']);
    expect(slow.report.chosen.trial).toBeNull();
    expect(performance.now() - t0).toBeLessThan(8000);
  }, 30_000);

  it('stops a running hrnn training when the budget is over (shouldStop)', async () => {
    let calls = 0;
    await expect(hrnn.train(rows, { hiddenSize: 8, negatives: 32, epochs: 50, workers: 1, batchSize: 8 }, { shouldStop: () => ++calls > 2 })).rejects.toBeInstanceOf(TrainingStopped);
    const t0 = performance.now();
    const fixed = { hiddenSize: 8, negatives: 32, epochs: 200, workers: 1, batchSize: 8 };
    const { params, report } = await searchParams('hrnn', rows, { budgetMs: 800, fixed, rungs: [200], excludeSeen: false, validationUsers: 50 });
    // Nothing finishes 200 epochs in 0.8 s: the training goes on with the defaults, and the report says why.
    expect(report.trials[0]!.status).toBe('aborted');
    expect(report.chosen).toEqual({ trial: null, params: fixed, ndcg10: null, hr10: null });
    expect(params).toEqual(fixed);
    expect(report.fallback).toMatch(/no trial finished within the budget of 800 ms/);
    expect(trialTable(report).at(-1)).toMatch(/^chosen: none \(no trial finished/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('a stopped training leaves no tensors behind (both losses)', async () => {
    const stopAt = (n: number) => {
      let calls = 0;
      return { shouldStop: () => ++calls > n };
    };
    for (const loss of ['cross-entropy', 'bpr-max'] as const) {
      const params = { hiddenSize: 8, negatives: 32, epochs: 50, workers: 1, batchSize: 8, loss };
      await expect(hrnn.train(rows, params, stopAt(1))).rejects.toBeInstanceOf(TrainingStopped);
      const before = tf.memory().numTensors;
      await expect(hrnn.train(rows, params, stopAt(2))).rejects.toBeInstanceOf(TrainingStopped);
      expect(tf.memory().numTensors, loss).toBe(before);
    }
  });
});

describe('trainAndEvaluate with hpo', () => {
  it('searches on the split train part only, then evaluates the chosen params', async () => {
    const { report } = await trainAndEvaluate(rows, { recipe: 'sims', split: 'loo', seen: 'include', final: false, hpo: { budgetMs: 60_000, maxTrials: 3, seed: 4 }, params: { coOccurrenceWindow: 4 } });
    const hpo = report.hpo!;
    expect(hpo.trials).toHaveLength(3);
    expect(hpo.chosen.params).toMatchObject({ coOccurrenceWindow: 4 });
    // The validation split is a leave-one-out of the split's train part: its training has one event
    // fewer per user than the train part, which already lacks the reported test events.
    const trainPart = leaveOneOutSplit(rows).train;
    expect(hpo.validation.interactions).toBe(leaveOneOutSplit(trainPart).train.length);
    expect(hpo.validation.interactions).toBeLessThan(trainPart.length);
  });
});
