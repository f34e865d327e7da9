/** `streamrec generate`: a seeded synthetic clickstream as a Personalize-style CSV. */
import { Option, type Command } from 'commander';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { syntheticInteractions } from '../../data/synthetic.js';
import { intArg, say } from '../common.js';

export function registerGenerateCommand(program: Command): void {
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
}
