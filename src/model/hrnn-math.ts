/**
 * HRNN's inference in plain JavaScript (no TensorFlow.js): the same weights and formulas as the
 * training graph (src/model/hrnn-train.ts), one event at a time, for serving and evaluation.
 *
 * GRU (GRU4Rec's form; x the input, h the state, all matrices row-major, inputs on the left):
 *   z = σ(x·Wx[:, 0:H] + h·Wrz[:, 0:H] + b[0:H])          update gate
 *   r = σ(x·Wx[:, H:2H] + h·Wrz[:, H:2H] + b[H:2H])        reset gate
 *   ĥ = tanh(x·Wx[:, 2H:3H] + (r ⊙ h)·Wh + b[2H:3H])
 *   h' = h + z ⊙ (ĥ − h)
 *
 * HRNN (Quadrana et al. 2017): a session GRU over item embeddings E[item]; a user GRU whose input is
 * the session GRU's final state, run when a session ends (a gap over the session timeout); a new
 * session starts from init(c) = tanh(c·Wi + bi) with c the user state. A new user (c = 0, or from
 * the user's metadata) starts with one session GRU step on a zero input from init(c), trained to
 * predict users' first items: a user without history is recommended from that state. The query state for "what next" is the
 * session state within a session, init(userGRU(h, c)) once the session has timed out. Scores are
 * q·E[j] + bOut[j] (input and output embeddings tied, as GRU4Rec's constrained embedding).
 */

export interface GruWeights {
  /** In × 3H */
  wx: Float32Array;
  /** H × 2H */
  wrz: Float32Array;
  /** H × H */
  wh: Float32Array;
  /** 3H */
  b: Float32Array;
}

export interface HrnnWeights {
  /** Hidden size (also the embedding size: tied embeddings). */
  hidden: number;
  /** Number of items (rows of E). */
  items: number;
  /** items × hidden, input and output item embeddings. */
  E: Float32Array;
  /** items, output bias. */
  bOut: Float32Array;
  session: GruWeights;
  user: GruWeights;
  /** hidden × hidden */
  wi: Float32Array;
  /** hidden */
  bi: Float32Array;
}

/** A user's HRNN state: session state h, user state c, and the time of the latest event applied. */
export interface HrnnState {
  h: Float32Array;
  c: Float32Array;
  /** Epoch ms of the latest event applied; undefined for a user with none. */
  last: number | undefined;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** Transposed copies of weight matrices (cols × rows), made once per matrix: dot products over contiguous memory. */
const transposed = new WeakMap<Float32Array, Float32Array>();

/** M's transpose (cols × rows), cached per matrix; shared with the batched step (src/model/hrnn-batch.ts). */
export function transposeOf(M: Float32Array, rows: number, cols: number): Float32Array {
  let T = transposed.get(M);
  if (!T) {
    T = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) T[j * rows + i] = M[i * cols + j]!;
    transposed.set(M, T);
  }
  return T;
}

/**
 * out += v · M, for M row-major with `cols` columns and v.length rows. Computed as dot products
 * with M's (cached) transpose, summed in a local: about 3x faster in V8 than axpy over rows.
 * (A model's weights must not change after first use: the transpose is cached.)
 */
function addVecMat(out: Float32Array, v: Float32Array, M: Float32Array, cols: number): void {
  const rows = v.length;
  const T = transposeOf(M, rows, cols);
  for (let j = 0; j < cols; j++) {
    const base = j * rows;
    let acc = 0;
    for (let i = 0; i < rows; i++) acc += v[i]! * T[base + i]!;
    out[j]! += acc;
  }
}

