/**
 * A trial thread of a parallel hyperparameter search (src/training/hpo.ts): builds the validation
 * split once from the training part it is given, then scores each {recipe, params} it is sent.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AppError } from '../errors/index.js';
import type { TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';
import { recipeNamed } from './recipes.js';
import { validationScore, validationSplit, type ValidationContext } from './validation.js';

export interface HpoWorkerInput {
  trainPart: InteractionFields[];
  seed: number;
  maxUsers: number;
  excludeSeen: boolean;
  seenBound: number;
  metadata?: TrainingMetadata;
}
export type HpoWorkerRequest = { id: number; recipe: string; params: Record<string, unknown> };
export type HpoWorkerReply =
  | { id: number; ok: true; ndcg10: number; hr10: number; trainMs: number; evaluateMs: number }
  | { id: number; ok: false; message: string; code?: string; field?: string };

const input = workerData as HpoWorkerInput;
const split = validationSplit(input.trainPart, { seed: input.seed, maxUsers: input.maxUsers });
const ctx: ValidationContext = {
  split,
  catalogueSize: new Set(split.train.map((e) => e.ITEM_ID)).size,
  excludeSeen: input.excludeSeen,
  seenBound: input.seenBound,
  ...(input.metadata ? { metadata: input.metadata } : {}),
};
parentPort!.on('message', (m: HpoWorkerRequest) => {
  const post = (r: HpoWorkerReply) => parentPort!.postMessage(r);
  Promise.resolve()
    .then(() => validationScore(recipeNamed(m.recipe), m.params, ctx))
    .then(
    (s) => post({ id: m.id, ok: true, ndcg10: s.ndcg10, hr10: s.hr10, trainMs: s.trainMs, evaluateMs: s.evaluateMs }),
    (err: unknown) => post({ id: m.id, ok: false, message: err instanceof Error ? err.message : String(err), ...(err instanceof AppError ? { code: err.code, ...(err.field ? { field: err.field } : {}) } : {}) }),
  );
});
