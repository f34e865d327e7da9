/**
 * Follows a small compacted topic from its beginning, as every instance does with a group's
 * `versions` and `resources` topics (a Kafka Streams GlobalKTable in miniature): a consumer group of
 * its own per instance, no committed offsets (each start reads the whole topic again), every batch
 * handed over in offset order.
 */
import type { Consumer, KafkaClient, KafkaMessage } from './kafkajs.js';

export async function followFromBeginning(kafka: KafkaClient, o: { topic: string; groupId: string; onBatch: (messages: KafkaMessage[]) => void }): Promise<Consumer> {
  const consumer = kafka.consumer({ groupId: o.groupId, allowAutoTopicCreation: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      o.onBatch(batch.messages);
      const last = batch.messages.at(-1);
      if (last) resolveOffset(last.offset);
    },
  });
  return consumer;
}
