/**
 * Issue 11 (parts 4 and 6) at the HTTP layer: the bounded wait for Kafka and the in-flight cap, the
 * request and connection timeouts over real sockets, the per-address limit of refused requests,
 * JSON-only bodies, id lengths, and error messages that keep server paths and addresses to the log.
 * Doubles only at the Kafka boundary (sink, group directory); the versions registry is a real folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { buildApp, type GroupDirectory, type GroupServices, type RecordSink, type SinkMessage } from '../../src/api/app.js';
import { forwarder } from '../../src/api/forward.js';
import { loadConfig } from '../../src/config/index.js';
import { createCodecs, type Interaction } from '../../src/serde/avro.js';
import { checkInteraction, checkItem, checkUser, MAX_ID_LENGTH } from '../../src/serde/validate.js';
import { Resources } from '../../src/stream/resources.js';
import { VersionRegistry } from '../../src/training/registry.js';

const ROOT = 'root-key-for-the-hardening-tests';
const NOW = Date.UTC(2026, 5, 1);
const GROUP = 'shop';

/** A sink whose sends wait until the test settles them: a broker that does not answer. */
class StalledSink implements RecordSink {
  pending: { topic: string; messages: SinkMessage[]; settle: (err?: Error) => void }[] = [];
  sent: { topic: string; messages: SinkMessage[] }[] = [];
  stalled = true;
  send(topic: string, messages: SinkMessage[]): Promise<void> {
    if (!this.stalled) {
      this.sent.push({ topic, messages });
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.pending.push({ topic, messages, settle: (err) => (err ? reject(err) : resolve()) }));
  }
  release(): void {
    for (const p of this.pending.splice(0)) p.settle();
  }
}

const known: GroupDirectory = { has: async (g) => g === GROUP };
const apps: FastifyInstance[] = [];
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function build(env: Record<string, string>, deps: Partial<Parameters<typeof buildApp>[0]> = {}): Promise<FastifyInstance> {
  const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT, ...env } });
  const app = await buildApp({ config, codecs: createCodecs(config), sink: new StalledSink(), groups: known, status: () => ({ state: 'running', ready: true }), now: () => NOW, logger: false, ...deps });
  apps.push(app);
  return app;
}

