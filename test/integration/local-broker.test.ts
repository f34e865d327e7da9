/**
 * The local broker's lifecycle through the CLI, on a data folder of its own (not the suite's broker):
 * `streamrec start` brings Kafka up and creates the default group's topics; a killed parent leaves
 * no broker behind that could block the next start.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { brokerPids, freePort, readState } from '../../src/kafka/local-broker.js';
import { isAlive, waitUntil } from '../../src/util/process.js';
import { runCli, startCli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'streamrec-broker-test-'));
// No KAFKA_BROKERS: the CLI must use (and start) the local broker of `dir`.
const env = { KAFKA_BROKERS: '', STREAMREC_KAFKA_DIR: dir, STREAMREC_KAFKA_STOP_GRACE_MS: '10000' };

afterAll(async () => {
  await runCli(['kafka', 'stop'], env);
  expect(brokerPids(dir)).toEqual([]);
});

describe('local Kafka broker', () => {
  it('recovers after its parent is killed: the stale broker is found and stopped, the port is free again', async () => {
    const port = await freePort();
    // `streamrec start` in a process group of its own, so the whole group (the CLI and the
    // broker's watchdog) can be SIGKILLed, as an OOM killer or a CI timeout would.
    // The API on a free port too: the default 8080 may be taken on a shared machine (EADDRINUSE).
    const { child, output } = await startCli(['start'], { ...env, STREAMREC_KAFKA_PORT: String(port), STREAMREC_API_PORT: String(await freePort()) }, 'running;', { detached: true });
    expect(output()).toMatch(/kafka: started a local Kafka 3\.9\.1 broker \(KRaft\) at 127\.0\.0\.1:\d+/);
    expect(output()).toMatch(/created\s+demo\.interactions\s+3 partition/);
    // The embedded default puts sample data into the empty topic (the quickstart's demo).
    expect(output()).toMatch(/sample data: 10000 synthetic events .* into demo\.interactions/);
    expect(output()).toMatch(/sample data: streaming 10 synthetic events\/s into demo\.interactions/);
    expect(output()).toContain(`KAFKA_BROKERS=127.0.0.1:${port}`);
    const orphan = readState(dir)!.pid;
    expect(brokerPids(dir)).toEqual([orphan]);

    process.kill(-child.pid!, 'SIGKILL');
    await waitUntil(() => !isAlive(child.pid!), 5000);
    expect(isAlive(orphan), 'the broker outlives its killed parent').toBe(true);
    const status = await runCli(['kafka', 'status'], env);
    expect(status.code).toBe(0); // still running and reachable: the owner is dead, the broker is not

    const next = await runCli(['kafka', 'start', '--port', String(port)], env);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toContain(`stopped stale broker(s) left by an earlier run: pid ${orphan}`);
    expect(next.stdout.trim().split('\n').at(-1)).toBe(`KAFKA_BROKERS=127.0.0.1:${port}`);
    expect(isAlive(orphan)).toBe(false);
    const fresh = readState(dir)!.pid;
    expect(fresh).not.toBe(orphan);
    expect(brokerPids(dir)).toEqual([fresh]);

    const again = await runCli(['kafka', 'start'], env);
    expect(again.stdout).toContain(`already running: pid ${fresh}`);
    expect(again.stdout.trim().split('\n').at(-1)).toBe(`KAFKA_BROKERS=127.0.0.1:${port}`);

    const stop = await runCli(['kafka', 'stop'], env);
    expect(stop.stdout).toMatch(new RegExp(`stopped pid ${fresh} \\((terminated|killed)\\)`));
    expect(brokerPids(dir)).toEqual([]);
    expect((await runCli(['kafka', 'status'], env)).code).toBe(3);
  });

  it("stops the broker it owns when only the parent is killed (the watchdog), and on SIGTERM", async () => {
    const api = { ...env, STREAMREC_API_PORT: String(await freePort()) };
    const first = await startCli(['start', '--group', 'wd'], api, 'running;', { detached: true });
    const broker = readState(dir)!.pid;
    expect(isAlive(broker)).toBe(true);
    process.kill(first.child.pid!, 'SIGKILL'); // the CLI only; its watchdog lives on
    expect(await waitUntil(() => !isAlive(broker), 30_000, 250), 'the watchdog stops the orphan').toBe(true);

    const second = await startCli(['start', '--group', 'wd'], { ...env, STREAMREC_API_PORT: String(await freePort()) }, 'running;', { detached: true });
    expect(second.output()).toMatch(/unchanged\s+wd\.interactions/); // topics survived the restart
    const broker2 = readState(dir)!.pid;
    const exited = new Promise<number | null>((resolve) => second.child.once('exit', resolve));
    second.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(second.output()).toMatch(new RegExp(`kafka: stopped pid ${broker2}`));
    expect(isAlive(broker2)).toBe(false);
    expect(brokerPids(dir)).toEqual([]);
  });
});
