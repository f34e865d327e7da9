/**
 * Source rows (CSV/TSV fields, JSON Lines objects) -> Avro-shaped Interaction / Item / User records,
 * as pure functions: column mapping, timestamps, metadata types and their inference.
 */
import { parseTimestamp, type Parsed } from '../serde/timestamp.js';
import type { MetadataValue } from '../serde/avro.js';

export type Kind = 'interactions' | 'items' | 'users';
export type MetadataType = 'categorical' | 'multi' | 'numeric' | 'boolean' | 'text';
export const METADATA_TYPES: readonly MetadataType[] = ['categorical', 'multi', 'numeric', 'boolean', 'text'];

/** Fields of each kind filled from columns of their own name (or mapped); the rest go to CONTEXT / METADATA. */
export const KNOWN_FIELDS: Record<Kind, readonly string[]> = {
  interactions: ['USER_ID', 'ITEM_ID', 'TIMESTAMP', 'EVENT_TYPE', 'EVENT_VALUE', 'SESSION_ID', 'IMPRESSION', 'RECOMMENDATION_ID'],
  items: ['ITEM_ID', 'CREATION_TIMESTAMP'],
  users: ['USER_ID'],
};
export const REQUIRED_FIELDS: Record<Kind, readonly string[]> = {
  interactions: ['USER_ID', 'ITEM_ID', 'TIMESTAMP'],
  items: ['ITEM_ID'],
  users: ['USER_ID'],
};

/** Where each field of a record comes from, for one set of source columns. */
export interface Layout {
  columns: readonly string[];
  /** Known field -> column index. */
  known: Map<string, number>;
  /** Other columns -> CONTEXT / METADATA key. */
  extras: { index: number; key: string }[];
  /** Required fields with no column. */
  missing: string[];
  /** Mapping entries whose source column does not exist: [target, source]. */
  unmapped: [string, string][];
}

function findColumn(columns: readonly string[], name: string, used: Set<number>): number {
  const exact = columns.findIndex((c, i) => c === name && !used.has(i));
  if (exact !== -1) return exact;
  const lower = name.toLowerCase();
  return columns.findIndex((c, i) => c.toLowerCase() === lower && !used.has(i));
}

/** Resolves `map` (target field -> source column) and Personalize-style names (case-insensitive) against `columns`. */
export function buildLayout(columns: readonly string[], kind: Kind, map: Readonly<Record<string, string>> = {}): Layout {
  const knownNames = KNOWN_FIELDS[kind];
  const known = new Map<string, number>();
  const extras: { index: number; key: string }[] = [];
  const unmapped: [string, string][] = [];
  const used = new Set<number>();
  for (const [target, source] of Object.entries(map)) {
    const index = findColumn(columns, source, used);
    if (index === -1) {
      unmapped.push([target, source]);
      continue;
    }
    used.add(index);
    const field = knownNames.find((f) => f === target.toUpperCase());
    if (field !== undefined) known.set(field, index);
    else extras.push({ index, key: target });
  }
  for (const field of knownNames) {
    if (known.has(field) || unmapped.some(([t]) => t.toUpperCase() === field)) continue;
    const index = findColumn(columns, field, used);
    if (index === -1) continue;
    used.add(index);
    known.set(field, index);
  }
  columns.forEach((c, index) => {
    // Columns without a name (a trailing delimiter in the header) carry nothing.
    if (!used.has(index) && c.trim() !== '') extras.push({ index, key: c });
  });
  const missing = REQUIRED_FIELDS[kind].filter((f) => !known.has(f));
  return { columns, known, extras, missing, unmapped };
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A finite number from a number or a decimal string (no hex, no Infinity), else undefined. */
export function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (!DECIMAL.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const ZONELESS = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)$/;
const ZONED_SPACE = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}.*)$/;


/**
 * Epoch milliseconds from epoch seconds (a number < 1e11), epoch milliseconds (a number >= 1e11),
 * as numbers or decimal strings, or an ISO 8601 string with a date: `2025-01-31`,
 * `2025-01-31T12:00:00[.sss]` with or without a zone (`Z`, `+01:00`); a space may stand for the `T`.
 * A string without a zone is taken as UTC: import files are often exported without one, and UTC is the
 * only reading that does not depend on the machine running the import.
 */
