/**
 * Incremental splitting of decoded text into records, for the import reader: delimited text
 * (CSV/TSV, RFC 4180 quoting) and JSON Lines. Text is pushed chunk by chunk; only the unfinished
 * tail of the input is kept between pushes, so memory is bounded by the longest record.
 *
 * Every record carries the 1-based physical line it starts on and its raw text (without the line
 * break), so a rejected row can be reported exactly where it is in the file.
 */

export interface RawRecord {
  /** 1-based physical line where the record starts. */
  line: number;
  /** The record's text as in the file, without its final line break (may span lines when quoted). */
  raw: string;
  /** Delimited: the fields; JSON Lines: the line as its only element. Empty when `error` is set. */
  fields: string[];
  /** Why the record could not be split (bad quoting); the record is then one physical line. */
  error?: string;
}

/** A quoted field longer than this is treated as an unclosed quote (keeps memory bounded). */
export const MAX_RECORD_CHARS = 1 << 20;

type QuotedResult =
  | { kind: 'more' }
  | { kind: 'record'; fields: string[]; end: number; next: number }
  | { kind: 'error'; reason: string; at: number };

export class Tokenizer {
  private buf = '';
  /** Physical line number of buf[0]. */
  private line = 1;
  private readonly delimiter: string | null;
  private readonly maxRecordChars: number;

  /** `delimiter` null: JSON Lines (one record per line, no quoting). */
  constructor(delimiter: string | null, maxRecordChars = MAX_RECORD_CHARS) {
    this.delimiter = delimiter;
    this.maxRecordChars = maxRecordChars;
  }

  /** The records completed by `text`; with `final`, also the last one (the end of input). Blank lines are skipped. */
  *push(text: string, final: boolean): Generator<RawRecord> {
    const buf = this.buf.length === 0 ? text : this.buf + text;
    let pos = 0;
    try {
      while (pos < buf.length) {
        let nl = buf.indexOf('\n', pos);
        if (nl === -1) {
          if (!final) break;
          nl = buf.length;
        }
        const lineEnd = nl > pos && buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        const lineText = buf.slice(pos, lineEnd);
        const startLine = this.line;
        if (this.delimiter === null || !lineText.includes('"')) {
          // Fast path: the record is this line.
          pos = nl + 1;
          this.line++;
          if (lineText.trim() === '') continue;
          yield { line: startLine, raw: lineText, fields: this.delimiter === null ? [lineText] : lineText.split(this.delimiter) };
          continue;
        }
        const r = this.quoted(buf, pos, final);
        if (r.kind === 'more' && !final && buf.length - pos <= this.maxRecordChars) break;
        if (r.kind === 'record') {
          const raw = buf.slice(pos, r.end);
          this.line += countNewlines(buf, pos, r.next);
          pos = r.next;
          yield { line: startLine, raw, fields: r.fields };
          continue;
        }
        // A quoting error, or a quote not closed (within the size cap or before the end of the file):
        // this physical line is rejected and splitting resumes on the next one.
        const reason =
          r.kind === 'error'
            ? r.reason
            : final
              ? 'a quoted field is not closed before the end of the file'
              : `a quoted field is not closed within ${this.maxRecordChars} characters`;
        pos = nl + 1;
        this.line++;
        yield { line: startLine, raw: lineText, fields: [], error: reason };
      }
    } finally {
      this.buf = pos >= buf.length ? '' : buf.slice(pos);
    }
  }

  /** Splits the record starting at `pos` character by character (it has quotes). */
  private quoted(buf: string, pos: number, final: boolean): QuotedResult {
    const d = this.delimiter!;
    const fields: string[] = [];
    let i = pos;
    for (;;) {
      if (buf.charCodeAt(i) === 34 /* " */) {
        let field = '';
        let j = i + 1;
        for (;;) {
          const q = buf.indexOf('"', j);
          if (q === -1) return { kind: 'more' };
          if (q + 1 === buf.length && !final) return { kind: 'more' };
          if (buf.charCodeAt(q + 1) === 34) {
            field += buf.slice(j, q + 1);
            j = q + 2;
            continue;
          }
          field += buf.slice(j, q);
          i = q + 1;
          break;
        }
        fields.push(field);
        if (i >= buf.length) return final ? { kind: 'record', fields, end: i, next: i } : { kind: 'more' };
        if (buf.startsWith(d, i)) {
          i += d.length;
          continue;
        }
        if (buf.charCodeAt(i) === 10) return { kind: 'record', fields, end: i, next: i + 1 };
        if (buf.charCodeAt(i) === 13 && buf.charCodeAt(i + 1) === 10) return { kind: 'record', fields, end: i, next: i + 2 };
        if (buf.charCodeAt(i) === 13 && i + 1 >= buf.length) return final ? { kind: 'record', fields, end: i, next: i + 1 } : { kind: 'more' };
        return { kind: 'error', reason: `unexpected ${JSON.stringify(buf[i])} after the closing quote of column ${fields.length}`, at: i };
      }
      // Unquoted field: up to the next delimiter or line break; a quote inside it is kept as is.
      const nd = buf.indexOf(d, i);
      const nl = buf.indexOf('\n', i);
      if (nl === -1 && !final) return { kind: 'more' };
      const lineEnd = nl === -1 ? buf.length : nl;
      if (nd !== -1 && nd < lineEnd) {
        fields.push(buf.slice(i, nd));
        i = nd + d.length;
        continue;
      }
      const end = lineEnd > i && buf.charCodeAt(lineEnd - 1) === 13 ? lineEnd - 1 : lineEnd;
      fields.push(buf.slice(i, end));
      return { kind: 'record', fields, end, next: nl === -1 ? buf.length : nl + 1 };
    }
  }
}

function countNewlines(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = s.indexOf('\n', from); i !== -1 && i < to; i = s.indexOf('\n', i + 1)) n++;
  return n;
}
