/**
 * Live feeds of a group for server-sent events (src/api/live-routes.ts):
 *
 * - **lists**: each list published on `<group>.recommendations` for a user, as the topic carries it.
 *   Every instance follows the topic itself (from its end, a consumer group of its own, nothing
 *   committed), so a client gets its user's lists whichever instance it is connected to and
 *   whichever instance owns the user. The follower starts with the first subscriber and runs until
 *   the service stops; a record is decoded only when its key (the user id) has a subscriber.
 * - **events**: the group's event rate, from the interactions topic's high watermarks read once a
 *   second while anyone listens (all producers count, whichever instance they wrote through).
 */
import type { Admin, KafkaClient } from '../kafka/kafkajs.js';
import { followFromBeginning } from '../kafka/follow.js';
import type { SupervisedConsumer } from '../kafka/supervise.js';
import { topicName } from '../kafka/topics.js';
import type { Recommendation } from '../serde/avro.js';
import type { Logger } from '../util/log.js';
import type { BackoffOptions } from '../util/retry.js';

export interface EventRate {
  /** Epoch ms of the reading. */
  at: number;
  /** Events written to `<group>.interactions` per second since the previous reading. */
  eventsPerSecond: number;
  /** Events in the topic (sum of its partitions' high watermarks). */
  total: number;
}

export interface LiveFeedOptions {
  kafka: KafkaClient;
  admin: Pick<Admin, 'fetchTopicOffsets'>;
  group: string;
  decode: (value: Buffer) => Recommendation;
  log: Logger;
  backoff: BackoffOptions;
  /** Milliseconds between event-rate readings (default 1000). */
  rateIntervalMs?: number;
}

export class LiveFeeds {
  private readonly listeners = new Map<string, Set<(r: Recommendation) => void>>();
  private follower: Promise<SupervisedConsumer> | undefined;
  private readonly rateListeners = new Set<(r: EventRate) => void>();
  private rateTimer: NodeJS.Timeout | undefined;
  private last: { at: number; total: number } | undefined;
  private stopped = false;

  constructor(private readonly o: LiveFeedOptions) {}

  /**
   * Calls `onList` with each list published for `userId` from now on; resolves (with the function
   * that unsubscribes) once the topic's follower is in its group, so a list published after that
   * is not missed.
   */
  async lists(userId: string, onList: (r: Recommendation) => void): Promise<() => void> {
    let set = this.listeners.get(userId);
    if (!set) this.listeners.set(userId, (set = new Set()));
    set.add(onList);
    const unsubscribe = () => {
      const s = this.listeners.get(userId);
      s?.delete(onList);
      if (s?.size === 0) this.listeners.delete(userId);
    };
    try {
      await this.startFollower();
    } catch (err) {
      unsubscribe();
      throw err;
    }
    return unsubscribe;
  }

  /** Users with a subscriber now. */
  get subscribedUsers(): number {
    return this.listeners.size;
  }

  /** Calls `onRate` after every reading of the event rate (the first one after two readings) until the returned function is called. */
  events(onRate: (r: EventRate) => void): () => void {
    this.rateListeners.add(onRate);
    if (!this.rateTimer && !this.stopped) {
      this.last = undefined;
      const tick = () => void this.readRate();
      tick();
      this.rateTimer = setInterval(tick, this.o.rateIntervalMs ?? 1000);
    }
    return () => {
      this.rateListeners.delete(onRate);
      if (this.rateListeners.size === 0 && this.rateTimer) {
        clearInterval(this.rateTimer);
        this.rateTimer = undefined;
      }
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.rateTimer) clearInterval(this.rateTimer);
    this.rateTimer = undefined;
    this.rateListeners.clear();
    this.listeners.clear();
    const f = await this.follower?.catch(() => undefined);
    await f?.stop();
  }

  private startFollower(): Promise<SupervisedConsumer> {
    if (this.stopped) return Promise.reject(new Error('live feeds stopped'));
    this.follower ??= followFromBeginning(this.o.kafka, {
      topic: topicName(this.o.group, 'recommendations'),
      groupId: `streamrec.${this.o.group}.live`,
      from: 'end',
      log: this.o.log,
      backoff: this.o.backoff,
      onBatch: (messages) => {
        for (const m of messages) {
          const key = m.key?.toString();
          const set = key === undefined ? undefined : this.listeners.get(key);
          if (!set || !m.value) continue;
          let r: Recommendation;
          try {
            r = this.o.decode(m.value);
          } catch (err) {
            this.o.log.warn({ err, user: key }, 'a record of the recommendations topic could not be decoded; not streamed');
            continue;
          }
          for (const fn of set) fn(r);
        }
      },
    });
    // A follower that could not start is tried again by the next subscriber.
    this.follower.catch(() => (this.follower = undefined));
    return this.follower;
  }

  private async readRate(): Promise<void> {
    let total: number;
    try {
      const offsets = await this.o.admin.fetchTopicOffsets(topicName(this.o.group, 'interactions'));
      total = offsets.reduce((sum, p) => sum + Number(p.high), 0);
    } catch (err) {
      this.o.log.debug({ err }, 'reading the interactions topic offsets for the event rate failed');
      return;
    }
    const at = Date.now();
    const prev = this.last;
    this.last = { at, total };
    if (!prev || at <= prev.at) return;
    const rate: EventRate = { at, eventsPerSecond: Math.round(((total - prev.total) * 1000) / (at - prev.at)), total };
    for (const fn of this.rateListeners) fn(rate);
  }
}
