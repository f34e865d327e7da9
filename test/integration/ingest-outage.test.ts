/**
 * Issue 11 part 4: ingestion fails fast while Kafka is down. A private local broker (its own folder,
 * never the suite's) under the real API with the real kafkajs producer and topic directory, as the
 * service wires them: the broker is stopped, every POST answers 503 within ingest.produceTimeoutMs
 * (plus slack), past ingest.maxInFlight at once; the broker is started again and POSTs get 202.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, kafkaSink, topicGroupDirectory } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Admin, Producer } from '../../src/kafka/kafkajs.js';
import { localKafkaOptions, startLocalKafka, stopLocalKafka } from '../../src/kafka/local-broker.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { freshGroup, rootHeaders, TEST_ROOT_KEY } from './helpers.js';

const TIMEOUT_MS = 3000;
const MAX_IN_FLIGHT = 8;
/** Generous: two cores shared with a JVM and other test runs. */
const SLACK_MS = 2500;

const dataDir = `.streamrec/test-kafka-outage-${randomBytes(4).toString('hex')}`;
const config = loadConfig({
  env: {
    STREAMREC_API_ROOT_KEY: TEST_ROOT_KEY,
    STREAMREC_INGEST_PRODUCE_TIMEOUT_MS: String(TIMEOUT_MS),
    STREAMREC_INGEST_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
    STREAMREC_KAFKA_LOG_LEVEL: 'nothing',
  },
  overrides: { 'kafka.local.dataDir': dataDir },
});
const group = freshGroup('outage');
let admin: Admin | undefined;
let producer: Producer | undefined;
let app: FastifyInstance | undefined;
let base = '';

const startBroker = async (): Promise<string> => (await startLocalKafka(localKafkaOptions(config, 'owned'))).brokers;

