import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import type { Admin, KafkaClient, KafkaMessage, Producer } from '../../src/kafka/kafkajs.js';
import { interaction, type Interaction } from '../../src/serde/avro.js';

export const CLI = fileURLToPath(new URL('../../bin/streamrec.js', import.meta.url));

/** A fresh dataset group name per test, so topics and consumer groups never collide. */
export const freshGroup = (prefix: string): string => `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `streamrec` CLI (dist/, made by `npm test` before the suites) to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`streamrec ${args.join(' ')} timed out; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts the CLI and resolves once stdout contains `marker`; the process keeps running. */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  marker: string,
  options: { detached?: boolean; timeoutMs?: number } = {},
): Promise<{ child: ChildProcess; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    });
    let out = '';
    const output = () => out;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`streamrec ${args.join(' ')} never printed ${marker}; output:\n${out}`));
    }, options.timeoutMs ?? 180_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes(marker)) {
        clearTimeout(timer);
        resolve({ child, output });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!out.includes(marker)) reject(new Error(`streamrec ${args.join(' ')} exited (${code}) before ${marker}; output:\n${out}`));
    });
  });
}


/** Waits until the group's processor has committed the end offset of every interactions partition. */
export async function waitCaughtUp(admin: Admin, group: string, timeoutMs = 120_000): Promise<void> {
  const topic = `${group}.interactions`;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId: `streamrec.${group}.processor`, topics: [topic] });
    const byPartition = new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    const behind = ends.filter((e) => Number(e.high) > 0 && (byPartition.get(e.partition) ?? -1) < Number(e.high));
    if (behind.length === 0) return;
    last = JSON.stringify({ ends, committed: [...byPartition] });
    if (Date.now() > deadline) throw new Error(`processor of ${group} did not catch up: ${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Reads every committed record of a topic (all partitions) until `count` have arrived. */
export async function readTopic(kafka: KafkaClient, topic: string, count: number, timeoutMs = 60_000): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer({ groupId: freshGroup('reader'), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const out: KafkaMessage[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${out.length} of ${count} records from ${topic}`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ message }) => {
          out.push(message);
          if (out.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    // Anything beyond `count` would be a duplicate: give it a moment to show up.
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** The environment of a `streamrec start` child in these tests: quick group timeouts, API on a free port. */
/** The root API key the tests' services run with (api.rootKey). */
export const TEST_ROOT_KEY = 'test-root-key-0123456789';

/** Request headers with the root key. */
export const rootHeaders = (headers: Record<string, string> = {}): Record<string, string> => ({ ...headers, 'x-api-key': TEST_ROOT_KEY });

export function serviceEnv(brokers: string, stateDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    STREAMREC_API_ROOT_KEY: TEST_ROOT_KEY,
    KAFKA_BROKERS: brokers,
    STREAMREC_STATE_DIR: stateDir,
    STREAMREC_API_PORT: '0',
    STREAMREC_PROCESSOR_SESSION_TIMEOUT_MS: '6000',
    STREAMREC_PROCESSOR_REBALANCE_TIMEOUT_MS: '10000',
    STREAMREC_LOG_LEVEL: 'warn',
    // These runs compare state digests across runs and restarts: no model version may be trained
    // and served at a different moment in each (HRNN in the service: hrnn-stream.test.ts).
    STREAMREC_TRAINING_RECIPE: 'none',
    ...extra,
  };
}

/** The API's base URL of a `streamrec start` child, from its line `api: listening on http://...`. */
export function apiUrl(output: string): string {
  const m = /api: listening on (http:\/\/\S+)/.exec(output);
  if (!m) throw new Error(`no "api: listening on" line in the output:\n${output}`);
  return m[1]!;
}

/** SIGTERM, and wait for the exit. */
export async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export interface Digest {
  digest: string;
  keys: number;
  partitions: { partition: number; keys: number; digest: string }[];
}

/** `streamrec state digest` of a group's stores under `stateDir` (the service must be stopped). */
export async function stateDigest(group: string, env: NodeJS.ProcessEnv): Promise<Digest> {
  const out = await runCli(['state', 'digest', '--group', group, '--json'], env);
  if (out.code !== 0) throw new Error(`state digest failed: ${out.stderr}`);
  return JSON.parse(out.stdout) as Digest;
}

/** Polls `check` every 100 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * An admin client and an idempotent producer (as the product's are: a retry after NOT_LEADER right
 * after topic creation must not write twice) for one test file: connected before its tests,
 * disconnected after them.
 */
export function kafkaClients(kafka: KafkaClient): { admin: Admin; producer: Producer } {
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  beforeAll(async () => {
    await Promise.all([admin.connect(), producer.connect()]);
  });
  afterAll(async () => {
    await Promise.all([admin.disconnect(), producer.disconnect()]);
  });
  return { admin, producer };
}

/** A click of `user` on `item` at `t` (epoch ms; a minute ago by default), the other fields at their defaults. */
export const clickEvent = (user: string, item: string, t = Date.now() - 60_000): Interaction => interaction({ USER_ID: user, ITEM_ID: item, TIMESTAMP: t });
