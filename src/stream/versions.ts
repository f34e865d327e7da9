/**
 * Which model version a group serves, announced on the compacted topic `<group>.versions` (key
 * `serving`). Every instance follows the topic from its beginning (a consumer group of its own, as
 * for metadata), loads the announced version from its own registry folder — materialising it first
 * from `<group>.models` when it is not there (src/training/model-transfer.ts) — and swaps it in
 * (src/serving/served-model.ts). The record carries the versions served before, newest last, so a
 * rollback is one more record: the previous version, with the history shortened.
 *
 * The same topic holds the index of the versions on `<group>.models` (key `model/<version>`, the
 * manifest with its offsets; null once pruned): what `versions list`, promotion and rollback read on
 * an instance that did not train a version.
 */
import type { Config } from '../config/index.js';
import { AppError } from '../errors/index.js';
import { createKafka } from '../kafka/client.js';
import { followFromBeginning } from '../kafka/follow.js';
import type { KafkaClient } from '../kafka/kafkajs.js';
import type { Sender } from '../kafka/produce.js';
import { restartBackoff, type SupervisedConsumer, type SupervisedStatus } from '../kafka/supervise.js';
import { topicName, topicOffsets } from '../kafka/topics.js';
import { shouldPromote, type PromotionRule, type VersionInfo, type VersionRegistry } from '../training/registry.js';
import { INDEX_PREFIX, materialiseVersion, parseManifest, type IndexedManifest } from '../training/model-transfer.js';
import type { Logger } from '../util/log.js';
import type { ServingModel, ServingVersion } from '../serving/served-model.js';
import { parseSplit, type TrafficSplit } from '../serving/split.js';

export const SERVING_KEY = 'serving';

export interface ServingRecord {
  version: string;
  /** Versions served before, oldest first (at most HISTORY). */
  previous: string[];
  /** ISO time of the announcement. */
  at: string;
  reason: string;
  /** A traffic split between versions (src/serving/split.ts); absent: `version` serves everyone. Any announcement without it ends the split. */
  split?: TrafficSplit;
}

const HISTORY = 20;

export function parseServingRecord(value: Buffer | null): ServingRecord | undefined {
  if (!value) return undefined;
  try {
    const r = JSON.parse(value.toString('utf8')) as Partial<ServingRecord>;
    if (typeof r.version !== 'string' || !Array.isArray(r.previous)) return undefined;
    const split = parseSplit(r.split);
    return { version: r.version, previous: r.previous.filter((v): v is string => typeof v === 'string'), at: String(r.at ?? ''), reason: String(r.reason ?? ''), ...(split ? { split } : {}) };
  } catch {
    return undefined;
  }
}

/** The latest announcement on the topic (reads it to its end), or undefined when there is none. */
export async function readServing(kafka: KafkaClient, group: string): Promise<ServingRecord | undefined> {
  return (await readVersionsTopic(kafka, group)).serving;
}

/** An index record of `<group>.versions` applied to `index`: a manifest added, or removed by a tombstone; an unreadable one is logged and ignored. */
function applyIndexRecord(index: Map<string, IndexedManifest>, key: string, value: Buffer | null, log?: Logger, offset?: string): void {
  const version = key.slice(INDEX_PREFIX.length);
  if (value === null) {
    index.delete(version);
    return;
  }
  try {
    index.set(version, parseManifest(value, version) as IndexedManifest);
  } catch (err) {
    log?.warn({ key, offset, reason: (err as Error).message }, 'versions: an unreadable model index record is ignored');
  }
}

