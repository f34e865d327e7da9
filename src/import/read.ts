/**
 * The streaming reader of `streamrec import`: a CSV, TSV or JSON Lines file -> validated Avro-shaped
 * Interaction / Item / User records, one result per data row, never loading the file whole.
 *
 * - Format: given, or by extension (.csv, .tsv/.tab, .jsonl/.json/.ndjson), else sniffed from the
 *   first line (`{` -> JSON Lines, more tabs than commas -> TSV, else CSV). A UTF-8 BOM is skipped.
 * - Columns: `map` (target field -> source column), then Personalize-style names matched
 *   case-insensitively; other columns become CONTEXT (interactions) or METADATA (items, users).
 * - Every row gives `{ok: true, line, record}` or `{ok: false, line, reason, field?, raw}`; `line` is
 *   the 1-based physical line the row starts on. Bad rows never stop the reader; a bad file (empty,
 *   no header, required columns missing, a wrong delimiter) is refused with INVALID_ARGUMENT before
 *   any row is given.
 * - Records are checked with the Avro codecs (and, for interactions, the shared event checks).
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { loadConfig } from '../config/index.js';
import { AppError } from '../errors/index.js';
import { createCodecs, type Codecs, type FieldError, type Interaction, type Item, type MetadataValue, type User } from '../serde/avro.js';
import { checkInteraction } from '../serde/validate.js';
import {
  buildLayout,
  importTimestamp,
  isAbsent,
  METADATA_TYPES,
  splitMulti,
  toContextValue,
  toMetadataValue,
  toNumber,
  toStringValue,
  TypeStats,
  type Kind,
  type Layout,
  type MetadataType,
} from './convert.js';
import { Tokenizer } from './tokenize.js';

export type { Kind, MetadataType } from './convert.js';
export type Format = 'auto' | 'csv' | 'tsv' | 'jsonl';

export interface KindRecords {
  interactions: Interaction;
  items: Item;
  users: User;
}

export interface ReadOptions<K extends Kind = Kind> {
  kind: K;
  /** Default `auto`. */
  format?: Format;
  /** A delimiter of one character (e.g. `;`), for delimited files that are neither CSV nor TSV; implies a delimited format. */
  delimiter?: string;
  /** Target field -> source column (e.g. `{USER_ID: 'user_id'}`); a target that is not a known field names a CONTEXT / METADATA key. */
  map?: Record<string, string>;
  /** METADATA key -> type, overriding the inferred type (items, users). */
  types?: Record<string, MetadataType>;
  /** Rows read to infer METADATA types (items, users); default 10,000. */
  inferRows?: number;
  /** Called at most every 200 ms while reading. */
  onProgress?: (bytesRead: number, totalBytes: number, rows: number) => void;
  /** Default: the codecs of the default config. */
  codecs?: Codecs;
  /** Interactions further ahead of `now` are rejected; default: the config's ingest.maxFutureSkewMs. */
  maxFutureSkewMs?: number;
  now?: () => number;
}

export type ReadResult<R = Interaction | Item | User> =
  | { ok: true; line: number; record: R }
  | { ok: false; line: number; reason: string; field?: string; raw: string };

export const DEFAULT_INFER_ROWS = 10_000;
const PROGRESS_EVERY_MS = 200;
const CHUNK_BYTES = 1 << 20;
const SNIFF_BYTES = 64 * 1024;

/** Reads `path` row by row; see the module comment. */
export async function* readRecords<K extends Kind>(path: string, options: ReadOptions<K>): AsyncGenerator<ReadResult<KindRecords[K]>> {
  const kind: Kind = options.kind;
  const inferred = kind === 'interactions' ? {} : await inferTypes(path, options);
  const types = typeResolver(inferred, options.types ?? {});
  let codecs = options.codecs;
  let skew = options.maxFutureSkewMs;
  if (codecs === undefined || skew === undefined) {
    const config = loadConfig({ env: {} });
    codecs ??= createCodecs(config);
    skew ??= config.ingest.maxFutureSkewMs;
  }
  const ctx: ConvertContext = { codecs, maxFutureSkewMs: skew, now: options.now ?? Date.now, types };
  const progress = { bytes: 0, total: 0 };
  const onProgress = options.onProgress;
  let rows = 0;
  let last = Date.now();
  for await (const row of sourceRows(path, options, progress)) {
    rows++;
    const result: ReadResult = 'reason' in row ? { ok: false, ...row } : convert(kind, row, ctx);
    yield result as ReadResult<KindRecords[K]>;
    if (onProgress !== undefined) {
      const now = Date.now();
      if (now - last >= PROGRESS_EVERY_MS) {
        last = now;
        onProgress(progress.bytes, progress.total, rows);
      }
    }
  }
}

