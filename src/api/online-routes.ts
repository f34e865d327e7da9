/**
 * `GET /v1/groups/:group/metrics/online` (scope `admin`): the group's online metrics per served
 * version (src/stream/attribution.ts counts them in the processor's state): one row per (version,
 * arm, event type) plus the unattributed events per type (version null), and per (version, arm)
 * the click-through rate of `clickType` (default `click`) and the conversion rate of
 * `conversionType` (default `purchase`): their events over the events of any type
 * that carried an impression list.
 *
 * The counts are per input partition; each instance reads the partitions it owns and asks the
 * others for theirs (`scope=local`, with the root key, as popular lists are summed: src/api/forward.ts).
 * Each partition is taken once; `partitions.missing` names those no instance answered for (a
 * partition being moved, an instance that did not answer): the rows are then partial.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../errors/index.js';
import { combine, summarize, type PartitionCounts } from '../stream/attribution.js';
import type { OnlineMetricRow } from '../stream/online-metrics.js';
import type { Logger } from '../util/log.js';
import { FORWARDED_HEADER } from './forward.js';
import { ErrorBody, GroupName, IdString, Nullable } from './schemas.js';
import type { GroupServices } from './types.js';

/**
 * The other instances' partitions' counts (their `scope=local` answers), asked with the root key;
 * an instance that does not answer is left out (logged): its partitions are then `missing`.
 */
export function peerPartitionCounts(o: { group: string; rootKey: string; peers: () => readonly string[]; log: Pick<Logger, 'warn'>; timeoutMs?: number }): () => Promise<PartitionCounts[]> {
  return async () => {
    const peers = o.peers();
    if (o.rootKey === '' || peers.length === 0) return [];
    const settled = await Promise.allSettled(
      peers.map(async (url) => {
        const res = await fetch(`${url}/v1/groups/${encodeURIComponent(o.group)}/metrics/online?scope=local`, {
          headers: { 'x-api-key': o.rootKey, [FORWARDED_HEADER]: '1' },
          signal: AbortSignal.timeout(o.timeoutMs ?? 2000),
        });
        if (!res.ok) throw new Error(`${url} answered ${res.status}`);
        return ((await res.json()) as { byPartition: PartitionCounts[] }).byPartition;
      }),
    );
    for (const r of settled) if (r.status === 'rejected') o.log.warn({ err: r.reason }, 'an instance did not give its online metrics; they are partial');
    return settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  };
}


