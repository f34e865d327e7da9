/**
 * A/B traffic splits: the user hash (stable, weighted), the split's validation, the served model's
 * arm per user, the query answers' version and recommendationId arm, the statistics against
 * hand-computed values, the report, and the split routes through app.inject (online metrics from a
 * fake OnlineMetricsSource).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, type GroupServices } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/index.js';
import { prng, syntheticInteractions } from '../../src/data/synthetic.js';
import { isAppError } from '../../src/errors/index.js';
import { hrnn, type HrnnModel } from '../../src/recipes/hrnn.js';
import { popularityCount } from '../../src/recipes/popularity.js';
import { sims } from '../../src/recipes/sims.js';
import { createCodecs, type Interaction } from '../../src/serde/avro.js';
import { normalCdf, normalQuantile, twoProportionTest, wilsonInterval } from '../../src/serving/ab-stats.js';
import { QueryService } from '../../src/serving/query.js';
import { parseRecommendationId, versionTag } from '../../src/serving/recommendation-id.js';
import { currentHrnnState, ServingModel, userStates, type ServingVersion } from '../../src/serving/served-model.js';
import { parseArm } from '../../src/cli/commands/split.js';
import { armOf, newSplit, parseSplit, splitPoint, validateSplitArms, type SplitArm, type TrafficSplit } from '../../src/serving/split.js';
import { splitReport } from '../../src/serving/split-report.js';
import type { HrnnUserState, UserState } from '../../src/state/model.js';
import { Resources } from '../../src/stream/resources.js';
import type { OnlineMetricRow } from '../../src/stream/online-metrics.js';
import { parseServingRecord, type ServingRecord } from '../../src/stream/versions.js';
import { versionsToPrune } from '../../src/training/model-transfer.js';
import type { VersionInfo } from '../../src/training/registry.js';

const NOW = Date.UTC(2026, 11, 1);

describe('the user hash', () => {
  const split = { id: 'a1b2c3d4e5f6', arms: [{ version: 'v1', weight: 1 }, { version: 'v2', weight: 1 }] };

  it('puts a user in the same arm every time, and another split draws users afresh', () => {
    for (let u = 0; u < 200; u++) expect(armOf(split, `user-${u}`)).toBe(armOf({ ...split }, `user-${u}`));
    expect(splitPoint('user-1', 'x')).toBe(splitPoint('user-1', 'x'));
    const moved = Array.from({ length: 1000 }, (_, u) => armOf(split, `user-${u}`) !== armOf({ ...split, id: 'another' }, `user-${u}`)).filter(Boolean).length;
    // Independent draws of a 50/50 split: about half the users change arm.
    expect(moved).toBeGreaterThan(400);
    expect(moved).toBeLessThan(600);
  });

  it('shares users by the weights within 2 points over 10,000 users', () => {
    for (const weights of [[1, 1], [9, 1], [1, 2, 7], [0.5, 0.25, 0.25]]) {
      const s = { id: `w-${weights.join('-')}`, arms: weights.map((weight, i) => ({ version: `v${i}`, weight })) };
      const n = 10_000;
      const counts = new Array<number>(weights.length).fill(0);
      for (let u = 0; u < n; u++) counts[armOf(s, `u${u}`) - 1]!++;
      const total = weights.reduce((a, b) => a + b, 0);
      weights.forEach((w, i) => expect(Math.abs(counts[i]! / n - w / total), `weights ${weights}: arm ${i + 1}`).toBeLessThan(0.02));
    }
  });
});

describe('a split request', () => {
  const known = (v: string) => ['v1', 'v2', 'v3'].includes(v);
  const refused = (arms: unknown) => {
    try {
      validateSplitArms(arms, known);
    } catch (err) {
      if (isAppError(err)) return { code: err.code, field: err.field, message: err.message };
      throw err;
    }
    throw new Error('accepted');
  };

  it('takes 2+ distinct known versions with weights > 0, and names the field of what is wrong', () => {
    expect(validateSplitArms([{ version: 'v1', weight: 1 }, { version: 'v2', weight: 3 }], known)).toEqual([{ version: 'v1', weight: 1 }, { version: 'v2', weight: 3 }]);
    expect(refused([{ version: 'v1', weight: 1 }])).toMatchObject({ code: 'REQUEST_INVALID', field: 'arms' });
    expect(refused([{ version: 'v1', weight: 1 }, { version: 'v2', weight: 0 }])).toMatchObject({ code: 'REQUEST_INVALID', field: 'arms[1].weight' });
    expect(refused([{ version: 'v1', weight: 1 }, { version: 'v1', weight: 1 }])).toMatchObject({ code: 'REQUEST_INVALID', field: 'arms[1].version' });
    expect(refused([{ version: 'v1', weight: 1 }, { version: 'v9', weight: 1 }])).toMatchObject({ code: 'VERSION_NOT_FOUND', field: 'arms[1].version' });
    expect(refused('v1,v2')).toMatchObject({ code: 'REQUEST_INVALID', field: 'arms' });
  });

  it('from the CLI: --arm version=weight, weight 1 when left out', () => {
    expect(parseArm('v2=3', parseArm('v-1'))).toEqual([{ version: 'v-1', weight: 1 }, { version: 'v2', weight: 3 }]);
    for (const bad of ['v1=0', 'v1=x', '=2']) expect(() => parseArm(bad)).toThrow(/--arm takes version=weight/);
  });

  it('travels on the announcement and is read back', () => {
    const split = newSplit([{ version: 'v1', weight: 1 }, { version: 'v2', weight: 1 }], new Date(NOW));
    expect(split.id).toMatch(/^[0-9a-f]{12}$/);
    const record: ServingRecord = { version: 'v1', previous: [], at: 'now', reason: 'r', split };
    expect(parseServingRecord(Buffer.from(JSON.stringify(record)))).toEqual(record);
    expect(parseServingRecord(Buffer.from(JSON.stringify({ ...record, split: undefined })))).toEqual({ version: 'v1', previous: [], at: 'now', reason: 'r' });
    expect(parseSplit({ id: 'x', arms: [{ version: 'v1', weight: -1 }, { version: 'v2', weight: 1 }] })).toBeUndefined();
  });
});

describe('pruning the models topic during a split', () => {
  it("keeps every arm's version (instances that join later fetch it)", () => {
    const ten = Array.from({ length: 10 }, (_, i) => ({ version: `v${i}`, info: { createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString() } as VersionInfo }));
    const serving = { version: 'v2', previous: ['v0', 'v1', 'v3', 'v4', 'v5'] };
    expect(versionsToPrune(ten, serving)).toEqual(['v0', 'v1', 'v6']);
    const split = newSplit([{ version: 'v2', weight: 1 }, { version: 'v0', weight: 1 }, { version: 'v6', weight: 1 }]);
    expect(versionsToPrune(ten, { ...serving, split })).toEqual(['v1']);
  });
});

describe('the statistics (hand-computed)', () => {
  it('normal CDF and quantile', () => {
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 7);
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 7);
    expect(normalQuantile(0.8)).toBeCloseTo(0.8416212335729143, 7);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232306167813, 6);
  });

  it('the Wilson interval: 10/100 is [0.05523, 0.17437]; 0/20 and 20/20 stay inside [0, 1]', () => {
    const w = wilsonInterval(10, 100);
    expect(w.low).toBeCloseTo(0.0552291, 6);
    expect(w.high).toBeCloseTo(0.1743657, 6);
    expect(wilsonInterval(0, 20)).toEqual({ low: 0, high: expect.closeTo(0.1611252, 6) });
    expect(wilsonInterval(20, 20)).toEqual({ low: expect.closeTo(0.8388748, 6), high: 1 });
    expect(wilsonInterval(0, 0)).toEqual({ low: 0, high: 1 });
  });

  it('the two-proportion z-test: 120/1000 against 90/1000 is z 2.18827, p 0.02865, significant at 0.05', () => {
    const t = twoProportionTest(120, 1000, 90, 1000);
    expect(t.z).toBeCloseTo(2.1882659, 6);
    expect(t.pValue).toBeCloseTo(0.0286502, 6);
    expect(t.significant).toBe(true);
    expect(t.reliable).toBe(true);
    expect(t.difference).toBeCloseTo(0.03, 12);
    expect(t.relativeDifference).toBeCloseTo(1 / 3, 12);
    expect(t.minimumDetectableEffect).toBeCloseTo(0.0384083, 6);
    // 80% power for a difference this size: (1.95996 + 0.84162)² (0.12·0.88 + 0.09·0.91) / 0.03² = 1636 per arm, 636 more.
    expect(t.samplesStillNeeded).toBe(636);
  });

  it('52/500 against 45/500 is not significant (p 0.4545), and about 6512 more impressions per arm would tell', () => {
    const t = twoProportionTest(52, 500, 45, 500);
    expect(t.z).toBeCloseTo(0.7479426, 6);
    expect(t.pValue).toBeCloseTo(0.4544948, 6);
    expect(t.significant).toBe(false);
    expect(t.samplesStillNeeded).toBe(6512);
    expect(twoProportionTest(0, 100, 0, 100)).toMatchObject({ z: null, pValue: null, significant: false });
  });
});

function rows(version: string, arm: number, r: { impressions: number; clicks: number; purchases?: number; revenue?: number }): OnlineMetricRow[] {
  const out: OnlineMetricRow[] = [
    { version, arm, eventType: 'view', events: r.impressions, impressionEvents: r.impressions, impressedItems: 10 * r.impressions, valueSum: 0, valueCount: 0 },
    { version, arm, eventType: 'click', events: r.clicks, impressionEvents: 0, impressedItems: 0, valueSum: 0, valueCount: 0 },
  ];
  if (r.purchases) out.push({ version, arm, eventType: 'purchase', events: r.purchases, impressionEvents: 0, impressedItems: 0, valueSum: r.revenue ?? 0, valueCount: r.purchases });
  return out;
}

describe('the report', () => {
  const split: TrafficSplit = { id: 's1', startedAt: '2026-12-01T00:00:00.000Z', arms: [{ version: 'v1', weight: 1 }, { version: 'v2', weight: 1 }] };

  it("counts each arm's rows only (version and arm), and finds the significantly better arm", () => {
    const r = splitReport(split, [
      ...rows('v1', 1, { impressions: 1000, clicks: 90, purchases: 7, revenue: 70.5 }),
      ...rows('v2', 2, { impressions: 1000, clicks: 120, purchases: 9, revenue: 99 }),
      // Not this split's: v1 served without a split (arm 0), v2 on another arm number, unattributed events.
      ...rows('v1', 0, { impressions: 5000, clicks: 5 }),
      ...rows('v2', 1, { impressions: 5000, clicks: 5 }),
      { version: null, arm: null, eventType: 'click', events: 777, impressionEvents: 0, impressedItems: 0, valueSum: 0, valueCount: 0 },
    ]);
    expect(r.arms).toEqual([
      { arm: 1, version: 'v1', weight: 1, share: 0.5, impressions: 1000, clicks: 90, ctr: 0.09, ctrInterval: expect.any(Object), conversions: 7, revenue: 70.5, events: { view: 1000, click: 90, purchase: 7 } },
      { arm: 2, version: 'v2', weight: 1, share: 0.5, impressions: 1000, clicks: 120, ctr: 0.12, ctrInterval: expect.any(Object), conversions: 9, revenue: 99, events: { view: 1000, click: 120, purchase: 9 } },
    ]);
    expect(r.arms[1]!.ctrInterval!.low).toBeLessThan(0.12);
    expect(r.comparisons).toHaveLength(1);
    expect(r.comparisons[0]).toMatchObject({ a: 1, b: 2, significant: true, alpha: 0.05 });
    expect(r.comparisons[0]!.pValue).toBeCloseTo(0.0286502, 6);
    expect(r.winner).toEqual({ arm: 2, version: 'v2' });
    expect(r.decision).toMatch(/^arm 2 \(v2\) has the best CTR/);
    expect(r.warnings).toEqual([]);
  });

  it('names no winner when the difference is not significant, and says how much more traffic would tell', () => {
    const r = splitReport(split, [...rows('v1', 1, { impressions: 500, clicks: 45 }), ...rows('v2', 2, { impressions: 500, clicks: 52 })]);
    expect(r.winner).toBeNull();
    expect(r.decision).toMatch(/no significant winner: arm 2's CTR 0\.1040 against arm 1's: p-value 0\.454.*6512 more impressions/);
    const empty = splitReport(split, []);
    expect(empty.winner).toBeNull();
    expect(empty.arms.map((a) => a.ctr)).toEqual([null, null]);
    expect(empty.decision).toMatch(/no impressions/);
  });

  it('holds each of three arms\' comparisons to alpha / 3, uses the click and conversion types asked for, and warns of clicks without impressions', () => {
    const three: TrafficSplit = { ...split, arms: [...split.arms, { version: 'v3', weight: 2 }] };
    const data = [...rows('v1', 1, { impressions: 1000, clicks: 90 }), ...rows('v2', 2, { impressions: 1000, clicks: 120 }), ...rows('v3', 3, { impressions: 2000, clicks: 180 })];
    const r = splitReport(three, data);
    expect(r.comparisons.map((c) => [c.a, c.b, c.alpha])).toEqual([[1, 2, 0.05 / 3], [1, 3, 0.05 / 3], [2, 3, 0.05 / 3]]);
    // p 0.0287 passes 0.05 but not 0.0167.
    expect(r.winner).toBeNull();
    expect(r.arms[2]!.share).toBe(0.5);
    const custom = splitReport(split, data, { clickType: 'view', conversionType: 'click' });
    expect(custom.arms[0]).toMatchObject({ clicks: 1000, conversions: 90 });
    const over = splitReport(split, [...rows('v1', 1, { impressions: 10, clicks: 20 }), ...rows('v2', 2, { impressions: 10, clicks: 1 })]);
    expect(over.arms[0]!.ctr).toBe(2);
    expect(over.warnings[0]).toMatch(/arm 1: 20 click events but 10 impressions/);
  });
});

/** Simulated users of a split, each shown `shown` lists and clicking with their arm's probability: the rows attribution would count. */
function simulate(split: TrafficSplit, clickRate: readonly number[], users: number, seed: number, shown = 1): OnlineMetricRow[] {
  const random = prng(seed);
  const counts = split.arms.map(() => ({ impressions: 0, clicks: 0 }));
  for (let u = 0; u < users; u++) {
    const arm = armOf(split, `sim-${u}`);
    for (let k = 0; k < shown; k++) {
      counts[arm - 1]!.impressions++;
      if (random() < clickRate[arm - 1]!) counts[arm - 1]!.clicks++;
    }
  }
  return counts.flatMap((c, i) => rows(split.arms[i]!.version, i + 1, c));
}