/**
 * METADATA types of an items or users file from its first `options.inferRows` rows (default 10,000):
 * numeric if every non-empty value is a number, multi if values contain `|`, boolean if every value
 * is true/false, text if values are over 50 characters on average, else categorical. Overrides in
 * `options.types` are not applied here. Interactions have no METADATA: `{}`.
 */
export async function inferTypes(path: string, options: ReadOptions): Promise<Record<string, MetadataType>> {
  if (options.kind === 'interactions') return {};
  const limit = options.inferRows ?? DEFAULT_INFER_ROWS;
  const stats = new Map<string, TypeStats>();
  let rows = 0;
  if (limit > 0) {
    for await (const row of sourceRows(path, options, { bytes: 0, total: 0 })) {
      if (!('reason' in row)) {
        for (const { index, key } of row.layout.extras) {
          let s = stats.get(key);
          if (s === undefined) stats.set(key, (s = new TypeStats()));
          s.add(row.values[index]);
        }
      }
      if (++rows >= limit) break;
    }
  }
  return Object.fromEntries([...stats].map(([key, s]) => [key, s.type()]));
}

interface SourceRow {
  line: number;
  raw: string;
  values: unknown[];
  layout: Layout;
}

interface BadRow {
  line: number;
  raw: string;
  reason: string;
  field?: string;
}

/** The data rows of the file with their layout, or why a row cannot be read; throws for a bad file. */
async function* sourceRows(path: string, options: ReadOptions, progress: { bytes: number; total: number }): AsyncGenerator<SourceRow | BadRow> {
  const size = await fileSize(path);
  progress.total = size;
  if (size === 0) throw emptyFile(path);
  if (options.delimiter !== undefined && (options.delimiter.length !== 1 || options.delimiter === '"' || /[\r\n]/.test(options.delimiter))) {
    throw new AppError('INVALID_ARGUMENT', `delimiter must be one character other than a quote or a line break, got ${JSON.stringify(options.delimiter)}`, { field: 'delimiter' });
  }
  const format = options.delimiter !== undefined ? (options.delimiter === '\t' ? 'tsv' : 'csv') : await resolveFormat(path, options.format ?? 'auto');
  const delimiter = options.delimiter ?? (format === 'csv' ? ',' : format === 'tsv' ? '\t' : null);
  const tokenizer = new Tokenizer(delimiter);
  const decoder = new StringDecoder('utf8');
  const map = options.map ?? {};
  let header: Layout | undefined;
  let first = true;
  let sawRecord = false;
  const layouts = new Map<string, Layout>();

  const rowsOf = function* (text: string, final: boolean): Generator<SourceRow | BadRow> {
    for (const rec of tokenizer.push(text, final)) {
      if (delimiter === null) {
        if (!sawRecord && rec.raw.trimStart().startsWith('[')) {
          throw new AppError(
            'INVALID_ARGUMENT',
            `${path}: line ${rec.line} starts a JSON array; JSON Lines (one JSON object per line) is expected`,
            { field: 'path' },
          );
        }
        sawRecord = true;
        yield jsonRow(rec.line, rec.raw);
        continue;
      }
      sawRecord = true;
      if (header === undefined) {
        header = headerLayout(path, format, rec.line, rec.fields, rec.error, options.kind, map);
        continue;
      }
      if (rec.error !== undefined) {
        yield { line: rec.line, raw: rec.raw, reason: rec.error };
      } else if (rec.fields.length !== header.columns.length) {
        yield { line: rec.line, raw: rec.raw, reason: `has ${rec.fields.length} columns, the header has ${header.columns.length}` };
      } else {
        yield { line: rec.line, raw: rec.raw, values: rec.fields, layout: header };
      }
    }
  };

  const jsonRow = (line: number, raw: string): SourceRow | BadRow => {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return { line, raw, reason: `is not valid JSON: ${(err as Error).message}` };
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return { line, raw, reason: `expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}` };
    }
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    const signature = keys.join('\n');
    let layout = layouts.get(signature);
    if (layout === undefined) {
      layout = buildLayout(keys, options.kind, map);
      // Records of one file mostly share their keys; the cache is bounded for files where they do not.
      if (layouts.size < 256) layouts.set(signature, layout);
    }
    return { line, raw, values: keys.map((k) => obj[k]), layout };
  };

  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let text = decoder.write(chunk);
    if (first && text.length > 0) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    progress.bytes += chunk.length;
    yield* rowsOf(text, false);
  }
  yield* rowsOf(decoder.end(), true);
  if (!sawRecord) throw emptyFile(path);
}

