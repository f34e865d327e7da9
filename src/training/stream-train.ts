/**
 * A training of the running service: reads the group's interactions topic (every partition, from
 * its first retained record to the end at the start of the read, committed records only), keeps the
 * latest `training.maxEvents` in time order, trains and evaluates `training.recipe` on them,
 * writes a new version to the registry and publishes it to `<group>.models`
 * (src/training/model-transfer.ts), so that every instance can fetch it. Records that do not
 * decode are skipped (the processor dead-letters them). Runs in a worker thread in the service (src/training/train-worker.ts), so the
 * event loop that serves queries and ingests events is never blocked by it.
 */
import type { Config } from '../config/index.js';
import { AppError } from '../errors/index.js';
import { createKafka } from '../kafka/client.js';
import { readPartition } from '../kafka/read-partition.js';
import { topicName, topicOffsets } from '../kafka/topics.js';
import { createCodecs } from '../serde/avro.js';
import type { KafkaMessage } from '../kafka/kafkajs.js';
import type { TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import type { Logger } from '../util/log.js';
import { parseBudget } from './hpo.js';
import { userData, type HpoRequest } from './model-files.js';
import { publishVersion } from './model-transfer.js';
import { VersionRegistry, type VersionInfo } from './registry.js';
import { trainAndEvaluate } from './train.js';
import { DeletionList, parseDeleteCommand } from '../stream/deletion.js';

export interface TopicTrainingOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  versionsDir: string;
  log?: Logger;
  /** A solution's hyperparameter search (performHPO); without it, training.hpoBudget's. */
  hpo?: HpoRequest;
}

/** Every committed record of one of the group's topics, partition by partition, up to the end at the start of the read. */
async function readTopic(o: Omit<TopicTrainingOptions, 'versionsDir'>, name: 'interactions' | 'items' | 'users' | 'deletions', onMessage: (m: KafkaMessage, partition: number) => void): Promise<void> {
  const kafka = createKafka(o.config, o.brokers, '-trainer', o.log);
  const topic = topicName(o.group, name);
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await topicOffsets(admin, topic).finally(() => admin.disconnect());
  for (const { partition, low, high } of offsets) {
    if (high <= low) continue;
    await readPartition(kafka, {
      topic,
      partition,
      from: low,
      until: high - 1,
      groupPrefix: `streamrec.${o.group}.trainer`,
      timeoutMs: 600_000,
      onBatch: async (messages) => {
        for (const m of messages) onMessage(m, partition);
      },
    });
  }
}

/** The group's deletion list (`<group>.deletions`, src/stream/deletion.ts). */
export async function readDeletions(o: Omit<TopicTrainingOptions, 'versionsDir'>): Promise<DeletionList> {
  const list = new DeletionList();
  await readTopic(o, 'deletions', (m) => {
    const key = m.key?.toString();
    if (key) list.apply(key, m.value ?? null);
  });
  return list;
}

/**
 * The group's interactions, time-ordered (ties by partition, then offset), the latest `max` of them.
 * Delete commands are not events, and deleted users' events before their deletion are left out
 * (the deletion list, read first).
 */
export async function readInteractions(o: Omit<TopicTrainingOptions, 'versionsDir'>, max: number): Promise<InteractionFields[]> {
  const codecs = createCodecs(o.config);
  const rows: (InteractionFields & { p: number; o: number })[] = [];
  const deletions = await readDeletions(o);
  let deleted = 0;
  await readTopic(o, 'interactions', (m, partition) => {
    if (!m.value || parseDeleteCommand(m) !== undefined) return;
    try {
      const e = codecs.Interaction.decode(m.value);
      if (deletions.excludes(e.USER_ID, partition, Number(m.offset), Number(m.timestamp))) {
        deleted++;
        return;
      }
      rows.push({ USER_ID: e.USER_ID, ITEM_ID: e.ITEM_ID, TIMESTAMP: e.TIMESTAMP, EVENT_TYPE: e.EVENT_TYPE, EVENT_VALUE: e.EVENT_VALUE, SESSION_ID: e.SESSION_ID, CONTEXT: e.CONTEXT, p: partition, o: Number(m.offset) } as InteractionFields & { p: number; o: number });
    } catch {
      // dead-lettered by the processor
    }
  });
  if (deleted > 0) o.log?.info({ events: deleted, users: deletions.size }, 'training: deleted users\' events left out');
  rows.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP || a.p - b.p || a.o - b.o);
  return rows.slice(Math.max(0, rows.length - max)).map(({ p: _p, o: _o, ...e }) => e);
}

