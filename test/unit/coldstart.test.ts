import { describe, expect, it } from 'vitest';
import { prng } from '../../src/data/synthetic.js';
import { CHOLESKY_MAX_FEATURES, fitTower, Tower, towerTargets, type TowerJSON } from '../../src/model/coldstart.js';
import { buildFeatureSpace, encodeAll, type FeatureRecord, type SparseRows } from '../../src/model/features.js';

function gaussian(r: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Rows [a, b) of a CSR, renumbered from 0. */
function rowsOf(X: SparseRows, a: number, b: number): SparseRows {
  const start = X.offsets[a]!;
  return { offsets: X.offsets.slice(a, b + 1).map((o) => o - start), ids: X.ids.slice(start, X.offsets[b]!), values: X.values.slice(start, X.offsets[b]!) };
}

function row(X: SparseRows, r: number): { ids: Int32Array; values: Float32Array } {
  return { ids: X.ids.subarray(X.offsets[r]!, X.offsets[r + 1]!), values: X.values.subarray(X.offsets[r]!, X.offsets[r + 1]!) };
}

/** Y = c + X·W* (+ noise), as float32, rows × dim. */
function linearTargets(X: SparseRows, F: number, dim: number, noise: number, seed: number): Float32Array {
  const g = gaussian(prng(seed));
  const W = Float64Array.from({ length: F * dim }, () => g() * 0.3);
  const c = Float64Array.from({ length: dim }, () => g());
  const rows = X.offsets.length - 1;
  const Y = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    for (let d = 0; d < dim; d++) {
      let y = c[d]! + noise * g();
      for (let p = X.offsets[r]!; p < X.offsets[r + 1]!; p++) y += X.values[p]! * W[X.ids[p]! * dim + d]!;
      Y[r * dim + d] = y;
    }
  }
  return Y;
}

/** Held-out R² of the tower on rows [from, rows) against predicting the training mean. */
function heldOut(tower: Tower, X: SparseRows, Y: Float32Array, from: number): { r2: number; maxErr: number } {
  const D = tower.dim;
  let sse = 0;
  let sst = 0;
  let maxErr = 0;
  for (let r = from; r < X.offsets.length - 1; r++) {
    const { ids, values } = row(X, r);
    const p = tower.predict(ids, values);
    for (let d = 0; d < D; d++) {
      const y = Y[r * D + d]!;
      sse += (p[d]! - y) ** 2;
      sst += (tower.bias[d]! - y) ** 2;
      maxErr = Math.max(maxErr, Math.abs(p[d]! - y));
    }
  }
  return { r2: 1 - sse / sst, maxErr };
}

/** Item metadata with a categorical, a multi-valued, a numeric and a boolean field. */
function catalogue(items: number, seed: number): FeatureRecord[] {
  const r = prng(seed);
  return Array.from({ length: items }, () => ({
    GENRE: `g${Math.floor(r() * 12)}`,
    TAGS: Array.from({ length: 1 + Math.floor(r() * 3) }, () => `t${Math.floor(r() * 25)}`),
    PRICE: Math.exp(r() * 2),
    NEW: r() < 0.3,
  }));
}

