import { describe, expect, it } from 'vitest';
import { prng, syntheticInteractions } from '../../src/data/synthetic.js';
import type { Interaction } from '../../src/serde/avro.js';
import {
  holdoutCount,
  isTestUser,
  leaveOneOutSplit,
  personalizeSplit,
  quantileCutoff,
  timeSplit,
  userHash,
  type SplitResult,
} from '../../src/training/split.js';

interface Row {
  USER_ID: string;
  ITEM_ID: string;
  TIMESTAMP: number;
  tag?: string;
}
const ix = (USER_ID: string, ITEM_ID: string, TIMESTAMP: number): Row => ({ USER_ID, ITEM_ID, TIMESTAMP });

/** A seeded Fisher-Yates shuffle (a copy). */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const rand = prng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** n interactions of one user at times 1..n, items `<user>-i<t>`. */
const userRows = (user: string, n: number): Row[] => Array.from({ length: n }, (_, t) => ix(user, `${user}-i${t + 1}`, t + 1));

const items = (rows: readonly Row[]): string[] => rows.map((r) => r.ITEM_ID);

/** Checks every split's invariants: train and truths are disjoint rows of the input, inputs are in train, time order. */
function checkPartition<T extends Row | Interaction>(all: readonly T[], result: SplitResult<T>, inputInTrain = true): void {
  const source = new Set<T>(all);
  const truths = result.tests.flatMap((t) => t.truth);
  const train = new Set(result.train);
  expect(train.size).toBe(result.train.length);
  expect(result.train.filter((x) => !source.has(x))).toEqual([]);
  expect(truths.filter((x) => !source.has(x) || train.has(x))).toEqual([]);
  expect(new Set(truths).size).toBe(truths.length);
  for (const test of result.tests) {
    expect(test.input.filter((x) => train.has(x) !== inputInTrain || x.USER_ID !== test.userId)).toEqual([]);
    expect(test.truth.filter((x) => x.USER_ID !== test.userId)).toEqual([]);
    expect(test.truth.length).toBeGreaterThan(0);
    expect(test.input.length).toBeGreaterThan(0);
    const lastInput = Math.max(...test.input.map((x) => x.TIMESTAMP));
    const firstTruth = Math.min(...test.truth.map((x) => x.TIMESTAMP));
    expect(lastInput).toBeLessThanOrEqual(firstTruth);
  }
  const outOfOrder = result.train.findIndex((x, i) => i > 0 && x.TIMESTAMP < result.train[i - 1]!.TIMESTAMP);
  expect(outOfOrder).toBe(-1);
  const ids = result.tests.map((t) => t.userId);
  expect(ids).toEqual([...ids].sort());
  expect(new Set(ids).size).toBe(ids.length);
}

describe('the seeded user hash', () => {
  it('is FNV-1a 32-bit over UTF-8 with the seed XORed into the offset basis, then fmix32', () => {
    // Values computed independently (Python, the same documented steps).
    expect(userHash('u1', 0)).toBe(612938007);
    expect(userHash('u1', 7)).toBe(1842209694);
    expect(userHash('ü-42', 123)).toBe(2698825666);
    expect(userHash('', 0)).toBe(2872998923);
  });

  it('decides test users by h / 2^32 < share', () => {
    // userHash('u1', 0) / 2^32 = 0.1427...
    expect(isTestUser('u1', 0, 0.15)).toBe(true);
    expect(isTestUser('u1', 0, 0.14)).toBe(false);
    expect(isTestUser('u1', 0, 0)).toBe(false);
    expect(isTestUser('u1', 0, 1)).toBe(true);
  });

  it('refuses a seed that is not an integer', () => {
    expect(() => userHash('u1', 0.5)).toThrow(RangeError);
    expect(() => personalizeSplit([ix('u', 'i', 1)], { seed: Number.NaN })).toThrow(RangeError);
  });
});

