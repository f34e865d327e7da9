/**
 * A StepKernel (src/model/hrnn-batch.ts) on TensorFlow.js: one wave's GRU step for all its users
 * as one matMul over [x | h] (the three gates' input weights and the two gates' recurrent weights
 * side by side, zeros under the candidate's columns), then one for (r ⊙ h)·Wh. The session step
 * of applyEventsBatch takes the other path, gruFromGates: the input gates come from the item
 * cache (or inputGates), and only h·Wrz and (r ⊙ h)·Wh are multiplied. On the wasm backend
 * (XNNPACK, SIMD) bench/hrnn-step.ts measures this several times faster than the JavaScript loops
 * from about ten users a wave; below `minBatch` users the per-call cost of tfjs (tensors in, data
 * out) is larger than the arithmetic, so those waves go through jsKernel.
 *
 * tanh(v) is computed as 2·σ(2v) − 1: the wasm backend's tanh is scalar (measured 20 ns an element,
 * 1.3 ms for 1,000 × 64) where its sigmoid is XNNPACK's vectorised one (1.5 ns). The factor 2 sits in
 * the weights (the candidate's columns of W and b, Wh, Wi, bi stored doubled): scaling by two is
 * exact in floating point, so 2v costs nothing and rounds no differently.
 *
 * Not bit for bit applyEvent: float32 sums in XNNPACK's order and float32 sigmoid/tanh, about 1e-7
 * per step, up to a few 1e-6 after several steps (test/unit/hrnn-batch.test.ts: the tolerance and
 * why). Runs on whatever backend tfjs has (initBackend first; the figures above are wasm's). Weight tensors are made on first
 * use and kept until dispose(): one kernel per model version.
 */
import { tf } from './backend.js';
import { gruFromGates, gruStepBatch, initSessionBatch, inputGatesBatch, type GruScratch, type StepKernel } from './hrnn-batch.js';
import type { GruWeights, HrnnWeights } from './hrnn-math.js';
import { ownedResource } from '../util/owned.js';

interface GruTensors {
  /** (In + H) × 3H: [Wx ; Wrz | 0], the candidate's columns doubled */
  w: tf.Tensor2D;
  /** b, the candidate's part doubled */
  b: tf.Tensor1D;
  /** 2·Wh */
  wh2: tf.Tensor2D;
}

/** For gruFromGates and inputGates (the input gates b + x·Wx computed apart, or cached). */
interface SplitTensors {
  wx: tf.Tensor2D;
  b: tf.Tensor1D;
  wrz: tf.Tensor2D;
}

const doubled = (a: Float32Array) => a.map((v) => 2 * v);

export class TfStepKernel implements StepKernel {
  private readonly grus = new Map<GruWeights, GruTensors>();
  private readonly inits = new Map<HrnnWeights, { wi: tf.Tensor2D; bi: tf.Tensor1D }>();
  private readonly splits = new Map<GruWeights, SplitTensors>();

  /** `minBatch`: waves with fewer users than this use the JavaScript kernel. Needs initBackend() done first. */
  constructor(readonly minBatch = 8) {}

