/**
 * The `exclude` seen-items rule over a user's whole history (issue 12, part 2): a model folder with
 * batch-infer, offline evaluation's scoring, the query API and the recommendations publisher leave
 * out every item of a user with hundreds of interactions, and they agree on what "seen" is: the
 * stream user state's `seen` list (distinct items in order of first touch, the latest
 * state.maxSeenItemsPerUser = 5,000 of them; src/training/seen.ts).
 *
 * The fixture makes the old bug show: the items the heavy user touched first, more than 300
 * interactions ago, are the catalogue's most popular ones (every recipe's first candidates), and
 * the latest 50 interactions (what a model folder used to leave out) do not include them.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, type GroupServices } from '../../src/api/app.js';
import { configKeys, loadConfig } from '../../src/config/index.js';
import { prng } from '../../src/data/synthetic.js';
import { hrnn } from '../../src/recipes/hrnn.js';
import { popularityCount } from '../../src/recipes/popularity.js';
import { sims } from '../../src/recipes/sims.js';
import type { Model } from '../../src/recipes/types.js';
import { createCodecs, type Recommendation } from '../../src/serde/avro.js';
import { applyInteraction, countingParams, MapStateView, type CountingParams, type InteractionFields } from '../../src/state/apply.js';
import { BatchView } from '../../src/state/batch-view.js';
import { MemoryStore } from '../../src/state/memory-store.js';
import { codecs as stateCodecs, keys, type ItemCounts } from '../../src/state/model.js';
import { RecommendationPublisher } from '../../src/serving/publisher.js';
import { QueryService } from '../../src/serving/query.js';
import { Resources } from '../../src/stream/resources.js';
import { ServingModel } from '../../src/serving/served-model.js';
import { batchInfer } from '../../src/training/batch-infer.js';
import { HISTORY_PER_USER, loadModel, saveModel, userData } from '../../src/training/model-files.js';
import { SEEN_ITEMS_PER_USER, seenItems, userSeenItems } from '../../src/training/seen.js';
import { leaveOneOutSplit } from '../../src/training/split.js';
import { testRecommendations, trainAndEvaluate } from '../../src/training/train.js';
import { silentLogger } from '../../src/util/log.js';

const config = loadConfig({ env: {} });
const T0 = Date.UTC(2026, 0, 1);
const HEAVY = 'heavy';

function event(user: string, item: string, ts: number): InteractionFields {
  return { USER_ID: user, ITEM_ID: item, TIMESTAMP: ts, EVENT_TYPE: 'click', EVENT_VALUE: null, SESSION_ID: null };
}

/**
 * `others` users touch the popular items p0..p{popular-1} and a few random tail items; the heavy
 * user touches every popular item first, then `tail` distinct tail items (t0, t1, ...), then the
 * held-out last item. The catalogue has `extraTail` tail items the heavy user never touches.
 */
function fixture(o: { popular: number; tail: number; extraTail: number; others: number; seed: number }): InteractionFields[] {
  const rand = prng(o.seed);
  const tailItems = o.tail + o.extraTail;
  const rows: InteractionFields[] = [];
  let ts = T0;
  for (let u = 0; u < o.others; u++) {
    for (let p = 0; p < o.popular; p++) if (rand() < 0.8) rows.push(event(`o${u}`, `p${p}`, (ts += 1000)));
    // Every item the heavy user never touches is in the data (some user has it).
    for (let t = o.tail + u; t < tailItems; t += o.others) rows.push(event(`o${u}`, `t${t}`, (ts += 1000)));
    for (let k = 0; k < 6; k++) rows.push(event(`o${u}`, `t${Math.floor(rand() * tailItems)}`, (ts += 1000)));
  }
  for (let p = 0; p < o.popular; p++) rows.push(event(HEAVY, `p${p}`, (ts += 1000)));
  for (let t = 0; t < o.tail; t++) rows.push(event(HEAVY, `t${t}`, (ts += 1000)));
  return rows;
}

/** The user's items (every one of them seen) and the latest HISTORY_PER_USER interactions' items (the old rule). */
function itemsOf(rows: readonly InteractionFields[], user: string): { all: Set<string>; latest: Set<string> } {
  const mine = rows.filter((e) => e.USER_ID === user);
  return { all: new Set(mine.map((e) => e.ITEM_ID)), latest: new Set(mine.slice(-HISTORY_PER_USER).map((e) => e.ITEM_ID)) };
}

/** The stream's state over `rows`: the processor's counting (config state.*) through a batch view into a store. */
async function streamState(rows: readonly InteractionFields[], params: CountingParams = countingParams(config.state)): Promise<MemoryStore> {
  const store = new MemoryStore();
  for (let at = 0; at < rows.length; at += 700) {
    const batch = rows.slice(at, at + 700);
    const view = await BatchView.prefetch(store, batch, params.coOccurrenceWindow);
    for (const e of batch) applyInteraction(view, e, params);
    await store.write(view.changes());
  }
  return store;
}

