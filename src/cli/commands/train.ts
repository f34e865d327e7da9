/** `streamrec train|evaluate|batch-infer`: offline training, evaluation and batch inference on files. */
import { Option, type Command } from 'commander';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AppError } from '../../errors/index.js';
import { RECIPES, trainAndEvaluate, type SeenRule, type SplitName, type TrainReport } from '../../training/train.js';
import type { CandidateRow } from '../../training/auto.js';
import { loadInteractions, loadTrainingMetadata, type DataSpec, type LoadedData } from '../../training/data.js';
import { loadModel, loadTraining, saveModel, userData } from '../../training/model-files.js';
import { batchInfer } from '../../training/batch-infer.js';
import { DEFAULT_HPO_BUDGET_MS, parseBudget, trialTable, type HpoTrial } from '../../training/hpo.js';
import { fileProgress, fmt, intArg, ms, note, parsePairs, say, stepProgress, type CliContext } from '../common.js';

export function registerTrainCommands(program: Command, ctx: CliContext): void {
  const { config } = ctx;
  program
    .command('train')
    .description('Train and evaluate a recipe offline on an interactions file; prints its metrics beside popularity-count on the same split')
    .option('-i, --interactions <file>', 'CSV, TSV or JSON Lines; a Personalize-style header (USER_ID,ITEM_ID,TIMESTAMP,...) needs no mapping')
    .option('-d, --data <dir>', 'an offline dataset folder written by `streamrec import --offline` (instead of --interactions)')
    .requiredOption('-r, --recipe <name>', `recipe: ${Object.keys(RECIPES).join(', ')}, or auto (the best on a validation split of the training part)`)
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
    .option('--hpo', 'search the parameters not given in --params first (on a validation split of the training part; docs/tuning.md)')
    .option('--budget <time>', 'the search budget with --hpo: 20m, 90s, 1.5h or seconds (default 10m)')
    .option('--max-trials <n>', 'with --hpo: sample at most this many trials', intArg('--max-trials'))
    .option('--hpo-seed <n>', 'with --hpo: the seed of the search (trial sampling, validation users)', intArg('--hpo-seed'))
    .option('--hpo-parallel <n>', 'with --hpo: trials at a time, one core each (default 1: one trial on all cores)', intArg('--hpo-parallel'))
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
        hpo?: boolean;
        budget?: string;
        maxTrials?: number;
        hpoSeed?: number;
        hpoParallel?: number;
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
        if (!opts.hpo && (opts.budget !== undefined || opts.maxTrials !== undefined || opts.hpoSeed !== undefined || opts.hpoParallel !== undefined)) {
          throw new AppError('INVALID_ARGUMENT', '--budget, --max-trials, --hpo-seed and --hpo-parallel go with --hpo', { field: '--hpo' });
        }
        const budgetMs = opts.hpo ? (opts.budget === undefined ? DEFAULT_HPO_BUDGET_MS : parseBudget(opts.budget, '--budget')) : undefined;
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
          ...(budgetMs !== undefined
            ? {
                hpo: {
                  budgetMs,
                  ...(opts.maxTrials !== undefined ? { maxTrials: opts.maxTrials } : {}),
                  ...(opts.hpoSeed !== undefined ? { seed: opts.hpoSeed } : {}),
                  ...(opts.hpoParallel !== undefined ? { parallel: opts.hpoParallel } : {}),
                  onTrial: (t: HpoTrial) => {
                    const r = t.results.at(-1);
                    note(`hpo trial ${t.trial}: ${t.status}${r ? `${r.epochs !== undefined ? `, ${r.epochs} epochs` : ''}, validation NDCG@10 ${r.ndcg10.toFixed(4)}` : ''}`);
                  },
                },
              }
            : {}),
        });
        if (opts.output) {
          saveModel(opts.output, { model, excludeSeen: report.seen.excludeSeen, ...userData(rows, seenBound) }, report, {
            data: spec,
            recipe: opts.recipe,
            seen: opts.seen,
            ...(report.hpo ? { params: report.hpo.chosen.params } : params ? { params } : {}),
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
}

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

export function printReport(report: TrainReport, json?: boolean): void {
  if (json) {
    say(JSON.stringify(report));
    return;
  }
  if (report.hpo) for (const line of trialTable(report.hpo)) say(line);
  say(`${report.recipe} on ${report.interactions} interactions, ${report.users} users, ${report.items} items; split ${report.split}, ${report.testUsers} test users`);
  say(`seen items: ${report.seen.excludeSeen ? 'left out' : 'allowed'} (rule ${report.seen.rule}, repeat rate ${(report.seen.repeatRate * 100).toFixed(1)}%)`);
  say(`trained in ${ms(report.trainMs)}, evaluated in ${ms(report.evaluateMs)}`);
  printChoices(report);
  say(`${'metric'.padEnd(46)} ${report.recipe.padStart(16)} ${'popularity-count'.padStart(16)}`);
  for (const [k, v] of Object.entries(report.metrics)) {
    const b = (report.baseline.metrics as unknown as Record<string, number>)[k]!;
    say(`${k.padEnd(46)} ${fmt(v).padStart(16)} ${fmt(b).padStart(16)}`);
  }
}

/** recipe auto's table and hrnn-metadata's feature choice, when the report has them. */
function printChoices(report: TrainReport): void {
  const name = (r: CandidateRow) => (r.features ? `${r.recipe} [${r.features.join(', ') || 'no features'}]` : r.recipe);
  const table = (rows: CandidateRow[]) => {
    say(`  ${'candidate'.padEnd(60)} ${'NDCG@10'.padStart(9)} ${'HR@10'.padStart(9)} ${'train'.padStart(9)}`);
    for (const r of rows) say(`  ${name(r).padEnd(60)} ${fmt(r.ndcg10).padStart(9)} ${fmt(r.hr10).padStart(9)} ${ms(r.trainMs).padStart(9)}`);
  };
  if (report.auto) {
    say(`recipe auto chose ${report.recipe} on ${report.auto.validationUsers} validation users of the training part: ${report.auto.reason}`);
    table(report.auto.table);
  }
  if (report.features) {
    say(`features used: ${report.features.used.join(', ') || 'none'} (${report.features.reason})`);
    if (report.features.table) table(report.features.table);
  }
}
