import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  chunkFolder,
  chunkKey,
  KEEP_CANDIDATES,
  manifestKey,
  ModelTransferError,
  parseManifest,
  PROTECTED_PREDECESSORS,
  VersionAssembler,
  versionsToPrune,
  type IndexedManifest,
} from '../../src/training/model-transfer.js';
import type { VersionInfo } from '../../src/training/registry.js';

const root = mkdtempSync(join(tmpdir(), 'model-transfer-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const VERSION = 'v20261207T051900000-hrnn-abcd';
const CHUNK = 1000;

/** A version folder: model.json of 5,500 random bytes (6 chunks), a small metrics.json, version.json, an empty file, and a temporary dot file that is not part of it. */
function versionFolder(name: string): { dir: string; info: VersionInfo } {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const info = { version: VERSION, recipe: 'hrnn', createdAt: '2026-12-07T05:19:00.000Z' } as VersionInfo;
  writeFileSync(join(dir, 'model.json'), randomBytes(5500));
  writeFileSync(join(dir, 'metrics.json'), '{"ndcg":0.3}\n');
  writeFileSync(join(dir, 'version.json'), JSON.stringify(info));
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, '.model.json.tmp-1'), 'half written');
  return { dir, info };
}

/** The chunk records a publication writes, and its manifest (as indexed). */
async function publication(name: string): Promise<{ dir: string; records: { key: string; value: Buffer }[]; manifest: IndexedManifest }> {
  const { dir, info } = versionFolder(name);
  const records: { key: string; value: Buffer }[] = [];
  const parts = await chunkFolder(dir, CHUNK, async (n, value) => {
    records.push({ key: chunkKey(VERSION, n), value });
  });
  const manifest: IndexedManifest = { format: 1, version: VERSION, ...parts, firstOffset: 0, info, publishedAt: new Date().toISOString(), manifestOffset: records.length };
  return { dir, records, manifest };
}

/** Feeds records to an assembler and finishes it with the manifest record; returns the error it refused with, if any. */
function assemble(manifest: IndexedManifest, records: { key: string; value: Buffer | null }[], topicManifest: Buffer | null = Buffer.from(JSON.stringify(manifest))): { out: string; error?: ModelTransferError } {
  const out = join(root, `out-${randomBytes(4).toString('hex')}`);
  const a = new VersionAssembler(manifest, out);
  try {
    for (const r of records) a.add(r.key, r.value);
    a.finish(topicManifest);
    return { out };
  } catch (err) {
    expect(err).toBeInstanceOf(ModelTransferError);
    return { out, error: err as ModelTransferError };
  }
}

