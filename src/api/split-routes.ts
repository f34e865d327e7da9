/**
 * A/B traffic splits of the group's deployment (scope `admin`; docs/experiments.md):
 *
 * | route                                                   | what                                                      |
 * |---------------------------------------------------------|-----------------------------------------------------------|
 * | POST   /v1/groups/:g/deployments/default/split          | start a split {arms: [{version, weight}, ...]} (replaces one) |
 * | GET    /v1/groups/:g/deployments/default/split          | the split, and whether this instance applies it           |
 * | DELETE /v1/groups/:g/deployments/default/split          | end it: the main version serves everyone                   |
 * | GET    /v1/groups/:g/deployments/default/split/report   | each arm's online metrics, CTR intervals, the z-tests      |
 * | POST   /v1/groups/:g/deployments/default/split/promote  | serve the significant winner ({force} / {version} otherwise) |
 *
 * The report reads the group's online metrics (`online` on the group's services, counted by the
 * processor from attributed events); without them it answers 409 ONLINE_METRICS_UNAVAILABLE.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { AppError } from '../errors/index.js';
import { MAX_ARMS, type TrafficSplit } from '../serving/split.js';
import { splitReport, type SplitReport, type SplitReportOptions } from '../serving/split-report.js';
import type { OnlineMetricsSource } from '../stream/online-metrics.js';
import type { ServingRecord } from '../stream/versions.js';
import { ErrorBody, GroupName, IdString, Nullable } from './schemas.js';
import type { GroupServices } from './types.js';

const errors = { '4xx': ErrorBody, '5xx': ErrorBody } as const;
const Params = Type.Object({ group: GroupName, name: IdString({ description: 'The deployment: "default".' }) }, { additionalProperties: false });
const Arm = Type.Object({ version: IdString({ description: 'A version id (GET .../solutions/default/versions).' }), weight: Type.Number({ description: 'Greater than 0 (checked with the versions: 400 REQUEST_INVALID naming arms[i].weight); the arm\'s share of users is weight / the sum of the weights.' }) }, { additionalProperties: false });
const SplitBody = Type.Object({ arms: Type.Array(Arm, { minItems: 2, maxItems: MAX_ARMS, description: `2 to ${MAX_ARMS} arms, numbered 1, 2, ... in this order (the arm a recommendationId carries).` }) }, { additionalProperties: false });
const SplitView = Type.Object({
  id: Type.String(),
  startedAt: Type.String(),
  mainVersion: Type.String({ description: 'The deployment\'s version (whose HRNN user states are kept; other arms derive them at query time).' }),
  arms: Type.Array(Type.Object({ arm: Type.Integer(), version: Type.String(), weight: Type.Number(), share: Type.Number() })),
  appliedHere: Type.Boolean({ description: 'Whether this instance has loaded every arm\'s version and splits its answers.' }),
});
const ReportQuery = Type.Object(
  {
    clickType: Type.Optional(IdString({ description: 'The event type that counts as a click (default click).' })),
    conversionType: Type.Optional(IdString({ description: 'The event type that counts as a conversion; its EVENT_VALUE sum is revenue (default purchase).' })),
    alpha: Type.Optional(Type.Number({ minimum: 1e-6, maximum: 0.5, description: 'The significance level (default 0.05), shared by all comparisons (Bonferroni).' })),
  },
  { additionalProperties: false },
);
const IntervalView = Type.Object({ low: Type.Number(), high: Type.Number() });
const Report = Type.Object({
  split: Type.Object({ id: Type.String(), startedAt: Type.String() }),
  clickType: Type.String(),
  conversionType: Type.String(),
  alpha: Type.Number(),
  arms: Type.Array(
    Type.Object({
      arm: Type.Integer(),
      version: Type.String(),
      weight: Type.Number(),
      share: Type.Number(),
      impressions: Type.Integer({ description: 'Attributed events that carried an IMPRESSION list.' }),
      clicks: Type.Integer(),
      ctr: Nullable(Type.Number()),
      ctrInterval: Nullable(IntervalView),
      conversions: Type.Integer(),
      revenue: Type.Number(),
      events: Type.Record(Type.String(), Type.Integer()),
    }),
  ),
  comparisons: Type.Array(
    Type.Object({
      a: Type.Integer(),
      b: Type.Integer(),
      difference: Type.Number({ description: 'CTR(a) - CTR(b).' }),
      relativeDifference: Nullable(Type.Number()),
      z: Nullable(Type.Number()),
      pValue: Nullable(Type.Number()),
      alpha: Type.Number({ description: 'This comparison\'s level: alpha / the number of comparisons.' }),
      significant: Type.Boolean(),
      reliable: Type.Boolean(),
      minimumDetectableEffect: Nullable(Type.Number()),
      samplesStillNeeded: Nullable(Type.Integer()),
    }),
  ),
  winner: Nullable(Type.Object({ arm: Type.Integer(), version: Type.String() })),
  decision: Type.String(),
  warnings: Type.Array(Type.String()),
});
const PromoteBody = Type.Object(
  {
    version: Type.Optional(IdString({ description: 'Promote this arm\'s version whatever the report says.' })),
    force: Type.Optional(Type.Boolean({ description: 'Without a significant winner, promote the arm with the best CTR.' })),
    clickType: Type.Optional(IdString()),
    alpha: Type.Optional(Type.Number({ minimum: 1e-6, maximum: 0.5 })),
  },
  { additionalProperties: false },
);
const Promoted = Type.Object({ version: Type.String(), reason: Type.String(), at: Type.String(), report: Nullable(Report) });

export interface SplitRouteOptions {
  group: (group: string) => GroupServices;
  preValidation: (request: FastifyRequest) => Promise<void>;
}

/** The group's online metrics, when its service counts them (helper `attrib`'s `online` on GroupServices). */
function onlineOf(g: GroupServices): OnlineMetricsSource | undefined {
  return g.online;
}

