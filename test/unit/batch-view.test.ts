import { describe, expect, it } from 'vitest';
import { prng, syntheticInteractions } from '../../src/data/synthetic.js';
import { applyInteraction, MapStateView, type CountingParams } from '../../src/state/apply.js';
import { BatchView, StateCache } from '../../src/state/batch-view.js';
import { codecs, keys } from '../../src/state/model.js';
import { MemoryStore } from '../../src/state/memory-store.js';

const params: CountingParams = {
  maxEventsPerUser: 20,
  maxSeenItemsPerUser: 30,
  sessionTimeoutMs: 30 * 60_000,
  trendingHalfLifeMs: 3_600_000,
  coOccurrenceWindow: 4,
  coOccurrenceMaxPerItem: 15,
};

describe('BatchView over a store', () => {
  it.each([
    ['without a cache', undefined],
    ['with a small cache kept between batches', new StateCache(40)],
  ])('gives the same state as applying event by event over maps, whatever the batch sizes (%s)', async (_name, cache) => {
    const events = [...syntheticInteractions({ seed: 7, users: 60, items: 300, events: 4000 })];
    const reference = new MapStateView();
    for (const e of events) applyInteraction(reference, e, params);

    const store = new MemoryStore();
    const rand = prng(3);
    for (let at = 0; at < events.length; ) {
      const size = 1 + Math.floor(rand() * 400);
      const batch = events.slice(at, at + size);
      const view = await BatchView.prefetch(store, batch, params.coOccurrenceWindow, cache);
      for (const e of batch) applyInteraction(view, e, params);
      await store.write(view.changes());
      if (cache) view.keepIn(cache);
      at += size;
    }

    expect(reference.users.size).toBe(60);
    for (const [id, u] of reference.users) expect(codecs.user.decode((await store.get(keys.user(id)))!), id).toEqual(u);
    for (const [id, c] of reference.items) expect(codecs.item.decode((await store.get(keys.item(id)))!), id).toEqual(c);
    for (const [id, co] of reference.cos) expect(codecs.co.decode((await store.get(keys.co(id)))!), id).toEqual(co);
    let stored = 0;
    for await (const _ of store.range()) stored++;
    expect(stored).toBe(reference.users.size + reference.items.size + reference.cos.size);
  });

  it('a batch that did not commit leaves nothing behind once the cache is cleared', async () => {
    const store = new MemoryStore();
    const cache = new StateCache(100);
    const events = [...syntheticInteractions({ seed: 9, users: 5, items: 20, events: 50 })];
    const first = await BatchView.prefetch(store, events.slice(0, 25), params.coOccurrenceWindow, cache);
    for (const e of events.slice(0, 25)) applyInteraction(first, e, params);
    await store.write(first.changes());
    first.keepIn(cache);
    const before = codecs.user.decode((await store.get(keys.user(events[30]!.USER_ID)))!);
    // The second batch changes the cached objects, then fails before committing.
    const failed = await BatchView.prefetch(store, events.slice(25), params.coOccurrenceWindow, cache);
    for (const e of events.slice(25)) applyInteraction(failed, e, params);
    cache.clear();
    const again = await BatchView.prefetch(store, events.slice(25), params.coOccurrenceWindow, cache);
    expect(again.user(events[30]!.USER_ID)).toEqual(before);
  });

  it('throws on a key it was not given, instead of reading stale state', async () => {
    const view = await BatchView.prefetch(new MemoryStore(), [], 3);
    expect(() => view.user('nobody')).toThrow(/not prefetched/);
  });
});
