/**
 * A real, single-node Apache Kafka broker (KRaft) on 127.0.0.1, run from Apache Kafka's own jars
 * fetched once from Maven Central. No Docker. Used when KAFKA_BROKERS is not set.
 *
 * Files under `dataDir`: server.properties, log4j.properties, broker.log, broker.json (pid, ports,
 * owner), start.lock, data/ (the log dirs). A broker is recognised by its command line (kafka.Kafka
 * plus this folder's server.properties), so one left behind by a killed run is found even when
 * broker.json is gone, and is stopped before a new one starts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../errors/index.js';
import type { Config } from '../config/index.js';
import { packagePath } from '../util/paths.js';
import { commandLine, findProcesses, isAlive, terminate, waitUntil } from '../util/process.js';

export type BrokerMode = 'detached' | 'owned';

export interface LocalKafkaOptions {
  dataDir: string;
  cacheDir: string;
  version: string;
  port: number;
  controllerPort: number;
  heapMinMb: number;
  heapMaxMb: number;
  startTimeoutMs: number;
  stopGraceMs: number;
  /**
   * detached: the broker outlives this process (`streamrec kafka start`).
   * owned: a watchdog stops the broker when `ownerPid` exits (`streamrec start`, the test suite).
   */
  mode: BrokerMode;
  ownerPid?: number;
  log?: (line: string) => void;
}

export interface BrokerState {
  pid: number;
  watchdogPid: number | null;
  mode: BrokerMode;
  ownerPid: number;
  port: number;
  controllerPort: number;
  brokers: string;
  version: string;
  startedAt: string;
  stoppedAt?: string;
}

export interface StartResult extends BrokerState {
  /** An already running broker of this folder was reused. */
  reused: boolean;
  /** Pids of stale brokers (left by a killed run) that were stopped first. */
  cleaned: number[];
  /** The jars were fetched from Maven Central during this start. */
  fetchedJars: boolean;
  /** The log dirs were formatted during this start (first start of this folder). */
  formatted: boolean;
  elapsedMs: number;
}

export function localKafkaOptions(config: Readonly<Config>, mode: BrokerMode, log?: (line: string) => void): LocalKafkaOptions {
  const l = config.kafka.local;
  return { ...l, mode, ownerPid: process.pid, ...(log ? { log } : {}) };
}

const files = (dataDir: string) => ({
  properties: join(dataDir, 'server.properties'),
  log4j: join(dataDir, 'log4j.properties'),
  log: join(dataDir, 'broker.log'),
  state: join(dataDir, 'broker.json'),
  lock: join(dataDir, 'start.lock'),
  data: join(dataDir, 'data'),
});

// ---------------------------------------------------------------- jars

/** The folder holding every jar the broker needs; fetched with Maven on first use, then offline. */
export async function ensureKafkaJars(opts: Pick<LocalKafkaOptions, 'cacheDir' | 'version' | 'log'>): Promise<{ libs: string; fetched: boolean }> {
  const libs = join(opts.cacheDir, `kafka_2.13-${opts.version}`, 'libs');
  if (existsSync(join(libs, '.complete'))) return { libs, fetched: false };
  const mvn = process.env.MAVEN_CMD ?? 'mvn';
  if (spawnSync(mvn, ['-v'], { stdio: 'ignore' }).error) {
    throw new AppError('MAVEN_NOT_FOUND', `Maven (\`${mvn}\`) was not found; it fetches org.apache.kafka:kafka_2.13:${opts.version} once.`);
  }
  opts.log?.(`fetching org.apache.kafka:kafka_2.13:${opts.version} from Maven Central into ${libs} (once) ...`);
  const tmp = `${libs}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const args = [
    '-B',
    '-q',
    '-f',
    packagePath('deploy', 'kafka', 'pom.xml'),
    'dependency:copy-dependencies',
    `-DoutputDirectory=${tmp}`,
    '-DincludeScope=runtime',
    `-Dkafka.version=${opts.version}`,
  ];
  const { code, output } = await run(mvn, args);
  if (code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new AppError('KAFKA_JARS_FETCH_FAILED', `mvn ${args.join(' ')} exited with ${code}:\n${output.slice(-3000)}`);
  }
  const jars = readdirSync(tmp).filter((f) => f.endsWith('.jar'));
  if (!jars.some((j) => j.startsWith(`kafka_2.13-${opts.version}`))) {
    throw new AppError('KAFKA_JARS_FETCH_FAILED', `Maven ran but ${tmp} holds no kafka_2.13-${opts.version}.jar`);
  }
  writeFileSync(join(tmp, '.complete'), `${jars.join('\n')}\n`);
  rmSync(libs, { recursive: true, force: true });
  renameSync(tmp, libs);
  return { libs, fetched: true };
}

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => resolve({ code: -1, output: String(err) }));
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

function javaCommand(): string {
  const java = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  if (spawnSync(java, ['-version'], { stdio: 'ignore' }).error) {
    throw new AppError('JAVA_NOT_FOUND', `Java (\`${java}\`) was not found; the local Kafka broker runs on Java 17+.`);
  }
  return java;
}

