/**
 * The Personalize-compatible mount: `/personalize/<group>` is an endpoint for the official AWS SDKs
 * (@aws-sdk/client-personalize-runtime and -events, boto3 `personalize-runtime` and
 * `personalize-events`). They speak rest-json with SigV4 and keep a path prefix on the endpoint:
 *
 *   POST /personalize/:group/recommendations       GetRecommendations
 *   POST /personalize/:group/personalize-ranking   GetPersonalizedRanking
 *   POST /personalize/:group/events                PutEvents
 *   POST /personalize/:group/items                 PutItems
 *   POST /personalize/:group/users                 PutUsers
 *
 * Requests and answers are Personalize's shapes (botocore personalize-runtime/2018-05-22 and
 * personalize-events/2018-03-22); they are translated into the native ones and served by the same
 * code (the query service; convert.ts and the ingestion produce of app.ts). ARNs name resources by
 * their last segment: campaignArn / recommenderArn -> the group's deployment, filterArn -> the
 * group's filter of that name, datasetArn -> the group's items or users (docs/personalize.md).
 *
 * Authentication is SigV4 (sigv4.ts) with credentials of the group's API keys
 * (GET /v1/groups/:group/api-keys/:id/aws-credentials) and the key's scopes. Errors are answered
 * as the SDKs read them: `x-amzn-errortype` and `{ "__type", "message" }`.
 *
 * The mount is left out of /openapi.json: its shapes are AWS's (the SDKs are their client) and its
 * authentication is not the API key the document declares.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { AppError, isAppError } from '../errors/index.js';
import type { TopicName } from '../kafka/topics.js';
import type { MetadataValue } from '../serde/avro.js';
import type { Answer, QueryItem } from '../serving/query.js';
import { authorize, keyGroupCandidates, type AuthOptions, type Principal } from './auth.js';
import type { Prepared } from './convert.js';
import { prepareEvents, prepareItems, prepareUsers, type EventChecks } from './convert.js';
import { toAppError } from './errors.js';
import { numResults } from './query-routes.js';
import { ErrorBody, FilterValues, GroupName, GroupParams, IdString, NumResults, type Event, type ItemInput, type UserInput } from './schemas.js';
import { accessKeyIdOf, keyIdOf, secretAccessKeyFor, SigV4Error, verifySigV4 } from './sigv4.js';
import type { GroupServices } from './types.js';

export const MOUNT = '/personalize';

export interface PersonalizeCompatOptions {
  auth: Pick<AuthOptions, 'mode' | 'rootKey' | 'groups'>;
  /** Called for a request refused for its signature or scope, before that answer (may throw RATE_LIMITED instead). */
  onRefused?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** The per-key limit (api.rateLimitPerMinute), after authentication; throws RATE_LIMITED. */
  limit?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** The services of a group this instance serves (GROUP_NOT_FOUND otherwise); absent: only ingestion. */
  group?: (group: string) => GroupServices;
  /** The group exists (400 / 404 otherwise), before the body is read; ingestion also checks capacity. */
  knownGroup: (request: FastifyRequest) => Promise<void>;
  ingestGroup: (request: FastifyRequest) => Promise<void>;
  /** The ingestion routes' produce (all or nothing). */
  produce: (request: FastifyRequest, group: string, topic: TopicName, prepared: Prepared, noun: string, total: number) => Promise<{ accepted: number }>;
  eventChecks: () => EventChecks;
  codecs: Parameters<typeof prepareItems>[1] & Parameters<typeof prepareUsers>[1];
  bodyLimit: number;
  now: () => number;
  /**
   * Asks the owner of a user's partition (another instance) through its /v1 route (src/api/forward.ts
   * `ownerAsker`): SigV4 signs the host and the exact body, so the request cannot be passed on as it
   * came. Resolves undefined when this instance owns the user. Absent: answered here (one instance).
   */
  askOwner?: (userId: string, path: string, body: unknown) => Promise<unknown>;
}

// ---- Personalize's request shapes (every member of the 2018 models) ----

