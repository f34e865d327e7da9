/**
 * Deleting a user everywhere (Personalize's CreateDataDeletionJob): the pure parts shared by the API
 * that asks for a deletion, the processor that carries it out, and the training that honours it.
 *
 * - A *delete command* is a record on `<group>.interactions`, keyed by the userId (so it lands on the
 *   user's partition, in order with the user's events), with the header `streamrec-op: delete-user`
 *   and a JSON value `{"userId", "requestedAt", "jobId"}`. Only the header makes a record a command:
 *   an Avro interaction (kafkajs, librdkafka, any producer) never is one, and a record with the
 *   header that is not a well-formed command is dead-lettered like any bad record.
 * - The processor applies it in the same transaction as the rest of its batch: the user's keys
 *   (`u/`, `h/`) are deleted from the store and tombstoned on the changelog (restoring and standby
 *   stores lose them too), the user's key on `<group>.recommendations` gets a tombstone, and a
 *   *deletion record* goes to the compacted `<group>.deletions` (key userId, value JSON
 *   `{userId, deletedAt, requestedAt, partition, offset, jobId}`: where the command was in the
 *   interactions topic).
 * - Training reads `<group>.deletions` first and leaves out each deleted user's events that came
 *   before the command (DeletionList.excludes); events of the user after it (the user came back) are
 *   kept.
 */
import { AppError } from '../errors/index.js';
import type { IHeaders, KafkaMessage } from '../kafka/kafkajs.js';

export const OP_HEADER = 'streamrec-op';
export const DELETE_USER_OP = 'delete-user';
/** The most user ids one deletion job takes (its record on the resources topic stays small). */
export const MAX_JOB_USERS = 100_000;
const MAX_USER_ID_CHARS = 256;

export interface DeleteCommand {
  userId: string;
  /** When the deletion was asked for (ISO 8601). */
  requestedAt: string;
  jobId: string;
}

/** Where a delete command was applied: the value of its `<group>.deletions` record. */
export interface DeletionRecord {
  userId: string;
  /** When the processor applied it (ISO 8601). */
  deletedAt: string;
  requestedAt: string;
  /** The command's partition and offset in `<group>.interactions`. */
  partition: number;
  offset: number;
  /** The command record's Kafka timestamp (ms): the bound for the user's events in other partitions. */
  timestamp: number;
  jobId: string;
}

/** A user id as a deletion takes it: 1-256 characters, not blank; else INVALID_ARGUMENT naming `field`. */
export function checkUserId(userId: unknown, field: string): string {
  if (typeof userId !== 'string' || userId.trim() === '' || userId.length > MAX_USER_ID_CHARS) {
    throw new AppError('INVALID_ARGUMENT', `${field} must be a user id of 1-${MAX_USER_ID_CHARS} characters (not blank), got ${JSON.stringify(userId)?.slice(0, 80)}`, { field });
  }
  return userId;
}

/** The Kafka record of a delete command (the caller sends it to `<group>.interactions`). */
export function deleteCommandRecord(c: DeleteCommand): { key: string; value: string; headers: IHeaders } {
  return { key: c.userId, value: JSON.stringify(c), headers: { [OP_HEADER]: DELETE_USER_OP } };
}

function header(m: Pick<KafkaMessage, 'headers'>, name: string): string | undefined {
  const v = m.headers?.[name];
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : first.toString();
}

/**
 * The delete command a record carries: undefined when it is no command (no `streamrec-op` header:
 * an interaction), an AppError (dead-lettered) when it says it is one but is not well formed.
 */