/** The query side over a store, reading a user's state as the processor does (src/stream/processor.ts userState). */
function queryOver(store: MemoryStore, model: Model, excludeSeen: boolean): QueryService {
  const serving = new ServingModel();
  serving.swap({ version: `v-${model.recipe}`, model, excludeSeen });
  return new QueryService({
    serving,
    userState: async (userId) => {
      const [u, h] = await store.getMany([keys.user(userId), keys.hrnn(userId)]);
      return u ? { user: stateCodecs.user.decode(u), hrnn: h ? stateCodecs.hrnn.decode(h) : undefined } : undefined;
    },
    forEachItemCount: async (fn) => {
      for await (const [k, v] of store.range({ prefix: 'i/' })) fn(k.slice(2), stateCodecs.item.decode(v) as ItemCounts);
    },
    items: async () => new Map(),
    user: async () => undefined,
    resources: new Resources(),
    trendingHalfLifeMs: config.state.trendingHalfLifeMs,
    now: () => T0 + 86_400_000 * 10,
  });
}

async function appFor(query: QueryService): Promise<FastifyInstance> {
  const c = loadConfig({ env: { STREAMREC_API_ROOT_KEY: 'root' } });
  const services = {
    query,
    resources: new Resources(),
    deployment: { describe: () => ({ announced: undefined, loaded: null }) },
    solutions: { configured: () => ({ recipe: 'sims', params: {} }), versions: () => [], running: () => false },
  } as unknown as GroupServices;
  return buildApp({
    config: c,
    codecs: createCodecs(c),
    sink: { send: async () => undefined },
    groups: { has: async (g) => g === 'g' },
    status: () => ({ state: 'running', ready: true }),
    logger: false,
    served: { names: () => ['g'], get: (g) => (g === 'g' ? services : undefined) },
    groupAdmin: { list: async () => ['g'], create: async () => [], delete: async () => undefined },
  });
}

async function viaApi(app: FastifyInstance, userId: string, numResults: number): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: `/v1/groups/g/recommendations?userId=${userId}&numResults=${numResults}`, headers: { 'x-api-key': 'root' } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ itemList: { itemId: string }[] }>().itemList.map((s) => s.itemId);
}

