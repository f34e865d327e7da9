/**
 * The service's training with `training.recipe: auto` (src/training/stream-train.ts), against a real
 * broker: interactions and items read from the group's topics, the recipe chosen on validation,
 * the version records the chosen recipe, `auto` as its training recipe and the table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { syntheticInteractions, syntheticItems } from '../../src/data/synthetic.js';
import { trainFromTopic } from '../../src/training/stream-train.js';
import { VersionRegistry } from '../../src/training/registry.js';
import { freshGroup, kafkaClients } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('auto');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-auto-'));
const config = loadConfig({
  env: {
    KAFKA_BROKERS: brokers,
    STREAMREC_STATE_DIR: dir,
    STREAMREC_TRAINING_RECIPE: 'auto',
    STREAMREC_TRAINING_SPLIT: 'loo',
    STREAMREC_TRAINING_PARAMS: JSON.stringify({ epochs: 1, hiddenSize: 16, negatives: 64, workers: 1 }),
  },
});
const { admin, producer } = kafkaClients(createKafka(config, [brokers], '-auto-test'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('training.recipe auto in the service', () => {
  it('chooses on validation from the topics, and the version records the choice', async () => {
    await applyTopics(admin, group, config);
    const codecs = createCodecs(config);
    const events = [...syntheticInteractions({ seed: 9, users: 200, items: 150, events: 3000, start: Date.now() - 5 * 86_400_000 })];
    await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
    const items = [...syntheticItems({ seed: 9, items: 150 })];
    await producer.send({ topic: topicName(group, 'items'), messages: items.map((i) => ({ key: i.ITEM_ID, value: codecs.Item.encode(i) })) });
    const versionsDir = join(dir, 'versions');
    const info = await trainFromTopic({ config, group, brokers: [brokers], versionsDir });
    const auto = info.report.auto!;
    // The items topic was read: item metadata makes hrnn-metadata feature sets candidates.
    expect(auto.table.map((r) => r.recipe)).toEqual(['popularity-count', 'sims', 'hrnn', ...auto.table.slice(3).map(() => 'hrnn-metadata')]);
    expect(auto.table.slice(3).some((r) => r.features!.includes('item.CATEGORY'))).toBe(true);
    const best = auto.table.reduce((b, r) => (r.ndcg10 > b.ndcg10 ? r : b));
    expect(info.recipe).toBe(best.recipe);
    expect(info.training.recipe).toBe('auto');
    const stored = new VersionRegistry(versionsDir).info(info.version);
    expect(stored.report.auto).toEqual(auto);
  }, 300_000);
});
