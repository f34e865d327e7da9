/**
 * A/B traffic splits against a real broker and real RocksDB, over real sockets: two versions
 * trained by the service (sims, the configured training, and popularity-count, a solution trained on
 * request), a 50/50 split started over HTTP and carried by `<group>.versions` back to the instance's
 * watcher, which loads both arms; answers for many users show both versions, each user always the
 * same arm, ids carry the arm, and the recommendations topic publishes each user's arm's list; a
 * second instance with a registry of its own fetches both arms and puts users in the same arms. Then
 * the split is ended, and a new split is promoted by version. Last, an experiment: synthetic users
 * click arm 2's lists three times as often; the online metrics (attribution, counted by the stream
 * processors of both instances) equal exactly what was sent, the report finds the difference, and
 * the winner is promoted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { prng, syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Consumer } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, type Recommendation } from '../../src/serde/avro.js';
import { parseRecommendationId, versionTag } from '../../src/serving/recommendation-id.js';
import { armOf } from '../../src/serving/split.js';
import type { SplitReport } from '../../src/serving/split-report.js';
import { readServing } from '../../src/stream/versions.js';
import { startService, type Service } from '../../src/stream/service.js';
import { silentLogger } from '../../src/util/log.js';
import { freshGroup, kafkaClients, rootHeaders, runCli, serviceEnv, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('split');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-split-'));
const env = serviceEnv(brokers, join(dir, 'state'), {
  STREAMREC_TRAINING_RECIPE: 'sims',
  STREAMREC_TRAINING_SPLIT: 'loo',
  STREAMREC_TRAINING_VERSIONS_DIR: join(dir, 'versions'),
  STREAMREC_INSTANCE_ID: 'split-1',
  STREAMREC_RECOMMENDATIONS_NUM_RESULTS: '5',
});
const config = loadConfig({ env });
const kafka = createKafka(config, [brokers], '-split-test');
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(kafka);
let listener: Consumer;
const published: { key: string; value: Recommendation }[] = [];
let service: Service;
let second: Service | undefined;
const NOW = Date.now();
const USERS = Array.from({ length: 80 }, (_, u) => `u${u}`);
let simsVersion = '';
let popVersion = '';

const api = async <T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: T }> => {
  const res = await fetch(`${service.url}/v1/groups/${group}${path}`, {
    method: init.method ?? 'GET',
    headers: rootHeaders(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
};

/** A user's list from an instance, asked again while the user's partition is moving (503, as clients retry). */
async function recommend(base: string, userId: string): Promise<List> {
  let body: List | undefined;
  await until(`a list for ${userId}`, async () => {
    const res = await fetch(`${base}/v1/groups/${group}/recommendations?userId=${userId}&numResults=5`, { headers: rootHeaders() });
    if (res.status === 503) return false;
    expect(res.status).toBe(200);
    body = (await res.json()) as List;
    return true;
  }, 30_000);
  return body!;
}

interface List {
  recommendationId: string;
  version: string;
  itemList: { itemId: string }[];
}

beforeAll(async () => {
  await applyTopics(admin, group, config);
  const events = [...syntheticInteractions({ seed: 7, users: 100, items: 200, events: 4000, start: NOW - 4_000_000 })];
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  listener = kafka.consumer({ groupId: `${group}-listener` });
  await listener.connect();
  await listener.subscribe({ topics: [topicName(group, 'recommendations')], fromBeginning: true });
  await listener.run({
    eachMessage: async ({ message }) => {
      published.push({ key: message.key!.toString(), value: codecs.Recommendation.decode(message.value!) });
    },
  });
  service = await startService({ config, group, brokers: [brokers], log: silentLogger, apiLogger: false });
  await until('all events applied', () => service.processor.status().applied >= 4000, 120_000);
  await until('a version served', () => service.serving.current !== undefined, 120_000);
  simsVersion = service.serving.current!.version;
  // The second version: a solution of another recipe, trained on request (not deployed).
  expect((await api('/solutions', { method: 'POST', body: { name: 'pop', recipe: 'popularity-count' } })).status).toBe(201);
  expect((await api('/solutions/pop/versions', { method: 'POST' })).status).toBe(202);
  await until('the second version', () => service.versions.catalog.list().some((v) => v.recipe === 'popularity-count'), 120_000);
  popVersion = service.versions.catalog.list().find((v) => v.recipe === 'popularity-count')!.version;
}, 300_000);

