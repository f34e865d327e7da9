import { describe, expect, it } from 'vitest';
import { Tokenizer, type RawRecord } from '../../src/import/tokenize.js';

function tokenize(chunks: string[], delimiter: string | null = ',', max?: number): RawRecord[] {
  const t = new Tokenizer(delimiter, max);
  const out: RawRecord[] = [];
  chunks.forEach((c, i) => out.push(...t.push(c, i === chunks.length - 1)));
  return out;
}

const sample =
  'a,b,c\r\n' +
  '1,"x, ""y""",3\n' +
  '\n' +
  '"multi\r\nline","",\n' +
  'p,q"r,s\n' +
  '"bad"x,1\n' +
  'é,ü,€\n' +
  '"end",2,"3"';

describe('Tokenizer', () => {
  it('splits RFC 4180 CSV with line numbers and raw text', () => {
    expect(tokenize([sample])).toEqual([
      { line: 1, raw: 'a,b,c', fields: ['a', 'b', 'c'] },
      { line: 2, raw: '1,"x, ""y""",3', fields: ['1', 'x, "y"', '3'] },
      { line: 4, raw: '"multi\r\nline","",', fields: ['multi\r\nline', '', ''] },
      { line: 6, raw: 'p,q"r,s', fields: ['p', 'q"r', 's'] },
      { line: 7, raw: '"bad"x,1', fields: [], error: 'unexpected "x" after the closing quote of column 1' },
      { line: 8, raw: 'é,ü,€', fields: ['é', 'ü', '€'] },
      { line: 9, raw: '"end",2,"3"', fields: ['end', '2', '3'] },
    ]);
  });

  it('gives the same records whatever the chunk boundaries', () => {
    const whole = tokenize([sample]);
    for (let size = 1; size <= 7; size++) {
      const chunks: string[] = [];
      for (let i = 0; i < sample.length; i += size) chunks.push(sample.slice(i, i + size));
      chunks.push('');
      expect(tokenize(chunks)).toEqual(whole);
    }
    for (let cut = 0; cut <= sample.length; cut++) {
      expect(tokenize([sample.slice(0, cut), sample.slice(cut), ''])).toEqual(whole);
    }
  });

  it('rejects an unclosed quote as one line (at the end of input, or past the size cap) and resumes on the next', () => {
    expect(tokenize(['a,"b\nc,d\n'])).toEqual([
      { line: 1, raw: 'a,"b', fields: [], error: 'a quoted field is not closed before the end of the file' },
      { line: 2, raw: 'c,d', fields: ['c', 'd'] },
    ]);
    const t = new Tokenizer(',', 16);
    const out = [...t.push('a,"b\nc,d\ne,f\ng,h\ni,j\n', false), ...t.push('', true)];
    expect(out[0]).toMatchObject({ line: 1, error: 'a quoted field is not closed within 16 characters' });
    expect(out.slice(1).map((r) => r.line)).toEqual([2, 3, 4, 5]);
  });

  it('splits tabs and JSON Lines', () => {
    expect(tokenize(['x\t"y\tz"\n'], '\t')).toEqual([{ line: 1, raw: 'x\t"y\tz"', fields: ['x', 'y\tz'] }]);
    expect(tokenize(['{"a":"\\"b,c"}\r\n\n{}', ''], null)).toEqual([
      { line: 1, raw: '{"a":"\\"b,c"}', fields: ['{"a":"\\"b,c"}'] },
      { line: 3, raw: '{}', fields: ['{}'] },
    ]);
  });
});
