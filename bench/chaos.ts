/**
 * bench/chaos: a bounded soak with faults, not in CI. Steady events over HTTP and queries against a
 * running `streamrec start`; hostile and oversized records written straight to the interactions
 * topic; the service and the broker killed with SIGKILL at random moments and started again (the
 * service after 1-3 s, the broker on the same port after 5-20 s). Nobody touches the service in
 * between: it must come back by itself.
 *
 *   npm run bench:chaos                                  # 10 minutes
 *   BENCH_MINUTES=2 BENCH_SEED=7 npm run bench:chaos
 *
 * Every event carries an item id of its own, so the final state says exactly which events were
 * applied and how often. At the end (faults stopped, the backlog applied, the service stopped) the
 * partition stores are read and the JSON on the last line of stdout says:
 * - events: acknowledged (202) vs applied exactly once; acknowledged but missing; applied twice;
 *   and of the requests that got no 202 (timeouts, 503 during an outage), how many landed anyway;
 * - deadLetters: bad records the broker acknowledged vs distinct dead letters (by source offset);
 * - crashes: service exits that were not our SIGKILL or SIGTERM;
 * - recoveries: per fault, seconds until /ready answered 200 again;
 * - rss: the service's resident memory over time (MB).
 * Uses its own broker (folder .streamrec/chaos-kafka), never KAFKA_BROKERS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { createKafka } from '../src/kafka/client.js';
import type { Producer } from '../src/kafka/kafkajs.js';
import { freePort, localKafkaOptions, readState, startLocalKafka, stopLocalKafka } from '../src/kafka/local-broker.js';
import { applyTopics, topicName } from '../src/kafka/topics.js';
import { createCodecs } from '../src/serde/avro.js';
import { keys, codecs as stateCodecs } from '../src/state/model.js';
import { openRocksStore } from '../src/state/rocksdb-store.js';
import { partitionStoreDir } from '../src/stream/processor.js';
import { prng as rng } from '../src/data/synthetic.js';

const MINUTES = Number(process.env.BENCH_MINUTES ?? 10);
const SEED = Number(process.env.BENCH_SEED ?? 1);
const REQUESTS_PER_S = Number(process.env.BENCH_REQUESTS_PER_S ?? 20);
const EVENTS_PER_REQUEST = 5;
const QUERIES_PER_S = Number(process.env.BENCH_QUERIES_PER_S ?? 20);
const ROOT_KEY = 'chaos-root-key-0123456789';
const CLI = new URL('../../bin/streamrec.js', import.meta.url).pathname;
const log = (msg: string) => process.stderr.write(`[bench:chaos ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const r = rng(SEED);
  const config = loadConfig({ env: {}, overrides: { 'kafka.local.dataDir': process.env.STREAMREC_KAFKA_DIR || '.streamrec/chaos-kafka' } });
  const startBroker = () => startLocalKafka(localKafkaOptions(config, 'owned', (l) => log(`[kafka] ${l}`)));
  const broker = await startBroker();
  const brokers = broker.brokers;
  const group = `chaos-${Date.now().toString(36)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-chaos-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    KAFKA_BROKERS: brokers,
    STREAMREC_STATE_DIR: stateDir,
    STREAMREC_API_PORT: String(port),
    STREAMREC_API_ROOT_KEY: ROOT_KEY,
    STREAMREC_LOG_LEVEL: 'warn',
    STREAMREC_TRAINING_RECIPE: 'popularity-count',
  };
  const svcConfig = loadConfig({ env });
  // The bench's own clients stay quiet: the broker is killed on purpose.
  const kafka = createKafka(loadConfig({ env, overrides: { 'kafka.logLevel': 'nothing' } }), [brokers], '-chaos');
  mkdirSync('bench/out', { recursive: true });
  const serviceLog = `bench/out/chaos-${group}.log`;
  const admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, svcConfig);
  await admin.disconnect();
  const codecs = createCodecs(svcConfig);

  // --- the service, restarted after each kill; exits we did not cause are crashes
  let service: ChildProcess | undefined;
  let expectingExit = false;
  const crashes: { at: number; code: number | null; signal: string | null; tail: string }[] = [];
  const rss: [number, number][] = [];
  const t0 = Date.now();
  const since = () => Math.round((Date.now() - t0) / 1000);
  const startService = () => {
    let tail = '';
    const child = spawn(process.execPath, [CLI, 'start', '--group', group, '--no-sample'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      tail = (tail + d.toString()).slice(-4000);
      appendFileSync(serviceLog, d);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('exit', (code, signal) => {
      if (child !== service) return;
      if (!expectingExit) {
        crashes.push({ at: since(), code, signal, tail });
        log(`CRASH: the service exited (${code ?? signal}); restarting it\n${tail}`);
        service = startService();
      }
    });
    return child;
  };
  const ready = async (): Promise<boolean> => {
    try {
      return (await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) })).status === 200;
    } catch {
      return false;
    }
  };
  const untilReady = async (timeoutMs: number): Promise<number | null> => {
    const t = Date.now();
    while (Date.now() - t < timeoutMs) {
      if (await ready()) return (Date.now() - t) / 1000;
      await sleep(200);
    }
    return null;
  };
  service = startService();
  if ((await untilReady(120_000)) === null) throw new Error('the service never became ready');
  log(`service ready on ${url}, group ${group}; ${MINUTES} minute(s) of load and faults; its log: ${serviceLog}`);

  // --- load: events over HTTP (unique item per event), queries, bad records into the topic
  let seq = 0;
  const acked = new Set<string>();
  const unacked = new Set<string>();
  let requests = 0;
  const statuses = new Map<string, number>();
  let running = true;
  const post = async () => {
    const user = `u${Math.floor(r() * 500)}`;
    const items = Array.from({ length: EVENTS_PER_REQUEST }, () => `c-${seq++}`);
    const body = { userId: user, eventList: items.map((itemId) => ({ eventType: 'click', itemId, sentAt: Date.now() })) };
    let status = 'error';
    try {
      const res = await fetch(`${url}/v1/groups/${group}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': ROOT_KEY },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      status = String(res.status);
      await res.arrayBuffer();
    } catch (err) {
      status = (err as Error).name === 'TimeoutError' ? 'timeout' : 'refused';
    }
    requests++;
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    for (const i of items) (status === '202' ? acked : unacked).add(i);
  };
  let queries = 0;
  const queryStatuses = new Map<string, number>();
  const query = async () => {
    const path = r() < 0.5 ? `recommendations?userId=u${Math.floor(r() * 500)}&numResults=10` : 'popular?numResults=10';
    let status = 'error';
    try {
      const res = await fetch(`${url}/v1/groups/${group}/${path}`, { headers: { 'x-api-key': ROOT_KEY }, signal: AbortSignal.timeout(10_000) });
      status = String(res.status);
      await res.arrayBuffer();
    } catch (err) {
      status = (err as Error).name === 'TimeoutError' ? 'timeout' : 'refused';
    }
    queries++;
    queryStatuses.set(status, (queryStatuses.get(status) ?? 0) + 1);
  };
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let badAcked = 0;
  let badUnacked = 0;
  const badKinds = new Map<string, number>();
  const hostile = (): { kind: string; value: Buffer } => {
    const x = r();
    if (x < 0.35) return { kind: 'random', value: Buffer.from(Array.from({ length: 1 + Math.floor(r() * 200) }, () => Math.floor(r() * 256))) };
    if (x < 0.7) return { kind: 'huge-count', value: Buffer.from([2, 0x75, 2, 0x69, 2, 0, 0, 0, 0x80, 0xd0, 0xac, 0xf3, 0x0e, 0x61]) };
    if (x < 0.95) return { kind: 'oversized-150KB', value: Buffer.alloc(150_000, 0x41) };
    return { kind: 'oversized-1MB', value: Buffer.alloc(1_048_200, 0x42) };
  };
  const sendBad = async () => {
    const { kind, value } = hostile();
    try {
      await producer.send({ topic: topicName(group, 'interactions'), messages: [{ key: 'mallory', value }] });
      badAcked++;
      badKinds.set(kind, (badKinds.get(kind) ?? 0) + 1);
    } catch {
      badUnacked++;
    }
  };
  const loops = [
    (async () => {
      while (running) {
        void post();
        await sleep(1000 / REQUESTS_PER_S);
      }
    })(),
    (async () => {
      while (running) {
        void query();
        await sleep(1000 / QUERIES_PER_S);
      }
    })(),
    (async () => {
      while (running) {
        await sendBad();
        await sleep(1000 + r() * 3000);
      }
    })(),
    (async () => {
      while (running) {
        const pid = service?.pid;
        if (pid) {
          try {
            const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
            if (m) rss.push([since(), Math.round(Number(m[1]) / 1024)]);
          } catch {
            // between a kill and the restart
          }
        }
        await sleep(10_000);
      }
    })(),
  ];

  // --- faults
  const recoveries: { at: number; fault: string; downSeconds: number; readyAfterSeconds: number | null }[] = [];
  const end = t0 + MINUTES * 60_000;
  while (Date.now() + 60_000 < end) {
    await sleep(20_000 + r() * 40_000);
    if (r() < 0.6) {
      log('fault: kill -9 the service');
      expectingExit = true;
      const exited = new Promise((res) => service!.once('exit', res));
      service!.kill('SIGKILL');
      await exited;
      expectingExit = false;
      const down = 1000 + r() * 2000;
      await sleep(down);
      service = startService();
      const after = await untilReady(180_000);
      recoveries.push({ at: since(), fault: 'service', downSeconds: Math.round(down / 100) / 10, readyAfterSeconds: after });
      log(`service back: ready after ${after ?? 'never'} s`);
    } else {
      log('fault: kill -9 the broker');
      const state = readState(config.kafka.local.dataDir);
      if (state) process.kill(state.pid, 'SIGKILL');
      const down = 5000 + r() * 15_000;
      await sleep(down);
      const restarted = await startBroker();
      if (restarted.brokers !== brokers) throw new Error(`the broker came back on ${restarted.brokers}, not ${brokers}`);
      const after = await untilReady(180_000);
      recoveries.push({ at: since(), fault: 'broker', downSeconds: Math.round(down / 100) / 10, readyAfterSeconds: after });
      log(`broker back; the service is ready after ${after ?? 'never'} s`);
    }
  }
  while (Date.now() < end) await sleep(500);
  running = false;
  await Promise.all(loops);
  await sleep(2000); // the last requests' answers
  await producer.disconnect();

  // --- drain: wait until the processor's lag is 0 and nothing moves, then stop the service
  log('load stopped; waiting for the backlog to be applied');
  let last = -1;
  for (let stable = 0; stable < 3; ) {
    await sleep(2000);
    try {
      const body = (await (await fetch(`${url}/ready`, { signal: AbortSignal.timeout(5000) })).json()) as { detail?: { applied: number; partitions: { lag: number | null }[] } };
      const lagZero = (body.detail?.partitions ?? []).every((p) => p.lag === 0);
      const applied = body.detail?.applied ?? -1;
      stable = lagZero && applied === last ? stable + 1 : 0;
      last = applied;
    } catch {
      stable = 0;
    }
  }
  expectingExit = true;
  const exited = new Promise<number | null>((res) => service!.once('exit', (code) => res(code)));
  const stopAt = Date.now();
  service!.kill('SIGTERM');
  const stopCode = await exited;
  const stopSeconds = (Date.now() - stopAt) / 1000;

  // --- what the state says
  const applied = new Map<string, number>();
  for (let p = 0; p < svcConfig.topics.partitions; p++) {
    const store = await openRocksStore(partitionStoreDir(svcConfig, group, p));
    for await (const [key, value] of store.range({ prefix: keys.item('c-') })) applied.set(key.slice(2), stateCodecs.item.decode(value).events);
    await store.close();
  }
  const missing = [...acked].filter((i) => !applied.has(i));
  const twice = [...applied].filter(([, n]) => n > 1).map(([i]) => i);
  const landedUnacked = [...unacked].filter((i) => applied.has(i)).length;
  const letters = await readDeadLetters(kafka, topicName(group, 'dead-letter'));
  await stopLocalKafka(config.kafka.local.dataDir, config.kafka.local.stopGraceMs);

  const result = {
    bench: 'chaos',
    minutes: MINUTES,
    seed: SEED,
    load: { requestsPerSecond: REQUESTS_PER_S, eventsPerRequest: EVENTS_PER_REQUEST, queriesPerSecond: QUERIES_PER_S },
    events: {
      sent: seq,
      acknowledged: acked.size,
      appliedOfAcknowledged: acked.size - missing.length,
      acknowledgedMissing: missing.length,
      appliedTwice: twice.length,
      notAcknowledged: unacked.size,
      notAcknowledgedButApplied: landedUnacked,
      equal: missing.length === 0 && twice.length === 0,
      httpStatuses: Object.fromEntries(statuses),
    },
    queries: { sent: queries, statuses: Object.fromEntries(queryStatuses) },
    deadLetters: { badRecordsAcknowledged: badAcked, badRecordsNotAcknowledged: badUnacked, kinds: Object.fromEntries(badKinds), distinct: letters.distinct, duplicates: letters.duplicates, equal: letters.distinct === badAcked, withinNotAcknowledged: letters.distinct >= badAcked && letters.distinct <= badAcked + badUnacked },
    crashes: crashes.length,
    crashDetails: crashes.map((c) => ({ at: c.at, code: c.code, signal: c.signal })),
    faults: recoveries,
    recoverySeconds: summary(recoveries.map((x) => x.readyAfterSeconds).filter((x): x is number => x !== null)),
    neverRecovered: recoveries.filter((x) => x.readyAfterSeconds === null).length,
    serviceExitCodeOnSigterm: stopCode,
    serviceStopSeconds: stopSeconds,
    serviceLog,
    rssMb: rss,
  };
  console.log(JSON.stringify(result));
}

/** Distinct dead letters by source offset (a crash between a dead letter's send and the offset's commit may repeat it: counted as duplicates). */
async function readDeadLetters(kafka: ReturnType<typeof createKafka>, topic: string): Promise<{ distinct: number; duplicates: number }> {
  const consumer = kafka.consumer({ groupId: `chaos-reader-${Date.now()}`, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen = new Map<string, number>();
  let lastAt = Date.now();
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const k = `${m.headers?.['source-topic']?.toString()}/${m.headers?.['source-partition']?.toString()}/${m.headers?.['source-offset']?.toString()}`;
        seen.set(k, (seen.get(k) ?? 0) + 1);
      }
      lastAt = Date.now();
    },
  });
  // Done when nothing new arrived for 10 s.
  while (Date.now() - lastAt < 10_000) await sleep(500);
  await consumer.disconnect();
  const duplicates = [...seen.values()].reduce((s, n) => s + n - 1, 0);
  return { distinct: seen.size, duplicates };
}

function summary(xs: number[]): { n: number; median: number | null; max: number | null } {
  if (xs.length === 0) return { n: 0, median: null, max: null };
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
