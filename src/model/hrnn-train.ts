/**
 * HRNN training with TensorFlow.js (GRU4Rec's recipe, made hierarchical):
 *
 * - User-parallel mini-batches: each of `batchSize` rows walks one user's events in time order,
 *   one event per step; the row's session and user states carry over between steps (detached: one
 *   GRU step per batch, no unrolled back-propagation through time, as GRU4Rec). A row whose user
 *   runs out takes the next user (states reset). A user begins with a start step: no item in
 *   (a zero input) from init(c0), c0 the new user's state (0, or from the user's metadata), and
 *   the first item as the target — so a user without history is recommended from a trained state
 *   (src/model/hrnn-math.ts does the same step for a user's first event).
 * - Each step predicts every row's next event. Within a session from the session GRU's state; when
 *   the next event comes after the session timeout, from init(userGRU(h, c)), the state the next
 *   session starts from, so the user GRU and the init layer learn to carry a user across sessions.
 * - Loss: softmax cross-entropy over the batch's targets (in-batch negatives) plus `negatives` items
 *   shared by all rows, drawn with probability ∝ popularity^sampleAlpha, with logQ correction
 *   (logits − logq·log P(item), P the popularity share), or BPR-max with a score regulariser.
 * - Input and output item embeddings tied; hidden dropout on the query state, embedding dropout on
 *   the input. Adagrad with momentum, sparse on the item rows a step touched (GRU4Rec's
 *   IndexedAdagradM): acc += g², m = momentum·m + g / (√acc + ε), w −= lr·m.
 *
 * Item rows are gathered and their gradients scattered in JavaScript (the wasm backend has no
 * UnsortedSegmentSum, which tf.gather's gradient needs); gradients' matrix products transpose
 * explicitly (wasm's BatchMatMul with transposeA/B takes a slow path).
 *
 * Speed (issue 15; the math is the same as the plain autodiff graph, checked by
 * test/unit/hrnn-train-kernels.test.ts): the cross-entropy output layer is one op outside the tape
 * (`sampledSoftmaxHead`: logits, softmax in one wasm kernel, loss and gradient in one JavaScript
 * pass, its big operands placed so that wasm packs only one of them); the GRUs and the init layer
 * are ops with hand-written backward passes (`gruCell`, `initLayer`: half the kernels, no saved
 * copies); the init layer runs only in steps that need it; dropout masks are drawn in JavaScript;
 * per-item gradient rows are summed in preallocated slots (`RowGrads`).
 */
import { prng } from '../data/synthetic.js';
import { AppError } from '../errors/index.js';
import { tf } from './backend.js';
import type { SparseRows, SparseVector } from './features.js';
import type { GruWeights, HrnnWeights } from './hrnn-math.js';

export type HrnnLoss = 'cross-entropy' | 'bpr-max';

/**
 * The activation on the output scores during training (GRU4Rec's final activation / `elu_param`):
 * `linear`, `tanh`, or `elu-<α>` (α > 0: x for x > 0, else α(eˣ − 1)). All are strictly increasing,
 * so serving ranks by the raw score q·E[j] + bOut[j] and gets the same order: the activation is
 * training-only (a tie under tanh's float32 saturation keeps the raw order).
 */
export type FinalAct = 'linear' | 'tanh' | `elu-${number}`;
export type ParsedFinalAct = { kind: 'linear' } | { kind: 'tanh' } | { kind: 'elu'; alpha: number };

/** `finalAct` parsed, or INVALID_ARGUMENT naming params.finalAct. */
export function parseFinalAct(s: string): ParsedFinalAct {
  if (s === 'linear') return { kind: 'linear' };
  if (s === 'tanh') return { kind: 'tanh' };
  const m = /^elu-(\d+(?:\.\d+)?|\.\d+)$/.exec(s);
  const alpha = m ? Number(m[1]) : NaN;
  if (!(alpha > 0) || !Number.isFinite(alpha)) {
    throw new AppError('INVALID_ARGUMENT', `hrnn parameter finalAct: expected linear, tanh or elu-<alpha> with alpha > 0 (e.g. elu-0.5), got ${JSON.stringify(s)}`, { field: 'params.finalAct' });
  }
  return { kind: 'elu', alpha };
}

/** The final activation as tensor ops (autodiff); elu-α as relu(x) + α(e^min(x, 0) − 1). */
export function finalActivation(x: tf.Tensor2D, act: ParsedFinalAct): tf.Tensor2D {
  if (act.kind === 'linear') return x;
  if (act.kind === 'tanh') return tf.tanh(x);
  return tf.add(tf.relu(x), tf.mul(act.alpha, tf.sub(tf.exp(tf.minimum(x, 0)), 1))) as tf.Tensor2D;
}

/** The activation's derivative from its output a (tanh: 1 − a²; elu: 1 for a > 0, else a + α). */
export function finalActDerivative(a: number, act: ParsedFinalAct): number {
  if (act.kind === 'linear') return 1;
  if (act.kind === 'tanh') return 1 - a * a;
  return a > 0 ? 1 : a + act.alpha;
}

export interface HrnnTrainParams {
  hiddenSize: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  momentum: number;
  /** Extra negatives per step, shared by all rows. */
  negatives: number;
  /** Negatives are drawn with probability ∝ popularity^sampleAlpha. */
  sampleAlpha: number;
  loss: HrnnLoss;
  /** logQ correction strength for cross-entropy (0: off). */
  logq: number;
  /** Score regulariser of BPR-max. */
  bpreg: number;
  /** Activation on the output scores in training (see FinalAct). */
  finalAct: FinalAct;
  dropoutHidden: number;
  dropoutEmbed: number;
  /** A gap longer than this ends a session (ms). */
  sessionTimeoutMs: number;
  seed: number;
  /** Training threads (0: one per core, at most 4); 1 is bit-for-bit reproducible, more are not (Hogwild!). */
  workers: number;
}

export const HRNN_TRAIN_DEFAULTS: HrnnTrainParams = {
  hiddenSize: 100,
  epochs: 10,
  batchSize: 64,
  learningRate: 0.05,
  momentum: 0.3,
  negatives: 2048,
  sampleAlpha: 0.5,
  loss: 'cross-entropy',
  logq: 1,
  bpreg: 1,
  finalAct: 'linear',
  dropoutHidden: 0.2,
  dropoutEmbed: 0,
  sessionTimeoutMs: 30 * 60_000,
  seed: 42,
  workers: 0,
};

