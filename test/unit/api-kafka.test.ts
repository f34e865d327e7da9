/** The API's Kafka adapters against in-memory doubles of the kafkajs admin and producer. */
import { describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { boundedSink, kafkaSink, topicGroupDirectory } from '../../src/api/kafka.js';
import { AppError } from '../../src/errors/index.js';
import type { Producer, ProducerRecord } from '../../src/kafka/kafkajs.js';
import { RenewingProducer } from '../../src/kafka/produce.js';
import { silentLogger } from '../../src/util/log.js';

function fakeAdmin(topics: string[]) {
  const admin = {
    calls: 0,
    failure: undefined as Error | undefined,
    listTopics: async (): Promise<string[]> => {
      admin.calls += 1;
      await new Promise((r) => setTimeout(r, 1));
      if (admin.failure) throw admin.failure;
      return [...topics];
    },
  };
  return admin;
}

describe('topicGroupDirectory', () => {
  it('knows a group by its <group>.interactions topic, caching the topic list for the ttl', async () => {
    const topics = ['shop.interactions', 'shop.items', 'other.items'];
    const admin = fakeAdmin(topics);
    let clock = 1_000_000;
    const groups = topicGroupDirectory(admin, 5000, () => clock);
    expect(await groups.has('shop')).toBe(true);
    expect(await groups.has('other')).toBe(false);
    expect(await groups.has('nope')).toBe(false);
    expect(admin.calls).toBe(1);

    // A group created meanwhile is seen once the ttl has passed, not before; misses do not refresh early.
    topics.push('new.interactions');
    clock += 4999;
    expect(await Promise.all([groups.has('new'), groups.has('new'), groups.has('x')])).toEqual([false, false, false]);
    expect(admin.calls).toBe(1);
    clock += 1;
    expect(await groups.has('new')).toBe(true);
    expect(admin.calls).toBe(2);
  });

  it('shares one listTopics between concurrent lookups, and fails with KAFKA_UNREACHABLE', async () => {
    const admin = fakeAdmin(['a.interactions']);
    const groups = topicGroupDirectory(admin, 5000);
    expect(await Promise.all([groups.has('a'), groups.has('b'), groups.has('a')])).toEqual([true, false, true]);
    expect(admin.calls).toBe(1);

    const down = fakeAdmin([]);
    down.failure = new Error('Connection error');
    const unreachable = topicGroupDirectory(down, 5000);
    await expect(unreachable.has('a')).rejects.toMatchObject({ code: 'KAFKA_UNREACHABLE', status: 503, retriable: true });
    // After a failure the next lookup tries again.
    down.failure = undefined;
    expect(await unreachable.has('a')).toBe(false);
    expect(down.calls).toBe(2);
  });

  it('refuses bad group names', async () => {
    await expect(topicGroupDirectory(fakeAdmin([])).has('a.b')).rejects.toMatchObject({ code: 'INVALID_GROUP_NAME' });
  });
});

describe('kafkaSink', () => {
  it('sends the messages to the topic with acks from all replicas, and wraps failures as KAFKA_UNREACHABLE', async () => {
    const records: ProducerRecord[] = [];
    let failure: Error | undefined;
    const producer = {
      send: async (record: ProducerRecord) => {
        if (failure) throw failure;
        records.push(record);
        return [];
      },
    } as unknown as Producer;
    const sink = kafkaSink(producer);
    const messages = [{ key: 'u1', value: Buffer.from([1, 2]) }];
    await sink.send('g.interactions', messages);
    await sink.send('g.interactions', []);
    expect(records).toEqual([{ topic: 'g.interactions', acks: -1, messages }]);

    failure = new Error('This server does not host this topic-partition');
    const err = await sink.send('g.items', messages).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'KAFKA_UNREACHABLE', status: 503, retriable: true });
    expect((err as AppError).message).toContain('g.items');
    expect((err as AppError).cause).toBe(failure);
  });
});

