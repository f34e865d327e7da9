/**
 * Changelog and restore: a partition that arrives at an instance without its local state is
 * rebuilt from the changelog topic before processing resumes, so the state matches a single
 * uninterrupted instance's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { AssignerProtocol } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { freshGroup, kafkaClients, serviceEnv, startCli, stateDigest, stopChild, waitCaughtUp } from './helpers.js';

const brokers = inject('kafkaBrokers');
const config = loadConfig({ env: { KAFKA_BROKERS: brokers } });
const kafka = createKafka(config, [brokers], '-restore-test');
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(kafka);

const events = [...syntheticInteractions({ seed: 5, users: 300, items: 2000, events: 12_000 })].map((e) => ({
  key: e.USER_ID,
  value: codecs.Interaction.encode(e),
}));
const firstHalf = events.slice(0, 6000);
const secondHalf = events.slice(6000);

const env = (stateDir: string, level = 'warn'): NodeJS.ProcessEnv => serviceEnv(brokers, stateDir, { STREAMREC_LOG_LEVEL: level });

async function produce(group: string, messages: typeof events): Promise<void> {
  for (let i = 0; i < messages.length; i += 2000) await producer.send({ topic: topicName(group, 'interactions'), messages: messages.slice(i, i + 2000) });
}

const stop = stopChild;
const digest = (group: string, stateDir: string) => stateDigest(group, env(stateDir));

/** `partition restored` log lines of a service's output. */
function restoredPartitions(output: string): { partition: number; restored: number }[] {
  return output
    .split('\n')
    .filter((l) => l.includes('"partition restored"'))
    .map((l) => JSON.parse(l) as { partition: number; restored: number });
}


describe('changelog restore', () => {
  let reference: { digest: string; keys: number };

  it('reference: one uninterrupted instance', async () => {
    const group = freshGroup('restore-ref');
    await applyTopics(admin, group, config);
    await produce(group, events);
    const dir = mkdtempSync(join(tmpdir(), 'streamrec-restore-ref-'));
    const { child } = await startCli(['start', '--group', group], env(dir), 'running;');
    await waitCaughtUp(admin, group);
    await stop(child);
    const d = await digest(group, dir);
    reference = { digest: d.digest, keys: d.keys };
    expect(reference.keys).toBeGreaterThan(1000);
  });

  it('two instances in one group: when one stops, the other takes over its partitions with the same state', async () => {
    const group = freshGroup('restore-two');
    await applyTopics(admin, group, config);
    await produce(group, firstHalf);
    const dirX = mkdtempSync(join(tmpdir(), 'streamrec-restore-x-'));
    const dirY = mkdtempSync(join(tmpdir(), 'streamrec-restore-y-'));
    const x = await startCli(['start', '--group', group], { ...env(dirX, 'info'), STREAMREC_INSTANCE_ID: 'x' }, 'running;');
    const y = await startCli(['start', '--group', group], { ...env(dirY, 'info'), STREAMREC_INSTANCE_ID: 'y' }, 'running;');
    await waitCaughtUp(admin, group);
    // Wait for the group to settle with both members owning partitions.
    const deadline = Date.now() + 60_000;
    let membersWithPartitions = 0;
    while (Date.now() < deadline) {
      const [g] = (await admin.describeGroups([`streamrec.${group}.processor`])).groups;
      membersWithPartitions = (g?.members ?? []).filter((m) => {
        const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
        return (a?.assignment[topicName(group, 'interactions')] ?? []).length > 0;
      }).length;
      if (g?.state === 'Stable' && membersWithPartitions === 2) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(membersWithPartitions).toBe(2);
    await waitCaughtUp(admin, group);
    const beforeStop = y.output().length;
    await stop(x.child);
    await produce(group, secondHalf);
    await waitCaughtUp(admin, group);
    // Y rebuilt the partitions it had no state for from the changelog.
    const takenOver = restoredPartitions(y.output().slice(beforeStop));
    expect(takenOver.some((r) => r.restored > 0)).toBe(true);
    await stop(y.child);
    const d = await digest(group, dirY);
    expect(d.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    expect({ digest: d.digest, keys: d.keys }).toEqual(reference);

    // Lose every local store: a restart rebuilds all of them from the changelog.
    rmSync(join(dirY, group), { recursive: true, force: true });
    const again = await startCli(['start', '--group', group], { ...env(dirY, 'info'), STREAMREC_INSTANCE_ID: 'y2' }, 'running;');
    const readyDeadline = Date.now() + 60_000;
    while (restoredPartitions(again.output()).length < 3 && Date.now() < readyDeadline) await new Promise((r) => setTimeout(r, 200));
    const restored = restoredPartitions(again.output());
    expect(restored.map((r) => r.partition).sort()).toEqual([0, 1, 2]);
    expect(restored.reduce((n, r) => n + r.restored, 0)).toBeGreaterThanOrEqual(reference.keys);
    await stop(again.child);
    const d2 = await digest(group, dirY);
    expect({ digest: d2.digest, keys: d2.keys }).toEqual(reference);
  });
});
