/**
 * bench/ingest: how fast the processor applies events to RocksDB, against the ceiling of a bare
 * kafkajs consumer reading the same topic, in one run on one broker; with no model, and with an
 * HRNN version served (every event also steps its user's GRU state: the configuration every real
 * deployment runs). Then the same events once more, 100% misrouted (each produced to a partition
 * that does not own its user, as a producer with another partitioner would): the processor
 * forwards every one through the repartition topic and applies it there (`misrouted` in the JSON).
 * Last, freshness under load: the whole service (startService, HRNN version served, the publisher
 * on) fed at a steady offered rate; per event, the time from its produce to the first list of its
 * user on `<group>.recommendations` that includes it (EVENT_TIMESTAMP >= the event's).
 *
 * Each measurement runs in a child process of its own, so that its peak RSS (the OS's maxRSS) and
 * its CPU time per event (user + system over the measured span: `cpu_us_per_event`, steadier than
 * the rate on a busy machine, and the measure of work done) are that mode's alone, and one mode's
 * heap and JIT state do not carry into the next. For freshness the producer and the
 * recommendations consumer stay in this process: the service's thread does only what a
 * deployment's does.
 *
 *   npm run bench:ingest                  # 1,000,000 events, 3 runs of each mode
 *   BENCH_EVENTS=100000 BENCH_RUNS=1 npm run bench:ingest
 *
 * Knobs (environment):
 *   BENCH_EVENTS             events per run (default 1,000,000); users N/10, items N/20
 *   BENCH_RUNS               runs of each of bare / processor / processor+HRNN (default 3): medians,
 *                            min and max (the noise) in the JSON; misrouted and freshness run once
 *   BENCH_HRNN_HIDDEN        hidden size of the served HRNN version (default: the recipe's, 100)
 *   BENCH_FRESHNESS_RATE     offered events/s of the freshness run (default 5000)
 *   BENCH_FRESHNESS_SECONDS  how long it offers them (default 20)
 *   BENCH_FRESHNESS=0        skip the freshness run; BENCH_MISROUTED=0 skip the misrouted run
 *   STREAMREC_KAFKA_DIR      the local broker's folder (default .streamrec/bench-kafka)
 *   BENCH_ATTRIBUTED         share of events (0-1, default 0) that cite a recommendationId of a
 *                            version (one of 2, arms 0/1) with a 10-item impression: the
 *                            attribution counters' path (src/stream/attribution.ts)
 *   BENCH_DEBUG=1            the processor's debug log on stderr
 *   BENCH_CPU_PROF=dir       each child writes a V8 CPU profile (<mode>-<time>.cpuprofile) there
 *
 * The HRNN version has random weights (GRU4Rec's initialisation, seeded) over all N/20 items and is
 * not trained: training one over 50k items at today's 4-5k events/s would take longer than the
 * bench, and a GRU step costs the same whatever the weights' values (an item the model does not
 * know skips the step, so a model trained on a sample would know fewer items and flatter the rate).
 *
 * Uses KAFKA_BROKERS when set, else starts the local broker. Progress goes to stderr; the last line
 * of stdout is the JSON result.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, type Config } from '../src/config/index.js';
import { prng, syntheticInteractions } from '../src/data/synthetic.js';
import { createKafka } from '../src/kafka/client.js';
import { resolveBrokers } from '../src/kafka/connect.js';
import { stopLocalKafka } from '../src/kafka/local-broker.js';
import { partitionOf } from '../src/kafka/partition.js';
import { applyTopics, groupTopics, topicName } from '../src/kafka/topics.js';
import { initWeights, weightsView } from '../src/model/hrnn-train.js';
import { HRNN_DEFAULTS, HrnnModel, hrnnParams } from '../src/recipes/hrnn.js';
import { createCodecs, interaction } from '../src/serde/avro.js';
import { ServingModel } from '../src/serving/served-model.js';
import { mintRecommendationId } from '../src/serving/recommendation-id.js';
import { openRocksStore } from '../src/state/rocksdb-store.js';
import { partitionStoreDir, StreamProcessor } from '../src/stream/processor.js';
import { startService } from '../src/stream/service.js';

const N = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const HIDDEN = Number(process.env.BENCH_HRNN_HIDDEN ?? HRNN_DEFAULTS.hiddenSize);
const FRESH_RATE = Number(process.env.BENCH_FRESHNESS_RATE ?? 5000);
const FRESH_SECONDS = Number(process.env.BENCH_FRESHNESS_SECONDS ?? 20);
/** Events of the first seconds of the freshness run are left out of its percentiles (JIT, group joins). */
const FRESH_WARMUP_MS = 2000;
/** After the last offered event, how long lists are waited for; events still without one are `unanswered`. */
const FRESH_DRAIN_MS = 30_000;
const FRESH_WINDOW_MS = 5000;
const USERS = Math.max(1000, Math.floor(N / 10));
const ITEMS = Math.max(1000, Math.floor(N / 20));
const HRNN_SEED = 1;
const log = (msg: string) => process.stderr.write(`[bench:ingest] ${msg}\n`);

