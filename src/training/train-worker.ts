/** Runs one service training (src/training/stream-train.ts) in a worker thread; posts the new version's info. */
import { parentPort, workerData } from 'node:worker_threads';
import { trainFromTopic, type TopicTrainingOptions } from './stream-train.js';

const input = workerData as Omit<TopicTrainingOptions, 'log'>;
try {
  const info = await trainFromTopic(input);
  parentPort!.postMessage({ ok: true, info });
} catch (err) {
  parentPort!.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) });
}