/** The latest record per key of a compacted topic (a null value deletes); records that do not decode or whose key is not their id are skipped. */
async function latestByKey<T>(o: Omit<TopicTrainingOptions, 'versionsDir'>, name: 'items' | 'users', decode: (b: Buffer) => T, id: (r: T) => string): Promise<T[]> {
  const out = new Map<string, T>();
  await readTopic(o, name, (m) => {
    const key = m.key?.toString() ?? '';
    if (!m.value) return void out.delete(key);
    try {
      const r = decode(m.value);
      if (id(r) === key) out.set(key, r);
    } catch {
      // dead-lettered by the metadata reader
    }
  });
  return [...out.values()];
}

/** The group's current item and user metadata (the compacted topics). */
export async function readMetadata(o: Omit<TopicTrainingOptions, 'versionsDir'>): Promise<TrainingMetadata> {
  const codecs = createCodecs(o.config);
  return {
    items: await latestByKey(o, 'items', (b) => codecs.Item.decode(b), (i) => i.ITEM_ID),
    users: await latestByKey(o, 'users', (b) => codecs.User.decode(b), (u) => u.USER_ID),
  };
}

/** training.params: a JSON object, or a CONFIG_INVALID error naming the key. */
export function trainingParams(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `training.params is not JSON: ${(err as Error).message}`, { field: 'training.params' });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new AppError('CONFIG_INVALID', 'training.params must be a JSON object', { field: 'training.params' });
  return value as Record<string, unknown>;
}

/** training.hpoBudget as a search request; undefined when empty (no search). */
export function configuredHpo(budget: string): HpoRequest | undefined {
  return budget.trim() === '' ? undefined : { budgetMs: parseBudget(budget, 'training.hpoBudget') };
}

/** Reads, trains, evaluates and registers a new version; returns its info. */
export async function trainFromTopic(o: TopicTrainingOptions): Promise<VersionInfo> {
  const { training } = o.config;
  if (training.recipe === 'none') throw new Error('training.recipe is none');
  const params = trainingParams(training.params);
  const hpo = o.hpo ?? configuredHpo(training.hpoBudget);
  const rows = await readInteractions(o, training.maxEvents);
  const metadata = training.recipe === 'hrnn-metadata' || training.recipe === 'hrnn-coldstart' || training.recipe === 'auto' ? await readMetadata(o) : undefined;
  const t0 = performance.now();
  // The seen-items rule covers what the stream's user state remembers (state.maxSeenItemsPerUser).
  const seenBound = o.config.state.maxSeenItemsPerUser;
  const { model, report } = await trainAndEvaluate(rows, { recipe: training.recipe, split: training.split, seenBound, params, ...(metadata ? { metadata } : {}), ...(hpo ? { hpo } : {}) });
  const trainingMs = Math.round(performance.now() - t0);
  const registry = new VersionRegistry(o.versionsDir);
  const info = registry.create(
    { model, excludeSeen: report.seen.excludeSeen, ...userData(rows, seenBound) },
    report,
    { data: { topic: topicName(o.group, 'interactions'), events: rows.length }, recipe: training.recipe, seen: 'auto', seenBound, params, ...(hpo ? { hpo } : {}) },
    { events: rows.length, users: report.users, items: report.items, from: rows[0]?.TIMESTAMP ?? null, to: rows.at(-1)?.TIMESTAMP ?? null },
    trainingMs,
  );
  // Before the caller may announce it: an announced version's bytes are always on the topic.
  await publishFromRegistry(o, registry, info);
  return info;
}

/**
 * Publishes a version of the registry to `<group>.models` with a producer of its own (one request in
 * flight: a model's hundreds of MB must not queue ahead of another producer's records).
 */
export async function publishFromRegistry(o: Omit<TopicTrainingOptions, 'versionsDir'>, registry: VersionRegistry, info: VersionInfo): Promise<void> {
  const producer = createKafka(o.config, o.brokers, '-models', o.log).producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const t0 = performance.now();
    const m = await publishVersion(producer, o.group, registry.path(info.version), info);
    o.log?.info({ version: info.version, bytes: m.bytes, chunks: m.chunks, ms: Math.round(performance.now() - t0) }, 'model version published to the models topic');
  } finally {
    await producer.disconnect();
  }
}