const Arn = Type.String({ minLength: 1, maxLength: 256 });
const StringMap = Type.Record(Type.String({ maxLength: 150 }), Type.String({ maxLength: 1000 }));
const MetadataColumns = Type.Record(Type.String({ maxLength: 256 }), Type.Array(Type.String({ maxLength: 150 }), { maxItems: 99 }));
const Id = IdString();

const PromotionShape = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })), percentPromotedItems: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })), filterArn: Type.Optional(Arn), filterValues: Type.Optional(FilterValues) },
  { additionalProperties: false },
);

const GetRecommendationsRequest = Type.Object(
  {
    campaignArn: Type.Optional(Arn),
    recommenderArn: Type.Optional(Arn),
    itemId: Type.Optional(Id),
    userId: Type.Optional(Id),
    numResults: Type.Optional(NumResults),
    context: Type.Optional(StringMap),
    filterArn: Type.Optional(Arn),
    filterValues: Type.Optional(FilterValues),
    promotions: Type.Optional(Type.Array(PromotionShape, { maxItems: 1 })),
    metadataColumns: Type.Optional(MetadataColumns),
  },
  { additionalProperties: false },
);

const GetPersonalizedRankingRequest = Type.Object(
  {
    campaignArn: Arn,
    inputList: Type.Array(Id, { minItems: 1, maxItems: 500 }),
    userId: Id,
    context: Type.Optional(StringMap),
    filterArn: Type.Optional(Arn),
    filterValues: Type.Optional(FilterValues),
    metadataColumns: Type.Optional(MetadataColumns),
  },
  { additionalProperties: false },
);

