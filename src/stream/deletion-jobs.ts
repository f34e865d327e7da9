/**
 * Deletion jobs (Personalize's CreateDataDeletionJob / DescribeDataDeletionJob): the API's and the
 * CLI's side of deleting users (src/stream/deletion.ts has the record formats and the processor's side).
 *
 * A job produces, for each user id, a delete command to `<group>.interactions` (partition
 * partitionOf(userId): the user's own, after the user's events) and a tombstone to `<group>.users`
 * (the user's metadata), then records itself on `<group>.resources` (key `deletionjob/<id>`: the
 * commands' offsets per partition, never the user ids). Its progress comes from `<group>.deletions`:
 * a partition's commands are applied in offset order, so every command at or below the highest
 * applied offset of its partition is done.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/index.js';
import { AppError } from '../errors/index.js';
import { createKafka } from '../kafka/client.js';
import { followFromBeginning } from '../kafka/follow.js';
import type { Admin, KafkaClient } from '../kafka/kafkajs.js';
import { partitionOf } from '../kafka/partition.js';
import type { Sender } from '../kafka/produce.js';
import { restartBackoff, type SupervisedConsumer, type SupervisedStatus } from '../kafka/supervise.js';
import { topicName, topicOffsets } from '../kafka/topics.js';
import type { Logger } from '../util/log.js';
import { addCommands, checkUserId, deleteCommandRecord, DeletionList, jobView, MAX_JOB_USERS, type DeletionJob, type DeletionJobView } from './deletion.js';
import type { Resources } from './resources.js';

/** Commands per produce call. */
const SEND_CHUNK = 500;

export interface CreateJobOptions {
  group: string;
  producer: Sender;
  /** The interactions topic's partition count. */
  partitions: number;
  /** Where the job's record goes (the group's resources). */
  resources: Pick<Resources, 'put'>;
  now?: () => number;
}

/**
 * Starts a deletion job: the commands and the metadata tombstones, then the job's record. Producing
 * failing part way records the job as failed (with what went out: those users are deleted) and
 * throws KAFKA_UNREACHABLE naming the job.
 */
export async function createDeletionJob(userIds: readonly string[], o: CreateJobOptions): Promise<DeletionJob> {
  if (userIds.length === 0) throw new AppError('INVALID_ARGUMENT', 'userIds must name at least one user', { field: 'userIds' });
  if (userIds.length > MAX_JOB_USERS) throw new AppError('INVALID_ARGUMENT', `userIds has ${userIds.length} ids; a deletion job takes at most ${MAX_JOB_USERS}`, { field: 'userIds' });
  const ids = [...new Set(userIds.map((u, i) => checkUserId(u, `userIds[${i}]`)))];
  const now = o.now ?? Date.now;
  const job: DeletionJob = { id: `deletion-${now().toString(36)}-${randomBytes(4).toString('hex')}`, createdAt: new Date(now()).toISOString(), users: ids.length, commands: {} };
  const requestedAt = job.createdAt;
  try {
    for (let i = 0; i < ids.length; i += SEND_CHUNK) {
      const chunk = ids.slice(i, i + SEND_CHUNK);
      const partitions = chunk.map((u) => partitionOf(u, o.partitions));
      const meta = await o.producer.send({
        topic: topicName(o.group, 'interactions'),
        acks: -1,
        messages: chunk.map((userId, k) => ({ ...deleteCommandRecord({ userId, requestedAt, jobId: job.id }), partition: partitions[k]! })),
      });
      addCommands(job, partitions, new Map(meta.map((m) => [m.partition, Number(m.baseOffset)])));
      // The user's metadata: a tombstone (the users topic is partitioned by key like the producers' records).
      await o.producer.send({ topic: topicName(o.group, 'users'), acks: -1, messages: chunk.map((userId) => ({ key: userId, value: null })) });
    }
  } catch (err) {
    job.failure = `producing the commands failed after ${Object.values(job.commands).flat().reduce((n, [, c]) => n + c, 0)} of ${ids.length}: ${err instanceof Error ? err.message : String(err)}`;
    await o.resources.put('deletionjob', job.id, job).catch(() => undefined);
    throw new AppError('KAFKA_UNREACHABLE', `deletion job ${job.id}: ${job.failure}`, { cause: err });
  }
  try {
    await o.resources.put('deletionjob', job.id, job);
  } catch (err) {
    throw new AppError('KAFKA_UNREACHABLE', `deletion job ${job.id}: its ${ids.length} command(s) went out (the users will be deleted), but its record could not be written to ${topicName(o.group, 'resources')}, so its status cannot be followed`, { cause: err });
  }
  return job;
}

/** The interactions topic's partition count. */
export async function interactionsPartitions(admin: Admin, group: string): Promise<number> {
  const n = (await topicOffsets(admin, topicName(group, 'interactions'))).length;
  if (n === 0) throw new AppError('GROUP_NOT_FOUND', `dataset group ${JSON.stringify(group)} has no topic ${topicName(group, 'interactions')}`, { field: 'group' });
  return n;
}

export interface DeletionJobsOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  instanceId: string;
  producer: Sender;
  admin: Admin;
  resources: Resources;
  log: Logger;
}

/** What the REST routes use (src/api/deletion-routes.ts). */
export interface DeletionAdmin {
  create(userIds: readonly string[]): Promise<DeletionJobView>;
  /** RESOURCE_NOT_FOUND for an unknown id. */
  get(id: string): DeletionJobView;
  list(): DeletionJobView[];
}

/** A running instance's deletion jobs: it follows `<group>.deletions` for their progress. */
export class DeletionJobs implements DeletionAdmin {
  readonly deletions = new DeletionList();
  private readonly kafka: KafkaClient;
  private consumer: SupervisedConsumer | undefined;

  constructor(private readonly o: DeletionJobsOptions) {
    this.kafka = createKafka(o.config, o.brokers, `-${o.instanceId}-deletions`, o.log);
  }

  async start(): Promise<void> {
    this.consumer = await followFromBeginning(this.kafka, {
      topic: topicName(this.o.group, 'deletions'),
      groupId: `streamrec.${this.o.group}.deletions.${this.o.instanceId}`,
      log: this.o.log,
      backoff: restartBackoff(this.o.config),
      onBatch: (messages) => {
        for (const m of messages) {
          const key = m.key?.toString();
          if (key) this.deletions.apply(key, m.value ?? null);
        }
      },
    });
  }

  consumerStatus(): SupervisedStatus | undefined {
    return this.consumer?.status();
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }

  async create(userIds: readonly string[]): Promise<DeletionJobView> {
    const partitions = await interactionsPartitions(this.o.admin, this.o.group);
    const job = await createDeletionJob(userIds, { group: this.o.group, producer: this.o.producer, partitions, resources: this.o.resources });
    this.o.log.info({ job: job.id, users: job.users }, 'deletion job started');
    return jobView(job, this.deletions);
  }

  get(id: string): DeletionJobView {
    const job = this.o.resources.get('deletionjob', id);
    if (!job) throw new AppError('RESOURCE_NOT_FOUND', `dataset group has no deletion job ${JSON.stringify(id)}`, { field: 'id' });
    return jobView(job, this.deletions);
  }

  list(): DeletionJobView[] {
    return this.o.resources.list('deletionjob').map((j) => jobView(j, this.deletions));
  }
}