type Mode = 'bare' | 'processor' | 'hrnn';
type ChildSpec =
  | { mode: Mode; brokers: string[]; group: string; kafkaDir: string }
  | { mode: 'service'; brokers: string[]; group: string; kafkaDir: string };
interface RunResult {
  rate: number;
  seconds: number;
  peakRssMb: number;
  /** CPU time (user + system) of the child over the measured span: less sensitive to a busy machine than the rate. */
  cpuMs?: number;
  batches?: number;
  forwarded?: number;
  deadLetters?: number;
}
type ChildMessage = { type: 'ready' } | { type: 'result'; result: RunResult } | { type: 'error'; error: string };

/** The served version: random weights, every item of the synthetic set known (see the header). */
function randomHrnn(hidden: number, items: number): HrnnModel {
  const w = initWeights(hidden, items, prng(HRNN_SEED));
  const ids = Array.from({ length: items }, (_, k) => `i${k}`);
  return new HrnnModel('hrnn', weightsView(hidden, items, w.dense, w.E, w.bOut), ids, new Float64Array(items).fill(1), hrnnParams({ hiddenSize: hidden }), { eventsPerSecond: 0, lossByEpoch: [] }, w.dense);
}
const hrnnVersion = `bench-random-h${HIDDEN}-n${ITEMS}`;

const peakRssMb = () => Math.round((process.resourceUsage().maxRSS * 1024) / 2 ** 20);
const cpuMsSince = (from: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};

// ---------------------------------------------------------------- child side

async function child(spec: ChildSpec): Promise<void> {
  // The parent gone (killed, crashed): nothing would stop this run or read its result.
  process.on('disconnect', () => process.exit(1));
  const send = (m: ChildMessage) => new Promise<void>((r) => process.send!(m, () => r()));
  const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-bench-state-'));
  const config = loadConfig({ overrides: { 'kafka.local.dataDir': spec.kafkaDir, 'state.dir': stateDir, 'api.port': 0, 'training.recipe': 'none' } });
  try {
    if (spec.mode === 'bare') await send({ type: 'result', result: await bareRun(config, spec.brokers, spec.group) });
    else if (spec.mode === 'service') await serviceRun(config, spec.brokers, spec.group, send);
    else await send({ type: 'result', result: await processorRun(config, spec.brokers, spec.group, spec.mode === 'hrnn') });
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** The ceiling: a bare kafkajs consumer that only counts. */
async function bareRun(config: Readonly<Config>, brokers: string[], group: string): Promise<RunResult> {
  const kafka = createKafka(config, brokers, '-bench');
  const bare = kafka.consumer({ groupId: `${group}.bare-${Date.now().toString(36)}`, maxBytesPerPartition: config.processor.maxBytesPerPartition });
  await bare.connect();
  await bare.subscribe({ topics: [topicName(group, 'interactions')], fromBeginning: true });
  let seen = 0;
  let first = 0;
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    void bare.run({
      eachBatch: async ({ batch: b }) => {
        first ||= Date.now();
        seen += b.messages.length;
        if (seen >= N) resolve();
      },
    });
  });
  const seconds = (Date.now() - t0) / 1000;
  const cpuMs = cpuMsSince(cpu0);
  await bare.disconnect();
  log(`bare consumer: ${N} in ${seconds.toFixed(2)} s (first batch after ${first - t0} ms)`);
  return { rate: N / seconds, seconds, peakRssMb: peakRssMb(), cpuMs };
}

