/**
 * Standby replicas (Kafka Streams' standby tasks): for each partition the group's leader named this
 * instance a standby of (src/kafka/assigner.ts, `processor.standbyReplicas`), the partition's store
 * — at the very path its task would use, `<state.dir>/<group>/p<n>` — is kept current by following
 * `<group>.changelog` partition n from the store's checkpoint, read_committed, each fetched batch
 * written with the new checkpoint in one RocksDB write batch (src/stream/changelog.ts, the code the
 * task's restore uses). When the partition then moves here, the task finds a warm store and replays
 * only the tail from its checkpoint to its barrier.
 *
 * A standby store never answers queries (the query path reads owned, ready tasks only) and never
 * writes to Kafka (a barrier would fence the owner).
 *
 * RocksDB allows one opener per folder (STATE_LOCKED), so a store passes between the two roles:
 * `release(p)` closes the standby store before the task of p opens it, and a standby of a
 * partition that was owned here until this assignment waits for the task's close (`released`).
 *
 * One kafkajs consumer reads all of this instance's standby partitions: a throwaway group whose
 * assigner hands every one of them to its only member (the way src/kafka/read-partition.ts reads
 * one partition: kafkajs has no assign()), sought to each store's checkpoint. kafkajs cannot change
 * a consumer's partitions without a rebalance, so a new standby set means a new consumer; the set
 * changes only when the processor's group rebalances. It is supervised (src/kafka/supervise.ts):
 * after a crash a new consumer goes on from the stores' checkpoints.
 */
import { randomBytes } from 'node:crypto';
import type { Consumer, EachBatchPayload, KafkaClient } from '../kafka/kafkajs.js';
import { soleMemberAssigner } from '../kafka/read-partition.js';
import { installReadCommittedFix } from '../kafka/read-committed.js';
import { consumerRetry, SupervisedConsumer } from '../kafka/supervise.js';
import type { KeyValueStore } from '../state/store.js';
import { describeError, type BackoffOptions } from '../util/retry.js';
import type { Logger } from '../util/log.js';
import { replayChangelog, storeCheckpoint } from './changelog.js';

installReadCommittedFix();

/** How long the standby consumer's fetch waits for new changelog records at most. */
const STANDBY_FETCH_WAIT_MS = 250;

export interface StandbyOptions {
  kafka: KafkaClient;
  /** `<group>.changelog`. */
  topic: string;
  /** Consumer group ids start with this (one fresh group per consumer). */
  groupPrefix: string;
  /** Opens the partition's store (the path its task uses). */
  openStore: (partition: number) => Promise<KeyValueStore>;
  /** Resolves once this instance's task of the partition (if any) has closed its store. */
  released: (partition: number) => Promise<void>;
  log: Logger;
  backoff: BackoffOptions;
  maxBytesPerPartition?: number;
}

export interface StandbyStatus {
  partition: number;
  /** The next changelog offset the standby store reflects. */
  checkpoint: number;
  /** The changelog partition's high watermark at the latest fetch, null before the first. */
  highWatermark: number | null;
  /** highWatermark − checkpoint (transaction markers count: a caught-up standby may show 1); null before the first fetch. */
  lag: number | null;
  /** State records written since the store was opened as a standby. */
  records: number;
}

interface Replica {
  partition: number;
  store: KeyValueStore;
  checkpoint: number;
  highWatermark: number | null;
  records: number;
  /** The batch being written, awaited before the store closes. */
  busy: Promise<void>;
  closing: boolean;
}

export class StandbyTasks {
  private target = new Set<number>();
  private readonly replicas = new Map<number, Replica>();
  /** Checkpoints of stores this process closed (the folder stays): reported to the leader. */
  private readonly known = new Map<number, number>();
  private supervisor: SupervisedConsumer | undefined;
  /** The partitions the running consumer reads. */
  private reading: number[] = [];
  private chain: Promise<void> = Promise.resolve();
  private readonly waiters = new Map<number, (() => void)[]>();
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private consumers = 0;

  constructor(private readonly o: StandbyOptions) {}

