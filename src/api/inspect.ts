/**
 * What the inspection routes (src/api/inspect-routes.ts) read, for the dashboard and operators:
 *
 * - a user's stored events: the user state the processor keeps (src/state/model.ts `UserState`:
 *   the most recent state.maxEventsPerUser events), newest first;
 * - the tail of `<group>.dead-letter`: the last N records of each partition, read once with a
 *   consumer group made for the read and deleted after it (nothing committed, no group left behind);
 * - the processor's consumer group as the broker describes it: each member (instance), its
 *   advertised URL (subscription userData, src/kafka/assigner.ts) and the input partitions assigned
 *   to it, with its standby partitions.
 */
import { randomBytes } from 'node:crypto';
import { decodeAssignmentOwners, memberUrl } from '../kafka/assigner.js';
import { AssignerProtocol, type Admin, type KafkaClient } from '../kafka/kafkajs.js';
import { consumerRetry } from '../kafka/supervise.js';
import type { DeadLetter } from '../serde/avro.js';
import { trendAt } from '../state/apply.js';
import type { ItemCounts, UserState } from '../state/model.js';
import type { Logger } from '../util/log.js';
import { FORWARDED_HEADER } from './forward.js';

/** One stored event of a user, in the API's names. */
export interface StoredEvent {
  itemId: string;
  /** Epoch ms. */
  timestamp: number;
  eventType: string;
  eventValue: number | null;
  /** The user's session ordinal, from 0. */
  session: number;
}

export interface UserEvents {
  userId: string;
  /** Every event of the user applied so far (the store keeps the most recent ones). */
  total: number;
  /** Events kept in the store (at most state.maxEventsPerUser). */
  stored: number;
  /** Newest first, at most `limit`. */
  events: StoredEvent[];
}

/** A user's stored events, newest first, at most `limit`. */
export function userEvents(userId: string, state: Pick<UserState, 'total' | 'events'>, limit: number): UserEvents {
  const events = state.events
    .slice(-limit)
    .reverse()
    .map((e) => ({ itemId: e.item, timestamp: e.ts, eventType: e.type, eventValue: e.value, session: e.session }));
  return { userId, total: state.total, stored: state.events.length, events };
}

/** One dead letter as the API shows it: where it is, where it came from, why it was refused. */
export interface DeadLetterEntry {
  partition: number;
  offset: number;
  failedAt: number;
  source: string;
  sourcePartition: number | null;
  sourceOffset: string | null;
  errorCode: string;
  field: string | null;
  reason: string;
  /** The refused record's key as text (a user or item id), when it had one. */
  key: string | null;
  /** Bytes of the refused record's value (its original size when the stored copy was cut). */
  valueBytes: number | null;
}

export interface DeadLetterTail {
  topic: string;
  /** Offsets the topic keeps (all partitions: high watermark minus low; transaction markers take offsets too). */
  kept: number;
  /** Newest first: the last `limit` records of each partition. */
  deadLetters: DeadLetterEntry[];
}

export function deadLetterEntry(partition: number, offset: number, d: DeadLetter): DeadLetterEntry {
  return {
    partition,
    offset,
    failedAt: d.FAILED_AT,
    source: d.SOURCE,
    sourcePartition: d.SOURCE_PARTITION,
    sourceOffset: d.SOURCE_OFFSET,
    errorCode: d.ERROR_CODE,
    field: d.FIELD,
    reason: d.REASON,
    key: d.KEY ? d.KEY.toString('utf8') : null,
    valueBytes: d.VALUE_SIZE ?? d.VALUE?.length ?? null,
  };
}

export interface TailRecord {
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
}

export interface TailOptions {
  kafka: KafkaClient;
  admin: Pick<Admin, 'fetchTopicOffsets' | 'deleteGroups'>;
  topic: string;
  /** At most this many records of each partition: the last ones. */
  perPartition: number;
  /** The consumer group's name begins with this; a random suffix makes it the read's own. */
  groupPrefix: string;
  /** Gives up (what was read is returned) after this long; default 10 s. */
  timeoutMs?: number;
}

