/**
 * ## Evaluation
 *
 * Offline evaluation holds out part of the interactions, trains on the rest, asks the model for each
 * held-out user's top 25 and scores the list against the held-out items. Splits and metrics are pure
 * functions (`src/training/split.ts`, `src/training/metrics.ts`): same input, same output.
 *
 * ### Splits
 *
 * Each split returns `{ train, tests: [{ userId, input, truth }] }`. `train` is what the model is
 * trained on, in time order (TIMESTAMP, ties by input order). For each test user, `input` is the
 * history the model may see when asked for recommendations and `truth` the held-out interactions,
 * both in time order; `tests` is sorted by `userId` (code-unit order). "Time order" everywhere means
 * by TIMESTAMP, equal timestamps by position in the input.
 *
 * - **Personalize's split** (`personalizeSplit`, the default): each user is a test user with
 *   probability `testUserShare` (default 0.1), decided by a seeded hash of the user id alone, so the
 *   choice does not depend on the order or content of the data: `h` = FNV-1a 32-bit over the UTF-8
 *   bytes of the user id, starting from the offset basis 2166136261 XOR the seed (as uint32), then
 *   MurmurHash3's `fmix32` finalizer; the user is a test user when `h / 2^32 < testUserShare`. A
 *   test user needs at least 2 interactions; one with fewer is train-only. A test user's newest
 *   `max(1, ceil(holdoutShare × n))` interactions (default `holdoutShare` 0.1; `n` the user's count;
 *   the product rounded to 12 significant digits first, so 0.07 × 100 is 7, not 7.000000000000001;
 *   at most `n − 1`, so the input is never empty) are the truth, the older ones the input. As
 *   Personalize's documentation describes it, the model is trained on the other users only
 *   (`train` = every interaction of the train-only users) and is given a test user's input when
 *   asked for that user's recommendations; `trainOnTestInput: true` also trains on the test users'
 *   input.
 *   `testUserShare` is in [0, 1], `holdoutShare` in (0, 1].
 * - **Chronological leave-one-out** (`leaveOneOutSplit`, as in RecBole and SASRec): every user with
 *   at least 2 interactions is a test user; the latest one (ties: the later in the input) is the
 *   truth, the others the input. `train` = every interaction except the truths (users with a single
 *   interaction are train-only).
 * - **Global time split** (`timeSplit`): one cut time for everyone, `cutoff` if given, else the
 *   timestamp at 0-based index `floor(trainShare × N)` of all N timestamps sorted ascending (default
 *   `trainShare` 0.9, in (0, 1); the product rounded as above). `train` = interactions with
 *   `TIMESTAMP < cutoff`. Every user with interactions on both sides is a test user: input = the
 *   user's interactions before the cut, truth = those at or after it. Interactions at or after the
 *   cut of users with none before it (new users) are in neither.
 *
 * ### Metrics
 *
 * Amazon Personalize's definitions, plus recall@K and hit@K. For one test user, `rec` is the ranked
 * list (positions p = 1, 2, …) and `truth` the set of the user's held-out items (an item held out
 * twice counts once). An item at position p is a hit when it is in `truth` and not already at an
 * earlier position (a repeated recommendation counts once).
 *
 * | metric | per user |
 * |---|---|
 * | `precision_at_K` | hits in the top K / K (K even when fewer than K items were recommended) |
 * | `recall_at_K` | hits in the top K / \|truth\| |
 * | `hit_at_K` | 1 if any hit in the top K, else 0 |
 * | `normalized_discounted_cumulative_gain_at_K` | DCG@K / IDCG@K, DCG@K = Σ over hits at p ≤ K of 1 / log2(1 + p), IDCG@K = Σ for p = 1 … min(K, \|truth\|) of 1 / log2(1 + p) |
 * | `mean_reciprocal_rank_at_25` | 1 / p of the first hit within the top 25, else 0 |
 * | `coverage` | distinct items in all test users' top 25 / catalogue size (distinct items in the whole dataset) |
 *
 * K is 5, 10 and 25. The discount uses log base 2 (Personalize's documentation writes
 * 1 / log(1 + position) without a base; base 2 is the standard one and gives a hit at position 1 the
 * weight 1; NDCG itself is the same in any base, since a base change scales DCG and IDCG alike).
 * Every per-user metric is averaged over the evaluated users, those with a non-empty truth; `users`
 * reports their number (with none, every value is 0). Coverage is one number for the whole run, not
 * an average.
 */

