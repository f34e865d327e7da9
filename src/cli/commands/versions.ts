/**
 * `streamrec versions list|train|promote|rollback`: a group's model versions — those of this
 * machine's registry folder and those indexed on `<group>.models` (`<group>.versions`, key
 * `model/<version>`), so every command works from a machine that did not train the version.
 */
import type { Command } from 'commander';
import type { Config } from '../../config/index.js';
import type { Producer } from '../../kafka/kafkajs.js';
import { createKafka } from '../../kafka/client.js';
import { resolveBrokers } from '../../kafka/connect.js';
import { applyTopics, validateGroupName } from '../../kafka/topics.js';
import { pruneModels, type IndexedManifest } from '../../training/model-transfer.js';
import { VersionRegistry } from '../../training/registry.js';
import { trainFromTopic } from '../../training/stream-train.js';
import { announce, promoteIfAllowed, readVersionsTopic, rollback, VersionCatalog, type ServingRecord } from '../../stream/versions.js';
import { versionsDir } from '../../stream/service.js';
import { fmt, say, withAdmin, type CliContext } from '../common.js';
import { printReport } from './train.js';

export function registerVersionsCommands(program: Command, ctx: CliContext): void {
  const versionsCmd = program.command('versions').description("A group's model versions: list, train, promote, roll back (every instance of the group follows)");

  versionsCmd
    .command('list')
    .description('Every version, oldest first, with its NDCG@10 and popularity-count\'s on its split; * marks the served one')
    .requiredOption('-g, --group <name>', 'dataset group')
    .option('--json', 'print JSON')
    .action(async (opts: { group: string; json?: boolean }) => {
      const group = validateGroupName(opts.group);
      await versionsContext(ctx, group, async ({ registry, catalog, serving }) => {
        const list = catalog.list();
        // local: in this machine's registry folder; published: on <group>.models (any instance can fetch it).
        const where = (v: string) => ({ local: registry.has(v), published: catalog.published(v) });
        if (opts.json) {
          say(JSON.stringify({ serving: serving ?? null, versions: list.map(({ report, training: _t, ...v }) => ({ ...v, ...where(v.version), metrics: report.metrics, baseline: report.baseline.metrics })) }));
          return;
        }
        if (list.length === 0) say(`no versions in ${registry.dir} nor on ${group}.models`);
        for (const v of list) {
          const m = v.report.metrics.normalized_discounted_cumulative_gain_at_10;
          const b = v.report.baseline.metrics.normalized_discounted_cumulative_gain_at_10;
          const w = where(v.version);
          say(`${serving?.version === v.version ? '*' : ' '} ${v.version}\t${v.recipe}\tNDCG@10 ${fmt(m)} (popularity ${fmt(b)}, ${v.report.split})\t${v.data.events} events\t${v.createdAt}\t${[w.published ? 'published' : '', w.local ? 'local' : ''].filter(Boolean).join('+')}`);
        }
        if (serving && !catalog.has(serving.version)) say(`served: ${serving.version} (not in ${registry.dir} nor on ${group}.models)`);
      });
    });

  versionsCmd
    .command('train')
    .description('Train a version now from the group\'s interactions topic (training.recipe, training.split) and promote it by training.promote')
    .requiredOption('-g, --group <name>', 'dataset group')
    .option('--json', 'print JSON')
    .action(async (opts: { group: string; json?: boolean }) => {
      const group = validateGroupName(opts.group);
      await versionsContext(ctx, group, async ({ c, registry, catalog, index, serving, producer, brokers }) => {
        // Published to <group>.models before it is announced: every instance can fetch it.
        const info = await trainFromTopic({ config: c, group, brokers, versionsDir: registry.dir });
        const decision = await promoteIfAllowed(producer, group, catalog, info, serving, c.training);
        await pruneModels(producer, group, [...index.values()], decision.serving ?? serving);
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
      await versionsContext(ctx, group, async ({ catalog, serving, producer }) => {
        catalog.info(version);
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
      await versionsContext(ctx, group, async ({ catalog, serving, producer }) => {
        const r = await rollback(producer, group, serving, (v) => catalog.has(v));
        say(`serving ${r.version} (rolled back from ${serving?.version})`);
      });
    });
}

/** The group's registry, the served announcement, and a producer to announce with. */
export async function versionsContext<T>(
  ctx: CliContext,
  group: string,
  fn: (x: {
    c: Readonly<Config>;
    registry: VersionRegistry;
    catalog: VersionCatalog;
    index: ReadonlyMap<string, IndexedManifest>;
    serving: ServingRecord | undefined;
    producer: Producer;
    brokers: string[];
  }) => Promise<T>,
): Promise<T> {
  const c = ctx.config();
  const { brokers } = await resolveBrokers(c, false);
  await withAdmin(c, brokers, (admin) => applyTopics(admin, group, c));
  const kafka = createKafka(c, brokers, '-versions');
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const registry = new VersionRegistry(versionsDir(c, group));
    const { serving, index } = await readVersionsTopic(kafka, group);
    return await fn({ c, registry, catalog: new VersionCatalog(registry, () => index, group), index, serving, producer, brokers });
  } finally {
    await producer.disconnect();
  }
}
