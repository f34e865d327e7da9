/**
 * bench/hrnn-step: the processor's HRNN stepping, per event (applyEvent, as the processor does today)
 * against batched in waves (applyEventsBatch, src/model/hrnn-batch.ts), on random weights.
 *
 * 1. `step`: hidden 64 and 100, 3,700 items (ML-1M's shape), batches of 100 and 1,000 users with a
 *    few events each (a mix as a processor batch has it: most users with history and an open
 *    session, some whose session timed out, some new). Events per second per event (applyEvent),
 *    batched with the JavaScript kernel (item-gate cache warm, as in a running processor, and
 *    cold, as for a model's first batch) and batched with TfStepKernel on the wasm backend: the
 *    median of STREAMREC_BENCH_RUNS (5) runs after one warm-up, the runs' min and max beside it
 *    (the noise). `identical`: every JS-batched state equals the per-event one bit for bit;
 *    `tfjs_wasm_max_abs_diff`: the wasm kernel's largest difference from it.
 * 2. `kernels`: one session-GRU step for B users (1, 10, 100, 1,000) at hidden 64 and 100: B
 *    gruStep calls, gruStepBatch, and TfStepKernel.gru on the wasm backend (tensors made from and
 *    read back into Float32Arrays, as the processor would), microseconds per user-step (median of
 *    the runs; spread = (max - min) / median), and the wasm result's largest difference from
 *    gruStep (float32 sums in another order: not bit for bit).
 *
 * Prints one JSON object as the last line of stdout.
 *   npm run bench:step
 *   STREAMREC_BENCH_QUICK=1 npm run bench:step   (small batches, 2 runs: a smoke test)
 */
import { prng } from '../src/data/synthetic.js';
import { initBackend, useBackend } from '../src/model/backend.js';
import { applyEventsBatch, GruScratch, gruStepBatch, type BatchEvent, type UserEvents } from '../src/model/hrnn-batch.js';
import { TfStepKernel } from '../src/model/hrnn-batch-tf.js';
import { applyEvent, emptyState, gruStep, type GruWeights, type HrnnState, type HrnnWeights } from '../src/model/hrnn-math.js';

const log = (msg: string) => process.stderr.write(`[bench:step] ${msg}\n`);
const QUICK = process.env.STREAMREC_BENCH_QUICK === '1';
const RUNS = Number(process.env.STREAMREC_BENCH_RUNS ?? (QUICK ? 2 : 5));
const HIDDEN = [64, 100];
const ITEMS = 3700;
const USERS = QUICK ? [10, 100] : [100, 1000];
const EVENTS_PER_USER = 4;
const KERNEL_B = QUICK ? [1, 10, 100] : [1, 10, 100, 1000];
const TIMEOUT = 30 * 60_000;

function randomWeights(hidden: number, items: number, seed: number): HrnnWeights {
  const r = prng(seed);
  const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
  const s = 1 / Math.sqrt(hidden);
  const gru = (): GruWeights => ({ wx: rand(hidden * 3 * hidden, s), wrz: rand(hidden * 2 * hidden, s), wh: rand(hidden * hidden, s), b: rand(3 * hidden, 0.1) });
  return { hidden, items, E: rand(items * hidden, 0.5), bOut: rand(items, 0.1), session: gru(), user: gru(), wi: rand(hidden * hidden, s), bi: rand(hidden, 0.1) };
}

/** A processor batch: 85% of users with history (10% of their events after a timeout), 15% new. */
function batch(w: HrnnWeights, users: number, seed: number): UserEvents[] {
  const r = prng(seed);
  const out: UserEvents[] = [];
  for (let u = 0; u < users; u++) {
    let t = 1_700_000_000_000 + Math.floor(r() * 1e8);
    let state: HrnnState = emptyState(w.hidden);
    if (r() < 0.85) for (let k = 0; k < 3; k++) state = applyEvent(w, state, Math.floor(r() * w.items), (t += 60_000), TIMEOUT);
    const events: BatchEvent[] = [];
    for (let k = 0; k < EVENTS_PER_USER; k++) {
      t += r() < 0.1 ? TIMEOUT + 60_000 : Math.floor(r() * 120_000);
      events.push({ item: Math.floor(r() * w.items), ts: t });
    }
    out.push({ state, events });
  }
  return out;
}

