import { describe, expect, it } from 'vitest';
import { addToTrend, applyInteraction, MapStateView, recentDistinctItems, trendAt, trimCo, type CountingParams, type InteractionFields } from '../../src/state/apply.js';

const params: CountingParams = {
  maxEventsPerUser: 5,
  maxSeenItemsPerUser: 3,
  sessionTimeoutMs: 30 * 60_000,
  trendingHalfLifeMs: 60 * 60_000,
  coOccurrenceWindow: 2,
  coOccurrenceMaxPerItem: 3,
};
const MIN = 60_000;
const ev = (USER_ID: string, ITEM_ID: string, TIMESTAMP: number, extra: Partial<InteractionFields> = {}): InteractionFields => ({
  USER_ID,
  ITEM_ID,
  TIMESTAMP,
  EVENT_TYPE: 'click',
  EVENT_VALUE: null,
  SESSION_ID: null,
  ...extra,
});

function run(events: InteractionFields[], p = params): MapStateView {
  const view = new MapStateView();
  for (const e of events) applyInteraction(view, e, p);
  return view;
}

describe('counting: user sequences and sessions', () => {
  it('keeps the most recent events, bounded, and the total', () => {
    const v = run(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((item, k) => ev('u', item, k * MIN)));
    const u = v.user('u')!;
    expect(u.events.map((e) => e.item)).toEqual(['c', 'd', 'e', 'f', 'g']);
    expect(u.total).toBe(7);
  });

  it('starts a new session after the timeout, not before', () => {
    const v = run([ev('u', 'a', 0), ev('u', 'b', 30 * MIN), ev('u', 'c', 60 * MIN + 1), ev('u', 'd', 61 * MIN)]);
    expect(v.user('u')!.events.map((e) => e.session)).toEqual([0, 0, 1, 1]);
    expect(v.user('u')!.sessionStart).toBe(60 * MIN + 1);
  });

  it('follows SESSION_ID when events carry one, whatever the gap', () => {
    const v = run([
      ev('u', 'a', 0, { SESSION_ID: 's1' }),
      ev('u', 'b', 5 * 60 * MIN, { SESSION_ID: 's1' }),
      ev('u', 'c', 5 * 60 * MIN + 1, { SESSION_ID: 's2' }),
    ]);
    expect(v.user('u')!.events.map((e) => e.session)).toEqual([0, 0, 1]);
  });

  it('applies an out-of-order event in arrival order, in the current session, without moving time back', () => {
    const v = run([ev('u', 'a', 100 * MIN), ev('u', 'b', 10 * MIN), ev('u', 'c', 101 * MIN)]);
    const u = v.user('u')!;
    expect(u.events.map((e) => [e.item, e.ts, e.session])).toEqual([
      ['a', 100 * MIN, 0],
      ['b', 10 * MIN, 0],
      ['c', 101 * MIN, 0],
    ]);
    expect(u.lastTs).toBe(101 * MIN);
  });
});

describe('counting: items', () => {
  it('counts distinct users per item (Personalize popularity-count) and all events', () => {
    const v = run([ev('u1', 'x', 0), ev('u1', 'x', 1), ev('u2', 'x', 2), ev('u2', 'y', 3), ev('u1', 'x', 4)]);
    expect(v.item('x')!.users).toBe(2);
    expect(v.item('x')!.events).toBe(4);
    expect(v.item('y')!.users).toBe(1);
  });

  it('remembers the last maxSeenItemsPerUser distinct items: one forgotten since counts again', () => {
    const v = run([ev('u', 'x', 0), ev('u', 'a', 1), ev('u', 'b', 2), ev('u', 'x', 3), ev('u', 'c', 4), ev('u', 'x', 5)]);
    // seen: x a b (x again: known) c -> a b c (x forgotten) -> x: counted again
    expect(v.item('x')!.users).toBe(2);
    expect(v.user('u')!.seen).toEqual(['b', 'c', 'x']);
  });

  it('decays the trend count with the half-life, in event time, and accepts late events', () => {
    const H = params.trendingHalfLifeMs;
    const c = { users: 0, events: 0, trend: 0, trendTs: 0, lastTs: 0 };
    addToTrend(c, 0, H);
    addToTrend(c, H, H); // the first event is worth 0.5 one half-life later
    expect(c.trend).toBeCloseTo(1.5, 12);
    addToTrend(c, 0, H); // a late event from time 0 adds 0.5 at time H
    expect(c.trend).toBeCloseTo(2, 12);
    expect(trendAt(c, 3 * H, H)).toBeCloseTo(0.5, 12);
    expect(trendAt(c, 0, H)).toBe(c.trend);
  });
});

