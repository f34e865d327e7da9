import { beforeAll, describe, expect, it } from 'vitest';
import { prng, syntheticInteractions } from '../../src/data/synthetic.js';
import { initBackend } from '../../src/model/backend.js';
import { hrnnMetadata, HrnnModel, type HrnnJSON } from '../../src/recipes/hrnn.js';
import type { InteractionFields } from '../../src/state/apply.js';
import { chooseRecipe, featureCandidates, featureGroups } from '../../src/training/auto.js';
import { searchParams } from '../../src/training/hpo.js';
import { leaveOneOutSplit } from '../../src/training/split.js';
import { trainAndEvaluate } from '../../src/training/train.js';
import { recipeNamed } from '../../src/training/recipes.js';
import { pairedDifference, validationScore, validationSplit } from '../../src/training/validation.js';
import { chooseFeatures, clearsMargin } from '../../src/training/feature-choice.js';
import type { AnyRecipe, Model } from '../../src/recipes/types.js';

type Event = InteractionFields & { CONTEXT?: Record<string, string> };
const T0 = 1_700_000_000_000;
const small = { hiddenSize: 16, epochs: 4, batchSize: 32, negatives: 64, dropoutHidden: 0, learningRate: 0.1, seed: 3, workers: 1 };

beforeAll(async () => {
  await initBackend('wasm');
});

/**
 * 300 users, 8 events each over 30 items. With `informative`, a click leads to item k+1 and a
 * purchase to k+10 (EVENT_TYPE tells which); otherwise an event leads to k+1, k+2 or k+3 at random
 * and EVENT_TYPE is constant. CONTEXT.noise: one of 200 values at random, unrelated to anything.
 */
function contextData(seed: number, informative: boolean): Event[] {
  const r = prng(seed);
  const events: Event[] = [];
  for (let u = 0; u < 300; u++) {
    let k = Math.floor(r() * 30);
    for (let t = 0; t < 8; t++) {
      const type = informative && r() < 0.5 ? 'purchase' : 'click';
      const noise = `n${Math.floor(r() * 200)}`;
      events.push({ USER_ID: `u${u}`, ITEM_ID: `x${k}`, TIMESTAMP: T0 + u * 1000 + t * 60_000, EVENT_TYPE: type, EVENT_VALUE: null, SESSION_ID: null, CONTEXT: { noise } });
      k = (k + (!informative ? 1 + Math.floor(r() * 3) : type === 'click' ? 1 : 10)) % 30;
    }
  }
  return events.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP);
}

describe('feature groups and candidates', () => {
  it('names item, user and context groups; constant ones are never candidates', () => {
    const events = contextData(1, false);
    const groups = featureGroups(events, { items: [{ ITEM_ID: 'x1', CREATION_TIMESTAMP: null, METADATA: { GENRE: 'a' } }, { ITEM_ID: 'x2', CREATION_TIMESTAMP: null, METADATA: { GENRE: 'b', PRICE: 3 } }], users: [{ USER_ID: 'u1', METADATA: { AGE: 30 } }] });
    expect(groups).toEqual([
      { name: 'context.EVENT_TYPE', distinct: 1 },
      { name: 'context.noise', distinct: 200 },
      { name: 'item.GENRE', distinct: 2 },
      { name: 'item.PRICE', distinct: 1 },
      { name: 'user.AGE', distinct: 1 },
    ]);
    expect(featureCandidates(groups)).toEqual([
      { label: 'none', features: [] },
      { label: 'all', features: ['context.noise', 'item.GENRE'] },
      { label: 'all but context.noise', features: ['item.GENRE'] },
      { label: 'all but item.GENRE', features: ['context.noise'] },
    ]);
    expect(featureCandidates(groups.filter((g) => g.distinct < 2))).toEqual([]);
  });
});

