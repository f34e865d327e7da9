/**
 * The StateView of one input batch over a KeyValueStore: every key the batch can touch is read in
 * two multi-gets up front (`prefetch`), the events are applied synchronously in memory, and the
 * changed keys come out as one list of write ops (`changes`) for the atomic write batch and the
 * changelog. A key that was not prefetched is a bug, and throws.
 */
import { recentDistinctItems, type InteractionFields, type StateView } from './apply.js';
import { codecs, keys, type CoOccurrence, type ItemCounts, type UserState } from './model.js';
import type { KeyValueStore, WriteOp } from './store.js';

type Entry =
  | { kind: 'user'; value: UserState | undefined }
  | { kind: 'seen'; value: boolean }
  | { kind: 'item'; value: ItemCounts | undefined }
  | { kind: 'co'; value: CoOccurrence | undefined };

export class BatchView implements StateView {
  private readonly entries = new Map<string, Entry>();
  private readonly dirty = new Set<string>();

  private constructor(private readonly store: KeyValueStore) {}

  /** Reads everything `events` can touch (`window`: state.coOccurrenceWindow). */
  static async prefetch(store: KeyValueStore, events: readonly InteractionFields[], window: number): Promise<BatchView> {
    const view = new BatchView(store);
    const first = new Set<string>();
    const eventsPerUser = new Map<string, number>();
    for (const e of events) {
      first.add(keys.user(e.USER_ID));
      first.add(keys.seen(e.USER_ID, e.ITEM_ID));
      first.add(keys.item(e.ITEM_ID));
      first.add(keys.co(e.ITEM_ID));
      eventsPerUser.set(e.USER_ID, (eventsPerUser.get(e.USER_ID) ?? 0) + 1);
    }
    await view.load([...first]);
    // Co-occurrence partners come from the users' stored histories too.
    const second = new Set<string>();
    for (const [userId, n] of eventsPerUser) {
      const user = view.user(userId);
      for (const item of recentDistinctItems(user, window + n)) {
        const k = keys.co(item);
        if (!view.entries.has(k)) second.add(k);
      }
    }
    await view.load([...second]);
    return view;
  }

  private async load(list: string[]): Promise<void> {
    if (list.length === 0) return;
    const values = await this.store.getMany(list);
    for (let i = 0; i < list.length; i++) {
      const k = list[i]!;
      const b = values[i];
      switch (k[0]) {
        case 'u':
          this.entries.set(k, { kind: 'user', value: b ? codecs.user.decode(b) : undefined });
          break;
        case 's':
          this.entries.set(k, { kind: 'seen', value: b !== undefined });
          break;
        case 'i':
          this.entries.set(k, { kind: 'item', value: b ? codecs.item.decode(b) : undefined });
          break;
        case 'c':
          this.entries.set(k, { kind: 'co', value: b ? codecs.co.decode(b) : undefined });
          break;
        default:
          throw new Error(`BatchView: unexpected key ${k}`);
      }
    }
  }

  private entry(k: string): Entry {
    const e = this.entries.get(k);
    if (!e) throw new Error(`BatchView: key ${JSON.stringify(k)} was not prefetched`);
    return e;
  }

  private set(k: string, entry: Entry): void {
    this.entries.set(k, entry);
    this.dirty.add(k);
  }

  user(userId: string): UserState | undefined {
    return this.entry(keys.user(userId)).value as UserState | undefined;
  }
  setUser(userId: string, state: UserState): void {
    this.set(keys.user(userId), { kind: 'user', value: state });
  }
  seen(userId: string, itemId: string): boolean {
    return this.entry(keys.seen(userId, itemId)).value as boolean;
  }
  markSeen(userId: string, itemId: string): void {
    this.set(keys.seen(userId, itemId), { kind: 'seen', value: true });
  }
  item(itemId: string): ItemCounts | undefined {
    return this.entry(keys.item(itemId)).value as ItemCounts | undefined;
  }
  setItem(itemId: string, counts: ItemCounts): void {
    this.set(keys.item(itemId), { kind: 'item', value: counts });
  }
  co(itemId: string): CoOccurrence | undefined {
    return this.entry(keys.co(itemId)).value as CoOccurrence | undefined;
  }
  setCo(itemId: string, co: CoOccurrence): void {
    this.set(keys.co(itemId), { kind: 'co', value: co });
  }

  /** The changed keys as write ops, in key order (deterministic). */
  changes(): WriteOp[] {
    const ops: WriteOp[] = [];
    for (const k of [...this.dirty].sort()) {
      const e = this.entries.get(k)!;
      let value: Buffer;
      switch (e.kind) {
        case 'user':
          value = codecs.user.encode(e.value!);
          break;
        case 'seen':
          value = codecs.seen.encode();
          break;
        case 'item':
          value = codecs.item.encode(e.value!);
          break;
        case 'co':
          value = codecs.co.encode(e.value!);
          break;
      }
      ops.push({ type: 'put', key: k, value });
    }
    return ops;
  }
}