/** One GRU step: returns the new state (a fresh array). `x` has length In, `h` length H. */
export function gruStep(w: GruWeights, x: Float32Array, h: Float32Array, hidden: number): Float32Array {
  const H = hidden;
  const a = new Float32Array(3 * H);
  a.set(w.b);
  addVecMat(a, x, w.wx, 3 * H);
  const hrz = new Float32Array(2 * H);
  addVecMat(hrz, h, w.wrz, 2 * H);
  const rh = new Float32Array(H);
  for (let j = 0; j < H; j++) rh[j] = sigmoid(a[H + j]! + hrz[H + j]!) * h[j]!;
  const cand = a.slice(2 * H);
  addVecMat(cand, rh, w.wh, H);
  const out = new Float32Array(H);
  for (let j = 0; j < H; j++) {
    const hj = h[j]!;
    out[j] = hj + sigmoid(a[j]! + hrz[j]!) * (Math.tanh(cand[j]!) - hj);
  }
  return out;
}

/** init(c) = tanh(c·Wi + bi): the first session state from a user state. */
export function initSession(w: HrnnWeights, c: Float32Array): Float32Array {
  const out = w.bi.slice();
  addVecMat(out, c, w.wi, w.hidden);
  for (let j = 0; j < w.hidden; j++) out[j] = Math.tanh(out[j]!);
  return out;
}

/** A new user's session state before any event: the session GRU's start step (a zero input) from init(c). */
export function startState(w: HrnnWeights, c: Float32Array): Float32Array {
  return gruStep(w.session, new Float32Array(w.hidden), initSession(w, c), w.hidden);
}

/** A user without events: no session yet, user state `c` (zeros, or from the user's metadata: hrnn-metadata). */
export function emptyState(hidden: number, c?: Float32Array): HrnnState {
  return { h: new Float32Array(hidden), c: c ?? new Float32Array(hidden), last: undefined };
}

/**
 * Applies one event (item index `item` at time `ts`) to a state, returning the new state. A gap
 * over `timeoutMs` since the previous event closes the session first (user GRU, then init).
 * `extra` is added to the item's embedding as the session GRU's input (the event's context
 * features, hrnn-metadata); `itemVector` replaces the embedding row (an item outside E).
 */
export function applyEvent(
  w: HrnnWeights,
  s: HrnnState,
  item: number,
  ts: number,
  timeoutMs: number,
  o: { extra?: Float32Array; itemVector?: Float32Array } = {},
): HrnnState {
  let c = s.c;
  let h0: Float32Array;
  if (s.last === undefined) {
    h0 = startState(w, c);
  } else if (ts - s.last > timeoutMs) {
    c = gruStep(w.user, s.h, s.c, w.hidden);
    h0 = initSession(w, c);
  } else {
    h0 = s.h;
  }
  let x = o.itemVector ?? w.E.subarray(item * w.hidden, (item + 1) * w.hidden);
  if (o.extra) {
    x = x.slice();
    for (let d = 0; d < w.hidden; d++) x[d]! += o.extra[d]!;
  }
  return { h: gruStep(w.session, x, h0, w.hidden), c, last: s.last === undefined ? ts : Math.max(s.last, ts) };
}

/** The state that scores the next item at time `now` (undefined: the session is taken as open). */
export function queryState(w: HrnnWeights, s: HrnnState, now: number | undefined, timeoutMs: number): Float32Array {
  if (s.last === undefined) return startState(w, s.c);
  if (now !== undefined && now - s.last > timeoutMs) return initSession(w, gruStep(w.user, s.h, s.c, w.hidden));
  return s.h;
}

/** Indices of the `k` highest scores, best first (ties: lower index first), skipping `skip`. */
export function topK(scores: Float32Array, k: number, skip?: (index: number) => boolean): number[] {
  // A sorted buffer of the best k so far; k is small (<= a few hundred).
  const idx: number[] = [];
  const val: number[] = [];
  for (let j = 0; j < scores.length; j++) {
    const v = scores[j]!;
    if (idx.length === k && v <= val[k - 1]!) continue;
    if (skip?.(j)) continue;
    let p = idx.length;
    while (p > 0 && val[p - 1]! < v) p--;
    idx.splice(p, 0, j);
    val.splice(p, 0, v);
    if (idx.length > k) {
      idx.pop();
      val.pop();
    }
  }
  return idx;
}
