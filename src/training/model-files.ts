/**
 * A trained model on disk: `<dir>/model.json` (the recipe's data, the seen-items rule, each user's
 * latest interactions for inference) and `<dir>/metrics.json` (the training report). Written
 * to a temporary file first, then renamed: a reader never sees half a model.
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
import type { SeenRule, TrainReport } from './train.js';

/** How many of a user's latest interactions the model file keeps for inference. */
export const HISTORY_PER_USER = 50;

export interface ModelBundle {
  model: Model;
  excludeSeen: boolean;
  /** userId -> latest interactions, oldest first. */
  histories: Map<string, { ITEM_ID: string; TIMESTAMP: number }[]>;
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

/** How the model was trained, so `streamrec evaluate` can redo it on another split. */
export interface TrainingSpec {
  /** A file, or the group's interactions topic (a version trained by the running service). */
  data: DataSpec | { topic: string; events: number };
  recipe: string;
  seen: SeenRule;
  params?: Record<string, unknown>;
}

export function saveModel(dir: string, bundle: ModelBundle, report: TrainReport, training: TrainingSpec): void {
  mkdirSync(dir, { recursive: true });
  const data = {
    format: 1,
    training,
    excludeSeen: bundle.excludeSeen,
    model: bundle.model.toJSON(),
    histories: [...bundle.histories].map(([u, h]) => [u, h.map((e) => [e.ITEM_ID, e.TIMESTAMP])]),
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
  return { model, excludeSeen: data.excludeSeen, histories };
}
