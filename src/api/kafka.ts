/** The API's Kafka boundary: a RecordSink over a kafkajs producer, and a GroupDirectory over the admin client. */
import { AppError } from '../errors/index.js';
import type { Admin, Producer } from '../kafka/kafkajs.js';
import { topicName } from '../kafka/topics.js';
import type { GroupDirectory, RecordSink } from './types.js';

/**
 * Produces with acks from all in-sync replicas. The producer is the caller's: connected before, and
 * disconnected after. Failures become KAFKA_UNREACHABLE (503, retriable).
 */
export function kafkaSink(producer: Producer): RecordSink {
  return {
    async send(topic, messages) {
      if (messages.length === 0) return;
      try {
        await producer.send({ topic, acks: -1, messages });
      } catch (err) {
        if (err instanceof AppError) throw err;
        throw new AppError('KAFKA_UNREACHABLE', `producing ${messages.length} record(s) to ${topic} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
    },
  };
}

/**
 * A dataset group exists when its `<group>.interactions` topic does. The topic list is cached for
 * `ttlMs`: within it, a group not in the list is answered from the cache (so unknown groups cost at
 * most one listTopics per ttl), after it the list is fetched again. Concurrent refreshes share one call.
 */
export function topicGroupDirectory(admin: Pick<Admin, 'listTopics'>, ttlMs = 5000, now: () => number = Date.now): GroupDirectory {
  let topics: Set<string> | undefined;
  let fetchedAt = 0;
  let inflight: Promise<Set<string>> | undefined;

  const refresh = (): Promise<Set<string>> =>
    (inflight ??= admin
      .listTopics()
      .then(
        (list) => {
          topics = new Set(list);
          fetchedAt = now();
          return topics;
        },
        (err: unknown) => {
          throw new AppError('KAFKA_UNREACHABLE', `listing the topics failed: ${(err as Error).message}`, { cause: err });
        },
      )
      .finally(() => {
        inflight = undefined;
      }));

  return {
    async has(group) {
      const topic = topicName(group, 'interactions');
      const known = topics === undefined || now() - fetchedAt >= ttlMs ? await refresh() : topics;
      return known.has(topic);
    },
  };
}
