/**
 * src/kafka/read-committed.ts against the real broker: with the fix installed, a read_committed
 * kafkajs consumer of a partition that several transactional writers interleave in (as every
 * partition of `<group>.interactions-repartition`) returns committed records only, each once —
 * the case where kafkajs alone returns an aborted record (kafkajs-aborted.test.ts).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Admin, Producer } from '../../src/kafka/kafkajs.js';
import { installReadCommittedFix } from '../../src/kafka/read-committed.js';
import { createTopicsAndWait } from '../../src/kafka/topics.js';
import { freshGroup } from './helpers.js';

installReadCommittedFix();
const brokers = inject('kafkaBrokers');
const kafka = createKafka(loadConfig({ env: { KAFKA_BROKERS: brokers } }), [brokers], '-read-committed-test');
let admin: Admin;
const producers: Producer[] = [];

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
});
afterAll(async () => {
  await Promise.all(producers.map((p) => p.disconnect()));
  await admin.disconnect();
});

async function producer(transactionalId: string): Promise<Producer> {
  const p = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  producers.push(p);
  return p;
}

async function readCommitted(topic: string, expected: number): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: freshGroup('rc-reader'), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen: string[] = [];
  await new Promise<void>((resolve) => {
    void consumer.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) });
    const started = Date.now();
    const timer = setInterval(() => {
      if ((seen.length >= expected && Date.now() - started > 3000) || Date.now() - started > 20_000) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
  });
  await consumer.disconnect();
  return seen;
}

describe('read_committed with several transactional writers per partition (fix installed)', () => {
  it('leaves out both aborted transactions, aborted in the other order, and keeps every committed record', async () => {
    const t = freshGroup('rc');
    await createTopicsAndWait(admin, [{ topic: t, numPartitions: 1 }]);
    const a = await producer(`${t}.a`);
    const b = await producer(`${t}.b`);
    const c = await producer(`${t}.c`);
    const tc = await c.transaction();
    await tc.send({ topic: t, messages: [{ value: 'c-committed-1' }] });
    const ta = await a.transaction();
    await ta.send({ topic: t, messages: [{ value: 'a-aborted' }] });
    const tb = await b.transaction();
    await tb.send({ topic: t, messages: [{ value: 'b-aborted' }] });
    await tc.send({ topic: t, messages: [{ value: 'c-committed-2' }] });
    await tb.abort(); // b's abort marker first
    const a2 = await producer(`${t}.a`); // fences a: its transaction is aborted second
    await tc.commit();
    const txn = await a2.transaction();
    await txn.send({ topic: t, messages: [{ value: 'a-committed' }] });
    await txn.commit();
    const tb2 = await b.transaction();
    await tb2.send({ topic: t, messages: [{ value: 'b-committed' }] });
    await tb2.commit();
    expect(await readCommitted(t, 4)).toEqual(['c-committed-1', 'c-committed-2', 'a-committed', 'b-committed']);
  });
});