const EventShape = Type.Object(
  {
    eventId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    eventType: Type.String({ minLength: 1, maxLength: 256 }),
    eventValue: Type.Optional(Type.Number()),
    itemId: Type.Optional(Id),
    properties: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    sentAt: Type.Number({ description: 'Epoch seconds (the SDKs send a timestamp so).' }),
    recommendationId: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    impression: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 25 })),
    metricAttribution: Type.Optional(Type.Object({ eventAttributionSource: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

const PutEventsRequest = Type.Object(
  {
    trackingId: Type.String({ minLength: 1, maxLength: 256 }),
    userId: Type.Optional(Id),
    sessionId: Type.String({ minLength: 1, maxLength: 256 }),
    eventList: Type.Array(EventShape, { minItems: 1, maxItems: 10 }),
  },
  { additionalProperties: false },
);

const PropertiesJson = Type.Optional(Type.String({ minLength: 1, maxLength: 24262 }));
const PutItemsRequest = Type.Object(
  { datasetArn: Arn, items: Type.Array(Type.Object({ itemId: Id, properties: PropertiesJson }, { additionalProperties: false }), { minItems: 1, maxItems: 10 }) },
  { additionalProperties: false },
);
const PutUsersRequest = Type.Object(
  { datasetArn: Arn, users: Type.Array(Type.Object({ userId: Id, properties: PropertiesJson }, { additionalProperties: false }), { minItems: 1, maxItems: 10 }) },
  { additionalProperties: false },
);

type GetRecommendationsRequest = Static<typeof GetRecommendationsRequest>;

// ---- ARNs ----

const ARN = /^arn:[A-Za-z0-9-]+:personalize:[^:]*:[^:]*:([a-z-]+)\/(.+)$/;

/**
 * The resource an ARN names: `arn:aws:personalize:REGION:ACCOUNT:TYPE/NAME...`; its type must be
 * one of `types` (InvalidInputException otherwise). Returns the last segment of the name.
 */
export function arnName(arn: string, field: string, types: readonly string[]): { type: string; name: string; path: string[] } {
  const m = ARN.exec(arn);
  if (!m) throw new AppError('REQUEST_INVALID', `${field} must be a Personalize ARN, arn:aws:personalize:REGION:ACCOUNT:${types[0]}/NAME; got ${JSON.stringify(arn.slice(0, 100))}`, { field });
  const [, type = '', rest = ''] = m;
  if (!types.includes(type)) throw new AppError('REQUEST_INVALID', `${field} must name a ${types.join(' or ')}, not a ${type}`, { field });
  const path = rest.split('/');
  return { type, name: path[path.length - 1] ?? '', path };
}

/** A filter ARN -> the group's filter of that name (the query service answers FILTER_NOT_FOUND when there is none). */
function filterOf(arn: string | undefined, field: string): string | undefined {
  return arn === undefined ? undefined : arnName(arn, field, ['filter']).name;
}

// ---- properties: Personalize's camelCase JSON -> streamrec's fields ----

/** `numberOfRatings` -> `NUMBER_OF_RATINGS` (a Personalize schema's column from its properties key); upper-case keys stay. */
export function columnName(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/**
 * A PutItems / PutUsers / PutEvents `properties` JSON string -> an object with column names; for
 * METADATA a string with `|` is the list of its values (Personalize's multi-valued categorical).
 */
export function columnsOf(json: string, field: string, split: boolean): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new AppError('REQUEST_INVALID', `${field} must be a JSON string of an object: ${(err as Error).message}`, { field });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new AppError('REQUEST_INVALID', `${field} must be a JSON string of an object`, { field });
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parsed)) out[columnName(k)] = split && typeof v === 'string' && v.includes('|') ? v.split('|') : v;
  return out;
}

// ---- answers ----

interface PredictedItem {
  itemId: string;
  score?: number;
  promotionName?: string;
  metadata?: Record<string, string>;
  reason?: string[];
}

function metadataText(v: MetadataValue): string {
  return Array.isArray(v) ? v.join('|') : String(v);
}

async function predicted(g: GroupServices, items: QueryItem[], columns: Record<string, string[]> | undefined, promotionName: string | undefined): Promise<PredictedItem[]> {
  const wanted = columns?.ITEMS ?? [];
  for (const type of Object.keys(columns ?? {})) {
    if (type !== 'ITEMS') throw new AppError('REQUEST_INVALID', `metadataColumns may name only the ITEMS dataset, not ${JSON.stringify(type)}`, { field: `metadataColumns.${type}` });
  }
  const meta = wanted.length > 0 && g.query.itemMetadata ? await g.query.itemMetadata(items.map((i) => i.itemId)) : undefined;
  return items.map((i) => {
    const out: PredictedItem = { itemId: i.itemId };
    if (i.score !== undefined) out.score = i.score;
    if (i.reason === 'promotion' && promotionName !== undefined) out.promotionName = promotionName;
    if (meta) {
      const m = meta.get(i.itemId)?.METADATA ?? {};
      const md: Record<string, string> = {};
      for (const c of wanted) {
        const v = m[columnName(c)];
        if (v !== undefined) md[c] = metadataText(v);
      }
      out.metadata = md;
    }
    if (i.reason !== undefined) out.reason = [i.reason];
    return out;
  });
}

// ---- errors in the SDKs' shapes ----

/** The AWS error type (x-amzn-errortype) an SDK names for an AppError. */
export function awsErrorType(err: AppError): string {
  if (err instanceof SigV4Error) return err.awsType;
  if (err.code === 'FORBIDDEN') return 'AccessDeniedException';
  if (err.code === 'RATE_LIMITED') return 'ThrottlingException';
  if (err.status === 404) return 'ResourceNotFoundException';
  if (err.status === 409) return 'ResourceInUseException';
  if (err.status >= 400 && err.status < 500) return 'InvalidInputException';
  return err.status === 503 ? 'ServiceUnavailableException' : 'InternalFailure';
}

/** The status an AWS service answers with for that type (refused signatures are 403 there). */
function awsStatus(err: AppError, type: string): number {
  return err instanceof SigV4Error || type === 'AccessDeniedException' ? 403 : err.status === 404 || err.status === 409 || err.status >= 500 || err.status === 429 ? err.status : 400;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A Personalize-compatible route: the scope its SigV4 credentials need (auth.ts's `scope` is the API key's). */
    compatScope?: 'query' | 'ingest';
  }
  interface FastifyRequest {
    /** The raw body of a Personalize-compatible request (SigV4 signs it). */
    rawBody?: Buffer;
  }
}

// ---- the mount ----