  gru(w: GruWeights, X: Float32Array, inSize: number, Hs: Float32Array, B: number, H: number, out: Float32Array, scratch: GruScratch): void {
    if (B < this.minBatch) return gruStepBatch(w, X, inSize, Hs, B, H, out, scratch);
    const t = this.gruTensors(w, inSize, H);
    const result = tf.tidy(() => {
      const x = tf.tensor2d(X.subarray(0, B * inSize), [B, inSize]);
      const h = tf.tensor2d(Hs.subarray(0, B * H), [B, H]);
      const a = tf.fused.matMul({ a: tf.concat2d([x, h], 1), b: t.w, bias: t.b });
      const [zr, ac2] = tf.split(a, [2 * H, H], 1) as [tf.Tensor2D, tf.Tensor2D];
      const [z, r] = tf.split(tf.sigmoid(zr), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
      // σ(2·pre-activation); cand = 2σ − 1; h' = h + z ⊙ (cand − h)
      const s = tf.sigmoid(tf.add(ac2, tf.matMul(tf.mul(r, h), t.wh2)));
      return tf.add(h, tf.mul(z, tf.sub(tf.sub(tf.mul(s, 2), 1), h)));
    });
    out.set(result.dataSync() as Float32Array);
    result.dispose();
  }

  /** applyEventsBatch's path for cached item gates: scratch.a (B × 3H) holds b + x·Wx. */
  gruFromGates(w: GruWeights, Hs: Float32Array, B: number, H: number, out: Float32Array, scratch: GruScratch): void {
    if (B < this.minBatch) return gruFromGates(w, Hs, B, H, out, scratch);
    const t = this.gruTensors(w, H, H);
    const { wrz } = this.splitTensors(w, H, H);
    const result = tf.tidy(() => {
      const a = tf.tensor2d(scratch.a.subarray(0, B * 3 * H), [B, 3 * H]);
      const h = tf.tensor2d(Hs.subarray(0, B * H), [B, H]);
      const [azr, ac] = tf.split(a, [2 * H, H], 1) as [tf.Tensor2D, tf.Tensor2D];
      const [z, r] = tf.split(tf.sigmoid(tf.add(azr, tf.matMul(h, wrz))), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
      const s = tf.sigmoid(tf.add(tf.mul(ac, 2), tf.matMul(tf.mul(r, h), t.wh2)));
      return tf.add(h, tf.mul(z, tf.sub(tf.sub(tf.mul(s, 2), 1), h)));
    });
    out.set(result.dataSync() as Float32Array);
    result.dispose();
  }

  inputGates(w: GruWeights, X: Float32Array, inSize: number, B: number, H: number, out: Float32Array): void {
    if (B < this.minBatch) return inputGatesBatch(w, X, inSize, B, H, out);
    const { wx, b } = this.splitTensors(w, inSize, H);
    const result = tf.tidy(() => tf.fused.matMul({ a: tf.tensor2d(X.subarray(0, B * inSize), [B, inSize]), b: wx, bias: b }));
    out.set(result.dataSync() as Float32Array);
    result.dispose();
  }

  init(w: HrnnWeights, C: Float32Array, B: number, out: Float32Array): void {
    if (B < this.minBatch) return initSessionBatch(w, C, B, out);
    const H = w.hidden;
    let t = this.inits.get(w);
    // Doubled: tanh(v) = 2σ(2v) − 1 (see above).
    if (!t) this.inits.set(w, (t = { wi: tf.tensor2d(doubled(w.wi), [H, H]), bi: tf.tensor1d(doubled(w.bi)) }));
    const { wi, bi } = t;
    const result = tf.tidy(() => tf.sub(tf.mul(tf.fused.matMul({ a: tf.tensor2d(C.subarray(0, B * H), [B, H]), b: wi, bias: bi, activation: 'sigmoid' }), 2), 1));
    out.set(result.dataSync() as Float32Array);
    result.dispose();
  }

  /** Frees the weight tensors (the kernel can be used again: they are remade on use). */
  dispose(): void {
    for (const t of this.grus.values()) tf.dispose([t.w, t.b, t.wh2]);
    for (const t of this.inits.values()) tf.dispose([t.wi, t.bi]);
    for (const t of this.splits.values()) tf.dispose([t.wx, t.b, t.wrz]);
    this.splits.clear();
    this.grus.clear();
    this.inits.clear();
  }

  private splitTensors(w: GruWeights, inSize: number, H: number): SplitTensors {
    let t = this.splits.get(w);
    if (!t) this.splits.set(w, (t = { wx: tf.tensor2d(w.wx, [inSize, 3 * H]), b: tf.tensor1d(w.b), wrz: tf.tensor2d(w.wrz, [H, 2 * H]) }));
    return t;
  }

  private gruTensors(w: GruWeights, inSize: number, H: number): GruTensors {
    let t = this.grus.get(w);
    if (!t) {
      const cat = new Float32Array((inSize + H) * 3 * H);
      cat.set(w.wx);
      for (let i = 0; i < inSize; i++) for (let j = 2 * H; j < 3 * H; j++) cat[i * 3 * H + j]! *= 2;
      // h's rows: the update and reset gates' recurrent weights; zeros under the candidate (its h
      // term is (r ⊙ h)·Wh, the second matMul).
      for (let i = 0; i < H; i++) cat.set(w.wrz.subarray(i * 2 * H, (i + 1) * 2 * H), (inSize + i) * 3 * H);
      const b = w.b.slice();
      for (let j = 2 * H; j < 3 * H; j++) b[j]! *= 2;
      t = { w: tf.tensor2d(cat, [inSize + H, 3 * H]), b: tf.tensor1d(b), wh2: tf.tensor2d(doubled(w.wh), [H, H]) };
      this.grus.set(w, t);
    }
    return t;
  }
}

const kernelOf = ownedResource<TfStepKernel>();

/** `owner`'s (a model's) kernel: one per model, made on first use, its weight tensors freed once the model is collected. */
export function tfStepKernelOf(owner: object): TfStepKernel {
  return kernelOf(owner, () => new TfStepKernel());
}