/** The latest announcement and the index of the versions on `<group>.models` (reads the topic to its end). */
export async function readVersionsTopic(kafka: KafkaClient, group: string, log?: Logger): Promise<{ serving: ServingRecord | undefined; index: Map<string, IndexedManifest> }> {
  const topic = topicName(group, 'versions');
  const index = new Map<string, IndexedManifest>();
  const admin = kafka.admin();
  await admin.connect();
  try {
    const p0 = (await topicOffsets(admin, topic)).find((o) => o.partition === 0);
    if (!p0 || p0.high === 0 || p0.high === p0.low) return { serving: undefined, index };
    const { readPartition } = await import('../kafka/read-partition.js');
    let latest: ServingRecord | undefined;
    await readPartition(kafka, {
      topic,
      partition: 0,
      from: p0.low,
      until: p0.high - 1,
      groupPrefix: `streamrec.${group}.versions-read`,
      onBatch: async (messages) => {
        for (const m of messages) {
          const key = m.key?.toString() ?? '';
          if (key === SERVING_KEY) latest = parseServingRecord(m.value) ?? latest;
          else if (key.startsWith(INDEX_PREFIX)) applyIndexRecord(index, key, m.value, log, m.offset);
        }
      },
    });
    return { serving: latest, index };
  } finally {
    await admin.disconnect();
  }
}

/**
 * The versions an instance knows: those in its own registry folder and those indexed on
 * `<group>.models` (trained elsewhere, not fetched yet). What `versions list`, the solutions API,
 * promotion and rollback consult.
 */
export class VersionCatalog {
  constructor(
    readonly registry: VersionRegistry,
    private readonly index: () => ReadonlyMap<string, IndexedManifest>,
    private readonly group: string,
  ) {}

  has(version: string): boolean {
    return this.registry.has(version) || this.index().has(version);
  }

  /** Whether the version's bytes are on `<group>.models` (so another instance can serve it). */
  published(version: string): boolean {
    return this.index().has(version);
  }

  info(version: string): VersionInfo {
    if (this.registry.has(version)) return this.registry.info(version);
    const m = this.index().get(version);
    if (m) return m.info;
    throw new AppError('VERSION_NOT_FOUND', `no model version ${JSON.stringify(version)} in this instance's registry nor on ${topicName(this.group, 'models')}`, {
      field: 'version',
      cause: { versionsDir: this.registry.dir },
    });
  }

  /** Every version, oldest first. */
  list(): VersionInfo[] {
    const all = new Map(this.registry.list().map((v) => [v.version, v]));
    for (const [v, m] of this.index()) if (!all.has(v)) all.set(v, m.info);
    return [...all.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.version < b.version ? -1 : 1));
  }
}

/** Announces `version` as the served one (after `current`, which joins the history). */
export async function announce(producer: Sender, group: string, version: string, current: ServingRecord | undefined, reason: string): Promise<ServingRecord> {
  // Callers check the version is known (VersionCatalog.info): announced, it is fetched by every instance.
  const previous = current ? [...current.previous, current.version].filter((v) => v !== version).slice(-HISTORY) : [];
  return send(producer, group, { version, previous, at: new Date().toISOString(), reason });
}

/**
 * Starts (`split`) or ends (undefined) a traffic split on the served version: the same version and
 * history, announced again with the split or without it.
 */
export async function announceSplit(producer: Sender, group: string, current: ServingRecord | undefined, split: TrafficSplit | undefined, reason: string): Promise<ServingRecord> {
  if (!current) throw new AppError('NO_MODEL_VERSION', `group ${group} serves no version yet: promote one before splitting traffic`, { field: 'version' });
  return send(producer, group, { version: current.version, previous: current.previous, at: new Date().toISOString(), reason, ...(split ? { split } : {}) });
}

async function send(producer: Sender, group: string, record: ServingRecord): Promise<ServingRecord> {
  await producer.send({ topic: topicName(group, 'versions'), acks: -1, messages: [{ key: SERVING_KEY, value: JSON.stringify(record), partition: 0 }] });
  return record;
}

/**
 * A new version's promotion: decided by the rule against the served version (from the registry or
 * the models index, when the served one is in either) and announced when it passes; `serving`: the
 * announcement made, if any.
 */
