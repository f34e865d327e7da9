/**
 * Hostile bytes through the service's real decode path (src/stream/input.ts: what the processor and
 * the metadata reader call for every record): valid records of every schema mutated at random (bit
 * flips, truncations, huge varint counts, insertions, deletions, splices), plus pure random bytes.
 * Seeded, so a failure names a case that can be replayed.
 *
 * The bound stated in docs/operations.md (Avro schemas): every record is answered (a record or a RECORD_* error) in time
 * and memory proportional to its own size; here, no case takes more than CASE_BOUND_MS (a hang
 * guard: a case takes microseconds, but a GC pause on a loaded 2-core CI machine took one to 324 ms) and the heap never grows by more than
 * HEAP_BOUND_BYTES while 120k cases run.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { AppError } from '../../src/errors/index.js';
import { createCodecs, SCHEMA_NAMES, type Codecs, type Interaction, type Item, type SchemaName, type User } from '../../src/serde/avro.js';
import { decodeInteractionRecord, decodeMetadataRecord } from '../../src/stream/input.js';
import { Resources } from '../../src/stream/resources.js';
import { parseServingRecord } from '../../src/stream/versions.js';
import { prng as rng } from '../../src/data/synthetic.js';

const CASE_BOUND_MS = 1000;
const HEAP_BOUND_BYTES = 256 * 1024 * 1024;
const REFUSALS = new Set(['RECORD_MALFORMED', 'RECORD_INVALID', 'RECORD_TOO_LARGE']);

/** Avro's zigzag varint of a (safe) integer. */
function varint(n: number): Buffer {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  const out: number[] = [];
  do {
    let byte = z % 128;
    z = Math.floor(z / 128);
    if (z > 0) byte |= 0x80;
    out.push(byte);
  } while (z > 0);
  return Buffer.from(out);
}

const NOW = 1_765_000_000_000;
const interactions: Interaction[] = [
  {
    USER_ID: 'user-1',
    ITEM_ID: 'item-9',
    TIMESTAMP: NOW - 5000,
    EVENT_TYPE: 'purchase',
    EVENT_VALUE: 4.5,
    SESSION_ID: 's-7',
    IMPRESSION: ['item-9', 'item-3', 'item-4'],
    RECOMMENDATION_ID: 'rec-1',
    CONTEXT: { DEVICE: 'mobile', LOCATION: 'de' },
  },
  { USER_ID: 'u', ITEM_ID: 'i', TIMESTAMP: NOW, EVENT_TYPE: 'click', EVENT_VALUE: null, SESSION_ID: null, IMPRESSION: [], RECOMMENDATION_ID: null, CONTEXT: {} },
];
const items: Item[] = [
  { ITEM_ID: 'item-9', CREATION_TIMESTAMP: NOW - 86_400_000, METADATA: { GENRE: 'jazz', PRICE: 12.5, IN_STOCK: true, TAGS: ['a', 'bb', 'ccc'] } },
  { ITEM_ID: 'x', CREATION_TIMESTAMP: null, METADATA: {} },
];
const users: User[] = [
  { USER_ID: 'user-1', METADATA: { AGE: 31, SEGMENTS: ['new', 'mobile'], VIP: false, COUNTRY: 'DE' } },
  { USER_ID: 'u', METADATA: {} },
];

/** Each schema's seeds and the decode path the service uses for it. */
function paths(codecs: Codecs): { name: SchemaName; seeds: Buffer[]; decode: (key: Buffer, value: Buffer) => unknown }[] {
  const rules = { maxFutureSkewMs: 3_600_000 };
  return [
    { name: 'Interaction', seeds: interactions.map((e) => codecs.Interaction.encode(e)), decode: (key, value) => decodeInteractionRecord(codecs, { key, value }, NOW, rules) },
    { name: 'Item', seeds: items.map((i) => codecs.Item.encode(i)), decode: (key, value) => decodeMetadataRecord(codecs, 'item', { key, value }) },
    { name: 'User', seeds: users.map((u) => codecs.User.encode(u)), decode: (key, value) => decodeMetadataRecord(codecs, 'user', { key, value }) },
    {
      name: 'Recommendation',
      seeds: [
        codecs.Recommendation.encode({
          USER_ID: 'user-1',
          RECOMMENDATION_ID: 'r-1',
          ITEMS: [
            { ITEM_ID: 'a', SCORE: 0.5, REASON: null },
            { ITEM_ID: 'b', SCORE: 0.25, REASON: 'popular' },
          ],
          MODEL_VERSION: 'v1',
          EVENT_TIMESTAMP: NOW,
          EMIT_TIMESTAMP: NOW + 3,
        }),
      ],
      decode: (_key, value) => codeOf(() => codecs.Recommendation.decode(value)),
    },
    {
      name: 'DeadLetter',
      seeds: [
        codecs.DeadLetter.encode({
          SOURCE: 'g.interactions',
          SOURCE_PARTITION: 2,
          SOURCE_OFFSET: '17',
          KEY: Buffer.from('k'),
          VALUE: Buffer.from([0, 1, 2]),
          ERROR_CODE: 'RECORD_MALFORMED',
          FIELD: null,
          REASON: 'r',
          FAILED_AT: NOW,
          KEY_SIZE: null,
          KEY_SHA256: null,
          VALUE_SIZE: 900_000,
          VALUE_SHA256: 'ab',
        }),
      ],
      decode: (_key, value) => codeOf(() => codecs.DeadLetter.decode(value)),
    },
  ];
}

