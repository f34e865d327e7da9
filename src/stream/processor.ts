/**
 * The stream processor: a kafkajs consumer group over `<group>.interactions` (and its internal
 * `<group>.interactions-repartition`) that applies each event to the state of its user's
 * partition, partitionOf(userId, n) (murmur2, as the Java client and kafkajs), exactly once.
 *
 * Input partitioned otherwise (librdkafka's default CRC32 partitioner, an explicit partition) is
 * repartitioned, as Kafka Streams does: a valid record of a user that partition q does not own is
 * not applied in q but forwarded, unchanged (key, value, timestamp, headers, plus
 * forwarded-from-topic/-partition/-offset), to partition partitionOf(userId, n) of the repartition
 * topic, inside q's transaction (with q's changelog records and q's next input offset). The task
 * of partition p reads interactions p AND interactions-repartition p (the assignment is
 * co-partitioned, src/kafka/assigner.ts) into one store, one batch at a time, with a stored next
 * offset per topic (`__offset`, `__offset.repartition`). A user's records that arrived in one
 * partition stay in order; records of one user split by the producer over several partitions are
 * applied in no guaranteed order between those partitions (as Kafka gives none).
 * The repartition topic has several transactional writers per partition, which kafkajs's
 * read_committed gets wrong: src/kafka/read-committed.ts fixes it for the process.
 *
 * Per owned partition (a "task", as Kafka Streams calls it):
 * - a RocksDB store of its own and a transactional producer (`transactional.id` per group and
 *   partition, so a new owner fences the old one);
 * - on assignment: write a barrier record to the changelog partition (this fences any previous
 *   owner and aborts its open transaction), then replay the changelog from the store's checkpoint
 *   up to the barrier. A store that is missing or behind is brought up to date; then processing
 *   resumes at the input offset stored in the state itself, not at the group's committed offset.
 * - per batch: records below the stored offset are skipped (already applied); the rest are
 *   decoded and validated — a bad one goes to `<group>.dead-letter` with its raw bytes and reason;
 *   the good ones are applied (src/state/apply.ts) in offset order; then ONE Kafka transaction
 *   carries the changed state (and the next input offset) to the changelog and the dead letters to
 *   their topic, and after it commits ONE RocksDB write batch stores the same changes, the input
 *   offset and the changelog checkpoint.
 * Delete commands (header `streamrec-op: delete-user`, src/stream/deletion.ts) of users the
 * partition owns are applied after the batch's events (an event after a command ends the batch
 * before it): the users' keys are deleted (changelog tombstones), and the same transaction
 * carries the users' recommendations tombstones and deletion records.
 * A crash between the two leaves the store behind the changelog; the next assignment catches up
 * from the changelog, so nothing is lost and nothing is counted twice.
 *
 * Standby replicas (src/stream/standby.ts, `processor.standbyReplicas`): the group's assignment
 * also names partitions this instance keeps a standby store of, following the changelog; the
 * leader gives a partition that must move to the member with the warmest store (each member
 * reports its owned partitions and stores' checkpoints at every join: `storeReport`), whose task
 * then replays only the tail. Only an owned, ready task answers a user's query (`queryState`);
 * anything else is PARTITION_MOVING, never a wrong "no such user".
 *
 * Broker outages: the consumer is supervised (src/kafka/supervise.ts). When it crashes, every task
 * is released (its batch in flight finished first, its producer disconnected, its store closed) and
 * the processor is `recovering`; a new consumer is made with backoff until it joins the group again,
 * and the assignment re-opens each task as above (barrier, changelog catch-up, seek to the stored
 * offset), so the RocksDB state stays the source of truth across any number of restarts. A crash
 * that no retry can cure (a bug, an authorization failure) leaves it `failed`, with the reason.
 * The lag is the broker's high watermark (read every `processor.lagRefreshMs` with an admin
 * client) minus the stored offset, and unknown (null) when the watermark cannot be read.
 */
import { privateDir } from '../util/paths.js';
import { join } from 'node:path';
import { AppError } from '../errors/index.js';
import type { Config } from '../config/index.js';
import { coPartitionedAssigner, createOwnerAssigners, type OwnersUpdate, type StoreReport } from '../kafka/assigner.js';
import { installReadCommittedFix } from '../kafka/read-committed.js';
import { createKafka } from '../kafka/client.js';
import type { Admin, Cluster, Consumer, EachBatchPayload, IHeaders, KafkaClient, KafkaMessage, PartitionAssigner, Producer } from '../kafka/kafkajs.js';
import { consumerRetry, isRecoverableKafkaError, restartBackoff, SupervisedConsumer, type SupervisedStatus } from '../kafka/supervise.js';
import { describeError, retry } from '../util/retry.js';
import { partitionOf } from '../kafka/partition.js';
import { readPartition } from '../kafka/read-partition.js';
import { topicName } from '../kafka/topics.js';
import { createCodecs, type Codecs, type Interaction, type User } from '../serde/avro.js';
import { failpoint } from '../util/failpoint.js';
import { chunksBySize, deadLetterRecord, decodeInteractionRecord } from './input.js';
import { silentLogger, type Logger } from '../util/log.js';
import { BARRIER_KEY, replayChangelog, storeCheckpoint } from './changelog.js';
import { StandbyTasks, type StandbyStatus } from './standby.js';
import { attributionOps } from './attribution.js';
import { applyDeletions, commandOrigin, parseDeleteCommand, type PendingDeletion, type TransactionRecords } from './deletion.js';

export { changelogOps } from './changelog.js';

export type { Logger } from '../util/log.js';

// The repartition topic has several transactional writers per partition, which kafkajs's own
// read_committed filter gets wrong (src/kafka/read-committed.ts).
installReadCommittedFix();
import { applyInteraction, countingParams, type CountingParams } from '../state/apply.js';
import { BatchView, StateCache } from '../state/batch-view.js';
import { codecs as stateCodecs, keys, type EncodedUserState, type HrnnUserState, type ItemCounts, type UserState } from '../state/model.js';
import { hrnnRuns, hrnnStepKernel, REDERIVE_EVENTS, stepHrnnStates, userStates, warmHrnnStep, type HrnnUpdate, type ServingModel } from '../serving/served-model.js';
import { RemoteStepper } from '../serving/hrnn-step-remote.js';
import type { HrnnModel } from '../recipes/hrnn.js';
import type { StepKernel } from '../model/hrnn-batch.js';
import type { KeyValueStore, WriteOp } from '../state/store.js';

