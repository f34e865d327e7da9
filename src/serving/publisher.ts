/**
 * Publishes each user's fresh top-N to `<group>.recommendations` after the user's events are
 * applied, at most one list per user per `minIntervalMs` (a throttle with a trailing edge).
 *
 * - notify(): users not published within the interval are queued for the next round; users
 *   published recently are marked pending, due at lastEmit + minIntervalMs, carrying the latest
 *   event time notified meanwhile (later events in the window give ONE trailing list).
 * - rounds run on setImmediate, one at a time; a round computes at most `maxPerRound` lists and
 *   sends them in ONE call, which goes out after the previous round's send; the next round computes
 *   while it is on its way (at most one send waits behind the one in flight). One timer waits for the earliest pending due time (a min-heap of due
 *   times, entries checked lazily).
 * - compute: undefined or NO_MODEL_VERSION -> skipped; other errors -> failed; the round goes on.
 *   send failing -> failed, and those users are retried once, at their next due time (at least
 *   RETRY_MIN_MS later, so a failing broker is not hit in a hot loop).
 * - the last-emit map only keeps entries younger than minIntervalMs (pruned oldest-first in rounds).
 */
import { isAppError } from '../errors/index.js';
import type { Recommendation } from '../serde/avro.js';
import type { Logger } from '../util/log.js';

export interface PublishedList {
  recommendationId: string;
  version: string;
  items: { itemId: string; score: number; reason?: string }[];
}

export interface PublisherOptions {
  topic: string;
  /** At most one list per user per this many ms; 0 = one per notify. */
  minIntervalMs: number;
  /** The user's current list; undefined (or throwing AppError NO_MODEL_VERSION) = nothing to publish yet. */
  compute: (userId: string) => Promise<PublishedList | undefined>;
  send: (topic: string, messages: { key: string; value: Buffer }[]) => Promise<void>;
  encode: (r: Recommendation) => Buffer;
  log: Logger;
  now?: () => number;
  /** Lists computed per round (bounds the work of one round); default 256. */
  maxPerRound?: number;
}

export interface PublisherStatus {
  /** Lists sent. */
  published: number;
  /** Notifications deferred to (or merged into) a trailing list. */
  throttled: number;
  /** Users with nothing to publish yet (no model version, or no list). */
  skipped: number;
  /** Lists that could not be computed, encoded or sent. */
  failed: number;
  /** Users waiting for a round (queued now, or due later). */
  pending: number;
}

/** How long a deleted user's lists from rounds started before the deletion are held back (longer than any round). */
const FORGET_KEEP_MS = 10 * 60_000;
/** A failed send is retried no sooner than this (also with minIntervalMs 0). */
const RETRY_MIN_MS = 1000;
/**
 * Lists computed concurrently within a round: their state reads overlap, and the query path scores
 * the lists of one event-loop turn in one matMul. 64 rather than 8 published twice the lists at 5k
 * events/s in bench:ingest's freshness run (11.0k vs 5.3k lists in 15 s, p50 3.3 s vs 5.0-7.4 s, on
 * a loaded machine); a list's scores are N floats, so 64 of 50k items hold ~13 MB at a time.
 */
const COMPUTE_CONCURRENCY = 64;
/** At most one failure warning per this many ms (the others are counted in the next one). */
const WARN_EVERY_MS = 10_000;

interface Entry {
  /** Latest event time notified for the user. */
  eventTime: number;
  /** 1 when this entry is the retry of a failed send (not retried again). */
  retries: number;
}

interface PendingEntry extends Entry {
  due: number;
}

export class RecommendationPublisher {
  private readonly now: () => number;
  private readonly maxPerRound: number;
  private readonly interval: number;
  /** Users for the next round (insertion order = fairness). */
  private readonly ready = new Map<string, Entry>();
  /** Users published recently, with a trailing list due later. */
  private readonly pending = new Map<string, PendingEntry>();
  /** Due times of pending users (lazy: an entry counts only while pending.get(user).due equals it). */
  private readonly heap: { due: number; user: string }[] = [];
  /** When each user's last list was started, oldest first; entries older than the interval are pruned. */
  private readonly lastEmit = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerDue = Infinity;
  private immediate: ReturnType<typeof setImmediate> | undefined;
  private inFlight: Promise<void> | undefined;
  /** The latest round's send (chained after the one before it). */
  private sending: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly counters = { published: 0, throttled: 0, skipped: 0, failed: 0 };
  /** Deleted users (forget) and when: a list of theirs from a round that started before is not sent. */
  private readonly forgotten = new Map<string, number>();
  private lastWarnAt = -Infinity;
  private suppressedWarnings = 0;

  constructor(private readonly o: PublisherOptions) {
    this.now = o.now ?? Date.now;
    this.maxPerRound = Math.max(1, Math.floor(o.maxPerRound ?? 256));
    this.interval = Math.max(0, o.minIntervalMs);
  }

