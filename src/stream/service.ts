/**
 * The running service of one dataset group: the stream processor (RocksDB state, exactly-once) and
 * the HTTP API (ingestion, health, readiness), with an orderly stop.
 */
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { buildApp, kafkaSink, topicGroupDirectory } from '../api/app.js';
import type { Config } from '../config/index.js';
import { createKafka } from '../kafka/client.js';
import type { Admin, Producer } from '../kafka/kafkajs.js';
import { createCodecs } from '../serde/avro.js';
import { openRocksStore } from '../state/rocksdb-store.js';
import { MetadataReader } from './metadata.js';
import { partitionStoreDir, StreamProcessor, type Logger } from './processor.js';
import { VersionRegistry } from '../training/registry.js';
import { recommendForUser, type UserRecommendations } from './recommend.js';
import { Retrainer } from './retrainer.js';
import { ServingModel } from './serving.js';
import { HrnnModel } from '../recipes/hrnn.js';
import { AppError } from '../errors/index.js';
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
  /** A user's recommendations from the served version and the user's current state. */
  recommend(userId: string, numResults: number): Promise<UserRecommendations>;
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
  const processor = new StreamProcessor({
    config,
    group,
    brokers: o.brokers,
    instanceId: id,
    log: o.log,
    serving,
    openStore: (p) => openRocksStore(partitionStoreDir(config, group, p)),
    userMetadata: (ids) => metadata.users(ids),
  });
  const versions = new VersionWatcher({ config, group, brokers: o.brokers, instanceId: id, registry, serving, log: o.log });
  mkdirSync(join(config.state.dir, group, 'meta'), { recursive: true });
  const metaStore = await openRocksStore(join(config.state.dir, group, 'meta'));
  // hrnn-coldstart: items that arrive after the served version was trained join it at once.
  const metadata = new MetadataReader({ config, group, brokers: o.brokers, instanceId: id, store: metaStore, log: o.log, onItem: (item) => serving.hrnn?.model.addItem(item) });
  serving.on('swap', (v) => {
    if (v.model instanceof HrnnModel && v.model.meta?.tower) {
      const model = v.model;
      metadata.forEachItem((item) => void model.addItem(item)).catch((err: unknown) => o.log.warn({ err }, 'adding stored items to the new version failed'));
    }
  });
  const kafka = createKafka(config, o.brokers, '-api', o.log);
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  const admin: Admin = kafka.admin();
  await Promise.all([producer.connect(), admin.connect()]);
  const retrainer = new Retrainer({ config, group, brokers: o.brokers, processor, watcher: versions, registry, producer, log: o.log });
  const app = await buildApp({
    config,
    codecs: createCodecs(config),
    sink: kafkaSink(producer),
    groups: topicGroupDirectory(admin),
    status: () => {
      const s = processor.status();
      return { state: s.state, ready: s.ready, detail: { ...s, metadata: metadata.status(), versions: versions.status(), training: retrainer.status() } };
    },
    logger: o.apiLogger ?? false,
    recommend: (g, userId, numResults) => {
      if (g !== group) throw new AppError('GROUP_NOT_FOUND', `this service serves the group ${JSON.stringify(group)}, not ${JSON.stringify(g)}`, { field: 'group' });
      return recommendForUser(serving, processor, userId, numResults, Date.now());
    },
  });
  const url = await app.listen({ host: config.api.host, port: config.api.port });
  await Promise.all([processor.start(), metadata.start(), versions.start()]);
  await retrainer.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await app.close();
      await retrainer.stop();
      await Promise.all([processor.stop(), metadata.stop(), versions.stop()]);
      await Promise.allSettled([producer.disconnect(), admin.disconnect(), metaStore.close()]);
    })());
  const recommend = (userId: string, numResults: number) => recommendForUser(serving, processor, userId, numResults, Date.now());
  return { processor, metadata, serving, versions, retrainer, registry, recommend, app, url, stop };
}
