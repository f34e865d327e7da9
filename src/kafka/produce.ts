/**
 * Records into a group's topics from a script (the quickstart's sample data and live stream,
 * benchmarks): idempotent producers, Avro-encoded, keyed by USER_ID / ITEM_ID.
 */
import type { Config } from '../config/index.js';
import type { Producer, ProducerRecord, RecordMetadata } from './kafkajs.js';
import { createCodecs, type Interaction, type Item } from '../serde/avro.js';
import { createKafka } from './client.js';
import { topicName } from './topics.js';
import type { Logger } from '../util/log.js';

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

/** A live trickle of records (the demo's clickstream): `perSecond` events, stamped now, until `stop`. */
export function streamRecords(
  config: Readonly<Config>,
  brokers: string[],
  group: string,
  events: Iterator<Interaction>,
  perSecond: number,
  log: Pick<Logger, 'warn'>,
): { sent(): number; stop(): Promise<void> } {
  const codecs = createCodecs(config);
  const producer = createKafka(config, brokers, '-stream').producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  const topic = topicName(group, 'interactions');
  const TICK_MS = 100;
  let sent = 0;
  let owed = 0;
  let busy = false;
  let lastWarn = 0;
  const connected = producer.connect();
  const timer = setInterval(() => {
    owed += (perSecond * TICK_MS) / 1000;
    if (busy || owed < 1) return;
    const n = Math.floor(owed);
    owed -= n;
    const messages: { key: string; value: Buffer }[] = [];
    for (let i = 0; i < n; i++) {
      const next = events.next();
      if (next.done) break;
      const e = { ...next.value, TIMESTAMP: Date.now() };
      messages.push({ key: e.USER_ID, value: codecs.Interaction.encode(e) });
    }
    busy = true;
    connected
      .then(() => producer.send({ topic, messages }))
      .then(() => {
        sent += messages.length;
      })
      .catch((err: unknown) => {
        if (Date.now() - lastWarn > 10_000) log.warn({ err }, 'the live sample stream could not produce; it keeps trying');
        lastWarn = Date.now();
      })
      .finally(() => {
        busy = false;
      });
  }, TICK_MS);
  timer.unref();
  return {
    sent: () => sent,
    stop: async () => {
      clearInterval(timer);
      await connected.catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
    },
  };
}

/** What the project's code needs of a producer: sending. */
export type Sender = Pick<Producer, 'send'>;

/**
 * A kafkajs idempotent producer that is safe to use again after a failed send: sends go one at a
 * time, in the order they were called, and after a send fails the next one goes through a new
 * producer (a new producer id); the failed one is disconnected.
 *
 * Why: kafkajs's idempotent producer takes back a failed request's sequence numbers when the
 * request errors, though the broker may have written it (the connection died before the answer, as
 * when the broker is killed). The next request of the same size then reuses those numbers, and the
 * broker, taking it for a retry of the written one, acknowledges it without writing it: a record
 * acknowledged and lost. Concurrent sends would interleave with a failed send's retries, hence one
 * at a time; a new producer id is one no broker can confuse with the old one's batches.
 */
export class RenewingProducer implements Sender {
  private current: Producer;
  private failed = false;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly create: () => Producer,
    private readonly log: Logger,
    private readonly name: string,
  ) {
    this.current = create();
  }

  connect(): Promise<void> {
    return this.current.connect();
  }

  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    const run = async (): Promise<RecordMetadata[]> => {
      if (this.failed) {
        const next = this.create();
        await next.connect();
        const old = this.current;
        this.current = next;
        this.failed = false;
        old.disconnect().catch((err: unknown) => this.log.debug({ err }, `${this.name}: disconnecting the failed producer failed`));
        this.log.info({}, `${this.name}: a send failed; the next goes through a new producer (a new producer id)`);
      }
      try {
        return await this.current.send(record);
      } catch (err) {
        this.failed = true;
        throw err;
      }
    };
    const sent = this.tail.then(run, run);
    this.tail = sent.catch(() => undefined);
    return sent;
  }

  /** After the sends already called. */
  async disconnect(): Promise<void> {
    await this.tail;
    await this.current.disconnect();
  }
}
