/** The API's Kafka adapters against in-memory doubles of the kafkajs admin and producer. */
import { describe, expect, it } from 'vitest';
import { kafkaSink, topicGroupDirectory } from '../../src/api/kafka.js';
import { AppError } from '../../src/errors/index.js';
import type { Producer, ProducerRecord } from '../../src/kafka/kafkajs.js';

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
