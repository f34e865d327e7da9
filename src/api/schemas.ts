/**
 * TypeBox schemas of the HTTP ingestion API: requests (modelled on Amazon Personalize's PutEvents,
 * PutItems and PutUsers) and responses. Request bodies refuse undeclared fields.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ERROR_CODES } from '../errors/index.js';
import { MAX_ID_LENGTH } from '../serde/validate.js';

export const MAX_RECORDS_PER_REQUEST = 100;

/** An id: 1 to MAX_ID_LENGTH (256) characters, as in Personalize. */
const Id = (description: string) => Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH, description });
/** An id in a query string or a path: at most MAX_ID_LENGTH characters. */
export const IdString = (options: { minLength?: number; description?: string } = {}) => Type.String({ minLength: 1, ...options, maxLength: MAX_ID_LENGTH });

/** ISO 8601 date-time with a time zone (src/serde/timestamp.ts checks the ranges of each field). */
const ISO_8601_PATTERN =
  '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,9})?)?([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])$';

/**
 * `x-doc`: what the OpenAPI document states instead of the validation schema (ops.ts swaps it in).
 * For checks the server makes after schema validation, so that every problem of every record is
 * reported at once (400 RECORD_INVALID, src/serde/timestamp.ts), not only ajv's first.
 */
export const DOC = 'x-doc';

/** Epoch seconds (a number below 1e11), epoch milliseconds (a number from 1e11) or an ISO 8601 date-time string. */
export const Timestamp = Type.Union([Type.Number(), Type.String()], {
  description:
    'Epoch seconds (a number < 1e11), epoch milliseconds (a number >= 1e11) or an ISO 8601 date-time with a time zone; after 1970 (and ingest.minTimestampMs), at most ingest.maxFutureSkewMs ahead of the clock.',
  [DOC]: { anyOf: [{ type: 'number', minimum: 0, exclusiveMinimum: true }, { type: 'string', pattern: ISO_8601_PATTERN }] },
});

/** An object, or a JSON string holding one (as Personalize's SDKs send it); documented with the values convert.ts accepts. */
const propertiesOf = (values: Record<string, unknown>, description: string) =>
  Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.String()], {
    description: `${description} An object, or a JSON string of one.`,
    [DOC]: { anyOf: [{ type: 'object', additionalProperties: values }, { type: 'string' }] },
  });
/** An event's properties: CONTEXT, a map of strings. */
export const EventProperties = propertiesOf({ type: 'string' }, 'CONTEXT: values are strings.');
/** An item's or user's properties: METADATA (a string, a number, a boolean or an array of strings each). */
export const Properties = propertiesOf(
  { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }, { type: 'array', items: { type: 'string' } }] },
  'METADATA: values are strings, numbers, booleans or arrays of strings.',
);

/** A dataset group name, as src/kafka/topics.ts validateGroupName enforces it (INVALID_GROUP_NAME). */
export const GroupName = Type.String({ pattern: '^[A-Za-z0-9_-]{1,60}$', minLength: 1, maxLength: 60, description: 'A dataset group: 1-60 characters from A-Z a-z 0-9 _ -' });
/** `t` or null. */
export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const GroupParams = Type.Object({ group: GroupName }, { additionalProperties: false });
export type GroupParams = Static<typeof GroupParams>;

export const Event = Type.Object(
  {
    eventId: Type.Optional(Id('Accepted for compatibility with PutEvents; not stored.')),
    eventType: Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH, description: 'click, purchase, rating, ... (EVENT_TYPE); not blank.', [DOC]: { type: 'string', minLength: 1, maxLength: MAX_ID_LENGTH, pattern: '\\S' } }),
    eventValue: Type.Optional(Type.Number({ description: 'EVENT_VALUE.' })),
    itemId: Id('ITEM_ID.'),
    sentAt: Timestamp,
    recommendationId: Type.Optional(Id('RECOMMENDATION_ID.')),
    impression: Type.Optional(Type.Array(Type.String({ maxLength: MAX_ID_LENGTH }), { description: 'IMPRESSION: item ids shown, in order.' })),
    properties: Type.Optional(EventProperties),
  },
  { additionalProperties: false },
);
export type Event = Static<typeof Event>;

