/**
 * Deleting a user everywhere, against a real broker and real RocksDB: DELETE /v1/groups/:g/users/:id
 * and a deletion job; afterwards the user is what an unknown user is on every route, no store
 * (nor a store restored from the changelog on another instance, nor the restarted one) holds a trace
 * of them, their metadata and recommendations keys are tombstoned, and a version trained afterwards
 * has none of their events — but a user who comes back after the deletion is kept.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import type { KafkaMessage } from '../../src/kafka/kafkajs.js';
import { readPartition } from '../../src/kafka/read-partition.js';
import { applyTopics, topicName, topicOffsets } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { digestGroupState } from '../../src/state/digest.js';
import { openRocksStore } from '../../src/state/rocksdb-store.js';
import { deleteCommandRecord, OP_HEADER } from '../../src/stream/deletion.js';
import { partitionOf } from '../../src/kafka/partition.js';
import { startService, type Service } from '../../src/stream/service.js';
import { readInteractions } from '../../src/training/stream-train.js';
import { silentLogger } from '../../src/util/log.js';
import { apiUrl, freshGroup, kafkaClients, rootHeaders, runCli, serviceEnv, startCli, stopChild, until, waitCaughtUp } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('delete');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-delete-'));
const GONE = 'gone-user-1';
const BACK = 'back-user-1';
const CLI_USER = 'cli-user-1';
const MOVED = 'moved-user-1';
const envOf = (name: string) =>
  serviceEnv(brokers, join(dir, `state-${name}`), {
    STREAMREC_INSTANCE_ID: `del-${name}`,
    STREAMREC_TRAINING_RECIPE: 'hrnn',
    STREAMREC_TRAINING_SPLIT: 'loo',
    STREAMREC_TRAINING_EVERY_MINUTES: '100000',
    STREAMREC_TRAINING_EVERY_EVENTS: '100000000',
    STREAMREC_TRAINING_PARAMS: JSON.stringify({ epochs: 1, hiddenSize: 16, negatives: 32, batchSize: 32, workers: 1 }),
    STREAMREC_TRAINING_VERSIONS_DIR: join(dir, 'versions'),
    STREAMREC_RECOMMENDATIONS_MIN_INTERVAL_MS: '0',
  });
const config = loadConfig({ env: envOf('a') });
const kafka = createKafka(config, [brokers], '-deletion-test');
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(kafka);
const NOW = Date.now();
let service: Service | undefined;
let synthetic = 0;

const click = (USER_ID: string, ITEM_ID: string, TIMESTAMP: number) => ({
  key: USER_ID,
  value: codecs.Interaction.encode({ USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE: 'click', EVENT_VALUE: null, SESSION_ID: null, IMPRESSION: [], RECOMMENDATION_ID: null, CONTEXT: {} } as never),
});
const sendEvents = (messages: { key: string; value: Buffer }[]) => producer.send({ topic: topicName(group, 'interactions'), messages });
const start = (name: string) => startService({ config: loadConfig({ env: envOf(name) }), group, brokers: [brokers], log: silentLogger, apiLogger: false });
const call = async (base: string, method: string, path: string, body?: unknown) => {
  const res = await fetch(`${base}${path}`, { method, headers: rootHeaders(body === undefined ? {} : { 'content-type': 'application/json' }), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, location: res.headers.get('location'), body: (await res.json()) as Record<string, unknown> };
};
const applied = (s: Service) => s.processor.status().applied;

/** Every committed record of a topic, partition by partition (transaction markers included in the ends). */
async function readAll(name: 'recommendations' | 'users' | 'deletions' | 'changelog'): Promise<KafkaMessage[]> {
  const out: KafkaMessage[] = [];
  const topic = topicName(group, name);
  for (const { partition, low, high } of await topicOffsets(admin, topic)) {
    if (high <= low) continue;
    await readPartition(kafka, { topic, partition, from: low, until: high - 1, groupPrefix: `${group}-read`, timeoutMs: 30_000, onBatch: async (m) => void out.push(...m) });
  }
  return out;
}
const latest = (records: KafkaMessage[], key: string) => records.filter((m) => m.key?.toString() === key).at(-1);

