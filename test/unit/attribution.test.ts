/**
 * Attribution's pure parts (src/stream/attribution.ts) and the online-metrics route over them
 * (src/api/online-routes.ts): which key an event is counted under, a batch summed per key and
 * added to the stored counts with one put per touched key, tags resolved to version names (unknown
 * and colliding tags kept apart, never guessed), partitions summed once each, the click-through
 * rate, and the route's filters, scopes and refusals.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp, type GroupServices } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createCodecs, interaction, type Interaction } from '../../src/serde/avro.js';
import { mintRecommendationId, versionTag } from '../../src/serving/recommendation-id.js';
import { Resources } from '../../src/stream/resources.js';
import { MemoryStore } from '../../src/state/memory-store.js';
import { canonicalValue } from '../../src/state/digest.js';
import {
  aggregate,
  attributionOps,
  combine,
  countKey,
  countsCodec,
  GroupOnlineMetrics,
  parseCountKey,
  readCounts,
  resolveRows,
  summarize,
  sumRows,
  type PartitionCounts,
  type TaggedRow,
} from '../../src/stream/attribution.js';

const ev = (f: Partial<Interaction> = {}): Interaction => interaction({ USER_ID: 'u1', ITEM_ID: 'i1', TIMESTAMP: 1_000, ...f });
const A = 'v-20261207-a';
const B = 'v-20261207-b';

describe('countKey / parseCountKey', () => {
  it('counts an id of ours under its version tag and arm, anything else under the event type alone', () => {
    const k = countKey(ev({ RECOMMENDATION_ID: mintRecommendationId(A, 2), EVENT_TYPE: 'purchase' }));
    expect(k).toBe(`m/a/${versionTag(A)}/2/purchase`);
    expect(parseCountKey(k)).toEqual({ versionTag: versionTag(A), arm: 2, eventType: 'purchase' });
    for (const id of [null, '', 'RID-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', 'my-own-id', mintRecommendationId(undefined)]) {
      expect(parseCountKey(countKey(ev({ RECOMMENDATION_ID: id, EVENT_TYPE: 'click' })))).toEqual({ versionTag: null, arm: null, eventType: 'click' });
    }
  });
  it('keeps event types with slashes, arms past 9, and refuses keys that are not counts', () => {
    const k = countKey(ev({ RECOMMENDATION_ID: mintRecommendationId(B, 35), EVENT_TYPE: 'add/cart' }));
    expect(parseCountKey(k)).toEqual({ versionTag: versionTag(B), arm: 35, eventType: 'add/cart' });
    expect(parseCountKey('u/someone')).toBeUndefined();
    expect(parseCountKey('m/a/short')).toBeUndefined();
  });
});

describe('aggregate and attributionOps', () => {
  const ridA = mintRecommendationId(A);
  const batch1 = [
    ev({ RECOMMENDATION_ID: ridA, IMPRESSION: ['i1', 'i2', 'i3'] }),
    ev({ RECOMMENDATION_ID: ridA }),
    ev({ RECOMMENDATION_ID: mintRecommendationId(A), EVENT_TYPE: 'purchase', EVENT_VALUE: 9.5 }),
    ev({ RECOMMENDATION_ID: 'foreign', EVENT_VALUE: 1 }),
    ev({}),
  ];
  it('sums a batch per key: events, impression events and items, EVENT_VALUE sum and count', () => {
    const m = aggregate(batch1);
    expect(Object.fromEntries(m)).toEqual({
      [`m/a/${versionTag(A)}/0/click`]: { events: 2, impressionEvents: 1, impressedItems: 3, valueSum: 0, valueCount: 0 },
      [`m/a/${versionTag(A)}/0/purchase`]: { events: 1, impressionEvents: 0, impressedItems: 0, valueSum: 9.5, valueCount: 1 },
      'm/n/click': { events: 2, impressionEvents: 0, impressedItems: 0, valueSum: 1, valueCount: 1 },
    });
  });
  it('adds a batch to the stored counts with one put per touched key', async () => {
    const store = new MemoryStore();
    await store.write(await attributionOps(store, batch1));
    const ops = await attributionOps(store, [ev({ RECOMMENDATION_ID: ridA, IMPRESSION: ['x'] }), ev({ RECOMMENDATION_ID: ridA }), ev({ EVENT_TYPE: 'view' })]);
    expect(ops.map((o) => o.key).sort()).toEqual([`m/a/${versionTag(A)}/0/click`, 'm/n/view']);
    await store.write(ops);
    expect(await attributionOps(store, [])).toEqual([]);
    const rows = await readCounts(store);
    expect(rows).toContainEqual({ versionTag: versionTag(A), arm: 0, eventType: 'click', events: 4, impressionEvents: 2, impressedItems: 4, valueSum: 0, valueCount: 0 });
    expect(rows).toContainEqual({ versionTag: null, arm: null, eventType: 'view', events: 1, impressionEvents: 0, impressedItems: 0, valueSum: 0, valueCount: 0 });
    expect(rows).toHaveLength(4);
  });
  it('the state digest rounds the float sum (another order of the same events gives the same bytes)', () => {
    const a = countsCodec.encode({ events: 3, impressionEvents: 0, impressedItems: 0, valueSum: 0.1 + 0.2 + 0.3, valueCount: 3 });
    const b = countsCodec.encode({ events: 3, impressionEvents: 0, impressedItems: 0, valueSum: 0.3 + 0.2 + 0.1, valueCount: 3 });
    expect(a.equals(b)).toBe(false);
    expect(canonicalValue('m/n/buy', a).equals(canonicalValue('m/n/buy', b))).toBe(true);
  });
});

const row = (versionTag: string | null, arm: number | null, eventType: string, events: number, impressionEvents = 0, valueSum = 0): TaggedRow => ({
  versionTag,
  arm,
  eventType,
  events,
  impressionEvents,
  impressedItems: impressionEvents * 10,
  valueSum,
  valueCount: valueSum ? events : 0,
});

describe('resolveRows, sumRows, summarize, combine', () => {
  it('resolves tags through the known versions; an unknown tag and a colliding tag stay tag:<tag>', () => {
    const collide = (v: string) => (v === 'x1' || v === 'x2' ? 'cccccccc' : versionTag(v));
    const rows = resolveRows([row(versionTag(A), 0, 'click', 5), row('dddddddd', 1, 'click', 2), row('cccccccc', 0, 'click', 1), row(null, null, 'click', 7)], [A, B, 'x1', 'x2'], collide);
    expect(rows.map((r) => [r.version, r.arm, r.unresolved ?? 'ok', r.events])).toEqual([
      ['tag:cccccccc', 0, 'ambiguous', 1],
      ['tag:dddddddd', 1, 'unknown', 2],
      [A, 0, 'ok', 5],
      [null, null, 'ok', 7],
    ]);
    // Known later: the same counts now carry the name.
    expect(resolveRows([row('dddddddd', 1, 'click', 2)], ['late'], () => 'dddddddd')[0]).toMatchObject({ version: 'late', arm: 1, events: 2 });
  });
  it('sums rows per (tag, arm, type) and derives the click-through rate per (version, arm)', () => {
    const tA = versionTag(A);
    const summed = sumRows([row(tA, 0, 'view', 10, 10), row(tA, 0, 'view', 10, 10), row(tA, 0, 'click', 3), row(tA, 0, 'purchase', 1, 0, 20), row(tA, 1, 'view', 4, 4), row(null, null, 'click', 9)]);
    expect(summed).toHaveLength(5);
    const s = summarize(resolveRows(summed, [A], versionTag), 'click');
    expect(s).toEqual([
      { version: A, arm: 0, versionTag: tA, events: 24, impressionEvents: 20, impressedItems: 200, clicks: 3, clickThroughRate: 3 / 20, conversions: 1, conversionRate: 1 / 20, valueSum: 20, valueCount: 1 },
      { version: A, arm: 1, versionTag: tA, events: 4, impressionEvents: 4, impressedItems: 40, clicks: 0, clickThroughRate: 0, conversions: 0, conversionRate: 0, valueSum: 0, valueCount: 0 },
    ]);
    expect(summarize(resolveRows([row(tA, 0, 'click', 3)], [A], versionTag), 'click')[0]!.clickThroughRate).toBeNull();
  });
  it('takes each partition once and names the missing ones', () => {
    const parts: PartitionCounts[] = [
      { partition: 0, rows: [row(null, null, 'click', 1)] },
      { partition: 2, rows: [row(null, null, 'click', 5)] },
      { partition: 0, rows: [row(null, null, 'click', 100)] },
    ];
    const read = combine(parts, 4, [], versionTag);
    expect(read.partitions).toEqual({ total: 4, counted: 2, missing: [1, 3] });
    expect(read.rows).toEqual([{ version: null, arm: null, versionTag: null, eventType: 'click', events: 6, impressionEvents: 0, impressedItems: 0, valueSum: 0, valueCount: 0 }]);
  });
});

describe('GET /v1/groups/:group/metrics/online', () => {
  const ROOT = 'root-key-for-the-online-tests';
  const apps: FastifyInstance[] = [];
  afterAll(async () => Promise.all(apps.map((a) => a.close())));
  const tA = versionTag(A);
  const tB = versionTag(B);
  const local: PartitionCounts[] = [{ partition: 0, rows: [row(tA, 0, 'view', 10, 10), row(tA, 0, 'click', 2), row(tB, 1, 'view', 5, 5)] }];
  const peer: PartitionCounts[] = [{ partition: 1, rows: [row(tB, 1, 'click', 3), row(null, null, 'click', 4), row(tA, 0, 'purchase', 1, 0, 12.5)] }];

  async function app(online: boolean): Promise<FastifyInstance> {
    const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT } });
    const reader = new GroupOnlineMetrics({ local: async () => local, peers: async () => peer, versions: () => [A, B], tagOf: versionTag, partitions: () => 2 });
    const services = { resources: new Resources(), ...(online ? { online: reader } : {}) } as unknown as GroupServices;
    const a = await buildApp({
      config,
      codecs: createCodecs(config),
      sink: { send: async () => undefined },
      groups: { has: async (g) => g === 'shop' },
      status: () => ({ state: 'running', ready: true }),
      logger: false,
      served: { names: () => ['shop'], get: (g) => (g === 'shop' ? services : undefined) },
    });
    apps.push(a);
    return a;
  }
  const get = (a: FastifyInstance, q = '', key = ROOT) => a.inject({ method: 'GET', url: `/v1/groups/shop/metrics/online${q}`, headers: { 'x-api-key': key } });

  it('answers every partition summed, with per-version click-through rates', async () => {
    const a = await app(true);
    const res = await get(a);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.partitions).toEqual({ total: 2, counted: 2, missing: [] });
    expect(body.rows).toHaveLength(6);
    expect(body.versions).toEqual([
      { version: A, arm: 0, versionTag: tA, events: 13, impressionEvents: 10, impressedItems: 100, clicks: 2, clickThroughRate: 0.2, conversions: 1, conversionRate: 0.1, valueSum: 12.5, valueCount: 1 },
      { version: B, arm: 1, versionTag: tB, events: 8, impressionEvents: 5, impressedItems: 50, clicks: 3, clickThroughRate: 0.6, conversions: 0, conversionRate: 0, valueSum: 0, valueCount: 0 },
    ]);
    const filtered = (await get(a, `?version=${B}&eventType=click&clickType=view&conversionType=click`)).json();
    expect(filtered.rows).toEqual([{ version: B, versionTag: tB, arm: 1, eventType: 'click', events: 3, impressionEvents: 0, impressedItems: 0, valueSum: 0, valueCount: 0 }]);
    expect(filtered.versions).toMatchObject([{ version: B, clicks: 5, clickThroughRate: 1, conversions: 3, conversionRate: 0.6 }]);
    const unattributed = (await get(a, '?eventType=click')).json();
    expect(unattributed.rows.filter((r: { version: string | null }) => r.version === null)).toMatchObject([{ events: 4 }]);
  });
  it('scope=local gives this instance\'s partitions, unresolved, for the others to sum', async () => {
    const body = (await get(await app(true), '?scope=local')).json();
    expect(body.byPartition).toEqual(local);
    expect(body.partitions).toEqual({ total: 1, counted: 1, missing: [] });
  });
  it('refuses bad parameters naming them, wrong keys, and instances without metrics', async () => {
    const a = await app(true);
    const bad = await get(a, '?scope=everything');
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('scope');
    const extra = await get(a, '?versions=x');
    expect(extra.statusCode).toBe(400);
    expect(extra.body).toContain('versions');
    expect((await get(a, '', 'wrong')).statusCode).toBe(401);
    const none = await get(await app(false));
    expect(none.statusCode).toBe(404);
    expect(none.json().code).toBe('ROUTE_NOT_FOUND');
  });
});

describe('Prometheus counters', () => {
  it('exports this instance\'s attributed and unattributed counts by version, arm and event type', async () => {
    const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: 'root-key-for-the-online-tests' } });
    let reads = 0;
    const rows = resolveRows([row(versionTag(A), 1, 'click', 7, 3, 10.5), row(null, null, 'view', 4)], [A], versionTag);
    const a = await buildApp({
      config,
      codecs: createCodecs(config),
      sink: { send: async () => undefined },
      groups: { has: async () => true },
      status: () => ({ state: 'running', ready: true }),
      logger: false,
      metrics: {
        online: async () => {
          reads++;
          return rows;
        },
      },
    });
    try {
      const text = (await a.inject({ method: 'GET', url: '/metrics' })).body;
      expect(text).toContain(`streamrec_attributed_events_total{version="${A}",arm="1",event_type="click"} 7`);
      expect(text).toContain(`streamrec_attributed_impression_events_total{version="${A}",arm="1",event_type="click"} 3`);
      expect(text).toContain(`streamrec_attributed_impressed_items_total{version="${A}",arm="1",event_type="click"} 30`);
      expect(text).toContain(`streamrec_attributed_value_total{version="${A}",arm="1",event_type="click"} 10.5`);
      expect(text).toContain('streamrec_unattributed_events_total{event_type="view"} 4');
      expect(text).toContain('# TYPE streamrec_attributed_events_total counter');
      // One read of the rows per scrape, shared by the five counters.
      expect(reads).toBe(1);
    } finally {
      await a.close();
    }
  });
});
