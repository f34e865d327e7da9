import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { AppError } from '../../src/errors/index.js';
import { createCodecs, type Recommendation } from '../../src/serde/avro.js';
import { RecommendationPublisher, type PublishedList, type PublisherOptions } from '../../src/serving/publisher.js';
import { silentLogger } from '../../src/util/log.js';

const codec = createCodecs(loadConfig({ env: {} })).Recommendation;
const T0 = 1_764_000_000_000;
const TOPIC = 'g.recommendations';

interface Sent {
  topic: string;
  messages: { key: string; value: Buffer }[];
}

function setup(over: Partial<PublisherOptions> = {}) {
  const sends: Sent[] = [];
  const computed: string[] = [];
  const list = (userId: string): PublishedList => ({
    recommendationId: `rec-${userId}-${computed.length}`,
    version: 'v7',
    items: [
      { itemId: 'i1', score: 0.9 },
      { itemId: 'i2', score: 0.5, reason: 'popular' },
    ],
  });
  const p = new RecommendationPublisher({
    topic: TOPIC,
    minIntervalMs: 1000,
    compute: async (userId) => {
      computed.push(userId);
      return list(userId);
    },
    send: async (topic, messages) => {
      sends.push({ topic, messages });
    },
    encode: (r) => codec.encode(r),
    log: silentLogger,
    ...over,
  });
  const decoded = (): (Recommendation & { key: string })[] =>
    sends.flatMap((s) => s.messages.map((m) => ({ key: m.key, ...codec.decode(m.value) })));
  return { p, sends, computed, decoded };
}

const users = (...entries: [string, number][]): Map<string, number> => new Map(entries);
/** Lets setImmediate rounds (and their awaits) run, and timers due by now. */
const tick = async (ms = 0): Promise<void> => {
  await vi.advanceTimersByTimeAsync(ms);
  // Rounds run on (real) setImmediate, and a round or a timer may schedule the next: drain them.
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
};

