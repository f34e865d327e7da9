/**
 * Serving against a real broker and real RocksDB, over real sockets: a version (sims) trained by
 * the service; an event posted over HTTP changes the user's next answer and the recommendations
 * topic carries the new list within a second; API keys over the wire; a second instance of the
 * group gives the same answers (queries for the other's users are forwarded; popular items are
 * summed over both).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions, syntheticItems } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Consumer, Producer } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, type Recommendation } from '../../src/serde/avro.js';
import { startService, type Service } from '../../src/stream/service.js';
import { silentLogger } from '../../src/util/log.js';
import { EventSource } from 'eventsource';
import type { LiveList } from '../../src/api/live-routes.js';
import { freshGroup, rootHeaders, serviceEnv, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('serve');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-serve-'));
const envOf = (n: number) =>
  serviceEnv(brokers, join(dir, `state-${n}`), {
    // The first instance trains; the second follows the versions it announces (one shared registry).
    STREAMREC_TRAINING_RECIPE: n === 1 ? 'sims' : 'none',
    STREAMREC_TRAINING_SPLIT: 'loo',
    STREAMREC_TRAINING_VERSIONS_DIR: join(dir, 'versions'),
    STREAMREC_INSTANCE_ID: `serve-${n}`,
    STREAMREC_RECOMMENDATIONS_NUM_RESULTS: '10',
  });
const config = loadConfig({ env: envOf(1) });
const kafka = createKafka(config, [brokers], '-serving-test');
const codecs = createCodecs(config);
let producer: Producer;
let listener: Consumer;
const published: { at: number; key: string; value: Recommendation }[] = [];
let service: Service;
let second: Service | undefined;
const NOW = Date.now();

interface List {
  recommendationId: string;
  version: string;
  itemList: { itemId: string; score?: number; reason?: string }[];
}

const get = async (base: string, path: string, headers = rootHeaders()): Promise<{ status: number; body: List & { code?: string }; answeredBy: string | null }> => {
  const res = await fetch(`${base}${path}`, { headers });
  return { status: res.status, body: (await res.json()) as List & { code?: string }, answeredBy: res.headers.get('x-streamrec-answered-by') };
};
const post = (base: string, path: string, body: unknown, headers = rootHeaders()) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });

beforeAll(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  await admin.disconnect();
  producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const events = [...syntheticInteractions({ seed: 5, users: 200, items: 300, events: 6000, start: NOW - 6_000_000 })];
  await producer.send({ topic: topicName(group, 'items'), messages: [...syntheticItems({ seed: 5, items: 300 })].map((i) => ({ key: i.ITEM_ID, value: codecs.Item.encode(i) })) });
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  listener = kafka.consumer({ groupId: `${group}-listener` });
  await listener.connect();
  await listener.subscribe({ topics: [topicName(group, 'recommendations')], fromBeginning: true });
  await listener.run({
    eachMessage: async ({ message }) => {
      published.push({ at: Date.now(), key: message.key!.toString(), value: codecs.Recommendation.decode(message.value!) });
    },
  });
  service = await startService({ config, group, brokers: [brokers], log: silentLogger, apiLogger: false });
  await until('all events applied', () => service.processor.status().applied >= 6000, 120_000);
  await until('a version served', () => service.serving.current !== undefined, 120_000);
}, 240_000);

afterAll(async () => {
  await second?.stop();
  await service?.stop();
  await listener?.disconnect();
  await producer?.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe('serving', () => {
  it('an event changes the next answer, and the recommendations topic carries the new list within a second', async () => {
    const user = 'u17';
    const before = await get(service.url, `/v1/groups/${group}/recommendations?userId=${user}&numResults=10`);
    expect(before.status).toBe(200);
    // An item whose closest related item is not in the user's list: clicking it should bring that one in.
    const inList = new Set(before.body.itemList.map((s) => s.itemId));
    let item: string | undefined;
    for (let k = 40; k < 140 && item === undefined; k++) {
      const related = await get(service.url, `/v1/groups/${group}/related-items?itemId=i${k}&numResults=3`);
      if (related.status === 200 && related.body.itemList[0]?.reason === undefined && !inList.has(related.body.itemList[0]!.itemId) && !inList.has(`i${k}`)) item = `i${k}`;
    }
    expect(item).toBeDefined();
    const sentAt = Date.now();
    const res = await post(service.url, `/v1/groups/${group}/events`, { userId: user, eventList: [{ eventType: 'click', itemId: item, sentAt }] });
    expect(res.status).toBe(202);
    const posted = Date.now();
    await until('the fresh list on the topic', () => published.some((p) => p.key === user && p.value.EVENT_TIMESTAMP === sentAt), 10_000);
    const fresh = published.find((p) => p.key === user && p.value.EVENT_TIMESTAMP === sentAt)!;
    expect(fresh.at - posted, 'ms from the 202 to the list on the topic').toBeLessThan(1000);
    expect(fresh.value.USER_ID).toBe(user);
    expect(fresh.value.MODEL_VERSION).toBe(service.serving.current!.version);
    expect(fresh.value.EMIT_TIMESTAMP).toBeGreaterThanOrEqual(sentAt);
    const after = await get(service.url, `/v1/groups/${group}/recommendations?userId=${user}&numResults=10`);
    expect(after.body.itemList.map((s) => s.itemId)).not.toEqual(before.body.itemList.map((s) => s.itemId));
    // A downstream service sees the list the API gives.
    expect(fresh.value.ITEMS.map((i) => i.ITEM_ID)).toEqual(after.body.itemList.map((s) => s.itemId));
  }, 60_000);

  it('server-sent events (an EventSource client this project did not write): the current list, then the list of a POSTed event within a second', async () => {
    const user = 'u23';
    const received: { at: number; event: string; data: LiveList }[] = [];
    const es = new EventSource(`${service.url}/v1/groups/${group}/recommendations/stream?userId=${user}&numResults=10`, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...rootHeaders() } }),
    });
    es.addEventListener('recommendations', (e) => received.push({ at: Date.now(), event: e.type, data: JSON.parse(e.data) as LiveList }));
    try {
      await until('the current list on the stream', () => received.length > 0, 15_000);
      const first = received[0]!.data;
      expect(first).toMatchObject({ userId: user, source: 'current', version: service.serving.current!.version });
      const direct = await get(service.url, `/v1/groups/${group}/recommendations?userId=${user}&numResults=10`);
      expect(first.itemList.map((i) => i.itemId)).toEqual(direct.body.itemList.map((i) => i.itemId));
      const sentAt = Date.now();
      const res = await post(service.url, `/v1/groups/${group}/events`, { userId: user, eventList: [{ eventType: 'click', itemId: 'i77', sentAt }] });
      expect(res.status).toBe(202);
      const posted = Date.now();
      await until('the fresh list on the stream', () => received.some((r) => r.data.eventTimestamp === sentAt), 10_000);
      const fresh = received.find((r) => r.data.eventTimestamp === sentAt)!;
      expect(fresh.at - posted, 'ms from the 202 to the list on the stream').toBeLessThan(1000);
      expect(fresh.data).toMatchObject({ userId: user, source: 'published' });
      // The same list the topic carries.
      const onTopic = published.find((p) => p.key === user && p.value.EVENT_TIMESTAMP === sentAt)!;
      expect(fresh.data.itemList.map((i) => i.itemId)).toEqual(onTopic.value.ITEMS.map((i) => i.ITEM_ID));
      expect(fresh.data.recommendationId).toBe(onTopic.value.RECOMMENDATION_ID);
      // Another user's lists are not on this stream.
      expect(received.every((r) => r.data.userId === user)).toBe(true);
    } finally {
      es.close();
    }
  }, 60_000);

  it('the event-rate stream counts the events POSTed meanwhile; without Accept: text/event-stream the routes answer JSON', async () => {
    const rates: { eventsPerSecond: number; total: number }[] = [];
    const es = new EventSource(`${service.url}/v1/groups/${group}/events/stream`, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...rootHeaders() } }),
    });
    es.addEventListener('rate', (e) => rates.push(JSON.parse(e.data) as { eventsPerSecond: number; total: number }));
    try {
      await until('a first rate', () => rates.length > 0, 10_000);
      const before = rates.at(-1)!.total;
      const eventList = Array.from({ length: 10 }, (_, i) => ({ eventType: 'click', itemId: `i${i}`, sentAt: Date.now() }));
      for (const u of ['u30', 'u31', 'u32']) expect((await post(service.url, `/v1/groups/${group}/events`, { userId: u, eventList })).status).toBe(202);
      await until('the 30 events counted', () => rates.at(-1)!.total >= before + 30, 10_000);
      expect(rates.some((r) => r.eventsPerSecond >= 10)).toBe(true);
    } finally {
      es.close();
    }
    // Plain HTTP: one JSON answer, and the usual 4xx with a code.
    const plain = await fetch(`${service.url}/v1/groups/${group}/recommendations/stream?userId=u17&numResults=5`, { headers: rootHeaders() });
    expect(plain.status).toBe(200);
    expect(((await plain.json()) as LiveList).itemList).toHaveLength(5);
    const missing = await fetch(`${service.url}/v1/groups/${group}/recommendations/stream`, { headers: rootHeaders({ accept: 'text/event-stream' }) });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { code: string }).code).toBe('REQUEST_INVALID');
    const noKey = await fetch(`${service.url}/v1/groups/${group}/recommendations/stream?userId=u17`, { headers: { accept: 'text/event-stream' } });
    expect(noKey.status).toBe(401);
  }, 60_000);

  it('keys over the wire: a query key of this group answers, none is 401, and it cannot create keys', async () => {
    const created = await post(service.url, `/v1/groups/${group}/api-keys`, { name: 'reader', scopes: ['query'] });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    expect((await get(service.url, `/v1/groups/${group}/recommendations?userId=u3`, { 'x-api-key': key })).status).toBe(200);
    expect((await get(service.url, `/v1/groups/${group}/recommendations?userId=u3`, {})).body.code).toBe('UNAUTHENTICATED');
    expect((await post(service.url, `/v1/groups/${group}/api-keys`, { name: 'x', scopes: ['admin'] }, { 'x-api-key': key })).status).toBe(403);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/streamrec_http_request_duration_seconds_bucket\{[^}]*route="\/v1\/groups\/:group\/recommendations"/);
  });

  it('bad requests over the wire get a 4xx with a code, and the service keeps answering', async () => {
    const base = `${service.url}/v1/groups/${group}`;
    const code = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { code: string }).code });
    expect(await code(await fetch(`${base}/recommendations?userId=nobody-at-all`, { headers: rootHeaders() }))).toEqual({ status: 404, code: 'USER_NOT_FOUND' });
    expect(await code(await fetch(`${base}/recommendations?userId=u3&filter=nope`, { headers: rootHeaders() }))).toEqual({ status: 404, code: 'FILTER_NOT_FOUND' });
    for (const n of [0, 501]) expect(await code(await fetch(`${base}/recommendations?userId=u3&numResults=${n}`, { headers: rootHeaders() }))).toEqual({ status: 400, code: 'REQUEST_INVALID' });
    const json = rootHeaders({ 'content-type': 'application/json' });
    expect(await code(await fetch(`${base}/personalized-ranking`, { method: 'POST', headers: json, body: '{"userId": "u3", "inputList": [' }))).toEqual({ status: 400, code: 'REQUEST_MALFORMED' });
    const huge = JSON.stringify({ userId: 'u3', inputList: Array.from({ length: 150_000 }, (_, i) => `item-${i}`) });
    expect(huge.length).toBeGreaterThan(config.api.bodyLimitBytes);
    expect(await code(await fetch(`${base}/personalized-ranking`, { method: 'POST', headers: json, body: huge }))).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
    expect((await get(service.url, `/v1/groups/${group}/recommendations?userId=u3`)).status).toBe(200);
  });

  it('a second instance answers the same for every user; queries for the other instance\'s users are forwarded', async () => {
    second = await startService({ config: loadConfig({ env: envOf(2) }), group, brokers: [brokers], log: silentLogger, apiLogger: false });
    const users = Array.from({ length: 24 }, (_, k) => `u${k * 7}`);
    const both = [service, second];
    await until(
      'both instances own partitions and know every owner',
      () =>
        both.every((s) => s.processor.status().partitions.length > 0 && s.serving.current !== undefined) &&
        users.every((u) => both.every((s) => s.processor.owner(u).url !== undefined) && both.filter((s) => s.processor.owner(u).self).length === 1),
      120_000,
    );
    let forwarded = 0;
    for (const u of users) {
      const a = await get(service.url, `/v1/groups/${group}/recommendations?userId=${u}&numResults=10`);
      const b = await get(second.url, `/v1/groups/${group}/recommendations?userId=${u}&numResults=10`);
      expect(a.status, `${u}: ${JSON.stringify(a.body)}`).toBe(200);
      expect(b.status, `${u}: ${JSON.stringify(b.body)}`).toBe(200);
      expect(b.body.itemList, u).toEqual(a.body.itemList);
      forwarded += [a, b].filter((r) => r.answeredBy !== null).length;
    }
    // Each user is local on one instance and forwarded from the other.
    expect(forwarded).toBe(users.length);
    // Popular over the group: the same from both, and not what either counts in its own partitions.
    const popular = await Promise.all(both.map((s) => get(s.url, `/v1/groups/${group}/popular?numResults=20`)));
    const local = await Promise.all(both.map((s) => get(s.url, `/v1/groups/${group}/popular?numResults=20&scope=local`)));
    expect(popular[0]!.body.itemList).toEqual(popular[1]!.body.itemList);
    expect(local[0]!.body.itemList).not.toEqual(local[1]!.body.itemList);
    const top = (l: List) => l.itemList[0]!.score!;
    expect(top(popular[0]!.body)).toBeGreaterThan(Math.max(top(local[0]!.body), top(local[1]!.body)));
  }, 240_000);
});
