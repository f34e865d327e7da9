/**
 * The HTTP API (fastify), built here and started by the caller (`app.listen`): Personalize-style
 * PutEvents / PutItems / PutUsers into the group's Kafka topics (here), the query routes
 * (query-routes.ts), the resources (resource-routes.ts), API keys and scopes (auth.ts), rate
 * limits, OpenAPI and metrics (ops.ts), liveness and readiness.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Duplex } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import { AppError } from '../errors/index.js';
import { topicName, validateGroupName, type TopicName } from '../kafka/topics.js';
import type { EventChecks, Prepared } from './convert.js';
import { prepareEvents, prepareItems, prepareUsers } from './convert.js';
import { errorBody, errorHandler, recordsInvalid, toAppError } from './errors.js';
import { boundedSink } from './kafka.js';
import { registerMetrics, registerOpenApi } from './ops.js';
import rateLimit from '@fastify/rate-limit';
import { fastifySSE } from '@fastify/sse';
import { registerLiveRoutes } from './live-routes.js';
import { registerInspectRoutes, registerItemRoute } from './inspect-routes.js';
import { registerOnlineMetricsRoute } from './online-routes.js';
import { registerAuth } from './auth.js';
import { registerQueryRoutes } from './query-routes.js';
import { registerPersonalizeCompat } from './personalize-compat.js';
import { registerResourceRoutes } from './resource-routes.js';
import { registerDeletionRoutes } from './deletion-routes.js';
import { registerSplitRoutes } from './split-routes.js';
import { registerUiRoutes } from './ui-routes.js';
import { DOC, ErrorBody, GroupParams, Health, JSON_PARAM, PutEventsBody, PutItemsBody, PutUsersBody, Readiness, Unhealthy, ingestResponses } from './schemas.js';
import type { ApiDeps, GroupServices, ServiceStatus } from './types.js';

export type { ApiDeps, GroupAdmin, GroupDirectory, GroupServices, RecordSink, ServedGroups, ServiceStatus, SinkMessage } from './types.js';
export { boundedSink, kafkaSink, topicGroupDirectory } from './kafka.js';

export async function buildApp(deps: ApiDeps): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now;
  const bodyLimit = deps.config.api.bodyLimitBytes;
  const { requestTimeoutMs, connectionTimeoutMs, keepAliveTimeoutMs } = deps.config.api;
  const base = Fastify({
    logger: deps.logger ?? { level: 'info' },
    bodyLimit,
    // A client dripping its request (or not sending it) is answered 408 and cut off: the whole request
    // within requestTimeout (node checks every connectionsCheckingInterval), no silence longer than
    // connectionTimeout, idle keep-alive connections closed after keepAliveTimeout.
    requestTimeout: requestTimeoutMs,
    connectionTimeout: connectionTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    http: {
      headersTimeout: Math.min(requestTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(requestTimeoutMs / 4))),
    },
    // Validate strictly: no type coercion ("5" is not a number), undeclared fields refused rather than dropped.
    // (The query string's integers are numbers before validation: coerceQueryIntegers below.) The
    // keywords are the OpenAPI document's annotations (schemas.ts DOC, JSON_PARAM), not checks.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, keywords: [DOC, JSON_PARAM] } },
    return503OnClosing: true,
    // Path segments up to 1,000 characters reach the route (ids: at most 256, checked by the schemas: 400).
    routerOptions: { maxParamLength: 1000 },
    // Node's HTTP parser refused the request (headers over 16 KiB: a long query string; not HTTP; too slow): the documented error body.
    clientErrorHandler: clientError,
    // A URL that is not valid (bad percent-encoding), a path segment over maxParamLength: 400 with the documented body.
    frameworkErrors: (err, request, reply) => {
      const e = toAppError(err, bodyLimit);
      const app =
        (err as { code?: string }).code === 'FST_ERR_MAX_PARAM_LENGTH' ? new AppError('REQUEST_INVALID', 'a path segment is longer than 1000 characters (ids: at most 256)', { field: 'path' }) : e;
      request.log.info({ code: app.code }, app.message);
      void (reply as FastifyReply).code(app.status).send(errorBody(app));
    },
  });
  // Every route's path pattern and methods, for 405 METHOD_NOT_ALLOWED with allow (not 404) below.
  const routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  base.addHook('onRoute', (route) => {
    let r = routes.get(route.url);
    if (!r) routes.set(route.url, (r = { pattern: routePattern(route.url), methods: new Set() }));
    for (const m of [route.method].flat()) r.methods.add(m.toUpperCase());
  });
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  await registerOpenApi(base);

  const handleError = errorHandler(bodyLimit);
  // An error before the not-found handler ran (QUERY without a content type, a body of an unknown route that
  // cannot be parsed) is answered as that handler would: the path or the method does not exist.
  app.setErrorHandler((err, request, reply) => (request.is404 ? notFound(request, reply) : handleError(err, request, reply)));
  // numResults is an integer from 1 to 500 in the document and in the schemas: a query string's digits are that number.
  base.addHook('preValidation', async (request) => coerceQueryIntegers(request.query));
  // JSON only: a text/plain body is 415 UNSUPPORTED_MEDIA_TYPE, not a string that fails validation.
  base.removeContentTypeParser('text/plain');

  const served = deps.served;
  const auth = deps.auth ?? { mode: deps.config.api.auth, rootKey: deps.config.api.rootKey };
  const perMinute = deps.config.api.rateLimitPerMinute;
  // Registered always (its per-route hooks only when perMinute > 0) for the refused-requests limiter below.
  await base.register(rateLimit, {
    global: perMinute > 0,
    max: perMinute,
    timeWindow: 60_000,
    // Per API key (the authenticated principal: the key itself is never kept), else per client address.
    keyGenerator: (request) => {
      const p = request.principal;
      return p?.kind === 'key' ? `key:${p.group}:${p.key.id}` : p?.kind === 'root' ? 'root' : request.ip;
    },
    allowList: (request) => request.routeOptions.config.scope === undefined,
    errorResponseBuilder: (_request, context) => new AppError('RATE_LIMITED', `more than ${context.max} requests per minute for this key; retry in ${Math.ceil(context.ttl / 1000)} s`),
  });
  // Authentication runs before the per-key limit, so refused requests (401, 403) are counted per client address here.
  const refusedPerMinute = deps.config.api.unauthenticatedPerMinute;
  const refusedLimit = refusedPerMinute > 0 ? base.createRateLimit({ max: refusedPerMinute, timeWindow: 60_000, keyGenerator: (request) => `refused:${request.ip}`, allowList: () => false }) : undefined;
  const onRefused = refusedLimit
    ? async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
        const r = await refusedLimit(request);
        if (r.isAllowed || !r.isExceeded) return;
        void reply.header('retry-after', String(r.ttlInSeconds));
        throw new AppError('RATE_LIMITED', `more than ${refusedPerMinute} refused requests (no key, unknown key or wrong scope) per minute from this address; retry in ${r.ttlInSeconds} s`);
      }
    : undefined;
  registerAuth(base, {
    ...auth,
    groups: () => served?.names() ?? [],
    keys: (group, hash) => served?.get(group)?.resources.keyByHash(hash),
    ...(onRefused ? { onRefused } : {}),
  });
  // The Personalize-compatible mount authenticates after reading the body (SigV4 signs it): its per-key limit is applied there.
  const compatLimit = perMinute > 0 ? base.createRateLimit({ max: perMinute, timeWindow: 60_000, keyGenerator: (request) => (request.principal?.kind === 'key' ? `sigv4:${request.principal.group}:${request.principal.key.id}` : request.ip), allowList: () => false }) : undefined;
  const keyLimit = compatLimit
    ? async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
        const r = await compatLimit(request);
        if (r.isAllowed || !r.isExceeded) return;
        void reply.header('retry-after', String(r.ttlInSeconds));
        throw new AppError('RATE_LIMITED', `more than ${perMinute} requests per minute for this key; retry in ${r.ttlInSeconds} s`);
      }
    : undefined;
  /** 405 with allow when the path has routes (of other methods), else 404. */
  const notFound = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const url = request.url.length > 200 ? `${request.url.slice(0, 200)}...` : request.url;
    const path = request.url.split('?')[0] ?? '';
    const allowed = new Set<string>();
    for (const r of routes.values()) if (r.pattern.test(path)) for (const m of r.methods) allowed.add(m);
    if (allowed.size > 0 && !allowed.has(request.method)) {
      const allow = [...allowed].sort().join(', ');
      return reply
        .code(405)
        .header('allow', allow)
        .send(errorBody(new AppError('METHOD_NOT_ALLOWED', `${request.method} is not a method of ${url.split('?')[0]}; allowed: ${allow}`)));
    }
    return reply.code(404).send(errorBody(new AppError('ROUTE_NOT_FOUND', `no route ${request.method} ${url}`)));
  };
  app.setNotFoundHandler(notFound);

  const status = (request?: FastifyRequest): ServiceStatus => {
    try {
      return deps.status();
    } catch (err) {
      (request?.log ?? app.log).error({ err }, 'the status callback failed');
      return { state: 'unknown', ready: false, detail: 'the status callback failed' };
    }
  };

  // Liveness: 503 with the reasons while a component failed for good (not retried); restarting helps then.
  app.get('/health', { schema: { summary: 'Liveness: 503 with the reasons when a component failed for good', response: { 200: Health, 503: Unhealthy, '4xx': ErrorBody, '5xx': ErrorBody } } }, async (request, reply) => {
    const h = deps.metrics?.health?.();
    if (h && !h.healthy) return reply.code(503).header('cache-control', 'no-store').send({ status: 'failed' as const, state: h.state, reasons: h.reasons });
    return { status: 'ok' as const, state: status(request).state };
  });

  app.get('/ready', { schema: { summary: 'Readiness: Kafka reachable, every partition restored, consumers running', response: { 200: Readiness, 503: Readiness, '4xx': ErrorBody, '5xx': ErrorBody } } }, async (request, reply) => {
    const s = status(request);
    return reply.code(s.ready ? 200 : 503).send(s);
  });

  // Fail fast while Kafka is down: a request waits for Kafka (group lookup, then produce) at most
  // ingest.produceTimeoutMs in all, and at most ingest.maxInFlight produce calls are outstanding.
  const produceTimeoutMs = deps.config.ingest.produceTimeoutMs;
  const sink = boundedSink(deps.sink, {
    timeoutMs: produceTimeoutMs,
    maxInFlight: deps.config.ingest.maxInFlight,
    onLate: ({ topic, records, error }) =>
      error === undefined
        ? app.log.warn({ topic, records }, 'a produce answered 503 after ingest.produceTimeoutMs was written after all (a client retry duplicates it)')
        : app.log.warn({ topic, records, err: error }, 'a produce answered 503 after ingest.produceTimeoutMs failed'),
  });
  const kafkaDeadline = new WeakMap<FastifyRequest, number>();
  const kafkaWaitLeft = (request: FastifyRequest): number => {
    let deadline = kafkaDeadline.get(request);
    if (deadline === undefined) kafkaDeadline.set(request, (deadline = performance.now() + produceTimeoutMs));
    return Math.max(50, Math.round(deadline - performance.now()));
  };

  /** 400 for a bad group name, 404 for a group without topics (before the body is validated). */
  const knownGroup = async (request: FastifyRequest): Promise<void> => {
    const { group } = request.params as GroupParams;
    validateGroupName(group);
    let exists: boolean;
    let timer: NodeJS.Timeout | undefined;
    const waitMs = kafkaWaitLeft(request);
    try {
      exists = await Promise.race([
        deps.groups.has(group),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new AppError('KAFKA_UNREACHABLE', `looking up dataset group ${group} took over ${waitMs} ms (ingest.produceTimeoutMs): Kafka did not answer`)), waitMs);
        }),
      ]);
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('KAFKA_UNREACHABLE', `looking up dataset group ${group} failed: Kafka refused or did not answer`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    if (!exists) {
      throw new AppError('GROUP_NOT_FOUND', `dataset group ${JSON.stringify(group)} does not exist (it has no topic ${topicName(group, 'interactions')})`, {
        field: 'group',
      });
    }
  };

  /** Ingestion: refused at once while ingest.maxInFlight produces are outstanding, before the group lookup waits on Kafka too. */
  const ingestGroup = async (request: FastifyRequest): Promise<void> => {
    sink.checkCapacity();
    await knownGroup(request);
  };

  /** All or nothing: any invalid record -> 400 listing them all and nothing produced; else produce all -> 202. */
  const produce = async (request: FastifyRequest, group: string, topic: TopicName, prepared: Prepared, noun: string, total: number): Promise<{ accepted: number }> => {
    if (!prepared.ok) throw recordsInvalid(noun, total, prepared.errors);
    const name = topicName(group, topic);
    try {
      await sink.send(name, prepared.messages, { timeoutMs: kafkaWaitLeft(request) });
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('KAFKA_UNREACHABLE', `producing ${prepared.messages.length} record(s) to ${name} failed: Kafka refused or did not answer`, {
        cause: err,
      });
    }
    return { accepted: prepared.messages.length };
  };

  /** PutEvents' checks: the codec and the clock's bounds. */
  const eventChecks = (): EventChecks => ({ codecs: deps.codecs, now: now(), maxFutureSkewMs: deps.config.ingest.maxFutureSkewMs, minTimestampMs: deps.config.ingest.minTimestampMs });

  app.post(
    '/v1/groups/:group/events',
    { schema: { summary: 'PutEvents: 1-100 events of a user to <group>.interactions', params: GroupParams, body: PutEventsBody, response: ingestResponses }, preValidation: ingestGroup, config: { scope: 'ingest' } },
    async (request, reply) => {
      const body = request.body;
      const prepared = prepareEvents(body, eventChecks());
      return reply.code(202).send(await produce(request, request.params.group, 'interactions', prepared, 'events', body.eventList.length));
    },
  );

  app.post(
    '/v1/groups/:group/items',
    { schema: { summary: 'PutItems: 1-100 items to <group>.items', params: GroupParams, body: PutItemsBody, response: ingestResponses }, preValidation: ingestGroup, config: { scope: 'ingest' } },
    async (request, reply) =>
      reply.code(202).send(await produce(request, request.params.group, 'items', prepareItems(request.body, deps.codecs), 'items', request.body.items.length)),
  );

  app.post(
    '/v1/groups/:group/users',
    { schema: { summary: 'PutUsers: 1-100 users to <group>.users', params: GroupParams, body: PutUsersBody, response: ingestResponses }, preValidation: ingestGroup, config: { scope: 'ingest' } },
    async (request, reply) =>
      reply.code(202).send(await produce(request, request.params.group, 'users', prepareUsers(request.body, deps.codecs), 'users', request.body.users.length)),
  );

  const group = served
    ? (name: string): GroupServices => {
        const g = served.get(name);
        if (!g) {
          throw new AppError('GROUP_NOT_FOUND', `this instance serves the dataset group(s) ${served.names().map((n) => JSON.stringify(n)).join(', ')}, not ${JSON.stringify(name)}`, { field: 'group' });
        }
        return g;
      }
    : undefined;
  if (served && group) {
    registerQueryRoutes(base, { group, preValidation: knownGroup, ...(deps.forward ? { forward: deps.forward } : {}) });
    registerResourceRoutes(base, { group, served: () => served.names(), groupAdmin: deps.groupAdmin, preValidation: knownGroup });
    registerSplitRoutes(base, { group, preValidation: knownGroup });
    registerInspectRoutes(base, { group, preValidation: knownGroup, ...(deps.forward ? { forward: deps.forward } : {}) });
    registerItemRoute(base, { group, preValidation: knownGroup });
    registerOnlineMetricsRoute(base, { group, preValidation: knownGroup });
    registerDeletionRoutes(base, { group, preValidation: knownGroup });
    // Server-sent events; heartbeats well inside api.connectionTimeoutMs (an idle socket is closed after it).
    await base.register(fastifySSE, { heartbeatInterval: 0 });
    registerLiveRoutes(base, { group, preValidation: knownGroup, heartbeatMs: Math.max(1000, Math.min(15_000, Math.floor(connectionTimeoutMs / 3))) });
  }

  // The Personalize-compatible endpoint for the AWS SDKs (SigV4), over the same query and ingestion code.
  await registerPersonalizeCompat(base, {
    auth: { mode: auth.mode, rootKey: auth.rootKey, groups: () => served?.names() ?? [] },
    ...(onRefused ? { onRefused } : {}),
    ...(keyLimit ? { limit: keyLimit } : {}),
    ...(group ? { group } : {}),
    knownGroup,
    ingestGroup,
    produce,
    eventChecks,
    codecs: deps.codecs,
    bodyLimit,
    now,
    ...(deps.askOwner ? { askOwner: deps.askOwner } : {}),
  });

  registerMetrics(base, deps.metrics ?? {});
  await registerUiRoutes(base);
  return base;
}

