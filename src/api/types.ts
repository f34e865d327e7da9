import type { FastifyServerOptions } from 'fastify';
import type { Config } from '../config/index.js';
import type { Codecs } from '../serde/avro.js';

/** One Kafka record: the key (userId or itemId) and the encoded Avro value. */
export interface SinkMessage {
  key: string;
  value: Buffer;
}

/** Where accepted records go; the real one wraps a kafkajs producer (`kafkaSink`). */
export interface RecordSink {
  send(topic: string, messages: SinkMessage[]): Promise<void>;
}

/** Which dataset groups exist; the real one looks for `<group>.interactions` (`topicGroupDirectory`). */
export interface GroupDirectory {
  has(group: string): Promise<boolean>;
}

/** Readiness as the stream processor reports it. */
export interface ServiceStatus {
  state: string;
  ready: boolean;
  detail?: unknown;
}

export interface ApiDeps {
  config: Readonly<Config>;
  codecs: Codecs;
  sink: RecordSink;
  groups: GroupDirectory;
  status: () => ServiceStatus;
  /** The clock (epoch ms) for timestamp checks; Date.now by default. */
  now?: () => number;
  /**
   * A user's recommendations from the served model version (the running service); without it the
   * query route is not registered.
   */
  recommend?: (group: string, userId: string, numResults: number) => Promise<{ version: string; recipe: string; items: { itemId: string; score: number; reason?: string }[] }>;
  /** fastify's pino logger: false for none, or options such as `{ level: 'warn' }`. Default `{ level: 'info' }`. */
  logger?: FastifyServerOptions['logger'];
}