function codeOf(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (err) {
    return err;
  }
}

const HUGE = [500_000_000, 2 ** 31, 2 ** 40, 2 ** 52, -500_000_000, -(2 ** 31), 1_000_000, 65_536];

/** One random mutation of `seed`. */
function mutate(seed: Buffer, r: () => number): Buffer {
  const at = (n: number) => Math.floor(r() * n);
  const b = Buffer.from(seed);
  switch (at(7)) {
    case 0: {
      // bit flips
      const flips = 1 + at(4);
      for (let i = 0; i < flips && b.length > 0; i++) b[at(b.length)]! ^= 1 << at(8);
      return b;
    }
    case 1:
      return b.subarray(0, at(b.length));
    case 2: {
      // a varint count overwritten with a huge value (and sometimes a block size after it)
      const pos = at(b.length + 1);
      const count = varint(HUGE[at(HUGE.length)]!);
      const extra = r() < 0.3 ? varint(HUGE[at(HUGE.length)]!) : Buffer.alloc(0);
      const keep = r() < 0.5 ? pos + count.length : pos;
      return Buffer.concat([b.subarray(0, pos), count, extra, b.subarray(Math.min(b.length, keep))]);
    }
    case 3: {
      // random bytes inserted
      const pos = at(b.length + 1);
      const ins = Buffer.from(Array.from({ length: 1 + at(8) }, () => at(256)));
      return Buffer.concat([b.subarray(0, pos), ins, b.subarray(pos)]);
    }
    case 4: {
      // a run deleted
      const pos = at(b.length + 1);
      return Buffer.concat([b.subarray(0, pos), b.subarray(pos + 1 + at(6))]);
    }
    case 5: {
      // a run overwritten with 0xff (long varints) or 0x80 continuation bytes
      const pos = at(b.length + 1);
      const fill = r() < 0.5 ? 0xff : 0x80;
      for (let i = pos; i < Math.min(b.length, pos + 1 + at(12)); i++) b[i] = fill;
      return b;
    }
    default: {
      // a splice of the record with itself (duplicated region, trailing bytes)
      const from = at(b.length + 1);
      const to = at(b.length + 1);
      return Buffer.concat([b.subarray(0, to), b.subarray(from)]);
    }
  }
}

interface Tally {
  cases: number;
  decoded: number;
  refused: Map<string, number>;
  maxMs: number;
  maxHeapGrowth: number;
}

function run(codecs: Codecs, cases: number, seed: number, make: (r: () => number, seeds: Buffer[]) => Buffer): Map<SchemaName, Tally> {
  const out = new Map<SchemaName, Tally>();
  const r = rng(seed);
  const heap0 = process.memoryUsage().heapUsed;
  const all = paths(codecs);
  for (const p of all) out.set(p.name, { cases: 0, decoded: 0, refused: new Map(), maxMs: 0, maxHeapGrowth: 0 });
  for (let i = 0; i < cases; i++) {
    const p = all[i % all.length]!;
    const tally = out.get(p.name)!;
    const value = make(r, p.seeds);
    const key = Buffer.from(r() < 0.9 ? ['user-1', 'u', 'item-9', 'x'][Math.floor(r() * 4)]! : '');
    const t0 = performance.now();
    let result: unknown;
    try {
      result = p.decode(key, value);
    } catch (err) {
      throw new Error(`${p.name} case ${i} (seed ${seed}) threw instead of answering: ${String(err)}; bytes ${value.toString('hex')}`);
    }
    const ms = performance.now() - t0;
    tally.cases++;
    tally.maxMs = Math.max(tally.maxMs, ms);
    if (ms > CASE_BOUND_MS) throw new Error(`${p.name} case ${i} (seed ${seed}) took ${ms.toFixed(1)} ms; bytes ${value.toString('hex')}`);
    if (result instanceof Error) {
      if (!(result instanceof AppError) || !REFUSALS.has(result.code)) {
        throw new Error(`${p.name} case ${i} (seed ${seed}) answered with ${String(result)}; bytes ${value.toString('hex')}`);
      }
      tally.refused.set(result.code, (tally.refused.get(result.code) ?? 0) + 1);
    } else {
      tally.decoded++;
    }
    if (i % 2000 === 0) {
      const growth = process.memoryUsage().heapUsed - heap0;
      for (const t of out.values()) t.maxHeapGrowth = Math.max(t.maxHeapGrowth, growth);
    }
  }
  return out;
}

