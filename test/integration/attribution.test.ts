/**
 * Attribution against a real broker and RocksDB, through `streamrec start` children: a version
 * (sims) trained by the service mints the recommendationIds; events cite them (with impression
 * lists and EVENT_VALUE), cite foreign ids, a popular list's id, or nothing, sent over the HTTP
 * events route and by a raw Avro producer; GET .../metrics/online then counts exactly what was sent.
 * The counts survive, exactly once: a SIGKILL between the changelog transaction and the RocksDB
 * write, one between that write and the offset commit, a restart, and partitions moving to a second instance with an empty state folder (restored
 * from the changelog), which both instances then sum (each partition once); `streamrec metrics
 * online` prints the same.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, interaction, type Interaction } from '../../src/serde/avro.js';
import { apiUrl, freshGroup, kafkaClients, rootHeaders, runCli, serviceEnv, startCli, stopChild, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('attrib');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-attrib-'));
const NOW = Date.now();
const env = (n: number, extra: NodeJS.ProcessEnv = {}) =>
  serviceEnv(brokers, join(dir, n === 2 ? 'state-2' : 'state-1'), {
    STREAMREC_TRAINING_RECIPE: 'none',
    STREAMREC_TRAINING_SPLIT: 'loo',
    STREAMREC_INSTANCE_ID: `attrib-${n}`,
    ...extra,
  });
const config = loadConfig({ env: env(1) });
const kafka = createKafka(config, [brokers], '-attrib-test');
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(kafka);

type Counts = { events: number; impressionEvents: number; impressedItems: number; valueSum: number; valueCount: number };
/** What was sent, keyed `version|arm|eventType` (version and arm empty: unattributed). */
const expected = new Map<string, Counts>();
function count(version: string | null, arm: number | null, e: Pick<Interaction, 'EVENT_TYPE' | 'IMPRESSION' | 'EVENT_VALUE'>): void {
  const k = `${version ?? ''}|${arm ?? ''}|${e.EVENT_TYPE}`;
  const c = expected.get(k) ?? { events: 0, impressionEvents: 0, impressedItems: 0, valueSum: 0, valueCount: 0 };
  c.events++;
  if (e.IMPRESSION.length > 0) {
    c.impressionEvents++;
    c.impressedItems += e.IMPRESSION.length;
  }
  if (e.EVENT_VALUE !== null) {
    c.valueSum += e.EVENT_VALUE;
    c.valueCount++;
  }
  expected.set(k, c);
}
const snapshot = () => Object.fromEntries([...expected].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, c]) => [k, { ...c }]));