describe('the margin a feature set must clear over none', () => {
  it('pairedDifference: the mean and its standard error, by hand', () => {
    // a - b = [1, 0, 0, 1]: mean 0.5, sd sqrt(4 * 0.25 / 3) = 0.57735, se 0.57735 / 2.
    const d = pairedDifference([1, 1, 0, 1], [0, 1, 0, 0]);
    expect(d.mean).toBe(0.5);
    expect(d.standardError).toBeCloseTo(0.288675, 6);
    expect(pairedDifference([], [])).toEqual({ mean: 0, standardError: 0 });
    // The margin is 2 standard errors: 0.5 > 0.577 is false; 16 users of the same pattern halve the error.
    expect(clearsMargin([1, 1, 0, 1], [0, 1, 0, 0]).clears).toBe(false);
    const many = (xs: number[]) => Array.from({ length: 16 }, () => xs).flat();
    expect(clearsMargin(many([1, 1, 0, 1]), many([0, 1, 0, 0])).clears).toBe(true);
  });

  /**
   * User u walks s<u>, x<u>-1, x<u>-2, ...; a fake recipe knows the next item (NDCG@10 = 1) for the
   * users `knows(u, features)` says, and lists nothing useful for the others.
   */
  async function choice(knows: (u: number, features: string[]) => boolean) {
    const r = prng(4);
    const events: Event[] = [];
    for (let u = 0; u < 300; u++) {
      for (let k = 0; k < 6; k++) {
        events.push({ USER_ID: `u${u}`, ITEM_ID: k === 0 ? `s${u}` : `x${u}-${k}`, TIMESTAMP: T0 + u * 1000 + k * 60_000, EVENT_TYPE: 'click', EVENT_VALUE: null, SESSION_ID: null, CONTEXT: { noise: `n${Math.floor(r() * 50)}` } });
      }
    }
    const fake = {
      name: 'fake',
      train: async (_input: unknown, params: Record<string, unknown>) => {
        const features = params.features as string[];
        const model: Model = {
          recipe: 'fake',
          recommend: (req) => {
            const u = Number(req.history[0]!.ITEM_ID.slice(1));
            const next = `x${u}-${req.history.length}`;
            return knows(u, features) ? [{ itemId: next, score: 1 }] : [{ itemId: 'nothing', score: 1 }];
          },
          related: () => undefined,
          score: () => [],
          toJSON: () => ({ recipe: 'fake' }),
        };
        return model;
      },
    } as unknown as AnyRecipe;
    return chooseFeatures(events.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP), { features: 'auto' }, { excludeSeen: false }, fake);
  }

  it('a set that wins on validation by less than 2 standard errors is dropped; a clear win is kept', async () => {
    // 3 users of 300 more: +0.01, with a standard error of 0.0057: within the noise.
    const small = await choice((u, f) => u % 10 < 3 || (f.length > 0 && u % 100 === 99));
    expect(small.table!.map((r) => r.ndcg10)).toEqual([0.3, 0.31]);
    expect(small.used).toEqual([]);
    expect(small.reason).toMatch(/within 2 standard errors/);
    // 30% of the users more: kept.
    const clear = await choice((u, f) => u % 10 < (f.length > 0 ? 6 : 3));
    expect(clear.used).toEqual(['context.noise']);
    expect(clear.reason).toMatch(/more than 2 standard errors/);
  });
});

describe("hrnn-metadata's features under a hyperparameter search", () => {
  it('are chosen once, before the trials, and fixed for all of them; given features are not chosen again', async () => {
    const events = contextData(1, false);
    const trainPart = leaveOneOutSplit(events).train;
    const fixed = { hiddenSize: 16, batchSize: 32, negatives: 64, workers: 1 };
    const { params, report } = await searchParams('hrnn-metadata', trainPart, { budgetMs: 120_000, maxTrials: 3, seed: 2, fixed, excludeSeen: false, rungs: [1, 2] });
    expect(report.features?.requested).toBe('auto');
    expect(report.features?.table?.map((r) => r.features)).toEqual([[], ['context.noise']]);
    const table = report.features!.table!;
    const best = table.reduce((a, b) => (b.ndcg10 > a.ndcg10 ? b : a));
    // The best set, or none when it does not clear the margin over none.
    expect([JSON.stringify(best.features), '[]']).toContain(JSON.stringify(report.features!.used));
    expect(report.fixed).toEqual(fixed);
    expect(report.searched).not.toContain('features');
    // Every trial trained with that set (the trials' params hold only what was searched).
    expect(params.features).toEqual(report.features!.used);
    for (const t of report.trials) expect(t.params).not.toHaveProperty('features');

    const given = await searchParams('hrnn-metadata', trainPart, { budgetMs: 120_000, maxTrials: 1, seed: 2, fixed: { ...fixed, features: ['context.noise'] }, excludeSeen: false, rungs: [1, 2] });
    expect(given.report.features).toBeUndefined();
    expect(given.params.features).toEqual(['context.noise']);
  }, 60_000);
});

