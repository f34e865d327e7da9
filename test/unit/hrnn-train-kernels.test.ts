/**
 * The training step's hand-written pieces (src/model/hrnn-train.ts) against the autodiff graphs
 * they replace: the GRU cell with its own backward pass, the sampled-softmax head (softmax in one
 * kernel, loss and gradient in JavaScript), the per-item gradient rows; and the target limit.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { prng } from '../../src/data/synthetic.js';
import { initBackend, tf } from '../../src/model/backend.js';
import {
  AdagradM,
  crossEntropyFromSoftmax,
  crossEntropyRows,
  dropoutMask,
  encode,
  gruCell,
  gruGraph,
  HRNN_TRAIN_DEFAULTS,
  initLayer,
  mm,
  releaseKept,
  RowGrads,
  sampledSoftmaxHead,
  trainHrnn,
} from '../../src/model/hrnn-train.js';

const random = prng(11);
const rand = (n: number, scale = 0.5) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);

/** Largest |a − b| / (1 + |b|). */
function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
  return w;
}

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

afterEach(() => releaseKept());

describe('gruCell (hand-written backward) equals gruGraph through autodiff', () => {
  it('value and the gradients by x, h and every weight, within 1e-5 relative', () => {
    const [B, In, H] = [5, 4, 6];
    const vals = [rand(B * In), rand(B * H), rand(In * 3 * H), rand(H * 2 * H), rand(H * H), rand(3 * H)];
    const shapes = [[B, In], [B, H], [In, 3 * H], [H, 2 * H], [H, H], [3 * H]];
    // A loss that weighs every output differently, so a wrong gradient cannot cancel out.
    const weights = tf.tensor2d(rand(B * H, 2), [B, H]);
    const run = (cell: (...t: tf.Tensor[]) => tf.Tensor) =>
      tf.tidy(() => {
        const inputs = vals.map((v, k) => tf.tensor(v, shapes[k]));
        const { value, grads } = tf.valueAndGrads((...t: tf.Tensor[]) => tf.sum(tf.mul(cell(...t), weights)) as tf.Scalar)(inputs);
        const out = cell(...inputs).dataSync();
        return { loss: value.dataSync()[0]!, out, grads: grads.map((g) => g.dataSync()) };
      });
    const mine = run((x, h, wx, wrz, wh, b) => gruCell(x as tf.Tensor2D, h as tf.Tensor2D, wx as tf.Tensor2D, wrz as tf.Tensor2D, wh as tf.Tensor2D, b as tf.Tensor1D));
    releaseKept();
    const ref = run((x, h, wx, wrz, wh, b) => gruGraph({ wx: wx as tf.Tensor2D, wrz: wrz as tf.Tensor2D, wh: wh as tf.Tensor2D, b: b as tf.Tensor1D }, x as tf.Tensor2D, h as tf.Tensor2D));
    expect(worst(mine.out, ref.out)).toBeLessThan(1e-5);
    expect(Math.abs(mine.loss - ref.loss)).toBeLessThan(1e-4);
    expect(mine.grads).toHaveLength(6);
    mine.grads.forEach((g, k) => {
      expect(worst(g, ref.grads[k]!), `gradient ${k}`).toBeLessThan(1e-5);
      // Not vacuous: every gradient has non-zero entries.
      expect(g.some((v) => Math.abs(v) > 1e-4)).toBe(true);
    });
    weights.dispose();
  });

  it('keeps what its backward pass needs until releaseKept, then frees it', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const t = (n: number[], k: number) => tf.tensor(rand(n.reduce((a, b) => a * b)), n);
      const [x, h] = [t([2, 3], 0), t([2, 3], 1)] as tf.Tensor2D[];
      tf.grads((a: tf.Tensor) => tf.sum(gruCell(a as tf.Tensor2D, h!, t([3, 9], 2) as tf.Tensor2D, t([3, 6], 3) as tf.Tensor2D, t([3, 3], 4) as tf.Tensor2D, t([9], 5) as tf.Tensor1D)))([x!]);
    });
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    releaseKept();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('initLayer (hand-written backward) equals tanh(c·wi + bi) through autodiff', () => {
  it('value and the gradients by c, wi and bi, within 1e-5 relative', () => {
    const [B, H] = [5, 6];
    const vals = [rand(B * H, 1), rand(H * H, 1), rand(H, 1)];
    const shapes = [[B, H], [H, H], [H]];
    const weights = tf.tensor2d(rand(B * H, 2), [B, H]);
    const run = (layer: (c: tf.Tensor2D, wi: tf.Tensor2D, bi: tf.Tensor1D) => tf.Tensor) =>
      tf.tidy(() => {
        const inputs = vals.map((v, k) => tf.tensor(v, shapes[k]));
        const f = (c: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(layer(c as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D), weights)) as tf.Scalar;
        const { grads } = tf.valueAndGrads(f)(inputs);
        return { out: layer(inputs[0] as tf.Tensor2D, inputs[1] as tf.Tensor2D, inputs[2] as tf.Tensor1D).dataSync(), grads: grads.map((g) => g.dataSync()) };
      });
    const mine = run(initLayer);
    releaseKept();
    const ref = run((c, wi, bi) => tf.tanh(tf.add(mm(c, wi), bi)));
    expect(worst(mine.out, ref.out)).toBeLessThan(1e-5);
    mine.grads.forEach((g, k) => {
      expect(worst(g, ref.grads[k]!), `gradient ${k}`).toBeLessThan(1e-5);
      expect(g.some((v) => Math.abs(v) > 1e-4)).toBe(true);
    });
    weights.dispose();
  });
});

describe('dropoutMask', () => {
  it('keeps 1 − rate of the entries, scaled by 1/(1 − rate); seeded', () => {
    const m = dropoutMask(new Float32Array(20_000), 0.2, prng(3));
    const kept = m.filter((v) => v !== 0);
    expect(new Set(kept)).toEqual(new Set([Math.fround(1 / 0.8)]));
    expect(kept.length / m.length).toBeGreaterThan(0.79);
    expect(kept.length / m.length).toBeLessThan(0.81);
    expect(dropoutMask(new Float32Array(50), 0.2, prng(3))).toEqual(m.subarray(0, 50));
  });
});

describe('sampledSoftmaxHead equals the autodiff cross-entropy over qd·Oᵀ + bias', () => {
  it('loss, dq, the columns\u2019 gradients and the biases\u2019, within 1e-5 relative', () => {
    const [B, C, H] = [4, 11, 5];
    const qd = rand(B * H, 1);
    const O = rand(C * H, 1);
    const bias = rand(C, 1);
    const weight = Float32Array.from([1, 1, 0, 1]);
    const norm = 3;
    const head = sampledSoftmaxHead(B, C, H);
    const mine = tf.tidy(() => {
      const Ot = tf.tensor2d(O, [C, H]);
      const { value, grads } = tf.valueAndGrads((q: tf.Tensor) => head.loss(q as tf.Tensor2D, Ot, tf.tensor1d(bias), weight, norm))([tf.tensor2d(qd, [B, H])]);
      return { loss: value.dataSync()[0]!, dq: grads[0]!.dataSync() };
    });
    const ref = tf.tidy(() => {
      const diag = tf.concat([tf.eye(B), tf.zeros([B, C - B])], 1);
      const f = (q: tf.Tensor, o: tf.Tensor, b: tf.Tensor) =>
        tf.div(tf.sum(tf.mul(crossEntropyRows(tf.add(tf.matMul(q as tf.Tensor2D, o as tf.Tensor2D, false, true), b) as tf.Tensor2D, diag), tf.tensor1d(weight))), norm) as tf.Scalar;
      const { value, grads } = tf.valueAndGrads(f)([tf.tensor2d(qd, [B, H]), tf.tensor2d(O, [C, H]), tf.tensor1d(bias)]);
      return { loss: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync()) };
    });
    expect(Math.abs(mine.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    expect(worst(mine.dq, ref.grads[0]!)).toBeLessThan(1e-5);
    expect(worst(head.gO, ref.grads[1]!)).toBeLessThan(1e-5);
    expect(worst(head.gBias, ref.grads[2]!)).toBeLessThan(1e-5);
    // Row 2 has weight 0: no gradient reaches its query state.
    expect(Array.from(mine.dq.subarray(2 * H, 3 * H)).every((v) => v === 0)).toBe(true);
    head.dispose();
  });

  it('a label whose probability underflows gets its loss from the logits, not −log 0', () => {
    // Row 0's label logit is 200 below its best column: softmax gives 0 in float32.
    const logits = Float32Array.from([-100, 100, 0, 0, 0, 0]);
    const P = tf.tidy(() => tf.softmax(tf.tensor2d(logits, [2, 3])).dataSync() as Float32Array);
    expect(P[0]).toBe(0);
    const gBias = new Float32Array(3);
    const loss = crossEntropyFromSoftmax(P, () => logits, Float32Array.from([1, 1]), 2, 2, 3, gBias);
    // Row 0: log(e^-100 + e^100 + 1) + 100 = 200 (to float precision); row 1: log 3.
    expect(loss).toBeCloseTo((200 + Math.log(3)) / 2, 3);
  });
});

describe('RowGrads', () => {
  it('sums gradients per item in first-touched order and updates each row once', () => {
    const H = 3;
    const rows = new RowGrads(10, H, 4);
    const src = Float32Array.from([1, 2, 3, 10, 20, 30, 100, 200, 300]);
    rows.add(7, src, 0);
    rows.add(2, src, 3);
    rows.add(7, src, 6);
    const params = new Float32Array(10 * H);
    const opt = new AdagradM(10 * H, 1, 0);
    rows.apply(opt, params);
    // Adagrad's first step with no momentum is −lr·g/|g| per element: −1 where touched.
    for (const item of [7, 2]) expect(Array.from(params.subarray(item * H, item * H + H)).map((v) => Math.round(v * 1e4) / 1e4)).toEqual([-1, -1, -1]);
    expect(params.filter((v) => v !== 0)).toHaveLength(6);
    // The sums went into the accumulators: item 7's first element saw (1 + 100)².
    expect(opt.acc[7 * H]).toBeCloseTo(101 * 101, 0);
    rows.clear();
    rows.add(2, src, 0);
    const again = new Float32Array(10 * H);
    rows.apply(new AdagradM(10 * H, 1, 0), again);
    expect(again.filter((v) => v !== 0)).toHaveLength(3);
  });
});

describe('a training run', () => {
  /** 40 users walking item chains (item k, then k+1 mod 60), one session each. */
  const chains = () => {
    const rows = [];
    for (let u = 0; u < 40; u++) for (let t = 0; t < 12; t++) rows.push({ USER_ID: `u${u}`, ITEM_ID: `i${(3 * u + t) % 60}`, TIMESTAMP: t * 60_000 + u });
    return encode(rows.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP), 30 * 60_000);
  };
  for (const loss of ['cross-entropy', 'bpr-max'] as const) {
    it(`${loss}: learns (the loss falls) and leaves no tensor behind`, () => {
      const before = tf.memory().numTensors;
      const t = trainHrnn(chains(), { ...HRNN_TRAIN_DEFAULTS, hiddenSize: 16, batchSize: 8, negatives: 8, epochs: 6, workers: 1, loss, learningRate: 0.1, dropoutHidden: 0 });
      expect(tf.memory().numTensors).toBe(before);
      expect(t.lossByEpoch).toHaveLength(6);
      expect(t.lossByEpoch.every(Number.isFinite)).toBe(true);
      // BPR-max's score regulariser keeps its loss from falling as far.
      expect(t.lossByEpoch.at(-1)!).toBeLessThan(t.lossByEpoch[0]! * (loss === 'bpr-max' ? 0.9 : 0.8));
    }, 60_000);
  }
});

describe('trainHrnn with a target limit', () => {
  it('stops after the step that reaches the limit', () => {
    const rows = [];
    for (let u = 0; u < 30; u++) for (let t = 0; t < 20; t++) rows.push({ USER_ID: `u${u}`, ITEM_ID: `i${(u + t) % 17}`, TIMESTAMP: t * 60_000 + u });
    rows.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP);
    const data = encode(rows, 30 * 60_000);
    let done = 0;
    const p = { ...HRNN_TRAIN_DEFAULTS, hiddenSize: 8, batchSize: 16, negatives: 4, epochs: 2, workers: 1 };
    trainHrnn(data, p, (x) => (done = x.done), 100);
    expect(done).toBeGreaterThanOrEqual(100);
    expect(done).toBeLessThan(100 + 16);
    trainHrnn(data, p, (x) => (done = x.done));
    expect(done).toBe(600 * 2);
  }, 60_000);
});
