/**
 * The container image (deploy/docker/Dockerfile), run as processes: there is no Docker engine where
 * the tests run, so the Dockerfile is read and what it would do is done here, from the same lines.
 * - The build stage: its COPY sources are copied from the repository into a scratch folder at the
 *   same paths, and its RUN lines (deploy/docker/install.sh deps, build, runtime) are run there, with
 *   the stage's /src and the runtime's /app mapped to scratch folders.
 * - The runtime stage: its ENV, its ENTRYPOINT + CMD and its HEALTHCHECK's exec form, run as they
 *   are, against the suite's broker (KAFKA_BROKERS: the image never starts a local one), with `java`
 *   and `mvn` taken off PATH, the root key from a file (as compose's secret gives it), and the compose
 *   file's one-shots before it: `topics create` and the demo data.
 * Then: the healthcheck passes, a query answers from the demo data, SIGTERM ends it with code 0.
 * npm runs with prefer-offline (the local npm cache); the image's build has an empty cache instead.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshGroup, TEST_ROOT_KEY, until } from './helpers.js';

const REPO = resolve(import.meta.dirname, '../..');
const DOCKERFILE = join(REPO, 'deploy/docker/Dockerfile');

interface Stage {
  name: string | undefined;
  instructions: { op: string; args: string }[];
}

/** The Dockerfile's stages: instructions with line continuations joined, comments dropped. */
function dockerfileStages(): Stage[] {
  const lines: string[] = [];
  let buf = '';
  for (const raw of readFileSync(DOCKERFILE, 'utf8').split('\n')) {
    if (buf === '' && (raw.trim() === '' || raw.trimStart().startsWith('#'))) continue;
    if (raw.trimEnd().endsWith('\\')) {
      buf += `${raw.trimEnd().slice(0, -1)} `;
      continue;
    }
    lines.push((buf + raw).trim());
    buf = '';
  }
  const stages: Stage[] = [];
  for (const line of lines) {
    const op = line.split(/\s+/, 1)[0]!.toUpperCase();
    const args = line.slice(op.length).trim();
    if (op === 'FROM') stages.push({ name: /\sAS\s+(\S+)/i.exec(line)?.[1], instructions: [] });
    else if (stages.length > 0) stages.at(-1)!.instructions.push({ op, args });
  }
  return stages;
}

/** The exec form (a JSON array) of an instruction's arguments, after any `--flag=value` options and `CMD`. */
const execForm = (args: string): string[] => JSON.parse(args.slice(args.indexOf('['))) as string[];

/** `KEY=value` pairs of an ENV instruction (values without spaces or quotes, as the Dockerfile has them). */
const envPairs = (args: string): [string, string][] => args.split(/\s+/).map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]);

/** A free TCP port on 127.0.0.1 (the healthcheck reads the port from STREAMREC_API_PORT, so 0 will not do). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** A PATH of links to every program on this PATH except Java's and Maven's: the image has neither. */
function pathWithoutJava(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (/^(java|javac|jar|jshell|keytool|mvn|mvnw)$/.test(name) || existsSync(join(dir, name))) continue;
      try {
        if (statSync(join(d, name)).isFile()) symlinkSync(join(d, name), join(dir, name));
      } catch {
        // a dangling link or an unreadable entry: not a program this test needs
      }
    }
  }
  return dir;
}