const CountFields = {
  events: Type.Integer(),
  impressionEvents: Type.Integer({ description: 'Events that carried a non-empty impression list.' }),
  impressedItems: Type.Integer({ description: 'Items in those impression lists.' }),
  valueSum: Type.Number({ description: 'EVENT_VALUE summed over the events that had one.' }),
  valueCount: Type.Integer({ description: 'Events that had an EVENT_VALUE.' }),
};
const TaggedRowSchema = Type.Object({ versionTag: Nullable(Type.String()), arm: Nullable(Type.Integer()), eventType: Type.String(), ...CountFields });
const RowSchema = Type.Object({
  version: Nullable(Type.String({ description: 'null: events that cited no answer of a version; tag:<tag>: a tag no known version (or several) has.' })),
  versionTag: Nullable(Type.String({ description: 'The 8 hex digits of sha256(version) the recommendationId carried.' })),
  unresolved: Type.Optional(Type.Union([Type.Literal('unknown'), Type.Literal('ambiguous')])),
  arm: Nullable(Type.Integer({ description: "The arm of the deployment's split (0 without a split)." })),
  eventType: Type.String(),
  ...CountFields,
});
const SummarySchema = Type.Object({
  version: Type.String(),
  arm: Type.Integer(),
  versionTag: Type.String(),
  events: Type.Integer({ description: 'Attributed events of any type.' }),
  impressionEvents: Type.Integer(),
  impressedItems: Type.Integer(),
  clicks: Type.Integer({ description: 'Attributed events of type clickType.' }),
  clickThroughRate: Nullable(Type.Number({ description: 'clicks / impressionEvents; null without impression events.' })),
  conversions: Type.Integer({ description: 'Attributed events of type conversionType.' }),
  conversionRate: Nullable(Type.Number({ description: 'conversions / impressionEvents; null without impression events.' })),
  valueSum: Type.Number(),
  valueCount: Type.Integer(),
});
const OnlineBody = Type.Object({
  group: Type.String(),
  scope: Type.String(),
  clickType: Type.String(),
  conversionType: Type.String(),
  partitions: Type.Object({
    total: Type.Integer(),
    counted: Type.Integer({ description: 'Partitions whose counts are in the rows.' }),
    missing: Type.Array(Type.Integer(), { description: 'Partitions no instance answered for (being moved, an instance down): the rows are partial.' }),
  }),
  rows: Type.Array(RowSchema),
  versions: Type.Array(SummarySchema, { description: 'Per (version, arm): totals, the click-through rate of clickType and the conversion rate of conversionType.' }),
  byPartition: Type.Optional(Type.Array(Type.Object({ partition: Type.Integer(), rows: Type.Array(TaggedRowSchema) }), { description: 'scope=local only: each owned partition\'s counts.' })),
});
const OnlineQuery = Type.Object(
  {
    version: Type.Optional(IdString({ description: 'Only the rows of this version (tag:<tag> for an unresolved tag).' })),
    eventType: Type.Optional(IdString({ description: 'Only the rows of this event type.' })),
    clickType: Type.Optional(IdString({ description: "The event type counted as a click for the click-through rate; default 'click'." })),
    conversionType: Type.Optional(IdString({ description: "The event type counted as a conversion for the conversion rate; default 'purchase'." })),
    scope: Type.Optional(Type.Union([Type.Literal('group'), Type.Literal('local')], { description: "group (default): every partition of the group; local: this instance's partitions (what instances ask each other)" })),
  },
  { additionalProperties: false },
);

export interface OnlineRouteOptions {
  group: (group: string) => GroupServices;
  preValidation: (request: FastifyRequest) => Promise<void>;
}

/** The rows matching the filters (`version`, `eventType`). */
export function filterRows<R extends OnlineMetricRow>(rows: readonly R[], f: { version?: string | undefined; eventType?: string | undefined }): R[] {
  return rows.filter((r) => (f.version === undefined || r.version === f.version) && (f.eventType === undefined || r.eventType === f.eventType));
}

export function registerOnlineMetricsRoute(base: FastifyInstance, o: OnlineRouteOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/v1/groups/:group/metrics/online',
    {
      preValidation: o.preValidation,
      config: { scope: 'admin' },
      schema: {
        tags: ['metrics'],
        summary: 'Online metrics per served version (metric attribution): events citing its recommendationIds, impressions, click-through rate, EVENT_VALUE sums',
        params: Type.Object({ group: GroupName }, { additionalProperties: false }),
        querystring: OnlineQuery,
        response: { 200: OnlineBody, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    async (request) => {
      const { group } = request.params;
      const { version, eventType, clickType = 'click', conversionType = 'purchase', scope = 'group' } = request.query;
      const online = o.group(group).online;
      if (!online?.read || !online.local) throw new AppError('ROUTE_NOT_FOUND', 'this instance has no online metrics (it runs without Kafka)');
      if (scope === 'local') {
        const byPartition = await online.local();
        const read = combine(byPartition, byPartition.length, [], () => '');
        // Unresolved here: the asking instance resolves the tags with the versions it knows.
        return { group, scope, clickType, conversionType, partitions: { ...read.partitions, missing: [] }, rows: [], versions: [], byPartition };
      }
      const read = await online.read();
      const rows = filterRows(read.rows, { version, eventType });
      return { group, scope, clickType, conversionType, partitions: read.partitions, rows, versions: summarize(filterRows(read.rows, { version }), clickType, conversionType) };
    },
  );
}
