/**
 * The running service of one dataset group: the stream processor (RocksDB state, exactly-once) and
 * the HTTP API (ingestion, health, readiness), with an orderly stop.
 */
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { buildApp, kafkaSink, topicGroupDirectory, type GroupServices } from '../api/app.js';
import { forwarder, peerRankings } from '../api/forward.js';
import type { Config } from '../config/index.js';
import { createKafka } from '../kafka/client.js';
import type { Admin, Producer } from '../kafka/kafkajs.js';
import { createCodecs } from '../serde/avro.js';
import { openRocksStore } from '../state/rocksdb-store.js';
import { MetadataReader } from './metadata.js';
import { partitionStoreDir, StreamProcessor, type Logger } from './processor.js';
import { VersionRegistry } from '../training/registry.js';
import { QueryService, type Answer } from './query.js';
import { RecommendationPublisher } from './publisher.js';
import { ResourceFollower } from './resources.js';
import { announce, rollback } from './versions.js';
import { applyTopics, groupTopics, topicName } from '../kafka/topics.js';
import { Retrainer } from './retrainer.js';
import { ServingModel } from './serving.js';
import { HrnnModel } from '../recipes/hrnn.js';
import { trainingParams } from '../training/stream-train.js';
import { VersionWatcher } from './versions.js';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';

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

export async function startService(o: ServiceOptions): Promise<Service> {
  const { config, group } = o;
  const id = instanceId(config);
  const serving = new ServingModel();
  const registry = new VersionRegistry(versionsDir(config, group));
  const codecs = createCodecs(config);
  const kafka = createKafka(config, o.brokers, '-api', o.log);
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  const admin: Admin = kafka.admin();
  await Promise.all([producer.connect(), admin.connect()]);

  mkdirSync(join(config.state.dir, group, 'meta'), { recursive: true });
  const metaStore = await openRocksStore(join(config.state.dir, group, 'meta'));
  // hrnn-coldstart: items that arrive after the served version was trained join it at once.
  const metadata = new MetadataReader({ config, group, brokers: o.brokers, instanceId: id, store: metaStore, log: o.log, onItem: (item) => serving.hrnn?.model.addItem(item) });
  const resources = new ResourceFollower({ config, group, brokers: o.brokers, instanceId: id, producer, log: o.log });
  let processor!: StreamProcessor;
  const query = new QueryService({
    serving,
    userState: (userId) => processor.userState(userId),
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
  const versions = new VersionWatcher({ config, group, brokers: o.brokers, instanceId: id, registry, serving, log: o.log });
  serving.on('swap', (v) => {
    if (v.model instanceof HrnnModel && v.model.meta?.tower) {
      const model = v.model;
      metadata.forEachItem((item) => void model.addItem(item)).catch((err: unknown) => o.log.warn({ err }, 'adding stored items to the new version failed'));
    }
  });
  let retrainer!: Retrainer;
  let advertised = '';
  const services: GroupServices = {
    query,
    resources: resources.resources,
    deployment: {
      describe: () => ({ announced: versions.announced, loaded: versions.status().serving }),
      promote: async (version) => {
        registry.info(version);
        return announce(producer, group, version, versions.announced, 'promoted through the API');
      },
      rollback: () => rollback(producer, group, versions.announced),
    },
    solutions: {
      configured: () => ({ recipe: config.training.recipe, params: trainingParams(config.training.params) }),
      versions: () => registry.list(),
      version: (v) => registry.info(v),
      train: (spec) => {
        if (retrainer.busy) return false;
        retrainer.trainNow(spec).catch((err: unknown) => o.log.warn({ err }, 'training a solution version failed'));
        return true;
      },
      running: () => retrainer.busy,
    },
  };
  const app = await buildApp({
    config,
    codecs,
    sink: kafkaSink(producer),
    groups: topicGroupDirectory(admin),
    status: () => {
      const s = processor.status();
      return { state: s.state, ready: s.ready, detail: { ...s, metadata: metadata.status(), versions: versions.status(), training: retrainer.status(), publisher: publisher?.status() ?? null } };
    },
    logger: o.apiLogger ?? false,
    served: { names: () => [group], get: (g) => (g === group ? services : undefined) },
    forward: forwarder({ owner: (userId) => processor.owner(userId), selfUrl: () => advertised }),
    groupAdmin: {
      list: async () => (await admin.listTopics()).filter((t) => t.endsWith('.interactions')).map((t) => t.slice(0, -'.interactions'.length)).sort(),
      create: (g) => applyTopics(admin, g, config),
      delete: async (g) => {
        const existing = new Set(await admin.listTopics());
        await admin.deleteTopics({ topics: groupTopics(g, config).map((t) => t.topic).filter((t) => existing.has(t)) });
      },
    },
    metrics: {
      processor: () => processor.status(),
      serving: () => {
        const v = serving.current;
        return v ? { version: v.version, recipe: v.model.recipe } : undefined;
      },
      ...(publisher ? { publisher: () => publisher.status() } : {}),
      retrainer: () => {
        const r = retrainer.status();
        return { trainings: r.trainings, failures: r.failed };
      },
    },
  });
  await resources.start();
  const url = await app.listen({ host: config.api.host, port: config.api.port });
  advertised = config.api.advertisedUrl || url;
  processor = new StreamProcessor({
    // Other instances forward queries for users of this instance's partitions here.
    advertisedUrl: advertised,
    config,
    group,
    brokers: o.brokers,
    instanceId: id,
    log: o.log,
    serving,
    openStore: (p) => openRocksStore(partitionStoreDir(config, group, p)),
    userMetadata: (ids) => metadata.users(ids),
    onApplied: (users: ReadonlyMap<string, number>) => {
      // Queries' kept states first, so that the lists published next are from the new state.
      query.applied(users.keys());
      publisher?.notify(users);
    },
  });
  retrainer = new Retrainer({ config, group, brokers: o.brokers, processor, watcher: versions, registry, producer, log: o.log });
  await Promise.all([processor.start(), metadata.start(), versions.start()]);
  await retrainer.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await app.close();
      await retrainer.stop();
      await Promise.all([processor.stop(), metadata.stop(), versions.stop(), resources.stop()]);
      await publisher?.stop();
      await Promise.allSettled([producer.disconnect(), admin.disconnect(), metaStore.close()]);
    })());
  const recommend = (userId: string, numResults: number) => query.recommendations({ userId, numResults });
  return { processor, metadata, serving, versions, retrainer, registry, query, resources, publisher, recommend, app, url, stop };
}
