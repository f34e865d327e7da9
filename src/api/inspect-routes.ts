/**
 * Inspection routes, for the dashboard (ui/app.js) and operators:
 *
 * - `GET /v1/groups/:group/users/:userId/events?limit=` (scope `query`): the user's stored events,
 *   newest first, from the user's state in the processor; a user whose partition another instance
 *   owns is forwarded there, as GetRecommendations is (src/api/forward.ts).
 * - `GET /v1/groups/:group/dead-letters?limit=` (scope `admin`): the last `limit` records of each
 *   partition of `<group>.dead-letter`, with their reasons, newest first.
 * - `GET /v1/groups/:group/instances` (scope `admin`): the instances of the group (the processor's
 *   consumer group) and the input partitions each owns.
 * - `GET /v1/groups/:group/items/:itemId?scope=` (scope `query`): an item's record (its metadata)
 *   and its interaction counters now (distinct users, events, trending score), of the group or of
 *   this instance's partitions (`scope=local`, what instances ask each other).
 */
import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../errors/index.js';
import { userEvents } from './inspect.js';
import { ErrorBody, GroupName, IdString, Nullable } from './schemas.js';
import type { GroupInspector, GroupServices } from './types.js';

export const MAX_USER_EVENTS = 500;
export const DEFAULT_USER_EVENTS = 25;
export const MAX_DEAD_LETTERS = 100;
export const DEFAULT_DEAD_LETTERS = 10;

const responses = (ok: unknown) => ({ 200: ok, '4xx': ErrorBody, '5xx': ErrorBody });

const UserParams = Type.Object({ group: GroupName, userId: IdString() }, { additionalProperties: false });
const Limit = (max: number, dflt: number, what: string) => Type.Integer({ minimum: 1, maximum: max, description: `${what}: 1 to ${max}; default ${dflt}` });
const UserEventsQuery = Type.Object({ limit: Type.Optional(Limit(MAX_USER_EVENTS, DEFAULT_USER_EVENTS, 'events')) }, { additionalProperties: false });
const DeadLettersQuery = Type.Object({ limit: Type.Optional(Limit(MAX_DEAD_LETTERS, DEFAULT_DEAD_LETTERS, 'records of each partition')) }, { additionalProperties: false });
const ItemParams = Type.Object({ group: GroupName, itemId: IdString() }, { additionalProperties: false });
const ItemQuery = Type.Object(
  { scope: Type.Optional(Type.Union([Type.Literal('group'), Type.Literal('local')], { description: "group (default): every instance's partitions; local: this instance's" })) },
  { additionalProperties: false },
);
const GroupOnly = Type.Object({ group: GroupName }, { additionalProperties: false });

const UserEventsBody = Type.Object({
  userId: Type.String(),
  total: Type.Integer({ description: 'Events of the user applied so far.' }),
  stored: Type.Integer({ description: 'Events kept in the store (the most recent state.maxEventsPerUser).' }),
  events: Type.Array(
    Type.Object({
      itemId: Type.String(),
      timestamp: Type.Number({ description: 'Epoch ms.' }),
      eventType: Type.String(),
      eventValue: Nullable(Type.Number()),
      session: Type.Integer({ description: "The user's session ordinal, from 0." }),
    }),
    { description: 'Newest first.' },
  ),
});

const DeadLettersBody = Type.Object({
  topic: Type.String(),
  kept: Type.Integer({ description: 'Offsets the topic keeps, all partitions (high watermark minus low; transaction markers take offsets too).' }),
  deadLetters: Type.Array(
    Type.Object({
      partition: Type.Integer(),
      offset: Type.Integer(),
      failedAt: Type.Number({ description: 'Epoch ms.' }),
      source: Type.String({ description: 'The topic the refused record came from.' }),
      sourcePartition: Nullable(Type.Integer()),
      sourceOffset: Nullable(Type.String()),
      errorCode: Type.String(),
      field: Nullable(Type.String()),
      reason: Type.String(),
      key: Nullable(Type.String({ description: "The refused record's key as text." })),
      valueBytes: Nullable(Type.Integer()),
    }),
    { description: 'Newest first (failedAt).' },
  ),
});

const InstancesBody = Type.Object({
  consumerGroup: Type.String(),
  state: Type.String({ description: 'As the broker says it: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead.' }),
  protocol: Type.String(),
  instances: Type.Array(
    Type.Object({
      memberId: Type.String(),
      clientId: Type.String(),
      host: Type.String(),
      url: Nullable(Type.String()),
      self: Type.Boolean({ description: 'The instance that answered.' }),
      partitions: Type.Array(Type.Integer()),
      standby: Type.Array(Type.Integer()),
    }),
  ),
});

