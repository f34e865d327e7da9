/**
 * Records from a group's input topics as the service reads them: decoding (interactions, items,
 * users), and the dead letters of those that cannot be applied.
 *
 * Decoding is bounded by the record's own size (src/serde/avro.ts), and whatever the bytes, the
 * answer is a record or an AppError; nothing a producer writes throws anything else.
 *
 * Dead letters carry the raw key and value byte for byte, up to DEAD_LETTER_MAX_KEY_BYTES and
 * DEAD_LETTER_MAX_VALUE_BYTES: a longer key or value is cut to its first bytes, and the dead
 * letter then says so (KEY_SIZE / VALUE_SIZE: the original length; KEY_SHA256 / VALUE_SHA256: the
 * digest of the original bytes; the same in headers). They go out in chunks of at most
 * DEAD_LETTER_CHUNK_BYTES, under the broker's default 1 MiB per request, so no number or size of
 * bad records the broker accepted can make the send fail.
 */
import { createHash } from 'node:crypto';
import { AppError, isAppError } from '../errors/index.js';
import type { IHeaders, KafkaMessage } from '../kafka/kafkajs.js';
import type { Codecs, Interaction, Item, User } from '../serde/avro.js';
import { checkInteraction, checkItem, checkUser, type InteractionRules } from '../serde/validate.js';

export const DEAD_LETTER_MAX_KEY_BYTES = 16 * 1024;
export const DEAD_LETTER_MAX_VALUE_BYTES = 512 * 1024;
/** The most bytes of dead letters in one produce request. */
export const DEAD_LETTER_CHUNK_BYTES = 768 * 1024;
/** A dead letter's REASON (and its header) is cut to this many characters. */
const MAX_REASON_CHARS = 2048;

/** An interactions record as the processor applies it: decoded, checked, keyed by its USER_ID. */
export function decodeInteractionRecord(codecs: Codecs, m: Pick<KafkaMessage, 'key' | 'value'>, now: number, rules: InteractionRules): Interaction | AppError {
  try {
    if (!m.value) throw new AppError('RECORD_MALFORMED', 'the record has no value', { field: '(value)' });
    const e = codecs.Interaction.decode(m.value);
    const problems = checkInteraction(e, now, rules);
    if (problems.length > 0) {
      throw new AppError('RECORD_INVALID', `Interaction: ${problems.map((p) => `${p.field} ${p.reason}`).join('; ')}`, { field: problems[0]!.field });
    }
    const key = m.key?.toString();
    if (key !== e.USER_ID) {
      throw new AppError('RECORD_INVALID', `the record key ${quote(key)} is not its USER_ID ${quote(e.USER_ID)}; interactions are keyed by userId`, { field: '(key)' });
    }
    return e;
  } catch (err) {
    return asRecordError(err);
  }
}

/**
 * An items or users record: `null` for a tombstone (a null value deletes), else the decoded record,
 * whose id must be the record's key.
 */
export function decodeMetadataRecord(codecs: Codecs, kind: 'item' | 'user', m: Pick<KafkaMessage, 'key' | 'value'>): Item | User | null | AppError {
  try {
    const key = m.key?.toString() ?? '';
    if (key === '') throw new AppError('RECORD_INVALID', 'the record has no key; items are keyed by ITEM_ID, users by USER_ID', { field: '(key)' });
    if (!m.value) return null;
    const decoded = kind === 'item' ? codecs.Item.decode(m.value) : codecs.User.decode(m.value);
    const problems = 'ITEM_ID' in decoded ? checkItem(decoded) : checkUser(decoded);
    if (problems.length > 0) {
      throw new AppError('RECORD_INVALID', `${kind === 'item' ? 'Item' : 'User'}: ${problems.map((p) => `${p.field} ${p.reason}`).join('; ')}`, { field: problems[0]!.field });
    }
    const id = 'ITEM_ID' in decoded ? decoded.ITEM_ID : decoded.USER_ID;
    if (id !== key) {
      throw new AppError('RECORD_INVALID', `the record key ${quote(key)} is not its ${kind === 'item' ? 'ITEM_ID' : 'USER_ID'} ${quote(id)}`, { field: '(key)' });
    }
    return decoded;
  } catch (err) {
    return asRecordError(err);
  }
}