describe('simulated experiments', () => {
  const split = (id: string): TrafficSplit => ({ id, startedAt: '', arms: [{ version: 'v1', weight: 1 }, { version: 'v2', weight: 1 }] });

  it('finds the arm whose users click more (10% against 13%, 5,000 users)', () => {
    const r = splitReport(split('sim'), simulate(split('sim'), [0.1, 0.13], 5000, 1));
    expect(r.winner).toEqual({ arm: 2, version: 'v2' });
    expect(r.arms[1]!.ctrInterval!.low).toBeLessThan(0.13);
    expect(r.arms[1]!.ctrInterval!.high).toBeGreaterThan(0.13);
  });

  it('calls about 5% of A/A experiments significant at alpha 0.05 (300 experiments of 500 users shown 4 lists each)', () => {
    let significant = 0;
    for (let e = 0; e < 300; e++) if (splitReport(split(`aa-${e}`), simulate(split(`aa-${e}`), [0.1, 0.1], 500, 100 + e, 4)).winner) significant++;
    expect(significant / 300).toBeGreaterThan(0.015);
    expect(significant / 300).toBeLessThan(0.095);
  });
});

/** Users u0..u59 of the synthetic generator and two versions: sims (v-sims) and popularity-count (v-pop). */
function fixture(seed = 5) {
  const events: Interaction[] = [...syntheticInteractions({ seed, users: 60, items: 100, events: 2500, start: NOW - 3_000_000 })];
  const users = new Map<string, UserState>();
  for (const e of events) {
    const u = users.get(e.USER_ID) ?? { lastTs: 0, sessionKey: null, session: 0, sessionStart: e.TIMESTAMP, total: 0, events: [], seen: [] };
    u.events.push({ item: e.ITEM_ID, ts: e.TIMESTAMP, type: e.EVENT_TYPE, value: null, session: 0 });
    u.total++;
    users.set(e.USER_ID, u);
  }
  const versions: ServingVersion[] = [
    { version: 'v-sims', model: sims.train(events), excludeSeen: false },
    { version: 'v-pop', model: popularityCount.train(events), excludeSeen: false },
  ];
  const serving = new ServingModel();
  serving.swap(versions[0]!);
  const resources = new Resources();
  const query = new QueryService({
    serving,
    userState: async (id) => {
      const user = users.get(id);
      return user ? { user, hrnn: undefined } : undefined;
    },
    forEachItemCount: async () => undefined,
    items: async () => new Map(),
    user: async () => undefined,
    resources,
    trendingHalfLifeMs: 86_400_000,
    now: () => NOW,
  });
  return { users, versions, serving, query, resources, events };
}

