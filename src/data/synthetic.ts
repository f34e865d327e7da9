/**
 * Seeded synthetic clickstream with the structure real ones have: power-law (Zipf) item popularity,
 * users with sessions separated by long gaps, and item-to-item transitions (after an item, its few
 * "next" items are likely). Same seed, same events. Used by tests, benchmarks and the demo.
 */
import { interaction, type Interaction, type Item } from '../serde/avro.js';

export interface SyntheticOptions {
  seed?: number;
  users?: number;
  items?: number;
  events?: number;
  /** Zipf exponent of item popularity. */
  zipf?: number;
  /** Probability that the next click follows the current item's transitions. */
  followProbability?: number;
  /** Mean events per session. */
  sessionLength?: number;
  /** Epoch ms of the first event. */
  start?: number;
}

/** mulberry32: a small, fast, seeded PRNG in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Yields `events` interactions in time order. */
export function* syntheticInteractions(options: SyntheticOptions = {}): Generator<Interaction> {
  const o = {
    seed: 42,
    users: 1000,
    items: 5000,
    events: 50_000,
    zipf: 1.0,
    followProbability: 0.6,
    sessionLength: 8,
    start: Date.UTC(2026, 0, 1),
    ...options,
  };
  const rand = prng(o.seed);
  // Zipf by inverse CDF over item ranks.
  const cdf = new Float64Array(o.items);
  let total = 0;
  for (let r = 0; r < o.items; r++) cdf[r] = total += 1 / Math.pow(r + 1, o.zipf);
  const popular = (): number => search(cdf, rand() * total);
  // Each item has three "next" items, drawn by popularity.
  const next: Int32Array[] = Array.from({ length: o.items }, () => Int32Array.from([popular(), popular(), popular()]));
  const users = Array.from({ length: o.users }, (_, u) => ({
    id: `u${u}`,
    current: -1,
    left: 0,
    session: 0,
    activity: 0.2 + rand(), // some users are busier than others
  }));
  const activity = new Float64Array(o.users);
  let activityTotal = 0;
  users.forEach((u, k) => (activity[k] = activityTotal += u.activity));
  let t = o.start;
  for (let n = 0; n < o.events; n++) {
    const user = users[search(activity, rand() * activityTotal)]!;
    t += 1 + Math.floor(rand() * 2000);
    if (user.left <= 0) {
      user.session += 1;
      user.left = 1 + Math.floor(rand() * 2 * o.sessionLength);
      user.current = -1;
    }
    const item = user.current >= 0 && rand() < o.followProbability ? next[user.current]![Math.floor(rand() * 3)]! : popular();
    user.current = item;
    user.left -= 1;
    const purchase = rand() < 0.03;
    yield interaction({ USER_ID: user.id, ITEM_ID: `i${item}`, TIMESTAMP: t, EVENT_TYPE: purchase ? 'purchase' : 'click', SESSION_ID: `${user.id}-s${user.session}` });
  }
}

export const SYNTHETIC_CATEGORIES = ['books', 'music', 'games', 'garden', 'kitchen', 'sports', 'toys', 'tools'] as const;

/** The catalogue of `syntheticInteractions`' items (i0 .. i<items-1>): a CATEGORY and a PRICE each, seeded. */
export function* syntheticItems(options: { seed?: number; items?: number; created?: number } = {}): Generator<Item> {
  const rand = prng((options.seed ?? 42) ^ 0x5eed);
  const n = options.items ?? 5000;
  for (let k = 0; k < n; k++) {
    yield {
      ITEM_ID: `i${k}`,
      CREATION_TIMESTAMP: options.created ?? Date.UTC(2025, 0, 1),
      METADATA: { CATEGORY: SYNTHETIC_CATEGORIES[Math.floor(rand() * SYNTHETIC_CATEGORIES.length)]!, PRICE: Math.round(500 + rand() * 9500) / 100 },
    };
  }
}

/** The first index whose cumulative weight reaches `x`. */
function search(cumulative: Float64Array, x: number): number {
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
