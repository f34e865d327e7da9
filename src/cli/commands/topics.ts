/** `streamrec topics create|tail`: a dataset group's topics. */
import { Option, type Command } from 'commander';
import { AppError } from '../../errors/index.js';
import { createCodecs } from '../../serde/avro.js';
import { createKafka } from '../../kafka/client.js';
import { resolveBrokers } from '../../kafka/connect.js';
import { applyTopics, topicDefinitions, topicName, validateGroupName, type TopicName } from '../../kafka/topics.js';
import { intArg, printTopics, say, withAdmin, type CliContext } from '../common.js';
import { stopSignal } from '../signals.js';

export function registerTopicsCommands(program: Command, ctx: CliContext): void {
  const { config } = ctx;
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
}
