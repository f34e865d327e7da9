/**
 * A trained model on disk: `<dir>/model.json` (the recipe's data, the seen-items rule, each user's
 * latest interactions for inference, each user's seen items up to the bound) and `<dir>/metrics.json`
 * (the training report). Written to a temporary file first, then renamed: a reader never sees half
 * a model.
 *
 * Two things per user, kept apart: `histories`, the latest HISTORY_PER_USER interactions a recipe
 * steps its state through (what the stream's stored events give it), and `seen`, the items the
 * `exclude` rule leaves out: every distinct item of the user's whole training history, up to
 * `seenBound` (the stream's `state.maxSeenItemsPerUser`; src/training/seen.ts).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppError } from '../errors/index.js';
import { HrnnModel, type HrnnJSON } from '../recipes/hrnn.js';
import { PopularityModel } from '../recipes/popularity.js';
import { SimsModel } from '../recipes/sims.js';
import type { Model } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import type { DataSpec } from './data.js';
import { SEEN_ITEMS_PER_USER, userSeenItems } from './seen.js';
import type { SeenRule, TrainReport } from './train.js';

/** How many of a user's latest interactions the model file keeps for inference. */
export const HISTORY_PER_USER = 50;

export interface ModelBundle {
  model: Model;
  excludeSeen: boolean;
  /** userId -> latest interactions, oldest first (a recipe's input for the user's state). */
  histories: Map<string, { ITEM_ID: string; TIMESTAMP: number }[]>;
  /** userId -> the items the `exclude` rule leaves out: distinct, in order of first touch, at most `seenBound` (src/training/seen.ts). */
  seen: Map<string, string[]>;
  /** The bound the seen lists were kept with (state.maxSeenItemsPerUser). */
  seenBound: number;
}

/** What a model folder keeps per user, from interactions in time order: the latest history and the seen items. */
export function userData(
  interactions: readonly InteractionFields[],
  seenBound: number = SEEN_ITEMS_PER_USER,
): Pick<ModelBundle, 'histories' | 'seen' | 'seenBound'> {
  return { histories: userHistories(interactions), seen: userSeenItems(interactions, seenBound), seenBound };
}

/** The items the `exclude` rule leaves out of a user's lists (none for a user the model does not know). */
export function seenOf(bundle: Pick<ModelBundle, 'seen'>, userId: string): ReadonlySet<string> {
  return new Set(bundle.seen.get(userId) ?? []);
}

export function userHistories(interactions: readonly InteractionFields[]): Map<string, { ITEM_ID: string; TIMESTAMP: number }[]> {
  const out = new Map<string, { ITEM_ID: string; TIMESTAMP: number }[]>();
  for (const e of interactions) {
    let h = out.get(e.USER_ID);
    if (!h) out.set(e.USER_ID, (h = []));
    h.push({ ITEM_ID: e.ITEM_ID, TIMESTAMP: e.TIMESTAMP });
    if (h.length > HISTORY_PER_USER * 2) h.splice(0, h.length - HISTORY_PER_USER);
  }
  for (const [u, h] of out) if (h.length > HISTORY_PER_USER) out.set(u, h.slice(-HISTORY_PER_USER));
  return out;
}

function seenOfHistories(histories: ModelBundle['histories']): ModelBundle['seen'] {
  return new Map([...histories].map(([u, h]) => [u, [...new Set(h.map((e) => e.ITEM_ID))]]));
}

/** How the model was trained, so `streamrec evaluate` can redo it on another split. */
export interface TrainingSpec {
  /** A file, or the group's interactions topic (a version trained by the running service). */
  data: DataSpec | { topic: string; events: number };
  recipe: string;
  seen: SeenRule;
  /** state.maxSeenItemsPerUser when the model was trained (absent in older folders: the default). */
  seenBound?: number;
  params?: Record<string, unknown>;
  /** Asked-for hyperparameter search (the chosen parameters and trials are in the report's `hpo`). */
  hpo?: HpoRequest;
}

/** A hyperparameter search as a solution or the config asks for it (src/training/hpo.ts). */
export interface HpoRequest {
  budgetMs: number;
  maxTrials?: number;
}

export function saveModel(dir: string, bundle: ModelBundle, report: TrainReport, training: TrainingSpec): void {
  mkdirSync(dir, { recursive: true });
  // A bundle made by hand without seen lists (a cast in code): its histories are all it knows.
  const seen = (bundle.seen as ModelBundle['seen'] | undefined) ?? seenOfHistories(bundle.histories);
  const seenBound = (bundle.seenBound as number | undefined) ?? HISTORY_PER_USER;
  const data = {
    format: 2,
    training: { ...training, seenBound },
    excludeSeen: bundle.excludeSeen,
    model: bundle.model.toJSON(),
    histories: [...bundle.histories].map(([u, h]) => [u, h.map((e) => [e.ITEM_ID, e.TIMESTAMP])]),
    seenBound,
    seen: [...seen],
  };
  const write = (name: string, value: unknown) => {
    const tmp = join(dir, `.${name}.tmp-${process.pid}`);
    writeFileSync(tmp, `${JSON.stringify(value)}\n`);
    renameSync(tmp, join(dir, name));
  };
  write('metrics.json', report);
  write('model.json', data);
}

interface ModelFile {
  format: number;
  training: TrainingSpec;
  excludeSeen: boolean;
  model: { recipe: string } & Record<string, unknown>;
  histories: [string, [string, number][]][];
  /** Format 2 on; format 1 folders kept only the histories. */
  seenBound?: number;
  seen?: [string, string[]][];
}

function readModelFile(dir: string): ModelFile {
  try {
    return JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as ModelFile;
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `no readable model in ${dir} (model.json): ${(err as Error).message}`, { field: '--model', cause: err });
  }
}

export function loadTraining(dir: string): TrainingSpec {
  return readModelFile(dir).training;
}

export function loadModel(dir: string): ModelBundle {
  const data = readModelFile(dir);
  let model: Model;
  if (data.model.recipe === 'popularity-count') model = PopularityModel.fromJSON(data.model as unknown as Parameters<typeof PopularityModel.fromJSON>[0]);
  else if (data.model.recipe === 'sims') model = SimsModel.fromJSON(data.model as unknown as Parameters<typeof SimsModel.fromJSON>[0]);
  else if (['hrnn', 'hrnn-metadata', 'hrnn-coldstart'].includes(data.model.recipe)) model = HrnnModel.fromJSON(data.model as unknown as HrnnJSON);
  else throw new AppError('INVALID_ARGUMENT', `${dir}/model.json: unknown recipe ${JSON.stringify(data.model.recipe)}`, { field: '--model' });
  const histories = new Map(data.histories.map(([u, h]) => [u, h.map(([ITEM_ID, TIMESTAMP]) => ({ ITEM_ID, TIMESTAMP }))]));
  // A format-1 folder knows only the latest HISTORY_PER_USER interactions of each user: retrain it
  // to leave out the whole history.
  const seen = data.seen ? new Map(data.seen) : seenOfHistories(histories);
  return { model, excludeSeen: data.excludeSeen, histories, seen, seenBound: data.seenBound ?? HISTORY_PER_USER };
}