/** `recovering`: the consumer crashed (a broker outage) and is being made again; `failed`: it will not be (see `failure`). */
export type LifecycleState = 'created' | 'starting' | 'rebalancing' | 'running' | 'recovering' | 'stopping' | 'stopped' | 'failed';


export interface ProcessorOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  /** Opens (creating if needed) the store of one input partition. */
  openStore: (partition: number) => Promise<KeyValueStore>;
  /** Names this instance in barrier records and consumer client ids. */
  instanceId: string;
  log?: Logger;
  now?: () => number;
  /** The served model version: with an HRNN version, every event also steps the user's HRNN state. */
  serving?: ServingModel;
  /** Users' metadata, for a new user's initial HRNN state (hrnn-metadata). */
  userMetadata?: (userIds: readonly string[]) => Promise<Map<string, User>>;
  /**
   * This instance's API base URL, advertised to the group so others can forward queries: with it,
   * every instance learns which instance owns each input partition (see `owner`).
   */
  advertisedUrl?: string;
  /**
   * Called after a batch's state is committed: each user of the batch with its latest event time,
   * and (built when asked for) the users' committed states as stored (encoded), so that readers
   * need not read them back.
   */
  onApplied?: (users: ReadonlyMap<string, number>, states: () => ReadonlyMap<string, EncodedUserState>) => void;
  /** Called after a batch that deleted a user (src/stream/deletion.ts) committed. */
  onDeleted?: (userId: string) => void;
}


export interface PartitionStatus {
  partition: number;
  restored: boolean;
  /** The next input offset of the partition's state (the last one known while the partition is being re-opened). */
  nextOffset: number;
  /** The broker's high watermark, null when it could not be read lately. */
  highWatermark: number | null;
  /** highWatermark − nextOffset; null (unknown, never 0) when either is unknown. */
  lag: number | null;
  /**
   * The changelog replay of the partition's latest opening here: from the store's checkpoint (0:
   * no store, a full restore) to the barrier, how many state records, how long. A warm store (a
   * standby's) replays only the tail. Null while it is being opened.
   */
  restore: { from: number; barrier: number; records: number; ms: number } | null;
}

export interface ProcessorStatus {
  state: LifecycleState;
  ready: boolean;
  partitions: PartitionStatus[];
  applied: number;
  deadLetters: number;
  batches: number;
  /** Records of other partitions' users forwarded to the repartition topic. */
  forwarded: number;
  /** Users deleted (delete commands applied, src/stream/deletion.ts). */
  deleted: number;
  /** Why the processor is `failed`, else null. */
  failure: string | null;
  /** The consumer's supervision: restarts, the latest crash. */
  consumer: SupervisedStatus | null;
  /** Whether the broker answered the latest high-watermark read (null before the first). */
  kafka: { reachable: boolean | null; checkedAt: string | null; error: string | null };
  /** The standby replicas this instance keeps (processor.standbyReplicas): partition, checkpoint, lag behind the changelog. */
  standbys: StandbyStatus[];
}

/** The two input topics of a task: its interactions partition and its repartition partition. */
type Source = 'interactions' | 'repartition';

interface Task {
  partition: number;
  store: KeyValueStore;
  producer: Producer;
  /** The next offset of interactions partition `partition` (stored under `__offset`). */
  nextOffset: number;
  /** The next offset of interactions-repartition partition `partition` (stored under `__offset.repartition`). */
  repartitionOffset: number;
  highWatermark: number | null;
  restored: boolean;
  /** The offset this task last sought the consumer to, per input topic. */
  soughtTo: number | null;
  repartitionSoughtTo: number | null;
  /** Decoded state kept between batches. */
  cache: StateCache;
  /** The next changelog offset the store reflects (`__checkpoint`): reported to the group's leader. */
  checkpoint: number;
  restore: { from: number; barrier: number; records: number; ms: number };
}

/** The processor's consumer group: its members are the group's instances. */
export const processorGroupId = (group: string): string => `streamrec.${group}.processor`;

/**
 * Changelog records go out in chunks: under the broker's default message size, and of at most
 * 300 records (kafkajs groups a send's messages by partition in time quadratic in their number).
 */
const CHANGELOG_CHUNK_BYTES = 768 * 1024;
const CHANGELOG_CHUNK_RECORDS = 300;

export class StreamProcessor {
  private readonly kafka: KafkaClient;
  private readonly codecs: Codecs;
  private readonly params: CountingParams;
  /** The HRNN step thread (processor.hrnnStep `thread`). */
  private readonly remote: RemoteStepper | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly topics: { interactions: string; repartition: string; changelog: string; deadLetter: string; deletions: string; recommendations: string };
  /** The consumer, made again after a crash; `supervisor.current` is the one of the moment. */
  private supervisor: SupervisedConsumer | undefined;
  /** Reads the interactions topic's high watermarks (lag, reachability). */
  private readonly admin: Admin;
  private readonly watermarks = new Map<number, number>();
  private watermarksAt: number | undefined;
  private watermarkError: string | null = null;
  private watermarkTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  /** The next input offset of each assigned partition's state, kept while its task is re-opened. */
  private readonly offsets = new Map<number, number>();
  /** The batch in flight per partition (a released task's store closes after it). */
  private readonly inflight = new Map<number, Promise<void>>();
  /** Bumped on every assignment and crash: task openings of an older one stop retrying. */
  private generation = 0;
  private failure: string | null = null;
  private stateValue: LifecycleState = 'created';
  private readonly tasks = new Map<number, Promise<Task>>();
  private readonly ready = new Map<number, Task>();
  /** Stores and producers of released partitions, while they close. */
  private readonly closing = new Map<number, Promise<void>>();
  /** Partitions this instance was fenced from, until the next assignment. */
  private readonly lost = new Set<number>();
  private assignment: number[] = [];
  /** The consumer's cluster (its topic metadata), once the consumer made its assigner. */
  private cluster: Cluster | undefined;
  /** The latest owner table the group's assignment carried (advertisedUrl only). */
  private owners: OwnersUpdate | undefined;
  private counters = { applied: 0, deadLetters: 0, batches: 0, forwarded: 0, deleted: 0 };
  /** Standby stores of other instances' partitions (processor.standbyReplicas). */
  private readonly standby: StandbyTasks;
  /** This member's standby partitions in the latest assignment (v3), until GROUP_JOIN applies them. */
  private assignedStandby: number[] = [];

