import { readFileSync } from 'node:fs';
import { ConfigResourceTypes, ConfigSource, type Admin, type ITopicConfig } from './kafkajs.js';
import { AppError } from '../errors/index.js';
import type { Config } from '../config/index.js';
import { packagePath } from '../util/paths.js';

/** The topics of a dataset group, as declared in topics/topics.json. */
export type TopicName = 'interactions' | 'items' | 'users' | 'recommendations' | 'dead-letter' | 'changelog' | 'versions' | 'models' | 'resources' | 'interactions-repartition' | 'deletions';

/**
 * Topics whose partition p belongs to the state of input partition p (a user lives in partition
 * partitionOf(userId, n) of each): their partition count is the group's, and never changes once
 * the group has data (more partitions would move users away from their state).
 */
const STATE_PARTITIONED: ReadonlySet<TopicName> = new Set<TopicName>(['interactions', 'interactions-repartition', 'changelog']);
/** Created with the interactions topic's count when that exists (each is written per input partition). */
const CO_PARTITIONED: ReadonlySet<TopicName> = new Set<TopicName>(['interactions-repartition', 'changelog', 'dead-letter']);

export interface TopicDefinition {
  name: TopicName;
  description: string;
  /** A number, or "config": topics.partitions. */
  partitions: number | 'config';
  config: Record<string, string>;
}

export interface ResolvedTopic {
  name: TopicName;
  topic: string;
  partitions: number;
  config: Record<string, string>;
}

export type TopicAction = 'created' | 'unchanged' | 'updated' | 'partitions-added' | 'warning';

export interface TopicReport {
  topic: string;
  action: TopicAction;
  detail: string;
}

const GROUP_PATTERN = /^[A-Za-z0-9_-]{1,60}$/;

export function validateGroupName(group: string): string {
  if (!GROUP_PATTERN.test(group)) {
    throw new AppError('INVALID_GROUP_NAME', `dataset group name ${JSON.stringify(group)} is not valid: use 1-60 characters from A-Z a-z 0-9 _ -`, {
      field: 'group',
    });
  }
  return group;
}

export function topicName(group: string, name: TopicName): string {
  return `${validateGroupName(group)}.${name}`;
}

let definitions: TopicDefinition[] | undefined;

export function topicDefinitions(): TopicDefinition[] {
  definitions ??= (JSON.parse(readFileSync(packagePath('topics', 'topics.json'), 'utf8')) as { topics: TopicDefinition[] }).topics;
  return definitions;
}

export function groupTopics(group: string, config: Readonly<Config>): ResolvedTopic[] {
  return topicDefinitions().map((d) => ({
    name: d.name,
    topic: topicName(group, d.name),
    partitions: d.partitions === 'config' ? config.topics.partitions : d.partitions,
    config: { ...d.config },
  }));
}

/**
 * Makes the group's topics match their definitions, idempotently: creates the missing ones, adds
 * partitions where there are too few, sets differing configs (keeping configs set by others), and
 * reports each topic. Never deletes a topic or a partition.
 *
 * The state-partitioned topics (interactions, interactions-repartition, changelog) of a group that
 * has data are never given more partitions: that would route users to partitions that do not hold
 * their state. It is refused with PARTITIONS_CHANGE_REFUSED before anything is changed. A missing
 * co-partitioned topic (repartition, changelog, dead letters) is created with the interactions
 * topic's count when that topic exists.
 */
