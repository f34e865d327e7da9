import { describe, expect, it } from 'vitest';
import { prng } from '../../src/data/synthetic.js';
import { buildFeatureSpace, encode, encodeAll, FeatureSpace, type FeatureRecord, type FeatureSpaceJSON } from '../../src/model/features.js';

/** A record's encoding as { description: value }, for readable assertions. */
function named(space: FeatureSpace, record: FeatureRecord): Record<string, number> {
  const { ids, values } = encode(space, record);
  const out: Record<string, number> = {};
  for (let i = 0; i < ids.length; i++) out[space.describe(ids[i]!)] = values[i]!;
  return out;
}

const catalogue: FeatureRecord[] = [
  { GENRE: 'drama', TAGS: ['a', 'b'], PRICE: 10, NEW: true },
  { GENRE: 'drama', TAGS: ['b'], PRICE: 20, NEW: false },
  { GENRE: 'comedy', TAGS: ['b', 'c', 'c'], PRICE: 30 },
  { GENRE: 'action', TAGS: [], PRICE: null, NEW: true },
  { GENRE: 'comedy', PRICE: 40 },
];

describe('buildFeatureSpace', () => {
  it('learns each field kind and lays ids out by field name, then count descending, then value', () => {
    const space = buildFeatureSpace(catalogue);
    expect(space.fields).toEqual([
      { name: 'GENRE', kind: 'categorical', offset: 0, width: 3 },
      { name: 'NEW', kind: 'boolean', offset: 3, width: 1 },
      { name: 'PRICE', kind: 'numeric', offset: 4, width: 1 },
      { name: 'TAGS', kind: 'multi', offset: 5, width: 3 },
    ]);
    expect(space.size).toBe(8);
    // comedy 2 and drama 2 tie (by value), action 1; TAGS counts records: b 3, then a 1 and c 1.
    expect(Array.from({ length: space.size }, (_, id) => space.describe(id))).toEqual([
      'GENRE=comedy',
      'GENRE=drama',
      'GENRE=action',
      'NEW',
      'PRICE',
      'TAGS=b',
      'TAGS=a',
      'TAGS=c',
    ]);
    expect(() => space.describe(8)).toThrow(RangeError);
  });

  it('gives the same ids whatever the order of the records', () => {
    const r = prng(3);
    const records: FeatureRecord[] = Array.from({ length: 300 }, () => ({
      Z: `z${Math.floor(r() * 7)}`,
      A: Array.from({ length: 1 + Math.floor(r() * 3) }, () => `t${Math.floor(r() * 12)}`),
      M: r() < 0.5 ? 'x' : 1,
    }));
    const a = buildFeatureSpace(records);
    const b = buildFeatureSpace(records.slice().reverse());
    const ids = (s: FeatureSpace) => Array.from({ length: s.size }, (_, id) => s.describe(id));
    expect(a.size).toBeGreaterThan(15);
    expect(ids(b)).toEqual(ids(a));
  });

  it('accepts any iterable (a generator is read once)', () => {
    function* gen() {
      yield* catalogue;
    }
    expect(buildFeatureSpace(gen()).toJSON()).toEqual(buildFeatureSpace(catalogue).toJSON());
  });

  it('keeps the most frequent values and sends the rest to one "other" id per field', () => {
    const records = ['x', 'x', 'x', 'y', 'y', 'z', 'w'].map((C) => ({ C, D: 'only' }));
    const space = buildFeatureSpace(records, { maxValuesPerField: 2 });
    expect(space.fields.map((f) => [f.name, f.width])).toEqual([
      ['C', 3],
      ['D', 1],
    ]);
    expect(named(space, { C: 'x' })).toEqual({ 'C=x': 1 });
    expect(named(space, { C: 'y' })).toEqual({ 'C=y': 1 });
    expect(named(space, { C: 'z' })).toEqual({ 'C=<other>': 1 });
    // Unseen at build time: "other" where the field has one, dropped where it does not.
    expect(named(space, { C: 'never', D: 'never' })).toEqual({ 'C=<other>': 1 });
  });

  it('sends values seen in fewer than minCount records to "other"', () => {
    const records = ['x', 'x', 'y', 'y', 'z'].map((C) => ({ C }));
    const space = buildFeatureSpace(records, { minCount: 2 });
    expect(Array.from({ length: space.size }, (_, id) => space.describe(id))).toEqual(['C=x', 'C=y', 'C=<other>']);
    expect(named(space, { C: 'z' })).toEqual({ 'C=<other>': 1 });
  });

  it('treats a field seen with mixed kinds as categorical over the string form', () => {
    const space = buildFeatureSpace([{ M: 'a' }, { M: 3 }, { M: true }, { M: ['p', 'q'] }, { M: 3 }]);
    expect(space.fields).toEqual([{ name: 'M', kind: 'categorical', offset: 0, width: 4 }]);
    expect(space.describe(0)).toBe('M=3');
    expect(named(space, { M: 3 })).toEqual({ 'M=3': 1 });
    expect(named(space, { M: '3' })).toEqual({ 'M=3': 1 });
    expect(named(space, { M: true })).toEqual({ 'M=true': 1 });
    expect(named(space, { M: ['p', 'q'] })).toEqual({ 'M=p|q': 1 });
    expect(named(space, { M: 'b' })).toEqual({});
  });

  it('rejects bad options', () => {
    expect(() => buildFeatureSpace(catalogue, { maxValuesPerField: -1 })).toThrow(RangeError);
    expect(() => buildFeatureSpace(catalogue, { maxValuesPerField: 1.5 })).toThrow(RangeError);
    expect(() => buildFeatureSpace(catalogue, { minCount: 0 })).toThrow(RangeError);
  });
});

