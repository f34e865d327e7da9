/**
 * HRNN in the running service, against a real broker and real RocksDB: a version trained from the
 * interactions topic in a worker thread, announced on <group>.versions and swapped in; each event
 * steps the user's stored HRNN state; a version swap under a steady query load fails no query; a
 * rollback is one command.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { Partitioners, type Producer } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { startService, type Service } from '../../src/stream/service.js';
import { silentLogger } from '../../src/util/log.js';
import { prng } from '../../src/data/synthetic.js';
import { announce, readServing } from '../../src/stream/versions.js';
import { freshGroup, rootHeaders, runCli, TEST_ROOT_KEY, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('hrnn');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-hrnn-'));
const env = {
  KAFKA_BROKERS: brokers,
  STREAMREC_API_ROOT_KEY: TEST_ROOT_KEY,
  STREAMREC_STATE_DIR: join(dir, 'state'),
  STREAMREC_API_PORT: '0',
  STREAMREC_TRAINING_EVERY_MINUTES: '100000',
  STREAMREC_TRAINING_EVERY_EVENTS: '100000000',
  STREAMREC_TRAINING_SPLIT: 'loo',
  STREAMREC_TRAINING_RECIPE: 'hrnn-coldstart',
  STREAMREC_TRAINING_PARAMS: JSON.stringify({ epochs: 4, hiddenSize: 32, negatives: 128, batchSize: 32, explorationWeight: 0.5 }),
};
const config = loadConfig({ env });
const kafka = createKafka(config, [brokers], '-hrnn-test');
const codecs = createCodecs(config);
let producer: Producer;
let service: Service;

const USERS = 150;
const ITEMS = 60;
const T0 = Date.now() - 10 * 86_400_000;

/** Users walking item k -> k+1 (mod ITEMS), sessions of 6 events a day apart. */
function events(): { USER_ID: string; ITEM_ID: string; TIMESTAMP: number }[] {
  const r = prng(9);
  const out: { USER_ID: string; ITEM_ID: string; TIMESTAMP: number }[] = [];
  for (let u = 0; u < USERS; u++) {
    let k = Math.floor(r() * ITEMS);
    for (let t = 0; t < 12; t++) {
      out.push({ USER_ID: `u${u}`, ITEM_ID: `i${k}`, TIMESTAMP: T0 + Math.floor(t / 6) * 86_400_000 + t * 60_000 + u });
      k = (k + 1) % ITEMS;
    }
  }
  return out.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP);
}

async function send(list: { USER_ID: string; ITEM_ID: string; TIMESTAMP: number }[]): Promise<void> {
  await producer.send({
    topic: topicName(group, 'interactions'),
    messages: list.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode({ ...e, EVENT_TYPE: 'click' }) })),
  });
}

beforeAll(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  await admin.disconnect();
  producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  await send(events());
  await producer.send({
    topic: topicName(group, 'items'),
    messages: Array.from({ length: ITEMS }, (_, k) => ({
      key: `i${k}`,
      value: codecs.Item.encode({ ITEM_ID: `i${k}`, CREATION_TIMESTAMP: null, METADATA: { CATEGORY: `c${k % 6}` } }),
    })),
  });
  service = await startService({ config, group, brokers: [brokers], log: silentLogger, apiLogger: false });
  await until('all events applied', () => service.processor.status().applied >= USERS * 12);
}, 240_000);