function headerLayout(
  path: string,
  format: Format,
  line: number,
  fields: string[],
  error: string | undefined,
  kind: Kind,
  map: Record<string, string>,
): Layout {
  if (error !== undefined) throw new AppError('INVALID_ARGUMENT', `${path}: the header (line ${line}) cannot be read: ${error}`, { field: 'path' });
  const columns = fields.map((f) => f.trim());
  const seen = new Set<string>();
  for (const c of columns) {
    if (c !== '' && seen.has(c)) throw new AppError('INVALID_ARGUMENT', `${path}: column ${JSON.stringify(c)} appears twice in the header (line ${line})`, { field: 'path' });
    seen.add(c);
  }
  const layout = buildLayout(columns, kind, map);
  if (layout.missing.length === 0 && layout.unmapped.length === 0) return layout;
  const problems: string[] = [];
  if (layout.missing.length > 0) problems.push(`no column for ${layout.missing.join(', ')} (required for ${kind})`);
  if (layout.unmapped.length > 0) problems.push(`mapped columns not found: ${layout.unmapped.map(([t, s]) => `${t} <- ${JSON.stringify(s)}`).join(', ')}`);
  const mapping = Object.keys(map).length > 0 ? JSON.stringify(map) : 'none (Personalize-style column names are matched case-insensitively)';
  let hint = '';
  if (columns.length === 1) {
    const delimiter = format === 'tsv' ? '\t' : ',';
    const other = [';', '\t', ',', '|'].find((d) => d !== delimiter && (columns[0] ?? '').includes(d));
    hint =
      ` The header has a single column: the delimiter may be wrong (read as ${format.toUpperCase()}, delimiter ${JSON.stringify(delimiter)}` +
      `${other === undefined ? '' : `; the header contains ${JSON.stringify(other)}: try --delimiter ${JSON.stringify(other)}`}).`;
  }
  throw new AppError(
    'INVALID_ARGUMENT',
    `${path}: ${problems.join('; ')}. Columns found: ${columns.map((c) => JSON.stringify(c)).join(', ')}. Mapping: ${mapping}.${hint}`,
    { field: 'map' },
  );
}

async function fileSize(path: string): Promise<number> {
  let s;
  try {
    s = await stat(path);
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `cannot read the import file ${path}: ${(err as Error).message}`, { field: 'path', cause: err });
  }
  if (!s.isFile()) throw new AppError('INVALID_ARGUMENT', `the import file ${path} is not a file`, { field: 'path' });
  return s.size;
}

function emptyFile(path: string): AppError {
  return new AppError('INVALID_ARGUMENT', `the import file ${path} is empty (no header and no rows)`, { field: 'path' });
}

const EXTENSIONS: Record<string, Exclude<Format, 'auto'>> = {
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.jsonl': 'jsonl',
  '.json': 'jsonl',
  '.ndjson': 'jsonl',
};