function perEvent(w: HrnnWeights, users: readonly UserEvents[]): HrnnState[] {
  return users.map((u) => {
    let s = u.state;
    for (const e of u.events) s = applyEvent(w, s, e.item!, e.ts, TIMEOUT);
    return s;
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 0) => Math.round(x * 10 ** d) / 10 ** d;
const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Wall ms of `f` per run: one warm-up, then RUNS runs. */
function time(f: () => void): number[] {
  f();
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    f();
    ms.push(performance.now() - t0);
  }
  return ms;
}

function stepRows(wasm: boolean) {
  const rows = [];
  for (const hidden of HIDDEN) {
    const w = randomWeights(hidden, ITEMS, hidden);
    for (const users of USERS) {
      const b = batch(w, users, users + hidden);
      const events = users * EVENTS_PER_USER;
      const one = perEvent(w, b);
      // Twice: the first call fills the item-gate cache, the second reads it.
      const same = (all: HrnnState[]) => one.every((s, i) => sameBits(s.h, all[i]!.h) && sameBits(s.c, all[i]!.c) && s.last === all[i]!.last);
      const identical = same(applyEventsBatch(w, b, TIMEOUT)) && same(applyEventsBatch(w, b, TIMEOUT));
      const msOne = time(() => perEvent(w, b));
      const msAll = time(() => applyEventsBatch(w, b, TIMEOUT));
      // The first batch of a model: its item-gate cache empty (a shallow copy is a new cache key).
      const msCold = time(() => applyEventsBatch({ ...w }, b, TIMEOUT));
      const kernel = wasm ? new TfStepKernel() : undefined;
      let tfDiff = 0;
      if (kernel) {
        applyEventsBatch(w, b, TIMEOUT, kernel).forEach((s, i) => {
          for (let j = 0; j < hidden; j++) tfDiff = Math.max(tfDiff, Math.abs(s.h[j]! - one[i]!.h[j]!), Math.abs(s.c[j]! - one[i]!.c[j]!));
        });
      }
      const msTf = kernel ? time(() => applyEventsBatch(w, b, TIMEOUT, kernel)) : undefined;
      kernel?.dispose();
      const rate = (ms: number[]) => ({
        events_per_s: round(events / (median(ms) / 1000)),
        min_events_per_s: round(events / (Math.max(...ms) / 1000)),
        max_events_per_s: round(events / (Math.min(...ms) / 1000)),
        us_per_event: round((median(ms) * 1000) / events, 2),
      });
      const row = {
        hidden,
        items: ITEMS,
        users,
        events_per_user: EVENTS_PER_USER,
        per_event: rate(msOne),
        batched_js: rate(msAll),
        batched_js_cold_item_cache: rate(msCold),
        ...(msTf ? { batched_tfjs_wasm: rate(msTf) } : {}),
        speedup_js: round(median(msOne) / median(msAll), 2),
        ...(msTf ? { speedup_tfjs_wasm: round(median(msOne) / median(msTf), 2) } : {}),
        identical,
        ...(msTf ? { tfjs_wasm_max_abs_diff: tfDiff } : {}),
      };
      log(JSON.stringify(row));
      rows.push(row);
    }
  }
  return rows;
}

function kernelRows(wasm: boolean) {
  const rows = [];
  for (const H of HIDDEN) {
    const w = randomWeights(H, 10, H + 1).session;
    const tk = wasm ? new TfStepKernel(1) : undefined;
    for (const B of KERNEL_B) {
      const r = prng(B * 7 + H);
      const X = Float32Array.from({ length: B * H }, () => r() * 2 - 1);
      const S = Float32Array.from({ length: B * H }, () => r() * 2 - 1);
      const out = new Float32Array(B * H);
      const scratch = new GruScratch(H);
      // Enough repetitions per timed run that a run takes a few ms even at B = 1.
      const reps = Math.max(1, Math.round(2000 / B));
      const ref: Float32Array[] = [];
      const msOne = time(() => {
        for (let k = 0; k < reps; k++) for (let u = 0; u < B; u++) ref[u] = gruStep(w, X.subarray(u * H, (u + 1) * H), S.subarray(u * H, (u + 1) * H), H);
      });
      const msBatch = time(() => {
        for (let k = 0; k < reps; k++) gruStepBatch(w, X, H, S, B, H, out, scratch);
      });
      const wasmOut = new Float32Array(B * H);
      const msWasm = tk
        ? time(() => {
            for (let k = 0; k < reps; k++) tk.gru(w, X, H, S, B, H, wasmOut, scratch);
          })
        : undefined;
      let wasmDiff = 0;
      if (tk) for (let u = 0; u < B; u++) for (let j = 0; j < H; j++) wasmDiff = Math.max(wasmDiff, Math.abs(wasmOut[u * H + j]! - ref[u]![j]!));
      const us = (ms: number[]) => round((median(ms) * 1000) / (reps * B), 3);
      const noise = (ms: number[]) => round((Math.max(...ms) - Math.min(...ms)) / median(ms), 3);
      const row = {
        hidden: H,
        batch: B,
        us_per_user_step: { gruStep: us(msOne), gruStepBatch: us(msBatch), ...(msWasm ? { tfjs_wasm: us(msWasm) } : {}) },
        spread: { gruStep: noise(msOne), gruStepBatch: noise(msBatch), ...(msWasm ? { tfjs_wasm: noise(msWasm) } : {}) },
        ...(msWasm ? { tfjs_wasm_max_abs_diff: wasmDiff } : {}),
      };
      log(JSON.stringify(row));
      rows.push(row);
    }
    tk?.dispose();
  }
  return rows;
}

const t0 = Date.now();
const backend = await initBackend('wasm');
const wasm = backend === 'wasm' && (await useBackend('wasm'));
if (!wasm) log(`the wasm backend did not start (${backend}): no tfjs figures`);
const step = stepRows(wasm);
const kernels = kernelRows(wasm);
console.log(
  JSON.stringify({
    bench: 'hrnn-step',
    quick: QUICK,
    runs: RUNS,
    timeout_ms: TIMEOUT,
    node: process.version,
    tf_backend: wasm ? 'wasm' : `none (${backend} only)`,
    step,
    kernels,
    wall_s: round((Date.now() - t0) / 1000, 1),
  }),
);
