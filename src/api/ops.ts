/**
 * Operations endpoints of the HTTP API: the OpenAPI document (GET /openapi.json), Swagger UI (/docs)
 * and Prometheus metrics (GET /metrics). Each app owns its metrics registry, never prom-client's
 * global one, so that several apps (tests, or an API beside another server) can live in one process.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { packagePath } from '../util/paths.js';
import { Type } from '@sinclair/typebox';
import { DOC, ErrorBody, JSON_PARAM } from './schemas.js';
import type { OnlineMetricRow } from '../stream/online-metrics.js';

/** The document's tags, one per resource (as Personalize's API reference groups its operations), in this order. */
const TAGS: [string, string][] = [
  ['events', 'PutEvents: interactions into <group>.interactions'],
  ['items', 'PutItems: item metadata into <group>.items'],
  ['users', 'PutUsers: user metadata into <group>.users'],
  ['recommendations', 'GetRecommendations'],
  ['ranking', 'GetPersonalizedRanking'],
  ['related items', 'Items related to an item'],
  ['popular', 'Popular and trending items'],
  ['filters', 'Filters (Personalize filter expressions)'],
  ['solutions', 'Solutions: a recipe and its parameters'],
  ['versions', 'Solution versions: trained models with their metrics'],
  ['deployments', 'The campaign: which version serves'],
  ['api keys', 'API keys of a dataset group'],
  ['groups', 'Dataset groups'],
  ['metrics', 'Online metrics per served version: attribution of events to the answers they cite'],
  ['deletion', "Deleting users everywhere (Personalize's data deletion jobs)"],
  ['inspection', "What a group holds now: a user's stored events, the latest dead letters, the instances and their partitions"],
  ['operations', 'Liveness, readiness, metrics, this document'],
];

/** A route's tag from its path. */
export function tagOf(url: string): string {
  const m = /^\/v1\/groups(?:\/:group(?:\/([a-z-]+)(?:\/:[a-z]+\/(versions))?)?)?/.exec(url);
  if (!m) return 'operations';
  const resource = m[2] ?? m[1];
  if (resource === undefined) return 'groups';
  const tag = { events: 'events', items: 'items', users: 'users', recommendations: 'recommendations', 'personalized-ranking': 'ranking', 'related-items': 'related items', popular: 'popular', filters: 'filters', solutions: 'solutions', versions: 'versions', deployments: 'deployments', 'api-keys': 'api keys' }[resource];
  return tag ?? 'groups';
}

/**
 * The document as served: each schema's DOC annotation (what the server checks after validation)
 * replaces the schema, and a query parameter marked JSON_PARAM is described as what it holds, a
 * JSON object of strings (`content: application/json`).
 */
function documentView(doc: Record<string, unknown>): Record<string, unknown> {
  const swap = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(swap);
    if (node === null || typeof node !== 'object') return node;
    const o = node as Record<string, unknown>;
    if (o[DOC] !== undefined) {
      const { [DOC]: documented, ...rest } = o;
      return swap({ ...rest, ...(documented as object) });
    }
    if (o.in === 'query' && (o.schema as Record<string, unknown> | undefined)?.[JSON_PARAM] === true) {
      const { schema, ...param } = o;
      const { description } = schema as { description?: string };
      return {
        ...param,
        ...(description !== undefined && param.description === undefined ? { description } : {}),
        content: { 'application/json': { schema: { type: 'object', additionalProperties: { type: 'string', maxLength: 1000 } } } },
      };
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, swap(v)]));
  };
  return swap(doc) as Record<string, unknown>;
}

/**
 * Whether a route is answered without an API key: the auth hook (auth.ts) checks only routes that
 * declare a `config.scope`, so those without one (health, readiness, metrics, this document, /docs)
 * are documented with `security: []`; the named ones always are.
 */