export async function registerPersonalizeCompat(base: FastifyInstance, o: PersonalizeCompatOptions): Promise<void> {
  const scopes = { query: 'query', ingest: 'ingest' } as const;

  /** The group's API key an access key id names (any served group: another group's key is told apart from an unknown one), with its secret. */
  const credentialsOf = (accessKeyId: string, routeGroup: string): { principal: Principal; secret: string } | undefined => {
    const id = keyIdOf(accessKeyId);
    if (id === undefined || o.group === undefined || o.auth.rootKey === '') return undefined;
    for (const group of keyGroupCandidates(o.auth, routeGroup)) {
      let key;
      try {
        key = o.group(group).resources.get('apikey', id);
      } catch {
        continue;
      }
      if (key) return { principal: { kind: 'key', group, key }, secret: secretAccessKeyFor(o.auth.rootKey, group, id) };
    }
    return undefined;
  };

  await base.register(async (scoped) => {
    const app = scoped.withTypeProvider<TypeBoxTypeProvider>();
    // The SDKs send application/json (boto3 too); the raw bytes are kept for the signature.
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser(['application/json', 'application/x-amz-json-1.1'], { parseAs: 'buffer' }, (request, body, done) => {
      const raw = body as Buffer;
      request.rawBody = raw;
      try {
        done(null, raw.length === 0 ? {} : JSON.parse(raw.toString('utf8')));
      } catch {
        done(new AppError('REQUEST_MALFORMED', 'the request body is not valid JSON'), undefined);
      }
    });
    scoped.setErrorHandler((err, request, reply) => {
      const e = toAppError(err, o.bodyLimit);
      if (e.status >= 500) request.log.error({ err }, e.message);
      else request.log.info({ code: e.code, field: e.field }, e.message);
      const type = awsErrorType(e);
      const field = e.field === undefined ? '' : ` (${e.field})`;
      return reply
        .code(awsStatus(e, type))
        .header('x-amzn-errortype', type)
        .header('content-type', 'application/json')
        .send({ __type: type, message: `${e.message}${field}`, code: e.code, ...(e.field === undefined ? {} : { field: e.field }) });
    });
    // After the body is read (the signature covers it), before validation: who signed, and may they.
    scoped.addHook('preValidation', async (request, reply) => {
      const scope = request.routeOptions.config.compatScope;
      if (scope === undefined) return;
      const { group } = request.params as { group: string };
      if (o.auth.mode === 'off') {
        request.principal = { kind: 'anonymous' };
        return;
      }
      let found: { principal: Principal; secret: string } | undefined;
      try {
        await verifySigV4({ method: request.method, url: request.url, headers: request.headers, body: request.rawBody ?? Buffer.alloc(0) }, (akid) => (found = credentialsOf(akid, group))?.secret, o.now());
        authorize(found!.principal, group, scope);
      } catch (err) {
        if (o.onRefused && (isAppError(err, 'UNAUTHENTICATED') || isAppError(err, 'FORBIDDEN'))) await o.onRefused(request, reply);
        throw err;
      }
      request.principal = found!.principal;
      await o.limit?.(request, reply);
    });

    const hidden = { hide: true, params: GroupParams };
    const query = { preValidation: o.knownGroup, config: { compatScope: scopes.query } };
    const ingest = { preValidation: o.ingestGroup, config: { compatScope: scopes.ingest } };
    app.post(`${MOUNT}/:group/recommendations`, { ...query, schema: { ...hidden, body: GetRecommendationsRequest } }, async (request) => {
      const b = request.body;
      const g = served(request.params.group);
      deploymentOf(b);
      const n = numResults(b.numResults);
      const filter = filterOf(b.filterArn, 'filterArn');
      if (b.filterValues !== undefined && filter === undefined) throw new AppError('FILTER_VALUES_INVALID', 'filterValues need a filterArn', { field: 'filterValues' });
      const promotion = b.promotions?.[0];
      let answer: Answer;
      if (b.userId !== undefined) {
        const promotions =
          promotion === undefined
            ? undefined
            : [
                {
                  name: required(promotion.name, 'promotions[0].name'),
                  percentPromotedItems: required(promotion.percentPromotedItems, 'promotions[0].percentPromotedItems'),
                  filter: required(filterOf(promotion.filterArn, 'promotions[0].filterArn'), 'promotions[0].filterArn'),
                  filterValues: promotion.filterValues,
                },
              ];
        const ask = { userId: b.userId, numResults: n, filter, filterValues: b.filterValues, promotions };
        answer = ((await o.askOwner?.(b.userId, `/v1/groups/${request.params.group}/recommendations`, ask)) as Answer | undefined) ?? (await g.query.recommendations(ask));
      } else if (b.itemId !== undefined) {
        if (promotion !== undefined) throw new AppError('REQUEST_INVALID', 'promotions need a userId', { field: 'promotions' });
        answer = await g.query.related({ itemId: b.itemId, numResults: n, filter, filterValues: b.filterValues });
      } else {
        throw new AppError('REQUEST_INVALID', 'GetRecommendations needs a userId (user recommendations) or an itemId (related items)', { field: 'userId' });
      }
      return { itemList: await predicted(g, answer.itemList, b.metadataColumns, promotion?.name), recommendationId: answer.recommendationId };
    });

    app.post(`${MOUNT}/:group/personalize-ranking`, { ...query, schema: { ...hidden, body: GetPersonalizedRankingRequest } }, async (request) => {
      const b = request.body;
      const g = served(request.params.group);
      arnName(b.campaignArn, 'campaignArn', ['campaign']);
      const filter = filterOf(b.filterArn, 'filterArn');
      if (b.filterValues !== undefined && filter === undefined) throw new AppError('FILTER_VALUES_INVALID', 'filterValues need a filterArn', { field: 'filterValues' });
      const ask = { userId: b.userId, inputList: b.inputList, filter, filterValues: b.filterValues };
      const answer = ((await o.askOwner?.(b.userId, `/v1/groups/${request.params.group}/personalized-ranking`, ask)) as Answer | undefined) ?? (await g.query.ranking(ask));
      return { personalizedRanking: await predicted(g, answer.itemList, b.metadataColumns, undefined), recommendationId: answer.recommendationId };
    });

    const accepted = (reply: FastifyReply) => reply.code(200).header('content-type', 'application/json').send('{}');

    app.post(`${MOUNT}/:group/events`, { ...ingest, schema: { ...hidden, body: PutEventsRequest } }, async (request, reply) => {
      const b = request.body;
      const eventList: Event[] = b.eventList.map((e, i) => {
        if (e.itemId === undefined) throw new AppError('REQUEST_INVALID', 'streamrec needs the itemId of every event (events without an item are not supported)', { field: `eventList[${i}].itemId` });
        const context = e.properties === undefined ? {} : columnsOf(e.properties, `eventList[${i}].properties`, false);
        if (e.metricAttribution !== undefined) context.EVENT_ATTRIBUTION_SOURCE = e.metricAttribution.eventAttributionSource;
        return {
          eventType: e.eventType,
          itemId: e.itemId,
          sentAt: e.sentAt,
          ...(e.eventId === undefined ? {} : { eventId: e.eventId }),
          ...(e.eventValue === undefined ? {} : { eventValue: e.eventValue }),
          ...(e.recommendationId === undefined ? {} : { recommendationId: e.recommendationId }),
          ...(e.impression === undefined ? {} : { impression: e.impression }),
          ...(Object.keys(context).length === 0 ? {} : { properties: context as Record<string, string> }),
        };
      });
      // Anonymous events (no userId) are the session's: its id is the user id (and the Kafka key).
      const body = { userId: b.userId ?? b.sessionId, sessionId: b.sessionId, eventList };
      await o.produce(request, request.params.group, 'interactions', prepareEvents(body, o.eventChecks()), 'events', eventList.length);
      return accepted(reply);
    });

    app.post(`${MOUNT}/:group/items`, { ...ingest, schema: { ...hidden, body: PutItemsRequest } }, async (request, reply) => {
      const b = request.body;
      datasetOf(b.datasetArn, 'ITEMS');
      const items: ItemInput[] = b.items.map((it, i) => {
        const props = it.properties === undefined ? undefined : columnsOf(it.properties, `items[${i}].properties`, true);
        const created = props?.CREATION_TIMESTAMP;
        if (props) delete props.CREATION_TIMESTAMP;
        return {
          itemId: it.itemId,
          ...(props === undefined ? {} : { properties: props }),
          ...(typeof created === 'number' || typeof created === 'string' ? { creationTimestamp: typeof created === 'string' && /^\d+(\.\d+)?$/.test(created) ? Number(created) : created } : {}),
        };
      });
      await o.produce(request, request.params.group, 'items', prepareItems({ items }, o.codecs), 'items', items.length);
      return accepted(reply);
    });

    app.post(`${MOUNT}/:group/users`, { ...ingest, schema: { ...hidden, body: PutUsersRequest } }, async (request, reply) => {
      const b = request.body;
      datasetOf(b.datasetArn, 'USERS');
      const users: UserInput[] = b.users.map((u, i) => ({ userId: u.userId, ...(u.properties === undefined ? {} : { properties: columnsOf(u.properties, `users[${i}].properties`, true) }) }));
      await o.produce(request, request.params.group, 'users', prepareUsers({ users }, o.codecs), 'users', users.length);
      return accepted(reply);
    });
  });

  // The credentials of an API key, for the SDKs (admin scope, like the keys themselves).
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const KeyParams = Type.Object({ group: GroupName, id: IdString({ description: 'An API key id (GET .../api-keys).' }) }, { additionalProperties: false });
  const Credentials = Type.Object({
    accessKeyId: Type.String(),
    secretAccessKey: Type.String(),
    endpointPath: Type.String({ description: 'Append to the service URL: the endpoint the AWS SDKs take.' }),
    scopes: Type.Array(Type.String()),
  });
  app.get(
    '/v1/groups/:group/api-keys/:id/aws-credentials',
    {
      preValidation: o.knownGroup,
      config: { scope: 'admin' },
      schema: { summary: 'SigV4 credentials of an API key for the AWS SDKs (Personalize-compatible endpoint /personalize/<group>)', params: KeyParams, response: { 200: Credentials, '4xx': ErrorBody, '5xx': ErrorBody } },
    },
    async (request) => {
      const { group, id } = request.params;
      const key = served(group).resources.get('apikey', id);
      if (!key) throw new AppError('RESOURCE_NOT_FOUND', `dataset group has no API key ${JSON.stringify(id)}`, { field: 'id' });
      return { accessKeyId: accessKeyIdOf(id), secretAccessKey: secretAccessKeyFor(o.auth.rootKey, group, id), endpointPath: `${MOUNT}/${group}`, scopes: key.scopes };
    },
  );

  function served(group: string): GroupServices {
    if (!o.group) throw new AppError('GROUP_NOT_FOUND', 'this instance serves no dataset group (ingestion only)', { field: 'group' });
    return o.group(group);
  }
}