function run(cmd: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): { code: number | null; out: string } {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd: opts.cwd, env: opts.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 300_000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

describe('the container image, its commands run as processes', () => {
  const stages = dockerfileStages();
  const build = stages.find((s) => s.name === 'build')!;
  const runtime = stages.at(-1)!;
  const scratch = mkdtempSync(join(tmpdir(), 'streamrec-image-'));
  const src = join(scratch, 'src');
  const app = join(scratch, 'app');
  /** The image's absolute paths, in this scratch folder. */
  const mapPaths = (s: string): string => s.replace(/(^|[\s"'=])\/src(?=$|[\s/"'])/g, `$1${src}`).replace(/(^|[\s"'=])\/app(?=$|[\s/"'])/g, `$1${app}`);
  const npmEnv = { ...process.env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' };
  const buildLog: string[] = [];

  beforeAll(() => {
    // The build stage, instruction by instruction.
    let cwd = scratch;
    for (const { op, args } of build.instructions) {
      if (op === 'WORKDIR') {
        cwd = mapPaths(args);
        mkdirSync(cwd, { recursive: true });
      } else if (op === 'COPY') {
        const parts = args.split(/\s+/).filter((p) => !p.startsWith('--'));
        const dest = resolve(cwd, parts.at(-1)!);
        for (const from of parts.slice(0, -1)) {
          const to = parts.at(-1)!.endsWith('/') ? join(dest, basename(from)) : dest;
          mkdirSync(dirname(to), { recursive: true });
          cpSync(join(REPO, from), to, { recursive: true });
        }
      } else if (op === 'RUN') {
        const command = mapPaths(args.replace(/--mount=\S+\s*/g, ''));
        const r = run(['sh', '-c', command], { cwd, env: npmEnv });
        buildLog.push(`$ ${command}\n${r.out}`);
        if (r.code !== 0) throw new Error(`RUN ${command} failed (${r.code}):\n${r.out}`);
      }
    }
  }, 900_000);

  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it('the build stage leaves a runtime folder with production dependencies only, its own platform binary, and no Java parts', () => {
    expect(existsSync(join(app, 'dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(app, 'src'))).toBe(false);
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devDeps = Object.keys((JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies);
    // Dev-only packages (not also needed by a production dependency, as @types/node is by tfjs).
    const devOnly = devDeps.filter((d) => lock.packages[`node_modules/${d}`]?.dev === true);
    expect(devOnly).toEqual(expect.arrayContaining(['typescript', 'vitest', 'vite', 'dependency-cruiser']));
    expect(devOnly.filter((d) => existsSync(join(app, 'node_modules', d)))).toEqual([]);
    expect(existsSync(join(app, 'node_modules/@tensorflow/tfjs-node'))).toBe(false);
    expect(readdirSync(join(app, 'node_modules/rocksdb-native/prebuilds'))).toEqual([`${process.platform}-${process.arch}`]);
    // The local broker's Maven pom does not ship: nothing in the image can start a broker.
    expect(existsSync(join(app, 'deploy/kafka'))).toBe(false);
    expect(buildLog.join('\n')).toMatch(/check: rocksdb-native \S+ loads and works/);
  });

  it('runs as the image does: the compose one-shots, then start with KAFKA_BROKERS; healthy, answers, exits 0 on SIGTERM', async () => {
    const brokers = inject('kafkaBrokers');
    const group = freshGroup('image');
    const port = await freePort();
    const keyFile = join(scratch, 'root-key');
    writeFileSync(keyFile, `${TEST_ROOT_KEY}\n`, { mode: 0o600 });
    const imageEnv = Object.fromEntries(runtime.instructions.filter((i) => i.op === 'ENV').flatMap((i) => envPairs(i.args)));
    expect(imageEnv.STREAMREC_API_HOST).toBe('0.0.0.0');
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STREAMREC_') && k !== 'JAVA_HOME' && k !== 'MAVEN_CMD' && k !== 'KAFKA_BROKERS')),
      ...imageEnv,
      PATH: pathWithoutJava(join(scratch, 'bin')),
      // As compose.yaml sets them; the port and folders are this test's.
      KAFKA_BROKERS: brokers,
      STREAMREC_GROUP: group,
      STREAMREC_API_ROOT_KEY_FILE: keyFile,
      STREAMREC_API_PORT: String(port),
      STREAMREC_STATE_DIR: join(scratch, 'state'),
      STREAMREC_DEMO_DATA_DIR: join(scratch, 'demo-data'),
      STREAMREC_INSTANCE_ID: 'image-test',
      STREAMREC_PROCESSOR_SESSION_TIMEOUT_MS: '6000',
      STREAMREC_TRAINING_RECIPE: 'none',
      STREAMREC_LOG_LEVEL: 'warn',
    };
    expect(run(['sh', '-c', 'command -v java || command -v mvn || echo none'], { cwd: scratch, env }).out.trim()).toBe('none');
    const workdir = mapPaths(runtime.instructions.filter((i) => i.op === 'WORKDIR').at(-1)!.args);
    const entrypoint = execForm(runtime.instructions.find((i) => i.op === 'ENTRYPOINT')!.args).map(mapPaths);
    const cmd = execForm(runtime.instructions.find((i) => i.op === 'CMD')!.args);
    const healthcheck = execForm(runtime.instructions.find((i) => i.op === 'HEALTHCHECK')!.args);
    expect(cmd).toEqual(['start']);
    expect(healthcheck.join(' ')).toContain('/ready');

    // Without KAFKA_BROKERS the entrypoint refuses `start` at once (it would need Java for a local broker).
    const noKafka = run([...entrypoint, ...cmd], { cwd: workdir, env: { ...env, KAFKA_BROKERS: '' }, timeoutMs: 30_000 });
    expect(noKafka.code).toBe(1);
    expect(noKafka.out).toContain('KAFKA_BROKERS is not set');

    // Nothing listens yet: the healthcheck fails (it can fail).
    expect(run(healthcheck, { cwd: workdir, env }).code).not.toBe(0);

    // compose.yaml's one-shots: `topics` (the entrypoint with its command) and `demo-data` (its own entrypoint).
    const compose = readFileSync(join(REPO, 'deploy/docker/compose.yaml'), 'utf8');
    const topicsCommand = JSON.parse(/\n {2}topics:\n(?: {4}.*\n)*? {4}command: (\[.*\])/.exec(compose)![1]!.replace('"demo"', JSON.stringify(group))) as string[];
    const topics = run([...entrypoint, ...topicsCommand], { cwd: workdir, env, timeoutMs: 120_000 });
    expect(topics.code, topics.out).toBe(0);
    expect(topics.out).toContain(`${group}.interactions`);
    const demoEntrypoint = (JSON.parse(/\n {2}demo-data:\n(?: {4}.*\n)*? {4}entrypoint: (\[.*\])/.exec(compose)![1]!) as string[]).map(mapPaths);
    const demo = run(demoEntrypoint, { cwd: workdir, env, timeoutMs: 180_000 });
    expect(demo.code, demo.out).toBe(0);
    expect(demo.out).toMatch(/items: 1000 imported/);
    expect(demo.out).toMatch(/interactions: 10000 imported/);
    // Once: a second run (a second `compose up`) imports nothing.
    const again = run(demoEntrypoint, { cwd: workdir, env, timeoutMs: 60_000 });
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain('already imported');

    // The service, as the container starts it.
    const child: ChildProcess = spawn(entrypoint[0]!, [...entrypoint.slice(1), ...cmd], { cwd: workdir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await until('the HEALTHCHECK command passes', () => run(healthcheck, { cwd: workdir, env, timeoutMs: 10_000 }).code === 0, 120_000).catch((err: Error) => {
        throw new Error(`${err.message}; output:\n${out}`);
      });
      expect(out).toContain(`kafka: using the cluster at ${brokers} (KAFKA_BROKERS)`);
      expect(out).not.toMatch(/root API key (generated|read)/); // the key came from the file
      // Listening on every interface (api.host 0.0.0.0), not only loopback: reachable through this
      // machine's other address, as a container's API is through its network's.
      const outside = Object.values(networkInterfaces()).flat().find((a) => a?.family === 'IPv4' && !a.internal)?.address;
      if (outside) expect((await fetch(`http://${outside}:${port}/health`)).status).toBe(200);
      const base = `http://127.0.0.1:${port}/v1/groups/${group}`;
      expect((await fetch(`${base}/popular?numResults=5`)).status).toBe(401);
      let items: { itemId: string }[] = [];
      await until(
        'popular items from the demo data',
        async () => {
          const r = await fetch(`${base}/popular?numResults=5`, { headers: { 'x-api-key': TEST_ROOT_KEY } });
          items = r.status === 200 ? ((await r.json()) as { itemList: { itemId: string }[] }).itemList : [];
          return items.length === 5;
        },
        90_000,
      );
      expect(items.every((i) => /^i\d+$/.test(i.itemId))).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, out).toBe(0);
  }, 420_000);
});
