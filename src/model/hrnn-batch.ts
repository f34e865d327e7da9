/**
 * Batched HRNN stepping: many users' states through their new events together, bit for bit what
 * applying each user's events one by one with applyEvent (src/model/hrnn-math.ts) returns.
 *
 * The events go in waves: wave k holds the k-th new event of every user that has one (a user's
 * events are in order, so wave k+1 only needs wave k's states). Within a wave, each GRU step of
 * applyEvent runs once over all the users needing it:
 *   1. users whose session timed out: the user GRU (x = h, state c) -> the new c
 *   2. those and the users without history whose user state is not zero (from metadata):
 *      init(c) = tanh(c·Wi + bi)
 *   3. those users without history: the session GRU's start step (zero input) from init(c)
 *   4. every user of the wave: the session GRU over the event's input vector.
 * A user without history and with a zero user state (no metadata: most new users) starts from
 * startState(w, 0), the same for all of them: computed once per model by startState itself.
 * An event whose item the model does not know (item null) only advances `last`, as HrnnModel.step
 * does: it must stay in the stream, because `last` decides the next event's timeout.
 *
 * Why bit for bit: each step computes, per user and column, exactly the expressions of gruStep /
 * initSession in the same order (a dot product summed in a double from row 0 up, rounded to float32
 * where gruStep stores into a Float32Array; the same sigmoid and Math.tanh). The batching only
 * changes which user is computed when: every two weight columns are read once per block of four
 * users (eight independent accumulators, so each user's sum keeps its order), not once per user. For that
 * reason x·Wx and h·Wrz are not fused into one [x|h] product: gruStep rounds b + x·Wx to float32
 * before adding h·Wrz, and one sum over [x|h] would differ in the last bit.
 *
 * The session step's input gates b + E[item]·Wx depend on the item only: they are cached per model
 * and kernel (itemGatesOf), which halves the multiply-adds of a typical event. Events with context
 * (extra) or a cold item's vector are computed each time.
 *
 * The arithmetic goes through a StepKernel: `jsKernel` here (plain Float32Array loops, bit for bit
 * as above), or TfStepKernel (src/model/hrnn-batch-tf.ts: TensorFlow.js, wasm backend), which
 * bench/hrnn-step.ts measures several times faster from about ten users a wave, at float32
 * rounding (not bit for bit; the tolerance is in its test).
 */
import { startState, transposeOf, type GruWeights, type HrnnState, type HrnnWeights } from './hrnn-math.js';

/** One new event of a user: what applyEvent takes (`item` null: an item the model does not know). */
export interface BatchEvent {
  item: number | null;
  ts: number;
  /** Added to the item's vector as the session GRU's input (applyEvent's `extra`). */
  extra?: Float32Array;
  /** Replaces E's row (applyEvent's `itemVector`). */
  itemVector?: Float32Array;
}

