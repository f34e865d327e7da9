/**
 * `streamrec topics create` (applyTopics) and the partition count of a group's state-partitioned
 * topics: growing them is refused once the group has data (users would move away from their
 * state), allowed while it has none; a missing repartition topic is made like interactions.
 */
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { AppError } from '../../src/errors/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, createTopicsAndWait, topicName } from '../../src/kafka/topics.js';
import { freshGroup, kafkaClients } from './helpers.js';

const brokers = inject('kafkaBrokers');
const config3 = loadConfig({ env: { KAFKA_BROKERS: brokers, STREAMREC_TOPIC_PARTITIONS: '3' } });
const config4 = loadConfig({ env: { KAFKA_BROKERS: brokers, STREAMREC_TOPIC_PARTITIONS: '4' } });
const kafka = createKafka(config3, [brokers], '-topics-partitions-test');
const { admin, producer } = kafkaClients(kafka);


async function counts(group: string): Promise<Record<string, number>> {
  const names = ['interactions', 'interactions-repartition', 'changelog', 'dead-letter'] as const;
  const { topics } = await admin.fetchTopicMetadata({ topics: names.map((n) => topicName(group, n)) });
  return Object.fromEntries(names.map((n) => [n, topics.find((t) => t.name === topicName(group, n))!.partitions.length]));
}

describe('the partition count of a group with data', () => {
  it('is not grown: PARTITIONS_CHANGE_REFUSED says what to do, and nothing changes', async () => {
    const group = freshGroup('parts-data');
    await applyTopics(admin, group, config3);
    await producer.send({ topic: topicName(group, 'interactions'), messages: [{ key: 'alice', value: Buffer.from('x') }] });
    const err = await applyTopics(admin, group, config4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('PARTITIONS_CHANGE_REFUSED');
    expect((err as AppError).message).toMatch(/has data/);
    expect((err as AppError).message).toMatch(/Keep topics.partitions at 3, or create a new dataset group with 4 partitions and import/);
    expect(await counts(group)).toEqual({ interactions: 3, 'interactions-repartition': 3, changelog: 3, 'dead-letter': 3 });
    // The same count is fine.
    expect((await applyTopics(admin, group, config3)).every((r) => r.action === 'unchanged')).toBe(true);
  });

  it('is grown while the group has no data', async () => {
    const group = freshGroup('parts-empty');
    await applyTopics(admin, group, config3);
    const reports = await applyTopics(admin, group, config4);
    expect(reports.filter((r) => r.action === 'partitions-added').length).toBeGreaterThanOrEqual(3);
    expect(await counts(group)).toEqual({ interactions: 4, 'interactions-repartition': 4, changelog: 4, 'dead-letter': 4 });
  });

  it("makes a missing repartition topic (a group from before it existed) with the interactions topic's count", async () => {
    const group = freshGroup('parts-old');
    await createTopicsAndWait(admin, [{ topic: topicName(group, 'interactions'), numPartitions: 4 }]);
    await producer.send({ topic: topicName(group, 'interactions'), messages: [{ key: 'bob', value: Buffer.from('x') }] });
    const reports = await applyTopics(admin, group, config3);
    expect(reports.find((r) => r.topic === topicName(group, 'interactions'))?.action).toBe('warning');
    expect(await counts(group)).toEqual({ interactions: 4, 'interactions-repartition': 4, changelog: 4, 'dead-letter': 4 });
  });
});
