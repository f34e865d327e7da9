import { beforeAll, describe, expect, it } from 'vitest';
import { prng } from '../../src/data/synthetic.js';
import { initBackend } from '../../src/model/backend.js';
import { hrnn, hrnnColdstart, hrnnMetadata, HrnnModel, type HrnnJSON } from '../../src/recipes/hrnn.js';
import type { InteractionFields } from '../../src/state/apply.js';

type Event = InteractionFields & { CONTEXT?: Record<string, string> };
const T0 = 1_700_000_000_000;
const ev = (u: string, item: string, ts: number, type = 'click'): Event => ({ USER_ID: u, ITEM_ID: item, TIMESTAMP: ts, EVENT_TYPE: type, EVENT_VALUE: null, SESSION_ID: null });
const byTime = (a: Event, b: Event) => a.TIMESTAMP - b.TIMESTAMP;
// features 'all': these tests are about what the features do once used (the choice: training-auto.test.ts).
const small = { hiddenSize: 32, epochs: 10, batchSize: 32, negatives: 64, dropoutHidden: 0, learningRate: 0.1, seed: 3, workers: 1, features: 'all' as const };

beforeAll(async () => {
  await initBackend('wasm');
});

describe('hrnn-metadata', () => {
  it("user metadata sets a new user's starting state: each segment gets its own items", async () => {
    const r = prng(1);
    const events: Event[] = [];
    const users = [];
    for (let u = 0; u < 200; u++) {
      const seg = u % 2 === 0 ? 'a' : 'b';
      users.push({ USER_ID: `u${u}`, METADATA: { SEGMENT: seg } });
      let k = Math.floor(r() * 20);
      for (let t = 0; t < 6; t++) {
        events.push(ev(`u${u}`, `${seg}${k}`, T0 + u * 1000 + t * 60_000));
        k = (k + 1) % 20;
      }
    }
    events.sort(byTime);
    const meta = await hrnnMetadata.train(events, small, { metadata: { users } });
    const top = (m: HrnnModel, seg: string) => m.top(m.scores(m.initialState({ METADATA: { SEGMENT: seg } })), 5).map((s) => s.itemId);
    const a = top(meta, 'a');
    const b = top(meta, 'b');
    expect(a.filter((i) => i.startsWith('a')).length).toBeGreaterThanOrEqual(4);
    expect(b.filter((i) => i.startsWith('b')).length).toBeGreaterThanOrEqual(4);
    // Without metadata a new user is a new user: one list for both.
    const plain = await hrnn.train(events, small);
    expect(top(plain, 'a')).toEqual(top(plain, 'b'));
  }, 120_000);

  it('event context (EVENT_TYPE) changes what comes next: a click leads to k+1, a purchase to k+10', async () => {
    const r = prng(2);
    const events: Event[] = [];
    for (let u = 0; u < 300; u++) {
      let k = Math.floor(r() * 30);
      for (let t = 0; t < 8; t++) {
        const type = r() < 0.5 ? 'click' : 'purchase';
        events.push(ev(`u${u}`, `x${k}`, T0 + u * 1000 + t * 60_000, type));
        k = (k + (type === 'click' ? 1 : 10)) % 30;
      }
    }
    events.sort(byTime);
    const hit = (m: HrnnModel, type: string, step: number) => {
      let hits = 0;
      for (let k = 0; k < 30; k++) {
        const s = m.state([{ ITEM_ID: `x${k}`, TIMESTAMP: T0, EVENT_TYPE: type }]);
        if (m.top(m.scores(s, T0 + 60_000), 1)[0]?.itemId === `x${(k + step) % 30}`) hits++;
      }
      return hits / 30;
    };
    const meta = await hrnnMetadata.train(events, small);
    expect(hit(meta, 'click', 1)).toBeGreaterThan(0.8);
    expect(hit(meta, 'purchase', 10)).toBeGreaterThan(0.8);
    // The plain model sees the same input for both: it cannot be right on both.
    const plain = await hrnn.train(events, small);
    expect(hit(plain, 'click', 1) + hit(plain, 'purchase', 10)).toBeLessThan(1.3);
  }, 120_000);
});