describe('encode', () => {
  const space = buildFeatureSpace(catalogue);
  // PRICE over 10, 20, 30, 40: mean 25, population std √125.
  const sd = Math.sqrt(125);

  it('standardises numerics, writes booleans as 1 / 0 and categoricals as 1', () => {
    const e = named(space, { GENRE: 'drama', PRICE: 25 + sd, NEW: false });
    expect(Object.keys(e).sort()).toEqual(['GENRE=drama', 'NEW', 'PRICE']);
    expect(e['GENRE=drama']).toBe(1);
    expect(e['NEW']).toBe(0);
    expect(e['PRICE']).toBeCloseTo(1, 6);
    expect(named(space, { PRICE: 10 })['PRICE']).toBeCloseTo(-15 / sd, 6);
    expect(named(space, { NEW: true })).toEqual({ NEW: 1 });
  });

  it('weights a multi-valued field 1/k over its k distinct known values, summing to 1', () => {
    const e = named(space, { TAGS: ['a', 'b', 'c'] });
    expect(Object.keys(e).sort()).toEqual(['TAGS=a', 'TAGS=b', 'TAGS=c']);
    for (const v of Object.values(e)) expect(v).toBeCloseTo(1 / 3, 6);
    // Duplicates count once; an unknown value (no "other" in this field) is dropped, not counted.
    expect(named(space, { TAGS: ['a', 'a', 'zzz', 'b'] })).toEqual({ 'TAGS=a': 0.5, 'TAGS=b': 0.5 });
    expect(named(space, { TAGS: 'c' })).toEqual({ 'TAGS=c': 1 });
    expect(named(space, { TAGS: [] })).toEqual({});
  });

  it('adds multi values that share the "other" id', () => {
    const s = buildFeatureSpace([{ T: ['a', 'b'] }, { T: ['a', 'c'] }, { T: ['a', 'd'] }], { maxValuesPerField: 1 });
    const e = named(s, { T: ['a', 'b', 'c', 'unseen'] });
    expect(e['T=a']).toBeCloseTo(0.25, 6);
    expect(e['T=<other>']).toBeCloseTo(0.75, 6);
  });

  it('drops missing, unknown, wrong-kind and non-finite values', () => {
    expect(named(space, {})).toEqual({});
    expect(named(space, { GENRE: null, PRICE: undefined, COLOUR: 'red' })).toEqual({});
    expect(named(space, { PRICE: Number.NaN, NEW: 1, GENRE: 7 })).toEqual({});
    expect(named(space, { PRICE: Number.POSITIVE_INFINITY, GENRE: 'comedy' })).toEqual({ 'GENRE=comedy': 1 });
  });

  it('ignores non-finite numbers when learning, and maps a constant numeric to 0', () => {
    const s = buildFeatureSpace([{ P: 5 }, { P: Number.NaN }, { P: 5 }, { P: Number.NEGATIVE_INFINITY }]);
    expect(s.fields).toEqual([{ name: 'P', kind: 'numeric', offset: 0, width: 1 }]);
    expect(s.toJSON().fields[0]).toMatchObject({ mean: 5, std: 1 });
    expect(named(s, { P: 5 })).toEqual({ P: 0 });
    expect(named(s, { P: 7 })).toEqual({ P: 2 });
  });

  it('returns ids ascending without duplicates', () => {
    const r = prng(11);
    const records: FeatureRecord[] = Array.from({ length: 200 }, () => ({
      Z: `z${Math.floor(r() * 5)}`,
      A: Array.from({ length: Math.floor(r() * 6) }, () => `t${Math.floor(r() * 9)}`),
      N: r() * 100,
      B: r() < 0.5,
    }));
    const s = buildFeatureSpace(records);
    for (const rec of records) {
      const { ids, values } = encode(s, rec);
      expect(ids.length).toBe(values.length);
      for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
    }
  });
});

