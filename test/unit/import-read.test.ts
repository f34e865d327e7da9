import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/index.js';
import { inferTypes, readRecords, sniffFormat, type ReadOptions, type ReadResult } from '../../src/import/read.js';
import type { Kind } from '../../src/import/convert.js';

const dir = mkdtempSync(join(tmpdir(), 'streamrec-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(name: string, content: string | Buffer): string {
  const path = join(dir, `${n++}-${name}`);
  writeFileSync(path, content);
  return path;
}

async function readAll<K extends Kind>(path: string, options: ReadOptions<K>): Promise<ReadResult[]> {
  const out: ReadResult[] = [];
  for await (const r of readRecords(path, options)) out.push(r);
  return out;
}

async function rejection(p: Promise<unknown>): Promise<AppError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

const oks = (rs: ReadResult[]) => rs.flatMap((r) => (r.ok ? [r] : []));
const bads = (rs: ReadResult[]) => rs.flatMap((r) => (r.ok ? [] : [r]));

const T = 1_700_000_000; // 2023-11-14T22:13:20Z
const T_MS = T * 1000;

describe('readRecords: interactions', () => {
  it('reads CSV with a BOM, CRLF, quoted fields holding commas, quotes and line breaks, and a Personalize header in any case', async () => {
    const path = file(
      'events.csv',
      '\uFEFFuser_id,Item_Id,timestamp,EVENT_TYPE,event_value,DEVICE,NOTE\r\n' +
        `u1,i1,${T},purchase,4.5,"mobile, app","she said ""hi"""\r\n` +
        `"u,2",i2,${T},,,,"two\r\nlines"\r\n`,
    );
    const rs = await readAll(path, { kind: 'interactions' });
    expect(rs).toEqual([
      {
        ok: true,
        line: 2,
        record: {
          USER_ID: 'u1',
          ITEM_ID: 'i1',
          TIMESTAMP: T_MS,
          EVENT_TYPE: 'purchase',
          EVENT_VALUE: 4.5,
          SESSION_ID: null,
          IMPRESSION: [],
          RECOMMENDATION_ID: null,
          CONTEXT: { DEVICE: 'mobile, app', NOTE: 'she said "hi"' },
        },
      },
      {
        ok: true,
        line: 3,
        record: {
          USER_ID: 'u,2',
          ITEM_ID: 'i2',
          TIMESTAMP: T_MS,
          EVENT_TYPE: 'click',
          EVENT_VALUE: null,
          SESSION_ID: null,
          IMPRESSION: [],
          RECOMMENDATION_ID: null,
          CONTEXT: { NOTE: 'two\r\nlines' },
        },
      },
    ]);
  });

  it('reads TSV (by extension and by sniffing) with SESSION_ID, IMPRESSION and RECOMMENDATION_ID', async () => {
    const text = `USER_ID\tITEM_ID\tTIMESTAMP\tSESSION_ID\tIMPRESSION\tRECOMMENDATION_ID\nu1\ti1\t${T}\ts1\ti1|i2| i3\tr1\n`;
    for (const path of [file('events.tsv', text), file('events.txt', text)]) {
      const [r] = await readAll(path, { kind: 'interactions' });
      expect(r).toMatchObject({ ok: true, line: 2, record: { SESSION_ID: 's1', IMPRESSION: ['i1', 'i2', 'i3'], RECOMMENDATION_ID: 'r1', CONTEXT: {} } });
    }
  });

  it('reads JSON Lines: numeric ids become strings, arrays stay arrays, other keys become CONTEXT; bad lines are rejected', async () => {
    const path = file(
      'events.jsonl',
      [
        JSON.stringify({ USER_ID: 7, ITEM_ID: 'i1', TIMESTAMP: T_MS, IMPRESSION: ['i1', 'i2'], DEVICE: 'tv', RANK: 3 }),
        '',
        '{"USER_ID": "u2", "ITEM_ID": ',
        '[1, 2]',
        JSON.stringify({ user_id: 'u3', item_id: 'i3', timestamp: '2023-11-14T22:13:20Z', event_type: 'watch' }),
        JSON.stringify({ USER_ID: 'u4', TIMESTAMP: T }),
      ].join('\n'),
    );
    const rs = await readAll(path, { kind: 'interactions' });
    expect(oks(rs).map((r) => [r.line, r.record])).toEqual([
      [1, { USER_ID: '7', ITEM_ID: 'i1', TIMESTAMP: T_MS, EVENT_TYPE: 'click', EVENT_VALUE: null, SESSION_ID: null, IMPRESSION: ['i1', 'i2'], RECOMMENDATION_ID: null, CONTEXT: { DEVICE: 'tv', RANK: '3' } }],
      [5, { USER_ID: 'u3', ITEM_ID: 'i3', TIMESTAMP: T_MS, EVENT_TYPE: 'watch', EVENT_VALUE: null, SESSION_ID: null, IMPRESSION: [], RECOMMENDATION_ID: null, CONTEXT: {} }],
    ]);
    const bad = bads(rs);
    expect(bad.map((r) => r.line)).toEqual([3, 4, 6]);
    expect(bad[0]).toMatchObject({ reason: expect.stringMatching(/not valid JSON/), raw: '{"USER_ID": "u2", "ITEM_ID": ' });
    expect(bad[1]!.reason).toMatch(/expected a JSON object, got an array/);
    expect(bad[2]).toMatchObject({ field: 'ITEM_ID', reason: expect.stringMatching(/ITEM_ID is missing/) });
  });

  it('refuses a JSON array where JSON Lines is expected', async () => {
    const err = await rejection(readAll(file('events.json', '[\n{"USER_ID":"u1"}\n]\n'), { kind: 'interactions' }));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/JSON array/);
  });

  it('applies a column mapping; unmapped columns become CONTEXT, a mapped target that is not a field names a CONTEXT key', async () => {
    const path = file('reviews.csv', `reviewerID,asin,unixReviewTime,overall,summary,verified\nA1,B001,${T},5.0,Great,true\n`);
    const [r] = await readAll(path, {
      kind: 'interactions',
      map: { USER_ID: 'reviewerID', ITEM_ID: 'asin', TIMESTAMP: 'unixReviewTime', EVENT_VALUE: 'overall', TITLE: 'summary' },
    });
    expect(r).toMatchObject({
      ok: true,
      record: { USER_ID: 'A1', ITEM_ID: 'B001', TIMESTAMP: T_MS, EVENT_VALUE: 5, CONTEXT: { TITLE: 'Great', verified: 'true' } },
    });
  });

  it('gives the same epoch ms for seconds, milliseconds and ISO 8601; zoneless ISO and dates are UTC', async () => {
    const forms = [`${T}`, `${T_MS}`, '2023-11-14T22:13:20Z', '2023-11-14T23:13:20+01:00', '2023-11-14T22:13:20', '2023-11-14 22:13:20', '2023-11-14T22:13:20.000'];
    const path = file('ts.csv', `USER_ID,ITEM_ID,TIMESTAMP\n${forms.map((f, i) => `u${i},i,${f}`).join('\n')}\nu,i,2023-11-14\nu,i,${T}.25\n`);
    const rs = await readAll(path, { kind: 'interactions' });
    expect(rs.every((r) => r.ok)).toBe(true);
    const ts = oks(rs).map((r) => (r.record as { TIMESTAMP: number }).TIMESTAMP);
    expect(ts.slice(0, forms.length)).toEqual(forms.map(() => T_MS));
    expect(ts[forms.length]).toBe(Date.UTC(2023, 10, 14));
    expect(ts[forms.length + 1]).toBe(T_MS + 250);
  });

  it('rejects unparseable timestamps and non-numeric EVENT_VALUE naming the field, and future events', async () => {
    const path = file('bad-ts.csv', `USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE\nu,i,yesterday,\nu,i,12:00,\nu,i,${T},lots\nu,i,${T + 86_400 * 365 * 10},\n`);
    const rs = await readAll(path, { kind: 'interactions', now: () => T_MS });
    expect(rs.map((r) => (r.ok ? 'ok' : r.field))).toEqual(['TIMESTAMP', 'TIMESTAMP', 'EVENT_VALUE', 'TIMESTAMP']);
    expect(bads(rs)[0]!.reason).toMatch(/^TIMESTAMP .*yesterday/);
    expect(bads(rs)[3]!.reason).toMatch(/in the future/);
  });

  it('rejects bad rows with their physical line numbers, also after a quoted multi-line field, and reads on', async () => {
    const lines = [
      'USER_ID,ITEM_ID,TIMESTAMP,NOTE', // 1
      `u1,i1,${T},"multi`, // 2
      'line', // 3
      'note"', // 4
      `u2,i2,${T}`, // 5: 3 columns
      '', // 6: blank, skipped
      `u3,,${T},x`, // 7: empty ITEM_ID
      `u4,i4,${T},"bad"x`, // 8: bad quoting
      'u5,i5,notatime,y', // 9
      `  ,i6,${T},z`, // 10: blank USER_ID
      `u7,i7,${T},"ok, fine"`, // 11
    ];
    const rs = await readAll(file('rejects.csv', `${lines.join('\n')}\n`), { kind: 'interactions' });
    expect(oks(rs).map((r) => r.line)).toEqual([2, 11]);
    expect(bads(rs).map((r) => [r.line, r.field])).toEqual([
      [5, undefined],
      [7, 'ITEM_ID'],
      [8, undefined],
      [9, 'TIMESTAMP'],
      [10, 'USER_ID'],
    ]);
    const [five, seven, eight] = bads(rs);
    expect(five).toMatchObject({ reason: 'has 3 columns, the header has 4', raw: `u2,i2,${T}` });
    expect(seven!.reason).toMatch(/ITEM_ID is empty/);
    expect(eight).toMatchObject({ reason: expect.stringMatching(/after the closing quote/), raw: `u4,i4,${T},"bad"x` });
  });

  it('rejects an unclosed quote as one line and reads on', async () => {
    const rs = await readAll(file('unclosed.csv', `USER_ID,ITEM_ID,TIMESTAMP\nu1,"i1,${T}\nu2,i2,${T}\n`), { kind: 'interactions' });
    expect(rs.map((r) => [r.line, r.ok])).toEqual([
      [2, false],
      [3, true],
    ]);
    expect(bads(rs)[0]!.reason).toMatch(/not closed/);
  });

  it('refuses a wrong delimiter before any row, with a hint', async () => {
    const path = file('semicolon.csv', `USER_ID;ITEM_ID;TIMESTAMP\nu1;i1;${T}\n`);
    const gen = readRecords(path, { kind: 'interactions' });
    const err = await rejection(gen.next());
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain(path);
    expect(err.message).toContain('no column for USER_ID, ITEM_ID, TIMESTAMP');
    expect(err.message).toContain('Columns found: "USER_ID;ITEM_ID;TIMESTAMP"');
    expect(err.message).toMatch(/delimiter may be wrong.*";"/);
  });

  it('refuses missing required columns, listing the columns found and the mapping', async () => {
    const path = file('missing.csv', `user,when\nu1,${T}\n`);
    let err = await rejection(readAll(path, { kind: 'interactions', map: { USER_ID: 'user', TIMESTAMP: 'when' } }));
    expect(err.message).toContain('no column for ITEM_ID (required for interactions)');
    expect(err.message).toContain('Columns found: "user", "when"');
    expect(err.message).toContain('Mapping: {"USER_ID":"user","TIMESTAMP":"when"}');
    expect(err.message).not.toMatch(/delimiter/);
    err = await rejection(readAll(path, { kind: 'interactions', map: { USER_ID: 'user', ITEM_ID: 'product', TIMESTAMP: 'when' } }));
    expect(err.message).toContain('mapped columns not found: ITEM_ID <- "product"');
  });

  it('refuses empty files, naming the file', async () => {
    for (const content of ['', '\uFEFF', '\n\n  \n']) {
      const path = file('empty.csv', content);
      const err = await rejection(readAll(path, { kind: 'interactions' }));
      expect(err.code).toBe('INVALID_ARGUMENT');
      expect(err.message).toContain(`${path} is empty`);
    }
    const missing = await rejection(readAll(join(dir, 'nope.csv'), { kind: 'interactions' }));
    expect(missing.message).toMatch(/nope\.csv/);
  });

  it('stops reading when the consumer stops', async () => {
    const path = file('many.csv', `USER_ID,ITEM_ID,TIMESTAMP\n${Array.from({ length: 100 }, (_, i) => `u${i},i,${T}`).join('\n')}\n`);
    let count = 0;
    for await (const r of readRecords(path, { kind: 'interactions' })) {
      expect(r.ok).toBe(true);
      if (++count === 3) break;
    }
    expect(count).toBe(3);
  });
});

