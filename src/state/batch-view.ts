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
import { codecs, keys, type CoOccurrence, type ItemCounts, type UserState } from './model.js';
import type { KeyValueStore, WriteOp } from './store.js';

export class BatchView implements StateView {
  private readonly users = new Map<string, UserState | null>();
  private readonly items = new Map<string, ItemCounts | null>();
  private readonly cos = new Map<string, CoOccurrence | null>();
  private readonly dirty = { users: new Set<string>(), items: new Set<string>(), cos: new Set<string>() };

  private constructor(private readonly store: KeyValueStore) {}

  /** Reads everything `events` can touch (`window`: state.coOccurrenceWindow). */
  static async prefetch(store: KeyValueStore, events: readonly InteractionFields[], window: number): Promise<BatchView> {
    const view = new BatchView(store);
    const users = new Map<string, number>();
    const items = new Set<string>();
    for (const e of events) {
      users.set(e.USER_ID, (users.get(e.USER_ID) ?? 0) + 1);
      items.add(e.ITEM_ID);
    }
    const userIds = [...users.keys()];
    const itemIds = [...items];
    const values = await store.getMany([...userIds.map(keys.user), ...itemIds.map(keys.item), ...itemIds.map(keys.co)]);
    let at = 0;
    for (const id of userIds) view.users.set(id, decodeOr(values[at++], codecs.user.decode));
    for (const id of itemIds) view.items.set(id, decodeOr(values[at++], codecs.item.decode));
    for (const id of itemIds) view.cos.set(id, decodeOr(values[at++], codecs.co.decode));

    // Co-occurrence partners come from the users' stored histories too.
    const more = new Set<string>();
    for (const [userId, n] of users) {
      for (const item of recentDistinctItems(view.users.get(userId) ?? undefined, window + n)) if (!view.cos.has(item)) more.add(item);
    }
    const moreIds = [...more];
    const moreValues = await store.getMany(moreIds.map(keys.co));
    moreIds.forEach((id, i) => view.cos.set(id, decodeOr(moreValues[i], codecs.co.decode)));
    return view;
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

  /** The changed keys as write ops, in key order (deterministic). */
  changes(): WriteOp[] {
    const ops: WriteOp[] = [];
    for (const id of this.dirty.cos) ops.push({ type: 'put', key: keys.co(id), value: codecs.co.encode(this.cos.get(id)!) });
    for (const id of this.dirty.items) ops.push({ type: 'put', key: keys.item(id), value: codecs.item.encode(this.items.get(id)!) });
    for (const id of this.dirty.users) ops.push({ type: 'put', key: keys.user(id), value: codecs.user.encode(this.users.get(id)!) });
    return ops.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

function decodeOr<T>(b: Buffer | undefined, decode: (b: Buffer) => T): T | null {
  return b === undefined ? null : decode(b);
}

function loaded<T>(map: Map<string, T>, id: string, what: string): T {
  const v = map.get(id);
  if (v === undefined) throw new Error(`BatchView: ${what} ${JSON.stringify(id)} was not prefetched`);
  return v;
}
