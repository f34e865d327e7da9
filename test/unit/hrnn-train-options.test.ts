/**
 * hrnn's GRU4Rec training options (src/model/hrnn-train.ts), each against a case computed by hand
 * (plain arithmetic in the test, or numbers worked out on paper and written in): the final
 * activation (linear, tanh, elu-α) in bpr-max and in the cross-entropy head, bpreg, the logQ
 * correction, the sampling distribution of sampleAlpha, Adagrad's momentum; the parameter's
 * validation; and that serving's ranking by the raw score is the activated score's ranking.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { prng, syntheticInteractions } from '../../src/data/synthetic.js';
import { AppError } from '../../src/errors/index.js';
import { initBackend, tf } from '../../src/model/backend.js';
import {
  AdagradM,
  bprMaxRows,
  columnBiases,
  crossEntropyRows,
  encode,
  finalActDerivative,
  finalActivation,
  HRNN_TRAIN_DEFAULTS,
  parseFinalAct,
  popularityTables,
  releaseKept,
  sampledSoftmaxHead,
  Sampler,
  trainHrnn,
  type ParsedFinalAct,
} from '../../src/model/hrnn-train.js';
import { hrnn, hrnnParams, HrnnModel } from '../../src/recipes/hrnn.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

afterEach(() => releaseKept());

const elu = (x: number, a: number) => (x > 0 ? x : a * (Math.exp(x) - 1));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const ELU05: ParsedFinalAct = { kind: 'elu', alpha: 0.5 };

describe('finalAct: parsing and validation', () => {
  it('parses linear, tanh and elu-<alpha>', () => {
    expect(parseFinalAct('linear')).toEqual({ kind: 'linear' });
    expect(parseFinalAct('tanh')).toEqual({ kind: 'tanh' });
    expect(parseFinalAct('elu-0.5')).toEqual({ kind: 'elu', alpha: 0.5 });
    expect(parseFinalAct('elu-1')).toEqual({ kind: 'elu', alpha: 1 });
    expect(parseFinalAct('elu-.25')).toEqual({ kind: 'elu', alpha: 0.25 });
    expect(HRNN_TRAIN_DEFAULTS.finalAct).toBe('linear');
  });

  it.each(['elu-0', 'elu-', 'elu-1.2.3', 'elu--1', 'relu', 'sigmoid', 'ELU-1'])('rejects %j naming params.finalAct', (bad) => {
    let err: unknown;
    try {
      hrnnParams({ finalAct: bad as 'linear' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('INVALID_ARGUMENT');
    expect((err as AppError).message).toContain('finalAct');
    expect((err as AppError).field).toBe('params.finalAct');
  });

  it('the activations and their derivatives from the output', () => {
    const xs = [-3, -1, -0.2, 0, 0.4, 2];
    const out = tf.tidy(() => ({
      tanh: finalActivation(tf.tensor2d(xs, [1, 6]), { kind: 'tanh' }).dataSync(),
      elu: finalActivation(tf.tensor2d(xs, [1, 6]), ELU05).dataSync(),
      lin: finalActivation(tf.tensor2d(xs, [1, 6]), { kind: 'linear' }).dataSync(),
    }));
    xs.forEach((x, i) => {
      expect(out.tanh[i]).toBeCloseTo(Math.tanh(x), 6);
      expect(out.elu[i]).toBeCloseTo(elu(x, 0.5), 6);
      expect(out.lin[i]).toBe(Math.fround(x));
      // The derivative from the output a, against a central difference.
      const h = 1e-4;
      for (const [act, f] of [
        [{ kind: 'tanh' }, Math.tanh],
        [ELU05, (v: number) => elu(v, 0.5)],
      ] as const) {
        if (x === 0 && act.kind === 'elu') continue; // elu-0.5 has a kink at 0
        expect(finalActDerivative(f(x), act)).toBeCloseTo((f(x + h) - f(x - h)) / (2 * h), 5);
      }
    });
    // elu-0.5 by hand: −1 → 0.5·(e⁻¹ − 1) = −0.316060; its derivative 0.5·e⁻¹ = 0.183940.
    expect(out.elu[1]).toBeCloseTo(-0.31606, 5);
    expect(finalActDerivative(out.elu[1]!, ELU05)).toBeCloseTo(0.18394, 5);
  });
});

describe('bpr-max with bpreg and the final activation, by hand', () => {
  // Two rows, three columns; row i's target is column i, the other columns are its negatives.
  const L = [
    [1, -1, 0.5],
    [-2, 0.3, 1],
  ];
  /** −log Σ_j s_j σ(a_t − a_j) + bpreg Σ_j s_j a_j², s the softmax over the negatives (the row's target left out). */
  const byHand = (act: (x: number) => number, bpreg: number) =>
    L.map((row, i) => {
      const a = row.map(act);
      const neg = [0, 1, 2].filter((j) => j !== i);
      const z = neg.reduce((t, j) => t + Math.exp(a[j]!), 0);
      const s = (j: number) => Math.exp(a[j]!) / z;
      return -Math.log(neg.reduce((t, j) => t + s(j) * sigmoid(a[i]! - a[j]!), 0)) + bpreg * neg.reduce((t, j) => t + s(j) * a[j]! ** 2, 0);
    });
  const rows = (act: ParsedFinalAct, bpreg: number) =>
    tf.tidy(() => {
      const diag = tf.concat([tf.eye(2), tf.zeros([2, 1])], 1);
      return Array.from(bprMaxRows(finalActivation(tf.tensor2d(L.flat(), [2, 3]), act), diag, bpreg).dataSync());
    });

  it('linear, bpreg 0.9: 0.749232 and 2.051981 (worked out on paper)', () => {
    const got = rows({ kind: 'linear' }, 0.9);
    expect(got[0]).toBeCloseTo(0.749232, 5);
    expect(got[1]).toBeCloseTo(2.051981, 5);
    byHand((x) => x, 0.9).forEach((v, i) => expect(got[i]).toBeCloseTo(v, 5));
  });

  it('elu-0.5, bpreg 0.9: 0.579032 and 1.680219; the activation shrinks the negative scores and the loss', () => {
    const got = rows(ELU05, 0.9);
    expect(got[0]).toBeCloseTo(0.579032, 5);
    expect(got[1]).toBeCloseTo(1.680219, 5);
    byHand((x) => elu(x, 0.5), 0.9).forEach((v, i) => expect(got[i]).toBeCloseTo(v, 5));
  });

  it('tanh, bpreg 0 and 2: the regulariser adds bpreg·Σ s_j a_j²', () => {
    for (const bpreg of [0, 2]) byHand(Math.tanh, bpreg).forEach((v, i) => expect(rows({ kind: 'tanh' }, bpreg)[i]).toBeCloseTo(v, 5));
    const [r0, r2] = [rows({ kind: 'tanh' }, 0), rows({ kind: 'tanh' }, 2)];
    expect(r2[0]! - r0[0]!).toBeGreaterThan(0.1);
  });
});