describe('counting: co-occurrence (SIMS)', () => {
  it('pairs a newly touched item with the user previous distinct items, within the window, both ways', () => {
    const v = run([ev('u', 'a', 0), ev('u', 'b', 1), ev('u', 'c', 2)]);
    expect(Object.fromEntries(v.co('a')!)).toEqual({ b: 1, c: 1 });
    expect(Object.fromEntries(v.co('c')!)).toEqual({ b: 1, a: 1 });
    // window 2: d pairs with c and b, not a
    applyInteraction(v, ev('u', 'd', 3), params);
    expect(Object.fromEntries(v.co('d')!)).toEqual({ c: 1, b: 1 });
    expect(Object.fromEntries(v.co('a')!)).toEqual({ b: 1, c: 1 });
  });

  it('counts a pair once per user, and sums over users', () => {
    const v = run([ev('u1', 'a', 0), ev('u1', 'b', 1), ev('u1', 'a', 2), ev('u1', 'b', 3), ev('u2', 'b', 4), ev('u2', 'a', 5)]);
    expect(Object.fromEntries(v.co('a')!)).toEqual({ b: 2 });
    expect(Object.fromEntries(v.co('b')!)).toEqual({ a: 2 });
  });

  it('drops the weakest partners once a quarter more than coOccurrenceMaxPerItem have gathered', () => {
    const events: InteractionFields[] = [];
    // max 3, slack 1: 'hub' co-occurs twice with p1, once with p2 and p3 (window 2)
    events.push(ev('u1', 'p1', 0), ev('u1', 'hub', 1));
    events.push(ev('u2', 'p1', 2), ev('u2', 'hub', 3));
    events.push(ev('u3', 'p2', 4), ev('u3', 'hub', 5));
    events.push(ev('u4', 'p3', 6), ev('u4', 'hub', 7));
    const v = run(events);
    expect(Object.fromEntries(v.co('hub')!)).toEqual({ p1: 2, p2: 1, p3: 1 });
    applyInteraction(v, ev('u5', 'p4', 8), params);
    applyInteraction(v, ev('u5', 'hub', 9), params);
    expect(Object.fromEntries(v.co('hub')!)).toEqual({ p1: 2, p2: 1, p3: 1, p4: 1 }); // within the slack
    applyInteraction(v, ev('u6', 'p0', 10), params);
    applyInteraction(v, ev('u6', 'hub', 11), params);
    // five partners > 3 + 1: every partner with the lowest count goes, whatever its id
    expect(Object.fromEntries(v.co('hub')!)).toEqual({ p1: 2 });
  });

  it('trims the lowest counts, ties included, until at most the cap remain', () => {
    const co = new Map(Object.entries({ b: 1, a: 1, c: 5, d: 2, e: 2 }));
    trimCo(co, 3);
    expect(Object.fromEntries(co)).toEqual({ c: 5, d: 2, e: 2 });
    trimCo(co, 2);
    expect(Object.fromEntries(co)).toEqual({ c: 5 });
    const small = new Map(Object.entries({ x: 1 }));
    trimCo(small, 2);
    expect(Object.fromEntries(small)).toEqual({ x: 1 });
  });

  it('lists recent distinct items newest first', () => {
    const v = run([ev('u', 'a', 0), ev('u', 'b', 1), ev('u', 'a', 2), ev('u', 'c', 3)]);
    expect(recentDistinctItems(v.user('u'), 5)).toEqual(['c', 'a', 'b']);
    expect(recentDistinctItems(v.user('u'), 2, 'c')).toEqual(['a', 'b']);
    expect(recentDistinctItems(undefined, 2)).toEqual([]);
  });
});
