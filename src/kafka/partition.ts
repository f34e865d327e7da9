/**
 * The partition of a keyed record: computed by kafkajs's own DefaultPartitioner (murmur2, as the
 * Java client's), the partitioner every producer of this project uses (kafkajs 2's default), so the
 * answer here and the partition a produce picks can never disagree.
 */
import { Partitioners, type PartitionMetadata } from './kafkajs.js';

const partitioner = Partitioners.DefaultPartitioner();
/** Partition metadata of N partitions, per N (a keyed message's partition only depends on N). */
const metadata = new Map<number, PartitionMetadata[]>();

/**
 * Answers already computed, per partition count: kafkajs's murmur2 works on Long objects (about
 * 2 us and a dozen allocations a key, 5% of the processor's time in bench:ingest), and a stream's
 * keys repeat. Emptied when it reaches KEPT_KEYS.
 */
const known = new Map<number, Map<string, number>>();
const KEPT_KEYS = 200_000;

/** The partition (0..partitions-1) a message with this key goes to in a topic of `partitions` partitions. */
export function partitionOf(key: string, partitions: number): number {
  const cached = known.get(partitions)?.get(key);
  if (cached !== undefined) return cached;
  if (!Number.isSafeInteger(partitions) || partitions < 1) throw new RangeError(`partitionOf: partitions must be a positive integer, got ${partitions}`);
  let meta = metadata.get(partitions);
  if (!meta) {
    meta = Array.from({ length: partitions }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));
    metadata.set(partitions, meta);
  }
  const p = partitioner({ topic: '', partitionMetadata: meta, message: { key, value: null } });
  let keys = known.get(partitions);
  if (!keys) known.set(partitions, (keys = new Map()));
  if (keys.size >= KEPT_KEYS) keys.clear();
  keys.set(key, p);
  return p;
}
