/**
 * The HTTP ingestion API through app.inject, with in-memory doubles at the Kafka boundary (sink,
 * group directory) and a fixed clock. Records are checked by decoding them with the real codecs.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type GroupDirectory, type RecordSink, type ServiceStatus, type SinkMessage } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createCodecs, type Interaction, type Item, type User } from '../../src/serde/avro.js';

const config = loadConfig({ env: { STREAMREC_API_AUTH: 'off' } });
const codecs = createCodecs(config);
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0); // 2025-06-01T12:00:00Z
const T = NOW - 60_000; // a minute ago, in ms
const GROUP = 'shop';

class MemorySink implements RecordSink {
  sent: { topic: string; messages: SinkMessage[] }[] = [];
  failure: Error | undefined;
  async send(topic: string, messages: SinkMessage[]): Promise<void> {
    if (this.failure) throw this.failure;
    this.sent.push({ topic, messages: [...messages] });
  }
}

const sink = new MemorySink();
const known = new Set([GROUP]);
const groups: GroupDirectory = { has: async (g) => known.has(g) };
let status: ServiceStatus = { state: 'starting', ready: false };
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp({ config, codecs, sink, groups, status: () => status, now: () => NOW, logger: false });
});
afterAll(async () => {
  await app.close();
});
beforeEach(() => {
  sink.sent = [];
  sink.failure = undefined;
});

interface ErrorResponse {
  code: string;
  message: string;
  field?: string;
  retriable: boolean;
  errors?: { index: number; field: string; reason: string }[];
}

/** A stack frame (`at fn (file:///x.js:1:2)`, `at node:internal/...:1:2`, `at /x.js:1:2`), a stack property, or a source path. */
const STACK_FRAME = /\bat (?:async )?(?:\S+ \()?(?:file:|node:|\/)\S*:\d+:\d+|"stack"|node_modules|\/src\/\S+\.ts/;

async function call(options: InjectOptions): Promise<LightMyRequestResponse> {
  const res = await app.inject(options);
  expect(res.body, 'no stack frames in a response').not.toMatch(STACK_FRAME);
  return res;
}

const post = (path: string, payload: unknown) => call({ method: 'POST', url: `/v1/groups/${GROUP}/${path}`, payload: payload as InjectOptions['payload'] });

const goodEvents = { userId: 'u-ok', eventList: [{ eventType: 'click', itemId: 'i-ok', sentAt: T }] };

/** Expects the refusal, that nothing was produced, and that a good request right after still works. */
async function refused(res: LightMyRequestResponse, status: number, code: string): Promise<ErrorResponse> {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json<ErrorResponse>();
  expect(body.code).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(sink.sent).toEqual([]);
  const after = await post('events', goodEvents);
  expect(after.statusCode, after.body).toBe(202);
  expect(after.json()).toEqual({ accepted: 1 });
  expect(sink.sent).toHaveLength(1);
  sink.sent = [];
  return body;
}

const decodeInteractions = (messages: SinkMessage[]): Interaction[] => messages.map((m) => codecs.Interaction.decode(m.value));

describe('POST /v1/groups/:group/events (PutEvents)', () => {
  it('produces one Avro Interaction per event to <group>.interactions, keyed by userId', async () => {
    const res = await post('events', {
      userId: 'u1',
      sessionId: 's1',
      eventList: [
        {
          eventId: 'e1',
          eventType: 'purchase',
          eventValue: 4.5,
          itemId: 'i9',
          sentAt: T,
          recommendationId: 'rec-1',
          impression: ['i9', 'i3'],
          properties: { DEVICE: 'mobile', LOCALE: 'de-DE' },
        },
        { eventType: 'click', itemId: 'i3', sentAt: T + 1000 },
      ],
    });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json()).toEqual({ accepted: 2 });
    expect(sink.sent).toHaveLength(1);
    const [batch] = sink.sent;
    expect(batch!.topic).toBe('shop.interactions');
    expect(batch!.messages.map((m) => m.key)).toEqual(['u1', 'u1']);
    expect(decodeInteractions(batch!.messages)).toEqual([
      {
        USER_ID: 'u1',
        ITEM_ID: 'i9',
        TIMESTAMP: T,
        EVENT_TYPE: 'purchase',
        EVENT_VALUE: 4.5,
        SESSION_ID: 's1',
        IMPRESSION: ['i9', 'i3'],
        RECOMMENDATION_ID: 'rec-1',
        CONTEXT: { DEVICE: 'mobile', LOCALE: 'de-DE' },
      },
      {
        USER_ID: 'u1',
        ITEM_ID: 'i3',
        TIMESTAMP: T + 1000,
        EVENT_TYPE: 'click',
        EVENT_VALUE: null,
        SESSION_ID: 's1', // sessionId is the request's, shared by its events
        IMPRESSION: [],
        RECOMMENDATION_ID: null,
        CONTEXT: {},
      },
    ]);
  });

  it('reads sentAt as epoch seconds, epoch milliseconds or ISO 8601, all to the same TIMESTAMP', async () => {
    const at = Date.UTC(2025, 5, 1, 11, 30, 15, 250);
    const forms = [at / 1000, at, '2025-06-01T11:30:15.250Z', '2025-06-01T13:30:15.25+02:00', '2025-06-01T06:30:15.250-0500'];
    const res = await post('events', { userId: 'u1', eventList: forms.map((sentAt, i) => ({ eventType: 'click', itemId: `i${i}`, sentAt })) });
    expect(res.statusCode, res.body).toBe(202);
    expect(decodeInteractions(sink.sent[0]!.messages).map((e) => e.TIMESTAMP)).toEqual(forms.map(() => at));
  });

  it('takes properties as an object or as a JSON string; string values become CONTEXT', async () => {
    const props = { DEVICE: 'tablet', LOCATION: 'Berlin|DE' };
    const res = await post('events', {
      userId: 'u2',
      eventList: [
        { eventType: 'click', itemId: 'a', sentAt: T, properties: props },
        { eventType: 'click', itemId: 'b', sentAt: T, properties: JSON.stringify(props) },
      ],
    });
    expect(res.statusCode, res.body).toBe(202);
    expect(decodeInteractions(sink.sent[0]!.messages).map((e) => e.CONTEXT)).toEqual([props, props]);
  });

  it('refuses 101 events (and 0) naming eventList', async () => {
    const many = Array.from({ length: 101 }, (_, i) => ({ eventType: 'click', itemId: `i${i}`, sentAt: T }));
    const body = await refused(await post('events', { userId: 'u', eventList: many }), 400, 'REQUEST_INVALID');
    expect(body.field).toBe('eventList');
    expect(body.message).toMatch(/100/);
    expect((await refused(await post('events', { userId: 'u', eventList: [] }), 400, 'REQUEST_INVALID')).field).toBe('eventList');
    // exactly 100 is fine
    expect((await post('events', { userId: 'u', eventList: many.slice(0, 100) })).json()).toEqual({ accepted: 100 });
  });

  it('refuses a request without userId, naming the field', async () => {
    const body = await refused(await post('events', { eventList: goodEvents.eventList }), 400, 'REQUEST_INVALID');
    expect(body.field).toBe('userId');
    expect(body.message).toBe('userId is required');
  });

  it('refuses wrong types without coercing them, naming the field', async () => {
    const numberAsString = await post('events', { userId: 'u', eventList: [{ eventType: 'rating', eventValue: '5', itemId: 'i', sentAt: T }] });
    expect((await refused(numberAsString, 400, 'REQUEST_INVALID')).field).toBe('eventList[0].eventValue');
    expect((await refused(await post('events', { userId: 42, eventList: goodEvents.eventList }), 400, 'REQUEST_INVALID')).field).toBe('userId');
    const sentAtBool = await refused(await post('events', { userId: 'u', eventList: [{ eventType: 'c', itemId: 'i', sentAt: true }] }), 400, 'REQUEST_INVALID');
    expect(sentAtBool.field).toBe('eventList[0].sentAt');
    expect(sentAtBool.message).toBe('eventList[0].sentAt must be a number or a string');
    const props = await refused(await post('events', { userId: 'u', eventList: [{ eventType: 'c', itemId: 'i', sentAt: T, properties: [1] }] }), 400, 'REQUEST_INVALID');
    expect(props.field).toBe('eventList[0].properties');
    const notAnObject = await call({ method: 'POST', url: `/v1/groups/${GROUP}/events`, headers: { 'content-type': 'application/json' }, payload: '"just a string"' });
    expect((await refused(notAnObject, 400, 'REQUEST_INVALID')).field).toBe('(body)');
  });

  it('refuses undeclared fields instead of dropping them', async () => {
    const body = await refused(await post('events', { ...goodEvents, userID: 'typo' }), 400, 'REQUEST_INVALID');
    expect(body.field).toBe('userID');
    const nested = await refused(
      await post('events', { userId: 'u', eventList: [{ eventType: 'c', itemId: 'i', sentAt: T, timestamp: T }] }),
      400,
      'REQUEST_INVALID',
    );
    expect(nested.field).toBe('eventList[0].timestamp');
  });

  it('refuses a far-future sentAt naming eventList[i].sentAt', async () => {
    const future = NOW + config.ingest.maxFutureSkewMs + 1000;
    const res = await post('events', {
      userId: 'u',
      eventList: [
        { eventType: 'click', itemId: 'a', sentAt: T },
        { eventType: 'click', itemId: 'b', sentAt: future * 1000 }, // microseconds
      ],
    });
    const body = await refused(res, 400, 'RECORD_INVALID');
    expect(body.errors).toEqual([{ index: 1, field: 'eventList[1].sentAt', reason: expect.stringMatching(/in the future/) }]);
    // Just inside the allowed skew is accepted.
    expect((await post('events', { userId: 'u', eventList: [{ eventType: 'c', itemId: 'i', sentAt: NOW + config.ingest.maxFutureSkewMs }] })).statusCode).toBe(202);
  });

  it('is all or nothing: one bad record among good ones -> 400 listing every failing record, nothing produced', async () => {
    const eventList = [
      { eventType: 'click', itemId: 'a', sentAt: T },
      { eventType: 'click', itemId: 'b', sentAt: 'yesterday' },
      { eventType: 'click', itemId: 'c', sentAt: T },
      { eventType: 'click', itemId: 'd', sentAt: T, properties: '{"DEVICE": "tv", "SCREENS": 2}' },
      { eventType: 'click', itemId: 'e', sentAt: '2025-02-30T10:00:00Z' },
      { eventType: 'click', itemId: '   ', sentAt: T, properties: '{not json' },
      { eventType: ' ', itemId: 'f', sentAt: T, impression: ['x', ''] },
      { eventType: 'click', itemId: 'g', sentAt: -5 },
    ];
    const body = await refused(await post('events', { userId: 'u', eventList }), 400, 'RECORD_INVALID');
    expect(body.message).toMatch(/^6 of 8 events invalid, nothing was accepted: eventList\[1\]\.sentAt/);
    expect(body.field).toBe('eventList[1].sentAt');
    expect(body.errors!.map((e) => [e.index, e.field])).toEqual([
      [1, 'eventList[1].sentAt'],
      [3, 'eventList[3].properties.SCREENS'],
      [4, 'eventList[4].sentAt'],
      [5, 'eventList[5].properties'],
      [6, 'eventList[6].eventType'],
      [7, 'eventList[7].sentAt'],
    ]);
    for (const e of body.errors!) expect(e.reason.length).toBeGreaterThan(5);
  });

  it('maps Avro field errors back to request fields (whitespace ids)', async () => {
    const body = await refused(await post('events', { userId: '  ', eventList: [goodEvents.eventList[0], { eventType: 'c', itemId: ' ', sentAt: T }] }), 400, 'RECORD_INVALID');
    expect(body.errors!.map((e) => [e.index, e.field])).toEqual([
      [0, 'userId'],
      [1, 'userId'],
      [1, 'eventList[1].itemId'],
    ]);
  });

  it('answers malformed JSON with 400 REQUEST_MALFORMED', async () => {
    const res = await call({ method: 'POST', url: `/v1/groups/${GROUP}/events`, headers: { 'content-type': 'application/json' }, payload: '{"userId": "u", "eventList": [' });
    await refused(res, 400, 'REQUEST_MALFORMED');
    const empty = await call({ method: 'POST', url: `/v1/groups/${GROUP}/events`, headers: { 'content-type': 'application/json' }, payload: '' });
    await refused(empty, 400, 'REQUEST_MALFORMED');
    const proto = await call({
      method: 'POST',
      url: `/v1/groups/${GROUP}/events`,
      headers: { 'content-type': 'application/json' },
      payload: '{"userId":"u","__proto__":{"x":1},"eventList":[]}',
    });
    await refused(proto, 400, 'REQUEST_MALFORMED');
  });

  it('answers a body over api.bodyLimitBytes with 413 PAYLOAD_TOO_LARGE', async () => {
    const big = { userId: 'u', eventList: [{ eventType: 'click', itemId: 'x'.repeat(config.api.bodyLimitBytes), sentAt: T }] };
    const body = await refused(await post('events', big), 413, 'PAYLOAD_TOO_LARGE');
    expect(body.message).toContain(String(config.api.bodyLimitBytes));
  });

  it('answers a body that is not JSON with 415', async () => {
    const res = await call({ method: 'POST', url: `/v1/groups/${GROUP}/events`, headers: { 'content-type': 'application/xml' }, payload: '<x/>' });
    await refused(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers an unknown group with 404 GROUP_NOT_FOUND and a bad group name with 400 INVALID_GROUP_NAME', async () => {
    const unknown = await call({ method: 'POST', url: '/v1/groups/nope/events', payload: goodEvents });
    expect((await refused(unknown, 404, 'GROUP_NOT_FOUND')).field).toBe('group');
    await refused(await call({ method: 'POST', url: '/v1/groups/no.dots/events', payload: goodEvents }), 400, 'INVALID_GROUP_NAME');
    await refused(await call({ method: 'POST', url: `/v1/groups/${'g'.repeat(61)}/items`, payload: { items: [{ itemId: 'i' }] } }), 400, 'INVALID_GROUP_NAME');
    await refused(await call({ method: 'POST', url: '/v1/groups/sp%20ace/users', payload: { users: [{ userId: 'u' }] } }), 400, 'INVALID_GROUP_NAME');
  });

  it('answers a failing sink with 503 KAFKA_UNREACHABLE (retriable), then recovers', async () => {
    sink.failure = new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    const res = await post('events', goodEvents);
    sink.failure = undefined;
    const body = await refused(res, 503, 'KAFKA_UNREACHABLE');
    expect(body.retriable).toBe(true);
    expect(res.headers['retry-after']).toBe('1');
    expect(body.message).toContain('shop.interactions');
  });

  it('answers an unknown path with 404 ROUTE_NOT_FOUND, and a method the path does not have with 405 METHOD_NOT_ALLOWED and allow', async () => {
    await refused(await call({ method: 'POST', url: '/v2/anything', payload: {} }), 404, 'ROUTE_NOT_FOUND');
    const get = await call({ method: 'GET', url: '/v1/groups/shop/events' });
    await refused(get, 405, 'METHOD_NOT_ALLOWED');
    expect(get.headers.allow).toBe('POST');
    const put = await call({ method: 'PUT', url: '/v1/groups/shop/events?x=1', payload: {} });
    await refused(put, 405, 'METHOD_NOT_ALLOWED');
    expect(put.headers.allow).toBe('POST');
    // QUERY without a content type is refused by fastify before routing: answered the same way, no fastify code leaks.
    const query = await call({ method: 'QUERY' as 'GET', url: '/v1/groups/shop' });
    expect(query.statusCode).toBe(404);
    expect(query.json()).toMatchObject({ code: 'ROUTE_NOT_FOUND', retriable: false });
    expect(query.body).not.toContain('FST_');
    const health = await call({ method: 'DELETE', url: '/health' });
    await refused(health, 405, 'METHOD_NOT_ALLOWED');
    expect(health.headers.allow).toBe('GET, HEAD');
  });

  it('answers an unexpected error with 500 INTERNAL_ERROR, without its message or stack', async () => {
    const failing = await buildApp({
      config,
      codecs,
      sink,
      groups: {
        has: async () => {
          throw Object.assign(new TypeError('secret internal detail'), { statusCode: undefined });
        },
      },
      status: () => status,
      logger: false,
    });
    try {
      // groups.has failing is a Kafka-side failure: 503, not 500.
      const res = await failing.inject({ method: 'POST', url: '/v1/groups/shop/events', payload: goodEvents });
      expect(res.statusCode).toBe(503);
      expect(res.json<ErrorResponse>().code).toBe('KAFKA_UNREACHABLE');
      expect(res.body).not.toMatch(STACK_FRAME);
    } finally {
      await failing.close();
    }
    const broken = await buildApp({
      config,
      codecs: { ...codecs, Interaction: Object.assign(Object.create(codecs.Interaction) as typeof codecs.Interaction, {
        encode: () => {
          throw new TypeError('secret internal detail');
        },
      }) },
      sink,
      groups,
      status: () => status,
      logger: false,
    });
    try {
      const res = await broken.inject({ method: 'POST', url: '/v1/groups/shop/events', payload: goodEvents });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({ code: 'INTERNAL_ERROR', message: expect.any(String), retriable: true });
      expect(res.body).not.toContain('secret');
      expect(res.body).not.toMatch(STACK_FRAME);
    } finally {
      await broken.close();
    }
  });
});

describe('logging', () => {
  it("logs through fastify's pino logger at the configured level: 5xx as errors with the stack, 4xx as info", async () => {
    const lines: { level: number; msg: string; err?: { stack?: string }; code?: string }[] = [];
    const stream = { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) };
    const failingSink: RecordSink = {
      send: async () => {
        throw new Error('broker gone');
      },
    };
    const logged = await buildApp({ config, codecs, sink: failingSink, groups, status: () => status, now: () => NOW, logger: { level: 'info', stream } });
    try {
      expect((await logged.inject({ method: 'POST', url: '/v1/groups/shop/events', payload: goodEvents })).statusCode).toBe(503);
      expect((await logged.inject({ method: 'POST', url: '/v1/groups/shop/events', payload: { userId: 'u' } })).statusCode).toBe(400);
    } finally {
      await logged.close();
    }
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('KAFKA_UNREACHABLE');
    expect(errors[0]!.err?.stack).toContain('broker gone');
    expect(lines.some((l) => l.level === 30 && l.code === 'REQUEST_INVALID')).toBe(true);

    const quiet: string[] = [];
    const warnOnly = await buildApp({ config, codecs, sink, groups, status: () => status, logger: { level: 'warn', stream: { write: (l: string) => void quiet.push(l) } } });
    try {
      await warnOnly.inject({ method: 'POST', url: '/v1/groups/shop/events', payload: { userId: 'u' } });
    } finally {
      await warnOnly.close();
    }
    expect(quiet).toEqual([]);
  });
});

