/**
 * The Avro schemas in avro/, loaded with avsc, and the one way records become bytes and back.
 *
 * - encode: validates first; a bad value is refused with RECORD_INVALID naming the field.
 * - decode: bounded by the record's own size. A record over `maxBytes` is refused with
 *   RECORD_TOO_LARGE before anything is read; then the bytes are walked against the writer schema
 *   without allocating (src/serde/bounded.ts: a count the remaining bytes cannot hold is refused),
 *   and only then decoded. Bytes that are not a canonical record of the writer schema (truncated,
 *   trailing bytes, invalid UTF-8, a bad union index, ...) are refused with RECORD_MALFORMED;
 *   decoded records are validated like encoded ones (an empty USER_ID is as bad as a missing one).
 * - schema evolution: a reader decodes records written with an older writer schema (avsc resolver).
 * - wire format: plain Avro binary, or Confluent's (magic byte 0, 4-byte big-endian schema id, Avro).
 */
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { AppError } from '../errors/index.js';
import type { Config } from '../config/index.js';
import { packagePath } from '../util/paths.js';
import { BoundsError, checkBounds } from './bounded.js';

export const SCHEMA_NAMES = ['Interaction', 'Item', 'User', 'Recommendation', 'DeadLetter'] as const;
export type SchemaName = (typeof SCHEMA_NAMES)[number];

export type MetadataValue = string | number | boolean | string[];

export interface Interaction {
  USER_ID: string;
  ITEM_ID: string;
  TIMESTAMP: number;
  EVENT_TYPE: string;
  EVENT_VALUE: number | null;
  SESSION_ID: string | null;
  IMPRESSION: string[];
  RECOMMENDATION_ID: string | null;
  CONTEXT: Record<string, string>;
}

export interface Item {
  ITEM_ID: string;
  CREATION_TIMESTAMP: number | null;
  METADATA: Record<string, MetadataValue>;
}

export interface User {
  USER_ID: string;
  METADATA: Record<string, MetadataValue>;
}

export interface Recommendation {
  USER_ID: string;
  RECOMMENDATION_ID: string;
  ITEMS: { ITEM_ID: string; SCORE: number; REASON: string | null }[];
  MODEL_VERSION: string;
  EVENT_TIMESTAMP: number;
  EMIT_TIMESTAMP: number;
}

export interface DeadLetter {
  SOURCE: string;
  SOURCE_PARTITION: number | null;
  SOURCE_OFFSET: string | null;
  KEY: Buffer | null;
  VALUE: Buffer | null;
  ERROR_CODE: string;
  FIELD: string | null;
  REASON: string;
  FAILED_AT: number;
  /** Set when KEY / VALUE were cut: the original length and the SHA-256 (hex) of the original bytes. */
  KEY_SIZE?: number | null;
  KEY_SHA256?: string | null;
  VALUE_SIZE?: number | null;
  VALUE_SHA256?: string | null;
}

export interface RecordTypes {
  Interaction: Interaction;
  Item: Item;
  User: User;
  Recommendation: Recommendation;
  DeadLetter: DeadLetter;
}

/** Records as producers may write them: fields with a default may be left out. */
export type InteractionInput = Pick<Interaction, 'USER_ID' | 'ITEM_ID' | 'TIMESTAMP'> & Partial<Interaction>;

/** An interaction with every field left out at its schema default (EVENT_TYPE click), keys in the schema's order. */
export function interaction(f: InteractionInput): Interaction {
  return {
    USER_ID: f.USER_ID,
    ITEM_ID: f.ITEM_ID,
    TIMESTAMP: f.TIMESTAMP,
    EVENT_TYPE: f.EVENT_TYPE ?? 'click',
    EVENT_VALUE: f.EVENT_VALUE ?? null,
    SESSION_ID: f.SESSION_ID ?? null,
    IMPRESSION: f.IMPRESSION ?? [],
    RECOMMENDATION_ID: f.RECOMMENDATION_ID ?? null,
    CONTEXT: f.CONTEXT ?? {},
  };
}

