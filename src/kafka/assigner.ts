/**
 * A kafkajs partition assigner that tells every member of a consumer group which member (by its
 * advertised HTTP address) owns each partition, as Kafka Streams does with `application.server`.
 *
 * - Each member's subscription userData carries its advertised URL: JSON `{"url": "..."}`.
 * - The leader assigns CO-PARTITIONED: partition p of every subscribed topic goes to the same
 *   member, member p mod n of the members sorted by id (the processor's task of partition p reads
 *   interactions p and interactions-repartition p into one store), and puts in EVERY member's assignment
 *   userData the full owner table of the subscribed topic: JSON
 *   `{"topic", "partitions", "urls": [url, ...], "owners": [index into urls, or -1 per partition]}`
 *   (URLs by index: with many partitions and members the group's metadata record stays small).
 * - kafkajs drops a member's received assignment userData, so each member reads it from its own
 *   SyncGroup response: the assigner wraps the group coordinator's `syncGroup` on the consumer's
 *   own cluster object (kafkajs 2.2.4, pinned). Without that hook only the leader learns the owners.
 *
 * Standby replicas (protocol `streamrec-v3`, as Kafka Streams' num.standby.replicas and its
 * warm-task assignment):
 * - each member's subscription userData also says which partitions it owns now (`active`) and, per
 *   partition it has a local store of, the changelog offset that store reflects (`stores`:
 *   `{"<partition>": checkpoint}`): JSON `{"url", "active": [p, ...], "stores": {...}}`;
 * - the leader keeps each partition with its current owner, else gives it to the member with the
 *   warmest store (highest checkpoint: smallest lag behind the changelog's end), else p mod n,
 *   always with every member at floor(P/n) or ceil(P/n) partitions (`planAssignment`);
 * - then it picks `standbyReplicas` (at most members - 1) standby members per partition, never the
 *   owner, spread evenly over the members and over each owner's partitions, warm stores first; each
 *   member's assignment userData carries its own list: `"standby": [p, ...]` beside the owner table.
 * The fields are additions: a v2 member reads a v3 assignment (it ignores `standby`), and a v3
 * member offers v2 as well, so a group being upgraded one instance at a time agrees on v2 until
 * every member speaks v3.
 *
 * Undecodable userData never throws: a member without a readable URL owns its partitions with an
 * unknown address, a member with unreadable stores has none (it is cold), and an unreadable owner
 * table is an empty one (every owner unknown, no standby).
 */
import kafkajs from 'kafkajs';
import { AssignerProtocol, type Assigner, type Broker, type Cluster, type GroupMember, type GroupMemberAssignment, type PartitionAssigner } from './kafkajs.js';

/**
 * The group protocol name of the owner assigner. v2: co-partitioned (v1 was round robin over all
 * topics' partitions in a row, which splits partition p of two topics between members): members of
 * the two versions share no protocol, so a group never mixes them. v3: v2 plus standby replicas and
 * warm-store-preferring placement (additional JSON fields only): v3 members offer v2 too
 * (`OWNER_ASSIGNER_V2_NAME`), so v2 and v3 instances share a group, on v2, during an upgrade.
 */
export const OWNER_ASSIGNER_NAME = 'streamrec-v3';
/** The previous owner protocol (p mod n, no standbys), still offered by v3 members. */
export const OWNER_ASSIGNER_V2_NAME = 'streamrec-v2';
/** The protocol name of the co-partitioned assigner without owner URLs. */
export const CO_PARTITIONED_ASSIGNER_NAME = 'streamrec-copartitioned-v1';
const VERSION = 1;
const MAX_URL_LENGTH = 2048;

/** kafkajs's RoundRobinAssigner (not co-partitioned: kept for comparison in tests only). */
export const roundRobinAssigner: PartitionAssigner = kafkajs.PartitionAssigners.roundRobin;

/**
 * Partition p of every topic to member p mod n (members sorted by id): the assignment without
 * owner URLs, listed after the owner assigner so members without an advertised URL still share
 * a group with the others (and get the same balance).
 */