/** The fields a split needs; any other fields are carried along untouched. */
export interface SplitInteraction {
  USER_ID: string;
  ITEM_ID: string;
  TIMESTAMP: number;
}

/** One evaluated user: the history the model may see, and the held-out interactions. */
export interface TestUser<T> {
  userId: string;
  input: T[];
  truth: T[];
}

export interface SplitResult<T> {
  /** Training interactions, in time order (TIMESTAMP, ties by input order). */
  train: T[];
  /** Test users, sorted by userId. */
  tests: TestUser<T>[];
}

export interface PersonalizeSplitOptions {
  /** Integer; taken as uint32. */
  seed: number;
  /** Probability that a user is a test user. Default 0.1. */
  testUserShare?: number;
  /** Share of a test user's interactions (the newest) held out as truth. Default 0.1. */
  holdoutShare?: number;
  /**
   * Whether the test users' input interactions are also in `train`. Default false, as
   * Personalize's documentation describes it (train on the other users only).
   */
  trainOnTestInput?: boolean;
}

export interface TimeSplitOptions {
  /** Epoch ms: train is strictly before it, truth at or after it. Default: the trainShare quantile. */
  cutoff?: number;
  /** Used when no cutoff is given. Default 0.9. */
  trainShare?: number;
}

interface Indexed<T> {
  value: T;
  index: number;
}

/** MurmurHash3's 32-bit finalizer. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const utf8 = new TextEncoder();

/**
 * The seeded user hash, a uint32: FNV-1a 32-bit over the UTF-8 bytes of `userId` with the offset basis
 * XORed with the seed, then `fmix32`.
 */
export function userHash(userId: string, seed: number): number {
  checkSeed(seed);
  let h = (2166136261 ^ seed) >>> 0;
  for (const byte of utf8.encode(userId)) {
    h ^= byte;
    h = Math.imul(h, 16777619);
  }
  return fmix32(h >>> 0);
}

/** Whether Personalize's split makes `userId` a test user (before the minimum-interactions rule). */
export function isTestUser(userId: string, seed: number, testUserShare: number): boolean {
  return userHash(userId, seed) / 2 ** 32 < testUserShare;
}

/** The number of held-out interactions of a test user with `n` interactions (n >= 2). */
export function holdoutCount(n: number, holdoutShare: number): number {
  return Math.min(n - 1, Math.max(1, Math.ceil(roundProduct(holdoutShare, n))));
}

/** a × b rounded to 12 significant digits, so that binary float error does not cross an integer. */
function roundProduct(a: number, b: number): number {
  return Number((a * b).toPrecision(12));
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
}

/** `value` in [0, 1], or in (0, 1] / (0, 1) when the ends are open. */
function checkShare(name: string, value: number, openLow: boolean, openHigh: boolean): void {
  const low = openLow ? value > 0 : value >= 0;
  const high = openHigh ? value < 1 : value <= 1;
  if (!(low && high)) throw new RangeError(`${name} must be in ${openLow ? '(' : '['}0, 1${openHigh ? ')' : ']'}, got ${value}`);
}

function byTime<T extends SplitInteraction>(a: Indexed<T>, b: Indexed<T>): number {
  return a.value.TIMESTAMP - b.value.TIMESTAMP || a.index - b.index;
}

function checkTimestamps<T extends SplitInteraction>(interactions: readonly T[]): void {
  interactions.forEach((x, i) => {
    if (!Number.isFinite(x.TIMESTAMP)) throw new RangeError(`interaction ${i}: TIMESTAMP must be a finite number, got ${x.TIMESTAMP}`);
  });
}