/** A QueryService over `serving` whose users have `hrnn` as their stored state (the main version's, as the processor keeps it). */
function hrnnQuery(serving: ServingModel, users: Map<string, UserState>, hrnnOf: (userId: string) => HrnnUserState | undefined): QueryService {
  return new QueryService({
    serving,
    userState: async (id) => {
      const user = users.get(id);
      return user ? { user, hrnn: hrnnOf(id) } : undefined;
    },
    forEachItemCount: async () => undefined,
    items: async () => new Map(),
    user: async () => undefined,
    resources: new Resources(),
    trendingHalfLifeMs: 86_400_000,
    now: () => NOW,
  });
}

describe('answers during a split', () => {
  it("answer each user from the user's arm's version, always the same, with the arm in the recommendationId", async () => {
    const f = fixture();
    const split = newSplit([{ version: 'v-sims', weight: 1 }, { version: 'v-pop', weight: 1 }]);
    const before = await f.query.recommendations({ userId: 'u1', numResults: 5 });
    expect(parseRecommendationId(before.recommendationId)).toEqual({ versionTag: versionTag('v-sims'), arm: 0 });
    f.serving.setSplit(split, f.versions);
    const seen = new Map<string, string>();
    for (const userId of f.users.keys()) {
      for (let k = 0; k < 2; k++) {
        const arm = armOf(split, userId);
        const want = f.versions[arm - 1]!.version;
        for (const a of [await f.query.recommendations({ userId, numResults: 5 }), await f.query.ranking({ userId, inputList: ['i1', 'i2'] }), await f.query.related({ itemId: 'i1', numResults: 3, userId })]) {
          expect(a.version).toBe(want);
          expect(parseRecommendationId(a.recommendationId)).toEqual({ versionTag: versionTag(want), arm });
        }
        expect(seen.get(userId) ?? want).toBe(want);
        seen.set(userId, want);
      }
    }
    const served = new Set(seen.values());
    expect(served).toEqual(new Set(['v-sims', 'v-pop']));
    // Without a user, related items come from the main version on arm 0.
    expect(parseRecommendationId((await f.query.related({ itemId: 'i1', numResults: 3 })).recommendationId)?.arm).toBe(0);
    f.serving.setSplit(undefined);
    expect((await f.query.recommendations({ userId: 'u1', numResults: 5 })).version).toBe('v-sims');
  });
});