export const coPartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: CO_PARTITIONED_ASSIGNER_NAME,
  version: VERSION,
  async assign({ members, topics }) {
    const byTopic = [...topics].sort().map((topic) => ({ topic, partitions: cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId) }));
    return assignCoPartitioned(members, byTopic, false);
  },
  protocol({ topics }) {
    return { name: CO_PARTITIONED_ASSIGNER_NAME, metadata: AssignerProtocol.MemberMetadata.encode({ version: VERSION, topics, userData: Buffer.alloc(0) }) };
  },
});

/** What one assignment tells a member about the group. */
export interface OwnersUpdate {
  /** Partition -> advertised URL of its owner; a partition whose owner is unknown is absent. */
  owners: Map<number, string>;
  /** The topic the owners are of, when known. */
  topic: string | undefined;
  /** The topic's partition count in the leader's metadata at the assignment, when known. */
  partitions: number | undefined;
  /** The group generation of the assignment, when known. */
  generationId: number | undefined;
  /** The partitions this member keeps a standby store of (v3), sorted; empty otherwise. */
  standby: number[];
}

export interface OwnerTable {
  topic?: string;
  partitions?: number;
  owners: Map<number, string>;
  /** This member's standby partitions (v3 assignments only). */
  standby?: number[];
}

/** What a member tells the leader about its state (v3 subscription userData). */
export interface StoreReport {
  /** Partitions it owns now (kept there when the balance allows: no move, no restore). */
  active: readonly number[];
  /** Partition -> changelog offset its local store reflects (an open task's or standby's, or a closed store's last known). */
  stores: ReadonlyMap<number, number>;
}

/** A member as the leader reads it from its subscription: what could not be read is left out. */
export interface MemberState {
  url: string | undefined;
  active: Set<number>;
  stores: Map<number, number>;
}

// ---------------------------------------------------------------------------------------------
// userData encodings (pure)

/** A member's subscription userData: its advertised URL, and with a report its owned partitions and stores (v3). */
export function encodeSubscriptionUserData(url: string, report?: StoreReport): Buffer {
  if (!report) return Buffer.from(JSON.stringify({ url }));
  return Buffer.from(JSON.stringify({ url, active: [...report.active], stores: Object.fromEntries([...report.stores].map(([p, o]) => [String(p), o])) }));
}

/** URL, owned partitions and stores of a subscription's userData; never throws (unreadable parts are left out). */
export function decodeMemberState(userData: Buffer | null | undefined): MemberState {
  const v = parseJson(userData);
  const out: MemberState = { url: undefined, active: new Set(), stores: new Map() };
  if (!isObject(v)) return out;
  if (isUrl(v.url)) out.url = v.url;
  if (Array.isArray(v.active)) for (const p of v.active) if (isPartition(p)) out.active.add(p);
  if (isObject(v.stores)) {
    for (const [k, o] of Object.entries(v.stores)) {
      const p = Number(k);
      if (isPartition(p) && String(p) === k && Number.isSafeInteger(o) && (o as number) >= 0) out.stores.set(p, o as number);
    }
  }
  return out;
}

/** A group member's state from its metadata (as the leader receives it); a cold member without URL when unreadable. */
export function memberState(memberMetadata: Buffer | null | undefined): MemberState {
  if (!memberMetadata || memberMetadata.length === 0) return { url: undefined, active: new Set(), stores: new Map() };
  try {
    return decodeMemberState(AssignerProtocol.MemberMetadata.decode(memberMetadata)?.userData);
  } catch {
    return { url: undefined, active: new Set(), stores: new Map() };
  }
}

/** The advertised URL in a subscription's userData; undefined when missing or unreadable. */
export function decodeSubscriptionUserData(userData: Buffer | null | undefined): string | undefined {
  const v = parseJson(userData);
  const url = isObject(v) ? v.url : undefined;
  return isUrl(url) ? url : undefined;
}

/** The advertised URL in a group member's metadata (as the leader receives it); undefined when unreadable. */
export function memberUrl(memberMetadata: Buffer | null | undefined): string | undefined {
  if (!memberMetadata || memberMetadata.length === 0) return undefined;
  try {
    return decodeSubscriptionUserData(AssignerProtocol.MemberMetadata.decode(memberMetadata)?.userData);
  } catch {
    return undefined;
  }
}