export interface FieldError {
  /** Dotted path of the field, e.g. `USER_ID` or `METADATA.price`. */
  field: string;
  reason: string;
}

/** Parses an .avsc schema (JSON text or object) with avsc. */
export function parseSchema(schema: string | object): avro.Type {
  return avro.Type.forSchema(typeof schema === 'string' ? (JSON.parse(schema) as avro.Schema) : (schema as avro.Schema));
}

const loaded = new Map<SchemaName, avro.Type>();

/** The current schema of `name`, from avro/<name>.avsc. */
export function schemaType(name: SchemaName): avro.Type {
  let type = loaded.get(name);
  if (!type) {
    type = parseSchema(readFileSync(packagePath('avro', `${name}.avsc`), 'utf8'));
    loaded.set(name, type);
  }
  return type;
}

/** Finds writer schemas by Confluent schema id. */
export interface SchemaLookup {
  byId(id: number): avro.Type | undefined;
}

export interface CodecOptions {
  wireFormat?: 'plain' | 'confluent';
  /** The registry id of this codec's own schema (confluent wire format). */
  schemaId?: number;
  /** Where to find writer schemas by id (confluent wire format); the codec's own id is always known. */
  lookup?: SchemaLookup;
  /** Records longer than this (wire bytes) are refused before decoding; `maxBytesKey` names the setting in the error. */
  maxBytes?: number;
  maxBytesKey?: string;
}

const MAGIC = 0;

export class AvroCodec<N extends SchemaName> {
  readonly name: N;
  readonly type: avro.Type;
  private readonly wireFormat: 'plain' | 'confluent';
  private readonly schemaId: number | undefined;
  private readonly lookup: SchemaLookup | undefined;
  private readonly maxBytes: number;
  private readonly maxBytesKey: string;
  private readonly resolvers = new Map<string, avro.Resolver>();

  constructor(name: N, options: CodecOptions = {}, type: avro.Type = schemaType(name)) {
    this.name = name;
    this.type = type;
    this.wireFormat = options.wireFormat ?? 'plain';
    this.schemaId = options.schemaId;
    this.lookup = options.lookup;
    this.maxBytes = options.maxBytes ?? Infinity;
    this.maxBytesKey = options.maxBytesKey ?? 'the size limit';
    if (this.wireFormat === 'confluent' && this.schemaId === undefined) {
      throw new AppError('SCHEMA_NOT_FOUND', `the confluent wire format needs the schema id of ${name}`, { field: 'avro.confluentSchemaIds' });
    }
  }