  /** The standby partitions of the latest assignment (never one owned here: the caller leaves those out). */
  assign(partitions: readonly number[]): void {
    if (this.stopped) return;
    this.target = new Set(partitions);
    void this.schedule();
  }

  /**
   * Stops being a standby of `partition` (its task is about to open the store here): resolves once
   * the standby store is closed (at once when there is none).
   */
  release(partition: number): Promise<void> {
    if (!this.target.has(partition) && !this.replicas.has(partition)) return Promise.resolve();
    this.target.delete(partition);
    const closed = new Promise<void>((resolve) => {
      const list = this.waiters.get(partition) ?? [];
      list.push(resolve);
      this.waiters.set(partition, list);
    });
    void this.schedule();
    return closed;
  }

  /** Changelog offsets of the local stores this object knows: open standbys, and stores it closed. */
  checkpoints(): Map<number, number> {
    const out = new Map(this.known);
    for (const r of this.replicas.values()) out.set(r.partition, r.checkpoint);
    return out;
  }

  /** The partitions standby stores are open for. */
  partitions(): number[] {
    return [...this.replicas.keys()];
  }

  /**
   * The changelog's end offsets, read apart (an admin client): a standby that is caught up gets no
   * batch at all, so its lag would otherwise stay unknown while nothing is written.
   */
  observeEnds(ends: ReadonlyMap<number, number>): void {
    for (const r of this.replicas.values()) {
      const end = ends.get(r.partition);
      if (end !== undefined) r.highWatermark = Math.max(r.highWatermark ?? 0, end);
    }
  }

  /** A store this process closed elsewhere (a released task's): its checkpoint is reported as known. */
  remember(partition: number, checkpoint: number): void {
    if (!this.replicas.has(partition)) this.known.set(partition, checkpoint);
  }

  status(): StandbyStatus[] {
    return [...this.replicas.values()]
      .sort((a, b) => a.partition - b.partition)
      .map((r) => ({
        partition: r.partition,
        checkpoint: r.checkpoint,
        highWatermark: r.highWatermark,
        lag: r.highWatermark === null ? null : Math.max(0, r.highWatermark - r.checkpoint),
        records: r.records,
      }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.target = new Set();
    clearTimeout(this.retryTimer);
    await this.schedule();
  }

  /** Brings the open stores and the consumer in line with `target`, one change at a time. */
  private schedule(): Promise<void> {
    const run = this.chain.then(() => this.reconcile());
    this.chain = run.catch((err: unknown) => this.o.log.warn({ err: describeError(err) }, 'standby replicas: a change failed'));
    return this.chain;
  }

  private async reconcile(): Promise<void> {
    const wanted = [...this.target].sort((a, b) => a - b);
    const stale = [...this.replicas.keys()].filter((p) => !this.target.has(p));
    const missing = wanted.filter((p) => !this.replicas.has(p));
    if (stale.length === 0 && missing.length === 0 && sameList(wanted, this.reading) && (wanted.length === 0 || this.supervisor)) {
      this.wake();
      return;
    }
    // The consumer first: no batch may be written to a store being closed.
    await this.stopConsumer();
    for (const p of stale) {
      const r = this.replicas.get(p)!;
      r.closing = true;
      this.replicas.delete(p);
      await r.busy;
      this.known.set(p, r.checkpoint);
      await r.store.close().catch((err: unknown) => this.o.log.warn({ err: describeError(err), partition: p }, 'closing a standby store failed'));
      this.o.log.info({ partition: p, checkpoint: r.checkpoint, records: r.records }, 'standby replica closed');
    }
    this.wake();
    let failed = false;
    for (const p of missing) {
      if (!this.target.has(p) || this.stopped) continue;
      try {
        await this.o.released(p);
        const store = await this.o.openStore(p);
        const checkpoint = await storeCheckpoint(store).catch(async (err: unknown) => {
          await store.close().catch(() => undefined);
          throw err;
        });
        this.known.delete(p);
        this.replicas.set(p, { partition: p, store, checkpoint, highWatermark: null, records: 0, busy: Promise.resolve(), closing: false });
        this.o.log.info({ partition: p, checkpoint }, 'standby replica opened');
      } catch (err) {
        // The task's store may not be closed yet (STATE_LOCKED), or the disk refuses: try again soon.
        failed = true;
        this.o.log.warn({ err: describeError(err), partition: p }, 'opening a standby store failed; trying again');
      }
    }
    // Released while it was being opened: the next round closes it.
    if ([...this.replicas.keys()].some((p) => !this.target.has(p))) {
      void this.schedule();
      return;
    }
    if (failed && !this.stopped) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => void this.schedule(), this.o.backoff.initialMs);
      this.retryTimer.unref();
    }
    if (this.replicas.size > 0 && !this.stopped) await this.startConsumer();
  }

