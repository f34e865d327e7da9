/**
 * Bad input, over HTTP and straight into the topics, against the running service: each bad record
 * gets a 4xx with its code and field, or lands in the dead-letter topic with its reason; the valid
 * records around it are all applied; the process stays up.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Admin, Producer } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, parseSchema } from '../../src/serde/avro.js';
import { clickEvent, freshGroup, readTopic, rootHeaders, startCli, TEST_ROOT_KEY, waitCaughtUp } from './helpers.js';

const brokers = inject('kafkaBrokers');
const config = loadConfig({ env: { KAFKA_BROKERS: brokers } });
const kafka = createKafka(config, [brokers], '-bad-input-test');
const codecs = createCodecs(config);
const group = freshGroup('bad');
let admin: Admin;
let producer: Producer;
let service: ChildProcess;
let url: string;

const now = Date.now();
const event = (user: string, item: string, t = now - 60_000) => clickEvent(user, item, t);

beforeAll(async () => {
  admin = kafka.admin();
  producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await Promise.all([admin.connect(), producer.connect()]);
  await applyTopics(admin, group, config);
  const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-bad-'));
  const started = await startCli(
    ['start', '--group', group, '--port', '0'],
    { KAFKA_BROKERS: brokers, STREAMREC_STATE_DIR: stateDir, STREAMREC_LOG_LEVEL: 'warn', STREAMREC_INGEST_MAX_RECORD_BYTES: '4096', STREAMREC_API_ROOT_KEY: TEST_ROOT_KEY },
    'running;',
  );
  service = started.child;
  url = /api: listening on (http:\/\/\S+)/.exec(started.output())![1]!;
  const deadline = Date.now() + 60_000;
  while ((await fetch(`${url}/ready`)).status !== 200) {
    if (Date.now() > deadline) throw new Error('the service never became ready');
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  const exited = new Promise((r) => service.once('exit', r));
  service.kill('SIGTERM');
  await exited;
  await Promise.all([admin.disconnect(), producer.disconnect()]);
});

const post = (path: string, body: unknown | string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${url}${path}`, { method: 'POST', headers: rootHeaders(headers), body: typeof body === 'string' ? body : JSON.stringify(body) });

async function ready(): Promise<{ state: string; detail: { applied: number; deadLetters: number; metadata: { items: number; deleted: number; deadLetters: number } } }> {
  const res = await fetch(`${url}/ready`);
  expect(res.status).toBe(200);
  return (await res.json()) as never;
}

describe('bad input', () => {
  it('over HTTP: a 4xx with a code and the field; nothing produced; the next good request works', async () => {
    const events = (list: unknown[]) => ({ userId: 'h1', eventList: list });
    const good = { eventType: 'click', itemId: 'i1', sentAt: Math.floor(now / 1000) - 60 };
    const cases: { body: unknown | string; status: number; code: string; field?: RegExp; path?: string; headers?: Record<string, string> }[] = [
      { body: { eventList: [good] }, status: 400, code: 'REQUEST_INVALID', field: /userId/ },
      { body: events([{ ...good, sentAt: 'yesterday' }]), status: 400, code: 'RECORD_INVALID', field: /eventList\[0\]\.sentAt/ },
      { body: events([{ ...good, itemId: 42 }]), status: 400, code: 'REQUEST_INVALID', field: /itemId/ },
      { body: events([good, { ...good, sentAt: Math.floor(now / 1000) + 86_400 * 365 }]), status: 400, code: 'RECORD_INVALID', field: /eventList\[1\]\.sentAt/ },
      { body: events([{ ...good, sentAt: 1000 }]), status: 400, code: 'RECORD_INVALID', field: /eventList\[0\]\.sentAt/ },
      { body: '{"userId": "h1", "eventList": [', status: 400, code: 'REQUEST_MALFORMED' },
      { body: events(Array.from({ length: 100 }, () => ({ ...good, properties: { NOTE: 'x'.repeat(20_000) } }))), status: 413, code: 'PAYLOAD_TOO_LARGE' },
      { body: events([good]), status: 404, code: 'GROUP_NOT_FOUND', path: '/v1/groups/no-such-group/events' },
    ];
    for (const c of cases) {
      const res = await post(c.path ?? `/v1/groups/${group}/events`, c.body, c.headers);
      const body = (await res.json()) as { code: string; field?: string; errors?: { field: string }[]; message: string };
      expect(res.status, JSON.stringify(body)).toBe(c.status);
      expect(body.code).toBe(c.code);
      if (c.field) expect(`${body.field ?? ''} ${(body.errors ?? []).map((e) => e.field).join(' ')}`).toMatch(c.field);
      expect(JSON.stringify(body)).not.toMatch(/\n\s+at /);
      const ok = await post(`/v1/groups/${group}/events`, events([good]));
      expect(ok.status).toBe(202);
    }
  });

  it('into the topics: each bad record goes to the dead-letter topic with its reason; the records around it are applied', async () => {
    const oldWriter = parseSchema({ type: 'record', name: 'Interaction', namespace: 'streamrec', fields: [{ name: 'ITEM_ID', type: 'string' }] });
    const wrongTypes = parseSchema({
      type: 'record',
      name: 'Interaction',
      namespace: 'streamrec',
      fields: [
        { name: 'USER_ID', type: 'string' },
        { name: 'ITEM_ID', type: 'long' },
        { name: 'TIMESTAMP', type: 'string' },
      ],
    });
    const invalidUtf8 = codecs.Interaction.encode(event('k5', 'i5'));
    invalidUtf8[2] = 0xff; // inside USER_ID "k5"
    const bad = [
      { key: 'k1', value: Buffer.from('\u0000\u0001 definitely not avro'), code: 'RECORD_MALFORMED' },
      { key: 'k2', value: oldWriter.toBuffer({ ITEM_ID: 'i2' }), code: 'RECORD_MALFORMED' }, // no USER_ID
      { key: 'k3', value: wrongTypes.toBuffer({ USER_ID: 'k3', ITEM_ID: 7, TIMESTAMP: 'noon' }), code: 'RECORD_MALFORMED' },
      { key: 'k4', value: codecs.Interaction.encode(event('k4', 'i4', now + 365 * 86_400_000)), code: 'RECORD_INVALID', field: 'TIMESTAMP' },
      { key: 'k5', value: invalidUtf8, code: 'RECORD_MALFORMED' },
      { key: 'k6', value: codecs.Interaction.encode({ ...event('k6', 'i6'), CONTEXT: { NOTE: 'x'.repeat(5000) } }), code: 'RECORD_TOO_LARGE', field: '(value)' },
      { key: 'someone-else', value: codecs.Interaction.encode(event('k7', 'i7')), code: 'RECORD_INVALID', field: '(key)' },
      // Epoch seconds where milliseconds belong: January 1970.
      { key: 'k8', value: codecs.Interaction.encode(event('k8', 'i8', Math.floor(now / 1000))), code: 'RECORD_INVALID', field: 'TIMESTAMP', reason: /looks like epoch seconds/ },
      // A Confluent Schema Registry framed record on this plain group.
      { key: 'k9', value: Buffer.concat([Buffer.from([0, 0, 0, 0, 42]), codecs.Interaction.encode(event('k9', 'i9'))]), code: 'RECORD_MALFORMED', field: '(framing)', reason: /schema id 42.*avro\.wireFormat/ },
    ];
    const goodEvents = Array.from({ length: 40 }, (_, i) => event(`g${i % 9}`, `i${i % 13}`, now - 100_000 + i));
    const messages: { key: string; value: Buffer }[] = [];
    goodEvents.forEach((e, i) => {
      messages.push({ key: e.USER_ID, value: codecs.Interaction.encode(e) });
      const b = bad[i];
      if (b) messages.push({ key: b.key, value: b.value });
    });
    await waitCaughtUp(admin, group); // the HTTP test's events are applied first
    const before = (await ready()).detail;
    await producer.send({ topic: topicName(group, 'interactions'), messages });
    // Items: one bad, one good, one deleted.
    await producer.send({
      topic: topicName(group, 'items'),
      messages: [
        { key: 'item-a', value: codecs.Item.encode({ ITEM_ID: 'item-a', CREATION_TIMESTAMP: null, METADATA: { GENRE: 'jazz' } }) },
        { key: 'item-b', value: Buffer.from('nope') },
        { key: 'item-c', value: codecs.Item.encode({ ITEM_ID: 'item-c', CREATION_TIMESTAMP: null, METADATA: {} }) },
        { key: 'item-c', value: null },
      ],
    });
    await waitCaughtUp(admin, group);

    const letters = await readTopic(kafka, topicName(group, 'dead-letter'), bad.length + 1);
    expect(letters).toHaveLength(bad.length + 1);
    const byKey = new Map(letters.map((l) => [l.key?.toString(), l]));
    for (const b of bad) {
      const l = byKey.get(b.key);
      expect(l, b.key).toBeDefined();
      expect(l!.headers!['error-code']!.toString(), b.key).toBe(b.code);
      if (b.field) expect(l!.headers!['error-field']!.toString(), b.key).toBe(b.field);
      expect(l!.headers!['source-topic']!.toString()).toBe(topicName(group, 'interactions'));
      expect(l!.headers!['error-reason']!.toString().length).toBeGreaterThan(10);
      if (b.reason) expect(l!.headers!['error-reason']!.toString(), b.key).toMatch(b.reason);
      const envelope = codecs.DeadLetter.decode(l!.value!);
      expect(envelope.VALUE!.equals(b.value), `${b.key}: raw bytes kept`).toBe(true);
      expect(envelope.SOURCE_OFFSET).toBe(l!.headers!['source-offset']!.toString());
    }
    expect(byKey.get('item-b')!.headers!['source-topic']!.toString()).toBe(topicName(group, 'items'));

    const after = (await ready()).detail;
    expect(after.applied - before.applied).toBe(goodEvents.length);
    expect(after.deadLetters - before.deadLetters).toBe(bad.length);
    await new Promise((r) => setTimeout(r, 1000));
    const meta = (await ready()).detail.metadata;
    expect(meta).toMatchObject({ items: 2, users: 0, deleted: 1, deadLetters: 1, consumer: { state: 'running', restarts: 0 } });
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});
