/**
 * bench/api: latency and throughput of the recommendations query (GET /v1/groups/:group/
 * recommendations?userId=&numResults=25, a random known user per request) over loopback, beside a
 * hello-world fastify route served by the same process in the same run: the ratio is the figure.
 * Target: p99 < 10 ms at 5,000 requests/s.
 *
 * 1. Kafka (KAFKA_BROKERS, else the local broker in .streamrec/bench-kafka), a fresh group, the 10,000
 *    seeded synthetic events `streamrec start` puts into an empty group; the service (startService,
 *    training recipe hrnn, API on a free port) until the events are applied and a version is served.
 * 2. GET /hello -> {hello:'world'} on a second fastify app in this process.
 * 3. The load comes from autocannon in a child process (bench/api-load.ts), never this event loop:
 *    per target, a fixed-rate run (autocannon overallRate) after a warm-up, three times, interleaved
 *    hello, recs, hello, recs, ...; then one run without a rate limit per target.
 *
 *   npm run bench:api
 *   STREAMREC_BENCH_QUICK=1 npm run bench:api     (2 s runs, 1 s warm-up, 1 repeat, 2 training epochs)
 *   STREAMREC_BENCH_RATE=5000 STREAMREC_BENCH_DURATION_S=10 STREAMREC_BENCH_CONNECTIONS=50
 *   STREAMREC_BENCH_READY_TIMEOUT_S=600: how long to wait for the events and the first version.
 *   STREAMREC_BENCH_SLICES=1: fixed-rate runs split over this many staggered autocannon instances
 *     (autocannon's rate limit sends each second's share back to back: bursts; see bench/api-load.ts).
 *   STREAMREC_BENCH_FRESH=0: skip the fresh-state part.
 *
 * The users' stored HRNN states date from before the first version, so a user's first query
 * re-derives the state from the user's latest events (src/serving/served-model.ts currentHrnnState; the
 * query service keeps it for the next ones). The fresh-state part
 * then sends one event per user, so that the processor stores each state under the served version,
 * and measures the query again (one fixed-rate and one max run; not part of `target`). Both parts
 * also time service.recommend() in process (no HTTP) for 200 sequential queries.
 *
 * The API runs with keys (STREAMREC_API_AUTH=keys, a random STREAMREC_API_ROOT_KEY) and every bench
 * request (hello too, so both carry the same header) sends the root key as x-api-key.
 * Progress goes to stderr; the last line of stdout is the JSON result.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig, type Config } from '../src/config/index.js';
import { syntheticInteractions } from '../src/data/synthetic.js';
import { createKafka } from '../src/kafka/client.js';
import { produceRecords } from '../src/kafka/produce.js';
import { resolveBrokers, type Brokers } from '../src/kafka/connect.js';
import { stopLocalKafka } from '../src/kafka/local-broker.js';
import { applyTopics, groupTopics, validateGroupName } from '../src/kafka/topics.js';
import type { Interaction } from '../src/serde/avro.js';
import { startService, type Service } from '../src/stream/service.js';
import type { LoadResult, LoadSpec } from './api-load.js';

const log = (msg: string) => process.stderr.write(`[bench:api] ${msg}\n`);
const QUICK = process.env.STREAMREC_BENCH_QUICK === '1';
const RATE = Number(process.env.STREAMREC_BENCH_RATE ?? 5000);
const DURATION_S = Number(process.env.STREAMREC_BENCH_DURATION_S ?? (QUICK ? 2 : 10));
const WARMUP_S = QUICK ? 1 : 2;
const REPEATS = QUICK ? 1 : 3;
const CONNECTIONS = Number(process.env.STREAMREC_BENCH_CONNECTIONS ?? 50);
const SLICES = Number(process.env.STREAMREC_BENCH_SLICES ?? 1);
const FRESH = process.env.STREAMREC_BENCH_FRESH !== '0';
const READY_TIMEOUT_MS = Number(process.env.STREAMREC_BENCH_READY_TIMEOUT_S ?? 600) * 1000;
const NUM_RESULTS = 25;
const P99_MAX_MS = 10;
// The sample `streamrec start` produces into an empty group (src/cli/commands/start.ts produceSample).
const SAMPLE = { seed: 1, users: 500, items: 1000, events: 10_000 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? Number.NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Runs one load in a child process (bench/api-load.js next to this file). */
function load(spec: LoadSpec): Promise<LoadResult> {
  const script = fileURLToPath(new URL('./api-load.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last) return reject(new Error(`the load generator exited with code ${code}${last ? `: ${last}` : ''}`));
      try {
        resolve(JSON.parse(last) as LoadResult);
      } catch (err) {
        reject(new Error(`the load generator printed no JSON: ${last.slice(0, 200)} (${(err as Error).message})`));
      }
    });
    child.stdin.end(JSON.stringify(spec));
  });
}

