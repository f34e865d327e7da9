/**
 * The OpenAPI document against the server, by a client this project did not write: schemathesis
 * (PyPI, pinned in test/tools/install.sh) runs every operation of GET /openapi.json of the real
 * service (`streamrec start`, real broker) with positive and negative data and every check, with a
 * fixed seed and a bounded number of examples (test/integration/schemathesis.toml), the path's
 * {group} fixed to a group with sample data and a served model version. Passes only with 0 server
 * errors and 0 answers that do not match the document.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions, syntheticItems } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { TEST_ROOT_KEY, freshGroup, rootHeaders, serviceEnv, startCli, stopChild, until } from './helpers.js';

const SCHEMATHESIS = fileURLToPath(new URL('../tools/.venv/bin/schemathesis', import.meta.url));
const CONFIG = fileURLToPath(new URL('./schemathesis.toml', import.meta.url));

const brokers = inject('kafkaBrokers');
const group = freshGroup('st');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-st-'));
const env = serviceEnv(brokers, join(dir, 'state'), {
  // A model in seconds: queries answer 200 with lists, not 503 NO_MODEL_VERSION.
  STREAMREC_TRAINING_RECIPE: 'popularity-count',
  STREAMREC_TRAINING_VERSIONS_DIR: join(dir, 'versions'),
  // One client sends every request from one address: its 401s (the ignored_auth check) must not
  // turn into 429s. The limiter has its own tests (api-hardening).
  STREAMREC_API_UNAUTHENTICATED_PER_MINUTE: '0',
});
let service: ChildProcess | undefined;
let url = '';
let groupsBefore: string[] = [];
let version = '';

const listGroups = async (): Promise<string[]> =>
  ((await (await fetch(`${url}/v1/groups`, { headers: rootHeaders() })).json()) as { groups: { name: string }[] }).groups.map((g) => g.name);

function run(command: string, args: string[], extraEnv: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // In the test's folder: schemathesis keeps a cache (.schemathesis/) in its working directory.
    const child = spawn(command, args, { cwd: dir, env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} timed out after ${timeoutMs} ms; output:\n${out}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

beforeAll(async () => {
  const config = loadConfig({ env });
  const kafka = createKafka(config, [brokers], '-schemathesis-test');
  const codecs = createCodecs(config);
  const admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  await admin.disconnect();
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const now = Date.now();
  await producer.send({ topic: topicName(group, 'items'), messages: [...syntheticItems({ seed: 7, items: 200 })].map((i) => ({ key: i.ITEM_ID, value: codecs.Item.encode(i) })) });
  const events = [...syntheticInteractions({ seed: 7, users: 100, items: 200, events: 3000, start: now - 3_000_000 })];
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  await producer.disconnect();

  const started = await startCli(['start', '--group', group], env, 'KAFKA_BROKERS=');
  service = started.child;
  url = /api: listening on (http:\/\/\S+)/.exec(started.output())![1]!;
  // A version served: a known user's recommendations answer 200.
  await until(
    'a model version served',
    async () => (await fetch(`${url}/v1/groups/${group}/recommendations?userId=u1`, { headers: rootHeaders() })).status === 200,
    180_000,
  );
  groupsBefore = await listGroups();
  // A version id for the operations on one solution version (schemathesis.toml).
  const versions = (await (await fetch(`${url}/v1/groups/${group}/solutions/default/versions`, { headers: rootHeaders() })).json()) as { versions: { version: string }[] };
  version = versions.versions[0]!.version;
}, 300_000);

afterAll(async () => {
  // CreateDatasetGroup with generated names makes groups (their topics): delete them through the API.
  if (url !== '') {
    for (const name of (await listGroups().catch(() => [])).filter((g) => !groupsBefore.includes(g))) {
      await fetch(`${url}/v1/groups/${name}`, { method: 'DELETE', headers: rootHeaders() }).catch(() => undefined);
    }
  }
  if (service) await stopChild(service);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('schemathesis against the running service', () => {
  it('finds no server error and no answer that does not match the OpenAPI document', async () => {
    expect(existsSync(SCHEMATHESIS), `${SCHEMATHESIS} is installed by test/tools/install.sh (npm test runs it first)`).toBe(true);
    const t0 = Date.now();
    const { code, out } = await run(
      SCHEMATHESIS,
      [
        '--config-file',
        CONFIG,
        'run',
        `${url}/openapi.json`,
        '--mode',
        'all',
        '--checks',
        'all',
        '-H',
        `x-api-key:${TEST_ROOT_KEY}`,
        '--no-color',
      ],
      { STREAMREC_SCHEMATHESIS_GROUP: group, STREAMREC_SCHEMATHESIS_VERSION: version },
      600_000,
    );
    const seconds = Math.round((Date.now() - t0) / 1000);
    // The failures (if any), the warnings and the summary: printed whole when a check below fails.
    const report = out.slice(Math.max(0, out.search(/=+ (FAILURES|WARNINGS|SUMMARY) =+/)));
    try {
      // The summary: every operation tested, hundreds of cases, no failure of any check (server errors included).
      const summary = out.slice(out.lastIndexOf('SUMMARY'));
      expect(Number(/Tested:\s+(\d+)/.exec(summary)?.[1]), 'operations tested').toBeGreaterThanOrEqual(30);
      const cases = /Test cases:\s+(\d+) generated, (\d+) passed/.exec(summary);
      expect(cases, `the summary's test cases line:\n${summary}`).not.toBeNull();
      expect(Number(cases![1])).toBeGreaterThan(300);
      expect(Number(cases![2])).toBeGreaterThan(300);
      expect(summary).not.toMatch(/Failures:|Errors:|server error/i);
      const last = /=+ (.* in [\d.]+s) =+\s*$/.exec(summary);
      expect(last, 'the last line').not.toBeNull();
      expect(last![1]).not.toMatch(/fail|error/i);
      expect(code).toBe(0);
      console.log(`schemathesis ran in ${seconds} s: ${cases![0].replace(/\s+/g, ' ')}; ${last![1]}`);
    } catch (err) {
      console.log(`schemathesis ran in ${seconds} s:\n${report.slice(0, 40_000)}`);
      throw err;
    }
  }, 900_000);
});
