/**
 * The inspection routes against the real service (src/api/inspect-routes.ts): a user's stored
 * events are the events produced for the user, newest first; a bad record produced to the
 * interactions topic shows in the dead letters with its reason, and reading them leaves no consumer
 * group behind; the single instance owns every input partition; a `query` key cannot read the
 * admin routes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, type Interaction } from '../../src/serde/avro.js';
import { startService, type Service } from '../../src/stream/service.js';
import { silentLogger } from '../../src/util/log.js';
import { freshGroup, kafkaClients, rootHeaders, serviceEnv, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('inspect');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-inspect-'));
const config = loadConfig({ env: serviceEnv(brokers, join(dir, 'state'), { STREAMREC_INSTANCE_ID: 'inspect-1' }) });
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(createKafka(config, [brokers], '-inspect-test'));
const events: Interaction[] = [...syntheticInteractions({ seed: 3, users: 20, items: 50, events: 400, start: Date.now() - 4_000_000 })];
let service: Service;

const get = async (path: string, key?: string) => fetch(`${service.url}/v1/groups/${group}${path}`, { headers: key ? { 'x-api-key': key } : rootHeaders() });

beforeAll(async () => {
  await applyTopics(admin, group, config);
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  service = await startService({ config, group, brokers: [brokers], log: silentLogger, apiLogger: false });
  await until('all events applied', () => service.processor.status().applied >= events.length, 60_000);
}, 120_000);

afterAll(async () => {
  await service?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('inspection routes', () => {
  it("a user's stored events are the user's events, newest first", async () => {
    const user = events[0]!.USER_ID;
    const mine = events.filter((e) => e.USER_ID === user);
    const res = await get(`/users/${user}/events?limit=500`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { total: number; stored: number; events: { itemId: string; timestamp: number; eventType: string }[] };
    expect(body.total).toBe(mine.length);
    const kept = mine.slice(-body.stored).reverse();
    expect(body.events.map((e) => [e.itemId, e.timestamp, e.eventType])).toEqual(kept.map((e) => [e.ITEM_ID, e.TIMESTAMP, e.EVENT_TYPE]));
    const three = (await (await get(`/users/${user}/events?limit=3`)).json()) as typeof body;
    expect(three.events).toEqual(body.events.slice(0, 3));
    expect((await get('/users/no-such-user/events')).status).toBe(404);
  });

  it("an item's counters are its events and distinct users; a fresh one has none", async () => {
    const item = events[0]!.ITEM_ID;
    const mine = events.filter((e) => e.ITEM_ID === item);
    const res = await get(`/items/${item}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { scope: string; properties: unknown; activity: { users: number; events: number; trending: number; lastTimestamp: number } };
    expect(body.scope).toBe('group');
    expect(body.properties).toBeNull();
    expect(body.activity).toMatchObject({ users: new Set(mine.map((e) => e.USER_ID)).size, events: mine.length, lastTimestamp: Math.max(...mine.map((e) => e.TIMESTAMP)) });
    expect(body.activity.trending).toBeGreaterThan(0);
    expect((await get('/items/never-seen')).status).toBe(404);
  });

  it('a bad record in the interactions topic shows in the dead letters with its reason; no consumer group is left', async () => {
    const before = service.processor.status().deadLetters;
    await producer.send({ topic: topicName(group, 'interactions'), messages: [{ key: 'bad-user', value: Buffer.from('this is not Avro') }] });
    await until('the dead letter written', () => service.processor.status().deadLetters > before, 30_000);
    let body: { topic: string; kept: number; deadLetters: { key: string | null; reason: string; errorCode: string; source: string; valueBytes: number }[] } | undefined;
    await until(
      'the dead letter read',
      async () => {
        body = (await (await get('/dead-letters?limit=5')).json()) as typeof body;
        return body!.deadLetters.some((d) => d.key === 'bad-user');
      },
      20_000,
    );
    expect(body!.topic).toBe(topicName(group, 'dead-letter'));
    expect(body!.kept).toBeGreaterThanOrEqual(1);
    const d = body!.deadLetters.find((x) => x.key === 'bad-user')!;
    expect(d.source).toBe(topicName(group, 'interactions'));
    expect(d.reason.length).toBeGreaterThan(0);
    expect(d.errorCode).toMatch(/^[A-Z_]+$/);
    expect(d.valueBytes).toBe('this is not Avro'.length);
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
    expect(groups.filter((g) => g.startsWith(`streamrec.${group}.dead-letters`))).toEqual([]);
    expect((await get('/dead-letters?limit=0')).status).toBe(400);
  });

  it('the instances: this one owns every input partition; a query key may not read them', async () => {
    const res = await get('/instances');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { state: string; instances: { url: string; self: boolean; partitions: number[] }[] };
    expect(body.state).toBe('Stable');
    expect(body.instances).toHaveLength(1);
    expect(body.instances[0]).toMatchObject({ url: service.url, self: true, partitions: Array.from({ length: config.topics.partitions }, (_, i) => i) });

    const created = await fetch(`${service.url}/v1/groups/${group}/api-keys`, { method: 'POST', headers: rootHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ name: 'reader', scopes: ['query'] }) });
    const { key } = (await created.json()) as { key: string };
    await until('the key known', async () => (await get('/popular', key)).status === 200, 10_000);
    expect((await get('/instances', key)).status).toBe(403);
    expect((await get('/dead-letters', key)).status).toBe(403);
    expect((await get(`/users/${events[0]!.USER_ID}/events`, key)).status).toBe(200);
  });
});