/** A user's state before the batch and the user's new events, oldest first. */
export interface UserEvents {
  state: HrnnState;
  events: readonly BatchEvent[];
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/**
 * out[u·cols + j] = float32(base[u·baseStride + baseOff + j] + Σ_i X[u·rows + i]·T[j·rows + i]) for
 * u < B, j < cols: X (B × rows) times M (rows × cols, given as its transpose T), each sum in its own
 * double from i = 0 up (as hrnn-math's addVecMat). Blocks of four users by two columns: eight
 * accumulators fed by six loads (V8 keeps them in registers; measured 1.5x the speed of four users
 * by one column, 0.6 ns per multiply-add at hidden 64 and 100).
 */
function mulAdd(
  X: Float32Array,
  B: number,
  rows: number,
  T: Float32Array,
  cols: number,
  base: Float32Array,
  baseStride: number,
  baseOff: number,
  out: Float32Array,
): void {
  let u = 0;
  for (; u + 4 <= B; u += 4) {
    const x0 = u * rows;
    const x1 = x0 + rows;
    const x2 = x1 + rows;
    const x3 = x2 + rows;
    const b0 = u * baseStride + baseOff;
    const o0 = u * cols;
    let j = 0;
    for (; j + 2 <= cols; j += 2) {
      const t0 = j * rows;
      const t1 = t0 + rows;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let c0 = 0;
      let c1 = 0;
      let c2 = 0;
      let c3 = 0;
      for (let i = 0; i < rows; i++) {
        const t = T[t0 + i]!;
        const s = T[t1 + i]!;
        const y0 = X[x0 + i]!;
        const y1 = X[x1 + i]!;
        const y2 = X[x2 + i]!;
        const y3 = X[x3 + i]!;
        a0 += y0 * t;
        a1 += y1 * t;
        a2 += y2 * t;
        a3 += y3 * t;
        c0 += y0 * s;
        c1 += y1 * s;
        c2 += y2 * s;
        c3 += y3 * s;
      }
      out[o0 + j] = base[b0 + j]! + a0;
      out[o0 + cols + j] = base[b0 + baseStride + j]! + a1;
      out[o0 + 2 * cols + j] = base[b0 + 2 * baseStride + j]! + a2;
      out[o0 + 3 * cols + j] = base[b0 + 3 * baseStride + j]! + a3;
      out[o0 + j + 1] = base[b0 + j + 1]! + c0;
      out[o0 + cols + j + 1] = base[b0 + baseStride + j + 1]! + c1;
      out[o0 + 2 * cols + j + 1] = base[b0 + 2 * baseStride + j + 1]! + c2;
      out[o0 + 3 * cols + j + 1] = base[b0 + 3 * baseStride + j + 1]! + c3;
    }
    for (; j < cols; j++) {
      const t0 = j * rows;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let i = 0; i < rows; i++) {
        const t = T[t0 + i]!;
        a0 += X[x0 + i]! * t;
        a1 += X[x1 + i]! * t;
        a2 += X[x2 + i]! * t;
        a3 += X[x3 + i]! * t;
      }
      out[o0 + j] = base[b0 + j]! + a0;
      out[o0 + cols + j] = base[b0 + baseStride + j]! + a1;
      out[o0 + 2 * cols + j] = base[b0 + 2 * baseStride + j]! + a2;
      out[o0 + 3 * cols + j] = base[b0 + 3 * baseStride + j]! + a3;
    }
  }
  for (; u < B; u++) {
    const x0 = u * rows;
    for (let j = 0; j < cols; j++) {
      const t0 = j * rows;
      let a0 = 0;
      for (let i = 0; i < rows; i++) a0 += X[x0 + i]! * T[t0 + i]!;
      out[u * cols + j] = base[u * baseStride + baseOff + j]! + a0;
    }
  }
}

/** Work arrays for B users at hidden size H (grown as needed, reused across waves and calls). */
export class GruScratch {
  cap = 0;
  a = new Float32Array(0);
  hrz = new Float32Array(0);
  rh = new Float32Array(0);
  cand = new Float32Array(0);
  constructor(private readonly H: number) {}
  ensure(B: number): void {
    if (B <= this.cap) return;
    const cap = Math.max(B, 2 * this.cap);
    const H = this.H;
    this.a = new Float32Array(cap * 3 * H);
    this.hrz = new Float32Array(cap * 2 * H);
    this.rh = new Float32Array(cap * H);
    this.cand = new Float32Array(cap * H);
    this.cap = cap;
  }
}

/**
 * gruStep for B users: X (B × In), Hs (B × H) -> out (B × H), row u of out is
 * gruStep(w, X[u], Hs[u], H) bit for bit. `out` may not alias X or Hs.
 */
export function gruStepBatch(
  w: GruWeights,
  X: Float32Array,
  inSize: number,
  Hs: Float32Array,
  B: number,
  H: number,
  out: Float32Array,
  scratch: GruScratch = new GruScratch(H),
): void {
  if (B === 0) return;
  scratch.ensure(B);
  inputGatesBatch(w, X, inSize, B, H, scratch.a);
  gruFromGates(w, Hs, B, H, out, scratch);
}

/** out (B × 3H) = b + x·Wx for each row x of X (B × inSize): gruStep's first sum, all three gates in one pass. */
export function inputGatesBatch(w: GruWeights, X: Float32Array, inSize: number, B: number, H: number, out: Float32Array): void {
  mulAdd(X, B, inSize, transposeOf(w.wx, inSize, 3 * H), 3 * H, w.b, 0, 0, out);
}

/**
 * The rest of gruStepBatch once scratch.a holds each user's b + x·Wx (B × 3H; the caller has
 * called scratch.ensure(B) before filling it): what the item-gate cache below feeds.
 */
