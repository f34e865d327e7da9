/**
 * Records into a group's topics from a script (the quickstart's sample data, benchmarks): one
 * idempotent producer, Avro-encoded, in batches of 2,000, keyed by USER_ID / ITEM_ID.
 */
import type { Config } from '../config/index.js';
import { createCodecs, type Interaction, type Item } from '../serde/avro.js';
import { createKafka } from './client.js';
import { topicName } from './topics.js';

const BATCH = 2000;

/** Produces `items` (to <group>.items) then `events` (to <group>.interactions); returns how many events. */
export async function produceRecords(config: Readonly<Config>, brokers: string[], group: string, records: { events: Iterable<Interaction>; items?: Iterable<Item> }): Promise<number> {
  const codecs = createCodecs(config);
  const producer = createKafka(config, brokers, '-produce').producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let n = 0;
  try {
    const sendAll = async <T>(topic: string, rows: Iterable<T>, key: (r: T) => string, encode: (r: T) => Buffer): Promise<number> => {
      let count = 0;
      let batch: { key: string; value: Buffer }[] = [];
      for (const r of rows) {
        count++;
        batch.push({ key: key(r), value: encode(r) });
        if (batch.length === BATCH) {
          await producer.send({ topic, messages: batch });
          batch = [];
        }
      }
      if (batch.length > 0) await producer.send({ topic, messages: batch });
      return count;
    };
    if (records.items) await sendAll(topicName(group, 'items'), records.items, (i) => i.ITEM_ID, (i) => codecs.Item.encode(i));
    n = await sendAll(topicName(group, 'interactions'), records.events, (e) => e.USER_ID, (e) => codecs.Interaction.encode(e));
  } finally {
    await producer.disconnect();
  }
  return n;
}
