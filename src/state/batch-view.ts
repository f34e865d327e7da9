/**
 * The StateView of one input batch over a KeyValueStore: every key the batch can touch is read in
 * two multi-gets up front (`prefetch`), the events are applied synchronously in memory, and the
 * changed keys come out as one list of write ops (`changes`) for the atomic write batch and the
 * changelog. Reading a key that was not prefetched is a bug, and throws.
 *
 * Values live in one map per kind, keyed by the ids themselves (no key strings built per access);
 * `null` marks a key that was read and is absent.
 */
import { recentDistinctItems, type InteractionFields, type StateView } from './apply.js';
import { codecs, keys, type CoOccurrence, type HrnnUserState, type ItemCounts, type UserState } from './model.js';
import type { KeyValueStore, WriteOp } from './store.js';

export class BatchView implements StateView {
  private readonly users = new Map<string, UserState | null>();
  private readonly items = new Map<string, ItemCounts | null>();
  private readonly cos = new Map<string, CoOccurrence | null>();
  private readonly hrnns = new Map<string, HrnnUserState | null>();
  private readonly dirty = { users: new Set<string>(), items: new Set<string>(), cos: new Set<string>(), hrnns: new Set<string>() };
  /** Users deleted in this batch (src/stream/deletion.ts): their keys come out as deletes. */
  private readonly deleted = new Set<string>();

  private constructor(private readonly store: KeyValueStore) {}

  /**
   * Reads everything `events` can touch (`window`: state.coOccurrenceWindow): from `cache` when it
   * holds the value, else from the store. The view works on the cached objects themselves, so after
   * a batch that did not commit the cache must be cleared (`StateCache.clear`).
   */
  static async prefetch(store: KeyValueStore, events: readonly InteractionFields[], window: number, cache?: StateCache, o: { hrnn?: boolean } = {}): Promise<BatchView> {
    const view = new BatchView(store);
    const users = new Map<string, number>();
    const items = new Set<string>();
    for (const e of events) {
      users.set(e.USER_ID, (users.get(e.USER_ID) ?? 0) + 1);
      items.add(e.ITEM_ID);
    }
    await Promise.all([
      load(store, [...users.keys()], view.users, cache?.users, keys.user, codecs.user.decode),
      load(store, [...items], view.items, cache?.items, keys.item, codecs.item.decode),
      load(store, [...items], view.cos, cache?.cos, keys.co, codecs.co.decode),
      o.hrnn ? load(store, [...users.keys()], view.hrnns, cache?.hrnns, keys.hrnn, codecs.hrnn.decode) : undefined,
    ]);
    // Co-occurrence partners come from the users' stored histories too.
    const more = new Set<string>();
    for (const [userId, n] of users) {
      for (const item of recentDistinctItems(view.users.get(userId) ?? undefined, window + n)) if (!view.cos.has(item)) more.add(item);
    }
    await load(store, [...more], view.cos, cache?.cos, keys.co, codecs.co.decode);
    return view;
  }

  /** After the batch committed: keeps every value it read or wrote in the cache for the next batches. */
  keepIn(cache: StateCache): void {
    for (const [id, v] of this.users) cache.users.set(id, v);
    for (const [id, v] of this.items) cache.items.set(id, v);
    for (const [id, v] of this.cos) cache.cos.set(id, v);
    for (const [id, v] of this.hrnns) cache.hrnns.set(id, v);
    cache.evict();
  }

  user(userId: string): UserState | undefined {
    return loaded(this.users, userId, 'user') ?? undefined;
  }
  setUser(userId: string, state: UserState): void {
    this.users.set(userId, state);
    this.dirty.users.add(userId);
  }
  item(itemId: string): ItemCounts | undefined {
    return loaded(this.items, itemId, 'item') ?? undefined;
  }
  setItem(itemId: string, counts: ItemCounts): void {
    this.items.set(itemId, counts);
    this.dirty.items.add(itemId);
  }
  co(itemId: string): CoOccurrence | undefined {
    return loaded(this.cos, itemId, 'co-occurrence') ?? undefined;
  }
  setCo(itemId: string, co: CoOccurrence): void {
    this.cos.set(itemId, co);
    this.dirty.cos.add(itemId);
  }

