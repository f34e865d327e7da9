/**
 * Producers that do not partition by murmur2 (issue 12): kcat, a librdkafka client, with its
 * DEFAULT partitioner (consistent_random: CRC32 of the key), exactly as a user would run it
 * (`kcat -P -t G.interactions -k alice alice-*.avro`, one Avro file per event), plus one user whose
 * records a kafkajs producer sends to an explicit wrong partition. Every user's events must be
 * applied once, to the state of the user's own partition, where queries look (the processor's
 * userState, what the query API reads); and the state must be the state of the same events
 * produced with murmur2 into another group.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { partitionOf } from '../../src/kafka/partition.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, type Interaction } from '../../src/serde/avro.js';
import { digestGroupState } from '../../src/state/digest.js';
import { openRocksStore } from '../../src/state/rocksdb-store.js';
import { partitionStoreDir, StreamProcessor } from '../../src/stream/processor.js';
import { freshGroup, kafkaClients, readTopic, until } from './helpers.js';
import './repartition-helpers.js';

const brokers = inject('kafkaBrokers');
const config = loadConfig({ env: { KAFKA_BROKERS: brokers } });
const P = config.topics.partitions;
const kafka = createKafka(config, [brokers], '-librdkafka-test');
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(kafka);
const dirs: string[] = [];

const KCAT_USERS = ['alice', 'bob', 'carol', 'dave', 'u-01', 'u-02', 'u-03', 'u-04', 'u-05', 'u-06', 'u-07', 'u-08'];
/** Sent by kafkajs to an explicit partition that does not own it. */
const EXPLICIT_USER = 'erin';
const USERS = [...KCAT_USERS, EXPLICIT_USER];

/** Synthetic events, their users renamed to USERS; per user in time order. */
function events(): Map<string, Interaction[]> {
  const ids = new Map<string, string>();
  const byUser = new Map<string, Interaction[]>(USERS.map((u) => [u, []]));
  for (const e of syntheticInteractions({ seed: 12, users: USERS.length, items: 40, events: 260 })) {
    if (!ids.has(e.USER_ID)) ids.set(e.USER_ID, USERS[ids.size % USERS.length]!);
    const user = ids.get(e.USER_ID)!;
    byUser.get(user)!.push({ ...e, USER_ID: user });
  }
  return byUser;
}
const byUser = events();
const total = [...byUser.values()].reduce((n, es) => n + es.length, 0);
/** librdkafka's consistent_random partition of a non-empty key. */
const crcPartition = (key: string): number => crc32(Buffer.from(key)) % P;

afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs the processor of `group` in this process until `total` events are applied; returns each user's stored event count, then stops. */
async function applyAll(group: string): Promise<{ stateDir: string; totals: Map<string, number | undefined>; applied: number; deadLetters: number; forwarded: number }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-librdkafka-'));
  dirs.push(stateDir);
  const c = loadConfig({ env: { KAFKA_BROKERS: brokers, STREAMREC_STATE_DIR: stateDir, STREAMREC_PROCESSOR_SESSION_TIMEOUT_MS: '6000' } });
  const processor = new StreamProcessor({ config: c, group, brokers: [brokers], instanceId: 'librdkafka-test', openStore: (p) => openRocksStore(partitionStoreDir(c, group, p)) });
  await processor.start();
  try {
    await until(`${group}: ${total} events applied`, () => processor.status().applied >= total, 90_000);
    // Anything applied twice would show up by now.
    await new Promise((r) => setTimeout(r, 2000));
    const totals = new Map<string, number | undefined>();
    for (const u of USERS) {
      expect(processor.owner(u).self, u).toBe(true);
      totals.set(u, (await processor.userState(u))?.user.total);
    }
    const { applied, deadLetters, forwarded } = processor.status();
    return { stateDir, totals, applied, deadLetters, forwarded };
  } finally {
    await processor.stop();
  }
}

