/**
 * The RocksDB KeyValueStore, on `rocksdb-native` (Holepunch's binding: prebuilt for linux-x64 in the
 * npm package, RocksDB 10.x, every call on libuv's thread pool so the event loop never waits on disk).
 *
 * Keys are stored as their UTF-8 bytes under RocksDB's default bytewise comparator, values as is.
 * Writes are not fsynced, but the WAL is on: a batch whose `write` resolved survives the process
 * being killed (it is in the OS's page cache), and reopening after SIGKILL replays it; RocksDB's
 * LOCK is an fcntl lock, which the OS drops when the process dies.
 */
import { AppError } from '../errors/index.js';
import { createRequire } from 'node:module';
import type { KeyValueStore, RangeOptions, WriteOp } from './store.js';
import { checkKey, checkKeys, checkOps, checkRangeOptions } from './memory-store.js';

// ---- the part of rocksdb-native used here (it ships no types) ----------------------------------

interface NativeWriteBatch {
  tryPut(key: Buffer, value: Buffer): void;
  tryDelete(key: Buffer): void;
  tryDeleteRange(start: Buffer, end: Buffer): void;
  flush(): Promise<void>;
}
interface NativeReadBatch {
  get(key: Buffer): Promise<Buffer | null>;
  tryFlush(): void;
}
/** A streamx Readable of entries; must be destroyed (or read to its end) before the db can close. */
interface NativeIterator extends AsyncIterable<{ key: Buffer; value: Buffer }> {
  destroy(): void;
}
interface NativeRange {
  gte: Buffer | null;
  lt: Buffer | null;
}
interface NativeDb {
  ready(): Promise<void>;
  close(): Promise<void>;
  /** autoDestroy: release the batch when its flush settles (an undestroyed batch blocks close). */
  write(options: { capacity: number; autoDestroy: true }): NativeWriteBatch;
  read(options: { capacity: number; autoDestroy: true }): NativeReadBatch;
  iterator(range: NativeRange, options: { reverse: boolean; limit: number; capacity: number }): NativeIterator;
}
type NativeDbClass = new (path: string, options: Record<string, unknown>) => NativeDb;

const RocksDB = createRequire(import.meta.url)('rocksdb-native') as NativeDbClass;

// ---- options ----------------------------------------------------------------------------------

export interface RocksStoreOptions {
  /** Create the directory and database when missing (default true); false refuses a missing one. */
  createIfMissing?: boolean;
  /**
   * Memtable size in bytes (default 8 MiB; RocksDB's own is 64 MiB). Several stores (one per Kafka
   * partition) are open at once, each with up to `maxWriteBufferNumber` memtables.
   */
  writeBufferSize?: number;
  /** Memtables per store, the one being filled plus those being flushed (default 2). */
  maxWriteBufferNumber?: number;
  /**
   * Use a block cache for reads from SST files (default true). rocksdb-native exposes no size: each
   * store gets RocksDB's built-in 32 MiB LRU cache; false turns caching off (reads hit the OS cache).
   */
  blockCache?: boolean;
  /** Flush and compaction threads (default 2, for a 2-core machine; rocksdb-native's default is 6). */
  maxBackgroundJobs?: number;
  /** SST files kept open per store (default 512; -1 keeps all open). Bounds file descriptors. */
  maxOpenFiles?: number;
}

const DEFAULTS: Required<RocksStoreOptions> = {
  createIfMissing: true,
  writeBufferSize: 8 * 1024 * 1024,
  maxWriteBufferNumber: 2,
  blockCache: true,
  maxBackgroundJobs: 2,
  maxOpenFiles: 512,
};

const EMPTY = Buffer.alloc(0);
/** Above every key: UTF-8 never contains the byte 0xFF. */
const ABOVE_ALL_KEYS = Buffer.from([0xff]);
/** Entries fetched from RocksDB per native call while iterating. */
const ITERATOR_CHUNK = 256;

/** Opens (by default creating) the RocksDB database in `dir`. */
export async function openRocksStore(dir: string, options: RocksStoreOptions = {}): Promise<KeyValueStore> {
  if (typeof dir !== 'string' || dir === '') throw new Error('openRocksStore: dir must be a non-empty path');
  const o = { ...DEFAULTS, ...options };
  for (const name of ['writeBufferSize', 'maxWriteBufferNumber', 'maxBackgroundJobs'] as const) {
    if (!Number.isSafeInteger(o[name]) || o[name] < 1) throw new Error(`openRocksStore: ${name} must be a positive integer, got ${o[name]}`);
  }
  if (!Number.isSafeInteger(o.maxOpenFiles) || (o.maxOpenFiles < 16 && o.maxOpenFiles !== -1)) {
    throw new Error(`openRocksStore: maxOpenFiles must be -1 or an integer of at least 16, got ${o.maxOpenFiles}`);
  }
  const db = new RocksDB(dir, {
    createIfMissing: o.createIfMissing,
    writeBufferSize: o.writeBufferSize,
    maxWriteBufferNumber: o.maxWriteBufferNumber,
    blockCache: o.blockCache,
    maxBackgroundJobs: o.maxBackgroundJobs,
    maxOpenFiles: o.maxOpenFiles,
    // rocksdb-native's default, stated because crash recovery relies on it: replay the WAL up to the
    // last intact record (a write torn by a kill is dropped whole, never half-applied).
    walRecoveryMode: 2, // POINT_IN_TIME
  });
  try {
    await db.ready();
  } catch (err) {
    await db.close().catch(() => undefined); // releases the native handle; it repeats the open error
    const reason = err instanceof Error ? err.message : String(err);
    const hint = /LOCK/.test(reason) ? ' (another process, or another store in this one, has it open)' : '';
    throw new Error(`Cannot open the RocksDB store in ${dir}: ${reason}${hint}`, { cause: err });
  }
  return new RocksStore(db, dir);
}