export function registerSplitRoutes(base: FastifyInstance, o: SplitRouteOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const admin = { preValidation: o.preValidation, config: { scope: 'admin' as const } };
  const deployment = (name: string) => {
    if (name !== 'default') throw new AppError('RESOURCE_NOT_FOUND', `a group has one deployment, "default"; not ${JSON.stringify(name)}`, { field: 'name' });
  };
  /** The running split and its announcement; SPLIT_NOT_FOUND without one. */
  const running = (g: GroupServices): { record: ServingRecord; split: TrafficSplit } => {
    const record = g.deployment.describe().announced;
    if (!record?.split) throw new AppError('SPLIT_NOT_FOUND', 'the deployment "default" has no traffic split', { field: 'split' });
    return { record, split: record.split };
  };
  const view = (g: GroupServices, record: ServingRecord, split: TrafficSplit): Static<typeof SplitView> => {
    const total = split.arms.reduce((s, a) => s + a.weight, 0);
    const d = g.deployment.describe();
    return {
      id: split.id,
      startedAt: split.startedAt,
      mainVersion: record.version,
      arms: split.arms.map((a, i) => ({ arm: i + 1, version: a.version, weight: a.weight, share: a.weight / total })),
      appliedHere: d.split === split.id,
    };
  };
  const report = async (g: GroupServices, split: TrafficSplit, options: SplitReportOptions): Promise<SplitReport> => {
    const online = onlineOf(g);
    if (!online) throw new AppError('ONLINE_METRICS_UNAVAILABLE', 'this service counts no online metrics for the group, so the split cannot be measured', { field: 'online' });
    return splitReport(split, await online.rows(), options);
  };

  app.post('/v1/groups/:group/deployments/:name/split', { ...admin, schema: { summary: 'Splits the deployment\'s traffic between versions (an A/B test); replaces a running split', params: Params, body: SplitBody, response: { 201: SplitView, ...errors } } }, async (request, reply) => {
    deployment(request.params.name);
    const g = o.group(request.params.group);
    if (!g.deployment.split) throw new AppError('SPLIT_NOT_FOUND', 'this service cannot split traffic', { field: 'split' });
    const record = await g.deployment.split(request.body.arms);
    return reply.code(201).send(view(g, record, record.split!));
  });
  app.get('/v1/groups/:group/deployments/:name/split', { ...admin, schema: { summary: 'The deployment\'s traffic split', params: Params, response: { 200: SplitView, ...errors } } }, async (request) => {
    deployment(request.params.name);
    const g = o.group(request.params.group);
    const { record, split } = running(g);
    return view(g, record, split);
  });
  app.delete('/v1/groups/:group/deployments/:name/split', { ...admin, schema: { summary: 'Ends the traffic split: the deployment\'s version serves everyone', params: Params, response: { 200: Type.Object({ version: Type.String(), reason: Type.String(), at: Type.String() }), ...errors } } }, async (request) => {
    deployment(request.params.name);
    const g = o.group(request.params.group);
    running(g);
    if (!g.deployment.endSplit) throw new AppError('SPLIT_NOT_FOUND', 'this service cannot split traffic', { field: 'split' });
    const r = await g.deployment.endSplit();
    return { version: r.version, reason: r.reason, at: r.at };
  });
  app.get('/v1/groups/:group/deployments/:name/split/report', { ...admin, schema: { summary: 'Each arm\'s online metrics, CTR with a 95% interval, and which arm is significantly better', params: Params, querystring: ReportQuery, response: { 200: Report, ...errors } } }, async (request) => {
    deployment(request.params.name);
    const g = o.group(request.params.group);
    return report(g, running(g).split, request.query);
  });
  app.post('/v1/groups/:group/deployments/:name/split/promote', { ...admin, schema: { summary: 'Serves the split\'s significantly better arm (or {version}, or with {force} the best CTR) and ends the split', params: Params, body: PromoteBody, response: { 200: Promoted, ...errors } } }, async (request) => {
    deployment(request.params.name);
    const g = o.group(request.params.group);
    const { split } = running(g);
    const b = request.body;
    if (b.version !== undefined) {
      const arm = split.arms.findIndex((a) => a.version === b.version) + 1;
      if (arm === 0) throw new AppError('REQUEST_INVALID', `version ${JSON.stringify(b.version)} is not an arm of split ${split.id} (${split.arms.map((a) => a.version).join(', ')})`, { field: 'version' });
      const online = onlineOf(g);
      const r = online ? splitReport(split, await online.rows(), b) : null;
      const done = await g.deployment.promote(b.version, `split ${split.id}: arm ${arm} promoted by request`);
      return { version: done.version, reason: done.reason, at: done.at, report: r };
    }
    const r = await report(g, split, b);
    let pick = r.winner;
    let why = r.winner ? `split ${split.id}: arm ${r.winner.arm} won: ${r.decision}` : '';
    if (!pick) {
      if (!b.force) throw new AppError('SPLIT_NO_WINNER', `${r.decision}; pass {force: true} to promote the best CTR anyway, or {version}`, { field: 'force' });
      const best = [...r.arms].filter((a) => a.ctr !== null).sort((x, y) => y.ctr! - x.ctr! || x.arm - y.arm)[0];
      if (!best) throw new AppError('SPLIT_NO_WINNER', `${r.decision}; with no impressions in any arm there is no best CTR: pass {version}`, { field: 'version' });
      pick = { arm: best.arm, version: best.version };
      why = `split ${split.id}: arm ${best.arm} promoted by force (best CTR, not significant: ${r.decision})`;
    }
    const done = await g.deployment.promote(pick.version, why);
    return { version: done.version, reason: done.reason, at: done.at, report: r };
  });
}