describe('producers with another partitioner (librdkafka) or explicit partitions', () => {
  it('kcat with its default partitioner and an explicit wrong partition: every event applied once, every user found, the state of murmur2', async () => {
    const misrouted = KCAT_USERS.filter((u) => crcPartition(u) !== partitionOf(u, P));
    // The case: most users land elsewhere (alice, bob, dave among them with 3 partitions).
    expect(misrouted.length).toBeGreaterThanOrEqual(4);

    // --- group A: kcat, one Avro file per event, keyed by the user id, default partitioner
    const group = freshGroup('librdkafka');
    await applyTopics(admin, group, config);
    const files = mkdtempSync(join(tmpdir(), 'streamrec-kcat-'));
    dirs.push(files);
    for (const u of KCAT_USERS) {
      const paths = byUser.get(u)!.map((e, i) => {
        const path = join(files, `${u}-${String(i).padStart(4, '0')}.avro`);
        writeFileSync(path, codecs.Interaction.encode(e));
        return path;
      });
      const out = spawnSync('kcat', ['-b', brokers, '-P', '-t', topicName(group, 'interactions'), '-k', u, ...paths], { encoding: 'utf8', timeout: 60_000 });
      expect(out.status, `kcat for ${u}: ${out.stderr}`).toBe(0);
    }
    const explicit = (partitionOf(EXPLICIT_USER, P) + 1) % P;
    await producer.send({
      topic: topicName(group, 'interactions'),
      messages: byUser.get(EXPLICIT_USER)!.map((e) => ({ key: EXPLICIT_USER, value: codecs.Interaction.encode(e), partition: explicit })),
    });
    // Where the records are: CRC32 of the key for kcat's, the explicit partition for erin's.
    const expected = new Array<number>(P).fill(0);
    for (const u of KCAT_USERS) expected[crcPartition(u)]! += byUser.get(u)!.length;
    expected[explicit]! += byUser.get(EXPLICIT_USER)!.length;
    const ends = (await admin.fetchTopicOffsets(topicName(group, 'interactions'))).sort((a, b) => a.partition - b.partition);
    expect(ends.map((e) => Number(e.high))).toEqual(expected);

    // --- group B: the same events, kafkajs's default partitioner (murmur2), in the same order per user
    const reference = freshGroup('librdkafka-murmur2');
    await applyTopics(admin, reference, config);
    await producer.send({
      topic: topicName(reference, 'interactions'),
      messages: USERS.flatMap((u) => byUser.get(u)!.map((e) => ({ key: u, value: codecs.Interaction.encode(e) }))),
    });

    const a = await applyAll(group);
    expect(a.applied).toBe(total);
    expect(a.deadLetters).toBe(0);
    const forwardedUsers = [...misrouted, EXPLICIT_USER];
    expect(a.forwarded).toBe(forwardedUsers.reduce((n, u) => n + byUser.get(u)!.length, 0));
    for (const u of USERS) expect(a.totals.get(u), `${u}'s events in its state`).toBe(byUser.get(u)!.length);

    // The forwarded records, committed once each, name where they came from.
    const forwards = await readTopic(kafka, topicName(group, 'interactions-repartition'), a.forwarded);
    expect(forwards.length).toBe(a.forwarded);
    for (const m of forwards) expect(m.headers?.['forwarded-from-topic']?.toString()).toBe(topicName(group, 'interactions'));

    const b = await applyAll(reference);
    expect(b.applied).toBe(total);
    expect(b.forwarded).toBe(0);
    const [da, db] = [await digestGroupState(join(a.stateDir, group)), await digestGroupState(join(b.stateDir, reference))];
    expect(da.keys).toBeGreaterThan(USERS.length);
    expect(da.partitions.map((p) => [p.partition, p.keys, p.digest])).toEqual(db.partitions.map((p) => [p.partition, p.keys, p.digest]));
    expect(da.digest).toBe(db.digest);
    console.log(
      `kcat users in another partition than murmur2's: ${misrouted.join(', ')} (+ ${EXPLICIT_USER}, explicit); applied ${a.applied} of ${total}, forwarded ${a.forwarded}; digest ${da.digest} (${da.keys} keys) = murmur2 group's ${db.digest}`,
    );
  }, 240_000);
});
