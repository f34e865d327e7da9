/**
 * The one test suite every KeyValueStore passes (src/state/store.ts). `open` must return a fresh,
 * empty store each time; the suite closes every store it opened after each test.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { KeyValueStore, RangeOptions, WriteOp } from '../../src/state/store.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const put = (key: string, value: string | Buffer): WriteOp => ({ type: 'put', key, value: typeof value === 'string' ? b(value) : value });
const del = (key: string): WriteOp => ({ type: 'del', key });
/** The ground truth for key order: RocksDB's default comparator, memcmp of the UTF-8 bytes. */
const bytewise = (x: string, y: string): number => Buffer.compare(b(x), b(y));

async function collect(store: KeyValueStore, options?: RangeOptions): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [key, value] of store.range(options)) out.push([key, value.toString('utf8')]);
  return out;
}
const keysOf = async (store: KeyValueStore, options?: RangeOptions): Promise<string[]> => (await collect(store, options)).map(([k]) => k);

export function storeSuite(name: string, open: () => Promise<KeyValueStore>): void {
  describe(`KeyValueStore: ${name}`, () => {
    const opened: KeyValueStore[] = [];
    const fresh = async (): Promise<KeyValueStore> => {
      const store = await open();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    it('get of a missing key is undefined; getMany of none is empty', async () => {
      const store = await fresh();
      expect(await store.get('nope')).toBeUndefined();
      expect(await store.getMany([])).toEqual([]);
      await store.write([put('nope2', 'x')]);
      expect(await store.get('nope')).toBeUndefined();
      expect(await store.get('nope2\u0000')).toBeUndefined(); // no prefix matching
    });

    it('put then get returns the bytes; a later put overwrites; del removes', async () => {
      const store = await fresh();
      const bytes = Buffer.from([0, 1, 2, 254, 255, 0]);
      await store.write([put('k', bytes), put('empty', Buffer.alloc(0)), put('', 'empty key')]);
      expect((await store.get('k'))?.equals(bytes)).toBe(true);
      expect(Buffer.isBuffer(await store.get('k'))).toBe(true);
      const empty = await store.get('empty');
      expect(empty).toBeInstanceOf(Buffer);
      expect(empty?.length).toBe(0); // an empty value is present, not missing
      expect((await store.get(''))?.toString()).toBe('empty key');
      await store.write([put('k', 'second')]);
      expect((await store.get('k'))?.toString()).toBe('second');
      await store.write([del('k'), del('never-existed')]);
      expect(await store.get('k')).toBeUndefined();
      expect((await store.get('empty'))?.length).toBe(0);
    });

    it('getMany returns values in the order asked, undefined where missing, repeats included', async () => {
      const store = await fresh();
      await store.write([put('a', 'A'), put('b', 'B'), put('c', 'C')]);
      const values = await store.getMany(['c', 'missing', 'a', 'c', 'zz', 'b']);
      expect(values.map((v) => v?.toString())).toEqual(['C', undefined, 'A', 'C', undefined, 'B']);
    });

    it('write: later ops on the same key win (put+del, del+put, put+put)', async () => {
      const store = await fresh();
      await store.write([put('x', 'old'), put('y', 'old'), put('z', 'old')]);
      await store.write([put('x', 'new'), del('x'), del('y'), put('y', 'back'), put('z', '1'), put('z', '2'), put('n', 'added'), del('n')]);
      expect((await store.getMany(['x', 'y', 'z', 'n'])).map((v) => v?.toString())).toEqual([undefined, 'back', '2', undefined]);
      expect(await collect(store)).toEqual([['y', 'back'], ['z', '2']]);
    });

    it('write: a batch with an invalid op applies nothing and rejects', async () => {
      const store = await fresh();
      await store.write([put('a', 'old')]);
      const bad: unknown[][] = [
        [put('a', 'new'), put('b', 'b'), { type: 'put', key: 'c', value: 'a string, not a Buffer' }],
        [put('a', 'new'), del('b'), { type: 'put', key: 42, value: b('v') }],
        [put('a', 'new'), { type: 'del', key: undefined }],
        [put('a', 'new'), { type: 'merge', key: 'a', value: b('v') }],
        [put('a', 'new'), { type: 'put', key: 'c', value: new Uint16Array(2) }],
        [put('a', 'new'), { type: 'put', key: 'lone \uD800 surrogate', value: b('v') }],
        [put('a', 'new'), null],
      ];
      const messages = [/value must be a Buffer/, /key must be a string/, /key must be a string/, /type/, /value must be a Buffer/, /surrogate/, /object/];
      for (const [i, ops] of bad.entries()) {
        await expect(store.write(ops as WriteOp[]), `bad batch ${i}`).rejects.toThrow(messages[i]!);
      }
      await expect(store.write('nope' as unknown as WriteOp[])).rejects.toThrow(/array/);
      expect(await collect(store)).toEqual([['a', 'old']]);
    });

    it('bad keys and range options are refused', async () => {
      const store = await fresh();
      await expect(store.get(7 as unknown as string)).rejects.toThrow(/string/);
      await expect(store.getMany(['ok', null as unknown as string])).rejects.toThrow(/keys\[1\]/);
      expect(() => store.range({ limit: -1 })).toThrow(/limit/);
      expect(() => store.range({ limit: 1.5 })).toThrow(/limit/);
      expect(() => store.range({ gte: 3 as unknown as string })).toThrow(/gte/);
    });

    describe('range', () => {
      const keys = ['user:1:a', 'user:1:b', 'user:10:a', 'user:2:a', 'user:', 'user', 'item:1', 'usex'];
      const seeded = async (): Promise<KeyValueStore> => {
        const store = await fresh();
        await store.write(keys.map((k) => put(k, `v(${k})`)));
        return store;
      };

      it('with no options yields every entry in key order, with its value', async () => {
        const store = await seeded();
        const all = await collect(store);
        // ':' (0x3A) sorts above '0' (0x30), so user:10:a comes before user:1:a.
        expect(all.map(([k]) => k)).toEqual(['item:1', 'user', 'user:', 'user:10:a', 'user:1:a', 'user:1:b', 'user:2:a', 'usex']);
        for (const [k, v] of all) expect(v).toBe(`v(${k})`);
      });

      it('prefix selects exactly the keys starting with it', async () => {
        const store = await seeded();
        expect(await keysOf(store, { prefix: 'user:1:' })).toEqual(['user:1:a', 'user:1:b']);
        expect(await keysOf(store, { prefix: 'user:1' })).toEqual(['user:10:a', 'user:1:a', 'user:1:b']);
        expect(await keysOf(store, { prefix: 'user:' })).toEqual(['user:', 'user:10:a', 'user:1:a', 'user:1:b', 'user:2:a']);
        expect(await keysOf(store, { prefix: 'nothing' })).toEqual([]);
        expect(await keysOf(store, { prefix: '' })).toHaveLength(keys.length);
      });

      it('gte is inclusive, lt exclusive, and they combine with prefix', async () => {
        const store = await seeded();
        expect(await keysOf(store, { gte: 'user:1:a', lt: 'user:2:a' })).toEqual(['user:1:a', 'user:1:b']);
        expect(await keysOf(store, { gte: 'user:1', lt: 'user:1:b' })).toEqual(['user:10:a', 'user:1:a']);
        expect(await keysOf(store, { gte: 'user:1:c' })).toEqual(['user:2:a', 'usex']);
        expect(await keysOf(store, { lt: 'user:' })).toEqual(['item:1', 'user']);
        expect(await keysOf(store, { prefix: 'user:', gte: 'user:1', lt: 'user:1:b' })).toEqual(['user:10:a', 'user:1:a']);
        expect(await keysOf(store, { prefix: 'user:', gte: 'user:1:b', lt: 'user:2:b' })).toEqual(['user:1:b', 'user:2:a']);
        expect(await keysOf(store, { prefix: 'user:1', lt: 'zzz' })).toEqual(['user:10:a', 'user:1:a', 'user:1:b']);
        expect(await keysOf(store, { prefix: 'user:1', gte: 'a' })).toEqual(['user:10:a', 'user:1:a', 'user:1:b']);
        expect(await keysOf(store, { gte: 'user:2', lt: 'user:1' })).toEqual([]); // empty interval
        expect(await keysOf(store, { gte: 'user:1:a', lt: 'user:1:a' })).toEqual([]);
        expect(await keysOf(store, { lt: '' })).toEqual([]); // nothing is below the empty key
      });

      it('limit caps the count, reverse walks down from the top of the range', async () => {
        const store = await seeded();
        expect(await keysOf(store, { limit: 2 })).toEqual(['item:1', 'user']);
        expect(await keysOf(store, { limit: 0 })).toEqual([]);
        expect(await keysOf(store, { limit: 100 })).toHaveLength(keys.length);
        expect(await keysOf(store, { reverse: true })).toEqual(['usex', 'user:2:a', 'user:1:b', 'user:1:a', 'user:10:a', 'user:', 'user', 'item:1']);
        expect(await keysOf(store, { prefix: 'user:1', reverse: true, limit: 2 })).toEqual(['user:1:b', 'user:1:a']);
        expect(await keysOf(store, { gte: 'user', lt: 'user:2:a', reverse: true, limit: 3 })).toEqual(['user:1:b', 'user:1:a', 'user:10:a']);
        expect(await keysOf(store, { lt: 'user:1:a', reverse: true })).toEqual(['user:10:a', 'user:', 'user', 'item:1']);
        expect(await keysOf(store, { gte: 'user:2', reverse: true })).toEqual(['usex', 'user:2:a']);
      });

      it('orders non-ASCII keys bytewise as UTF-8 (not as UTF-16 code units)', async () => {
        const store = await fresh();
        // U+E000..U+FFFF sort below U+10000.. in UTF-8 but above them in UTF-16 (surrogates are 0xD800-0xDFFF).
        const odd = ['z', 'é', 'ÿ', 'Ā', '\uD7FF', '\uE000', '\uFFFD', '\uFFFF', '😀', '😀x', '𝄞', '\u{10FFFF}', 'a', 'A', '', '\u0000', '\u007F', '\u0080', '日本', '日'];
        for (const k of odd) await store.write([put(k, k)]); // one at a time, then one batch of many
        const chars = ['a', 'é', '\uD7FF', '\uE000', '\uFFFD', '😀', '𝄞', '日', '\u0080', '\u{10FFFF}'];
        const pairs = chars.flatMap((x) => chars.map((y) => `~${x}${y}`));
        await store.write(pairs.map((k) => put(k, k)));
        expect(await keysOf(store, { prefix: '~' })).toEqual([...pairs].sort(bytewise));
        await store.write(pairs.map((k) => del(k)));
        const expected = [...odd].sort(bytewise);
        expect(expected).not.toEqual([...odd].sort()); // the test has teeth: JS's default order differs
        expect(expected.indexOf('\uFFFD')).toBeLessThan(expected.indexOf('😀'));
        const all = await collect(store);
        expect(all.map(([k]) => k)).toEqual(expected);
        for (const [k, v] of all) expect(v).toBe(k); // keys round-trip exactly
        expect(await keysOf(store, { reverse: true })).toEqual([...expected].reverse());
        expect(await keysOf(store, { gte: '\uE000', lt: '😀' })).toEqual(['\uE000', '\uFFFD', '\uFFFF', '𝄞']);
        expect(await keysOf(store, { gte: '\uFFFF' })).toEqual(['\uFFFF', '𝄞', '😀', '😀x', '\u{10FFFF}']);
        expect(await keysOf(store, { prefix: '😀' })).toEqual(['😀', '😀x']);
        expect(await keysOf(store, { prefix: '日' })).toEqual(['日', '日本']);
        expect((await store.getMany(['😀', '\uFFFD', 'é'])).map((v) => v?.toString())).toEqual(['😀', '\uFFFD', 'é']);
      });

      it('sees a consistent view: writes made while iterating do not show up', async () => {
        const store = await fresh();
        await store.write(['a', 'b', 'c', 'd'].map((k) => put(k, k)));
        const seen: string[] = [];
        for await (const [key, value] of store.range()) {
          seen.push(`${key}=${value.toString()}`);
          if (key === 'a') await store.write([del('c'), put('b', 'changed'), put('bb', 'new'), put('e', 'new')]);
        }
        expect(seen).toEqual(['a=a', 'b=b', 'c=c', 'd=d']);
        expect(await collect(store)).toEqual([['a', 'a'], ['b', 'changed'], ['bb', 'new'], ['d', 'd'], ['e', 'new']]);
      });

      it('can be left early (break) without blocking the store or its close', async () => {
        const store = await fresh();
        await store.write(Array.from({ length: 1000 }, (_, i) => put(`k${String(i).padStart(4, '0')}`, 'v')));
        let n = 0;
        for await (const _entry of store.range()) if (++n === 3) break;
        expect(n).toBe(3);
        // An iterator read once and then abandoned (never returned) must not hold up close either.
        const abandoned = store.range({ prefix: 'k' })[Symbol.asyncIterator]();
        expect((await abandoned.next()).value?.[0]).toBe('k0000');
        await store.write([put('after', 'x')]);
        expect((await store.get('after'))?.toString()).toBe('x');
        await store.close();
        await expect(store.get('after')).rejects.toThrow(/closed/);
        await expect(abandoned.next()).rejects.toThrow(/closed/);
      });
    });

    it('copies values: mutating a Buffer given to put or returned by get/getMany/range changes nothing stored', async () => {
      const store = await fresh();
      const mine = b('original');
      const pending = store.write([put('k', mine), put('k2', mine)]);
      mine.fill(0x21); // right after the call, before the write has completed
      await pending;
      mine.write('changed!');
      expect((await store.get('k'))?.toString()).toBe('original');

      (await store.get('k'))!.fill(0);
      const [many] = await store.getMany(['k']);
      many!.fill(0);
      for await (const [, value] of store.range()) value.fill(0);
      expect((await store.getMany(['k', 'k2'])).map((v) => v?.toString())).toEqual(['original', 'original']);
    });

    it('clear deletes every key and leaves the store usable', async () => {
      const store = await fresh();
      await store.clear(); // on an empty store too
      await store.write([...Array.from({ length: 500 }, (_, i) => put(`k${i}`, 'v')), put('', 'empty key'), put('\u{10FFFF}', 'top')]);
      expect(await keysOf(store, { limit: 1000 })).toHaveLength(502);
      await store.clear();
      expect(await keysOf(store)).toEqual([]);
      expect(await store.getMany(['k0', 'k499', '', '\u{10FFFF}'])).toEqual([undefined, undefined, undefined, undefined]);
      await store.write([put('k0', 'again')]);
      expect(await collect(store)).toEqual([['k0', 'again']]);
    });

    it('round-trips a 50k-op batch, then a 50k-op batch of puts and dels', async () => {
      const store = await fresh();
      const n = 50_000;
      const key = (i: number): string => `item:${String(i).padStart(6, '0')}`;
      const value = (i: number): Buffer => {
        const v = Buffer.alloc(8);
        v.writeUInt32BE(i, 0);
        v.writeUInt32BE(i ^ 0x5a5a5a5a, 4);
        return v;
      };
      await store.write(Array.from({ length: n }, (_, i) => put(key(i), value(i))));
      let count = 0;
      let wrong = 0;
      for await (const [k, v] of store.range()) {
        if (k !== key(count) || !v.equals(value(count))) wrong++; // in order, each with its value
        count++;
      }
      expect({ count, wrong }).toEqual({ count: n, wrong: 0 });
      const probe = Array.from({ length: 1000 }, (_, i) => (i * 7919) % n);
      const got = await store.getMany(probe.map(key));
      expect(got.every((v, i) => v?.equals(value(probe[i]!)))).toBe(true);

      // Delete the even keys and overwrite the odd ones, in one batch.
      await store.write(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? del(key(i)) : put(key(i), b(`odd ${i}`)))));
      const after = await collect(store);
      expect(after).toHaveLength(n / 2);
      expect(after[0]).toEqual([key(1), 'odd 1']);
      expect(after.at(-1)).toEqual([key(n - 1), `odd ${n - 1}`]);
      expect(await store.get(key(2))).toBeUndefined();
    });

    it('close is idempotent and later calls reject', async () => {
      const store = await fresh();
      await store.write([put('a', '1')]);
      await store.close();
      await store.close();
      await expect(store.get('a')).rejects.toThrow(/closed/);
      // A retriable 503 for a query that raced a partition's release, not an internal error.
      await expect(store.getMany(['a'])).rejects.toMatchObject({ code: 'STORE_CLOSED', status: 503 });
      await expect(store.write([put('b', '2')])).rejects.toThrow(/closed/);
      expect(() => store.range()).toThrow(/closed/);
    });
  });
}
