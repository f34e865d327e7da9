/**
 * Which model version a group serves, announced on the compacted topic `<group>.versions` (key
 * `serving`). Every instance follows the topic from its beginning (a consumer group of its own, as
 * for metadata), loads the announced version from the shared registry folder and swaps it in
 * (src/serving/served-model.ts). The record carries the versions served before, newest last, so a
 * rollback is one more record: the previous version, with the history shortened.
 */
import type { Config } from '../config/index.js';
import { AppError } from '../errors/index.js';
import { createKafka } from '../kafka/client.js';
import { followFromBeginning } from '../kafka/follow.js';
import type { KafkaClient, Producer } from '../kafka/kafkajs.js';
import { restartBackoff, type SupervisedConsumer, type SupervisedStatus } from '../kafka/supervise.js';
import { topicName, topicOffsets } from '../kafka/topics.js';
import { shouldPromote, type PromotionRule, type VersionInfo, type VersionRegistry } from '../training/registry.js';
import type { Logger } from '../util/log.js';
import type { ServingModel } from '../serving/served-model.js';

export const SERVING_KEY = 'serving';

export interface ServingRecord {
  version: string;
  /** Versions served before, oldest first (at most HISTORY). */
  previous: string[];
  /** ISO time of the announcement. */
  at: string;
  reason: string;
}

const HISTORY = 20;

export function parseServingRecord(value: Buffer | null): ServingRecord | undefined {
  if (!value) return undefined;
  try {
    const r = JSON.parse(value.toString('utf8')) as Partial<ServingRecord>;
    if (typeof r.version !== 'string' || !Array.isArray(r.previous)) return undefined;
    return { version: r.version, previous: r.previous.filter((v): v is string => typeof v === 'string'), at: String(r.at ?? ''), reason: String(r.reason ?? '') };
  } catch {
    return undefined;
  }
}

/** The latest announcement on the topic (reads it to its end), or undefined when there is none. */
export async function readServing(kafka: KafkaClient, group: string): Promise<ServingRecord | undefined> {
  const topic = topicName(group, 'versions');
  const admin = kafka.admin();
  await admin.connect();
  try {
    const p0 = (await topicOffsets(admin, topic)).find((o) => o.partition === 0);
    if (!p0 || p0.high === 0 || p0.high === p0.low) return undefined;
    const { readPartition } = await import('../kafka/read-partition.js');
    let latest: ServingRecord | undefined;
    await readPartition(kafka, {
      topic,
      partition: 0,
      from: p0.low,
      until: p0.high - 1,
      groupPrefix: `streamrec.${group}.versions-read`,
      onBatch: async (messages) => {
        for (const m of messages) if (m.key?.toString() === SERVING_KEY) latest = parseServingRecord(m.value) ?? latest;
      },
    });
    return latest;
  } finally {
    await admin.disconnect();
  }
}

/** Announces `version` as the served one (after `current`, which joins the history). */
export async function announce(producer: Producer, group: string, version: string, current: ServingRecord | undefined, reason: string): Promise<ServingRecord> {
  const previous = current ? [...current.previous, current.version].filter((v) => v !== version).slice(-HISTORY) : [];
  return send(producer, group, { version, previous, at: new Date().toISOString(), reason });
}

async function send(producer: Producer, group: string, record: ServingRecord): Promise<ServingRecord> {
  await producer.send({ topic: topicName(group, 'versions'), acks: -1, messages: [{ key: SERVING_KEY, value: JSON.stringify(record), partition: 0 }] });
  return record;
}

/**
 * A new version's promotion: decided by the rule against the served version (from the registry,
 * when the served one is in it) and announced when it passes.
 */
export async function promoteIfAllowed(
  producer: Producer,
  group: string,
  registry: VersionRegistry,
  info: VersionInfo,
  current: ServingRecord | undefined,
  rule: { promote: PromotionRule; promoteTolerance: number },
): Promise<{ promote: boolean; reason: string }> {
  const served = current && registry.has(current.version) ? registry.info(current.version) : undefined;
  const decision = shouldPromote(info, served, rule.promote, rule.promoteTolerance);
  if (decision.promote) await announce(producer, group, info.version, current, decision.reason);
  return decision;
}

/** The record that rolls back to the version served before the current one. */
export async function rollback(producer: Producer, group: string, current: ServingRecord | undefined): Promise<ServingRecord> {
  const target = current?.previous.at(-1);
  if (!current || !target) throw new AppError('VERSION_NOT_FOUND', `group ${group} has no earlier served version to roll back to`, { field: 'version' });
  return send(producer, group, { version: target, previous: current.previous.slice(0, -1), at: new Date().toISOString(), reason: `rollback from ${current.version}` });
}

export interface VersionWatcherOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  instanceId: string;
  registry: VersionRegistry;
  serving: ServingModel;
  log: Logger;
}

/** Follows `<group>.versions` and swaps each announced version in. */
export class VersionWatcher {
  private readonly kafka: KafkaClient;
  private consumer: SupervisedConsumer | undefined;
  private latest: ServingRecord | undefined;
  private loaded: string | undefined;
  private failures = 0;

  constructor(private readonly o: VersionWatcherOptions) {
    this.kafka = createKafka(o.config, o.brokers, `-${o.instanceId}-versions`, o.log);
  }

  /** The latest announcement seen, and the version actually loaded. */
  status(): { announced: string | null; serving: string | null; loadFailures: number } {
    return { announced: this.latest?.version ?? null, serving: this.loaded ?? null, loadFailures: this.failures };
  }

  get announced(): ServingRecord | undefined {
    return this.latest;
  }

  async start(): Promise<void> {
    this.consumer = await followFromBeginning(this.kafka, {
      topic: topicName(this.o.group, 'versions'),
      groupId: `streamrec.${this.o.group}.versions.${this.o.instanceId}`,
      log: this.o.log,
      backoff: restartBackoff(this.o.config),
      onBatch: (messages) => {
        // Only the batch's last announcement matters: the earlier ones were superseded.
        let last: ServingRecord | undefined;
        for (const m of messages) {
          if (m.key?.toString() !== SERVING_KEY) continue;
          const record = parseServingRecord(m.value);
          if (record) last = record;
          else if (m.value) this.o.log.warn({ topic: topicName(this.o.group, 'versions'), offset: m.offset }, 'versions: an unreadable announcement is ignored (not JSON {version, previous: [...]})');
        }
        if (last) {
          this.latest = last;
          this.load(last);
        }
      },
    });
  }

  private load(record: ServingRecord): void {
    if (record.version === this.loaded) return;
    try {
      const t0 = performance.now();
      const bundle = this.o.registry.load(record.version);
      this.o.serving.swap({ version: record.version, model: bundle.model, excludeSeen: bundle.excludeSeen });
      this.loaded = record.version;
      this.o.log.info({ version: record.version, recipe: bundle.model.recipe, ms: Math.round(performance.now() - t0), reason: record.reason }, 'now serving model version');
    } catch (err) {
      this.failures++;
      this.o.log.error({ err, version: record.version }, 'could not load the announced model version; still serving the previous one');
    }
  }

  /** The watcher's consumer: running, restarting after a crash, or failed (with the reason). */
  consumerStatus(): SupervisedStatus | undefined {
    return this.consumer?.status();
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }
}
