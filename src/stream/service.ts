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
import { partitionStoreDir, StreamProcessor, type Logger } from './processor.js';

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
  app: FastifyInstance;
  /** `http://host:port` the API listens on. */
  url: string;
  stop(): Promise<void>;
}

export function instanceId(config: Readonly<Config>): string {
  return config.processor.instanceId || `${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}-${process.pid}`;
}

export async function startService(o: ServiceOptions): Promise<Service> {
  const { config, group } = o;
  const processor = new StreamProcessor({
    config,
    group,
    brokers: o.brokers,
    instanceId: instanceId(config),
    log: o.log,
    openStore: (p) => openRocksStore(partitionStoreDir(config, group, p)),
  });
  const kafka = createKafka(config, o.brokers, '-api');
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  const admin: Admin = kafka.admin();
  await Promise.all([producer.connect(), admin.connect()]);
  const app = await buildApp({
    config,
    codecs: createCodecs(config),
    sink: kafkaSink(producer),
    groups: topicGroupDirectory(admin),
    status: () => {
      const s = processor.status();
      return { state: s.state, ready: s.ready, detail: s };
    },
    logger: o.apiLogger ?? false,
  });
  const url = await app.listen({ host: config.api.host, port: config.api.port });
  await processor.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await app.close();
      await processor.stop();
      await Promise.allSettled([producer.disconnect(), admin.disconnect()]);
    })());
  return { processor, app, url, stop };
}