/** Every key and value of a group's stores under a state folder that mentions `text` (the service must be stopped). */
async function traces(stateDir: string, text: string): Promise<string[]> {
  const found: string[] = [];
  const groupDir = join(stateDir, group);
  for (const d of readdirSync(groupDir).filter((x) => /^p\d+$/.test(x))) {
    const store = await openRocksStore(join(groupDir, d), { createIfMissing: false });
    try {
      for await (const [k, v] of store.range()) if (k.includes(text) || v.includes(text)) found.push(`${d}:${k}`);
    } finally {
      await store.close();
    }
  }
  return found;
}

beforeAll(async () => {
  await applyTopics(admin, group, config);
  const events = [...syntheticInteractions({ seed: 3, users: 60, items: 80, events: 1500, start: NOW - 5_000_000 })].map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) }));
  synthetic = events.length;
  await sendEvents(events);
  await sendEvents([GONE, BACK, CLI_USER, MOVED].flatMap((u) => Array.from({ length: 6 }, (_, k) => click(u, `i${k + 3}`, NOW - 4_000_000 + k * 1000))));
  await producer.send({ topic: topicName(group, 'users'), messages: [GONE, BACK].map((u) => ({ key: u, value: codecs.User.encode({ USER_ID: u, METADATA: { SEGMENT: 'x' } } as never) })) });
  service = await start('a');
  await until('all events applied', () => applied(service!) >= synthetic + 24, 120_000);
}, 240_000);

