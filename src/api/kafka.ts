/** The API's Kafka boundary: a RecordSink over a kafkajs producer, and a GroupDirectory over the admin client. */
import { AppError } from '../errors/index.js';
import type { Admin, Producer } from '../kafka/kafkajs.js';
import { topicName } from '../kafka/topics.js';
import type { GroupDirectory, RecordSink, SinkMessage } from './types.js';

/** What the sink needs of a kafkajs producer. */
export type SinkProducer = Pick<Producer, 'send'>;

export interface KafkaSinkOptions {
  /** At most this many value bytes of queued sends go into one produce call (one send is never split). */
  maxBatchBytes?: number;
}

interface Queued {
  topic: string;
  messages: SinkMessage[];
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Produces with acks from all in-sync replicas, ONE produce call at a time: the sends queued
 * meanwhile go together into the next call (per topic, in the order they came, up to
 * `maxBatchBytes`). Failures become KAFKA_UNREACHABLE (503, retriable); the client's error (which
 * names broker addresses) is the cause, for the log, not the message.
 *
 * Give it a RenewingProducer (src/kafka/produce.ts): kafkajs's idempotent producer, used again
 * after a failed send, can have the broker acknowledge a later request as a duplicate without
 * writing it, an accepted event lost. The sink's own one-at-a-time queue is what lets queued sends
 * be coalesced into one call.
 */
export function kafkaSink(producer: SinkProducer, options: KafkaSinkOptions = {}): RecordSink {
  const maxBatchBytes = options.maxBatchBytes ?? 512 * 1024;
  const queue: Queued[] = [];
  let draining = false;

  const unreachable = (topic: string, records: number, cause: unknown) =>
    cause instanceof AppError ? cause : new AppError('KAFKA_UNREACHABLE', `producing ${records} record(s) to ${topic} failed: Kafka refused or did not answer`, { cause });

  const sendTopic = async (topic: string, batch: Queued[]): Promise<void> => {
    const messages = batch.flatMap((q) => q.messages);
    try {
      await producer.send({ topic, acks: -1, messages });
      for (const q of batch) q.resolve();
    } catch (err) {
      const error = unreachable(topic, messages.length, err);
      for (const q of batch) q.reject(batch.length === 1 ? error : unreachable(q.topic, q.messages.length, err));
    }
  };

  const drain = async (): Promise<void> => {
    if (draining) return;
    draining = true;
    try {
      while (queue.length > 0) {
        let bytes = 0;
        let n = 0;
        while (n < queue.length && (n === 0 || bytes + queue[n]!.bytes <= maxBatchBytes)) bytes += queue[n++]!.bytes;
        const taken = queue.splice(0, n);
        const byTopic = new Map<string, Queued[]>();
        for (const q of taken) byTopic.set(q.topic, [...(byTopic.get(q.topic) ?? []), q]);
        for (const [topic, batch] of byTopic) await sendTopic(topic, batch);
      }
    } finally {
      draining = false;
    }
  };

  return {
    send(topic, messages) {
      if (messages.length === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        queue.push({ topic, messages, bytes: messages.reduce((n, m) => n + m.value.length + m.key.length, 0), resolve, reject });
        void drain();
      });
    },
  };
}

export interface SinkBounds {
  /** The longest a send waits for the sink (ingest.produceTimeoutMs); a call may ask for less. */
  timeoutMs: number;
  /** Sends not yet settled by the sink, timed-out ones included, beyond which a send fails at once (ingest.maxInFlight). */
  maxInFlight: number;
  /** Told when a send that already timed out settles: written after all (`error` undefined) or failed. */
  onLate?: (late: { topic: string; records: number; error?: unknown }) => void;
}

export interface BoundedSink extends RecordSink {
  /** Sends the sink has not settled yet. */
  inFlight(): number;
  /** Throws INGEST_OVERLOADED when a send now would be refused (to refuse before any other wait). */
  checkCapacity(): void;
}