const Activity = Type.Object({
  users: Type.Integer({ description: 'Distinct users who interacted with it.' }),
  events: Type.Integer(),
  trending: Type.Number({ description: 'Time-decayed event count now (state.trendingHalfLifeMs).' }),
  lastTimestamp: Nullable(Type.Number({ description: 'Epoch ms of its latest event.' })),
  partitions: Type.Integer({ description: 'Partitions whose counters include it.' }),
});
const ItemBody = Type.Object({
  itemId: Type.String(),
  creationTimestamp: Nullable(Type.Number()),
  properties: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'The item record\'s metadata; null: no record in <group>.items.' })),
  scope: Type.String(),
  activity: Activity,
});

export interface InspectRouteOptions {
  group: (group: string) => GroupServices;
  forward?: (request: FastifyRequest, reply: FastifyReply, userId: string) => Promise<boolean>;
  preValidation: (request: FastifyRequest) => Promise<void>;
}

export function registerInspectRoutes(base: FastifyInstance, o: InspectRouteOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const inspector = (group: string): GroupInspector => {
    const i = o.group(group).inspect;
    if (!i) throw new AppError('ROUTE_NOT_FOUND', 'this instance has no inspection source (it runs without Kafka)');
    return i;
  };

  app.get(
    '/v1/groups/:group/users/:userId/events',
    {
      preValidation: o.preValidation,
      config: { scope: 'query' },
      schema: { tags: ['inspection'], summary: "A user's stored events, newest first (the most recent state.maxEventsPerUser are kept)", params: UserParams, querystring: UserEventsQuery, response: responses(UserEventsBody) },
    },
    async (request, reply) => {
      const { group, userId } = request.params;
      const limit = request.query.limit ?? DEFAULT_USER_EVENTS;
      const source = inspector(group);
      if (o.forward && (await o.forward(request, reply, userId))) return reply;
      const state = await source.userState(userId);
      if (!state) throw new AppError('USER_NOT_FOUND', `user ${JSON.stringify(userId)} has no events in this group`, { field: 'userId' });
      return userEvents(userId, state, limit);
    },
  );

  app.get(
    '/v1/groups/:group/dead-letters',
    {
      preValidation: o.preValidation,
      config: { scope: 'admin' },
      schema: { tags: ['inspection'], summary: 'The latest dead letters (records refused, with their reasons): the last `limit` of each partition of <group>.dead-letter', params: GroupOnly, querystring: DeadLettersQuery, response: responses(DeadLettersBody) },
    },
    async (request) => inspector(request.params.group).deadLetters(request.query.limit ?? DEFAULT_DEAD_LETTERS),
  );

  app.get(
    '/v1/groups/:group/instances',
    {
      preValidation: o.preValidation,
      config: { scope: 'admin' },
      schema: { tags: ['inspection'], summary: "The group's instances (the processor's consumer group) and the input partitions each owns", params: GroupOnly, response: responses(InstancesBody) },
    },
    async (request) => inspector(request.params.group).instances(),
  );
}

export function registerItemRoute(base: FastifyInstance, o: InspectRouteOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/v1/groups/:group/items/:itemId',
    {
      preValidation: o.preValidation,
      config: { scope: 'query' },
      schema: { tags: ['items'], summary: "An item: its record's metadata and its interaction counters now (distinct users, events, trending score)", params: ItemParams, querystring: ItemQuery, response: responses(ItemBody) },
    },
    async (request) => {
      const { group, itemId } = request.params;
      const scope = request.query.scope ?? 'group';
      const services = o.group(group);
      const read = services.inspect?.itemActivity;
      if (!read || !services.query.itemMetadata) throw new AppError('ROUTE_NOT_FOUND', 'this instance has no item counters (it runs without Kafka)');
      const [records, activity] = await Promise.all([scope === 'group' ? services.query.itemMetadata([itemId]) : new Map(), read(itemId, scope)]);
      const record = records.get(itemId);
      if (!activity && (!record || scope === 'local')) throw new AppError('ITEM_NOT_FOUND', `item ${JSON.stringify(itemId)} has no record and no events in this group`, { field: 'itemId' });
      return {
        itemId,
        creationTimestamp: record?.CREATION_TIMESTAMP ?? null,
        properties: record ? record.METADATA : null,
        scope,
        activity: activity ?? { users: 0, events: 0, trending: 0, lastTimestamp: null, partitions: 0 },
      };
    },
  );
}