export async function applyTopics(admin: Admin, group: string, config: Readonly<Config>): Promise<TopicReport[]> {
  const wanted = groupTopics(group, config);
  const existing = new Set(await admin.listTopics());
  const reports: TopicReport[] = [];
  try {
    const interactions = wanted.find((t) => t.name === 'interactions')!;
    const stateTopics = wanted.filter((t) => STATE_PARTITIONED.has(t.name) && existing.has(t.topic));
    const counts = new Map<string, number>();
    if (stateTopics.length > 0) {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: stateTopics.map((t) => t.topic) });
      for (const m of meta) counts.set(m.name, m.partitions.length);
    }
    const growing = stateTopics.filter((t) => (counts.get(t.topic) ?? 0) < t.partitions);
    if (growing.length > 0) {
      const withData: string[] = [];
      for (const t of stateTopics) {
        const offsets = await topicOffsets(admin, t.topic);
        const records = offsets.reduce((n, o) => n + o.high, 0);
        if (records > 0) withData.push(`${t.topic} (${records} records written)`);
      }
      if (withData.length > 0) {
        const have = growing.map((t) => `${t.topic} has ${counts.get(t.topic)}`).join(', ');
        throw new AppError(
          'PARTITIONS_CHANGE_REFUSED',
          `group ${group} has data (${withData.join(', ')}): its partitions cannot grow to topics.partitions=${interactions.partitions} (${have}), since users would move to partitions that do not hold their state. Keep topics.partitions at ${counts.get(interactions.topic) ?? counts.get(growing[0]!.topic)}, or create a new dataset group with ${interactions.partitions} partitions and import the events into it again.`,
          { field: 'topics.partitions' },
        );
      }
    }
    const interactionsCount = counts.get(interactions.topic);
    if (interactionsCount !== undefined) {
      for (const t of wanted) if (CO_PARTITIONED.has(t.name) && !existing.has(t.topic)) t.partitions = interactionsCount;
    }
    const missing = wanted.filter((t) => !existing.has(t.topic));
    if (missing.length > 0) {
      await createTopicsAndWait(
        admin,
        missing.map((t) => ({
          topic: t.topic,
          numPartitions: t.partitions,
          replicationFactor: config.topics.replicationFactor,
          configEntries: Object.entries(t.config).map(([name, value]) => ({ name, value })),
        })),
      );
      for (const t of missing) reports.push({ topic: t.topic, action: 'created', detail: `${t.partitions} partition(s), ${describe(t.config)}` });
    }
    const present = wanted.filter((t) => existing.has(t.topic));
    if (present.length === 0) return reports;

    const { topics: meta } = await admin.fetchTopicMetadata({ topics: present.map((t) => t.topic) });
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: present.map((t) => ({ type: ConfigResourceTypes.TOPIC, name: t.topic })),
    });
    for (const t of present) {
      const changes: string[] = [];
      const have = meta.find((m) => m.name === t.topic)?.partitions.length ?? 0;
      if (have < t.partitions) {
        await admin.createPartitions({ topicPartitions: [{ topic: t.topic, count: t.partitions }] });
        reports.push({ topic: t.topic, action: 'partitions-added', detail: `partitions ${have} -> ${t.partitions}` });
      } else if (have > t.partitions) {
        reports.push({
          topic: t.topic,
          action: 'warning',
          detail: `has ${have} partitions, more than the ${t.partitions} defined; Kafka cannot remove partitions, so it is left as is`,
        });
      }
      const entries = described.resources.find((r) => r.resourceName === t.topic)?.configEntries ?? [];
      const setHere = Object.fromEntries(
        entries.filter((e) => e.configSource === ConfigSource.TOPIC_CONFIG).map((e) => [e.configName, e.configValue]),
      );
      const current = Object.fromEntries(entries.map((e) => [e.configName, e.configValue]));
      for (const [name, value] of Object.entries(t.config)) {
        if (current[name] !== value) changes.push(`${name} ${current[name] ?? '(unset)'} -> ${value}`);
      }
      if (changes.length > 0) {
        // alterConfigs replaces the topic's whole set of overrides: send the ones set by others too.
        const merged = { ...setHere, ...t.config };
        await admin.alterConfigs({
          validateOnly: false,
          resources: [
            { type: ConfigResourceTypes.TOPIC, name: t.topic, configEntries: Object.entries(merged).map(([name, value]) => ({ name, value })) },
          ],
        });
        reports.push({ topic: t.topic, action: 'updated', detail: changes.join(', ') });
      } else if (!reports.some((r) => r.topic === t.topic)) {
        reports.push({ topic: t.topic, action: 'unchanged', detail: `${have} partition(s), ${describe(t.config)}` });
      }
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError('TOPIC_APPLY_FAILED', `applying the topics of group ${group}: ${(err as Error).message}`, { cause: err });
  }
  return reports;
}

/**
 * createTopics with waitForLeaders, made robust: on KRaft the leader wait can fail with
 * UNKNOWN_TOPIC_OR_PARTITION while the new topic's metadata is still on its way (kafkajs does not
 * retry that); then the metadata is polled until every partition has a leader.
 */
export async function createTopicsAndWait(admin: Admin, topics: ITopicConfig[], timeoutMs = 30_000): Promise<void> {
  try {
    await admin.createTopics({ waitForLeaders: true, topics });
    return;
  } catch (err) {
    if ((err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
  }
  const names = topics.map((t) => t.topic);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await admin
      .fetchTopicMetadata({ topics: names })
      .then(({ topics: meta }) => meta.length === names.length && meta.every((m) => m.partitions.length > 0 && m.partitions.every((p) => p.leader >= 0)))
      .catch(() => false);
    if (ready) return;
    if (Date.now() > deadline) throw new AppError('TOPIC_APPLY_FAILED', `topics ${names.join(', ')} have no leaders after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A topic's partition offsets (low = first retained, high = end), retried while a new topic's
 * leaders are still being announced (KRaft: NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
 * LEADER_NOT_AVAILABLE for a moment after creation).
 */
export async function topicOffsets(admin: Admin, topic: string, timeoutMs = 30_000): Promise<{ partition: number; low: number; high: number }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets.map((o) => ({ partition: o.partition, low: Number(o.low), high: Number(o.high) })).sort((a, b) => a.partition - b.partition);
    } catch (err) {
      const retriable = (err as { retriable?: boolean }).retriable === true;
      if (!retriable || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const describe = (config: Record<string, string>): string =>
  Object.entries(config)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
