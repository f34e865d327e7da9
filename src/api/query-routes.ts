/**
 * The query routes (scope `query`): GetRecommendations (GET with a query string, or POST with a
 * JSON body for structured filterValues / context), related items, GetPersonalizedRanking and
 * popular / trending. A user-keyed query for a user whose partition another instance owns is
 * forwarded to that instance (src/api/forward.ts), so every instance gives the same answer.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AppError } from '../errors/index.js';
import type { GroupServices } from './types.js';
import {
  ErrorBody,
  GroupParams,
  Popular,
  PopularQuery,
  RankingBody,
  Recommendations,
  RecommendationsBody,
  RecommendationsQuery,
  RelatedQuery,
} from './schemas.js';

const responses = (ok: unknown) => ({ 200: ok, '4xx': ErrorBody, '5xx': ErrorBody });

export const MAX_RESULTS = 500;
export const DEFAULT_RESULTS = 25;

/** numResults from a query string or a body: 1 to 500, default 25. */
export function numResults(value: string | number | undefined): number {
  const n = value === undefined ? DEFAULT_RESULTS : Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_RESULTS) throw new AppError('REQUEST_INVALID', `numResults must be 1 to ${MAX_RESULTS}, got ${String(value)}`, { field: 'numResults' });
  return n;
}

/** A JSON object of strings given in a query string parameter (filterValues, context). */
export function jsonObjectParam(value: string | undefined, field: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new AppError('REQUEST_INVALID', `${field} must be a JSON object of strings, e.g. {"GENRES":"\\"Comedy\\""}`, { field });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
    throw new AppError('REQUEST_INVALID', `${field} must be a JSON object whose values are strings`, { field });
  }
  return parsed as Record<string, string>;
}

export interface QueryRouteOptions {
  /** The services of a group this instance serves (GROUP_NOT_FOUND otherwise). */
  group: (group: string) => GroupServices;
  /** Forwards the request to the owner of the user's partition when that is another instance; true when it answered. */
  forward?: (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply, userId: string) => Promise<boolean>;
  /** Runs before a query route's handler: the group must exist. */
  preValidation: (request: import('fastify').FastifyRequest) => Promise<void>;
}

export function registerQueryRoutes(base: FastifyInstance, o: QueryRouteOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const common = { preValidation: o.preValidation, config: { scope: 'query' as const } };
  const forwarded = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply, userId: string): Promise<boolean> =>
    o.forward ? o.forward(request, reply, userId) : false;

  app.get(
    '/v1/groups/:group/recommendations',
    { ...common, schema: { summary: 'GetRecommendations: a user\'s list from the current state', params: GroupParams, querystring: RecommendationsQuery, response: responses(Recommendations) } },
    async (request, reply) => {
      const q = request.query;
      const n = numResults(q.numResults);
      const filterValues = jsonObjectParam(q.filterValues, 'filterValues');
      jsonObjectParam(q.context, 'context');
      if (await forwarded(request, reply, q.userId)) return reply;
      return o.group(request.params.group).query.recommendations({ userId: q.userId, numResults: n, filter: q.filter, filterValues });
    },
  );

  app.post(
    '/v1/groups/:group/recommendations',
    { ...common, schema: { summary: 'GetRecommendations with a JSON body', params: GroupParams, body: RecommendationsBody, response: responses(Recommendations) } },
    async (request, reply) => {
      const b = request.body;
      const n = numResults(b.numResults);
      if (await forwarded(request, reply, b.userId)) return reply;
      return o.group(request.params.group).query.recommendations({ userId: b.userId, numResults: n, filter: b.filter, filterValues: b.filterValues, promotions: b.promotions });
    },
  );

  app.get(
    '/v1/groups/:group/related-items',
    { ...common, schema: { summary: 'Items related to an item', params: GroupParams, querystring: RelatedQuery, response: responses(Recommendations) } },
    async (request, reply) => {
      const q = request.query;
      const n = numResults(q.numResults);
      const filterValues = jsonObjectParam(q.filterValues, 'filterValues');
      // Interaction filters need the user's state: answered by the user's owner.
      if (q.userId !== undefined && q.filter !== undefined && (await forwarded(request, reply, q.userId))) return reply;
      return o.group(request.params.group).query.related({ itemId: q.itemId, numResults: n, userId: q.userId, filter: q.filter, filterValues });
    },
  );

  app.post(
    '/v1/groups/:group/personalized-ranking',
    { ...common, schema: { summary: 'GetPersonalizedRanking: inputList in the user\'s order; unknown items last', params: GroupParams, body: RankingBody, response: responses(Recommendations) } },
    async (request, reply) => {
      const b = request.body;
      if (await forwarded(request, reply, b.userId)) return reply;
      return o.group(request.params.group).query.ranking({ userId: b.userId, inputList: b.inputList, filter: b.filter, filterValues: b.filterValues });
    },
  );

  app.get(
    '/v1/groups/:group/popular',
    { ...common, schema: { summary: 'Popular (distinct users) or trending (time-decayed events) items, live', params: GroupParams, querystring: PopularQuery, response: responses(Popular) } },
    async (request, reply) => {
      const q = request.query;
      // An interactions filter needs the user's state: answered by the user's owner.
      if (q.userId !== undefined && q.filter !== undefined && (await forwarded(request, reply, q.userId))) return reply;
      return o.group(request.params.group).query.popular({
        kind: q.kind ?? 'popular',
        scope: q.scope,
        numResults: numResults(q.numResults),
        userId: q.userId,
        filter: q.filter,
        filterValues: jsonObjectParam(q.filterValues, 'filterValues'),
      });
    },
  );
}