describe('decoding hostile bytes', () => {
  const codecs = createCodecs(loadConfig({ env: {} }));

  it('answers 100k mutated records of every schema with a record or a RECORD_* error, each within the bound, heap bounded', () => {
    const tallies = run(codecs, 100_000, 20261207, (r, seeds) => mutate(seeds[Math.floor(r() * seeds.length)]!, r));
    expect([...tallies.keys()].sort()).toEqual([...SCHEMA_NAMES].sort());
    for (const [name, t] of tallies) {
      expect(t.cases, name).toBe(20_000);
      // Mutations keep some records valid and break most.
      expect(t.decoded, name).toBeGreaterThan(0);
      expect(t.refused.get('RECORD_MALFORMED') ?? 0, name).toBeGreaterThan(t.cases / 4);
      expect(t.maxMs, name).toBeLessThan(CASE_BOUND_MS);
      expect(t.maxHeapGrowth, name).toBeLessThan(HEAP_BOUND_BYTES);
    }
  }, 120_000); // seconds alone; many times that on a loaded 2-core CI machine

  it('answers 20k records of pure random bytes (0-512 bytes) the same way', () => {
    const tallies = run(codecs, 20_000, 7, (r) => Buffer.from(Array.from({ length: Math.floor(r() * 513) }, () => Math.floor(r() * 256))));
    for (const [name, t] of tallies) {
      expect(t.cases, name).toBe(4000);
      expect(t.refused.get('RECORD_MALFORMED') ?? 0, name).toBeGreaterThan(t.cases / 2);
      expect(t.maxMs, name).toBeLessThan(CASE_BOUND_MS);
    }
  }, 120_000);
});