describe('the cross-entropy head with a final activation and the logQ correction', () => {
  // B = 2 rows, C = 3 columns (items 0, 1, 2 with training counts 1, 2, 5), H = 2.
  const q = [0.5, -1, 1, 2];
  const O = [1, 0, 0.5, 0.5, -1, 1];
  const bOut = Float32Array.from([0.1, -0.2, 0]);
  const counts = Float64Array.from([1, 2, 5]);
  const cols = Int32Array.from([0, 1, 2]);
  const { logP } = popularityTables(counts, 0.5);

  /** The head's loss (and gradients) as the training loop builds its inputs (columnBiases). */
  function head(act: ParsedFinalAct, logq: number) {
    const bias = new Float32Array(3);
    const corr = new Float32Array(3);
    columnBiases(cols, bOut, logP, logq, act.kind === 'linear', bias, corr);
    const h = sampledSoftmaxHead(2, 3, 2, act);
    const out = tf.tidy(() => {
      // Tensors the backward pass reads are made outside the differentiated function (as in trainLoop).
      const [Ot, biasT, corrT] = [tf.tensor2d(O, [3, 2]), tf.tensor1d(bias), act.kind === 'linear' ? undefined : tf.tensor1d(corr)];
      const { value, grads } = tf.valueAndGrads((qd: tf.Tensor) => h.loss(qd as tf.Tensor2D, Ot, biasT, Float32Array.from([1, 1]), 2, corrT))([tf.tensor2d(q, [2, 2])]);
      return { loss: value.dataSync()[0]!, dq: Array.from(grads[0]!.dataSync()), gO: Array.from(h.gO), gB: Array.from(h.gBias) };
    });
    h.dispose();
    return out;
  }

  /** The same loss through autodiff: mean over rows of −log softmax(act(q·Oᵀ + b) − logq·log P)[row, row]. */
  function autodiff(act: ParsedFinalAct, logq: number) {
    return tf.tidy(() => {
      const diag = tf.concat([tf.eye(2), tf.zeros([2, 1])], 1);
      const f = (qd: tf.Tensor, o: tf.Tensor, b: tf.Tensor) => {
        const raw = tf.add(tf.matMul(qd as tf.Tensor2D, o as tf.Tensor2D, false, true), b) as tf.Tensor2D;
        const logits = tf.sub(finalActivation(raw, act), tf.mul(logq, tf.tensor1d(logP))) as tf.Tensor2D;
        return tf.div(tf.sum(crossEntropyRows(logits, diag)), 2) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads(f)([tf.tensor2d(q, [2, 2]), tf.tensor2d(O, [3, 2]), tf.tensor1d(bOut)]);
      return { loss: value.dataSync()[0]!, dq: Array.from(grads[0]!.dataSync()), gO: Array.from(grads[1]!.dataSync()), gB: Array.from(grads[2]!.dataSync()) };
    });
  }

  it('losses worked out on paper (logq 1): linear 0.629083, tanh 0.695391, elu-0.5 0.670621', () => {
    expect(head({ kind: 'linear' }, 1).loss).toBeCloseTo(0.629083, 5);
    expect(head({ kind: 'tanh' }, 1).loss).toBeCloseTo(0.695391, 5);
    expect(head(ELU05, 1).loss).toBeCloseTo(0.670621, 5);
  });

  it.each([
    ['linear', { kind: 'linear' }],
    ['tanh', { kind: 'tanh' }],
    ['elu-0.5', ELU05],
  ] as const)('%s: loss, dq, the columns\u2019 and the biases\u2019 gradients equal autodiff (logq 0 and 1)', (_, act) => {
    for (const logq of [0, 1]) {
      const mine = head(act, logq);
      const ref = autodiff(act, logq);
      expect(mine.loss).toBeCloseTo(ref.loss, 5);
      mine.dq.forEach((v, i) => expect(v).toBeCloseTo(ref.dq[i]!, 5));
      mine.gO.forEach((v, i) => expect(v).toBeCloseTo(ref.gO[i]!, 5));
      mine.gB.forEach((v, i) => expect(v).toBeCloseTo(ref.gB[i]!, 5));
      expect(mine.gB.some((v) => Math.abs(v) > 1e-3)).toBe(true);
    }
  });

  it('logQ: with equal raw scores, column k gets probability ∝ 1/P(k) (counts 1, 2, 5: 1 : 0.5 : 0.2)', () => {
    const bias = new Float32Array(3);
    const corr = new Float32Array(3);
    columnBiases(cols, new Float32Array(3), logP, 1, true, bias, corr);
    // log P = log(1/8), log(2/8), log(5/8): the bias is −log P.
    expect(Array.from(bias).map((b) => Math.exp(-b))).toEqual([1 / 8, 2 / 8, 5 / 8].map((v) => expect.closeTo(v, 6)));
    expect(Array.from(corr)).toEqual(Array.from(logP));
    // q = 0: the loss of row 0 (target column 0) is −log(1 / (1 + 0.5 + 0.2)) = log 1.7.
    const h = sampledSoftmaxHead(1, 3, 2);
    const loss = tf.tidy(() => h.loss(tf.zeros([1, 2]) as tf.Tensor2D, tf.tensor2d(O, [3, 2]), tf.tensor1d(bias), Float32Array.from([1]), 1).dataSync()[0]!);
    h.dispose();
    expect(loss).toBeCloseTo(Math.log(1.7), 5);
    // logq 0.5: half the correction.
    columnBiases(cols, bOut, logP, 0.5, true, bias, corr);
    Array.from(bias).forEach((b, k) => expect(b).toBeCloseTo(bOut[k]! - 0.5 * logP[k]!, 6));
    // With a final activation the bias stays the output bias; the head subtracts the correction after it.
    columnBiases(cols, bOut, logP, 1, false, bias, corr);
    expect(Array.from(bias)).toEqual(Array.from(bOut));
  });
});

describe('sampleAlpha: negatives drawn ∝ count^alpha', () => {
  const counts = Float64Array.from([1, 4, 16, 0]);
  const freq = (alpha: number, draws = 60_000) => {
    const { sampleWeights } = popularityTables(counts, alpha);
    const s = new Sampler(sampleWeights, prng(3));
    const n = new Float64Array(counts.length);
    for (let k = 0; k < draws; k++) n[s.draw()]!++;
    return Array.from(n, (v) => v / draws);
  };

  it('alpha 0.5: weights 1, 2, 4 (and 0 for an item without interactions): shares 1/7, 2/7, 4/7', () => {
    expect(Array.from(popularityTables(counts, 0.5).sampleWeights)).toEqual([1, 2, 4, 0]);
    freq(0.5).forEach((f, i) => expect(f).toBeCloseTo([1 / 7, 2 / 7, 4 / 7, 0][i]!, 2));
  });

  it('alpha 1: by popularity (1/21, 4/21, 16/21); alpha 0: uniform over the items with interactions... and the one without', () => {
    freq(1).forEach((f, i) => expect(f).toBeCloseTo([1 / 21, 4 / 21, 16 / 21, 0][i]!, 2));
    // 0^0 = 1: alpha 0 is uniform over every item.
    freq(0).forEach((f) => expect(f).toBeCloseTo(1 / 4, 2));
  });
});

describe('momentum: Adagrad with momentum, step by step', () => {
  it('lr 0.1, momentum 0.5, gradient 2 twice: 1 → 0.9 → 0.779289', () => {
    const p = Float32Array.from([1]);
    const opt = new AdagradM(1, 0.1, 0.5);
    opt.apply(p, [2]);
    // acc = 4, m = 2 / (√4 + 1e-6) ≈ 1, p = 1 − 0.1·1.
    expect(opt.acc[0]).toBe(4);
    expect(p[0]).toBeCloseTo(0.9, 6);
    opt.apply(p, [2]);
    // acc = 8, m = 0.5·1 + 2/√8 = 1.207107, p = 0.9 − 0.1207107.
    expect(opt.mom[0]).toBeCloseTo(1.207107, 5);
    expect(p[0]).toBeCloseTo(0.779289, 5);
  });

  it('momentum 0 is plain Adagrad: the second step is lr·g/√acc alone', () => {
    const p = Float32Array.from([1]);
    const opt = new AdagradM(1, 0.1, 0);
    opt.apply(p, [2]);
    opt.apply(p, [2]);
    expect(p[0]).toBeCloseTo(1 - 0.1 - 0.1 * (2 / Math.sqrt(8)), 5);
  });
});

describe('training with a final activation', () => {
  const rows = [...syntheticInteractions({ seed: 5, users: 30, items: 50, events: 600 })];
  const base = { ...HRNN_TRAIN_DEFAULTS, hiddenSize: 8, epochs: 1, batchSize: 16, negatives: 16, workers: 1 };

  it.each(['cross-entropy', 'bpr-max'] as const)('%s: each activation trains (finite loss) and changes the weights', (loss) => {
    const data = encode(rows, base.sessionTimeoutMs);
    const E = (finalAct: 'linear' | 'tanh' | 'elu-0.5') => {
      const t = trainHrnn(data, { ...base, loss, finalAct });
      t.lossByEpoch.forEach((l) => expect(Number.isFinite(l)).toBe(true));
      return t.weights.E;
    };
    const lin = E('linear');
    for (const act of ['tanh', 'elu-0.5'] as const) {
      const other = E(act);
      expect(other.some((v, i) => v !== lin[i])).toBe(true);
    }
  }, 30_000);

  it('serving ranks by the raw score, which is the activated score\u2019s order; the model file keeps finalAct', async () => {
    const model = await hrnn.train(rows, { hiddenSize: 8, epochs: 1, batchSize: 16, negatives: 16, workers: 1, finalAct: 'tanh' });
    const history = rows.filter((r) => r.USER_ID === 'u3');
    const raw = model.scores(model.state(history));
    const list = model.recommend({ history, numResults: 20 });
    expect(list).toHaveLength(20);
    // Activated scores along the list never increase (tanh and elu are increasing), and each is the activation of the raw one.
    for (let k = 1; k < list.length; k++) expect(Math.tanh(list[k]!.score)).toBeLessThanOrEqual(Math.tanh(list[k - 1]!.score));
    list.forEach((s) => expect(s.score).toBe(raw[model.index.get(s.itemId)!]));
    const back = HrnnModel.fromJSON(JSON.parse(JSON.stringify(model.toJSON())));
    expect(back.params.finalAct).toBe('tanh');
    expect(back.recommend({ history, numResults: 20 })).toEqual(list);
  }, 30_000);
});
