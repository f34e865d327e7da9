/**
 * A feature space for item / user METADATA: learns from records which fields exist and what kind
 * each is, and turns a record into a sparse feature vector (ids ascending, float values), for the
 * cold-start tower (src/model/coldstart.ts) and anything else linear over metadata.
 *
 * Kinds, from the values a field is seen with (null / undefined: absent, no vote):
 *   categorical  string                one id per kept value, value 1
 *   multi        string[]              one id per kept value, value 1/k for the k distinct values of
 *                                      the record that map to an id, so the field sums to 1
 *   numeric      number                one id, value (x − mean) / std (std 1 when the field is constant)
 *   boolean      boolean               one id, value 1 / 0 (not standardised)
 * A field seen with more than one kind is categorical over the string form of its values (a list
 * joined with `|`, as the importer flattens one; numbers and booleans via String()).
 *
 * Vocabulary: per categorical / multi field, the values seen in at least `minCount` records, the
 * `maxValuesPerField` most frequent of them (count descending, then value). When any value was cut,
 * the field also gets one "other" id that every cut or unseen value maps to; otherwise an unseen
 * value is dropped. Ids are dense 0..size−1: fields by name, within a field its values in
 * vocabulary order, then its "other" id. Names and values compare by UTF-16 code units (no locale),
 * so the same records always give the same ids.
 *
 * Numeric statistics count finite values only; NaN / ±Infinity are dropped when encoding. A value
 * of the wrong kind for its field at encode time is dropped too (except: a string in a multi field
 * counts as a one-value list, and anything in a mixed field is looked up by its string form).
 */
import type { MetadataValue } from '../serde/avro.js';

export type FeatureValue = MetadataValue | null | undefined;
export type FeatureRecord = Readonly<Record<string, FeatureValue>>;
export type FieldKind = 'categorical' | 'multi' | 'numeric' | 'boolean';

export interface FeatureSpaceOptions {
  /** Values kept per categorical / multi field (the rest share the field's "other" id). Default 1000. */
  maxValuesPerField?: number;
  /** Values seen in fewer records go to "other". Default 1. */
  minCount?: number;
}

/** One sparse feature vector: ids ascending, no duplicates. */
export interface SparseVector {
  ids: Int32Array;
  values: Float32Array;
}

/** Many sparse vectors, CSR-like: row r is ids/values[offsets[r] .. offsets[r+1]). */
export interface SparseRows {
  offsets: Int32Array;
  ids: Int32Array;
  values: Float32Array;
}

/** A field as stored in JSON. */
export interface FieldJSON {
  name: string;
  kind: FieldKind;
  /** Mixed-kind field: values are looked up by their string form. */
  mixed?: boolean;
  /** First id of the field. */
  offset: number;
  /** categorical / multi: kept values in id order. */
  values?: string[];
  /** categorical / multi: whether the field has an "other" id (offset + values.length). */
  other?: boolean;
  /** numeric */
  mean?: number;
  std?: number;
}

export interface FeatureSpaceJSON {
  version: 1;
  size: number;
  fields: FieldJSON[];
}

interface Field {
  name: string;
  kind: FieldKind;
  mixed: boolean;
  offset: number;
  values: string[];
  index: Map<string, number>;
  /** Id of "other", or −1. */
  other: number;
  mean: number;
  std: number;
}

const KINDS: readonly FieldKind[] = ['categorical', 'multi', 'numeric', 'boolean'];
const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function kindOf(v: MetadataValue): FieldKind {
  if (typeof v === 'string') return 'categorical';
  if (typeof v === 'number') return 'numeric';
  if (typeof v === 'boolean') return 'boolean';
  return 'multi';
}

/** null, undefined and non-finite numbers count as absent everywhere. */
function isAbsent(v: FeatureValue): v is null | undefined {
  return v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v));
}

function stringForm(v: MetadataValue): string {
  return Array.isArray(v) ? v.join('|') : String(v);
}

export class FeatureSpace {
  /** Number of feature ids. */
  readonly size: number;
  readonly #fields: Field[];
  readonly #byName: Map<string, Field>;

  private constructor(fields: Field[]) {
    this.#fields = fields;
    this.#byName = new Map(fields.map((f) => [f.name, f]));
    const last = fields[fields.length - 1];
    this.size = last === undefined ? 0 : last.offset + fieldWidth(last);
  }

  /** Fields by name, with their kind, first id and number of ids. */
  get fields(): { name: string; kind: FieldKind; offset: number; width: number }[] {
    return this.#fields.map((f) => ({ name: f.name, kind: f.kind, offset: f.offset, width: fieldWidth(f) }));
  }

