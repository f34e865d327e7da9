import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openRocksStore } from './rocksdb-store.js';
import { codecs, keys } from './model.js';
import type { KeyValueStore } from './store.js';
import { ATTRIBUTION_PREFIX, canonicalCounts } from './online-counts.js';

/** Keys that say where the input was read to, not what the state is: reported apart, not digested. */
const OFFSET_KEYS: Record<string, string> = { [keys.offset]: 'interactions', [keys.repartitionOffset]: 'interactions-repartition' };

/**
 * A value as the digest sees it: the same state applied in another order of users gives the same
 * bytes. A user's own events are applied in their order, but records of different users of one
 * partition interleave differently when some came through the repartition topic: co-occurrence
 * partners are then listed in another order (sorted here), and the time-decayed trend, a float sum,
 * can differ in its last bits (rounded here to 6 significant digits), as can the online metrics'
 * sum of EVENT_VALUE (rounded to 9: src/stream/attribution.ts).
 */
export function canonicalValue(key: string, value: Buffer): Buffer {
  if (key.startsWith('c/')) {
    const co = codecs.co.decode(value);
    return codecs.co.encode(new Map([...co].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
  }
  if (key.startsWith('i/')) {
    const counts = codecs.item.decode(value);
    counts.trend = Number(counts.trend.toPrecision(6));
    return codecs.item.encode(counts);
  }
  if (key.startsWith(ATTRIBUTION_PREFIX)) return canonicalCounts(value);
  return value;
}

/**
 * A SHA-256 over every replicated state key and its canonical value (see canonicalValue), in key
 * order. Left out: the local-only changelog checkpoint, and the input offsets (returned apart in
 * `offsets`), which differ between a run whose input was partitioned by murmur2 and one whose input
 * partly came through the repartition topic (and, for the repartition topic, with the number of
 * transactions, whose markers take offsets) although the state is the same. So two stores holding
 * the same state have the same digest.
 */
export async function digestStore(store: KeyValueStore): Promise<{ digest: string; keys: number; offsets: Record<string, number> }> {
  const hash = createHash('sha256');
  let n = 0;
  const offsets: Record<string, number> = {};
  for await (const [k, raw] of store.range()) {
    if (k === keys.checkpoint) continue;
    const offsetOf = OFFSET_KEYS[k];
    if (offsetOf !== undefined) {
      offsets[offsetOf] = codecs.offset.decode(raw);
      continue;
    }
    const v = canonicalValue(k, raw);
    const key = Buffer.from(k);
    const len = Buffer.alloc(8);
    len.writeUInt32BE(key.length, 0);
    len.writeUInt32BE(v.length, 4);
    hash.update(len).update(key).update(v);
    n++;
  }
  return { digest: hash.digest('hex'), keys: n, offsets };
}

export interface GroupDigest {
  partitions: { partition: number; keys: number; digest: string; offsets: Record<string, number> }[];
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
