/**
 * Partition owners: two processors of one group, each advertising its URL through the group's
 * assignment, agree on the owner (partition, URL) of every user; the partition is where a producer
 * puts the user's records, and the user's state is in the owner's store only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { partitionOf } from '../../src/kafka/partition.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { openRocksStore } from '../../src/state/rocksdb-store.js';
import { partitionStoreDir, StreamProcessor } from '../../src/stream/processor.js';
import { freshGroup, kafkaClients, waitCaughtUp } from './helpers.js';

const brokers = inject('kafkaBrokers');
// The topics have 4 partitions; the processors' config says 3 (the default): they must go by the
// topic's metadata.
const topicsConfig = loadConfig({ env: { KAFKA_BROKERS: brokers }, overrides: { 'topics.partitions': 4 } });
const kafka = createKafka(topicsConfig, [brokers], '-owners-test');
const codecs = createCodecs(topicsConfig);
const { admin, producer } = kafkaClients(kafka);


function processor(group: string, instanceId: string, advertisedUrl: string, stateDir: string): StreamProcessor {
  const config = loadConfig({
    env: { KAFKA_BROKERS: brokers },
    overrides: { 'state.dir': stateDir, 'processor.sessionTimeoutMs': 6000, 'processor.rebalanceTimeoutMs': 10_000 },
  });
  expect(config.topics.partitions).toBe(3);
  return new StreamProcessor({ config, group, brokers: [brokers], instanceId, advertisedUrl, openStore: (p) => openRocksStore(partitionStoreDir(config, group, p)) });
}

describe('partition owners', () => {
  it('two processors agree on every user\'s owner, which is where the producer put the user and where its state is', async () => {
    const group = freshGroup('owners');
    await applyTopics(admin, group, topicsConfig);
    const dirs = [mkdtempSync(join(tmpdir(), 'streamrec-owners-a-')), mkdtempSync(join(tmpdir(), 'streamrec-owners-b-'))];
    const urls = ['http://a:1', 'http://b:2'] as const;
    const procs = [processor(group, 'a', urls[0], dirs[0]!), processor(group, 'b', urls[1], dirs[1]!)] as const;
    try {
      await Promise.all(procs.map((p) => p.start()));

      // Settled: both running, the 4 partitions split between them, and both know every owner.
      const owned = () => procs.map((p) => p.status().partitions.map((s) => s.partition));
      /** Partition -> owner URL as one processor sees it, over probe users covering every partition. */
      const ownerTable = (p: StreamProcessor) => {
        const table = new Map<number, string | undefined>();
        for (let k = 0; table.size < 4 && k < 1000; k++) {
          const o = p.owner(`probe-${k}`);
          table.set(o.partition, o.url);
        }
        return table;
      };
      const settled = () => {
        const [a, b] = owned();
        if (procs.some((p) => p.state !== 'running') || a!.length === 0 || b!.length === 0) return false;
        if ([...a!, ...b!].sort().join() !== '0,1,2,3') return false;
        // Both know every partition's owner, and it is the instance that has it.
        return procs.every((p) => {
          const table = ownerTable(p);
          return table.size === 4 && [...table].every(([partition, url]) => url === urls[a!.includes(partition) ? 0 : 1]);
        });
      };
      const deadline = Date.now() + 90_000;
      while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect(settled(), JSON.stringify({ owned: owned(), states: procs.map((p) => p.state) })).toBe(true);

      // Records: one send each, to read the partition the producer chose.
      const topic = topicName(group, 'interactions');
      const events = [...syntheticInteractions({ seed: 3, users: 80, items: 200, events: 400 })];
      const landed = new Map<string, number>();
      for (const e of events) {
        const [meta] = await producer.send({ topic, messages: [{ key: e.USER_ID, value: codecs.Interaction.encode(e) }] });
        expect(meta!.partition).toBe(partitionOf(e.USER_ID, 4));
        expect(landed.get(e.USER_ID) ?? meta!.partition).toBe(meta!.partition);
        landed.set(e.USER_ID, meta!.partition);
      }
      expect(new Set(landed.values()).size).toBe(4);

      // Both instances agree on every user's owner; exactly one of them is it.
      const users = [...landed.keys(), ...Array.from({ length: 500 }, (_, i) => `user-${i}-${(i * 7919).toString(36)}`)];
      for (const u of users) {
        const [a, b] = procs.map((p) => p.owner(u)) as [ReturnType<StreamProcessor['owner']>, ReturnType<StreamProcessor['owner']>];
        expect(a.partition).toBe(partitionOf(u, 4));
        expect(b.partition).toBe(a.partition);
        if (landed.has(u)) expect(a.partition).toBe(landed.get(u));
        expect(a.self !== b.self, u).toBe(true);
        expect(a.url).toBeDefined();
        expect(b.url).toBe(a.url);
        expect(a.url).toBe(a.self ? urls[0] : urls[1]);
      }

      // The state of a user is read from the owner's store only.
      await waitCaughtUp(admin, group);
      for (const u of landed.keys()) {
        const [a, b] = procs.map((p) => p.owner(u));
        const [sa, sb] = await Promise.all(procs.map((p) => p.userState(u)));
        expect(a!.self ? sa : sb, u).toBeDefined();
        expect(a!.self ? sb : sa, u).toBeUndefined();
        expect((a!.self ? sa : sb)!.user.events.length).toBeGreaterThan(0);
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });
});