  /** A readable name for a feature id: `FIELD`, `FIELD=value` or `FIELD=<other>`. */
  describe(id: number): string {
    for (const f of this.#fields) {
      if (id < f.offset || id >= f.offset + fieldWidth(f)) continue;
      if (f.kind === 'numeric' || f.kind === 'boolean') return f.name;
      return id === f.other ? `${f.name}=<other>` : `${f.name}=${f.values[id - f.offset]!}`;
    }
    throw new RangeError(`feature id ${id} is outside 0..${this.size - 1}`);
  }

  /** Adds one record's features to `acc` (id -> value); `encode` / `encodeAll` are the usual way in. */
  accumulate(record: FeatureRecord, acc: Map<number, number>): void {
    for (const key of Object.keys(record)) {
      const v = record[key];
      if (isAbsent(v)) continue;
      const f = this.#byName.get(key);
      if (f === undefined) continue;
      if (f.mixed) {
        const id = lookup(f, stringForm(v));
        if (id >= 0) acc.set(id, 1);
        continue;
      }
      switch (f.kind) {
        case 'numeric':
          if (typeof v === 'number') acc.set(f.offset, (v - f.mean) / f.std);
          break;
        case 'boolean':
          if (typeof v === 'boolean') acc.set(f.offset, v ? 1 : 0);
          break;
        case 'categorical':
          if (typeof v === 'string') {
            const id = lookup(f, v);
            if (id >= 0) acc.set(id, 1);
          }
          break;
        case 'multi': {
          const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : [];
          const ids: number[] = [];
          for (const s of new Set(list)) {
            const id = lookup(f, s);
            if (id >= 0) ids.push(id);
          }
          for (const id of ids) acc.set(id, (acc.get(id) ?? 0) + 1 / ids.length);
          break;
        }
      }
    }
  }

  toJSON(): FeatureSpaceJSON {
    return {
      version: 1,
      size: this.size,
      fields: this.#fields.map((f): FieldJSON => {
        const base = { name: f.name, kind: f.kind, offset: f.offset };
        if (f.kind === 'numeric') return { ...base, mean: f.mean, std: f.std };
        if (f.kind === 'boolean') return base;
        return { ...base, ...(f.mixed ? { mixed: true } : {}), values: f.values.slice(), other: f.other >= 0 };
      }),
    };
  }

  static fromJSON(data: FeatureSpaceJSON): FeatureSpace {
    if (data?.version !== 1 || !Array.isArray(data.fields)) throw new Error('feature space: expected { version: 1, fields: [...] }');
    let next = 0;
    const fields = data.fields.map((j): Field => {
      if (!KINDS.includes(j.kind)) throw new Error(`feature space: field ${j.name} has unknown kind ${String(j.kind)}`);
      if (j.offset !== next) throw new Error(`feature space: field ${j.name} starts at ${j.offset}, expected ${next}`);
      const f = makeField(j.name, j.kind, j.mixed === true, j.offset, j.values ?? [], j.other === true, j.mean ?? 0, j.std ?? 1);
      next += fieldWidth(f);
      return f;
    });
    const space = new FeatureSpace(fields);
    if (space.size !== data.size) throw new Error(`feature space: fields cover ${space.size} ids, the file says ${data.size}`);
    return space;
  }
}

function fieldWidth(f: Field): number {
  if (f.kind === 'numeric' || f.kind === 'boolean') return 1;
  return f.values.length + (f.other >= 0 ? 1 : 0);
}

function lookup(f: Field, value: string): number {
  return f.index.get(value) ?? f.other;
}

function makeField(name: string, kind: FieldKind, mixed: boolean, offset: number, values: string[], hasOther: boolean, mean: number, std: number): Field {
  const hasValues = kind === 'categorical' || kind === 'multi';
  const vals = hasValues ? values : [];
  return {
    name,
    kind,
    mixed,
    offset,
    values: vals,
    index: new Map(vals.map((v, i) => [v, offset + i])),
    other: hasValues && hasOther ? offset + vals.length : -1,
    mean,
    std,
  };
}

