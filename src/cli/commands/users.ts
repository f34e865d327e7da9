/**
 * `streamrec users delete|deletion-job`: deleting users everywhere from a file of user ids
 * (Personalize's CreateDataDeletionJob), and a job's status — the same jobs as the REST routes
 * (src/api/deletion-routes.ts), straight through Kafka (docs/operations.md "Deleting users").
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../../config/index.js';
import { AppError } from '../../errors/index.js';
import { createKafka } from '../../kafka/client.js';
import { resolveBrokers } from '../../kafka/connect.js';
import type { Producer } from '../../kafka/kafkajs.js';
import { applyTopics, topicName, validateGroupName } from '../../kafka/topics.js';
import { createDeletionJob, interactionsPartitions } from '../../stream/deletion-jobs.js';
import { jobView, parseUserIdList, type DeletionJobView } from '../../stream/deletion.js';
import { ResourceFollower, Resources } from '../../stream/resources.js';
import { readDeletions } from '../../training/stream-train.js';
import { silentLogger } from '../../util/log.js';
import { intArg, note, say, withAdmin, type CliContext } from '../common.js';

export function registerUsersCommands(program: Command, ctx: CliContext): void {
  const users = program.command('users').description('Delete users everywhere (state, changelog, recommendations, metadata, later trainings) and follow the deletion jobs');

  users
    .command('delete [userIds...]')
    .description('Start a deletion job of the user ids given, or of a file of them (one per line, # comments); --wait until the stream processor has carried it out')
    .requiredOption('-g, --group <name>', 'dataset group')
    .option('-f, --file <path>', 'a file of user ids, one per line')
    .option('--wait', 'wait until the job is completed')
    .option('--timeout <seconds>', 'with --wait: give up after this many seconds', intArg('--timeout'), 600)
    .option('--json', 'print JSON')
    .action(async (ids: string[], opts: { group: string; file?: string; wait?: boolean; timeout: number; json?: boolean }) => {
      const group = validateGroupName(opts.group);
      const userIds = [...ids, ...(opts.file ? parseUserIdList(readFile(opts.file), opts.file) : [])];
      if (userIds.length === 0) throw new AppError('INVALID_ARGUMENT', 'name the users to delete: user ids as arguments, or --file with one per line', { field: '--file' });
      const c = ctx.config();
      const { brokers } = await resolveBrokers(c, false);
      const partitions = await withAdmin(c, brokers, async (admin) => {
        await applyTopics(admin, group, c);
        return interactionsPartitions(admin, group);
      });
      const producer = createKafka(c, brokers, '-users').producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      let job;
      try {
        job = await createDeletionJob(userIds, { group, producer, partitions, resources: resourcesOn(producer, group) });
      } finally {
        await producer.disconnect();
      }
      let view = jobView(job, { appliedUpTo: () => -1 });
      if (!opts.json) note(`deletion job ${job.id}: ${view.submitted} user(s) submitted`);
      if (opts.wait) {
        const deadline = Date.now() + opts.timeout * 1000;
        while (view.status !== 'completed') {
          if (Date.now() > deadline) throw new AppError('DELETION_NOT_COMPLETED', `deletion job ${job.id} is not completed after ${opts.timeout} s (${view.deleted} of ${view.submitted} deleted): is a service of group ${group} running?`, { field: '--timeout' });
          await new Promise((r) => setTimeout(r, 1000));
          view = jobView(job, await readDeletions({ config: c, group, brokers }));
        }
      }
      print(view, opts.json);
    });

  users
    .command('deletion-job [id]')
    .description("A deletion job's status (pending, in progress, completed, failed) and counts; without an id, every job of the group")
    .requiredOption('-g, --group <name>', 'dataset group')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, opts: { group: string; json?: boolean }) => {
      const group = validateGroupName(opts.group);
      const c = ctx.config();
      const { brokers } = await resolveBrokers(c, false);
      const views = await withJobs(c, group, brokers, (resources, deletions) => {
        const jobs = id === undefined ? resources.list('deletionjob') : [resources.get('deletionjob', id)];
        if (jobs[0] === undefined && id !== undefined) throw new AppError('RESOURCE_NOT_FOUND', `group ${group} has no deletion job ${JSON.stringify(id)}`, { field: 'id' });
        return jobs.map((j) => jobView(j!, deletions));
      });
      if (opts.json) say(JSON.stringify(id === undefined ? { jobs: views } : views[0]));
      else for (const v of views) print(v, false);
    });
}

function readFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `--file ${path} cannot be read: ${(err as Error).message}`, { field: '--file', cause: err });
  }
}

/** The group's resources, written through the producer (the job's record). */
function resourcesOn(producer: Producer, group: string): Resources {
  return new Resources({ send: async (key, value) => void (await producer.send({ topic: topicName(group, 'resources'), acks: -1, messages: [{ key, value, partition: 0 }] })) });
}

async function withJobs<T>(c: Readonly<Config>, group: string, brokers: string[], fn: (resources: Resources, deletions: Awaited<ReturnType<typeof readDeletions>>) => T): Promise<T> {
  const follower = new ResourceFollower({ config: c, group, brokers, instanceId: `cli-${process.pid}`, producer: { send: async () => [] }, log: silentLogger });
  await follower.start();
  try {
    return fn(follower.resources, await readDeletions({ config: c, group, brokers }));
  } finally {
    await follower.stop();
  }
}

function print(v: DeletionJobView, json: boolean | undefined): void {
  if (json) say(JSON.stringify(v));
  else say(`${v.id}\t${v.status}\t${v.deleted}/${v.submitted} deleted\t${v.createdAt}${v.failure ? `\t${v.failure}` : ''}`);
}
