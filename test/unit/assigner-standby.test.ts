/**
 * The v3 owner assignment (src/kafka/assigner.ts): placement that keeps owners, prefers warm stores
 * for partitions that must move, and standby replicas spread over the members, never on the owner.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  assignWithStandbys,
  createOwnerAssigners,
  decodeMemberState,
  decodeOwnersUserData,
  encodeSubscriptionUserData,
  memberState,
  OWNER_ASSIGNER_NAME,
  OWNER_ASSIGNER_V2_NAME,
  planAssignment,
  type MemberState,
  type OwnersUpdate,
} from '../../src/kafka/assigner.js';
import { AssignerProtocol, type Cluster, type GroupMember, type Logger, type PartitionMetadata } from '../../src/kafka/kafkajs.js';

const TOPIC = 'shop.interactions';
const logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, namespace: () => logger, setLogLevel: () => {} } as unknown as Logger;
const range = (n: number) => [...Array(n).keys()];
const state = (active: number[] = [], stores: [number, number][] = [], url?: string): MemberState => ({ url, active: new Set(active), stores: new Map(stores) });

function member(memberId: string, userData: Buffer): GroupMember {
  return { memberId, memberMetadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics: [TOPIC], userData }) };
}

function decode(a: { memberAssignment: Buffer }) {
  const d = AssignerProtocol.MemberAssignment.decode(a.memberAssignment)!;
  return { partitions: d.assignment[TOPIC] ?? [], table: decodeOwnersUserData(d.userData) };
}

/** Checks the invariants of a plan and returns owner -> partitions and member -> standby partitions. */
function checkPlan(ids: string[], partitions: number, plan: ReturnType<typeof planAssignment>, k: number) {
  const owned = new Map(ids.map((id) => [id, [] as number[]]));
  const standing = new Map(ids.map((id) => [id, [] as number[]]));
  for (const p of range(partitions)) {
    const o = plan.owner.get(p);
    expect(o, `partition ${p} has an owner`).toBeDefined();
    owned.get(o!)!.push(p);
    const sb = plan.standby.get(p) ?? [];
    expect(sb).toHaveLength(Math.min(k, ids.length - 1));
    expect(sb, `partition ${p}: a standby is never its owner`).not.toContain(o);
    expect(new Set(sb).size).toBe(sb.length);
    for (const m of sb) standing.get(m)!.push(p);
  }
  for (const ps of owned.values()) expect([Math.floor(partitions / ids.length), Math.ceil(partitions / ids.length)]).toContain(ps.length);
  return { owned, standing };
}