  constructor(private readonly o: ProcessorOptions) {
    this.kafka = createKafka(o.config, o.brokers, `-${o.instanceId}`, o.log);
    // Few retries: a broker that does not answer makes the lag unknown soon, not after kafkajs's backoff.
    this.admin = this.kafka.admin({ retry: { retries: 1 } });
    this.codecs = createCodecs(o.config);
    this.params = countingParams(o.config.state);
    this.remote = o.config.processor.hrnnStep === 'thread' ? new RemoteStepper() : undefined;
    this.log = o.log ?? silentLogger;
    this.now = o.now ?? Date.now;
    this.topics = {
      interactions: topicName(o.group, 'interactions'),
      repartition: topicName(o.group, 'interactions-repartition'),
      changelog: topicName(o.group, 'changelog'),
      deadLetter: topicName(o.group, 'dead-letter'),
      deletions: topicName(o.group, 'deletions'),
      recommendations: topicName(o.group, 'recommendations'),
    };
    this.standby = new StandbyTasks({
      kafka: this.kafka,
      topic: this.topics.changelog,
      groupPrefix: `streamrec.${o.group}.standby.${o.instanceId}`,
      openStore: (p) => o.openStore(p),
      // A partition owned here until this assignment: its task closes the store first.
      released: (p) => this.closing.get(p) ?? Promise.resolve(),
      log: this.log,
      backoff: restartBackoff(o.config),
      maxBytesPerPartition: o.config.processor.maxBytesPerPartition,
    });
  }

  get state(): LifecycleState {
    return this.stateValue;
  }

  status(): ProcessorStatus {
    const fresh = this.watermarksFresh();
    const partitions = this.assignment.map((p) => {
      const t = this.ready.get(p);
      const next = t?.nextOffset ?? this.offsets.get(p);
      const hw = fresh ? (this.watermarks.get(p) ?? null) : null;
      return {
        partition: p,
        restored: t?.restored ?? false,
        nextOffset: next ?? 0,
        highWatermark: hw,
        lag: hw !== null && next !== undefined ? Math.max(0, hw - next) : null,
        restore: t?.restore ?? null,
      };
    });
    return {
      state: this.stateValue,
      ready: this.stateValue === 'running',
      partitions,
      ...this.counters,
      failure: this.failure,
      consumer: this.supervisor?.status() ?? null,
      kafka: {
        reachable: this.watermarksAt === undefined && this.watermarkError === null ? null : fresh,
        checkedAt: this.watermarksAt === undefined ? null : new Date(this.watermarksAt).toISOString(),
        error: this.watermarkError,
      },
      standbys: this.standby.status(),
    };
  }

  /**
   * What this member tells the group's leader at each join (v3 subscription): the partitions it
   * owns, and the changelog offset of each local store it knows (owned tasks, standbys, stores it
   * closed), so that a partition that must move goes where a warm store is.
   */
  private storeReport(): StoreReport {
    const stores = this.standby.checkpoints();
    for (const t of this.ready.values()) stores.set(t.partition, t.checkpoint);
    return { active: [...this.assignment], stores };
  }

  /** The latest high watermarks are recent enough to count (3 refresh periods). */
  private watermarksFresh(): boolean {
    return this.watermarksAt !== undefined && this.now() - this.watermarksAt <= 3 * this.o.config.processor.lagRefreshMs;
  }