class RocksStore implements KeyValueStore {
  /** Iterators not yet finished: close() destroys them, since rocksdb-native waits for them forever. */
  readonly #iterators = new Set<NativeIterator>();
  #closing: Promise<void> | null = null;

  constructor(
    private readonly db: NativeDb,
    private readonly dir: string,
  ) {}

  async get(key: string): Promise<Buffer | undefined> {
    this.#open();
    checkKey(key, 'get: key');
    return (await this.#multiGet([key]))[0];
  }

  async getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    this.#open();
    checkKeys(keys);
    return this.#multiGet(keys);
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    this.#open();
    checkOps(ops); // nothing reaches RocksDB unless every op is valid
    if (ops.length === 0) return;
    // The binding keeps pointers into the Buffers until the write completes on a worker thread, so
    // hand it our own copy of the values: the caller may reuse its Buffers as soon as we return.
    const values = Buffer.concat(ops.map((op) => (op.type === 'put' ? op.value : EMPTY)));
    const batch = this.db.write({ capacity: ops.length, autoDestroy: true });
    let at = 0;
    for (const op of ops) {
      if (op.type === 'put') {
        batch.tryPut(Buffer.from(op.key, 'utf8'), values.subarray(at, at + op.value.length));
        at += op.value.length;
      } else {
        batch.tryDelete(Buffer.from(op.key, 'utf8'));
      }
    }
    await batch.flush(); // one rocksdb::WriteBatch, one DB::Write: atomic
  }

  range(options: RangeOptions = {}): AsyncIterable<[string, Buffer]> {
    this.#open();
    checkRangeOptions(options);
    return this.#range(options);
  }

  async clear(): Promise<void> {
    this.#open();
    // One range tombstone over every possible key, in one atomic batch; compaction reclaims the space.
    const batch = this.db.write({ capacity: 1, autoDestroy: true });
    batch.tryDeleteRange(EMPTY, ABOVE_ALL_KEYS);
    await batch.flush();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const iterator of this.#iterators) iterator.destroy();
      this.#iterators.clear();
      await this.db.close(); // waits for in-flight reads and writes, flushes the memtables
    })();
    return this.#closing;
  }

  async #multiGet(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return [];
    // A read batch is one rocksdb MultiGet on a worker thread; each value is a fresh Buffer.
    const batch = this.db.read({ capacity: keys.length, autoDestroy: true });
    const pending = keys.map((key) => batch.get(Buffer.from(key, 'utf8')));
    batch.tryFlush();
    const values = await Promise.all(pending);
    return values.map((value) => value ?? undefined);
  }

  /** Streams entries from one RocksDB iterator (a consistent view as of its first read), ITERATOR_CHUNK at a time. */
  async *#range({ prefix, gte, lt, limit = Infinity, reverse = false }: RangeOptions): AsyncGenerator<[string, Buffer]> {
    // The range is [lower, upper) in bytes: the prefix is [prefix, prefix with its last byte + 1).
    let lower = gte === undefined ? null : Buffer.from(gte, 'utf8');
    let upper = lt === undefined ? null : Buffer.from(lt, 'utf8');
    if (prefix) {
      const start = Buffer.from(prefix, 'utf8');
      const end = Buffer.from(start);
      end[end.length - 1] = start[start.length - 1]! + 1; // a UTF-8 string's last byte is below 0xC0: no overflow
      if (lower === null || Buffer.compare(start, lower) > 0) lower = start;
      if (upper === null || Buffer.compare(end, upper) < 0) upper = end;
    }
    // rocksdb-native reads an empty bound as "no bound", so an empty range must stop here.
    if (limit === 0 || (upper !== null && (upper.length === 0 || (lower !== null && Buffer.compare(lower, upper) >= 0)))) return;
    const iterator = this.db.iterator(
      { gte: lower, lt: upper },
      { reverse, limit: limit === Infinity ? -1 : limit, capacity: Math.min(ITERATOR_CHUNK, limit) },
    );
    this.#iterators.add(iterator);
    try {
      for await (const { key, value } of iterator) {
        yield [key.toString('utf8'), value];
        if (this.#closing) throw new AppError('STORE_CLOSED', `The RocksDB store in ${this.dir} was closed while a range was being read`);
      }
    } finally {
      this.#iterators.delete(iterator);
      iterator.destroy(); // idempotent; releases the native iterator when the caller stops early
    }
  }

  #open(): void {
    if (this.#closing) throw new AppError('STORE_CLOSED', `The RocksDB store in ${this.dir} is closed`);
  }
}
