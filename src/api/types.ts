import type { FastifyServerOptions } from 'fastify';
import type { Config } from '../config/index.js';
import type { Codecs } from '../serde/avro.js';
import type { QueryService } from '../serving/query.js';
import type { Resources } from '../stream/resources.js';
import type { TopicReport } from '../kafka/topics.js';
import type { HpoRequest } from '../training/model-files.js';
import type { VersionInfo } from '../training/registry.js';
import type { ServingRecord } from '../stream/versions.js';
import type { SplitArm } from '../serving/split.js';
import type { MetricsSource } from './ops.js';
import type { LiveFeeds } from '../stream/live.js';
import type { UserState } from '../state/model.js';
import type { DeadLetterTail, Instances, ItemActivity } from './inspect.js';
import type { OnlineMetricsSource } from '../stream/online-metrics.js';
import type { OnlineMetricsReader } from '../stream/attribution.js';
import type { DeletionAdmin } from '../stream/deletion-jobs.js';

/** One Kafka record: the key (userId or itemId) and the encoded Avro value. */
export interface SinkMessage {
  key: string;
  value: Buffer;
}

/** Where accepted records go; the real one wraps a kafkajs producer (`kafkaSink`). */
export interface RecordSink {
  /** `timeoutMs`: what is left of the request's wait for Kafka (a bounded sink honours it). */
  send(topic: string, messages: SinkMessage[], options?: { timeoutMs?: number }): Promise<void>;
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
  /** The groups this instance serves, with their services; without it only ingestion and health are served. */
  served?: ServedGroups;
  /** Create, list and delete dataset groups (root key only); without it those routes are not registered. */
  groupAdmin?: GroupAdmin;
  /** Authentication: `api.auth` and `api.rootKey` from the config; keys from each served group's resources. */
  auth?: { mode: 'keys' | 'off'; rootKey: string };
  /** Forwards a user's query to the owner of the user's partition when that is another instance (true: answered). */
  forward?: (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply, userId: string) => Promise<boolean>;
  /** Asks the owner of a user's partition through its /v1 route (the Personalize mount, whose SigV4 requests cannot be passed on); undefined: this instance owns the user. */
  askOwner?: (userId: string, path: string, body: unknown) => Promise<unknown>;
  /** What /metrics reports besides the HTTP histograms (processor, serving version, publisher, retrainer). */
  metrics?: MetricsSource;
  /** fastify's pino logger: false for none, or options such as `{ level: 'warn' }`. Default `{ level: 'info' }`. */
  logger?: FastifyServerOptions['logger'];
}

/** The groups an instance serves. */
export interface ServedGroups {
  names(): readonly string[];
  get(group: string): GroupServices | undefined;
}

/** What the query and resource routes need of one served group. */
export interface GroupServices {
  query: Pick<QueryService, 'recommendations' | 'related' | 'ranking' | 'popular'> & Partial<Pick<QueryService, 'itemMetadata'>>;
  resources: Resources;
  deployment: DeploymentAdmin;
  solutions: SolutionAdmin;
  /** Live lists and the event rate for server-sent events (src/stream/live.ts); absent without Kafka (tests). */
  live?: Pick<LiveFeeds, 'lists' | 'events'>;
  /** What the inspection routes read (src/api/inspect-routes.ts); absent (tests' fakes): those routes answer 404 ROUTE_NOT_FOUND. */
  inspect?: GroupInspector;
  /** Online metrics per version (src/stream/attribution.ts); `read`/`local` serve GET .../metrics/online. Absent without Kafka. */
  online?: OnlineMetricsSource & Partial<Pick<OnlineMetricsReader, 'read' | 'local'>>;
  /** Deleting users (src/stream/deletion-jobs.ts); absent without Kafka (tests): those routes answer 404 ROUTE_NOT_FOUND. */
  deletions?: DeletionAdmin;
}

/** A group's stored user events, dead letters and instances (src/api/inspect.ts). */
export interface GroupInspector {
  /** The user's stored state in this instance's store (only the owner's ready store answers; the route forwards first); undefined: no events. */
  userState(userId: string): Promise<Pick<UserState, 'total' | 'events'> | undefined>;
  /** The last `perPartition` records of each partition of `<group>.dead-letter`. */
  deadLetters(perPartition: number): Promise<DeadLetterTail>;
  /** The processor's consumer group: each instance and the partitions it owns. */
  instances(): Promise<Instances>;
  /** An item's interaction counters: of the partitions this instance owns (`local`), or of the group (the others' added); undefined: no partition counts it. */
  itemActivity?(itemId: string, scope: 'local' | 'group'): Promise<ItemActivity | undefined>;
}

/** The group's deployment (Personalize's campaign): which version serves. */
export interface DeploymentAdmin {
  /** `split`: the id of the traffic split this instance applies (every arm loaded), if any. */
  describe(): { announced: ServingRecord | undefined; loaded: string | null; split?: string | null };
  /** `reason`: recorded on the announcement (default: promoted through the API). Ends any traffic split. */
  promote(version: string, reason?: string): Promise<ServingRecord>;
  rollback(): Promise<ServingRecord>;
  /** Starts a traffic split between versions (src/serving/split.ts), replacing any; absent (tests' fakes): the split routes answer 404 SPLIT_NOT_FOUND. */
  split?(arms: readonly SplitArm[]): Promise<ServingRecord>;
  /** Ends the traffic split: the main version serves everyone. */
  endSplit?(): Promise<ServingRecord>;
}

/** Solution versions: the registry's, and training one now. */
export interface SolutionAdmin {
  /** The group's configured training (the solution named "default"). */
  configured(): { recipe: string; params: Record<string, unknown>; hpo?: HpoRequest };
  versions(): VersionInfo[];
  version(id: string): VersionInfo;
  /** Starts a training of a version for this recipe and params in the background (not promoted); false when one is running. */
  train(spec: { recipe: string; params: Record<string, unknown>; hpo?: HpoRequest }): boolean;
  running(): boolean;
}

export interface GroupAdmin {
  list(): Promise<string[]>;
  create(group: string): Promise<TopicReport[]>;
  delete(group: string): Promise<void>;
}