  /** Reads the high watermarks of the interactions topic; a failure makes them (and the lag) unknown soon. */
  private refreshWatermarks(): Promise<void> {
    this.refreshing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const timeoutMs = 2 * this.o.config.processor.lagRefreshMs;
        const offsets = await Promise.race([
          this.admin.fetchTopicOffsets(this.topics.interactions),
          new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs))),
        ]);
        for (const o of offsets) this.watermarks.set(o.partition, Number(o.high));
        this.watermarksAt = this.now();
        this.watermarkError = null;
        // The standbys' lag: the changelog's ends (a caught-up standby receives no batch to learn them from).
        if (this.standby.partitions().length > 0) {
          const ends = await this.admin.fetchTopicOffsets(this.topics.changelog);
          this.standby.observeEnds(new Map(ends.map((o) => [o.partition, Number(o.high)])));
        }
      } catch (err) {
        if (this.watermarkError === null) this.log.warn({ err: describeError(err) }, 'reading the high watermarks failed: the lag is unknown until it works again');
        this.watermarkError = `reading the high watermarks of ${this.topics.interactions} failed: ${describeError(err)}`;
        if (!this.watermarksFresh()) this.watermarks.clear();
      } finally {
        clearTimeout(timer);
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * A version's step kernel is made (backend loaded, weights uploaded, code compiled) when the
   * version is swapped in, not by the first batch after it.
   */
  private readonly warmHrnn = (): void => {
    const hrnn = this.o.serving?.hrnn;
    if (hrnn) warmHrnnStep(hrnn.model, this.o.config.processor.hrnnStep, this.remote).catch((err: unknown) => this.log.warn({ err, version: hrnn.version }, 'warming the HRNN step kernel failed'));
  };

  async start(): Promise<void> {
    this.setState('starting');
    this.warmHrnn();
    this.o.serving?.on('swap', this.warmHrnn);
    await this.admin.connect();
    await this.refreshWatermarks();
    this.watermarkTimer = setInterval(() => void this.refreshWatermarks(), this.o.config.processor.lagRefreshMs);
    this.watermarkTimer.unref();
    const supervisor = new SupervisedConsumer({
      name: 'processor',
      log: this.log,
      backoff: restartBackoff(this.o.config),
      // The processor's group is shared with the other instances: every consumer joins it (a new
      // member waits for the crashed one's session, processor.sessionTimeoutMs, to expire).
      create: () => this.createConsumer(),
      run: (consumer) => this.runConsumer(consumer),
      onDown: (err, restarting) => this.onConsumerDown(err, restarting),
    });
    this.supervisor = supervisor;
    try {
      await supervisor.start();
    } catch (err) {
      clearInterval(this.watermarkTimer);
      await this.admin.disconnect().catch(() => undefined);
      this.failure = describeError(err);
      this.setState('failed');
      throw err;
    }
    if (this.stateValue === 'starting') this.setState('rebalancing');
  }

  private createConsumer(): Consumer {
    const url = this.o.advertisedUrl;
    // The owner assigner first, the co-partitioned one (the same balance, no URLs) as the fallback
    // both sides of a group with and without advertised URLs agree on. Both give partition p of
    // interactions and of interactions-repartition to the same member (one task, one store).
    // Either way the consumer's cluster is kept, for the interactions topic's partition count.
    const assigners: PartitionAssigner[] =
      url === undefined
        ? [coPartitionedAssigner]
        : [
            ...createOwnerAssigners(
              url,
              (_owners, update) => {
                if (update.topic === undefined || update.topic === this.topics.interactions) {
                  this.owners = update;
                  this.assignedStandby = update.standby;
                }
              },
              { standbyReplicas: this.o.config.processor.standbyReplicas, report: () => this.storeReport() },
            ),
            coPartitionedAssigner,
          ];
    const consumer = this.kafka.consumer({
      partitionAssigners: assigners.map((create): PartitionAssigner => (args) => {
        this.cluster = args.cluster;
        return create(args);
      }),
      groupId: processorGroupId(this.o.group),
      sessionTimeout: this.o.config.processor.sessionTimeoutMs,
      rebalanceTimeout: this.o.config.processor.rebalanceTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(this.o.config.processor.sessionTimeoutMs / 5)),
      maxBytesPerPartition: this.o.config.processor.maxBytesPerPartition,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      retry: consumerRetry(),
    });
    return consumer;
  }

  private async runConsumer(consumer: Consumer): Promise<void> {
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      if (this.supervisor?.current !== consumer) return;
      const partitions = (payload.memberAssignment[this.topics.interactions] ?? []).slice().sort((a, b) => a - b);
      this.onAssignment(partitions);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [this.topics.interactions, this.topics.repartition], fromBeginning: true });
    await consumer.run({
      autoCommit: true,
      autoCommitThreshold: 1,
      eachBatchAutoResolve: false,
      // Partitions are independent (own store, own producer): their batches may overlap.
      partitionsConsumedConcurrently: this.o.config.processor.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.trackBatch(payload),
    });
  }

  /**
   * The consumer crashed (kafkajs has already stopped it): every task is released — after its batch
   * in flight — so that the next assignment re-opens it from its store and the changelog; a new
   * consumer follows (`restarting`), or none (`failed`, with the reason).
   */
  private async onConsumerDown(err: unknown, restarting: boolean): Promise<void> {
    if (this.stateValue === 'stopping' || this.stateValue === 'stopped') return;
    this.generation++;
    if (restarting) {
      this.setState('recovering');
    } else {
      this.failure = describeError(err);
      this.setState('failed');
    }
    void this.refreshWatermarks();
    await Promise.all([...this.tasks.keys()].map((p) => this.release(p)));
  }

  /**
   * Failed for good: the consumer leaves the group (so that other instances take the partitions
   * over) and every task is closed; `/health` reports the reason until the process is restarted.
   */
  private async fail(reason: string): Promise<void> {
    if (this.stateValue === 'failed' || this.stateValue === 'stopping' || this.stateValue === 'stopped') return;
    this.failure = reason;
    this.setState('failed');
    this.generation++;
    await this.supervisor?.stop();
    await Promise.all([...[...this.tasks.keys()].map((p) => this.release(p)), this.standby.stop()]);
    await this.remote?.close();
  }

  /** Finishes the batch in flight, leaves the group, closes producers and stores. */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopped' || this.stateValue === 'stopping') return;
    this.setState('stopping');
    this.generation++;
    clearInterval(this.watermarkTimer);
    this.o.serving?.off('swap', this.warmHrnn);
    await this.supervisor?.stop();
    await Promise.all([...[...this.tasks.keys()].map((p) => this.release(p)), this.standby.stop()]);
    await this.admin.disconnect().catch(() => undefined);
    this.setState('stopped');
  }

  private setState(next: LifecycleState): void {
    if (next !== this.stateValue) {
      this.log.info({ from: this.stateValue, to: next }, 'processor state');
      this.stateValue = next;
    }
  }

  private onAssignment(partitions: number[]): void {
    this.assignment = partitions;
    this.lost.clear();
    for (const p of [...this.offsets.keys()]) if (!partitions.includes(p)) this.offsets.delete(p);
    for (const p of [...this.tasks.keys()]) if (!partitions.includes(p)) void this.release(p);
    if (this.stateValue === 'stopping' || this.stateValue === 'stopped' || this.stateValue === 'failed') return;
    // After the releases above (a partition given away that becomes a standby here waits for its
    // task's close); never a partition owned here.
    this.standby.assign(this.assignedStandby.filter((p) => !partitions.includes(p)));
    this.setState('rebalancing');
    void this.refreshWatermarks();
    const generation = ++this.generation;
    for (const p of partitions) void this.openAssigned(p, generation);
  }

  /**
   * Opens an assigned partition's task, retrying with backoff while the assignment holds: Kafka
   * failures (a broker restarting) as long as it takes, other failures (a store that does not open)
   * 4 times; then the processor is `failed`. Programmer errors are not retried.
   */
  private async openAssigned(partition: number, generation: number): Promise<void> {
    const current = () => this.generation === generation && this.assignment.includes(partition);
    let others = 0;
    try {
      await retry(
        async () => {
          if (current()) await this.task(partition);
        },
        {
          ...restartBackoff(this.o.config),
          retriable: (err) => current() && (isRecoverableKafkaError(err) || ++others <= 4),
          onRetry: (err, attempt, delayMs) => this.log.warn({ partition, attempt: attempt + 1, delayMs, err: describeError(err) }, 'opening the partition failed; trying again'),
        },
      );
    } catch (err) {
      if (!current() || this.stateValue === 'stopping' || this.stateValue === 'stopped') return;
      this.log.error({ err, partition }, 'partition could not be opened; the processor has failed');
      await this.fail(`partition ${partition} could not be opened: ${describeError(err)}`);
      return;
    }
    if (this.stateValue === 'rebalancing' && this.assignment.every((p) => this.ready.has(p))) this.setState('running');
  }

  private task(partition: number): Promise<Task> {
    let t = this.tasks.get(partition);
    if (!t) {
      t = this.open(partition);
      this.tasks.set(partition, t);
      t.catch((err: unknown) => {
        this.log.warn({ err: describeError(err), partition }, 'partition could not be restored');
        if (this.tasks.get(partition) === t) this.tasks.delete(partition);
      });
    }
    return t;
  }

  /**
   * The batch of `payload`'s partition is in flight until it settles (a release waits for it).
   * A task's two input partitions (interactions p, interactions-repartition p) share its store, cache
   * and transactional producer: their batches run one after the other, never at the same time.
   */
  private trackBatch(payload: EachBatchPayload): Promise<void> {
    const partition = payload.batch.partition;
    const before = this.inflight.get(partition);
    const run = before ? before.then(() => this.onBatch(payload)) : this.onBatch(payload);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.set(partition, settled);
    void settled.then(() => {
      if (this.inflight.get(partition) === settled) this.inflight.delete(partition);
    });
    return run;
  }

  /** Closes a partition's task: after its batch in flight (unless called from that batch: `fromBatch`). */
  private release(partition: number, fromBatch = false): Promise<void> {
    const t = this.tasks.get(partition);
    this.tasks.delete(partition);
    this.ready.delete(partition);
    if (!t) return this.closing.get(partition) ?? Promise.resolve();
    const batch = fromBatch ? undefined : this.inflight.get(partition);
    const closing = (async () => {
      try {
        await batch;
        const task = await t;
        // Opened after the release began (the open was under way): it is not ready either.
        if (this.ready.get(partition) === task) this.ready.delete(partition);
        await task.producer.disconnect();
        await task.store.close();
        this.standby.remember(partition, task.checkpoint);
      } catch (err) {
        this.log.warn({ err, partition }, 'closing a released partition failed');
      }
    })();
    this.closing.set(partition, closing);
    void closing.then(() => {
      if (this.closing.get(partition) === closing) this.closing.delete(partition);
    });
    return closing;
  }

  /** Fences older owners, restores the store from the changelog, finds the next input offset. */
  private async open(partition: number): Promise<Task> {
    // A partition given back right after it was taken away: its store must be closed first; so
    // must a standby store of it (RocksDB's lock): the task takes the warm store over.
    await this.closing.get(partition);
    await this.standby.release(partition);
    const t0 = Date.now();
    const producer = this.kafka.producer({
      transactionalId: `streamrec.${this.o.group}.changelog.${partition}`,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      transactionTimeout: this.o.config.processor.transactionTimeoutMs,
    });
    let store: KeyValueStore;
    try {
      await producer.connect();
      store = await this.o.openStore(partition);
    } catch (err) {
      // Nothing may stay connected (it would keep the process alive) or open.
      await producer.disconnect().catch(() => undefined);
      throw err;
    }
    try {
      const txn = await producer.transaction();
      const [meta] = await txn.send({
        topic: this.topics.changelog,
        messages: [{ key: BARRIER_KEY, value: `${this.o.instanceId} ${new Date().toISOString()}`, partition }],
      });
      await txn.commit();
      const barrier = Number(meta!.baseOffset);
      const from = await storeCheckpoint(store);
      const tRestore = Date.now();
      let restored = 0;
      await readPartition(this.kafka, {
        topic: this.topics.changelog,
        partition,
        from,
        until: barrier,
        groupPrefix: `streamrec.${this.o.group}.restore.${this.o.instanceId}.${partition}`,
        onBatch: async (messages) => {
          restored += await replayChangelog(store, messages);
        },
      });
      await store.write([{ type: 'put', key: keys.checkpoint, value: stateCodecs.offset.encode(barrier + 1) }]);
      const [offsetBytes, repartitionBytes] = await store.getMany([keys.offset, keys.repartitionOffset]);
      const task: Task = {
        partition,
        store,
        producer,
        nextOffset: offsetBytes ? stateCodecs.offset.decode(offsetBytes) : 0,
        repartitionOffset: repartitionBytes ? stateCodecs.offset.decode(repartitionBytes) : 0,
        highWatermark: null,
        restored: true,
        soughtTo: null,
        repartitionSoughtTo: null,
        cache: new StateCache(this.o.config.state.cacheEntries),
        checkpoint: barrier + 1,
        restore: { from, barrier, records: restored, ms: Date.now() - tRestore },
      };
      this.ready.set(partition, task);
      this.offsets.set(partition, task.nextOffset);
      this.seek(task, 'interactions');
      this.seek(task, 'repartition');
      this.log.info({ partition, from, barrier, restored, nextOffset: task.nextOffset, repartitionOffset: task.repartitionOffset, ms: Date.now() - t0 }, 'partition restored');
      return task;
    } catch (err) {
      await producer.disconnect().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * One fetched batch of a task's input: interactions p, or interactions-repartition p (records of
   * partition p's users that arrived elsewhere). Each record is decoded and checked; a bad one is
   * dead-lettered; a good one of a user partition p owns is applied; a good one of another
   * partition's user (interactions only: the producer used another partitioner, or an explicit
   * partition) is forwarded, unchanged, to that partition of the repartition topic; on the
   * repartition topic, a record of another partition's user (only when partition counts differ) is
   * dead-lettered (RECORD_MISROUTED). The changes, the topic's next offset, the dead letters and
   * the forwards go in ONE transaction, so each record is applied, forwarded or dead-lettered once.
   */
  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset, commitOffsetsIfNecessary }: EachBatchPayload): Promise<void> {
    const source: Source | undefined = batch.topic === this.topics.interactions ? 'interactions' : batch.topic === this.topics.repartition ? 'repartition' : undefined;
    if (source === undefined || this.lost.has(batch.partition)) return;
    // A batch queued behind the other topic's batch of a partition released meanwhile: not re-opened.
    if (!this.assignment.includes(batch.partition)) return;
    const task = await this.task(batch.partition);
    if (source === 'interactions') {
      task.highWatermark = Number(batch.highWatermark);
      // A fetch's watermark is at least as new as the admin's last read.
      if (task.highWatermark > (this.watermarks.get(batch.partition) ?? -1) && this.watermarksFresh()) this.watermarks.set(batch.partition, task.highWatermark);
    }
    // Nothing is resolved (so nothing is committed) unless it was applied: an early return means
    // the same records come again.
    if (!isRunning() || isStale()) return;
    const sourceTopic = source === 'interactions' ? this.topics.interactions : this.topics.repartition;
    const stored = () => (source === 'interactions' ? task.nextOffset : task.repartitionOffset);
    const setStored = (offset: number) => {
      if (source === 'interactions') {
        task.nextOffset = offset;
        this.offsets.set(task.partition, offset);
      } else task.repartitionOffset = offset;
    };
    // The offset this fetch started at (kafkajs has it on every batch; its types leave it out).
    const fetched = Number((batch as unknown as { fetchedOffset: string }).fetchedOffset);
    if (fetched > stored()) {
      if ((source === 'interactions' ? task.soughtTo : task.repartitionSoughtTo) !== stored()) {
        // The group's committed offset is ahead of the state: go back to where the state is.
        this.seek(task, source);
        return;
      }
      // We did seek there and the log still starts later: those records are gone (retention).
      this.log.warn({ partition: task.partition, topic: sourceTopic, from: stored(), to: fetched }, 'input records below the log start were deleted before they were applied');
      setStored(fetched);
    }
    let fresh = batch.messages.filter((m) => Number(m.offset) >= stored());
    if (fresh.length === 0) {
      const last = batch.messages[batch.messages.length - 1];
      if (last) resolveOffset(last.offset);
      return;
    }

    const good: Interaction[] = [];
    const dead: { message: KafkaMessage; err: AppError }[] = [];
    const forwards: Forward[] = [];
    const now = this.now();
    const partitions = this.partitionCount();
    // Delete commands of this partition's users (src/stream/deletion.ts) are applied after the
    // batch's events: an event after a command ends the batch before it (it comes in the next fetch).
    const deletions: PendingDeletion[] = [];
    let cut = false;
    for (const [i, m] of fresh.entries()) {
      const command = parseDeleteCommand(m);
      if (command !== undefined && !(command instanceof AppError) && partitionOf(command.userId, partitions) === task.partition) {
        deletions.push({ command, origin: commandOrigin(m, task.partition, source === 'repartition'), timestamp: Number(m.timestamp) });
        continue;
      }
      const result = command === undefined ? this.decode(m, now) : command instanceof AppError ? command : ({ USER_ID: command.userId } as Interaction);
      if (result instanceof AppError) {
        dead.push({ message: m, err: result });
        continue;
      }
      const owner = partitionOf(result.USER_ID, partitions);
      if (owner === task.partition && deletions.length > 0) {
        fresh = fresh.slice(0, i);
        cut = true;
        break;
      }
      if (owner === task.partition) good.push(result);
      else if (source === 'interactions') forwards.push(forwardRecord(m, sourceTopic, task.partition, owner));
      else {
        dead.push({
          message: m,
          err: new AppError(
            'RECORD_MISROUTED',
            `user ${JSON.stringify(result.USER_ID)} belongs to partition ${owner} of ${partitions}, but the record is in partition ${task.partition} of ${sourceTopic}: the repartition topic must have as many partitions as ${this.topics.interactions}`,
            { field: 'USER_ID' },
          ),
        });
      }
    }

    const t0 = performance.now();
    // One version for the whole batch, even if a swap happens meanwhile.
    const hrnn = this.o.serving?.hrnn;
    const view = await BatchView.prefetch(task.store, good, this.params.coOccurrenceWindow, task.cache, { hrnn: hrnn !== undefined });
    // New users' metadata, for their initial state (hrnn-metadata).
    const newUsers =
      hrnn?.model.meta && this.o.userMetadata ? await this.o.userMetadata([...new Set(good.filter((e) => !view.user(e.USER_ID)).map((e) => e.USER_ID))]) : new Map<string, User>();
    const t1 = performance.now();
    // From here the cached objects are being changed: unless the batch commits, forget them.
    let committed = false;
    try {
      // The HRNN steps first: a state to re-derive comes from the events before the batch.
      if (hrnn) await stepHrnnBatch(hrnn, { kernel: await hrnnStepKernel(hrnn.model, this.o.config.processor.hrnnStep), remote: this.remote }, view, good, newUsers, heartbeat, this.log);
      for (const e of good) applyInteraction(view, e, this.params);
      const extra: TransactionRecords[] = applyDeletions(view, deletions, this.topics, now);
      const lastOffset = fresh[fresh.length - 1]!.offset;
      // Past the batch's trailing records that are not data (transaction markers, aborted records:
      // the repartition topic has them), so the next fetch starts where the stored offset is.
      const nextOffset = cut ? Number(lastOffset) + 1 : Math.max(Number(lastOffset), Number(batch.lastOffset())) + 1;
      const ops: WriteOp[] = view.changes();
      // Online metrics per version (src/stream/attribution.ts): one put per touched key, in this batch.
      for (const op of await attributionOps(task.store, good)) ops.push(op);
      ops.push({ type: 'put', key: source === 'interactions' ? keys.offset : keys.repartitionOffset, value: stateCodecs.offset.encode(nextOffset) });

      const t2 = performance.now();
      let lastChangelogOffset: number;
      try {
        lastChangelogOffset = await this.commitTransaction(task, ops, dead, sourceTopic, batch.partition, forwards, extra);
      } catch (err) {
        if (isFenced(err)) {
          // Another instance owns the partition now; stay away from it until the next assignment,
          // or re-opening it would fence the new owner in turn.
          this.log.warn({ partition: task.partition }, 'fenced: another instance owns this partition now; dropping the batch');
          this.lost.add(task.partition);
          await this.release(task.partition, true);
          return;
        }
        // The transaction may or may not have committed (a timeout, a lost connection): drop the
        // partition so that the retry re-opens it, restoring from the changelog first; a batch that
        // did commit is then skipped, not applied (and dead-lettered) twice.
        this.log.warn({ err, partition: task.partition }, 'changelog transaction failed; the partition is re-opened before the batch is retried');
        await this.release(task.partition, true);
        throw err;
      }
      failpoint('after-changelog-commit');
      const t3 = performance.now();
      ops.push({ type: 'put', key: keys.checkpoint, value: stateCodecs.offset.encode(lastChangelogOffset + 1) });
      await task.store.write(ops);
      task.checkpoint = lastChangelogOffset + 1;
      committed = true;
      view.keepIn(task.cache);
      const t4 = performance.now();
      setStored(nextOffset);
      for (const d of deletions) this.deleted(d.command.userId);
      if (this.o.onApplied && good.length > 0) {
        try {
          const users = new Map<string, number>();
          for (const e of good) users.set(e.USER_ID, Math.max(users.get(e.USER_ID) ?? -Infinity, e.TIMESTAMP));
          // A user deleted at the end of the batch has no state to publish or keep.
          for (const d of deletions) users.delete(d.command.userId);
          this.o.onApplied(users, () => committedStates(ops));
        } catch (err) {
          this.log.warn({ err, partition: task.partition }, 'onApplied failed (the batch is applied)');
        }
      }
      this.counters.applied += good.length;
      this.counters.deadLetters += dead.length;
      this.counters.forwarded += forwards.length;
      this.counters.batches += 1;
      this.log.debug(
        {
          partition: task.partition,
          topic: sourceTopic,
          events: good.length,
          deadLetters: dead.length,
          forwarded: forwards.length,
          changes: ops.length,
          changeBytes: ops.reduce((n, op) => n + op.key.length + (op.type === 'put' ? op.value.length : 0), 0),
          nextOffset,
          ms: { read: Math.round(t1 - t0), apply: Math.round(t2 - t1), changelog: Math.round(t3 - t2), write: Math.round(t4 - t3) },
        },
        'batch applied',
      );
      failpoint('after-state-write');
      resolveOffset(lastOffset);
      await commitOffsetsIfNecessary();
      await heartbeat();
    } finally {
      if (!committed) task.cache.clear();
    }
  }

  /**
   * A user's stored state, from the store of the user's partition (undefined when that partition
   * is not ready here: another instance owns the user, or it is being restored; or when the user
   * has no events yet).
   */
  async userState(userId: string): Promise<{ user: UserState; hrnn: HrnnUserState | undefined } | undefined> {
    const task = this.ready.get(partitionOf(userId, this.partitionCount()));
    if (!task) return undefined;
    const [u, h] = await task.store.getMany([keys.user(userId), keys.hrnn(userId)]);
    return u ? { user: stateCodecs.user.decode(u), hrnn: h ? stateCodecs.hrnn.decode(h) : undefined } : undefined;
  }

  /**
   * A user's stored state for a query: only the owner's ready store answers. A partition that is
   * not ready here (owned elsewhere, being restored, just given away; a standby store never
   * answers) is PARTITION_MOVING (503, retriable), never "no such user".
   */
  async queryState(userId: string): Promise<{ user: UserState; hrnn: HrnnUserState | undefined } | undefined> {
    const partition = partitionOf(userId, this.partitionCount());
    if (!this.ready.has(partition)) {
      throw new AppError('PARTITION_MOVING', `user ${JSON.stringify(userId)}'s partition ${partition} is not ready on this instance (it is being moved or restored)`, { field: 'userId' });
    }
    return this.userState(userId);
  }

  /**
   * Who owns a user's partition: `self` when this instance has it ready; `url`, the owner's
   * advertised URL from the group's latest assignment (undefined while unknown, or without
   * `advertisedUrl`). During a rebalance the previous assignment's owner is returned.
   */
  owner(userId: string): { partition: number; self: boolean; url: string | undefined } {
    const partition = partitionOf(userId, this.partitionCount());
    return { partition, self: this.ready.has(partition), url: this.owners?.owners.get(partition) };
  }

  /** The advertised URLs of the instances owning the input partitions (this one's included), from the latest assignment. */
  ownerUrls(): string[] {
    return [...new Set(this.owners?.owners.values() ?? [])];
  }

  /**
   * The interactions topic's partition count: from the consumer's topic metadata, else from the
   * latest assignment's (the leader's metadata), else `topics.partitions` of the config.
   */
  partitionCount(): number {
    try {
      const n = this.cluster?.findTopicPartitionMetadata(this.topics.interactions).length ?? 0;
      if (n > 0) return n;
    } catch {
      // metadata not loaded yet
    }
    return this.owners?.partitions ?? this.o.config.topics.partitions;
  }

  /** Every item's counters in each partition this instance owns (an item appears once per partition that counts it). */
  async forEachItemCount(fn: (itemId: string, counts: ItemCounts) => void): Promise<void> {
    for (const task of this.ready.values()) {
      for await (const [key, value] of task.store.range({ prefix: 'i/' })) fn(key.slice(2), stateCodecs.item.decode(value));
    }
  }

  /** `read` of the store of each partition this instance owns (ready), with the partition. */
  readOwned<T>(read: (store: KeyValueStore, partition: number) => Promise<T>): Promise<T[]> {
    return Promise.all([...this.ready.values()].map((t) => read(t.store, t.partition)));
  }

  /** An item's counters in each partition this instance owns that counts it. */
  async itemCounts(itemId: string): Promise<ItemCounts[]> {
    const out: ItemCounts[] = [];
    for (const task of this.ready.values()) {
      const v = await task.store.get(keys.item(itemId));
      if (v) out.push(stateCodecs.item.decode(v));
    }
    return out;
  }

  /** Points the consumer at the partition's stored offset of `source` (not the group's committed one). */
  private seek(task: Task, source: Source): void {
    const offset = source === 'interactions' ? task.nextOffset : task.repartitionOffset;
    if (source === 'interactions') task.soughtTo = offset;
    else task.repartitionSoughtTo = offset;
    this.supervisor?.current?.seek({ topic: source === 'interactions' ? this.topics.interactions : this.topics.repartition, partition: task.partition, offset: String(offset) });
  }

  /**
   * One Kafka transaction: the state changes (with the input offset) to the changelog, bad records
   * to the dead-letter topic, and the records of other partitions' users to the repartition topic.
   */
  private async commitTransaction(
    task: Task,
    ops: WriteOp[],
    dead: { message: KafkaMessage; err: AppError }[],
    sourceTopic: string,
    sourcePartition: number,
    forwards: Forward[] = [],
    extra: TransactionRecords[] = [],
  ): Promise<number> {
    const txn = await task.producer.transaction();
    try {
      let last = -1;
      const changes = ops.map((op) => ({ key: op.key, value: op.type === 'put' ? op.value : null, partition: task.partition }));
      for (const messages of chunksBySize(changes, CHANGELOG_CHUNK_BYTES, CHANGELOG_CHUNK_RECORDS)) {
        const meta = await txn.send({ topic: this.topics.changelog, messages });
        for (const m of meta) last = Math.max(last, Number(m.baseOffset) + messages.length - 1);
      }
      // The source partition's number: each dead-letter partition then has one transactional
      // writer, which keeps read_committed consumers' filtering of aborted records simple.
      const letters = dead.map(({ message, err }) => ({ ...deadLetterRecord(this.codecs, sourceTopic, sourcePartition, message, err, this.now()), partition: sourcePartition }));
      for (const messages of chunksBySize(letters)) await txn.send({ topic: this.topics.deadLetter, messages });
      // Raw key, value, timestamp and headers; in offset order, so a user's records that arrived
      // in one partition stay in order in the owning repartition partition.
      for (const messages of chunksBySize(forwards, CHANGELOG_CHUNK_BYTES, CHANGELOG_CHUNK_RECORDS)) await txn.send({ topic: this.topics.repartition, messages });
      for (const { topic, messages } of extra) for (const chunk of chunksBySize(messages, CHANGELOG_CHUNK_BYTES, CHANGELOG_CHUNK_RECORDS)) await txn.send({ topic, messages: chunk });
      await txn.commit();
      return last;
    } catch (err) {
      await txn.abort().catch(() => undefined);
      throw err;
    }
  }

  private deleted(userId: string): void {
    this.counters.deleted += 1;
    try {
      this.o.onDeleted?.(userId);
    } catch (err) {
      this.log.warn({ err, userId }, 'onDeleted failed (the deletion is applied)');
    }
  }

  private decode(m: KafkaMessage, now: number): Interaction | AppError {
    return decodeInteractionRecord(this.codecs, m, now, this.o.config.ingest);
  }
}