/**
 * The last `perPartition` records of each partition of a topic as they are now (up to the high
 * watermarks read first), in one bounded read: a consumer group of its own seeks each partition to
 * `max(low, high - perPartition)` and stops once it has passed each partition's high watermark
 * (transaction markers count: kafkajs reports batches of markers only through END_BATCH_PROCESS);
 * the group is deleted afterwards. Records of a transaction that is still open are not seen
 * (read-committed); a read that does not finish in `timeoutMs` returns what it read.
 */
export async function readTail(o: TailOptions): Promise<{ records: TailRecord[]; kept: number }> {
  const offsets = await o.admin.fetchTopicOffsets(o.topic);
  const wanted = new Map<number, { from: number; end: number }>();
  let kept = 0;
  for (const p of offsets) {
    const high = Number(p.high);
    const low = Number(p.low);
    kept += Math.max(0, high - low);
    if (high > low) wanted.set(p.partition, { from: Math.max(low, high - o.perPartition), end: high });
  }
  if (wanted.size === 0) return { records: [], kept };
  const groupId = `${o.groupPrefix}.${randomBytes(6).toString('hex')}`;
  const consumer = o.kafka.consumer({ groupId, allowAutoTopicCreation: false, retry: consumerRetry(2) });
  const records: TailRecord[] = [];
  const open = new Set(wanted.keys());
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let timer: NodeJS.Timeout | undefined;
  try {
    consumer.on(consumer.events.GROUP_JOIN, () => {
      for (const [partition, w] of wanted) if (open.has(partition)) consumer.seek({ topic: o.topic, partition, offset: String(w.from) });
    });
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      const w = wanted.get(payload.partition);
      if (payload.topic !== o.topic || !w || Number(payload.lastOffset) < w.end - 1) return;
      open.delete(payload.partition);
      if (open.size === 0) finish();
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const w = wanted.get(batch.partition);
        if (!w) return;
        for (const m of batch.messages) {
          const offset = Number(m.offset);
          if (offset >= w.from && offset < w.end) records.push({ partition: batch.partition, offset, key: m.key, value: m.value });
        }
      },
    });
    await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, o.timeoutMs ?? 10_000)))]);
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => undefined);
    await o.admin.deleteGroups([groupId]).catch(() => undefined);
  }
  // A partition's records once each (a rebalance could hand a batch over twice).
  const seen = new Set<string>();
  return { records: records.filter((r) => !seen.has(`${r.partition}/${r.offset}`) && seen.add(`${r.partition}/${r.offset}`)), kept };
}

/** One instance of a group: a member of the processor's consumer group. */
export interface InstanceInfo {
  memberId: string;
  clientId: string;
  host: string;
  /** Its advertised HTTP address (null when it advertises none). */
  url: string | null;
  /** The instance that answered. */
  self: boolean;
  /** Input partitions it owns (interactions and interactions-repartition, co-partitioned). */
  partitions: number[];
  /** Partitions it keeps a standby store of. */
  standby: number[];
}

export interface Instances {
  consumerGroup: string;
  /** The group's state as the broker says it (Stable, PreparingRebalance, CompletingRebalance, Empty, Dead). */
  state: string;
  protocol: string;
  instances: InstanceInfo[];
}

/** The processor's consumer group as the broker describes it: each member, its URL and partitions, sorted by URL then member id. */
export async function describeInstances(o: { admin: Pick<Admin, 'describeGroups'>; consumerGroup: string; topic: string; selfUrl: string }): Promise<Instances> {
  const [g] = (await o.admin.describeGroups([o.consumerGroup])).groups;
  const instances = (g?.members ?? []).map((m): InstanceInfo => {
    let partitions: number[] = [];
    try {
      partitions = [...(AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment[o.topic] ?? [])].sort((a, b) => a - b);
    } catch {
      // an assignment kafkajs cannot read: no partitions shown
    }
    const url = memberUrl(m.memberMetadata) ?? null;
    return { memberId: m.memberId, clientId: m.clientId, host: m.clientHost, url, self: url !== null && url === o.selfUrl, partitions, standby: decodeAssignmentOwners(m.memberAssignment).standby ?? [] };
  });
  instances.sort((a, b) => (a.url ?? '').localeCompare(b.url ?? '') || a.memberId.localeCompare(b.memberId));
  return { consumerGroup: o.consumerGroup, state: g?.state ?? 'Dead', protocol: g?.protocol ?? '', instances };
}

