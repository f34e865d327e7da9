/**
 * Periodic retraining in the service. The instance that owns interactions partition 0 trains (one
 * trainer per group without an election of its own); it checks every few seconds whether
 * `training.everyEvents` new events arrived (the topic's end offsets, all partitions) or
 * `training.everyMinutes` passed with new events, then trains in a worker thread
 * (src/training/train-worker.ts): ingestion and queries go on meanwhile. The new version is written
 * to the registry, published to `<group>.models` (by the worker) and announced on `<group>.versions`
 * when the promotion rule allows it; every instance then fetches it and swaps it in
 * (src/stream/versions.ts). Versions beyond the bound are then pruned from `<group>.models`
 * (src/training/model-transfer.ts, pruneModels).
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../config/index.js';
import { createKafka } from '../kafka/client.js';
import type { Admin } from '../kafka/kafkajs.js';
import type { Sender } from '../kafka/produce.js';
import { topicName, topicOffsets } from '../kafka/topics.js';
import { pruneModels } from '../training/model-transfer.js';
import type { HpoRequest } from '../training/model-files.js';
import type { VersionInfo, VersionRegistry } from '../training/registry.js';
import type { Logger } from '../util/log.js';
import { workerScript } from '../util/worker.js';
import type { StreamProcessor } from './processor.js';
import { promoteIfAllowed, type ServingRecord, type VersionWatcher } from './versions.js';

export interface RetrainerOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  processor: Pick<StreamProcessor, 'status'>;
  watcher: Pick<VersionWatcher, 'announced' | 'catalog' | 'manifests'>;
  registry: VersionRegistry;
  producer: Sender;
  log: Logger;
  /** How often to check whether a training is due (ms). */
  checkEveryMs?: number;
  now?: () => number;
}

/** A recipe and its parameters (a solution). */
export interface SolutionSpec {
  recipe: string;
  params: Record<string, unknown>;
  /** Search the parameters not in `params` first (performHPO). */
  hpo?: HpoRequest;
}

export interface TrainingOutcome {
  info: VersionInfo;
  promoted: boolean;
  reason: string;
}

export class Retrainer {
  private readonly admin: Admin;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<TrainingOutcome | undefined> | undefined;
  private worker: Worker | undefined;
  /** End offsets summed over the partitions at the last training, and when it started. */
  private eventsAtLast = 0;
  private lastAt = 0;
  /** Whether the counters above started from the served version (see check). */
  private baselined = false;
  private retryAt = 0;
  private counters = { trainings: 0, promoted: 0, failed: 0 };
  private last: { version: string; promoted: boolean; reason: string } | { error: string } | undefined;
  private readonly now: () => number;

  constructor(private readonly o: RetrainerOptions) {
    this.admin = createKafka(o.config, o.brokers, '-retrainer', o.log).admin();
    this.now = o.now ?? Date.now;
  }

  status(): { trainings: number; promoted: number; failed: number; running: boolean; last: unknown } {
    return { ...this.counters, running: this.running !== undefined, last: this.last ?? null };
  }

