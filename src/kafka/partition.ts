/**
 * The partition of a keyed record: computed by kafkajs's own DefaultPartitioner (murmur2, as the
 * Java client's), the partitioner every producer of this project uses (kafkajs 2's default), so the
 * answer here and the partition a produce picks can never disagree.
 */
import { Partitioners, type PartitionMetadata } from './kafkajs.js';

const partitioner = Partitioners.DefaultPartitioner();
/** Partition metadata of N partitions, per N (a keyed message's partition only depends on N). */
const metadata = new Map<number, PartitionMetadata[]>();

/** The partition (0..partitions-1) a message with this key goes to in a topic of `partitions` partitions. */
export function partitionOf(key: string, partitions: number): number {
  if (!Number.isSafeInteger(partitions) || partitions < 1) throw new RangeError(`partitionOf: partitions must be a positive integer, got ${partitions}`);
  let meta = metadata.get(partitions);
  if (!meta) {
    meta = Array.from({ length: partitions }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));
    metadata.set(partitions, meta);
  }
  return partitioner({ topic: '', partitionMetadata: meta, message: { key, value: null } });
}
