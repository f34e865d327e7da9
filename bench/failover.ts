/**
 * bench/failover: how long the users of a killed instance wait, with and without standby replicas.
 *
 *   npm run bench:failover
 *   BENCH_SCENARIOS='0:30000,1:30000,0:6000,1:6000' BENCH_USERS=50000 BENCH_PREFILL_EVENTS=150000 npm run bench:failover
 *
 * Per scenario (standbyReplicas:sessionTimeoutMs), on one local broker (its own folder,
 * .streamrec/failover-kafka, or STREAMREC_KAFKA_DIR) and a fresh dataset group of BENCH_PARTITIONS
 * (6) partitions:
 * 1. BENCH_PREFILL_EVENTS events of BENCH_USERS users go to the interactions topic, a
 *    popularity-count version is trained and announced (`streamrec versions train`), and three
 *    `streamrec start` instances (own state folders and ports, logs in bench/out/) apply them;
 * 2. a steady load runs: BENCH_EVENTS_PER_S events a second straight to the topic, and
 *    BENCH_QUERIES_PER_S GetRecommendations over BENCH_SAMPLE_PER_PARTITION (5) users of every
 *    partition, in turn (each asked every 0.75 s by default), sent to the two
 *    instances that will survive;
 * 3. the third instance is killed with SIGKILL. From then on: when its partitions show up on a
 *    survivor (detected: the session timeout), when they are restored (and how: the changelog
 *    offset the store started from, records replayed, ms), and when EVERY sampled user of those
 *    partitions answers 200 again and keeps answering (allAnswering); the queries meanwhile by
 *    outcome: answered here, forwarded to the owner, 503 by code, wrong (404: a user with events
 *    said unknown) and errors (anything else).
 * The JSON on the last line of stdout has one entry per scenario. The machine is shared: figures
 * are noisy, compare scenarios of one run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { createKafka } from '../src/kafka/client.js';
import { partitionOf } from '../src/kafka/partition.js';
import { freePort, localKafkaOptions, startLocalKafka, stopLocalKafka } from '../src/kafka/local-broker.js';
import { applyTopics, topicName } from '../src/kafka/topics.js';
import { createCodecs, interaction, type Interaction } from '../src/serde/avro.js';
import { prng } from '../src/data/synthetic.js';

const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 6);
const USERS = Number(process.env.BENCH_USERS ?? 50_000);
const PREFILL = Number(process.env.BENCH_PREFILL_EVENTS ?? 150_000);
const ITEMS = 2000;
/**
 * Prefill with the instances running, at this many events a second (0: before they start). Live,
 * the processors commit many small batches, so the changelog holds many records per key (its
 * active segment is not compacted): the state a long-running group restores from.
 */