describe('holdout size', () => {
  it('is max(1, ceil(share × n)), at most n − 1, without float error crossing an integer', () => {
    // share 0.1: n = 2..10 → 1; 11 → ceil(1.1) = 2; 20 → 2; 21 → ceil(2.1) = 3; 30 → 3
    expect([2, 5, 10, 11, 20, 21, 30].map((n) => holdoutCount(n, 0.1))).toEqual([1, 1, 1, 2, 2, 3, 3]);
    // 0.07 × 100 is 7.000000000000001 in binary floating point; ceil would give 8.
    expect(holdoutCount(100, 0.07)).toBe(7);
    // share 1 would hold out everything; capped at n − 1 so the input keeps one interaction.
    expect(holdoutCount(2, 1)).toBe(1);
    expect(holdoutCount(4, 0.9)).toBe(3);
  });
});

describe('personalizeSplit', () => {
  it('holds out the newest ceil(10%) (at least 1) of each test user, the rest is input and train', () => {
    const rows = [...userRows('a', 2), ...userRows('b', 10), ...userRows('c', 11), ...userRows('d', 25), ...userRows('e', 1)];
    const result = personalizeSplit(shuffled(rows, 1), { seed: 3, testUserShare: 1, trainOnTestInput: true });
    checkPartition(rows, result);
    // e has 1 interaction: train only.
    expect(result.tests.map((t) => t.userId)).toEqual(['a', 'b', 'c', 'd']);
    const [a, b, c, d] = result.tests;
    expect(items(a!.truth)).toEqual(['a-i2']);
    expect(items(a!.input)).toEqual(['a-i1']);
    expect(items(b!.truth)).toEqual(['b-i10']);
    expect(b!.input).toHaveLength(9);
    expect(items(c!.truth)).toEqual(['c-i10', 'c-i11']); // ceil(1.1) = 2
    expect(items(c!.input)).toEqual(Array.from({ length: 9 }, (_, t) => `c-i${t + 1}`)); // in time order
    expect(items(d!.truth)).toEqual(['d-i23', 'd-i24', 'd-i25']); // ceil(2.5) = 3
    // train = all of e + every input: 1 + 1 + 9 + 9 + 22 = 42 = 49 − 7 truths
    expect(result.train).toHaveLength(42);
    expect(items(result.train.filter((r) => r.USER_ID === 'e'))).toEqual(['e-i1']);
    expect(items(result.train.filter((r) => r.USER_ID === 'c'))).toEqual(items(c!.input));
  });

  it('orders equal timestamps by input position: the later input row is newer', () => {
    const rows = [ix('u', 'first', 5), ix('u', 'second', 5), ix('u', 'third', 5)];
    const result = personalizeSplit(rows, { seed: 1, testUserShare: 1 });
    expect(items(result.tests[0]!.truth)).toEqual(['third']);
    expect(items(result.tests[0]!.input)).toEqual(['first', 'second']);
    const reversed = personalizeSplit([...rows].reverse(), { seed: 1, testUserShare: 1 });
    expect(items(reversed.tests[0]!.truth)).toEqual(['first']);
  });

  it('leaves the test users\' input out of train by default, as Personalize does', () => {
    const rows = [...userRows('a', 4), ...userRows('b', 1)];
    const result = personalizeSplit(rows, { seed: 1, testUserShare: 1 });
    checkPartition(rows, result, false);
    // a is a test user (input a1..a3, truth a4); b has 1 interaction: train only.
    expect(items(result.tests[0]!.input)).toEqual(['a-i1', 'a-i2', 'a-i3']);
    expect(items(result.train)).toEqual(['b-i1']);
  });

  it('uses holdoutShare', () => {
    const result = personalizeSplit(userRows('u', 10), { seed: 1, testUserShare: 1, holdoutShare: 0.25 });
    // ceil(0.25 × 10) = ceil(2.5) = 3
    expect(items(result.tests[0]!.truth)).toEqual(['u-i8', 'u-i9', 'u-i10']);
  });

  it('with testUserShare 0 every interaction is train, in time order', () => {
    const rows = shuffled([...userRows('a', 5), ...userRows('b', 3)], 9);
    const result = personalizeSplit(rows, { seed: 1, testUserShare: 0 });
    expect(result.tests).toEqual([]);
    expect(result.train).toHaveLength(8);
    checkPartition(rows, result);
  });

  it('carries extra fields along (the same objects)', () => {
    const row: Row = { ...ix('u', 'i2', 2), tag: 'kept' };
    const result = personalizeSplit([ix('u', 'i1', 1), row], { seed: 1, testUserShare: 1 });
    expect(result.tests[0]!.truth[0]).toBe(row);
  });

  it('picks about 10% of 10k synthetic users, the same set however the input is ordered', () => {
    const data = [...syntheticInteractions({ users: 10_000, events: 60_000, items: 2000, seed: 11 })];
    const counts = new Map<string, number>();
    for (const x of data) counts.set(x.USER_ID, (counts.get(x.USER_ID) ?? 0) + 1);
    const eligible = [...counts].filter(([, n]) => n >= 2).length;
    expect(eligible).toBeGreaterThan(8000);

    const result = personalizeSplit(data, { seed: 42 });
    checkPartition(data, result, false);
    const share = result.tests.length / eligible;
    expect(share).toBeGreaterThan(0.09);
    expect(share).toBeLessThan(0.11);
    // holdout sizes: max(1, ceil(0.1 n)) of each user's interactions.
    for (const t of result.tests) {
      const n = counts.get(t.userId)!;
      expect(t.truth).toHaveLength(Math.max(1, Math.ceil(n / 10)));
      expect(t.input).toHaveLength(n - t.truth.length);
    }
    // By default the test users' input is not trained on: train + inputs + truths = everything.
    expect(result.train.length + result.tests.reduce((s, t) => s + t.input.length + t.truth.length, 0)).toBe(data.length);

    // Determinism: same input, same output; shuffled input, same output (synthetic timestamps are distinct).
    expect(personalizeSplit(data, { seed: 42 })).toEqual(result);
    expect(personalizeSplit(shuffled(data, 5), { seed: 42 })).toEqual(result);
    // The assignment depends on the user id only: a subset of the data keeps each user's assignment.
    const half = personalizeSplit(data.slice(0, 30_000), { seed: 42 });
    const all = new Set(result.tests.map((t) => t.userId));
    for (const t of half.tests) expect(all.has(t.userId)).toBe(true);

    // Another seed, another (about independent) 10%: overlap near 10% of 10%.
    const other = new Set(personalizeSplit(data, { seed: 43 }).tests.map((t) => t.userId));
    const overlap = [...all].filter((u) => other.has(u)).length;
    expect(overlap).toBeLessThan(all.size * 0.2);
    expect(other.size / eligible).toBeGreaterThan(0.09);
  });

  it('assigns about testUserShare of any user ids', () => {
    for (const share of [0.1, 0.3]) {
      let chosen = 0;
      for (let u = 0; u < 10_000; u++) if (isTestUser(`user-${u}`, 7, share)) chosen++;
      // binomial sd at 10k: 0.003 (0.1) and 0.0046 (0.3); allow about 3 sd
      expect(Math.abs(chosen / 10_000 - share)).toBeLessThan(0.015);
    }
  });

  it('refuses shares out of range', () => {
    expect(() => personalizeSplit([], { seed: 1, testUserShare: 1.5 })).toThrow(RangeError);
    expect(() => personalizeSplit([], { seed: 1, holdoutShare: 0 })).toThrow(RangeError);
  });
});

