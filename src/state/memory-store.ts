/**
 * MemoryStore: the in-memory KeyValueStore, for unit tests of logic. A Map holds the values; a
 * sorted key array (bytewise UTF-8 order, like RocksDB's default comparator) serves `range`.
 *
 * This file also holds the argument checks both stores share (the RocksDB store imports them), so
 * both refuse the same bad input with the same messages.
 */
import { AppError } from '../errors/index.js';
import type { KeyValueStore, RangeOptions, WriteOp } from './store.js';

// ---- shared argument checks -------------------------------------------------------------------

/** In `u` mode only unpaired surrogates match: those strings have no UTF-8 form. */
const LONE_SURROGATE = /\p{Surrogate}/u;

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `a ${(value as object).constructor?.name ?? 'object'}`;
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  return `${typeof value} ${String(value)}`;
}

/** A key is any well-formed string (keys are stored as their UTF-8 bytes; '' is allowed). */
export function checkKey(key: unknown, what: string): asserts key is string {
  if (typeof key !== 'string') throw new Error(`${what} must be a string, got ${describeValue(key)}`);
  if (LONE_SURROGATE.test(key)) {
    throw new Error(`${what} ${JSON.stringify(key)} contains an unpaired surrogate, so it has no UTF-8 form`);
  }
}

/** Validates a whole batch before anything is applied (which keeps `write` all-or-nothing). */
export function checkOps(ops: unknown): asserts ops is readonly WriteOp[] {
  if (!Array.isArray(ops)) throw new Error(`write: ops must be an array, got ${describeValue(ops)}`);
  for (let i = 0; i < ops.length; i++) {
    const op: unknown = ops[i];
    if (typeof op !== 'object' || op === null) throw new Error(`write: op ${i} must be an object, got ${describeValue(op)}`);
    const { type, key, value } = op as { type?: unknown; key?: unknown; value?: unknown };
    if (type !== 'put' && type !== 'del') {
      throw new Error(`write: op ${i} has type ${describeValue(type)}; expected 'put' or 'del'`);
    }
    checkKey(key, `write: op ${i} (${type}) key`);
    if (type === 'put' && !Buffer.isBuffer(value)) {
      throw new Error(`write: op ${i} (put ${JSON.stringify(key)}) value must be a Buffer, got ${describeValue(value)}`);
    }
  }
}

export function checkKeys(keys: unknown): asserts keys is readonly string[] {
  if (!Array.isArray(keys)) throw new Error(`getMany: keys must be an array, got ${describeValue(keys)}`);
  keys.forEach((key, i) => checkKey(key, `getMany: keys[${i}]`));
}

export function checkRangeOptions(options: unknown): asserts options is RangeOptions {
  if (typeof options !== 'object' || options === null) throw new Error(`range: options must be an object, got ${describeValue(options)}`);
  const { prefix, gte, lt, limit, reverse } = options as Record<string, unknown>;
  if (prefix !== undefined) checkKey(prefix, 'range: prefix');
  if (gte !== undefined) checkKey(gte, 'range: gte');
  if (lt !== undefined) checkKey(lt, 'range: lt');
  if (limit !== undefined && !(limit === Infinity || (Number.isSafeInteger(limit) && (limit as number) >= 0))) {
    throw new Error(`range: limit must be a non-negative integer, got ${describeValue(limit)}`);
  }
  if (reverse !== undefined && typeof reverse !== 'boolean') throw new Error(`range: reverse must be a boolean, got ${describeValue(reverse)}`);
}

// ---- ordering ---------------------------------------------------------------------------------

