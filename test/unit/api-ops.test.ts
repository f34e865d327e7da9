/**
 * The operations endpoints (src/api/ops.ts) through app.inject: the OpenAPI document, Swagger UI and
 * Prometheus metrics, with the same in-memory doubles at the Kafka boundary as api-ingest.test.ts
 * and a fake metrics source whose values the test changes between scrapes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, type ApiDeps, type GroupDirectory, type RecordSink } from '../../src/api/app.js';
import type { MetricsSource } from '../../src/api/ops.js';
import { loadConfig } from '../../src/config/index.js';
import { createCodecs } from '../../src/serde/avro.js';

const config = loadConfig({ env: { STREAMREC_API_AUTH: 'off' } });
const codecs = createCodecs(config);
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const GROUP = 'shop';

const sink: RecordSink = { send: async () => {} };
const groups: GroupDirectory = { has: async (g) => g === GROUP };

/** A metrics source the test mutates between scrapes. */
function fakeSource() {
  const state = {
    applied: 1234,
    deadLetters: 3,
    partitions: [
      { partition: 0, lag: 0 as number | null, restore: { records: 0, ms: 12 } as { records: number; ms: number } | null },
      { partition: 1, lag: 42 as number | null, restore: { records: 15000, ms: 900 } as { records: number; ms: number } | null },
      { partition: 2, lag: null as number | null, restore: null as { records: number; ms: number } | null },
    ] as { partition: number; lag: number | null; restore?: { records: number; ms: number } | null }[],
    standbys: [
      { partition: 3, lag: 1 as number | null },
      { partition: 4, lag: null as number | null },
    ],
    versions: { fetched: 2, fetchFailures: 1 },
    serving: { version: 'v1', recipe: 'hrnn' } as { version: string; recipe: string } | undefined,
    publisher: { published: 10, throttled: 2, skipped: 1, failed: 0 },
  };
  const source: MetricsSource = {
    processor: () => ({ applied: state.applied, deadLetters: state.deadLetters, partitions: state.partitions, standbys: state.standbys }),
    versions: () => state.versions,
    serving: () => state.serving,
    publisher: () => state.publisher,
    retrainer: () => ({ trainings: 4, failures: 1 }),
  };
  return { state, source };
}

const build = (extra: Partial<ApiDeps> = {}): Promise<FastifyInstance> =>
  buildApp({ config, codecs, sink, groups, status: () => ({ state: 'running', ready: true }), now: () => NOW, logger: false, ...extra });

const goodEvents = { userId: 'u1', eventList: [{ eventType: 'click', itemId: 'i1', sentAt: NOW - 1000 }] };

async function scrape(app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.body;
}