describe('leaveOneOutSplit', () => {
  it('holds out the latest interaction of every user with at least 2', () => {
    const rows = [ix('a', 'late', 30), ix('b', 'only', 7), ix('a', 'early', 10), ix('a', 'mid', 20)];
    const result = leaveOneOutSplit(rows);
    checkPartition(rows, result);
    expect(result.tests).toHaveLength(1);
    expect(result.tests[0]!.userId).toBe('a');
    expect(items(result.tests[0]!.truth)).toEqual(['late']);
    expect(items(result.tests[0]!.input)).toEqual(['early', 'mid']);
    // b (one interaction) is train only; train in time order.
    expect(items(result.train)).toEqual(['only', 'early', 'mid']);
  });

  it('breaks timestamp ties by input order (the later row is the latest)', () => {
    expect(items(leaveOneOutSplit([ix('u', 'x', 5), ix('u', 'y', 5)]).tests[0]!.truth)).toEqual(['y']);
    expect(items(leaveOneOutSplit([ix('u', 'y', 5), ix('u', 'x', 5)]).tests[0]!.truth)).toEqual(['x']);
    // a strictly later timestamp wins over input order.
    expect(items(leaveOneOutSplit([ix('u', 'z', 6), ix('u', 'y', 5)]).tests[0]!.truth)).toEqual(['z']);
  });

  it('is the same for shuffled input (distinct timestamps)', () => {
    const data = [...syntheticInteractions({ users: 300, events: 5000, seed: 3 })];
    const result = leaveOneOutSplit(data);
    checkPartition(data, result);
    expect(leaveOneOutSplit(shuffled(data, 2))).toEqual(result);
    for (const t of result.tests) expect(t.truth).toHaveLength(1);
    expect(result.train.length + result.tests.length).toBe(data.length);
  });
});

