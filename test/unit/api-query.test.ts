/**
 * The query and resource routes through app.inject, with real models (sims trained on seeded
 * synthetic data), the real QueryService, filters and API keys; in-memory doubles only where the
 * service would read Kafka or RocksDB (user state, item records, item counters, resources topic).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type GroupServices, type RecordSink, type SinkMessage } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions, syntheticItems } from '../../src/data/synthetic.js';
import { sims } from '../../src/recipes/sims.js';
import { createCodecs, type Interaction, type Item } from '../../src/serde/avro.js';
import { codecs as stateCodecs, type ItemCounts, type UserState } from '../../src/state/model.js';
import { QueryService } from '../../src/serving/query.js';
import { Resources } from '../../src/stream/resources.js';
import { ServingModel } from '../../src/serving/served-model.js';
import type { ServingRecord } from '../../src/stream/versions.js';
import type { VersionInfo } from '../../src/training/registry.js';
import { AppError } from '../../src/errors/index.js';

const ROOT = 'root-key-for-the-unit-tests';
const NOW = Date.UTC(2026, 5, 1);
const STACK_FRAME = /\bat (?:async )?(?:\S+ \()?(?:file:|node:|\/)\S*:\d+:\d+|"stack"|node_modules|\/src\/\S+\.ts/;

class MemorySink implements RecordSink {
  sent: { topic: string; messages: SinkMessage[] }[] = [];
  async send(topic: string, messages: SinkMessage[]): Promise<void> {
    this.sent.push({ topic, messages });
  }
}

/** One served group over fixed data: `users` users and `items` items of the synthetic generator. */
function group(seed: number) {
  const events: Interaction[] = [...syntheticInteractions({ seed, users: 60, items: 120, events: 3000, start: NOW - 3_000_000 })];
  const serving = new ServingModel();
  serving.swap({ version: `v-${seed}`, model: sims.train(events), excludeSeen: false });
  const users = new Map<string, UserState>();
  for (const e of events) {
    const u = users.get(e.USER_ID) ?? { lastTs: 0, sessionKey: null, session: 0, sessionStart: e.TIMESTAMP, total: 0, events: [], seen: [] };
    u.events.push({ item: e.ITEM_ID, ts: e.TIMESTAMP, type: e.EVENT_TYPE, value: null, session: 0 });
    if (!u.seen.includes(e.ITEM_ID)) u.seen.push(e.ITEM_ID);
    u.total++;
    u.lastTs = e.TIMESTAMP;
    users.set(e.USER_ID, u);
  }
  const counts = new Map<string, ItemCounts>();
  const distinct = new Map<string, Set<string>>();
  for (const e of events) {
    const c = counts.get(e.ITEM_ID) ?? { users: 0, events: 0, trend: 0, trendTs: NOW, lastTs: 0 };
    c.events++;
    // Trending differs from popular: only the last third of the events count.
    if (e.TIMESTAMP > NOW - 1_000_000) c.trend++;
    const d = distinct.get(e.ITEM_ID) ?? new Set();
    d.add(e.USER_ID);
    distinct.set(e.ITEM_ID, d);
    c.users = d.size;
    counts.set(e.ITEM_ID, c);
  }
  const catalogue = new Map<string, Item>([...syntheticItems({ seed, items: 120 })].map((i) => [i.ITEM_ID, i]));
  const resources = new Resources();
  const calls: string[] = [];
  let announced: ServingRecord | undefined = { version: `v-${seed}`, previous: ['v-old'], at: 'then', reason: 'test' };
  const metrics = { normalized_discounted_cumulative_gain_at_10: 0.3, hit_at_10: 0.5 };
  // A registry version of the configured solution (sims, no params) and one of another recipe.
  const versions = [
    { version: `v-${seed}`, recipe: 'sims', params: {} },
    { version: 'v-pop', recipe: 'popularity-count', params: {} },
    { version: 'v-hpo', recipe: 'sims', params: { recentItems: 5 }, hpo: { budgetMs: 60_000 } },
  ].map(({ version, recipe, params, hpo }) => ({
    version,
    recipe,
    createdAt: '2026-06-01T00:00:00.000Z',
    trainingMs: 12,
    data: { events: 3000, users: 60, items: 120, from: null, to: null },
    report: {
      split: 'loo',
      metrics,
      baseline: { recipe: 'popularity-count', metrics: { normalized_discounted_cumulative_gain_at_10: 0.1, hit_at_10: 0.2 } },
      ...(hpo ? { hpo: { method: 'random', budgetMs: 60_000, usedMs: 4000, stoppedBy: 'max-trials', trials: [{}, {}, {}], chosen: { trial: 2, params: { recentItems: 5, coOccurrenceWindow: 9 }, ndcg10: 0.31, hr10: 0.5 } } } : {}),
    },
    training: { recipe, params, seen: 'auto', data: { topic: 'x', events: 3000 }, ...(hpo ? { hpo } : {}) },
  })) as unknown as VersionInfo[];
  const services: GroupServices = {
    query: new QueryService({
      serving,
      userState: async (id) => {
        const user = users.get(id);
        return user ? { user, hrnn: undefined } : undefined;
      },
      forEachItemCount: async (fn) => counts.forEach((c, id) => fn(id, c)),
      items: async (ids) => new Map(ids.filter((id) => catalogue.has(id)).map((id) => [id, catalogue.get(id)!])),
      user: async (id) => (id === 'meta-only' ? { USER_ID: id, METADATA: { TIER: 'gold' } } : undefined),
      resources,
      trendingHalfLifeMs: 86_400_000,
      now: () => NOW,
    }),
    resources,
    deployment: {
      describe: () => ({ announced, loaded: announced?.version ?? null }),
      promote: async (version) => {
        calls.push(`promote ${version}`);
        announced = { version, previous: [announced!.version], at: 'now', reason: 'api' };
        return announced;
      },
      rollback: async () => {
        calls.push('rollback');
        announced = { version: announced!.previous.at(-1)!, previous: [], at: 'now', reason: 'rollback' };
        return announced;
      },
    },
    solutions: {
      configured: () => ({ recipe: 'sims', params: {} }),
      versions: () => versions,
      version: (v) => {
        const found = versions.find((x) => x.version === v);
        if (!found) throw new AppError('VERSION_NOT_FOUND', `no version ${v}`, { field: 'version' });
        return found;
      },
      train: (spec) => {
        calls.push(`train ${spec.recipe}${spec.hpo ? ` hpo ${JSON.stringify(spec.hpo)}` : ''}`);
        return true;
      },
      running: () => false,
    },
  };
  return { services, events, users, catalogue, counts, calls, resources };
}

