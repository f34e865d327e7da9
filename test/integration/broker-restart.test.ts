/**
 * Issue 11, part 3: the service comes back by itself after its broker is killed (kill -9) and
 * restarted on the same port under HTTP load, three times over, and every event answered 202 is
 * applied exactly once.
 *
 * A PRIVATE broker (its own folder under .streamrec/), never the suite's shared one. The service
 * runs in this process (startService), so the test reads the processor's status and state directly;
 * the load is real HTTP (POST /v1/groups/G/events), each event with an item id of its own, so that
 * the state's per-item event counts say which events were applied, and how many times.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { localKafkaOptions, startLocalKafka, stopLocalKafka, type StartResult } from '../../src/kafka/local-broker.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { startService, type Service } from '../../src/stream/service.js';
import type { Logger } from '../../src/util/log.js';
import { isAlive } from '../../src/util/process.js';
import { freshGroup, rootHeaders, TEST_ROOT_KEY, until } from './helpers.js';

// Absolute: the broker's JVM runs in its folder.
const dataDir = resolve(`.streamrec/test-kafka-restart-${randomBytes(4).toString('hex')}`);
const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-broker-restart-'));
const logFile = join(stateDir, 'service.log');
const group = freshGroup('restart');
const ROUNDS = 3;

/** The service's log, as JSON lines in a file (its tail is printed when an expectation fails). */
const fileLog: Logger = Object.fromEntries(
  (['debug', 'info', 'warn', 'error'] as const).map((level) => [
    level,
    (obj: object, msg: string) => {
      if (level !== 'debug') appendFileSync(logFile, `${JSON.stringify({ t: new Date().toISOString(), level, msg, ...safe(obj) })}\n`);
    },
  ]),
) as unknown as Logger;
function safe(obj: object): object {
  try {
    return JSON.parse(JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? `${v.name}: ${v.message}` : v))) as object;
  } catch {
    return {};
  }
}
const logTail = (n = 80): string => {
  try {
    return readFileSync(logFile, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
};

let broker: StartResult;
let config: Readonly<Config>;
let service: Service | undefined;

async function startBroker(port = 0, controllerPort = 0): Promise<StartResult> {
  const base = loadConfig({ env: {} });
  return startLocalKafka({ ...localKafkaOptions(base, 'owned'), dataDir, port, controllerPort, startTimeoutMs: 180_000 });
}

beforeAll(async () => {
  broker = await startBroker();
  config = loadConfig({
    env: {
      KAFKA_BROKERS: broker.brokers,
      STREAMREC_STATE_DIR: stateDir,
      STREAMREC_API_PORT: '0',
      STREAMREC_API_ROOT_KEY: TEST_ROOT_KEY,
      STREAMREC_TRAINING_RECIPE: 'none',
      STREAMREC_RECOMMENDATIONS_ENABLED: 'false',
      STREAMREC_PROCESSOR_SESSION_TIMEOUT_MS: '6000',
      STREAMREC_PROCESSOR_REBALANCE_TIMEOUT_MS: '10000',
      STREAMREC_PROCESSOR_LAG_REFRESH_MS: '1000',
      STREAMREC_KAFKA_RESTART_BACKOFF_MS: '200',
      STREAMREC_KAFKA_RESTART_MAX_BACKOFF_MS: '2000',
    },
  });
  const kafka = createKafka(config, [broker.brokers], '-restart-test');
  const admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  await admin.disconnect();
  service = await startService({ config, group, brokers: [broker.brokers], log: fileLog });
}, 300_000);

afterAll(async () => {
  await service?.stop();
  await stopLocalKafka(dataDir, 5000);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}, 120_000);

/** POSTs of 3 events each, every 20 ms (150 events/s), at most 60 in flight; each event's item id is unique. */
function load(url: string) {
  const accepted = new Set<string>();
  const refused = new Set<string>();
  const statuses = new Map<number | string, number>();
  let n = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  const timer = setInterval(() => {
    if (inFlight >= 60) return;
    const events = [0, 1, 2].map(() => ({ id: `it-${n}`, user: `u${n++ % 40}` }));
    inFlight++;
    const p = fetch(`${url}/v1/groups/${group}/events`, {
      method: 'POST',
      headers: rootHeaders({ 'content-type': 'application/json' }),
      // One user per request (the API's shape); three users' events in three requests would be slower.
      body: JSON.stringify({ userId: events[0]!.user, eventList: events.map((e) => ({ eventType: 'click', itemId: e.id, sentAt: Date.now() })) }),
      signal: AbortSignal.timeout(30_000),
    })
      .then(async (res) => {
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        for (const e of events) (res.status === 202 ? accepted : refused).add(e.id);
      })
      .catch((err: unknown) => {
        const key = (err as Error).name ?? 'error';
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        for (const e of events) refused.add(e.id);
      })
      .finally(() => {
        inFlight--;
        pending.delete(p);
      });
    pending.add(p);
  }, 20);
  return {
    accepted,
    refused,
    statuses,
    stop: async () => {
      clearInterval(timer);
      await Promise.allSettled([...pending]);
    },
  };
}

interface Probe {
  at: number;
  processor: string;
  /** The processor's state did not change while the probe ran. */
  stable: boolean;
  reachable: boolean | null;
  health: number;
  ready: number;
  /** Lag samples on /metrics while the status said Kafka was unreachable (before and after the scrape). */
  lagWhileUnreachable: string[];
}

async function probe(svc: Service): Promise<Probe> {
  const before = svc.processor.status();
  const [health, ready, metrics] = await Promise.all([
    fetch(`${svc.url}/health`).then((r) => r.status),
    fetch(`${svc.url}/ready`).then((r) => r.status),
    fetch(`${svc.url}/metrics`).then((r) => r.text()),
  ]);
  const after = svc.processor.status();
  const unreachable = before.kafka.reachable === false && after.kafka.reachable === false;
  return {
    at: Date.now(),
    processor: after.state,
    stable: before.state === after.state,
    reachable: after.kafka.reachable,
    health,
    ready,
    lagWhileUnreachable: unreachable ? metrics.split('\n').filter((l) => l.startsWith('streamrec_consumer_lag{')) : [],
  };
}

/** Each item's event count summed over this instance's partitions. */
async function itemEvents(svc: Service): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  await svc.processor.forEachItemCount((itemId, c) => counts.set(itemId, (counts.get(itemId) ?? 0) + c.events));
  return counts;
}

describe('a broker killed and restarted under load', () => {
  it(`three rounds of kill -9 and restart: the processor comes back by itself, /health and /ready say what happens, every 202 is applied once`, async () => {
    const svc = service!;
    const traffic = load(svc.url);
    const probes: Probe[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        probes.push(await probe(svc).catch(() => ({ at: Date.now(), processor: svc.processor.status().state, stable: false, reachable: null, health: -1, ready: -1, lagWhileUnreachable: [] })));
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const rounds: { killedAt: number; restartedAt: number; backAt: number; acceptedBefore: number }[] = [];
    try {
      await until('the processor running', () => svc.processor.status().state === 'running', 120_000);
      for (let round = 0; round < ROUNDS; round++) {
        // Some traffic accepted and applied before each kill.
        const base = traffic.accepted.size;
        await until(`round ${round}: 300 more events accepted`, () => traffic.accepted.size >= base + 300, 90_000);
        const before = svc.processor.status().applied;
        await until(`round ${round}: events applied`, () => svc.processor.status().applied > before, 60_000);

        const killedAt = Date.now();
        process.kill(broker.pid, 'SIGKILL');
        await until('the broker gone', () => !isAlive(broker.pid), 10_000);
        // While it is down: Kafka unreachable, not ready; the lag unknown, not 0.
        await until(`round ${round}: /ready 503 with Kafka unreachable`, () => probes.some((p) => p.at > killedAt && p.ready === 503 && p.reachable === false), 30_000);
        await new Promise((r) => setTimeout(r, 4000));
        const previous = broker;
        broker = await startBroker(previous.port, previous.controllerPort);
        expect(broker.port).toBe(previous.port);
        const restartedAt = Date.now();
        await until(
          `round ${round}: the processor running again`,
          () => {
            const s = svc.processor.status();
            return s.state === 'running' && s.kafka.reachable === true && s.partitions.length > 0 && s.partitions.every((p) => p.restored);
          },
          120_000,
        );
        const backAt = Date.now();
        rounds.push({ killedAt, restartedAt, backAt, acceptedBefore: base });
        console.log(`round ${round}: broker down ${restartedAt - killedAt} ms, processor running ${backAt - restartedAt} ms after the restart; ${traffic.accepted.size} accepted so far, statuses ${JSON.stringify([...traffic.statuses])}`);
      }
      // Traffic goes on after the last restart, and is accepted again.
      const last = traffic.accepted.size;
      await until('events accepted after the last restart', () => traffic.accepted.size >= last + 300, 90_000);
    } catch (err) {
      console.log(logTail());
      throw err;
    } finally {
      await traffic.stop();
    }

    // Everything in the topic applied: the broker's high watermarks, read now that no request is in
    // flight, reached by the processor's stored offsets. The status's `lag` alone is not enough: it
    // is measured against a watermark read up to 3 x processor.lagRefreshMs ago (or the last
    // fetch's), so it can say 0 on every partition while the last requests' records wait to be
    // applied (right after a 202 it did so about 3 times in 10 here), and those were then counted as lost.
    const highWatermarks = await (async () => {
      const admin = createKafka(config, [broker.brokers], '-restart-hw').admin();
      await admin.connect();
      try {
        return new Map((await admin.fetchTopicOffsets(topicName(group, 'interactions'))).map((o) => [o.partition, Number(o.high)]));
      } finally {
        await admin.disconnect();
      }
    })();
    expect(highWatermarks.size).toBeGreaterThan(0);
    await until(
      'the processor caught up with the high watermarks read after the traffic stopped',
      () => {
        const s = svc.processor.status();
        const next = new Map(s.partitions.map((p) => [p.partition, p.nextOffset]));
        return (
          s.state === 'running' &&
          s.kafka.reachable === true &&
          [...highWatermarks].every(([partition, high]) => (next.get(partition) ?? -1) >= high) &&
          s.partitions.every((p) => p.lag === 0)
        );
      },
      120_000,
    ).catch((err: unknown) => {
      console.log(JSON.stringify({ highWatermarks: [...highWatermarks], status: svc.processor.status() }), logTail());
      throw err;
    });
    probing = false;
    await prober;

    const counts = await itemEvents(svc);
    const missing = [...traffic.accepted].filter((id) => counts.get(id) === undefined);
    const twice = [...counts].filter(([, n]) => n !== 1);
    const landedAfterRefusal = [...traffic.refused].filter((id) => counts.has(id)).length;
    const status = svc.processor.status();
    console.log(
      JSON.stringify({
        rounds: rounds.map((r) => ({ downMs: r.restartedAt - r.killedAt, recoverMs: r.backAt - r.restartedAt })),
        accepted: traffic.accepted.size,
        refused: traffic.refused.size,
        landedAfterRefusal,
        applied: counts.size,
        appliedCounter: status.applied,
        consumers: {
          processor: status.consumer,
          metadata: svc.metadata.consumerStatus(),
          versions: svc.versions.consumerStatus(),
          resources: svc.resources.consumerStatus(),
        },
        statuses: [...traffic.statuses],
        probes: probes.length,
        states: [...new Set(probes.map((p) => p.processor))],
      }),
    );
    expect(rounds).toHaveLength(ROUNDS);
    expect(traffic.accepted.size).toBeGreaterThan(ROUNDS * 300);
    // Every 202 applied, exactly once; nothing applied twice.
    if (missing.length > 0) {
      // Where they were lost: never written to the topic (the producer), or written and not applied (the processor).
      const config = loadConfig({ env: { KAFKA_BROKERS: broker.brokers } });
      const reader = createKafka(config, [broker.brokers], '-restart-check');
      const { readTopic } = await import('./helpers.js');
      const { createCodecs } = await import('../../src/serde/avro.js');
      const codecs = createCodecs(config);
      const admin = reader.admin();
      await admin.connect();
      const total = (await admin.fetchTopicOffsets(topicName(group, 'interactions'))).reduce((n, o) => n + Number(o.high), 0);
      await admin.disconnect();
      const inTopic = new Set((await readTopic(reader, topicName(group, 'interactions'), total)).map((m) => codecs.Interaction.decode(m.value!).ITEM_ID));
      console.log(`missing ${missing.length}: ${missing.filter((id) => inTopic.has(id)).length} of them are in the topic (${total} records in it)`);
    }
    expect(missing.slice(0, 20), `${missing.length} accepted events not applied`).toEqual([]);
    expect(twice.slice(0, 20), `${twice.length} items applied more than once`).toEqual([]);
    expect(counts.size).toBe(traffic.accepted.size + landedAfterRefusal);

    // Health: 503 whenever the processor was failed, 200 otherwise; back to 200 and ready at the end.
    for (const p of probes.filter((x) => x.health !== -1 && x.stable)) {
      expect(p.health, `at ${new Date(p.at).toISOString()} the processor was ${p.processor}`).toBe(p.processor === 'failed' ? 503 : 200);
    }
    // Each outage was seen as one: /ready 503 with Kafka unreachable.
    for (const r of rounds) expect(probes.some((p) => p.at > r.killedAt && p.at < r.restartedAt && p.ready === 503 && p.reachable === false)).toBe(true);
    // The lag is never reported while its watermark cannot be read (absent, not 0).
    expect(probes.flatMap((p) => p.lagWhileUnreachable)).toEqual([]);
    const final = await probe(svc);
    expect(final.health).toBe(200);
    expect(final.ready).toBe(200);
    expect(status.state).toBe('running');
  }, 420_000);
});
