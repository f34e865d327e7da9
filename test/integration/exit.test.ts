/**
 * Issue 11, part 5: `streamrec start` always ends.
 * (a) A second instance on the same state folder fails at start-up (RocksDB's LOCK, after its
 *     Kafka clients connected) and exits non-zero with STATE_LOCKED's message, instead of hanging;
 *     the first one is unaffected and still stops cleanly.
 * (b) SIGTERM after the broker was killed: the process exits within shutdown.graceMs.
 * (c) SIGTERM while start-up hangs on a Kafka that never answers: the process exits at the grace.
 * (d) A second SIGTERM while stopping ends the process at once.
 * The built CLI (dist/), real RocksDB. (a) uses the suite's broker (nothing is killed); (b) a
 * PRIVATE broker, killed with SIGKILL; (c) and (d) a local socket that accepts and never answers.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { localKafkaOptions, startLocalKafka, stopLocalKafka, type StartResult } from '../../src/kafka/local-broker.js';
import { isAlive } from '../../src/util/process.js';
import { freshGroup, runCli, serviceEnv, startCli, stopChild, until } from './helpers.js';

const GRACE_MS = 8000;

/** A broker of its own, in a fresh folder under .streamrec/ (absolute: the JVM runs in it). */
async function privateBroker(): Promise<{ broker: StartResult; dataDir: string; stop: () => Promise<void> }> {
  const dataDir = resolve(`.streamrec/test-kafka-exit-${randomBytes(4).toString('hex')}`);
  const broker = await startLocalKafka({ ...localKafkaOptions(loadConfig({ env: {} }), 'owned'), dataDir, startTimeoutMs: 180_000 });
  return {
    broker,
    dataDir,
    stop: async () => {
      await stopLocalKafka(dataDir, 5000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const exitOf = (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> =>
  new Promise((r) => child.once('exit', (code, signal) => r({ code, signal, at: Date.now() })));

/** The API's URL, from the line `api: listening on http://...`. */
const apiUrl = (output: string): string => /api: listening on (http:\/\/\S+)/.exec(output)![1]!;

/** A `streamrec start` on a private broker, running with its partitions restored; then the broker is SIGKILLed and the outage seen. */
async function startThenKillBroker(group: string, stateDir: string, broker: StartResult): Promise<{ child: ChildProcess; output: () => string; exited: ReturnType<typeof exitOf> }> {
  const env = serviceEnv(broker.brokers, stateDir, { STREAMREC_SHUTDOWN_GRACE_MS: String(GRACE_MS), STREAMREC_PROCESSOR_LAG_REFRESH_MS: '500', STREAMREC_LOG_LEVEL: 'info' });
  const { child, output } = await startCli(['start', '--group', group], env, 'running;');
  const exited = exitOf(child);
  const url = apiUrl(output());
  await until('the service ready', async () => (await fetch(`${url}/ready`)).status === 200, 90_000);
  process.kill(broker.pid, 'SIGKILL');
  await until('the broker gone', () => !isAlive(broker.pid), 10_000);
  // The service noticed: Kafka unreachable (the processor's consumer may be restarting meanwhile).
  await until(
    'the outage seen by the service',
    async () => {
      const r = await fetch(`${url}/ready`);
      const body = (await r.json()) as { detail?: { kafka?: { reachable?: boolean } } };
      return r.status === 503 && body.detail?.kafka?.reachable === false;
    },
    60_000,
  );
  // Let the consumers crash and start their restarts (what used to keep the process alive).
  await new Promise((r) => setTimeout(r, 3000));
  return { child, output, exited };
}

describe('streamrec start always ends', () => {
  it('(a) a second instance on the same state folder exits non-zero at start-up with STATE_LOCKED', async () => {
    const brokers = inject('kafkaBrokers');
    const group = freshGroup('exit-lock');
    const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-exit-lock-'));
    try {
      const env = serviceEnv(brokers, stateDir);
      const first = await startCli(['start', '--group', group], env, 'running;');
      const firstExit = exitOf(first.child);
      try {
        const t0 = Date.now();
        // runCli fails the test if the second one is still running after 90 s.
        const second = await runCli(['start', '--group', group], env, 90_000);
        const ms = Date.now() - t0;
        console.log(`second instance exited ${second.code} after ${ms} ms: ${second.stderr.trim().split('\n').slice(0, 2).join(' | ')}`);
        expect(second.code).toBe(1);
        expect(second.stderr).toContain('streamrec: error STATE_LOCKED:');
        expect(second.stderr).toContain(`state folder ${join(stateDir, group, 'meta')} is in use by another instance`);
        expect(second.stderr).toContain('fix: Another streamrec instance');
        // The first is unaffected: still running, and it stops in order.
        expect(isAlive(first.child.pid!)).toBe(true);
      } finally {
        if (isAlive(first.child.pid!)) await stopChild(first.child);
      }
      expect((await firstExit).code).toBe(0);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 240_000);

  it(`(b) SIGTERM after the broker was killed: the process exits within shutdown.graceMs (${GRACE_MS} ms)`, async () => {
    const { broker, stop } = await privateBroker();
    const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-exit-term-'));
    try {
      const { child, output, exited } = await startThenKillBroker(freshGroup('exit-term'), stateDir, broker);
      const t0 = Date.now();
      child.kill('SIGTERM');
      // Bounded here too, so that a hang fails the test rather than the suite.
      const killer = setTimeout(() => child.kill('SIGKILL'), GRACE_MS + 30_000);
      const { code, signal, at } = await exited;
      clearTimeout(killer);
      const ms = at - t0;
      const forced = output().includes('(shutdown.graceMs): exiting now');
      console.log(`exited ${code ?? signal} ${ms} ms after SIGTERM (${forced ? 'forced at the grace' : 'stopped in order'})`);
      expect(signal).toBeNull(); // not our SIGKILL
      // The grace, plus the time a loaded machine takes to schedule the exit.
      expect(ms).toBeLessThan(GRACE_MS + 5000);
      expect(code).toBe(forced ? 1 : 0);
      expect(output()).toContain('SIGTERM received, stopping');
    } finally {
      await stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 300_000);

  /**
   * A "broker" that accepts connections and never answers: start-up hangs in its first Kafka
   * request (kafkajs waits, then retries), the case where stopping in order cannot finish.
   */
  async function withBlackHole(fn: (brokers: string) => Promise<void>): Promise<void> {
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      await fn(`127.0.0.1:${(server.address() as AddressInfo).port}`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }

  it(`(c) SIGTERM while start-up hangs on Kafka: the process exits at shutdown.graceMs (${GRACE_MS} ms), code 1`, async () => {
    await withBlackHole(async (brokers) => {
      const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-exit-hang-'));
      try {
        const env = serviceEnv(brokers, stateDir, { STREAMREC_SHUTDOWN_GRACE_MS: String(GRACE_MS) });
        const { child, output } = await startCli(['start', '--group', freshGroup('exit-hang')], env, 'kafka: using the cluster at');
        const exited = exitOf(child);
        await new Promise((r) => setTimeout(r, 1000));
        const t0 = Date.now();
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), GRACE_MS + 30_000);
        const { code, signal, at } = await exited;
        clearTimeout(killer);
        console.log(`exited ${code ?? signal} ${at - t0} ms after SIGTERM during a hanging start-up`);
        expect(signal).toBeNull();
        expect(code).toBe(1);
        expect(output()).toContain(`still stopping ${GRACE_MS} ms after SIGTERM (shutdown.graceMs): exiting now`);
        expect(at - t0).toBeGreaterThanOrEqual(GRACE_MS - 100);
        expect(at - t0).toBeLessThan(GRACE_MS + 5000);
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    });
  }, 120_000);

  it('(d) a second SIGTERM while stopping ends the process at once', async () => {
    await withBlackHole(async (brokers) => {
      const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-exit-twice-'));
      try {
        // A long grace: only the second signal can end it soon.
        const env = serviceEnv(brokers, stateDir, { STREAMREC_SHUTDOWN_GRACE_MS: '60000' });
        const { child, output } = await startCli(['start', '--group', freshGroup('exit-twice')], env, 'kafka: using the cluster at');
        const exited = exitOf(child);
        child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 1500));
        expect(isAlive(child.pid!)).toBe(true); // still waiting for start-up, then to stop in order
        const t0 = Date.now();
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        const { code, signal, at } = await exited;
        clearTimeout(killer);
        console.log(`exited ${code ?? signal} ${at - t0} ms after the second SIGTERM`);
        expect(signal).toBeNull();
        expect(code).toBe(1);
        expect(output()).toContain('SIGTERM again while stopping: exiting now');
        expect(at - t0).toBeLessThan(5000);
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    });
  }, 120_000);
});
