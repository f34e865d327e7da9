import { describe, expect, it } from 'vitest';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { personalizeSplit } from '../../src/training/split.js';
import { recipeNamed } from '../../src/training/recipes.js';
import { validationScore, validationSplit } from '../../src/training/validation.js';

const rows = [...syntheticInteractions({ seed: 3, users: 300, items: 120, events: 6000 })];

describe('validationSplit', () => {
  it('is carved from the training part only: no reported-test truth reaches it', () => {
    const s = personalizeSplit(rows, { seed: 42, testUserShare: 0.2 });
    const v = validationSplit(s.train);
    const testTruth = new Set(s.tests.flatMap((t) => t.truth));
    const testUsers = new Set(s.tests.map((t) => t.userId));
    expect(v.tests.length).toBeGreaterThan(100);
    for (const e of v.train) expect(testTruth.has(e)).toBe(false);
    for (const t of v.tests) {
      expect(testUsers.has(t.userId)).toBe(false);
      expect(t.truth).toHaveLength(1);
      // The held-out event is the user's latest in the training part.
      const latest = s.train.filter((e) => e.USER_ID === t.userId).at(-1);
      expect(t.truth[0]).toBe(latest);
    }
  });

  it('samples at most maxUsers users, the same ones whatever the input order', () => {
    const a = validationSplit(rows, { maxUsers: 50, seed: 7 });
    expect(a.tests).toHaveLength(50);
    const b = validationSplit([...rows].sort((x, y) => x.TIMESTAMP - y.TIMESTAMP || (x.USER_ID < y.USER_ID ? 1 : -1)), { maxUsers: 50, seed: 7 });
    expect(b.tests.map((t) => t.userId)).toEqual(a.tests.map((t) => t.userId));
    const c = validationSplit(rows, { maxUsers: 50, seed: 8 });
    expect(c.tests.map((t) => t.userId)).not.toEqual(a.tests.map((t) => t.userId));
  });

  it('scores a recipe on the validation users', async () => {
    const v = validationSplit(rows, { maxUsers: 200 });
    const catalogueSize = new Set(rows.map((e) => e.ITEM_ID)).size;
    const pop = await validationScore(recipeNamed('popularity-count'), {}, { split: v, catalogueSize, excludeSeen: false });
    const sims = await validationScore(recipeNamed('sims'), {}, { split: v, catalogueSize, excludeSeen: false });
    expect(pop.metrics.users).toBe(200);
    expect(pop.ndcg10).toBeGreaterThan(0);
    // Synthetic data has item-to-item transitions: sims must beat popularity on them.
    expect(sims.ndcg10).toBeGreaterThan(pop.ndcg10);
    expect(() => recipeNamed('nope')).toThrow(/unknown recipe "nope"; known: popularity-count, sims/);
  });
});
