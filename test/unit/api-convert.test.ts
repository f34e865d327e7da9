/** The pure conversions of the ingestion API: timestamps, properties, field names. */
import { describe, expect, it } from 'vitest';
import { parseProperties, requestField, toInteraction, toItem } from '../../src/api/convert.js';
import { parseTimestamp } from '../../src/serde/timestamp.js';

const ok = (v: number | string): number => {
  const r = parseTimestamp(v);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
};
const reason = (v: number | string): string => {
  const r = parseTimestamp(v);
  if (r.ok) throw new Error(`expected ${String(v)} to be refused, got ${r.value}`);
  return r.reason;
};

describe('parseTimestamp', () => {
  it('reads numbers below 1e11 as seconds (rounded to the ms) and from 1e11 on as milliseconds', () => {
    expect(ok(1_700_000_000)).toBe(1_700_000_000_000);
    expect(ok(1_700_000_000.1236)).toBe(1_700_000_000_124);
    expect(ok(99_999_999_999)).toBe(99_999_999_999_000);
    expect(ok(100_000_000_000)).toBe(100_000_000_000);
    expect(ok(1_700_000_000_123)).toBe(1_700_000_000_123);
    expect(reason(1_700_000_000_123.5)).toMatch(/whole number/);
    expect(reason(0)).toMatch(/after 1970/);
    expect(reason(-1)).toMatch(/after 1970/);
  });

  it('reads ISO 8601 date-times with a time zone, exactly', () => {
    const at = Date.UTC(2024, 1, 29, 23, 59, 59, 999);
    expect(ok('2024-02-29T23:59:59.999Z')).toBe(at);
    expect(ok('2024-02-29T23:59:59.999999999Z')).toBe(at);
    expect(ok('2024-03-01T01:59:59.999+02:00')).toBe(at);
    expect(ok('2024-02-29T18:59:59.999-0500')).toBe(at);
    expect(ok('2024-02-29t23:59:59.999z')).toBe(at);
    expect(ok('2024-02-29T23:59Z')).toBe(Date.UTC(2024, 1, 29, 23, 59));
    expect(ok('2024-02-29T23:59:59.1Z')).toBe(Date.UTC(2024, 1, 29, 23, 59, 59, 100));
  });

  it('refuses strings that are not ISO 8601 date-times with a zone, or not real dates', () => {
    for (const s of ['yesterday', '1700000000', '2024-02-29', '2024-02-29T10:00:00', '2024-02-29 10:00:00Z', 'Thu, 29 Feb 2024 10:00:00 GMT']) {
      expect(reason(s)).toMatch(/ISO 8601/);
    }
    for (const s of ['2023-02-29T00:00:00Z', '2024-13-01T00:00:00Z', '2024-04-31T00:00:00Z', '2024-01-01T24:00:00Z', '2024-01-01T10:60:00Z', '2024-01-01T10:00:00+24:00']) {
      expect(reason(s)).toMatch(/not a valid date-time/);
    }
    expect(reason('1969-12-31T23:59:59Z')).toMatch(/after 1970/);
  });
});

describe('parseProperties', () => {
  it('takes an object or a JSON string of one', () => {
    expect(parseProperties({ A: 'x', B: 2 })).toEqual({ ok: true, value: { A: 'x', B: 2 } });
    expect(parseProperties('{"A":"x","B":2}')).toEqual({ ok: true, value: { A: 'x', B: 2 } });
  });

  it('refuses invalid JSON, non-objects and prototype keys', () => {
    expect(parseProperties('{')).toMatchObject({ ok: false, reason: expect.stringMatching(/not valid JSON/) });
    expect(parseProperties('[1]')).toMatchObject({ ok: false, reason: expect.stringMatching(/got an array/) });
    expect(parseProperties('null')).toMatchObject({ ok: false, reason: expect.stringMatching(/got null/) });
    expect(parseProperties('"s"')).toMatchObject({ ok: false, reason: expect.stringMatching(/got string/) });
    const poisoned = parseProperties('{"__proto__": {"polluted": "yes"}}');
    expect(poisoned).toMatchObject({ ok: false, reason: expect.stringMatching(/__proto__/) });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('conversion', () => {
  it('makes an Interaction from a PutEvents event; non-string properties are refused by name', () => {
    expect(toInteraction({ userId: 'u', sessionId: 's' }, { eventType: 'view', itemId: 'i', sentAt: 1_700_000_000 }, 0)).toEqual({
      ok: true,
      record: {
        USER_ID: 'u',
        ITEM_ID: 'i',
        TIMESTAMP: 1_700_000_000_000,
        EVENT_TYPE: 'view',
        EVENT_VALUE: null,
        SESSION_ID: 's',
        IMPRESSION: [],
        RECOMMENDATION_ID: null,
        CONTEXT: {},
      },
    });
    expect(toInteraction({ userId: 'u' }, { eventType: 'v', itemId: 'i', sentAt: 'x', properties: { N: 1, OK: 'y', B: true } }, 4)).toEqual({
      ok: false,
      errors: [
        { field: 'eventList[4].sentAt', reason: expect.any(String) },
        { field: 'eventList[4].properties.N', reason: expect.stringMatching(/must be a string/) },
        { field: 'eventList[4].properties.B', reason: expect.stringMatching(/must be a string/) },
      ],
    });
  });

  it('keeps "|"-separated item metadata as one string', () => {
    const r = toItem({ itemId: 'i', properties: '{"GENRES":"a|b|c"}' }, 0);
    expect(r).toEqual({ ok: true, record: { ITEM_ID: 'i', CREATION_TIMESTAMP: null, METADATA: { GENRES: 'a|b|c' } } });
  });

  it('names Avro fields in request vocabulary', () => {
    const events = { USER_ID: () => 'userId', IMPRESSION: (i: number) => `eventList[${i}].impression`, CONTEXT: (i: number) => `eventList[${i}].properties` };
    expect(requestField(events, 'USER_ID', 3)).toBe('userId');
    expect(requestField(events, 'IMPRESSION.2', 3)).toBe('eventList[3].impression[2]');
    expect(requestField(events, 'CONTEXT.DEVICE', 3)).toBe('eventList[3].properties.DEVICE');
    expect(requestField({ METADATA: (i: number) => `items[${i}].properties` }, 'METADATA.2024.1', 0)).toBe('items[0].properties.2024[1]');
    expect(requestField(events, 'OTHER', 1)).toBe('OTHER');
  });
});
