import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, useBackend } from '../../src/model/backend.js';
import { applyEvent, emptyState, gruStep, type GruWeights } from '../../src/model/hrnn-math.js';
import { AdagradM, crossEntropyRows, encode, gruGraph, mm, Sampler } from '../../src/model/hrnn-train.js';
import { prng } from '../../src/data/synthetic.js';
import { hrnn, HrnnModel, type HrnnJSON } from '../../src/recipes/hrnn.js';
import type { InteractionFields } from '../../src/state/apply.js';

const random = prng(7);
const rand = (n: number, scale = 0.5) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);

/** Runs `f` on the wasm backend and on the cpu backend; returns both results as arrays. */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ wasm: Float32Array[]; cpu: Float32Array[] }> {
  const run = () => tf.tidy(() => [f()].flat().map((t) => t.dataSync() as Float32Array));
  expect(await useBackend('wasm')).toBe(true);
  const wasm = run();
  expect(await useBackend('cpu')).toBe(true);
  const cpu = run();
  await useBackend('wasm');
  return { wasm, cpu };
}

function expectClose(a: Float32Array, b: Float32Array, tol = 1e-4) {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
  expect(worst).toBeLessThan(tol);
}

/** Users walking a fixed chain of items (item k is always followed by item k+1 mod n). */
function chainData(users: number, items: number, length: number, seed: number): InteractionFields[] {
  const r = prng(seed);
  const out: InteractionFields[] = [];
  for (let u = 0; u < users; u++) {
    let k = Math.floor(r() * items);
    const t0 = 1_700_000_000_000 + u * 1000;
    for (let t = 0; t < length; t++) {
      out.push({ USER_ID: `u${u}`, ITEM_ID: `i${k}`, TIMESTAMP: t0 + t * 60_000, EVENT_TYPE: 'click', EVENT_VALUE: null, SESSION_ID: null });
      k = (k + 1) % items;
    }
  }
  return out.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP);
}

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('TensorFlow.js pieces on wasm match the cpu backend', () => {
  it('mm: product and its explicitly transposed gradient', async () => {
    const a = rand(7 * 5);
    const b = rand(5 * 9);
    const { wasm, cpu } = await onBoth(() => {
      const A = tf.tensor2d(a, [7, 5]);
      const B = tf.tensor2d(b, [5, 9]);
      const value = mm(A, B);
      const grads = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(mm(x, y))))([A, B]);
      // The reference: the stock matMul's own gradient.
      const ref = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D))))([A, B]);
      return [value, ...grads, ...ref];
    });
    for (let k = 0; k < 3; k++) expectClose(wasm[k]!, cpu[k]!);
    expectClose(cpu[1]!, cpu[3]!);
    expectClose(cpu[2]!, cpu[4]!);
  });

  it('crossEntropyRows: value and fused gradient equal −logSoftmax on the diagonal', async () => {
    const logits = rand(4 * 10, 3);
    const { wasm, cpu } = await onBoth(() => {
      const L = tf.tensor2d(logits, [4, 10]);
      const diag = tf.concat([tf.eye(4), tf.zeros([4, 6])], 1);
      const w = tf.tensor1d([1, 0.5, 2, 0]);
      const fused = (x: tf.Tensor) => tf.sum(tf.mul(crossEntropyRows(x as tf.Tensor2D, diag), w));
      const plain = (x: tf.Tensor) => tf.sum(tf.mul(tf.neg(tf.sum(tf.mul(tf.logSoftmax(x as tf.Tensor2D), diag), 1)), w));
      return [crossEntropyRows(L, diag), tf.grad(fused)(L), tf.neg(tf.sum(tf.mul(tf.logSoftmax(L), diag), 1)), tf.grad(plain)(L)];
    });
    expectClose(wasm[0]!, cpu[0]!);
    expectClose(wasm[1]!, cpu[1]!);
    expectClose(cpu[0]!, cpu[2]!);
    expectClose(cpu[1]!, cpu[3]!);
  });

  it('the training graph GRU equals the JavaScript GRU used for serving', async () => {
    const H = 6;
    const In = 4;
    const w: GruWeights = { wx: rand(In * 3 * H), wrz: rand(H * 2 * H), wh: rand(H * H), b: rand(3 * H) };
    const x = rand(2 * In);
    const h = rand(2 * H);
    const { wasm, cpu } = await onBoth(() =>
      gruGraph(
        { wx: tf.tensor2d(w.wx, [In, 3 * H]), wrz: tf.tensor2d(w.wrz, [H, 2 * H]), wh: tf.tensor2d(w.wh, [H, H]), b: tf.tensor1d(w.b) },
        tf.tensor2d(x, [2, In]),
        tf.tensor2d(h, [2, H]),
      ),
    );
    expectClose(wasm[0]!, cpu[0]!);
    const js = new Float32Array(2 * H);
    for (let r = 0; r < 2; r++) js.set(gruStep(w, x.subarray(r * In, (r + 1) * In), h.subarray(r * H, (r + 1) * H), H), r * H);
    expectClose(wasm[0]!, js, 1e-5);
  });
});