export function parseDeleteCommand(m: Pick<KafkaMessage, 'key' | 'value' | 'headers'>): DeleteCommand | AppError | undefined {
  const op = header(m, OP_HEADER);
  if (op === undefined) return undefined;
  if (op !== DELETE_USER_OP) return new AppError('RECORD_INVALID', `unknown ${OP_HEADER} header ${JSON.stringify(op.slice(0, 80))}; the only operation is ${DELETE_USER_OP}`, { field: `(header ${OP_HEADER})` });
  let parsed: unknown;
  try {
    parsed = JSON.parse(m.value?.toString('utf8') ?? '');
  } catch (err) {
    return new AppError('RECORD_MALFORMED', `a ${DELETE_USER_OP} command's value is not JSON: ${(err as Error).message}`, { field: '(value)' });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return new AppError('RECORD_MALFORMED', `a ${DELETE_USER_OP} command's value must be a JSON object`, { field: '(value)' });
  const { userId, requestedAt, jobId } = parsed as Record<string, unknown>;
  try {
    checkUserId(userId, 'userId');
  } catch (err) {
    return new AppError('RECORD_INVALID', `${DELETE_USER_OP}: ${(err as AppError).message}`, { field: 'userId' });
  }
  if (typeof requestedAt !== 'string' || Number.isNaN(Date.parse(requestedAt))) return new AppError('RECORD_INVALID', `${DELETE_USER_OP}: requestedAt must be an ISO 8601 time`, { field: 'requestedAt' });
  if (typeof jobId !== 'string' || jobId === '') return new AppError('RECORD_INVALID', `${DELETE_USER_OP}: jobId must be a non-empty string`, { field: 'jobId' });
  const key = m.key?.toString();
  if (key !== userId) return new AppError('RECORD_INVALID', `the record key ${JSON.stringify(key ?? null)?.slice(0, 80)} is not the command's userId ${JSON.stringify(userId).slice(0, 80)}; delete commands are keyed by userId`, { field: '(key)' });
  return { userId: userId as string, requestedAt, jobId };
}

/**
 * Where a command read from `topic`/`partition` came from in `<group>.interactions`: itself, or
 * for a record forwarded through the repartition topic, the forwarded-from headers.
 */
export function commandOrigin(m: Pick<KafkaMessage, 'offset' | 'headers'>, partition: number, forwarded: boolean): { partition: number; offset: number } {
  if (forwarded) {
    const p = Number(header(m, 'forwarded-from-partition'));
    const o = Number(header(m, 'forwarded-from-offset'));
    if (Number.isInteger(p) && Number.isInteger(o)) return { partition: p, offset: o };
  }
  return { partition, offset: Number(m.offset) };
}

export function encodeDeletion(d: DeletionRecord): string {
  return JSON.stringify(d);
}

/** A `<group>.deletions` value, or undefined when it is not one (skipped by readers). */
export function decodeDeletion(value: Buffer | string): DeletionRecord | undefined {
  try {
    const d = JSON.parse(value.toString()) as DeletionRecord;
    if (typeof d?.userId !== 'string' || !Number.isInteger(d.partition) || !Number.isInteger(d.offset) || typeof d.timestamp !== 'number') return undefined;
    return d;
  } catch {
    return undefined;
  }
}

/**
 * The deletion list as readers of the interactions topic honour it: the latest deletion of each
 * user (a tombstone on `<group>.deletions` forgets it).
 */
export class DeletionList {
  private readonly byUser = new Map<string, DeletionRecord>();
  /** Per interactions partition, the highest command offset applied (deletion jobs' progress). */
  private readonly applied = new Map<number, number>();

  get size(): number {
    return this.byUser.size;
  }

  /** One record of `<group>.deletions` (in offset order). */
  apply(key: string, value: Buffer | string | null): void {
    if (value === null) {
      this.byUser.delete(key);
      return;
    }
    const d = decodeDeletion(value);
    if (!d || d.userId !== key) return;
    this.byUser.set(key, d);
    if (d.offset > (this.applied.get(d.partition) ?? -1)) this.applied.set(d.partition, d.offset);
  }

  get(userId: string): DeletionRecord | undefined {
    return this.byUser.get(userId);
  }

  /** The highest delete-command offset applied in an interactions partition (-1: none). */
  appliedUpTo(partition: number): number {
    return this.applied.get(partition) ?? -1;
  }

  /**
   * Whether an interactions record of `userId` is left out: in the command's own partition, every
   * record before the command; in other partitions (a producer that partitions otherwise), every
   * record whose Kafka timestamp is before the command's. The command itself is never an event.
   */
  excludes(userId: string, partition: number, offset: number, timestamp: number): boolean {
    const d = this.byUser.get(userId);
    if (!d) return false;
    return partition === d.partition ? offset < d.offset : timestamp < d.timestamp;
  }
}

/** A deletion job as the resources topic keeps it: the commands' offsets, never the user ids. */
export interface DeletionJob {
  id: string;
  createdAt: string;
  /** User ids asked for. */
  users: number;
  /** The commands produced, per interactions partition: runs of consecutive offsets [first, count]. */
  commands: Record<string, [number, number][]>;
  /** Set when producing the commands failed part way (the counts say how many went out). */
  failure?: string;
}

export type DeletionJobStatus = 'pending' | 'in progress' | 'completed' | 'failed';

export interface DeletionJobView {
  id: string;
  status: DeletionJobStatus;
  createdAt: string;
  users: number;
  /** Commands produced to the interactions topic. */
  submitted: number;
  /** Of those, applied by the processor (the user's state, changelog, recommendations key, deletion list). */
  deleted: number;
  failure?: string;
}

/** A job's progress against the deletion list: a partition's commands up to its highest applied offset are done (a partition's commands are applied in order). */
export function jobView(job: DeletionJob, list: Pick<DeletionList, 'appliedUpTo'>): DeletionJobView {
  let submitted = 0;
  let deleted = 0;
  for (const [p, runs] of Object.entries(job.commands)) {
    const upTo = list.appliedUpTo(Number(p));
    for (const [first, count] of runs) {
      submitted += count;
      deleted += Math.max(0, Math.min(count, upTo - first + 1));
    }
  }
  const status: DeletionJobStatus = job.failure !== undefined ? 'failed' : deleted >= submitted ? 'completed' : deleted === 0 ? 'pending' : 'in progress';
  return { id: job.id, status, createdAt: job.createdAt, users: job.users, submitted, deleted, ...(job.failure !== undefined ? { failure: job.failure } : {}) };
}

/** Adds a send's commands to a job: `partitions[i]` got the i-th message, and each partition's messages took consecutive offsets from its base offset. */
export function addCommands(job: DeletionJob, partitions: readonly number[], baseOffsets: ReadonlyMap<number, number>): void {
  const counts = new Map<number, number>();
  for (const p of partitions) counts.set(p, (counts.get(p) ?? 0) + 1);
  for (const [p, count] of counts) {
    const base = baseOffsets.get(p);
    if (base === undefined) throw new Error(`no base offset for partition ${p}`);
    const runs = (job.commands[String(p)] ??= []);
    const last = runs.at(-1);
    if (last && last[0] + last[1] === base) last[1] += count;
    else runs.push([base, count]);
  }
}

/** User ids from a file's text: one per line; blank lines and lines starting with # skipped; duplicates once. */
export function parseUserIdList(text: string, field: string): string[] {
  const out = new Set<string>();
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    const id = line.trim();
    if (id === '' || id.startsWith('#')) return;
    checkUserId(id, `${field} line ${i + 1}`);
    out.add(id);
  });
  if (out.size === 0) throw new AppError('INVALID_ARGUMENT', `${field} has no user ids (one per line)`, { field });
  if (out.size > MAX_JOB_USERS) throw new AppError('INVALID_ARGUMENT', `${field} has ${out.size} user ids; a deletion job takes at most ${MAX_JOB_USERS} (split the file)`, { field });
  return [...out];
}

