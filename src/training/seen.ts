/**
 * The seen items of a user: what the `exclude` seen-items rule leaves out of the user's lists.
 *
 * One definition for every path, the same as the stream's user state (`seen` in src/state/apply.ts):
 * the distinct items the user touched, in order of first touch, at most `bound` of them; past the
 * bound the item touched first (longest ago) is forgotten, and an item touched again after it was
 * forgotten counts as new. The bound is the stream's `state.maxSeenItemsPerUser` (5,000 by default).
 *
 * - the stream and the query API: the user state's `seen` list (src/serving/query.ts);
 * - a model folder (`streamrec train -o`, the service's versions): each user's seen list over the
 *   whole training data (`seen` in model.json), apart from the latest events a recipe needs for its
 *   state; `streamrec batch-infer` leaves those out;
 * - offline evaluation (`train`, `evaluate`): a test user's seen list over the split's input part.
 */
import type { InteractionFields } from '../state/apply.js';

/** The default of `state.maxSeenItemsPerUser` (a unit test checks they agree). */
export const SEEN_ITEMS_PER_USER = 5000;

/**
 * A user's seen items from the items touched, oldest first: distinct, in order of first touch,
 * the latest `bound` first touches (as the stream's user state keeps them).
 */
export function seenItems(items: Iterable<string>, bound: number = SEEN_ITEMS_PER_USER): string[] {
  checkBound(bound);
  const list: string[] = [];
  const set = new Set<string>();
  let head = 0;
  for (const item of items) {
    if (set.has(item)) continue;
    set.add(item);
    list.push(item);
    if (list.length - head > bound) set.delete(list[head++]!);
  }
  return head === 0 ? list : list.slice(head);
}

/** Every user's seen items (`seenItems`) from interactions in time order. */
export function userSeenItems(interactions: readonly Pick<InteractionFields, 'USER_ID' | 'ITEM_ID'>[], bound: number = SEEN_ITEMS_PER_USER): Map<string, string[]> {
  checkBound(bound);
  const byUser = new Map<string, { list: string[]; set: Set<string>; head: number }>();
  for (const e of interactions) {
    let u = byUser.get(e.USER_ID);
    if (!u) byUser.set(e.USER_ID, (u = { list: [], set: new Set(), head: 0 }));
    if (u.set.has(e.ITEM_ID)) continue;
    u.set.add(e.ITEM_ID);
    u.list.push(e.ITEM_ID);
    if (u.list.length - u.head > bound) {
      u.set.delete(u.list[u.head++]!);
      // Compact now and then, so a long history does not keep every forgotten item.
      if (u.head > bound) {
        u.list = u.list.slice(u.head);
        u.head = 0;
      }
    }
  }
  const out = new Map<string, string[]>();
  for (const [userId, u] of byUser) out.set(userId, u.head === 0 ? u.list : u.list.slice(u.head));
  return out;
}

function checkBound(bound: number): void {
  if (!Number.isInteger(bound) || bound < 1) throw new RangeError(`the seen-items bound must be an integer >= 1, got ${bound}`);
}

/** The seen-items rule asked for: `auto` decides by the data's repeat rate. */
export type SeenRule = 'auto' | 'exclude' | 'include';

/**
 * The share of interactions whose user had already touched the item (repeats). Below `threshold`
 * users practically never come back to an item (ratings, durable purchases): seen items are left
 * out of their lists; above it (session clicks) they are ranked like any other.
 */
export function repeatRate(interactions: readonly InteractionFields[]): number {
  const seen = new Set<string>();
  let repeats = 0;
  for (const e of interactions) {
    const k = `${e.USER_ID}\u0000${e.ITEM_ID}`;
    if (seen.has(k)) repeats++;
    else seen.add(k);
  }
  return interactions.length === 0 ? 0 : repeats / interactions.length;
}

export const REPEAT_THRESHOLD = 0.01;

export function seenRule(rule: SeenRule, interactions: readonly InteractionFields[]): { excludeSeen: boolean; repeatRate: number } {
  const rate = repeatRate(interactions);
  return { excludeSeen: rule === 'exclude' || (rule === 'auto' && rate < REPEAT_THRESHOLD), repeatRate: rate };
}