/**
 * Fail-fast ingestion: a send answers within `timeoutMs` (KAFKA_UNREACHABLE when the sink has not
 * settled by then) and at most `maxInFlight` sends are outstanding (INGEST_OVERLOADED at once past
 * it). A slot is held until the underlying send settles, not until its caller gave up: while Kafka
 * is down the slots fill and further requests are refused without waiting, and the producer's
 * queue stays bounded. A send that timed out is not cancelled: its records may still be written.
 */
export function boundedSink(sink: RecordSink, bounds: SinkBounds): BoundedSink {
  let inFlight = 0;
  const checkCapacity = (): void => {
    if (inFlight >= bounds.maxInFlight) {
      throw new AppError('INGEST_OVERLOADED', `${inFlight} produce requests are waiting on Kafka (ingest.maxInFlight = ${bounds.maxInFlight}); nothing was written`);
    }
  };
  return {
    inFlight: () => inFlight,
    checkCapacity,
    async send(topic, messages, options) {
      if (messages.length === 0) return;
      checkCapacity();
      const timeoutMs = Math.max(0, Math.min(bounds.timeoutMs, options?.timeoutMs ?? bounds.timeoutMs));
      inFlight += 1;
      let timedOut = false;
      const sent = (async () => sink.send(topic, messages))().finally(() => {
        inFlight -= 1;
      });
      sent.then(
        () => {
          if (timedOut) bounds.onLate?.({ topic, records: messages.length });
        },
        (error: unknown) => {
          if (timedOut) bounds.onLate?.({ topic, records: messages.length, error });
        },
      );
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(
            new AppError(
              'KAFKA_UNREACHABLE',
              `Kafka did not acknowledge ${messages.length} record(s) to ${topic} within ${timeoutMs} ms (ingest.produceTimeoutMs); they may still be written, so a retry may duplicate them`,
            ),
          );
        }, timeoutMs);
      });
      try {
        await Promise.race([sent, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A dataset group exists when its `<group>.interactions` topic does. The topic list is cached for
 * `ttlMs`: within it, a group not in the list is answered from the cache (so unknown groups cost at
 * most one listTopics per ttl), after it the list is fetched again. Concurrent refreshes share one call.
 * Once the list is older than the ttl, a group in it is answered at once while the refresh runs (a
 * lookup never waits on Kafka for a known group: a query is served from local state, a produce is
 * bounded on its own); a group not in it waits for the refresh, at most `staleWaitMs` from the
 * refresh's start, and is answered from the previous list when Kafka fails or does not answer by
 * then. Without a previous list the lookup waits for Kafka (KAFKA_UNREACHABLE when it fails).
 */
export function topicGroupDirectory(admin: Pick<Admin, 'listTopics'>, ttlMs = 5000, now: () => number = Date.now, staleWaitMs = 1000): GroupDirectory {
  let topics: Set<string> | undefined;
  let fetchedAt = 0;
  let inflight: Promise<Set<string>> | undefined;
  let inflightSince = 0;

  const refresh = (): Promise<Set<string>> => {
    if (inflight) return inflight;
    inflightSince = now();
    const call = admin
      .listTopics()
      .then(
        (list) => {
          topics = new Set(list);
          fetchedAt = now();
          return topics;
        },
        (err: unknown) => {
          throw new AppError('KAFKA_UNREACHABLE', 'listing the topics failed: Kafka refused or did not answer', { cause: err });
        },
      )
      .finally(() => {
        inflight = undefined;
      });
    call.catch(() => undefined);
    inflight = call;
    return call;
  };

  return {
    async has(group) {
      const topic = topicName(group, 'interactions');
      if (topics !== undefined && now() - fetchedAt < ttlMs) return topics.has(topic);
      const stale = topics;
      const fresh = refresh();
      if (stale === undefined) return (await fresh).has(topic);
      if (stale.has(topic)) return true;
      const waitMs = inflightSince + staleWaitMs - now();
      if (waitMs <= 0) return stale.has(topic);
      let timer: NodeJS.Timeout | undefined;
      try {
        const list = await Promise.race([fresh, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)))]);
        return (list ?? stale).has(topic);
      } catch {
        return stale.has(topic);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