describe('HRNN arms', () => {
  it("answer a user of another version's arm from the state re-derived from the user's events, as that version would after a promotion", async () => {
    const f = fixture(9);
    const small = { hiddenSize: 8, epochs: 1, workers: 1, negatives: 32 };
    const a: ServingVersion = { version: 'v-a', model: await hrnn.train(f.events, { ...small, seed: 1 }), excludeSeen: true };
    const b: ServingVersion = { version: 'v-b', model: await hrnn.train(f.events, { ...small, seed: 2 }), excludeSeen: true };
    // The processor keeps the main version's (v-a's) states.
    const stored = new Map([...f.users].map(([id, u]) => [id, userStates('v-a', [currentHrnnState(a.model as HrnnModel, 'v-a', undefined, u.events)])[0]!]));
    const split = newSplit([{ version: 'v-a', weight: 1 }, { version: 'v-b', weight: 1 }]);
    const serving = new ServingModel();
    serving.swap(a);
    const applied: string[][] = [];
    serving.on('split', (vs) => applied.push(vs.map((v) => v.version)));
    serving.setSplit(split, [a, b]);
    // Both arms' models get new items (hrnn-coldstart) and the stored ones (the service listens to 'split').
    expect(serving.hrnnModels()).toEqual([a.model, b.model]);
    expect(applied).toEqual([['v-a', 'v-b']]);
    const query = hrnnQuery(serving, f.users, (id) => stored.get(id));
    const only = (v: ServingVersion) => {
      const m = new ServingModel();
      m.swap(v);
      return hrnnQuery(m, f.users, (id) => stored.get(id));
    };
    const [onlyA, onlyB] = [only(a), only(b)];
    const arms = new Set<number>();
    let differ = 0;
    for (const userId of [...f.users.keys()].slice(0, 30)) {
      const [la, lb] = [await onlyA.recommendations({ userId, numResults: 10 }), await onlyB.recommendations({ userId, numResults: 10 })];
      if (JSON.stringify(la.itemList) !== JSON.stringify(lb.itemList)) differ++;
      const arm = armOf(split, userId);
      arms.add(arm);
      const got = await query.recommendations({ userId, numResults: 10 });
      const want = await (arm === 1 ? onlyA : onlyB).recommendations({ userId, numResults: 10 });
      expect(got.version).toBe(arm === 1 ? 'v-a' : 'v-b');
      expect(got.itemList).toEqual(want.itemList);
      expect(parseRecommendationId(got.recommendationId)?.arm).toBe(arm);
    }
    expect(arms).toEqual(new Set([1, 2]));
    // The two versions rank differently, so the arm decides the list.
    expect(differ).toBeGreaterThan(20);
  });
});