afterAll(async () => {
  await service?.stop();
  await producer?.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe('HRNN in the stream', () => {
  let first: string;

  it('trains a version from the topic in a worker, announces it, and every query uses it', async () => {
    await expect(service.recommend('u1', 5)).rejects.toThrow(/no model version/);
    const outcome = await service.retrainer.trainNow();
    expect(outcome?.promoted).toBe(true);
    first = outcome!.info.version;
    expect(outcome!.info.data.events).toBe(USERS * 12);
    expect(outcome!.info.report.metrics.hit_at_10).toBeGreaterThan(outcome!.info.report.baseline.metrics.hit_at_10);
    await until('the version is served', () => service.serving.current?.version === first);
    const r = await service.recommend('u1', 5);
    expect(r.version).toBe(first);
    expect(r.recipe).toBe('hrnn-coldstart');
    expect(r.itemList).toHaveLength(5);
  }, 180_000);

  it('an event steps the stored HRNN state and changes the next recommendations', async () => {
    const before = await service.recommend('u7', 3);
    const stored = await service.processor.userState('u7');
    const now = Date.now();
    await send([{ USER_ID: 'u7', ITEM_ID: 'i20', TIMESTAMP: now }]);
    await until('the event applied', async () => (await service.processor.userState('u7'))?.user.total === (stored?.user.total ?? 0) + 1);
    const after = await service.processor.userState('u7');
    expect(after?.hrnn?.version).toBe(first);
    expect(after?.hrnn?.last).toBe(now);
    expect([...after!.hrnn!.h]).not.toEqual(stored?.hrnn ? [...stored.hrnn.h] : []);
    const next = await service.recommend('u7', 3);
    // Right after i20 in an open session, the chain's next item leads.
    expect(next.itemList[0]!.itemId).toBe('i21');
    expect(next.itemList.map((s) => s.itemId)).not.toEqual(before.itemList.map((s) => s.itemId));
  }, 60_000);

  it('a user with neither events nor a user record is USER_NOT_FOUND', async () => {
    await expect(service.recommend('nobody-yet', 4)).rejects.toMatchObject({ code: 'USER_NOT_FOUND' });
  });

  it('a version swap under a steady query load fails no query; states move to the new version', async () => {
    const outcome = await service.retrainer.trainNow();
    const second = outcome!.info.version;
    expect(second).not.toBe(first);
    let ok = 0;
    const failures: unknown[] = [];
    const seen = new Set<string>();
    let stop = false;
    const load = (async () => {
      let k = 0;
      while (!stop) {
        try {
          const r = await service.recommend(`u${k++ % USERS}`, 10);
          if (r.itemList.length !== 10) throw new Error(`got ${r.itemList.length} items`);
          seen.add(r.version);
          ok++;
        } catch (err) {
          failures.push(err);
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const current = await readServing(kafka, group);
    await announce(producer, group, second, current, 'test swap');
    await until('the new version is served', () => service.serving.current?.version === second);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
    expect([...seen].sort()).toEqual([first, second].sort());

    // u7's stored state (its event above) is of the old version until its next event re-derives it;
    // users with no event since the first version have none stored (queries derive it).
    expect((await service.processor.userState('u7'))?.hrnn?.version).toBe(first);
    expect((await service.processor.userState('u3'))?.hrnn).toBeUndefined();
    await send([{ USER_ID: 'u7', ITEM_ID: 'i5', TIMESTAMP: Date.now() }]);
    await until('u7 re-derived', async () => (await service.processor.userState('u7'))?.hrnn?.version === second);
  }, 240_000);

  it('`streamrec versions list` marks the served version; `versions rollback` serves the previous one', async () => {
    const list = await runCli(['versions', 'list', '--group', group, '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    const parsed = JSON.parse(list.stdout) as { serving: { version: string }; versions: { version: string }[] };
    expect(parsed.versions.map((v) => v.version)).toContain(first);
    expect(parsed.serving.version).not.toBe(first);
    const rb = await runCli(['versions', 'rollback', '--group', group], env);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stdout).toContain(`serving ${first}`);
    await until('rolled back', () => service.serving.current?.version === first);
  }, 120_000);

  it('a new item with metadata appears in recommendations without retraining (GET /v1/groups/G/recommendations)', async () => {
    const version = service.serving.current!.version;
    await producer.send({
      topic: topicName(group, 'items'),
      messages: [{ key: 'fresh', value: codecs.Item.encode({ ITEM_ID: 'fresh', CREATION_TIMESTAMP: Date.now() - 60_000, METADATA: { CATEGORY: 'c2' } }) }],
    });
    await until('the served model knows the new item', () => service.serving.hrnn?.model.index.has('fresh') === true);
    let shown = 0;
    for (let u = 0; u < 10; u++) {
      const res = await fetch(`${service.url}/v1/groups/${group}/recommendations?userId=u${u}&numResults=10`, { headers: rootHeaders() });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { version: string; itemList: { itemId: string; reason?: string }[] };
      expect(body.version).toBe(version);
      const fresh = body.itemList.find((i) => i.itemId === 'fresh');
      if (fresh) {
        shown++;
        expect(fresh.reason).toBe('exploration');
      }
    }
    expect(shown).toBeGreaterThanOrEqual(7);
    expect(service.serving.current!.version).toBe(version);
    // Bad requests get a 4xx with a code.
    const bad = await fetch(`${service.url}/v1/groups/${group}/recommendations?userId=u1&numResults=0`, { headers: rootHeaders() });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('REQUEST_INVALID');
    const missing = await fetch(`${service.url}/v1/groups/${group}/recommendations`, { headers: rootHeaders() });
    expect(missing.status).toBe(400);
    const other = await fetch(`${service.url}/v1/groups/nope-${group}/recommendations?userId=u1`, { headers: rootHeaders() });
    expect(other.status).toBe(404);
  }, 60_000);
});
