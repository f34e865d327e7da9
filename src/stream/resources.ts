/**
 * A dataset group's resources — filters, API keys (hashed), solutions, deletion jobs — on the compacted topic
 * `<group>.resources` (key `<kind>/<name>`, value JSON, a null value deletes). Every instance
 * follows the topic from its beginning and keeps the (small) set in memory, as it does the served
 * version; a write is produced, acknowledged by all in-sync replicas, and applied locally at once so
 * the writer reads its own write; other instances see it within their next fetch.
 */
import type { Config } from '../config/index.js';
import { createKafka } from '../kafka/client.js';
import type { KafkaClient } from '../kafka/kafkajs.js';
import type { Sender } from '../kafka/produce.js';
import { followFromBeginning } from '../kafka/follow.js';
import { restartBackoff, type SupervisedConsumer, type SupervisedStatus } from '../kafka/supervise.js';
import { topicName, topicOffsets } from '../kafka/topics.js';
import type { Logger } from '../util/log.js';
import type { DeletionJob } from './deletion.js';

export type ResourceKind = 'filter' | 'apikey' | 'solution' | 'deletionjob';

export interface FilterResource {
  name: string;
  expression: string;
  createdAt: string;
}

export type Scope = 'ingest' | 'query' | 'admin';
export const SCOPES: readonly Scope[] = ['ingest', 'query', 'admin'];

export interface ApiKeyResource {
  id: string;
  name: string;
  scopes: Scope[];
  /** sha256 of the whole key, hex; the key itself is shown once, at creation, and never stored. */
  hash: string;
  createdAt: string;
}

export interface SolutionResource {
  name: string;
  recipe: string;
  params: Record<string, unknown>;
  createdAt: string;
  /** Personalize's performHPO: each version searches the parameters not in `params` first, within hpoConfig's budget. */
  performHPO?: boolean;
  hpoConfig?: { budgetMs: number; maxNumberOfTrainingJobs?: number };
}

interface Kinds {
  filter: FilterResource;
  apikey: ApiKeyResource;
  solution: SolutionResource;
  /** Deletion jobs (src/stream/deletion-jobs.ts): counts and offsets, never user ids. */
  deletionjob: DeletionJob;
}

/** Where a resource store sends its writes and how it learns of others' (the Kafka topic, or a test double). */
export interface ResourceLog {
  send(key: string, value: string | null): Promise<void>;
}

/** The in-memory view: pure, so it can be unit-tested and used without Kafka. */
export class Resources {
  private readonly maps: { [K in ResourceKind]: Map<string, Kinds[K]> } = { filter: new Map(), apikey: new Map(), solution: new Map(), deletionjob: new Map() };
  private readonly byHash = new Map<string, ApiKeyResource>();

  constructor(private readonly log?: ResourceLog) {}

  list<K extends ResourceKind>(kind: K): Kinds[K][] {
    return [...this.maps[kind].values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  get<K extends ResourceKind>(kind: K, name: string): Kinds[K] | undefined {
    return this.maps[kind].get(name);
  }

  keyByHash(hash: string): ApiKeyResource | undefined {
    return this.byHash.get(hash);
  }

  async put<K extends ResourceKind>(kind: K, name: string, value: Kinds[K]): Promise<void> {
    await this.log?.send(`${kind}/${name}`, JSON.stringify(value));
    this.apply(`${kind}/${name}`, JSON.stringify(value));
  }

  async delete(kind: ResourceKind, name: string): Promise<void> {
    await this.log?.send(`${kind}/${name}`, null);
    this.apply(`${kind}/${name}`, null);
  }

  /**
   * One record of the topic. Unknown kinds are ignored (a newer version may write them); a value
   * that is not a JSON object is ignored too, and the reason returned (the follower logs it: these
   * topics are re-read from the beginning at every start, so a dead letter would repeat each time).
   */
  apply(key: string, value: string | null): string | undefined {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash) as ResourceKind;
    const name = key.slice(slash + 1);
    const map = this.maps[kind] as Map<string, Kinds[ResourceKind]> | undefined;
    if (slash < 1 || !map) return undefined;
    const old = map.get(name);
    if (kind === 'apikey' && old) this.byHash.delete((old as ApiKeyResource).hash);
    if (value === null) {
      map.delete(name);
      return undefined;
    }
    let parsed: Kinds[ResourceKind];
    try {
      parsed = JSON.parse(value) as Kinds[ResourceKind];
    } catch (err) {
      return `not JSON: ${(err as Error).message}`;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'not a JSON object';
    map.set(name, parsed);
    if (kind === 'apikey') this.byHash.set((parsed as ApiKeyResource).hash, parsed as ApiKeyResource);
    return undefined;
  }
}

export interface ResourceFollowerOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  instanceId: string;
  producer: Sender;
  log: Logger;
}

/** Follows `<group>.resources` into a `Resources` view; `start` resolves once the topic's backlog is read. */
export class ResourceFollower {
  readonly resources: Resources;
  private readonly kafka: KafkaClient;
  private readonly topic: string;
  private consumer: SupervisedConsumer | undefined;

  constructor(private readonly o: ResourceFollowerOptions) {
    this.kafka = createKafka(o.config, o.brokers, `-${o.instanceId}-resources`, o.log);
    this.topic = topicName(o.group, 'resources');
    this.resources = new Resources({
      send: async (key, value) => {
        await o.producer.send({ topic: this.topic, acks: -1, messages: [{ key, value, partition: 0 }] });
      },
    });
  }

  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    let high: number;
    try {
      high = (await topicOffsets(admin, this.topic)).find((p) => p.partition === 0)?.high ?? 0;
    } finally {
      await admin.disconnect();
    }
    let caughtUp!: () => void;
    const backlog = new Promise<void>((resolve) => (caughtUp = resolve));
    if (high === 0) caughtUp();
    this.consumer = await followFromBeginning(this.kafka, {
      topic: this.topic,
      groupId: `streamrec.${this.o.group}.resources.${this.o.instanceId}`,
      log: this.o.log,
      backoff: restartBackoff(this.o.config),
      onBatch: (messages) => {
        for (const m of messages) {
          const key = m.key?.toString();
          const refused = key ? this.resources.apply(key, m.value ? m.value.toString('utf8') : null) : undefined;
          if (refused) this.o.log.warn({ topic: this.topic, offset: m.offset, key, reason: refused }, 'resources: an unreadable record is ignored');
          if (Number(m.offset) + 1 >= high) caughtUp();
        }
      },
    });
    // Keys and filters must be known before the API answers; a broker that never delivers the
    // backlog leaves the service starting (and says so) rather than refusing every key.
    const timeout = setTimeout(() => this.o.log.warn({ topic: this.topic, high }, 'still reading the resources topic'), 10_000);
    await backlog.finally(() => clearTimeout(timeout));
  }

  /** The follower's consumer: running, restarting after a crash, or failed (with the reason). */
  consumerStatus(): SupervisedStatus | undefined {
    return this.consumer?.status();
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }
}