beforeAll(async () => {
  const brokers = await startBroker();
  const kafka = createKafka(config, [brokers], '-outage-test');
  admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  // As the service makes its API producer.
  producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  app = await buildApp({
    config,
    codecs: createCodecs(config),
    sink: kafkaSink(producer),
    groups: topicGroupDirectory(admin),
    status: () => ({ state: 'running', ready: true }),
    logger: false,
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
}, 240_000);

afterAll(async () => {
  await app?.close();
  await producer?.disconnect().catch(() => undefined);
  await admin?.disconnect().catch(() => undefined);
  await stopLocalKafka(config.kafka.local.dataDir, config.kafka.local.stopGraceMs);
  rmSync(config.kafka.local.dataDir, { recursive: true, force: true });
}, 120_000);

let n = 0;
/** 202s answered, each for one record. */
let accepted = 0;
const bodies = {
  events: () => ({ userId: `u${n++}`, eventList: [{ eventType: 'click', itemId: 'i1', sentAt: Date.now() }] }),
  items: () => ({ items: [{ itemId: `i${n++}` }] }),
  users: () => ({ users: [{ userId: `u${n++}` }] }),
};
type Kind = keyof typeof bodies;

async function post(kind: Kind): Promise<{ status: number; code?: string; retryAfter: string | null; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/groups/${group}/${kind}`, { method: 'POST', headers: rootHeaders({ 'content-type': 'application/json' }), body: JSON.stringify(bodies[kind]()) });
  const json = (await res.json()) as { code?: string };
  if (res.status === 202) accepted += 1;
  return { status: res.status, ...(json.code ? { code: json.code } : {}), retryAfter: res.headers.get('retry-after'), ms: performance.now() - t0 };
}

async function records(): Promise<number> {
  let total = 0;
  for (const t of ['interactions', 'items', 'users'] as const) for (const p of await admin!.fetchTopicOffsets(topicName(group, t))) total += Number(p.high);
  return total;
}

describe('ingestion while the broker is down', () => {
  it('answers 503 within ingest.produceTimeoutMs, 503 at once past ingest.maxInFlight, and 202 again once the broker is back', async () => {
    // Up: accepted.
    for (const kind of ['events', 'items', 'users'] as const) expect((await post(kind)).status).toBe(202);
    expect(await records()).toBe(3);

    await stopLocalKafka(config.kafka.local.dataDir, config.kafka.local.stopGraceMs);

    // Down, one at a time (including after the group directory's 5 s cache has expired): each a 503 within the bound.
    const sequential: Awaited<ReturnType<typeof post>>[] = [];
    const downSince = performance.now();
    for (let i = 0; performance.now() - downSince < 8000 || i < 6; i++) sequential.push(await post((['events', 'items', 'users'] as const)[i % 3]!));
    for (const r of sequential) {
      expect(r.status, JSON.stringify(r)).toBe(503);
      expect(['KAFKA_UNREACHABLE', 'INGEST_OVERLOADED']).toContain(r.code);
      expect(r.retryAfter).toBe('1');
      expect(r.ms, JSON.stringify(r)).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }
    expect(sequential.some((r) => r.code === 'KAFKA_UNREACHABLE')).toBe(true);
    console.log(`[outage] sequential: ${sequential.map((r) => `${r.code} ${Math.round(r.ms)} ms`).join(', ')}`);

    // Down, a burst: no more than maxInFlight produces are outstanding; the rest are refused at once.
    const burst = await Promise.all(Array.from({ length: 4 * MAX_IN_FLIGHT }, (_, i) => post((['events', 'items', 'users'] as const)[i % 3]!)));
    for (const r of burst) {
      expect(r.status, JSON.stringify(r)).toBe(503);
      expect(r.retryAfter).toBe('1');
      expect(r.ms, JSON.stringify(r)).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }
    const overloaded = burst.filter((r) => r.code === 'INGEST_OVERLOADED');
    expect(overloaded.length).toBeGreaterThanOrEqual(3 * MAX_IN_FLIGHT);
    for (const r of overloaded) expect(r.ms, JSON.stringify(r)).toBeLessThan(1000);
    console.log(`[outage] burst of ${burst.length}: ${overloaded.length} INGEST_OVERLOADED (slowest ${Math.round(Math.max(...overloaded.map((r) => r.ms)))} ms), ${burst.length - overloaded.length} KAFKA_UNREACHABLE (slowest ${Math.round(Math.max(0, ...burst.filter((r) => r.code !== 'INGEST_OVERLOADED').map((r) => r.ms)))} ms)`);

    // Back (same folder, same port): POSTs are accepted again without restarting anything.
    await startBroker();
    const backSince = performance.now();
    let first: Awaited<ReturnType<typeof post>> | undefined;
    while (performance.now() - backSince < 150_000) {
      const r = await post('events');
      expect([202, 503], JSON.stringify(r)).toContain(r.status);
      expect(r.ms, JSON.stringify(r)).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      if (r.status === 202) {
        first = r;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(first, 'a POST was accepted after the broker came back').toBeDefined();
    console.log(`[outage] first 202 ${Math.round(performance.now() - backSince)} ms after the broker was started again`);
    // The produces of the outage hold their in-flight slots until the producer settles them (its next
    // retry): until then fewer requests at a time are taken, the rest answered 503 INGEST_OVERLOADED;
    // then a burst of maxInFlight is accepted in full.
    let after: Awaited<ReturnType<typeof post>>[] = [];
    const kinds = ['events', 'items', 'users'] as const;
    for (;;) {
      after = await Promise.all(Array.from({ length: MAX_IN_FLIGHT }, (_, i) => post(kinds[i % 3]!)));
      for (const r of after) {
        expect([202, 503], JSON.stringify(r)).toContain(r.status);
        if (r.status === 503) expect(r.code).toBe('INGEST_OVERLOADED');
      }
      if (after.every((r) => r.status === 202) || performance.now() - backSince > 120_000) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    console.log(`[outage] a full burst of ${MAX_IN_FLIGHT} accepted ${Math.round(performance.now() - backSince)} ms after the broker was started again`);
    expect(after.map((r) => r.status)).toEqual(Array.from({ length: MAX_IN_FLIGHT }, () => 202));
    // Every 202 is on the topics; produces answered 503 may have landed too (so: at least).
    const written = await records();
    expect(written).toBeGreaterThanOrEqual(accepted);
    console.log(`[outage] records on the topics: ${written}; answered 202: ${accepted} (the rest: produces answered 503 that were written later)`);
  }, 400_000);
});
