import { describe, expect, it } from 'vitest';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { AppError } from '../../src/errors/index.js';
import type { InteractionFields } from '../../src/state/apply.js';
import { checkMinimums, repeatRate, seenRule, trainAndEvaluate } from '../../src/training/train.js';

const data = [...syntheticInteractions({ seed: 3, users: 800, items: 1500, events: 40_000 })];

describe('offline training', () => {
  it('sims beats popularity-count on NDCG@10 under leave-one-out on data with item-to-item transitions', async () => {
    const { report } = await trainAndEvaluate(data, { recipe: 'sims', split: 'loo' });
    expect(report.testUsers).toBeGreaterThan(700);
    expect(report.baseline.recipe).toBe('popularity-count');
    const simsNdcg = report.metrics.normalized_discounted_cumulative_gain_at_10;
    const popNdcg = report.baseline.metrics.normalized_discounted_cumulative_gain_at_10;
    // measured over seeds 1-4 of this generator: sims 0.273-0.294, popularity 0.222-0.257
    expect(simsNdcg).toBeGreaterThan(popNdcg);
    expect(report.metrics.coverage).toBeGreaterThan(report.baseline.metrics.coverage);
  });

  it('reports popularity-count against itself as its own baseline, identically', async () => {
    const { report } = await trainAndEvaluate(data, { recipe: 'popularity-count', split: 'personalize' });
    expect(report.metrics).toEqual(report.baseline.metrics);
    expect(report.testUsers).toBeGreaterThan(40);
  });

  it('refuses too little data with Personalize minimums, naming the numbers', async () => {
    const few: InteractionFields[] = data.slice(0, 999);
    expect(() => checkMinimums(few)).toThrow(AppError);
    expect(() => checkMinimums(few)).toThrow(/1000 interactions and 25 users.*999 interactions/);
    const oneUser = data.slice(0, 2000).map((e) => ({ ...e, USER_ID: 'only' }));
    expect(() => checkMinimums(oneUser)).toThrow(/1 such users/);
    await expect(trainAndEvaluate(data, { recipe: 'nope' })).rejects.toThrow(/unknown recipe "nope"/);
  });

  it('learns the seen-items rule from the repeat rate', () => {
    const ratings = Array.from({ length: 2000 }, (_, i) => ({ ...data[i]!, USER_ID: `r${i % 100}`, ITEM_ID: `m${i}` }));
    expect(repeatRate(ratings)).toBe(0);
    expect(seenRule('auto', ratings).excludeSeen).toBe(true);
    expect(repeatRate(data)).toBeGreaterThan(0.05); // synthetic sessions revisit items
    expect(seenRule('auto', data).excludeSeen).toBe(false);
    expect(seenRule('exclude', data).excludeSeen).toBe(true);
    expect(seenRule('include', ratings).excludeSeen).toBe(false);
  });
});
