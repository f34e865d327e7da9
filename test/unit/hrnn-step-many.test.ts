/**
 * The processor steps a batch's users together (stepHrnnStates -> HrnnModel.stepMany ->
 * applyEventsBatch). It must give, bit for bit, the states that stepping each event with
 * HrnnModel.step from currentHrnnState gives: stored states of the served version, stale ones to
 * re-derive, new users with and without metadata, unknown and cold items, event types as context,
 * session timeouts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { prng } from '../../src/data/synthetic.js';
import { compiledBackendUp, initBackend, tf } from '../../src/model/backend.js';
import { hrnnColdstart, HrnnModel, type HistoryEvent } from '../../src/recipes/hrnn.js';
import { TfStepKernel } from '../../src/model/hrnn-batch-tf.js';
import { currentHrnnState, hrnnStepKernel, REDERIVE_EVENTS, stepHrnnStates, warmHrnnStep, type HrnnUpdate } from '../../src/serving/served-model.js';
import type { InteractionFields } from '../../src/state/apply.js';
import { BatchView } from '../../src/state/batch-view.js';
import { MemoryStore } from '../../src/state/memory-store.js';
import { stepHrnnBatch } from '../../src/stream/processor.js';
import { RemoteStepper } from '../../src/serving/hrnn-step-remote.js';
import { hrnnRuns } from '../../src/serving/served-model.js';
import type { Interaction } from '../../src/serde/avro.js';
import { jsKernel, type StepKernel } from '../../src/model/hrnn-batch.js';
import type { HrnnUserState, UserEvent } from '../../src/state/model.js';

const T0 = 1_700_000_000_000;
const MIN = 60_000;
const ev = (u: string, item: string, ts: number, type = 'click'): InteractionFields => ({ USER_ID: u, ITEM_ID: item, TIMESTAMP: ts, EVENT_TYPE: type, EVENT_VALUE: null, SESSION_ID: null });
const VERSION = 'v2';

let model: HrnnModel;

beforeAll(async () => {
  await initBackend('wasm');
  const r = prng(7);
  const events: InteractionFields[] = [];
  const users = [];
  for (let u = 0; u < 120; u++) {
    const c = u % 3;
    users.push({ USER_ID: `u${u}`, METADATA: { SEGMENT: `s${c}` } });
    let k = Math.floor(r() * 12);
    for (let t = 0; t < 6; t++) {
      events.push(ev(`u${u}`, `c${c}-${k}`, T0 + u * 1000 + t * MIN, r() < 0.3 ? 'purchase' : 'click'));
      k = (k + 1) % 12;
    }
  }
  events.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP);
  const items = [];
  for (let c = 0; c < 3; c++) for (let k = 0; k < 12; k++) items.push({ ITEM_ID: `c${c}-${k}`, CREATION_TIMESTAMP: null, METADATA: { CATEGORY: `cat${c}` } });
  model = await hrnnColdstart.train(events, { hiddenSize: 16, epochs: 2, batchSize: 16, negatives: 16, seed: 5, workers: 1 }, { metadata: { items, users } });
  // A cold item: a vector from its metadata, outside E.
  expect(model.addItem({ ITEM_ID: 'cold-1', CREATION_TIMESTAMP: null, METADATA: { CATEGORY: 'cat1' } })).toBe(true);
}, 120_000);

const stored = (version: string, history: HistoryEvent[]): HrnnUserState => {
  const s = model.state(history);
  return { version, h: s.h, c: s.c, last: s.last ?? null };
};
const userEvents = (n: number, at: number): UserEvent[] =>
  Array.from({ length: n }, (_, i) => ({ item: `c${i % 3}-${i % 12}`, ts: at + i * MIN, type: i % 4 === 0 ? 'purchase' : 'click', value: null, session: 0 }));
const history = (evs: UserEvent[]): HistoryEvent[] => evs.map((e) => ({ ITEM_ID: e.item, TIMESTAMP: e.ts, EVENT_TYPE: e.type }));

/** What the processor did before batching: currentHrnnState, then HrnnModel.step per event. */
function oneByOne(u: HrnnUpdate): HrnnUserState {
  let s = currentHrnnState(model, VERSION, u.stored, u.events, u.user);
  for (const e of u.added) s = model.step(s, e);
  return { version: VERSION, h: s.h, c: s.c, last: s.last ?? null };
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

function cases(): HrnnUpdate[] {
  const at = T0 + 10 * 86_400_000;
  const currentEvents = userEvents(5, at - 30 * MIN);
  const staleEvents = userEvents(REDERIVE_EVENTS + 10, at - 200 * MIN);
  const updates: HrnnUpdate[] = [
    // Stored state of the served version; an unknown item, then a gap past the session timeout.
    {
      stored: stored(VERSION, history(currentEvents)),
      events: currentEvents,
      added: [
        { ITEM_ID: 'c0-1', TIMESTAMP: at, EVENT_TYPE: 'click' },
        { ITEM_ID: 'never-seen', TIMESTAMP: at + MIN },
        { ITEM_ID: 'c0-2', TIMESTAMP: at + 3 * model.params.sessionTimeoutMs, EVENT_TYPE: 'purchase' },
      ],
    },
    // A state of another version: re-derived from the latest stored events first.
    { stored: stored('v1', history(staleEvents.slice(0, 3))), events: staleEvents, added: [{ ITEM_ID: 'c2-5', TIMESTAMP: at, EVENT_TYPE: 'click' }] },
    // A new user with metadata (the initial user state is not zero), a cold item, context.
    {
      stored: undefined,
      events: undefined,
      user: { METADATA: { SEGMENT: 's1' } },
      added: [
        { ITEM_ID: 'cold-1', TIMESTAMP: at, EVENT_TYPE: 'click' },
        { ITEM_ID: 'c1-3', TIMESTAMP: at + MIN, EVENT_TYPE: 'purchase' },
        { ITEM_ID: 'c1-4', TIMESTAMP: at + 2 * MIN },
      ],
    },
    // A new user without metadata; and one whose only events are of unknown items.
    { stored: undefined, events: undefined, added: [{ ITEM_ID: 'c2-0', TIMESTAMP: at }] },
    { stored: undefined, events: undefined, added: [{ ITEM_ID: 'x', TIMESTAMP: at }, { ITEM_ID: 'y', TIMESTAMP: at + MIN }] },
  ];
  // Many more users, so the waves hold several users each.
  const r = prng(11);
  for (let u = 0; u < 40; u++) {
    const evs = userEvents(1 + Math.floor(r() * 8), at - 100 * MIN);
    const added = Array.from({ length: 1 + Math.floor(r() * 4) }, (_, i) => ({ ITEM_ID: `c${u % 3}-${Math.floor(r() * 12)}`, TIMESTAMP: at + i * 20 * MIN, EVENT_TYPE: r() < 0.5 ? 'click' : 'purchase' }));
    updates.push({ stored: stored(u % 2 === 0 ? VERSION : 'v1', history(evs)), events: evs, added });
  }
  return updates;
}

describe('stepHrnnStates (the processor batch step)', () => {
  it('equals per-event stepping bit for bit across stored, stale, new, unknown, cold and timed-out cases', () => {
    const updates = cases();
    const batched = stepHrnnStates(model, VERSION, updates);
    expect(batched).toHaveLength(updates.length);
    updates.forEach((u, i) => {
      const want = oneByOne(u);
      const got = batched[i]!;
      expect({ i, version: got.version, last: got.last, h: bits(got.h), c: bits(got.c) }).toEqual({ i, version: VERSION, last: want.last, h: bits(want.h), c: bits(want.c) });
    });
    // The cases differ from one another (the comparison is not of equal zeros).
    expect(new Set(batched.map((s) => bits(s.h))).size).toBeGreaterThan(updates.length - 5);
    // Only unknown items: no vector moved, no time set (a user without a state stays without one).
    expect(batched[4]!.last).toBeNull();
  });

  it("processor.hrnnStep auto: the model's TensorFlow.js kernel (wasm here), within float32 rounding of the per-event steps; js: the loops", async () => {
    expect(await hrnnStepKernel(model, 'js')).toBeUndefined();
    const kernel = await hrnnStepKernel(model, 'auto');
    expect(kernel).toBeInstanceOf(TfStepKernel);
    // One kernel per model (its weight tensors are made once).
    expect(await hrnnStepKernel(model, 'auto')).toBe(kernel);
    const updates = cases();
    const got = stepHrnnStates(model, VERSION, updates, kernel);
    let worst = 0;
    updates.forEach((u, i) => {
      const want = oneByOne(u);
      expect(got[i]!.last).toBe(want.last);
      for (const k of ['h', 'c'] as const) for (let d = 0; d < want[k].length; d++) worst = Math.max(worst, Math.abs(got[i]![k][d]! - want[k][d]!));
    });
    expect(worst).toBeLessThan(2e-5);
  });

  it('warmHrnnStep uploads a version\'s weights when it is swapped in: its first batch makes no tensor', async () => {
    const fresh = HrnnModel.fromJSON(model.toJSON());
    const before = tf.memory().numTensors;
    await warmHrnnStep(fresh, 'auto');
    const warmed = tf.memory().numTensors;
    expect(warmed).toBeGreaterThan(before);
    stepHrnnStates(fresh, VERSION, cases(), await hrnnStepKernel(fresh, 'auto'));
    expect(tf.memory().numTensors).toBe(warmed);
  });

  it('recommendMany (evaluation) answers each request as recommend does, item for item and score for score', () => {
    const r = prng(21);
    const at = T0 + 20 * 86_400_000;
    const requests = Array.from({ length: 60 }, (_, u) => {
      const history = Array.from({ length: Math.floor(r() * 12) }, (_, i) => ({
        ITEM_ID: r() < 0.05 ? 'unknown' : `c${u % 3}-${Math.floor(r() * 12)}`,
        TIMESTAMP: at - 300 * MIN + i * 25 * MIN,
        EVENT_TYPE: r() < 0.5 ? 'click' : 'purchase',
      }));
      return { history, numResults: 5, at: u % 2 === 0 ? at : at - 200 * MIN, ...(u % 3 === 0 ? { exclude: new Set(history.map((e) => e.ITEM_ID)) } : {}) };
    });
    const exact = requests.map((q) => model.recommend(q));
    const many = model.recommendMany(requests, { exact: true });
    expect(many).toEqual(exact);
    expect(new Set(many.map((l) => l.map((s) => s.itemId).join())).size).toBeGreaterThan(5);
    // By default (a compiled backend is up here): float32 kernels, the same lists to rounding. Scores
    // rank by rank within 1e-4 (near-ties may swap two items, their scores stay close).
    expect(compiledBackendUp()).toBe(true);
    const fast = model.recommendMany(requests);
    let same = 0;
    let all = 0;
    fast.forEach((list, i) => {
      expect(list).toHaveLength(exact[i]!.length);
      list.forEach((s, p) => {
        expect(Math.abs(s.score - exact[i]![p]!.score)).toBeLessThan(1e-4);
        expect(requests[i]!.exclude?.has(s.itemId) ?? false).toBe(false);
        all++;
        if (s.itemId === exact[i]![p]!.itemId) same++;
      });
    });
    expect(same / all).toBeGreaterThan(0.95);
  });

  it('the processor batch step falls back to the JavaScript loops when the kernel fails, logging why', async () => {
    const at = T0 + 30 * 86_400_000;
    const good = Array.from({ length: 40 }, (_, i) => ({ ...ev(`u${i % 9}`, `c${i % 3}-${i % 12}`, at + i * MIN), CONTEXT: {} })) as unknown as Interaction[];
    const broken: StepKernel = {
      ...jsKernel,
      gru: () => {
        throw new Error('kernel out of memory');
      },
      gruFromGates: () => {
        throw new Error('kernel out of memory');
      },
    };
    const warnings: string[] = [];
    const log = { warn: (_o: object, msg: string) => warnings.push(msg), info: () => {}, debug: () => {}, error: () => {} } as never;
    const stepped = async (kernel: StepKernel | undefined) => {
      const view = await BatchView.prefetch(new MemoryStore(), good, 5, undefined, { hrnn: true });
      await stepHrnnBatch({ version: VERSION, model }, { kernel }, view, good, new Map(), async () => {}, log);
      return [...new Set(good.map((e) => e.USER_ID))].map((u) => bits(view.hrnn(u)!.h));
    };
    const fellBack = await stepped(broken);
    expect(warnings).toEqual(['the HRNN step kernel failed; the rest of the batch steps in JavaScript']);
    expect(fellBack).toEqual(await stepped(undefined));
  });

  it('processor.hrnnStep thread: the step thread answers what the same kernel answers here, item rows sent once, across calls and versions', async () => {
    const remote = new RemoteStepper();
    try {
      const here = new TfStepKernel();
      const other = HrnnModel.fromJSON(model.toJSON());
      // Two calls on one version (the second reuses rows sent by the first, and sends new ones), then another version.
      const all = cases();
      for (const [m, updates] of [
        [model, all.slice(0, 20)],
        [model, all.slice(20)],
        [other, all],
      ] as const) {
        const runs = hrnnRuns(m, VERSION, updates);
        const there = await remote.step(m, runs);
        const want = m.stepMany(runs, here);
        expect(there.map((s) => [bits(s.h), bits(s.c), s.last])).toEqual(want.map((s) => [bits(s.h), bits(s.c), s.last]));
      }
    } finally {
      await remote.close();
    }
    // Closed: a call fails (the processor then steps in its own thread).
    await expect(remote.step(model, [])).rejects.toThrow(/closed/);
  });
});
