/**
 * The resources a Personalize user recognizes, as REST (scope `admin`; creating and listing groups:
 * the root key only):
 *
 * | Personalize                          | streamrec                                                        |
 * |--------------------------------------|------------------------------------------------------------------|
 * | Create/List/Describe/DeleteDatasetGroup | POST/GET /v1/groups, GET/DELETE /v1/groups/:group             |
 * | Create/List/Describe/DeleteSolution  | POST/GET /v1/groups/:g/solutions, GET/DELETE .../solutions/:name  |
 * | CreateSolutionVersion, List..., Describe... (+ GetSolutionMetrics) | POST/GET .../solutions/:name/versions, GET .../versions/:id |
 * | Campaign: Describe/Update (promote), roll back | GET /v1/groups/:g/deployments[/default], POST .../default/promote, .../default/rollback |
 * | Create/List/Describe/DeleteFilter    | POST/GET /v1/groups/:g/filters, GET/DELETE .../filters/:name      |
 * | (IAM)                                | POST/GET /v1/groups/:g/api-keys, DELETE .../api-keys/:id          |
 *
 * The solution `default` is the group's configured training (training.recipe, training.params),
 * which the service retrains on its schedule; other solutions are trained on request. A solution's
 * versions are the registry's versions with the same recipe and parameters.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { AppError } from '../errors/index.js';
import { parseFilter } from '../filters/index.js';
import { validateGroupName } from '../kafka/topics.js';
import { SCOPES, type ApiKeyResource, type Scope, type SolutionResource } from '../stream/resources.js';
import { DEFAULT_HPO_BUDGET_MS, parseBudget } from '../training/hpo.js';
import type { HpoRequest } from '../training/model-files.js';
import type { VersionInfo } from '../training/registry.js';
import type { ServingRecord } from '../stream/versions.js';
import { newApiKey } from './auth.js';
import { DOC, ErrorBody, GroupName, GroupParams, IdString, Nullable } from './schemas.js';
import type { GroupAdmin, GroupServices } from './types.js';

const Name = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$', description: '1-63 characters from A-Z a-z 0-9 _ . -' });
const errors = { '4xx': ErrorBody, '5xx': ErrorBody } as const;
const PathName = IdString({ description: 'The name of a filter, solution or deployment of the group.' });
const NamedParams = Type.Object({ group: GroupName, name: PathName }, { additionalProperties: false });
const VersionParams = Type.Object({ group: GroupName, name: PathName, version: IdString({ description: 'A version id (GET .../versions).' }) }, { additionalProperties: false });
const KeyParams = Type.Object({ group: GroupName, id: IdString({ description: 'An API key id (GET .../api-keys).' }) }, { additionalProperties: false });

const FilterBody = Type.Object({ name: Name, filterExpression: Type.String({ minLength: 1, maxLength: 2560 }) }, { additionalProperties: false });
const Filter = Type.Object({ name: Type.String(), filterExpression: Type.String(), params: Type.Array(Type.String()), createdAt: Type.String() });
const HpoConfigBody = Type.Object(
  {
    budget: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 32 }), Type.Number({ minimum: 1 })], { description: 'The search budget: 20m, 90s, 1.5h, or seconds (at least 1; default: training.hpoBudget, else 10m).' })),
    maxNumberOfTrainingJobs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'At most this many trials (Personalize’s hpoResourceConfig.maxNumberOfTrainingJobs).' })),
  },
  { additionalProperties: false },
);
const SolutionBody = Type.Object(
  {
    name: Name,
    recipe: Type.Union(['hrnn', 'hrnn-metadata', 'hrnn-coldstart', 'sims', 'popularity-count', 'auto'].map((r) => Type.Literal(r))),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    performHPO: Type.Optional(Type.Boolean({ description: 'Search the parameters not in params before each version (docs/tuning.md).' })),
    hpoConfig: Type.Optional(HpoConfigBody),
  },
  { additionalProperties: false },
);
const HpoConfig = Type.Object({ budgetMs: Type.Number(), maxNumberOfTrainingJobs: Type.Optional(Type.Integer()) });
const Solution = Type.Object({
  name: Type.String(),
  recipe: Type.String(),
  params: Type.Record(Type.String(), Type.Unknown()),
  performHPO: Type.Boolean(),
  hpoConfig: Type.Optional(HpoConfig),
  createdAt: Type.Optional(Type.String()),
  versions: Type.Integer(),
});
const SolutionVersion = Type.Object({
  version: Type.String(),
  recipe: Type.String(),
  createdAt: Type.String(),
  trainingMs: Type.Number(),
  data: Type.Unknown(),
  split: Type.String(),
  metrics: Type.Record(Type.String(), Type.Number()),
  baseline: Type.Record(Type.String(), Type.Number()),
  serving: Type.Boolean(),
  hpo: Type.Optional(
    Type.Object({
      method: Type.String(),
      budgetMs: Type.Number(),
      usedMs: Type.Number(),
      trials: Type.Integer(),
      stoppedBy: Type.String(),
      chosen: Type.Object({ trial: Nullable(Type.Integer()), params: Type.Record(Type.String(), Type.Unknown()), epochs: Type.Optional(Type.Integer()), ndcg10: Nullable(Type.Number()), hr10: Nullable(Type.Number()) }, { description: 'trial, ndcg10 and hr10 are null when no trial finished within the budget (fallback: the defaults were used).' }),
      fallback: Type.Optional(Type.String({ description: 'Why the defaults were used unsearched.' })),
    }, { description: 'How the parameters were chosen (the whole trial list is in the version folder\'s version.json, report.hpo).' }),
  ),
});
const Deployment = Type.Object({
  name: Type.String(),
  version: Type.Union([Type.String(), Type.Null()]),
  previous: Type.Array(Type.String()),
  at: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  loadedHere: Type.Union([Type.String(), Type.Null()]),
  split: Type.Optional(Type.Object({ id: Type.String(), startedAt: Type.String(), arms: Type.Array(Type.Object({ version: Type.String(), weight: Type.Number() })) }, { description: 'A running A/B traffic split (docs/experiments.md): GET .../default/split for more.' })),
});
const KeyBody = Type.Object(
  { name: Name, scopes: Type.Array(Type.Union(SCOPES.map((s) => Type.Literal(s))), { minItems: 1, uniqueItems: true }) },
  { additionalProperties: false },
);
const ApiKey = Type.Object({ id: Type.String(), name: Type.String(), scopes: Type.Array(Type.String()), createdAt: Type.String() });
const NewApiKey = Type.Object({ id: Type.String(), name: Type.String(), scopes: Type.Array(Type.String()), createdAt: Type.String(), key: Type.String({ description: 'Shown once; only its hash is stored.' }) });
const Group = Type.Object({ name: Type.String(), servedHere: Type.Boolean() });
// Checked by the handler (validateGroupName: 400 INVALID_GROUP_NAME), documented as GroupName.
const GroupBody = Type.Object({ name: Type.String({ [DOC]: GroupName }) }, { additionalProperties: false });

export interface ResourceRouteOptions {
  group: (group: string) => GroupServices;
  served: () => readonly string[];
  groupAdmin?: GroupAdmin | undefined;
  preValidation: (request: FastifyRequest) => Promise<void>;
}

const DEFAULT_SOLUTION = 'default';
const DEFAULT_DEPLOYMENT = 'default';

function sameParams(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const norm = (o: Record<string, unknown>) => JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]));
  return norm(a) === norm(b);
}

function versionView(v: VersionInfo, served: string | undefined): Static<typeof SolutionVersion> {
  return {
    version: v.version,
    recipe: v.recipe,
    createdAt: v.createdAt,
    trainingMs: v.trainingMs,
    data: v.data,
    split: v.report.split,
    metrics: v.report.metrics as unknown as Record<string, number>,
    baseline: v.report.baseline.metrics as unknown as Record<string, number>,
    serving: v.version === served,
    ...(v.report.hpo ? { hpo: { method: v.report.hpo.method, budgetMs: v.report.hpo.budgetMs, usedMs: v.report.hpo.usedMs, trials: v.report.hpo.trials.length, stoppedBy: v.report.hpo.stoppedBy, chosen: v.report.hpo.chosen, ...(v.report.hpo.fallback ? { fallback: v.report.hpo.fallback } : {}) } } : {}),
  };
}

export function registerResourceRoutes(base: FastifyInstance, o: ResourceRouteOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const admin = { preValidation: o.preValidation, config: { scope: 'admin' as Scope } };

  // --- dataset groups
  const groupAdmin = o.groupAdmin;
  if (groupAdmin) {
    app.get('/v1/groups', { config: { scope: 'admin' }, schema: { summary: 'ListDatasetGroups (root key)', response: { 200: Type.Object({ groups: Type.Array(Group) }), ...errors } } }, async () => {
      const served = new Set(o.served());
      return { groups: (await groupAdmin.list()).map((name) => ({ name, servedHere: served.has(name) })) };
    });
    app.post(
      '/v1/groups',
      { config: { scope: 'admin' }, schema: { summary: 'CreateDatasetGroup (root key): creates its topics', body: GroupBody, response: { 201: Type.Object({ name: Type.String(), topics: Type.Array(Type.Object({ topic: Type.String(), action: Type.String() })) }), ...errors } } },
      async (request, reply) => {
        const name = validateGroupName(request.body.name);
        if ((await groupAdmin.list()).includes(name)) throw new AppError('RESOURCE_EXISTS', `dataset group ${JSON.stringify(name)} exists`, { field: 'name' });
        const topics = await groupAdmin.create(name);
        return reply.code(201).send({ name, topics: topics.map((t) => ({ topic: t.topic, action: t.action })) });
      },
    );
    app.delete('/v1/groups/:group', { ...admin, schema: { summary: 'DeleteDatasetGroup: deletes its topics', params: GroupParams, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
      const { group } = request.params;
      if (o.served().includes(group)) {
        throw new AppError('RESOURCE_IN_USE', `dataset group ${JSON.stringify(group)} is served by this instance; stop its service before deleting it`, { field: 'group' });
      }
      await groupAdmin.delete(group);
      return reply.code(204).send(null);
    });
  }
  app.get('/v1/groups/:group', { ...admin, schema: { summary: 'DescribeDatasetGroup', params: GroupParams, response: { 200: Type.Object({ name: Type.String(), servedHere: Type.Boolean(), deployment: Type.Optional(Deployment), filters: Type.Integer(), solutions: Type.Integer(), apiKeys: Type.Integer() }), ...errors } } }, async (request) => {
    const { group } = request.params;
    if (!o.served().includes(group)) return { name: group, servedHere: false, filters: 0, solutions: 0, apiKeys: 0 };
    const g = o.group(group);
    return {
      name: group,
      servedHere: true,
      deployment: deploymentView(g),
      filters: g.resources.list('filter').length,
      solutions: g.resources.list('solution').length + 1,
      apiKeys: g.resources.list('apikey').length,
    };
  });

  // --- filters
  app.get('/v1/groups/:group/filters', { ...admin, schema: { summary: 'ListFilters', params: GroupParams, response: { 200: Type.Object({ filters: Type.Array(Filter) }), ...errors } } }, async (request) => ({
    filters: o.group(request.params.group).resources.list('filter').map((f) => filterView(f)),
  }));
  app.post('/v1/groups/:group/filters', { ...admin, schema: { summary: 'CreateFilter: the expression is parsed now; errors name the position', params: GroupParams, body: FilterBody, response: { 201: Filter, ...errors } } }, async (request, reply) => {
    const g = o.group(request.params.group);
    const { name, filterExpression } = request.body;
    if (g.resources.get('filter', name)) throw new AppError('RESOURCE_EXISTS', `filter ${JSON.stringify(name)} exists; delete it first`, { field: 'name' });
    parseFilter(filterExpression);
    const f = { name, expression: filterExpression, createdAt: new Date().toISOString() };
    await g.resources.put('filter', name, f);
    return reply.code(201).send(filterView(f));
  });
  app.get('/v1/groups/:group/filters/:name', { ...admin, schema: { summary: 'DescribeFilter', params: NamedParams, response: { 200: Filter, ...errors } } }, async (request) => {
    const f = o.group(request.params.group).resources.get('filter', request.params.name);
    if (!f) throw new AppError('FILTER_NOT_FOUND', `dataset group has no filter ${JSON.stringify(request.params.name)}`, { field: 'name' });
    return filterView(f);
  });
  app.delete('/v1/groups/:group/filters/:name', { ...admin, schema: { summary: 'DeleteFilter', params: NamedParams, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
    const g = o.group(request.params.group);
    if (!g.resources.get('filter', request.params.name)) throw new AppError('FILTER_NOT_FOUND', `dataset group has no filter ${JSON.stringify(request.params.name)}`, { field: 'name' });
    await g.resources.delete('filter', request.params.name);
    return reply.code(204).send(null);
  });

  // --- API keys
  app.get('/v1/groups/:group/api-keys', { ...admin, schema: { summary: 'The group\'s API keys (never the secrets)', params: GroupParams, response: { 200: Type.Object({ apiKeys: Type.Array(ApiKey) }), ...errors } } }, async (request) => ({
    apiKeys: o.group(request.params.group).resources.list('apikey').map(keyView),
  }));
  app.post('/v1/groups/:group/api-keys', { ...admin, schema: { summary: 'Creates an API key of this group; the key is in this answer only', params: GroupParams, body: KeyBody, response: { 201: NewApiKey, ...errors } } }, async (request, reply) => {
    const g = o.group(request.params.group);
    const { id, key, hash } = newApiKey();
    const record: ApiKeyResource = { id, name: request.body.name, scopes: request.body.scopes, hash, createdAt: new Date().toISOString() };
    await g.resources.put('apikey', id, record);
    return reply.code(201).send({ ...keyView(record), key });
  });
  app.delete('/v1/groups/:group/api-keys/:id', { ...admin, schema: { summary: 'Revokes an API key', params: KeyParams, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
    const g = o.group(request.params.group);
    if (!g.resources.get('apikey', request.params.id)) throw new AppError('RESOURCE_NOT_FOUND', `dataset group has no API key ${JSON.stringify(request.params.id)}`, { field: 'id' });
    await g.resources.delete('apikey', request.params.id);
    return reply.code(204).send(null);
  });

  // --- solutions and their versions
  type SolutionSpec = Omit<SolutionResource, 'createdAt'> & { createdAt?: string };
  const solutionOf = (g: GroupServices, name: string): SolutionSpec => {
    if (name === DEFAULT_SOLUTION) {
      const { recipe, params, hpo } = g.solutions.configured();
      return { name, recipe, params, ...(hpo ? { performHPO: true, hpoConfig: { budgetMs: hpo.budgetMs } } : {}) };
    }
    const s = g.resources.get('solution', name);
    if (!s) throw new AppError('RESOURCE_NOT_FOUND', `dataset group has no solution ${JSON.stringify(name)}`, { field: 'name' });
    return s;
  };
  // A solution's versions: the same recipe and parameters, searched (performHPO) or not.
  const versionsOf = (g: GroupServices, s: SolutionSpec) =>
    g.solutions.versions().filter((v) => v.training.recipe === s.recipe && sameParams(v.training.params ?? {}, s.params) && Boolean(v.training.hpo) === Boolean(s.performHPO));
  const solutionView = (g: GroupServices, s: SolutionSpec) => ({
    ...s,
    performHPO: s.performHPO ?? false,
    versions: versionsOf(g, s).length,
  });
  /** The search a performHPO solution's version runs: its hpoConfig, else training.hpoBudget, else 10 minutes. */
  const hpoOf = (g: GroupServices, s: SolutionSpec): HpoRequest | undefined => {
    if (!s.performHPO) return undefined;
    const budgetMs = s.hpoConfig?.budgetMs ?? g.solutions.configured().hpo?.budgetMs ?? DEFAULT_HPO_BUDGET_MS;
    return { budgetMs, ...(s.hpoConfig?.maxNumberOfTrainingJobs !== undefined ? { maxTrials: s.hpoConfig.maxNumberOfTrainingJobs } : {}) };
  };

  app.get('/v1/groups/:group/solutions', { ...admin, schema: { summary: 'ListSolutions ("default" is the configured training)', params: GroupParams, response: { 200: Type.Object({ solutions: Type.Array(Solution) }), ...errors } } }, async (request) => {
    const g = o.group(request.params.group);
    return { solutions: [solutionOf(g, DEFAULT_SOLUTION), ...g.resources.list('solution')].map((s) => solutionView(g, s)) };
  });
  app.post('/v1/groups/:group/solutions', { ...admin, schema: { summary: 'CreateSolution: a recipe and its parameters', params: GroupParams, body: SolutionBody, response: { 201: Solution, ...errors } } }, async (request, reply) => {
    const g = o.group(request.params.group);
    const { name, recipe, params = {}, performHPO = false, hpoConfig } = request.body;
    if (name === DEFAULT_SOLUTION || g.resources.get('solution', name)) throw new AppError('RESOURCE_EXISTS', `solution ${JSON.stringify(name)} exists`, { field: 'name' });
    if (hpoConfig && !performHPO) throw new AppError('INVALID_ARGUMENT', 'hpoConfig needs performHPO: true', { field: 'hpoConfig' });
    const budgetMs = hpoConfig?.budget === undefined ? undefined : parseBudget(hpoConfig.budget, 'hpoConfig.budget');
    const config = budgetMs === undefined && hpoConfig?.maxNumberOfTrainingJobs === undefined ? undefined : { budgetMs: budgetMs ?? g.solutions.configured().hpo?.budgetMs ?? DEFAULT_HPO_BUDGET_MS, ...(hpoConfig?.maxNumberOfTrainingJobs !== undefined ? { maxNumberOfTrainingJobs: hpoConfig.maxNumberOfTrainingJobs } : {}) };
    const s: SolutionResource = { name, recipe, params, createdAt: new Date().toISOString(), ...(performHPO ? { performHPO, ...(config ? { hpoConfig: config } : {}) } : {}) };
    await g.resources.put('solution', name, s);
    return reply.code(201).send(solutionView(g, s));
  });
  app.get('/v1/groups/:group/solutions/:name', { ...admin, schema: { summary: 'DescribeSolution', params: NamedParams, response: { 200: Solution, ...errors } } }, async (request) => {
    const g = o.group(request.params.group);
    return solutionView(g, solutionOf(g, request.params.name));
  });
  app.delete('/v1/groups/:group/solutions/:name', { ...admin, schema: { summary: 'DeleteSolution (its versions stay in the registry)', params: NamedParams, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
    const g = o.group(request.params.group);
    // 409, not 400: the request is well formed; the resource's state (the service's configured training) forbids deleting it.
    if (request.params.name === DEFAULT_SOLUTION) throw new AppError('RESOURCE_IN_USE', 'the solution "default" is the configured training (training.recipe); change the config instead', { field: 'name' });
    solutionOf(g, request.params.name);
    await g.resources.delete('solution', request.params.name);
    return reply.code(204).send(null);
  });
  app.get('/v1/groups/:group/solutions/:name/versions', { ...admin, schema: { summary: 'ListSolutionVersions with their metrics and the popularity baseline', params: NamedParams, response: { 200: Type.Object({ training: Type.Boolean(), versions: Type.Array(SolutionVersion) }), ...errors } } }, async (request) => {
    const g = o.group(request.params.group);
    const served = g.deployment.describe().announced?.version;
    return { training: g.solutions.running(), versions: versionsOf(g, solutionOf(g, request.params.name)).map((v) => versionView(v, served)) };
  });
  app.post('/v1/groups/:group/solutions/:name/versions', { ...admin, schema: { summary: 'CreateSolutionVersion: trains one now from the interactions topic (not deployed)', params: NamedParams, response: { 202: Type.Object({ training: Type.Boolean() }), ...errors } } }, async (request, reply) => {
    const g = o.group(request.params.group);
    const s = solutionOf(g, request.params.name);
    const hpo = hpoOf(g, s);
    if (!g.solutions.train({ recipe: s.recipe, params: s.params, ...(hpo ? { hpo } : {}) })) throw new AppError('RESOURCE_EXISTS', 'a training is running in this group; wait for it (GET .../versions shows training: false when done)', { field: 'name' });
    return reply.code(202).send({ training: true });
  });
  app.get('/v1/groups/:group/solutions/:name/versions/:version', { ...admin, schema: { summary: 'DescribeSolutionVersion with its metrics (GetSolutionMetrics)', params: VersionParams, response: { 200: SolutionVersion, ...errors } } }, async (request) => {
    const g = o.group(request.params.group);
    solutionOf(g, request.params.name);
    return versionView(g.solutions.version(request.params.version), g.deployment.describe().announced?.version);
  });

  // --- the deployment (campaign)
  /** `just`: a record this request announced (the follower may not have read it back yet). */
  const deploymentView = (g: GroupServices, just?: ServingRecord): Static<typeof Deployment> => {
    const d = g.deployment.describe();
    const r = just ?? d.announced;
    return { name: DEFAULT_DEPLOYMENT, version: r?.version ?? null, previous: r?.previous ?? [], at: r?.at ?? null, reason: r?.reason ?? null, loadedHere: d.loaded, ...(r?.split ? { split: r.split } : {}) };
  };
  const deploymentName = (name: string) => {
    if (name !== DEFAULT_DEPLOYMENT) throw new AppError('RESOURCE_NOT_FOUND', `a group has one deployment, "default"; not ${JSON.stringify(name)}`, { field: 'name' });
  };
  app.get('/v1/groups/:group/deployments', { ...admin, schema: { summary: 'ListCampaigns: the group\'s deployment', params: GroupParams, response: { 200: Type.Object({ deployments: Type.Array(Deployment) }), ...errors } } }, async (request) => ({
    deployments: [deploymentView(o.group(request.params.group))],
  }));
  app.get('/v1/groups/:group/deployments/:name', { ...admin, schema: { summary: 'DescribeCampaign', params: NamedParams, response: { 200: Deployment, ...errors } } }, async (request) => {
    deploymentName(request.params.name);
    return deploymentView(o.group(request.params.group));
  });
  app.post(
    '/v1/groups/:group/deployments/:name/promote',
    { ...admin, schema: { summary: 'UpdateCampaign: serve this version (every instance swaps it in)', params: NamedParams, body: Type.Object({ version: IdString() }, { additionalProperties: false }), response: { 200: Deployment, ...errors } } },
    async (request) => {
      deploymentName(request.params.name);
      const g = o.group(request.params.group);
      return deploymentView(g, await g.deployment.promote(request.body.version));
    },
  );
  app.post('/v1/groups/:group/deployments/:name/rollback', { ...admin, schema: { summary: 'Serve the version served before the current one', params: NamedParams, response: { 200: Deployment, ...errors } } }, async (request) => {
    deploymentName(request.params.name);
    const g = o.group(request.params.group);
    return deploymentView(g, await g.deployment.rollback());
  });
}

function filterView(f: { name: string; expression: string; createdAt: string }): Static<typeof Filter> {
  return { name: f.name, filterExpression: f.expression, params: parseFilter(f.expression).params, createdAt: f.createdAt };
}

function keyView(k: ApiKeyResource): Static<typeof ApiKey> {
  return { id: k.id, name: k.name, scopes: k.scopes, createdAt: k.createdAt };
}
