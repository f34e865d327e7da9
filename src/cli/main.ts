/**
 * The `streamrec` command. Thin: parse arguments (commander), load the config, call a module, print.
 */
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { configKeys, loadConfig, redactConfig, type Config } from '../config/index.js';
import { AppError, isAppError } from '../errors/index.js';
import type { MetadataType } from '../import/read.js';
import { offlineSink, runImport, topicSink } from '../import/import.js';
import { createCodecs } from '../serde/avro.js';
import type { Producer } from '../kafka/kafkajs.js';
import { Presets, SingleBar } from 'cli-progress';
import { RECIPES, trainAndEvaluate, type SeenRule, type SplitName, type TrainReport } from '../training/train.js';
import { loadInteractions, loadTrainingMetadata, type DataSpec, type LoadedData } from '../training/data.js';
import { loadModel, loadTraining, saveModel, userData } from '../training/model-files.js';
import { VersionRegistry } from '../training/registry.js';
import { trainFromTopic } from '../training/stream-train.js';
import { announce, promoteIfAllowed, readServing, rollback, type ServingRecord } from '../stream/versions.js';
import { batchInfer } from '../training/batch-infer.js';
import { createWriteStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { syntheticInteractions, syntheticItems } from '../data/synthetic.js';
import { createKafka } from '../kafka/client.js';
import { produceRecords, streamRecords } from '../kafka/produce.js';
import { resolveBrokers } from '../kafka/connect.js';
import { localKafkaOptions, localKafkaStatus, startLocalKafka, stopLocalKafka } from '../kafka/local-broker.js';
import { applyTopics, topicDefinitions, topicName, topicOffsets, validateGroupName, type TopicName, type TopicReport } from '../kafka/topics.js';
import { startService, versionsDir, type Service } from '../stream/service.js';
import type { Logger } from '../util/log.js';
import { rootKeyFile } from '../api/auth.js';
import { digestGroupState } from '../state/digest.js';
import { join, resolve } from 'node:path';

const program = new Command('streamrec')
  .description('Self-hosted streaming recommendations: Kafka in, RocksDB state, HRNN models, HTTP and Kafka out.')
  .option('-c, --config <file>', 'JSON config file (default: $STREAMREC_CONFIG); environment variables override it')
  .showHelpAfterError();

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const note = (line: string): void => void process.stderr.write(`${line}\n`);

function config(overrides: Record<string, unknown> = {}): Readonly<Config> {
  return loadConfig({ file: program.opts<{ config?: string }>().config, overrides });
}

const intArg = (name: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
};

// ---------------------------------------------------------------- start

program
  .command('start')
  .description(
    'Run the main job: Kafka (a local broker unless KAFKA_BROKERS is set), the group topics, the stream processor and the HTTP API; stops on Ctrl-C or SIGTERM',
  )
  .option('-g, --group <name>', 'dataset group (default: config `group`)')
  .addOption(new Option('-p, --port <port>', 'HTTP API port (config api.port; 0: a free one)').argParser(intArg('--port')))
  .option('--no-sample', 'with the local broker: no sample data (neither into an empty interactions topic nor live)')
  .addOption(new Option('--sample-rate <events>', 'with the local broker: live synthetic events per second after the sample data (0: none)').default(10).argParser(intArg('--sample-rate')))
  .action(async (opts: StartOptions) => {
    // From the first moment: a signal during start-up waits for start-up, then stops in order; from
    // the first signal the process ends within shutdown.graceMs whatever hangs, a second one ends it
    // at once.
    const shutdown = { graceMs: Number(configKeys().find((k) => k.key === 'shutdown.graceMs')?.default ?? 20_000) };
    const stopRequested = stopSignal(shutdown);
    try {
      await start(opts, stopRequested, shutdown);
    } catch (err) {
      // Printed by the catch at the end of this file. A Kafka client or a timer must not keep a
      // process that failed to start alive: it exits shortly after, non-zero.
      exitSoon(1);
      throw err;
    }
    exitSoon(0);
  });

interface StartOptions {
  group?: string;
  port?: number;
  sample: boolean;
  sampleRate: number;
}

async function start(opts: StartOptions, stopRequested: Promise<string>, shutdown: { graceMs: number }): Promise<void> {
  let c = config({ group: opts.group, 'api.port': opts.port });
  shutdown.graceMs = c.shutdown.graceMs;
  const group = validateGroupName(c.group);
  const t0 = Date.now();
  if (c.api.auth === 'keys' && c.api.rootKey === '') {
    const root = rootKeyFile(c.state.dir);
    c = config({ group: opts.group, 'api.port': opts.port, 'api.rootKey': root.key });
    say(`api: root API key ${root.created ? 'generated into' : 'read from'} ${root.path} (send it as x-api-key; set api.rootKey / STREAMREC_API_ROOT_KEY to choose it)`);
  }
  const { brokers, local } = await resolveBrokers(c, 'owned', note);
  if (local) {
    const how = local.reused ? 'using the local Kafka broker already running' : `started a local Kafka ${local.version} broker (KRaft)`;
    say(`kafka: ${how} at ${local.brokers} (pid ${local.pid}, data ${c.kafka.local.dataDir}) in ${ms(local.elapsedMs)}`);
    if (local.cleaned.length > 0) say(`kafka: stopped stale broker(s) left by an earlier run: pid ${local.cleaned.join(', ')}`);
  } else {
    say(`kafka: using the cluster at ${brokers.join(',')} (KAFKA_BROKERS)`);
  }
  // A start-up failure from here on stops the broker this run started (the error is then printed).
  const stopOwnBroker = async (): Promise<void> => {
    if (!local || local.reused) return;
    const { stopped } = await stopLocalKafka(c.kafka.local.dataDir, c.kafka.local.stopGraceMs);
    say(`kafka: stopped ${stopped.map((x) => `pid ${x.pid} (${x.how})`).join(', ') || 'nothing'}`);
  };
  const log = pino({ level: c.log.level, base: { group } });
  let service: Service;
  try {
    service = await startGroup(c, brokers, group, local !== undefined && opts.sample, log);
  } catch (err) {
    await stopOwnBroker().catch(() => undefined);
    throw err;
  }

  say(`processor: consuming ${group}.interactions, state in ${c.state.dir}/${group}`);
  say(`api: listening on ${service.url} (POST /v1/groups/${group}/events|items|users, GET /v1/groups/${group}/recommendations?userId=U, related-items, popular, personalized-ranking, filters; docs ${service.url}/docs, metrics ${service.url}/metrics)`);
  say(`recommendations: ${c.recommendations.enabled ? `each user's fresh top-${c.recommendations.numResults} to ${topicName(group, 'recommendations')} after their events (at most one per ${c.recommendations.minIntervalMs} ms)` : 'not published (recommendations.enabled false)'}`);
  say(
    c.training.recipe === 'none'
      ? 'training: off (training.recipe none)'
      : `training: ${c.training.recipe}, a first version as soon as there are events, then every ${c.training.everyEvents} events or ${c.training.everyMinutes} min (versions in ${service.registry.dir})`,
  );
  say(`streamrec: group "${group}" up in ${ms(Date.now() - t0)}`);
  say(`KAFKA_BROKERS=${brokers.join(',')}`);
  // The demo keeps streaming: a trickle of the same synthetic users and items, stamped now, so
  // that lists keep flowing to the recommendations topic and trending moves.
  const live =
    local && opts.sample && opts.sampleRate > 0
      ? streamRecords(c, brokers, group, syntheticInteractions({ seed: 2, users: 500, items: 1000, events: Number.MAX_SAFE_INTEGER })[Symbol.iterator](), opts.sampleRate, log)
      : undefined;
  if (live) say(`sample data: streaming ${opts.sampleRate} synthetic events/s into ${topicName(group, 'interactions')} (--sample-rate N, 0 for none)`);
  say('running; Ctrl-C or SIGTERM stops it' + (local && !local.reused ? ' and the broker it started' : ''));

  const signal = await stopRequested;
  note(`streamrec: ${signal} received, stopping (within shutdown.graceMs, ${c.shutdown.graceMs} ms; a second signal exits at once)`);
  await live?.stop();
  await service.stop();
  const s = service.processor.status();
  say(`processor: stopped after ${s.applied} events applied, ${s.deadLetters} dead letters, ${s.batches} batches`);
  await stopOwnBroker();
}

/** The group's topics, the sample data (a local broker), the service. */
async function startGroup(c: Readonly<Config>, brokers: string[], group: string, sample: boolean, log: Logger): Promise<Service> {
  const reports = await withAdmin(c, brokers, (admin) => applyTopics(admin, group, c));
  printTopics(group, reports);
  // The embedded default: a local broker and nothing to consume yet -> sample data, so that the
  // first model version trains and the query API answers within a minute or two.
  if (sample) {
    const empty = await withAdmin(c, brokers, async (admin) => (await topicOffsets(admin, topicName(group, 'interactions'))).every((p) => p.high === 0));
    if (empty) {
      const n = await produceSample(c, brokers, group);
      say(`sample data: ${n} synthetic events (seeded clickstream: Zipf popularity, sessions, item-to-item transitions) into ${topicName(group, 'interactions')}; --no-sample skips this`);
    }
  }
  return startService({ config: c, group, brokers, log, apiLogger: { level: c.log.level === 'info' ? 'warn' : c.log.level } });
}

/**
 * Sample data for the embedded default: the 1,000 items' metadata (CATEGORY, PRICE) and 10,000
 * seeded synthetic events ending now (a first hrnn version trains in about a minute).
 */
function produceSample(c: Readonly<Config>, brokers: string[], group: string): Promise<number> {
  const events = 10_000;
  return produceRecords(c, brokers, group, {
    items: syntheticItems({ seed: 1, items: 1000 }),
    events: syntheticInteractions({ seed: 1, users: 500, items: 1000, events, start: Date.now() - events * 1000 }),
  });
}

// ---------------------------------------------------------------- kafka

const kafka = program.command('kafka').description('The local Apache Kafka broker (KRaft, jars from Maven Central, no Docker)');

kafka
  .command('start')
  .description('Start the local broker in the background (or report the one running); the last line is KAFKA_BROKERS=...')
  .addOption(new Option('-p, --port <port>', 'listener port (0: a free one)').argParser(intArg('--port')))
  .addOption(new Option('--controller-port <port>', 'KRaft controller port (0: a free one)').argParser(intArg('--controller-port')))
  .option('-d, --dir <dir>', 'data folder (config kafka.local.dataDir)')
  .action(async (opts: { port?: number; controllerPort?: number; dir?: string }) => {
    const c = config({ 'kafka.local.port': opts.port, 'kafka.local.controllerPort': opts.controllerPort, 'kafka.local.dataDir': opts.dir });
    const r = await startLocalKafka(localKafkaOptions(c, 'detached', note));
    if (r.cleaned.length > 0) say(`stopped stale broker(s) left by an earlier run: pid ${r.cleaned.join(', ')}`);
    if (r.reused) say(`already running: pid ${r.pid} since ${r.startedAt}`);
    else {
      const extras = [r.fetchedJars ? 'jars fetched' : 'jars cached', r.formatted ? 'storage formatted' : 'existing storage'].join(', ');
      say(`started Apache Kafka ${r.version} (KRaft) pid ${r.pid} in ${ms(r.elapsedMs)} (${extras}); data ${c.kafka.local.dataDir}`);
    }
    say(`KAFKA_BROKERS=${r.brokers}`);
  });

kafka
  .command('stop')
  .description('Stop the local broker: SIGTERM, then SIGKILL after kafka.local.stopGraceMs')
  .option('-d, --dir <dir>', 'data folder (config kafka.local.dataDir)')
  .action(async (opts: { dir?: string }) => {
    const c = config({ 'kafka.local.dataDir': opts.dir });
    const { stopped } = await stopLocalKafka(c.kafka.local.dataDir, c.kafka.local.stopGraceMs);
    say(stopped.length === 0 ? 'no local broker was running' : stopped.map((s) => `stopped pid ${s.pid} (${s.how})`).join('\n'));
  });

kafka
  .command('status')
  .description('Is the local broker running? Exit code 0 when it is running and reachable, 3 when not')
  .option('-d, --dir <dir>', 'data folder (config kafka.local.dataDir)')
  .option('--json', 'print JSON')
  .action(async (opts: { dir?: string; json?: boolean }) => {
    const c = config({ 'kafka.local.dataDir': opts.dir });
    const s = await localKafkaStatus(c.kafka.local.dataDir);
    if (opts.json) say(JSON.stringify({ ...s, dataDir: c.kafka.local.dataDir }));
    else if (s.running && s.state) {
      say(`running: pid ${s.state.pid}, ${s.state.brokers}, ${s.reachable ? 'reachable' : 'NOT reachable'}, ${s.state.mode}, since ${s.state.startedAt}`);
      say(`KAFKA_BROKERS=${s.state.brokers}`);
    } else say(`not running (data ${c.kafka.local.dataDir})`);
    if (s.strays.length > 0) say(`stale broker process(es) from this folder: ${s.strays.join(', ')} (the next start stops them)`);
    process.exitCode = s.running && s.reachable ? 0 : 3;
  });

// ---------------------------------------------------------------- topics

const topics = program.command('topics').description("A dataset group's topics (definitions in topics/topics.json)");

topics
  .command('create')
  .description('Create or update the topics of a group, idempotently, and report what was done')
  .requiredOption('-g, --group <name>', 'dataset group')
  .option('--json', 'print the report as JSON')
  .action(async (opts: { group: string; json?: boolean }) => {
    const c = config();
    const group = validateGroupName(opts.group);
    const { brokers } = await resolveBrokers(c, false);
    const reports = await withAdmin(c, brokers, (admin) => applyTopics(admin, group, c));
    if (opts.json) say(JSON.stringify(reports));
    else printTopics(group, reports);
  });

topics
  .command('tail <topic>')
  .description("Print a group topic's records as JSON lines, decoded (Avro topics) — e.g. `tail recommendations --group demo` to watch fresh lists; until Ctrl-C or --max")
  .requiredOption('-g, --group <name>', 'dataset group')
  .option('--from-beginning', 'from the oldest record kept, not only new ones')
  .addOption(new Option('-n, --max <count>', 'stop after this many records').argParser(intArg('--max')))
  .action(async (topic: string, opts: { group: string; fromBeginning?: boolean; max?: number }) => {
    const c = config();
    const group = validateGroupName(opts.group);
    const def = topicDefinitions().find((d) => d.name === topic);
    if (!def) throw new AppError('INVALID_ARGUMENT', `no topic ${JSON.stringify(topic)} in a group; one of ${topicDefinitions().map((d) => d.name).join(', ')}`, { field: 'topic' });
    const codecs = createCodecs(c);
    const avroOf: Partial<Record<TopicName, { decode(b: Buffer): unknown }>> = {
      interactions: codecs.Interaction,
      items: codecs.Item,
      users: codecs.User,
      recommendations: codecs.Recommendation,
      'dead-letter': codecs.DeadLetter,
    };
    const codec = avroOf[def.name];
    const { brokers } = await resolveBrokers(c, false);
    const consumer = createKafka(c, brokers, '-tail').consumer({ groupId: `streamrec.${group}.tail.${process.pid}.${Date.now()}`, allowAutoTopicCreation: false });
    await consumer.connect();
    let seen = 0;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    await consumer.subscribe({ topics: [topicName(group, def.name)], fromBeginning: opts.fromBeginning === true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (opts.max !== undefined && seen >= opts.max) return;
        let value: unknown = null;
        if (message.value) {
          try {
            value = codec ? codec.decode(message.value) : JSON.parse(message.value.toString('utf8'));
          } catch (err) {
            value = { undecodable: (err as Error).message, base64: message.value.toString('base64') };
          }
        }
        say(JSON.stringify({ partition, offset: Number(message.offset), key: message.key?.toString() ?? null, value }));
        if (opts.max !== undefined && ++seen >= opts.max) done();
      },
    });
    await Promise.race([finished, stopSignal()]);
    await consumer.disconnect();
  });

// ---------------------------------------------------------------- generate

program
  .command('generate')
  .description('Write a seeded synthetic clickstream as a Personalize-style CSV (USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,SESSION_ID)')
  .requiredOption('-o, --output <file>', 'the CSV to write')
  .addOption(new Option('-n, --events <n>', 'events').argParser(intArg('--events')).default(50_000))
  .addOption(new Option('--users <n>', 'users').argParser(intArg('--users')).default(2000))
  .addOption(new Option('--items <n>', 'items').argParser(intArg('--items')).default(5000))
  .addOption(new Option('--seed <n>', 'seed').argParser(intArg('--seed')).default(42))
  .action(async (opts: { output: string; events: number; users: number; items: number; seed: number }) => {
    const out = createWriteStream(opts.output);
    out.write('USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,SESSION_ID\n');
    for (const e of syntheticInteractions({ seed: opts.seed, users: opts.users, items: opts.items, events: opts.events })) {
      if (!out.write(`${e.USER_ID},${e.ITEM_ID},${Math.floor(e.TIMESTAMP / 1000)},${e.EVENT_TYPE},${e.SESSION_ID ?? ''}\n`)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    say(`wrote ${opts.events} events (${opts.users} users, ${opts.items} items, seed ${opts.seed}) to ${opts.output}`);
  });

// ---------------------------------------------------------------- import

program
  .command('import')
  .description("Import files as they are (CSV, TSV, JSON Lines) into a group's topics, or into an offline dataset folder")
  .option('--interactions <file>', 'interactions file')
  .option('--items <file>', 'items file')
  .option('--users <file>', 'users file')
  .option('-m, --map <pairs>', 'interactions column mapping, e.g. USER_ID=user_id,ITEM_ID=asin,TIMESTAMP=unixReviewTime')
  .option('--items-map <pairs>', 'items column mapping, e.g. ITEM_ID=asin')
  .option('--users-map <pairs>', 'users column mapping, e.g. USER_ID=id')
  .option('--types <pairs>', 'metadata types overriding inference, e.g. PRICE=numeric,GENRES=multi,ZIP=categorical')
  .option('-g, --group <name>', 'produce to this dataset group\'s topics (KAFKA_BROKERS or the local broker)')
  .option('--offline <dir>', 'write an offline dataset folder instead (for `streamrec train --data`)')
  .option('--rejects <dir>', 'where rejects-<kind>.jsonl go (default: the --offline folder, else the working folder)')
  .option('--delimiter <c>', 'the field delimiter when it is neither , (CSV) nor a tab (TSV), e.g. ";"')
  .action(async (opts: { interactions?: string; items?: string; users?: string; map?: string; itemsMap?: string; usersMap?: string; types?: string; group?: string; offline?: string; rejects?: string; delimiter?: string }) => {
    if (!opts.group === !opts.offline) throw new AppError('INVALID_ARGUMENT', 'give exactly one target: --group G (Kafka) or --offline DIR', { field: '--group' });
    const files = (['interactions', 'items', 'users'] as const).flatMap((kind) => (opts[kind] ? [{ kind, file: opts[kind] }] : []));
    if (files.length === 0) throw new AppError('INVALID_ARGUMENT', 'nothing to import: give --interactions, --items and/or --users', { field: '--interactions' });
    const maps = { interactions: opts.map, items: opts.itemsMap, users: opts.usersMap };
    const types = opts.types ? (parsePairs(opts.types, '--types') as Record<string, MetadataType>) : undefined;
    const c = config();
    const codecs = createCodecs(c);
    let producer: Producer | undefined;
    if (opts.group) {
      const group = validateGroupName(opts.group);
      const { brokers } = await resolveBrokers(c, false);
      await withAdmin(c, brokers, (admin) => applyTopics(admin, group, c));
      producer = createKafka(c, brokers, '-import').producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
    }
    const rejectsDir = opts.rejects ?? opts.offline ?? '.';
    mkdirSync(rejectsDir, { recursive: true });
    try {
      for (const { kind, file } of files) {
        const bar = fileProgress(kind);
        const map = maps[kind] ? parsePairs(maps[kind]!, kind === 'interactions' ? '--map' : `--${kind}-map`) : undefined;
        const sink = opts.offline ? offlineSink(opts.offline, kind) : topicSink(producer!, topicName(opts.group!, kind), codecs, kind);
        const totals = await runImport(
          file,
          { kind, codecs, onProgress: bar.onProgress, ...(map ? { map } : {}), ...(opts.delimiter ? { delimiter: opts.delimiter } : {}), ...(types && kind !== 'interactions' ? { types } : {}) },
          sink,
          join(rejectsDir, `rejects-${kind}.jsonl`),
        );
        bar.done(totals.accepted + totals.rejected);
        const where = opts.offline ? join(opts.offline, `${kind}.jsonl`) : topicName(opts.group!, kind);
        say(`${kind}: ${totals.accepted} imported to ${where}, ${totals.rejected} rejected (${totals.rejectsFile}) in ${ms(totals.ms)}`);
      }
    } finally {
      await producer?.disconnect();
    }
  });

// ---------------------------------------------------------------- train

program
  .command('train')
  .description('Train and evaluate a recipe offline on an interactions file; prints its metrics beside popularity-count on the same split')
  .option('-i, --interactions <file>', 'CSV, TSV or JSON Lines; a Personalize-style header (USER_ID,ITEM_ID,TIMESTAMP,...) needs no mapping')
  .option('-d, --data <dir>', 'an offline dataset folder written by `streamrec import --offline` (instead of --interactions)')
  .requiredOption('-r, --recipe <name>', `recipe: ${Object.keys(RECIPES).join(', ')}`)
  .option('-m, --map <pairs>', 'column mapping, e.g. USER_ID=user_id,ITEM_ID=asin,TIMESTAMP=unixReviewTime')
  .option('--delimiter <c>', 'the field delimiter when it is neither , (CSV) nor a tab (TSV), e.g. ";"')
  .option('--items <file>', 'item metadata (hrnn-metadata, hrnn-coldstart): ITEM_ID, CREATION_TIMESTAMP and any fields')
  .option('--users <file>', 'user metadata (hrnn-metadata, hrnn-coldstart): USER_ID and any fields')
  .option('--items-map <pairs>', 'items column mapping, e.g. ITEM_ID=asin')
  .option('--users-map <pairs>', 'users column mapping, e.g. USER_ID=customer')
  .option('--event-type <types>', 'train on these EVENT_TYPEs only (comma-separated), as Personalize')
  .option('--event-value-threshold <n>', 'train on events with EVENT_VALUE >= n only, as Personalize')
  .addOption(new Option('-s, --split <name>', 'evaluation split').choices(['personalize', 'loo', 'time']).default('personalize'))
  .addOption(new Option('--seen <rule>', 'may a user be recommended items already touched').choices(['auto', 'exclude', 'include']).default('auto'))
  .option('--params <json>', 'recipe parameters as JSON, e.g. {"popularityDiscountFactor":0.3}')
  .option('-o, --output <dir>', 'the model folder: model.json, metrics.json, rejects.jsonl')
  .option('--json', 'print the report as JSON')
  .action(
    async (opts: {
      interactions?: string;
      data?: string;
      recipe: string;
      map?: string;
      delimiter?: string;
      items?: string;
      users?: string;
      itemsMap?: string;
      usersMap?: string;
      eventType?: string;
      eventValueThreshold?: string;
      split: SplitName;
      seen: SeenRule;
      params?: string;
      output?: string;
      json?: boolean;
    }) => {
      if (!opts.interactions === !opts.data) throw new AppError('INVALID_ARGUMENT', 'give exactly one of --interactions FILE and --data DIR', { field: '--interactions' });
      const threshold = opts.eventValueThreshold === undefined ? undefined : Number(opts.eventValueThreshold);
      if (threshold !== undefined && !Number.isFinite(threshold)) {
        throw new AppError('INVALID_ARGUMENT', `--event-value-threshold must be a number, got ${JSON.stringify(opts.eventValueThreshold)}`, { field: '--event-value-threshold' });
      }
      const spec: DataSpec = {
        file: resolve(opts.interactions ?? join(opts.data!, 'interactions.jsonl')),
        ...(opts.map ? { map: parsePairs(opts.map, '--map') } : {}),
        ...(opts.delimiter ? { delimiter: opts.delimiter } : {}),
        ...(opts.eventType ? { eventTypes: opts.eventType.split(',').map((t) => t.trim()) } : {}),
        ...(threshold !== undefined ? { eventValueThreshold: threshold } : {}),
      };
      // Metadata files: given, or those of an offline dataset folder.
      for (const kind of ['items', 'users'] as const) {
        const file = opts[kind] ?? (opts.data && existsSync(join(opts.data, `${kind}.jsonl`)) ? join(opts.data, `${kind}.jsonl`) : undefined);
        const map = kind === 'items' ? opts.itemsMap : opts.usersMap;
        if (file) spec[kind] = { file: resolve(file), ...(map ? { map: parsePairs(map, `--${kind}-map`) } : {}) };
      }
      let params: Record<string, unknown> | undefined;
      if (opts.params) {
        try {
          params = JSON.parse(opts.params) as Record<string, unknown>;
        } catch (err) {
          throw new AppError('INVALID_ARGUMENT', `--params is not JSON: ${(err as Error).message}`, { field: '--params' });
        }
      }
      const { rows, rejects } = await readTrainingData(spec);
      const metadata = await loadTrainingMetadata(spec);
      // The seen-items rule covers what the stream remembers: state.maxSeenItemsPerUser.
      const seenBound = config().state.maxSeenItemsPerUser;
      const { model, report } = await trainAndEvaluate(rows, {
        recipe: opts.recipe,
        split: opts.split,
        seen: opts.seen,
        seenBound,
        metadata,
        hooks: (phase) => ({ onProgress: stepProgress(phase === 'evaluation' ? `train (${opts.split})` : 'train (all)') }),
        ...(params ? { params } : {}),
      });
      if (opts.output) {
        saveModel(opts.output, { model, excludeSeen: report.seen.excludeSeen, ...userData(rows, seenBound) }, report, {
          data: spec,
          recipe: opts.recipe,
          seen: opts.seen,
          ...(params ? { params } : {}),
        });
        writeFileSync(join(opts.output, 'rejects.jsonl'), rejects.map((l) => `${l}\n`).join(''));
        note(`model written to ${opts.output} (model.json, metrics.json, rejects.jsonl)`);
      }
      printReport(report, opts.json);
    },
  );

program
  .command('evaluate')
  .description("A trained model's recipe on a split of its training data (retrained on the split's train part), beside popularity-count")
  .requiredOption('--model <dir>', 'a model folder written by `streamrec train --output`')
  .addOption(new Option('-s, --split <name>', 'evaluation split').choices(['personalize', 'loo', 'time']).default('personalize'))
  .option('--json', 'print the report as JSON')
  .action(async (opts: { model: string; split: SplitName; json?: boolean }) => {
    const training = loadTraining(opts.model);
    if (!('file' in training.data)) {
      throw new AppError('INVALID_ARGUMENT', `${opts.model} was trained from the topic ${training.data.topic}, not a file: evaluate needs the training file`, { field: '--model' });
    }
    const { rows } = await readTrainingData(training.data);
    const { report } = await trainAndEvaluate(rows, {
      metadata: await loadTrainingMetadata(training.data),
      recipe: training.recipe,
      split: opts.split,
      seen: training.seen,
      ...(training.seenBound ? { seenBound: training.seenBound } : {}),
      final: false,
      hooks: () => ({ onProgress: stepProgress(`train (${opts.split})`) }),
      ...(training.params ? { params: training.params } : {}),
    });
    printReport(report, opts.json);
  });

async function readTrainingData(spec: DataSpec): Promise<LoadedData> {
  const t0 = Date.now();
  const bar = fileProgress('interactions');
  const loaded = await loadInteractions(spec, bar.onProgress);
  bar.done(loaded.rows.length + loaded.rejects.length + loaded.filteredOut);
  const filtered = loaded.filteredOut > 0 ? `, ${loaded.filteredOut} left out by the event filters` : '';
  note(`read ${loaded.rows.length} interactions (${loaded.rejects.length} rejected${filtered}) from ${spec.file} in ${ms(Date.now() - t0)}`);
  for (const line of loaded.rejects.slice(0, 5)) note(`  rejected ${line}`);
  return loaded;
}

function printReport(report: TrainReport, json?: boolean): void {
  if (json) {
    say(JSON.stringify(report));
    return;
  }
  say(`${report.recipe} on ${report.interactions} interactions, ${report.users} users, ${report.items} items; split ${report.split}, ${report.testUsers} test users`);
  say(`seen items: ${report.seen.excludeSeen ? 'left out' : 'allowed'} (rule ${report.seen.rule}, repeat rate ${(report.seen.repeatRate * 100).toFixed(1)}%)`);
  say(`trained in ${ms(report.trainMs)}, evaluated in ${ms(report.evaluateMs)}`);
  say(`${'metric'.padEnd(46)} ${report.recipe.padStart(16)} ${'popularity-count'.padStart(16)}`);
  for (const [k, v] of Object.entries(report.metrics)) {
    const b = (report.baseline.metrics as unknown as Record<string, number>)[k]!;
    say(`${k.padEnd(46)} ${fmt(v).padStart(16)} ${fmt(b).padStart(16)}`);
  }
}

program
  .command('batch-infer')
  .description("Personalize's batch inference: JSON Lines of {userId} / {itemId} / {userId, itemList} in, one result line each out")
  .requiredOption('--model <dir>', 'a model folder written by `streamrec train --output`')
  .requiredOption('-i, --input <file>', 'JSON Lines input')
  .requiredOption('-o, --output <file>', 'JSON Lines output')
  .addOption(new Option('-n, --num-results <n>', 'items per line (1-500)').argParser(intArg('--num-results')).default(25))
  .action(async (opts: { model: string; input: string; output: string; numResults: number }) => {
    if (opts.numResults < 1 || opts.numResults > 500) {
      throw new AppError('INVALID_ARGUMENT', `--num-results must be 1 to 500, got ${opts.numResults}`, { field: '--num-results' });
    }
    const t0 = Date.now();
    const result = await batchInfer(loadModel(opts.model), opts.input, opts.output, opts.numResults);
    say(`${result.lines} lines in ${ms(Date.now() - t0)}, ${result.errors} with an error; results in ${opts.output}`);
  });

/**
 * Resolves on the first SIGINT or SIGTERM; a second one while stopping forces the exit. With
 * `shutdown`, the first signal also bounds the stop: the process exits (code 1) `graceMs` after it,
 * whatever still runs.
 */
function stopSignal(shutdown?: { graceMs: number }): Promise<string> {
  return new Promise((resolve) => {
    let first: string | undefined;
    const on = (sig: string) => {
      if (first === undefined) {
        first = sig;
        resolve(sig);
        if (shutdown) {
          const graceMs = shutdown.graceMs;
          setTimeout(() => {
            note(`streamrec: still stopping ${graceMs} ms after ${sig} (shutdown.graceMs): exiting now`);
            process.exit(1);
          }, graceMs).unref();
        }
        return;
      }
      note(`streamrec: ${sig} again while stopping: exiting now`);
      process.exit(1);
    };
    process.on('SIGINT', () => on('SIGINT'));
    process.on('SIGTERM', () => on('SIGTERM'));
  });
}

/**
 * Ends the process soon after a long-running command returned or failed, even when something (a
 * Kafka client's reconnection, a socket) still holds the event loop: then it says what, and exits
 * with `process.exitCode` (set by the error handler at the end of this file) or `code`.
 */
function exitSoon(code: number, afterMs = 1000): void {
  setTimeout(() => {
    const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Timeout');
    note(`streamrec: exiting; still open: ${open.join(', ') || 'timers only'}`);
    process.exit(process.exitCode ?? code);
  }, afterMs).unref();
}

/** A progress bar on stderr (drawn on a terminal only) fed by the file reader's onProgress. */
function fileProgress(label: string): { onProgress: (bytes: number, total: number, rows: number) => void; done: (rows: number) => void } {
  const bar = new SingleBar(
    { format: `${label.padEnd(12)} [{bar}] {percentage}% | {rows} rows | {mbps} MB/s | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
    Presets.shades_classic,
  );
  const t0 = Date.now();
  let started = false;
  return {
    onProgress: (bytes, total, rows) => {
      if (!started) {
        bar.start(total, 0, { rows: 0, mbps: '0.0' });
        started = true;
      }
      bar.update(bytes, { rows, mbps: (bytes / 1e6 / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(1) });
    },
    done: (rows) => {
      if (!started) return;
      bar.update(bar.getTotal(), { rows });
      bar.stop();
    },
  };
}

/** A progress bar on stderr (drawn on a terminal only) for a training's steps; closes itself when done. */
function stepProgress(label: string): (p: { done: number; total: number; detail: string }) => void {
  const bar = new SingleBar({ format: `${label.padEnd(12)} [{bar}] {percentage}% | {detail} | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
  let started = false;
  return ({ done, total, detail }) => {
    if (!started) {
      bar.start(total, 0, { detail });
      started = true;
    }
    bar.update(Math.min(done, total), { detail });
    if (done >= total) bar.stop();
  };
}

const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(4));

function parsePairs(text: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const [k, v, extra] = pair.split('=').map((x) => x.trim());
    if (!k || !v || extra !== undefined) throw new AppError('INVALID_ARGUMENT', `${flag}: expected FIELD=column pairs separated by commas, got ${JSON.stringify(pair)}`, { field: flag });
    out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------- state

program
  .command('state')
  .description("Inspect a group's local state (stop the service first: RocksDB allows one process per store)")
  .command('digest')
  .description('SHA-256 of each partition store (replicated keys only) and of all of them together')
  .requiredOption('-g, --group <name>', 'dataset group')
  .option('--json', 'print JSON')
  .action(async (opts: { group: string; json?: boolean }) => {
    const c = config();
    const group = validateGroupName(opts.group);
    const result = await digestGroupState(join(c.state.dir, group));
    if (opts.json) say(JSON.stringify(result));
    else {
      for (const p of result.partitions) say(`p${p.partition}\t${p.keys} keys\t${p.digest}`);
      say(`all\t${result.keys} keys\t${result.digest}`);
    }
  });

// ---------------------------------------------------------------- versions

const versionsCmd = program.command('versions').description("A group's model versions: list, train, promote, roll back (every instance of the group follows)");

/** The group's registry, the served announcement, and a producer to announce with. */
async function versionsContext<T>(
  group: string,
  fn: (x: { c: Readonly<Config>; registry: VersionRegistry; serving: ServingRecord | undefined; producer: Producer; brokers: string[] }) => Promise<T>,
): Promise<T> {
  const c = config();
  const { brokers } = await resolveBrokers(c, false);
  await withAdmin(c, brokers, (admin) => applyTopics(admin, group, c));
  const kafka = createKafka(c, brokers, '-versions');
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    return await fn({ c, registry: new VersionRegistry(versionsDir(c, group)), serving: await readServing(kafka, group), producer, brokers });
  } finally {
    await producer.disconnect();
  }
}

versionsCmd
  .command('list')
  .description('Every version, oldest first, with its NDCG@10 and popularity-count\'s on its split; * marks the served one')
  .requiredOption('-g, --group <name>', 'dataset group')
  .option('--json', 'print JSON')
  .action(async (opts: { group: string; json?: boolean }) => {
    const group = validateGroupName(opts.group);
    await versionsContext(group, async ({ registry, serving }) => {
      const list = registry.list();
      if (opts.json) {
        say(JSON.stringify({ serving: serving ?? null, versions: list.map(({ report, training: _t, ...v }) => ({ ...v, metrics: report.metrics, baseline: report.baseline.metrics })) }));
        return;
      }
      if (list.length === 0) say(`no versions in ${registry.dir}`);
      for (const v of list) {
        const m = v.report.metrics.normalized_discounted_cumulative_gain_at_10;
        const b = v.report.baseline.metrics.normalized_discounted_cumulative_gain_at_10;
        say(`${serving?.version === v.version ? '*' : ' '} ${v.version}\t${v.recipe}\tNDCG@10 ${fmt(m)} (popularity ${fmt(b)}, ${v.report.split})\t${v.data.events} events\t${v.createdAt}`);
      }
      if (serving && !registry.has(serving.version)) say(`served: ${serving.version} (not in ${registry.dir})`);
    });
  });

versionsCmd
  .command('train')
  .description('Train a version now from the group\'s interactions topic (training.recipe, training.split) and promote it by training.promote')
  .requiredOption('-g, --group <name>', 'dataset group')
  .option('--json', 'print JSON')
  .action(async (opts: { group: string; json?: boolean }) => {
    const group = validateGroupName(opts.group);
    await versionsContext(group, async ({ c, registry, serving, producer, brokers }) => {
      const info = await trainFromTopic({ config: c, group, brokers, versionsDir: registry.dir });
      const decision = await promoteIfAllowed(producer, group, registry, info, serving, c.training);
      if (opts.json) say(JSON.stringify({ version: info.version, promoted: decision.promote, reason: decision.reason, metrics: info.report.metrics }));
      else {
        printReport(info.report, false);
        say(`${info.version}: ${decision.promote ? 'promoted' : 'not promoted'} (${decision.reason})`);
      }
    });
  });

versionsCmd
  .command('promote <version>')
  .description('Serve this version (every instance swaps it in)')
  .requiredOption('-g, --group <name>', 'dataset group')
  .action(async (version: string, opts: { group: string }) => {
    const group = validateGroupName(opts.group);
    await versionsContext(group, async ({ registry, serving, producer }) => {
      registry.info(version);
      const r = await announce(producer, group, version, serving, 'promoted by hand');
      say(`serving ${r.version}${r.previous.length ? ` (before: ${r.previous.at(-1)})` : ''}`);
    });
  });

versionsCmd
  .command('rollback')
  .description('Serve the version served before the current one')
  .requiredOption('-g, --group <name>', 'dataset group')
  .action(async (opts: { group: string }) => {
    const group = validateGroupName(opts.group);
    await versionsContext(group, async ({ serving, producer }) => {
      const r = await rollback(producer, group, serving);
      say(`serving ${r.version} (rolled back from ${serving?.version})`);
    });
  });

// ---------------------------------------------------------------- config

program
  .command('config')
  .description('Print the effective config (defaults < file < environment), or every key with --keys')
  .option('--keys', 'list every key with its environment variable, default and meaning')
  .option('--markdown', 'with --keys: as the Markdown table of the README')
  .action((opts: { keys?: boolean; markdown?: boolean }) => {
    if (opts.keys) {
      if (opts.markdown) say('| key | environment variable | default | meaning |\n|---|---|---|---|');
      for (const k of configKeys()) {
        const d = JSON.stringify(k.default);
        say(opts.markdown ? `| \`${k.key}\` | \`${k.env}\` | \`${d}\` | ${k.description} |` : `${k.key}\t${k.env}\t${d}\t${k.description}`);
      }
      return;
    }
    const c = config();
    say(JSON.stringify(redactConfig(c), null, 2));
  });

// ---------------------------------------------------------------- helpers

async function withAdmin<T>(c: Readonly<Config>, brokers: string[], fn: (admin: ReturnType<ReturnType<typeof createKafka>['admin']>) => Promise<T>): Promise<T> {
  const admin = createKafka(c, brokers, '-admin').admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

function printTopics(group: string, reports: TopicReport[]): void {
  say(`topics of group "${group}":`);
  for (const r of reports) say(`  ${r.action.padEnd(16)} ${r.topic.padEnd(32)} ${r.detail}`);
}

const ms = (n: number): string => (n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (isAppError(err)) {
    note(`streamrec: error ${err.code}: ${err.message}`);
    note(`  fix: ${err.fix}`);
    process.exitCode = 1;
  } else {
    note(`streamrec: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 70;
  }
}