// ---------------------------------------------------------------- start

export async function startLocalKafka(opts: LocalKafkaOptions): Promise<StartResult> {
  const t0 = Date.now();
  const f = files(opts.dataDir);
  mkdirSync(opts.dataDir, { recursive: true });
  const release = await acquireLock(f.lock, opts.startTimeoutMs);
  try {
    const previous = readState(opts.dataDir);
    const running = brokerPids(opts.dataDir);
    if (previous && running.includes(previous.pid) && !isStale(previous)) {
      if (opts.port !== 0 && opts.port !== previous.port) {
        throw new AppError(
          'KAFKA_START_FAILED',
          `a broker from ${opts.dataDir} already runs on port ${previous.port} (pid ${previous.pid}); stop it first (\`streamrec kafka stop\`) to use port ${opts.port}.`,
          { field: 'kafka.local.port' },
        );
      }
      if (await portOpen(previous.port)) {
        return { ...previous, reused: true, cleaned: [], fetchedJars: false, formatted: false, elapsedMs: Date.now() - t0 };
      }
    }
    // Anything else running from this folder is stale: a killed owner, a hung broker, a lost pid file.
    const cleaned: number[] = [];
    for (const pid of running) {
      opts.log?.(`stopping stale broker pid ${pid} left by an earlier run`);
      await terminate(pid, opts.stopGraceMs);
      cleaned.push(pid);
    }

    const { libs, fetched } = await ensureKafkaJars(opts);
    const java = javaCommand();
    const port = await choosePort(opts.port, previous?.port);
    const controllerPort = await choosePort(opts.controllerPort, previous?.controllerPort, [port]);
    writeServerFiles(opts.dataDir, port, controllerPort);

    const formatted = !existsSync(join(f.data, 'meta.properties'));
    if (formatted) format(java, libs, opts.dataDir);

    const logFd = openSync(f.log, 'w');
    const jvm = spawn(java, jvmArgs(opts, libs), { cwd: opts.dataDir, detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const pid = await new Promise<number>((resolve, reject) => {
      jvm.once('spawn', () => resolve(jvm.pid!));
      jvm.once('error', (err) => reject(new AppError('KAFKA_START_FAILED', `could not start ${java}: ${err.message}`, { cause: err })));
    });
    jvm.unref();

    const ownerPid = opts.ownerPid ?? process.pid;
    const watchdogPid = opts.mode === 'owned' ? startWatchdog(ownerPid, pid, opts.stopGraceMs) : null;
    const state: BrokerState = {
      pid,
      watchdogPid,
      mode: opts.mode,
      ownerPid,
      port,
      controllerPort,
      brokers: `127.0.0.1:${port}`,
      version: opts.version,
      startedAt: new Date().toISOString(),
    };
    writeFileSync(f.state, `${JSON.stringify(state, null, 2)}\n`);

    await waitForReady(state, f.log, opts.startTimeoutMs - (Date.now() - t0), opts.stopGraceMs);
    return { ...state, reused: false, cleaned, fetchedJars: fetched, formatted, elapsedMs: Date.now() - t0 };
  } finally {
    release();
  }
}

function isStale(state: BrokerState): boolean {
  return state.mode === 'owned' && !isAlive(state.ownerPid);
}

function jvmArgs(opts: LocalKafkaOptions, libs: string): string[] {
  const f = files(opts.dataDir);
  return [
    `-Xms${opts.heapMinMb}m`,
    `-Xmx${opts.heapMaxMb}m`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    `-Dlog4j.configuration=file:${f.log4j}`,
    '-cp',
    `${libs}/*`,
    'kafka.Kafka',
    f.properties,
  ];
}

function format(java: string, libs: string, dataDir: string): void {
  const f = files(dataDir);
  const res = spawnSync(
    java,
    ['-Xmx256m', `-Dlog4j.configuration=file:${f.log4j}`, '-cp', `${libs}/*`, 'kafka.tools.StorageTool', 'format', '-t', kafkaUuid(), '-c', f.properties, '--ignore-formatted'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (res.status !== 0) {
    throw new AppError('KAFKA_START_FAILED', `formatting ${f.data} failed (exit ${res.status}):\n${(res.stdout + res.stderr).slice(-3000)}`);
  }
}

/** A cluster id as kafka.tools.StorageTool random-uuid makes it: 16 random bytes, base64url, not starting with '-'. */
export function kafkaUuid(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function writeServerFiles(dataDir: string, port: number, controllerPort: number): void {
  const f = files(dataDir);
  const props = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': f.data,
    'num.partitions': '1',
    'default.replication.factor': '1',
    'offsets.topic.replication.factor': '1',
    'offsets.topic.num.partitions': '1',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'transaction.state.log.num.partitions': '1',
    'group.initial.rebalance.delay.ms': '0',
    'auto.create.topics.enable': 'false',
    'delete.topic.enable': 'true',
    'num.network.threads': '2',
    'num.io.threads': '4',
    'log.retention.hours': '168',
  };
  writeFileSync(f.properties, `# written by streamrec on each start\n${Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n')}\n`);
  writeFileSync(
    f.log4j,
    [
      'log4j.rootLogger=INFO, stdout',
      'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
      'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
      'log4j.logger.kafka.request.logger=WARN',
      'log4j.logger.state.change.logger=WARN',
      'log4j.logger.kafka.log.LogCleaner=WARN',
      'log4j.logger.org.apache.kafka.storage.internals.log=WARN',
      'log4j.logger.kafka.log=WARN',
      '',
    ].join('\n'),
  );
}

/** Stops the broker if `ownerPid` exits first (the owner was killed and could not stop it). */
function startWatchdog(ownerPid: number, jvmPid: number, graceMs: number): number | null {
  const script = [
    'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done',
    'if kill -0 "$2" 2>/dev/null; then',
    '  kill -TERM "$2"; i=0',
    '  while kill -0 "$2" 2>/dev/null && [ "$i" -lt "$3" ]; do sleep 1; i=$((i+1)); done',
    '  kill -KILL "$2" 2>/dev/null',
    'fi',
  ].join('\n');
  const dog = spawn('/bin/sh', ['-c', script, 'streamrec-kafka-watchdog', String(ownerPid), String(jvmPid), String(Math.ceil(graceMs / 1000))], {
    stdio: 'ignore',
  });
  dog.unref();
  return dog.pid ?? null;
}

async function waitForReady(state: BrokerState, logFile: string, timeoutMs: number, graceMs: number): Promise<void> {
  const deadline = Date.now() + Math.max(timeoutMs, 1000);
  for (;;) {
    if (!isAlive(state.pid)) {
      throw new AppError('KAFKA_START_FAILED', `the broker (pid ${state.pid}) exited during start; last lines of ${logFile}:\n${tail(logFile, 30)}`);
    }
    if (readFileSafe(logFile).includes('Kafka Server started') && (await portOpen(state.port))) return;
    if (Date.now() > deadline) {
      await terminate(state.pid, graceMs);
      throw new AppError('KAFKA_START_TIMEOUT', `the broker did not report "Kafka Server started" in time; last lines of ${logFile}:\n${tail(logFile, 30)}`);
    }
    await sleep(150);
  }
}

// ---------------------------------------------------------------- stop, status

export interface StopResult {
  stopped: { pid: number; how: 'terminated' | 'killed' | 'not-running' }[];
}

export async function stopLocalKafka(dataDir: string, graceMs: number): Promise<StopResult> {
  const f = files(dataDir);
  const state = readState(dataDir);
  const pids = new Set(brokerPids(dataDir));
  if (state && isAlive(state.pid)) pids.add(state.pid);
  const stopped: StopResult['stopped'] = [];
  for (const pid of pids) stopped.push({ pid, how: await terminate(pid, graceMs) });
  if (state?.watchdogPid && isWatchdog(state.watchdogPid)) await terminate(state.watchdogPid, 1000);
  // broker.json stays (with stoppedAt), so the next start can keep the same ports.
  if (state) writeFileSync(f.state, `${JSON.stringify({ ...state, stoppedAt: new Date().toISOString() }, null, 2)}\n`);
  return { stopped };
}

export interface StatusResult {
  running: boolean;
  reachable: boolean;
  state: BrokerState | undefined;
  /** Live brokers of this folder that broker.json does not describe (stale). */
  strays: number[];
}

export async function localKafkaStatus(dataDir: string): Promise<StatusResult> {
  const state = readState(dataDir);
  const pids = brokerPids(dataDir);
  const running = state !== undefined && pids.includes(state.pid);
  return {
    running,
    reachable: running && (await portOpen(state.port)),
    state,
    strays: pids.filter((p) => p !== state?.pid),
  };
}

export function readState(dataDir: string): BrokerState | undefined {
  try {
    return JSON.parse(readFileSync(files(dataDir).state, 'utf8')) as BrokerState;
  } catch {
    return undefined;
  }
}

const isWatchdog = (pid: number): boolean => (commandLine(pid) ?? []).includes('streamrec-kafka-watchdog');

/** Live broker JVMs started from this folder, whatever broker.json says. */
export function brokerPids(dataDir: string): number[] {
  return findProcesses(['kafka.Kafka', files(dataDir).properties]);
}

// ---------------------------------------------------------------- helpers

async function acquireLock(lock: string, timeoutMs: number): Promise<() => void> {
  const ok = await waitUntil(() => {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSafe(lock));
      if (!Number.isInteger(holder) || holder <= 0 || !isAlive(holder)) rmSync(lock, { force: true });
      return false;
    }
  }, timeoutMs, 200);
  if (!ok) throw new AppError('KAFKA_START_TIMEOUT', `another process holds ${lock} (starting the broker) for too long`);
  return () => rmSync(lock, { force: true });
}

async function choosePort(wanted: number, previous: number | undefined, taken: number[] = []): Promise<number> {
  if (wanted !== 0) {
    if (!(await portFree(wanted))) {
      throw new AppError('KAFKA_START_FAILED', `port ${wanted} on 127.0.0.1 is in use by another program; choose another or 0 for a free one.`, {
        field: 'kafka.local.port',
      });
    }
    return wanted;
  }
  // Keep the address stable across restarts when the old port is still free.
  if (previous && !taken.includes(previous) && (await portFree(previous))) return previous;
  for (;;) {
    const p = await freePort();
    if (!taken.includes(p)) return p;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function tail(file: string, lines: number): string {
  return readFileSafe(file).split('\n').slice(-lines).join('\n');
}
