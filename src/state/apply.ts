/**
 * The counting code: how one interaction changes a user's sequence and sessions, the item counts
 * (distinct users, time-decayed trend) and item-to-item co-occurrence. One implementation, used by
 * the stream processor (over a RocksDB-backed batch view) and by offline training (over maps).
 *
 * Rules (documented in docs/operations.md, The stream processor):
 * - Events of a user are applied in arrival order (their order in the partition).
 * - Sessions: with a SESSION_ID, a new id starts a new session; without one, a gap of more than
 *   `sessionTimeoutMs` after the user's latest event starts one.
 * - Out-of-order timestamps: an event older than the user's latest event is kept with its own
 *   timestamp, joins the current session, and does not move the user's latest time back; its
 *   trend contribution is decayed from its own time.
 * - Distinct users per item count a (user, item) pair once: a user remembers the last
 *   `maxSeenItemsPerUser` distinct items touched (a user who comes back to an item forgotten
 *   since is counted again).
 * - Co-occurrence: when a user touches an item for the first time, it co-occurs with the user's
 *   previous `coOccurrenceWindow` distinct items (both directions, once per user and pair). Each
 *   item keeps at most `coOccurrenceMaxPerItem` partners; the weakest (lowest count, then the
 *   greatest item id) is evicted.
 */
import type { Interaction } from '../serde/avro.js';
import type { CoOccurrence, ItemCounts, UserState } from './model.js';

export interface CountingParams {
  maxEventsPerUser: number;
  maxSeenItemsPerUser: number;
  sessionTimeoutMs: number;
  trendingHalfLifeMs: number;
  coOccurrenceWindow: number;
  coOccurrenceMaxPerItem: number;
}

export function countingParams(state: CountingParams): CountingParams {
  const { maxEventsPerUser, maxSeenItemsPerUser, sessionTimeoutMs, trendingHalfLifeMs, coOccurrenceWindow, coOccurrenceMaxPerItem } = state;
  return { maxEventsPerUser, maxSeenItemsPerUser, sessionTimeoutMs, trendingHalfLifeMs, coOccurrenceWindow, coOccurrenceMaxPerItem };
}

/**
 * Counting parameters for offline training, where nothing is bounded by memory pressure the way
 * the stream's state is: every distinct item a user touched is remembered.
 */
export function offlineCounting(overrides: Partial<CountingParams> = {}): CountingParams {
  return {
    maxEventsPerUser: 20,
    maxSeenItemsPerUser: Number.MAX_SAFE_INTEGER,
    sessionTimeoutMs: 30 * 60_000,
    trendingHalfLifeMs: 86_400_000,
    coOccurrenceWindow: 5,
    coOccurrenceMaxPerItem: 200,
    ...overrides,
  };
}

/** Synchronous access to the state an event touches (values are mutated in place, then set). */
export interface StateView {
  user(userId: string): UserState | undefined;
  setUser(userId: string, state: UserState): void;
  item(itemId: string): ItemCounts | undefined;
  setItem(itemId: string, counts: ItemCounts): void;
  co(itemId: string): CoOccurrence | undefined;
  setCo(itemId: string, co: CoOccurrence): void;
}

/** The fields of an Interaction the counting uses (the rest, e.g. CONTEXT, does not change counts). */
export type InteractionFields = Pick<Interaction, 'USER_ID' | 'ITEM_ID' | 'TIMESTAMP' | 'EVENT_TYPE' | 'EVENT_VALUE' | 'SESSION_ID'>;

/** The user's most recent distinct items, newest first, at most `n`, leaving out `except`. */
export function recentDistinctItems(user: { readonly events: readonly { item: string }[] } | undefined, n: number, except?: string): string[] {
  const out: string[] = [];
  if (!user) return out;
  const seen = new Set<string>();
  for (let k = user.events.length - 1; k >= 0 && out.length < n; k--) {
    const item = user.events[k]!.item;
    if (item === except || seen.has(item)) continue;
    seen.add(item);
    out.push(item);
  }
  return out;
}