describe('bounded decoding: the records that stalled or crashed the service', () => {
  const codecs = createCodecs(loadConfig({ env: {} }));
  const malformed = (r: unknown): AppError => {
    expect(r).toBeInstanceOf(AppError);
    expect((r as AppError).code).toBe('RECORD_MALFORMED');
    return r as AppError;
  };

  it('refuses a 14-byte Interaction whose IMPRESSION count says 500,000,000, before allocating', () => {
    // USER_ID "u", ITEM_ID "i", TIMESTAMP 1, EVENT_TYPE "", EVENT_VALUE null, SESSION_ID null, IMPRESSION count 5e8, one byte
    const bytes = Buffer.concat([Buffer.from([2, 0x75, 2, 0x69, 2, 0, 0, 0]), varint(500_000_000), Buffer.from([0x61])]);
    expect(bytes.length).toBe(14);
    const err = malformed(decodeInteractionRecord(codecs, { key: Buffer.from('u'), value: bytes }, NOW, { maxFutureSkewMs: 0 }));
    expect(err.message).toMatch(/500000000 array items needs at least 500000000 bytes, 1 left/);
  });

  it('refuses a negative block count whose block size runs past the end, and a huge map', () => {
    // a User: USER_ID "u", METADATA block of -3 entries with a block size of 1,000,000 bytes
    const negative = Buffer.concat([Buffer.from([2, 0x75]), varint(-3), varint(1_000_000), Buffer.from([0])]);
    expect(malformed(decodeMetadataRecord(codecs, 'user', { key: Buffer.from('u'), value: negative })).message).toMatch(/block of 1000000 bytes/);
    const huge = Buffer.concat([Buffer.from([2, 0x75]), varint(2 ** 40), Buffer.from([2, 0x61, 0, 2, 0x62])]);
    expect(malformed(decodeMetadataRecord(codecs, 'user', { key: Buffer.from('u'), value: huge })).message).toMatch(/map entries needs at least/);
  });

  it('refuses trailing bytes, a union branch that does not exist, an over-long varint', () => {
    const good = codecs.User.encode(users[0]!);
    expect(malformed(decodeMetadataRecord(codecs, 'user', { key: Buffer.from('user-1'), value: Buffer.concat([good, Buffer.from([0])]) })).message).toMatch(/left over/);
    // Item: ITEM_ID "x", CREATION_TIMESTAMP union branch 5
    expect(malformed(decodeMetadataRecord(codecs, 'item', { key: Buffer.from('x'), value: Buffer.from([2, 0x78, 10, 0]) })).message).toMatch(/union branch 5 does not exist/);
    const longVarint = Buffer.from([2, 0x78, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0]);
    expect(malformed(decodeMetadataRecord(codecs, 'item', { key: Buffer.from('x'), value: longVarint })).message).toMatch(/longer than 10 bytes/);
  });

  it('decodes what the encoder wrote, every schema, unchanged', () => {
    for (const p of paths(codecs)) {
      for (const seed of p.seeds) {
        const key = Buffer.from(p.name === 'Item' ? (codecs.Item.decode(seed).ITEM_ID) : p.name === 'Interaction' ? codecs.Interaction.decode(seed).USER_ID : p.name === 'User' ? codecs.User.decode(seed).USER_ID : 'k');
        const result = p.decode(key, seed);
        expect(result, p.name).not.toBeInstanceOf(Error);
      }
    }
  });

  it('refuses items and users whose id is longer than 256 characters (RECORD_INVALID naming the field)', () => {
    const long = 'x'.repeat(300);
    const item = decodeMetadataRecord(codecs, 'item', { key: Buffer.from(long), value: codecs.Item.encode({ ITEM_ID: long, CREATION_TIMESTAMP: null, METADATA: {} }) });
    expect(item).toMatchObject({ code: 'RECORD_INVALID', field: 'ITEM_ID' });
    const user = decodeMetadataRecord(codecs, 'user', { key: Buffer.from(long), value: codecs.User.encode({ USER_ID: long, METADATA: {} }) });
    expect(user).toMatchObject({ code: 'RECORD_INVALID', field: 'USER_ID' });
  });

  it('refuses items and users over ingest.maxRecordBytes before decoding them (RECORD_TOO_LARGE)', () => {
    const small = createCodecs(loadConfig({ env: {}, overrides: { 'ingest.maxRecordBytes': 1024 } }));
    const item = codecs.Item.encode({ ITEM_ID: 'x', CREATION_TIMESTAMP: null, METADATA: { NOTE: 'n'.repeat(2000) } });
    const user = codecs.User.encode({ USER_ID: 'u', METADATA: { NOTE: 'n'.repeat(2000) } });
    for (const [kind, value] of [['item', item], ['user', user]] as const) {
      const r = decodeMetadataRecord(small, kind, { key: Buffer.from(kind === 'item' ? 'x' : 'u'), value });
      expect(r).toBeInstanceOf(AppError);
      expect((r as AppError).code).toBe('RECORD_TOO_LARGE');
      expect((r as AppError).message).toMatch(/above ingest\.maxRecordBytes \(1024\)/);
      // The default limit (64 KiB) lets the same record through.
      expect(decodeMetadataRecord(codecs, kind, { key: Buffer.from(kind === 'item' ? 'x' : 'u'), value })).not.toBeInstanceOf(Error);
    }
  });
});

describe('the JSON topics (resources, versions): hostile bytes are ignored with a reason, never thrown', () => {
  const goodResource = Buffer.from(JSON.stringify({ name: 'f', filterExpression: 'EXCLUDE ItemID WHERE Items.X IN ("a")', params: [], createdAt: '2026-12-07T00:00:00Z' }));
  const goodServing = Buffer.from(JSON.stringify({ version: 'v1', previous: ['v0'], at: '2026-12-07T00:00:00Z', reason: 'r' }));

  it('answers 20k mutated and random records; keeps the valid ones, refuses a value that is not a JSON object', () => {
    const r = rng(99);
    const resources = new Resources();
    let refused = 0;
    let kept = 0;
    for (let i = 0; i < 20_000; i++) {
      const random = r() < 0.3;
      const value = random ? Buffer.from(Array.from({ length: Math.floor(r() * 300) }, () => Math.floor(r() * 256))) : mutate(i % 2 ? goodResource : goodServing, r);
      const text = value.toString('utf8');
      const reason = resources.apply('filter/f', text);
      if (reason) refused++;
      else kept++;
      const serving = parseServingRecord(value);
      if (serving) expect(typeof serving.version).toBe('string');
    }
    expect(refused).toBeGreaterThan(1000);
    expect(kept).toBeGreaterThan(100);
    expect(resources.apply('filter/x', '[1,2]')).toBe('not a JSON object');
    expect(resources.apply('filter/x', '{"name"')).toMatch(/^not JSON/);
    expect(resources.apply('newkind/x', 'garbage')).toBeUndefined(); // a newer version's kind
  }, 120_000);
});
