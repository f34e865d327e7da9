import { describe, expect, it, vi } from 'vitest';
import {
  assignCoPartitioned,
  assignWithOwners,
  CO_PARTITIONED_ASSIGNER_NAME,
  coPartitionedAssigner,
  createOwnerAssigner,
  decodeAssignmentOwners,
  decodeOwnersUserData,
  decodeSubscriptionUserData,
  encodeOwnersUserData,
  encodeSubscriptionUserData,
  memberUrl,
  OWNER_ASSIGNER_NAME,
  roundRobinAssigner,
  type OwnersUpdate,
} from '../../src/kafka/assigner.js';
import { AssignerProtocol, type Cluster, type GroupMember, type Logger, type PartitionMetadata } from '../../src/kafka/kafkajs.js';
import { partitionOf } from '../../src/kafka/partition.js';

const TOPIC = 'shop.interactions';
const logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, namespace: () => logger, setLogLevel: () => {} } as unknown as Logger;

const meta = (n: number): PartitionMetadata[] => Array.from({ length: n }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));

/** A cluster with one topic of `n` partitions and a coordinator whose syncGroup answers from `answers`. */
function fakeCluster(n: number, answers = new Map<string, Buffer>()) {
  const broker = {
    async syncGroup(req: { memberId: string }) {
      return { memberAssignment: answers.get(req.memberId) ?? Buffer.alloc(0) };
    },
  };
  const cluster = {
    findTopicPartitionMetadata: (topic: string) => (topic === TOPIC ? meta(n) : []),
    findGroupCoordinator: async () => broker,
  } as unknown as Cluster;
  return { cluster, broker };
}

const member = (memberId: string, url: string | undefined, userData?: Buffer): GroupMember => ({
  memberId,
  memberMetadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics: [TOPIC], userData: userData ?? (url ? encodeSubscriptionUserData(url) : Buffer.alloc(0)) }),
});

function decode(a: { memberAssignment: Buffer }) {
  const d = AssignerProtocol.MemberAssignment.decode(a.memberAssignment)!;
  return { partitions: d.assignment[TOPIC] ?? [], table: decodeOwnersUserData(d.userData) };
}

describe('userData encodings', () => {
  it('round-trips a subscription URL and an owner table', () => {
    expect(decodeSubscriptionUserData(encodeSubscriptionUserData('http://a:1'))).toBe('http://a:1');
    expect(memberUrl(member('m', 'https://b.example:8443/api').memberMetadata)).toBe('https://b.example:8443/api');
    const owners = new Map([
      [0, 'http://a:1'],
      [1, 'http://b:2'],
      [3, 'http://a:1'],
    ]);
    const table = decodeOwnersUserData(encodeOwnersUserData({ topic: TOPIC, partitions: 5, owners }));
    expect(table).toEqual({ topic: TOPIC, partitions: 5, owners });
  });

  it('treats bad userData as unknown, never throwing', () => {
    const bad = [undefined, null, Buffer.alloc(0), Buffer.from('not json'), Buffer.from('[1,2]'), Buffer.from('{"url":7}'), Buffer.from('{"url":"ftp://x"}'), Buffer.from('{"url":"::"}'), Buffer.from([0xff, 0xfe, 0x00])];
    for (const b of bad) {
      expect(decodeSubscriptionUserData(b)).toBeUndefined();
      expect(decodeOwnersUserData(b).owners.size).toBe(0);
    }
    // Partly bad tables: only the readable entries are kept.
    const partial = decodeOwnersUserData(Buffer.from(JSON.stringify({ topic: 5, partitions: -1, urls: ['http://a:1', 12, 'nope'], owners: [0, 1, 2, -1, 9, 'x', 0] })));
    expect(partial).toEqual({ owners: new Map([[0, 'http://a:1'], [6, 'http://a:1']]) });
    expect(decodeOwnersUserData(Buffer.from('{"owners":{"0":"http://a:1"}}')).owners.size).toBe(0);
    // Truncated or garbage protocol bytes.
    expect(memberUrl(Buffer.from([0, 1, 0, 0]))).toBeUndefined();
    expect(memberUrl(member('m', 'http://a:1').memberMetadata.subarray(0, 9))).toBeUndefined();
    expect(decodeAssignmentOwners(Buffer.from([0, 1, 0, 0, 0, 9, 1])).owners.size).toBe(0);
    expect(decodeAssignmentOwners(undefined).owners.size).toBe(0);
  });

  it('rejects a URL that is not http(s) when the assigner is made', () => {
    expect(() => createOwnerAssigner('not a url', () => {})).toThrow(TypeError);
    expect(() => createOwnerAssigner('', () => {})).toThrow(TypeError);
  });
});

