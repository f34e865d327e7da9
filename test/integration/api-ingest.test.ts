/**
 * The HTTP ingestion API on a real socket, producing through a real kafkajs producer to a real
 * broker, with the real topic-based group directory; records are consumed back and decoded.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, kafkaSink, topicGroupDirectory } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { Partitioners, type Admin, type Producer } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, type Interaction, type Item } from '../../src/serde/avro.js';
import { freshGroup, rootHeaders, TEST_ROOT_KEY } from './helpers.js';

const brokers = inject('kafkaBrokers');
const config = loadConfig({ env: { KAFKA_BROKERS: brokers, STREAMREC_API_ROOT_KEY: TEST_ROOT_KEY } });
const kafka = createKafka(config, [brokers], '-api-test');
const codecs = createCodecs(config);
const group = freshGroup('api');
let admin: Admin;
let producer: Producer;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  app = await buildApp({
    config,
    codecs,
    sink: kafkaSink(producer),
    groups: topicGroupDirectory(admin),
    status: () => ({ state: 'running', ready: true }),
    logger: false,
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await app?.close();
  await producer?.disconnect();
  await admin?.disconnect();
});

const postJson = (path: string, body: unknown): Promise<Response> =>
  fetch(`${base}${path}`, { method: 'POST', headers: rootHeaders({ 'content-type': 'application/json' }), body: JSON.stringify(body) });

/** Reads `count` records of `topic` from the beginning with a fresh consumer group. */
async function consume(topic: string, count: number): Promise<{ key: string; partition: number; value: Buffer }[]> {
  const consumer = kafka.consumer({ groupId: `${topic}-reader-${Date.now()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const received: { key: string; partition: number; value: Buffer }[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${received.length} of ${count} records from ${topic}`)), 60_000);
      void consumer.run({
        eachMessage: async ({ message, partition }) => {
          received.push({ key: message.key!.toString(), partition, value: message.value! });
          if (received.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    return received;
  } finally {
    await consumer.disconnect();
  }
}

async function endOffsets(topic: string): Promise<string[]> {
  return (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition).map((p) => p.high);
}

describe('HTTP ingestion against a real broker', () => {
  it('POST /events produces Interactions keyed by userId that decode to what was sent', async () => {
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
    const users = ['alice', 'bob', 'carol', 'dave', 'erin'];
    const expected: Interaction[] = [];
    for (const [u, userId] of users.entries()) {
      const eventList = Array.from({ length: 4 }, (_, i) => {
        const at = t0 + (u * 4 + i) * 1000;
        // sentAt in each of its three forms
        const sentAt = i % 3 === 0 ? at / 1000 : i % 3 === 1 ? at : new Date(at).toISOString();
        return { eventType: i === 3 ? 'purchase' : 'click', itemId: `item-${i}`, sentAt, impression: [`item-${i}`, 'item-x'], properties: JSON.stringify({ DEVICE: 'web' }) };
      });
      const res = await postJson(`/v1/groups/${group}/events`, { userId, sessionId: `s-${userId}`, eventList });
      expect(res.status, await res.clone().text()).toBe(202);
      expect(await res.json()).toEqual({ accepted: 4 });
      eventList.forEach((e, i) =>
        expected.push({
          USER_ID: userId,
          ITEM_ID: e.itemId,
          TIMESTAMP: t0 + (u * 4 + i) * 1000,
          EVENT_TYPE: e.eventType,
          EVENT_VALUE: null,
          SESSION_ID: `s-${userId}`,
          IMPRESSION: e.impression,
          RECOMMENDATION_ID: null,
          CONTEXT: { DEVICE: 'web' },
        }),
      );
    }

    const received = await consume(topicName(group, 'interactions'), expected.length);
    const decoded = received.map((r) => ({ ...r, value: codecs.Interaction.decode(r.value) }));
    expect(decoded.map((r) => r.value).sort((a, b) => a.TIMESTAMP - b.TIMESTAMP)).toEqual(expected);
    for (const r of decoded) expect(r.key).toBe(r.value.USER_ID);
    const partitionsPerUser = new Map<string, Set<number>>();
    for (const r of decoded) partitionsPerUser.set(r.key, (partitionsPerUser.get(r.key) ?? new Set()).add(r.partition));
    expect([...partitionsPerUser.values()].every((s) => s.size === 1)).toBe(true);
  });

  it('POST /items produces Items keyed by itemId; an invalid request produces nothing', async () => {
    const itemsTopic = topicName(group, 'items');
    const res = await postJson(`/v1/groups/${group}/items`, {
      items: [
        { itemId: 'item-1', creationTimestamp: '2025-01-31T12:00:00Z', properties: { GENRES: 'jazz|blues', PRICE: 12.5, TAGS: ['a'], NEW: true } },
        { itemId: 'item-2', properties: '{"GENRES": "rock"}' },
      ],
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const items = (await consume(itemsTopic, 2)).map((r) => ({ key: r.key, value: codecs.Item.decode(r.value) }));
    expect(items.sort((a, b) => a.key.localeCompare(b.key))).toEqual([
      {
        key: 'item-1',
        value: { ITEM_ID: 'item-1', CREATION_TIMESTAMP: Date.UTC(2025, 0, 31, 12), METADATA: { GENRES: 'jazz|blues', PRICE: 12.5, TAGS: ['a'], NEW: true } },
      },
      { key: 'item-2', value: { ITEM_ID: 'item-2', CREATION_TIMESTAMP: null, METADATA: { GENRES: 'rock' } } satisfies Item },
    ]);

    const before = await endOffsets(itemsTopic);
    const bad = await postJson(`/v1/groups/${group}/items`, { items: [{ itemId: 'item-3' }, { itemId: 'item-4', properties: { X: { nested: 1 } } }] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'RECORD_INVALID', errors: [{ index: 1, field: 'items[1].properties.X' }] });
    expect(await endOffsets(itemsTopic)).toEqual(before);
  });

  it('answers 404 GROUP_NOT_FOUND for a group without topics, over the real directory', async () => {
    const res = await postJson(`/v1/groups/${freshGroup('absent')}/events`, {
      userId: 'u',
      eventList: [{ eventType: 'click', itemId: 'i', sentAt: Date.now() }],
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 'GROUP_NOT_FOUND', field: 'group', retriable: false });
  });

  it('answers /health and /ready on the socket', async () => {
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', state: 'running' });
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ state: 'running', ready: true });
  });
});
