/** `streamrec import`: files as they are into a group's topics or an offline dataset folder. */
import type { Command } from 'commander';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AppError } from '../../errors/index.js';
import type { MetadataType } from '../../import/read.js';
import { offlineSink, runImport, topicSink } from '../../import/import.js';
import { createCodecs } from '../../serde/avro.js';
import type { Producer } from '../../kafka/kafkajs.js';
import { createKafka } from '../../kafka/client.js';
import { resolveBrokers } from '../../kafka/connect.js';
import { applyTopics, topicName, validateGroupName } from '../../kafka/topics.js';
import { fileProgress, ms, parsePairs, say, withAdmin, type CliContext } from '../common.js';

export function registerImportCommand(program: Command, ctx: CliContext): void {
  const { config } = ctx;
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
      try {
        mkdirSync(rejectsDir, { recursive: true });
        accessSync(rejectsDir, constants.W_OK);
      } catch (err) {
        // Before any row is read: a read-only working folder (a container's) is a clear refusal, not a stack trace.
        const why = (err as NodeJS.ErrnoException).code ?? String(err);
        throw new AppError('INVALID_ARGUMENT', `the rejects folder ${rejectsDir} cannot be written (${why}): give --rejects DIR, a folder you can write`, { field: '--rejects' });
      }
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
}