describe('POST /v1/groups/:group/items (PutItems)', () => {
  it('produces Avro Items keyed by itemId to <group>.items; every metadata kind round-trips, "|" strings stay strings', async () => {
    const metadata = { GENRES: 'Comedy|Drama', PRICE: 9.99, STOCK: 3, IN_STOCK: true, TAGS: ['a', 'b|c'], EMPTY_TAGS: [] as string[] };
    const res = await post('items', {
      items: [
        { itemId: 'i1', creationTimestamp: 1_700_000_000, properties: metadata },
        { itemId: 'i2', properties: JSON.stringify(metadata) },
        { itemId: 'i3', creationTimestamp: '2023-11-14T22:13:20Z' },
      ],
    });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json()).toEqual({ accepted: 3 });
    const [batch] = sink.sent;
    expect(batch!.topic).toBe('shop.items');
    expect(batch!.messages.map((m) => m.key)).toEqual(['i1', 'i2', 'i3']);
    const items: Item[] = batch!.messages.map((m) => codecs.Item.decode(m.value));
    expect(items).toEqual([
      { ITEM_ID: 'i1', CREATION_TIMESTAMP: 1_700_000_000_000, METADATA: metadata },
      { ITEM_ID: 'i2', CREATION_TIMESTAMP: null, METADATA: metadata },
      { ITEM_ID: 'i3', CREATION_TIMESTAMP: 1_700_000_000_000, METADATA: {} },
    ]);
    expect(typeof items[0]!.METADATA.GENRES).toBe('string');
  });

  it('refuses metadata values of other kinds naming items[i].properties.<key>, and produces nothing', async () => {
    const res = await post('items', {
      items: [
        { itemId: 'ok', properties: { A: 'x' } },
        { itemId: 'bad1', properties: { NESTED: { a: 1 } } },
        { itemId: 'bad2', properties: '{"NUMS": [1, 2]}' },
        { itemId: 'bad3', properties: { NOTHING: null }, creationTimestamp: 'soon' },
      ],
    });
    const body = await refused(res, 400, 'RECORD_INVALID');
    expect(body.errors!.map((e) => [e.index, e.field])).toEqual([
      [1, 'items[1].properties.NESTED'],
      [2, 'items[2].properties.NUMS[0]'],
      [2, 'items[2].properties.NUMS[1]'],
      [3, 'items[3].creationTimestamp'],
    ]);
  });

  it('refuses 101 items, a missing itemId and undeclared fields', async () => {
    const many = Array.from({ length: 101 }, (_, i) => ({ itemId: `i${i}` }));
    expect((await refused(await post('items', { items: many }), 400, 'REQUEST_INVALID')).field).toBe('items');
    expect((await refused(await post('items', { items: [{ properties: {} }] }), 400, 'REQUEST_INVALID')).field).toBe('items[0].itemId');
    expect((await refused(await post('items', { items: [{ itemId: 'i', title: 'x' }] }), 400, 'REQUEST_INVALID')).field).toBe('items[0].title');
  });
});

