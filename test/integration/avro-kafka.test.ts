/**
 * Avro records through the real broker, on topics made by `streamrec topics create`.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { ConfigResourceTypes, type Admin } from '../../src/kafka/kafkajs.js';
import { topicName } from '../../src/kafka/topics.js';
import { createCodecs, type Interaction } from '../../src/serde/avro.js';
import { freshGroup, runCli } from './helpers.js';

const brokers = inject('kafkaBrokers');
const env = { KAFKA_BROKERS: brokers };
const config = loadConfig({ env });
const kafka = createKafka(config, [brokers], '-test');
let admin: Admin;

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
});
afterAll(async () => {
  await admin.disconnect();
});

describe('streamrec topics create', () => {
  it('creates the eleven topics with their partitions and cleanup policies, then is idempotent', async () => {
    const group = freshGroup('topics');
    const first = await runCli(['topics', 'create', '--group', group, '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    const created = JSON.parse(first.stdout) as { topic: string; action: string }[];
    expect(created.map((r) => r.action)).toEqual(Array(11).fill('created'));

    const { topics } = await admin.fetchTopicMetadata({ topics: created.map((r) => r.topic) });
    const partitions = Object.fromEntries(topics.map((t) => [t.name, t.partitions.length]));
    expect(partitions[topicName(group, 'interactions')]).toBe(3);
    expect(partitions[topicName(group, 'changelog')]).toBe(3);
    expect(partitions[topicName(group, 'dead-letter')]).toBe(3);
    expect(partitions[topicName(group, 'versions')]).toBe(1);
    expect(partitions[topicName(group, 'resources')]).toBe(1);
    expect(partitions[topicName(group, 'models')]).toBe(1);

    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: (['items', 'users', 'changelog', 'interactions', 'versions', 'resources', 'models'] as const).map((n) => ({
        type: ConfigResourceTypes.TOPIC,
        name: topicName(group, n),
        configNames: ['cleanup.policy'],
      })),
    });
    const policy = Object.fromEntries(described.resources.map((r) => [r.resourceName, r.configEntries[0]?.configValue]));
    expect(policy).toEqual({
      [topicName(group, 'items')]: 'compact',
      [topicName(group, 'users')]: 'compact',
      [topicName(group, 'changelog')]: 'compact',
      [topicName(group, 'interactions')]: 'delete',
      [topicName(group, 'versions')]: 'compact',
      [topicName(group, 'resources')]: 'compact',
      [topicName(group, 'models')]: 'compact',
    });

    const second = await runCli(['topics', 'create', '--group', group, '--json'], env);
    expect((JSON.parse(second.stdout) as { action: string }[]).map((r) => r.action)).toEqual(Array(11).fill('unchanged'));
  });

  it('repairs drift: sets a changed config back and adds missing partitions, keeping configs set by others', async () => {
    const group = freshGroup('drift');
    expect((await runCli(['topics', 'create', '--group', group], env)).code).toBe(0);
    const interactions = topicName(group, 'interactions');
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: interactions,
          configEntries: [
            { name: 'retention.ms', value: '1000' },
            { name: 'cleanup.policy', value: 'delete' },
            { name: 'max.message.bytes', value: '200000' },
          ],
        },
      ],
    });
    const out = await runCli(['topics', 'create', '--group', group, '--json'], { ...env, STREAMREC_TOPIC_PARTITIONS: '4' });
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as { topic: string; action: string; detail: string }[];
    const forInteractions = report.filter((r) => r.topic === interactions);
    expect(forInteractions.map((r) => r.action).sort()).toEqual(['partitions-added', 'updated']);
    expect(forInteractions.find((r) => r.action === 'updated')?.detail).toContain('retention.ms 1000 -> 604800000');

    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: interactions, configNames: ['retention.ms', 'max.message.bytes'] }],
    });
    const values = Object.fromEntries(described.resources[0]!.configEntries.map((e) => [e.configName, e.configValue]));
    expect(values).toEqual({ 'retention.ms': '604800000', 'max.message.bytes': '200000' });
    const { topics } = await admin.fetchTopicMetadata({ topics: [interactions] });
    expect(topics[0]!.partitions.length).toBe(4);
  });

  it('refuses a bad group name with its code, and no broker without KAFKA_BROKERS or a local one', async () => {
    const bad = await runCli(['topics', 'create', '--group', 'no.dots'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('INVALID_GROUP_NAME');
    const none = await runCli(['topics', 'create', '--group', 'g'], { KAFKA_BROKERS: '', STREAMREC_KAFKA_DIR: '/nonexistent/streamrec' });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('KAFKA_UNREACHABLE');
  });
});

describe('Avro through Kafka', () => {
  it('produces Interactions keyed by userId and consumes the same records back', async () => {
    const group = freshGroup('avro');
    expect((await runCli(['topics', 'create', '--group', group], env)).code).toBe(0);
    const topic = topicName(group, 'interactions');
    const codecs = createCodecs(config);
    const sent: Interaction[] = Array.from({ length: 200 }, (_, i) => ({
      USER_ID: `u${i % 17}`,
      ITEM_ID: `i${(i * 7) % 31}`,
      TIMESTAMP: 1_764_000_000_000 + i * 1000,
      EVENT_TYPE: i % 10 === 0 ? 'purchase' : 'click',
      EVENT_VALUE: i % 3 === 0 ? i / 2 : null,
      SESSION_ID: i % 2 === 0 ? `s${Math.floor(i / 20)}` : null,
      IMPRESSION: i % 5 === 0 ? ['a', 'b', `i${i}`] : [],
      RECOMMENDATION_ID: null,
      CONTEXT: (i % 4 === 0 ? { DEVICE: 'mobile', LOCALE: 'de-DE' } : {}) as Record<string, string>,
    }));

    const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic, messages: sent.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `${group}-reader` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received: { key: string; partition: number; value: Interaction }[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${received.length} of ${sent.length}`)), 60_000);
      void consumer.run({
        eachMessage: async ({ message, partition }) => {
          received.push({ key: message.key!.toString(), partition, value: codecs.Interaction.decode(message.value!) });
          if (received.length === sent.length) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    await consumer.disconnect();

    const byKey = (a: Interaction, b: Interaction) => a.TIMESTAMP - b.TIMESTAMP;
    expect(received.map((r) => r.value).sort(byKey)).toEqual(sent);
    for (const r of received) expect(r.key).toBe(r.value.USER_ID);
    // Keyed by userId: all of a user's events are in one partition, in the order they were sent.
    const partitionsPerUser = new Map<string, Set<number>>();
    for (const r of received) partitionsPerUser.set(r.key, (partitionsPerUser.get(r.key) ?? new Set()).add(r.partition));
    expect([...partitionsPerUser.values()].every((s) => s.size === 1)).toBe(true);
    expect(new Set(received.map((r) => r.partition)).size).toBeGreaterThan(1);
    const u0 = received.filter((r) => r.key === 'u0').map((r) => r.value.TIMESTAMP);
    expect(u0).toEqual([...u0].sort((a, b) => a - b));
  });
});