/** Events into the group's interactions topic. */
const produce = (config: Readonly<Config>, brokers: string[], group: string, events: Iterable<Interaction>): Promise<number> => produceRecords(config, brokers, group, { events });

/** service.recommend() in process, sequentially, for `n` random users: median and p99 in ms. */
async function inProcess(service: Service, users: string[], n = 200): Promise<{ p50_ms: number; p99_ms: number }> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const user = users[Math.floor(Math.random() * users.length)]!;
    const t = performance.now();
    await service.recommend(user, NUM_RESULTS);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { p50_ms: r3(median(times)), p99_ms: r3(times[Math.ceil(0.99 * n) - 1]!) };
}

/** Until every event is applied (or dead-lettered) and a model version is served. */
async function untilServed(service: Service, events: number): Promise<void> {
  const t0 = Date.now();
  let nextNote = t0 + 10_000;
  for (;;) {
    const s = service.processor.status();
    const v = service.serving.current;
    if (s.applied + s.deadLetters >= events && v) return;
    const state = () =>
      `state ${s.state}, applied ${s.applied}/${events}, dead letters ${s.deadLetters}, served version ${v?.version ?? 'none'}, training ${JSON.stringify(service.retrainer.status())}`;
    if (Date.now() - t0 > READY_TIMEOUT_MS) {
      throw new Error(`the service was not ready after ${READY_TIMEOUT_MS / 1000} s (STREAMREC_BENCH_READY_TIMEOUT_S): ${state()}`);
    }
    if (Date.now() >= nextNote) {
      log(`waiting (${Math.round((Date.now() - t0) / 1000)} s): ${state()}`);
      nextNote += 10_000;
    }
    await sleep(200);
  }
}

interface Summary {
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  p99_9_ms: number;
  rps: number;
  errors: number;
  non2xx: number;
  p99_ms_min: number;
  p99_ms_max: number;
  p99_ms_autocannon: number;
}

function summarize(runs: LoadResult[]): Summary {
  const m = (f: (r: LoadResult) => number) => r3(median(runs.map(f)));
  const p99s = runs.map((r) => r.latency_ms.p99);
  return {
    p50_ms: m((r) => r.latency_ms.p50),
    p90_ms: m((r) => r.latency_ms.p90),
    p99_ms: m((r) => r.latency_ms.p99),
    p99_9_ms: m((r) => r.latency_ms.p99_9),
    rps: Math.round(median(runs.map((r) => r.rps))),
    errors: m((r) => r.errors),
    non2xx: m((r) => r.non2xx),
    p99_ms_min: Math.min(...p99s),
    p99_ms_max: Math.max(...p99s),
    p99_ms_autocannon: m((r) => r.autocannon_latency_ms.p99),
  };
}

const maxSummary = (r: LoadResult) => ({
  rps: r.rps,
  p50_ms: r.latency_ms.p50,
  p99_ms: r.latency_ms.p99,
  errors: r.errors,
  non2xx: r.non2xx,
});

const line = (r: LoadResult) =>
  `${r.title}: ${r.rps} req/s, p50 ${r.latency_ms.p50} ms, p90 ${r.latency_ms.p90} ms, p99 ${r.latency_ms.p99} ms, p99.9 ${r.latency_ms.p99_9} ms, max ${r.latency_ms.max} ms` +
  `, errors ${r.errors}, non-2xx ${r.non2xx}${r.non2xx ? ` ${JSON.stringify(r.status)}` : ''} (warm-up ${r.warmup.rps} req/s)`;

