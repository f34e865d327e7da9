/**
 * Checks beyond the Avro schema, shared by every way in (HTTP ingestion and the stream processor),
 * so a record refused on one path is refused on the other.
 */
import type { FieldError, Interaction } from './avro.js';

export interface InteractionRules {
  /** An event further than this ahead of `now` is refused (clock skew allowance). */
  maxFutureSkewMs: number;
}

/** Semantic problems of an Avro-valid Interaction (empty when it may be applied). */
export function checkInteraction(e: Interaction, now: number, rules: InteractionRules): FieldError[] {
  const errors: FieldError[] = [];
  if (!Number.isSafeInteger(e.TIMESTAMP) || e.TIMESTAMP <= 0) {
    errors.push({ field: 'TIMESTAMP', reason: `must be epoch milliseconds after 1970, got ${e.TIMESTAMP}` });
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
  return errors;
}
