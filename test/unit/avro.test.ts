import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/index.js';
import { AvroCodec, createCodecs, parseSchema, schemaType, SCHEMA_NAMES, type Interaction } from '../../src/serde/avro.js';
import { loadConfig } from '../../src/config/index.js';

const event: Interaction = {
  USER_ID: 'u1',
  ITEM_ID: 'i9',
  TIMESTAMP: 1_764_000_000_123,
  EVENT_TYPE: 'purchase',
  EVENT_VALUE: 4.5,
  SESSION_ID: 's-7',
  IMPRESSION: ['i9', 'i3', 'i4'],
  RECOMMENDATION_ID: 'rec-1',
  CONTEXT: { DEVICE: 'mobile' },
};

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected an error');
}

describe('Avro schemas', () => {
  it('loads every schema in avro/ with avsc', () => {
    for (const name of SCHEMA_NAMES) expect(schemaType(name).name).toBe(`streamrec.${name}`);
  });

  it('round-trips an Interaction and fills defaults for left-out optional fields', () => {
    const codec = new AvroCodec('Interaction');
    expect(codec.decode(codec.encode(event))).toEqual(event);
    const minimal = codec.decode(codec.encode({ USER_ID: 'u', ITEM_ID: 'i', TIMESTAMP: 5 }));
    expect(minimal).toEqual({
      USER_ID: 'u',
      ITEM_ID: 'i',
      TIMESTAMP: 5,
      EVENT_TYPE: 'click',
      EVENT_VALUE: null,
      SESSION_ID: null,
      IMPRESSION: [],
      RECOMMENDATION_ID: null,
      CONTEXT: {},
    });
  });

  it('round-trips item metadata of every kind: categorical, multi-valued, numeric, boolean', () => {
    const codec = new AvroCodec('Item');
    const item = { ITEM_ID: 'i1', CREATION_TIMESTAMP: 1000, METADATA: { GENRE: 'jazz', TAGS: ['a', 'b'], PRICE: 9.99, IN_STOCK: true } };
    expect(codec.decode(codec.encode(item))).toEqual(item);
  });

  it('rejects a record missing USER_ID, naming the field', () => {
    const err = thrown(() => new AvroCodec('Interaction').encode({ ITEM_ID: 'i', TIMESTAMP: 1 }));
    expect(err.code).toBe('RECORD_INVALID');
    expect(err.field).toBe('USER_ID');
    expect(err.message).toMatch(/USER_ID is missing/);
  });

  it('rejects a wrong type, naming the field and what was expected', () => {
    const err = thrown(() => new AvroCodec('Interaction').encode({ ...event, TIMESTAMP: '2026-11-28' as unknown as number }));
    expect(err.code).toBe('RECORD_INVALID');
    expect(err.field).toBe('TIMESTAMP');
    expect(err.message).toMatch(/TIMESTAMP expected long, got string "2026-11-28"/);
  });

  it('names a nested field and an undeclared one', () => {
    const codec = new AvroCodec('Item');
    const nested = thrown(() => codec.encode({ ITEM_ID: 'i', METADATA: { PRICE: { amount: 3 } as unknown as number } }));
    expect(nested.field).toBe('METADATA.PRICE');
    const extra = thrown(() => new AvroCodec('Interaction').encode({ ...event, USERID: 'typo' } as Interaction));
    expect(extra.field).toBe('USERID');
    expect(extra.message).toMatch(/USERID is not a field of streamrec.Interaction/);
  });

  it('refuses an empty id', () => {
    const err = thrown(() => new AvroCodec('User').encode({ USER_ID: '  ', METADATA: {} }));
    expect(err.field).toBe('USER_ID');
    expect(err.message).toMatch(/empty/);
  });

  it('refuses bytes that are not a record: truncated, trailing data, invalid UTF-8', () => {
    const codec = new AvroCodec('Interaction');
    const good = codec.encode(event);
    expect(thrown(() => codec.decode(good.subarray(0, good.length - 3))).code).toBe('RECORD_MALFORMED');
    expect(thrown(() => codec.decode(Buffer.concat([good, Buffer.from([1, 2])]))).code).toBe('RECORD_MALFORMED');
    // USER_ID "u1" is encoded as length 4 (zigzag 2) then 'u','1': replace '1' with a lone 0xff byte.
    const badUtf8 = Buffer.from(good);
    expect(badUtf8.subarray(1, 3).toString()).toBe('u1');
    badUtf8[2] = 0xff;
    const err = thrown(() => codec.decode(badUtf8));
    expect(err.code).toBe('RECORD_MALFORMED');
    expect(err.message).toMatch(/UTF-8/);
  });

  it('reads records written with an older writer schema (fields added since get their defaults)', () => {
    const v0 = parseSchema({
      type: 'record',
      name: 'Interaction',
      namespace: 'streamrec',
      fields: [
        { name: 'USER_ID', type: 'string' },
        { name: 'ITEM_ID', type: 'string' },
        { name: 'TIMESTAMP', type: 'long' },
        { name: 'EVENT_TYPE', type: 'string' },
      ],
    });
    const old = v0.toBuffer({ USER_ID: 'u2', ITEM_ID: 'i2', TIMESTAMP: 42, EVENT_TYPE: 'view' });
    const codec = new AvroCodec('Interaction');
    expect(codec.decode(old, v0)).toEqual({
      USER_ID: 'u2',
      ITEM_ID: 'i2',
      TIMESTAMP: 42,
      EVENT_TYPE: 'view',
      EVENT_VALUE: null,
      SESSION_ID: null,
      IMPRESSION: [],
      RECOMMENDATION_ID: null,
      CONTEXT: {},
    });
    // Read as the current schema, the old bytes are not a record: the writer schema matters.
    expect(thrown(() => codec.decode(old)).code).toBe('RECORD_MALFORMED');
  });

  it('refuses a writer schema that cannot be resolved', () => {
    const incompatible = parseSchema({ type: 'record', name: 'Interaction', namespace: 'streamrec', fields: [{ name: 'USER_ID', type: 'int' }] });
    const err = thrown(() => new AvroCodec('Interaction').decode(incompatible.toBuffer({ USER_ID: 3 }), incompatible));
    expect(err.code).toBe('SCHEMA_NOT_FOUND');
  });
});