const shop = group(3);
const other = group(4);
const sink = new MemorySink();
const groupNames = new Set(['other', 'shop']);
let app: FastifyInstance;

async function build(env: Record<string, string> = {}): Promise<FastifyInstance> {
  const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT, ...env } });
  return buildApp({
    config,
    codecs: createCodecs(config),
    sink,
    groups: { has: async (g) => groupNames.has(g) },
    status: () => ({ state: 'running', ready: true }),
    logger: false,
    served: { names: () => ['shop', 'other'], get: (g) => (g === 'shop' ? shop.services : g === 'other' ? other.services : undefined) },
    groupAdmin: {
      list: async () => [...groupNames].sort(),
      create: async (g) => {
        groupNames.add(g);
        return [{ topic: `${g}.interactions`, action: 'created', detail: '' }];
      },
      delete: async (g) => {
        groupNames.delete(g);
      },
    },
  });
}

beforeAll(async () => {
  app = await build();
});
afterAll(async () => {
  await app.close();
});

async function call(options: InjectOptions, key: string | undefined = ROOT): Promise<LightMyRequestResponse> {
  const res = await app.inject({ ...options, headers: { ...(options.headers ?? {}), ...(key ? { 'x-api-key': key } : {}) } });
  expect(res.body, 'no stack frames in a response').not.toMatch(STACK_FRAME);
  return res;
}
const get = (url: string, key?: string) => call({ method: 'GET', url }, key);
const post = (url: string, payload: unknown, key?: string) => call({ method: 'POST', url, payload: payload as InjectOptions['payload'] }, key);

interface List {
  recommendationId: string;
  version: string;
  itemList: { itemId: string; score?: number; reason?: string }[];
}

describe('GET/POST recommendations', () => {
  it('answers a known user from the served version, with a fresh recommendationId each time', async () => {
    const a = await get('/v1/groups/shop/recommendations?userId=u1&numResults=7');
    expect(a.statusCode, a.body).toBe(200);
    const first = a.json<List>();
    expect(first.version).toBe('v-3');
    expect(first.itemList).toHaveLength(7);
    const second = (await get('/v1/groups/shop/recommendations?userId=u1&numResults=7')).json<List>();
    expect(second.itemList).toEqual(first.itemList);
    expect(second.recommendationId).not.toBe(first.recommendationId);
    const posted = await post('/v1/groups/shop/recommendations', { userId: 'u1', numResults: 7 });
    expect(posted.json<List>().itemList).toEqual(first.itemList);
  });

  it('gives a user known only by metadata a list and an unknown user 404 USER_NOT_FOUND', async () => {
    expect((await get('/v1/groups/shop/recommendations?userId=meta-only&numResults=5')).json<List>().itemList).toHaveLength(5);
    const res = await get('/v1/groups/shop/recommendations?userId=nobody');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'USER_NOT_FOUND', field: 'userId' });
  });

  it('refuses numResults 0, 501 and non-numbers with 400 naming numResults', async () => {
    for (const n of ['0', '501', 'abc', '-1']) {
      const res = await get(`/v1/groups/shop/recommendations?userId=u1&numResults=${n}`);
      expect(res.statusCode, n).toBe(400);
      expect(res.json<{ code: string; field: string }>().field, n).toMatch(/numResults/);
    }
    expect((await post('/v1/groups/shop/recommendations', { userId: 'u1', numResults: 501 })).json()).toMatchObject({ code: 'REQUEST_INVALID', field: 'numResults' });
  });

  it('refuses malformed JSON, an unknown field and a huge body with a code; the app keeps answering', async () => {
    const bad = await call({ method: 'POST', url: '/v1/groups/shop/recommendations', payload: '{"userId": "u1",', headers: { 'content-type': 'application/json' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'REQUEST_MALFORMED' });
    expect((await post('/v1/groups/shop/recommendations', { userId: 'u1', nope: 1 })).json()).toMatchObject({ code: 'REQUEST_INVALID', field: 'nope' });
    const huge = await post('/v1/groups/shop/personalized-ranking', { userId: 'u1', inputList: Array.from({ length: 200_000 }, (_, i) => `item-${i}`) });
    expect(huge.statusCode).toBe(413);
    expect(huge.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect((await get('/v1/groups/shop/recommendations?userId=u1')).statusCode).toBe(200);
  });

  it('404 FILTER_NOT_FOUND for an unknown filter, 400 for filterValues that are not a JSON object of strings', async () => {
    expect((await get('/v1/groups/shop/recommendations?userId=u1&filter=nope')).json()).toMatchObject({ code: 'FILTER_NOT_FOUND', field: 'filter' });
    expect((await get('/v1/groups/shop/recommendations?userId=u1&filter=nope&filterValues=%7Bx')).json()).toMatchObject({ code: 'REQUEST_INVALID', field: 'filterValues' });
  });
});