describe('planAssignment', () => {
  it('a fresh group: p mod n, and the standbys spread evenly (never on the owner)', () => {
    for (const n of [1, 2, 3, 4]) {
      for (const P of [3, 6, 7, 12]) {
        for (const k of [0, 1, 2, 5]) {
          const ids = range(n).map((i) => `m${i}`);
          const plan = planAssignment(ids, range(P), new Map(), k);
          const { standing } = checkPlan(ids, P, plan, k);
          for (const p of range(P)) expect(plan.owner.get(p)).toBe(ids[p % n]);
          const eff = Math.min(k, n - 1);
          const counts = [...standing.values()].map((s) => s.length);
          expect(Math.max(...counts) - Math.min(...counts), `n=${n} P=${P} k=${k}: ${counts}`).toBeLessThanOrEqual(1);
          expect(counts.reduce((a, b) => a + b, 0)).toBe(P * eff);
        }
      }
    }
  });

  it('one instance has no standby, whatever is configured', () => {
    const plan = planAssignment(['solo'], range(6), new Map(), 3);
    expect([...plan.standby.values()].flat()).toEqual([]);
  });

  it('owners keep their partitions across a rebalance (sticky), even when a member id sorts first', () => {
    const states = new Map([
      ['b', state([0, 1, 2], [[0, 10], [1, 10], [2, 10]])],
      ['c', state([3, 4, 5], [[3, 10], [4, 10], [5, 10]])],
    ]);
    const plan = planAssignment(['a', 'b', 'c'], range(6), states, 1);
    // a joins: b and c keep two of their own each, a gets one of each (balance), never more moves.
    const { owned } = checkPlan(['a', 'b', 'c'], 6, plan, 1);
    expect(owned.get('b')!.every((p) => [0, 1, 2].includes(p))).toBe(true);
    expect(owned.get('c')!.every((p) => [3, 4, 5].includes(p))).toBe(true);
    expect(owned.get('a')).toHaveLength(2);
  });

  it("a dead owner's partitions go to the members with the warmest stores (the standbys), balanced", () => {
    // Three members, 6 partitions, k=1 before: c owned 4 and 5; a stood by for 4, b for 5.
    const states = new Map([
      ['a', state([0, 1], [[0, 50], [1, 50], [4, 40], [3, 2]])],
      ['b', state([2, 3], [[2, 50], [3, 50], [5, 41], [4, 3]])],
    ]);
    const plan = planAssignment(['a', 'b'], range(6), states, 1);
    checkPlan(['a', 'b'], 6, plan, 1);
    expect(plan.owner.get(4)).toBe('a');
    expect(plan.owner.get(5)).toBe('b');
    for (const p of [0, 1]) expect(plan.owner.get(p)).toBe('a');
    for (const p of [2, 3]) expect(plan.owner.get(p)).toBe('b');
    // Now every partition stands by on the other member.
    for (const p of range(6)) expect(plan.standby.get(p)).toEqual([plan.owner.get(p) === 'a' ? 'b' : 'a']);
  });

  it('prefers the smallest lag (highest checkpoint) among several warm stores', () => {
    const states = new Map([
      ['a', state([], [[0, 100]])],
      ['b', state([], [[0, 900]])],
      ['c', state([], [[0, 500]])],
    ]);
    expect(planAssignment(['a', 'b', 'c'], [0], states, 0).owner.get(0)).toBe('b');
  });

  it('balance wins over warmth: the warm member that is full passes the partition on', () => {
    // a has warm stores of everything, but may own only 3 of 6.
    const states = new Map([['a', state([], range(6).map((p) => [p, 100] as [number, number]))]]);
    const plan = planAssignment(['a', 'b'], range(6), states, 1);
    const { owned } = checkPlan(['a', 'b'], 6, plan, 1);
    expect(owned.get('a')).toHaveLength(3);
    expect(owned.get('b')).toHaveLength(3);
  });

  it("an owner's partitions stand by on different members, so its death spreads its load", () => {
    const ids = ['a', 'b', 'c', 'd'];
    const plan = planAssignment(ids, range(12), new Map(), 1);
    const { owned } = checkPlan(ids, 12, plan, 1);
    for (const [o, ps] of owned) {
      const standbys = ps.map((p) => plan.standby.get(p)![0]);
      expect(new Set(standbys).size, `${o}: ${standbys}`).toBe(ps.length);
    }
  });

  it('keeps a standby where its store is warm when the balance allows (no needless re-restore)', () => {
    // p0 owned by a; c (not b, which p mod n rotation would pick) has a warm copy of p0.
    const states = new Map([
      ['a', state([0], [[0, 70]])],
      ['b', state([1], [[1, 70]])],
      ['c', state([2], [[2, 70], [0, 69]])],
    ]);
    const plan = planAssignment(['a', 'b', 'c'], range(3), states, 1);
    expect(plan.standby.get(0)).toEqual(['c']);
  });
});