/** The format to read `path` as: given, by extension, or sniffed from the first non-blank line. */
export async function resolveFormat(path: string, format: Format): Promise<Exclude<Format, 'auto'>> {
  if (format !== 'auto') return format;
  const byExt = EXTENSIONS[extname(path).toLowerCase()];
  if (byExt !== undefined) return byExt;
  const fh = await open(path, 'r');
  let text: string;
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
    text = new StringDecoder('utf8').write(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
  return sniffFormat(text);
}

/** `{` first -> jsonl; more tabs than commas on the first line -> tsv; else csv. */
export function sniffFormat(text: string): Exclude<Format, 'auto'> {
  const body = text.replace(/^\uFEFF/, '').replace(/^\s+/, '');
  if (body.startsWith('{')) return 'jsonl';
  const nl = body.indexOf('\n');
  const line = nl === -1 ? body : body.slice(0, nl);
  const count = (c: string): number => line.split(c).length - 1;
  return count('\t') > count(',') ? 'tsv' : 'csv';
}

function typeResolver(inferred: Record<string, MetadataType>, overrides: Record<string, MetadataType>): (key: string) => MetadataType {
  for (const [key, t] of Object.entries(overrides)) {
    if (!METADATA_TYPES.includes(t)) {
      throw new AppError('INVALID_ARGUMENT', `types.${key}: unknown type ${JSON.stringify(t)} (expected one of ${METADATA_TYPES.join(', ')})`, {
        field: `types.${key}`,
      });
    }
  }
  const lower = new Map(Object.entries(overrides).map(([k, t]) => [k.toLowerCase(), t]));
  const cache = new Map<string, MetadataType>();
  return (key) => {
    let t = cache.get(key);
    if (t === undefined) {
      t = overrides[key] ?? lower.get(key.toLowerCase()) ?? inferred[key] ?? 'categorical';
      cache.set(key, t);
    }
    return t;
  };
}

interface ConvertContext {
  codecs: Codecs;
  maxFutureSkewMs: number;
  now: () => number;
  types: (key: string) => MetadataType;
}

/** One source row -> a validated record, or the problems that stop it. */
function convert(kind: Kind, row: SourceRow, ctx: ConvertContext): ReadResult {
  const { layout, values } = row;
  const errors: FieldError[] = [];
  const get = (field: string): unknown => {
    const i = layout.known.get(field);
    return i === undefined ? undefined : values[i];
  };
  const timestamp = (field: string): number | null | undefined => {
    const v = get(field);
    if (isAbsent(v)) return v === undefined ? undefined : null;
    const ts = importTimestamp(v);
    if (ts.ok) return ts.value;
    errors.push({ field, reason: ts.reason });
    return null;
  };
  const id = (field: string): unknown => {
    const v = get(field);
    return v === null ? undefined : toStringValue(v);
  };
  const optionalString = (field: string): unknown => {
    const v = get(field);
    return isAbsent(v) ? null : toStringValue(v);
  };

  let record: Record<string, unknown>;
  if (kind === 'interactions') {
    const context: [string, string][] = [];
    for (const { index, key } of layout.extras) {
      const v = values[index];
      if (!isAbsent(v)) context.push([key, toContextValue(v)]);
    }
    const ts = timestamp('TIMESTAMP');
    const eventType = get('EVENT_TYPE');
    const eventValue = get('EVENT_VALUE');
    let value: number | null = null;
    if (!isAbsent(eventValue)) {
      const n = toNumber(eventValue);
      if (n === undefined) errors.push({ field: 'EVENT_VALUE', reason: `expected a number, got ${JSON.stringify(eventValue)}` });
      else value = n;
    }
    const impression = get('IMPRESSION');
    record = {
      USER_ID: id('USER_ID'),
      ITEM_ID: id('ITEM_ID'),
      // Missing (no value): left out, so the codec names it; unparseable: already an error.
      TIMESTAMP: ts ?? undefined,
      EVENT_TYPE: isAbsent(eventType) ? 'click' : toStringValue(eventType),
      EVENT_VALUE: value,
      SESSION_ID: optionalString('SESSION_ID'),
      IMPRESSION: isAbsent(impression)
        ? []
        : Array.isArray(impression)
          ? impression.map(toStringValue)
          : splitMulti(String(toStringValue(impression))),
      RECOMMENDATION_ID: optionalString('RECOMMENDATION_ID'),
      // fromEntries defines own properties: a "__proto__" column cannot reach the prototype.
      CONTEXT: Object.fromEntries(context),
    };
  } else {
    const metadata: [string, MetadataValue][] = [];
    for (const { index, key } of layout.extras) {
      const v = values[index];
      if (isAbsent(v)) continue;
      const m = toMetadataValue(v, ctx.types(key));
      if (m.ok) metadata.push([key, m.value]);
      else errors.push({ field: `METADATA.${key}`, reason: m.reason });
    }
    record =
      kind === 'items'
        ? { ITEM_ID: id('ITEM_ID'), CREATION_TIMESTAMP: timestamp('CREATION_TIMESTAMP') ?? null, METADATA: Object.fromEntries(metadata) }
        : { USER_ID: id('USER_ID'), METADATA: Object.fromEntries(metadata) };
  }

  if (errors.length === 0) {
    const codec = kind === 'interactions' ? ctx.codecs.Interaction : kind === 'items' ? ctx.codecs.Item : ctx.codecs.User;
    errors.push(...codec.validate(record));
    if (errors.length === 0 && kind === 'interactions') {
      errors.push(...checkInteraction(record as unknown as Interaction, ctx.now(), { maxFutureSkewMs: ctx.maxFutureSkewMs }));
    }
  }
  if (errors.length > 0) {
    const reason = errors
      .map((e) => {
        const i = layout.known.get(e.field.split('.')[0] ?? '');
        const column = layout.columns[i ?? -1];
        return `${e.field}${column !== undefined && column !== e.field ? ` (column ${JSON.stringify(column)})` : ''} ${e.reason}`;
      })
      .join('; ');
    return { ok: false, line: row.line, reason, field: errors[0]!.field, raw: row.raw };
  }
  return { ok: true, line: row.line, record: record as unknown as Interaction | Item | User };
}
