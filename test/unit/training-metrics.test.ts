import { describe, expect, it } from 'vitest';
import {
  dcgAtK,
  evaluate,
  hitAtK,
  hitPositions,
  idcgAtK,
  listMetrics,
  ndcgAtK,
  precisionAtK,
  recallAtK,
  reciprocalRankAtK,
} from '../../src/training/metrics.js';

// log2 values used below: log2(2) = 1, log2(3) = 1.5849625007, log2(4) = 2, log2(5) = 2.3219280949,
// log2(6) = 2.5849625007; so 1/log2(3) = 0.6309297536, 1/log2(5) = 0.4306765581, 1/log2(6) = 0.3868528072.
const INV_LOG2_3 = 0.6309297535714574;
const INV_LOG2_5 = 0.43067655807339306;
const INV_LOG2_6 = 0.38685280723454163;

/** n distinct filler ids that are never relevant. */
const fillers = (n: number, prefix = 'x'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('per-list metrics: recommended [a,b,c,d,e], truth {b,e,z}', () => {
  const rec = ['a', 'b', 'c', 'd', 'e'];
  const truth = new Set(['b', 'e', 'z']);

  it('finds the hits at positions 2 and 5', () => {
    expect(hitPositions(rec, truth, 5)).toEqual([2, 5]);
    expect(hitPositions(rec, truth, 4)).toEqual([2]);
  });

  it('precision divides by K, even when fewer than K were recommended', () => {
    // 2 hits in the top 5: 2/5; top 10 still 2 hits (only 5 recommended): 2/10; top 25: 2/25.
    expect(precisionAtK(rec, truth, 5)).toBeCloseTo(0.4, 12);
    expect(precisionAtK(rec, truth, 10)).toBeCloseTo(0.2, 12);
    expect(precisionAtK(rec, truth, 25)).toBeCloseTo(0.08, 12);
    // top 1 is a: 0/1.
    expect(precisionAtK(rec, truth, 1)).toBe(0);
  });

  it('recall divides by |truth| and hit is 1 with any hit', () => {
    // 2 of the 3 truth items: 2/3 at 5, 10, 25; at K=2 only b: 1/3.
    expect(recallAtK(rec, truth, 5)).toBeCloseTo(2 / 3, 12);
    expect(recallAtK(rec, truth, 25)).toBeCloseTo(2 / 3, 12);
    expect(recallAtK(rec, truth, 2)).toBeCloseTo(1 / 3, 12);
    expect(hitAtK(rec, truth, 5)).toBe(1);
    expect(hitAtK(rec, truth, 1)).toBe(0);
  });

  it('NDCG: DCG over hit positions with 1/log2(1+p), IDCG over min(K, |truth|) positions', () => {
    // DCG@5 = 1/log2(3) + 1/log2(6) = 0.6309297536 + 0.3868528072 = 1.0177825608
    expect(dcgAtK(rec, truth, 5)).toBeCloseTo(1.0177825608059992, 12);
    // IDCG@5 = 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.6309297536 + 0.5 = 2.1309297536 (|truth| = 3 < 5)
    expect(idcgAtK(3, 5)).toBeCloseTo(2.1309297535714578, 12);
    // NDCG@5 = 1.0177825608 / 2.1309297536 = 0.4776237035
    expect(ndcgAtK(rec, truth, 5)).toBeCloseTo(0.4776237035032179, 12);
    // K = 10, 25: no further hits and IDCG still over 3 positions: same value.
    expect(ndcgAtK(rec, truth, 10)).toBeCloseTo(0.4776237035032179, 12);
    expect(ndcgAtK(rec, truth, 25)).toBeCloseTo(0.4776237035032179, 12);
    // K = 2: DCG = 1/log2(3) = 0.6309297536; IDCG@2 = 1 + 1/log2(3) = 1.6309297536; NDCG = 0.3868528072.
    expect(ndcgAtK(rec, truth, 2)).toBeCloseTo(INV_LOG2_3 / (1 + INV_LOG2_3), 12);
    expect(ndcgAtK(rec, truth, 2)).toBeCloseTo(0.38685280723454163, 12);
  });

  it('reciprocal rank is 1 / position of the first hit', () => {
    // first hit b at position 2: 1/2.
    expect(reciprocalRankAtK(rec, truth)).toBe(0.5);
  });

  it('listMetrics gathers them all', () => {
    const m = listMetrics(rec, truth);
    expect(m.precision_at_5).toBeCloseTo(0.4, 12);
    expect(m.precision_at_10).toBeCloseTo(0.2, 12);
    expect(m.precision_at_25).toBeCloseTo(0.08, 12);
    expect(m.recall_at_10).toBeCloseTo(2 / 3, 12);
    expect(m.hit_at_25).toBe(1);
    expect(m.normalized_discounted_cumulative_gain_at_10).toBeCloseTo(0.4776237035032179, 12);
    expect(m.mean_reciprocal_rank_at_25).toBe(0.5);
  });
});

describe('per-list metrics: edge cases', () => {
  it('truth larger than K: IDCG uses K positions, so a perfect top K scores 1', () => {
    const truth = new Set(['t1', 't2', 't3', 't4', 't5', 't6', 't7']); // |truth| = 7 > K = 5
    const rec = ['t1', 'x1', 't2', 't3', 'x2', 't4'];
    // hits in the top 5 at positions 1, 3, 4 (t4 at 6 is outside).
    // DCG@5 = 1/log2(2) + 1/log2(4) + 1/log2(5) = 1 + 0.5 + 0.4306765581 = 1.9306765581
    expect(dcgAtK(rec, truth, 5)).toBeCloseTo(1 + 0.5 + INV_LOG2_5, 12);
    // IDCG@5 = 1 + 0.6309297536 + 0.5 + 0.4306765581 + 0.3868528072 = 2.9484591189
    expect(idcgAtK(7, 5)).toBeCloseTo(2.9484591188793923, 12);
    // NDCG@5 = 1.9306765581 / 2.9484591189 = 0.6548086578
    expect(ndcgAtK(rec, truth, 5)).toBeCloseTo(0.6548086577531307, 12);
    // precision@5 = 3/5; recall@5 = 3/7 (recall cannot reach 1 when |truth| > K).
    expect(precisionAtK(rec, truth, 5)).toBeCloseTo(0.6, 12);
    expect(recallAtK(rec, truth, 5)).toBeCloseTo(3 / 7, 12);
    // a perfect top 5: DCG@5 = IDCG@5, NDCG@5 = 1, precision 5/5, recall 5/7.
    const perfect = ['t3', 't1', 't7', 't2', 't5', 'x'];
    expect(ndcgAtK(perfect, truth, 5)).toBeCloseTo(1, 12);
    expect(precisionAtK(perfect, truth, 5)).toBe(1);
    expect(recallAtK(perfect, truth, 5)).toBeCloseTo(5 / 7, 12);
  });

  it('duplicate truth items count once', () => {
    const truth = ['b', 'b', 'e']; // the set {b, e}: |truth| = 2
    const rec = ['b', 'a', 'c'];
    // recall@5 = 1/2 (not 1/3); IDCG@5 = 1 + 1/log2(3) = 1.6309297536; NDCG@5 = 1/1.6309297536 = 0.6131471928
    expect(recallAtK(rec, truth, 5)).toBe(0.5);
    expect(ndcgAtK(rec, truth, 5)).toBeCloseTo(1 / (1 + INV_LOG2_3), 12);
    expect(ndcgAtK(rec, truth, 5)).toBeCloseTo(0.6131471927654584, 12);
  });

  it('a repeated recommendation is a hit once, at its first position', () => {
    const rec = ['x', 'b', 'b', 'b', 'b'];
    const truth = new Set(['b']);
    // one hit (position 2): precision@5 = 1/5, not 4/5; DCG@5 = 1/log2(3); IDCG@5 = 1; NDCG = 0.6309297536.
    expect(hitPositions(rec, truth, 5)).toEqual([2]);
    expect(precisionAtK(rec, truth, 5)).toBeCloseTo(0.2, 12);
    expect(ndcgAtK(rec, truth, 5)).toBeCloseTo(INV_LOG2_3, 12);
    expect(recallAtK(rec, truth, 5)).toBe(1);
  });

  it('an empty list scores 0 everywhere', () => {
    const m = listMetrics([], new Set(['a']));
    for (const value of Object.values(m)) expect(value).toBe(0);
    expect(Object.keys(m)).toHaveLength(13);
  });

  it('an empty truth scores 0 (no NaN) in the helpers', () => {
    expect(recallAtK(['a'], [], 5)).toBe(0);
    expect(ndcgAtK(['a'], [], 5)).toBe(0);
    expect(precisionAtK(['a'], [], 5)).toBe(0);
  });

  it('reciprocal rank counts the first hit only, and only within the top 25', () => {
    // a at position 3 and b at 4: only the first counts, 1/3.
    expect(reciprocalRankAtK(['x', 'y', 'a', 'b'], new Set(['a', 'b']))).toBeCloseTo(1 / 3, 12);
    const at25 = [...fillers(24), 'a'];
    expect(reciprocalRankAtK(at25, ['a'])).toBeCloseTo(1 / 25, 12);
    const at26 = [...fillers(25), 'a'];
    expect(reciprocalRankAtK(at26, ['a'])).toBe(0);
    // position 26 is outside every cutoff too.
    const m = listMetrics(at26, ['a']);
    expect(m.hit_at_25).toBe(0);
    expect(m.precision_at_25).toBe(0);
    // position 7: in the top 10 and 25, not the top 5. NDCG@10 = (1/log2(8)) / 1 = 1/3.
    const at7 = [...fillers(6), 'a'];
    const m7 = listMetrics(at7, ['a']);
    expect(m7.hit_at_5).toBe(0);
    expect(m7.hit_at_10).toBe(1);
    expect(m7.precision_at_10).toBeCloseTo(0.1, 12);
    expect(m7.normalized_discounted_cumulative_gain_at_5).toBe(0);
    expect(m7.normalized_discounted_cumulative_gain_at_10).toBeCloseTo(1 / 3, 12);
    expect(m7.mean_reciprocal_rank_at_25).toBeCloseTo(1 / 7, 12);
  });

  it('refuses a K that is not a positive integer', () => {
    expect(() => precisionAtK(['a'], ['a'], 0)).toThrow(RangeError);
    expect(() => ndcgAtK(['a'], ['a'], 2.5)).toThrow(RangeError);
    expect(() => idcgAtK(3, -1)).toThrow(RangeError);
  });
});

describe('evaluate', () => {
  const KEYS = [
    'users',
    'coverage',
    'mean_reciprocal_rank_at_25',
    'normalized_discounted_cumulative_gain_at_5',
    'normalized_discounted_cumulative_gain_at_10',
    'normalized_discounted_cumulative_gain_at_25',
    'precision_at_5',
    'precision_at_10',
    'precision_at_25',
    'recall_at_5',
    'recall_at_10',
    'recall_at_25',
    'hit_at_5',
    'hit_at_10',
    'hit_at_25',
  ];

  it('returns exactly the snake_case keys and users', () => {
    const report = evaluate([{ recommended: ['a'], truth: ['a'] }], 1);
    expect(Object.keys(report).sort()).toEqual([...KEYS].sort());
  });

  it('averages over users with a non-empty truth, and skips the others', () => {
    const report = evaluate(
      [
        // user 1: [a,b,c,d,e] vs {b,e,z}: P@5 = 0.4, R@5 = 2/3, NDCG@5 = 0.4776237035, RR = 1/2, hit = 1
        { recommended: ['a', 'b', 'c', 'd', 'e'], truth: ['b', 'e', 'z'] },
        // user 2: [q,r,s] vs {q}: P@5 = 1/5 = 0.2, R@5 = 1, NDCG@5 = 1, RR = 1, hit = 1
        { recommended: ['q', 'r', 's'], truth: new Set(['q']) },
        // user 3: [m] vs {n}: everything 0
        { recommended: ['m'], truth: ['n'] },
        // user 4: empty truth: not evaluated, and its items do not count towards coverage
        { recommended: ['w1', 'w2'], truth: [] },
      ],
      20,
    );
    expect(report.users).toBe(3);
    // P@5 = (0.4 + 0.2 + 0) / 3 = 0.2
    expect(report.precision_at_5).toBeCloseTo(0.2, 12);
    // P@10 = (2/10 + 1/10 + 0) / 3 = 0.1
    expect(report.precision_at_10).toBeCloseTo(0.1, 12);
    // R@5 = (2/3 + 1 + 0) / 3 = 5/9
    expect(report.recall_at_5).toBeCloseTo(5 / 9, 12);
    // hit@5 = (1 + 1 + 0) / 3
    expect(report.hit_at_5).toBeCloseTo(2 / 3, 12);
    // NDCG@5 = (0.4776237035 + 1 + 0) / 3 = 0.4925412345
    expect(report.normalized_discounted_cumulative_gain_at_5).toBeCloseTo(1.4776237035032179 / 3, 12);
    // MRR@25 = (1/2 + 1 + 0) / 3 = 0.5
    expect(report.mean_reciprocal_rank_at_25).toBeCloseTo(0.5, 12);
    // coverage: distinct {a,b,c,d,e,q,r,s,m} = 9 of 20 (w1, w2 excluded)
    expect(report.coverage).toBeCloseTo(9 / 20, 12);
  });

  it('coverage counts distinct items of the top 25 only, across users', () => {
    const long = fillers(30, 'i'); // i0..i29; only i0..i24 are in the top 25
    const report = evaluate(
      [
        { recommended: long, truth: ['i0'] },
        { recommended: ['i3', 'i24', 'extra'], truth: ['nope'] }, // i3, i24 already counted; +extra
      ],
      100,
    );
    // distinct = 25 (i0..i24) + 1 (extra) = 26; coverage = 26/100
    expect(report.coverage).toBeCloseTo(0.26, 12);
  });

  it('accepts any iterable of lists (a generator) and truth iterables', () => {
    function* lists(): Generator<{ recommended: string[]; truth: Iterable<string> }> {
      yield { recommended: ['a', 'b'], truth: new Set(['b']) };
      yield { recommended: ['c'], truth: ['c', 'c'] };
    }
    const report = evaluate(lists(), 4);
    expect(report.users).toBe(2);
    // RR: (1/2 + 1) / 2 = 0.75; coverage {a,b,c} / 4 = 0.75
    expect(report.mean_reciprocal_rank_at_25).toBeCloseTo(0.75, 12);
    expect(report.coverage).toBeCloseTo(0.75, 12);
    // recall@5: (1 + 1) / 2 = 1 (c counted once in truth)
    expect(report.recall_at_5).toBe(1);
  });

  it('reports zeros and users 0 when nobody is evaluated', () => {
    const report = evaluate([{ recommended: ['a'], truth: [] }], 10);
    expect(report.users).toBe(0);
    for (const key of KEYS) expect(report[key as keyof typeof report]).toBe(0);
  });

  it('refuses a catalogue size that is not a non-negative integer', () => {
    expect(() => evaluate([], -1)).toThrow(RangeError);
    expect(() => evaluate([], 1.5)).toThrow(RangeError);
    expect(evaluate([], 0).coverage).toBe(0);
  });

  it('DCG uses log base 2 (NDCG itself does not depend on the base: a base change scales DCG and IDCG alike)', () => {
    // hit at position 2: DCG = 1/log2(3) = 0.6309297536 (with ln it would be 1/ln 3 = 0.9102392266).
    expect(dcgAtK(['x', 'a'], ['a'], 5)).toBeCloseTo(0.6309297535714574, 12);
    // hits at 2 and 5: DCG = 1/log2(3) + 1/log2(6) = 1.0177825608
    expect(dcgAtK(['x', 'a', 'y', 'z', 'b'], ['a', 'b'], 5)).toBeCloseTo(INV_LOG2_3 + INV_LOG2_6, 12);
  });
});