  private wake(): void {
    for (const [p, list] of [...this.waiters]) {
      if (this.replicas.has(p)) continue;
      this.waiters.delete(p);
      for (const w of list) w();
    }
  }

  private async stopConsumer(): Promise<void> {
    const s = this.supervisor;
    this.supervisor = undefined;
    this.reading = [];
    if (s) await s.stop();
    await Promise.all([...this.replicas.values()].map((r) => r.busy));
  }

  private async startConsumer(): Promise<void> {
    const partitions = [...this.replicas.keys()].sort((a, b) => a - b);
    const topic = this.o.topic;
    const all = soleMemberAssigner('StreamrecStandby', { [topic]: partitions });
    const supervisor = new SupervisedConsumer({
      name: 'standby',
      log: this.o.log,
      backoff: this.o.backoff,
      // A fresh group each time: nothing is committed (the stores' checkpoints are the positions),
      // and a new member never waits for a crashed one's session.
      create: () =>
        this.o.kafka.consumer({
          groupId: `${this.o.groupPrefix}.${(this.consumers++).toString(36)}.${randomBytes(4).toString('hex')}`,
          partitionAssigners: [all],
          readUncommitted: false,
          allowAutoTopicCreation: false,
          maxBytesPerPartition: this.o.maxBytesPerPartition ?? 4 * 1024 * 1024,
          // A short long-poll: stopping the consumer waits for the fetch in flight, and a failover
          // waits for that stop (the task takes the store over); kafkajs's default is 5 s.
          maxWaitTimeInMs: STANDBY_FETCH_WAIT_MS,
          retry: consumerRetry(),
        }),
      run: (consumer) => this.runConsumer(consumer, topic),
    });
    this.supervisor = supervisor;
    this.reading = partitions;
    try {
      await supervisor.start();
    } catch (err) {
      if (this.supervisor === supervisor) {
        this.supervisor = undefined;
        this.reading = [];
      }
      this.o.log.warn({ err: describeError(err) }, 'the standby consumer did not start; trying again');
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => void this.schedule(), this.o.backoff.initialMs);
      this.retryTimer.unref();
    }
  }

  private async runConsumer(consumer: Consumer, topic: string): Promise<void> {
    consumer.on(consumer.events.GROUP_JOIN, () => {
      for (const r of this.replicas.values()) consumer.seek({ topic, partition: r.partition, offset: String(r.checkpoint) });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ autoCommit: false, eachBatch: (payload) => this.onBatch(payload) });
  }

  private async onBatch({ batch, isStale, isRunning }: EachBatchPayload): Promise<void> {
    const r = this.replicas.get(batch.partition);
    if (!r || r.closing || isStale() || !isRunning()) return;
    const write = (async () => {
      await r.busy;
      if (r.closing) return;
      const hw = Number(batch.highWatermark);
      const last = Number(batch.lastOffset());
      // Below the checkpoint: already in the store (a refetch after a seek).
      const fresh = batch.messages.filter((m) => Number(m.offset) >= r.checkpoint);
      if (last + 1 > r.checkpoint) {
        r.records += await replayChangelog(r.store, fresh, last + 1);
        r.checkpoint = last + 1;
      }
      r.highWatermark = Math.max(r.highWatermark ?? 0, hw);
    })();
    r.busy = write.catch(() => undefined);
    await write;
  }
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
