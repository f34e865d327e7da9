/**
 * The state store: one interface, two implementations (RocksDB for real state, in-memory for unit
 * tests of logic), both passing one shared test suite (test/unit/store-suite.ts).
 *
 * Keys are strings (UTF-8, ordered bytewise), values are Buffers. Writes go in atomic batches: the
 * processor writes one batch per input batch, with the input offsets inside it.
 */

export type WriteOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

export interface RangeOptions {
  /** Only keys starting with this prefix. */
  prefix?: string;
  /** Inclusive lower bound. */
  gte?: string;
  /** Exclusive upper bound. */
  lt?: string;
  /** At most this many entries. */
  limit?: number;
  reverse?: boolean;
}

export interface KeyValueStore {
  /** The value of `key`, or undefined. */
  get(key: string): Promise<Buffer | undefined>;
  /** The values of `keys`, in the same order (undefined where missing). */
  getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]>;
  /** Applies every op or none (one atomic write batch). Later ops on the same key win. */
  write(ops: readonly WriteOp[]): Promise<void>;
  /** Entries in key order (bytewise), bounded by the options. */
  range(options?: RangeOptions): AsyncIterable<[string, Buffer]>;
  /** Deletes every key (used when a partition's state is dropped or rebuilt). */
  clear(): Promise<void>;
  close(): Promise<void>;
}