  /** Field-level problems of `value` against this schema (empty when it is valid). */
  validate(value: unknown): FieldError[] {
    const errors: FieldError[] = [];
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return [{ field: '(record)', reason: `expected a ${this.name} record (an object), got ${describe(value)}` }];
    }
    this.type.isValid(value, {
      noUndeclaredFields: true,
      errorHook: (path: string[], v: unknown, t: avro.Type) => {
        const field = path.join('.') || '(record)';
        if (t instanceof avro.types.RecordType && v !== null && typeof v === 'object') {
          const declared = new Set(t.fields.map((f) => f.name));
          const extra = Object.keys(v).filter((k) => !declared.has(k));
          if (extra.length > 0) {
            for (const k of extra) errors.push({ field: path.concat(k).join('.'), reason: `is not a field of ${t.name ?? 'the record'}` });
            return;
          }
        }
        errors.push({ field, reason: v === undefined ? `is missing (required ${typeName(t)})` : `expected ${typeName(t)}, got ${describe(v)}` });
      },
    });
    return errors.length === 0 ? this.emptyIds(value) : errors;
  }

  /** Avro cannot say "non-empty": required *_ID strings must hold something. */
  private emptyIds(value: object): FieldError[] {
    const errors: FieldError[] = [];
    for (const f of (this.type as avro.types.RecordType).fields) {
      const v = (value as Record<string, unknown>)[f.name];
      if (f.name.endsWith('_ID') && typeof v === 'string' && v.trim() === '' && f.type.typeName === 'string') {
        errors.push({ field: f.name, reason: 'is empty (a non-empty string is required)' });
      }
    }
    return errors;
  }

  /** Validates, then encodes (in the configured wire format). */
  encode(value: Partial<RecordTypes[N]> | RecordTypes[N]): Buffer {
    const errors = this.validate(value);
    if (errors.length > 0) throw invalid(this.name, errors);
    const body = this.type.toBuffer(value);
    if (this.wireFormat === 'plain') return body;
    const out = Buffer.allocUnsafe(5 + body.length);
    out.writeUInt8(MAGIC, 0);
    out.writeUInt32BE(this.schemaId!, 1);
    body.copy(out, 5);
    return out;
  }

  /**
   * Decodes bytes written with this schema or, given `writer` (or a Confluent id the lookup knows),
   * with an older/newer compatible writer schema. Throws RECORD_MALFORMED or RECORD_INVALID.
   */
  decode(bytes: Buffer, writer?: avro.Type): RecordTypes[N] {
    if (bytes.length > this.maxBytes) {
      throw new AppError('RECORD_TOO_LARGE', `${this.name}: the record is ${bytes.length} bytes, above ${this.maxBytesKey} (${this.maxBytes})`, { field: '(value)' });
    }
    if (this.wireFormat === 'plain') {
      try {
        return this.decodeBody(bytes, writer ?? this.type);
      } catch (err) {
        throw this.framingHint(bytes, 'confluent') ?? err;
      }
    }
    if (bytes.length < 5 || bytes.readUInt8(0) !== MAGIC) {
      throw (
        this.framingHint(bytes, 'plain') ?? malformed(this.name, 'do not start with the Confluent magic byte 0 and a 4-byte schema id (avro.wireFormat is confluent)')
      );
    }
    const id = bytes.readUInt32BE(1);
    let writerType = writer;
    if (id !== this.schemaId) {
      writerType = this.lookup?.byId(id);
      if (!writerType) throw new AppError('RECORD_MALFORMED', `${this.name}: unknown writer schema id ${id}`, { field: '(schema id)' });
    }
    return this.decodeBody(bytes.subarray(5), writerType ?? this.type);
  }

  /** Avro binary of writer schema `w`, bounded, canonical, resolved to this schema. */
  private decodeBody(body: Buffer, w: avro.Type): RecordTypes[N] {
    let written: unknown;
    try {
      checkBounds(w, body);
      written = w.fromBuffer(body);
    } catch (err) {
      throw malformed(this.name, err instanceof BoundsError ? `are refused before decoding: ${err.message}` : (err as Error).message);
    }
    // Avro decoding is lenient (invalid UTF-8 becomes U+FFFD, a boolean byte 7 becomes true):
    // only bytes that re-encode to themselves are accepted.
    if (!w.toBuffer(written).equals(body)) {
      throw malformed(this.name, 'is not canonical Avro for its schema (invalid UTF-8 in a string, or a bad byte)');
    }
    const value = (w === this.type ? written : this.type.fromBuffer(body, this.resolver(w))) as object;
    // Decoded bytes have the schema's types already; what Avro cannot say is left to check.
    const errors = this.emptyIds(value);
    if (errors.length > 0) throw invalid(this.name, errors);
    return value as RecordTypes[N];
  }

  /**
   * When bytes that failed to decode would decode in the other wire format, the error that says
   * so and names the setting: a Confluent-framed record on a plain group, or plain Avro on a
   * confluent group (`actual` is the format the bytes seem to be in).
   */
  private framingHint(bytes: Buffer, actual: 'plain' | 'confluent'): AppError | undefined {
    const body = actual === 'confluent' ? (bytes.length >= 5 && bytes.readUInt8(0) === MAGIC ? bytes.subarray(5) : undefined) : bytes;
    if (body === undefined) return undefined;
    try {
      this.decodeBody(body, this.type);
    } catch {
      return undefined;
    }
    const reason =
      actual === 'confluent'
        ? `look like Confluent Schema Registry framing (magic byte 0, schema id ${bytes.readUInt32BE(1)}) around Avro of ${this.name}, but avro.wireFormat is plain: set avro.wireFormat to confluent (STREAMREC_AVRO_WIRE_FORMAT) with avro.confluentSchemaIds, or produce plain Avro`
        : `are plain Avro of ${this.name} without the Confluent framing (magic byte 0 and a schema id), but avro.wireFormat is confluent: produce with the Schema Registry serializer, or set avro.wireFormat to plain (STREAMREC_AVRO_WIRE_FORMAT)`;
    return new AppError('RECORD_MALFORMED', `${this.name}: the bytes ${reason}`, { field: '(framing)' });
  }

  private resolver(writer: avro.Type): avro.Resolver {
    const key = writer.fingerprint().toString('hex');
    let r = this.resolvers.get(key);
    if (!r) {
      try {
        r = this.type.createResolver(writer);
      } catch (err) {
        throw new AppError('SCHEMA_NOT_FOUND', `${this.name}: the writer schema cannot be read with the current schema: ${(err as Error).message}`, {
          cause: err,
        });
      }
      this.resolvers.set(key, r);
    }
    return r;
  }
}

