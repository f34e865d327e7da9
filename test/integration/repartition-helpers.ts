import type { Admin, KafkaClient } from '../../src/kafka/kafkajs.js';
import { installReadCommittedFix } from '../../src/kafka/read-committed.js';
import { readTopic } from './helpers.js';

// The repartition topic has several transactional writers per partition: read it with the fix.
installReadCommittedFix();

/**
 * Waits until the group's processor has applied what was forwarded to `<group>.interactions-repartition`:
 * reads the committed forwarded records (exactly `expected` of them, else it fails), then waits
 * until the processor's committed offset of each repartition partition is past the last of them.
 */
export async function waitRepartitionApplied(kafka: KafkaClient, admin: Admin, group: string, expected: number, timeoutMs = 120_000): Promise<void> {
  const topic = `${group}.interactions-repartition`;
  if (expected === 0) return;
  const records = await readTopic(kafka, topic, expected, timeoutMs);
  if (records.length !== expected) throw new Error(`${topic} holds ${records.length} committed records, expected ${expected}`);
  const ends = await admin.fetchTopicOffsets(topic);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [committed] = await admin.fetchOffsets({ groupId: `streamrec.${group}.processor`, topics: [topic] });
    const byPartition = new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    // The last record of a partition is followed by at least its transaction's marker: committed
    // offsets reach the end once everything (markers included) was read past.
    const behind = ends.filter((e) => Number(e.high) > 0 && (byPartition.get(e.partition) ?? -1) < Number(e.high));
    if (behind.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processor of ${group} did not read ${topic} to its end: ${JSON.stringify({ ends, committed: [...byPartition] })}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