describe('the split routes', () => {
  const ROOT = 'root-key-for-split-tests';
  const f = fixture();
  let announced: ServingRecord = { version: 'v-sims', previous: [], at: 'then', reason: 'test' };
  let online: OnlineMetricRow[] = [];
  const promoted: string[] = [];
  const services = (withOnline: boolean): GroupServices => ({
    query: f.query,
    resources: f.resources,
    deployment: {
      describe: () => ({ announced, loaded: announced.version, split: f.serving.split?.id ?? null }),
      promote: async (version, reason) => {
        promoted.push(`${version}: ${reason}`);
        announced = { version, previous: [announced.version], at: 'now', reason: reason ?? 'api' };
        f.serving.setSplit(undefined);
        return announced;
      },
      rollback: async () => announced,
      split: async (arms: readonly SplitArm[]) => {
        const split = newSplit(validateSplitArms(arms, (v) => f.versions.some((x) => x.version === v)));
        announced = { ...announced, split, reason: 'split' };
        f.serving.setSplit(split, split.arms.map((a) => f.versions.find((v) => v.version === a.version)!));
        return announced;
      },
      endSplit: async () => {
        const { split: _ended, ...rest } = announced;
        announced = { ...rest, reason: 'ended' };
        f.serving.setSplit(undefined);
        return announced;
      },
    },
    solutions: { configured: () => ({ recipe: 'sims', params: {} }), versions: () => [], version: () => undefined as never, train: () => false, running: () => false },
    ...(withOnline ? { online: { rows: async () => online } } : {}),
  });
  const shop = services(true);
  const bare = services(false);
  let app: FastifyInstance;
  beforeAll(async () => {
    const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT } });
    app = await buildApp({
      config,
      codecs: createCodecs(config),
      sink: { send: async () => undefined },
      groups: { has: async (g) => g === 'shop' || g === 'bare' },
      status: () => ({ state: 'running', ready: true }),
      logger: false,
      served: { names: () => ['shop', 'bare'], get: (g) => (g === 'shop' ? shop : g === 'bare' ? bare : undefined) },
    });
  });
  afterAll(() => app.close());
  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => app.inject({ method, url, headers: { 'x-api-key': ROOT }, ...(payload === undefined ? {} : { payload: payload as object }) });
  const base = '/v1/groups/shop/deployments/default/split';

  it('starts, describes, reports, refuses a promotion without a significant winner, promotes the winner and ends the split', async () => {
    expect((await call('GET', base)).json()).toMatchObject({ code: 'SPLIT_NOT_FOUND' });
    const bad = await call('POST', base, { arms: [{ version: 'v-sims', weight: 1 }, { version: 'v-nope', weight: 1 }] });
    expect(bad.statusCode).toBe(404);
    expect(bad.json()).toMatchObject({ code: 'VERSION_NOT_FOUND', field: 'arms[1].version' });
    expect((await call('POST', base, { arms: [{ version: 'v-sims', weight: 1 }] })).statusCode).toBe(400);
    const started = await call('POST', base, { arms: [{ version: 'v-sims', weight: 1 }, { version: 'v-pop', weight: 3 }] });
    expect(started.statusCode, started.body).toBe(201);
    const view = started.json<{ id: string; arms: unknown[]; appliedHere: boolean; mainVersion: string }>();
    expect(view).toMatchObject({ mainVersion: 'v-sims', appliedHere: true, arms: [{ arm: 1, version: 'v-sims', weight: 1, share: 0.25 }, { arm: 2, version: 'v-pop', weight: 3, share: 0.75 }] });
    expect((await call('GET', base)).json()).toEqual(view);

    online = [...rows('v-sims', 1, { impressions: 500, clicks: 45 }), ...rows('v-pop', 2, { impressions: 500, clicks: 52 })];
    const report = await call('GET', `${base}/report`);
    expect(report.statusCode, report.body).toBe(200);
    expect(report.json()).toMatchObject({ split: { id: view.id }, clickType: 'click', winner: null, arms: [{ arm: 1, impressions: 500, clicks: 45 }, { arm: 2, clicks: 52 }] });
    const refused = await call('POST', `${base}/promote`, {});
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'SPLIT_NO_WINNER', field: 'force' });
    expect((await call('POST', `${base}/promote`, { version: 'v-other' })).json()).toMatchObject({ code: 'REQUEST_INVALID', field: 'version' });

    online = [...rows('v-sims', 1, { impressions: 1000, clicks: 90 }), ...rows('v-pop', 2, { impressions: 1000, clicks: 120 })];
    const won = await call('POST', `${base}/promote`, {});
    expect(won.statusCode, won.body).toBe(200);
    expect(won.json()).toMatchObject({ version: 'v-pop', report: { winner: { arm: 2, version: 'v-pop' } } });
    expect(promoted.at(-1)).toMatch(/^v-pop: split [0-9a-f]{12}: arm 2 won/);
    expect(f.serving.split).toBeUndefined();
    expect((await call('GET', base)).statusCode).toBe(404);
  });

  it('promotes by force or by version, ends a split, and answers 409 ONLINE_METRICS_UNAVAILABLE without online metrics', async () => {
    await call('POST', base, { arms: [{ version: 'v-sims', weight: 1 }, { version: 'v-pop', weight: 1 }] });
    online = [...rows('v-sims', 1, { impressions: 100, clicks: 11 }), ...rows('v-pop', 2, { impressions: 100, clicks: 10 })];
    const forced = await call('POST', `${base}/promote`, { force: true });
    expect(forced.json()).toMatchObject({ version: 'v-sims' });
    expect(promoted.at(-1)).toMatch(/arm 1 promoted by force/);

    await call('POST', base, { arms: [{ version: 'v-sims', weight: 1 }, { version: 'v-pop', weight: 1 }] });
    const ended = await call('DELETE', base);
    expect(ended.statusCode, ended.body).toBe(200);
    expect(f.serving.split).toBeUndefined();
    expect((await call('DELETE', base)).json()).toMatchObject({ code: 'SPLIT_NOT_FOUND' });

    const bareBase = '/v1/groups/bare/deployments/default/split';
    await call('POST', bareBase, { arms: [{ version: 'v-sims', weight: 1 }, { version: 'v-pop', weight: 1 }] });
    const none = await call('GET', `${bareBase}/report`);
    expect(none.statusCode).toBe(409);
    expect(none.json()).toMatchObject({ code: 'ONLINE_METRICS_UNAVAILABLE' });
    const byVersion = await call('POST', `${bareBase}/promote`, { version: 'v-pop' });
    expect(byVersion.json()).toMatchObject({ version: 'v-pop', report: null });
    expect((await call('GET', '/v1/groups/shop/deployments/other/split')).json()).toMatchObject({ code: 'RESOURCE_NOT_FOUND', field: 'name' });
  });
});