/** An assignment's userData: the full owner table (and the member's standby partitions, v3). */
export function encodeOwnersUserData(table: OwnerTable): Buffer {
  const urls: string[] = [];
  const index = new Map<string, number>();
  let size = table.partitions ?? 0;
  for (const p of table.owners.keys()) size = Math.max(size, p + 1);
  const owners = new Array<number>(size).fill(-1);
  for (const [p, url] of table.owners) {
    let i = index.get(url);
    if (i === undefined) {
      i = urls.push(url) - 1;
      index.set(url, i);
    }
    owners[p] = i;
  }
  return Buffer.from(JSON.stringify({ topic: table.topic, partitions: table.partitions, urls, owners, ...(table.standby ? { standby: table.standby } : {}) }));
}

/** The owner table in an assignment's userData; never throws (unreadable parts are left out). */
export function decodeOwnersUserData(userData: Buffer | null | undefined): OwnerTable {
  const out: OwnerTable = { owners: new Map() };
  const v = parseJson(userData);
  if (!isObject(v)) return out;
  if (typeof v.topic === 'string' && v.topic !== '') out.topic = v.topic;
  if (Number.isSafeInteger(v.partitions) && (v.partitions as number) > 0) out.partitions = v.partitions as number;
  const urls = Array.isArray(v.urls) ? v.urls : [];
  if (Array.isArray(v.owners)) {
    v.owners.forEach((i: unknown, p: number) => {
      const url = Number.isSafeInteger(i) ? urls[i as number] : undefined;
      if (isUrl(url)) out.owners.set(p, url);
    });
  }
  if (Array.isArray(v.standby)) out.standby = [...new Set(v.standby.filter(isPartition))].sort((a, b) => a - b);
  return out;
}

/** The owner table in a member's assignment (the MemberAssignment bytes); never throws. */
export function decodeAssignmentOwners(memberAssignment: Buffer | null | undefined): OwnerTable {
  if (!memberAssignment || memberAssignment.length === 0) return { owners: new Map() };
  try {
    return decodeOwnersUserData(AssignerProtocol.MemberAssignment.decode(memberAssignment)?.userData);
  } catch {
    return { owners: new Map() };
  }
}

// ---------------------------------------------------------------------------------------------
// the leader's assignment (pure)

/**
 * Co-partitioned (members sorted by id; partition p of every topic to member p mod n), and every
 * member's assignment carries the owner table of the first topic (topics sorted by name). Every
 * member gets an assignment, possibly empty.
 */
export function assignWithOwners(members: readonly GroupMember[], topics: readonly { topic: string; partitions: readonly number[] }[]): GroupMemberAssignment[] {
  return assignCoPartitioned(members, topics, true);
}

/** Partition p of every topic to member p mod n (members sorted by id); with the owner table when `withOwners`. */
export function assignCoPartitioned(
  members: readonly GroupMember[],
  topics: readonly { topic: string; partitions: readonly number[] }[],
  withOwners: boolean,
): GroupMemberAssignment[] {
  const ids = [...new Set(members.map((m) => m.memberId))].sort();
  if (ids.length === 0) return [];
  const urls = new Map<string, string | undefined>();
  for (const m of members) urls.set(m.memberId, memberUrl(m.memberMetadata));
  const assignment = new Map<string, Record<string, number[]>>(ids.map((id) => [id, Object.create(null) as Record<string, number[]>]));
  const first = topics[0];
  const owners = new Map<number, string>();
  for (const { topic, partitions } of topics) {
    for (const p of [...partitions].sort((a, b) => a - b)) {
      const id = ids[p % ids.length]!;
      const a = assignment.get(id)!;
      (a[topic] ??= []).push(p);
      const url = urls.get(id);
      if (topic === first?.topic && url !== undefined) owners.set(p, url);
    }
  }
  const userData = withOwners ? encodeOwnersUserData({ topic: first?.topic, partitions: first?.partitions.length, owners }) : Buffer.alloc(0);
  return ids.map((memberId) => ({
    memberId,
    memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: VERSION, assignment: assignment.get(memberId)!, userData }),
  }));
}