/** A record forwarded to the repartition topic's partition that owns its user. */
interface Forward {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  partition: number;
  headers: IHeaders;
}

/**
 * Events (with the re-derivations they need) stepped together per HRNN call: some tens of ms of
 * arithmetic, between which queries and the group's heartbeats get through.
 */
const HRNN_EVENTS_PER_CALL = 4_000;

/**
 * The batch's HRNN steps: each user's new events (in order) applied to the user's state, all users
 * stepped together in calls of about HRNN_EVENTS_PER_CALL events (a user's state re-derived after a
 * version swap counts its replayed events too), the states set in the view.
 */
export async function stepHrnnBatch(
  hrnn: { version: string; model: HrnnModel },
  on: { kernel: StepKernel | undefined; remote?: RemoteStepper | undefined },
  view: BatchView,
  good: readonly Interaction[],
  newUsers: ReadonlyMap<string, User>,
  heartbeat: () => Promise<void>,
  log: Logger,
): Promise<void> {
  const byUser = new Map<string, Interaction[]>();
  for (const e of good) {
    const list = byUser.get(e.USER_ID);
    if (list) list.push(e);
    else byUser.set(e.USER_ID, [e]);
  }
  let ids: string[] = [];
  let updates: HrnnUpdate[] = [];
  let size = 0;
  let { kernel, remote } = on;
  const flush = async () => {
    let states: HrnnUserState[] | undefined;
    if (remote) {
      try {
        states = userStates(hrnn.version, await remote.step(hrnn.model, hrnnRuns(hrnn.model, hrnn.version, updates)));
      } catch (err) {
        // A step thread that failed stays failed: the batches step in this thread from now on.
        log.warn({ err, version: hrnn.version }, 'the HRNN step thread failed; stepping in the processor thread');
        remote = undefined;
      }
    }
    try {
      states ??= stepHrnnStates(hrnn.model, hrnn.version, updates, kernel);
    } catch (err) {
      // The TensorFlow.js kernel failing (its memory, a backend error) must not stop the stream:
      // the rest of this batch steps on the JavaScript loops (the next batch tries the kernel again).
      if (kernel === undefined) throw err;
      log.warn({ err, version: hrnn.version }, 'the HRNN step kernel failed; the rest of the batch steps in JavaScript');
      kernel = undefined;
      states = stepHrnnStates(hrnn.model, hrnn.version, updates);
    }
    for (let i = 0; i < ids.length; i++) view.setHrnn(ids[i]!, states[i]!);
    ids = [];
    updates = [];
    size = 0;
    await heartbeat();
  };
  for (const [userId, added] of byUser) {
    const stored = view.hrnn(userId);
    const events = view.user(userId)?.events;
    ids.push(userId);
    updates.push({ stored, events, user: newUsers.get(userId), added });
    size += added.length + (stored?.version === hrnn.version ? 0 : Math.min(events?.length ?? 0, REDERIVE_EVENTS));
    if (size >= HRNN_EVENTS_PER_CALL) await flush();
  }
  if (ids.length > 0) await flush();
}

