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
 * Undecodable userData never throws: a member without a readable URL owns its partitions with an
 * unknown address, and an unreadable owner table is an empty one (every owner unknown).
 */
import kafkajs from 'kafkajs';
import { AssignerProtocol, type Assigner, type Broker, type Cluster, type GroupMember, type GroupMemberAssignment, type PartitionAssigner } from './kafkajs.js';

/**
 * The group protocol name of the owner assigner. v2: co-partitioned (v1 was round robin over all
 * topics' partitions in a row, which splits partition p of two topics between members): members of
 * the two versions share no protocol, so a group never mixes them (upgrade all instances at once).
 */
export const OWNER_ASSIGNER_NAME = 'streamrec-v2';
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
}

export interface OwnerTable {
  topic?: string;
  partitions?: number;
  owners: Map<number, string>;
}

// ---------------------------------------------------------------------------------------------
// userData encodings (pure)

/** A member's subscription userData: its advertised URL. */
export function encodeSubscriptionUserData(url: string): Buffer {
  return Buffer.from(JSON.stringify({ url }));
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

/** An assignment's userData: the full owner table. */
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
  return Buffer.from(JSON.stringify({ topic: table.topic, partitions: table.partitions, urls, owners }));
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

// ---------------------------------------------------------------------------------------------
// the kafkajs assigner

/**
 * The owner assigner of a member advertising `url`. `onOwners` is called with the owner table of
 * every assignment this member receives (an empty one when the group chose another protocol, or
 * the table was unreadable), before kafkajs reports the assignment (GROUP_JOIN).
 */
export function createOwnerAssigner(url: string, onOwners: (owners: Map<number, string>, update: OwnersUpdate) => void): PartitionAssigner {
  if (!isUrl(url)) throw new TypeError(`createOwnerAssigner: the advertised URL must be an http(s) URL, got ${JSON.stringify(url)}`);
  const subscription = encodeSubscriptionUserData(url);
  const deliver = (table: OwnerTable, generationId: number | undefined) =>
    onOwners(table.owners, { owners: table.owners, topic: table.topic, partitions: table.partitions, generationId });
  return ({ cluster, groupId, logger }) => {
    const tapped = tapSyncGroup(cluster, groupId, (memberAssignment, generationId) => {
      try {
        deliver(decodeAssignmentOwners(memberAssignment), generationId);
      } catch (err) {
        logger.warn('the owners callback failed', { error: String(err) });
      }
    });
    if (!tapped) logger.warn('cannot read SyncGroup responses: only the group leader will know the partition owners', { groupId });
    const assigner: Assigner = {
      name: OWNER_ASSIGNER_NAME,
      version: VERSION,
      async assign({ members, topics }) {
        const byTopic = [...topics].sort().map((topic) => ({ topic, partitions: cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId) }));
        const result = assignWithOwners(members, byTopic);
        if (!tapped && result[0]) deliver(decodeAssignmentOwners(result[0].memberAssignment), undefined);
        return result;
      },
      protocol({ topics }) {
        return { name: OWNER_ASSIGNER_NAME, metadata: AssignerProtocol.MemberMetadata.encode({ version: VERSION, topics, userData: subscription }) };
      },
    };
    return assigner;
  };
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

function isUrl(v: unknown): v is string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_URL_LENGTH) return false;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