describe('v3 userData', () => {
  it('the subscription carries the owned partitions and store checkpoints, and reads back', () => {
    const buf = encodeSubscriptionUserData('http://a:1', { active: [2, 0], stores: new Map([[0, 12], [5, 7]]) });
    const s = decodeMemberState(buf);
    expect(s.url).toBe('http://a:1');
    expect([...s.active].sort()).toEqual([0, 2]);
    expect(s.stores).toEqual(new Map([[0, 12], [5, 7]]));
  });

  it('undecodable userData never throws: the member is cold (no stores) and still gets partitions', () => {
    const bad = [
      Buffer.from('{{{'),
      Buffer.from('null'),
      Buffer.from('[1,2]'),
      Buffer.from('{"url":"http://a:1","active":"x","stores":[1,2]}'),
      Buffer.from('{"url":"http://a:1","active":[-1,1.5,"2",3],"stores":{"x":1,"-1":2,"01":3,"4":-5,"6":"7","8":1e300,"9":9}}'),
      Buffer.from([0xff, 0xfe, 0x00]),
    ];
    for (const b of bad) expect(() => decodeMemberState(b)).not.toThrow();
    const partial = decodeMemberState(bad[4]);
    expect([...partial.active]).toEqual([3]);
    expect(partial.stores).toEqual(new Map([[9, 9]]));
    expect(memberState(Buffer.from([1, 2, 3])).stores.size).toBe(0);
    expect(decodeOwnersUserData(Buffer.from('{"standby":"nope"}')).standby).toBeUndefined();
    expect(decodeOwnersUserData(Buffer.from('{"standby":[3,-1,"x",3,1]}')).standby).toEqual([1, 3]);

    const result = assignWithStandbys(
      [member('a', encodeSubscriptionUserData('http://a:1', { active: [], stores: new Map([[1, 5]]) })), member('b', Buffer.from('{{{')), member('c', Buffer.from([0xff]))],
      [{ topic: TOPIC, partitions: range(6) }],
      1,
    );
    const byMember = new Map(result.map((r) => [r.memberId, decode(r)]));
    expect([...byMember.values()].map((d) => d.partitions.length)).toEqual([2, 2, 2]);
    // a's warm store of 1 wins it (p mod n would give it to b).
    expect(byMember.get('a')!.partitions).toContain(1);
    for (const [id, d] of byMember) {
      expect(d.table.standby).toHaveLength(2);
      for (const p of d.table.standby!) expect(d.partitions, `${id} stands by for its own ${p}`).not.toContain(p);
    }
    // Only a's URL is known.
    expect([...byMember.get('b')!.table.owners.values()].every((u) => u === 'http://a:1')).toBe(true);
  });
});

describe('createOwnerAssigners', () => {
  const fakeCluster = (answers: Map<string, Buffer>) => {
    const broker = { syncGroup: async (req: { memberId: string }) => ({ memberAssignment: answers.get(req.memberId) ?? Buffer.alloc(0) }) };
    const meta: PartitionMetadata[] = range(4).map((partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));
    return { findTopicPartitionMetadata: (t: string) => (t === TOPIC ? meta : []), findGroupCoordinator: async () => broker } as unknown as Cluster;
  };

  it('offers v3 then v2; the report is read at each join; each SyncGroup answer is heard once, with the standby list', async () => {
    const answers = new Map<string, Buffer>();
    const cluster = fakeCluster(answers);
    const onOwners = vi.fn<(owners: Map<number, string>, update: OwnersUpdate) => void>();
    let stores = new Map<number, number>();
    const [v3, v2] = createOwnerAssigners('http://a:1', onOwners, { standbyReplicas: 1, report: () => ({ active: [], stores }) }).map((f) => f({ cluster, groupId: 'g', logger }));
    expect([v3!.name, v2!.name]).toEqual([OWNER_ASSIGNER_NAME, OWNER_ASSIGNER_V2_NAME]);
    const userData = () => AssignerProtocol.MemberMetadata.decode(v3!.protocol({ topics: [TOPIC] }).metadata)!.userData;
    expect(decodeMemberState(userData()).stores.size).toBe(0);
    stores = new Map([[3, 77]]);
    expect(decodeMemberState(userData()).stores).toEqual(new Map([[3, 77]]));
    // v2 stays p mod n without standbys (what v2 members compute).
    expect(decodeMemberState(AssignerProtocol.MemberMetadata.decode(v2!.protocol({ topics: [TOPIC] }).metadata)!.userData).stores.size).toBe(0);

    const members = [member('x', userData()), member('y', encodeSubscriptionUserData('http://b:2'))];
    const result = await v3!.assign({ members, topics: [TOPIC] });
    for (const r of result) answers.set(r.memberId, r.memberAssignment);
    const coordinator = (await cluster.findGroupCoordinator({ groupId: 'g' })) as unknown as { syncGroup(r: object): Promise<unknown> };
    await coordinator.syncGroup({ groupId: 'g', generationId: 3, memberId: 'x', groupAssignment: [] });
    expect(onOwners).toHaveBeenCalledTimes(1);
    const update = onOwners.mock.calls[0]![1];
    expect(update.owners.get(3)).toBe('http://a:1'); // x's warm store of 3
    expect(update.standby.length).toBe(2);
    expect(update.standby.every((p) => update.owners.get(p) === 'http://b:2')).toBe(true);
  });
});
