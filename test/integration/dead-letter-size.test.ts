/**
 * Dead letters of any number and size the broker accepts never stop a partition: thousands of small
 * bad records in one fetch, several records of ~150 KB, one record of ~1,048,200 bytes; after each,
 * the valid events behind them are applied. (Before: one produce request of dead letters over the
 * broker's 1 MiB failed with MESSAGE_TOO_LARGE and the partition stopped for good.)
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Admin, KafkaMessage, Producer } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { DEAD_LETTER_MAX_VALUE_BYTES } from '../../src/stream/input.js';
import { clickEvent, freshGroup, readTopic, serviceEnv, startCli, stopChild, until, waitCaughtUp } from './helpers.js';

const brokers = inject('kafkaBrokers');
const config = loadConfig({ env: { KAFKA_BROKERS: brokers } });
const kafka = createKafka(config, [brokers], '-dl-size-test');
const codecs = createCodecs(config);
const group = freshGroup('dlsize');
const interactions = topicName(group, 'interactions');
let admin: Admin;
let producer: Producer;
let service: ChildProcess;
let url: string;
let dlRead = 0;

const event = clickEvent;

beforeAll(async () => {
  admin = kafka.admin();
  producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await Promise.all([admin.connect(), producer.connect()]);
  // One partition: every bad record of a case lands in the same fetch and the same transaction.
  const env = serviceEnv(brokers, mkdtempSync(join(tmpdir(), 'streamrec-dlsize-')), { STREAMREC_TOPIC_PARTITIONS: '1' });
  await applyTopics(admin, group, loadConfig({ env }));
  const started = await startCli(['start', '--group', group], env, 'running;');
  service = started.child;
  url = /api: listening on (http:\/\/\S+)/.exec(started.output())![1]!;
  await until('the processor is ready', async () => (await fetch(`${url}/ready`)).status === 200);
});

afterAll(async () => {
  await stopChild(service);
  await Promise.all([admin.disconnect(), producer.disconnect()]);
});

async function counts(): Promise<{ applied: number; deadLetters: number }> {
  const body = (await (await fetch(`${url}/ready`)).json()) as { detail: { applied: number; deadLetters: number } };
  return body.detail;
}

/** Sends `bad` (each its own produce request when `separately`), then six valid events; checks all are accounted for. */
async function sendAndCheck(bad: Buffer[], separately: boolean): Promise<KafkaMessage[]> {
  const before = await counts();
  const badMessages = bad.map((value) => ({ key: 'mallory', value }));
  if (separately) for (const m of badMessages) await producer.send({ topic: interactions, messages: [m] });
  else await producer.send({ topic: interactions, messages: badMessages });
  const good = Array.from({ length: 6 }, (_, i) => event(`ok-${i}`, `i${i}`));
  await producer.send({ topic: interactions, messages: good.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  await waitCaughtUp(admin, group, 90_000);
  const after = await counts();
  expect(after.applied - before.applied).toBe(6);
  expect(after.deadLetters - before.deadLetters).toBe(bad.length);
  expect((await fetch(`${url}/health`)).status).toBe(200);
  const letters = await readTopic(kafka, topicName(group, 'dead-letter'), dlRead + bad.length, 90_000);
  expect(letters).toHaveLength(dlRead + bad.length);
  const fresh = letters.slice(dlRead);
  dlRead += bad.length;
  return fresh;
}

describe('dead letters of any size', () => {
  it('4,000 small bad records in one fetch (~1.6 MB of dead letters): all dead-lettered, the events behind them applied', async () => {
    const bad = Array.from({ length: 4000 }, (_, i) => Buffer.from(`\u0000\u0001not avro ${i}`));
    const letters = await sendAndCheck(bad, false);
    const offsets = letters.map((l) => Number(l.headers!['source-offset']!.toString()));
    expect(new Set(offsets).size).toBe(4000);
    expect(letters.every((l) => l.headers!['error-code']!.toString() === 'RECORD_MALFORMED')).toBe(true);
  });

  it('eight records of ~150 KB (RECORD_TOO_LARGE): kept whole in the dead letters', async () => {
    const bad = Array.from({ length: 8 }, (_, i) => Buffer.alloc(150_000, 65 + i));
    const letters = await sendAndCheck(bad, true);
    for (const l of letters) {
      expect(l.headers!['error-code']!.toString()).toBe('RECORD_TOO_LARGE');
      const env = codecs.DeadLetter.decode(l.value!);
      expect(env.VALUE!.length).toBe(150_000);
      expect(env.VALUE_SIZE).toBeNull();
    }
  });

  it('one record of 1,048,200 bytes: a truncated copy with its size and SHA-256', async () => {
    const big = Buffer.alloc(1_048_200, 0x5a);
    big.write('the end', big.length - 7);
    const [letter] = await sendAndCheck([big], true);
    const env = codecs.DeadLetter.decode(letter!.value!);
    expect(env.ERROR_CODE).toBe('RECORD_TOO_LARGE');
    expect(env.VALUE!.length).toBe(DEAD_LETTER_MAX_VALUE_BYTES);
    expect(env.VALUE!.equals(big.subarray(0, DEAD_LETTER_MAX_VALUE_BYTES))).toBe(true);
    expect(env.VALUE_SIZE).toBe(big.length);
    expect(env.VALUE_SHA256).toBe(createHash('sha256').update(big).digest('hex'));
    expect(letter!.headers!['value-sha256']!.toString()).toBe(env.VALUE_SHA256);
  });
});