interface Row extends Counts {
  version: string | null;
  arm: number | null;
  eventType: string;
}
interface OnlineAnswer {
  partitions: { total: number; counted: number; missing: number[] };
  rows: Row[];
  versions: { version: string; arm: number; clicks: number; impressionEvents: number; clickThroughRate: number | null; conversions: number; conversionRate: number | null }[];
}
const asMap = (rows: Row[]) =>
  Object.fromEntries(
    rows
      .map((r) => [`${r.version ?? ''}|${r.arm ?? ''}|${r.eventType}`, { events: r.events, impressionEvents: r.impressionEvents, impressedItems: r.impressedItems, valueSum: r.valueSum, valueCount: r.valueCount }] as const)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
async function online(base: string, query = ''): Promise<OnlineAnswer> {
  const res = await fetch(`${base}/v1/groups/${group}/metrics/online${query}`, { headers: rootHeaders() });
  if (res.status !== 200) throw new Error(`metrics/online answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as OnlineAnswer;
}
/** Waits until the service's rows equal what was sent, then checks they stay so (nothing counted late, twice). */
async function expectCounts(base: string): Promise<OnlineAnswer> {
  const want = snapshot();
  let last: OnlineAnswer | undefined;
  await until(
    'the online metrics to equal what was sent',
    async () => {
      last = await online(base).catch(() => undefined);
      return last !== undefined && last.partitions.missing.length === 0 && JSON.stringify(asMap(last.rows)) === JSON.stringify(want);
    },
    90_000,
  ).catch(() => expect(last && asMap(last.rows)).toEqual(want));
  await new Promise((r) => setTimeout(r, 1500));
  const again = await online(base);
  expect(asMap(again.rows)).toEqual(want);
  expect(again.partitions).toEqual({ total: config.topics.partitions, counted: config.topics.partitions, missing: [] });
  return again;
}

const get = async <T>(base: string, path: string): Promise<T> => {
  const res = await fetch(`${base}/v1/groups/${group}${path}`, { headers: rootHeaders() });
  if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
};
const putEvents = async (base: string, userId: string, events: Interaction[]): Promise<void> => {
  const eventList = events.map((e) => ({
    eventType: e.EVENT_TYPE,
    itemId: e.ITEM_ID,
    sentAt: new Date(e.TIMESTAMP).toISOString(),
    ...(e.RECOMMENDATION_ID ? { recommendationId: e.RECOMMENDATION_ID } : {}),
    ...(e.IMPRESSION.length ? { impression: e.IMPRESSION } : {}),
    ...(e.EVENT_VALUE !== null ? { eventValue: e.EVENT_VALUE } : {}),
  }));
  const res = await fetch(`${base}/v1/groups/${group}/events`, { method: 'POST', headers: rootHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ userId, eventList }) });
  if (res.status !== 202) throw new Error(`PutEvents answered ${res.status}: ${await res.text()}`);
};
const produceRaw = (events: Interaction[]) => producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });

interface Answer {
  recommendationId: string;
  version?: string;
  itemList: { itemId: string }[];
}
interface Cited {
  userId: string;
  rid: string;
  version: string;
  items: string[];
}
/** Recommendations for `users` from the running service: the ids it minted, with their version. */
async function cite(base: string, users: string[]): Promise<Cited[]> {
  const out: Cited[] = [];
  for (const userId of users) {
    const a = await get<Answer>(base, `/recommendations?userId=${userId}&numResults=5`);
    expect(a.version, `an answer of a version for ${userId}`).toBeTruthy();
    expect(a.recommendationId).toMatch(/^RID-[0-9a-f]{8}-0-/);
    out.push({ userId, rid: a.recommendationId, version: a.version!, items: a.itemList.map((i) => i.itemId) });
  }
  return out;
}

let t = NOW - 60_000;
const ev = (userId: string, f: Partial<Interaction>): Interaction => interaction({ USER_ID: userId, ITEM_ID: 'i1', TIMESTAMP: (t += 10), ...f });

/** The events of one round for the cited answers: views with impressions, clicks, purchases with values (attributed); foreign ids and none. */
function roundEvents(cited: Cited[], round: number): { http: Map<string, Interaction[]>; raw: Interaction[] } {
  const http = new Map<string, Interaction[]>();
  const raw: Interaction[] = [];
  cited.forEach((c, i) => {
    const mine = [
      ev(c.userId, { EVENT_TYPE: 'view', RECOMMENDATION_ID: c.rid, IMPRESSION: c.items, ITEM_ID: c.items[0] ?? 'i1' }),
      ev(c.userId, { EVENT_TYPE: 'click', RECOMMENDATION_ID: c.rid, ITEM_ID: c.items[0] ?? 'i1' }),
      ...(i % 2 === 0 ? [ev(c.userId, { EVENT_TYPE: 'purchase', RECOMMENDATION_ID: c.rid, EVENT_VALUE: 12.5 + i + round, ITEM_ID: c.items[1] ?? 'i2' })] : []),
      // A foreign id (Personalize's shape) and none: unattributed.
      ev(c.userId, { EVENT_TYPE: 'click', RECOMMENDATION_ID: 'RID-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', IMPRESSION: ['i1', 'i2'] }),
      ev(c.userId, { EVENT_TYPE: 'view' }),
    ];
    // Half of the users' events over HTTP, half through a raw Avro producer.
    if (i % 2 === 0) http.set(c.userId, mine);
    else raw.push(...mine, ev(c.userId, { EVENT_TYPE: 'click', RECOMMENDATION_ID: 'my-own-id', EVENT_VALUE: 0.25 }));
    for (const e of i % 2 === 0 ? mine : [...mine, raw[raw.length - 1]!]) {
      const ours = e.RECOMMENDATION_ID === c.rid;
      count(ours ? c.version : null, ours ? 0 : null, e);
    }
  });
  return { http, raw };
}

async function send(base: string | undefined, r: { http: Map<string, Interaction[]>; raw: Interaction[] }): Promise<void> {
  for (const [userId, events] of r.http) await putEvents(base!, userId, events);
  await produceRaw(r.raw);
}

let children: ChildProcess[] = [];
async function start(n: number, extra: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const { child, output } = await startCli(['start', '--group', group], env(n, extra), 'running;');
  children.push(child);
  return { child, url: apiUrl(output()), output };
}
async function stopAll(): Promise<void> {
  await Promise.all(children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => stopChild(c)));
  children = [];
}

describe('attribution and online metrics per version', () => {
  const base = [...syntheticInteractions({ seed: 9, users: 120, items: 200, events: 3000, start: NOW - 6_000_000 })];
  const users = Array.from({ length: 12 }, (_, i) => `u${i}`);

  it('counts what was sent, exactly; survives a crash, a restart and partitions moving to another instance', async () => {
    await applyTopics(admin, group, config);
    await produceRaw(base);
    for (const e of base) count(null, null, e);

    // 1. A version trained and served by the service; answers cited over HTTP and raw Avro.
    let a = await start(1, { STREAMREC_TRAINING_RECIPE: 'sims' });
    await until(
      'a version served',
      async () => ((await get<Answer>(a.url, '/recommendations?userId=u0&numResults=5').catch(() => undefined))?.version ?? '') !== '',
      150_000,
    );
    const round1 = await cite(a.url, users);
    // A popular list's id names no version: unattributed.
    const popular = await get<Answer>(a.url, '/popular?numResults=3');
    const popularClick = ev('u1', { EVENT_TYPE: 'click', RECOMMENDATION_ID: popular.recommendationId, IMPRESSION: popular.itemList.map((i) => i.itemId) });
    count(null, null, popularClick);
    await send(a.url, roundEvents(round1, 1));
    await putEvents(a.url, 'u1', [popularClick]);
    const first = await expectCounts(a.url);
    const version = round1[0]!.version;
    expect(first.rows.some((r) => r.version === version && r.eventType === 'purchase' && r.valueCount > 0)).toBe(true);
    const summary = first.versions.find((v) => v.version === version && v.arm === 0)!;
    expect(summary.impressionEvents).toBeGreaterThan(0);
    expect(summary.clickThroughRate).toBeCloseTo(summary.clicks / summary.impressionEvents, 12);
    expect(summary.conversions).toBe(expected.get(`${version}|0|purchase`)!.events);
    expect(summary.conversionRate).toBeCloseTo(summary.conversions / summary.impressionEvents, 12);
    let cited = await cite(a.url, users);
    await stopAll();

    // 2. SIGKILL between the first batch's changelog transaction and its RocksDB write, then between
    // that write and the offset commit; the rest of each round's events after the crash.
    for (const [round, failpoint] of [[2, 'after-changelog-commit:1'], [3, 'after-state-write:1']] as const) {
      const crashing = await start(1, { STREAMREC_FAILPOINT: failpoint });
      const exited = new Promise<NodeJS.Signals | null>((r) => crashing.child.once('exit', (_c, signal) => r(signal)));
      const r = roundEvents(cited, round);
      const [firstUser, firstEvents] = [...r.http][0]!;
      r.http.delete(firstUser);
      await putEvents(crashing.url, firstUser, firstEvents);
      expect(await exited).toBe('SIGKILL');
      expect(crashing.output()).toContain(`failpoint ${failpoint} reached`);
      children = [];
      // The rest straight to the topic (the HTTP ones too: the service is down).
      await produceRaw([...[...r.http.values()].flat(), ...r.raw]);
      a = await start(1);
      await expectCounts(a.url);
      cited = await cite(a.url, users);
      await stopAll();
    }

    // 3. A plain restart: unchanged.
    a = await start(1);
    await expectCounts(a.url);

    // 4. A second instance with an empty state folder takes partitions over (restored from the
    // changelog): each instance answers the whole group's counts, each partition once.
    const b = await start(2);
    await until(
      'the partitions split between the two instances',
      async () => {
        const inst = await get<{ instances: { partitions: number[] }[] }>(a.url, '/instances').catch(() => undefined);
        return inst !== undefined && inst.instances.length === 2 && inst.instances.every((i) => i.partitions.length > 0);
      },
      90_000,
    );
    const fromB = await expectCounts(b.url);
    await expectCounts(a.url);
    // Prometheus: each instance exports its own partitions' counts; summed, they are the group's.
    const scraped = new Map<string, number>();
    for (const url of [a.url, b.url]) {
      const text = await (await fetch(`${url}/metrics`)).text();
      for (const m of text.matchAll(/^streamrec_attributed_events_total\{version="([^"]+)",arm="(\d+)",event_type="([^"]+)"\} (\d+)$/gm)) {
        const k = `${m[1]}|${m[2]}|${m[3]}`;
        scraped.set(k, (scraped.get(k) ?? 0) + Number(m[4]));
      }
    }
    expect(Object.fromEntries([...scraped].sort(([x], [y]) => (x < y ? -1 : 1)))).toEqual(
      Object.fromEntries(Object.entries(snapshot()).filter(([k]) => !k.startsWith('|')).map(([k, c]) => [k, c.events])),
    );
    const local = await online(b.url, '?scope=local');
    expect(local.partitions.counted).toBeLessThan(config.topics.partitions);
    // Filters, and the CLI.
    const views = await online(b.url, `?version=${encodeURIComponent(version)}&eventType=view`);
    expect(views.rows.map((r) => [r.version, r.eventType])).toEqual([[version, 'view']]);
    const cli = await runCli(['metrics', 'online', '--group', group, '--url', b.url, '--json'], env(2));
    expect(cli.code, cli.stderr).toBe(0);
    expect(asMap((JSON.parse(cli.stdout) as OnlineAnswer).rows)).toEqual(asMap(fromB.rows));
    const table = await runCli(['metrics', 'online', '--group', group, '--url', a.url], env(1));
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain(version);
    await stopAll();
  }, 600_000);
});