/** A route's path pattern as a regular expression of request paths (`:param` one segment, `*` the rest). */
function routePattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((seg) => (seg === '*' ? '.*' : seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}/?$`);
}

/** The query string's integer parameters: digits become the number (ajv then checks the range), anything else stays and is refused. */
const QUERY_INTEGERS = ['numResults', 'limit'];
function coerceQueryIntegers(query: unknown): void {
  if (query === null || typeof query !== 'object') return;
  const q = query as Record<string, unknown>;
  for (const k of QUERY_INTEGERS) {
    const v = q[k];
    if (typeof v === 'string' && /^-?[0-9]{1,16}$/.test(v)) q[k] = Number(v);
  }
}

/** Node's HTTP parser refused a request before fastify saw it: answer with the documented error body, then close. */
function clientError(this: FastifyInstance, err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const app =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError('HEADERS_TOO_LARGE', 'the request line and headers are over 16 KiB (a long query string counts); send long inputs in a JSON body')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new AppError('REQUEST_TIMEOUT', 'the request did not arrive within api.requestTimeoutMs')
        : new AppError('REQUEST_MALFORMED', 'the request is not valid HTTP/1.1');
  this.log.info({ code: app.code, detail: err.code }, app.message);
  const body = JSON.stringify(errorBody(app));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${app.status} ${STATUS_CODES[app.status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