/** A delete command a task is to apply: the command, the record's origin in the interactions topic and its Kafka timestamp. */
export interface PendingDeletion {
  command: DeleteCommand;
  origin: { partition: number; offset: number };
  timestamp: number;
}

/** Records a transaction carries besides the changelog's. */
export interface TransactionRecords {
  topic: string;
  messages: { key: string; value: string | null; partition?: number }[];
}

/**
 * Applies delete commands, in order, to a batch's view (after the batch's earlier events): each
 * user's keys go out as deletes (store and changelog tombstones). Returns the records that go in
 * the same transaction: the deletion records (`<group>.deletions`, partition 0) and the tombstones
 * of the users' keys on `<group>.recommendations` (partitioned by key, as the publisher's lists are).
 */
export function applyDeletions(
  view: { deleteUser(userId: string): void },
  deletions: readonly PendingDeletion[],
  topics: { deletions: string; recommendations: string },
  now: number,
): TransactionRecords[] {
  if (deletions.length === 0) return [];
  const deletedAt = new Date(now).toISOString();
  const records: TransactionRecords = { topic: topics.deletions, messages: [] };
  const tombstones: TransactionRecords = { topic: topics.recommendations, messages: [] };
  for (const d of deletions) {
    const { userId, requestedAt, jobId } = d.command;
    view.deleteUser(userId);
    const record: DeletionRecord = { userId, deletedAt, requestedAt, partition: d.origin.partition, offset: d.origin.offset, timestamp: d.timestamp, jobId };
    records.messages.push({ key: userId, value: encodeDeletion(record), partition: 0 });
    tombstones.messages.push({ key: userId, value: null });
  }
  return [records, tombstones];
}