describe('encodeAll', () => {
  it('is the rows of encode, CSR-like', () => {
    const space = buildFeatureSpace(catalogue);
    const all = encodeAll(space, catalogue);
    expect(all.offsets.length).toBe(catalogue.length + 1);
    expect(all.offsets[0]).toBe(0);
    expect(all.offsets[catalogue.length]).toBe(all.ids.length);
    catalogue.forEach((rec, r) => {
      const one = encode(space, rec);
      const a = all.offsets[r]!;
      const b = all.offsets[r + 1]!;
      expect(all.ids.slice(a, b)).toEqual(one.ids);
      expect(all.values.slice(a, b)).toEqual(one.values);
    });
    // Record 3 (GENRE action, TAGS [], PRICE null, NEW true) has two features.
    expect(all.offsets[4]! - all.offsets[3]!).toBe(2);
  });
});

describe('JSON', () => {
  it('round-trips through plain JSON to identical encodings', () => {
    const r = prng(5);
    const records: FeatureRecord[] = Array.from({ length: 500 }, () => ({
      CAT: `c${Math.floor(r() ** 2 * 40)}`,
      TAGS: Array.from({ length: Math.floor(r() * 4) }, () => `t${Math.floor(r() * 30)}`),
      PRICE: Math.exp(r() * 3),
      NEW: r() < 0.2,
      MIX: r() < 0.5 ? `m${Math.floor(r() * 3)}` : Math.floor(r() * 3),
    }));
    const space = buildFeatureSpace(records, { maxValuesPerField: 20 });
    const json = JSON.parse(JSON.stringify(space)) as FeatureSpaceJSON;
    const back = FeatureSpace.fromJSON(json);
    expect(back.size).toBe(space.size);
    expect(back.toJSON()).toEqual(space.toJSON());
    const probe = [...records, { CAT: 'unseen', TAGS: ['t1', 'nope'], PRICE: -3, MIX: 'zz' }];
    const a = encodeAll(space, probe);
    const b = encodeAll(back, probe);
    expect(b.offsets).toEqual(a.offsets);
    expect(b.ids).toEqual(a.ids);
    expect(b.values).toEqual(a.values);
  });

  it('refuses inconsistent data', () => {
    const json = buildFeatureSpace(catalogue).toJSON();
    expect(() => FeatureSpace.fromJSON({ ...json, size: json.size + 1 })).toThrow(/ids/);
    const shifted = { ...json, fields: json.fields.map((f, i) => (i === 1 ? { ...f, offset: f.offset + 1 } : f)) };
    expect(() => FeatureSpace.fromJSON(shifted)).toThrow(/starts at/);
    expect(() => FeatureSpace.fromJSON({ version: 2 } as unknown as FeatureSpaceJSON)).toThrow();
  });
});