const events = (userId = 'u1', event: Record<string, unknown> = {}) => ({ userId, eventList: [{ eventType: 'click', itemId: 'i1', sentAt: NOW - 1000, ...event }] });
const post = (app: FastifyInstance, path: string, payload: unknown, headers: Record<string, string> = { 'x-api-key': ROOT }, extra: Partial<InjectOptions> = {}) =>
  app.inject({ method: 'POST', url: `/v1/groups/${GROUP}/${path}`, payload: payload as InjectOptions['payload'], headers, ...extra });

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('fail-fast ingestion (ingest.produceTimeoutMs, ingest.maxInFlight)', () => {
  it('answers 503 KAFKA_UNREACHABLE with retry-after once the produce wait is over, for events, items and users', async () => {
    const sink = new StalledSink();
    const app = await build({ STREAMREC_INGEST_PRODUCE_TIMEOUT_MS: '400' }, { sink });
    for (const [path, body] of [
      ['events', events()],
      ['items', { items: [{ itemId: 'i1' }] }],
      ['users', { users: [{ userId: 'u1' }] }],
    ] as const) {
      const { value: res, ms } = await timed(() => post(app, path, body));
      expect(res.statusCode, res.body).toBe(503);
      expect(res.json()).toMatchObject({ code: 'KAFKA_UNREACHABLE', retriable: true });
      expect(res.json().message).toContain('may still be written');
      expect(res.headers['retry-after']).toBe('1');
      expect(ms).toBeGreaterThanOrEqual(350);
      expect(ms).toBeLessThan(400 + 1500);
    }
    // The timed-out produces were handed to the producer (and may land): nothing is retried by the server.
    expect(sink.pending.map((p) => p.topic)).toEqual(['shop.interactions', 'shop.items', 'shop.users']);
    sink.release();
    sink.stalled = false;
    expect((await post(app, 'events', events())).statusCode).toBe(202);
  });

  it('counts the group lookup against the same wait', async () => {
    const sink = new StalledSink();
    const slowGroups: GroupDirectory = { has: (g) => new Promise((r) => setTimeout(() => r(g === GROUP), 1500)) };
    const app = await build({ STREAMREC_INGEST_PRODUCE_TIMEOUT_MS: '2000' }, { sink, groups: slowGroups });
    const { value: res, ms } = await timed(() => post(app, 'events', events()));
    expect(res.statusCode).toBe(503);
    // 1.5 s looking the group up + what is left of the 2 s for the produce; not 1.5 + 2 s.
    expect(ms).toBeLessThan(3000);
    sink.release();

    const hanging = await build({ STREAMREC_INGEST_PRODUCE_TIMEOUT_MS: '300' }, { groups: { has: () => new Promise<boolean>(() => undefined) } });
    const { value: lookup, ms: lookupMs } = await timed(() => post(hanging, 'events', events()));
    expect(lookup.statusCode).toBe(503);
    expect(lookup.json().code).toBe('KAFKA_UNREACHABLE');
    expect(lookup.headers['retry-after']).toBe('1');
    expect(lookupMs).toBeLessThan(300 + 1500);
  });

  it('answers 503 INGEST_OVERLOADED at once past ingest.maxInFlight, and takes requests again when Kafka answers', async () => {
    const sink = new StalledSink();
    let lookups = 0;
    const counted: GroupDirectory = { has: async (g) => (lookups++, g === GROUP) };
    const app = await build({ STREAMREC_INGEST_PRODUCE_TIMEOUT_MS: '60000', STREAMREC_INGEST_MAX_IN_FLIGHT: '2' }, { sink, groups: counted });
    const waiting = [post(app, 'events', events('a')), post(app, 'users', { users: [{ userId: 'b' }] })];
    await until(() => sink.pending.length === 2);
    expect(lookups).toBe(2);
    const { value: res, ms } = await timed(() => post(app, 'items', { items: [{ itemId: 'c' }] }));
    expect(res.statusCode, res.body).toBe(503);
    expect(res.json()).toMatchObject({ code: 'INGEST_OVERLOADED', retriable: true });
    expect(res.headers['retry-after']).toBe('1');
    expect(ms).toBeLessThan(1000);
    expect(sink.pending).toHaveLength(2);
    expect(lookups).toBe(2); // refused before waiting on Kafka for the group lookup too
    sink.release();
    expect((await Promise.all(waiting)).map((r) => r.statusCode)).toEqual([202, 202]);
    sink.stalled = false;
    expect((await post(app, 'items', { items: [{ itemId: 'c' }] })).statusCode).toBe(202);
  });
});

