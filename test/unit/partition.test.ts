import { describe, expect, it } from 'vitest';
import { Partitioners } from '../../src/kafka/kafkajs.js';
import { partitionOf } from '../../src/kafka/partition.js';

/** kafkajs's DefaultPartitioner itself, which every producer of the project uses. */
const direct = (key: string, n: number): number =>
  Partitioners.DefaultPartitioner()({
    topic: 't',
    partitionMetadata: Array.from({ length: n }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] })),
    message: { key, value: null },
  });

describe('partitionOf', () => {
  it("answers what kafkajs's partitioner does, computed or remembered, for any partition count", () => {
    const keys = Array.from({ length: 3000 }, (_, i) => (i % 3 === 0 ? `user-${i}` : i % 3 === 1 ? `ü${i * 7919}` : String(i)));
    for (const n of [1, 2, 3, 7, 12]) {
      const first = keys.map((k) => partitionOf(k, n));
      expect(first).toEqual(keys.map((k) => direct(k, n)));
      // The same keys again (remembered now): the same answers.
      expect(keys.map((k) => partitionOf(k, n))).toEqual(first);
    }
    // Spread over the partitions (the answers are not all one value).
    expect(new Set(keys.map((k) => partitionOf(k, 7))).size).toBe(7);
  });

  it('refuses a partition count that is not a positive integer', () => {
    expect(() => partitionOf('a', 0)).toThrow(/partitions must be a positive integer/);
    expect(() => partitionOf('a', 2.5)).toThrow(/partitions must be a positive integer/);
  });
});