export async function promoteIfAllowed(
  producer: Sender,
  group: string,
  registry: Pick<VersionCatalog, 'has' | 'info'>,
  info: VersionInfo,
  current: ServingRecord | undefined,
  rule: { promote: PromotionRule; promoteTolerance: number },
): Promise<{ promote: boolean; reason: string; serving?: ServingRecord }> {
  // A running A/B split is ended by a person (promote the winner, or end it), not by a retraining.
  if (current?.split) return { promote: false, reason: `a traffic split (${current.split.id}) is running on the deployment: promote its winner or end it first` };
  const served = current && registry.has(current.version) ? registry.info(current.version) : undefined;
  const decision = shouldPromote(info, served, rule.promote, rule.promoteTolerance);
  if (decision.promote) return { ...decision, serving: await announce(producer, group, info.version, current, decision.reason) };
  return decision;
}

/**
 * The record that rolls back to the version served before the current one. `has`: whether a
 * version can still be served (VersionCatalog.has); a target pruned from the models topic is
 * refused rather than announced to instances that could not load it.
 */
export async function rollback(producer: Sender, group: string, current: ServingRecord | undefined, has?: (version: string) => boolean): Promise<ServingRecord> {
  const target = current?.previous.at(-1);
  if (!current || !target) throw new AppError('VERSION_NOT_FOUND', `group ${group} has no earlier served version to roll back to`, { field: 'version' });
  if (has && !has(target)) throw new AppError('VERSION_NOT_FOUND', `group ${group}'s previous version ${target} is no longer on ${topicName(group, 'models')} (pruned) nor in this instance's registry`, { field: 'version' });
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

/**
 * Follows `<group>.versions`: keeps the models index, and swaps each announced version in,
 * materialising it from `<group>.models` first when this instance's registry has not got it (in the
 * background: the consumer goes on, and the previous version serves meanwhile). The predecessor of
 * the served version (the rollback target) is fetched too, after it. A version that cannot be
 * fetched or loaded is counted (`loadFailures`, `fetchFailures`, `lastFetchError`) and logged; the
 * previous one keeps serving; it is tried again when announced again.
 */
export class VersionWatcher {
  private readonly kafka: KafkaClient;
  private consumer: SupervisedConsumer | undefined;
  private latest: ServingRecord | undefined;
  private loaded: string | undefined;
  private failures = 0;
  private readonly index = new Map<string, IndexedManifest>();
  /** The loaded versions of the current traffic split's arms. */
  private readonly arms = new Map<string, ServingVersion>();
  /** The announcement the worker last acted on (a new record object is a new attempt). */
  private attempted: ServingRecord | undefined;
  private working: Promise<void> | undefined;
  private stopped = false;
  private fetch = { fetching: null as string | null, fetched: 0, fetchFailures: 0, lastFetchError: null as string | null };
  readonly catalog: VersionCatalog;

  constructor(private readonly o: VersionWatcherOptions) {
    this.kafka = createKafka(o.config, o.brokers, `-${o.instanceId}-versions`, o.log);
    this.catalog = new VersionCatalog(o.registry, () => this.index, o.group);
  }

  /** The latest announcement seen, the version actually loaded, and the fetches from `<group>.models`. */
  status(): { announced: string | null; serving: string | null; loadFailures: number; fetching: string | null; fetched: number; fetchFailures: number; lastFetchError: string | null; published: number; split: string | null } {
    return { announced: this.latest?.version ?? null, serving: this.loaded ?? null, loadFailures: this.failures, ...this.fetch, published: this.index.size, split: this.o.serving.split?.id ?? null };
  }

  get announced(): ServingRecord | undefined {
    return this.latest;
  }

  /** The versions indexed on `<group>.models`. */
  get manifests(): ReadonlyMap<string, IndexedManifest> {
    return this.index;
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
          const key = m.key?.toString() ?? '';
          if (key.startsWith(INDEX_PREFIX)) {
            applyIndexRecord(this.index, key, m.value, this.o.log, m.offset);
            continue;
          }
          if (key !== SERVING_KEY) continue;
          const record = parseServingRecord(m.value);
          if (record) last = record;
          else if (m.value) this.o.log.warn({ topic: topicName(this.o.group, 'versions'), offset: m.offset }, 'versions: an unreadable announcement is ignored (not JSON {version, previous: [...]})');
        }
        if (last) {
          this.latest = last;
          this.kick();
        }
      },
    });
  }

  /** Starts the worker unless it runs (it picks up the latest announcement when done with one). */
  private kick(): void {
    this.working ??= this.work().finally(() => {
      this.working = undefined;
      if (!this.stopped && this.latest && this.latest !== this.attempted) this.kick();
    });
  }

  private async work(): Promise<void> {
    while (!this.stopped && this.latest && this.latest !== this.attempted) {
      const record = (this.attempted = this.latest);
      if (record.version !== this.loaded && (await this.ensureLocal(record.version, true))) this.load(record);
      await this.loadSplit(record);
      // The rollback target, so that a rollback swaps at once even on an instance that joined late.
      const previous = record.previous.at(-1);
      if (previous && this.latest === record && !this.stopped) await this.ensureLocal(previous, false);
    }
  }

  /** Whether the version is in the registry, fetching it from `<group>.models` when it is indexed there. */
  private async ensureLocal(version: string, served: boolean): Promise<boolean> {
    if (this.o.registry.has(version)) return true;
    const manifest = this.index.get(version);
    if (!manifest) {
      if (served) {
        this.failures++;
        this.o.log.error({ version, versionsDir: this.o.registry.dir }, `could not load the announced model version: not in this instance's registry nor indexed on ${topicName(this.o.group, 'models')}; still serving the previous one`);
      }
      return false;
    }
    this.fetch.fetching = version;
    try {
      await materialiseVersion(this.kafka, this.o.group, manifest, this.o.registry.dir, this.o.log);
      this.fetch.fetched++;
      return true;
    } catch (err) {
      this.fetch.fetchFailures++;
      if (served) this.failures++;
      const reason = (err as { reason?: string }).reason;
      this.fetch.lastFetchError = `${version}: ${err instanceof Error ? err.message : String(err)}`;
      this.o.log.error({ err, version, reason, served }, served ? 'could not fetch the announced model version from the models topic; still serving the previous one' : 'could not fetch the previous model version (the rollback target) from the models topic');
      return false;
    } finally {
      this.fetch.fetching = null;
    }
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

  /**
   * The announcement's traffic split, every arm's version loaded (fetched first when needed) and
   * handed to the served model; without a split, any split is ended. A split one of whose versions
   * cannot be loaded is not applied (the main version serves everyone, arm 0) and counted as a
   * load failure; it is tried again when announced again.
   */
  private async loadSplit(record: ServingRecord): Promise<void> {
    const split = record.split;
    if (!split) {
      if (this.o.serving.split) this.o.log.info({ version: record.version, reason: record.reason }, 'traffic split ended');
      this.o.serving.setSplit(undefined);
      this.arms.clear();
      return;
    }
    if (this.o.serving.split?.id === split.id) return;
    const versions: ServingVersion[] = [];
    for (const arm of split.arms) {
      const main = this.o.serving.current;
      let v = main?.version === arm.version ? main : this.arms.get(arm.version);
      if (!v) {
        if (!(await this.ensureLocal(arm.version, true))) return;
        try {
          const bundle = this.o.registry.load(arm.version);
          v = { version: arm.version, model: bundle.model, excludeSeen: bundle.excludeSeen };
        } catch (err) {
          this.failures++;
          this.o.log.error({ err, version: arm.version, split: split.id }, 'could not load a version of the traffic split; the split is not applied (the main version serves everyone)');
          return;
        }
      }
      versions.push(v);
    }
    this.arms.clear();
    for (const v of versions) this.arms.set(v.version, v);
    this.o.serving.setSplit(split, versions);
    this.o.log.info({ split: split.id, arms: split.arms, reason: record.reason }, 'traffic split applied');
  }

  /** The watcher's consumer: running, restarting after a crash, or failed (with the reason). */
  consumerStatus(): SupervisedStatus | undefined {
    return this.consumer?.status();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.consumer?.stop();
    // A fetch in flight is given 5 s to finish (a large model takes longer: then it is cut off with
    // the process, leaving a `.<version>.fetch-*` folder that is never read and is overwritten by name).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.working?.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
  }
}