/** Users' event sequences as item indices, with session starts marked. */
export interface EncodedData {
  /** Item ids by index. */
  itemIds: string[];
  /** Interactions per item (training popularity). */
  counts: Float64Array;
  /**
   * Per user (in first-seen order): item indices in time order, 1 where a session starts, and
   * (hrnn-metadata) each event's context features.
   */
  users: { id: string; items: Int32Array; starts: Uint8Array; ctx?: SparseRows }[];
  events: number;
  /** hrnn-metadata: item features (a row per item index), user features (a row per user), sizes. */
  features?: { item: SparseRows; user: SparseRows; sizes: FeatureSizes };
}

export interface FeatureSizes {
  item: number;
  ctx: number;
  user: number;
}

/** How `encode` turns metadata into features (spaces built by the recipe, src/recipes/hrnn.ts). */
export interface FeatureEncoders {
  item: (itemId: string) => SparseVector;
  user: (userId: string) => SparseVector;
  ctx: (e: { EVENT_TYPE?: string; CONTEXT?: Readonly<Record<string, string>> }) => SparseVector;
  sizes: FeatureSizes;
}

/** Sparse rows from vectors. */
export function sparseRows(vectors: readonly SparseVector[]): SparseRows {
  const offsets = new Int32Array(vectors.length + 1);
  let n = 0;
  vectors.forEach((v, r) => {
    n += v.ids.length;
    offsets[r + 1] = n;
  });
  const ids = new Int32Array(n);
  const values = new Float32Array(n);
  vectors.forEach((v, r) => {
    ids.set(v.ids, offsets[r]!);
    values.set(v.values, offsets[r]!);
  });
  return { offsets, ids, values };
}

type EncodableEvent = { USER_ID: string; ITEM_ID: string; TIMESTAMP: number; EVENT_TYPE?: string; CONTEXT?: Readonly<Record<string, string>> };

/** Groups time-ordered interactions by user; items indexed by first appearance; features when `features` is given. */
export function encode(interactions: readonly EncodableEvent[], sessionTimeoutMs: number, features?: FeatureEncoders): EncodedData {
  const itemIndex = new Map<string, number>();
  const itemIds: string[] = [];
  const perUser = new Map<string, { items: number[]; ts: number[]; ctx: SparseVector[] }>();
  for (const e of interactions) {
    let i = itemIndex.get(e.ITEM_ID);
    if (i === undefined) {
      i = itemIds.length;
      itemIndex.set(e.ITEM_ID, i);
      itemIds.push(e.ITEM_ID);
    }
    let u = perUser.get(e.USER_ID);
    if (!u) perUser.set(e.USER_ID, (u = { items: [], ts: [], ctx: [] }));
    u.items.push(i);
    u.ts.push(e.TIMESTAMP);
    if (features) u.ctx.push(features.ctx(e));
  }
  const counts = new Float64Array(itemIds.length);
  const users: EncodedData['users'] = [];
  for (const [id, u] of perUser) {
    const starts = new Uint8Array(u.items.length);
    for (let t = 0; t < u.items.length; t++) {
      counts[u.items[t]!]!++;
      starts[t] = t === 0 || u.ts[t]! - u.ts[t - 1]! > sessionTimeoutMs ? 1 : 0;
    }
    users.push({ id, items: Int32Array.from(u.items), starts, ...(features ? { ctx: sparseRows(u.ctx) } : {}) });
  }
  const out: EncodedData = { itemIds, counts, users, events: interactions.length };
  if (features) {
    out.features = { item: sparseRows(itemIds.map((id) => features.item(id))), user: sparseRows(users.map((u) => features.user(u.id))), sizes: features.sizes };
  }
  return out;
}

/** Draws item indices with probability ∝ weight (a cumulative table and binary search). */
export class Sampler {
  private readonly cdf: Float64Array;

  constructor(
    weights: Float64Array,
    private readonly random: () => number,
  ) {
    this.cdf = new Float64Array(weights.length);
    let sum = 0;
    for (let i = 0; i < weights.length; i++) this.cdf[i] = sum += weights[i]!;
  }

  draw(): number {
    const n = this.cdf.length;
    const target = this.random() * this.cdf[n - 1]!;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid]! <= target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Adagrad with momentum over a flat parameter array, optionally on some rows only. */
export class AdagradM {
  readonly acc: Float32Array;
  readonly mom: Float32Array;

  constructor(
    size: number,
    private readonly lr: number,
    private readonly momentum: number,
    private readonly eps = 1e-6,
    /** Existing accumulators (e.g. over SharedArrayBuffers, for training workers). */
    buffers?: { acc: Float32Array; mom: Float32Array },
  ) {
    this.acc = buffers?.acc ?? new Float32Array(size);
    this.mom = buffers?.mom ?? new Float32Array(size);
  }

  /** Updates params[pOffset + k] with grad[gOffset + k] for k < length. */
  applyRange(params: Float32Array, grad: Float32Array, gOffset: number, length: number, pOffset: number): void {
    const { acc, mom, lr, momentum, eps } = this;
    for (let k = 0; k < length; k++) {
      const g = grad[gOffset + k]!;
      const p = pOffset + k;
      const a = (acc[p]! += g * g);
      const m = (mom[p] = momentum * mom[p]! + g / (Math.sqrt(a) + eps));
      params[p]! -= lr * m;
    }
  }

  /** Updates params[offset + k] with grad[k] for k < grad.length. */
  apply(params: Float32Array, grad: Float32Array | ArrayLike<number>, offset = 0): void {
    const { acc, mom, lr, momentum, eps } = this;
    for (let k = 0; k < grad.length; k++) {
      const g = grad[k]!;
      const p = offset + k;
      const a = (acc[p]! += g * g);
      const m = (mom[p] = momentum * mom[p]! + g / (Math.sqrt(a) + eps));
      params[p]! -= lr * m;
    }
  }
}

/** A · B with a gradient that transposes explicitly (no transposeA/B matmuls). */
const mm = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor2D, tf.transpose(saved[1]!) as tf.Tensor2D),
      tf.matMul(tf.transpose(saved[0]!) as tf.Tensor2D, dy as tf.Tensor2D),
    ],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;

export { mm };

interface GruT {
  wx: tf.Tensor2D;
  wrz: tf.Tensor2D;
  wh: tf.Tensor2D;
  b: tf.Tensor1D;
}