function asRecordError(err: unknown): AppError {
  if (isAppError(err)) return err;
  return new AppError('RECORD_MALFORMED', String((err as Error)?.message ?? err), { field: '(value)', cause: err });
}

/** A string for a message, at most 80 characters of it. */
function quote(s: string | undefined): string {
  if (s === undefined) return 'null';
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s) + (s.length > 80 ? ` (${s.length} characters)` : '');
}

export interface DeadLetterMessage {
  key: Buffer | null;
  value: Buffer;
  headers: IHeaders;
}

/** The dead letter of a bad input record: its raw key and bytes (cut when too long, see above), the reason, in value and headers. */
export function deadLetterRecord(codecs: Codecs, topic: string, partition: number, m: KafkaMessage, err: AppError, now = Date.now()): DeadLetterMessage {
  const key = kept(m.key ?? null, DEAD_LETTER_MAX_KEY_BYTES);
  const value = kept(m.value ?? null, DEAD_LETTER_MAX_VALUE_BYTES);
  const reason = err.message.length > MAX_REASON_CHARS ? `${err.message.slice(0, MAX_REASON_CHARS)}...` : err.message;
  const headers: IHeaders = {
    'source-topic': topic,
    'source-partition': String(partition),
    'source-offset': m.offset,
    'error-code': err.code,
    'error-field': err.field ?? '',
    'error-reason': reason,
  };
  if (key.cut) Object.assign(headers, { 'key-size': String(key.size), 'key-sha256': key.sha256 });
  if (value.cut) Object.assign(headers, { 'value-size': String(value.size), 'value-sha256': value.sha256 });
  const record = codecs.DeadLetter.encode({
    SOURCE: topic,
    SOURCE_PARTITION: partition,
    SOURCE_OFFSET: m.offset,
    KEY: key.bytes,
    VALUE: value.bytes,
    ERROR_CODE: err.code,
    FIELD: err.field ?? null,
    REASON: reason,
    FAILED_AT: now,
    KEY_SIZE: key.cut ? key.size : null,
    KEY_SHA256: key.cut ? key.sha256 : null,
    VALUE_SIZE: value.cut ? value.size : null,
    VALUE_SHA256: value.cut ? value.sha256 : null,
  });
  return { key: key.bytes, value: record, headers };
}

function kept(bytes: Buffer | null, max: number): { bytes: Buffer | null; cut: boolean; size: number; sha256: string } {
  if (bytes === null || bytes.length <= max) return { bytes, cut: false, size: bytes?.length ?? 0, sha256: '' };
  return { bytes: bytes.subarray(0, max), cut: true, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Consecutive runs of `messages` of at most `maxBytes` (keys, values and headers counted) and
 * `maxRecords` records, for sends under the broker's request limit; a larger message goes alone.
 */
export function chunksBySize<M extends { key?: Buffer | string | null; value: Buffer | string | null; headers?: IHeaders }>(
  messages: readonly M[],
  maxBytes = DEAD_LETTER_CHUNK_BYTES,
  maxRecords = Infinity,
): M[][] {
  const chunks: M[][] = [];
  let chunk: M[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = messageBytes(m);
    if (chunk.length > 0 && (bytes + size > maxBytes || chunk.length >= maxRecords)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

function messageBytes(m: { key?: Buffer | string | null; value: Buffer | string | null; headers?: IHeaders }): number {
  let n = 64 + len(m.key) + len(m.value);
  for (const [k, v] of Object.entries(m.headers ?? {})) n += 8 + len(k) + (typeof v === 'string' || Buffer.isBuffer(v) ? len(v) : 64);
  return n;
}

function len(b: Buffer | string | null | undefined): number {
  return b == null ? 0 : typeof b === 'string' ? Buffer.byteLength(b) : b.length;
}