const PREFILL_LIVE_PER_S = Number(process.env.BENCH_PREFILL_LIVE_PER_S ?? 0);
const EVENTS_PER_S = Number(process.env.BENCH_EVENTS_PER_S ?? 200);
const QUERIES_PER_S = Number(process.env.BENCH_QUERIES_PER_S ?? 40);
/** Sampled users per partition: each is asked every (partitions x this / queries per s) seconds, the resolution of allAnswering. */
const SAMPLE = Number(process.env.BENCH_SAMPLE_PER_PARTITION ?? 5);
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? '0:30000,1:30000,0:6000,1:6000').split(',').map((s) => {
  const [standby, session] = s.split(':').map(Number);
  return { standby: standby!, session: session! };
});
const ROOT_KEY = 'failover-root-key-0123456789';
const CLI = new URL('../../bin/streamrec.js', import.meta.url).pathname;
const log = (msg: string) => process.stderr.write(`[bench:failover ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Health {
  detail?: {
    state: string;
    partitions: { partition: number; lag: number | null; restore: { from: number; barrier: number; records: number; ms: number } | null }[];
    standbys?: { partition: number; lag: number | null; checkpoint: number }[];
  };
}

interface Instance {
  url: string;
  child: ChildProcess;
  stateDir: string;
}

async function status(url: string): Promise<Health | undefined> {
  try {
    // /ready carries the processor's status (partitions, restores, standbys), with 200 or 503.
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as Health;
  } catch {
    return undefined;
  }
}

function run(args: string[], env: NodeJS.ProcessEnv, logFile: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => appendFileSync(logFile, d));
    child.stderr.on('data', (d: Buffer) => appendFileSync(logFile, d));
    child.on('exit', (code) => resolve(code));
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

async function scenario(brokers: string, standby: number, session: number): Promise<Record<string, unknown>> {
  const group = `failover-s${standby}-t${session}-${Date.now().toString(36)}`;
  const base = mkdtempSync(join(tmpdir(), 'streamrec-failover-'));
  const versionsDir = join(base, 'versions');
  const common: NodeJS.ProcessEnv = {
    ...process.env,
    KAFKA_BROKERS: brokers,
    STREAMREC_API_ROOT_KEY: ROOT_KEY,
    STREAMREC_TOPIC_PARTITIONS: String(PARTITIONS),
    STREAMREC_TRAINING_VERSIONS_DIR: versionsDir,
    STREAMREC_LOG_LEVEL: 'info',
    STREAMREC_KAFKA_LOG_LEVEL: 'nothing',
  };
  const config = loadConfig({ env: common });
  const kafka = createKafka(config, [brokers], '-failover');
  const codecs = createCodecs(config);
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await Promise.all([admin.connect(), producer.connect()]);
  await applyTopics(admin, group, config);
  const topic = topicName(group, 'interactions');
  const r = prng(standby * 1000 + session);
  const event = (user: string, t: number): Interaction => interaction({ USER_ID: user, ITEM_ID: `i${Math.floor(r() * r() * ITEMS)}`, TIMESTAMP: t });
  const send = (events: Interaction[]) => producer.send({ topic, messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });

  // 1. prefill, a served version, three instances
  const t0 = Date.now() - PREFILL * 10;
  const prefill = async (from: number, to: number, users = USERS) => {
    for (let i = from; i < to; i += 5000) {
      await send(Array.from({ length: Math.min(5000, to - i) }, (_, k) => event(`u${(i + k) % users}`, t0 + (i + k) * 10)));
    }
  };
  // Live prefill: enough before the start to train on (users with 2+ events), the rest once the instances run.
  const before = PREFILL_LIVE_PER_S > 0 ? Math.min(PREFILL, 20_000) : PREFILL;
  await prefill(0, before, PREFILL_LIVE_PER_S > 0 ? Math.min(USERS, 5000) : USERS);
  log(`${group}: ${before} events of ${USERS} users produced; training a popularity-count version`);
  mkdirSync('bench/out', { recursive: true });
  const trainCode = await run(['versions', 'train', '--group', group], { ...common, STREAMREC_STATE_DIR: join(base, 'trainer'), STREAMREC_TRAINING_RECIPE: 'popularity-count' }, `bench/out/failover-${group}-train.log`);
  if (trainCode !== 0) throw new Error(`versions train exited ${trainCode}: bench/out/failover-${group}-train.log`);

  const instances: Instance[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const stateDir = join(base, `i${i}`);
    const logFile = `bench/out/failover-${group}-i${i}.log`;
    const child = spawn(process.execPath, [CLI, 'start', '--group', group, '--no-sample'], {
      env: {
        ...common,
        STREAMREC_STATE_DIR: stateDir,
        STREAMREC_API_PORT: String(port),
        STREAMREC_TRAINING_RECIPE: 'none',
        STREAMREC_INSTANCE_ID: `i${i}`,
        STREAMREC_PROCESSOR_SESSION_TIMEOUT_MS: String(session),
        STREAMREC_PROCESSOR_REBALANCE_TIMEOUT_MS: '20000',
        STREAMREC_PROCESSOR_STANDBY_REPLICAS: String(standby),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => appendFileSync(logFile, d));
    child.stderr!.on('data', (d: Buffer) => appendFileSync(logFile, d));
    instances.push({ url: `http://127.0.0.1:${port}`, child, stateDir });
  }
  const tStart = Date.now();
  if (before < PREFILL) {
    await until('the instances running', async () => (await Promise.all(instances.map((i) => status(i.url)))).every((h) => h?.detail?.state === 'running'), 600_000);
    for (let i = before; i < PREFILL; ) {
      const tick = Date.now();
      const n = Math.min(Math.round(PREFILL_LIVE_PER_S / 10), PREFILL - i);
      await prefill(i, i + n);
      i += n;
      await sleep(Math.max(0, 100 - (Date.now() - tick)));
    }
    log(`${group}: ${PREFILL} events produced (live, ${PREFILL_LIVE_PER_S}/s)`);
  }
  await until(
    'three instances running, caught up, 2 partitions each (standbys caught up)',
    async () => {
      const hs = await Promise.all(instances.map((i) => status(i.url)));
      return hs.every(
        (h) =>
          h?.detail?.state === 'running' &&
          h.detail.partitions.length === PARTITIONS / 3 &&
          h.detail.partitions.every((p) => p.lag === 0) &&
          (h.detail.standbys ?? []).length === (standby > 0 ? Math.min(standby, 2) * (PARTITIONS / 3) : 0) &&
          (h.detail.standbys ?? []).every((s) => s.lag !== null && s.lag < 50),
      );
    },
    600_000,
  );
  const settleS = (Date.now() - tStart) / 1000;
  log(`${group}: settled in ${settleS.toFixed(1)} s`);

  // Sampled users: SAMPLE per partition.
  const sample = new Map<number, string[]>();
  for (let u = 0; u < USERS && [...sample.values()].reduce((a, l) => a + l.length, 0) < SAMPLE * PARTITIONS; u++) {
    const id = `u${u}`;
    const p = partitionOf(id, PARTITIONS);
    const l = sample.get(p) ?? [];
    if (l.length < SAMPLE) l.push(id);
    sample.set(p, l);
  }
  const victim = instances[2]!;
  const survivors = instances.slice(0, 2);
  const moved = ((await status(victim.url))?.detail?.partitions ?? []).map((p) => p.partition);
  const movedUsers = new Set(moved.flatMap((p) => sample.get(p) ?? []));
  const allUsers = [...sample.values()].flat();

  // 2. the steady load
  let running = true;
  let killedAt: number | undefined;
  const outcomes = { before: new Map<string, number>(), during: new Map<string, number>(), movedDuring: new Map<string, number>() };
  const lastFailure = new Map<string, number>();
  const firstOk = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  let q = 0;
  const query = async () => {
    const user = allUsers[q % allUsers.length]!;
    const target = survivors[q++ % survivors.length]!;
    let outcome: string;
    try {
      const res = await fetch(`${target.url}/v1/groups/${group}/recommendations?userId=${user}&numResults=10`, { headers: { 'x-api-key': ROOT_KEY }, signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { code?: string; itemList?: unknown[] };
      if (res.status === 200) outcome = res.headers.get('x-streamrec-answered-by') ? 'forwarded' : 'answered';
      else if (res.status === 503) outcome = `503 ${body.code ?? '?'}`;
      else if (res.status === 404) outcome = `wrong 404 ${body.code ?? '?'}`;
      else outcome = `error ${res.status} ${body.code ?? '?'}`;
    } catch (err) {
      outcome = `error ${(err as Error).name}`;
    }
    const now = Date.now();
    if (killedAt === undefined) bump(outcomes.before, outcome);
    else {
      bump(outcomes.during, outcome);
      if (movedUsers.has(user)) {
        bump(outcomes.movedDuring, outcome);
        if (outcome === 'answered' || outcome === 'forwarded') {
          if (!firstOk.has(user) || (lastFailure.get(user) ?? 0) > (firstOk.get(user) ?? 0)) firstOk.set(user, now);
        } else lastFailure.set(user, now);
      }
    }
  };
  const load = (async () => {
    let tick = 0;
    while (running) {
      const started = Date.now();
      // every 100 ms: a tenth of a second's events and queries
      void send(Array.from({ length: Math.round(EVENTS_PER_S / 10) }, () => event(`u${Math.floor(r() * USERS)}`, Date.now()))).catch(() => undefined);
      for (let k = 0; k < QUERIES_PER_S / 10; k++) void query();
      tick++;
      await sleep(Math.max(0, 100 - (Date.now() - started)));
    }
    return tick;
  })();
  await sleep(10_000);

  // 3. kill -9 one instance
  killedAt = Date.now();
  victim.child.kill('SIGKILL');
  log(`${group}: killed instance 2 (partitions ${moved.join(',')})`);
  let detectedAt: number | undefined;
  let restoredAt: number | undefined;
  let restores: { partition: number; on: number; from: number; records: number; ms: number }[] = [];
  const deadline = killedAt + 240_000;
  while (Date.now() < deadline) {
    const hs = await Promise.all(survivors.map((i) => status(i.url)));
    const now = Date.now();
    const held = hs.flatMap((h, i) => (h?.detail?.partitions ?? []).map((p) => ({ ...p, on: i })));
    const mine = held.filter((p) => moved.includes(p.partition));
    if (detectedAt === undefined && mine.length > 0) detectedAt = now;
    if (restoredAt === undefined && moved.every((p) => mine.some((m) => m.partition === p && m.restore))) {
      restoredAt = now;
      restores = mine.map((m) => ({ partition: m.partition, on: m.on, from: m.restore!.from, records: m.restore!.records, ms: m.restore!.ms }));
    }
    const quietFor = now - Math.max(0, ...lastFailure.values());
    if (restoredAt !== undefined && [...movedUsers].every((u) => firstOk.has(u) && (lastFailure.get(u) ?? 0) < firstOk.get(u)!) && quietFor > 10_000) break;
    await sleep(250);
  }
  running = false;
  await load;
  await sleep(1500);
  const allAnswering = [...movedUsers].every((u) => firstOk.has(u)) ? Math.max(...[...movedUsers].map((u) => firstOk.get(u)!)) : undefined;
  for (const i of survivors) i.child.kill('SIGTERM');
  await Promise.all(survivors.map((i) => new Promise((res) => (i.child.exitCode !== null ? res(null) : i.child.once('exit', res)))));
  await Promise.all([admin.disconnect(), producer.disconnect()]);
  rmSync(base, { recursive: true, force: true });
  const s = (t: number | undefined) => (t === undefined || killedAt === undefined ? null : Math.round((t - killedAt) / 100) / 10);
  const during = Object.fromEntries(outcomes.during);
  const count = (pred: (k: string) => boolean) => [...outcomes.during].filter(([k]) => pred(k)).reduce((a, [, v]) => a + v, 0);
  return {
    standbyReplicas: standby,
    sessionTimeoutMs: session,
    partitions: PARTITIONS,
    prefill: { events: PREFILL, users: USERS, livePerS: PREFILL_LIVE_PER_S },
    settleS,
    moved,
    detectedS: s(detectedAt),
    restoredS: s(restoredAt),
    allAnsweringS: s(allAnswering),
    restores,
    queriesBeforeKill: Object.fromEntries(outcomes.before),
    queriesAfterKill: {
      total: count(() => true),
      answered: count((k) => k === 'answered'),
      forwarded: count((k) => k === 'forwarded'),
      unavailable503: count((k) => k.startsWith('503')),
      wrong404: count((k) => k.startsWith('wrong')),
      errors: count((k) => k.startsWith('error')),
      byOutcome: during,
      movedUsersOnly: Object.fromEntries(outcomes.movedDuring),
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig({ env: {}, overrides: { 'kafka.local.dataDir': process.env.STREAMREC_KAFKA_DIR || '.streamrec/failover-kafka' } });
  const broker = await startLocalKafka(localKafkaOptions(config, 'owned', (l) => log(`[kafka] ${l}`)));
  const results: Record<string, unknown>[] = [];
  try {
    for (const { standby, session } of SCENARIOS) {
      log(`scenario: standbyReplicas=${standby}, sessionTimeoutMs=${session}`);
      const res = await scenario(broker.brokers, standby, session);
      log(JSON.stringify(res));
      results.push(res);
    }
  } finally {
    await stopLocalKafka(config.kafka.local.dataDir, config.kafka.local.stopGraceMs);
  }
  console.log(JSON.stringify({ bench: 'failover', eventsPerS: EVENTS_PER_S, queriesPerS: QUERIES_PER_S, scenarios: results }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
