import { describe, expect, it } from 'vitest';
import { markAbortedRecords, type FetchedRecord } from '../../src/kafka/read-committed.js';

const rec = (offset: number, producerId: string, kind: 'data' | 'abort' | 'commit' | 'plain'): FetchedRecord => ({
  offset: String(offset),
  key: kind === 'abort' ? Buffer.from([0, 0, 0, 0]) : kind === 'commit' ? Buffer.from([0, 0, 0, 1]) : Buffer.from('k'),
  isControlRecord: kind === 'abort' || kind === 'commit',
  batchContext: { producerId, inTransaction: kind !== 'plain' },
});

describe('markAbortedRecords (the Java consumer rule)', () => {
  it('finds aborted records of interleaved writers whatever order the broker lists the aborts in', () => {
    // a: 0 (aborted), b: 1 (aborted), c: 2 (committed), b abort 3, a abort 4, c commit 5, a: 6 committed, a commit 7
    const records = [rec(0, 'a', 'data'), rec(1, 'b', 'data'), rec(2, 'c', 'data'), rec(3, 'b', 'abort'), rec(4, 'a', 'abort'), rec(5, 'c', 'commit'), rec(6, 'a', 'data'), rec(7, 'a', 'commit'), rec(8, 'x', 'plain')];
    const n = markAbortedRecords(records, [
      { producerId: 'b', firstOffset: '1' },
      { producerId: 'a', firstOffset: '0' },
    ]);
    expect(n).toBe(2);
    expect(records.filter((r) => !r.isControlRecord).map((r) => Number(r.offset))).toEqual([2, 6, 8]);
  });

  it('steps into several aborted transactions that began before the first fetched record', () => {
    const records = [rec(10, 'a', 'data'), rec(11, 'b', 'data'), rec(12, 'a', 'abort'), rec(13, 'b', 'abort'), rec(14, 'b', 'data')];
    markAbortedRecords(records, [
      { producerId: 'a', firstOffset: '3' },
      { producerId: 'b', firstOffset: '5' },
    ]);
    expect(records.filter((r) => !r.isControlRecord).map((r) => Number(r.offset))).toEqual([14]);
  });

  it('changes nothing without aborted transactions', () => {
    const records = [rec(0, 'a', 'data'), rec(1, 'a', 'commit')];
    expect(markAbortedRecords(records, [])).toBe(0);
    expect(records[0]!.isControlRecord).toBe(false);
  });
});