describe('HTTP hardening', () => {
  it('answers a text/plain body with 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const app = await build({});
    for (const path of ['events', 'items', 'users']) {
      const res = await post(app, path, JSON.stringify(events()), { 'x-api-key': ROOT, 'content-type': 'text/plain' });
      expect(res.statusCode, res.body).toBe(415);
      expect(res.json().code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
  });

  it('refuses ids longer than 256 characters in bodies and query strings (and the shared record checks do too)', async () => {
    const sink = new StalledSink();
    sink.stalled = false;
    const app = await build({}, { sink });
    const long = 'x'.repeat(MAX_ID_LENGTH + 1);
    const max = 'é'.repeat(MAX_ID_LENGTH); // 256 characters (512 bytes) is fine
    const cases: [string, unknown, string][] = [
      ['events', events(long), 'userId'],
      ['events', { ...events(), sessionId: long }, 'sessionId'],
      ['events', events('u', { itemId: long }), 'eventList[0].itemId'],
      ['events', events('u', { eventId: long }), 'eventList[0].eventId'],
      ['events', events('u', { eventType: long }), 'eventList[0].eventType'],
      ['events', events('u', { recommendationId: long }), 'eventList[0].recommendationId'],
      ['events', events('u', { impression: ['ok', long] }), 'eventList[0].impression[1]'],
      ['events', events('x'.repeat(60_000)), 'userId'],
      ['items', { items: [{ itemId: long }] }, 'items[0].itemId'],
      ['users', { users: [{ userId: long }] }, 'users[0].userId'],
    ];
    for (const [path, body, field] of cases) {
      const res = await post(app, path, body);
      expect(res.statusCode, `${field}: ${res.body}`).toBe(400);
      expect(res.json()).toMatchObject({ code: 'REQUEST_INVALID', field });
    }
    expect(sink.sent).toEqual([]);
    const ok = await post(app, 'events', { userId: max, sessionId: max, eventList: [{ eventType: 'click', itemId: max, sentAt: NOW - 1000, impression: [max] }] });
    expect(ok.statusCode, ok.body).toBe(202);
    expect((await post(app, 'items', { items: [{ itemId: max }] })).statusCode).toBe(202);

    // The Kafka path (stream processor, import) refuses the same records field by field.
    const e: Interaction = { USER_ID: long, ITEM_ID: long, TIMESTAMP: NOW, EVENT_TYPE: long, EVENT_VALUE: null, SESSION_ID: long, IMPRESSION: ['a', long], RECOMMENDATION_ID: long, CONTEXT: {} };
    expect(checkInteraction(e, NOW, { maxFutureSkewMs: 0 }).map((p) => p.field)).toEqual(['USER_ID', 'ITEM_ID', 'EVENT_TYPE', 'SESSION_ID', 'RECOMMENDATION_ID', 'IMPRESSION.1']);
    expect(checkInteraction({ ...e, USER_ID: max, ITEM_ID: max, EVENT_TYPE: 'click', SESSION_ID: null, IMPRESSION: [max], RECOMMENDATION_ID: null }, NOW, { maxFutureSkewMs: 0 })).toEqual([]);
    expect(checkItem({ ITEM_ID: long, CREATION_TIMESTAMP: null, METADATA: {} })).toEqual([{ field: 'ITEM_ID', reason: expect.stringContaining('256') }]);
    expect(checkUser({ USER_ID: long, METADATA: {} })).toEqual([{ field: 'USER_ID', reason: expect.stringContaining('256') }]);
    expect(checkUser({ USER_ID: max, METADATA: {} })).toEqual([]);
  });

  it('limits refused requests (no key, unknown key) per client address: 429 with retry-after past api.unauthenticatedPerMinute', async () => {
    for (const perKey of ['600000', '0']) {
      const sink = new StalledSink();
      sink.stalled = false;
      const app = await build({ STREAMREC_API_UNAUTHENTICATED_PER_MINUTE: '5', STREAMREC_API_RATE_LIMIT_PER_MINUTE: perKey }, { sink });
      const from = (ip: string) => ({ remoteAddress: ip });
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) statuses.push((await post(app, 'events', events(), {}, from('10.0.0.7'))).statusCode);
      for (let i = 0; i < 2; i++) statuses.push((await post(app, 'events', events(), { 'x-api-key': 'wrong-key' }, from('10.0.0.7'))).statusCode);
      expect(statuses, `rateLimitPerMinute ${perKey}`).toEqual([401, 401, 401, 401, 401]);
      const limited = await post(app, 'events', events(), { 'x-api-key': 'another-wrong-key' }, from('10.0.0.7'));
      expect(limited.statusCode).toBe(429);
      expect(limited.json()).toMatchObject({ code: 'RATE_LIMITED', retriable: true });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect((await post(app, 'users', { users: [{ userId: 'u' }] }, {}, from('10.0.0.7'))).statusCode).toBe(429);
      // Another address is not affected, and a good key from the same address still gets in.
      expect((await post(app, 'events', events(), {}, from('10.0.0.8'))).statusCode).toBe(401);
      expect((await post(app, 'events', events(), { 'x-api-key': ROOT }, from('10.0.0.7'))).statusCode).toBe(202);
    }
  });

  it('keeps server folders and addresses out of error messages (they go to the log)', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = { level: 'info', stream: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } };
    const failing: RecordSink = { send: async () => Promise.reject(new Error('Connection error: connect ECONNREFUSED 10.9.8.7:9092')) };
    const dir = mkdtempSync(join(tmpdir(), 'streamrec-versions-'));
    dirs.push(dir);
    const registry = new VersionRegistry(dir);
    const services = {
      query: {},
      resources: new Resources(),
      deployment: { describe: () => ({ announced: undefined, loaded: null }) },
      solutions: { configured: () => ({ recipe: 'sims', params: {} }), versions: () => registry.list(), version: (v: string) => registry.info(v), train: () => false, running: () => false },
    } as unknown as GroupServices;
    const app = await build(
      {},
      {
        sink: failing,
        logger,
        served: { names: () => [GROUP], get: (g) => (g === GROUP ? services : undefined) },
        forward: forwarder({ owner: () => ({ self: false, url: 'http://127.0.0.1:1' }), selfUrl: () => 'http://127.0.0.1:2', timeoutMs: 2000 }),
      },
    );
    const kafka = await post(app, 'events', events());
    expect(kafka.statusCode).toBe(503);
    expect(kafka.body).not.toContain('10.9.8.7');
    expect(kafka.body).not.toContain('9092');

    const version = await app.inject({ method: 'GET', url: `/v1/groups/${GROUP}/solutions/default/versions/v20260101T000000000-sims-abcd`, headers: { 'x-api-key': ROOT } });
    expect(version.statusCode).toBe(404);
    expect(version.json().code).toBe('VERSION_NOT_FOUND');
    expect(version.body).not.toContain(dir);
    expect(version.body).not.toContain(tmpdir());

    const forwarded = await app.inject({ method: 'GET', url: `/v1/groups/${GROUP}/recommendations?userId=u1`, headers: { 'x-api-key': ROOT } });
    expect(forwarded.statusCode).toBe(502);
    expect(forwarded.json().code).toBe('FORWARD_FAILED');
    expect(forwarded.body).not.toContain('127.0.0.1:1');

    const log = lines.map((l) => JSON.stringify(l)).join('\n');
    expect(log).toContain('10.9.8.7:9092');
    expect(log).toContain(dir);
    expect(log).toContain('http://127.0.0.1:1');
  });
});

