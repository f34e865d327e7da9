/**
 * Checks beyond the Avro schema, shared by every way in (HTTP ingestion and the stream processor),
 * so a record refused on one path is refused on the other.
 */
import type { FieldError, Interaction, Item, User } from './avro.js';

/**
 * The longest id (user, item, session, recommendation, event type, impression entries; event ids and
 * filter names in the HTTP schemas), in characters (code points), as Amazon Personalize allows.
 */
export const MAX_ID_LENGTH = 256;

/** Length in code points, as JSON Schema's maxLength counts (cheap for short strings). */
function tooLong(s: string): boolean {
  if (s.length <= MAX_ID_LENGTH) return false;
  if (s.length > 2 * MAX_ID_LENGTH) return true;
  let n = 0;
  for (const _ of s) if (++n > MAX_ID_LENGTH) return true;
  return false;
}

function idErrors(errors: FieldError[], field: string, value: string | null): void {
  if (value !== null && tooLong(value)) errors.push({ field, reason: `is longer than the ${MAX_ID_LENGTH} characters an id may have` });
}

export interface InteractionRules {
  /** An event further than this ahead of `now` is refused (clock skew allowance). */
  maxFutureSkewMs: number;
  /** An event before this (epoch ms) is refused as implausible; default DEFAULT_MIN_TIMESTAMP_MS (ingest.minTimestampMs). */
  minTimestampMs?: number;
}

/** 1980-01-01T00:00:00Z: epoch seconds of any date since 1971 read as milliseconds fall before it. */
export const DEFAULT_MIN_TIMESTAMP_MS = 315_532_800_000;

/** Why a timestamp before the bound is probably wrong, from its size. */
function unitHint(ts: number): string {
  const asSeconds = ts * 1000;
  if (asSeconds >= DEFAULT_MIN_TIMESTAMP_MS && asSeconds < 4_102_444_800_000) {
    return `: it looks like epoch seconds, not milliseconds (as seconds it is ${new Date(asSeconds).toISOString()}); multiply by 1000`;
  }
  return '';
}

/** Semantic problems of an Avro-valid Interaction (empty when it may be applied). */
export function checkInteraction(e: Interaction, now: number, rules: InteractionRules): FieldError[] {
  const errors: FieldError[] = [];
  const min = rules.minTimestampMs ?? DEFAULT_MIN_TIMESTAMP_MS;
  if (!Number.isSafeInteger(e.TIMESTAMP) || e.TIMESTAMP <= 0) {
    errors.push({ field: 'TIMESTAMP', reason: `must be epoch milliseconds after 1970, got ${e.TIMESTAMP}` });
  } else if (e.TIMESTAMP < min) {
    errors.push({
      field: 'TIMESTAMP',
      reason: `${new Date(e.TIMESTAMP).toISOString()} (${e.TIMESTAMP}) is before ${new Date(min).toISOString()} (ingest.minTimestampMs)${unitHint(e.TIMESTAMP)}`,
    });
  } else if (e.TIMESTAMP > now + rules.maxFutureSkewMs) {
    errors.push({
      field: 'TIMESTAMP',
      reason: `${new Date(e.TIMESTAMP).toISOString()} is more than ${rules.maxFutureSkewMs} ms in the future (clock ${new Date(now).toISOString()}) (timestamps in microseconds or nanoseconds look like this)`,
    });
  }
  if (e.EVENT_VALUE !== null && !Number.isFinite(e.EVENT_VALUE)) {
    errors.push({ field: 'EVENT_VALUE', reason: `must be a finite number, got ${e.EVENT_VALUE}` });
  }
  if (e.EVENT_TYPE.trim() === '') errors.push({ field: 'EVENT_TYPE', reason: 'is empty' });
  idErrors(errors, 'USER_ID', e.USER_ID);
  idErrors(errors, 'ITEM_ID', e.ITEM_ID);
  idErrors(errors, 'EVENT_TYPE', e.EVENT_TYPE);
  idErrors(errors, 'SESSION_ID', e.SESSION_ID);
  idErrors(errors, 'RECOMMENDATION_ID', e.RECOMMENDATION_ID);
  e.IMPRESSION.forEach((id, i) => idErrors(errors, `IMPRESSION.${i}`, id));
  return errors;
}

/** Problems of an Avro-valid Item beyond the schema (empty when it may be kept). */
export function checkItem(item: Item): FieldError[] {
  const errors: FieldError[] = [];
  idErrors(errors, 'ITEM_ID', item.ITEM_ID);
  return errors;
}

/** Problems of an Avro-valid User beyond the schema (empty when it may be kept). */
export function checkUser(user: User): FieldError[] {
  const errors: FieldError[] = [];
  idErrors(errors, 'USER_ID', user.USER_ID);
  return errors;
}
