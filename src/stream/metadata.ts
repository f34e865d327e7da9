/**
 * Item and user metadata from the compacted `<group>.items` and `<group>.users` topics, kept by every
 * instance in full (as a Kafka Streams GlobalKTable): one RocksDB store, `<state.dir>/<group>/meta`.
 *
 * Keys: `item/<ITEM_ID>` and `user/<USER_ID>` hold the record's Avro bytes (as written by the
 * current schema); a null value (tombstone) deletes. The input offsets are written in the same
 * batch (`__offset/<topic>/<partition>`) and the consumer seeks to them on assignment. Upserts are
 * idempotent, so a crash replays at most one batch; its dead letters may then appear twice.
 * A record that does not decode, or whose key is not its id, goes to `<group>.dead-letter`.
 */
import type { Config } from '../config/index.js';
import { AppError } from '../errors/index.js';
import { createKafka } from '../kafka/client.js';
import type { Consumer, EachBatchPayload, KafkaClient, KafkaMessage } from '../kafka/kafkajs.js';
import { RenewingProducer } from '../kafka/produce.js';
import { processGroupId } from '../kafka/follow.js';
import { topicName } from '../kafka/topics.js';
import { consumerRetry, restartBackoff, SupervisedConsumer, type SupervisedStatus } from '../kafka/supervise.js';
import { createCodecs, type Codecs, type Item, type User } from '../serde/avro.js';
import type { KeyValueStore, WriteOp } from '../state/store.js';
import { chunksBySize, deadLetterRecord, decodeMetadataRecord } from './input.js';
import type { Logger } from '../util/log.js';

export const metadataKeys = {
  item: (id: string): string => `item/${id}`,
  user: (id: string): string => `user/${id}`,
  offset: (topic: string, partition: number): string => `__offset/${topic}/${partition}`,
};

export interface MetadataOptions {
  config: Readonly<Config>;
  group: string;
  brokers: string[];
  instanceId: string;
  store: KeyValueStore;
  log: Logger;
  /** Called with every item upserted, after it is stored (hrnn-coldstart adds new items to the served model). */
  onItem?: (item: Item) => void;
}

export class MetadataReader {
  private readonly kafka: KafkaClient;
  private readonly codecs: Codecs;
  private readonly topics: { items: string; users: string; deadLetter: string };
  /** The consumer of items and users, made again after a crash (src/kafka/supervise.ts). */
  private consumer: SupervisedConsumer | undefined;
  /** Dead letters: made anew after a failed send, which is retried (RenewingProducer). */
  private producer: RenewingProducer | undefined;
  private counters = { items: 0, users: 0, deleted: 0, deadLetters: 0 };

  constructor(private readonly o: MetadataOptions) {
    this.kafka = createKafka(o.config, o.brokers, `-${o.instanceId}-meta`, o.log);
    this.codecs = createCodecs(o.config);
    this.topics = { items: topicName(o.group, 'items'), users: topicName(o.group, 'users'), deadLetter: topicName(o.group, 'dead-letter') };
  }

  status(): { items: number; users: number; deleted: number; deadLetters: number } {
    return { ...this.counters };
  }

  async item(itemId: string): Promise<Item | undefined> {
    const b = await this.o.store.get(metadataKeys.item(itemId));
    return b ? this.codecs.Item.decode(b) : undefined;
  }

  async user(userId: string): Promise<User | undefined> {
    const b = await this.o.store.get(metadataKeys.user(userId));
    return b ? this.codecs.User.decode(b) : undefined;
  }

  /** The metadata of those of `userIds` that have some, in one multi-get. */
  users(userIds: readonly string[]): Promise<Map<string, User>> {
    return this.many(userIds, metadataKeys.user, this.codecs.User);
  }

  /** The records of those of `itemIds` that have one, in one multi-get. */
  items(itemIds: readonly string[]): Promise<Map<string, Item>> {
    return this.many(itemIds, metadataKeys.item, this.codecs.Item);
  }

  private async many<T>(ids: readonly string[], key: (id: string) => string, codec: { decode(b: Buffer): T }): Promise<Map<string, T>> {
    const values = await this.o.store.getMany(ids.map(key));
    const out = new Map<string, T>();
    values.forEach((b, k) => b && out.set(ids[k]!, codec.decode(b)));
    return out;
  }