export type Codecs = { [N in SchemaName]: AvroCodec<N> };

/** The schemas of the records producers write to a group's input topics: decoding them is size-limited. */
const INPUT_SCHEMAS: ReadonlySet<SchemaName> = new Set(['Interaction', 'Item', 'User']);

/** One codec per schema, in the config's wire format; input records over `ingest.maxRecordBytes` are refused. */
export function createCodecs(config: Readonly<Config>, lookup?: SchemaLookup): Codecs {
  const ids = config.avro.confluentSchemaIds;
  const own: SchemaLookup = {
    byId: (id) => {
      const name = SCHEMA_NAMES.find((n) => ids[n] === id);
      return name ? schemaType(name) : lookup?.byId(id);
    },
  };
  const make = <N extends SchemaName>(name: N): AvroCodec<N> =>
    new AvroCodec(name, {
      wireFormat: config.avro.wireFormat,
      lookup: own,
      ...(ids[name] === undefined ? {} : { schemaId: ids[name] }),
      ...(INPUT_SCHEMAS.has(name) ? { maxBytes: config.ingest.maxRecordBytes, maxBytesKey: 'ingest.maxRecordBytes' } : {}),
    });
  return {
    Interaction: make('Interaction'),
    Item: make('Item'),
    User: make('User'),
    Recommendation: make('Recommendation'),
    DeadLetter: make('DeadLetter'),
  };
}

function invalid(name: string, errors: FieldError[]): AppError {
  const first = errors[0]!;
  const all = errors.map((e) => `${e.field} ${e.reason}`).join('; ');
  const err = new AppError('RECORD_INVALID', `${name}: ${all}`, { field: first.field });
  return Object.assign(err, { errors });
}

function malformed(name: string, reason: string): AppError {
  return new AppError('RECORD_MALFORMED', `${name}: the bytes ${reason}`, { field: '(bytes)' });
}

function typeName(t: avro.Type): string {
  if (t instanceof avro.types.UnwrappedUnionType || t instanceof avro.types.WrappedUnionType) return t.types.map(typeName).join(' or ');
  if (t instanceof avro.types.ArrayType) return `array of ${typeName(t.itemsType)}`;
  if (t instanceof avro.types.MapType) return `map of ${typeName(t.valuesType)}`;
  return t.name ?? t.typeName;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