export function gruFromGates(w: GruWeights, Hs: Float32Array, B: number, H: number, out: Float32Array, scratch: GruScratch): void {
  const { a, hrz, rh, cand } = scratch;
  const H2 = 2 * H;
  const H3 = 3 * H;
  // hrz = 0 + h·Wrz (both gates): gruStep's second sum.
  mulAdd(Hs, B, H, transposeOf(w.wrz, H, H2), H2, zerosOf(H2), 0, 0, hrz);
  for (let u = 0; u < B; u++) {
    const ao = u * H3;
    const ho = u * H2;
    const so = u * H;
    for (let j = 0; j < H; j++) rh[so + j] = sigmoid(a[ao + H + j]! + hrz[ho + H + j]!) * Hs[so + j]!;
  }
  // cand = a[2H:3H] + (r ⊙ h)·Wh
  mulAdd(rh, B, H, transposeOf(w.wh, H, H), H, a, H3, H2, cand);
  for (let u = 0; u < B; u++) {
    const ao = u * H3;
    const ho = u * H2;
    const so = u * H;
    for (let j = 0; j < H; j++) {
      const hj = Hs[so + j]!;
      out[so + j] = hj + sigmoid(a[ao + j]! + hrz[ho + j]!) * (Math.tanh(cand[so + j]!) - hj);
    }
  }
}

function isZero(a: Float32Array, from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) if (a[i] !== 0) return false;
  return true;
}

/**
 * startState(w, zeros), made once per model: computed by startState itself, so it is the very
 * value applyEvent computes for such a user (and, ±0 included, c = 0 gives the same products).
 */
const starts = new WeakMap<HrnnWeights, Float32Array>();
function startOf(w: HrnnWeights): Float32Array {
  let s = starts.get(w);
  if (!s) starts.set(w, (s = startState(w, new Float32Array(w.hidden))));
  return s;
}

const zeros = new Map<number, Float32Array>();
function zerosOf(n: number): Float32Array {
  let z = zeros.get(n);
  if (!z) zeros.set(n, (z = new Float32Array(n)));
  return z;
}

/** initSession for B users: C (B × H) -> out (B × H), row u = initSession(w, C[u]) bit for bit. */
export function initSessionBatch(w: HrnnWeights, C: Float32Array, B: number, out: Float32Array): void {
  const H = w.hidden;
  mulAdd(C, B, H, transposeOf(w.wi, H, H), H, w.bi, 0, 0, out);
  for (let k = 0; k < B * H; k++) out[k] = Math.tanh(out[k]!);
}

/**
 * The two batched operations a wave needs. Arrays are row-major, one row per user; `out` never
 * aliases an input. `scratch` is the caller's work space for gruStepBatch (a kernel may ignore it).
 */
export interface StepKernel {
  /** Row u of out = gruStep(w, X[u], Hs[u], H) (X is B × inSize, Hs and out B × H). */
  gru(w: GruWeights, X: Float32Array, inSize: number, Hs: Float32Array, B: number, H: number, out: Float32Array, scratch: GruScratch): void;
  /** Row u of out = initSession(w, C[u]). */
  init(w: HrnnWeights, C: Float32Array, B: number, out: Float32Array): void;
  /**
   * Optional: gru from scratch.a = b + x·Wx already computed (gruFromGates). A kernel that has it
   * gets the session step's input gates from the per-item cache (itemGatesOf): half the
   * multiply-adds of an event whose input is an item's embedding.
   */
  gruFromGates?(w: GruWeights, Hs: Float32Array, B: number, H: number, out: Float32Array, scratch: GruScratch): void;
  /** With gruFromGates: inputGatesBatch's job (the gates of the inputs not in the cache). */
  inputGates?(w: GruWeights, X: Float32Array, inSize: number, B: number, H: number, out: Float32Array): void;
}

/** Plain JavaScript, bit for bit applyEvent's arithmetic. */
export const jsKernel: StepKernel = { gru: gruStepBatch, init: initSessionBatch, gruFromGates, inputGates: inputGatesBatch };

/**
 * Per model, b + E[item]·Wx of the session GRU for the items seen so far: exactly the float32 `a`
 * gruStep computes for that input (the same sums), so a cached row changes no bit. Bounded (an
 * entry is 3H floats: 1.2 kB at hidden 100; 20 MB at most), first come first kept: the items of
 * a stream are skewed, the popular ones come early and stay. Like hrnn-math's transposes, this
 * assumes a model's weights do not change after first use.
 */
export const ITEM_GATES_MAX = 16_384;
const itemGates = new WeakMap<HrnnWeights, WeakMap<StepKernel, Map<number, Float32Array>>>();
/** The cache of model w as computed by `kernel` (one per kernel: jsKernel's must hold jsKernel's bits only). */
function itemGatesOf(w: HrnnWeights, kernel: StepKernel): Map<number, Float32Array> {
  let byKernel = itemGates.get(w);
  if (!byKernel) itemGates.set(w, (byKernel = new WeakMap()));
  let m = byKernel.get(kernel);
  if (!m) byKernel.set(kernel, (m = new Map()));
  return m;
}