  async start(): Promise<void> {
    await this.admin.connect();
    if (this.o.config.training.recipe === 'none') return;
    this.timer = setInterval(() => void this.check(), this.o.checkEveryMs ?? 5000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.worker?.terminate();
    await this.running?.catch(() => undefined);
    await this.admin.disconnect().catch(() => undefined);
  }

  private owner(): boolean {
    return this.o.processor.status().partitions.some((p) => p.partition === 0);
  }

  private async eventCount(): Promise<number> {
    const offsets = await topicOffsets(this.admin, topicName(this.o.group, 'interactions'));
    return offsets.reduce((n, p) => n + p.high, 0);
  }

  /** Trains when a training is due; errors are logged, never thrown. */
  async check(): Promise<void> {
    if (this.running || !this.owner() || this.now() < this.retryAt) return;
    try {
      const events = await this.eventCount();
      this.baseline(events);
      const fresh = events - this.eventsAtLast;
      const t = this.o.config.training;
      const due = fresh >= t.everyEvents || (fresh > 0 && this.now() - this.lastAt >= t.everyMinutes * 60_000);
      if (due) await this.trainNow();
    } catch (err) {
      this.o.log.warn({ err }, 'retraining check failed');
    }
  }

  /**
   * The first time this process is the trainer (at its start, or when partition 0 moves here from
   * an instance that stopped or died) and a version is already served, the counters start from that
   * version: the next training waits for `everyEvents` events counted from here, or for
   * `everyMinutes` after the version's announcement once events arrived here (events between the
   * announcement and this moment are not counted). Without this, every restart and every move of
   * partition 0 trained (and announced) a version at once.
   */
  private baseline(events: number): void {
    if (this.baselined || this.lastAt !== 0) return;
    const served = this.o.watcher.announced;
    if (!served) return;
    this.baselined = true;
    this.eventsAtLast = events;
    this.lastAt = Date.parse(served.at) || this.now();
    this.o.log.info({ served: served.version, events }, 'trainer: counting new events from now, after the served version');
  }

  /**
   * Trains now (unless a training is running: then waits for that one). With `solution`, a version
   * of that recipe and parameters instead of the configured ones, registered but not promoted
   * (Personalize's CreateSolutionVersion: deploying it is a separate step).
   */
  trainNow(solution?: SolutionSpec): Promise<TrainingOutcome | undefined> {
    this.running ??= this.train(solution).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Whether a training is running. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  private async train(solution?: SolutionSpec): Promise<TrainingOutcome | undefined> {
    const events = await this.eventCount();
    const started = this.now();
    const config: Readonly<Config> = solution
      ? { ...this.o.config, training: { ...this.o.config.training, recipe: solution.recipe as Config['training']['recipe'], params: JSON.stringify(solution.params), hpoBudget: '' } }
      : this.o.config;
    this.o.log.info({ recipe: config.training.recipe, events }, 'training a new model version');
    let info: VersionInfo;
    try {
      info = await this.inWorker(config, solution?.hpo);
    } catch (err) {
      this.counters.failed++;
      const message = err instanceof Error ? err.message : String(err);
      this.last = { error: message };
      // Too little data is normal early on: look again in a minute rather than after everyMinutes.
      this.retryAt = this.now() + 60_000;
      this.o.log.warn({ err: message }, 'training failed; the served version stays');
      return undefined;
    }
    this.counters.trainings++;
    if (solution) {
      const reason = 'trained on request (a solution version); promote it through the deployment';
      this.last = { version: info.version, promoted: false, reason };
      this.o.log.info({ version: info.version, recipe: info.recipe, ndcg10: info.report.metrics.normalized_discounted_cumulative_gain_at_10, ms: info.trainingMs }, 'solution version trained');
      await this.prune(this.o.watcher.announced);
      return { info, promoted: false, reason };
    }
    this.eventsAtLast = events;
    this.lastAt = started;
    const decision = await promoteIfAllowed(this.o.producer, this.o.group, this.o.watcher.catalog, info, this.o.watcher.announced, this.o.config.training);
    await this.prune(decision.serving ?? this.o.watcher.announced);
    if (decision.promote) this.counters.promoted++;
    this.last = { version: info.version, promoted: decision.promote, reason: decision.reason };
    this.o.log.info({ version: info.version, ndcg10: info.report.metrics.normalized_discounted_cumulative_gain_at_10, promoted: decision.promote, reason: decision.reason, ms: info.trainingMs }, 'model version trained');
    return { info, promoted: decision.promote, reason: decision.reason };
  }

  /** Prunes old versions from `<group>.models`; a failure is logged (the next training tries again). */
  private async prune(serving: ServingRecord | undefined): Promise<void> {
    try {
      await pruneModels(this.o.producer, this.o.group, [...this.o.watcher.manifests.values()], serving, this.o.log);
    } catch (err) {
      this.o.log.warn({ err }, 'pruning old model versions from the models topic failed; tried again after the next training');
    }
  }

  private inWorker(config: Readonly<Config>, hpo?: HpoRequest): Promise<VersionInfo> {
    const url = workerScript(import.meta.url, '../training/train-worker.js', 'training/train-worker.js');
    const worker = new Worker(url, { workerData: { config, group: this.o.group, brokers: this.o.brokers, versionsDir: this.o.registry.dir, ...(hpo ? { hpo } : {}) } });
    this.worker = worker;
    return new Promise<VersionInfo>((resolve, reject) => {
      worker.once('message', (m: { ok: true; info: VersionInfo } | { ok: false; message: string }) => (m.ok ? resolve(m.info) : reject(new Error(m.message))));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the training worker exited (code ${code})`)));
    }).finally(() => {
      this.worker = undefined;
      void worker.terminate();
    });
  }
}