/** Where each partition goes: its owner (member id) and its standby members. */
export interface AssignmentPlan {
  owner: Map<number, string>;
  /** Partition -> standby member ids (never the owner). */
  standby: Map<number, string[]>;
}

/**
 * The v3 placement (pure). Every member ends with floor(P/n) or ceil(P/n) partitions; within that:
 * 1. a partition stays with the member that owns it now (no move, no restore);
 * 2. else it goes to the member whose store of it is warmest (highest checkpoint, i.e. the smallest
 *    lag behind the changelog's end: a standby), so the new owner replays only the tail;
 * 3. else to member p mod n (a fresh group gets v2's p mod n), or the least loaded one.
 * Standbys: min(standbyReplicas, n - 1) members per partition, never its owner, preferring members
 * that hold the fewest standbys of the same owner (so an owner's partitions spread over the others
 * and a dead owner's load spreads too), then a warm store, then the fewest standbys overall; no
 * member gets more than ceil(P * k / n) unless nothing else is possible.
 */
export function planAssignment(ids: readonly string[], partitions: readonly number[], states: ReadonlyMap<string, MemberState>, standbyReplicas: number): AssignmentPlan {
  const members = [...new Set(ids)].sort();
  const ps = [...new Set(partitions)].sort((a, b) => a - b);
  const owner = new Map<number, string>();
  const standby = new Map<number, string[]>();
  const n = members.length;
  if (n === 0) return { owner, standby };
  const base = Math.floor(ps.length / n);
  let extra = ps.length % n;
  const load = new Map(members.map((m) => [m, 0]));
  const take = (p: number, m: string): boolean => {
    const l = load.get(m)!;
    if (l < base) {
      // below floor: always
    } else if (l === base && extra > 0) extra--;
    else return false;
    load.set(m, l + 1);
    owner.set(p, m);
    return true;
  };
  const checkpoint = (m: string, p: number) => states.get(m)?.stores.get(p);
  // 1. sticky
  for (const p of ps) {
    const current = members.find((m) => states.get(m)?.active.has(p));
    if (current !== undefined) take(p, current);
  }
  // 2. warm: the highest checkpoint first (ties by member id)
  for (const p of ps) {
    if (owner.has(p)) continue;
    const warm = members.filter((m) => checkpoint(m, p) !== undefined).sort((a, b) => checkpoint(b, p)! - checkpoint(a, p)! || (a < b ? -1 : 1));
    for (const m of warm) if (take(p, m)) break;
  }
  // 3. cold
  for (const p of ps) {
    if (owner.has(p)) continue;
    if (take(p, members[p % n]!)) continue;
    const byLoad = [...members].sort((a, b) => load.get(a)! - load.get(b)! || (a < b ? -1 : 1));
    for (const m of byLoad) if (take(p, m)) break;
  }

  const k = Math.max(0, Math.min(Math.floor(standbyReplicas), n - 1));
  if (k === 0) return { owner, standby };
  const cap = Math.ceil((ps.length * k) / n);
  const standbyLoad = new Map(members.map((m) => [m, 0]));
  /** owner -> standby member -> how many of the owner's partitions it stands by for. */
  const pairs = new Map<string, Map<string, number>>();
  for (const p of ps) {
    const o = owner.get(p)!;
    const pair = pairs.get(o) ?? new Map<string, number>();
    pairs.set(o, pair);
    const chosen: string[] = [];
    for (let r = 0; r < k; r++) {
      const candidates = members.filter((m) => m !== o && !chosen.includes(m));
      const within = candidates.filter((m) => standbyLoad.get(m)! < cap);
      const pool = within.length > 0 ? within : candidates;
      // rotation: ties go round the members from the owner on, not always to the first id
      const rot = (m: string) => (members.indexOf(m) - members.indexOf(o) + n) % n;
      pool.sort(
        (a, b) =>
          (pair.get(a) ?? 0) - (pair.get(b) ?? 0) ||
          (checkpoint(b, p) ?? -1) - (checkpoint(a, p) ?? -1) ||
          standbyLoad.get(a)! - standbyLoad.get(b)! ||
          rot(a) - rot(b),
      );
      const m = pool[0];
      if (m === undefined) break;
      chosen.push(m);
      standbyLoad.set(m, standbyLoad.get(m)! + 1);
      pair.set(m, (pair.get(m) ?? 0) + 1);
    }
    standby.set(p, chosen);
  }
  return { owner, standby };
}