const PUBLIC_ROUTES = new Set(['/health', '/ready', '/metrics', '/openapi.json']);
const isPublic = (url: string, config: unknown): boolean =>
  PUBLIC_ROUTES.has(url) || url === '/docs' || url.startsWith('/docs/') || (config as { scope?: unknown } | undefined)?.scope === undefined;

const packageVersion = (): string => (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;

/**
 * Registers @fastify/swagger (OpenAPI 3.0; info title "streamrec", version from package.json) and
 * @fastify/swagger-ui at /docs, and GET /openapi.json returning app.swagger(). Must be awaited BEFORE
 * any route is added so every route appears in the document (swagger collects routes in onRoute).
 *
 * The route schemas are TypeBox, i.e. plain JSON Schema; @fastify/swagger converts what OpenAPI 3.0
 * lacks itself (Type.Literal's `const` -> `enum`, Type.Record's `patternProperties` ->
 * `additionalProperties`, '4xx' -> '4XX'); `transform` only marks the public routes `security: []`.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'streamrec',
        version: packageVersion(),
        description: 'Self-hosted streaming recommendations: Personalize-style PutEvents / PutItems / PutUsers and GetRecommendations.',
      },
      components: { securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' } } },
      security: [{ apiKey: [] }],
      tags: TAGS.map(([name, description]) => ({ name, description })),
    },
    transform: ({ schema, url, route }) => {
      // Copy: route.schema is the object fastify validates with.
      const s: Record<string, unknown> = { ...(schema ?? {}) };
      if (isPublic(url, route.config)) s.security = [];
      s.tags ??= [tagOf(url)];
      // Every answer of every route can be an error of the documented shape (errors.ts, app.ts clientError).
      const response = { ...((s.response as Record<string, unknown> | undefined) ?? {}) };
      if (Object.keys(response).length > 0 || !url.startsWith('/docs')) {
        response['4xx'] ??= ErrorBody;
        response['5xx'] ??= ErrorBody;
        s.response = response;
      }
      return { schema: s, url };
    },
    transformObject: (documentObject) => documentView((documentObject as { openapiObject: Record<string, unknown> }).openapiObject),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { summary: 'This OpenAPI document', tags: ['operations'], response: { 200: Type.Unknown({ description: 'The OpenAPI 3 document (JSON)' }) } } }, async () => app.swagger());
}

/** Where the scrape-time values come from (the running service's components); each is optional. */
export interface MetricsSource {
  /**
   * Liveness: GET /health (app.ts) answers 503 `{status: "failed", state, reasons}` while `healthy`
   * is false (a component failed for good and is not retried), and `streamrec_healthy` is 0.
   */
  health?: () => { healthy: boolean; state: string; reasons: string[] };
  processor?: () => {
    applied: number;
    deadLetters: number;
    partitions: { partition: number; lag: number | null; restore?: { records: number; ms: number } | null }[];
    standbys?: { partition: number; lag: number | null }[];
  };
  /** Model versions fetched from `<group>.models` by this instance, and fetches that failed. */
  versions?: () => { fetched: number; fetchFailures: number };
  serving?: () => { version: string; recipe: string } | undefined;
  publisher?: () => { published: number; throttled: number; skipped: number; failed: number };
  retrainer?: () => { trainings: number; failures: number } | undefined;
  /** Online metrics of this instance's partitions (src/stream/attribution.ts): rows by version, arm and event type; version null: unattributed. */
  online?: () => Promise<readonly OnlineMetricRow[]>;
}

/** Latency buckets (seconds) for an API whose requests mostly take well under 10 ms. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * GET /metrics (Prometheus text format) from a prom-client Registry owned by this app. Its
 * onResponse hook times every route (fastify attaches hooks to routes at ready, so those added
 * before this call count too), the not-found handler (route "unmatched") and /metrics itself.
 */
export function registerMetrics(app: FastifyInstance, source: MetricsSource): void {
  const register = new Registry();
  const registers = [register];
  const p = 'streamrec_';
  // Default process metrics (CPU, memory, event loop lag, GC, handles): one set per registry; prom-client
  // creates new metric objects for each call, so several registries in one process work.
  collectDefaultMetrics({ register, prefix: p });

  /** A source callback that throws must not fail the scrape: log it, and leave its metrics out or unchanged. */
  const read = <T>(what: string, f: (() => T) | undefined): T | undefined => {
    if (!f) return undefined;
    try {
      return f();
    } catch (err) {
      app.log.warn({ err }, `metrics: reading the ${what} failed`);
      return undefined;
    }
  };

  const health = source.health;
  if (health) {
    new Gauge({
      name: `${p}healthy`,
      help: 'Whether the service is healthy (1), or a component failed for good (0: GET /health answers 503 with the reasons).',
      registers,
      collect() {
        const h = read('health', health);
        this.reset();
        if (h) this.set(h.healthy ? 1 : 0);
      },
    });
  }

  const duration = new Histogram({
    name: `${p}http_request_duration_seconds`,
    help: 'HTTP request duration (from the request received to the response sent), by route pattern.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the URL (ids in URLs would make the label unbounded).
    const route = request.routeOptions.url ?? 'unmatched';
    duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  /**
   * A counter whose total is owned by another component and read at scrape time. A Counter with
   * collect() (reset + inc to the current total) rather than a Gauge, so Prometheus sees TYPE counter
   * and rate()/increase() treat a restart's drop to 0 as a counter reset. With no value (the source
   * returned undefined or threw) the last one stays.
   */
  const totalOf = (name: string, help: string, value: () => number | undefined): void => {
    new Counter({
      name: `${p}${name}`,
      help,
      registers,
      collect() {
        const v = value();
        if (v === undefined || !Number.isFinite(v) || v < 0) return;
        this.reset();
        this.inc(v);
      },
    });
  };

  // Each collect() reads its source itself: the callbacks are cheap, and nothing depends on the order
  // or the set of metrics a scrape asks for.
  const processor = source.processor;
  if (processor) {
    type Status = NonNullable<ReturnType<typeof processor>>;
    /**
     * A gauge by partition from the processor's status, read at scrape time: partitions absent from
     * the status (revoked, moved) disappear; a partition without a value (unknown) is left out, never 0.
     */
    const byPartition = (name: string, help: string, values: (s: Status) => { partition: number; value: number | null | undefined }[]): void => {
      new Gauge({
        name: `${p}${name}`,
        help,
        labelNames: ['partition'] as const,
        registers,
        collect() {
          const status = read('processor status', processor);
          if (!status) return;
          this.reset();
          for (const { partition, value } of values(status)) if (value !== null && value !== undefined) this.set({ partition: String(partition) }, value);
        },
      });
    };
    totalOf('events_applied_total', 'Interaction events applied to the state by the stream processor.', () => read('processor status', processor)?.applied);
    totalOf('dead_letters_total', 'Records the stream processor sent to the dead-letter topic.', () => read('processor status', processor)?.deadLetters);
    byPartition(
      'consumer_lag',
      "Records behind the broker's high watermark (read every processor.lagRefreshMs), by assigned partition of the interactions topic; a partition whose lag is unknown (the broker does not answer) is left out, never 0.",
      (s) => s.partitions.map((x) => ({ partition: x.partition, value: x.lag })),
    );
    byPartition(
      'standby_lag',
      "Changelog records a standby replica's store is behind (the changelog's high watermark minus the store's checkpoint; a caught-up standby may show 1, the commit marker), by partition; unknown lags are left out.",
      (s) => (s.standbys ?? []).map((x) => ({ partition: x.partition, value: x.lag })),
    );
    byPartition(
      'restore_records',
      "State records replayed from the changelog when this instance last opened the partition (0 or a short tail from a warm standby store; the partition's whole state from none), by owned partition.",
      (s) => s.partitions.map((x) => ({ partition: x.partition, value: x.restore?.records })),
    );
  }

  const versions = source.versions;
  if (versions) {
    totalOf('model_fetches_total', 'Model versions fetched from <group>.models and verified by this instance.', () => read('versions status', versions)?.fetched);
    totalOf('model_fetch_failures_total', 'Model version fetches refused (a missing or corrupted chunk, a wrong manifest, the records gone): the previous version kept serving.', () => read('versions status', versions)?.fetchFailures);
  }

  const serving = source.serving;
  if (serving) {
    new Gauge({
      name: `${p}serving_model_info`,
      help: 'The served model version and its recipe (value 1; absent while no version is served).',
      labelNames: ['version', 'recipe'] as const,
      registers,
      collect() {
        const info = read('served model', serving);
        this.reset(); // a replaced version disappears
        if (info) this.set({ version: info.version, recipe: info.recipe }, 1);
      },
    });
  }

  const publisher = source.publisher;
  if (publisher) {
    const counts = () => read('publisher counts', publisher);
    totalOf('recommendations_published_total', 'Recommendation updates published to the output topic.', () => counts()?.published);
    totalOf('recommendations_throttled_total', 'Recommendation updates not published because the user was published too recently.', () => counts()?.throttled);
    totalOf('recommendations_skipped_total', 'Recommendation updates skipped (unchanged, or no model version).', () => counts()?.skipped);
    totalOf('recommendations_failed_total', 'Recommendation updates that failed to compute or publish.', () => counts()?.failed);
  }

  const retrainer = source.retrainer;
  if (retrainer) {
    totalOf('trainings_total', 'Model versions trained by the retrainer.', () => read('retrainer counts', retrainer)?.trainings);
    totalOf('training_failures_total', 'Retrainings that failed.', () => read('retrainer counts', retrainer)?.failures);
  }

  const online = source.online;
  if (online) {
    /**
     * Attribution counters of this instance's partitions, read once per scrape (shared by the
     * counters below); a partition that moves takes its counts to its new owner's series.
     */
    let scrape: { at: number; rows: Promise<readonly OnlineMetricRow[] | undefined> } | undefined;
    const rows = () => {
      if (!scrape || performance.now() - scrape.at > 1000) {
        scrape = {
          at: performance.now(),
          rows: online().catch((err: unknown) => {
            app.log.warn({ err }, 'metrics: reading the online metrics failed');
            return undefined;
          }),
        };
      }
      return scrape.rows;
    };
    const attributed = (name: string, help: string, value: (r: OnlineMetricRow) => number, which: 'attributed' | 'unattributed' = 'attributed'): void => {
      new Counter({
        name: `${p}${name}`,
        help,
        labelNames: which === 'attributed' ? (['version', 'arm', 'event_type'] as const) : (['event_type'] as const),
        registers,
        async collect() {
          const all = await rows();
          if (!all) return;
          this.reset();
          for (const r of all) {
            if ((r.version === null) !== (which === 'unattributed')) continue;
            const labels = r.version === null ? { event_type: r.eventType } : { version: r.version, arm: String(r.arm), event_type: r.eventType };
            this.inc(labels, value(r));
          }
        },
      });
    };
    attributed('attributed_events_total', 'Events citing a recommendationId of a model version, by version, arm and event type (this instance\'s partitions).', (r) => r.events);
    attributed('attributed_impression_events_total', 'Of those, events that carried a non-empty impression list.', (r) => r.impressionEvents);
    attributed('attributed_impressed_items_total', 'Items in those impression lists.', (r) => r.impressedItems);
    attributed('attributed_value_total', 'EVENT_VALUE summed over those events (revenue).', (r) => r.valueSum);
    attributed('unattributed_events_total', 'Events citing no recommendationId of a model version, by event type (this instance\'s partitions).', (r) => r.events, 'unattributed');
  }

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        tags: ['operations'],
        response: { 200: { description: 'Prometheus text exposition format', content: { [register.contentType]: { schema: { type: 'string' } } } }, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    async (_request, reply) => reply.header('content-type', register.contentType).send(await register.metrics()),
  );
}