describe("hrnn-metadata's features: 'auto'", () => {
  it('drops a context field of random values and says so', async () => {
    const events = contextData(1, false);
    const m = await hrnnMetadata.train(events, { ...small, features: 'auto' });
    const f = m.features!;
    expect(f.requested).toBe('auto');
    expect(f.used).toEqual([]);
    expect(f.table!.map((r) => r.features)).toEqual([[], ['context.noise']]);
    expect(f.table![0]!.ndcg10).toBeGreaterThan(f.table![1]!.ndcg10);
    expect(f.reason).toMatch(/^none has the best validation NDCG@10/);
    // The model keeps no trace of the dropped field: the context changes nothing.
    const s1 = m.state([{ ITEM_ID: 'x3', TIMESTAMP: T0, EVENT_TYPE: 'click', CONTEXT: { noise: 'n1' } } as never]);
    const s2 = m.state([{ ITEM_ID: 'x3', TIMESTAMP: T0, EVENT_TYPE: 'click', CONTEXT: { noise: 'n7' } } as never]);
    expect(m.scores(s1, T0)).toEqual(m.scores(s2, T0));
    // The model JSON says it too, and keeps it through a reload.
    const json = JSON.parse(JSON.stringify(m.toJSON())) as HrnnJSON;
    expect(json.features?.used).toEqual([]);
    expect(HrnnModel.fromJSON(json).features).toEqual(f);
  }, 30_000);

  it('keeps an informative field (EVENT_TYPE decides the next item) and drops the noise beside it', async () => {
    const events = contextData(3, true);
    const m = await hrnnMetadata.train(events, { ...small, features: 'auto' });
    const f = m.features!;
    expect(f.table!.map((r) => r.features)).toEqual([[], ['context.EVENT_TYPE', 'context.noise'], ['context.noise'], ['context.EVENT_TYPE']]);
    expect(f.used).toEqual(['context.EVENT_TYPE']);
    const none = f.table![0]!.ndcg10;
    const chosen = f.table!.find((r) => JSON.stringify(r.features) === JSON.stringify(f.used))!;
    expect(chosen.ndcg10).toBeGreaterThan(none + 0.1);
    expect(chosen.ndcg10).toBe(Math.max(...f.table!.map((r) => r.ndcg10)));
  }, 30_000);

  it("'all' and a list use exactly those groups; an unknown group is refused by name", async () => {
    const events = contextData(4, true);
    expect((await hrnnMetadata.train(events, { ...small, epochs: 1, features: 'all' })).features).toMatchObject({ requested: 'all', used: ['context.EVENT_TYPE', 'context.noise'] });
    expect((await hrnnMetadata.train(events, { ...small, epochs: 1, features: ['context.EVENT_TYPE'] })).features).toMatchObject({ requested: 'list', used: ['context.EVENT_TYPE'] });
    await expect(hrnnMetadata.train(events, { ...small, features: ['item.GENRE'] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'params.features' });
    await expect(hrnnMetadata.train(events, { ...small, features: 'some' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'params.features' });
  }, 30_000);
});

describe("recipe 'auto'", () => {
  const rows = [...syntheticInteractions({ seed: 5, users: 200, items: 150, events: 4000 })];
  const params = { ...small, epochs: 2 };

  it('keeps the candidate with the best validation NDCG@10, as each recipe scores alone on the same split', async () => {
    const choice = await chooseRecipe(rows, { params, excludeSeen: false });
    // Synthetic events carry EVENT_TYPE click / purchase: hrnn-metadata is a candidate with it.
    expect(choice.table.map((r) => r.recipe)).toEqual(['popularity-count', 'sims', 'hrnn', 'hrnn-metadata']);
    const v = validationSplit(rows);
    const ctx = { split: v, catalogueSize: new Set(rows.map((e) => e.ITEM_ID)).size, excludeSeen: false };
    const alone = [
      await validationScore(recipeNamed('popularity-count'), {}, ctx),
      await validationScore(recipeNamed('sims'), {}, ctx),
      await validationScore(recipeNamed('hrnn'), params, ctx),
      await validationScore(recipeNamed('hrnn-metadata'), { ...params, features: ['context.EVENT_TYPE'] }, ctx),
    ].map((s) => s.ndcg10);
    choice.table.forEach((r, i) => expect(r.ndcg10).toBeCloseTo(alone[i]!, 6));
    const best = alone.indexOf(Math.max(...alone));
    expect(choice.recipe).toBe(choice.table[best]!.recipe);
    expect(choice.validationUsers).toBe(v.tests.length);
    expect(choice.reason).toContain(`best validation NDCG@10 (${choice.table[best]!.ndcg10})`);
  }, 30_000);

  it('never looks at the test split: other held-out items give the same choice; the report names the chosen recipe', async () => {
    const s = leaveOneOutSplit(rows);
    const truths = new Set(s.tests.flatMap((t) => t.truth));
    // Every test user's held-out event now names another item.
    const other = rows.map((e) => (truths.has(e) ? { ...e, ITEM_ID: `swapped-${e.ITEM_ID}` } : e));
    const o = { recipe: 'auto', split: 'loo' as const, final: false, params };
    const a = await trainAndEvaluate(rows, o);
    const b = await trainAndEvaluate(other, o);
    expect(a.report.auto).toBeDefined();
    expect(b.report.auto!.table.map((r) => r.ndcg10)).toEqual(a.report.auto!.table.map((r) => r.ndcg10));
    expect(b.report.auto!.recipe).toBe(a.report.auto!.recipe);
    expect(a.report.recipe).toBe(a.report.auto!.recipe);
    expect(a.model.recipe).toBe(a.report.auto!.recipe);
    // The test metrics do depend on the truth: the swapped items were never seen in training.
    expect(b.report.metrics.normalized_discounted_cumulative_gain_at_10).toBeLessThan(a.report.metrics.normalized_discounted_cumulative_gain_at_10);
  }, 30_000);

  it('routes parameters to the recipes that know them and refuses the others by name', async () => {
    await expect(chooseRecipe(rows, { params: { nope: 1 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'params.nope' });
    await expect(trainAndEvaluate(rows, { recipe: 'autox' })).rejects.toThrow(/known: .*auto/);
  });
});