/** The value of one sample line (`name{labels} value`), or undefined without one. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  components: { securitySchemes: Record<string, unknown> };
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, { security?: unknown[]; parameters?: { in: string; name: string }[]; requestBody?: { content: Record<string, { schema: Record<string, unknown> }> }; responses: Record<string, unknown> }>>;
}

describe('OpenAPI document and Swagger UI', () => {
  let app: FastifyInstance;
  let doc: OpenApiDoc;
  beforeAll(async () => {
    app = await build();
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    doc = res.json<OpenApiDoc>();
  });
  afterAll(() => app.close());

  it('is OpenAPI 3 with the package version and every API route', () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info).toMatchObject({ title: 'streamrec', version: '0.1.0' });
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/health',
        '/ready',
        '/metrics',
        '/openapi.json',
        '/v1/groups/{group}/events',
        '/v1/groups/{group}/items',
        '/v1/groups/{group}/users',
      ]),
    );
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/docs')), 'the UI routes are hidden').toEqual([]);
    expect(Object.keys(doc.paths['/health']!)).toEqual(['get']);
  });

  it('carries the TypeBox schemas: path params, request body, responses', () => {
    const op = doc.paths['/v1/groups/{group}/events']!.post!;
    expect(op.parameters).toEqual([expect.objectContaining({ in: 'path', name: 'group', required: true })]);
    const body = op.requestBody!.content['application/json']!.schema;
    expect(body).toMatchObject({ type: 'object', required: ['userId', 'eventList'], additionalProperties: false });
    const event = (body.properties as Record<string, { items: { properties: Record<string, Record<string, unknown>> } }>).eventList!.items;
    expect(event.properties.sentAt).toMatchObject({ anyOf: [{ type: 'number' }, { type: 'string' }] });
    // Type.Record is patternProperties in JSON Schema; OpenAPI 3.0 has additionalProperties instead, here
    // with what the server takes (an event's properties become CONTEXT, a map of strings).
    expect(event.properties.properties!.anyOf).toEqual([{ type: 'object', additionalProperties: { type: 'string' } }, { type: 'string' }]);
    expect(JSON.stringify(doc)).not.toContain('patternProperties');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['202', '4XX', '5XX']));
    // Type.Literal's const (not in OpenAPI 3.0) as an enum.
    const health = doc.paths['/health']!.get!.responses['200'] as { content: Record<string, { schema: { properties: Record<string, unknown> } }> };
    expect(health.content['application/json']!.schema.properties.status).toMatchObject({ enum: ['ok'] });
  });

  it('declares the x-api-key scheme globally; health, readiness, metrics and the document are public', () => {
    expect(doc.components.securitySchemes).toEqual({ apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' } });
    expect(doc.security).toEqual([{ apiKey: [] }]);
    for (const path of ['/health', '/ready', '/metrics', '/openapi.json']) expect(doc.paths[path]!.get!.security, path).toEqual([]);
    expect(doc.paths['/v1/groups/{group}/events']!.post!.security).toBeUndefined();
    expect(doc.paths['/v1/groups/{group}/users']!.post!.security).toBeUndefined();
  });

  it('serves Swagger UI at /docs', async () => {
    let res = await app.inject({ method: 'GET', url: '/docs' });
    if (res.statusCode >= 300 && res.statusCode < 400) res = await app.inject({ method: 'GET', url: new URL(String(res.headers.location), 'http://x/docs').pathname });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toMatch(/swagger-ui/i);
    const json = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(json.json<OpenApiDoc>().paths).toEqual(doc.paths);
  });
});

describe('with API keys required', () => {
  it('answers the public routes without a key, as the document says', async () => {
    const keyed = await build({ config: loadConfig({ env: { STREAMREC_API_AUTH: 'keys', STREAMREC_API_ROOT_KEY: 'root-key-for-the-test-0123456789' } }) });
    try {
      for (const url of ['/health', '/ready', '/metrics', '/openapi.json', '/docs/json']) expect((await keyed.inject({ method: 'GET', url })).statusCode, url).toBe(200);
      expect((await keyed.inject({ method: 'GET', url: '/docs' })).statusCode).toBeLessThan(400);
      expect((await keyed.inject({ method: 'POST', url: `/v1/groups/${GROUP}/events`, payload: goodEvents })).statusCode).toBe(401);
    } finally {
      await keyed.close();
    }
  });
});

describe('GET /metrics', () => {
  const a = fakeSource();
  let app: FastifyInstance;
  let other: FastifyInstance;
  beforeAll(async () => {
    app = await build({ metrics: a.source });
    other = await build(); // a second app in the same process: its own registry
  });
  afterAll(async () => {
    await app.close();
    await other.close();
  });

  it('times requests by route pattern, method and status code', async () => {
    for (let i = 0; i < 3; i++) expect((await app.inject({ method: 'POST', url: `/v1/groups/${GROUP}/events`, payload: goodEvents })).statusCode).toBe(202);
    expect((await app.inject({ method: 'POST', url: '/v1/groups/nope/events', payload: goodEvents })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/no/such/route/u-123' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/docs' })).statusCode).toBeLessThan(400);
    const text = await scrape(app);
    expect(text).toContain('# TYPE streamrec_http_request_duration_seconds histogram');
    const h = 'streamrec_http_request_duration_seconds';
    expect(sample(text, `${h}_count{method="POST",route="/v1/groups/:group/events",status_code="202"}`)).toBe(3);
    expect(sample(text, `${h}_count{method="POST",route="/v1/groups/:group/events",status_code="404"}`)).toBe(1);
    expect(sample(text, `${h}_count{method="GET",route="unmatched",status_code="404"}`)).toBe(1);
    expect(sample(text, `${h}_count{method="GET",route="/health",status_code="200"}`)).toBe(1);
    expect(text).toMatch(/streamrec_http_request_duration_seconds_count\{method="GET",route="\/docs\/?",status_code="\d+"\} 1/);
    expect(text).toContain(`${h}_bucket{le="0.0005",method="POST",route="/v1/groups/:group/events",status_code="202"}`);
    expect(text, 'never the raw URL').not.toMatch(/route="\/v1\/groups\/(shop|nope)|u-123/);
    // The previous scrape is in the histogram too.
    expect(sample(await scrape(app), `${h}_count{method="GET",route="/metrics",status_code="200"}`)).toBe(1);
  });

  it('reads the source at scrape time: processor totals, lag by partition, publisher, retrainer', async () => {
    let text = await scrape(app);
    expect(text).toContain('# TYPE streamrec_events_applied_total counter');
    expect(sample(text, 'streamrec_events_applied_total')).toBe(1234);
    expect(sample(text, 'streamrec_dead_letters_total')).toBe(3);
    expect(sample(text, 'streamrec_consumer_lag{partition="0"}')).toBe(0);
    expect(sample(text, 'streamrec_consumer_lag{partition="1"}')).toBe(42);
    expect(text, 'an unknown lag is left out').not.toContain('streamrec_consumer_lag{partition="2"}');
    expect(sample(text, 'streamrec_recommendations_published_total')).toBe(10);
    expect(sample(text, 'streamrec_recommendations_throttled_total')).toBe(2);
    expect(sample(text, 'streamrec_recommendations_skipped_total')).toBe(1);
    expect(sample(text, 'streamrec_recommendations_failed_total')).toBe(0);
    expect(sample(text, 'streamrec_trainings_total')).toBe(4);
    expect(sample(text, 'streamrec_training_failures_total')).toBe(1);

    expect(sample(text, 'streamrec_standby_lag{partition="3"}')).toBe(1);
    expect(text, 'an unknown standby lag is left out').not.toContain('streamrec_standby_lag{partition="4"}');
    expect(sample(text, 'streamrec_restore_records{partition="0"}')).toBe(0);
    expect(sample(text, 'streamrec_restore_records{partition="1"}')).toBe(15000);
    expect(text, 'a partition still opening has no restore figure').not.toContain('streamrec_restore_records{partition="2"}');
    expect(sample(text, 'streamrec_model_fetches_total')).toBe(2);
    expect(sample(text, 'streamrec_model_fetch_failures_total')).toBe(1);

    a.state.applied = 2000;
    a.state.partitions = [{ partition: 1, lag: 7 }];
    a.state.standbys = [{ partition: 0, lag: 0 }];
    a.state.versions = { fetched: 3, fetchFailures: 1 };
    text = await scrape(app);
    expect(sample(text, 'streamrec_events_applied_total')).toBe(2000);
    expect(sample(text, 'streamrec_consumer_lag{partition="1"}')).toBe(7);
    expect(text, 'a revoked partition disappears').not.toContain('streamrec_consumer_lag{partition="0"}');
    expect(sample(text, 'streamrec_standby_lag{partition="0"}')).toBe(0);
    expect(text, 'a standby that moved disappears').not.toContain('streamrec_standby_lag{partition="3"}');
    expect(text, 'a partition opened without a restore figure has none').not.toContain('streamrec_restore_records{');
    expect(sample(text, 'streamrec_model_fetches_total')).toBe(3);
  });

  it('shows the served version as an info metric that follows a version switch', async () => {
    a.state.serving = { version: 'v1', recipe: 'hrnn' };
    expect(await scrape(app)).toContain('streamrec_serving_model_info{version="v1",recipe="hrnn"} 1');
    a.state.serving = { version: 'v2', recipe: 'hrnn' };
    let text = await scrape(app);
    expect(text).toContain('streamrec_serving_model_info{version="v2",recipe="hrnn"} 1');
    expect(text).not.toContain('version="v1"');
    a.state.serving = undefined;
    text = await scrape(app);
    expect(text).not.toMatch(/^streamrec_serving_model_info\{/m);
  });

  it('includes the default process metrics', async () => {
    const text = await scrape(app);
    expect(text).toMatch(/^streamrec_process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^streamrec_nodejs_eventloop_lag_seconds /m);
  });

  it('a scrape survives a throwing source', async () => {
    const broken = await build({ metrics: { processor: () => { throw new Error('boom'); }, serving: () => { throw new Error('boom'); } } });
    try {
      const text = await scrape(broken);
      expect(sample(text, 'streamrec_events_applied_total')).toBe(0);
      expect(text).not.toMatch(/^streamrec_serving_model_info\{/m);
    } finally {
      await broken.close();
    }
  });

  it('gives each app its own registry', async () => {
    await other.inject({ method: 'GET', url: '/health' });
    await other.inject({ method: 'GET', url: '/health' });
    const mine = await scrape(app);
    const theirs = await scrape(other);
    const health = 'streamrec_http_request_duration_seconds_count{method="GET",route="/health",status_code="200"}';
    expect(sample(mine, health)).toBe(1);
    expect(sample(theirs, health)).toBe(2);
    expect(theirs, 'no source, no source metrics').not.toContain('streamrec_events_applied_total');
    expect(theirs).toMatch(/^streamrec_process_cpu_user_seconds_total \d/m);
  });
});