async function viaBatchInfer(dir: string, lines: unknown[], numResults: number): Promise<Map<string, string[]>> {
  const input = join(dir, 'in.jsonl');
  const output = join(dir, 'out.jsonl');
  writeFileSync(input, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  const result = await batchInfer(loadModel(dir), input, output, numResults);
  expect(result.errors).toBe(0);
  const out = new Map<string, string[]>();
  for (const line of readFileSync(output, 'utf8').trim().split('\n')) {
    const r = JSON.parse(line) as { input: { userId: string }; output: { recommendedItems: string[] } };
    out.set(r.input.userId, r.output.recommendedItems);
  }
  return out;
}

/** What the recommendations topic carries for `userId`: the publisher, computing lists as src/stream/service.ts wires it. */
async function viaPublisher(query: QueryService, userId: string): Promise<string[]> {
  const codec = createCodecs(config).Recommendation;
  const sent: Recommendation[] = [];
  const publisher = new RecommendationPublisher({
    topic: 'g.recommendations',
    minIntervalMs: 0,
    compute: async (u) => {
      const a = await query.recommendations({ userId: u, numResults: config.recommendations.numResults });
      return { recommendationId: a.recommendationId, version: a.version, items: a.itemList.map((s) => ({ itemId: s.itemId, score: s.score ?? 0, ...(s.reason ? { reason: s.reason } : {}) })) };
    },
    send: async (_topic, messages) => {
      for (const m of messages) sent.push(codec.decode(m.value));
    },
    encode: (r) => codec.encode(r),
    log: silentLogger,
  });
  publisher.notify(new Map([[userId, T0]]));
  for (let i = 0; i < 200 && sent.length === 0; i++) await new Promise<void>((r) => setImmediate(r));
  await publisher.stop();
  expect(sent).toHaveLength(1);
  return sent[0]!.ITEMS.map((i) => i.ITEM_ID);
}

describe('one definition of seen items', () => {
  it('the bound is state.maxSeenItemsPerUser\'s default', () => {
    expect(configKeys().find((k) => k.key === 'state.maxSeenItemsPerUser')?.default).toBe(SEEN_ITEMS_PER_USER);
    expect(config.state.maxSeenItemsPerUser).toBe(SEEN_ITEMS_PER_USER);
  });

  it('seenItems and userSeenItems give the stream user state\'s seen list, repeats and forgotten items included', () => {
    const rand = prng(11);
    for (const bound of [1, 3, 7, 40]) {
      const rows: InteractionFields[] = [];
      for (let k = 0; k < 3000; k++) rows.push(event(`u${Math.floor(rand() * 5)}`, `i${Math.floor(Math.pow(rand(), 2) * 60)}`, T0 + k));
      const view = new MapStateView();
      const params = countingParams({ ...config.state, maxSeenItemsPerUser: bound });
      for (const e of rows) applyInteraction(view, e, params);
      const offline = userSeenItems(rows, bound);
      expect(offline.size).toBe(view.users.size);
      for (const [u, state] of view.users) {
        expect(offline.get(u), `${u} bound ${bound}`).toEqual(state.seen);
        expect(seenItems(rows.filter((e) => e.USER_ID === u).map((e) => e.ITEM_ID), bound)).toEqual(state.seen);
      }
    }
    expect(() => seenItems(['a'], 0)).toThrow(RangeError);
  });
});

describe('a user with hundreds of interactions gets none of them back under exclude', () => {
  // 30 popular items touched first, then 330 distinct tail items: 360 interactions, 360 seen items.
  const rows = fixture({ popular: 30, tail: 330, extraTail: 120, others: 60, seed: 5 });
  const heavy = itemsOf(rows, HEAVY);
  const N = 60;
  let dir: string;
  const models = new Map<string, Model>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'streamrec-seen-'));
    models.set('popularity-count', popularityCount.train(rows));
    models.set('sims', sims.train(rows));
    models.set('hrnn', await hrnn.train(rows, { hiddenSize: 16, epochs: 1, batchSize: 32, negatives: 32, workers: 0, seed: 3 }));
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the fixture shows the bug: leaving out only the latest 50 brings back items the user touched long ago', () => {
    expect(heavy.all.size).toBe(360);
    const history = rows.filter((e) => e.USER_ID === HEAVY).slice(-HISTORY_PER_USER);
    for (const [recipe, model] of models) {
      const old = model.recommend({ history, numResults: N, exclude: heavy.latest }).map((s) => s.itemId);
      expect(old.filter((i) => heavy.all.has(i)).length, recipe).toBeGreaterThan(0);
    }
    // Popularity and sims's fill-in put the long-ago popular items first.
    expect(models.get('popularity-count')!.recommend({ history, numResults: 5, exclude: heavy.latest }).map((s) => s.itemId).every((i) => /^p/.test(i))).toBe(true);
  });

  it('(a) a model folder through batch-infer', async () => {
    const { report } = await trainAndEvaluate(rows, { recipe: 'popularity-count', split: 'loo', seen: 'exclude', final: false });
    for (const [recipe, model] of models) {
      const sub = join(dir, recipe);
      saveModel(sub, { model, excludeSeen: true, ...userData(rows, config.state.maxSeenItemsPerUser) }, report, { data: { file: 'x' }, recipe, seen: 'exclude' });
      const bundle = loadModel(sub);
      expect(bundle.seenBound).toBe(5000);
      expect(new Set(bundle.seen.get(HEAVY))).toEqual(heavy.all);
      // The recipe's state input stays the latest interactions.
      expect(bundle.histories.get(HEAVY)).toHaveLength(HISTORY_PER_USER);
      const lists = await viaBatchInfer(sub, [{ userId: HEAVY }, { userId: 'o1' }], N);
      const list = lists.get(HEAVY)!;
      expect(list, recipe).toHaveLength(N);
      expect(list.filter((i) => heavy.all.has(i)), recipe).toEqual([]);
      const o1 = itemsOf(rows, 'o1').all;
      expect(lists.get('o1')!.filter((i) => o1.has(i)), recipe).toEqual([]);
    }
  }, 60_000);

  it('(b) evaluation\'s scoring path (the split\'s input part is the seen set)', async () => {
    const s = leaveOneOutSplit(rows);
    const t = s.tests.find((x) => x.userId === HEAVY)!;
    const inputItems = new Set(t.input.map((e) => e.ITEM_ID));
    expect(inputItems.size).toBe(359);
    for (const recipe of ['popularity-count', 'sims'] as const) {
      const model = recipe === 'sims' ? sims.train(s.train) : popularityCount.train(s.train);
      const lists = testRecommendations(model, s, true, config.state.maxSeenItemsPerUser, N);
      const list = lists.find((x) => x.userId === HEAVY)!.recommended;
      expect(list, recipe).toHaveLength(N);
      expect(list.filter((i) => inputItems.has(i)), recipe).toEqual([]);
      for (const x of lists) {
        const input = new Set(s.tests.find((y) => y.userId === x.userId)!.input.map((e) => e.ITEM_ID));
        expect(x.recommended.filter((i) => input.has(i)), x.userId).toEqual([]);
      }
      // Under include the same path gives them back: the exclusion is what keeps them out.
      const kept = testRecommendations(model, s, false, config.state.maxSeenItemsPerUser, N).find((x) => x.userId === HEAVY)!.recommended;
      expect(kept.filter((i) => inputItems.has(i)).length, recipe).toBeGreaterThan(0);
    }
    const { report } = await trainAndEvaluate(rows, { recipe: 'popularity-count', split: 'loo', seen: 'exclude', final: false });
    expect(report.seen).toMatchObject({ excludeSeen: true, bound: 5000 });
  }, 60_000);

  it('(c) the query API over the stream\'s stored state, and (d) the recommendations topic: the same list', async () => {
    const store = await streamState(rows);
    const stored = stateCodecs.user.decode((await store.get(keys.user(HEAVY)))!);
    // The stored events are the latest state.maxEventsPerUser (200); the seen list is the whole history.
    expect(stored.events).toHaveLength(config.state.maxEventsPerUser);
    expect(new Set(stored.seen)).toEqual(heavy.all);
    for (const [recipe, model] of models) {
      const query = queryOver(store, model, true);
      const app = await appFor(query);
      try {
        const list = await viaApi(app, HEAVY, N);
        expect(list, recipe).toHaveLength(N);
        expect(list.filter((i) => heavy.all.has(i)), recipe).toEqual([]);
        const topic = await viaPublisher(query, HEAVY);
        expect(topic.length, recipe).toBe(config.recommendations.numResults);
        expect(topic.filter((i) => heavy.all.has(i)), recipe).toEqual([]);
        expect(topic, recipe).toEqual(await viaApi(app, HEAVY, config.recommendations.numResults));
      } finally {
        await app.close();
      }
    }
  }, 60_000);

  it('(d) the service publishes to the topic the list the query API computes (the same function)', () => {
    const service = readFileSync(new URL('../../src/stream/service.ts', import.meta.url), 'utf8');
    const publisher = service.slice(service.indexOf('new RecommendationPublisher('));
    const compute = publisher.slice(publisher.indexOf('compute:'), publisher.indexOf('send:'));
    expect(compute).toMatch(/query\.recommendations\(\{ userId, numResults: config\.recommendations\.numResults \}\)/);
  });
});