export function applyInteraction(view: StateView, e: InteractionFields, p: CountingParams): void {
  const userId = e.USER_ID;
  const itemId = e.ITEM_ID;
  const ts = e.TIMESTAMP;
  const user = view.user(userId);

  // --- the user's sequence and session
  let state: UserState;
  if (!user) {
    state = { lastTs: ts, sessionKey: e.SESSION_ID, session: 0, sessionStart: ts, total: 0, seen: [], events: [] };
  } else {
    state = user;
    const newSession = e.SESSION_ID !== null ? e.SESSION_ID !== state.sessionKey : ts - state.lastTs > p.sessionTimeoutMs;
    if (newSession) {
      state.session += 1;
      state.sessionStart = ts;
    }
    state.sessionKey = e.SESSION_ID;
    if (ts > state.lastTs) state.lastTs = ts;
  }
  const seen = seenSet(state);
  const firstTime = !seen.has(itemId);
  const window = firstTime ? recentDistinctItems(state, p.coOccurrenceWindow, itemId) : [];
  state.events.push({ item: itemId, ts, type: e.EVENT_TYPE, value: e.EVENT_VALUE, session: state.session });
  if (state.events.length > p.maxEventsPerUser) state.events.splice(0, state.events.length - p.maxEventsPerUser);
  state.total += 1;
  view.setUser(userId, state);

  // --- item counts
  const counts = view.item(itemId) ?? { users: 0, events: 0, trend: 0, trendTs: ts, lastTs: ts };
  if (firstTime) {
    state.seen.push(itemId);
    seen.add(itemId);
    if (state.seen.length > p.maxSeenItemsPerUser) {
      for (const gone of state.seen.splice(0, state.seen.length - p.maxSeenItemsPerUser)) seen.delete(gone);
    }
    counts.users += 1;
  }
  counts.events += 1;
  addToTrend(counts, ts, p.trendingHalfLifeMs);
  if (ts > counts.lastTs) counts.lastTs = ts;
  view.setItem(itemId, counts);

  // --- co-occurrence (SIMS)
  for (const other of window) {
    bump(view, itemId, other, p.coOccurrenceMaxPerItem);
    bump(view, other, itemId, p.coOccurrenceMaxPerItem);
  }
}

// The set view of each UserState's `seen` list, built once per state object (per batch).
const seenSets = new WeakMap<UserState, Set<string>>();
function seenSet(state: UserState): Set<string> {
  let set = seenSets.get(state);
  if (!set) {
    set = new Set(state.seen);
    seenSets.set(state, set);
  }
  return set;
}

/** Adds one event at `ts` to a count that halves every `halfLifeMs` of event time. */
export function addToTrend(c: ItemCounts, ts: number, halfLifeMs: number): void {
  if (ts >= c.trendTs) {
    c.trend = c.trend * Math.pow(2, -(ts - c.trendTs) / halfLifeMs) + 1;
    c.trendTs = ts;
  } else {
    c.trend += Math.pow(2, -(c.trendTs - ts) / halfLifeMs);
  }
}

/** The trend value of `c` seen from time `now` (decayed further, never grown). */
export function trendAt(c: ItemCounts, now: number, halfLifeMs: number): number {
  return now <= c.trendTs ? c.trend : c.trend * Math.pow(2, -(now - c.trendTs) / halfLifeMs);
}

function bump(view: StateView, itemId: string, other: string, max: number): void {
  const co = view.co(itemId) ?? new Map<string, number>();
  const had = co.get(other);
  co.set(other, had === undefined ? 1 : had + 1);
  if (had === undefined && co.size > max + Math.ceil(max / 4)) trimCo(co, max);
  view.setCo(itemId, co);
}

/**
 * Lossy counting: drops every partner with the lowest count (ties included, so the result does
 * not depend on item ids or order), again until at most `max` remain. O(size) per pass.
 */
export function trimCo(co: CoOccurrence, max: number): void {
  while (co.size > max) {
    let min = Infinity;
    for (const c of co.values()) if (c < min) min = c;
    for (const [k, c] of co) if (c === min) co.delete(k);
  }
}

/** A StateView over plain maps: offline training and unit tests. */
export class MapStateView implements StateView {
  readonly users = new Map<string, UserState>();
  readonly items = new Map<string, ItemCounts>();
  readonly cos = new Map<string, CoOccurrence>();

  user(userId: string): UserState | undefined {
    return this.users.get(userId);
  }
  setUser(userId: string, state: UserState): void {
    this.users.set(userId, state);
  }
  item(itemId: string): ItemCounts | undefined {
    return this.items.get(itemId);
  }
  setItem(itemId: string, counts: ItemCounts): void {
    this.items.set(itemId, counts);
  }
  co(itemId: string): CoOccurrence | undefined {
    return this.cos.get(itemId);
  }
  setCo(itemId: string, co: CoOccurrence): void {
    this.cos.set(itemId, co);
  }
}