describe('model versions in chunks', () => {
  it('cuts every file into chunks in name order (dot files left out) and puts them back byte for byte', async () => {
    const { dir, records, manifest } = await publication('roundtrip');
    expect(manifest.files.map((f) => [f.name, f.size, f.chunks])).toEqual([
      ['empty', 0, 1],
      ['metrics.json', 13, 1],
      ['model.json', 5500, 6],
      ['version.json', readFileSync(join(dir, 'version.json')).length, 1],
    ]);
    expect(manifest.chunks).toBe(9);
    expect(records.map((r) => r.key)).toEqual(Array.from({ length: 9 }, (_, n) => `${VERSION}/${n}`));
    expect(Math.max(...records.map((r) => r.value.length))).toBe(CHUNK);
    expect(parseManifest(JSON.stringify(manifest), VERSION)).toEqual(manifest);

    // Other versions' records and the manifest record in between are not this version's: ignored.
    const mixed = [records[0]!, { key: 'v20261207T051900000-hrnn-ffff/0', value: Buffer.from('other') }, ...records.slice(1), { key: manifestKey(VERSION), value: Buffer.from('{}') }];
    const { out, error } = assemble(manifest, mixed);
    expect(error).toBeUndefined();
    for (const f of ['model.json', 'metrics.json', 'version.json', 'empty']) expect(readFileSync(join(out, f)).equals(readFileSync(join(dir, f))), f).toBe(true);
    expect(existsSync(join(out, '.model.json.tmp-1'))).toBe(false);
  });

  it('takes a chunk sent twice (a producer retry) once', async () => {
    const { dir, records, manifest } = await publication('dup');
    const { out, error } = assemble(manifest, [...records.slice(0, 4), records[3]!, ...records.slice(4)]);
    expect(error).toBeUndefined();
    expect(readFileSync(join(out, 'model.json')).equals(readFileSync(join(dir, 'model.json')))).toBe(true);
  });

  it('refuses a corrupted chunk: checksum-mismatch, naming the file', async () => {
    const { records, manifest } = await publication('corrupt');
    const bad = records.map((r) => ({ ...r, value: Buffer.from(r.value) }));
    bad[4]!.value.writeUInt8(bad[4]!.value.readUInt8(10) ^ 0xff, 10); // a chunk of model.json, same length
    const { error } = assemble(manifest, bad);
    expect(error?.reason).toBe('checksum-mismatch');
    expect(error?.code).toBe('MODEL_TRANSFER_FAILED');
    expect(error?.message).toContain('model.json');
  });

  it('refuses a missing chunk in the middle or at the end, and a tombstoned one: chunk-missing', async () => {
    const { records, manifest } = await publication('missing');
    const middle = assemble(manifest, records.filter((_, i) => i !== 5)).error;
    expect(middle?.reason).toBe('chunk-missing');
    expect(middle?.message).toContain('chunk 5 of 9 is missing');
    const end = assemble(manifest, records.slice(0, -1)).error;
    expect(end?.reason).toBe('chunk-missing');
    expect(end?.message).toContain('1 of 9 chunks are missing');
    const tomb = assemble(manifest, records.map((r, i) => (i === 2 ? { key: r.key, value: null } : r))).error;
    expect(tomb?.reason).toBe('chunk-missing');
  });

  it('refuses a chunk longer than its file (size-mismatch) and one beyond the count (chunk-unexpected)', async () => {
    const { records, manifest } = await publication('size');
    const longer = records.map((r, i) => (i === 8 ? { key: r.key, value: Buffer.concat([r.value, Buffer.from('x')]) } : r));
    expect(assemble(manifest, longer).error?.reason).toBe('size-mismatch');
    expect(assemble(manifest, [...records, { key: chunkKey(VERSION, 9), value: Buffer.from('x') }]).error?.reason).toBe('chunk-unexpected');
  });

  it('refuses a manifest on the topic that is not the index one, or none: manifest-mismatch', async () => {
    const { records, manifest } = await publication('manifest');
    const other = { ...manifest, sha256: 'f'.repeat(64) };
    const wrong = assemble(manifest, records, Buffer.from(JSON.stringify(other))).error;
    expect(wrong?.reason).toBe('manifest-mismatch');
    expect(wrong?.message).toContain('sha256');
    expect(assemble(manifest, records, null).error?.reason).toBe('manifest-mismatch');
    expect(assemble(manifest, records, Buffer.from('not json')).error?.reason).toBe('manifest-mismatch');
  });

  it('refuses a whole-version checksum that does not match its files', async () => {
    const { records, manifest } = await publication('whole');
    const { error } = assemble({ ...manifest, sha256: '0'.repeat(64) }, records);
    expect(error?.reason).toBe('checksum-mismatch');
    expect(error?.message).toContain("the files' SHA-256");
  });

  it('parses a manifest field by field: manifest-invalid names the field', async () => {
    const { manifest } = await publication('parse');
    const invalid = (patch: Record<string, unknown>, version = VERSION) => {
      try {
        parseManifest(JSON.stringify({ ...manifest, ...patch }), version);
      } catch (err) {
        expect((err as ModelTransferError).reason).toBe('manifest-invalid');
        return (err as Error).message;
      }
      throw new Error(`accepted ${JSON.stringify(patch)}`);
    };
    expect(invalid({ chunks: 8 })).toContain("chunks 8 is not the files' 9");
    expect(invalid({ sha256: 'abc' })).toContain('sha256 is not 64 hex digits');
    expect(invalid({ format: 2 })).toContain('format 2');
    expect(invalid({ files: [{ ...manifest.files[0], name: '../etc/passwd' }, ...manifest.files.slice(1)] })).toContain('is not a plain file name');
    expect(invalid({ files: manifest.files.map((f) => (f.name === 'model.json' ? { ...f, chunks: 5 } : f)) })).toContain('does not fit its size');
    expect(invalid({}, 'v20261207T051900000-hrnn-0000')).toContain('version');
    expect(invalid({ firstOffset: -1 })).toContain('firstOffset');
    expect(() => parseManifest(null, VERSION)).toThrow(/no manifest record/);
  });
});

describe('pruning the models topic', () => {
  const at = (i: number) => ({ version: `v${i}`, info: { createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString() } as VersionInfo });
  const ten = Array.from({ length: 10 }, (_, i) => at(i));

  it('keeps the served version, its last predecessors and the newest candidates; prunes the rest, oldest first', () => {
    const serving = { version: 'v2', previous: ['v0', 'v1', 'v3', 'v4', 'v5'] };
    const pruned = versionsToPrune(ten, serving);
    // kept: v2 (served), v3 v4 v5 (the last PROTECTED_PREDECESSORS), v7 v8 v9 (the newest KEEP_CANDIDATES others)
    expect(PROTECTED_PREDECESSORS).toBe(3);
    expect(KEEP_CANDIDATES).toBe(3);
    expect(pruned).toEqual(['v0', 'v1', 'v6']);
    expect(pruned).not.toContain(serving.version);
  });

  it('prunes nothing while within the bound, and with nothing served keeps the newest', () => {
    expect(versionsToPrune(ten.slice(0, 3), undefined)).toEqual([]);
    expect(versionsToPrune(ten.slice(0, 5), undefined)).toEqual(['v0', 'v1']);
  });
});