/** The users' states among a batch's writes (each user of a batch has its `u/` put). */
function committedStates(ops: readonly WriteOp[]): Map<string, EncodedUserState> {
  const states = new Map<string, EncodedUserState>();
  const hrnns = new Map<string, Buffer>();
  for (const op of ops) {
    if (op.type !== 'put') continue;
    if (op.key.startsWith(USER_PREFIX)) states.set(op.key.slice(USER_PREFIX.length), { user: op.value });
    else if (op.key.startsWith(HRNN_PREFIX)) hrnns.set(op.key.slice(HRNN_PREFIX.length), op.value);
  }
  for (const [id, h] of hrnns) {
    const s = states.get(id);
    if (s) s.hrnn = h;
  }
  return states;
}
const USER_PREFIX = keys.user('');
const HRNN_PREFIX = keys.hrnn('');

/** The forwarded record of `m`, which arrived in `topic`/`partition`, for partition `target`. */
function forwardRecord(m: KafkaMessage, topic: string, partition: number, target: number): Forward {
  return {
    key: m.key ?? null,
    value: m.value ?? null,
    timestamp: m.timestamp,
    partition: target,
    headers: { ...(m.headers ?? {}), 'forwarded-from-topic': topic, 'forwarded-from-partition': String(partition), 'forwarded-from-offset': m.offset },
  };
}

function isFenced(err: unknown): boolean {
  const e = err as { type?: string; name?: string; message?: string; cause?: unknown };
  const text = `${e.type ?? ''} ${e.name ?? ''} ${e.message ?? ''}`;
  return /PRODUCER_FENCED|INVALID_PRODUCER_EPOCH|fenced/i.test(text) || (e.cause !== undefined && isFenced(e.cause));
}

/** The directory of one partition's store: `<state.dir>/<group>/p<partition>`. */
export function partitionStoreDir(config: Readonly<Config>, group: string, partition: number): string {
  // 0700 (a looser existing folder is narrowed): the folder's mode keeps RocksDB's files (written with the umask) from other local users.
  return privateDir(join(config.state.dir, group, `p${partition}`));
}