/** The processor, RocksDB state: until every event is applied (forwarded ones too). */
async function processorRun(config: Readonly<Config>, brokers: string[], group: string, withHrnn: boolean): Promise<RunResult> {
  let serving: ServingModel | undefined;
  if (withHrnn) {
    serving = new ServingModel();
    serving.swap({ version: hrnnVersion, model: randomHrnn(HIDDEN, ITEMS), excludeSeen: false });
  }
  const processor = new StreamProcessor({
    config,
    group,
    brokers,
    instanceId: 'bench',
    ...(serving ? { serving } : {}),
    ...(process.env.BENCH_DEBUG ? { log: pino({ level: 'debug' }, pino.destination(2)) } : {}),
    openStore: (p) => openRocksStore(partitionStoreDir(config, group, p)),
  });
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  await processor.start();
  let firstApplied = 0;
  for (;;) {
    const s = processor.status();
    if (!firstApplied && s.applied > 0) firstApplied = Date.now();
    if (s.applied + s.deadLetters >= N) break;
    if (s.state === 'failed') throw new Error(`processor failed: ${s.failure ?? 'unknown'}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (Date.now() - t0) / 1000;
  const cpuMs = cpuMsSince(cpu0);
  const status = processor.status();
  await processor.stop();
  log(`processor${withHrnn ? ' + HRNN' : ''} (${group}): ${N} in ${seconds.toFixed(2)} s (first batch applied after ${firstApplied - t0} ms, ${status.batches} batches, ${status.forwarded} forwarded)`);
  return { rate: N / seconds, seconds, peakRssMb: peakRssMb(), cpuMs, batches: status.batches, forwarded: status.forwarded, deadLetters: status.deadLetters };
}

/** The whole service with the HRNN version served, until the parent says stop. */
async function serviceRun(config: Readonly<Config>, brokers: string[], group: string, send: (m: ChildMessage) => Promise<void>): Promise<void> {
  const service = await startService({ config, group, brokers, log: pino({ level: process.env.BENCH_DEBUG ? 'debug' : 'warn' }, pino.destination(2)) });
  service.serving.swap({ version: hrnnVersion, model: randomHrnn(HIDDEN, ITEMS), excludeSeen: false });
  while (!service.processor.status().ready) await new Promise((r) => setTimeout(r, 50));
  const stopped = new Promise<void>((r) => process.on('message', (m: { type?: string }) => m.type === 'stop' && r()));
  const readyAt = Date.now();
  let firstApplied = 0;
  const watch = setInterval(() => {
    if (!firstApplied && service.processor.status().applied > 0) firstApplied = Date.now();
  }, 10);
  await send({ type: 'ready' });
  await stopped;
  clearInterval(watch);
  log(`service: first batch applied ${firstApplied ? firstApplied - readyAt : '-'} ms after ready`);
  const s = service.processor.status();
  const p = service.publisher?.status();
  await service.stop();
  log(`service: applied ${s.applied}, ${s.batches} batches; publisher ${JSON.stringify(p)}`);
  await send({ type: 'result', result: { rate: 0, seconds: 0, peakRssMb: peakRssMb(), batches: s.batches } });
}

// ---------------------------------------------------------------- parent side

/** Runs one measurement in a child process; `onReady` (service mode) runs once the child is ready, then the child is stopped. */
function runChild(spec: ChildSpec, onReady?: () => Promise<void>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // The child's stdout goes to our stderr: the last line of our stdout is the JSON alone.
    const prof = process.env.BENCH_CPU_PROF;
    const c = fork(process.argv[1]!, [], {
      env: { ...process.env, BENCH_CHILD: JSON.stringify(spec) },
      stdio: ['ignore', 2, 2, 'ipc'],
      ...(prof ? { execArgv: ['--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-name', `${spec.mode}-${Date.now()}.cpuprofile`] } : {}),
    });
    let result: RunResult | undefined;
    let error: string | undefined;
    c.on('message', (m: ChildMessage) => {
      if (m.type === 'result') result = m.result;
      else if (m.type === 'error') error = m.error;
      else if (m.type === 'ready' && onReady) {
        onReady().then(
          () => c.send({ type: 'stop' }),
          (err: unknown) => {
            error = err instanceof Error ? (err.stack ?? err.message) : String(err);
            c.send({ type: 'stop' });
          },
        );
      }
    });
    c.on('exit', (code) => {
      if (error) reject(new Error(`${spec.mode} run: ${error}`));
      else if (result && code === 0) resolve(result);
      else reject(new Error(`${spec.mode} run exited with code ${code} without a result`));
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
const summary = (runs: RunResult[]) => {
  const rates = runs.map((r) => r.rate);
  return {
    events_per_s: Math.round(median(rates)),
    min: Math.round(Math.min(...rates)),
    max: Math.round(Math.max(...rates)),
    runs: rates.map(Math.round),
    peak_rss_mb: Math.round(median(runs.map((r) => r.peakRssMb))),
    cpu_us_per_event: Math.round((median(runs.map((r) => r.cpuMs ?? NaN)) * 1000) / N),
  };
};

async function main(): Promise<void> {
  const config = loadConfig({ overrides: { 'kafka.local.dataDir': process.env.STREAMREC_KAFKA_DIR || '.streamrec/bench-kafka' } });
  const kafkaDir = config.kafka.local.dataDir;
  const { brokers, local } = await resolveBrokers(config, 'owned', log);
  const kafka = createKafka(config, brokers, '-bench');
  const base = `bench-${Date.now().toString(36)}`;
  // A group (its own input topic) per processor run: a processor's state belongs to its group.
  const normalGroups = Array.from({ length: RUNS }, (_, r) => `${base}-p${r}`);
  const hrnnGroups = Array.from({ length: RUNS }, (_, r) => `${base}-h${r}`);
  const misroutedGroup = `${base}-misrouted`;
  const freshGroup = `${base}-fresh`;
  const withMisrouted = process.env.BENCH_MISROUTED !== '0';
  const withFreshness = process.env.BENCH_FRESHNESS !== '0';
  const allGroups = [...normalGroups, ...hrnnGroups, ...(withMisrouted ? [misroutedGroup] : []), ...(withFreshness ? [freshGroup] : [])];
  const admin = kafka.admin();
  await admin.connect();
  for (const g of allGroups) await applyTopics(admin, g, config);
  const P = config.topics.partitions;

  // --- produce: the same events to every run's topic (murmur2), and to the misrouted one
  const codecs = createCodecs(config);
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const plainTopics = [...normalGroups, ...hrnnGroups].map((g) => topicName(g, 'interactions'));
  const misroutedTopic = topicName(misroutedGroup, 'interactions');
  let batch: { key: string; value: Buffer }[] = [];
  let misroutedBatch: { key: string; value: Buffer; partition: number }[] = [];
  const flush = async () => {
    const topicMessages = plainTopics.map((topic) => ({ topic, messages: batch }));
    if (withMisrouted) topicMessages.push({ topic: misroutedTopic, messages: misroutedBatch });
    await producer.sendBatch({ topicMessages });
    batch = [];
    misroutedBatch = [];
  };
  let bytes = 0;
  const tp = Date.now();
  const attributed = Number(process.env.BENCH_ATTRIBUTED ?? 0);
  const cite = prng(3);
  for (const plain of syntheticInteractions({ seed: 1, users: USERS, items: ITEMS, events: N })) {
    const e = attributed > 0 && cite() < attributed ? { ...plain, RECOMMENDATION_ID: mintRecommendationId(cite() < 0.5 ? 'bench-a' : 'bench-b', cite() < 0.5 ? 0 : 1), IMPRESSION: Array.from({ length: 10 }, (_, i) => `i${i}`) } : plain;
    const value = codecs.Interaction.encode(e);
    bytes += value.length;
    batch.push({ key: e.USER_ID, value });
    if (withMisrouted) misroutedBatch.push({ key: e.USER_ID, value, partition: (partitionOf(e.USER_ID, P) + 1) % P });
    if (batch.length === 10_000) await flush();
  }
  if (batch.length > 0) await flush();
  const produced = N * (plainTopics.length + (withMisrouted ? 1 : 0));
  const produceSeconds = (Date.now() - tp) / 1000;
  log(`produced ${N} events (${(bytes / 1e6).toFixed(1)} MB Avro) to ${produced / N} topics in ${produceSeconds.toFixed(1)} s`);

  // --- the runs, interleaved so that a slow spell of the machine does not fall on one mode only
  const bare: RunResult[] = [];
  const proc: RunResult[] = [];
  const hrnn: RunResult[] = [];
  for (let r = 0; r < RUNS; r++) {
    log(`run ${r + 1}/${RUNS}`);
    bare.push(await runChild({ mode: 'bare', brokers, group: normalGroups[r]!, kafkaDir }));
    proc.push(await runChild({ mode: 'processor', brokers, group: normalGroups[r]!, kafkaDir }));
    hrnn.push(await runChild({ mode: 'hrnn', brokers, group: hrnnGroups[r]!, kafkaDir }));
  }
  const misrouted = withMisrouted ? await runChild({ mode: 'processor', brokers, group: misroutedGroup, kafkaDir }) : undefined;
  const freshness = withFreshness ? await freshnessRun(config, kafka, brokers, freshGroup, kafkaDir) : undefined;
  await producer.disconnect();

  for (const g of allGroups) await admin.deleteTopics({ topics: groupTopics(g, config).map((t) => t.topic) }).catch(() => undefined);
  await admin.disconnect();
  if (local && !local.reused) await stopLocalKafka(kafkaDir, config.kafka.local.stopGraceMs);

  const b = summary(bare);
  const p = summary(proc);
  const h = summary(hrnn);
  const result = {
    bench: 'ingest',
    date: new Date().toISOString(),
    events: N,
    users: USERS,
    items: ITEMS,
    partitions: P,
    runs: RUNS,
    avro_bytes_per_event: Math.round(bytes / N),
    produce_events_per_s: Math.round(produced / produceSeconds),
    // The medians, under the names earlier runs used.
    bare_consumer_events_per_s: b.events_per_s,
    processor_events_per_s: p.events_per_s,
    processor_hrnn_events_per_s: h.events_per_s,
    ratio: Number((p.events_per_s / b.events_per_s).toFixed(3)),
    bare_consumer: b,
    processor: { ...p, ratio_to_bare: Number((p.events_per_s / b.events_per_s).toFixed(3)), batches: proc[0]!.batches, dead_letters: proc[0]!.deadLetters },
    processor_hrnn: {
      ...h,
      ratio_to_bare: Number((h.events_per_s / b.events_per_s).toFixed(3)),
      ratio_to_processor: Number((h.events_per_s / p.events_per_s).toFixed(3)),
      batches: hrnn[0]!.batches,
      hrnn: { weights: `random (GRU4Rec init, seed ${HRNN_SEED}), not trained`, hidden_size: HIDDEN, items: ITEMS },
    },
    ...(misrouted
      ? {
          misrouted: {
            share: 1,
            processor_events_per_s: Math.round(misrouted.rate),
            ratio_to_normal: Number((misrouted.rate / p.events_per_s).toFixed(3)),
            forwarded: misrouted.forwarded,
            processor_batches: misrouted.batches,
            peak_rss_mb: misrouted.peakRssMb,
          },
        }
      : {}),
    ...(freshness ? { freshness } : {}),
    noise: 'min/max over the runs; peak_rss_mb: the child process of each run (maxRSS), median over runs',
    includes: 'rates include group join; the processor also restores (fences) its partitions',
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/**
 * The service (a child) with the HRNN version served; this process offers events at FRESH_RATE for
 * FRESH_SECONDS, each stamped with its produce time, and reads `<group>.recommendations`.
 */
async function freshnessRun(config: Readonly<Config>, kafka: ReturnType<typeof createKafka>, brokers: string[], group: string, kafkaDir: string) {
  const codecs = createCodecs(config);
  const minInterval = config.recommendations.minIntervalMs;
  // Per user, the produce times of events no list has covered yet (in order).
  const waiting = new Map<string, number[]>();
  const latencies: number[] = [];
  const isolatedLatencies: number[] = [];
  // Events produced with no earlier event of the same user within minIntervalMs: the publisher's
  // throttle does not hold their list back.
  const isolated = new Set<string>();
  const lastProduced = new Map<string, number>();
  // Latencies by produce time, in windows: a backlog that grows shows as a rising p99.
  const byWindow: number[][] = Array.from({ length: Math.ceil((FRESH_SECONDS * 1000) / FRESH_WINDOW_MS) + 1 }, () => []);
  let lists = 0;
  let firstList = 0;
  let offered = 0;
  let covered = 0;
  let start = 0;

  const consumer = kafka.consumer({ groupId: `${group}.bench-freshness`, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topicName(group, 'recommendations')], fromBeginning: true });
  const joined = new Promise<void>((r) => consumer.on(consumer.events.GROUP_JOIN, () => r()));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      for (const m of batch.messages) {
        if (!m.value) continue;
        const rec = codecs.Recommendation.decode(m.value);
        lists++;
        firstList ||= now;
        const q = waiting.get(rec.USER_ID);
        if (!q) continue;
        while (q.length > 0 && q[0]! <= rec.EVENT_TIMESTAMP) {
          const ts = q.shift()!;
          covered++;
          byWindow[Math.floor((ts - start) / FRESH_WINDOW_MS)]?.push(now - ts);
          if (ts < start + FRESH_WARMUP_MS) continue;
          latencies.push(now - ts);
          if (isolated.has(`${rec.USER_ID}@${ts}`)) isolatedLatencies.push(now - ts);
        }
        if (q.length === 0) waiting.delete(rec.USER_ID);
      }
    },
  });
  await joined;

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const topic = topicName(group, 'interactions');
  const source = syntheticInteractions({ seed: 2, users: USERS, items: ITEMS, events: Math.ceil(FRESH_RATE * FRESH_SECONDS) + 1 });
  let offerSeconds = 0;
  let drainMs = 0;
  const result = await runChild({ mode: 'service', brokers, group, kafkaDir }, async () => {
    log(`freshness: offering ${FRESH_RATE} events/s for ${FRESH_SECONDS} s`);
    start = Date.now();
    const total = Math.floor(FRESH_RATE * FRESH_SECONDS);
    const inFlight = new Set<Promise<unknown>>();
    while (offered < total) {
      const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * FRESH_RATE));
      if (due > offered) {
        const ts = Date.now();
        const messages: { key: string; value: Buffer }[] = [];
        for (; offered < due; offered++) {
          const e = source.next().value!;
          const q = waiting.get(e.USER_ID) ?? [];
          q.push(ts);
          waiting.set(e.USER_ID, q);
          const prev = lastProduced.get(e.USER_ID);
          if (prev === undefined || ts - prev >= minInterval) isolated.add(`${e.USER_ID}@${ts}`);
          lastProduced.set(e.USER_ID, ts);
          messages.push({ key: e.USER_ID, value: codecs.Interaction.encode(interaction({ ...e, TIMESTAMP: ts })) });
        }
        const sent = producer.send({ topic, messages });
        inFlight.add(sent);
        void sent.finally(() => inFlight.delete(sent));
        // A broker that cannot keep up slows the offer rather than piling up sends.
        if (inFlight.size >= 32) await Promise.race(inFlight);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(inFlight);
    offerSeconds = (Date.now() - start) / 1000;
    const drainEnd = Date.now() + FRESH_DRAIN_MS;
    while (covered < offered && Date.now() < drainEnd) await new Promise((r) => setTimeout(r, 100));
    drainMs = Date.now() - start - offerSeconds * 1000;
    log(`freshness: ${covered}/${offered} events covered by ${lists} lists, ${((Date.now() - start) / 1000 - offerSeconds).toFixed(1)} s after the last offer`);
  });
  await producer.disconnect();
  await consumer.disconnect();
  const sorted = latencies.sort((a, b) => a - b);
  const iso = isolatedLatencies.sort((a, b) => a - b);
  return {
    offered_events_per_s: FRESH_RATE,
    achieved_offer_events_per_s: Math.round(offered / offerSeconds),
    seconds: FRESH_SECONDS,
    events: offered,
    lists,
    first_list_after_ms: firstList ? firstList - start : null,
    measured_events: sorted.length,
    unanswered: offered - covered,
    p50_ms: percentile(sorted, 50),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    [`p99_ms_by_${FRESH_WINDOW_MS / 1000}s`]: byWindow.slice(0, Math.ceil((FRESH_SECONDS * 1000) / FRESH_WINDOW_MS)).map((w) => percentile(w.sort((a, b) => a - b), 99)),
    drain_ms: drainMs,
    isolated: { what: `events with no earlier event of their user within recommendations.minIntervalMs (${minInterval} ms): not held back by the throttle`, events: iso.length, p50_ms: percentile(iso, 50), p99_ms: percentile(iso, 99) },
    min_interval_ms: minInterval,
    warmup_excluded_ms: FRESH_WARMUP_MS,
    hrnn: { weights: `random (GRU4Rec init, seed ${HRNN_SEED}), not trained`, hidden_size: HIDDEN, items: ITEMS },
    peak_rss_mb_service: result.peakRssMb,
  };
}

const childSpec = process.env.BENCH_CHILD;
(childSpec ? child(JSON.parse(childSpec) as ChildSpec).then(() => process.exit(0)) : main()).catch((err: unknown) => {
  const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
  if (childSpec && process.send) process.send({ type: 'error', error: msg }, () => process.exit(1));
  else {
    process.stderr.write(`${msg}\n`);
    process.exit(1);
  }
});