/** The GRU of src/model/hrnn-math.ts as a differentiable graph (x: B × In, h: B × H). */
export function gruGraph(w: GruT, x: tf.Tensor2D, h: tf.Tensor2D): tf.Tensor2D {
  const H = h.shape[1];
  const a = tf.add(mm(x, w.wx), w.b);
  const hrz = mm(h, w.wrz);
  const [ax, ar, ah] = tf.split(a, [H, H, H], 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const [hz, hr] = tf.split(hrz, [H, H], 1) as [tf.Tensor2D, tf.Tensor2D];
  const z = tf.sigmoid(tf.add(ax, hz));
  const r = tf.sigmoid(tf.add(ar, hr));
  const cand = tf.tanh(tf.add(ah, mm(tf.mul(r, h), w.wh)));
  return tf.add(h, tf.mul(z, tf.sub(cand, h))) as tf.Tensor2D;
}

/**
 * Tensors the custom ops below keep for their backward pass (instead of tfjs's saved copies: one
 * Identity kernel per saved tensor), released after the step by `releaseKept`.
 */
const keptForBackward: tf.Tensor[] = [];

function keepForBackward(...ts: tf.Tensor[]): void {
  for (const t of ts) keptForBackward.push(tf.keep(t));
}

/** Releases what the custom ops kept for their backward pass (call after each step's gradients). */
export function releaseKept(): void {
  tf.dispose(keptForBackward.splice(0));
}

/**
 * gruGraph as one op with a hand-written backward pass (the same function; about 45 kernels
 * forward and backward against about twice that, plus tfjs's saved copies, through autodiff):
 *   a = x·wx + b, [z|r] = σ(a[:, :2H] + h·wrz), c = tanh(a[:, 2H:] + (r⊙h)·wh), h' = h + z⊙(c − h).
 * Call `releaseKept` after the gradients.
 */
export const gruCell = tf.customGrad(((x: tf.Tensor2D, h: tf.Tensor2D, wx: tf.Tensor2D, wrz: tf.Tensor2D, wh: tf.Tensor2D, b: tf.Tensor1D) => {
  const [B, H] = h.shape;
  const a = tf.fused.matMul({ a: x, b: wx, bias: b });
  const zr = tf.sigmoid(tf.add(tf.slice(a, [0, 0], [B, 2 * H]), tf.matMul(h, wrz)));
  const z = tf.slice(zr, [0, 0], [B, H]);
  const r = tf.slice(zr, [0, H], [B, H]);
  const rh = tf.mul(r, h);
  const cand = tf.tanh(tf.add(tf.slice(a, [0, 2 * H], [B, H]), tf.matMul(rh, wh)));
  const diff = tf.sub(cand, h);
  const value = tf.add(h, tf.mul(z, diff));
  keepForBackward(x, h, wx, wrz, wh, zr, z, r, rh, cand, diff);
  return {
    value,
    gradFunc: (dy: tf.Tensor2D) => {
      const dcand = tf.mul(dy, z);
      const du = tf.mul(dcand, tf.sub(1, tf.square(cand)));
      const drh = tf.matMul(du, tf.transpose(wh) as tf.Tensor2D);
      const dzr = tf.mul(tf.concat([tf.mul(dy, diff), tf.mul(drh, h)], 1), tf.mul(zr, tf.sub(1, zr))) as tf.Tensor2D;
      const da = tf.concat([dzr, du], 1) as tf.Tensor2D;
      const T = (t: tf.Tensor2D) => tf.transpose(t) as tf.Tensor2D;
      return [
        tf.matMul(da, T(wx)),
        tf.addN([tf.sub(dy, dcand), tf.mul(drh, r), tf.matMul(dzr, T(wrz))]),
        tf.matMul(T(x), da),
        tf.matMul(T(h), dzr),
        tf.matMul(T(rh as tf.Tensor2D), du),
        tf.sum(da, 0),
      ];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor2D, h: tf.Tensor2D, wx: tf.Tensor2D, wrz: tf.Tensor2D, wh: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;

/** The init layer tanh(c·wi + bi) as one op with a hand-written backward pass (`releaseKept` after). */
export const initLayer = tf.customGrad(((c: tf.Tensor2D, wi: tf.Tensor2D, bi: tf.Tensor1D) => {
  const value = tf.tanh(tf.fused.matMul({ a: c, b: wi, bias: bi }));
  keepForBackward(c, wi, value);
  return {
    value,
    gradFunc: (dy: tf.Tensor2D) => {
      const du = tf.mul(dy, tf.sub(1, tf.square(value))) as tf.Tensor2D;
      return [tf.matMul(du, tf.transpose(wi) as tf.Tensor2D), tf.matMul(tf.transpose(c) as tf.Tensor2D, du), tf.sum(du, 0)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (c: tf.Tensor2D, wi: tf.Tensor2D, bi: tf.Tensor1D) => tf.Tensor2D;

/** Inverted-dropout multipliers: 1/(1 − rate) with probability 1 − rate, else 0. */
export function dropoutMask(out: Float32Array, rate: number, random: () => number): Float32Array {
  const keep = 1 - rate;
  for (let i = 0; i < out.length; i++) out[i] = random() < keep ? 1 / keep : 0;
  return out;
}

/** Dense parameters, in one flat array (for one optimizer), with named views. */
export interface DenseLayout {
  names: string[];
  shapes: number[][];
  offsets: number[];
  size: number;
}

export function denseLayout(H: number): DenseLayout {
  const shapes: [string, number[]][] = [
    ['s.wx', [H, 3 * H]],
    ['s.wrz', [H, 2 * H]],
    ['s.wh', [H, H]],
    ['s.b', [3 * H]],
    ['u.wx', [H, 3 * H]],
    ['u.wrz', [H, 2 * H]],
    ['u.wh', [H, H]],
    ['u.b', [3 * H]],
    ['wi', [H, H]],
    ['bi', [H]],
  ];
  const offsets: number[] = [];
  let size = 0;
  for (const [, shape] of shapes) {
    offsets.push(size);
    size += shape.reduce((x, y) => x * y, 1);
  }
  return { names: shapes.map((s) => s[0]), shapes: shapes.map((s) => s[1]), offsets, size };
}

/** The weights' views over the flat dense array plus the item arrays. */
export function weightsView(H: number, items: number, dense: Float32Array, E: Float32Array, bOut: Float32Array): HrnnWeights {
  const L = denseLayout(H);
  const view = (name: string) => {
    const k = L.names.indexOf(name);
    const len = L.shapes[k]!.reduce((x, y) => x * y, 1);
    return dense.subarray(L.offsets[k]!, L.offsets[k]! + len);
  };
  const gru = (p: string): GruWeights => ({ wx: view(`${p}.wx`), wrz: view(`${p}.wrz`), wh: view(`${p}.wh`), b: view(`${p}.b`) });
  return { hidden: H, items, E, bOut, session: gru('s'), user: gru('u'), wi: view('wi'), bi: view('bi') };
}

/** Uniform ±√(6 / (rows + cols)) per matrix (GRU4Rec's; each gate block on its own), biases 0. */
export function initWeights(H: number, items: number, random: () => number): { dense: Float32Array; E: Float32Array; bOut: Float32Array } {
  const L = denseLayout(H);
  const dense = new Float32Array(L.size);
  const fill = (arr: Float32Array, offset: number, rows: number, cols: number, blocks: number) => {
    const bc = cols / blocks;
    const sigma = Math.sqrt(6 / (rows + bc));
    for (let i = 0; i < rows * cols; i++) arr[offset + i] = (random() * 2 - 1) * sigma;
  };
  L.names.forEach((name, k) => {
    const shape = L.shapes[k]!;
    if (shape.length === 2) fill(dense, L.offsets[k]!, shape[0]!, shape[1]!, shape[1]! / H);
  });
  const E = new Float32Array(items * H);
  fill(E, 0, items, H, 1);
  return { dense, E, bOut: new Float32Array(items) };
}

export interface TrainProgress {
  epoch: number;
  epochs: number;
  step: number;
  /** Targets trained on so far, and in all epochs. */
  done: number;
  total: number;
  loss: number;
  eventsPerSecond: number;
}

export interface TrainedHrnn {
  weights: HrnnWeights;
  /** The flat array behind the weights' dense views (denseLayout). */
  dense: Float32Array;
  /** hrnn-metadata: the feature tables and the training items' features (E does not include them). */
  features: { F: Float32Array; Cx: Float32Array; U: Float32Array; item: SparseRows } | undefined;
  itemIds: string[];
  counts: Float64Array;
  params: HrnnTrainParams;
  /** Training events (targets) per second, over all epochs. */
  eventsPerSecond: number;
  lossByEpoch: number[];
}

/**
 * Everything training updates: the weights and the optimizer's accumulators, as flat arrays. Over
 * SharedArrayBuffers when several workers train at once (Hogwild!: each worker updates the shared
 * arrays without locks; updates are sparse and rarely collide).
 */
type Accumulators = { acc: Float32Array; mom: Float32Array };

export interface TrainArrays {
  dense: Float32Array;
  E: Float32Array;
  bOut: Float32Array;
  /** Feature embeddings (hrnn-metadata; empty without): item features, event context, user features; each rows × H. */
  F: Float32Array;
  Cx: Float32Array;
  U: Float32Array;
  opt: { dense: Accumulators; E: Accumulators; bOut: Accumulators; F: Accumulators; Cx: Accumulators; U: Accumulators };
}

export function allocTrainArrays(H: number, N: number, seed: number, shared: boolean, sizes: FeatureSizes = { item: 0, ctx: 0, user: 0 }): TrainArrays {
  const alloc = (n: number) => (shared ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n));
  const init = initWeights(H, N, prng(seed));
  const copy = (a: Float32Array) => {
    const out = alloc(a.length);
    out.set(a);
    return out;
  };
  const pair = (n: number) => ({ acc: alloc(n), mom: alloc(n) });
  // Feature embeddings start at 0: the model starts as plain hrnn and learns what metadata adds.
  return {
    dense: copy(init.dense),
    E: copy(init.E),
    bOut: copy(init.bOut),
    F: alloc(sizes.item * H),
    Cx: alloc(sizes.ctx * H),
    U: alloc(sizes.user * H),
    opt: { dense: pair(init.dense.length), E: pair(init.E.length), bOut: pair(N), F: pair(sizes.item * H), Cx: pair(sizes.ctx * H), U: pair(sizes.user * H) },
  };
}

/** out[o + d·stride] += Σ value · table[id] over row r of `rows` (d < H). */
function addSparse(out: Float32Array, o: number, stride: number, table: Float32Array, rows: SparseRows, r: number, H: number): void {
  for (let k = rows.offsets[r]!; k < rows.offsets[r + 1]!; k++) {
    const v = rows.values[k]!;
    const base = rows.ids[k]! * H;
    for (let d = 0; d < H; d++) out[o + d * stride]! += v * table[base + d]!;
  }
}

/** grads[id] += value · src[o + d·stride] for the ids of row r of `rows`. */
function scatterSparse(grads: Map<number, Float32Array>, rows: SparseRows, r: number, src: Float32Array, o: number, stride: number, H: number): void {
  for (let k = rows.offsets[r]!; k < rows.offsets[r + 1]!; k++) {
    const v = rows.values[k]!;
    const id = rows.ids[k]!;
    let g = grads.get(id);
    if (!g) grads.set(id, (g = new Float32Array(H)));
    for (let d = 0; d < H; d++) g[d]! += v * src[o + d * stride]!;
  }
}

/**
 * Per-item gradient rows of one step (the items a step touched: inputs and output columns), summed
 * per item in first-touched order, in preallocated slots (no Map, no allocation per step).
 */
export class RowGrads {
  private readonly slot: Int32Array;
  private readonly items: Int32Array;
  private readonly buf: Float32Array;
  private count = 0;

  constructor(
    items: number,
    private readonly H: number,
    maxRows: number,
  ) {
    this.slot = new Int32Array(items).fill(-1);
    this.items = new Int32Array(maxRows);
    this.buf = new Float32Array(maxRows * H);
  }

  /** Adds src[offset .. offset + H) to the item's row. */
  add(item: number, src: Float32Array, offset: number): void {
    const H = this.H;
    let s = this.slot[item]!;
    if (s < 0) {
      s = this.count++;
      this.slot[item] = s;
      this.items[s] = item;
      this.buf.fill(0, s * H, s * H + H);
    }
    const buf = this.buf;
    const o = s * H;
    for (let d = 0; d < H; d++) buf[o + d]! += src[offset + d]!;
  }

  /** One optimizer update per touched item row of `params` (rows × H). */
  apply(opt: AdagradM, params: Float32Array): void {
    for (let s = 0; s < this.count; s++) opt.applyRange(params, this.buf, s * this.H, this.H, this.items[s]! * this.H);
  }

  clear(): void {
    for (let s = 0; s < this.count; s++) this.slot[this.items[s]!] = -1;
    this.count = 0;
  }
}

/**
 * Softmax cross-entropy of B rows over C columns, the label of row b being column b, from the
 * softmax `P` (B × C, row-major; `logits` for the rare row whose label's probability underflows):
 * returns Σ_b w_b·CE_b / norm, turns `P` into its gradient by the logits, (P − label)·w_b / norm,
 * and writes the gradient by the column biases (the column sums) into `gBias`.
 */
export function crossEntropyFromSoftmax(P: Float32Array, logits: () => Float32Array, weight: Float32Array, norm: number, B: number, C: number, gBias: Float32Array): number {
  let loss = 0;
  let L: Float32Array | undefined;
  for (let b = 0; b < B; b++) {
    const w = weight[b]!;
    const o = b * C;
    if (w === 0) {
      P.fill(0, o, o + C);
      continue;
    }
    const pb = P[o + b]!;
    if (pb > 1e-30) loss -= w * Math.log(pb);
    else {
      // −log P[b] = −log P[j] + logit[j] − logit[b], j the row's most likely column (P[j] ≥ 1/C).
      L ??= logits();
      let j = 0;
      for (let k = 1; k < C; k++) if (P[o + k]! > P[o + j]!) j = k;
      loss += w * (-Math.log(P[o + j]!) + L[o + j]! - L[o + b]!);
    }
    const scale = w / norm;
    for (let k = 0; k < C; k++) P[o + k]! *= scale;
    P[o + b]! -= scale;
  }
  gBias.fill(0);
  for (let b = 0; b < B; b++) {
    const o = b * C;
    for (let k = 0; k < C; k++) gBias[k]! += P[o + k]!;
  }
  return loss / norm;
}

/**
 * Turns `G`, the gradient by the activated scores a = act(raw) (B × C), into the gradient by the raw
 * scores (G ⊙ act'(a)), and `gBias` into its column sums.
 */
export function chainFinalAct(G: Float32Array, a: Float32Array, act: ParsedFinalAct, B: number, C: number, gBias: Float32Array): void {
  gBias.fill(0);
  for (let b = 0; b < B; b++) {
    for (let k = 0, o = b * C; k < C; k++) {
      const g = (G[o + k]! *= finalActDerivative(a[o + k]!, act));
      gBias[k]! += g;
    }
  }
}

/**
 * The sampled-softmax cross-entropy output layer as one differentiable op of the query states
 * qd (B × H), outside the tape: the logits (O·qdᵀ)ᵀ + bias (B × C, O the output columns' rows,
 * C × H), the softmax in one wasm kernel (XNNPACK), the loss and the gradient by the logits in
 * JavaScript (one pass, writing it in both layouts), then dq = dLogits·O and the columns' gradient
 * dLogitsᵀ·qd (C × H, a row per column). No tape nodes or saved copies for the B × C tensors.
 * wasm's matMul packs its right operand (XNNPACK) whenever that tensor is new, which costs about half
 * the product: the large fresh operands (O, dLogitsᵀ) go on the left where they can, and only O is
 * packed once. The columns' and biases' gradients of the last call are left in `gO` and `gBias`.
 */
export function sampledSoftmaxHead(B: number, C: number, H: number, act: ParsedFinalAct = { kind: 'linear' }) {
  const gO = new Float32Array(C * H);
  const gBias = new Float32Array(C);
  const dLogTBuf = new Float32Array(C * B);
  let args: { O: tf.Tensor2D; bias: tf.Tensor1D; weight: Float32Array; norm: number; correction: tf.Tensor1D | undefined } | undefined;
  let dLogT: tf.Tensor2D | undefined;
  const op = tf.customGrad(((qd: tf.Tensor2D) => {
    const { O, bias, weight, norm, correction } = args!;
    const raw = tf.add(tf.transpose(tf.matMul(O, tf.transpose(qd) as tf.Tensor2D)), bias) as tf.Tensor2D;
    // With a final activation: logits = act(raw) − correction, and the gradient by raw is the one by the logits times act'.
    const activated = act.kind === 'linear' ? undefined : finalActivation(raw, act);
    const logits = activated ? (correction ? tf.sub(activated, correction) : activated) : raw;
    const P = tf.softmax(logits).dataSync() as Float32Array;
    const loss = crossEntropyFromSoftmax(P, () => logits.dataSync() as Float32Array, weight, norm, B, C, gBias);
    if (activated) chainFinalAct(P, activated.dataSync() as Float32Array, act, B, C, gBias);
    for (let b = 0; b < B; b++) for (let k = 0, o = b * C; k < C; k++) dLogTBuf[k * B + b] = P[o + k]!;
    gO.set(tf.matMul(tf.tensor2d(dLogTBuf, [C, B]), qd).dataSync());
    dLogT?.dispose();
    dLogT = tf.keep(tf.tensor2d(P, [B, C]));
    return {
      value: tf.scalar(loss),
      gradFunc: (dy: tf.Tensor) => [tf.mul(tf.matMul(dLogT!, O), dy)],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (qd: tf.Tensor2D) => tf.Scalar;
  return {
    gO,
    gBias,
    /**
     * The loss of query states `qd` against the columns `O` (C × H, biases `bias`), rows weighted by
     * `weight`, over `norm`. With a final activation, `bias` is the output bias alone and
     * `correction` (logQ) is subtracted after the activation; linear: `bias` includes it.
     */
    loss(qd: tf.Tensor2D, O: tf.Tensor2D, bias: tf.Tensor1D, weight: Float32Array, norm: number, correction?: tf.Tensor1D): tf.Scalar {
      args = { O, bias, weight, norm, correction };
      return op(qd);
    },
    dispose(): void {
      dLogT?.dispose();
      dLogT = undefined;
    },
  };
}

/**
 * Negative sampling weights count^sampleAlpha (draws ∝ popularity^α: 0 uniform, 1 by popularity)
 * and log P(item), P the item's share of the training interactions (for the logQ correction).
 */
export function popularityTables(counts: Float64Array, sampleAlpha: number): { sampleWeights: Float64Array; logP: Float32Array } {
  const N = counts.length;
  const sampleWeights = new Float64Array(N);
  const logP = new Float32Array(N);
  let total = 0;
  for (let i = 0; i < N; i++) total += counts[i]!;
  for (let i = 0; i < N; i++) {
    sampleWeights[i] = Math.pow(counts[i]!, sampleAlpha);
    logP[i] = Math.log(counts[i]! / total);
  }
  return { sampleWeights, logP };
}

/**
 * Per output column k (item cols[k]): the logQ correction corr[k] = logq · log P(item), and the bias
 * the head adds: bOut[item] − corr[k] with a linear final activation (logits = q·e + b − corr), else
 * bOut[item] alone (the head subtracts corr after the activation: act(q·e + b) − corr).
 */
export function columnBiases(cols: Int32Array, bOut: Float32Array, logP: Float32Array, logq: number, linear: boolean, bias: Float32Array, corr: Float32Array): void {
  for (let k = 0; k < cols.length; k++) {
    const item = cols[k]!;
    corr[k] = logq * logP[item]!;
    bias[k] = linear ? bOut[item]! - corr[k]! : bOut[item]!;
  }
}

/** Which users a training loop walks: every `count`-th of each epoch's shuffled order, from `index`. */
export interface Part {
  index: number;
  count: number;
}

export interface LoopResult {
  targets: number;
  lossByEpoch: number[];
}

/** Targets per epoch: every event (the first one from the user's start step). */
export function targetsPerEpoch(data: EncodedData): number {
  let n = 0;
  for (const u of data.users) n += u.items.length;
  return n;
}

/**
 * Trains HRNN on encoded data, in this thread. The tfjs backend must be initialised (initBackend).
 * Deterministic for a seed on one backend.
 */
export function trainHrnn(data: EncodedData, params: HrnnTrainParams, onProgress?: (p: TrainProgress) => void, limit = Infinity): TrainedHrnn {
  const arrays = allocTrainArrays(params.hiddenSize, data.itemIds.length, params.seed, false, data.features?.sizes);
  const t0 = performance.now();
  const loop = trainLoop(data, params, arrays, { index: 0, count: 1 }, onProgress, limit);
  return trained(data, params, arrays, loop, t0, onProgress);
}

/** The result of a training from its arrays; reports the final progress. */
export function trained(data: EncodedData, p: HrnnTrainParams, arrays: TrainArrays, loop: LoopResult, t0: number, onProgress?: (p: TrainProgress) => void): TrainedHrnn {
  const seconds = (performance.now() - t0) / 1000;
  const eventsPerSecond = seconds > 0 ? loop.targets / seconds : 0;
  onProgress?.({ epoch: p.epochs - 1, epochs: p.epochs, step: 0, done: loop.targets, total: targetsPerEpoch(data) * p.epochs, loss: loop.lossByEpoch.at(-1) ?? 0, eventsPerSecond });
  const own = (a: Float32Array) => (a.buffer instanceof SharedArrayBuffer ? a.slice() : a);
  const dense = own(arrays.dense);
  const E = own(arrays.E);
  const bOut = own(arrays.bOut);
  return {
    weights: weightsView(p.hiddenSize, data.itemIds.length, dense, E, bOut),
    features: data.features ? { F: own(arrays.F), Cx: own(arrays.Cx), U: own(arrays.U), item: data.features.item } : undefined,
    dense,
    itemIds: data.itemIds,
    counts: data.counts,
    params: p,
    eventsPerSecond,
    lossByEpoch: loop.lossByEpoch,
  };
}

/**
 * The training loop over one part of the users (all of them, or a worker's share). `limit` stops it
 * after the step that reaches that many targets (benchmarks: a steady-state speed on a large set).
 */
export function trainLoop(data: EncodedData, params: HrnnTrainParams, arrays: TrainArrays, part: Part, onProgress?: (p: TrainProgress) => void, limit = Infinity): LoopResult {
  const p = params;
  const H = p.hiddenSize;
  const N = data.itemIds.length;
  const B = p.batchSize;
  // The shuffle is the same in every part (seeded alike); sampling and dropout differ per part.
  const shuffleRandom = prng(p.seed + 1);
  const random = prng(p.seed + 2 + part.index);
  const { dense, E, bOut } = arrays;
  const L = denseLayout(H);
  const denseOpt = new AdagradM(L.size, p.learningRate, p.momentum, 1e-6, arrays.opt.dense);
  const embOpt = new AdagradM(N * H, p.learningRate, p.momentum, 1e-6, arrays.opt.E);
  const biasOpt = new AdagradM(N, p.learningRate, p.momentum, 1e-6, arrays.opt.bOut);
  const feat = data.features;
  const { F, Cx, U } = arrays;
  const fOpt = new AdagradM(F.length, p.learningRate, p.momentum, 1e-6, arrays.opt.F);
  const cxOpt = new AdagradM(Cx.length, p.learningRate, p.momentum, 1e-6, arrays.opt.Cx);
  const uOpt = new AdagradM(U.length, p.learningRate, p.momentum, 1e-6, arrays.opt.U);
  const fGrad = new Map<number, Float32Array>();
  const cxGrad = new Map<number, Float32Array>();
  const uGrad = new Map<number, Float32Array>();

  const { sampleWeights, logP } = popularityTables(data.counts, p.sampleAlpha);
  const sampler = new Sampler(sampleWeights, random);
  // Dropout masks drawn in JavaScript (tf.dropout's seeded uniform tensor costs five kernels and a JS generator).
  const dropRandom = prng(p.seed * 1_000_003 + 7919 * (part.index + 1));
  const dropHidden = new Float32Array(B * H);
  const dropEmbed = new Float32Array(B * H);
  const S = N > 1 ? Math.min(p.negatives, N) : 0;
  const C = B + S;

  const ce = p.loss === 'cross-entropy';
  const act = parseFinalAct(p.finalAct);
  const linear = act.kind === 'linear';
  // Constant per run: the diagonal label mask (bpr-max's graph only).
  const diag = ce ? undefined : tf.tidy(() => tf.concat([tf.eye(B), tf.zeros([B, S])], 1));

  const xs = new Int32Array(B);
  const cols = new Int32Array(C);
  const fresh = new Float32Array(B);
  const nextNew = new Float32Array(B);
  const weight = new Float32Array(B);
  let h0 = new Float32Array(B * H);
  let c0 = new Float32Array(B * H);
  const Xe = new Float32Array(B * H);
  /** The output layer's columns: the rows of E (and their item features) of `cols`, C × H. */
  const O = new Float32Array(C * H);
  /** Output bias minus the logQ correction, per column (with a final activation: the bias alone, the correction in `colCorr`). */
  const colBias = new Float32Array(C);
  const colCorr = new Float32Array(C);
  const ob = new Float32Array(C);
  const head = ce ? sampledSoftmaxHead(B, C, H, act) : undefined;
  /** Gradients of the output columns (C × H) and biases (C) of a step. */
  let gO: Float32Array = new Float32Array(C * H);
  let gB: Float32Array = new Float32Array(C);
  const rows = new RowGrads(N, H, B + C);
  /** The dense parameters (denseLayout indices) a step differentiates. */
  const used: number[] = [];
  const biasGrad = new Map<number, number>();

  const lossByEpoch: number[] = [];
  let targets = 0;
  let stepNo = 0;
  const t0 = performance.now();
  const eligible = data.users.map((u, k) => (u.items.length >= 1 ? k : -1)).filter((k) => k >= 0);
  const perEpoch = targetsPerEpoch(data);

  for (let epoch = 0; epoch < p.epochs && targets < limit; epoch++) {
    // Users in a seeded random order each epoch.
    const all = eligible.slice();
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(shuffleRandom() * (i + 1));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    const order = part.count === 1 ? all : all.filter((_, k) => k % part.count === part.index);
    let next = 0;
    const rowUser = new Int32Array(B).fill(-1);
    const rowPos = new Int32Array(B);
    const takeUser = (b: number) => {
      if (next < order.length) {
        rowUser[b] = order[next++]!;
        // -1: the user's start step, no item in, the first item as target (see the module comment).
        rowPos[b] = -1;
      } else rowUser[b] = -1;
      h0.fill(0, b * H, (b + 1) * H);
      c0.fill(0, b * H, (b + 1) * H);
      // A new user's state: its metadata's embedding (hrnn-metadata), else 0.
      if (feat && rowUser[b]! >= 0) addSparse(c0, b * H, 1, U, feat.user, rowUser[b]!, H);
    };
    for (let b = 0; b < B; b++) takeUser(b);
    let lossSum = 0;
    let lossSteps = 0;
    while (targets < limit) {
      let active = 0;
      for (let b = 0; b < B; b++) {
        const u = rowUser[b]!;
        if (u < 0) {
          xs[b] = 0;
          cols[b] = 0;
          fresh[b] = 0;
          nextNew[b] = 0;
          weight[b] = 0;
          continue;
        }
        const seq = data.users[u]!;
        const t = rowPos[b]!;
        xs[b] = t < 0 ? -1 : seq.items[t]!;
        cols[b] = seq.items[t + 1]!;
        fresh[b] = t < 0 ? 1 : 0;
        nextNew[b] = t < 0 ? 0 : seq.starts[t + 1]!;
        weight[b] = 1;
        active++;
      }
      if (active === 0) break;
      for (let s = 0; s < S; s++) cols[B + s] = sampler.draw();
      for (let b = 0; b < B; b++) {
        if (xs[b]! < 0) {
          Xe.fill(0, b * H, (b + 1) * H);
          continue;
        }
        Xe.set(E.subarray(xs[b]! * H, xs[b]! * H + H), b * H);
        if (feat && weight[b] !== 0) {
          addSparse(Xe, b * H, 1, F, feat.item, xs[b]!, H);
          addSparse(Xe, b * H, 1, Cx, data.users[rowUser[b]!]!.ctx!, rowPos[b]!, H);
        }
      }
      for (let k = 0; k < C; k++) {
        const item = cols[k]!;
        O.set(E.subarray(item * H, item * H + H), k * H);
        if (feat) addSparse(O, k * H, 1, F, feat.item, item, H);
        ob[k] = bOut[item]!;
      }
      columnBiases(cols, bOut, logP, ce ? p.logq : 0, linear, colBias, colCorr);

      const norm = Math.max(1, active);
      const result = tf.tidy(() => {
        const anyNext = nextNew.some((v) => v === 1);
        // Differentiate by what the step uses (tfjs refuses an input that does not reach the loss).
        used.length = 0;
        // The init layer only where a row starts a user or a session ends; no row does in most steps.
        const anyFresh = fresh.some((v) => v === 1);
        const initUsed = anyNext || anyFresh;
        L.names.forEach((name, k) => ((anyNext || !name.startsWith('u.')) && (initUsed || (name !== 'wi' && name !== 'bi')) ? used.push(k) : undefined));
        const cInput = feat !== undefined && initUsed;
        const denseT = used.map((k) => tf.tensor(dense.subarray(L.offsets[k]!, L.offsets[k]! + L.shapes[k]!.reduce((x, y) => x * y, 1)), L.shapes[k]!));
        const XeT = tf.tensor2d(Xe, [B, H]);
        const OTen = tf.tensor2d(O, [C, H]);
        const h0T = tf.tensor2d(h0, [B, H]);
        const c0T = tf.tensor2d(c0, [B, H]);
        const freshT = tf.tensor2d(fresh, [B, 1]);
        const nextT = tf.tensor2d(nextNew, [B, 1]);
        const kept: { q?: tf.Tensor; c?: tf.Tensor } = {};
        // The cross-entropy head takes the output columns as a constant and hands their gradients
        // back itself; bpr-max's graph differentiates them (and the biases) as inputs.
        const lead = ce ? [XeT] : [XeT, OTen, tf.tensor1d(ob)];
        const f = (...vars: tf.Tensor[]): tf.Scalar => {
          const xe = vars[0] as tf.Tensor2D;
          const w = (name: string) => vars[lead.length + used.indexOf(L.names.indexOf(name))] as tf.Tensor2D;
          const [swx, swrz, swh, sb] = [w('s.wx'), w('s.wrz'), w('s.wh'), w('s.b') as tf.Tensor];
          const cIn = cInput ? (vars[lead.length + used.length] as tf.Tensor2D) : undefined;
          // With user features, the user state is an input whose gradient reaches them (fresh rows).
          const c0v = cIn ?? c0T;
          const init = (c: tf.Tensor2D) => initLayer(c, w('wi'), w('bi') as unknown as tf.Tensor1D);
          // A row's first event starts from init(c0), c0 the new user's state.
          // mix(m, a, b) = b + m·(a − b): a where m is 1, b where it is 0 (3 kernels, not 5).
          const mix = (m: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.add(b, tf.mul(m, tf.sub(a, b))) as tf.Tensor2D;
          const hStart = anyFresh ? mix(freshT, init(c0v), h0T) : h0T;
          const xin = p.dropoutEmbed > 0 ? (tf.mul(xe, tf.tensor2d(dropoutMask(dropEmbed, p.dropoutEmbed, dropRandom), [B, H])) as tf.Tensor2D) : xe;
          const h = gruCell(xin, hStart, swx, swrz, swh, sb as tf.Tensor1D);
          // The user GRU only matters where a session ends before the target: skip it in steps without one.
          let q = h;
          let cCarry: tf.Tensor = c0v;
          if (anyNext) {
            const cNew = gruCell(h, c0v, w('u.wx'), w('u.wrz'), w('u.wh'), w('u.b') as unknown as tf.Tensor1D);
            q = mix(nextT, init(cNew), h);
            cCarry = mix(nextT, cNew, c0v);
          }
          kept.q = tf.keep(q);
          kept.c = tf.keep(cCarry);
          const qd = p.dropoutHidden > 0 ? (tf.mul(q, tf.tensor2d(dropoutMask(dropHidden, p.dropoutHidden, dropRandom), [B, H])) as tf.Tensor2D) : q;
          if (head) return head.loss(qd, OTen, tf.tensor1d(colBias), weight, norm, linear || p.logq === 0 ? undefined : tf.tensor1d(colCorr));
          const [ot, obv] = [vars[1] as tf.Tensor2D, vars[2] as tf.Tensor1D];
          const logits = finalActivation(tf.add(mm(qd, tf.transpose(ot) as tf.Tensor2D), obv) as tf.Tensor2D, act);
          const perRow = bprMaxRows(logits, diag!, p.bpreg);
          return tf.div(tf.sum(tf.mul(perRow, tf.tensor1d(weight))), norm) as tf.Scalar;
        };
        const { value, grads } = tf.valueAndGrads(f)([...lead, ...denseT, ...(cInput ? [c0T] : [])]);
        return { value, grads, q: kept.q!, c: kept.c! };
      });
      const loss = result.value.dataSync()[0]!;
      const grads = result.grads.map((g) => g.dataSync() as Float32Array);
      const qNew = result.q.dataSync() as Float32Array;
      const cNew = result.c.dataSync() as Float32Array;
      tf.dispose([result.value, ...result.grads, result.q, result.c]);
      releaseKept();
      const lead = ce ? 1 : 3;
      if (head) {
        gO = head.gO;
        gB = head.gBias;
      } else {
        gO = grads[1]!;
        gB = grads[2]!;
      }

      // Dense parameters.
      used.forEach((k, i) => denseOpt.apply(dense, grads[lead + i]!, L.offsets[k]!));
      // Item rows: sum the gradients per item (inputs and output columns), then one update per row.
      rows.clear();
      biasGrad.clear();
      const gX = grads[0]!;
      for (let b = 0; b < B; b++) {
        if (weight[b] === 0 || xs[b]! < 0) continue;
        rows.add(xs[b]!, gX, b * H);
      }
      for (let k = 0; k < C; k++) {
        if (k < B && weight[k] === 0) continue;
        rows.add(cols[k]!, gO, k * H);
        biasGrad.set(cols[k]!, (biasGrad.get(cols[k]!) ?? 0) + gB[k]!);
      }
      rows.apply(embOpt, E);
      for (const [item, g] of biasGrad) biasOpt.apply(bOut, [g], item);
      if (feat) {
        fGrad.clear();
        cxGrad.clear();
        uGrad.clear();
        for (let b = 0; b < B; b++) {
          if (weight[b] === 0) continue;
          if (fresh[b] === 1) scatterSparse(uGrad, feat.user, rowUser[b]!, grads[lead + used.length]!, b * H, 1, H);
          if (xs[b]! < 0) continue;
          scatterSparse(fGrad, feat.item, xs[b]!, gX, b * H, 1, H);
          scatterSparse(cxGrad, data.users[rowUser[b]!]!.ctx!, rowPos[b]!, gX, b * H, 1, H);
        }
        for (let k = 0; k < C; k++) if (!(k < B && weight[k] === 0)) scatterSparse(fGrad, feat.item, cols[k]!, gO, k * H, 1, H);
        for (const [id, g] of fGrad) fOpt.apply(F, g, id * H);
        for (const [id, g] of cxGrad) cxOpt.apply(Cx, g, id * H);
        for (const [id, g] of uGrad) uOpt.apply(U, g, id * H);
      }

      // Carry the states, advance the rows.
      h0 = qNew.slice();
      c0 = cNew.slice();
      for (let b = 0; b < B; b++) {
        const u = rowUser[b]!;
        if (u < 0) continue;
        targets++;
        rowPos[b]!++;
        if (rowPos[b]! + 1 >= data.users[u]!.items.length) takeUser(b);
      }
      lossSum += loss;
      lossSteps++;
      stepNo++;
      if (onProgress && stepNo % 50 === 0) {
        try {
          onProgress({
            epoch,
            epochs: p.epochs,
            step: stepNo,
            done: targets,
            total: perEpoch * p.epochs,
            loss: lossSum / lossSteps,
            eventsPerSecond: targets / ((performance.now() - t0) / 1000),
          });
        } catch (err) {
          // The hook stops the training (TrainingStopped at a search's budget): the run's constant tensors go with it.
          diag?.dispose();
          head?.dispose();
          throw err;
        }
      }
    }
    lossByEpoch.push(lossSteps ? lossSum / lossSteps : 0);
  }
  diag?.dispose();
  head?.dispose();
  return { targets, lossByEpoch };
}

/**
 * −log softmax(logits)[i, i] per row (the label of row i is column i), with a fused gradient
 * (softmax − label): one exp over the logits instead of logSoftmax's two.
 */
export const crossEntropyRows = tf.customGrad(((logits: tf.Tensor, diag: tf.Tensor, save: tf.GradSaveFunc) => {
  const max = tf.max(logits, 1, true);
  const e = tf.exp(tf.sub(logits, max));
  const sum = tf.sum(e, 1, true);
  const target = tf.sum(tf.mul(logits, diag), 1, true);
  // logsumexp − target
  const value = tf.reshape(tf.sub(tf.add(tf.log(sum), max), target), [-1]);
  save([e, sum, diag]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [es, ss, d] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const g = tf.mul(tf.sub(tf.div(es, ss), d), tf.reshape(dy, [-1, 1]));
      return [g, tf.zerosLike(d)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (logits: tf.Tensor2D, diag: tf.Tensor) => tf.Tensor1D;

/**
 * BPR-max (Hidasi & Karatzoglou 2018): −log Σ_j s_j σ(r_i − r_j) + bpreg Σ_j s_j r_j², with s the
 * softmax over the negatives (the target's own column excluded).
 */
export function bprMaxRows(logits: tf.Tensor2D, diag: tf.Tensor, bpreg: number): tf.Tensor1D {
  const neg = tf.sub(1, diag);
  const target = tf.sum(tf.mul(logits, diag), 1, true);
  const masked = tf.add(tf.mul(logits, neg), tf.mul(diag, -1e9));
  const s = tf.softmax(masked);
  const bpr = tf.neg(tf.log(tf.add(tf.sum(tf.mul(tf.sigmoid(tf.sub(target, logits)), s), 1), 1e-24)));
  return tf.add(bpr, tf.mul(bpreg, tf.sum(tf.mul(tf.square(logits), s), 1))) as tf.Tensor1D;
}