describe('fitTower (closed form)', () => {
  const records = catalogue(1200, 1);
  const space = buildFeatureSpace(records);
  const X = encodeAll(space, records);
  const F = space.size;
  const train = 1000;

  it('reproduces held-out items when the targets are linear in the features', () => {
    const dim = 9;
    const Y = linearTargets(X, F, dim, 0, 2);
    const tower = fitTower({ features: rowsOf(X, 0, train), targets: Y.slice(0, train * dim), dim, featureCount: F, l2: 1e-6 });
    expect(tower.solver).toBe('cholesky');
    const { r2, maxErr } = heldOut(tower, X, Y, train);
    expect(maxErr).toBeLessThan(1e-4);
    expect(r2).toBeGreaterThan(0.99999);
  });

  it('generalises with noise and the default l2', () => {
    const dim = 9;
    const Y = linearTargets(X, F, dim, 0.3, 3);
    const tower = fitTower({ features: rowsOf(X, 0, train), targets: Y.slice(0, train * dim), dim, featureCount: F });
    // Signal variance ≈ 0.09 · (1 + 1/2 + 1 + ~0.3) per column against noise 0.09: R² ≈ 0.7 at best.
    expect(heldOut(tower, X, Y, train).r2).toBeGreaterThan(0.5);
  });

  it('shrinks more with a larger l2', () => {
    const dim = 4;
    const Y = linearTargets(X, F, dim, 0.3, 4);
    const fit = (l2: number) => fitTower({ features: rowsOf(X, 0, train), targets: Y.slice(0, train * dim), dim, featureCount: F, l2 });
    const norm = (t: Tower) => t.weights.reduce((s, w) => s + w * w, 0);
    expect(norm(fit(100))).toBeLessThan(0.5 * norm(fit(0.01)));
    // Far too much shrinkage costs accuracy.
    expect(heldOut(fit(1e5), X, Y, train).r2).toBeLessThan(heldOut(fit(1), X, Y, train).r2 - 0.2);
  });

  it('predicts the mean target for an item without features', () => {
    const dim = 5;
    const Y = linearTargets(X, F, dim, 0.1, 5);
    const tower = fitTower({ features: rowsOf(X, 0, train), targets: Y.slice(0, train * dim), dim, featureCount: F });
    const mean = new Float64Array(dim);
    for (let r = 0; r < train; r++) for (let d = 0; d < dim; d++) mean[d]! += Y[r * dim + d]! / train;
    const p = tower.predict([], []);
    expect(p.length).toBe(dim);
    for (let d = 0; d < dim; d++) expect(p[d]!).toBeCloseTo(mean[d]!, 5);
    // An item that has features gets something else.
    const { ids, values } = row(X, train);
    expect(Math.abs(tower.predict(ids, values)[0]! - mean[0]!)).toBeGreaterThan(1e-3);
  });

  it('accepts l2 = 0 even with features no training row uses', () => {
    const X2: SparseRows = { offsets: Int32Array.from([0, 1, 2, 3]), ids: Int32Array.from([0, 1, 0]), values: Float32Array.from([1, 1, 1]) };
    const tower = fitTower({ features: X2, targets: Float32Array.from([1, 3, 1]), dim: 1, featureCount: 4, l2: 0 });
    expect(tower.predict([0], [1])[0]).toBeCloseTo(1, 4);
    expect(tower.predict([1], [1])[0]).toBeCloseTo(3, 4);
    expect(tower.predict([3], [1])[0]).toBeCloseTo(5 / 3, 4);
  });
});