/** Learns a feature space from records (METADATA maps). Reads `records` once, after copying it to an array. */
export function buildFeatureSpace(records: Iterable<FeatureRecord>, options: FeatureSpaceOptions = {}): FeatureSpace {
  const maxValues = options.maxValuesPerField ?? 1000;
  const minCount = options.minCount ?? 1;
  if (!Number.isInteger(maxValues) || maxValues < 0) throw new RangeError(`maxValuesPerField must be an integer >= 0, got ${maxValues}`);
  if (!Number.isFinite(minCount) || minCount < 1) throw new RangeError(`minCount must be >= 1, got ${minCount}`);
  const rows = Array.isArray(records) ? (records as readonly FeatureRecord[]) : Array.from(records);

  // Pass 1: each field's kind (mixed when seen with two).
  const kinds = new Map<string, FieldKind | 'mixed'>();
  for (const r of rows) {
    for (const key of Object.keys(r)) {
      const v = r[key];
      if (isAbsent(v)) continue;
      const k = kindOf(v);
      const seen = kinds.get(key);
      if (seen === undefined) kinds.set(key, k);
      else if (seen !== k) kinds.set(key, 'mixed');
    }
  }

  // Pass 2: value counts (records containing the value) and numeric moments (Welford).
  const counts = new Map<string, Map<string, number>>();
  const moments = new Map<string, { n: number; mean: number; m2: number }>();
  for (const [name, k] of kinds) {
    if (k === 'numeric') moments.set(name, { n: 0, mean: 0, m2: 0 });
    else if (k !== 'boolean') counts.set(name, new Map());
  }
  const bump = (m: Map<string, number>, s: string) => m.set(s, (m.get(s) ?? 0) + 1);
  for (const r of rows) {
    for (const key of Object.keys(r)) {
      const v = r[key];
      if (isAbsent(v)) continue;
      const k = kinds.get(key)!;
      if (k === 'numeric') {
        if (typeof v !== 'number') continue;
        const m = moments.get(key)!;
        m.n++;
        const d = v - m.mean;
        m.mean += d / m.n;
        m.m2 += d * (v - m.mean);
      } else if (k === 'multi') {
        for (const s of new Set(v as string[])) bump(counts.get(key)!, s);
      } else if (k !== 'boolean') {
        bump(counts.get(key)!, k === 'mixed' ? stringForm(v) : (v as string));
      }
    }
  }

  const fields: FieldJSON[] = [];
  let offset = 0;
  for (const name of [...kinds.keys()].sort(byCodeUnits)) {
    const k = kinds.get(name)!;
    if (k === 'numeric') {
      const m = moments.get(name)!;
      const sd = m.n > 0 ? Math.sqrt(m.m2 / m.n) : 0;
      fields.push({ name, kind: 'numeric', offset, mean: m.mean, std: sd > 1e-12 * Math.max(1, Math.abs(m.mean)) ? sd : 1 });
      offset += 1;
    } else if (k === 'boolean') {
      fields.push({ name, kind: 'boolean', offset });
      offset += 1;
    } else {
      const all = [...counts.get(name)!].sort((a, b) => b[1] - a[1] || byCodeUnits(a[0], b[0]));
      const values = all
        .filter(([, c]) => c >= minCount)
        .slice(0, maxValues)
        .map(([s]) => s);
      const other = values.length < all.length;
      fields.push({ name, kind: k === 'mixed' ? 'categorical' : k, ...(k === 'mixed' ? { mixed: true } : {}), offset, values, other });
      offset += values.length + (other ? 1 : 0);
    }
  }
  return FeatureSpace.fromJSON({ version: 1, size: offset, fields });
}

/** One record's sparse feature vector (ids ascending). Unknown fields and absent values contribute nothing. */
export function encode(space: FeatureSpace, record: FeatureRecord): SparseVector {
  const acc = new Map<number, number>();
  space.accumulate(record, acc);
  const ids = Int32Array.from(acc.keys()).sort();
  const values = new Float32Array(ids.length);
  for (let i = 0; i < ids.length; i++) values[i] = acc.get(ids[i]!)!;
  return { ids, values };
}

/** Many records' vectors, CSR-like (row r: ids/values[offsets[r] .. offsets[r+1])). */
export function encodeAll(space: FeatureSpace, records: Iterable<FeatureRecord>): SparseRows {
  const offsets: number[] = [0];
  const ids: number[] = [];
  const values: number[] = [];
  const acc = new Map<number, number>();
  for (const r of records) {
    acc.clear();
    space.accumulate(r, acc);
    const row = Int32Array.from(acc.keys()).sort();
    for (const id of row) {
      ids.push(id);
      values.push(acc.get(id)!);
    }
    offsets.push(ids.length);
  }
  return { offsets: Int32Array.from(offsets), ids: Int32Array.from(ids), values: Float32Array.from(values) };
}
