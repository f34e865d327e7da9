import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { AppError } from '../../src/errors/index.js';
import { createCodecs } from '../../src/serde/avro.js';
import { chunksBySize, DEAD_LETTER_CHUNK_BYTES, DEAD_LETTER_MAX_KEY_BYTES, DEAD_LETTER_MAX_VALUE_BYTES, deadLetterRecord, decodeInteractionRecord } from '../../src/stream/input.js';

const codecs = createCodecs(loadConfig({ env: {} }));
const err = new AppError('RECORD_MALFORMED', 'Interaction: the bytes are refused', { field: '(bytes)' });
const message = (key: Buffer | null, value: Buffer | null, offset = '41') => ({ key, value, offset, timestamp: '0', attributes: 0, headers: {} });

describe('dead-letter records', () => {
  it('keep the raw key and value byte for byte when they fit, with no size or digest', () => {
    const value = Buffer.from([0, 1, 2, 255]);
    const d = deadLetterRecord(codecs, 'g.interactions', 2, message(Buffer.from('k'), value), err, 1234);
    const env = codecs.DeadLetter.decode(d.value);
    expect(env).toMatchObject({ SOURCE: 'g.interactions', SOURCE_PARTITION: 2, SOURCE_OFFSET: '41', ERROR_CODE: 'RECORD_MALFORMED', FIELD: '(bytes)', FAILED_AT: 1234 });
    expect(env.VALUE!.equals(value)).toBe(true);
    expect(env.KEY!.toString()).toBe('k');
    expect(env.VALUE_SIZE).toBeNull();
    expect(env.VALUE_SHA256).toBeNull();
    expect(d.headers['value-size']).toBeUndefined();
  });

  it('cut a value over the limit to its first bytes, with the original size and SHA-256 in the record and headers', () => {
    const value = Buffer.alloc(1_048_200, 7);
    value[value.length - 1] = 9;
    const key = Buffer.alloc(DEAD_LETTER_MAX_KEY_BYTES + 10, 0x6b);
    const d = deadLetterRecord(codecs, 'g.items', 0, message(key, value), err);
    const env = codecs.DeadLetter.decode(d.value);
    expect(env.VALUE!.length).toBe(DEAD_LETTER_MAX_VALUE_BYTES);
    expect(env.VALUE!.equals(value.subarray(0, DEAD_LETTER_MAX_VALUE_BYTES))).toBe(true);
    expect(env.VALUE_SIZE).toBe(1_048_200);
    expect(env.VALUE_SHA256).toBe(createHash('sha256').update(value).digest('hex'));
    expect(env.KEY!.length).toBe(DEAD_LETTER_MAX_KEY_BYTES);
    expect(env.KEY_SIZE).toBe(key.length);
    expect(env.KEY_SHA256).toBe(createHash('sha256').update(key).digest('hex'));
    expect(d.headers).toMatchObject({ 'value-size': '1048200', 'value-sha256': env.VALUE_SHA256, 'key-size': String(key.length) });
    // The whole dead letter fits in one request under the broker's 1 MiB.
    expect(d.value.length + d.key!.length).toBeLessThan(DEAD_LETTER_CHUNK_BYTES);
  });

  it('cut a long reason', () => {
    const long = new AppError('RECORD_INVALID', `the record key ${'x'.repeat(100_000)}`, { field: '(key)' });
    const d = deadLetterRecord(codecs, 'g.interactions', 0, message(null, Buffer.from('v')), long);
    expect(codecs.DeadLetter.decode(d.value).REASON.length).toBeLessThan(2100);
    expect(String(d.headers['error-reason']).length).toBeLessThan(2100);
  });
});

describe('chunksBySize', () => {
  const msg = (n: number, i: number) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(n), i });

  it('keeps every message, in order, in chunks under the byte limit', () => {
    const messages = Array.from({ length: 5000 }, (_, i) => msg(300 + (i % 7) * 50, i));
    const chunks = chunksBySize(messages, 100_000);
    expect(chunks.flat().map((m) => m.i)).toEqual(messages.map((m) => m.i));
    expect(chunks.length).toBeGreaterThan(15);
    for (const c of chunks) expect(c.reduce((s, m) => s + m.value.length + m.key.length + 64, 0)).toBeLessThanOrEqual(100_000);
  });

  it('sends a message larger than the limit alone, and caps the records per chunk', () => {
    const chunks = chunksBySize([msg(10, 0), msg(200_000, 1), msg(10, 2)], 100_000);
    expect(chunks.map((c) => c.map((m) => m.i))).toEqual([[0], [1], [2]]);
    const capped = chunksBySize(Array.from({ length: 10 }, (_, i) => msg(1, i)), 1_000_000, 3);
    expect(capped.map((c) => c.length)).toEqual([3, 3, 3, 1]);
  });
});

describe('implausible timestamps', () => {
  const rules = { maxFutureSkewMs: 3_600_000 };
  const at = (TIMESTAMP: number) =>
    codecs.Interaction.encode({ USER_ID: 'u', ITEM_ID: 'i', TIMESTAMP, EVENT_TYPE: 'click', EVENT_VALUE: null, SESSION_ID: null, IMPRESSION: [], RECOMMENDATION_ID: null, CONTEXT: {} });

  it('refuses epoch seconds sent as milliseconds, naming the likely cause', () => {
    const r = decodeInteractionRecord(codecs, { key: Buffer.from('u'), value: at(1_765_000_000) }, 1_765_000_000_000, rules);
    expect(r).toMatchObject({ code: 'RECORD_INVALID', field: 'TIMESTAMP' });
    expect((r as AppError).message).toMatch(/looks like epoch seconds, not milliseconds \(as seconds it is 2025-12-06T/);
  });

  it('uses the configured bound, and applies what is after it', () => {
    expect(decodeInteractionRecord(codecs, { key: Buffer.from('u'), value: at(400_000_000_000) }, 1_765_000_000_000, rules)).not.toBeInstanceOf(Error);
    const r = decodeInteractionRecord(codecs, { key: Buffer.from('u'), value: at(400_000_000_000) }, 1_765_000_000_000, { ...rules, minTimestampMs: 500_000_000_000 });
    expect(r).toMatchObject({ code: 'RECORD_INVALID', field: 'TIMESTAMP' });
    expect((r as AppError).message).not.toMatch(/seconds/);
  });
});
