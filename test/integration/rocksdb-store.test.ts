/**
 * The RocksDB store on real RocksDB (rocksdb-native) in fresh temp dirs: the shared store suite,
 * persistence across close and reopen, the LOCK, and recovery after a writer is SIGKILLed.
 * Uses no Kafka (the integration project's global setup starts a broker anyway).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openRocksStore } from '../../src/state/rocksdb-store.js';
import type { KeyValueStore } from '../../src/state/store.js';
import { storeSuite } from '../unit/store-suite.js';

const dirs: string[] = [];
const freshDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'streamrec-rocks-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

storeSuite('RocksDB', () => openRocksStore(freshDir()));

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

async function entries(store: KeyValueStore, prefix?: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [k, v] of store.range(prefix === undefined ? {} : { prefix })) out.push([k, v.toString()]);
  return out;
}

describe('RocksDB store on disk', () => {
  it('keeps its data across close and reopen, including deletes and clear', async () => {
    const dir = freshDir();
    let store = await openRocksStore(dir);
    await store.write(Array.from({ length: 1000 }, (_, i) => ({ type: 'put' as const, key: `k:${String(i).padStart(4, '0')}`, value: b(`v${i}`) })));
    await store.write([{ type: 'del', key: 'k:0000' }, { type: 'put', key: 'k:0001', value: b('changed') }, { type: 'put', key: 'é😀', value: b('unicode') }]);
    const before = await entries(store);
    expect(before).toHaveLength(1000);
    await store.close();

    store = await openRocksStore(dir, { createIfMissing: false });
    expect(await entries(store)).toEqual(before);
    expect((await store.getMany(['k:0000', 'k:0001', 'k:0999', 'é😀'])).map((v) => v?.toString())).toEqual([undefined, 'changed', 'v999', 'unicode']);
    await store.clear();
    await store.close();

    store = await openRocksStore(dir);
    expect(await entries(store)).toEqual([]);
    await store.close();
  });

  it('refuses a second open of a dir that is open, and a missing dir without createIfMissing', async () => {
    const dir = freshDir();
    const store = await openRocksStore(dir);
    await expect(openRocksStore(dir)).rejects.toThrow(/Cannot open the RocksDB store in .*LOCK/);
    await store.write([{ type: 'put', key: 'still', value: b('works') }]); // the failed open did not disturb it
    expect((await store.get('still'))?.toString()).toBe('works');
    await store.close();
    await expect(openRocksStore(join(freshDir(), 'missing'), { createIfMissing: false })).rejects.toThrow(/Cannot open the RocksDB store/);
    await expect(openRocksStore(dir, { writeBufferSize: 0 })).rejects.toThrow(/writeBufferSize/);
  });

  it('after a writer is SIGKILLed, a new process reopens the dir and finds every acknowledged batch, whole', async () => {
    const dir = freshDir();
    const db = join(dir, 'db');
    // The child is plain node (it cannot import .ts): it drives the binding directly, storing keys as
    // UTF-8 and values as is, exactly as the store does. Each batch is 100 entries plus `last` = its
    // number; it prints "ACK n" once batch n's write resolved, and resumes after the last batch found.
    const child = join(dir, 'writer.mjs');
    const bindingUrl = pathToFileURL(createRequire(import.meta.url).resolve('rocksdb-native')).href;
    writeFileSync(
      child,
      `import RocksDB from ${JSON.stringify(bindingUrl)};
const db = new RocksDB(process.argv[2], { createIfMissing: true });
await db.ready();
const last = await db.get('last');
const pad = (n) => String(n).padStart(6, '0');
for (let n = last === null ? 0 : Number(last.toString()) + 1; ; n++) {
  const batch = db.write({ capacity: 101, autoDestroy: true });
  for (let j = 0; j < 100; j++) batch.tryPut(Buffer.from('batch:' + pad(n) + ':' + j), Buffer.from('value ' + n + '.' + j));
  batch.tryPut(Buffer.from('last'), Buffer.from(String(n)));
  await batch.flush();
  process.stdout.write('ACK ' + n + '\\n');
}
`,
    );

    /** Runs the writer until it has acknowledged `atLeast` more batches, SIGKILLs it mid-stream, returns the last ACK seen. */
    const writeThenKill = (atLeast: number): Promise<number> =>
      new Promise((resolve, reject) => {
        const proc = spawn(process.execPath, [child, db], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        let first = -1;
        let acked = -1;
        let killed = false;
        proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const lines = out.split('\n');
          out = lines.pop()!;
          for (const line of lines) {
            const n = Number(/^ACK (\d+)$/.exec(line)?.[1] ?? NaN);
            if (Number.isNaN(n)) continue;
            if (first < 0) first = n;
            acked = n;
          }
          if (!killed && first >= 0 && acked - first + 1 >= atLeast) {
            killed = true;
            proc.kill('SIGKILL'); // while it is in the middle of later writes
          }
        });
        proc.on('error', reject);
        proc.on('exit', (code, signal) => {
          if (signal === 'SIGKILL' && killed) resolve(acked);
          else reject(new Error(`writer exited with code ${code}, signal ${signal}; stderr:\n${err}`));
        });
      });

    const firstAcked = await writeThenKill(40);
    // A second process reopens the killed one's dir (its LOCK died with it), recovers, writes on, and is killed too.
    const acked = await writeThenKill(40);
    expect(acked).toBeGreaterThanOrEqual(firstAcked + 40);

    const store = await openRocksStore(db);
    try {
      const last = Number((await store.get('last'))?.toString());
      expect(last).toBeGreaterThanOrEqual(acked); // every acknowledged batch is there (and maybe a later one)
      // Batches are whole: exactly batches 0..last, 100 entries each, each with its value.
      const pad = (n: number): string => String(n).padStart(6, '0');
      let count = 0;
      let wrong = 0;
      for await (const [key, value] of store.range({ prefix: 'batch:' })) {
        const m = /^batch:(\d{6}):(\d+)$/.exec(key);
        if (!m || Number(m[1]) > last || value.toString() !== `value ${Number(m[1])}.${m[2]}`) wrong++;
        count++;
      }
      expect({ count, wrong }).toEqual({ count: (last + 1) * 100, wrong: 0 });
      const lastBatch = await store.getMany(Array.from({ length: 100 }, (_, j) => `batch:${pad(last)}:${j}`));
      expect(lastBatch.every((v, j) => v?.toString() === `value ${last}.${j}`)).toBe(true);
      // And the recovered store takes writes.
      await store.write([{ type: 'put', key: 'after-recovery', value: b('ok') }]);
      expect((await store.get('after-recovery'))?.toString()).toBe('ok');
    } finally {
      await store.close();
    }
  });
});