describe('POST /v1/groups/:group/users (PutUsers)', () => {
  it('produces Avro Users keyed by userId to <group>.users; metadata kinds round-trip', async () => {
    const metadata = { AGE: 31, MEMBER: false, SEGMENT: 'gold|silver', LANGS: ['de', 'en'] };
    const res = await post('users', { users: [{ userId: 'u1', properties: metadata }, { userId: 'u2', properties: JSON.stringify(metadata) }, { userId: 'u3' }] });
    expect(res.statusCode, res.body).toBe(202);
    const [batch] = sink.sent;
    expect(batch!.topic).toBe('shop.users');
    expect(batch!.messages.map((m) => m.key)).toEqual(['u1', 'u2', 'u3']);
    const users: User[] = batch!.messages.map((m) => codecs.User.decode(m.value));
    expect(users).toEqual([
      { USER_ID: 'u1', METADATA: metadata },
      { USER_ID: 'u2', METADATA: metadata },
      { USER_ID: 'u3', METADATA: {} },
    ]);
  });

  it('refuses bad users all or nothing, naming users[i] fields', async () => {
    const body = await refused(
      await post('users', { users: [{ userId: 'u1' }, { userId: ' ' }, { userId: 'u3', properties: '"a string"' }] }),
      400,
      'RECORD_INVALID',
    );
    expect(body.errors!.map((e) => [e.index, e.field])).toEqual([
      [1, 'users[1].userId'],
      [2, 'users[2].properties'],
    ]);
    const many = Array.from({ length: 101 }, (_, i) => ({ userId: `u${i}` }));
    expect((await refused(await post('users', { users: many }), 400, 'REQUEST_INVALID')).field).toBe('users');
    expect((await refused(await post('users', { users: [{ userId: 7 }] }), 400, 'REQUEST_INVALID')).field).toBe('users[0].userId');
  });
});

describe('GET /health and /ready', () => {
  it('/health answers 200 with the state whatever the readiness', async () => {
    status = { state: 'starting', ready: false };
    const res = await call({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', state: 'starting' });
  });

  it('/ready answers 503 until the processor is ready, then 200, with the status', async () => {
    status = { state: 'restoring', ready: false, detail: { partitions: 3, restored: 1 } };
    const before = await call({ method: 'GET', url: '/ready' });
    expect(before.statusCode).toBe(503);
    expect(before.json()).toEqual(status);
    status = { state: 'running', ready: true };
    const after = await call({ method: 'GET', url: '/ready' });
    expect(after.statusCode).toBe(200);
    expect(after.json()).toEqual({ state: 'running', ready: true });
    const health = await call({ method: 'GET', url: '/health' });
    expect(health.json()).toEqual({ status: 'ok', state: 'running' });
  });
});
