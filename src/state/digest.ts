import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openRocksStore } from './rocksdb-store.js';
import { keys } from './model.js';
import type { KeyValueStore } from './store.js';

/**
 * A SHA-256 over every replicated key and value of a store, in key order; the local-only changelog
 * checkpoint is left out, so two stores holding the same state have the same digest.
 */
export async function digestStore(store: KeyValueStore): Promise<{ digest: string; keys: number }> {
  const hash = createHash('sha256');
  let n = 0;
  for await (const [k, v] of store.range()) {
    if (k === keys.checkpoint) continue;
    const key = Buffer.from(k);
    const len = Buffer.alloc(8);
    len.writeUInt32BE(key.length, 0);
    len.writeUInt32BE(v.length, 4);
    hash.update(len).update(key).update(v);
    n++;
  }
  return { digest: hash.digest('hex'), keys: n };
}

export interface GroupDigest {
  partitions: { partition: number; keys: number; digest: string }[];
  keys: number;
  /** SHA-256 over the partition digests in partition order. */
  digest: string;
}

/** Digests every partition store (`p<n>` folders) under a group's state folder. */
export async function digestGroupState(groupDir: string): Promise<GroupDigest> {
  const partitions: GroupDigest['partitions'] = [];
  const dirs = existsSync(groupDir) ? readdirSync(groupDir).filter((d) => /^p\d+$/.test(d)) : [];
  for (const d of dirs.sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))) {
    const store = await openRocksStore(join(groupDir, d), { createIfMissing: false });
    try {
      partitions.push({ partition: Number(d.slice(1)), ...(await digestStore(store)) });
    } finally {
      await store.close();
    }
  }
  const all = createHash('sha256');
  for (const p of partitions) all.update(`${p.partition}:${p.digest}\n`);
  return { partitions, keys: partitions.reduce((n, p) => n + p.keys, 0), digest: all.digest('hex') };
}