describe('Confluent wire format', () => {
  const config = loadConfig({
    env: {
      STREAMREC_AVRO_WIRE_FORMAT: 'confluent',
      STREAMREC_AVRO_CONFLUENT_SCHEMA_IDS: '{"Interaction":11,"Item":12,"User":13,"Recommendation":14,"DeadLetter":15}',
    },
  });

  it('frames records as magic byte 0, 4-byte big-endian schema id, Avro body', () => {
    const codecs = createCodecs(config);
    const bytes = codecs.Interaction.encode(event);
    expect(bytes[0]).toBe(0);
    expect(bytes.readUInt32BE(1)).toBe(11);
    expect(bytes.subarray(5).equals(schemaType('Interaction').toBuffer(event))).toBe(true);
    expect(codecs.Interaction.decode(bytes)).toEqual(event);
  });

  it('finds an older writer schema by its id, and refuses unknown ids and unframed bytes', () => {
    const v0 = parseSchema({
      type: 'record',
      name: 'User',
      namespace: 'streamrec',
      fields: [{ name: 'USER_ID', type: 'string' }],
    });
    const codecs = createCodecs(config, { byId: (id) => (id === 3 ? v0 : undefined) });
    const body = v0.toBuffer({ USER_ID: 'old' });
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 3]), body]);
    expect(codecs.User.decode(framed)).toEqual({ USER_ID: 'old', METADATA: {} });
    const unknown = Buffer.concat([Buffer.from([0, 0, 0, 0, 99]), body]);
    expect(thrown(() => codecs.User.decode(unknown)).message).toMatch(/unknown writer schema id 99/);
    expect(thrown(() => codecs.User.decode(body)).code).toBe('RECORD_MALFORMED');
  });
});

describe('the wrong wire format is named, with the setting that fixes it', () => {
  const confluent = createCodecs(
    loadConfig({ env: { STREAMREC_AVRO_WIRE_FORMAT: 'confluent', STREAMREC_AVRO_CONFLUENT_SCHEMA_IDS: '{"Interaction":11,"Item":12,"User":13,"Recommendation":14,"DeadLetter":15}' } }),
  );
  const plain = createCodecs(loadConfig({ env: {} }));

  it('a Confluent-framed record on a plain group', () => {
    const err = thrown(() => plain.Interaction.decode(confluent.Interaction.encode(event)));
    expect(err.code).toBe('RECORD_MALFORMED');
    expect(err.field).toBe('(framing)');
    expect(err.message).toMatch(/Confluent Schema Registry framing \(magic byte 0, schema id 11\).*avro\.wireFormat to confluent/);
  });

  it('plain Avro on a confluent group', () => {
    const err = thrown(() => confluent.Interaction.decode(plain.Interaction.encode(event)));
    expect(err.code).toBe('RECORD_MALFORMED');
    expect(err.message).toMatch(/plain Avro of Interaction without the Confluent framing.*avro\.wireFormat to plain/);
  });

  it('bytes that are neither get no framing hint', () => {
    const junk = Buffer.from([0, 0, 0, 0, 11, 0xff, 0xff, 0xff]);
    expect(thrown(() => plain.Interaction.decode(junk)).field).not.toBe('(framing)');
    expect(thrown(() => confluent.Interaction.decode(Buffer.from('nope'))).message).toMatch(/do not start with the Confluent magic byte/);
  });
});
