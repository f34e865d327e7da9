/**
 * Model versions through Kafka (src/training/model-transfer.ts), against a real broker: a version
 * trained and published by one instance is fetched from `<group>.models` and served by a second
 * instance with a different state folder and no shared versions folder; a third instance that joins
 * late gets the served version and its predecessor (the rollback target), and the CLI rolls back
 * from a machine that trained nothing. A version whose chunk was corrupted on the topic is refused
 * (checksum-mismatch) while the previous one keeps serving; pruning tombstones a version's keys.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { startService, type Service } from '../../src/stream/service.js';
import { announce, readVersionsTopic } from '../../src/stream/versions.js';
import { CHUNK_BYTES, chunkFolder, chunkKey, indexKey, manifestKey, pruneModels, versionsToPrune, type IndexedManifest, type ModelManifest } from '../../src/training/model-transfer.js';
import { newVersionId, type VersionInfo } from '../../src/training/registry.js';
import { silentLogger } from '../../src/util/log.js';
import { clickEvent, freshGroup, kafkaClients, runCli, TEST_ROOT_KEY, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('models');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-models-'));
/** One instance's environment: its own state folder (so its own versions folder), its own id. */
const envOf = (name: string) => ({
  KAFKA_BROKERS: brokers,
  STREAMREC_API_ROOT_KEY: TEST_ROOT_KEY,
  STREAMREC_STATE_DIR: join(dir, name),
  STREAMREC_INSTANCE_ID: `models-${name}`,
  STREAMREC_API_PORT: '0',
  STREAMREC_PROCESSOR_SESSION_TIMEOUT_MS: '6000',
  STREAMREC_PROCESSOR_REBALANCE_TIMEOUT_MS: '10000',
  STREAMREC_RECOMMENDATIONS_ENABLED: 'false',
  STREAMREC_TRAINING_EVERY_MINUTES: '100000',
  STREAMREC_TRAINING_EVERY_EVENTS: '100000000',
  STREAMREC_TRAINING_RECIPE: 'sims',
  STREAMREC_TRAINING_SPLIT: 'loo',
  STREAMREC_TRAINING_PROMOTE: 'always',
});
const start = (name: string) => startService({ config: loadConfig({ env: envOf(name) }), group, brokers: [brokers], log: silentLogger, apiLogger: false });
const config = loadConfig({ env: envOf('test') });
const kafka = createKafka(config, [brokers], '-models-test');
const { admin, producer } = kafkaClients(kafka);
const USERS = 120;
let a: Service;
let b: Service;
let c: Service | undefined;

/**
 * The version of a recommendations answer through `s`'s HTTP API (forwarded to the user's owner,
 * which may be another instance); retried while a rebalance moves the user's partition (503).
 */
async function answeredVersion(s: Service): Promise<string> {
  let version = '';
  await until('an answer', async () => {
    const res = await fetch(`${s.url}/v1/groups/${group}/recommendations?userId=u1&numResults=5`, { headers: { 'x-api-key': TEST_ROOT_KEY } });
    if (res.status === 503) return false;
    expect(res.status, await res.clone().text()).toBe(200);
    version = ((await res.json()) as { version: string }).version;
    return true;
  });
  return version;
}

beforeAll(async () => {
  await applyTopics(admin, group, config);
  const codecs = createCodecs(config);
  const T0 = Date.now() - 5 * 86_400_000;
  const events = Array.from({ length: USERS * 12 }, (_, i) => clickEvent(`u${i % USERS}`, `i${(i % USERS) + Math.floor(i / USERS)}` , T0 + i * 1000));
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  // b starts once a's first version is announced (the first test): started together, whichever
  // owned partition 0 trained the group's first version by itself (nothing served yet), which made
  // b train one too when it took partition 0.
  a = await start('a');
}, 240_000);

