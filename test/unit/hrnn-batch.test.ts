import { beforeAll, describe, expect, it } from 'vitest';
import { prng } from '../../src/data/synthetic.js';
import { initBackend, useBackend } from '../../src/model/backend.js';
import { TfStepKernel } from '../../src/model/hrnn-batch-tf.js';
import { applyEventsBatch, gruStepBatch, initSessionBatch, type BatchEvent, type UserEvents } from '../../src/model/hrnn-batch.js';
import { applyEvent, emptyState, gruStep, initSession, type GruWeights, type HrnnState, type HrnnWeights } from '../../src/model/hrnn-math.js';

const TIMEOUT = 30 * 60_000;

function randomWeights(hidden: number, items: number, seed: number): HrnnWeights {
  const r = prng(seed);
  const rand = (n: number, scale = 0.5) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
  const gru = (): GruWeights => ({ wx: rand(hidden * 3 * hidden), wrz: rand(hidden * 2 * hidden), wh: rand(hidden * hidden), b: rand(3 * hidden, 0.1) });
  return { hidden, items, E: rand(items * hidden), bOut: rand(items, 0.1), session: gru(), user: gru(), wi: rand(hidden * hidden), bi: rand(hidden, 0.1) };
}

/** What the processor does today: one applyEvent per event (HrnnModel.step's rule for an unknown item). */
function oneByOne(w: HrnnWeights, u: UserEvents): HrnnState {
  let s = u.state;
  for (const e of u.events) {
    if (e.item === null) s = { ...s, last: s.last === undefined ? undefined : Math.max(s.last, e.ts) };
    else s = applyEvent(w, s, e.item, e.ts, TIMEOUT, { ...(e.extra ? { extra: e.extra } : {}), ...(e.itemVector ? { itemVector: e.itemVector } : {}) });
  }
  return s;
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/**
 * Random users: new ones (c zero or from metadata), ones with history; 0-7 events each, gaps from
 * seconds to hours (sessions time out mid-batch, several times for some users), some events out
 * of order, unknown items, context vectors and cold item vectors.
 */
function randomUsers(w: HrnnWeights, n: number, seed: number): UserEvents[] {
  const r = prng(seed);
  const H = w.hidden;
  const vec = (scale: number) => Float32Array.from({ length: H }, () => (r() * 2 - 1) * scale);
  const users: UserEvents[] = [];
  for (let u = 0; u < n; u++) {
    let state: HrnnState;
    let t = 1_700_000_000_000 + Math.floor(r() * 1e9);
    const kind = r();
    if (kind < 0.25) state = emptyState(H);
    else if (kind < 0.35) state = emptyState(H, vec(0.5));
    else {
      // A user with history: the state after a few events (so h, c are realistic, not random).
      state = oneByOne(w, { state: emptyState(H), events: Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ item: Math.floor(r() * w.items), ts: (t += 60_000) })) });
    }
    const count = u % 9 === 0 ? 1 : u % 11 === 0 ? 0 : Math.floor(r() * 8);
    const events: BatchEvent[] = [];
    for (let k = 0; k < count; k++) {
      const g = r();
      t += g < 0.6 ? Math.floor(r() * 120_000) : g < 0.85 ? TIMEOUT + 1 + Math.floor(r() * 7_200_000) : g < 0.9 ? TIMEOUT : -Math.floor(r() * 600_000);
      const x = r();
      const e: BatchEvent = { item: x < 0.08 ? null : Math.floor(r() * w.items), ts: t };
      if (x > 0.85) e.extra = vec(0.3);
      if (x > 0.78 && x < 0.85) e.itemVector = vec(0.5);
      // As HrnnModel.step passes a trained item: its row of E as a view (the gates cache applies).
      if (x > 0.7 && x <= 0.78 && e.item !== null) e.itemVector = w.E.subarray(e.item * H, (e.item + 1) * H);
      events.push(e);
    }
    users.push({ state, events });
  }
  return users;
}