describe('the leader assignment', () => {
  for (const members of [2, 3]) {
    for (const partitions of [3, 4, 5, 6]) {
      it(`${members} members x ${partitions} partitions: each partition once, balanced as RoundRobin, the full owner table for everyone`, async () => {
        const ms = Array.from({ length: members }, (_, i) => member(`member-${(members - i) * 7}`, `http://m${i}:${8000 + i}`));
        const urlOf = new Map(ms.map((m, i) => [m.memberId, `http://m${i}:${8000 + i}`]));
        const { cluster } = fakeCluster(partitions);
        const assigner = createOwnerAssigner('http://self:1', () => {})({ cluster, groupId: 'g', logger });
        const result = await assigner.assign({ members: ms, topics: [TOPIC] });
        expect(result.map((r) => r.memberId).sort()).toEqual(ms.map((m) => m.memberId).sort());

        const owner = new Map<number, string>();
        for (const r of result) {
          const { partitions: ps } = decode(r);
          for (const p of ps) {
            expect(owner.has(p)).toBe(false);
            owner.set(p, urlOf.get(r.memberId)!);
          }
          expect(ps.length === Math.floor(partitions / members) || ps.length === Math.ceil(partitions / members)).toBe(true);
        }
        expect([...owner.keys()].sort((a, b) => a - b)).toEqual([...Array(partitions).keys()]);
        // No standby asked for (createOwnerAssigner's default is 0): every standby list is empty.
        for (const r of result) expect(decode(r).table).toEqual({ topic: TOPIC, partitions, owners: owner, standby: [] });

        // The same partitions per member as kafkajs's RoundRobinAssigner.
        const rr = await roundRobinAssigner({ cluster, groupId: 'g', logger }).assign({ members: ms, topics: [TOPIC] });
        const rrBy = new Map(rr.map((r) => [r.memberId, decode(r).partitions]));
        for (const r of result) expect(decode(r).partitions).toEqual(rrBy.get(r.memberId) ?? []);
      });
    }
  }

  it('a member with unreadable metadata still gets partitions, with an unknown owner', () => {
    const result = assignWithOwners([member('a', 'http://a:1'), member('b', undefined, Buffer.from('{{{'))], [{ topic: TOPIC, partitions: [3, 2, 1, 0] }]);
    const a = decode(result.find((r) => r.memberId === 'a')!);
    const b = decode(result.find((r) => r.memberId === 'b')!);
    expect(a.partitions).toEqual([0, 2]);
    expect(b.partitions).toEqual([1, 3]);
    expect(b.table.owners).toEqual(new Map([[0, 'http://a:1'], [2, 'http://a:1']]));
  });

  it('co-partitions: partition p of every topic goes to one member (kafkajs round robin would split them)', async () => {
    const REPARTITION = `${TOPIC}-repartition`;
    const topics = [
      { topic: TOPIC, partitions: [0, 1, 2, 3, 4] },
      { topic: REPARTITION, partitions: [4, 3, 2, 1, 0] },
    ];
    for (const n of [1, 2, 3, 4, 7]) {
      const ms = Array.from({ length: n }, (_, i) => member(`m${i}`, `http://m${i}:1`));
      for (const result of [assignWithOwners(ms, topics), assignCoPartitioned(ms, topics, false)]) {
        const owner = new Map<string, string>();
        for (const r of result) {
          const a = AssignerProtocol.MemberAssignment.decode(r.memberAssignment)!.assignment;
          for (const [topic, ps] of Object.entries(a)) for (const p of ps) owner.set(`${topic}:${p}`, r.memberId);
        }
        expect(owner.size).toBe(10);
        for (let p = 0; p < 5; p++) expect(owner.get(`${REPARTITION}:${p}`), `n=${n} p=${p}`).toBe(owner.get(`${TOPIC}:${p}`));
      }
    }
    // kafkajs's RoundRobinAssigner over the same two topics does split them: why it is not used.
    const cluster = { findTopicPartitionMetadata: (t: string) => meta(t === TOPIC || t === REPARTITION ? 5 : 0) } as unknown as Cluster;
    const ms = [member('a', undefined), member('b', undefined)];
    const rr = await roundRobinAssigner({ cluster, groupId: 'g', logger }).assign({ members: ms, topics: [TOPIC, REPARTITION] });
    const a = AssignerProtocol.MemberAssignment.decode(rr.find((r) => r.memberId === 'a')!.memberAssignment)!.assignment;
    expect(a[TOPIC]).not.toEqual(a[REPARTITION]);
    // The fallback assigner without URLs: same partitions, no owner table.
    const fallback = await coPartitionedAssigner({ cluster, groupId: 'g', logger }).assign({ members: ms, topics: [REPARTITION, TOPIC] });
    for (const r of fallback) {
      const d = AssignerProtocol.MemberAssignment.decode(r.memberAssignment)!;
      expect(d.assignment[TOPIC]).toEqual(d.assignment[REPARTITION]);
      expect(d.userData.length).toBe(0);
    }
    expect(coPartitionedAssigner({ cluster, groupId: 'g', logger }).name).toBe(CO_PARTITIONED_ASSIGNER_NAME);
  });

  it('more members than partitions: the extra members get an empty assignment with the table', () => {
    const result = assignWithOwners([member('a', 'http://a:1'), member('b', 'http://b:2'), member('c', 'http://c:3')], [{ topic: TOPIC, partitions: [0, 1] }]);
    expect(result).toHaveLength(3);
    const c = decode(result.find((r) => r.memberId === 'c')!);
    expect(c.partitions).toEqual([]);
    expect(c.table.owners).toEqual(new Map([[0, 'http://a:1'], [1, 'http://b:2']]));
  });
});

