/**
 * The `streamrec` command. Thin: parse arguments (commander), load the config, call a module, print.
 * This file only wires: the program, its global options, the command groups (src/cli/commands/,
 * registered in the order `--help` lists them) and the error handler.
 */
import { Command } from 'commander';
import { loadConfig, type Config } from '../config/index.js';
import { isAppError } from '../errors/index.js';
import { note, type CliContext } from './common.js';
import { registerStartCommand } from './commands/start.js';
import { registerKafkaCommands } from './commands/kafka.js';
import { registerTopicsCommands } from './commands/topics.js';
import { registerGenerateCommand } from './commands/generate.js';
import { registerImportCommand } from './commands/import.js';
import { registerTrainCommands } from './commands/train.js';
import { registerStateCommands } from './commands/state.js';
import { registerVersionsCommands } from './commands/versions.js';
import { registerSplitCommands } from './commands/split.js';
import { registerConfigCommand } from './commands/config.js';
import { registerMetricsCommands } from './commands/metrics.js';
import { registerUsersCommands } from './commands/users.js';

const program = new Command('streamrec')
  .description('Self-hosted streaming recommendations: Kafka in, RocksDB state, HRNN models, HTTP and Kafka out.')
  .option('-c, --config <file>', 'JSON config file (default: $STREAMREC_CONFIG); environment variables override it')
  .showHelpAfterError();

function config(overrides: Record<string, unknown> = {}): Readonly<Config> {
  return loadConfig({ file: program.opts<{ config?: string }>().config, overrides });
}

const ctx: CliContext = { config };

registerStartCommand(program, ctx);
registerKafkaCommands(program, ctx);
registerTopicsCommands(program, ctx);
registerGenerateCommand(program);
registerImportCommand(program, ctx);
registerTrainCommands(program, ctx); // train, evaluate, batch-infer
registerStateCommands(program, ctx);
registerVersionsCommands(program, ctx);
registerMetricsCommands(program, ctx);
registerUsersCommands(program, ctx);
registerSplitCommands(program, ctx);
registerConfigCommand(program, ctx);

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
