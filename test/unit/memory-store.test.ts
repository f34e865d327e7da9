import { describe, expect, it } from 'vitest';
import { compareKeys, MemoryStore } from '../../src/state/memory-store.js';
import { storeSuite } from './store-suite.js';

storeSuite('MemoryStore', async () => new MemoryStore());

describe('compareKeys', () => {
  it('agrees with a bytewise comparison of the UTF-8 encodings', () => {
    const samples = ['', 'a', 'ab', 'b', '\u007F', '\u0080', '\u07FF', '\u0800', '\uD7FF', '\uE000', '\uFFFF', '\u{10000}', '\u{1F600}', '\u{10FFFF}', 'a\u{10000}', 'a\uFFFF'];
    for (const x of samples) {
      for (const y of samples) {
        const expected = Math.sign(Buffer.compare(Buffer.from(x), Buffer.from(y)));
        expect(Math.sign(compareKeys(x, y)), `${JSON.stringify(x)} vs ${JSON.stringify(y)}`).toBe(expected);
      }
    }
  });
});
