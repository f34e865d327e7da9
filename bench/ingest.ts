/**
 * bench/ingest: how fast the processor applies events to RocksDB, against the ceiling of a bare
 * kafkajs consumer reading the same topic, in one run on one broker. Then the same events once
 * more, 100% misrouted (each produced to a partition that does not own its user, as a producer with
 * another partitioner would): the processor forwards every one through the repartition topic and
 * applies it there (`misrouted` in the JSON).
 *
 *   npm run bench:ingest                  # 1,000,000 events
 *   BENCH_EVENTS=200000 npm run bench:ingest
 *
 * Uses KAFKA_BROKERS when set, else starts the local broker (folder .streamrec/bench-kafka).
 * Progress goes to stderr; the last line of stdout is the JSON result.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import { syntheticInteractions } from '../src/data/synthetic.js';
import { createKafka } from '../src/kafka/client.js';
import { resolveBrokers } from '../src/kafka/connect.js';
import { stopLocalKafka } from '../src/kafka/local-broker.js';
import { partitionOf } from '../src/kafka/partition.js';
import { applyTopics, groupTopics, topicName } from '../src/kafka/topics.js';
import { createCodecs } from '../src/serde/avro.js';
import { openRocksStore } from '../src/state/rocksdb-store.js';
import { partitionStoreDir, StreamProcessor } from '../src/stream/processor.js';

const N = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const log = (msg: string) => process.stderr.write(`[bench:ingest] ${msg}\n`);

async function main(): Promise<void> {
  const config = loadConfig({
    overrides: { 'kafka.local.dataDir': process.env.STREAMREC_KAFKA_DIR || '.streamrec/bench-kafka' },
  });
  const { brokers, local } = await resolveBrokers(config, 'owned', log);
  const kafka = createKafka(config, brokers, '-bench');
  const group = `bench-${Date.now().toString(36)}`;
  const misroutedGroup = `${group}-misrouted`;
  const topic = topicName(group, 'interactions');
  const admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  await applyTopics(admin, misroutedGroup, config);
  const P = config.topics.partitions;

  // --- produce
  const codecs = createCodecs(config);
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const users = Math.max(1000, Math.floor(N / 10));
  const items = Math.max(1000, Math.floor(N / 20));
  let batch: { key: string; value: Buffer }[] = [];
  let misroutedBatch: { key: string; value: Buffer; partition: number }[] = [];
  const misroutedTopic = topicName(misroutedGroup, 'interactions');
  let bytes = 0;
  const tp = Date.now();
  for (const e of syntheticInteractions({ seed: 1, users, items, events: N })) {
    const value = codecs.Interaction.encode(e);
    bytes += value.length;
    batch.push({ key: e.USER_ID, value });
    misroutedBatch.push({ key: e.USER_ID, value, partition: (partitionOf(e.USER_ID, P) + 1) % P });
    if (batch.length === 10_000) {
      await producer.send({ topic, messages: batch });
      await producer.send({ topic: misroutedTopic, messages: misroutedBatch });
      batch = [];
      misroutedBatch = [];
    }
  }
  if (batch.length > 0) await producer.send({ topic, messages: batch });
  if (misroutedBatch.length > 0) await producer.send({ topic: misroutedTopic, messages: misroutedBatch });
  await producer.disconnect();
  const produceSeconds = (Date.now() - tp) / 1000;
  log(`produced ${N} events (${(bytes / 1e6).toFixed(1)} MB Avro) twice (murmur2, and 100% misrouted) in ${produceSeconds.toFixed(1)} s`);

  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);

  // --- (a) the ceiling: a bare kafkajs consumer that only counts
  const bare = kafka.consumer({ groupId: `${group}.bare`, maxBytesPerPartition: config.processor.maxBytesPerPartition });
  await bare.connect();
  await bare.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  let firstBare = 0;
  const ta = Date.now();
  await new Promise<void>((resolve) => {
    void bare.run({
      eachBatch: async ({ batch: b }) => {
        firstBare ||= Date.now();
        seen += b.messages.length;
        if (seen >= N) resolve();
      },
    });
  });
  const bareEnd = Date.now();
  await bare.disconnect();
  const bareSeconds = (bareEnd - ta) / 1000;
  const bareRate = N / bareSeconds;
  log(`bare consumer: ${N} in ${bareSeconds.toFixed(2)} s (first batch after ${firstBare - ta} ms)`);
  const rssAfterBare = peakRss;
  peakRss = 0;

  // --- (b) the processor, RocksDB state: until every event is applied (forwarded ones too)
  const runProcessor = async (g: string) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-bench-state-'));
    const benchConfig = loadConfig({ overrides: { 'kafka.local.dataDir': config.kafka.local.dataDir, 'state.dir': stateDir } });
    const processor = new StreamProcessor({
      config: benchConfig,
      group: g,
      brokers,
      instanceId: 'bench',
      ...(process.env.BENCH_DEBUG ? { log: pino({ level: 'debug' }, pino.destination(2)) } : {}),
      openStore: (p) => openRocksStore(partitionStoreDir(benchConfig, g, p)),
    });
    peakRss = 0;
    const tb = Date.now();
    await processor.start();
    let firstApplied = 0;
    for (;;) {
      const s = processor.status();
      if (!firstApplied && s.applied > 0) firstApplied = Date.now();
      if (s.applied + s.deadLetters >= N) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const procEnd = Date.now();
    const status = processor.status();
    await processor.stop();
    const seconds = (procEnd - tb) / 1000;
    log(`processor (${g}): ${N} in ${seconds.toFixed(2)} s (first batch applied after ${firstApplied - tb} ms, ${status.batches} batches, ${status.forwarded} forwarded)`);
    rmSync(stateDir, { recursive: true, force: true });
    return { rate: N / seconds, status, peakRss };
  };
  const normal = await runProcessor(group);
  const procRate = normal.rate;
  const status = normal.status;
  const misrouted = await runProcessor(misroutedGroup);
  clearInterval(sampler);

  for (const g of [group, misroutedGroup]) await admin.deleteTopics({ topics: groupTopics(g, config).map((t) => t.topic) }).catch(() => undefined);
  await admin.disconnect();
  if (local && !local.reused) await stopLocalKafka(config.kafka.local.dataDir, config.kafka.local.stopGraceMs);

  const result = {
    bench: 'ingest',
    events: N,
    users,
    items,
    partitions: config.topics.partitions,
    avro_bytes_per_event: Math.round(bytes / N),
    produce_events_per_s: Math.round(N / produceSeconds),
    bare_consumer_events_per_s: Math.round(bareRate),
    processor_events_per_s: Math.round(procRate),
    ratio: Number((procRate / bareRate).toFixed(3)),
    processor_batches: status.batches,
    dead_letters: status.deadLetters,
    peak_rss_mb_bare: Math.round(rssAfterBare / 2 ** 20),
    peak_rss_mb_processor: Math.round(normal.peakRss / 2 ** 20),
    misrouted: {
      share: 1,
      processor_events_per_s: Math.round(misrouted.rate),
      ratio_to_normal: Number((misrouted.rate / procRate).toFixed(3)),
      forwarded: misrouted.status.forwarded,
      processor_batches: misrouted.status.batches,
      peak_rss_mb_processor: Math.round(misrouted.peakRss / 2 ** 20),
    },
    includes: 'both rates include group join; the processor also restores (fences) its partitions',
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
