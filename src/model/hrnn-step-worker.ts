/**
 * The HRNN step thread (src/model/hrnn-step-remote.ts is its client): steps users' states through
 * their new events with applyEventsBatch on its own TensorFlow.js engine (wasm has no threads in
 * Node: a second engine is what puts the second core to work), while the processor's thread goes
 * on with its other partitions' batches.
 *
 * Per model version it keeps the GRU weights (a copy) and an item matrix E of the model's size whose
 * rows arrive with the first batch that needs them: a Float32Array of zeros is not resident until
 * written, so the thread holds the rows of the items seen, not the whole catalogue.
 */
import { parentPort } from 'node:worker_threads';
import { initBackend } from './backend.js';
import { applyEventsBatch, jsKernel, type BatchEvent, type StepKernel, type UserEvents } from './hrnn-batch.js';
import { TfStepKernel } from './hrnn-batch-tf.js';
import type { HrnnState, HrnnWeights } from './hrnn-math.js';
import { weightsView } from './hrnn-train.js';

/** A model version: its dense weights (the GRUs, init) and shape. */
export interface LoadMessage {
  type: 'load';
  id: number;
  hidden: number;
  items: number;
  dense: Float32Array;
  timeoutMs: number;
}

/**
 * One call: U users, user u with counts[u] events (in order, users one after the other). An
 * event's item is -1 (unknown to the model) or its index; `vec[k]` >= 0 points to a row of `vecs`
 * (a cold item's vector), -1 to E's row; `extra[k]` >= 0 to a row of `extras` (context), -1 none.
 * `rowItems` / `rows`: E rows the thread has not been sent yet.
 */
export interface StepMessage {
  type: 'step';
  seq: number;
  id: number;
  rowItems: Int32Array;
  rows: Float32Array;
  h: Float32Array;
  c: Float32Array;
  /** NaN: no event yet. */
  last: Float64Array;
  counts: Int32Array;
  item: Int32Array;
  ts: Float64Array;
  vec: Int32Array;
  vecs: Float32Array;
  extra: Int32Array;
  extras: Float32Array;
}

export type StepRequest = LoadMessage | StepMessage | { type: 'drop'; id: number };
export type StepReply = { type: 'stepped'; seq: number; h: Float32Array; c: Float32Array; last: Float64Array } | { type: 'error'; seq: number; message: string };

/** Per model version: its weights, and its kernel (TensorFlow.js holds the weights as tensors). */
const models = new Map<number, { w: HrnnWeights; timeoutMs: number; kernel: StepKernel }>();
const backend = initBackend();

function step(m: StepMessage): StepReply & { type: 'stepped' } {
  const model = models.get(m.id);
  if (!model) throw new Error(`hrnn step thread: model ${m.id} is not loaded`);
  const { w, kernel } = model;
  const H = w.hidden;
  for (let r = 0; r < m.rowItems.length; r++) w.E.set(m.rows.subarray(r * H, (r + 1) * H), m.rowItems[r]! * H);
  const users: UserEvents[] = new Array(m.counts.length);
  let e = 0;
  for (let u = 0; u < m.counts.length; u++) {
    const state: HrnnState = { h: m.h.subarray(u * H, (u + 1) * H), c: m.c.subarray(u * H, (u + 1) * H), last: Number.isNaN(m.last[u]) ? undefined : m.last[u]! };
    const events: BatchEvent[] = new Array(m.counts[u]!);
    for (let i = 0; i < events.length; i++, e++) {
      const item = m.item[e]!;
      if (item < 0) {
        events[i] = { item: null, ts: m.ts[e]! };
        continue;
      }
      const v = m.vec[e]!;
      const x = m.extra[e]!;
      events[i] = {
        item,
        ts: m.ts[e]!,
        itemVector: v >= 0 ? m.vecs.subarray(v * H, (v + 1) * H) : w.E.subarray(item * H, (item + 1) * H),
        ...(x >= 0 ? { extra: m.extras.subarray(x * H, (x + 1) * H) } : {}),
      };
    }
    users[u] = { state, events };
  }
  const out = applyEventsBatch(w, users, model.timeoutMs, kernel);
  const h = new Float32Array(out.length * H);
  const c = new Float32Array(out.length * H);
  const last = new Float64Array(out.length);
  out.forEach((s, u) => {
    h.set(s.h, u * H);
    c.set(s.c, u * H);
    last[u] = s.last ?? NaN;
  });
  return { type: 'stepped', seq: m.seq, h, c, last };
}

// Messages are handled in order: a model is loaded (the backend awaited) before its first step.
let queue = Promise.resolve();
parentPort!.on('message', (m: StepRequest) => {
  // A failed load leaves the model out: its steps then answer an error.
  queue = queue.then(() => handle(m)).catch(() => undefined);
});

async function handle(m: StepRequest): Promise<void> {
  if (m.type === 'load') {
    const name = await backend;
    const w = weightsView(m.hidden, m.items, m.dense, new Float32Array(m.items * m.hidden), new Float32Array(m.items));
    models.set(m.id, { w, timeoutMs: m.timeoutMs, kernel: name === 'cpu' ? jsKernel : new TfStepKernel() });
    return;
  }
  if (m.type === 'drop') {
    const model = models.get(m.id);
    if (model?.kernel instanceof TfStepKernel) model.kernel.dispose();
    models.delete(m.id);
    return;
  }
  try {
    const reply = step(m);
    parentPort!.postMessage(reply, [reply.h.buffer as ArrayBuffer, reply.c.buffer as ArrayBuffer, reply.last.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ type: 'error', seq: m.seq, message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies StepReply);
  }
}