describe('request and connection timeouts (api.requestTimeoutMs, api.connectionTimeoutMs, api.keepAliveTimeoutMs)', () => {
  it('sets them on the server', async () => {
    const app = await build({ STREAMREC_API_REQUEST_TIMEOUT_MS: '7000', STREAMREC_API_CONNECTION_TIMEOUT_MS: '9000', STREAMREC_API_KEEP_ALIVE_TIMEOUT_MS: '4000' });
    expect(app.server.requestTimeout).toBe(7000);
    expect(app.server.timeout).toBe(9000);
    expect(app.server.keepAliveTimeout).toBe(4000);
    expect(app.server.headersTimeout).toBeLessThanOrEqual(7000);
  });

  /** Opens a socket, writes `head`, then drips one byte every 100 ms; resolves when the server closes it. */
  function drip(port: number, head: string, maxMs: number): Promise<{ closedAfterMs: number; response: string }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      let response = '';
      const socket: Socket = connect(port, '127.0.0.1', () => socket.write(head));
      const timer = setInterval(() => {
        if (performance.now() - t0 > maxMs) {
          clearInterval(timer);
          socket.destroy();
          reject(new Error(`the server kept a dripping connection open for ${maxMs} ms`));
        } else if (!socket.destroyed && socket.writable) socket.write(' ');
      }, 100);
      socket.on('data', (d: Buffer) => (response += d.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ closedAfterMs: performance.now() - t0, response });
      });
    });
  }

  it('closes a connection that drips its request body, with or without a key, within api.requestTimeoutMs', async () => {
    const app = await build({ STREAMREC_API_REQUEST_TIMEOUT_MS: '1500', STREAMREC_API_CONNECTION_TIMEOUT_MS: '60000' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const head = (key: string | undefined) =>
      `POST /v1/groups/${GROUP}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n${key ? `x-api-key: ${key}\r\n` : ''}\r\n{`;
    // A dripping client would otherwise hold the connection for as long as it likes (here 30 s).
    const [anonymous, keyed, headers] = await Promise.all([
      drip(port, head(undefined), 30_000),
      drip(port, head(ROOT), 30_000),
      drip(port, `POST /v1/groups/${GROUP}/events HTTP/1.1\r\nHost: x\r\nX-Slow: `, 30_000), // headers never finished
    ]);
    for (const r of [anonymous, keyed, headers]) expect(r.closedAfterMs).toBeLessThan(1500 + 1000 + 3000);
    expect(keyed.response).toMatch(/^HTTP\/1\.1 408/);
    expect(headers.response).toMatch(/^HTTP\/1\.1 408/);
    // The documented error shape, not fastify's {error, message, statusCode}.
    expect(headers.response).toContain('"code":"REQUEST_TIMEOUT"');
  });

  it('closes a silent connection after api.connectionTimeoutMs', async () => {
    const app = await build({ STREAMREC_API_REQUEST_TIMEOUT_MS: '60000', STREAMREC_API_CONNECTION_TIMEOUT_MS: '800' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const closedAfterMs = await new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const socket = connect(port, '127.0.0.1');
      const guard = setTimeout(() => {
        socket.destroy();
        reject(new Error('a silent connection stayed open for 20 s'));
      }, 20_000);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(guard);
        resolve(performance.now() - t0);
      });
    });
    expect(closedAfterMs).toBeGreaterThanOrEqual(700);
    expect(closedAfterMs).toBeLessThan(800 + 4000);
  });
});

