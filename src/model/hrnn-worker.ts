/**
 * A training worker thread (src/model/hrnn-parallel.ts): trains its part of the users on the
 * shared arrays, posts progress, then its result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from './backend.js';
import { trainLoop, type EncodedData, type HrnnTrainParams, type Part, type TrainArrays } from './hrnn-train.js';

export interface WorkerInput {
  data: EncodedData;
  params: HrnnTrainParams;
  arrays: TrainArrays;
  part: Part;
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  /** Stop after this many targets (Infinity: all epochs). */
  limit?: number;
}

export type WorkerMessage = { type: 'progress'; done: number; loss: number } | { type: 'done'; targets: number; lossByEpoch: number[] } | { type: 'error'; message: string };

const input = workerData as WorkerInput;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
try {
  await initBackend(input.backend);
  const result = trainLoop(input.data, input.params, input.arrays, input.part, (p) => post({ type: 'progress', done: p.done, loss: p.loss }), input.limit ?? Infinity);
  post({ type: 'done', targets: result.targets, lossByEpoch: result.lossByEpoch });
} catch (err) {
  post({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}
