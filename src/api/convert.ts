/**
 * Personalize-style requests -> Avro records, as pure functions: no I/O, the clock passed in.
 *
 * Every record of a request is converted and checked (Avro validation by the codec, and for events
 * the shared semantic checks of src/serde/validate.ts); problems are reported per record, with field
 * names in the request's vocabulary (`eventList[3].sentAt`, `items[0].properties.price`).
 */
import { isAppError } from '../errors/index.js';
import type { AvroCodec, Codecs, FieldError, Interaction, Item, MetadataValue, RecordTypes, SchemaName, User } from '../serde/avro.js';
import { checkInteraction, checkItem, checkUser } from '../serde/validate.js';
import { parseTimestamp, type Parsed } from '../serde/timestamp.js';
import type { Event, ItemInput, PutEventsBody, PutItemsBody, PutUsersBody, RecordError, UserInput } from './schemas.js';
import type { SinkMessage } from './types.js';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** `properties` as sent: an object, or a JSON string of one. */
export function parseProperties(value: Record<string, unknown> | string): Parsed<Record<string, unknown>> {
  let obj: unknown = value;
  if (typeof value === 'string') {
    try {
      obj = JSON.parse(value);
    } catch (err) {
      return { ok: false, reason: `is not valid JSON: ${(err as Error).message}` };
    }
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return { ok: false, reason: `must be an object or a JSON string of an object, got ${obj === null ? 'null' : Array.isArray(obj) ? 'an array' : typeof obj}` };
  }
  const bad = Object.keys(obj).find((k) => FORBIDDEN_KEYS.has(k));
  if (bad !== undefined) return { ok: false, reason: `must not have a key named ${bad}` };
  // Object.fromEntries defines own properties: a "__proto__" key could never reach the prototype.
  return { ok: true, value: Object.fromEntries(Object.entries(obj)) };
}

/** A converted record, or the problems (in request vocabulary, relative to the request body) that stopped it. */
export type Converted<T> = { ok: true; record: T } | { ok: false; errors: FieldError[] };

/** One PutEvents event -> an Interaction (not yet validated against the schema). */
export function toInteraction(body: Pick<PutEventsBody, 'userId' | 'sessionId'>, event: Event, index: number): Converted<Interaction> {
  const errors: FieldError[] = [];
  const at = `eventList[${index}]`;
  const ts = parseTimestamp(event.sentAt);
  if (!ts.ok) errors.push({ field: `${at}.sentAt`, reason: ts.reason });
  const context: Record<string, string> = {};
  if (event.properties !== undefined) {
    const props = parseProperties(event.properties);
    if (!props.ok) {
      errors.push({ field: `${at}.properties`, reason: props.reason });
    } else {
      for (const [k, v] of Object.entries(props.value)) {
        if (typeof v === 'string') context[k] = v;
        else errors.push({ field: `${at}.properties.${k}`, reason: `must be a string (event properties become CONTEXT, a map of strings), got ${describe(v)}` });
      }
    }
  }
  if (!ts.ok || errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    record: {
      USER_ID: body.userId,
      ITEM_ID: event.itemId,
      TIMESTAMP: ts.value,
      EVENT_TYPE: event.eventType,
      EVENT_VALUE: event.eventValue ?? null,
      SESSION_ID: body.sessionId ?? null,
      IMPRESSION: event.impression ?? [],
      RECOMMENDATION_ID: event.recommendationId ?? null,
      CONTEXT: context,
    },
  };
}

/** One PutItems item -> an Item; METADATA values are passed as sent (the codec checks their kinds). */
export function toItem(item: ItemInput, index: number): Converted<Item> {
  const errors: FieldError[] = [];
  const at = `items[${index}]`;
  let created: number | null = null;
  if (item.creationTimestamp !== undefined) {
    const ts = parseTimestamp(item.creationTimestamp);
    if (ts.ok) created = ts.value;
    else errors.push({ field: `${at}.creationTimestamp`, reason: ts.reason });
  }
  const metadata = toMetadata(item.properties, `${at}.properties`, errors);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, record: { ITEM_ID: item.itemId, CREATION_TIMESTAMP: created, METADATA: metadata } };
}

/** One PutUsers user -> a User. */
export function toUser(user: UserInput, index: number): Converted<User> {
  const errors: FieldError[] = [];
  const metadata = toMetadata(user.properties, `users[${index}].properties`, errors);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, record: { USER_ID: user.userId, METADATA: metadata } };
}

function toMetadata(properties: ItemInput['properties'], field: string, errors: FieldError[]): Record<string, MetadataValue> {
  if (properties === undefined) return {};
  const parsed = parseProperties(properties);
  if (!parsed.ok) {
    errors.push({ field, reason: parsed.reason });
    return {};
  }
  // Values of other kinds are refused by the codec, naming METADATA.<key>.
  return parsed.value as Record<string, MetadataValue>;
}

