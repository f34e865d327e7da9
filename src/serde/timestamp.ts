/**
 * Timestamps as people send them, shared by HTTP ingestion and file import: epoch seconds, epoch
 * milliseconds, or ISO 8601. Hand-written on purpose: Date.parse accepts impossible dates (Feb 30
 * rolls over) and zoneless strings in local time.
 */
/** Numbers below this are epoch seconds, from it on epoch milliseconds (1e11 s is the year 5138, 1e11 ms is 1973). */
export const SECONDS_BELOW = 1e11;

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/**
 * Epoch milliseconds from epoch seconds (a number < 1e11; fractions are rounded to the millisecond),
 * epoch milliseconds (a whole number >= 1e11) or an ISO 8601 date-time with a time zone.
 */
export function parseTimestamp(value: number | string): Parsed<number> {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return { ok: false, reason: `must be a finite number, got ${value}` };
    const ms = value < SECONDS_BELOW ? Math.round(value * 1000) : value;
    if (!Number.isSafeInteger(ms)) return { ok: false, reason: `epoch milliseconds must be a whole number, got ${value}` };
    if (ms <= 0) return { ok: false, reason: `must be after 1970-01-01T00:00:00Z, got ${value}` };
    return { ok: true, value: ms };
  }
  const m = ISO_8601.exec(value);
  const expected = 'expected epoch seconds or milliseconds (a number) or an ISO 8601 date-time with a time zone such as 2025-01-31T12:00:00Z';
  if (!m) return { ok: false, reason: `${expected}, got string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}` };
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m;
  const n = (x: string | undefined): number => (x === undefined ? 0 : Number(x));
  const year = n(y);
  const month = n(mo);
  const day = n(d);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || n(h) > 23 || n(mi) > 59 || n(s) > 59 || n(oh) > 23 || n(om) > 59) {
    return { ok: false, reason: `${JSON.stringify(value)} is not a valid date-time` };
  }
  const millis = frac === undefined ? 0 : Number(frac.padEnd(3, '0').slice(0, 3));
  const offsetMin = sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (n(oh) * 60 + n(om));
  const utc = new Date(0);
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(n(h), n(mi), n(s), millis);
  const ms = utc.getTime() - offsetMin * 60_000;
  if (ms <= 0) return { ok: false, reason: `must be after 1970-01-01T00:00:00Z, got ${JSON.stringify(value)}` };
  return { ok: true, value: ms };
}