export const PutEventsBody = Type.Object(
  {
    userId: Id('USER_ID; also the Kafka key.'),
    sessionId: Type.Optional(Id('SESSION_ID.')),
    eventList: Type.Array(Event, { minItems: 1, maxItems: MAX_RECORDS_PER_REQUEST }),
  },
  { additionalProperties: false },
);
export type PutEventsBody = Static<typeof PutEventsBody>;

export const ItemInput = Type.Object(
  {
    itemId: Id('ITEM_ID; also the Kafka key.'),
    creationTimestamp: Type.Optional(Timestamp),
    properties: Type.Optional(Properties),
  },
  { additionalProperties: false },
);
export type ItemInput = Static<typeof ItemInput>;

export const PutItemsBody = Type.Object(
  { items: Type.Array(ItemInput, { minItems: 1, maxItems: MAX_RECORDS_PER_REQUEST }) },
  { additionalProperties: false },
);
export type PutItemsBody = Static<typeof PutItemsBody>;

export const UserInput = Type.Object(
  {
    userId: Id('USER_ID; also the Kafka key.'),
    properties: Type.Optional(Properties),
  },
  { additionalProperties: false },
);
export type UserInput = Static<typeof UserInput>;

export const PutUsersBody = Type.Object(
  { users: Type.Array(UserInput, { minItems: 1, maxItems: MAX_RECORDS_PER_REQUEST }) },
  { additionalProperties: false },
);
export type PutUsersBody = Static<typeof PutUsersBody>;

export const Accepted = Type.Object({ accepted: Type.Integer() });

export const RecordError = Type.Object({
  /** Position of the record in the request's list. */
  index: Type.Integer(),
  field: Type.String(),
  reason: Type.String(),
});
export type RecordError = Static<typeof RecordError>;

/** Every error response: the code from src/errors, a message, and where known the field. */
export const ErrorBody = Type.Object({
  code: Type.Unsafe<string>({ type: 'string', enum: Object.keys(ERROR_CODES), description: 'The error code (docs/errors.md); the status is the code\'s.' }),
  message: Type.String(),
  field: Type.Optional(Type.String()),
  retriable: Type.Boolean(),
  errors: Type.Optional(Type.Array(RecordError)),
});
export type ErrorBody = Static<typeof ErrorBody>;

export const Health = Type.Object({ status: Type.Literal('ok'), state: Type.String() });

/** GET /health while a component failed for good: what failed. */
export const Unhealthy = Type.Object({ status: Type.Literal('failed'), state: Type.String(), reasons: Type.Array(Type.String()) });

export const Readiness = Type.Object({ state: Type.String(), ready: Type.Boolean(), detail: Type.Optional(Type.Unknown()) });

/** Response schemas of the ingestion routes. */
export const ingestResponses = { 202: Accepted, '4xx': ErrorBody, '5xx': ErrorBody } as const;

/** `x-json-object`: a query parameter holding a JSON object of strings (documented as content application/json by ops.ts). */
export const JSON_PARAM = 'x-json-object';

/** numResults: an integer 1 to 500 (query strings are coerced to numbers for this: see app.ts). */
export const NumResults = Type.Integer({ minimum: 1, maximum: 500, description: '1 to 500; default 25' });
const FilterName = Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH, description: 'The name of a filter of the group (GET /v1/groups/G/filters).' });
const FilterValuesJson = Type.String({ maxLength: 10_000, [JSON_PARAM]: true, description: 'JSON object: $PARAM name -> values, e.g. {"GENRES": "\\"Comedy\\",\\"Drama\\""}.' });
/** filterValues in a JSON body: an object of strings, as in Personalize. */
export const FilterValues = Type.Record(Type.String({ pattern: '^[A-Za-z0-9_]{1,256}$' }), Type.String({ maxLength: 1000 }), { description: '$PARAM name -> values ("a","b" or numbers).' });
const Context = Type.Record(Type.String(), Type.String(), { description: 'Context of the request (e.g. DEVICE); accepted, not used by the current recipes.' });