export function importTimestamp(v: unknown): Parsed<number> {
  const n = toNumber(v);
  if (n !== undefined) return parseTimestamp(n);
  if (typeof v !== 'string') return { ok: false, reason: `expected epoch seconds, epoch milliseconds or an ISO 8601 date, got ${describe(v)}` };
  const s = v.trim();
  let iso = s;
  if (DATE_ONLY.test(s)) iso = `${s}T00:00:00Z`;
  else {
    const zoneless = ZONELESS.exec(s);
    if (zoneless) iso = `${zoneless[1]}T${zoneless[2]}Z`;
    else {
      const spaced = ZONED_SPACE.exec(s);
      if (spaced) iso = `${spaced[1]}T${spaced[2]}`;
    }
  }
  const parsed = parseTimestamp(iso);
  if (parsed.ok) return parsed;
  return { ok: false, reason: `expected epoch seconds, epoch milliseconds or an ISO 8601 date such as 2025-01-31T12:00:00Z, got ${describe(v)}` };
}

/** A string from a scalar (ids are often numbers in JSON); other values are returned as they are for the codec to refuse. */
export function toStringValue(v: unknown): unknown {
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return v;
}

/** Absent: undefined, null or an empty string (an empty CSV cell). */
export function isAbsent(v: unknown): v is undefined | null | '' {
  return v === undefined || v === null || v === '';
}

export function splitMulti(v: string): string[] {
  return v
    .split('|')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** A METADATA value of the given type. */
export function toMetadataValue(v: unknown, type: MetadataType): Parsed<MetadataValue> {
  switch (type) {
    case 'numeric': {
      const n = toNumber(v);
      return n === undefined ? { ok: false, reason: `expected a number (numeric column), got ${describe(v)}` } : { ok: true, value: n };
    }
    case 'boolean': {
      if (typeof v === 'boolean') return { ok: true, value: v };
      const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
      if (s === 'true' || s === 'false') return { ok: true, value: s === 'true' };
      return { ok: false, reason: `expected true or false (boolean column), got ${describe(v)}` };
    }
    case 'multi':
      if (Array.isArray(v)) return { ok: true, value: v.filter((x) => !isAbsent(x)).map((x) => String(toStringValue(x))) };
      return { ok: true, value: splitMulti(String(toStringValue(v))) };
    default:
      if (typeof v === 'string') return { ok: true, value: v };
      if (Array.isArray(v)) return { ok: true, value: v.map((x) => String(x)).join('|') };
      if (v !== null && typeof v === 'object') return { ok: true, value: JSON.stringify(v) };
      return { ok: true, value: String(v) };
  }
}

/** A CONTEXT value: a string (objects and arrays as JSON). */
export function toContextValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Per-column statistics for type inference. */
export class TypeStats {
  private values = 0;
  private numeric = 0;
  private boolean = 0;
  private multi = 0;
  private chars = 0;

  add(v: unknown): void {
    if (isAbsent(v)) return;
    this.values++;
    if (Array.isArray(v)) {
      this.multi++;
      this.chars += v.join('|').length;
      return;
    }
    if (toNumber(v) !== undefined) this.numeric++;
    if (typeof v === 'boolean' || (typeof v === 'string' && /^(true|false)$/i.test(v.trim()))) this.boolean++;
    const s = toContextValue(v);
    if (s.includes('|')) this.multi++;
    this.chars += s.length;
  }

  /**
   * numeric if every value is a number; multi if values contain `|`; boolean if every value is
   * true/false; text if the mean length is over 50 characters; else categorical (also for a column
   * with no values).
   */
  type(): MetadataType {
    if (this.values === 0) return 'categorical';
    if (this.numeric === this.values) return 'numeric';
    if (this.multi > 0) return 'multi';
    if (this.boolean === this.values) return 'boolean';
    if (this.chars / this.values > 50) return 'text';
    return 'categorical';
  }
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
