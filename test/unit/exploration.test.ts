import { describe, expect, it } from 'vitest';
import { prng } from '../../src/data/synthetic.js';
import { isExplorable, mixExploration, type ScoredItem } from '../../src/model/exploration.js';

const DAY = 86_400_000;

const list = (prefix: string, n: number): ScoredItem[] => Array.from({ length: n }, (_, i) => ({ itemId: `${prefix}${i}`, score: n - i }));
const ids = (xs: { itemId: string }[]) => xs.map((x) => x.itemId);
const explored = (xs: { itemId: string; reason?: string }[]) => xs.filter((x) => x.reason === 'exploration').length;

describe('isExplorable', () => {
  const now = Date.UTC(2025, 0, 31);
  it('is true within the age cutoff, false beyond it or without a creation time', () => {
    expect(isExplorable(now - 5 * DAY, now, 30 * DAY)).toBe(true);
    expect(isExplorable(now - 30 * DAY, now, 30 * DAY)).toBe(true);
    expect(isExplorable(now - 30 * DAY - 1, now, 30 * DAY)).toBe(false);
    expect(isExplorable(null, now, 30 * DAY)).toBe(false);
    expect(isExplorable(Number.NaN, now, 30 * DAY)).toBe(false);
    // Created "after" now (clock skew): new.
    expect(isExplorable(now + DAY, now, 30 * DAY)).toBe(true);
  });
});