/** How many events of each kind a batch has (so a test can show its streams cover every branch). */
function coverage(w: HrnnWeights, users: UserEvents[]) {
  const c = { freshZero: 0, freshMetadata: 0, timedOut: 0, open: 0, unknown: 0, outOfOrder: 0, extra: 0, itemVector: 0, eRowView: 0, single: 0, none: 0 };
  for (const u of users) {
    let last = u.state.last;
    if (u.events.length === 1) c.single++;
    if (u.events.length === 0) c.none++;
    for (const e of u.events) {
      if (e.extra) c.extra++;
      if (e.itemVector && e.itemVector.buffer !== w.E.buffer) c.itemVector++;
      if (e.itemVector && e.itemVector.buffer === w.E.buffer) c.eRowView++;
      if (e.item === null) {
        c.unknown++;
        if (last !== undefined) last = Math.max(last, e.ts);
        continue;
      }
      if (last === undefined) {
        if (u.state.c.every((v) => v === 0)) c.freshZero++;
        else c.freshMetadata++;
      }
      else if (e.ts - last > TIMEOUT) c.timedOut++;
      else c.open++;
      if (last !== undefined && e.ts < last) c.outOfOrder++;
      last = last === undefined ? e.ts : Math.max(last, e.ts);
    }
  }
  return c;
}