/** campaignArn or recommenderArn (one of them, as in Personalize): either is the group's deployment. */
function deploymentOf(b: GetRecommendationsRequest): void {
  if (b.campaignArn !== undefined && b.recommenderArn !== undefined) throw new AppError('REQUEST_INVALID', 'give campaignArn or recommenderArn, not both', { field: 'recommenderArn' });
  if (b.campaignArn !== undefined) arnName(b.campaignArn, 'campaignArn', ['campaign']);
  else if (b.recommenderArn !== undefined) arnName(b.recommenderArn, 'recommenderArn', ['recommender']);
  else throw new AppError('REQUEST_INVALID', 'GetRecommendations needs a campaignArn or a recommenderArn (either names the group\'s deployment)', { field: 'campaignArn' });
}

/** datasetArn must name the group's dataset of that type (`.../dataset/DATASET_GROUP/ITEMS`). */
function datasetOf(arn: string, type: 'ITEMS' | 'USERS'): void {
  const { name } = arnName(arn, 'datasetArn', ['dataset']);
  if (name !== type) throw new AppError('REQUEST_INVALID', `datasetArn must name the ${type} dataset (.../dataset/DATASET_GROUP/${type}), not ${JSON.stringify(name)}`, { field: 'datasetArn' });
}

function required<T>(v: T | undefined, field: string): T {
  if (v === undefined) throw new AppError('REQUEST_INVALID', `${field} is required`, { field });
  return v;
}