/**
 * Whether v is E's own row `item` (HrnnModel passes trained items' rows as views of E; its cold
 * items' vectors live elsewhere and may change, so they are never cached).
 */
function isRowOf(v: Float32Array, E: Float32Array, item: number, H: number): boolean {
  return item < E.length / H && v.buffer === E.buffer && v.byteOffset === E.byteOffset + item * H * Float32Array.BYTES_PER_ELEMENT && v.length === H;
}

/**
 * The states after each user's new events: element u equals applying users[u].events one by one
 * with applyEvent(w, s, e.item, e.ts, timeoutMs, { extra, itemVector }) from users[u].state, bit
 * for bit (an event with item null: `last` advanced, as HrnnModel.step does for an unknown item).
 * The input states are not changed; every returned state has fresh arrays. With another `kernel`
 * than jsKernel, equal to that kernel's precision.
 */
export function applyEventsBatch(w: HrnnWeights, users: readonly UserEvents[], timeoutMs: number, kernel: StepKernel = jsKernel): HrnnState[] {
  const H = w.hidden;
  const U = users.length;
  // Every user's current h and c, one row each (copied in, so the inputs stay untouched).
  const hs = new Float32Array(U * H);
  const cs = new Float32Array(U * H);
  const last: (number | undefined)[] = new Array(U);
  let waves = 0;
  for (let u = 0; u < U; u++) {
    const { state, events } = users[u]!;
    if (state.h.length !== H || state.c.length !== H) {
      throw new RangeError(`users[${u}].state: h and c must have the model's hidden size ${H} (got ${state.h.length} and ${state.c.length})`);
    }
    hs.set(state.h, u * H);
    cs.set(state.c, u * H);
    last[u] = state.last;
    waves = Math.max(waves, events.length);
    // Checked up front: applyEvent would read past E (NaN states) rather than fail.
    events.forEach((e, k) => {
      const at = `users[${u}].events[${k}]`;
      if (e.itemVector !== undefined) {
        if (e.itemVector.length !== H) throw new RangeError(`${at}.itemVector: must have length ${H} (the hidden size), got ${e.itemVector.length}`);
      } else if (e.item !== null && !(Number.isInteger(e.item) && e.item >= 0 && e.item < w.items)) {
        throw new RangeError(`${at}.item: must be an integer in [0, ${w.items}) or null (unknown item), got ${e.item}`);
      }
      if (e.extra !== undefined && e.extra.length !== H) throw new RangeError(`${at}.extra: must have length ${H} (the hidden size), got ${e.extra.length}`);
      if (!Number.isFinite(e.ts)) throw new RangeError(`${at}.ts: must be a finite epoch-ms number, got ${e.ts}`);
    });
  }
  // Per wave: the users of each stage (indices into users) and their gathered rows.
  const scratch = new GruScratch(H);
  const X = new Float32Array(U * H);
  const S = new Float32Array(U * H);
  const O = new Float32Array(U * H);
  const I = new Float32Array(U * H);
  const step: number[] = [];
  const timedOut: number[] = [];
  const fresh: number[] = [];
  const init: number[] = [];
  // Where a stepped user's h0 is: a row of I, or OPEN (the user's own row of hs), or START (the
  // start state of a user state of zeros, as most new users have it: the same for all of them).
  const OPEN = -1;
  const START = -2;
  const h0Row = new Int32Array(U);
  let start: Float32Array | undefined;
  // Stage 4's inputs without cached gates: r (an item's embedding: its gates go to the cache) or
  // -1 - r (context added or a cold vector); their gates G.
  const H3 = 3 * H;
  const missed = new Int32Array(U);
  let G: Float32Array | undefined;
  let gates: Map<number, Float32Array> | undefined;
  for (let k = 0; k < waves; k++) {
    step.length = 0;
    timedOut.length = 0;
    fresh.length = 0;
    for (let u = 0; u < U; u++) {
      const e = users[u]!.events[k];
      if (e === undefined) continue;
      const prev = last[u];
      if (e.item === null) {
        if (prev !== undefined) last[u] = Math.max(prev, e.ts);
        continue;
      }
      step.push(u);
      h0Row[u] = OPEN;
      if (prev === undefined) {
        if (isZero(cs, u * H, H)) h0Row[u] = START;
        else fresh.push(u);
      } else if (e.ts - prev > timeoutMs) timedOut.push(u);
    }
    if (step.length === 0) continue;

    // 1. Timed-out sessions close: c = userGRU(x = h, c).
    if (timedOut.length > 0) {
      const B = timedOut.length;
      for (let r = 0; r < B; r++) {
        const u = timedOut[r]!;
        X.set(hs.subarray(u * H, (u + 1) * H), r * H);
        S.set(cs.subarray(u * H, (u + 1) * H), r * H);
      }
      kernel.gru(w.user, X, H, S, B, H, O, scratch);
      for (let r = 0; r < B; r++) cs.set(O.subarray(r * H, (r + 1) * H), timedOut[r]! * H);
    }
    // 2. init(c) for the timed-out users and the new users with a user state (metadata), the latter
    //    after the former in I.
    init.length = 0;
    init.push(...timedOut, ...fresh);
    if (init.length > 0) {
      for (let r = 0; r < init.length; r++) S.set(cs.subarray(init[r]! * H, (init[r]! + 1) * H), r * H);
      kernel.init(w, S, init.length, I);
      for (let r = 0; r < timedOut.length; r++) h0Row[timedOut[r]!] = r;
    }
    // 3. Those new users: the session GRU's start step, zero input, from init(c).
    if (fresh.length > 0) {
      const B = fresh.length;
      const off = timedOut.length * H;
      X.fill(0, 0, B * H);
      kernel.gru(w.session, X, H, I.subarray(off, off + B * H), B, H, O, scratch);
      I.set(O.subarray(0, B * H), off);
      for (let r = 0; r < B; r++) h0Row[fresh[r]!] = timedOut.length + r;
    }
    // 4. Every stepped user: the session GRU over the event's input, from h0. With a kernel that
    //    takes the input gates ready-made, an item embedding's gates come from the cache, and only
    //    the other inputs (not cached yet, context added, cold vectors) are multiplied, together,
    //    into rows 0..m-1 of X and G.
    const B = step.length;
    const cached = kernel.gruFromGates !== undefined;
    let m = 0;
    if (cached) scratch.ensure(B);
    for (let r = 0; r < B; r++) {
      const u = step[r]!;
      const e = users[u]!.events[k]!;
      const item = e.item!;
      const plain = e.extra === undefined && (e.itemVector === undefined || isRowOf(e.itemVector, w.E, item, H));
      const hit = cached && plain ? (gates ??= itemGatesOf(w, kernel)).get(item) : undefined;
      if (hit) scratch.a.set(hit, r * H3);
      else {
        const row = cached ? m : r;
        X.set(e.itemVector ?? w.E.subarray(item * H, (item + 1) * H), row * H);
        if (e.extra) for (let d = 0; d < H; d++) X[row * H + d]! += e.extra[d]!;
        if (cached) missed[m++] = plain ? r : -1 - r;
      }
      const at = h0Row[u]!;
      if (at === START) S.set((start ??= startOf(w)), r * H);
      else if (at === OPEN) S.set(hs.subarray(u * H, (u + 1) * H), r * H);
      else S.set(I.subarray(at * H, (at + 1) * H), r * H);
    }
    if (!cached) kernel.gru(w.session, X, H, S, B, H, O, scratch);
    else {
      if (m > 0) {
        G ??= new Float32Array(U * H3);
        if (kernel.inputGates) kernel.inputGates(w.session, X, H, m, H, G);
        else inputGatesBatch(w.session, X, H, m, H, G);
        gates ??= itemGatesOf(w, kernel);
        for (let i = 0; i < m; i++) {
          const r = missed[i]! >= 0 ? missed[i]! : -1 - missed[i]!;
          const g = G.subarray(i * H3, (i + 1) * H3);
          scratch.a.set(g, r * H3);
          const item = users[step[r]!]!.events[k]!.item!;
          if (missed[i]! >= 0 && gates.size < ITEM_GATES_MAX && !gates.has(item)) gates.set(item, g.slice());
        }
      }
      kernel.gruFromGates!(w.session, S, B, H, O, scratch);
    }
    for (let r = 0; r < B; r++) {
      const u = step[r]!;
      hs.set(O.subarray(r * H, (r + 1) * H), u * H);
      const prev = last[u];
      const ts = users[u]!.events[k]!.ts;
      last[u] = prev === undefined ? ts : Math.max(prev, ts);
    }
  }
  const out: HrnnState[] = new Array(U);
  for (let u = 0; u < U; u++) out[u] = { h: hs.slice(u * H, (u + 1) * H), c: cs.slice(u * H, (u + 1) * H), last: last[u] };
  return out;
}