  /** After a batch is applied: each user with the time of their latest event in it. Never throws, never blocks. */
  notify(users: ReadonlyMap<string, number>): void {
    if (this.stopped) return;
    try {
      const now = this.now();
      for (const [user, eventTime] of users) this.enqueue(user, eventTime, now, 0);
      if (this.ready.size > 0) this.scheduleRound();
      this.armTimer();
    } catch (err) {
      this.warn({ err }, 'recommendation publisher: notify failed');
    }
  }

  /**
   * A deleted user (src/stream/deletion.ts): nothing queued for them is published, nor a list a
   * round started before now computes. Resolves once the send in flight is done: a list of theirs
   * may have been in it, so the caller writes the key's tombstone again after.
   */
  async forget(user: string): Promise<void> {
    const now = this.now();
    this.ready.delete(user);
    this.pending.delete(user);
    this.lastEmit.delete(user);
    for (const [u, at] of this.forgotten) {
      if (now - at < FORGET_KEEP_MS) break;
      this.forgotten.delete(u);
    }
    this.forgotten.delete(user);
    this.forgotten.set(user, now);
    await this.inFlight;
    await this.sending;
  }

  status(): PublisherStatus {
    return { ...this.counters, pending: this.ready.size + this.pending.size };
  }

  /** Stops timers; waits for the round in flight; pending lists are dropped (they are recomputed after restart from new events). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    await this.inFlight;
    await this.sending;
    this.ready.clear();
    this.pending.clear();
    this.heap.length = 0;
    this.lastEmit.clear();
  }

  /** Queues the user now, or as a trailing list when their last list is too recent. */
  private enqueue(user: string, eventTime: number, now: number, retries: number): void {
    const queued = this.ready.get(user);
    if (queued) {
      queued.eventTime = Math.max(queued.eventTime, eventTime);
      queued.retries = Math.min(queued.retries, retries);
      if (retries === 0) this.counters.throttled++;
      return;
    }
    const waiting = this.pending.get(user);
    if (waiting) {
      waiting.eventTime = Math.max(waiting.eventTime, eventTime);
      waiting.retries = Math.min(waiting.retries, retries);
      if (retries === 0) this.counters.throttled++;
      return;
    }
    const last = this.lastEmit.get(user);
    if (this.interval > 0 && last !== undefined && now - last < this.interval) {
      this.addPending(user, { eventTime, retries, due: last + this.interval });
      this.counters.throttled++;
      return;
    }
    this.ready.set(user, { eventTime, retries });
  }

  private addPending(user: string, entry: PendingEntry): void {
    this.pending.set(user, entry);
    heapPush(this.heap, { due: entry.due, user });
  }