describe('fitTower (AdaGrad)', () => {
  /** Items with one of `a` values of field A, one of 40 of field B and a numeric: a + 41 features. */
  function wide(items: number, a: number, seed: number): SparseRows {
    const r = prng(seed);
    const offsets = [0];
    const ids: number[] = [];
    const values: number[] = [];
    for (let i = 0; i < items; i++) {
      ids.push(Math.floor(r() * a), a + Math.floor(r() * 40), a + 40);
      values.push(1, 1, r() * 2 - 1);
      offsets.push(ids.length);
    }
    return { offsets: Int32Array.from(offsets), ids: Int32Array.from(ids), values: Float32Array.from(values) };
  }

  it(`takes over above ${CHOLESKY_MAX_FEATURES} features and beats predicting the mean`, () => {
    const a = 2000;
    const F = a + 41;
    const items = 9000;
    const train = 8000;
    const dim = 6;
    const X = wide(items, a, 6);
    const Y = linearTargets(X, F, dim, 0.2, 7);
    const tower = fitTower({ features: rowsOf(X, 0, train), targets: Y.slice(0, train * dim), dim, featureCount: F });
    expect(tower.solver).toBe('adagrad');
    // About 4 training items per A value: A's share of the signal is only partly learnable.
    expect(heldOut(tower, X, Y, train).r2).toBeGreaterThan(0.6);
  });

  it('comes close to the closed form on the same data', () => {
    const F = 200 + 41;
    const X = wide(3000, 200, 8);
    const dim = 4;
    const Y = linearTargets(X, F, dim, 0.3, 9);
    const train = 2500;
    const fit = (solver: 'cholesky' | 'adagrad') => fitTower({ features: rowsOf(X, 0, train), targets: Y.slice(0, train * dim), dim, featureCount: F, solver });
    const exact = heldOut(fit('cholesky'), X, Y, train).r2;
    const sgd = heldOut(fit('adagrad'), X, Y, train).r2;
    expect(exact).toBeGreaterThan(0.5);
    expect(sgd).toBeGreaterThan(exact - 0.03);
  });

  it('is reproducible for a seed and predicts the mean without features', () => {
    const F = 100 + 41;
    const X = wide(800, 100, 10);
    const dim = 3;
    const Y = linearTargets(X, F, dim, 0.3, 11);
    const fit = (seed: number) => fitTower({ features: X, targets: Y, dim, featureCount: F, solver: 'adagrad', seed, epochs: 3 });
    const a = fit(1);
    expect(fit(1).weights).toEqual(a.weights);
    expect(fit(2).weights).not.toEqual(a.weights);
    const mean = [0, 1, 2].map((d) => Y.filter((_, k) => k % dim === d).reduce((s, y) => s + y, 0) / 800);
    const p = a.predict([], []);
    for (let d = 0; d < dim; d++) expect(p[d]!).toBeCloseTo(mean[d]!, 5);
  });
});

describe('Tower', () => {
  it('round-trips through plain JSON to identical predictions', () => {
    const records = catalogue(300, 12);
    const space = buildFeatureSpace(records);
    const X = encodeAll(space, records);
    const dim = 7;
    const Y = linearTargets(X, space.size, dim, 0.2, 13);
    const tower = fitTower({ features: X, targets: Y, dim, featureCount: space.size });
    const back = Tower.fromJSON(JSON.parse(JSON.stringify(tower)) as TowerJSON);
    expect(back.solver).toBe(tower.solver);
    expect(back.weights).toEqual(tower.weights);
    expect(back.bias).toEqual(tower.bias);
    for (let r = 0; r < 20; r++) {
      const { ids, values } = row(X, r);
      expect(back.predict(ids, values)).toEqual(tower.predict(ids, values));
    }
  });

  it('ignores feature ids it does not know when predicting', () => {
    const tower = new Tower(2, 2, Float32Array.from([1, 2, 3, 4]), Float32Array.from([10, 20]), 'cholesky');
    expect(Array.from(tower.predict([1, 5, -1], [2, 1, 1]))).toEqual([16, 28]);
  });

  it('refuses inconsistent input', () => {
    const X: SparseRows = { offsets: Int32Array.from([0, 1]), ids: Int32Array.from([3]), values: Float32Array.from([1]) };
    expect(() => fitTower({ features: X, targets: Float32Array.from([1]), dim: 1, featureCount: 3 })).toThrow(/feature id 3/);
    expect(() => fitTower({ features: X, targets: Float32Array.from([1, 2]), dim: 1, featureCount: 4 })).toThrow(/target values/);
    expect(() => new Tower(2, 2, new Float32Array(3), new Float32Array(2), 'cholesky')).toThrow();
  });
});

describe('towerTargets', () => {
  it('lays out [E row, bOut] per item', () => {
    const E = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const bOut = Float32Array.from([0.1, 0.2, 0.3]);
    expect(Array.from(towerTargets({ hidden: 2, E, bOut }, [2, 0]))).toEqual([5, 6, Math.fround(0.3), 1, 2, Math.fround(0.1)]);
  });
});