describe('timeSplit', () => {
  const rows = [
    ix('a', 'a1', 1),
    ix('a', 'a5', 5), // exactly at the cut: after
    ix('a', 'a10', 10),
    ix('b', 'b6', 6), // only after: a new user, in neither
    ix('b', 'b7', 7),
    ix('c', 'c2', 2), // only before: train only
    ix('c', 'c3', 3),
  ];

  it('trains strictly before the cut and tests users on both sides', () => {
    const result = timeSplit(shuffled(rows, 4), { cutoff: 5 });
    checkPartition(rows, result);
    expect(items(result.train)).toEqual(['a1', 'c2', 'c3']);
    expect(result.tests).toHaveLength(1);
    expect(result.tests[0]!.userId).toBe('a');
    expect(items(result.tests[0]!.input)).toEqual(['a1']);
    expect(items(result.tests[0]!.truth)).toEqual(['a5', 'a10']);
  });

  it('moves with the cut', () => {
    // cut at 6: train a1 c2 c3 a5; a: input [a1, a5], truth [a10]; b: nothing before 6, not tested.
    const result = timeSplit(rows, { cutoff: 6 });
    expect(items(result.train)).toEqual(['a1', 'c2', 'c3', 'a5']);
    expect(result.tests.map((t) => t.userId)).toEqual(['a']);
    // cut at 7: b6 is before, b7 after, so b is tested too.
    const at7 = timeSplit(rows, { cutoff: 7 });
    expect(at7.tests.map((t) => t.userId)).toEqual(['a', 'b']);
    expect(items(at7.tests[1]!.truth)).toEqual(['b7']);
  });

  it('defaults the cut to the timestamp at index floor(trainShare × N) of the sorted timestamps', () => {
    // timestamps 1..10 over two users; 0.9 × 10 = 9 → sorted[9] = 10: train is 1..9
    const ten = shuffled([...userRows('p', 5), ...userRows('q', 5)].map((r, i) => ({ ...r, TIMESTAMP: i + 1 })), 8);
    expect(quantileCutoff(ten.map((r) => r.TIMESTAMP), 0.9)).toBe(10);
    const result = timeSplit(ten);
    expect(result.train).toHaveLength(9);
    expect(result.tests.map((t) => t.userId)).toEqual(['q']);
    expect(result.tests[0]!.truth.map((r) => r.TIMESTAMP)).toEqual([10]);
    // trainShare 0.5: sorted[5] = 6; train 1..5 (all of p), q only after: no tests
    const half = timeSplit(ten, { trainShare: 0.5 });
    expect(half.train.map((r) => r.TIMESTAMP)).toEqual([1, 2, 3, 4, 5]);
    expect(half.tests).toEqual([]);
    // ties at the cut go after it: [1,1,1,1,2] at 0.5 → sorted[2] = 1, nothing is before 1
    expect(quantileCutoff([2, 1, 1, 1, 1], 0.5)).toBe(1);
    expect(quantileCutoff([], 0.9)).toBeUndefined();
  });

  it('handles no data and refuses trainShare outside (0, 1)', () => {
    expect(timeSplit([])).toEqual({ train: [], tests: [] });
    expect(() => timeSplit(rows, { trainShare: 1 })).toThrow(RangeError);
    expect(() => timeSplit(rows, { trainShare: 0 })).toThrow(RangeError);
  });

  it('is the same for shuffled input', () => {
    const data = [...syntheticInteractions({ users: 500, events: 8000, seed: 4 })];
    const result = timeSplit(data);
    checkPartition(data, result);
    expect(result.tests.length).toBeGreaterThan(0);
    expect(timeSplit(shuffled(data, 6))).toEqual(result);
    // 90% of 8000 distinct timestamps are before the cut.
    expect(result.train).toHaveLength(7200);
  });
});
