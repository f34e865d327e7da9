/**
 * The running service of one dataset group: the stream processor (RocksDB state, exactly-once) and
 * the HTTP API (ingestion, health, readiness), with an orderly stop.
 */
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { buildApp, kafkaSink, topicGroupDirectory, type GroupServices } from '../api/app.js';
import { forwarder, ownerAsker, peerRankings } from '../api/forward.js';
import { peerPartitionCounts } from '../api/online-routes.js';
import { GroupOnlineMetrics, readCounts } from './attribution.js';
import { versionTag } from '../serving/recommendation-id.js';
import type { Config } from '../config/index.js';
import { createKafka } from '../kafka/client.js';
import type { Admin } from '../kafka/kafkajs.js';
import { RenewingProducer } from '../kafka/produce.js';
import { createCodecs } from '../serde/avro.js';
import { openRocksStore } from '../state/rocksdb-store.js';
import type { KeyValueStore } from '../state/store.js';
import { AppError } from '../errors/index.js';
import type { SupervisedStatus } from '../kafka/supervise.js';
import { MetadataReader } from './metadata.js';
import { partitionStoreDir, processorGroupId, StreamProcessor } from './processor.js';
import { type ItemActivity, addActivity, deadLetterEntry, describeInstances, peerActivity, readTail, sharedFor, sumItemCounts } from '../api/inspect.js';
import type { Logger } from '../util/log.js';
import { VersionRegistry } from '../training/registry.js';
import { QueryService, type Answer } from '../serving/query.js';
import { RecommendationPublisher } from '../serving/publisher.js';
import { LiveFeeds } from './live.js';
import { restartBackoff } from '../kafka/supervise.js';
import { ResourceFollower } from './resources.js';
import { DeletionJobs } from './deletion-jobs.js';
import { announce, announceSplit, rollback } from './versions.js';
import { applyTopics, groupTopics, topicName } from '../kafka/topics.js';
import { Retrainer } from './retrainer.js';
import { ServingModel, type ServingVersion } from '../serving/served-model.js';
import { newSplit, validateSplitArms } from '../serving/split.js';
import { HrnnModel } from '../recipes/hrnn.js';
import { configuredHpo, trainingParams } from '../training/stream-train.js';
import { VersionWatcher } from './versions.js';
import { join, resolve } from 'node:path';
import { privateDir } from '../util/paths.js';

export interface ServiceOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  log: Logger;
  /** fastify's logger option (pino); false for none. */
  apiLogger?: boolean | { level: string };
}

export interface Service {
  processor: StreamProcessor;
  metadata: MetadataReader;
  serving: ServingModel;
  versions: VersionWatcher;
  retrainer: Retrainer;
  registry: VersionRegistry;
  /** Queries of the group (recommendations, related items, ranking, popular) from this instance's state. */
  query: QueryService;
  resources: ResourceFollower;
  /** Deletion jobs, and the deletion list they read their progress from. */
  deletions: DeletionJobs;
  publisher: RecommendationPublisher | undefined;
  /** A user's recommendations from the served version and the user's current state. */
  recommend(userId: string, numResults: number): Promise<Answer>;
  app: FastifyInstance;
  /** `http://host:port` the API listens on. */
  url: string;
  stop(): Promise<void>;
}

export function instanceId(config: Readonly<Config>): string {
  return config.processor.instanceId || `${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}-${process.pid}`;
}

export function versionsDir(config: Readonly<Config>, group: string): string {
  return config.training.versionsDir || join(config.state.dir, group, 'versions');
}

/** What a service's health and readiness rest on (GET /health, GET /ready). */
export interface ServiceHealth {
  /** false: a component has failed for good (not retried): a restart of the process is needed. */
  healthy: boolean;
  /** true: Kafka answers, the processor runs with every assigned partition restored, and no consumer is restarting. */
  ready: boolean;
  /** Why not healthy, or not ready. */
  reasons: string[];
}

/** Things to undo, newest last, when start-up fails half way. */
type Closers = { what: string; close: () => Promise<unknown> }[];

/**
 * Starts the service. When any step fails, what was already started is stopped again (each part
 * given at most 5 s) before the error is thrown, so that nothing keeps the process alive; a state
 * folder another process holds is `STATE_LOCKED`.
 */