/** Interactions with their input index, grouped by user, each group in time order; users in code-unit order. */
function groupByUser<T extends SplitInteraction>(interactions: readonly T[]): [string, Indexed<T>[]][] {
  const groups = new Map<string, Indexed<T>[]>();
  interactions.forEach((value, index) => {
    let group = groups.get(value.USER_ID);
    if (group === undefined) groups.set(value.USER_ID, (group = []));
    group.push({ value, index });
  });
  for (const group of groups.values()) group.sort(byTime);
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function values<T>(xs: readonly Indexed<T>[]): T[] {
  return xs.map((x) => x.value);
}

function chronological<T extends SplitInteraction>(xs: Indexed<T>[]): T[] {
  return values(xs.sort(byTime));
}

/**
 * Personalize's split: a seeded `testUserShare` of users (by user-id hash; at least 2 interactions)
 * are test users whose newest `holdoutShare` of interactions is the truth; train = everything else
 * (the test users' input included only with `trainOnTestInput: true`).
 */
export function personalizeSplit<T extends SplitInteraction>(interactions: readonly T[], options: PersonalizeSplitOptions): SplitResult<T> {
  const { seed, testUserShare = 0.1, holdoutShare = 0.1, trainOnTestInput = false } = options;
  checkSeed(seed);
  checkShare('testUserShare', testUserShare, false, false);
  checkShare('holdoutShare', holdoutShare, true, false);
  checkTimestamps(interactions);
  const train: Indexed<T>[] = [];
  const tests: TestUser<T>[] = [];
  for (const [userId, group] of groupByUser(interactions)) {
    if (group.length < 2 || !isTestUser(userId, seed, testUserShare)) {
      train.push(...group);
      continue;
    }
    const cut = group.length - holdoutCount(group.length, holdoutShare);
    const input = group.slice(0, cut);
    if (trainOnTestInput) train.push(...input);
    tests.push({ userId, input: values(input), truth: values(group.slice(cut)) });
  }
  return { train: chronological(train), tests };
}

/** Chronological leave-one-out: each user's latest interaction (of at least 2) is the truth. */
export function leaveOneOutSplit<T extends SplitInteraction>(interactions: readonly T[]): SplitResult<T> {
  checkTimestamps(interactions);
  const train: Indexed<T>[] = [];
  const tests: TestUser<T>[] = [];
  for (const [userId, group] of groupByUser(interactions)) {
    if (group.length < 2) {
      train.push(...group);
      continue;
    }
    const input = group.slice(0, -1);
    train.push(...input);
    tests.push({ userId, input: values(input), truth: values(group.slice(-1)) });
  }
  return { train: chronological(train), tests };
}

/** The default cut of `timeSplit`: the timestamp at index floor(trainShare × N) of the sorted timestamps. */
export function quantileCutoff(timestamps: readonly number[], trainShare: number): number | undefined {
  if (timestamps.length === 0) return undefined;
  const sorted = [...timestamps].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.floor(roundProduct(trainShare, sorted.length)));
  return sorted[index];
}

/**
 * A global time cut: train = before the cut; users with interactions on both sides are test users
 * (input = before, truth = at or after the cut).
 */
export function timeSplit<T extends SplitInteraction>(interactions: readonly T[], options: TimeSplitOptions = {}): SplitResult<T> {
  const { trainShare = 0.9 } = options;
  checkShare('trainShare', trainShare, true, true);
  checkTimestamps(interactions);
  if (options.cutoff !== undefined && Number.isNaN(options.cutoff)) throw new RangeError('cutoff must be a number, got NaN');
  const cutoff = options.cutoff ?? quantileCutoff(interactions.map((x) => x.TIMESTAMP), trainShare);
  if (cutoff === undefined) return { train: [], tests: [] };
  const train: Indexed<T>[] = [];
  const tests: TestUser<T>[] = [];
  for (const [userId, group] of groupByUser(interactions)) {
    const before = group.filter((x) => x.value.TIMESTAMP < cutoff);
    const after = group.filter((x) => x.value.TIMESTAMP >= cutoff);
    train.push(...before);
    if (before.length > 0 && after.length > 0) tests.push({ userId, input: values(before), truth: values(after) });
  }
  return { train: chronological(train), tests };
}
