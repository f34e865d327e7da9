/**
 * The inspection routes (src/api/inspect-routes.ts) over fake sources: a user's stored events
 * newest first and bounded by `limit`, bad `limit`s refused naming the field, an unknown user 404,
 * a user owned by another instance forwarded there, and the dead letters and instances passed on.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp, type GroupServices } from '../../src/api/app.js';
import { forwarder, type Owner } from '../../src/api/forward.js';
import { addActivity, deadLetterEntry, peerActivity, sharedFor, sumItemCounts, userEvents, type DeadLetterTail, type Instances, type ItemActivity } from '../../src/api/inspect.js';
import type { GroupInspector } from '../../src/api/types.js';
import { loadConfig } from '../../src/config/index.js';
import { createCodecs } from '../../src/serde/avro.js';
import type { UserState } from '../../src/state/model.js';

const ROOT = 'root-key-for-the-inspect-tests';
const GROUP = 'shop';
const SELF = 'http://127.0.0.1:7';
const apps: FastifyInstance[] = [];
const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

const state: Pick<UserState, 'total' | 'events'> = {
  total: 40,
  events: Array.from({ length: 30 }, (_, i) => ({ item: `i${i}`, ts: 1_000 + i, type: i % 2 ? 'buy' : 'click', value: i % 3 ? null : i, session: Math.floor(i / 10) })),
};
const tail: DeadLetterTail = {
  topic: `${GROUP}.dead-letter`,
  kept: 3,
  deadLetters: [deadLetterEntry(1, 7, { SOURCE: `${GROUP}.interactions`, SOURCE_PARTITION: 0, SOURCE_OFFSET: '12', KEY: Buffer.from('u9'), VALUE: Buffer.from('xyz'), ERROR_CODE: 'RECORD_UNDECODABLE', FIELD: null, REASON: 'not Avro', FAILED_AT: 5 })],
};
const activity: ItemActivity = { users: 3, events: 5, trending: 1.5, lastTimestamp: 900, partitions: 2 };
const instances: Instances = { consumerGroup: `streamrec.${GROUP}.processor`, state: 'Stable', protocol: 'streamrec-v3', instances: [{ memberId: 'm1', clientId: 'c', host: '/127.0.0.1', url: SELF, self: true, partitions: [0, 1], standby: [] }] };

async function app(o: { owner?: () => Owner; inspect?: GroupInspector | null } = {}): Promise<{ app: FastifyInstance; asked: string[] }> {
  const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT } });
  const asked: string[] = [];
  const inspect: GroupInspector = {
    userState: async (userId) => {
      asked.push(userId);
      return userId === 'u1' ? state : undefined;
    },
    deadLetters: async () => tail,
    instances: async () => instances,
    itemActivity: async (itemId, scope) => {
      asked.push(`${itemId}:${scope}`);
      return itemId === 'i1' || itemId === 'only-events' ? activity : undefined;
    },
  };
  const query = { itemMetadata: async (ids: readonly string[]) => new Map(ids.filter((i) => i === 'i1' || i === 'only-record').map((i) => [i, { ITEM_ID: i, CREATION_TIMESTAMP: 77, METADATA: { GENRE: 'jazz' } }])) };
  const services = { query, ...(o.inspect === null ? {} : { inspect: o.inspect ?? inspect }) } as unknown as GroupServices;
  const a = await buildApp({
    config,
    codecs: createCodecs(config),
    sink: { send: async () => undefined },
    groups: { has: async (g) => g === GROUP },
    status: () => ({ state: 'running', ready: true }),
    logger: false,
    served: { names: () => [GROUP], get: (g) => (g === GROUP ? services : undefined) },
    forward: forwarder({ owner: o.owner ?? (() => ({ self: true, url: SELF })), selfUrl: () => SELF, timeoutMs: 2000 }),
  });
  apps.push(a);
  return { app: a, asked };
}
const get = (a: FastifyInstance, url: string) => a.inject({ method: 'GET', url: `/v1/groups/${GROUP}${url}`, headers: { 'x-api-key': ROOT } });

describe("a user's stored events", () => {
  it('newest first, at most limit (default 25), with the totals', async () => {
    const { app: a } = await app();
    const all = await get(a, '/users/u1/events?limit=500');
    expect(all.statusCode, all.body).toBe(200);
    const body = all.json();
    expect(body).toMatchObject({ userId: 'u1', total: 40, stored: 30 });
    expect(body.events.map((e: { itemId: string }) => e.itemId)).toEqual(Array.from({ length: 30 }, (_, i) => `i${29 - i}`));
    expect(body.events[0]).toEqual({ itemId: 'i29', timestamp: 1029, eventType: 'buy', eventValue: null, session: 2 });
    expect(body.events[2]).toEqual({ itemId: 'i27', timestamp: 1027, eventType: 'buy', eventValue: 27, session: 2 });
    expect((await get(a, '/users/u1/events')).json().events).toHaveLength(25);
    expect((await get(a, '/users/u1/events?limit=3')).json().events.map((e: { itemId: string }) => e.itemId)).toEqual(['i29', 'i28', 'i27']);
  });

  it('refuses a bad limit naming the field, and answers 404 USER_NOT_FOUND for a user without events', async () => {
    const { app: a } = await app();
    for (const bad of ['0', '501', 'abc', '2.5']) {
      const res = await get(a, `/users/u1/events?limit=${bad}`);
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().field, res.body).toMatch(/limit/);
    }
    const none = await get(a, '/users/nobody/events');
    expect(none.statusCode).toBe(404);
    expect(none.json()).toMatchObject({ code: 'USER_NOT_FOUND', field: 'userId' });
  });

  it("is forwarded to the owner of the user's partition, whose answer is passed back", async () => {
    const seen: string[] = [];
    const owner = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['x-api-key']}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ userId: 'u2', total: 1, stored: 1, events: [{ itemId: 'far', timestamp: 1, eventType: 'click', eventValue: null, session: 0 }] }));
    });
    servers.push(owner);
    await new Promise<void>((r) => owner.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(owner.address() as AddressInfo).port}`;
    const { app: a, asked } = await app({ owner: () => ({ self: false, url }) });
    const res = await get(a, '/users/u2/events?limit=5');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().events[0].itemId).toBe('far');
    expect(res.headers['x-streamrec-answered-by']).toBe(url);
    expect(seen).toEqual([`GET /v1/groups/${GROUP}/users/u2/events?limit=5 ${ROOT}`]);
    expect(asked).toEqual([]);
  });
});

describe('dead letters and instances', () => {
  it('are passed on as the sources give them; a bad limit is refused', async () => {
    const { app: a } = await app();
    const dl = await get(a, '/dead-letters?limit=5');
    expect(dl.statusCode, dl.body).toBe(200);
    expect(dl.json()).toEqual({ ...tail, deadLetters: [{ partition: 1, offset: 7, failedAt: 5, source: `${GROUP}.interactions`, sourcePartition: 0, sourceOffset: '12', errorCode: 'RECORD_UNDECODABLE', field: null, reason: 'not Avro', key: 'u9', valueBytes: 3 }] });
    expect((await get(a, '/dead-letters?limit=101')).statusCode).toBe(400);
    const ins = await get(a, '/instances');
    expect(ins.statusCode, ins.body).toBe(200);
    expect(ins.json()).toEqual(instances);
  });

  it('without an inspection source (no Kafka): 404 ROUTE_NOT_FOUND', async () => {
    const { app: a } = await app({ inspect: null });
    for (const path of ['/users/u1/events', '/dead-letters', '/instances', '/items/i1']) {
      const res = await get(a, path);
      expect(res.statusCode, path).toBe(404);
      expect(res.json().code).toBe('ROUTE_NOT_FOUND');
    }
  });
});

describe('an item', () => {
  it('its record and its counters; a record alone or counters alone; neither: 404 ITEM_NOT_FOUND; scope=local asks only this instance', async () => {
    const { app: a, asked } = await app();
    const res = await get(a, '/items/i1');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ itemId: 'i1', creationTimestamp: 77, properties: { GENRE: 'jazz' }, scope: 'group', activity });
    expect((await get(a, '/items/only-record')).json()).toMatchObject({ properties: { GENRE: 'jazz' }, activity: { users: 0, events: 0, trending: 0, lastTimestamp: null, partitions: 0 } });
    expect((await get(a, '/items/only-events')).json()).toMatchObject({ properties: null, creationTimestamp: null, activity });
    const none = await get(a, '/items/nothing');
    expect(none.statusCode).toBe(404);
    expect(none.json()).toMatchObject({ code: 'ITEM_NOT_FOUND', field: 'itemId' });
    expect((await get(a, '/items/only-record?scope=local')).statusCode).toBe(404);
    expect((await get(a, '/items/i1?scope=everywhere')).statusCode).toBe(400);
    expect(asked).toContain('i1:group');
    expect(asked).toContain('only-record:local');
  });

  it('sums counters over partitions, the trending score decayed to now', () => {
    const s = sumItemCounts(
      [
        { users: 2, events: 3, trend: 4, trendTs: 1000, lastTs: 1000 },
        { users: 1, events: 1, trend: 2, trendTs: 3000, lastTs: 3000 },
      ],
      3000,
      2000,
    );
    expect(s).toEqual({ users: 3, events: 4, trending: 4 / 2 + 2, lastTimestamp: 3000, partitions: 2 });
    expect(addActivity(s, { users: 1, events: 1, trending: 1, lastTimestamp: null, partitions: 1 })).toEqual({ users: 4, events: 5, trending: 5, lastTimestamp: 3000, partitions: 3 });
  });
});

describe("an item's counters on the other instances", () => {
  it('asks each scope=local with the root key; a 404 adds nothing; one that fails is left out and logged', async () => {
    const seen: string[] = [];
    const server = (status: number, body: unknown) => {
      const s = createServer((req, res) => {
        seen.push(`${req.url} ${req.headers['x-api-key']} ${req.headers['x-streamrec-forwarded']}`);
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
      servers.push(s);
      return new Promise<string>((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
    };
    const peers = [await server(200, { activity }), await server(404, { code: 'ITEM_NOT_FOUND' }), await server(500, { code: 'INTERNAL' })];
    const warned: unknown[] = [];
    const got = await peerActivity({ group: GROUP, itemId: 'i 1', rootKey: ROOT, peers, log: { warn: (o: unknown) => warned.push(o) } });
    expect(got).toEqual([activity]);
    expect(seen).toEqual(peers.map(() => `/v1/groups/${GROUP}/items/i%201?scope=local ${ROOT} 1`));
    expect(warned).toHaveLength(1);
    expect(await peerActivity({ group: GROUP, itemId: 'i1', rootKey: '', peers, log: { warn: () => undefined } })).toEqual([]);
  });
});

describe('helpers', () => {
  it('userEvents keeps the newest', () => {
    expect(userEvents('u', state, 2).events.map((e) => e.itemId)).toEqual(['i29', 'i28']);
  });

  it('sharedFor reads once per period per argument, and again after a failure', async () => {
    let reads = 0;
    let fail = false;
    const read = sharedFor(60_000, async (n: number) => {
      reads++;
      if (fail) throw new Error('down');
      return n * 2;
    });
    expect(await Promise.all([read(1), read(1), read(2)])).toEqual([2, 2, 4]);
    expect(reads).toBe(2);
    fail = true;
    await expect(read(3)).rejects.toThrow('down');
    fail = false;
    expect(await read(3)).toBe(6);
    expect(reads).toBe(4);
  });
});