describe('createOwnerAssigner', () => {
  it('advertises its URL in the subscription under the streamrec-v3 protocol', () => {
    const { cluster } = fakeCluster(3);
    const assigner = createOwnerAssigner('http://a:1', () => {})({ cluster, groupId: 'g', logger });
    const state = assigner.protocol({ topics: [TOPIC] });
    expect(state.name).toBe(OWNER_ASSIGNER_NAME);
    expect(assigner.name).toBe('streamrec-v3');
    const m = AssignerProtocol.MemberMetadata.decode(state.metadata)!;
    expect(m.topics).toEqual([TOPIC]);
    expect(decodeSubscriptionUserData(m.userData)).toBe('http://a:1');
  });

  it('reports the owner table of each SyncGroup response of its group, with the generation', async () => {
    const answers = new Map<string, Buffer>();
    const { cluster } = fakeCluster(4, answers);
    const onOwners = vi.fn<(owners: Map<number, string>, update: OwnersUpdate) => void>();
    const assigner = createOwnerAssigner('http://a:1', onOwners)({ cluster, groupId: 'g', logger });
    const result = await assigner.assign({ members: [member('x', 'http://a:1'), member('y', 'http://b:2')], topics: [TOPIC] });
    expect(onOwners).not.toHaveBeenCalled(); // the leader learns from its own SyncGroup response too
    for (const r of result) answers.set(r.memberId, r.memberAssignment);

    const coordinator = (await cluster.findGroupCoordinator({ groupId: 'g' })) as unknown as { syncGroup(r: object): Promise<{ memberAssignment: Buffer }> };
    const response = await coordinator.syncGroup({ groupId: 'g', generationId: 7, memberId: 'y', groupAssignment: [] });
    expect(response.memberAssignment).toBe(answers.get('y')); // passed through unchanged
    const owners = new Map([[0, 'http://a:1'], [1, 'http://b:2'], [2, 'http://a:1'], [3, 'http://b:2']]);
    expect(onOwners).toHaveBeenCalledTimes(1);
    expect(onOwners.mock.calls[0]![0]).toEqual(owners);
    expect(onOwners.mock.calls[0]![1]).toEqual({ owners, topic: TOPIC, partitions: 4, generationId: 7, standby: [] });

    // Another group's sync is not ours; an assignment without a table (another protocol) empties it.
    await coordinator.syncGroup({ groupId: 'other', generationId: 8, memberId: 'y', groupAssignment: [] });
    expect(onOwners).toHaveBeenCalledTimes(1);
    answers.set('y', AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: { [TOPIC]: [1] }, userData: Buffer.alloc(0) }));
    await coordinator.syncGroup({ groupId: 'g', generationId: 9, memberId: 'y', groupAssignment: [] });
    expect(onOwners.mock.calls[1]![1]).toEqual({ owners: new Map(), topic: undefined, partitions: undefined, generationId: 9, standby: [] });
  });
});

describe('partitionOf', () => {
  // Kafka's UtilsTest.testMurmur2 vectors: the Java client puts a key in (h & 0x7fffffff) % n.
  const java: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  it("agrees with the Java client's murmur2 partition", () => {
    for (const [key, h] of java) {
      for (const n of [1, 3, 4, 7, 12, 50, 1000]) expect(partitionOf(key, n)).toBe((h & 0x7fffffff) % n);
    }
    expect(partitionOf('foobar', 50)).toBe(16);
  });

  it('is in range and rejects a bad partition count', () => {
    for (let i = 0; i < 200; i++) {
      const p = partitionOf(`user-${i}`, 6);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(6);
    }
    expect(() => partitionOf('u', 0)).toThrow(RangeError);
    expect(() => partitionOf('u', 2.5)).toThrow(RangeError);
  });
});
