/** `streamrec config`: the effective config, or every key. */
import type { Command } from 'commander';
import { configKeys, redactConfig } from '../../config/index.js';
import { say, type CliContext } from '../common.js';

export function registerConfigCommand(program: Command, ctx: CliContext): void {
  const { config } = ctx;
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
}
