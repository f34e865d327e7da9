/**
 * `streamrec start`: the main job (a local broker unless KAFKA_BROKERS is set, the group's topics,
 * sample data, the stream processor and the HTTP API) until a signal stops it.
 */
import { Option, type Command } from 'commander';
import { pino } from 'pino';
import { configKeys, type Config } from '../../config/index.js';
import { syntheticInteractions, syntheticItems } from '../../data/synthetic.js';
import { produceRecords, streamRecords } from '../../kafka/produce.js';
import { resolveBrokers } from '../../kafka/connect.js';
import { stopLocalKafka } from '../../kafka/local-broker.js';
import { applyTopics, topicName, topicOffsets, validateGroupName } from '../../kafka/topics.js';
import { startService, type Service } from '../../stream/service.js';
import type { Logger } from '../../util/log.js';
import { rootKeyFile } from '../../api/auth.js';
import { intArg, ms, note, printTopics, say, withAdmin, type CliContext } from '../common.js';
import { exitSoon, stopSignal } from '../signals.js';

export function registerStartCommand(program: Command, ctx: CliContext): void {
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
        await start(ctx, opts, stopRequested, shutdown);
      } catch (err) {
        // Printed by the catch at the end of main.ts. A Kafka client or a timer must not keep a
        // process that failed to start alive: it exits shortly after, non-zero.
        exitSoon(1);
        throw err;
      }
      exitSoon(0);
    });
}

interface StartOptions {
  group?: string;
  port?: number;
  sample: boolean;
  sampleRate: number;
}

async function start(ctx: CliContext, opts: StartOptions, stopRequested: Promise<string>, shutdown: { graceMs: number }): Promise<void> {
  const { config } = ctx;
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