  /** The user's HRNN state (prefetched with `hrnn: true`). */
  hrnn(userId: string): HrnnUserState | undefined {
    return loaded(this.hrnns, userId, 'hrnn state') ?? undefined;
  }
  setHrnn(userId: string, state: HrnnUserState): void {
    this.hrnns.set(userId, state);
    this.dirty.hrnns.add(userId);
  }

  /** Deletes the user's keys (`u/`, `h/`); a later event of the user starts afresh. */
  deleteUser(userId: string): void {
    this.users.set(userId, null);
    this.hrnns.set(userId, null);
    this.dirty.users.delete(userId);
    this.dirty.hrnns.delete(userId);
    this.deleted.add(userId);
  }

  /** The changed keys as write ops, in key order (deterministic). */
  changes(): WriteOp[] {
    const ops: WriteOp[] = [];
    for (const id of this.deleted) {
      if (!this.dirty.users.has(id)) ops.push({ type: 'del', key: keys.user(id) });
      if (!this.dirty.hrnns.has(id)) ops.push({ type: 'del', key: keys.hrnn(id) });
    }
    for (const id of this.dirty.cos) ops.push({ type: 'put', key: keys.co(id), value: codecs.co.encode(this.cos.get(id)!) });
    for (const id of this.dirty.items) ops.push({ type: 'put', key: keys.item(id), value: codecs.item.encode(this.items.get(id)!) });
    for (const id of this.dirty.users) ops.push({ type: 'put', key: keys.user(id), value: codecs.user.encode(this.users.get(id)!) });
    for (const id of this.dirty.hrnns) ops.push({ type: 'put', key: keys.hrnn(id), value: codecs.hrnn.encode(this.hrnns.get(id)!) });
    return ops.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

async function load<T>(
  store: KeyValueStore,
  ids: string[],
  into: Map<string, T | null>,
  cache: Lru<T | null> | undefined,
  key: (id: string) => string,
  decode: (b: Buffer) => T,
): Promise<void> {
  const missing: string[] = [];
  for (const id of ids) {
    const hit = cache?.get(id);
    if (hit !== undefined) into.set(id, hit);
    else missing.push(id);
  }
  if (missing.length === 0) return;
  const values = await store.getMany(missing.map(key));
  missing.forEach((id, i) => {
    const b = values[i];
    into.set(id, b === undefined ? null : decode(b));
  });
}

/** A least-recently-used map (Map keeps insertion order; a hit moves the key to the end). */
class Lru<V> {
  private readonly map = new Map<string, V>();
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
  }
  get size(): number {
    return this.map.size;
  }
  trim(max: number): void {
    for (const k of this.map.keys()) {
      if (this.map.size <= max) break;
      this.map.delete(k);
    }
  }
  clear(): void {
    this.map.clear();
  }
}

/**
 * Decoded state kept between batches, per partition (the partition's state is this instance's
 * alone, so the cache is never stale while it is owned). Bounded: `maxEntries` per kind.
 */
export class StateCache {
  readonly users = new Lru<UserState | null>();
  readonly items = new Lru<ItemCounts | null>();
  readonly cos = new Lru<CoOccurrence | null>();
  readonly hrnns = new Lru<HrnnUserState | null>();
  constructor(private readonly maxEntries: number) {}
  evict(): void {
    this.users.trim(this.maxEntries);
    this.items.trim(this.maxEntries);
    this.cos.trim(this.maxEntries);
    this.hrnns.trim(this.maxEntries);
  }
  clear(): void {
    this.users.clear();
    this.items.clear();
    this.cos.clear();
    this.hrnns.clear();
  }
}

function loaded<T>(map: Map<string, T>, id: string, what: string): T {
  const v = map.get(id);
  if (v === undefined) throw new Error(`BatchView: ${what} ${JSON.stringify(id)} was not prefetched`);
  return v;
}
