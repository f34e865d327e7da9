/**
 * Reads one partition of a topic between two offsets — what a Java consumer does with assign() and
 * seek(), which kafkajs lacks: a consumer of a throwaway group whose partition assigner hands this
 * one partition to its only member. Reads committed records only (transactions).
 */
import { randomBytes } from 'node:crypto';
import { AssignerProtocol, type KafkaClient, type KafkaMessage, type PartitionAssigner } from './kafkajs.js';
import { installReadCommittedFix } from './read-committed.js';

installReadCommittedFix();

export interface ReadPartitionOptions {
  topic: string;
  partition: number;
  /** First offset to read. */
  from: number;
  /** Last offset to read (inclusive): a record at this offset (or a transaction marker) must exist and be committed. */
  until: number;
  /** Called with the records of each fetched batch within [from, until], in offset order. */
  onBatch: (messages: KafkaMessage[]) => Promise<void>;
  groupPrefix: string;
  timeoutMs?: number;
}

/**
 * A partition assigner that gives `assignment` to the group's first member and nothing to any
 * other: kafkajs's stand-in for assign(), in a group of one.
 */
export function soleMemberAssigner(name: string, assignment: Record<string, number[]>): PartitionAssigner {
  return () => ({
    name,
    version: 1,
    protocol: ({ topics }) => ({ name, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) }),
    assign: async ({ members }) =>
      members.map((m, i) => ({
        memberId: m.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: i === 0 ? assignment : {}, userData: Buffer.alloc(0) }),
      })),
  });
}

export async function readPartition(kafka: KafkaClient, o: ReadPartitionOptions): Promise<void> {
  if (o.until < o.from) return;
  const onlyThisPartition = soleMemberAssigner('StreamrecSinglePartition', { [o.topic]: [o.partition] });
  const consumer = kafka.consumer({
    groupId: `${o.groupPrefix}.${Date.now().toString(36)}.${randomBytes(4).toString('hex')}`,
    partitionAssigners: [onlyThisPartition],
    readUncommitted: false,
    maxBytesPerPartition: 4 * 1024 * 1024,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${o.topic}[${o.partition}] ${o.from}..${o.until} timed out`)),
        o.timeoutMs ?? 120_000,
      );
      let done = false;
      // A fetch of control records only (a transaction's commit marker at `until`: a topic written
      // in transactions ends with one) never reaches eachBatch; kafkajs reports it here.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (done || payload.partition !== o.partition || payload.topic !== o.topic || Number(payload.lastOffset) < o.until) return;
        done = true;
        clearTimeout(timer);
        resolve();
      });
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            if (done || batch.partition !== o.partition) return;
            const messages = batch.messages.filter((m) => {
              const off = Number(m.offset);
              return off >= o.from && off <= o.until;
            });
            if (messages.length > 0) await o.onBatch(messages);
            if (Number(batch.lastOffset()) >= o.until) {
              done = true;
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .then(() => consumer.seek({ topic: o.topic, partition: o.partition, offset: String(o.from) }))
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}