afterAll(async () => {
  await second?.stop();
  await service?.stop();
  await listener?.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe('a traffic split', () => {
  it('answers each user from one arm, the same every time, with the arm in the id; the recommendations topic too', async () => {
    expect(service.serving.current!.version).toBe(simsVersion);
    const started = await api<{ id: string; mainVersion: string; arms: { arm: number; version: string }[] }>('/deployments/default/split', {
      method: 'POST',
      body: { arms: [{ version: simsVersion, weight: 1 }, { version: popVersion, weight: 1 }] },
    });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const split = started.body;
    expect(split).toMatchObject({ mainVersion: simsVersion, arms: [{ arm: 1, version: simsVersion }, { arm: 2, version: popVersion }] });
    // Carried by <group>.versions, read back by the watcher, both arms loaded.
    expect((await readServing(kafka, group))?.split?.id).toBe(split.id);
    await until('the split applied', () => service.serving.split?.id === split.id, 30_000);
    expect((await api<{ appliedHere: boolean }>('/deployments/default/split')).body.appliedHere).toBe(true);

    const armVersion = [simsVersion, popVersion];
    const armOfUser = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      for (const userId of USERS) {
        const r = await api<List>(`/recommendations?userId=${userId}&numResults=5`);
        expect(r.status).toBe(200);
        const id = parseRecommendationId(r.body.recommendationId);
        expect(id?.arm).toBeGreaterThanOrEqual(1);
        const arm = id!.arm!;
        expect(r.body.version).toBe(armVersion[arm - 1]);
        expect(id!.versionTag).toBe(versionTag(r.body.version));
        expect(arm, `user ${userId} stays in one arm`).toBe(armOfUser.get(userId) ?? arm);
        armOfUser.set(userId, arm);
        // Every instance puts the user where the hash says.
        expect(arm).toBe(armOf({ id: split.id, arms: [{ version: simsVersion, weight: 1 }, { version: popVersion, weight: 1 }] }, userId));
      }
    }
    // A second instance (a registry of its own: both arms fetched from <group>.models) applies the
    // same split, and its answers put each user in the same arm.
    second = await startService({
      config: loadConfig({ env: { ...env, STREAMREC_STATE_DIR: join(dir, 'state-2'), STREAMREC_TRAINING_RECIPE: 'none', STREAMREC_TRAINING_VERSIONS_DIR: join(dir, 'versions-2'), STREAMREC_INSTANCE_ID: 'split-2' } }),
      group,
      brokers: [brokers],
      log: silentLogger,
      apiLogger: false,
    });
    await until('the split applied on the second instance', () => second!.serving.split?.id === split.id, 60_000);
    expect(second.versions.status()).toMatchObject({ fetchFailures: 0, loadFailures: 0, split: split.id });
    const both = [service, second];
    await until('both instances own partitions and know every owner', () => both.every((s) => s.processor.status().partitions.length > 0) && USERS.every((u) => both.filter((s) => s.processor.owner(u).self).length === 1), 120_000);
    for (const userId of USERS.slice(0, 30)) {
      const body = await recommend(second.url, userId);
      expect(parseRecommendationId(body.recommendationId)?.arm).toBe(armOfUser.get(userId));
      expect(body.version).toBe(armVersion[armOfUser.get(userId)! - 1]);
    }
    const counts = [1, 2].map((a) => [...armOfUser.values()].filter((x) => x === a).length);
    expect(counts[0]).toBeGreaterThan(20);
    expect(counts[1]).toBeGreaterThan(20);
    // GetPersonalizedRanking follows the arm too.
    const ranked = await fetch(`${service.url}/v1/groups/${group}/personalized-ranking`, { method: 'POST', headers: rootHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ userId: 'u3', inputList: ['i1', 'i2', 'i3'] }) });
    expect(((await ranked.json()) as List).version).toBe(armVersion[armOfUser.get('u3')! - 1]);

    // An event of a user of each arm: the list published for it is that arm's.
    const sentAt = Date.now();
    const pick = [1, 2].map((a) => USERS.find((u) => armOfUser.get(u) === a)!);
    for (const userId of pick) {
      const res = await fetch(`${service.url}/v1/groups/${group}/events`, { method: 'POST', headers: rootHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ userId, eventList: [{ eventType: 'click', itemId: 'i5', sentAt }] }) });
      expect(res.status).toBe(202);
    }
    await until('both lists on the topic', () => pick.every((u) => published.some((p) => p.key === u && p.value.EVENT_TIMESTAMP === sentAt)), 15_000);
    for (const [i, userId] of pick.entries()) {
      const p = published.find((x) => x.key === userId && x.value.EVENT_TIMESTAMP === sentAt)!;
      expect(p.value.MODEL_VERSION).toBe(armVersion[i]);
      expect(parseRecommendationId(p.value.RECOMMENDATION_ID)?.arm).toBe(i + 1);
    }
  }, 120_000);

  it('ends: everyone is answered by the main version on arm 0; a new split is promoted by version, which ends it', async () => {
    const ended = await api<{ version: string }>('/deployments/default/split', { method: 'DELETE' });
    expect(ended.status, JSON.stringify(ended.body)).toBe(200);
    await until('the split ended', () => service.serving.split === undefined, 30_000);
    await until('the split ended on the second instance', () => second!.serving.split === undefined, 30_000);
    for (const userId of USERS.slice(0, 20)) {
      const r = await recommend(service.url, userId);
      expect(r.version).toBe(simsVersion);
      expect(parseRecommendationId(r.recommendationId)?.arm).toBe(0);
    }

    // The CLI starts a split through <group>.versions, without the service.
    const cli = await runCli(['split', 'start', '--group', group, '--arm', `${simsVersion}=1`, '--arm', `${popVersion}=1`], env);
    expect(cli.code, cli.stderr).toBe(0);
    const id = /^split ([0-9a-f]{12}) on /.exec(cli.stdout)?.[1];
    expect(id, cli.stdout).toBeDefined();
    await until('the new split applied', () => service.serving.split?.id === id, 30_000);
    // The report (nothing attributed to this split's arms yet: no winner), over HTTP and the CLI.
    const report = await api<SplitReport>('/deployments/default/split/report');
    expect(report.status).toBe(200);
    expect(report.body.arms).toHaveLength(2);
    expect(report.body.winner).toBeNull();
    const printed = await runCli(['split', 'report', '--group', group, '--url', service.url], env);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(new RegExp(`^split ${id}`));
    // Promoting the winner when there is none: refused, naming why.
    const none = await api<{ code: string }>('/deployments/default/split/promote', { method: 'POST', body: {} });
    expect(none.status).toBe(409);
    expect(none.body.code).toBe('SPLIT_NO_WINNER');
    const promoted = await api<{ version: string; reason: string }>('/deployments/default/split/promote', { method: 'POST', body: { version: popVersion } });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    expect(promoted.body.reason).toMatch(/arm 2 promoted by request/);
    await until('the promoted version served, the split over', () => service.serving.current?.version === popVersion && service.serving.split === undefined, 60_000);
    const r = await recommend(service.url, 'u1');
    expect(r.version).toBe(popVersion);
    expect(parseRecommendationId(r.recommendationId)?.arm).toBe(0);
    expect((await api<{ version: string; previous: string[] }>('/deployments/default')).body).toMatchObject({ version: popVersion, previous: [simsVersion] });
  }, 120_000);

  it('an experiment: users click the better arm three times as often; attribution counts exactly what was sent, the report finds the winner, and it is promoted', async () => {
    // popularity-count serves now (promoted above). Arm 1: it; arm 2: sims, whose lists get the clicks.
    const versions = [popVersion, simsVersion];
    const started = await api<{ id: string }>('/deployments/default/split', { method: 'POST', body: { arms: versions.map((version) => ({ version, weight: 1 })) } });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    await until('the experiment applied on both instances', () => [service, second!].every((s) => s.serving.split?.id === started.body.id), 60_000);

    const clickRate = [0.1, 0.3];
    const random = prng(11);
    const sent = versions.map(() => ({ view: 0, click: 0, purchase: 0, shown: 0, revenue: 0 }));
    for (const userId of USERS) {
      const eventList: Record<string, unknown>[] = [];
      for (let round = 0; round < 8; round++) {
        // Every instance answers (a user of the second instance's partitions is forwarded there).
        const list = await recommend(service.url, userId);
        const arm = parseRecommendationId(list.recommendationId)!.arm!;
        const s = sent[arm - 1]!;
        const shown = list.itemList.length > 0 ? list.itemList.map((i) => i.itemId) : ['i1'];
        const cite = { recommendationId: list.recommendationId, sentAt: Date.now() };
        eventList.push({ eventType: 'view', itemId: shown[0], impression: shown, ...cite });
        s.view++;
        s.shown += shown.length;
        if (random() >= clickRate[arm - 1]!) continue;
        eventList.push({ eventType: 'click', itemId: shown[shown.length - 1], ...cite });
        s.click++;
        if (random() < 0.5) {
          const value = Math.round(random() * 10_000) / 100;
          eventList.push({ eventType: 'purchase', itemId: shown[shown.length - 1], eventValue: value, ...cite });
          s.purchase++;
          s.revenue += value;
        }
      }
      const res = await fetch(`${service.url}/v1/groups/${group}/events`, { method: 'POST', headers: rootHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ userId, eventList }) });
      expect(res.status).toBe(202);
    }
    expect(Math.min(sent[0]!.view, sent[1]!.view)).toBeGreaterThan(100);

    interface Row { version: string | null; arm: number | null; eventType: string; events: number; impressionEvents: number; impressedItems: number; valueSum: number }
    const rowOf = (rows: Row[], arm: number, eventType: string) => rows.find((r) => r.version === versions[arm - 1] && r.arm === arm && r.eventType === eventType);
    let rows: Row[] = [];
    await until('every event counted, over both instances\' partitions', async () => {
      rows = (await api<{ rows: Row[] }>('/metrics/online')).body.rows;
      return [1, 2].every((arm) => (['view', 'click', 'purchase'] as const).every((t) => (rowOf(rows, arm, t)?.events ?? 0) >= sent[arm - 1]![t]));
    }, 60_000);
    for (const arm of [1, 2]) {
      const s = sent[arm - 1]!;
      expect(rowOf(rows, arm, 'view')).toMatchObject({ events: s.view, impressionEvents: s.view, impressedItems: s.shown });
      expect(rowOf(rows, arm, 'click')).toMatchObject({ events: s.click, impressionEvents: 0 });
      expect(rowOf(rows, arm, 'purchase')?.events ?? 0).toBe(s.purchase);
      expect(rowOf(rows, arm, 'purchase')?.valueSum ?? 0).toBeCloseTo(s.revenue, 6);
    }

    const report = await api<SplitReport>('/deployments/default/split/report');
    expect(report.status).toBe(200);
    expect(report.body.arms.map((a) => ({ arm: a.arm, version: a.version, impressions: a.impressions, clicks: a.clicks, conversions: a.conversions }))).toEqual(
      [1, 2].map((arm) => ({ arm, version: versions[arm - 1], impressions: sent[arm - 1]!.view, clicks: sent[arm - 1]!.click, conversions: sent[arm - 1]!.purchase })),
    );
    expect(report.body.arms[1]!.revenue).toBeCloseTo(sent[1]!.revenue, 6);
    for (const a of report.body.arms) {
      expect(a.ctr).toBeCloseTo(a.clicks / a.impressions, 9);
      expect(a.ctrInterval!.low).toBeLessThan(a.ctr!);
      expect(a.ctrInterval!.high).toBeGreaterThan(a.ctr!);
    }
    expect(report.body.comparisons).toHaveLength(1);
    expect(report.body.comparisons[0]).toMatchObject({ significant: true, reliable: true });
    expect(report.body.winner).toEqual({ arm: 2, version: simsVersion });

    const promoted = await api<{ version: string; reason: string }>('/deployments/default/split/promote', { method: 'POST', body: {} });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    expect(promoted.body.version).toBe(simsVersion);
    await until('the winner served, the split over', () => service.serving.current?.version === simsVersion && service.serving.split === undefined, 60_000);
  }, 180_000);
});