describe("errors node's HTTP parser raises, before fastify routes the request", () => {
  /** Writes raw bytes to the server and resolves with everything it answers until it closes. */
  function raw(port: number, request: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let response = '';
      const socket: Socket = connect(port, '127.0.0.1', () => socket.write(request));
      socket.on('data', (d: Buffer) => (response += d.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(response));
      setTimeout(() => reject(new Error(`no close; got ${response}`)), 10_000).unref();
    });
  }
  const bodyOf = (response: string) => JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;

  it('answers a long query string with 431 HEADERS_TOO_LARGE, bad HTTP with 400 REQUEST_MALFORMED, both in the documented shape', async () => {
    const app = await build({});
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (app.server.address() as { port: number }).port;
      const long = await raw(port, `GET /v1/groups/${GROUP}/recommendations?userId=${'u'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nx-api-key: ${ROOT}\r\n\r\n`);
      expect(long).toMatch(/^HTTP\/1\.1 431 /);
      expect(long).toMatch(/content-type: application\/json/i);
      expect(bodyOf(long)).toEqual({ code: 'HEADERS_TOO_LARGE', message: expect.stringMatching(/16 KiB/), retriable: false });
      const garbage = await raw(port, 'NOT HTTP AT ALL\r\n\r\n');
      expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
      expect(bodyOf(garbage)).toEqual({ code: 'REQUEST_MALFORMED', message: expect.any(String), retriable: false });
      // fastify's own shape never reaches a client.
      expect(long + garbage).not.toMatch(/statusCode|"error"/);
    } finally {
      await app.close();
    }
  });

  it('answers a bad percent-encoding in the path with 400 REQUEST_MALFORMED', async () => {
    const app = await build({});
    const res = await app.inject({ method: 'GET', url: `/v1/groups/${GROUP}/filters/%E0%A4%A`, headers: { 'x-api-key': ROOT } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'REQUEST_MALFORMED', message: expect.any(String), retriable: false });
    await app.close();
  });
});