describe('past the bound (state.maxSeenItemsPerUser = 5,000 distinct items)', () => {
  // The heavy user touches the 20 most popular items first, then 5,000 other distinct items: the
  // 20 are the oldest of 5,020 seen items and are forgotten, the same way on every path.
  const rows = fixture({ popular: 20, tail: 5000, extraTail: 200, others: 40, seed: 9 });
  const heavy = itemsOf(rows, HEAVY);
  const forgotten = new Set(Array.from({ length: 20 }, (_, p) => `p${p}`));
  const remembered = new Set([...heavy.all].filter((i) => !forgotten.has(i)));
  const N = 40;

  it('the oldest seen items beyond 5,000 may come back; the 5,000 latest never do — in batch-infer, evaluation and the API alike', async () => {
    expect(heavy.all.size).toBe(5020);
    expect(remembered.size).toBe(SEEN_ITEMS_PER_USER);
    const model = popularityCount.train(rows);
    const check = (list: string[], path: string) => {
      expect(list, path).toHaveLength(N);
      expect(list.filter((i) => remembered.has(i)), path).toEqual([]);
      // Popularity ranks the forgotten ones first: they come back, on every path.
      expect(list.slice(0, 20).sort(), path).toEqual([...forgotten].sort());
    };

    const dir = mkdtempSync(join(tmpdir(), 'streamrec-seen-bound-'));
    try {
      const { report } = await trainAndEvaluate(rows, { recipe: 'popularity-count', split: 'loo', seen: 'exclude', final: false });
      saveModel(dir, { model, excludeSeen: true, ...userData(rows, config.state.maxSeenItemsPerUser) }, report, { data: { file: 'x' }, recipe: 'popularity-count', seen: 'exclude' });
      expect(loadModel(dir).seen.get(HEAVY)).toHaveLength(SEEN_ITEMS_PER_USER);
      check((await viaBatchInfer(dir, [{ userId: HEAVY }], N)).get(HEAVY)!, 'batch-infer');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // Evaluation: the split's input part with one more (held-out) item after it.
    const held = [...rows, event(HEAVY, 't5100', T0 + 10 ** 10)];
    const s = leaveOneOutSplit(held);
    check(testRecommendations(model, s, true, config.state.maxSeenItemsPerUser, N).find((x) => x.userId === HEAVY)!.recommended, 'evaluation');

    const store = await streamState(rows);
    expect(stateCodecs.user.decode((await store.get(keys.user(HEAVY)))!).seen).toHaveLength(SEEN_ITEMS_PER_USER);
    const app = await appFor(queryOver(store, model, true));
    try {
      check(await viaApi(app, HEAVY, N), 'query API');
    } finally {
      await app.close();
    }
  }, 60_000);
});
