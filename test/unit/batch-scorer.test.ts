/**
 * Batch scoring through TensorFlow.js (wasm) gives the JavaScript scores, alone and in batches,
 * cold items included; the query service's micro-batches answer concurrent queries as the
 * JavaScript path does.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { BatchScorer, batchScorerBackend } from '../../src/model/batch-scorer.js';
import { prng } from '../../src/data/synthetic.js';
import { hrnn, type HrnnModel } from '../../src/recipes/hrnn.js';
import type { UserState } from '../../src/state/model.js';
import { QueryService } from '../../src/serving/query.js';
import { Resources } from '../../src/stream/resources.js';
import { ServingModel } from '../../src/serving/served-model.js';

const events = [...syntheticInteractions({ seed: 8, users: 80, items: 150, events: 2500, start: Date.UTC(2026, 0, 1) })];
let model: HrnnModel;

beforeAll(async () => {
  expect(await batchScorerBackend()).toBe(true);
  model = await hrnn.train(events, { hiddenSize: 24, epochs: 1, workers: 1, negatives: 64, seed: 3 });
}, 120_000);

const vector = (seed: number, n: number) => {
  const r = prng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
};

describe('BatchScorer', () => {
  it('scores one query and a batch as the JavaScript loop does', () => {
    const o = model.outputLayer();
    const scorer = new BatchScorer(o.E, o.b, o.items, o.hidden);
    const qs = [1, 2, 3, 4, 5].map((k) => vector(k, o.hidden));
    const batch = scorer.score(qs);
    const single = scorer.score([qs[2]!])[0]!;
    qs.forEach((q, i) => {
      const js = model.scoresOf(q);
      expect(batch[i]!.length).toBe(o.items);
      for (let j = 0; j < o.items; j++) expect(batch[i]![j]).toBeCloseTo(js[j]!, 4);
    });
    expect([...single]).toEqual([...batch[2]!]);
    scorer.dispose();
    expect(() => scorer.score(qs)).toThrow(/after dispose/);
  });

  it('cold items are scored in JavaScript after the trained ones', () => {
    const q = vector(9, model.outputLayer().hidden);
    const o = model.outputLayer();
    const trained = new BatchScorer(o.E, o.b, o.items, o.hidden).score([q])[0]!;
    const js = model.scoresOf(q);
    const all = model.withColdScores(q, trained);
    expect(all.length).toBe(js.length);
    for (let j = 0; j < js.length; j++) expect(all[j]).toBeCloseTo(js[j]!, 4);
  });
});

describe('QueryService with batch scoring', () => {
  it('answers concurrent queries as the JavaScript path does', async () => {
    const serving = new ServingModel();
    serving.swap({ version: 'v1', model, excludeSeen: false });
    const users = new Map<string, UserState>();
    for (const e of events) {
      const u = users.get(e.USER_ID) ?? { lastTs: 0, sessionKey: null, session: 0, sessionStart: 0, total: 0, events: [], seen: [] };
      u.events.push({ item: e.ITEM_ID, ts: e.TIMESTAMP, type: e.EVENT_TYPE, value: null, session: 0 });
      u.total++;
      users.set(e.USER_ID, u);
    }
    const deps = (batchScoring: boolean) =>
      new QueryService({
        serving,
        userState: async (id) => (users.has(id) ? { user: users.get(id)!, hrnn: undefined } : undefined),
        forEachItemCount: async () => undefined,
        items: async () => new Map(),
        user: async () => undefined,
        resources: new Resources(),
        trendingHalfLifeMs: 1e9,
        now: () => Date.UTC(2026, 0, 2),
        batchScoring,
      });
    const js = deps(false);
    const batched = deps(true);
    await new Promise((r) => setTimeout(r, 50)); // the backend check settles
    const ids = [...users.keys()].slice(0, 30);
    const a = await Promise.all(ids.map((userId) => js.recommendations({ userId, numResults: 10 })));
    const b = await Promise.all(ids.map((userId) => batched.recommendations({ userId, numResults: 10 })));
    expect(js.scoring()).toEqual({ batched: false, batches: 0, queries: 0 });
    const stats = batched.scoring();
    expect(stats.batched).toBe(true);
    expect(stats.queries).toBe(ids.length);
    expect(stats.batches).toBeLessThan(ids.length);
    for (let i = 0; i < ids.length; i++) {
      expect(b[i]!.itemList.map((s) => s.itemId), ids[i]).toEqual(a[i]!.itemList.map((s) => s.itemId));
      b[i]!.itemList.forEach((s, k) => expect(s.score).toBeCloseTo(a[i]!.itemList[k]!.score!, 4));
    }
  }, 60_000);
});