describe('training helpers', () => {
  it('encode marks session starts by the timeout and counts items', () => {
    const e = (u: string, i: string, ts: number) => ({ USER_ID: u, ITEM_ID: i, TIMESTAMP: ts });
    const d = encode([e('a', 'x', 0), e('a', 'y', 1000), e('b', 'x', 1500), e('a', 'x', 1000 + 31 * 60_000)], 30 * 60_000);
    expect(d.itemIds).toEqual(['x', 'y']);
    expect([...d.counts]).toEqual([3, 1]);
    expect(d.users.map((u) => [...u.items])).toEqual([[0, 1, 0], [0]]);
    expect(d.users.map((u) => [...u.starts])).toEqual([[1, 0, 1], [1]]);
  });

  it('the sampler draws in proportion to the weights', () => {
    const s = new Sampler(Float64Array.from([1, 0, 3]), prng(1));
    const n = [0, 0, 0];
    for (let k = 0; k < 40_000; k++) n[s.draw()]!++;
    expect(n[1]).toBe(0);
    expect(n[2]! / n[0]!).toBeGreaterThan(2.8);
    expect(n[2]! / n[0]!).toBeLessThan(3.2);
  });

  it('Adagrad with momentum: first step is lr·g/|g|, momentum carries into the second', () => {
    const opt = new AdagradM(2, 0.1, 0.5);
    const p = Float32Array.from([1, 1]);
    opt.apply(p, [2, -4]);
    expect(p[0]).toBeCloseTo(0.9, 5);
    expect(p[1]).toBeCloseTo(1.1, 5);
    opt.apply(p, [0, 0]);
    expect(p[0]).toBeCloseTo(0.85, 5);
  });
});

describe('hrnn recipe', () => {
  const chain = chainData(120, 40, 12, 3);
  const params = { hiddenSize: 32, epochs: 8, batchSize: 32, negatives: 64, dropoutHidden: 0, learningRate: 0.1, seed: 5 };
  let model: HrnnModel;

  beforeAll(async () => {
    model = await hrnn.train(chain, params);
  }, 120_000);

  it('learns deterministic transitions: hit@1 near 1 for the next item of a chain', () => {
    let hits = 0;
    let n = 0;
    for (let k = 0; k < 40; k++) {
      const history = [0, 1, 2].map((t) => ({ ITEM_ID: `i${(k + t) % 40}`, TIMESTAMP: 1_800_000_000_000 + t * 60_000 }));
      const top = model.recommend({ history, numResults: 1, at: 1_800_000_000_000 + 3 * 60_000 });
      n++;
      if (top[0]?.itemId === `i${(k + 3) % 40}`) hits++;
    }
    expect(hits / n).toBeGreaterThan(0.9);
  });

  it('an event changes the user state and the next recommendations', () => {
    const base = [{ ITEM_ID: 'i5', TIMESTAMP: 1_800_000_000_000 }];
    const s1 = model.state(base);
    const s2 = model.state([{ ITEM_ID: 'i17', TIMESTAMP: 1_800_000_060_000 }], s1);
    expect([...s2.h]).not.toEqual([...s1.h]);
    const before = model.recommend({ history: base, numResults: 3 })[0]!.itemId;
    const after = model.recommend({ history: [...base, { ITEM_ID: 'i17', TIMESTAMP: 1_800_000_060_000 }], numResults: 3 })[0]!.itemId;
    expect(before).toBe('i6');
    expect(after).toBe('i18');
  });

  it('save and load give identical scores and lists', () => {
    const copy = HrnnModel.fromJSON(JSON.parse(JSON.stringify(model.toJSON())) as HrnnJSON);
    const history = [{ ITEM_ID: 'i3', TIMESTAMP: 1 }, { ITEM_ID: 'i4', TIMESTAMP: 2 }];
    const items = ['i1', 'i5', 'nope', 'i39'];
    expect(copy.score(history, items)).toEqual(model.score(history, items));
    expect(copy.score(history, items)[2]).toBeUndefined();
    expect(copy.recommend({ history, numResults: 10 })).toEqual(model.recommend({ history, numResults: 10 }));
    expect(copy.related('i7', 5)).toEqual(model.related('i7', 5));
    expect(copy.related('nope', 5)).toBeUndefined();
  });

  it('is deterministic for a seed', async () => {
    const again = await hrnn.train(chain.slice(0, 400), { ...params, epochs: 1 });
    const once = await hrnn.train(chain.slice(0, 400), { ...params, epochs: 1 });
    expect(Buffer.from(again.weights.E.buffer).equals(Buffer.from(once.weights.E.buffer))).toBe(true);
    const other = await hrnn.train(chain.slice(0, 400), { ...params, epochs: 1, seed: 6 });
    expect(Buffer.from(other.weights.E.buffer).equals(Buffer.from(once.weights.E.buffer))).toBe(false);
  });

  it('a session timeout between events folds the session into the user state', () => {
    const w = model.weights;
    const s0 = applyEvent(w, emptyState(w.hidden), model.index.get('i1')!, 0, 30 * 60_000);
    const near = applyEvent(w, s0, model.index.get('i2')!, 60_000, 30 * 60_000);
    const far = applyEvent(w, s0, model.index.get('i2')!, 31 * 60_000, 30 * 60_000);
    expect([...near.c]).toEqual([...s0.c]);
    expect([...far.c]).not.toEqual([...s0.c]);
  });
});

describe('hrnn parameters', () => {
  it('are checked by name and bound before training starts', async () => {
    await expect(hrnn.train([], { epochs: 'ten' as unknown as number })).rejects.toThrow(/hrnn parameter epochs: .*"ten"/);
    await expect(hrnn.train([], { hiddenSize: 0 })).rejects.toThrow(/hrnn parameter hiddenSize/);
    await expect(hrnn.train([], { hiden: 10 } as never)).rejects.toThrow(/hrnn parameter hiden.*parameters: hiddenSize/);
    await expect(hrnn.train([], { hiden: 10 } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'params.hiden' });
  });
});
