/** `streamrec kafka start|stop|status`: the local Apache Kafka broker. */
import { Option, type Command } from 'commander';
import { localKafkaOptions, localKafkaStatus, startLocalKafka, stopLocalKafka } from '../../kafka/local-broker.js';
import { intArg, ms, note, say, type CliContext } from '../common.js';

export function registerKafkaCommands(program: Command, ctx: CliContext): void {
  const { config } = ctx;
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
}