describe('readRecords and inferTypes: items and users', () => {
  const items =
    'ITEM_ID,CREATION_TIMESTAMP,PRICE,GENRES,IN_STOCK,COLOR,DESCRIPTION,EMPTY\n' +
    `i1,${T},9.99,comedy|drama,true,red,"${'A long, free-text description of the first item. '.repeat(2)}",\n` +
    `i2,,12,comedy,FALSE,blue,"${'Another long description that goes on and on and on. '.repeat(2)}",\n` +
    `i3,2023-11-14,,,true,red,"${'Third: a long text that says very little at length!! '.repeat(2)}",\n`;

  it('infers numeric, multi, boolean, categorical and text', async () => {
    const types = await inferTypes(file('items.csv', items), { kind: 'items' });
    expect(types).toEqual({ PRICE: 'numeric', GENRES: 'multi', IN_STOCK: 'boolean', COLOR: 'categorical', DESCRIPTION: 'text', EMPTY: 'categorical' });
  });

  it('converts METADATA values by the inferred types', async () => {
    const rs = await readAll(file('items.csv', items), { kind: 'items' });
    expect(rs.map((r) => r.ok && r.record)).toEqual([
      { ITEM_ID: 'i1', CREATION_TIMESTAMP: T_MS, METADATA: { PRICE: 9.99, GENRES: ['comedy', 'drama'], IN_STOCK: true, COLOR: 'red', DESCRIPTION: expect.any(String) } },
      { ITEM_ID: 'i2', CREATION_TIMESTAMP: null, METADATA: { PRICE: 12, GENRES: ['comedy'], IN_STOCK: false, COLOR: 'blue', DESCRIPTION: expect.any(String) } },
      { ITEM_ID: 'i3', CREATION_TIMESTAMP: Date.UTC(2023, 10, 14), METADATA: { IN_STOCK: true, COLOR: 'red', DESCRIPTION: expect.any(String) } },
    ]);
  });

  it('applies type overrides (by key, case-insensitively) and rejects values that do not fit them', async () => {
    const rs = await readAll(file('items.csv', items), { kind: 'items', types: { price: 'categorical', GENRES: 'categorical', COLOR: 'numeric' } });
    expect(rs.every((r) => !r.ok)).toBe(true);
    expect(bads(rs)[0]).toMatchObject({ line: 2, field: 'METADATA.COLOR', reason: expect.stringMatching(/METADATA.COLOR expected a number.*"red"/) });
    const ok = await readAll(file('items.csv', items), { kind: 'items', types: { price: 'categorical', GENRES: 'categorical' } });
    expect(ok[0]).toMatchObject({ ok: true, record: { METADATA: { PRICE: '9.99', GENRES: 'comedy|drama' } } });
    await expect(readAll(file('items.csv', items), { kind: 'items', types: { PRICE: 'float' as 'numeric' } })).rejects.toThrow(/unknown type "float"/);
  });

  it('infers from at most inferRows rows: a later value that does not fit is a rejected row', async () => {
    const path = file('users.csv', 'customer,AGE,SEGMENT\nc1,31,a\nc2,45,b\nc3,unknown,c\n');
    expect(await inferTypes(path, { kind: 'users', map: { USER_ID: 'customer' }, inferRows: 2 })).toEqual({ AGE: 'numeric', SEGMENT: 'categorical' });
    const rs = await readAll(path, { kind: 'users', map: { USER_ID: 'customer' }, inferRows: 2 });
    expect(rs.map((r) => (r.ok ? r.record : r.line))).toEqual([
      { USER_ID: 'c1', METADATA: { AGE: 31, SEGMENT: 'a' } },
      { USER_ID: 'c2', METADATA: { AGE: 45, SEGMENT: 'b' } },
      4,
    ]);
    expect(await inferTypes(path, { kind: 'users', map: { USER_ID: 'customer' } })).toEqual({ AGE: 'categorical', SEGMENT: 'categorical' });
  });

  it('reads users from JSON Lines with typed values', async () => {
    const path = file('users.ndjson', `${JSON.stringify({ USER_ID: 'u1', AGE: 30, VIP: true, TAGS: ['a', 'b'] })}\n${JSON.stringify({ USER_ID: 'u2', AGE: '41', VIP: 'false', TAGS: 'c|d' })}\n`);
    expect(await inferTypes(path, { kind: 'users' })).toEqual({ AGE: 'numeric', VIP: 'boolean', TAGS: 'multi' });
    const rs = await readAll(path, { kind: 'users' });
    expect(rs.map((r) => r.ok && r.record)).toEqual([
      { USER_ID: 'u1', METADATA: { AGE: 30, VIP: true, TAGS: ['a', 'b'] } },
      { USER_ID: 'u2', METADATA: { AGE: 41, VIP: false, TAGS: ['c', 'd'] } },
    ]);
  });
});