/**
 * The v3 assignment: `planAssignment` over the first topic's partitions (topics sorted by name),
 * partition p of every topic to p's owner (co-partitioned), and in each member's userData the
 * owner table and its own standby partitions.
 */
export function assignWithStandbys(
  members: readonly GroupMember[],
  topics: readonly { topic: string; partitions: readonly number[] }[],
  standbyReplicas: number,
): GroupMemberAssignment[] {
  const ids = [...new Set(members.map((m) => m.memberId))].sort();
  if (ids.length === 0) return [];
  const states = new Map<string, MemberState>();
  for (const m of members) states.set(m.memberId, memberState(m.memberMetadata));
  const first = topics[0];
  const all = [...new Set(topics.flatMap((t) => t.partitions))];
  const plan = planAssignment(ids, all, states, standbyReplicas);
  const assignment = new Map<string, Record<string, number[]>>(ids.map((id) => [id, Object.create(null) as Record<string, number[]>]));
  for (const { topic, partitions } of topics) {
    for (const p of [...partitions].sort((a, b) => a - b)) (assignment.get(plan.owner.get(p)!)![topic] ??= []).push(p);
  }
  const owners = new Map<number, string>();
  for (const p of first?.partitions ?? []) {
    const url = states.get(plan.owner.get(p)!)?.url;
    if (url !== undefined) owners.set(p, url);
  }
  const standbyOf = new Map<string, number[]>(ids.map((id) => [id, []]));
  for (const [p, ms] of [...plan.standby].sort((a, b) => a[0] - b[0])) for (const m of ms) standbyOf.get(m)!.push(p);
  return ids.map((memberId) => ({
    memberId,
    memberAssignment: AssignerProtocol.MemberAssignment.encode({
      version: VERSION,
      assignment: assignment.get(memberId)!,
      userData: encodeOwnersUserData({ topic: first?.topic, partitions: first?.partitions.length, owners, standby: standbyOf.get(memberId)! }),
    }),
  }));
}

// ---------------------------------------------------------------------------------------------
// the kafkajs assigner

export interface OwnerAssignerOptions {
  /** Standby members per partition the leader assigns (v3); the effective count is min(this, members - 1). */
  standbyReplicas?: number;
  /** This member's owned partitions and local stores, read at each join (v3 subscription). */
  report?: () => StoreReport;
}

/**
 * The owner assigner of a member advertising `url` (protocol v3). `onOwners` is called with the
 * owner table of every assignment this member receives (an empty one when the group chose another
 * protocol, or the table was unreadable), before kafkajs reports the assignment (GROUP_JOIN).
 */
export function createOwnerAssigner(url: string, onOwners: (owners: Map<number, string>, update: OwnersUpdate) => void, options: OwnerAssignerOptions = {}): PartitionAssigner {
  return createOwnerAssigners(url, onOwners, options)[0]!;
}

/**
 * v3 and v2 (in that order of preference) for one consumer, sharing one SyncGroup tap: whichever
 * protocol the group chose, `onOwners` hears each assignment once.
 */
