/**
 * Standby replicas (processor.standbyReplicas, src/stream/standby.ts): two processors of one group;
 * each keeps a standby store of the other's partitions, following the changelog. The standby store
 * never answers a query (PARTITION_MOVING, not the standby's copy); when its owner leaves, the
 * partition moves to the standby and its task replays only the tail of the changelog; and the
 * standby's store equals the owner's, digest for digest.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { isAppError } from '../../src/errors/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { partitionOf } from '../../src/kafka/partition.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { openRocksStore } from '../../src/state/rocksdb-store.js';
import { partitionStoreDir, StreamProcessor } from '../../src/stream/processor.js';
import { freshGroup, kafkaClients, serviceEnv, stateDigest, until, waitCaughtUp, type Digest } from './helpers.js';

const brokers = inject('kafkaBrokers');
const PARTITIONS = 4;
const topicsConfig = loadConfig({ env: { KAFKA_BROKERS: brokers }, overrides: { 'topics.partitions': PARTITIONS } });
const kafka = createKafka(topicsConfig, [brokers], '-standby-test');
const codecs = createCodecs(topicsConfig);
const { admin, producer } = kafkaClients(kafka);

function processor(group: string, instanceId: string, stateDir: string): StreamProcessor {
  const config = loadConfig({
    env: { KAFKA_BROKERS: brokers },
    overrides: { 'state.dir': stateDir, 'processor.sessionTimeoutMs': 6000, 'processor.rebalanceTimeoutMs': 10_000, 'processor.standbyReplicas': 1, 'topics.partitions': PARTITIONS },
  });
  return new StreamProcessor({ config, group, brokers: [brokers], instanceId, advertisedUrl: `http://${instanceId}:1`, openStore: (p) => openRocksStore(partitionStoreDir(config, group, p)) });
}

async function produce(group: string, seed: number, events: number): Promise<string[]> {
  const list = [...syntheticInteractions({ seed, users: 400, items: 500, events })];
  for (let i = 0; i < list.length; i += 2000) {
    await producer.send({ topic: topicName(group, 'interactions'), messages: list.slice(i, i + 2000).map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  }
  return [...new Set(list.map((e) => e.USER_ID))];
}

/** Every standby of `p` has read the changelog to its end (the last record is always a commit marker). */
async function standbysCaughtUp(group: string, procs: readonly StreamProcessor[]): Promise<boolean> {
  const ends = new Map((await admin.fetchTopicOffsets(topicName(group, 'changelog'))).map((o) => [o.partition, Number(o.high)]));
  const standbys = procs.flatMap((p) => p.status().standbys);
  return standbys.length === PARTITIONS && standbys.every((s) => s.checkpoint >= (ends.get(s.partition) ?? 0) - 1);
}

describe('standby replicas', () => {
  it('a standby store follows the changelog, never answers, and its partition moves there with only the tail to replay', async () => {
    const group = freshGroup('standby');
    await applyTopics(admin, group, topicsConfig);
    const dirs = [mkdtempSync(join(tmpdir(), 'streamrec-standby-a-')), mkdtempSync(join(tmpdir(), 'streamrec-standby-b-'))] as const;
    const [a, b] = [processor(group, 'a', dirs[0]), processor(group, 'b', dirs[1])] as const;
    let aStopped = false;
    try {
      await Promise.all([a.start(), b.start()]);
      const owned = (p: StreamProcessor) => p.status().partitions.map((s) => s.partition);
      await until('both running with 2 partitions each and a standby of each other partition', () => {
        if (a.state !== 'running' || b.state !== 'running' || owned(a).length !== 2 || owned(b).length !== 2) return false;
        const sa = a.status().standbys.map((s) => s.partition);
        const sb = b.status().standbys.map((s) => s.partition);
        return sa.join() === owned(b).join() && sb.join() === owned(a).join();
      }, 90_000);

      // Events while both run: the owners apply them, the standbys follow the changelog.
      const users = await produce(group, 11, 8000);
      await waitCaughtUp(admin, group);
      await until('the standbys caught up with the changelog', () => standbysCaughtUp(group, [a, b]), 60_000);
      for (const s of [...a.status().standbys, ...b.status().standbys]) expect(s.records, `standby of ${s.partition}`).toBeGreaterThan(0);

      // b holds a copy of a's users, but only a answers for them: b says PARTITION_MOVING, never "unknown".
      const aUser = users.find((u) => owned(a).includes(partitionOf(u, PARTITIONS)))!;
      expect(await a.queryState(aUser)).toBeDefined();
      const err = await b.queryState(aUser).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isAppError(err) && err.code).toBe('PARTITION_MOVING');
      expect(await b.userState(aUser)).toBeUndefined();

      // a leaves: b takes its partitions over from the warm standby stores.
      const moved = owned(a);
      const ends = new Map((await admin.fetchTopicOffsets(topicName(group, 'changelog'))).map((o) => [o.partition, Number(o.high)]));
      await a.stop();
      aStopped = true;
      await until('b owns every partition', () => b.state === 'running' && owned(b).length === PARTITIONS, 60_000);
      const restores = new Map(b.status().partitions.map((s) => [s.partition, s.restore]));
      for (const p of moved) {
        const r = restores.get(p)!;
        expect(r, `partition ${p}`).not.toBeNull();
        // From the standby's checkpoint, not from 0; the standby was caught up: nothing but markers to replay.
        expect(r.from, `partition ${p}`).toBeGreaterThanOrEqual(ends.get(p)! - 1);
        expect(r.records, `partition ${p}`).toBe(0);
      }
      expect(b.status().standbys).toEqual([]);
      // Its users are answered by b now, from the state the standby kept.
      const state = await b.queryState(aUser);
      expect(state?.user.events.length).toBeGreaterThan(0);

      await b.stop();
      // The store b took over is the one a left, digest for digest (a's own stores are a's state;
      // b's are a's partitions as its standby kept them, and its own).
      const da = await stateDigest(group, serviceEnv(brokers, dirs[0]));
      const db = await stateDigest(group, serviceEnv(brokers, dirs[1]));
      const byPartition = (d: Digest) => new Map(d.partitions.map((p) => [p.partition, p.digest]));
      const pa = byPartition(da);
      const pb = byPartition(db);
      for (const p of moved) {
        expect(pa.get(p), `partition ${p} in a's folder`).toBeDefined();
        expect(pb.get(p), `partition ${p}: b's standby copy equals a's store`).toBe(pa.get(p));
      }
      expect(db.keys).toBeGreaterThan(0);
    } finally {
      await Promise.all([aStopped ? undefined : a.stop(), b.stop()]);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });
});
