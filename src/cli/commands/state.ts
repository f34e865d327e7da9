/** `streamrec state digest`: inspect a group's local state. */
import type { Command } from 'commander';
import { join } from 'node:path';
import { validateGroupName } from '../../kafka/topics.js';
import { digestGroupState } from '../../state/digest.js';
import { say, type CliContext } from '../common.js';

export function registerStateCommands(program: Command, ctx: CliContext): void {
  const { config } = ctx;
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
}