afterAll(async () => {
  await Promise.allSettled([a?.stop(), b?.stop(), c?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('model versions through the models topic', () => {
  let v1: string;
  let v2: string;

  it('a version trained by one instance is served by another with its own state folder, fetched from <group>.models', async () => {
    const outcome = await a.retrainer.trainNow();
    expect(outcome?.promoted, JSON.stringify(a.retrainer.status())).toBe(true);
    v1 = outcome!.info.version;
    b = await start('b');
    expect(a.registry.dir).not.toBe(b.registry.dir);
    await until('b serves v1', () => b.serving.current?.version === v1, 90_000);
    await until('a serves v1', () => a.serving.current?.version === v1);
    // b has it in its own folder now, byte for byte what a wrote (every SHA-256 was checked).
    expect(b.registry.has(v1)).toBe(true);
    expect(readFileSync(join(b.registry.dir, v1, 'model.json')).equals(readFileSync(join(a.registry.dir, v1, 'model.json')))).toBe(true);
    expect(b.versions.status()).toMatchObject({ announced: v1, serving: v1, fetched: 1, fetchFailures: 0, loadFailures: 0 });
    // a trained it: nothing to fetch.
    expect(a.versions.status().fetched).toBe(0);
    expect(await answeredVersion(b)).toBe(v1);

    // The index on <group>.versions: the manifest with sizes and hashes, its chunks on <group>.models.
    const { index } = await readVersionsTopic(kafka, group);
    const m = index.get(v1)!;
    expect(m.files.map((f) => f.name)).toEqual(['metrics.json', 'model.json', 'version.json']);
    expect(m.info.version).toBe(v1);
    expect(m.manifestOffset).toBeGreaterThanOrEqual(m.firstOffset + m.chunks);
  }, 180_000);

  it('a second version swaps in everywhere; the solutions API lists both on the instance that did not train them', async () => {
    const outcome = await a.retrainer.trainNow();
    v2 = outcome!.info.version;
    expect(v2).not.toBe(v1);
    await until('b serves v2', () => b.serving.current?.version === v2, 90_000);
    const res = await fetch(`${b.url}/v1/groups/${group}/solutions/default/versions`, { headers: { 'x-api-key': TEST_ROOT_KEY } });
    expect(res.status).toBe(200);
    expect(JSON.stringify(await res.json())).toContain(v1);
  }, 180_000);

  it('a late joiner gets the served version and its predecessor from the topic; the CLI rolls back from a machine that trained nothing', async () => {
    c = await start('c');
    await until('c serves v2', () => c!.serving.current?.version === v2, 90_000);
    await until('c fetched v1 too (the rollback target)', () => c!.registry.has(v1), 90_000);
    expect(c.versions.status()).toMatchObject({ fetched: 2, fetchFailures: 0, loadFailures: 0 });

    // The CLI with a fresh state folder: no local versions, it reads the manifests from the topics.
    const cliEnv = envOf('cli');
    const list = await runCli(['versions', 'list', '--group', group, '--json'], cliEnv);
    expect(list.code, list.stderr).toBe(0);
    const parsed = JSON.parse(list.stdout) as { serving: { version: string }; versions: { version: string; local: boolean; published: boolean }[] };
    expect(parsed.serving.version).toBe(v2);
    expect(parsed.versions.map((v) => [v.version, v.local, v.published])).toEqual([
      [v1, false, true],
      [v2, false, true],
    ]);
    const rb = await runCli(['versions', 'rollback', '--group', group], cliEnv);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stdout).toContain(`serving ${v1}`);
    for (const s of [a, b, c]) await until(`${s.registry.dir} rolled back`, () => s.serving.current?.version === v1, 30_000);
    // c had the predecessor already: nothing more fetched.
    expect(c.versions.status().fetched).toBe(2);
    const promote = await runCli(['versions', 'promote', v2, '--group', group], cliEnv);
    expect(promote.code, promote.stderr).toBe(0);
    for (const s of [a, b, c]) await until(`${s.registry.dir} serves v2 again`, () => s.serving.current?.version === v2, 30_000);
    const unknown = await runCli(['versions', 'promote', newVersionId('sims'), '--group', group], cliEnv);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('VERSION_NOT_FOUND');
  }, 240_000);

  it('a version with a corrupted chunk on the topic is refused (checksum-mismatch); the previous one keeps serving', async () => {
    // v2's files under a new version id, published as publishVersion does, but with one byte of
    // model.json flipped in its chunk on the topic while the manifest has the true hashes.
    const bad = newVersionId('sims');
    const good = join(dir, 'good');
    cpSync(join(a.registry.dir, v2), good, { recursive: true });
    const info = { ...(JSON.parse(readFileSync(join(good, 'version.json'), 'utf8')) as VersionInfo), version: bad, createdAt: new Date().toISOString() };
    writeFileSync(join(good, 'version.json'), JSON.stringify(info));
    const parts = await chunkFolder(good, CHUNK_BYTES, async () => undefined);
    const corrupt = join(dir, 'corrupt');
    cpSync(good, corrupt, { recursive: true });
    const model = readFileSync(join(corrupt, 'model.json'));
    const at = Math.floor(model.length / 2);
    model.writeUInt8(model.readUInt8(at) ^ 0x01, at);
    writeFileSync(join(corrupt, 'model.json'), model);
    let firstOffset: number | undefined;
    await chunkFolder(corrupt, CHUNK_BYTES, async (n, value) => {
      const [meta] = await producer.send({ topic: topicName(group, 'models'), acks: -1, messages: [{ key: chunkKey(bad, n), value, partition: 0 }] });
      firstOffset ??= Number(meta!.baseOffset);
    });
    const manifest: ModelManifest = { format: 1, version: bad, ...parts, firstOffset: firstOffset!, info, publishedAt: new Date().toISOString() };
    const [meta] = await producer.send({ topic: topicName(group, 'models'), acks: -1, messages: [{ key: manifestKey(bad), value: JSON.stringify(manifest), partition: 0 }] });
    const indexed: IndexedManifest = { ...manifest, manifestOffset: Number(meta!.baseOffset) };
    await producer.send({ topic: topicName(group, 'versions'), acks: -1, messages: [{ key: indexKey(bad), value: JSON.stringify(indexed), partition: 0 }] });
    const before = b.versions.status().loadFailures;
    await announce(producer, group, bad, (await readVersionsTopic(kafka, group)).serving, 'a corrupted version (test)');

    await until('b refused it', () => b.versions.status().loadFailures > before, 60_000);
    const status = b.versions.status();
    expect(status).toMatchObject({ announced: bad, serving: v2 });
    expect(status.lastFetchError).toContain('checksum-mismatch');
    expect(status.lastFetchError).toContain('model.json');
    expect(b.serving.current?.version).toBe(v2);
    expect(await answeredVersion(b)).toBe(v2);
    expect(b.registry.has(bad)).toBe(false);
    // The temporary folder of the refused fetch is gone.
    expect(readdirSync(b.registry.dir).filter((n) => n.startsWith('.'))).toEqual([]);
    // GET /ready's detail.versions reports it (loadFailures, fetchFailures, lastFetchError).
    const ready = (await (await fetch(`${b.url}/ready`)).json()) as { detail: { versions: { loadFailures: number; lastFetchError: string } } };
    expect(ready.detail.versions.loadFailures).toBeGreaterThan(before);
    expect(ready.detail.versions.lastFetchError).toContain('checksum-mismatch');

    // Back to v2. The corrupted version is now v2's rollback target (`previous`), so it is kept;
    // out of the served history, made the oldest, it is beyond the bound once three newer
    // candidates exist: every one of its keys gets a tombstone and its index entry goes.
    await announce(producer, group, v2, (await readVersionsTopic(kafka, group)).serving, 'back (test)');
    const { serving: announced, index } = await readVersionsTopic(kafka, group);
    expect(announced?.previous.at(-1)).toBe(bad);
    expect(versionsToPrune([...index.values()], announced)).toEqual([]);
    const serving = { version: v2, previous: [v1] };
    const aged = [...index.values()].map((m) => (m.version === bad ? { ...m, info: { ...m.info, createdAt: '2000-01-01T00:00:00.000Z' } } : m));
    expect(await pruneModels(producer, group, aged, serving)).toEqual([]);
    const newer = [1, 2, 3].map((i) => ({ ...index.get(v2)!, version: newVersionId('sims', new Date(Date.now() + i * 1000)), info: { ...index.get(v2)!.info, createdAt: new Date(Date.now() + i * 1000).toISOString() } }));
    const endBefore = (await admin.fetchTopicOffsets(topicName(group, 'models')))[0]!.high;
    expect(await pruneModels(producer, group, [...aged, ...newer], serving)).toEqual([bad]);
    const endAfter = (await admin.fetchTopicOffsets(topicName(group, 'models')))[0]!.high;
    expect(Number(endAfter) - Number(endBefore)).toBe(indexed.chunks + 1);
    const after = await readVersionsTopic(kafka, group);
    expect([...after.index.keys()].sort()).toEqual([v1, v2].sort());
    await until('b dropped it from its index', () => !b.versions.manifests.has(bad));
  }, 180_000);
});