describe('RecommendationPublisher', () => {
  beforeEach(() => {
    // Fake clock and setTimeout (the publisher's due timer); rounds run on the real setImmediate.
    vi.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('publishes a first notify once, with the fields right', async () => {
    const { p, sends, decoded } = setup();
    p.notify(users(['u1', T0 - 50]));
    await tick();
    expect(sends).toHaveLength(1);
    expect(sends[0]!.topic).toBe(TOPIC);
    const [r] = decoded();
    expect(r).toMatchObject({
      key: 'u1',
      USER_ID: 'u1',
      MODEL_VERSION: 'v7',
      EVENT_TIMESTAMP: T0 - 50,
      EMIT_TIMESTAMP: T0,
      ITEMS: [
        { ITEM_ID: 'i1', SCORE: 0.9, REASON: null },
        { ITEM_ID: 'i2', SCORE: 0.5, REASON: 'popular' },
      ],
    });
    expect(r!.RECOMMENDATION_ID).toMatch(/^rec-u1-/);
    await tick(5000);
    expect(sends).toHaveLength(1);
    expect(p.status()).toEqual({ published: 1, throttled: 0, skipped: 0, failed: 0, pending: 0 });
    await p.stop();
  });

  it('gives one leading and one trailing list for events within the interval', async () => {
    const { p, decoded } = setup();
    p.notify(users(['u1', T0 + 1]));
    await tick();
    for (let i = 2; i <= 5; i++) {
      await tick(100);
      p.notify(users(['u1', T0 + i]));
    }
    expect(decoded()).toHaveLength(1);
    expect(p.status().pending).toBe(1);
    await tick(599); // due at T0 + 1000
    expect(decoded()).toHaveLength(1);
    await tick(1);
    const lists = decoded();
    expect(lists).toHaveLength(2);
    expect(lists.map((l) => l.EVENT_TIMESTAMP)).toEqual([T0 + 1, T0 + 5]);
    expect(lists[1]!.EMIT_TIMESTAMP).toBe(T0 + 1000);
    await tick(10_000);
    expect(decoded()).toHaveLength(2);
    expect(p.status()).toMatchObject({ published: 2, throttled: 4, pending: 0 });
    // After the window a new event gives a leading list again.
    p.notify(users(['u1', T0 + 99]));
    await tick();
    expect(decoded()).toHaveLength(3);
    await p.stop();
  });

  it('publishes each notify with minIntervalMs 0', async () => {
    const { p, decoded } = setup({ minIntervalMs: 0 });
    for (let i = 0; i < 4; i++) {
      p.notify(users(['u1', T0 + i]));
      await tick(1);
    }
    expect(decoded().map((l) => l.EVENT_TIMESTAMP)).toEqual([T0, T0 + 1, T0 + 2, T0 + 3]);
    expect(p.status()).toMatchObject({ published: 4, throttled: 0, pending: 0 });
    await p.stop();
  });

  it('skips users while no model version is served', async () => {
    const debug = vi.fn();
    const { p, sends } = setup({
      compute: async () => {
        throw new AppError('NO_MODEL_VERSION', 'no model version is served yet');
      },
      log: { ...silentLogger, debug },
    });
    p.notify(users(['u1', T0], ['u2', T0]));
    await tick();
    expect(sends).toHaveLength(0);
    expect(p.status()).toMatchObject({ published: 0, skipped: 2, failed: 0 });
    expect(debug).toHaveBeenCalled();
    await p.stop();
  });

  it('counts other compute errors as failed and goes on with the round', async () => {
    const warn = vi.fn();
    const { p, decoded } = setup({
      compute: async (userId) => {
        if (userId === 'bad') throw new Error('boom');
        return { recommendationId: 'r', version: 'v1', items: [] };
      },
      log: { ...silentLogger, warn },
    });
    p.notify(users(['bad', T0], ['good', T0]));
    await tick();
    expect(decoded().map((l) => l.USER_ID)).toEqual(['good']);
    expect(p.status()).toMatchObject({ published: 1, failed: 1 });
    expect(warn).toHaveBeenCalledTimes(1);
    await p.stop();
  });

  it('counts a failed send and retries the users once, later', async () => {
    let fail = 2;
    const attempts: string[][] = [];
    const warn = vi.fn();
    const { p } = setup({
      send: async (_topic, messages) => {
        attempts.push(messages.map((m) => m.key));
        if (fail-- > 0) throw new Error('broker down');
      },
      log: { ...silentLogger, warn },
    });
    p.notify(users(['u1', T0]));
    await tick();
    expect(attempts).toEqual([['u1']]);
    expect(p.status()).toMatchObject({ published: 0, failed: 1, pending: 1 });
    // No hot loop: nothing until the next due time.
    await tick(999);
    expect(attempts).toHaveLength(1);
    await tick(1);
    expect(attempts).toEqual([['u1'], ['u1']]);
    // The retry failed too: dropped, not retried forever.
    expect(p.status()).toMatchObject({ published: 0, failed: 2, pending: 0 });
    await tick(60_000);
    expect(attempts).toHaveLength(2);
    // Warnings are rate-limited (the second failure came within 10 s of the first).
    expect(warn).toHaveBeenCalledTimes(1);
    // A new event publishes again.
    p.notify(users(['u1', T0 + 61_000]));
    await tick();
    expect(attempts).toHaveLength(3);
    expect(p.status()).toMatchObject({ published: 1, failed: 2, pending: 0 });
    await p.stop();
  });

  it('sends the lists of users notified in one tick in one call', async () => {
    const { p, sends, decoded } = setup();
    for (let i = 0; i < 50; i++) p.notify(users([`u${i}`, T0 + i]));
    p.notify(users(['a', T0], ['b', T0 + 1]));
    await tick();
    expect(sends).toHaveLength(1);
    expect(sends[0]!.messages).toHaveLength(52);
    expect(new Set(decoded().map((l) => l.key)).size).toBe(52);
    await p.stop();
  });

  it('bounds a round by maxPerRound and sends the rest in later rounds', async () => {
    const { p, sends } = setup({ maxPerRound: 10 });
    p.notify(new Map(Array.from({ length: 25 }, (_, i) => [`u${i}`, T0] as [string, number])));
    await tick();
    expect(sends.map((s) => s.messages.length)).toEqual([10, 10, 5]);
    await p.stop();
  });

  it('stop() cancels pending lists: nothing is sent after it', async () => {
    const { p, sends } = setup();
    p.notify(users(['u1', T0]));
    await tick();
    expect(sends).toHaveLength(1);
    p.notify(users(['u1', T0 + 1]));
    p.notify(users(['u2', T0 + 1]));
    await p.stop();
    await tick(10_000);
    expect(sends).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
    p.notify(users(['u3', T0 + 2]));
    await tick(10_000);
    expect(sends).toHaveLength(1);
  });

  it('waits for the round in flight on stop()', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { p, sends } = setup({
      compute: async () => {
        await gate;
        return { recommendationId: 'r', version: 'v1', items: [] };
      },
    });
    p.notify(users(['u1', T0]));
    await tick();
    let stopped = false;
    const stopping = p.stop().then(() => (stopped = true));
    await tick();
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(sends).toHaveLength(1);
  });

  it('forgets last emits older than the interval', async () => {
    const { p, decoded } = setup();
    for (let i = 0; i < 100; i++) p.notify(users([`u${i}`, T0]));
    await tick();
    await tick(1500);
    p.notify(users(['other', T0 + 1500]));
    await tick();
    const lastEmit = (p as unknown as { lastEmit: Map<string, number> }).lastEmit;
    expect([...lastEmit.keys()]).toEqual(['other']);
    // A forgotten user is published at once again.
    p.notify(users(['u1', T0 + 1600]));
    await tick();
    expect(decoded().filter((l) => l.USER_ID === 'u1')).toHaveLength(2);
    await p.stop();
  });

  it('computes the next round while the previous send is on its way, and sends in round order', async () => {
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let sendCalls = 0;
    const { p } = setup({
      maxPerRound: 2,
      compute: async (userId) => {
        order.push(`compute ${userId}`);
        return { recommendationId: `r-${userId}`, version: 'v1', items: [{ itemId: 'i1', score: 1 }] };
      },
      send: async (_topic, messages) => {
        const n = ++sendCalls;
        order.push(`send ${n} start (${messages.map((m) => m.key).join(',')})`);
        if (n === 1) await held;
        order.push(`send ${n} done`);
      },
    });
    p.notify(users(['a', T0], ['b', T0], ['c', T0], ['d', T0], ['e', T0], ['f', T0]));
    await tick();
    // Round 2 computed while send 1 is held; send 2 waits behind send 1; round 3 waits for send 1.
    expect(order).toEqual(['compute a', 'compute b', 'send 1 start (a,b)', 'compute c', 'compute d']);
    release();
    await tick();
    expect(order.slice(5)).toEqual(['send 1 done', 'send 2 start (c,d)', 'send 2 done', 'compute e', 'compute f', 'send 3 start (e,f)', 'send 3 done']);
    expect(p.status().published).toBe(6);
    await p.stop();
  });
});