  /** One timer, for the earliest pending due time. */
  private armTimer(): void {
    if (this.stopped) return;
    // Drop stale heap tops (users no longer pending, or pending with another due time).
    let top = this.heap[0];
    while (top && this.pending.get(top.user)?.due !== top.due) {
      heapPop(this.heap);
      top = this.heap[0];
    }
    if (!top) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerDue = Infinity;
      return;
    }
    if (this.timer !== undefined && this.timerDue <= top.due) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDue = top.due;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, top.due - this.now()));
    this.timer.unref?.();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerDue = Infinity;
    if (this.stopped) return;
    try {
      const now = this.now();
      let top = this.heap[0];
      while (top && top.due <= now) {
        heapPop(this.heap);
        const entry = this.pending.get(top.user);
        if (entry && entry.due === top.due) {
          this.pending.delete(top.user);
          this.ready.set(top.user, { eventTime: entry.eventTime, retries: entry.retries });
        }
        top = this.heap[0];
      }
      if (this.ready.size > 0) this.scheduleRound();
    } catch (err) {
      this.warn({ err }, 'recommendation publisher: timer failed');
    }
    this.armTimer();
  }

  private scheduleRound(): void {
    if (this.stopped || this.immediate !== undefined || this.inFlight !== undefined) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      if (this.stopped) return;
      const round = this.round()
        .catch((err: unknown) => this.warn({ err }, 'recommendation publisher: round failed'))
        .finally(() => {
          this.inFlight = undefined;
          if (this.ready.size > 0) this.scheduleRound();
          this.armTimer();
        });
      this.inFlight = round;
    });
  }

  private async round(): Promise<void> {
    const startedAt = this.now();
    this.prune(startedAt);
    const taken: [string, Entry][] = [];
    for (const e of this.ready) {
      if (taken.length >= this.maxPerRound) break;
      taken.push(e);
    }
    for (const [user] of taken) {
      this.ready.delete(user);
      if (this.interval > 0) {
        // Oldest first: re-inserting keeps the map in time order for prune().
        this.lastEmit.delete(user);
        this.lastEmit.set(user, startedAt);
      }
    }

    const lists: ({ user: string; entry: Entry; value: Buffer } | undefined)[] = new Array(taken.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < taken.length) {
        const i = next++;
        const [user, entry] = taken[i]!;
        lists[i] = await this.build(user, entry);
      }
    };
    await Promise.all(Array.from({ length: Math.min(COMPUTE_CONCURRENCY, taken.length) }, worker));

    const out = lists.filter((l): l is { user: string; entry: Entry; value: Buffer } => l !== undefined);
    if (out.length === 0) return;
    // The send goes after the previous round's (one producer: their order is kept), and this round
    // ends once the previous send is done: the next round computes while these lists are on their way.
    const previous = this.sending;
    this.sending = previous.then(() => this.sendLists(out, startedAt));
    await previous;
  }

  /** One round's lists in one call; on failure each user is retried once, at its next due time. Never throws. */
  private async sendLists(lists: { user: string; entry: Entry; value: Buffer }[], startedAt: number): Promise<void> {
    const out = this.forgotten.size === 0 ? lists : lists.filter((l) => (this.forgotten.get(l.user) ?? -Infinity) < startedAt);
    if (out.length === 0) return;
    try {
      await this.o.send(
        this.o.topic,
        out.map((l) => ({ key: l.user, value: l.value })),
      );
      this.counters.published += out.length;
    } catch (err) {
      this.counters.failed += out.length;
      this.warn({ err, topic: this.o.topic, lists: out.length }, 'recommendation publisher: send failed; the users are retried once');
      if (this.stopped) return;
      const due = startedAt + Math.max(this.interval, RETRY_MIN_MS);
      for (const l of out) {
        if (l.entry.retries > 0) continue;
        const waiting = this.ready.get(l.user) ?? this.pending.get(l.user);
        if (waiting) {
          // Notified again meanwhile: that list carries the latest event anyway.
          waiting.eventTime = Math.max(waiting.eventTime, l.entry.eventTime);
        } else {
          this.addPending(l.user, { eventTime: l.entry.eventTime, retries: 1, due });
        }
      }
    }
  }

  /** The user's encoded list, or undefined (skipped or failed, counted). */
  private async build(user: string, entry: Entry): Promise<{ user: string; entry: Entry; value: Buffer } | undefined> {
    let list: PublishedList | undefined;
    try {
      list = await this.o.compute(user);
    } catch (err) {
      if (isAppError(err, 'NO_MODEL_VERSION')) {
        this.counters.skipped++;
        this.o.log.debug({ userId: user }, 'recommendation publisher: no model version yet; nothing published');
      } else {
        this.counters.failed++;
        this.warn({ err, userId: user }, 'recommendation publisher: computing a list failed');
      }
      return undefined;
    }
    if (!list) {
      this.counters.skipped++;
      return undefined;
    }
    try {
      const value = this.o.encode({
        USER_ID: user,
        RECOMMENDATION_ID: list.recommendationId,
        ITEMS: list.items.map((i) => ({ ITEM_ID: i.itemId, SCORE: i.score, REASON: i.reason ?? null })),
        MODEL_VERSION: list.version,
        EVENT_TIMESTAMP: entry.eventTime,
        EMIT_TIMESTAMP: this.now(),
      });
      return { user, entry, value };
    } catch (err) {
      this.counters.failed++;
      this.warn({ err, userId: user }, 'recommendation publisher: encoding a list failed');
      return undefined;
    }
  }

  /** Forgets last emits older than the interval (the map is in time order: stop at the first recent one). */
  private prune(now: number): void {
    for (const [user, t] of this.lastEmit) {
      if (now - t < this.interval) break;
      this.lastEmit.delete(user);
    }
  }

  /** Failure warnings, at most one per WARN_EVERY_MS. */
  private warn(obj: object, msg: string): void {
    const now = this.now();
    if (now - this.lastWarnAt < WARN_EVERY_MS) {
      this.suppressedWarnings++;
      return;
    }
    this.lastWarnAt = now;
    const suppressed = this.suppressedWarnings;
    this.suppressedWarnings = 0;
    try {
      this.o.log.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg);
    } catch {
      // A logger failing must not break publishing.
    }
  }
}

function heapPush(heap: { due: number; user: string }[], item: { due: number; user: string }): void {
  heap.push(item);
  let i = heap.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (heap[p]!.due <= item.due) break;
    heap[i] = heap[p]!;
    i = p;
  }
  heap[i] = item;
}

function heapPop(heap: { due: number; user: string }[]): void {
  const last = heap.pop();
  if (last === undefined || heap.length === 0) return;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= heap.length) break;
    const r = l + 1;
    const c = r < heap.length && heap[r]!.due < heap[l]!.due ? r : l;
    if (heap[c]!.due >= last.due) break;
    heap[i] = heap[c]!;
    i = c;
  }
  heap[i] = last;
}