afterAll(async () => {
  await service?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('deleting a user everywhere', () => {
  let url: string;
  let version: string;

  it('the users have state (events, HRNN state under a served version), metadata and published lists', async () => {
    const s = service!;
    url = s.url;
    const outcome = await s.retrainer.trainNow();
    version = outcome!.info.version;
    await until('the version is served', () => s.serving.current?.version === version, 60_000);
    const before = applied(s);
    await sendEvents([GONE, BACK].map((u) => click(u, 'i20', NOW - 1000)));
    await until('the new events applied', () => applied(s) >= before + 2);
    for (const u of [GONE, BACK]) {
      const state = await s.processor.userState(u);
      expect(state?.user.total).toBe(7);
      expect(state?.hrnn?.version).toBe(version);
      expect(await s.metadata.user(u)).toBeDefined();
    }
    expect((await call(url, 'GET', `/v1/groups/${group}/users/${GONE}/events`)).status).toBe(200);
    await until('a list of the user published', async () => latest(await readAll('recommendations'), GONE)?.value != null, 30_000);
  }, 180_000);

  it('DELETE answers 202 with a job; a job of a list too; both complete; bad input is refused naming the field', async () => {
    const one = await call(url, 'DELETE', `/v1/groups/${group}/users/${GONE}`);
    expect(one.status).toBe(202);
    expect(one.body).toMatchObject({ users: 1, submitted: 1 });
    expect(one.location).toBe(`/v1/groups/${group}/deletion-jobs/${String(one.body.id)}`);
    const many = await call(url, 'POST', `/v1/groups/${group}/deletion-jobs`, { userIds: [BACK, 'never-seen-user', BACK] });
    expect(many.status).toBe(202);
    expect(many.body).toMatchObject({ users: 2, submitted: 2 });
    for (const job of [one, many]) {
      await until('the job completed', async () => (await call(url, 'GET', job.location!)).body.status === 'completed', 30_000);
      expect((await call(url, 'GET', job.location!)).body).toMatchObject({ status: 'completed', deleted: job.body.submitted });
    }
    // A job of many users: runs of consecutive commands are applied together.
    const bulk = await call(url, 'POST', `/v1/groups/${group}/deletion-jobs`, { userIds: Array.from({ length: 3000 }, (_, k) => `bulk-${k}`) });
    expect(bulk.body).toMatchObject({ users: 3000, submitted: 3000 });
    await until('the bulk job completed', async () => (await call(url, 'GET', bulk.location!)).body.status === 'completed', 30_000);
    const list = await call(url, 'GET', `/v1/groups/${group}/deletion-jobs`);
    expect((list.body.jobs as { id: string }[]).map((j) => j.id)).toEqual([one.body.id, many.body.id, bulk.body.id]);
    const empty = await call(url, 'POST', `/v1/groups/${group}/deletion-jobs`, { userIds: [] });
    expect(empty.status).toBe(400);
    expect(JSON.stringify(empty.body)).toContain('userIds');
    expect((await call(url, 'GET', `/v1/groups/${group}/deletion-jobs/nope`)).body).toMatchObject({ code: 'RESOURCE_NOT_FOUND' });
  }, 90_000);

  it('afterwards the users are what an unknown user is on every route; their metadata and recommendations keys are tombstoned', async () => {
    const s = service!;
    for (const u of [GONE, BACK]) {
      const events = await call(url, 'GET', `/v1/groups/${group}/users/${u}/events`);
      expect(events.status).toBe(404);
      expect(events.body.code).toBe('USER_NOT_FOUND');
      expect(await s.processor.userState(u)).toBeUndefined();
      await until('the metadata tombstone read', async () => (await s.metadata.user(u)) === undefined, 15_000);
    }
    // GetRecommendations and GetPersonalizedRanking answer a deleted user as one never seen (HRNN: 404 USER_NOT_FOUND).
    for (const [method, path, body] of [
      ['GET', (u: string) => `/v1/groups/${group}/recommendations?userId=${u}&numResults=5`, undefined],
      ['POST', () => `/v1/groups/${group}/personalized-ranking`, (u: string) => ({ userId: u, inputList: ['i1', 'i2', 'i3'] })],
    ] as const) {
      const unknown = await call(url, method, path('nobody-at-all'), body?.('nobody-at-all'));
      expect([200, 404], JSON.stringify(unknown.body)).toContain(unknown.status);
      for (const u of [GONE, BACK]) {
        const answer = await call(url, method, path(u), body?.(u));
        expect(answer.status, `${method} ${path(u)}`).toBe(unknown.status);
        expect(answer.body.code).toBe(unknown.body.code);
        if (unknown.status === 200) expect(answer.body.itemList).toEqual(unknown.body.itemList);
      }
    }
    // The processor's tombstone (and the service's second one, after the publisher's sends in flight).
    expect(latest(await readAll('recommendations'), GONE)?.value ?? null).toBeNull();
    expect(latest(await readAll('users'), GONE)?.value ?? null).toBeNull();
    const deletion = latest(await readAll('deletions'), GONE);
    expect(JSON.parse(deletion!.value!.toString())).toMatchObject({ userId: GONE, partition: expect.any(Number), offset: expect.any(Number) });
    // The changelog's latest record of each of the user's keys is a tombstone.
    const changelog = await readAll('changelog');
    for (const k of [`u/${GONE}`, `h/${GONE}`]) expect(latest(changelog, k)?.value ?? null, k).toBeNull();
  }, 60_000);

  it('a record that says it is a delete command but is not one is dead-lettered', async () => {
    const s = service!;
    const dead = s.processor.status().deadLetters;
    await producer.send({ topic: topicName(group, 'interactions'), messages: [{ key: 'someone', value: '{not json', headers: { [OP_HEADER]: 'delete-user' } }] });
    await until('dead-lettered', () => s.processor.status().deadLetters === dead + 1, 15_000);
  });

  it('a delete command produced to another partition is forwarded to the owner and applied; the deletion names where it was produced', async () => {
    const s = service!;
    const topic = topicName(group, 'interactions');
    const n = (await topicOffsets(admin, topic)).length;
    const wrong = (partitionOf(MOVED, n) + 1) % n;
    const forwarded = s.processor.status().forwarded;
    const [meta] = await producer.send({ topic, messages: [{ ...deleteCommandRecord({ userId: MOVED, requestedAt: new Date().toISOString(), jobId: 'by-hand' }), partition: wrong }] });
    await until('the deletion recorded', () => s.deletions.deletions.get(MOVED) !== undefined, 30_000);
    expect(s.deletions.deletions.get(MOVED)).toMatchObject({ partition: wrong, offset: Number(meta!.baseOffset), jobId: 'by-hand' });
    expect(s.processor.status().forwarded).toBe(forwarded + 1);
    expect(await s.processor.userState(MOVED)).toBeUndefined();
  });

  it('a user who comes back after the deletion starts afresh; a version trained now has none of the deleted events', async () => {
    const s = service!;
    const before = applied(s);
    await sendEvents([click(BACK, 'i-back', NOW)]);
    await until('the event applied', () => applied(s) >= before + 1);
    expect((await s.processor.userState(BACK))?.user.events.map((e) => e.item)).toEqual(['i-back']);
    const rows = await readInteractions({ config, group, brokers: [brokers] }, 1_000_000);
    expect(rows.filter((e) => e.USER_ID === GONE)).toEqual([]);
    // In another partition than the command's: left out by the command's time.
    expect(rows.filter((e) => e.USER_ID === MOVED)).toEqual([]);
    expect(rows.filter((e) => e.USER_ID === BACK).map((e) => e.ITEM_ID)).toEqual(['i-back']);
    expect(rows.length).toBe(synthetic + 7);
    const outcome = await s.retrainer.trainNow();
    const info = outcome!.info;
    expect(info.data.events).toBe(synthetic + 7);
    const folder = s.registry.path(info.version);
    for (const f of readdirSync(folder, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())) {
      expect(readFileSync(join(f.parentPath, f.name)).includes(GONE), f.name).toBe(false);
    }
  }, 180_000);

  it('the CLI deletes the users of a file and waits for the job; another command shows its status', async () => {
    const file = join(dir, 'ids.txt');
    writeFileSync(file, `# users to delete\n${CLI_USER}\n\n`);
    const env = envOf('cli');
    const out = await runCli(['users', 'delete', '--group', group, '--file', file, '--wait', '--json'], env);
    expect(out.code, out.stderr).toBe(0);
    const job = JSON.parse(out.stdout) as { id: string; status: string; deleted: number };
    expect(job).toMatchObject({ status: 'completed', deleted: 1 });
    expect(await service!.processor.userState(CLI_USER)).toBeUndefined();
    const status = await runCli(['users', 'deletion-job', job.id, '--group', group, '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: job.id, status: 'completed', submitted: 1, deleted: 1 });
    const bad = await runCli(['users', 'delete', '--group', group, '--file', join(dir, 'missing.txt')], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('INVALID_ARGUMENT');
  }, 120_000);

  it('the store holds no trace of the deleted user, after a restart and on an instance that restores the partitions from the changelog', async () => {
    await service!.stop();
    service = undefined;
    const dirA = join(dir, 'state-a');
    expect(await traces(dirA, GONE)).toEqual([]);
    expect(await traces(dirA, CLI_USER)).toEqual([]);
    expect((await digestGroupState(join(dirA, group))).keys).toBeGreaterThan(100);

    // Restart on the same stores.
    service = await start('a');
    await until('ready', () => service!.processor.status().ready, 60_000);
    expect((await call(service.url, 'GET', `/v1/groups/${group}/users/${GONE}/events`)).status).toBe(404);
    expect((await call(service.url, 'GET', `/v1/groups/${group}/users/${BACK}/events`)).body.total).toBe(1);
    await service.stop();
    service = undefined;

    // Another instance with empty stores: every partition is restored from the changelog.
    service = await start('b');
    await until('ready', () => service!.processor.status().ready, 60_000);
    expect(service.processor.status().partitions.every((p) => p.restore !== null && p.restore.from === 0)).toBe(true);
    expect((await call(service.url, 'GET', `/v1/groups/${group}/users/${GONE}/events`)).status).toBe(404);
    expect((await call(service.url, 'GET', `/v1/groups/${group}/users/${BACK}/events`)).body.total).toBe(1);
    await service.stop();
    service = undefined;
    expect(await traces(join(dir, 'state-b'), GONE)).toEqual([]);
    expect((await digestGroupState(join(dir, 'state-b', group))).digest).toBe((await digestGroupState(join(dirA, group))).digest);
  }, 240_000);
});

describe('a deletion is applied exactly once across a crash', () => {
  it('SIGKILLed after the deletion batch committed to the changelog, before the store write: the restart applies it once', async () => {
    const g = freshGroup('delete-eos');
    await applyTopics(admin, g, config);
    const stateDir = join(dir, 'state-eos');
    const env = (extra: NodeJS.ProcessEnv = {}) => serviceEnv(brokers, stateDir, { STREAMREC_INSTANCE_ID: 'del-eos', ...extra });
    const user = 'crash-user-1';
    await producer.send({ topic: topicName(g, 'interactions'), messages: [user, 'other-1', 'other-2'].flatMap((u) => Array.from({ length: 4 }, (_, k) => click(u, `i${k}`, NOW - 100_000 + k))) });
    const first = await startCli(['start', '--group', g], env(), 'running;');
    await waitCaughtUp(admin, g);
    await stopChild(first.child);

    // The first batch of the next run is the deletion's: the process kills itself right after its transaction.
    const crashing = await startCli(['start', '--group', g], env({ STREAMREC_FAILPOINT: 'after-changelog-commit:1' }), 'running;');
    const exited = new Promise<NodeJS.Signals | null>((r) => crashing.child.once('exit', (_c, signal) => r(signal)));
    await producer.send({ topic: topicName(g, 'interactions'), messages: [{ ...deleteCommandRecord({ userId: user, requestedAt: new Date().toISOString(), jobId: 'eos' }) }] });
    const timer = setTimeout(() => crashing.child.kill('SIGKILL'), 60_000);
    expect(await exited).toBe('SIGKILL');
    clearTimeout(timer);
    expect(crashing.output()).toContain('failpoint after-changelog-commit:1 reached');

    const last = await startCli(['start', '--group', g], env({ STREAMREC_LOG_LEVEL: 'info' }), 'running;');
    await waitCaughtUp(admin, g);
    const base = apiUrl(last.output());
    const events = await fetch(`${base}/v1/groups/${g}/users/${user}/events`, { headers: rootHeaders() });
    expect(events.status).toBe(404);
    expect((await fetch(`${base}/v1/groups/${g}/users/other-1/events`, { headers: rootHeaders() })).status).toBe(200);
    await stopChild(last.child);

    const deletions: KafkaMessage[] = [];
    const [p0] = await topicOffsets(admin, topicName(g, 'deletions'));
    await readPartition(kafka, { topic: topicName(g, 'deletions'), partition: 0, from: p0!.low, until: p0!.high - 1, groupPrefix: `${g}-read`, onBatch: async (m) => void deletions.push(...m) });
    expect(deletions.map((m) => m.key?.toString())).toEqual([user]);
    const groupDir = join(stateDir, g);
    for (const d of readdirSync(groupDir).filter((x) => /^p\d+$/.test(x))) {
      const store = await openRocksStore(join(groupDir, d), { createIfMissing: false });
      try {
        for await (const [k] of store.range()) expect(k).not.toContain(user);
      } finally {
        await store.close();
      }
    }
  }, 240_000);
});