describe('sniffFormat', () => {
  it('tells JSON Lines, TSV and CSV apart from the first line', () => {
    expect(sniffFormat('\uFEFF\n  {"a":1}\n')).toBe('jsonl');
    expect(sniffFormat('a\tb\tc,d\n1,2,3,4,5\n')).toBe('tsv');
    expect(sniffFormat('a,b\tc,d\n')).toBe('csv');
    expect(sniffFormat('a;b;c\n')).toBe('csv');
  });
});

describe('readRecords: other delimiters', () => {
  it('reads a semicolon-separated file with delimiter ";", suggests it when it was not given, and refuses bad delimiters', async () => {
    const path = file('semi.csv', `session_id;item_id;eventdate\ns1;"a;b";${T}\ns2;i2;${T + 1}\n`);
    const map = { USER_ID: 'session_id', ITEM_ID: 'item_id', TIMESTAMP: 'eventdate' };
    const rows = oks(await readAll(path, { kind: 'interactions', map, delimiter: ';' }));
    expect(rows.map((r) => [(r.record as { USER_ID: string }).USER_ID, (r.record as { ITEM_ID: string }).ITEM_ID])).toEqual([
      ['s1', 'a;b'],
      ['s2', 'i2'],
    ]);
    const err = await rejection(readAll(path, { kind: 'interactions', map }));
    expect(err.message).toMatch(/try --delimiter ";"/);
    expect((await rejection(readAll(path, { kind: 'interactions', map, delimiter: ';;' }))).message).toMatch(/one character/);
  });
});
