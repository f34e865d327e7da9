/**
 * Hyperparameter search in the service's training (src/training/stream-train.ts), against a real
 * broker: a solution's search request (performHPO) and training.hpoBudget both search before the
 * version is trained, and the version records it (version.json: training.hpo and report.hpo).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import type { VersionInfo } from '../../src/training/registry.js';
import { trainFromTopic } from '../../src/training/stream-train.js';
import { clickEvent, freshGroup, kafkaClients } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('hpo');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-hpo-'));
const env = { KAFKA_BROKERS: brokers, STREAMREC_STATE_DIR: dir, STREAMREC_TRAINING_RECIPE: 'sims', STREAMREC_TRAINING_SPLIT: 'loo' };
const config = loadConfig({ env });
const kafka = createKafka(config, [brokers], '-hpo-test');
const { admin, producer } = kafkaClients(kafka);
const USERS = 120;

beforeAll(async () => {
  await applyTopics(admin, group, config);
  const codecs = createCodecs(config);
  const T0 = Date.now() - 5 * 86_400_000;
  const events = Array.from({ length: USERS * 12 }, (_, i) => clickEvent(`u${i % USERS}`, `i${((i % USERS) + Math.floor(i / USERS)) % 90}`, T0 + i * 1000));
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('HPO in the service training', () => {
  it("a solution's search: the version records the request, every trial and the chosen params", async () => {
    const info = await trainFromTopic({ config, group, brokers: [brokers], versionsDir: join(dir, 'versions'), hpo: { budgetMs: 60_000, maxTrials: 3 } });
    expect(info.training.hpo).toEqual({ budgetMs: 60_000, maxTrials: 3 });
    const hpo = info.report.hpo!;
    expect(hpo.trials).toHaveLength(3);
    expect(hpo.chosen.ndcg10).toBe(Math.max(...hpo.trials.map((t) => t.results[0]!.ndcg10)));
    const saved = JSON.parse(readFileSync(join(dir, 'versions', info.version, 'version.json'), 'utf8')) as VersionInfo;
    expect(saved.report.hpo).toEqual(hpo);
  }, 120_000);

  it('training.hpoBudget makes the periodic training search; empty (the default) does not', async () => {
    const tuned = await trainFromTopic({ config: loadConfig({ env: { ...env, STREAMREC_TRAINING_HPO_BUDGET: '20s' } }), group, brokers: [brokers], versionsDir: join(dir, 'versions') });
    expect(tuned.training.hpo).toEqual({ budgetMs: 20_000 });
    expect(tuned.report.hpo!.budgetMs).toBe(20_000);
    const plain = await trainFromTopic({ config, group, brokers: [brokers], versionsDir: join(dir, 'versions') });
    expect(plain.training.hpo).toBeUndefined();
    expect(plain.report.hpo).toBeUndefined();
    expect(() => loadConfig({ env: { ...env, STREAMREC_TRAINING_HPO_BUDGET: 'soon' } })).toThrow(/training\.hpoBudget/);
  }, 120_000);
});