/** GetRecommendations (query string: strings only, parsed by the route). */
export const RecommendationsQuery = Type.Object(
  {
    userId: IdString(),
    numResults: Type.Optional(NumResults),
    filter: Type.Optional(FilterName),
    filterValues: Type.Optional(FilterValuesJson),
    context: Type.Optional(Type.String({ maxLength: 10_000, description: 'JSON object of strings, e.g. {"DEVICE":"phone"}.', [JSON_PARAM]: true })),
  },
  { additionalProperties: false },
);
export type RecommendationsQuery = Static<typeof RecommendationsQuery>;

const PromotionSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63 }),
    percentPromotedItems: Type.Integer({ minimum: 1, maximum: 100 }),
    filter: FilterName,
    filterValues: Type.Optional(FilterValues),
  },
  { additionalProperties: false, description: 'A share of the list from the items the filter keeps, spread through it with reason "promotion".' },
);

/** filterValues only with a filter (400 FILTER_VALUES_INVALID otherwise). */
const FILTER_VALUES_NEED_A_FILTER = { anyOf: [{ not: { required: ['filterValues'] } }, { required: ['filter'] }] };

/** GetRecommendations as a JSON body (filterValues and context as objects; promotions). */
export const RecommendationsBody = Type.Object(
  {
    userId: IdString(),
    numResults: Type.Optional(NumResults),
    filter: Type.Optional(FilterName),
    filterValues: Type.Optional(FilterValues),
    context: Type.Optional(Context),
    promotions: Type.Optional(Type.Array(PromotionSchema, { maxItems: 1, description: 'At most one promotion (as in Personalize).' })),
  },
  { additionalProperties: false, [DOC]: FILTER_VALUES_NEED_A_FILTER },
);
export type RecommendationsBody = Static<typeof RecommendationsBody>;

export const RelatedQuery = Type.Object(
  {
    itemId: IdString(),
    numResults: Type.Optional(NumResults),
    userId: Type.Optional(IdString({ description: 'For filters on the user\'s interactions.' })),
    filter: Type.Optional(FilterName),
    filterValues: Type.Optional(FilterValuesJson),
  },
  { additionalProperties: false },
);
export type RelatedQuery = Static<typeof RelatedQuery>;

export const RankingBody = Type.Object(
  {
    userId: IdString(),
    inputList: Type.Array(IdString(), { minItems: 1, maxItems: 500 }),
    filter: Type.Optional(FilterName),
    filterValues: Type.Optional(FilterValues),
    context: Type.Optional(Context),
  },
  { additionalProperties: false, [DOC]: FILTER_VALUES_NEED_A_FILTER },
);
export type RankingBody = Static<typeof RankingBody>;

export const PopularQuery = Type.Object(
  {
    kind: Type.Optional(Type.Union([Type.Literal('popular'), Type.Literal('trending')], { description: 'popular: most distinct users; trending: time-decayed events. Default popular.' })),
    scope: Type.Optional(Type.Union([Type.Literal('group'), Type.Literal('local')], { description: "group (default): every instance's partitions; local: this instance's only (what instances ask each other)." })),
    numResults: Type.Optional(NumResults),
    userId: Type.Optional(IdString()),
    filter: Type.Optional(FilterName),
    filterValues: Type.Optional(FilterValuesJson),
  },
  { additionalProperties: false },
);
export type PopularQuery = Static<typeof PopularQuery>;

const ItemList = Type.Array(
  Type.Object({
    itemId: Type.String(),
    score: Type.Optional(Type.Number({ description: 'Absent for items the model cannot score (ranking).' })),
    reason: Type.Optional(Type.String({ description: 'Set when the item is not a model pick: popular, exploration, promotion, not-in-model.' })),
  }),
);

export const Recommendations = Type.Object({
  recommendationId: Type.String({ description: 'Cite it in later events (recommendationId) for attribution.' }),
  version: Type.String(),
  recipe: Type.String(),
  itemList: ItemList,
});

export const Popular = Type.Object({ recommendationId: Type.String(), kind: Type.String(), itemList: ItemList });