describe('hrnn-coldstart', () => {
  const CATS = 4;
  const PER = 15;
  let model: HrnnModel;
  const now = T0 + 86_400_000;

  beforeAll(async () => {
    const r = prng(4);
    const events: Event[] = [];
    for (let u = 0; u < 240; u++) {
      const c = u % CATS;
      let k = Math.floor(r() * PER);
      for (let t = 0; t < 6; t++) {
        events.push(ev(`u${u}`, `c${c}-${k}`, T0 + u * 1000 + t * 60_000));
        k = (k + 1 + Math.floor(r() * 3)) % PER;
      }
    }
    events.sort(byTime);
    const items = [];
    for (let c = 0; c < CATS; c++) for (let k = 0; k < PER; k++) items.push({ ITEM_ID: `c${c}-${k}`, CREATION_TIMESTAMP: null, METADATA: { CATEGORY: `cat${c}`, PRICE: 10 + c } });
    // In the catalogue, never interacted with.
    items.push({ ITEM_ID: 'n0', CREATION_TIMESTAMP: null, METADATA: { CATEGORY: 'cat2', PRICE: 12 } });
    model = await hrnnColdstart.train(events, { ...small, explorationWeight: 0.5 }, { metadata: { items } });
  }, 120_000);

  const cosine = (a: Float32Array, b: Float32Array) => {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < a.length; i++) {
      ab += a[i]! * b[i]!;
      aa += a[i]! ** 2;
      bb += b[i]! ** 2;
    }
    return ab / Math.sqrt(aa * bb);
  };
  const vector = (m: HrnnModel, id: string) => {
    // The score of every item for a state that is exactly e_id is q·E, so use related(): the
    // session right after the item. Compare the items' own vectors through the scores instead.
    const s = m.state([{ ITEM_ID: id, TIMESTAMP: now }]);
    return m.scores(s, now);
  };

  it('an item without interactions gets a vector from its metadata, like its category', () => {
    expect(model.index.has('n0')).toBe(true);
    const n0 = vector(model, 'n0');
    const sims = [0, 1, 2, 3].map((c) => {
      let sum = 0;
      for (let k = 0; k < PER; k++) sum += cosine(n0, vector(model, `c${c}-${k}`));
      return sum / PER;
    });
    expect(sims.indexOf(Math.max(...sims))).toBe(2);
  });

  it('a new item with metadata appears in recommendations without retraining, marked exploration', () => {
    expect(model.addItem({ ITEM_ID: 'fresh', CREATION_TIMESTAMP: now - 3_600_000, METADATA: { CATEGORY: 'cat1', PRICE: 11 } })).toBe(true);
    expect(model.addItem({ ITEM_ID: 'fresh', CREATION_TIMESTAMP: now, METADATA: { CATEGORY: 'cat1' } })).toBe(false);
    model.random = prng(5);
    const history = [0, 1, 2].map((k) => ({ ITEM_ID: `c1-${k}`, TIMESTAMP: now - 60_000 + k }));
    let explored = 0;
    for (let n = 0; n < 20; n++) {
      const list = model.recommend({ history, numResults: 10, at: now });
      const fresh = list.find((s) => s.itemId === 'fresh');
      if (fresh) {
        explored++;
        expect(fresh.reason).toBe('exploration');
      }
      expect(new Set(list.map((s) => s.itemId)).size).toBe(10);
    }
    expect(explored).toBeGreaterThan(15);
    // Past the age cutoff it is not explored any more.
    const later = now + 31 * 86_400_000;
    const old = model.recommend({ history: history.map((h) => ({ ...h, TIMESTAMP: later - 60_000 })), numResults: 10, at: later });
    expect(old.some((s) => s.reason === 'exploration')).toBe(false);
  });

  it('save and load keep the metadata parts, cold items and scores', () => {
    const copy = HrnnModel.fromJSON(JSON.parse(JSON.stringify(model.toJSON())) as HrnnJSON);
    expect(copy.recipe).toBe('hrnn-coldstart');
    expect(copy.index.get('fresh')).toBe(model.index.get('fresh'));
    const history = [{ ITEM_ID: 'c3-1', TIMESTAMP: now, EVENT_TYPE: 'click' }];
    expect(copy.scores(copy.state(history), now)).toEqual(model.scores(model.state(history), now));
    expect(copy.addItem({ ITEM_ID: 'fresh2', CREATION_TIMESTAMP: null, METADATA: { CATEGORY: 'cat0' } })).toBe(true);
  });
});
