import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { groupTopics, topicName, validateGroupName } from '../../src/kafka/topics.js';
import { CHUNK_BYTES, CHUNKS_PER_SEND, MODELS_MAX_MESSAGE_BYTES } from '../../src/training/model-transfer.js';

describe('topic definitions', () => {
  const config = loadConfig({ env: { STREAMREC_TOPIC_PARTITIONS: '4' } });

  it('define the eleven topics of a group, named <group>.<topic>', () => {
    const topics = groupTopics('shop', config);
    expect(topics.map((t) => t.topic)).toEqual([
      'shop.interactions',
      'shop.items',
      'shop.users',
      'shop.recommendations',
      'shop.dead-letter',
      'shop.versions',
      'shop.models',
      'shop.resources',
      'shop.changelog',
      'shop.interactions-repartition',
      'shop.deletions',
    ]);
  });

  it('compact items, users, versions, models, resources, changelog and deletions, and delete-by-retention the rest', () => {
    const policy = Object.fromEntries(groupTopics('shop', config).map((t) => [t.name, t.config['cleanup.policy']]));
    expect(policy).toEqual({
      interactions: 'delete',
      items: 'compact',
      users: 'compact',
      recommendations: 'delete',
      'dead-letter': 'delete',
      versions: 'compact',
      models: 'compact',
      resources: 'compact',
      changelog: 'compact',
      'interactions-repartition': 'delete',
      deletions: 'compact',
    });
    expect(groupTopics('shop', config).find((t) => t.name === 'versions')?.partitions).toBe(1);
    expect(groupTopics('shop', config).find((t) => t.name === 'deletions')?.partitions).toBe(1);
    expect(groupTopics('shop', config).find((t) => t.name === 'resources')?.partitions).toBe(1);
    // One partition (chunk offsets are read in order); room for one produce batch of 4 chunks of 512 KiB.
    const models = groupTopics('shop', config).find((t) => t.name === 'models')!;
    expect(models.partitions).toBe(1);
    expect(Number(models.config['max.message.bytes'])).toBe(MODELS_MAX_MESSAGE_BYTES);
    expect(CHUNK_BYTES * CHUNKS_PER_SEND + 64 * 1024).toBeLessThan(MODELS_MAX_MESSAGE_BYTES);
    for (const t of groupTopics('shop', config).filter((x) => x.config['cleanup.policy'] === 'delete')) {
      expect(Number(t.config['retention.ms']), t.topic).toBeGreaterThan(0);
    }
  });

  it('co-partition the changelog with interactions, from topics.partitions', () => {
    const byName = Object.fromEntries(groupTopics('shop', config).map((t) => [t.name, t.partitions]));
    expect(byName.interactions).toBe(4);
    expect(byName.changelog).toBe(byName.interactions);
    expect(byName['dead-letter']).toBe(byName.interactions);
    expect(byName['interactions-repartition']).toBe(byName.interactions);
  });

  it('refuse group names that would make ambiguous or illegal topic names', () => {
    expect(topicName('a_b-1', 'items')).toBe('a_b-1.items');
    for (const bad of ['', 'a.b', 'a b', 'x'.repeat(61), '../etc']) {
      expect(() => validateGroupName(bad), bad).toThrow(/dataset group name/);
    }
  });
});