/**
 * Orders well-formed strings by their UTF-8 bytes, i.e. by code point. Plain `<` compares UTF-16
 * code units, which puts characters above U+FFFF (surrogate pairs, 0xD800-0xDFFF) below
 * U+E000-U+FFFF; moving surrogates above 0xFFFF's neighbours at the first difference fixes that.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800) x += x < 0xe000 ? 0x2000 : -0x800;
      if (y >= 0xd800) y += y < 0xe000 ? 0x2000 : -0x800;
      return x - y;
    }
  }
  return a.length - b.length;
}

/** First index in sorted `keys` whose key is not below `key`. */
function lowerBound(keys: readonly string[], key: string, from = 0): number {
  let lo = from;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---- the store --------------------------------------------------------------------------------

/** Up to this many new or removed keys per write are spliced into the sorted array; more re-sort it. */
const SPLICE_LIMIT = 64;

export class MemoryStore implements KeyValueStore {
  readonly #data = new Map<string, Buffer>();
  /** Every key in bytewise order, or null when stale (rebuilt by the next `range`, which copies out its slice before its first yield). */
  #sorted: string[] | null = [];
  #closed = false;

  async get(key: string): Promise<Buffer | undefined> {
    this.#open();
    checkKey(key, 'get: key');
    const value = this.#data.get(key);
    return value && Buffer.from(value);
  }

  async getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    this.#open();
    checkKeys(keys);
    return keys.map((key) => {
      const value = this.#data.get(key);
      return value && Buffer.from(value);
    });
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    this.#open();
    checkOps(ops); // all-or-nothing: a bad op anywhere throws before anything changes
    const added: string[] = [];
    const removed: string[] = [];
    for (const op of ops) {
      if (op.type === 'put') {
        if (!this.#data.has(op.key)) added.push(op.key);
        this.#data.set(op.key, Buffer.from(op.value)); // a copy: the caller may reuse its Buffer
      } else if (this.#data.delete(op.key)) {
        removed.push(op.key);
      }
    }
    this.#reindex(added, removed);
  }

  range(options: RangeOptions = {}): AsyncIterable<[string, Buffer]> {
    this.#open();
    checkRangeOptions(options);
    return this.#range(options);
  }

  async clear(): Promise<void> {
    this.#open();
    this.#data.clear();
    this.#sorted = [];
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Reads a consistent view at the first `next()`: writes made while iterating are not seen. */
  async *#range({ prefix, gte, lt, limit = Infinity, reverse = false }: RangeOptions): AsyncGenerator<[string, Buffer]> {
    const keys = (this.#sorted ??= [...this.#data.keys()].sort(compareKeys));
    let lo = 0;
    let hi = keys.length;
    if (prefix !== undefined) {
      lo = lowerBound(keys, prefix);
      // Keys with the prefix form one run starting at lowerBound(prefix); find its end.
      let end = keys.length;
      let a = lo;
      while (a < end) {
        const mid = (a + end) >>> 1;
        if (keys[mid]!.startsWith(prefix)) a = mid + 1;
        else end = mid;
      }
      hi = a;
    }
    if (gte !== undefined) lo = Math.max(lo, lowerBound(keys, gte));
    if (lt !== undefined) hi = Math.min(hi, lowerBound(keys, lt));
    const count = Math.max(0, Math.min(hi - lo, limit));
    const picked = reverse ? keys.slice(hi - count, hi).reverse() : keys.slice(lo, lo + count);
    // Stored Buffers are never mutated in place (put stores a new copy), so holding them is a snapshot.
    const entries = picked.map((key) => [key, this.#data.get(key)!] as const);
    for (const [key, value] of entries) {
      if (this.#closed) throw new AppError('STORE_CLOSED', 'MemoryStore is closed');
      yield [key, Buffer.from(value)];
    }
  }

  #reindex(added: string[], removed: string[]): void {
    if (this.#sorted === null || (added.length === 0 && removed.length === 0)) return;
    if (added.length + removed.length > SPLICE_LIMIT) {
      this.#sorted = null;
      return;
    }
    const keys = this.#sorted;
    for (const key of removed) {
      const at = lowerBound(keys, key);
      if (keys[at] === key) keys.splice(at, 1);
    }
    for (const key of added) {
      if (!this.#data.has(key)) continue; // added, then deleted within the same batch
      const at = lowerBound(keys, key);
      if (keys[at] !== key) keys.splice(at, 0, key);
    }
    this.#sorted = keys;
  }

  #open(): void {
    if (this.#closed) throw new AppError('STORE_CLOSED', 'MemoryStore is closed');
  }
}
