/**
 * Follows a small compacted topic from its beginning, as every instance does with a group's
 * `versions` and `resources` topics (a Kafka Streams GlobalKTable in miniature): a consumer group of
 * its own per instance, no committed offsets (each start reads the whole topic again), every batch
 * handed over in offset order.
 */
import { randomBytes } from 'node:crypto';
import type { KafkaClient, KafkaMessage } from './kafkajs.js';
import type { Logger } from '../util/log.js';
import type { BackoffOptions } from '../util/retry.js';
import { consumerRetry, SupervisedConsumer } from './supervise.js';

export interface FollowOptions {
  topic: string;
  /** Where a start of the process begins: the topic's beginning (default), or its end (only what is written from now on: live feeds). */
  from?: 'beginning' | 'end';
  groupId: string;
  onBatch: (messages: KafkaMessage[]) => void;
  log: Logger;
  /** The restart policy after a crash (`restartBackoff(config)`). */
  backoff: BackoffOptions;
}

/**
 * Resolves once the consumer has joined (with `from: 'end'`, a new group: it begins at the end); it is restarted after crashes (src/kafka/supervise.ts).
 * A restarted consumer goes on after the last record handed over (it seeks there), in a group of its
 * own (`<groupId>.<process>.r<n>`: nothing is committed, and a fresh group need not wait for the
 * crashed member's session to expire), so records are handed over once per start of the process.
 * The group is also new per process: an instance restarted after kill -9 would otherwise wait in
 * its join for the broker to expire the dead process's member (30 s, kafkajs's session timeout).
 */
export async function followFromBeginning(kafka: KafkaClient, o: FollowOptions): Promise<SupervisedConsumer> {
  const next = new Map<number, string>();
  const groupId = processGroupId(o.groupId);
  const supervisor = new SupervisedConsumer({
    name: o.topic,
    log: o.log,
    backoff: o.backoff,
    create: (attempt) => kafka.consumer({ groupId: attempt === 0 ? groupId : `${groupId}.r${attempt}`, allowAutoTopicCreation: false, retry: consumerRetry() }),
    run: async (consumer) => {
      consumer.on(consumer.events.GROUP_JOIN, () => {
        for (const [partition, offset] of next) consumer.seek({ topic: o.topic, partition, offset });
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [o.topic], fromBeginning: o.from !== 'end' });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch, resolveOffset, isStale }) => {
          if (isStale()) return;
          o.onBatch(batch.messages);
          const last = batch.messages.at(-1);
          if (last) {
            resolveOffset(last.offset);
            next.set(batch.partition, String(Number(batch.lastOffset()) + 1));
          }
        },
      });
    },
  });
  await supervisor.start();
  return supervisor;
}

/**
 * A consumer group id of this process's own, for a follower that commits nothing (it seeks): the
 * instance's id plus a random part. An empty group without offsets is dropped by the broker, so
 * these do not pile up.
 */
export function processGroupId(base: string): string {
  return `${base}.${PROCESS_NONCE}`;
}

const PROCESS_NONCE = randomBytes(4).toString('hex');