export function createOwnerAssigners(url: string, onOwners: (owners: Map<number, string>, update: OwnersUpdate) => void, options: OwnerAssignerOptions = {}): PartitionAssigner[] {
  if (!isUrl(url)) throw new TypeError(`createOwnerAssigner: the advertised URL must be an http(s) URL, got ${JSON.stringify(url)}`);
  const plain = encodeSubscriptionUserData(url);
  const deliver = (table: OwnerTable, generationId: number | undefined) =>
    onOwners(table.owners, { owners: table.owners, topic: table.topic, partitions: table.partitions, generationId, standby: table.standby ?? [] });
  const tapped = new WeakMap<object, boolean>();
  const tapOnce = (cluster: Cluster, groupId: string, logger: { warn: (m: string, e?: object) => void }): boolean => {
    let t = tapped.get(cluster);
    if (t === undefined) {
      t = tapSyncGroup(cluster, groupId, (memberAssignment, generationId) => {
        try {
          deliver(decodeAssignmentOwners(memberAssignment), generationId);
        } catch (err) {
          logger.warn('the owners callback failed', { error: String(err) });
        }
      });
      tapped.set(cluster, t);
      if (!t) logger.warn('cannot read SyncGroup responses: only the group leader will know the partition owners', { groupId });
    }
    return t;
  };
  const make =
    (name: string, v3: boolean): PartitionAssigner =>
    ({ cluster, groupId, logger }) => {
      const isTapped = tapOnce(cluster, groupId, logger);
      return {
        name,
        version: VERSION,
        async assign({ members, topics }) {
          const byTopic = [...topics].sort().map((topic) => ({ topic, partitions: cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId) }));
          const result = v3 ? assignWithStandbys(members, byTopic, options.standbyReplicas ?? 0) : assignWithOwners(members, byTopic);
          // Without the tap only the leader learns, and not which member it is: the owner table only.
          if (!isTapped && result[0]) deliver({ ...decodeAssignmentOwners(result[0].memberAssignment), standby: [] }, undefined);
          return result;
        },
        protocol({ topics }) {
          let userData = plain;
          if (v3 && options.report) {
            try {
              userData = encodeSubscriptionUserData(url, options.report());
            } catch (err) {
              // A report that fails makes this member look cold, never unable to join.
              logger.warn('reading the local stores for the subscription failed', { error: String(err) });
            }
          }
          return { name, metadata: AssignerProtocol.MemberMetadata.encode({ version: VERSION, topics, userData }) };
        },
      } satisfies Assigner;
    };
  return [make(OWNER_ASSIGNER_NAME, true), make(OWNER_ASSIGNER_V2_NAME, false)];
}

type SyncGroup = (request: { groupId: string; generationId: number; memberId: string; groupAssignment: unknown }) => Promise<{ memberAssignment?: Buffer }>;
type SyncListener = (memberAssignment: Buffer | undefined, generationId: number | undefined) => void;

/** Per cluster object: group id -> listeners of that group's SyncGroup responses. */
const listeners = new WeakMap<object, Map<string, Set<SyncListener>>>();
const wrappedBrokers = new WeakSet<object>();

/**
 * Calls `listener` with every successful SyncGroup response of `groupId` made through `cluster`'s
 * group coordinator. False when the cluster object does not have the expected shape.
 */
function tapSyncGroup(cluster: Cluster, groupId: string, listener: SyncListener): boolean {
  const c = cluster as Cluster & Record<string, unknown>;
  if (typeof c.findGroupCoordinator !== 'function') return false;
  let groups = listeners.get(c);
  if (!groups) {
    const byGroup = new Map<string, Set<SyncListener>>();
    groups = byGroup;
    listeners.set(c, byGroup);
    const find = c.findGroupCoordinator.bind(c);
    c.findGroupCoordinator = async (...args: Parameters<Cluster['findGroupCoordinator']>) => {
      const broker = (await find(...args)) as Broker & { syncGroup?: SyncGroup };
      const sync = broker.syncGroup;
      if (typeof sync === 'function' && !wrappedBrokers.has(broker)) {
        wrappedBrokers.add(broker);
        broker.syncGroup = async (request) => {
          const response = await sync.call(broker, request);
          for (const l of byGroup.get(request.groupId) ?? []) {
            try {
              l(response?.memberAssignment, request.generationId);
            } catch {
              // a listener's failure is its own
            }
          }
          return response;
        };
      }
      return broker;
    };
  }
  let set = groups.get(groupId);
  if (!set) groups.set(groupId, (set = new Set()));
  set.add(listener);
  return true;
}

// ---------------------------------------------------------------------------------------------

function parseJson(userData: Buffer | null | undefined): unknown {
  if (!userData || userData.length === 0) return undefined;
  try {
    return JSON.parse(userData.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPartition(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 1_000_000;
}

function isUrl(v: unknown): v is string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_URL_LENGTH) return false;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