/** A producer double whose sends wait until released (or failed) by the test: a broker that does not answer. */
function stalledProducer() {
  const pending: { record: ProducerRecord; settle: (err?: Error) => void }[] = [];
  const producer = {
    send: (record: ProducerRecord) =>
      new Promise((resolve, reject) => {
        pending.push({ record, settle: (err) => (err ? reject(err) : resolve([])) });
      }),
  } as unknown as Producer;
  return { producer, pending };
}

const message = [{ key: 'u1', value: Buffer.from([1]) }];

/** Waits (microtasks and short timers) until `cond` holds, at most 2 s. */
async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met within 2 s');
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe('boundedSink (fail fast while Kafka does not answer)', () => {
  it('answers KAFKA_UNREACHABLE once the produce wait is over, keeps the slot until the producer settles, and reports a late write', async () => {
    const { producer, pending } = stalledProducer();
    const late: { topic: string; records: number; error?: unknown }[] = [];
    const sink = boundedSink(kafkaSink(producer), { timeoutMs: 150, maxInFlight: 10, onLate: (l) => late.push(l) });
    const started = performance.now();
    const err = await sink.send('g.interactions', message).catch((e: unknown) => e);
    const waited = performance.now() - started;
    expect(err).toMatchObject({ code: 'KAFKA_UNREACHABLE', status: 503, retriable: true });
    expect((err as AppError).message).toContain('may still be written');
    expect(waited).toBeGreaterThanOrEqual(140);
    expect(waited).toBeLessThan(2000);
    // The produce was not cancelled: it holds its slot until the producer answers.
    expect(pending).toHaveLength(1);
    expect(sink.inFlight()).toBe(1);
    pending[0]!.settle();
    await new Promise((r) => setTimeout(r, 10));
    expect(sink.inFlight()).toBe(0);
    expect(late).toEqual([{ topic: 'g.interactions', records: 1 }]);

    // A call may ask for less than the bound (what is left of its request's wait), never for more.
    const t0 = performance.now();
    await expect(sink.send('g.items', message, { timeoutMs: 20 })).rejects.toMatchObject({ code: 'KAFKA_UNREACHABLE' });
    expect(performance.now() - t0).toBeLessThan(140);
    pending[1]!.settle(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'));
    await new Promise((r) => setTimeout(r, 10));
    expect(late[1]).toMatchObject({ topic: 'g.items', records: 1, error: expect.any(AppError) });
  });

  it('refuses at once with INGEST_OVERLOADED past maxInFlight, and takes sends again as the producer answers', async () => {
    const { producer, pending } = stalledProducer();
    const sink = boundedSink(kafkaSink(producer), { timeoutMs: 60_000, maxInFlight: 3 });
    const waiting = [0, 1, 2].map(() => sink.send('g.interactions', message));
    expect(sink.inFlight()).toBe(3);
    const started = performance.now();
    const err = await sink.send('g.interactions', message).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(100);
    expect(err).toMatchObject({ code: 'INGEST_OVERLOADED', status: 503, retriable: true });
    // One produce call at a time: the first send is at the producer, the two others wait for it.
    expect(pending).toHaveLength(1);
    pending[0]!.settle();
    await waiting[0];
    expect(sink.inFlight()).toBe(2);
    const next = sink.send('g.interactions', message);
    // The two that waited went together into the second call; `next` waits for that one.
    expect(pending).toHaveLength(2);
    expect(pending[1]!.record.messages).toHaveLength(2);
    pending[1]!.settle(new Error('broker gone'));
    await expect(waiting[1]).rejects.toMatchObject({ code: 'KAFKA_UNREACHABLE' });
    await expect(waiting[2]).rejects.toMatchObject({ code: 'KAFKA_UNREACHABLE' });
    await until(() => pending.length === 3);
    pending[2]!.settle();
    await next;
    expect(sink.inFlight()).toBe(0);
    // Empty sends cost nothing.
    await sink.send('g.interactions', []);
    expect(pending).toHaveLength(3);
  });

  it('RenewingProducer: after a failed send, the next goes through a new producer (a new producer id), never the failed one again; sends one at a time', async () => {
    const made: ReturnType<typeof stalledProducer>[] = [];
    const disconnected: number[] = [];
    const producer = new RenewingProducer(
      () => {
        const p = stalledProducer();
        const index = made.push(p) - 1;
        Object.assign(p.producer, { connect: async () => undefined, disconnect: async () => void disconnected.push(index) });
        return p.producer;
      },
      silentLogger,
      'test producer',
    );
    const sink = kafkaSink(producer);
    const a = sink.send('g.interactions', [{ key: 'u1', value: Buffer.from('a') }]);
    const b = producer.send({ topic: 'g.versions', messages: [{ key: 'k', value: 'b' }] });
    await until(() => made[0]!.pending.length === 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(made).toHaveLength(1);
    expect(made[0]!.pending).toHaveLength(1); // b waits: the failed request's retries must not interleave with it
    made[0]!.pending[0]!.settle(new Error('connection closed'));
    await expect(a).rejects.toMatchObject({ code: 'KAFKA_UNREACHABLE' });
    await until(() => made.length === 2 && made[1]!.pending.length === 1);
    expect(made[0]!.pending).toHaveLength(1);
    expect(disconnected).toEqual([0]);
    expect(made[1]!.pending[0]!.record.messages.map((m) => String(m.value))).toEqual(['b']);
    made[1]!.pending[0]!.settle();
    await b;
    // A success keeps the producer.
    const c = sink.send('g.interactions', [{ key: 'u3', value: Buffer.from('c') }]);
    await until(() => made[1]!.pending.length === 2);
    made[1]!.pending[1]!.settle();
    await c;
    expect(made).toHaveLength(2);
    await producer.disconnect();
    expect(disconnected).toEqual([0, 1]);
  });

  it('keeps the broker address out of the message (the cause keeps it, for the log)', async () => {
    const failure = new Error('Connection error: connect ECONNREFUSED 10.1.2.3:9092');
    const sink = kafkaSink({ send: async () => Promise.reject(failure) } as unknown as Producer);
    const err = (await sink.send('g.users', message).catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('KAFKA_UNREACHABLE');
    expect(err.message).not.toContain('10.1.2.3');
    expect(err.message).not.toContain('9092');
    expect(err.cause).toBe(failure);

    const down = fakeAdmin([]);
    down.failure = failure;
    const lookup = (await topicGroupDirectory(down).has('g').catch((e: unknown) => e)) as AppError;
    expect(lookup.code).toBe('KAFKA_UNREACHABLE');
    expect(lookup.message).not.toContain('10.1.2.3');
  });
});

describe('topicGroupDirectory while Kafka does not answer', () => {
  it('answers a known group at once from the previous list, a miss after at most staleWaitMs (at once on a failure), and takes the fresh list when it comes', async () => {
    const topics = ['shop.interactions'];
    let release: (() => void) | undefined;
    let fail = false;
    let calls = 0;
    const admin = {
      listTopics: async (): Promise<string[]> => {
        calls += 1;
        if (calls === 1) return [...topics];
        if (fail) throw new Error('connect ECONNREFUSED 127.0.0.1:9092');
        await new Promise<void>((r) => (release = r));
        return [...topics];
      },
    };
    let clock = 0;
    const groups = topicGroupDirectory(admin, 5000, () => clock, 2000);
    expect(await groups.has('shop')).toBe(true);
    clock += 5000; // the list is stale; the refresh hangs
    topics.push('new.interactions');
    const t0 = performance.now();
    expect(await groups.has('shop')).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1500); // not waiting on the refresh
    const t1 = performance.now();
    expect(await groups.has('new')).toBe(false);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(1900);
    expect(performance.now() - t1).toBeLessThan(6000);
    expect(calls).toBe(2); // one refresh shared
    release!();
    await new Promise((r) => setTimeout(r, 10));
    expect(await groups.has('new')).toBe(true);

    clock += 5000;
    fail = true;
    expect(await groups.has('shop')).toBe(true); // refresh failed: the previous list answers
    expect(calls).toBe(3);
  });
});