export async function startService(o: ServiceOptions): Promise<Service> {
  const closers: Closers = [];
  try {
    return await startServiceParts(o, closers);
  } catch (err) {
    for (const { what, close } of closers.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([close(), new Promise((r) => (timer = setTimeout(r, 5000)))])
        .catch((e: unknown) => o.log.warn({ err: e, what }, 'undoing a partial start failed'))
        .finally(() => clearTimeout(timer));
    }
    throw err;
  }
}

/** A RocksDB store of the state folder; a LOCK held by another process is `STATE_LOCKED`. */
export async function openStateStore(dir: string): Promise<KeyValueStore> {
  try {
    return await openRocksStore(dir);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (/LOCK/.test(reason)) {
      throw new AppError('STATE_LOCKED', `state folder ${resolve(dir)} is in use by another instance (RocksDB's LOCK file is held: ${reason.replace(/^Cannot open the RocksDB store in \S+: /, '')})`, {
        field: 'state.dir',
        cause: err,
      });
    }
    throw err;
  }
}

async function startServiceParts(o: ServiceOptions, closers: Closers): Promise<Service> {
  const { config, group } = o;
  const id = instanceId(config);
  const serving = new ServingModel();
  const registry = new VersionRegistry(versionsDir(config, group));
  const codecs = createCodecs(config);
  const kafka = createKafka(config, o.brokers, '-api', o.log);
  // Publisher, announcements, resources: one producer, made anew after a failed send (RenewingProducer).
  const producer = new RenewingProducer(() => kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 }), o.log, 'producer');
  const admin: Admin = kafka.admin();
  closers.push({ what: 'kafka clients', close: () => Promise.allSettled([producer.disconnect(), admin.disconnect()]) });
  await Promise.all([producer.connect(), admin.connect()]);

  const metaStore = await openStateStore(privateDir(join(config.state.dir, group, 'meta')));
  closers.push({ what: 'metadata store', close: () => metaStore.close() });
  // hrnn-coldstart: items that arrive after the served version was trained join it at once.
  const metadata = new MetadataReader({ config, group, brokers: o.brokers, instanceId: id, store: metaStore, log: o.log, onItem: (item) => serving.hrnnModels().forEach((m) => m.addItem(item)) });
  const resources = new ResourceFollower({ config, group, brokers: o.brokers, instanceId: id, producer, log: o.log });
  let processor!: StreamProcessor;
  const query = new QueryService({
    serving,
    // Only the owner's ready store answers (PARTITION_MOVING otherwise, never a wrong 404).
    userState: (userId) => processor.queryState(userId),
    forEachItemCount: (fn) => processor.forEachItemCount(fn),
    items: (ids) => metadata.items(ids),
    user: (userId) => metadata.user(userId),
    resources: resources.resources,
    trendingHalfLifeMs: config.state.trendingHalfLifeMs,
    batchScoring: true,
    // Several instances: popular and trending over the whole group.
    peerRankings: peerRankings({ group, rootKey: config.api.rootKey, peers: () => processor.ownerUrls().filter((u) => u !== advertised), log: o.log }),
  });
  const publisher = config.recommendations.enabled
    ? new RecommendationPublisher({
        topic: topicName(group, 'recommendations'),
        minIntervalMs: config.recommendations.minIntervalMs,
        compute: async (userId) => {
          const a = await query.recommendations({ userId, numResults: config.recommendations.numResults });
          return { recommendationId: a.recommendationId, version: a.version, items: a.itemList.map((s) => ({ itemId: s.itemId, score: s.score ?? 0, ...(s.reason ? { reason: s.reason } : {}) })) };
        },
        send: (topic, messages) => producer.send({ topic, messages }).then(() => undefined),
        encode: (r) => codecs.Recommendation.encode(r),
        log: o.log,
      })
    : undefined;
  if (publisher) closers.push({ what: 'publisher', close: () => publisher.stop() });
  const versions = new VersionWatcher({ config, group, brokers: o.brokers, instanceId: id, registry, serving, log: o.log });
  const addStoredItems = (v: ServingVersion) => {
    if (v.model instanceof HrnnModel && v.model.meta?.tower) {
      const model = v.model;
      metadata.forEachItem((item) => void model.addItem(item)).catch((err: unknown) => o.log.warn({ err }, 'adding stored items to the new version failed'));
    }
  };
  serving.on('swap', addStoredItems);
  // A traffic split's arms too (src/serving/split.ts).
  serving.on('split', (versions) => versions.filter((v) => v !== serving.current).forEach(addStoredItems));
  let retrainer!: Retrainer;
  let advertised = '';
  /**
   * Healthy unless something failed for good: the processor (`failed`, with its reason) or one of
   * the other consumers. Ready when, besides, the processor is running with every assigned
   * partition restored, the broker answered the latest high-watermark read, and no consumer is
   * restarting.
   */
  const health = (): ServiceHealth => {
    if (processor === undefined) return { healthy: true, ready: false, reasons: ['starting'] };
    const s = processor.status();
    const down: string[] = [];
    const notReady: string[] = [];
    if (s.state === 'failed') down.push(`processor failed: ${s.failure ?? 'unknown reason'}`);
    else if (!s.ready) notReady.push(`processor ${s.state}${s.consumer?.lastError && s.state === 'recovering' ? ` after: ${s.consumer.lastError}` : ''}`);
    if (s.kafka.reachable === false) notReady.push(`Kafka unreachable: ${s.kafka.error ?? 'no answer'}`);
    const consumers: [string, SupervisedStatus | undefined][] = [
      ['metadata reader', metadata.consumerStatus()],
      ['versions follower', versions.consumerStatus()],
      ['resources follower', resources.consumerStatus()],
      ['deletions follower', deletions.consumerStatus()],
    ];
    for (const [name, c] of consumers) {
      if (c?.state === 'failed') down.push(`${name} failed: ${c.failure ?? c.lastError ?? 'unknown reason'}`);
      else if (c?.state === 'restarting') notReady.push(`${name} restarting after: ${c.lastError ?? 'a crash'}`);
    }
    return { healthy: down.length === 0, ready: down.length === 0 && notReady.length === 0, reasons: [...down, ...notReady] };
  };
  const live = new LiveFeeds({ kafka, admin, group, decode: (v) => codecs.Recommendation.decode(v), log: o.log, backoff: restartBackoff(config) });
  closers.push({ what: 'live feeds', close: () => live.stop() });
  const online = new GroupOnlineMetrics({
    // Before the processor is made (the API listens first): no partition yet, all `missing`.
    local: async () => (processor ? processor.readOwned(async (store, partition) => ({ partition, rows: await readCounts(store) })) : []),
    peers: peerPartitionCounts({ group, rootKey: config.api.rootKey, peers: () => processor?.ownerUrls().filter((u) => u !== advertised) ?? [], log: o.log }),
    versions: () => [...versions.catalog.list().map((v) => v.version), ...(versions.announced ? [versions.announced.version, ...versions.announced.previous] : [])],
    tagOf: versionTag,
    partitions: () => processor?.partitionCount() ?? config.topics.partitions,
  });
  const deadLetterTopic = topicName(group, 'dead-letter');
  const services: GroupServices = {
    live,
    inspect: {
      userState: async (userId) => (await processor.queryState(userId))?.user,
      // One read of the topic's tail every 2 s at most, however many pages ask.
      deadLetters: sharedFor(2000, async (perPartition: number) => {
        const { records, kept } = await readTail({ kafka, admin, topic: deadLetterTopic, perPartition, groupPrefix: `streamrec.${group}.dead-letters.${id}`, timeoutMs: 10_000 });
        const deadLetters = records.flatMap((r) => {
          if (!r.value) return [];
          try {
            return [deadLetterEntry(r.partition, r.offset, codecs.DeadLetter.decode(r.value))];
          } catch (err) {
            o.log.warn({ err, partition: r.partition, offset: r.offset }, 'a dead letter could not be decoded');
            return [];
          }
        });
        deadLetters.sort((a, b) => b.failedAt - a.failedAt || b.offset - a.offset);
        return { topic: deadLetterTopic, kept, deadLetters };
      }),
      itemActivity: async (itemId, scope) => {
        const counts = await processor.itemCounts(itemId);
        const local = counts.length ? sumItemCounts(counts, Date.now(), config.state.trendingHalfLifeMs) : undefined;
        if (scope === 'local') return local;
        const peers = processor.ownerUrls().filter((u) => u !== advertised);
        const others = await peerActivity({ group, itemId, rootKey: config.api.rootKey, peers, log: o.log });
        return [...(local ? [local] : []), ...others].reduce<ItemActivity | undefined>((sum, a) => (sum ? addActivity(sum, a) : a), undefined);
      },
      instances: () => describeInstances({ admin, consumerGroup: processorGroupId(group), topic: topicName(group, 'interactions'), selfUrl: advertised }),
    },
    online,
    query,
    resources: resources.resources,
    deployment: {
      describe: () => ({ announced: versions.announced, loaded: versions.status().serving, split: serving.split?.id ?? null }),
      promote: async (version, reason) => {
        // This instance's registry or the models index: a version trained elsewhere can be promoted here.
        versions.catalog.info(version);
        return announce(producer, group, version, versions.announced, reason ?? 'promoted through the API');
      },
      rollback: () => rollback(producer, group, versions.announced, (v) => versions.catalog.has(v)),
      split: (arms) => {
        const split = newSplit(validateSplitArms(arms, (v) => versions.catalog.has(v)));
        return announceSplit(producer, group, versions.announced, split, `traffic split ${split.id} started through the API`);
      },
      endSplit: () => {
        const current = versions.announced;
        if (!current?.split) throw new AppError('SPLIT_NOT_FOUND', `group ${group}'s deployment has no traffic split`, { field: 'split' });
        return announceSplit(producer, group, current, undefined, `traffic split ${current.split.id} ended through the API`);
      },
    },
    solutions: {
      configured: () => {
        const hpo = configuredHpo(config.training.hpoBudget);
        return { recipe: config.training.recipe, params: trainingParams(config.training.params), ...(hpo ? { hpo } : {}) };
      },
      versions: () => versions.catalog.list(),
      version: (v) => versions.catalog.info(v),
      train: (spec) => {
        if (retrainer.busy) return false;
        retrainer.trainNow(spec).catch((err: unknown) => o.log.warn({ err }, 'training a solution version failed'));
        return true;
      },
      running: () => retrainer.busy,
    },
  };
  // Ingestion has a producer of its own (its sends are not queued behind the publisher's), also
  // made anew after a failed send.
  const ingestProducer = new RenewingProducer(() => kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 }), o.log, 'ingest producer');
  await ingestProducer.connect();
  closers.push({ what: 'ingest producer', close: () => ingestProducer.disconnect() });
  const sink = kafkaSink(ingestProducer);
  const deletions = new DeletionJobs({ config, group, brokers: o.brokers, instanceId: id, producer: ingestProducer, admin, resources: resources.resources, log: o.log });
  services.deletions = deletions;
  const app = await buildApp({
    config,
    codecs,
    sink,
    groups: topicGroupDirectory(admin),
    status: () => {
      const s = processor.status();
      const h = health();
      return {
        state: s.state,
        ready: h.ready,
        detail: {
          ...s,
          healthy: h.healthy,
          reasons: h.reasons,
          metadata: { ...metadata.status(), consumer: metadata.consumerStatus() ?? null },
          versions: { ...versions.status(), consumer: versions.consumerStatus() ?? null },
          resources: { consumer: resources.consumerStatus() ?? null },
          training: retrainer.status(),
          publisher: publisher?.status() ?? null,
        },
      };
    },
    logger: o.apiLogger ?? false,
    served: { names: () => [group], get: (g) => (g === group ? services : undefined) },
    forward: forwarder({ owner: (userId) => processor.owner(userId), selfUrl: () => advertised }),
    askOwner: ownerAsker({ owner: (userId) => processor.owner(userId), selfUrl: () => advertised, rootKey: config.api.rootKey }),
    groupAdmin: {
      list: async () => (await admin.listTopics()).filter((t) => t.endsWith('.interactions')).map((t) => t.slice(0, -'.interactions'.length)).sort(),
      create: (g) => applyTopics(admin, g, config),
      delete: async (g) => {
        const existing = new Set(await admin.listTopics());
        await admin.deleteTopics({ topics: groupTopics(g, config).map((t) => t.topic).filter((t) => existing.has(t)) });
      },
    },
    metrics: {
      health: () => {
        const h = health();
        return { healthy: h.healthy, state: processor.status().state, reasons: h.reasons };
      },
      processor: () => processor.status(),
      versions: () => versions.status(),
      serving: () => {
        const v = serving.current;
        return v ? { version: v.version, recipe: v.model.recipe } : undefined;
      },
      ...(publisher ? { publisher: () => publisher.status() } : {}),
      online: () => online.localRows(),
      retrainer: () => {
        const r = retrainer.status();
        return { trainings: r.trainings, failures: r.failed };
      },
    },
  });
  closers.push({ what: 'resources', close: () => resources.stop() });
  closers.push({ what: 'api', close: () => app.close() });
  await resources.start();
  closers.push({ what: 'deletions', close: () => deletions.stop() });
  await deletions.start();
  const url = await app.listen({ host: config.api.host, port: config.api.port });
  advertised = config.api.advertisedUrl || defaultAdvertisedUrl(config.api.host, app, url, o.log);
  processor = new StreamProcessor({
    // Other instances forward queries for users of this instance's partitions here.
    advertisedUrl: advertised,
    config,
    group,
    brokers: o.brokers,
    instanceId: id,
    log: o.log,
    serving,
    openStore: (p) => openStateStore(partitionStoreDir(config, group, p)),
    userMetadata: (ids) => metadata.users(ids),
    onApplied: (users, states) => {
      // Queries' kept states first, so that the lists published next are from the new state (the
      // batch's committed states themselves, when there is a publisher to read them).
      query.applied(users.keys(), publisher ? states() : undefined);
      publisher?.notify(users);
    },
    onDeleted: (userId) => {
      query.applied([userId]);
      // A list of the user's the publisher had on its way may land after the processor's
      // tombstone: once it is out, the key gets a tombstone again.
      if (publisher) {
        const recommendations = topicName(group, 'recommendations');
        publisher
          .forget(userId)
          .then(() => producer.send({ topic: recommendations, messages: [{ key: userId, value: null }] }))
          .catch((err: unknown) => o.log.warn({ err, userId }, 'the recommendations tombstone after a deletion failed'));
      }
    },
  });
  retrainer = new Retrainer({ config, group, brokers: o.brokers, processor, watcher: versions, registry, producer, log: o.log });
  closers.push({ what: 'stream', close: () => Promise.allSettled([processor.stop(), metadata.stop(), versions.stop()]) });
  // All three are attempted, so that none is left running when another fails.
  const started = await Promise.allSettled([processor.start(), metadata.start(), versions.start()]);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  closers.push({ what: 'retrainer', close: () => retrainer.stop() });
  await retrainer.start();

  let stopping: Promise<void> | undefined;
  // Each step of the stop is timed: one that takes long is named in the log (warn), so a stop that
  // runs into shutdown.graceMs says where it waited.
  const step = async (name: string, run: () => Promise<unknown>): Promise<void> => {
    const t0 = Date.now();
    const slow = setTimeout(() => o.log.warn({ step: name }, 'stopping: still waiting on this step'), 2000);
    try {
      await run();
    } finally {
      clearTimeout(slow);
      const ms = Date.now() - t0;
      if (ms >= 2000) o.log.warn({ step: name, ms }, 'stopping: a step took long');
    }
  };
  const stop = () =>
    (stopping ??= (async () => {
      await step('api (in-flight requests)', () => app.close());
      await step('retrainer', () => retrainer.stop());
      await Promise.all([
        step('processor', () => processor.stop()),
        step('metadata', () => metadata.stop()),
        step('versions', () => versions.stop()),
        step('resources', () => resources.stop()),
        step('deletions', () => deletions.stop()),
        step('live feeds', () => live.stop()),
      ]);
      await step('publisher', async () => publisher?.stop());
      await step('clients', () => Promise.allSettled([ingestProducer.disconnect(), producer.disconnect(), admin.disconnect(), metaStore.close()]));
    })());
  const recommend = (userId: string, numResults: number) => query.recommendations({ userId, numResults });
  return { processor, metadata, serving, versions, retrainer, registry, query, resources, deletions, publisher, recommend, app, url, stop };
}

/**
 * api.advertisedUrl's default. On a wildcard address fastify reports the first address it bound
 * (http://127.0.0.1:<port>), which other machines cannot reach: the machine's host name is the
 * better guess (a container's or pod's own name), and a warning says to set the URL.
 */
function defaultAdvertisedUrl(host: string, app: FastifyInstance, listening: string, log: Logger): string {
  if (host !== '0.0.0.0' && host !== '::') return listening;
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : new URL(listening).port;
  const guess = `http://${hostname()}:${port}`;
  log.warn({ advertisedUrl: guess }, `api.advertisedUrl is not set and api.host is ${host}: other instances will forward queries to ${guess}; set api.advertisedUrl (STREAMREC_API_ADVERTISED_URL) to an address they reach`);
  return guess;
}