describe('mixExploration', () => {
  const ranked = list('r', 20);
  const fresh = list('n', 20);

  it('returns the ranked list unchanged with weight 0, and never fills from the new items', () => {
    const out = mixExploration(ranked, fresh, { numResults: 10, weight: 0, random: prng(1) });
    expect(out).toEqual(ranked.slice(0, 10));
    expect(out[0]).toBe(ranked[0]);
    const short = mixExploration(ranked.slice(0, 3), fresh, { numResults: 10, weight: 0, random: prng(1) });
    expect(ids(short)).toEqual(['r0', 'r1', 'r2']);
  });

  it('keeps the fields of ranked entries (a popular fill-in stays marked as such)', () => {
    const withReason = [{ itemId: 'p', score: 1, reason: 'popular' as const }];
    expect(mixExploration(withReason, [], { numResults: 1, weight: 0.5, random: prng(1) })).toEqual(withReason);
  });

  it('takes only new items with weight 1, best first, then falls back to the ranked list', () => {
    const out = mixExploration(ranked, fresh.slice(0, 4), { numResults: 7, weight: 1, random: prng(2) });
    expect(ids(out)).toEqual(['n0', 'n1', 'n2', 'n3', 'r0', 'r1', 'r2']);
    expect(out.slice(0, 4).every((x) => 'reason' in x && x.reason === 'exploration')).toBe(true);
    expect(out.slice(4).some((x) => 'reason' in x)).toBe(false);
    expect(out[0]).toEqual({ itemId: 'n0', score: 20, reason: 'exploration' });
  });

  it('gives exploration about `weight` of the slots over many seeded draws', () => {
    for (const weight of [0.3, 0.7]) {
      const random = prng(42);
      let slots = 0;
      let exploring = 0;
      for (let t = 0; t < 2000; t++) {
        const out = mixExploration(ranked, fresh, { numResults: 10, weight, random });
        expect(out.length).toBe(10);
        slots += out.length;
        exploring += explored(out);
      }
      expect(Math.abs(exploring / slots - weight)).toBeLessThan(0.015);
    }
  });

  it('keeps each list in its own order', () => {
    const out = mixExploration(ranked, fresh, { numResults: 20, weight: 0.5, random: prng(9) });
    const fromNew = out.filter((x) => 'reason' in x);
    const fromRanked = out.filter((x) => !('reason' in x));
    expect(fromNew.length).toBeGreaterThan(3);
    expect(fromRanked.length).toBeGreaterThan(3);
    expect(ids(fromNew)).toEqual(ids(fresh).slice(0, fromNew.length));
    expect(ids(fromRanked)).toEqual(ids(ranked).slice(0, fromRanked.length));
  });

  it('is the same for the same random sequence', () => {
    const a = mixExploration(ranked, fresh, { numResults: 15, weight: 0.4, random: prng(7) });
    const b = mixExploration(ranked, fresh, { numResults: 15, weight: 0.4, random: prng(7) });
    const c = mixExploration(ranked, fresh, { numResults: 15, weight: 0.4, random: prng(8) });
    expect(b).toEqual(a);
    expect(ids(c)).not.toEqual(ids(a));
  });

  it('lists an item in both lists once, marked only when it came from the new items', () => {
    const r = [{ itemId: 'x', score: 9 }, ...list('r', 5)];
    const n = [{ itemId: 'x', score: 1 }, ...list('n', 5)];
    // Ranked first (no exploration on the first slot): x is the model's pick, not exploration.
    const seq = [0.9, 0, 0, 0.9, 0, 0.9, 0.9, 0.9];
    let k = 0;
    const out = mixExploration(r, n, { numResults: 8, weight: 0.5, random: () => seq[k++]! });
    expect(out[0]).toEqual({ itemId: 'x', score: 9 });
    expect(ids(out)).toEqual(['x', 'n0', 'n1', 'r0', 'n2', 'r1', 'r2', 'r3']);
    // Exploration first: x comes from the new items, and is skipped in the ranked list later.
    const out2 = mixExploration(r, n, { numResults: 4, weight: 0.5, random: () => 0 });
    expect(out2[0]).toEqual({ itemId: 'x', score: 1, reason: 'exploration' });
    const mixed = mixExploration(r, n, { numResults: 12, weight: 0.5, random: prng(3) });
    expect(new Set(ids(mixed)).size).toBe(mixed.length);
    expect(mixed.length).toBe(11);
  });

  it('never repeats an item, over many seeded draws with overlapping lists', () => {
    const random = prng(5);
    const a = list('i', 30);
    const b = list('i', 30).filter((_, i) => i % 2 === 0);
    for (let t = 0; t < 200; t++) {
      const out = mixExploration(a, b, { numResults: 25, weight: 0.3, random });
      expect(out.length).toBe(25);
      expect(new Set(ids(out)).size).toBe(25);
    }
  });

  it('respects exclusions in both lists', () => {
    const exclude = new Set(['r0', 'r2', 'n0', 'n1']);
    for (const weight of [0, 0.5, 1]) {
      const out = mixExploration(ranked, fresh, { numResults: 12, weight, random: prng(4), exclude });
      expect(out.length).toBe(12);
      expect(ids(out).filter((id) => exclude.has(id))).toEqual([]);
    }
    const top = mixExploration(ranked, fresh, { numResults: 2, weight: 1, random: prng(4), exclude });
    expect(ids(top)).toEqual(['n2', 'n3']);
  });

  it('fills from the other list when one runs short, and stops when both do', () => {
    const fewNew = mixExploration(ranked, fresh.slice(0, 2), { numResults: 10, weight: 0.9, random: prng(6) });
    expect(fewNew.length).toBe(10);
    expect(explored(fewNew)).toBe(2);
    const fewRanked = mixExploration(ranked.slice(0, 2), fresh, { numResults: 10, weight: 0.1, random: prng(6) });
    expect(fewRanked.length).toBe(10);
    expect(explored(fewRanked)).toBe(8);
    const both = mixExploration(ranked.slice(0, 3), fresh.slice(0, 2), { numResults: 10, weight: 0.5, random: prng(6) });
    expect(both.length).toBe(5);
    expect(mixExploration([], [], { numResults: 3, weight: 0.5, random: prng(6) })).toEqual([]);
    expect(mixExploration(ranked, fresh, { numResults: 0, weight: 0.5, random: prng(6) })).toEqual([]);
  });

  it('rejects a weight outside 0..1 and a bad numResults', () => {
    expect(() => mixExploration(ranked, fresh, { numResults: 3, weight: 1.5, random: prng(1) })).toThrow(RangeError);
    expect(() => mixExploration(ranked, fresh, { numResults: 3, weight: Number.NaN, random: prng(1) })).toThrow(RangeError);
    expect(() => mixExploration(ranked, fresh, { numResults: -1, weight: 0.3, random: prng(1) })).toThrow(RangeError);
  });
});