async function main(): Promise<void> {
  const t0 = Date.now();
  const apiKey = randomBytes(24).toString('base64url');
  process.env.STREAMREC_API_AUTH = 'keys';
  process.env.STREAMREC_API_ROOT_KEY = apiKey;
  log('api auth: keys (root key sent as x-api-key)');

  const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-bench-api-'));
  let brokers: Brokers | undefined;
  let service: Service | undefined;
  let hello: FastifyInstance | undefined;
  let config: Readonly<Config> | undefined;
  const group = validateGroupName(`benchapi${Date.now().toString(36)}`);
  try {
    config = loadConfig({
      overrides: {
        'kafka.local.dataDir': process.env.STREAMREC_KAFKA_DIR || '.streamrec/bench-kafka',
        'state.dir': stateDir,
        'api.host': '127.0.0.1',
        'api.port': 0,
        'log.level': 'warn',
        'training.recipe': 'hrnn',
        ...(QUICK ? { 'training.params': JSON.stringify({ epochs: 2 }) } : {}),
      },
    });
    brokers = await resolveBrokers(config, 'owned', log);
    log(brokers.local ? `kafka: ${brokers.local.reused ? 'reusing the local broker' : 'started the local broker'} at ${brokers.local.brokers}` : `kafka: ${brokers.brokers.join(',')} (KAFKA_BROKERS)`);
    const admin = createKafka(config, brokers.brokers, '-bench').admin();
    await admin.connect();
    try {
      await applyTopics(admin, group, config);
    } finally {
      await admin.disconnect();
    }
    const lastOf = new Map<string, Interaction>();
    await produce(config, brokers.brokers, group, (function* () {
      for (const e of syntheticInteractions({ ...SAMPLE, start: Date.now() - SAMPLE.events * 1000 })) {
        lastOf.set(e.USER_ID, e);
        yield e;
      }
    })());
    const users = [...lastOf.keys()];
    log(`group ${group}: produced ${SAMPLE.events} events of ${users.length} users`);

    const tReady = Date.now();
    service = await startService({ config, group, brokers: brokers.brokers, log: pino({ level: 'warn' }, pino.destination(2)), apiLogger: false });
    await untilServed(service, SAMPLE.events);
    const readyS = (Date.now() - tReady) / 1000;
    const served = service.serving.current!;
    log(`service at ${service.url}: ${service.processor.status().applied} events applied, version ${served.version} (${served.model.recipe}) served after ${readyS.toFixed(1)} s`);

    hello = Fastify({ logger: false });
    hello.get('/hello', async () => ({ hello: 'world' }));
    const helloUrl = await hello.listen({ host: '127.0.0.1', port: 0 });

    const headers = { 'x-api-key': apiKey };
    const recsBase = `${service.url}/v1/groups/${group}/recommendations?numResults=${NUM_RESULTS}&userId=`;
    // One request of each first: a clear error (401, 404, 503) rather than a run of non-2xx.
    for (const url of [`${recsBase}${encodeURIComponent(users[0]!)}`, `${helloUrl}/hello`]) {
      const res = await fetch(url, { headers });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${body.slice(0, 300)}`);
    }

    const rederive = await inProcess(service, users);
    log(`in process (no HTTP), states re-derived: p50 ${rederive.p50_ms} ms, p99 ${rederive.p99_ms} ms per query`);

    const common = { headers, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S, slices: SLICES };
    const specs = {
      hello: { ...common, url: `${helloUrl}/hello` },
      recommendations: { ...common, url: recsBase, users },
    };
    const fixed: Record<'hello' | 'recommendations', LoadResult[]> = { hello: [], recommendations: [] };
    for (let i = 0; i < REPEATS; i++) {
      for (const target of ['hello', 'recommendations'] as const) {
        const r = await load({ ...specs[target], title: `${target} @${RATE}/s #${i + 1}`, overallRate: RATE });
        log(line(r));
        fixed[target].push(r);
      }
    }
    const max: Partial<Record<'hello' | 'recommendations', LoadResult>> = {};
    for (const target of ['hello', 'recommendations'] as const) {
      const r = await load({ ...specs[target], title: `${target} max` });
      log(line(r));
      max[target] = r;
    }

    // Fresh state: one more event per user (its last one again, now), applied under the served version.
    let fresh: object | undefined;
    if (FRESH) {
      const now = Date.now();
      const n = await produce(config, brokers.brokers, group, [...lastOf.values()].map((e, i) => ({ ...e, TIMESTAMP: now - users.length + i })));
      const svc = service;
      const deadline = Date.now() + 60_000;
      while (svc.processor.status().applied + svc.processor.status().deadLetters < SAMPLE.events + n) {
        if (Date.now() > deadline) throw new Error(`the ${n} fresh-state events were not applied within 60 s: ${JSON.stringify(svc.processor.status())}`);
        await sleep(100);
      }
      if (svc.serving.current?.version !== served.version) log(`note: the served version changed to ${svc.serving.current?.version}`);
      const stored = await inProcess(svc, users);
      log(`fresh state: ${n} events applied; in process (no HTTP): p50 ${stored.p50_ms} ms, p99 ${stored.p99_ms} ms per query`);
      const rf = await load({ ...specs.recommendations, title: `recommendations fresh state @${RATE}/s`, overallRate: RATE });
      log(line(rf));
      const rm = await load({ ...specs.recommendations, title: 'recommendations fresh state max' });
      log(line(rm));
      fresh = {
        events: n,
        in_process: stored,
        fixed_rate: { ...summarize([rf]), p99_ms_min: undefined, p99_ms_max: undefined },
        max_throughput: maxSummary(rm),
      };
    }

    const summary = { hello: summarize(fixed.hello), recommendations: summarize(fixed.recommendations) };
    const recs = summary.recommendations;
    const met = recs.p99_ms < P99_MAX_MS && recs.rps >= 0.95 * RATE && fixed.recommendations.every((r) => r.errors === 0 && r.non2xx === 0);
    const result = {
      bench: 'api',
      quick: QUICK,
      group,
      events: SAMPLE.events,
      users: users.length,
      items: SAMPLE.items,
      model: { version: served.version, recipe: served.model.recipe, served_after_s: Number(readyS.toFixed(1)) },
      auth: 'keys',
      load: {
        generator: 'autocannon 9 in a child process',
        connections: CONNECTIONS,
        duration_s: DURATION_S,
        warmup_s: WARMUP_S,
        repeats: REPEATS,
        rate: RATE,
        slices: SLICES,
        num_results: NUM_RESULTS,
        latency: '2xx responses, hrtime per response; medians over the repeats; p99_ms_min/max: spread of p99 over the repeats; p99_ms_autocannon: autocannon\'s own whole-ms, CO-corrected p99',
      },
      fixed_rate: summary,
      max_throughput: { hello: maxSummary(max.hello!), recommendations: maxSummary(max.recommendations!) },
      in_process_rederived: rederive,
      ratios: {
        p99_recs_over_hello: r3(recs.p99_ms / summary.hello.p99_ms),
        max_rps_recs_over_hello: r3(max.recommendations!.rps / max.hello!.rps),
      },
      target: { p99_ms_max: P99_MAX_MS, rate: RATE, met },
      ...(fresh ? { fresh_state: fresh } : {}),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
      wall_s: 0,
    };
    await cleanup();
    result.wall_s = Math.round((Date.now() - t0) / 1000);
    log(`target p99 < ${P99_MAX_MS} ms at ${RATE} req/s: ${met ? 'met' : 'NOT met'} (recs p99 ${recs.p99_ms} ms at ${recs.rps} req/s); wall ${result.wall_s} s`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await cleanup();
  }

  async function cleanup(): Promise<void> {
    const h = hello;
    const s = service;
    const b = brokers;
    hello = service = brokers = undefined;
    await h?.close().catch((err: unknown) => log(`closing the hello app failed: ${String(err)}`));
    await s?.stop().catch((err: unknown) => log(`stopping the service failed: ${String(err)}`));
    const cfg = config;
    if (b && cfg) {
      const c: Readonly<Config> = cfg;
      const admin = createKafka(c, b.brokers, '-bench').admin();
      await admin
        .connect()
        .then(() => admin.deleteTopics({ topics: groupTopics(group, c).map((t) => t.topic) }))
        .catch(() => undefined)
        .finally(() => admin.disconnect().catch(() => undefined));
      if (b.local && !b.local.reused) {
        const { stopped } = await stopLocalKafka(c.kafka.local.dataDir, c.kafka.local.stopGraceMs);
        log(`kafka: stopped ${stopped.map((x) => `pid ${x.pid} (${x.how})`).join(', ') || 'nothing'}`);
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
