/**
 * Issue 11 part 6: state folders are the owner's only (0700; files the project writes 0600), since
 * they hold users' clickstreams; and `streamrec config` masks secrets.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rootKeyFile } from '../../src/api/auth.js';
import { loadConfig, redactConfig } from '../../src/config/index.js';
import { openRocksStore } from '../../src/state/rocksdb-store.js';
import { partitionStoreDir } from '../../src/stream/processor.js';
import type { ModelBundle } from '../../src/training/model-files.js';
import { VersionRegistry } from '../../src/training/registry.js';
import type { TrainReport } from '../../src/training/train.js';
import { privateDir } from '../../src/util/paths.js';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
const scratch = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'streamrec-perm-'));
  roots.push(d);
  return d;
};
const mode = (path: string): number => statSync(path).mode & 0o777;

describe('state folders are 0700', () => {
  it('partition stores: the folder and the parents it creates (state.dir, the group folder); RocksDB files sit behind it', async () => {
    const root = scratch();
    const config = loadConfig({ env: { STREAMREC_STATE_DIR: join(root, 'state') } });
    const dir = partitionStoreDir(config, 'shop', 2);
    expect(dir).toBe(join(root, 'state', 'shop', 'p2'));
    for (const d of [join(root, 'state'), join(root, 'state', 'shop'), dir]) expect(mode(d), d).toBe(0o700);
    const store = await openRocksStore(dir);
    try {
      await store.write([{ type: 'put', key: 'u/alice', value: Buffer.from('clicks') }]);
    } finally {
      await store.close();
    }
    expect(readdirSync(dir).length).toBeGreaterThan(0);
    // RocksDB writes its files with the process umask; the 0700 folder is what keeps them from others.
    expect(mode(dir) & 0o077).toBe(0);
  });

  it('privateDir narrows a folder an older version left 0755, and creates missing ones 0700', () => {
    const root = scratch();
    const old = join(root, 'old');
    mkdirSync(old, { mode: 0o755 });
    chmodSync(old, 0o755);
    expect(privateDir(old)).toBe(old);
    expect(mode(old)).toBe(0o700);
    const fresh = join(root, 'a', 'b');
    privateDir(fresh);
    expect(mode(join(root, 'a'))).toBe(0o700);
    expect(mode(fresh)).toBe(0o700);
  });

  it('the versions registry: folder and versions 0700, their files 0600', () => {
    const root = scratch();
    const dir = join(root, 'versions');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const registry = new VersionRegistry(dir);
    const bundle = { model: { toJSON: () => ({ recipe: 'popularity-count' }) }, excludeSeen: false, histories: new Map([['u1', [{ ITEM_ID: 'i1', TIMESTAMP: 1 }]]]) } as unknown as ModelBundle;
    const report = { recipe: 'popularity-count', split: 'loo', metrics: {}, baseline: { recipe: 'popularity-count', metrics: {} } } as unknown as TrainReport;
    const info = registry.create(bundle, report, { recipe: 'popularity-count', seen: 'auto', data: { topic: 'shop.interactions', events: 1 } } as never, { events: 1, users: 1, items: 1, from: null, to: null }, 5);
    expect(mode(dir)).toBe(0o700);
    const vdir = join(dir, info.version);
    expect(mode(vdir)).toBe(0o700);
    const files = readdirSync(vdir);
    expect(files.sort()).toEqual(['metrics.json', 'model.json', 'version.json']);
    for (const f of files) expect(mode(join(vdir, f)), f).toBe(0o600);
  });

  it('the generated root key: folder 0700, file 0600', () => {
    const root = scratch();
    const state = join(root, 'state');
    const { path, created } = rootKeyFile(state);
    expect(created).toBe(true);
    expect(mode(state)).toBe(0o700);
    expect(mode(path)).toBe(0o600);
    expect(existsSync(path)).toBe(true);
    // One left readable by an older version: narrowed when read.
    chmodSync(path, 0o644);
    chmodSync(state, 0o755);
    const again = rootKeyFile(state);
    expect(again.created).toBe(false);
    expect(mode(path)).toBe(0o600);
    expect(mode(state)).toBe(0o700);
  });
});

describe('streamrec config', () => {
  it('masks api.rootKey and the SASL password, and nothing else', () => {
    const c = loadConfig({ env: { STREAMREC_API_ROOT_KEY: 'sr_root_secret-value', KAFKA_BROKERS: 'k:9093', KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'me', KAFKA_SASL_PASSWORD: 'pw-secret' } });
    const shown = JSON.stringify(redactConfig(c));
    expect(shown).not.toContain('sr_root_secret-value');
    expect(shown).not.toContain('pw-secret');
    const r = redactConfig(c);
    expect(r.api.rootKey).toBe('***');
    expect(r.kafka.sasl.password).toBe('***');
    expect(r.kafka.sasl.username).toBe('me');
    expect({ ...r, api: { ...r.api, rootKey: c.api.rootKey }, kafka: { ...r.kafka, sasl: c.kafka.sasl } }).toEqual(c);
    // Unset secrets stay empty (so one can see that none is set).
    const none = redactConfig(loadConfig({ env: {} }));
    expect(none.api.rootKey).toBe('');
    expect(none.kafka.sasl.password).toBe('');
  });
});
