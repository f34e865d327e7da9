/**
 * HRNN training on several cores: wasm has no threads in Node, so each worker thread runs its own
 * tfjs engine over its share of the users, all updating one set of weights in SharedArrayBuffers
 * without locks (Hogwild!, Niu et al. 2011: the updates are sparse in the item rows, and a rare
 * collision on the dense weights costs little). Not bit-for-bit reproducible: `workers: 1` is.
 */
import { Worker } from 'node:worker_threads';
import { workerScript } from '../util/worker.js';
import type { BackendName } from './backend.js';
import { allocTrainArrays, targetsPerEpoch, trained, type EncodedData, type HrnnTrainParams, type TrainedHrnn, type TrainProgress } from './hrnn-train.js';
import type { WorkerInput, WorkerMessage } from './hrnn-worker.js';

export async function trainHrnnParallel(
  data: EncodedData,
  params: HrnnTrainParams,
  workers: number,
  backend: BackendName,
  onProgress?: (p: TrainProgress) => void,
  /** Stop after about this many targets in all (each worker its share; benchmarks). */
  limit = Infinity,
): Promise<TrainedHrnn> {
  const arrays = allocTrainArrays(params.hiddenSize, data.itemIds.length, params.seed, true, data.features?.sizes);
  const total = targetsPerEpoch(data) * params.epochs;
  const done = new Array<number>(workers).fill(0);
  const loss = new Array<number>(workers).fill(0);
  const t0 = performance.now();
  const url = workerScript(import.meta.url, './hrnn-worker.js', 'model/hrnn-worker.js');
  const threads: Worker[] = [];
  const results = await Promise.all(
    Array.from({ length: workers }, (_, index) => {
      const input: WorkerInput = { data, params, arrays, part: { index, count: workers }, backend, limit: Math.ceil(limit / workers) };
      const worker = new Worker(url, { workerData: input });
      threads.push(worker);
      return new Promise<{ targets: number; lossByEpoch: number[] }>((resolve, reject) => {
        worker.on('message', (m: WorkerMessage) => {
          if (m.type === 'progress') {
            done[index] = m.done;
            loss[index] = m.loss;
            const all = done.reduce((a, b) => a + b, 0);
            const seconds = (performance.now() - t0) / 1000;
            try {
              onProgress?.({ epoch: Math.min(params.epochs - 1, Math.floor((all / total) * params.epochs)), epochs: params.epochs, step: 0, done: all, total, loss: loss.reduce((a, b) => a + b, 0) / workers, eventsPerSecond: all / seconds });
            } catch (err) {
              // The progress hook stops the training (TrainHooks.shouldStop): every worker goes.
              reject(err);
              for (const w of threads) void w.terminate();
            }
          } else if (m.type === 'done') {
            resolve({ targets: m.targets, lossByEpoch: m.lossByEpoch });
            void worker.terminate();
          } else {
            reject(new Error(`hrnn training worker ${index}: ${m.message}`));
            void worker.terminate();
          }
        });
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (code !== 0) reject(new Error(`hrnn training worker ${index} exited with code ${code}`));
        });
      });
    }),
  );
  const lossByEpoch = results[0]!.lossByEpoch.map((_, e) => results.reduce((a, r) => a + (r.lossByEpoch[e] ?? 0), 0) / results.length);
  return trained(data, params, arrays, { targets: results.reduce((a, r) => a + r.targets, 0), lossByEpoch }, t0, onProgress);
}