/** `read` at most once per `ms` for each argument: callers meanwhile share its answer (or the read in flight); a failed read is not kept. */
export function sharedFor<A, T>(ms: number, read: (a: A) => Promise<T>): (a: A) => Promise<T> {
  const kept = new Map<A, { at: number; answer: Promise<T> }>();
  return (a) => {
    const hit = kept.get(a);
    if (hit && performance.now() - hit.at < ms) return hit.answer;
    const answer = read(a);
    kept.set(a, { at: performance.now(), answer });
    answer.catch(() => kept.delete(a));
    return answer;
  };
}

/** An item's interaction counters summed over partitions (and instances). */
export interface ItemActivity {
  /** Distinct users who interacted with it (Personalize's popularity count). */
  users: number;
  events: number;
  /** Time-decayed event count now (state.trendingHalfLifeMs): the trending score. */
  trending: number;
  /** Epoch ms of its latest event; null without any. */
  lastTimestamp: number | null;
  /** Partitions whose counters include it. */
  partitions: number;
}

/** The counters of an item in several partitions, summed (users are per partition: a user's events all go to one). */
export function sumItemCounts(counts: readonly ItemCounts[], now: number, halfLifeMs: number): ItemActivity {
  const a: ItemActivity = { users: 0, events: 0, trending: 0, lastTimestamp: null, partitions: counts.length };
  for (const c of counts) {
    a.users += c.users;
    a.events += c.events;
    a.trending += trendAt(c, now, halfLifeMs);
    a.lastTimestamp = Math.max(a.lastTimestamp ?? c.lastTs, c.lastTs);
  }
  return a;
}

/** Activities of other instances added to one's own. */
export function addActivity(a: ItemActivity, b: ItemActivity): ItemActivity {
  const last = a.lastTimestamp === null ? b.lastTimestamp : b.lastTimestamp === null ? a.lastTimestamp : Math.max(a.lastTimestamp, b.lastTimestamp);
  return { users: a.users + b.users, events: a.events + b.events, trending: a.trending + b.trending, lastTimestamp: last, partitions: a.partitions + b.partitions };
}

/**
 * An item's activity on the other instances (their `scope=local` answers), asked with the root key
 * as the popular lists are (src/api/forward.ts peerRankings); an instance that does not answer is
 * left out (logged), one that does not know the item adds nothing.
 */
export async function peerActivity(o: { group: string; itemId: string; rootKey: string; peers: readonly string[]; log: Pick<Logger, 'warn'>; timeoutMs?: number }): Promise<ItemActivity[]> {
  if (o.rootKey === '' || o.peers.length === 0) return [];
  const settled = await Promise.allSettled(
    o.peers.map(async (url) => {
      const res = await fetch(`${url}/v1/groups/${encodeURIComponent(o.group)}/items/${encodeURIComponent(o.itemId)}?scope=local`, {
        headers: { 'x-api-key': o.rootKey, [FORWARDED_HEADER]: '1' },
        signal: AbortSignal.timeout(o.timeoutMs ?? 2000),
      });
      if (res.status === 404) return undefined;
      if (!res.ok) throw new Error(`${url} answered ${res.status}`);
      return ((await res.json()) as { activity: ItemActivity }).activity;
    }),
  );
  for (const r of settled) if (r.status === 'rejected') o.log.warn({ err: r.reason }, "an instance did not give an item's counters; they are partial");
  return settled.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
}
