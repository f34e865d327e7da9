/**
 * What the exactly-once design relies on in kafkajs 2.2.4's read_committed consumer, checked
 * against the real broker:
 * - one transactional writer per partition: a transaction aborted by fencing (a restarted owner)
 *   is filtered out — the changelog and dead-letter partitions are written this way;
 * - several writers interleaving in one partition: kafkajs returns a record of an aborted
 *   transaction (its filter takes the broker's aborted-transaction list as sorted by first offset).
 *   This is why dead letters are co-partitioned with interactions. If this check starts failing,
 *   kafkajs got fixed: the note can go.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Admin, Producer } from '../../src/kafka/kafkajs.js';
import { createTopicsAndWait } from '../../src/kafka/topics.js';
import { freshGroup } from './helpers.js';

const brokers = inject('kafkaBrokers');
const kafka = createKafka(loadConfig({ env: { KAFKA_BROKERS: brokers } }), [brokers], '-aborted-test');
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
  const consumer = kafka.consumer({ groupId: freshGroup('aborted-reader'), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen: string[] = [];
  await new Promise<void>((resolve) => {
    void consumer.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) });
    const started = Date.now();
    const timer = setInterval(() => {
      // wait for the expected records, then a little longer for any extra one
      if ((seen.length >= expected && Date.now() - started > 3000) || Date.now() - started > 20_000) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
  });
  await consumer.disconnect();
  return seen;
}

async function topic(): Promise<string> {
  const name = freshGroup('aborted');
  await createTopicsAndWait(admin, [{ topic: name, numPartitions: 1 }]);
  return name;
}

describe('kafkajs read_committed and aborted transactions', () => {
  it('filters a transaction aborted by fencing when one writer owns the partition', async () => {
    const t = await topic();
    const id = `${t}.writer`;
    const first = await producer(id);
    const open = await first.transaction();
    await open.send({ topic: t, messages: [{ value: 'aborted-1' }, { value: 'aborted-2' }] });
    const next = await producer(id); // a restarted owner: fences `first`, aborting its transaction
    const txn = await next.transaction();
    await txn.send({ topic: t, messages: [{ value: 'committed' }] });
    await txn.commit();
    expect(await readCommitted(t, 1)).toEqual(['committed']);
  });

  it('returns an aborted record when two writers interleave and abort in the other order', async () => {
    const t = await topic();
    const a = await producer(`${t}.a`);
    const b = await producer(`${t}.b`);
    const ta = await a.transaction();
    await ta.send({ topic: t, messages: [{ value: 'a-aborted' }] });
    const tb = await b.transaction();
    await tb.send({ topic: t, messages: [{ value: 'b-aborted' }] });
    await tb.abort(); // b's abort marker first
    const a2 = await producer(`${t}.a`); // fences a: its earlier transaction is aborted second
    const txn = await a2.transaction();
    await txn.send({ topic: t, messages: [{ value: 'committed' }] });
    await txn.commit();
    expect(await readCommitted(t, 1)).toEqual(['a-aborted', 'committed']);
  });
});