  /** Every stored item, in key order. */
  async forEachItem(fn: (item: Item) => void): Promise<void> {
    for await (const [, value] of this.o.store.range({ prefix: 'item/' })) fn(this.codecs.Item.decode(value));
  }

  async start(): Promise<void> {
    this.producer = new RenewingProducer(() => this.kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 }), this.o.log, 'metadata dead-letter producer');
    await this.producer.connect();
    // A group of its own per process (src/kafka/follow.ts, processGroupId): its only member is
    // assigned every partition. It seeks to the offsets stored with the metadata, so it commits
    // nothing, and neither a consumer made again after a crash (`.r<n>`) nor a process restarted
    // after kill -9 waits for a dead member's session to expire.
    const groupId = processGroupId(`streamrec.${this.o.group}.metadata.${this.o.instanceId}`);
    const supervisor = new SupervisedConsumer({
      name: 'metadata',
      log: this.o.log,
      backoff: restartBackoff(this.o.config),
      create: (attempt) =>
        this.kafka.consumer({
          groupId: attempt === 0 ? groupId : `${groupId}.r${attempt}`,
          allowAutoTopicCreation: false,
          retry: consumerRetry(),
        }),
      run: async (consumer: Consumer) => {
        consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
          void (async () => {
            for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
              for (const partition of partitions) {
                const b = await this.o.store.get(metadataKeys.offset(topic, partition));
                if (b) consumer.seek({ topic, partition, offset: b.toString() });
              }
            }
          })().catch((err: unknown) => this.o.log.error({ err }, 'metadata: seeking to stored offsets failed'));
        });
        await consumer.connect();
        await consumer.subscribe({ topics: [this.topics.items, this.topics.users], fromBeginning: true });
        await consumer.run({ autoCommit: false, eachBatchAutoResolve: true, eachBatch: (p) => this.onBatch(p) });
      },
    });
    this.consumer = supervisor;
    await supervisor.start();
  }

  /** The consumer: running, restarting after a crash, or failed (with the reason). */
  consumerStatus(): SupervisedStatus | undefined {
    return this.consumer?.status();
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    await this.producer?.disconnect();
  }

  private async onBatch({ batch, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (!isRunning() || isStale() || batch.messages.length === 0) return;
    const isItems = batch.topic === this.topics.items;
    const ops: WriteOp[] = [];
    const dead: { message: KafkaMessage; err: AppError }[] = [];
    const upserted: Item[] = [];
    for (const m of batch.messages) {
      const decoded = decodeMetadataRecord(this.codecs, isItems ? 'item' : 'user', m);
      if (decoded instanceof AppError) {
        dead.push({ message: m, err: decoded });
        continue;
      }
      const key = m.key!.toString();
      const storeKey = isItems ? metadataKeys.item(key) : metadataKeys.user(key);
      if (decoded === null) {
        ops.push({ type: 'del', key: storeKey });
        this.counters.deleted++;
        continue;
      }
      ops.push({ type: 'put', key: storeKey, value: m.value! });
      if ('ITEM_ID' in decoded) upserted.push(decoded);
      if (isItems) this.counters.items++;
      else this.counters.users++;
    }
    const last = batch.messages[batch.messages.length - 1]!;
    ops.push({ type: 'put', key: metadataKeys.offset(batch.topic, batch.partition), value: Buffer.from(String(Number(last.offset) + 1)) });
    if (dead.length > 0) {
      const letters = dead.map(({ message, err }) => deadLetterRecord(this.codecs, batch.topic, batch.partition, message, err));
      for (const messages of chunksBySize(letters)) await this.producer!.send({ topic: this.topics.deadLetter, messages });
      this.counters.deadLetters += dead.length;
    }
    await this.o.store.write(ops);
    if (this.o.onItem) {
      for (const item of upserted) {
        try {
          this.o.onItem(item);
        } catch (err) {
          this.o.log.warn({ err, item: item.ITEM_ID }, 'metadata: the item hook failed');
        }
      }
    }
  }
}
