/**
 * Deleting users (scope `admin`; Personalize's CreateDataDeletionJob, DescribeDataDeletionJob,
 * ListDataDeletionJobs), docs/operations.md "Deleting users":
 *
 * - `DELETE /v1/groups/:group/users/:userId`: a deletion job of one user; 202 with the job (the
 *   deletion is carried out by the stream processor, in order with the user's events).
 * - `POST /v1/groups/:group/deletion-jobs` `{userIds: [...]}`: a job of many users; 202 with the job.
 * - `GET /v1/groups/:group/deletion-jobs[/:id]`: the jobs with their status (pending, in progress,
 *   completed, failed) and counts.
 *
 * Every answer carries the job's `Location`; polling it says when the users are gone.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../errors/index.js';
import type { DeletionAdmin } from '../stream/deletion-jobs.js';
import { MAX_JOB_USERS } from '../stream/deletion.js';
import type { Scope } from '../stream/resources.js';
import { ErrorBody, GroupName, GroupParams, IdString } from './schemas.js';
import type { GroupServices } from './types.js';

const errors = { '4xx': ErrorBody, '5xx': ErrorBody } as const;
const UserParams = Type.Object({ group: GroupName, userId: IdString() }, { additionalProperties: false });
const JobParams = Type.Object({ group: GroupName, id: IdString({ description: 'A deletion job id (GET .../deletion-jobs).' }) }, { additionalProperties: false });
const JobBody = Type.Object(
  { userIds: Type.Array(IdString(), { minItems: 1, maxItems: MAX_JOB_USERS, description: `1-${MAX_JOB_USERS} user ids (within api.bodyLimitBytes; longer lists: streamrec users delete --file)` }) },
  { additionalProperties: false },
);
const Job = Type.Object({
  id: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('in progress'), Type.Literal('completed'), Type.Literal('failed')]),
  createdAt: Type.String(),
  users: Type.Integer({ description: 'Distinct user ids asked for.' }),
  submitted: Type.Integer({ description: 'Delete commands produced to <group>.interactions.' }),
  deleted: Type.Integer({ description: 'Of those, carried out by the stream processor.' }),
  failure: Type.Optional(Type.String()),
});

export interface DeletionRoutesOptions {
  group: (name: string) => GroupServices;
  preValidation: (request: FastifyRequest) => Promise<void>;
}

export function registerDeletionRoutes(base: FastifyInstance, o: DeletionRoutesOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const admin = { preValidation: o.preValidation, config: { scope: 'admin' as Scope } };
  const tags = ['deletion'];
  const jobs = (group: string): DeletionAdmin => {
    const d = o.group(group).deletions;
    if (!d) throw new AppError('ROUTE_NOT_FOUND', 'this instance cannot delete users (it runs without Kafka)');
    return d;
  };
  const location = (group: string, id: string) => `/v1/groups/${encodeURIComponent(group)}/deletion-jobs/${encodeURIComponent(id)}`;

  app.delete(
    '/v1/groups/:group/users/:userId',
    { ...admin, schema: { tags, summary: "Deletes a user everywhere: state, changelog, recommendations, metadata, later trainings (a deletion job of one user; 202)", params: UserParams, response: { 202: Job, ...errors } } },
    async (request, reply) => {
      const job = await jobs(request.params.group).create([request.params.userId]);
      return reply.code(202).header('location', location(request.params.group, job.id)).send(job);
    },
  );
  app.post(
    '/v1/groups/:group/deletion-jobs',
    { ...admin, schema: { tags, summary: 'CreateDataDeletionJob: deletes these users everywhere (202; poll the job)', params: GroupParams, body: JobBody, response: { 202: Job, ...errors } } },
    async (request, reply) => {
      const job = await jobs(request.params.group).create(request.body.userIds);
      return reply.code(202).header('location', location(request.params.group, job.id)).send(job);
    },
  );
  app.get('/v1/groups/:group/deletion-jobs', { ...admin, schema: { tags, summary: 'ListDataDeletionJobs, oldest first', params: GroupParams, response: { 200: Type.Object({ jobs: Type.Array(Job) }), ...errors } } }, async (request) => ({
    jobs: jobs(request.params.group).list(),
  }));
  app.get('/v1/groups/:group/deletion-jobs/:id', { ...admin, schema: { tags, summary: 'DescribeDataDeletionJob: status and counts', params: JobParams, response: { 200: Job, ...errors } } }, async (request) =>
    jobs(request.params.group).get(request.params.id),
  );
}
