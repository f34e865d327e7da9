import { describe, expect, it } from 'vitest';
import { popularityCount } from '../../src/recipes/popularity.js';
import { sims } from '../../src/recipes/sims.js';
import type { InteractionFields } from '../../src/state/apply.js';

let t = 0;
const ev = (USER_ID: string, ITEM_ID: string): InteractionFields => ({
  USER_ID,
  ITEM_ID,
  TIMESTAMP: (t += 1000),
  EVENT_TYPE: 'click',
  EVENT_VALUE: null,
  SESSION_ID: null,
});

describe('popularity-count', () => {
  it('ranks by distinct users, not events, ties by item id', () => {
    const model = popularityCount.train([ev('u1', 'a'), ev('u1', 'a'), ev('u1', 'a'), ev('u2', 'b'), ev('u3', 'b'), ev('u4', 'c'), ev('u5', 'd')]);
    expect(model.recommend({ history: [], numResults: 3 }).map((s) => [s.itemId, s.score])).toEqual([
      ['b', 2],
      ['a', 1],
      ['c', 1],
    ]);
    expect(model.recommend({ history: [], numResults: 10, exclude: new Set(['b']) }).map((s) => s.itemId)).toEqual(['a', 'c', 'd']);
  });

  it('with a half-life, ranks recent activity above old', () => {
    const H = 3_600_000;
    const events: InteractionFields[] = [];
    for (let u = 0; u < 5; u++) events.push({ ...ev(`u${u}`, 'old'), TIMESTAMP: u });
    for (let u = 0; u < 3; u++) events.push({ ...ev(`v${u}`, 'new'), TIMESTAMP: 10 * H + u });
    expect(popularityCount.train(events).recommend({ history: [], numResults: 1 })[0]!.itemId).toBe('old');
    expect(popularityCount.train(events, { trendingHalfLifeMs: H }).recommend({ history: [], numResults: 1 })[0]!.itemId).toBe('new');
  });
});

describe('sims', () => {
  // x and y are bought together by four users; x and p (very popular) by three; q alone.
  const events: InteractionFields[] = [];
  for (let u = 0; u < 4; u++) events.push(ev(`a${u}`, 'x'), ev(`a${u}`, 'y'));
  for (let u = 0; u < 3; u++) events.push(ev(`b${u}`, 'x'), ev(`b${u}`, 'p'));
  for (let u = 0; u < 30; u++) events.push(ev(`c${u}`, 'p'));
  events.push(ev('d0', 'q'));

  it('relates items by co-occurrence, discounting popular partners, above the minimum count', () => {
    const model = sims.train(events, { popularityDiscountFactor: 0.5, minCointeractionCount: 3 });
    const related = model.related('x', 2)!;
    // y: 4 / sqrt(4) = 2;  p: 3 / sqrt(33) = 0.52
    expect(related.map((s) => s.itemId)).toEqual(['y', 'p']);
    expect(related[0]!.score).toBeCloseTo(2, 12);
    expect(related[1]!.score).toBeCloseTo(3 / Math.sqrt(33), 12);
    // without the discount, raw counts: y 4 > p 3 still; with minimum 4, p drops out and popular items fill in
    const strict = sims.train(events, { minCointeractionCount: 4 }).related('x', 3)!;
    expect(strict.map((s) => [s.itemId, s.reason ?? 'sims'])).toEqual([
      ['y', 'sims'],
      ['p', 'popular'],
      ['q', 'popular'],
    ]);
  });

  it('fills an item with too little data from popular items, and knows no unknown item', () => {
    const model = sims.train(events);
    expect(model.related('q', 2)!.map((s) => [s.itemId, s.reason])).toEqual([
      ['p', 'popular'],
      ['x', 'popular'],
    ]);
    expect(model.related('never-seen', 5)).toBeUndefined();
  });

  it('recommends for a user from their recent items, newest weighing most, with exclusions', () => {
    const model = sims.train(events, { popularityDiscountFactor: 0 });
    const recs = model.recommend({ history: [{ ITEM_ID: 'y', TIMESTAMP: 1 }], numResults: 2, exclude: new Set(['y']) });
    expect(recs.map((s) => s.itemId)).toEqual(['x', 'p']);
    expect(recs[0]!.reason).toBeUndefined();
    expect(recs[1]!.reason).toBe('popular');
    const cold = model.recommend({ history: [], numResults: 2 });
    expect(cold.every((s) => s.reason === 'popular')).toBe(true);
  });
});

describe('models as JSON', () => {
  it('rebuild the same answers after a JSON round trip, and score item lists', async () => {
    const { PopularityModel } = await import('../../src/recipes/popularity.js');
    const { SimsModel } = await import('../../src/recipes/sims.js');
    const events: InteractionFields[] = [];
    for (let u = 0; u < 5; u++) events.push(ev(`a${u}`, 'x'), ev(`a${u}`, 'y'), ev(`a${u}`, 'z'));
    for (let u = 0; u < 8; u++) events.push(ev(`b${u}`, 'w'));
    const s = sims.train(events, { minCointeractionCount: 2 });
    const s2 = SimsModel.fromJSON(JSON.parse(JSON.stringify(s)) as Parameters<typeof SimsModel.fromJSON>[0]);
    const history = [{ ITEM_ID: 'x', TIMESTAMP: 1 }];
    expect(s2.recommend({ history, numResults: 4 })).toEqual(s.recommend({ history, numResults: 4 }));
    expect(s2.related('y', 3)).toEqual(s.related('y', 3));
    const scores = s.score(history, ['y', 'w', 'unknown']);
    expect(scores[0]).toBeGreaterThan(0); // y co-occurs with x
    expect(scores[1]).toBe(0); // w is known but unrelated to x
    expect(scores[2]).toBeUndefined();
    const p = popularityCount.train(events);
    const p2 = PopularityModel.fromJSON(JSON.parse(JSON.stringify(p)) as Parameters<typeof PopularityModel.fromJSON>[0]);
    expect(p2.recommend({ history: [], numResults: 4 })).toEqual(p.recommend({ history: [], numResults: 4 }));
    expect(p.score([], ['w', 'x', 'nope'])).toEqual([8, 5, undefined]);
  });
});
