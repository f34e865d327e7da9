/**
 * Live data as server-sent events (scope `query`), from the same lists `<group>.recommendations`
 * carries (src/stream/live.ts):
 *
 * - `GET /v1/groups/:group/recommendations/stream?userId=`: first the user's current list (as
 *   GetRecommendations answers it, when it answers 200), then every list published for the user, as
 *   `event: recommendations` with the list's id as the event id.
 * - `GET /v1/groups/:group/events/stream`: the group's event rate, `event: rate` once a second.
 *
 * With `Accept: text/event-stream` (what EventSource sends) the answer is the stream; any other
 * client gets one JSON answer instead (the current list; one rate measured over a second), so the
 * routes stay plain HTTP for clients and tools that do not speak SSE. Heartbeat comments keep an
 * idle stream under api.connectionTimeoutMs.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { AppError } from '../errors/index.js';
import type { Recommendation } from '../serde/avro.js';
import type { EventRate } from '../stream/live.js';
import { numResults } from './query-routes.js';
import { ErrorBody, GroupParams, IdString, NumResults } from './schemas.js';
import type { GroupServices } from './types.js';

const ListItem = Type.Object({ itemId: Type.String(), score: Type.Optional(Type.Number()), reason: Type.Optional(Type.String()) });

/** One list on a stream (and the JSON answer): the current one, or one published on the topic. */
export const LiveList = Type.Object({
  userId: Type.String(),
  recommendationId: Type.String(),
  version: Type.String(),
  itemList: Type.Array(ListItem),
  source: Type.Union([Type.Literal('current'), Type.Literal('published')], { description: 'current: the list when the stream opened; published: a list from the recommendations topic.' }),
  eventTimestamp: Type.Optional(Type.Number({ description: 'published: epoch ms of the latest event the list covers.' })),
  emitTimestamp: Type.Optional(Type.Number({ description: 'published: epoch ms it was published.' })),
});
export type LiveList = Static<typeof LiveList>;

export const Rate = Type.Object({
  at: Type.Number({ description: 'Epoch ms of the reading.' }),
  eventsPerSecond: Type.Number(),
  total: Type.Number({ description: 'Events in the interactions topic.' }),
});

const StreamQuery = Type.Object({ userId: IdString(), numResults: Type.Optional(NumResults) }, { additionalProperties: false });

/** A list as the topic carries it, in the stream's shape. */
export function publishedList(r: Recommendation): LiveList {
  return {
    userId: r.USER_ID,
    recommendationId: r.RECOMMENDATION_ID,
    version: r.MODEL_VERSION,
    itemList: r.ITEMS.map((i) => ({ itemId: i.ITEM_ID, score: i.SCORE, ...(i.REASON ? { reason: i.REASON } : {}) })),
    source: 'published',
    eventTimestamp: r.EVENT_TIMESTAMP,
    emitTimestamp: r.EMIT_TIMESTAMP,
  };
}

const responses = (ok: unknown) => ({ 200: ok, '4xx': ErrorBody, '5xx': ErrorBody });
const wantsStream = (request: FastifyRequest) => /\btext\/event-stream\b/.test(request.headers.accept ?? '');

export interface LiveRouteOptions {
  group: (group: string) => GroupServices;
  preValidation: (request: FastifyRequest) => Promise<void>;
  /** Milliseconds between heartbeat comments on an idle stream. */
  heartbeatMs: number;
}

export function registerLiveRoutes(base: FastifyInstance, o: LiveRouteOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const common = { preValidation: o.preValidation, config: { scope: 'query' as const } };

  /**
   * The user's current list by GetRecommendations itself (its auth, filters, forwarding to the
   * user's owner), with the caller's key: the list, or GetRecommendations' status and error body.
   */
  const current = async (request: FastifyRequest, group: string, userId: string, n: number): Promise<{ list: LiveList } | { status: number; body: string }> => {
    const r = await base.inject({
      method: 'GET',
      url: `/v1/groups/${encodeURIComponent(group)}/recommendations`,
      query: { userId, numResults: String(n) },
      headers: Object.fromEntries((['x-api-key', 'authorization'] as const).flatMap((h) => (request.headers[h] ? [[h, request.headers[h]!]] : []))),
    });
    if (r.statusCode !== 200) return { status: r.statusCode, body: r.body };
    const body = r.json<{ recommendationId: string; version: string; itemList: LiveList['itemList'] }>();
    return { list: { userId, recommendationId: body.recommendationId, version: body.version, itemList: body.itemList, source: 'current' } };
  };

  /** Opens the stream: headers now, heartbeats, and `stop` when the client goes. */
  const open = (reply: FastifyReply, stop: () => void): void => {
    reply.sse.keepAlive();
    reply.sse.sendHeaders();
    const heartbeat = setInterval(() => {
      if (reply.sse.isConnected) reply.raw.write(': keep-alive\n\n');
    }, o.heartbeatMs);
    reply.sse.onClose(() => {
      clearInterval(heartbeat);
      stop();
    });
  };

  app.get(
    '/v1/groups/:group/recommendations/stream',
    {
      ...common,
      sse: { kind: 'dual', heartbeat: false },
      schema: {
        summary: "A user's lists as server-sent events (Accept: text/event-stream): the current one, then each one published; other clients get the current list as JSON",
        params: GroupParams,
        querystring: StreamQuery,
        produces: ['text/event-stream', 'application/json'],
        response: responses(LiveList),
      },
    },
    async (request, reply) => {
      const { userId } = request.query;
      const n = numResults(request.query.numResults);
      const { group } = request.params;
      const live = o.group(group).live;
      if (!wantsStream(request) || !live) {
        const c = await current(request, group, userId, n);
        if ('list' in c) return c.list;
        return reply.code(c.status).header('content-type', 'application/json; charset=utf-8').send(c.body);
      }
      let unsubscribe = () => {};
      let closed = false;
      open(reply, () => {
        closed = true;
        unsubscribe();
      });
      const send = (list: LiveList) => {
        if (reply.sse.isConnected) reply.sse.send({ event: 'recommendations', id: list.recommendationId, data: list }).catch(() => undefined);
      };
      unsubscribe = await live.lists(userId, (r) => send(publishedList(r)));
      if (closed) unsubscribe();
      const first = await current(request, group, userId, n);
      if ('list' in first) send(first.list);
    },
  );

  app.get(
    '/v1/groups/:group/events/stream',
    {
      ...common,
      sse: { kind: 'dual', heartbeat: false },
      schema: {
        summary: "The group's event rate as server-sent events (Accept: text/event-stream), once a second; other clients get one rate measured over a second as JSON",
        params: GroupParams,
        produces: ['text/event-stream', 'application/json'],
        response: responses(Rate),
      },
    },
    async (request, reply) => {
      const live = o.group(request.params.group).live;
      if (!live) throw new AppError('ROUTE_NOT_FOUND', 'this instance serves no live feeds (it runs without Kafka)');
      if (!wantsStream(request)) {
        return new Promise<EventRate>((resolve) => {
          const stop = live.events((r) => {
            stop();
            resolve(r);
          });
        });
      }
      let stop = () => {};
      open(reply, () => stop());
      stop = live.events((r) => {
        if (reply.sse.isConnected) reply.sse.send({ event: 'rate', data: r }).catch(() => undefined);
      });
    },
  );
}