describe('applyEventsBatch', () => {
  it.each([
    [8, 50, 1],
    [16, 200, 2],
    [64, 300, 3],
    [100, 370, 4],
  ])('equals applyEvent one by one, bit for bit (hidden %i, %i items, seed %i)', (hidden, items, seed) => {
    const w = randomWeights(hidden, items, seed);
    const users = randomUsers(w, hidden >= 64 ? 31 : 61, seed * 10);
    const c = coverage(w, users);
    // The streams reach every branch of applyEvent (else the equality below proves little).
    for (const [k, v] of Object.entries(c)) expect(v, k).toBeGreaterThan(0);
    const inputs = users.map((u) => ({ h: u.state.h.slice(), c: u.state.c.slice(), last: u.state.last }));

    const batched = applyEventsBatch(w, users, TIMEOUT);

    expect(batched).toHaveLength(users.length);
    users.forEach((u, i) => {
      const want = oneByOne(w, u);
      expect(bits(batched[i]!.h), `user ${i} h`).toEqual(bits(want.h));
      expect(bits(batched[i]!.c), `user ${i} c`).toEqual(bits(want.c));
      expect(batched[i]!.last, `user ${i} last`).toBe(want.last);
      // The input states are left as they were.
      expect(bits(u.state.h)).toEqual(bits(inputs[i]!.h));
      expect(bits(u.state.c)).toEqual(bits(inputs[i]!.c));
      expect(u.state.last).toBe(inputs[i]!.last);
    });
  });

  it('equals stepping the same users in several smaller batches (a state carries across batches)', () => {
    const w = randomWeights(16, 80, 5);
    const users = randomUsers(w, 40, 55);
    const whole = applyEventsBatch(w, users, TIMEOUT);
    const firstHalf = applyEventsBatch(
      w,
      users.map((u) => ({ state: u.state, events: u.events.slice(0, 2) })),
      TIMEOUT,
    );
    const rest = applyEventsBatch(
      w,
      users.map((u, i) => ({ state: firstHalf[i]!, events: u.events.slice(2) })),
      TIMEOUT,
    );
    whole.forEach((s, i) => {
      expect(bits(rest[i]!.h)).toEqual(bits(s.h));
      expect(bits(rest[i]!.c)).toEqual(bits(s.c));
      expect(rest[i]!.last).toBe(s.last);
    });
  });

  it('a user with no events or only unknown items keeps the state (a new user stays new)', () => {
    const w = randomWeights(8, 10, 6);
    const s0: HrnnState = emptyState(8);
    const s1 = applyEvent(w, emptyState(8), 3, 1000, TIMEOUT);
    const [a, b, c] = applyEventsBatch(
      w,
      [
        { state: s0, events: [{ item: null, ts: 5000 }] },
        { state: s1, events: [{ item: null, ts: 500 }, { item: null, ts: 9000 }] },
        { state: s1, events: [] },
      ],
      TIMEOUT,
    );
    expect(a!.last).toBeUndefined();
    expect(bits(a!.h)).toEqual(bits(s0.h));
    expect(b!.last).toBe(9000);
    expect(bits(b!.h)).toEqual(bits(s1.h));
    expect(c).toEqual(s1);
  });

  it('rejects an item outside E, a vector of the wrong length and a non-finite time, naming the field', () => {
    const w = randomWeights(8, 10, 7);
    const s = emptyState(8);
    expect(() => applyEventsBatch(w, [{ state: s, events: [{ item: 1, ts: 1 }, { item: 10, ts: 2 }] }], TIMEOUT)).toThrow(
      /users\[0\]\.events\[1\]\.item: must be an integer in \[0, 10\)/,
    );
    expect(() => applyEventsBatch(w, [{ state: s, events: [] }, { state: s, events: [{ item: 1, ts: 1, extra: new Float32Array(3) }] }], TIMEOUT)).toThrow(
      /users\[1\]\.events\[0\]\.extra: must have length 8/,
    );
    expect(() => applyEventsBatch(w, [{ state: s, events: [{ item: null, ts: 1, itemVector: new Float32Array(9) }] }], TIMEOUT)).toThrow(
      /users\[0\]\.events\[0\]\.itemVector: must have length 8/,
    );
    expect(() => applyEventsBatch(w, [{ state: s, events: [{ item: 1, ts: Number.NaN }] }], TIMEOUT)).toThrow(/users\[0\]\.events\[0\]\.ts: must be a finite/);
    expect(() => applyEventsBatch(w, [{ state: emptyState(4), events: [] }], TIMEOUT)).toThrow(/users\[0\]\.state: h and c must have the model's hidden size 8/);
  });
});

describe('gruStepBatch and initSessionBatch', () => {
  // Hidden 7: odd column counts (21, 14, 7), so the kernel's one-column remainder runs too.
  it.each([7, 12])('row u equals gruStep / initSession of row u, bit for bit, for batch sizes around the 4-user blocks (hidden %i)', (H) => {
    const w = randomWeights(H, 5, 8);
    const r = prng(88);
    for (const B of [1, 3, 4, 5, 9]) {
      const X = Float32Array.from({ length: B * H }, () => r() * 2 - 1);
      const S = Float32Array.from({ length: B * H }, () => r() * 2 - 1);
      const out = new Float32Array(B * H);
      gruStepBatch(w.session, X, H, S, B, H, out);
      const init = new Float32Array(B * H);
      initSessionBatch(w, S, B, init);
      for (let u = 0; u < B; u++) {
        const row = (a: Float32Array) => a.subarray(u * H, (u + 1) * H);
        expect(bits(row(out)), `B=${B} u=${u}`).toEqual(bits(gruStep(w.session, row(X), row(S), H)));
        expect(bits(row(init)), `B=${B} u=${u}`).toEqual(bits(initSession(w, row(S))));
      }
    }
  });
});

describe('applyEventsBatch with TfStepKernel (TensorFlow.js, wasm backend)', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    expect(await useBackend('wasm')).toBe(true);
  });

  /**
   * Tolerance 2e-5 (absolute, on h and c; states are in (-1, 1)): the kernel sums in float32 in
   * XNNPACK's order and uses float32 sigmoid/tanh, about 1e-7 per GRU step (bench/hrnn-step.ts's
   * kernels: 1.3-2.1e-7 for one step), and a user here takes up to ~16 steps (events, timeouts,
   * start steps) through weights larger than trained ones (uniform ±0.5), which amplify it.
   * Measured worst (printed): 1.8e-7 at hidden 16, 1.0e-6 at 64, 5.8e-6 at 100.
   */
  it.each([
    [16, 200, 11, 1],
    [64, 300, 12, 1],
    [100, 370, 13, 8],
  ])('equals applyEvent one by one within 2e-5 (hidden %i, %i items, seed %i, minBatch %i)', (hidden, items, seed, minBatch) => {
    const w = randomWeights(hidden, items, seed);
    const users = randomUsers(w, 61, seed * 10);
    for (const [k, v] of Object.entries(coverage(w, users))) expect(v, k).toBeGreaterThan(0);
    const kernel = new TfStepKernel(minBatch);
    try {
      const batched = applyEventsBatch(w, users, TIMEOUT, kernel);
      let worst = 0;
      users.forEach((u, i) => {
        const want = oneByOne(w, u);
        expect(batched[i]!.last, `user ${i} last`).toBe(want.last);
        for (const [got, exp] of [[batched[i]!.h, want.h], [batched[i]!.c, want.c]] as const) {
          for (let j = 0; j < hidden; j++) worst = Math.max(worst, Math.abs(got[j]! - exp[j]!));
        }
      });
      console.log(`TfStepKernel hidden ${hidden}: worst |batched - per-event| = ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(2e-5);
      // The JavaScript kernel on the same model afterwards is still bit for bit (the item-gate
      // cache the wasm kernel filled is its own).
      applyEventsBatch(w, users, TIMEOUT).forEach((s, i) => expect(bits(s.h), `user ${i} h`).toEqual(bits(oneByOne(w, users[i]!).h)));
    } finally {
      kernel.dispose();
    }
  });
});