describe('filters', () => {
  it('CreateFilter refuses a bad expression naming the position; a good one is listed with its params', async () => {
    const bad = await post('/v1/groups/shop/filters', { name: 'broken', filterExpression: 'INCLUDE ItemID WHERE Items.CATEGORY FOO ("books")' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ code: string; message: string }>()).toMatchObject({ code: 'FILTER_INVALID' });
    expect(bad.json<{ message: string }>().message).toMatch(/position 37/);
    const ok = await post('/v1/groups/shop/filters', { name: 'by-category', filterExpression: 'INCLUDE ItemID WHERE Items.CATEGORY IN ($CATS)' });
    expect(ok.statusCode, ok.body).toBe(201);
    expect(ok.json()).toMatchObject({ name: 'by-category', params: ['CATS'] });
    expect((await post('/v1/groups/shop/filters', { name: 'by-category', filterExpression: 'EXCLUDE ItemID WHERE Items.PRICE > 10' })).json()).toMatchObject({ code: 'RESOURCE_EXISTS' });
    const list = (await get('/v1/groups/shop/filters')).json<{ filters: { name: string }[] }>();
    expect(list.filters.map((f) => f.name)).toEqual(['by-category']);
  });

  it('a filter keeps only matching items and the list is refilled to numResults', async () => {
    const cats = encodeURIComponent(JSON.stringify({ CATS: '"books"' }));
    const res = await get(`/v1/groups/shop/recommendations?userId=u2&numResults=10&filter=by-category&filterValues=${cats}`);
    expect(res.statusCode, res.body).toBe(200);
    const list = res.json<List>().itemList;
    const books = [...shop.catalogue.values()].filter((i) => i.METADATA.CATEGORY === 'books').length;
    expect(books).toBeGreaterThanOrEqual(10);
    expect(list).toHaveLength(10);
    for (const s of list) expect(shop.catalogue.get(s.itemId)?.METADATA.CATEGORY).toBe('books');
    // Unfiltered, the user's top 10 are not all books: the filter did work.
    const plain = (await get('/v1/groups/shop/recommendations?userId=u2&numResults=10')).json<List>().itemList;
    expect(plain.some((s) => shop.catalogue.get(s.itemId)?.METADATA.CATEGORY !== 'books')).toBe(true);
  });

  it('missing filterValues are 400 FILTER_VALUES_INVALID; an interactions filter excludes the clicked items', async () => {
    expect((await get('/v1/groups/shop/recommendations?userId=u2&filter=by-category')).json()).toMatchObject({ code: 'FILTER_VALUES_INVALID', field: 'filterValues.CATS' });
    await post('/v1/groups/shop/filters', { name: 'not-clicked', filterExpression: 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")' });
    const user = [...shop.users.entries()].sort((a, b) => b[1].seen.length - a[1].seen.length)[0]!;
    const clicked = new Set(user[1].events.filter((e) => e.type === 'click').map((e) => e.item));
    const list = (await get(`/v1/groups/shop/recommendations?userId=${user[0]}&numResults=20&filter=not-clicked`)).json<List>().itemList;
    expect(list).toHaveLength(20);
    for (const s of list) expect(clicked.has(s.itemId)).toBe(false);
  });

  it('a promotion puts its share of filtered items at evenly spaced positions, marked promotion', async () => {
    const promotions = [{ name: 'books', percentPromotedItems: 30, filter: 'by-category', filterValues: { CATS: '"books"' } }];
    const res = await post('/v1/groups/shop/recommendations', { userId: 'u2', numResults: 10, promotions });
    expect(res.statusCode, res.body).toBe(200);
    const list = res.json<List>().itemList;
    expect(list).toHaveLength(10);
    expect(new Set(list.map((s) => s.itemId)).size).toBe(10);
    const at = list.flatMap((s, i) => (s.reason === 'promotion' ? [i] : []));
    expect(at).toEqual([0, 3, 6]);
    for (const i of at) expect(shop.catalogue.get(list[i]!.itemId)?.METADATA.CATEGORY).toBe('books');
    // The others are the unpromoted list in order, without the promoted items.
    const plain = (await get('/v1/groups/shop/recommendations?userId=u2&numResults=20')).json<List>().itemList.map((s) => s.itemId);
    const promoted = new Set(at.map((i) => list[i]!.itemId));
    expect(list.filter((s) => s.reason !== 'promotion').map((s) => s.itemId)).toEqual(plain.filter((id) => !promoted.has(id)).slice(0, 7));
    expect((await post('/v1/groups/shop/recommendations', { userId: 'u2', promotions: [{ ...promotions[0], filter: 'nope' }] })).json()).toMatchObject({
      code: 'FILTER_NOT_FOUND',
      field: 'promotions[0].filter',
    });
    expect((await post('/v1/groups/shop/recommendations', { userId: 'u2', promotions: [promotions[0], promotions[0]] })).statusCode).toBe(400);
  });

  it('DeleteFilter removes it; later queries get FILTER_NOT_FOUND', async () => {
    await post('/v1/groups/shop/filters', { name: 'gone', filterExpression: 'EXCLUDE ItemID WHERE Items.PRICE > 10' });
    expect((await call({ method: 'DELETE', url: '/v1/groups/shop/filters/gone' })).statusCode).toBe(204);
    expect((await get('/v1/groups/shop/recommendations?userId=u1&filter=gone')).json()).toMatchObject({ code: 'FILTER_NOT_FOUND' });
    expect((await call({ method: 'DELETE', url: '/v1/groups/shop/filters/gone' })).statusCode).toBe(404);
  });
});

describe('related items, personalized ranking, popular', () => {
  it('related-items: the item itself is not in its list; an unknown item is 404 ITEM_NOT_FOUND', async () => {
    const top = [...shop.counts.entries()].sort((a, b) => b[1].users - a[1].users)[0]![0];
    const res = await get(`/v1/groups/shop/related-items?itemId=${top}&numResults=8`);
    expect(res.statusCode, res.body).toBe(200);
    const list = res.json<List>().itemList;
    expect(list).toHaveLength(8);
    expect(list.map((s) => s.itemId)).not.toContain(top);
    expect((await get('/v1/groups/shop/related-items?itemId=no-such-item')).json()).toMatchObject({ code: 'ITEM_NOT_FOUND', field: 'itemId' });
  });

  it('personalized-ranking orders the input for the user and appends unknown items last, in input order', async () => {
    const input = ['zz-unknown-2', 'i5', 'i1', 'zz-unknown-1', 'i0', 'i30'];
    const res = await post('/v1/groups/shop/personalized-ranking', { userId: 'u1', inputList: input });
    expect(res.statusCode, res.body).toBe(200);
    const list = res.json<List>().itemList;
    expect(list.map((s) => s.itemId).sort()).toEqual([...input].sort());
    expect(list.slice(-2)).toEqual([
      { itemId: 'zz-unknown-2', reason: 'not-in-model' },
      { itemId: 'zz-unknown-1', reason: 'not-in-model' },
    ]);
    const scores = list.slice(0, -2).map((s) => s.score!);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect((await post('/v1/groups/shop/personalized-ranking', { userId: 'u1', inputList: Array.from({ length: 501 }, (_, i) => `i${i}`) })).json()).toMatchObject({
      code: 'REQUEST_INVALID',
      field: 'inputList',
    });
  });

  it('popular ranks by distinct users, trending by recent events', async () => {
    const popular = (await get('/v1/groups/shop/popular?numResults=5')).json<{ kind: string; itemList: { itemId: string; score: number }[] }>();
    expect(popular.kind).toBe('popular');
    const byUsers = [...shop.counts.entries()].sort((a, b) => b[1].users - a[1].users || (a[0] < b[0] ? -1 : 1)).slice(0, 5);
    expect(popular.itemList.map((s) => s.score)).toEqual(byUsers.map(([, c]) => c.users));
    const trending = (await get('/v1/groups/shop/popular?kind=trending&numResults=5')).json<{ itemList: { itemId: string; score: number }[] }>();
    const byTrend = [...shop.counts.values()].map((c) => c.trend).sort((a, b) => b - a).slice(0, 5);
    expect(trending.itemList.map((s) => s.score)).toEqual(byTrend);
    expect((await get('/v1/groups/shop/popular?kind=newest')).statusCode).toBe(400);
  });
});

describe('API keys and scopes', () => {
  const key = async (g: string, scopes: string[]) => {
    const res = await post(`/v1/groups/${g}/api-keys`, { name: `k-${scopes.join('-')}`, scopes });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string; key: string }>();
  };

  it('a key of group A can neither read nor write group B, nor administer it', async () => {
    const a = await key('shop', ['ingest', 'query', 'admin']);
    expect((await get('/v1/groups/shop/recommendations?userId=u1', a.key)).statusCode).toBe(200);
    const read = await get('/v1/groups/other/recommendations?userId=u1', a.key);
    expect(read.statusCode).toBe(403);
    expect(read.json()).toMatchObject({ code: 'FORBIDDEN', field: 'group' });
    const event = { userId: 'u1', eventList: [{ eventType: 'click', itemId: 'i1', sentAt: NOW }] };
    const before = sink.sent.length;
    expect((await post('/v1/groups/other/events', event, a.key)).statusCode).toBe(403);
    expect(sink.sent.length).toBe(before);
    expect((await post('/v1/groups/shop/events', event, a.key)).statusCode).toBe(202);
    expect((await get('/v1/groups/other/filters', a.key)).statusCode).toBe(403);
    expect((await post('/v1/groups/other/api-keys', { name: 'x', scopes: ['query'] }, a.key)).statusCode).toBe(403);
  });

  it('scopes: an ingest key cannot query, a query key cannot ingest or administer', async () => {
    const ingest = await key('shop', ['ingest']);
    const query = await key('shop', ['query']);
    const event = { userId: 'u1', eventList: [{ eventType: 'click', itemId: 'i1', sentAt: NOW }] };
    expect((await get('/v1/groups/shop/recommendations?userId=u1', ingest.key)).json()).toMatchObject({ code: 'FORBIDDEN', field: 'scope' });
    expect((await post('/v1/groups/shop/events', event, ingest.key)).statusCode).toBe(202);
    expect((await post('/v1/groups/shop/events', event, query.key)).statusCode).toBe(403);
    expect((await get('/v1/groups/shop/popular', query.key)).statusCode).toBe(200);
    expect((await get('/v1/groups/shop/api-keys', query.key)).statusCode).toBe(403);
  });

  it('no key or an unknown key is 401; a revoked key stops working; keys are listed without secrets or hashes', async () => {
    expect((await get('/v1/groups/shop/recommendations?userId=u1', '')).json()).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((await get('/v1/groups/shop/recommendations?userId=u1', 'sr_nope_nope')).statusCode).toBe(401);
    const k = await key('shop', ['query']);
    const bearer = await app.inject({ method: 'GET', url: '/v1/groups/shop/popular', headers: { authorization: `Bearer ${k.key}` } });
    expect(bearer.statusCode).toBe(200);
    const listed = (await get('/v1/groups/shop/api-keys')).body;
    expect(listed).toContain(k.id);
    expect(listed).not.toContain(k.key);
    expect(listed).not.toMatch(/hash/);
    expect((await call({ method: 'DELETE', url: `/v1/groups/shop/api-keys/${k.id}` })).statusCode).toBe(204);
    expect((await get('/v1/groups/shop/popular', k.key)).statusCode).toBe(401);
  });

  it('only the root key lists or creates groups; health, readiness and the OpenAPI document are public', async () => {
    const admin = await key('shop', ['admin']);
    expect((await get('/v1/groups', admin.key)).statusCode).toBe(403);
    expect((await get('/v1/groups')).json()).toEqual({ groups: [{ name: 'other', servedHere: true }, { name: 'shop', servedHere: true }] });
    expect((await post('/v1/groups', { name: 'shop' })).json()).toMatchObject({ code: 'RESOURCE_EXISTS' });
    for (const url of ['/health', '/ready', '/openapi.json']) expect((await get(url, '')).statusCode, url).toBe(200);
  });

  it('rate limits per key with 429 RATE_LIMITED', async () => {
    const limited = await build({ STREAMREC_API_RATE_LIMIT_PER_MINUTE: '3' });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) codes.push((await limited.inject({ method: 'GET', url: '/v1/groups/shop/popular', headers: { 'x-api-key': ROOT } })).statusCode);
      expect(codes).toEqual([200, 200, 200, 429, 429]);
      const res = await limited.inject({ method: 'GET', url: '/v1/groups/shop/popular', headers: { 'x-api-key': ROOT } });
      expect(res.json()).toMatchObject({ code: 'RATE_LIMITED', retriable: true });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      // Another key has its own budget; public routes are not limited.
      const other = await key('shop', ['query']);
      expect((await limited.inject({ method: 'GET', url: '/v1/groups/shop/popular', headers: { 'x-api-key': other.key } })).statusCode).toBe(200);
      for (let i = 0; i < 5; i++) expect((await limited.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe('solutions and the deployment', () => {
  it('lists the configured solution, creates another, trains a version on request', async () => {
    const list = (await get('/v1/groups/shop/solutions')).json<{ solutions: { name: string; recipe: string }[] }>();
    expect(list.solutions).toEqual([{ name: 'default', recipe: 'sims', params: {}, performHPO: false, versions: 1 }]);
    expect((await post('/v1/groups/shop/solutions', { name: 'pop', recipe: 'popularity-count' })).statusCode).toBe(201);
    expect((await post('/v1/groups/shop/solutions', { name: 'bad', recipe: 'deep-magic' })).statusCode).toBe(400);
    expect((await call({ method: 'POST', url: '/v1/groups/shop/solutions/pop/versions' })).statusCode).toBe(202);
    expect(shop.calls).toContain('train popularity-count');
    // recipe auto: the retraining chooses (src/training/auto.ts).
    expect((await post('/v1/groups/shop/solutions', { name: 'chosen', recipe: 'auto', params: { epochs: 3 } })).statusCode).toBe(201);
    expect((await call({ method: 'POST', url: '/v1/groups/shop/solutions/chosen/versions' })).statusCode).toBe(202);
    expect(shop.calls).toContain('train auto');
    expect((await get('/v1/groups/shop/solutions/nope/versions')).json()).toMatchObject({ code: 'RESOURCE_NOT_FOUND' });
  });

  it('performHPO: a solution asks for a search with a budget; its versions record the choice', async () => {
    const created = await post('/v1/groups/shop/solutions', { name: 'tuned', recipe: 'sims', params: { recentItems: 5 }, performHPO: true, hpoConfig: { budget: '2m', maxNumberOfTrainingJobs: 12 } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name: 'tuned', performHPO: true, hpoConfig: { budgetMs: 120_000, maxNumberOfTrainingJobs: 12 }, versions: 1 });
    expect((await call({ method: 'POST', url: '/v1/groups/shop/solutions/tuned/versions' })).statusCode).toBe(202);
    expect(shop.calls).toContain('train sims hpo {"budgetMs":120000,"maxTrials":12}');
    // Without a budget: 10 minutes (training.hpoBudget is empty here); seconds as a number.
    await post('/v1/groups/shop/solutions', { name: 'tuned2', recipe: 'sims', performHPO: true });
    await call({ method: 'POST', url: '/v1/groups/shop/solutions/tuned2/versions' });
    expect(shop.calls).toContain('train sims hpo {"budgetMs":600000}');
    expect((await post('/v1/groups/shop/solutions', { name: 'tuned3', recipe: 'hrnn', performHPO: true, hpoConfig: { budget: 90 } })).json()).toMatchObject({ hpoConfig: { budgetMs: 90_000 } });
    // The version shows how its parameters were chosen; the same params without performHPO do not claim it.
    const versions = (await get('/v1/groups/shop/solutions/tuned/versions')).json<{ versions: { version: string; hpo?: unknown }[] }>().versions;
    expect(versions).toHaveLength(1);
    expect(versions[0]).toMatchObject({ version: 'v-hpo', hpo: { method: 'random', budgetMs: 60_000, trials: 3, chosen: { trial: 2, params: { recentItems: 5, coOccurrenceWindow: 9 } } } });
    await post('/v1/groups/shop/solutions', { name: 'plain', recipe: 'sims', params: { recentItems: 5 } });
    expect((await get('/v1/groups/shop/solutions/plain')).json()).toMatchObject({ performHPO: false, versions: 0 });
    // Bad budgets and a config without performHPO are named.
    expect((await post('/v1/groups/shop/solutions', { name: 'bad1', recipe: 'sims', performHPO: true, hpoConfig: { budget: 'soon' } })).json()).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'hpoConfig.budget' });
    expect((await post('/v1/groups/shop/solutions', { name: 'bad2', recipe: 'sims', hpoConfig: { budget: '5m' } })).json()).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'hpoConfig' });
    expect((await post('/v1/groups/shop/solutions', { name: 'bad3', recipe: 'sims', performHPO: true, hpoConfig: { budget: -1 } })).statusCode).toBe(400);
  });

  it('promotes and rolls back the deployment', async () => {
    expect((await get('/v1/groups/shop/deployments')).json()).toMatchObject({ deployments: [{ name: 'default', version: 'v-3' }] });
    const promoted = await post('/v1/groups/shop/deployments/default/promote', { version: 'v-9' });
    expect(promoted.json()).toMatchObject({ version: 'v-9', previous: ['v-3'] });
    expect((await call({ method: 'POST', url: '/v1/groups/shop/deployments/default/rollback' })).json()).toMatchObject({ version: 'v-3' });
    expect(shop.calls).toEqual(expect.arrayContaining(['promote v-9', 'rollback']));
    expect((await get('/v1/groups/shop/deployments/blue')).statusCode).toBe(404);
  });
});

describe('the other resource routes', () => {
  it('groups: create one (root), describe it and a served one, delete it; a served group cannot be deleted', async () => {
    const created = await post('/v1/groups', { name: 'fresh-group' });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toEqual({ name: 'fresh-group', topics: [{ topic: 'fresh-group.interactions', action: 'created' }] });
    expect((await post('/v1/groups', { name: 'bad name!' })).json()).toMatchObject({ code: 'INVALID_GROUP_NAME' });
    expect((await get('/v1/groups/fresh-group')).json()).toEqual({ name: 'fresh-group', servedHere: false, filters: 0, solutions: 0, apiKeys: 0 });
    const shopInfo = (await get('/v1/groups/shop')).json<{ servedHere: boolean; deployment: { version: string } }>();
    expect(shopInfo.servedHere).toBe(true);
    expect(shopInfo.deployment.version).toBe('v-3');
    const served = await call({ method: 'DELETE', url: '/v1/groups/shop' });
    expect(served.statusCode).toBe(409);
    expect(served.json()).toMatchObject({ code: 'RESOURCE_IN_USE' });
    expect((await call({ method: 'DELETE', url: '/v1/groups/fresh-group' })).statusCode).toBe(204);
    expect((await get('/v1/groups/fresh-group')).json()).toMatchObject({ code: 'GROUP_NOT_FOUND' });
  });

  it('describe a filter; describe, list versions of and delete a solution; describe a version with its metrics; describe the deployment', async () => {
    await post('/v1/groups/other/filters', { name: 'cheap', filterExpression: 'INCLUDE ItemID WHERE Items.PRICE < $MAX' });
    expect((await get('/v1/groups/other/filters/cheap')).json()).toMatchObject({ name: 'cheap', params: ['MAX'], filterExpression: 'INCLUDE ItemID WHERE Items.PRICE < $MAX' });
    expect((await get('/v1/groups/other/filters/nope')).statusCode).toBe(404);
    expect((await get('/v1/groups/other/solutions/default')).json()).toEqual({ name: 'default', recipe: 'sims', params: {}, performHPO: false, versions: 1 });
    const listed = (await get('/v1/groups/other/solutions/default/versions')).json<{ versions: { version: string; serving: boolean; metrics: Record<string, number> }[] }>();
    expect(listed.versions.map((v) => [v.version, v.serving])).toEqual([['v-4', true]]);
    const one = await get('/v1/groups/other/solutions/default/versions/v-4');
    expect(one.json()).toMatchObject({ version: 'v-4', split: 'loo', metrics: { normalized_discounted_cumulative_gain_at_10: 0.3 }, baseline: { normalized_discounted_cumulative_gain_at_10: 0.1 } });
    expect((await get('/v1/groups/other/solutions/default/versions/v-none')).json()).toMatchObject({ code: 'VERSION_NOT_FOUND' });
    await post('/v1/groups/other/solutions', { name: 'pop', recipe: 'popularity-count' });
    expect((await get('/v1/groups/other/solutions/pop')).json()).toMatchObject({ name: 'pop', recipe: 'popularity-count', versions: 1 });
    // The configured training: well formed, but the resource's state forbids it (409 as the document says, not 400).
    const configured = await call({ method: 'DELETE', url: '/v1/groups/other/solutions/default' });
    expect(configured.statusCode).toBe(409);
    expect(configured.json()).toMatchObject({ code: 'RESOURCE_IN_USE', field: 'name' });
    expect((await call({ method: 'DELETE', url: '/v1/groups/other/solutions/pop' })).statusCode).toBe(204);
    expect((await get('/v1/groups/other/solutions/pop')).statusCode).toBe(404);
    expect((await get('/v1/groups/other/deployments/default')).json()).toMatchObject({ name: 'default', version: 'v-4', previous: ['v-old'], loadedHere: 'v-4' });
  });
});

describe('kept user states', () => {
  it('a user\'s state is read once for repeated queries, again after the user\'s applied event, and a read overlapping an applied batch is not kept', async () => {
    const g = group(6);
    let reads = 0;
    let gate: Promise<void> | undefined;
    const query = new QueryService({
      serving: (() => {
        const s = new ServingModel();
        s.swap({ version: 'v', model: sims.train(g.events), excludeSeen: false });
        return s;
      })(),
      userState: async (id) => {
        reads++;
        await gate;
        const user = g.users.get(id);
        return user ? { user, hrnn: undefined } : undefined;
      },
      forEachItemCount: async () => undefined,
      items: async () => new Map(),
      user: async () => undefined,
      resources: new Resources(),
      trendingHalfLifeMs: 1e9,
      now: () => NOW,
    });
    await query.recommendations({ userId: 'u1', numResults: 5 });
    await query.recommendations({ userId: 'u1', numResults: 5 });
    expect(reads).toBe(1);
    query.applied(['u2']);
    await query.recommendations({ userId: 'u1', numResults: 5 });
    expect(reads).toBe(1);
    query.applied(['u1']);
    await query.recommendations({ userId: 'u1', numResults: 5 });
    expect(reads).toBe(2);
    // A batch applied while u3's state is being read: that read is used once, not kept.
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const pending = query.recommendations({ userId: 'u3', numResults: 5 });
    query.applied(['u9']);
    open();
    await pending;
    gate = undefined;
    await query.recommendations({ userId: 'u3', numResults: 5 });
    expect(reads).toBe(4);
    await query.recommendations({ userId: 'u3', numResults: 5 });
    expect(reads).toBe(4);
    // The processor hands over a batch's committed states: the next query reads no store and
    // answers from the committed state (here u2's state committed as u1's: u1 gets u2's list).
    const before = (await query.recommendations({ userId: 'u1', numResults: 5 })).itemList;
    const u2 = (await query.recommendations({ userId: 'u2', numResults: 5 })).itemList;
    expect(u2).not.toEqual(before);
    const readsBefore = reads;
    query.applied(['u1'], new Map([['u1', { user: stateCodecs.user.encode(g.users.get('u2')!) }]]));
    expect((await query.recommendations({ userId: 'u1', numResults: 5 })).itemList).toEqual(u2);
    expect(reads).toBe(readsBefore);
  });
});

describe('the OpenAPI document states what the server enforces', () => {
  type Schema = Record<string, unknown>;
  interface Param {
    in: string;
    name: string;
    schema?: Schema;
    content?: Record<string, { schema: Schema }>;
  }
  interface Operation {
    summary?: string;
    tags?: string[];
    parameters?: Param[];
    requestBody?: { content: Record<string, { schema: Schema }> };
    responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
  }
  let doc: { paths: Record<string, Record<string, Operation>>; tags: { name: string }[] };
  beforeAll(async () => {
    doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
  });
  const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ label: `${method.toUpperCase()} ${path}`, op })));

  it('every operation has a summary, a resource tag and the error shape for 4xx and 5xx', () => {
    const tags = new Set(doc.tags.map((t) => t.name));
    expect([...tags]).toEqual(expect.arrayContaining(['events', 'items', 'users', 'recommendations', 'ranking', 'related items', 'popular', 'filters', 'solutions', 'versions', 'deployments', 'api keys', 'groups', 'operations']));
    expect(operations().length).toBeGreaterThan(30);
    for (const { label, op } of operations()) {
      expect(op.summary, label).toMatch(/\w/);
      expect(op.tags, label).toHaveLength(1);
      expect(tags.has(op.tags![0]!), `${label}: ${op.tags![0]}`).toBe(true);
      expect(op.tags![0], label).not.toBe('default');
      for (const range of ['4XX', '5XX']) {
        const schema = op.responses[range]?.content?.['application/json']?.schema;
        expect(schema, `${label} ${range}`).toMatchObject({ required: ['code', 'message', 'retriable'] });
      }
    }
    expect(doc.paths['/v1/groups/{group}/personalized-ranking']!.post!.tags).toEqual(['ranking']);
    expect(doc.paths['/v1/groups/{group}/solutions/{name}/versions/{version}']!.get!.tags).toEqual(['versions']);
    expect(doc.paths['/v1/groups/{group}/api-keys/{id}']!.delete!.tags).toEqual(['api keys']);
    expect(doc.paths['/v1/groups/{group}']!.get!.tags).toEqual(['groups']);
    expect(doc.paths['/metrics']!.get!.tags).toEqual(['operations']);
  });

  it('group names, numResults, sentAt, context and filterValues as the server checks them', async () => {
    for (const { label, op } of operations()) {
      const group = op.parameters?.find((p) => p.in === 'path' && p.name === 'group');
      if (group) expect(group.schema, label).toMatchObject({ type: 'string', pattern: '^[A-Za-z0-9_-]{1,60}$', maxLength: 60 });
      const n = op.parameters?.find((p) => p.name === 'numResults');
      if (n) expect(n.schema, label).toMatchObject({ type: 'integer', minimum: 1, maximum: 500 });
    }
    const rec = doc.paths['/v1/groups/{group}/recommendations']!;
    for (const name of ['context', 'filterValues']) {
      const p = rec.get!.parameters!.find((x) => x.name === name)!;
      expect(p.schema, name).toBeUndefined();
      expect(p.content!['application/json']!.schema, name).toMatchObject({ type: 'object', additionalProperties: { type: 'string' } });
    }
    const body = rec.post!.requestBody!.content['application/json']!.schema as { properties: Record<string, Schema> };
    expect(body.properties.numResults).toMatchObject({ type: 'integer', minimum: 1, maximum: 500 });
    const events = doc.paths['/v1/groups/{group}/events']!.post!.requestBody!.content['application/json']!.schema as { properties: { eventList: { items: { properties: Record<string, Schema> } } } };
    expect(events.properties.eventList.items.properties.sentAt!.anyOf).toEqual([
      { type: 'number', minimum: 0, exclusiveMinimum: true },
      { type: 'string', pattern: expect.stringMatching(/^\^\[0-9\]\{4\}-/) },
    ]);
    expect(JSON.stringify(doc)).not.toMatch(/x-doc|x-json-object/);
    const createGroup = doc.paths['/v1/groups']!.post!.requestBody!.content['application/json']!.schema as { properties: { name: Schema } };
    expect(createGroup.properties.name).toMatchObject({ pattern: '^[A-Za-z0-9_-]{1,60}$' });

    // ... and the server: the same bounds, an integer query string is a number, JSON parameters are objects.
    expect((await get('/v1/groups/shop/recommendations?userId=u1&numResults=500')).statusCode).toBe(200);
    expect((await get('/v1/groups/shop/recommendations?userId=u1&numResults=1')).statusCode).toBe(200);
    for (const bad of ['0', '501', '1.5', '-1', '', 'x', '1e2']) {
      expect((await get(`/v1/groups/shop/recommendations?userId=u1&numResults=${bad}`)).json(), bad).toMatchObject({ code: 'REQUEST_INVALID' });
    }
    expect((await get(`/v1/groups/shop/recommendations?userId=u1&context=${encodeURIComponent('{"DEVICE":"tv"}')}`)).statusCode).toBe(200);
    expect((await get(`/v1/groups/shop/recommendations?userId=u1&context=${encodeURIComponent('["tv"]')}`)).json()).toMatchObject({ code: 'REQUEST_INVALID', field: 'context' });
    expect((await get('/v1/groups/bad!name/recommendations?userId=u1')).json()).toMatchObject({ code: 'INVALID_GROUP_NAME' });
    expect((await get(`/v1/groups/${'g'.repeat(61)}/filters`)).json()).toMatchObject({ code: 'INVALID_GROUP_NAME' });
    expect((await post('/v1/groups', { name: 'x'.repeat(61) })).json()).toMatchObject({ code: 'INVALID_GROUP_NAME' });
    const long = await get(`/v1/groups/shop/filters/${'f'.repeat(257)}`);
    expect(long.statusCode).toBe(400);
    expect(long.json()).toMatchObject({ code: 'REQUEST_INVALID', retriable: false });
  });
});

describe('methods a path does not have', () => {
  it('405 METHOD_NOT_ALLOWED with allow listing the methods of the path, QUERY and OPTIONS included; an unknown path stays 404', async () => {
    for (const method of ['QUERY', 'OPTIONS', 'PUT', 'PATCH']) {
      const res = await call({ method: method as 'GET', url: '/v1/groups/shop' });
      expect(res.statusCode, method).toBe(405);
      expect(res.headers.allow, method).toBe('DELETE, GET, HEAD');
      expect(res.json(), method).toEqual({ code: 'METHOD_NOT_ALLOWED', message: expect.stringContaining('allowed: DELETE, GET, HEAD'), retriable: false });
      expect(res.body).not.toContain('FST_');
    }
    const filters = await call({ method: 'DELETE', url: '/v1/groups/shop/filters' });
    expect(filters.statusCode).toBe(405);
    expect(filters.headers.allow).toBe('GET, HEAD, POST');
    expect((await call({ method: 'PUT', url: '/v1/groups/shop/nothing-here' })).json()).toMatchObject({ code: 'ROUTE_NOT_FOUND' });
  });
});