/** Avro field paths -> request field paths, per record kind. */
const EVENT_FIELDS: Record<string, (i: number) => string> = {
  USER_ID: () => 'userId',
  SESSION_ID: () => 'sessionId',
  ITEM_ID: (i) => `eventList[${i}].itemId`,
  TIMESTAMP: (i) => `eventList[${i}].sentAt`,
  EVENT_TYPE: (i) => `eventList[${i}].eventType`,
  EVENT_VALUE: (i) => `eventList[${i}].eventValue`,
  IMPRESSION: (i) => `eventList[${i}].impression`,
  RECOMMENDATION_ID: (i) => `eventList[${i}].recommendationId`,
  CONTEXT: (i) => `eventList[${i}].properties`,
};
const ITEM_FIELDS: Record<string, (i: number) => string> = {
  ITEM_ID: (i) => `items[${i}].itemId`,
  CREATION_TIMESTAMP: (i) => `items[${i}].creationTimestamp`,
  METADATA: (i) => `items[${i}].properties`,
};
const USER_FIELDS: Record<string, (i: number) => string> = {
  USER_ID: (i) => `users[${i}].userId`,
  METADATA: (i) => `users[${i}].properties`,
};

/**
 * An Avro field path in request vocabulary: `IMPRESSION.2` -> `eventList[i].impression[2]`,
 * `METADATA.TAGS.1` -> `items[i].properties.TAGS[1]` (the segment after a map field is its key).
 */
export function requestField(table: Record<string, (i: number) => string>, avroField: string, index: number): string {
  const [head = '', ...rest] = avroField.split('.');
  const base = table[head];
  if (base === undefined) return avroField;
  const isMap = head === 'METADATA' || head === 'CONTEXT';
  return rest.reduce((acc, seg, n) => (/^\d+$/.test(seg) && !(isMap && n === 0) ? `${acc}[${seg}]` : `${acc}.${seg}`), base(index));
}

/** Avro-encodes one record, running `check` on it too; problems come back instead of being thrown. */
export function encodeRecord<N extends SchemaName>(
  codec: AvroCodec<N>,
  record: RecordTypes[N],
  check?: (r: RecordTypes[N]) => FieldError[],
): { ok: true; value: Buffer } | { ok: false; errors: FieldError[] } {
  let value: Buffer;
  try {
    value = codec.encode(record);
  } catch (err) {
    if (!isAppError(err, 'RECORD_INVALID')) throw err;
    const errors = (err as { errors?: FieldError[] }).errors;
    return { ok: false, errors: errors && errors.length > 0 ? errors : [{ field: err.field ?? '(record)', reason: err.message }] };
  }
  const problems = check?.(record) ?? [];
  return problems.length > 0 ? { ok: false, errors: problems } : { ok: true, value };
}

/** Records ready to produce, or every problem of every failing record (then nothing may be produced). */
export type Prepared = { ok: true; messages: SinkMessage[] } | { ok: false; errors: RecordError[] };

export interface EventChecks {
  codecs: Pick<Codecs, 'Interaction'>;
  /** The clock, epoch ms. */
  now: number;
  maxFutureSkewMs: number;
  minTimestampMs?: number;
}

/** PutEvents -> Interaction messages keyed by userId. */
export function prepareEvents(body: PutEventsBody, checks: EventChecks): Prepared {
  const rules = { maxFutureSkewMs: checks.maxFutureSkewMs, ...(checks.minTimestampMs === undefined ? {} : { minTimestampMs: checks.minTimestampMs }) };
  return prepare(body.eventList, checks.codecs.Interaction, EVENT_FIELDS, (event, i) => toInteraction(body, event, i), (r) => r.USER_ID, (r) =>
    checkInteraction(r, checks.now, rules),
  );
}

/** PutItems -> Item messages keyed by itemId. */
export function prepareItems(body: PutItemsBody, codecs: Pick<Codecs, 'Item'>): Prepared {
  return prepare(body.items, codecs.Item, ITEM_FIELDS, toItem, (r) => r.ITEM_ID, checkItem);
}

/** PutUsers -> User messages keyed by userId. */
export function prepareUsers(body: PutUsersBody, codecs: Pick<Codecs, 'User'>): Prepared {
  return prepare(body.users, codecs.User, USER_FIELDS, toUser, (r) => r.USER_ID, checkUser);
}

function prepare<In, N extends SchemaName>(
  inputs: In[],
  codec: AvroCodec<N>,
  fields: Record<string, (i: number) => string>,
  convert: (input: In, index: number) => Converted<RecordTypes[N]>,
  key: (r: RecordTypes[N]) => string,
  check?: (r: RecordTypes[N]) => FieldError[],
): Prepared {
  const messages: SinkMessage[] = [];
  const errors: RecordError[] = [];
  inputs.forEach((input, index) => {
    const converted = convert(input, index);
    if (!converted.ok) {
      for (const e of converted.errors) errors.push({ index, field: e.field, reason: e.reason });
      return;
    }
    const encoded = encodeRecord(codec, converted.record, check);
    if (!encoded.ok) {
      for (const e of encoded.errors) errors.push({ index, field: requestField(fields, e.field, index), reason: e.reason });
      return;
    }
    messages.push({ key: key(converted.record), value: encoded.value });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, messages };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}
