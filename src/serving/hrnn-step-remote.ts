/**
 * HRNN steps on a thread of their own (processor.hrnnStep `thread`; the thread is
 * src/model/hrnn-step-worker.ts): `step(model, runs)` answers what `model.stepMany(runs, kernel)`
 * answers with a TfStepKernel (the same kernel, on the thread's own TensorFlow.js engine), while the
 * caller's thread goes on with other work (the processor: its other partitions' batches).
 *
 * A model version is loaded on the thread once (its dense weights copied); its item rows follow with
 * the first call that uses them; the thread drops the version when the model is collected here.
 * A thread that fails (exits, cannot start) fails the pending and later calls: the caller steps in
 * its own thread then.
 */
import { Worker } from 'node:worker_threads';
import type { HrnnState } from '../model/hrnn-math.js';
import type { StepMessage, StepReply, StepRequest } from '../model/hrnn-step-worker.js';
import type { HistoryEvent, HrnnModel } from '../recipes/hrnn.js';
import { workerScript } from '../util/worker.js';

export class RemoteStepper {
  private worker: Worker | undefined;
  private failure: Error | undefined;
  private seq = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: StepReply & { type: 'stepped' }) => void; reject: (err: Error) => void }>();
  private readonly loaded = new WeakMap<HrnnModel, { id: number; sent: Uint8Array }>();
  private readonly drops = new FinalizationRegistry<number>((id) => this.post({ type: 'drop', id }));

  /** The states after each run's events, from each run's `from`. */
  async step(model: HrnnModel, runs: readonly { from: HrnnState; events: readonly HistoryEvent[] }[]): Promise<HrnnState[]> {
    const worker = this.start();
    const H = model.weights.hidden;
    const N = model.itemIds.length;
    let entry = this.loaded.get(model);
    if (!entry) {
      entry = { id: this.nextId++, sent: new Uint8Array(N) };
      this.loaded.set(model, entry);
      this.drops.register(model, entry.id);
      this.post({ type: 'load', id: entry.id, hidden: H, items: N, dense: model.denseWeights.slice(), timeoutMs: model.params.sessionTimeoutMs });
    }
    const { id, sent } = entry;
    const U = runs.length;
    const total = runs.reduce((n, r) => n + r.events.length, 0);
    const m: StepMessage = {
      type: 'step',
      seq: this.seq++,
      id,
      rowItems: new Int32Array(0),
      rows: new Float32Array(0),
      h: new Float32Array(U * H),
      c: new Float32Array(U * H),
      last: new Float64Array(U),
      counts: new Int32Array(U),
      item: new Int32Array(total),
      ts: new Float64Array(total),
      vec: new Int32Array(total).fill(-1),
      vecs: new Float32Array(0),
      extra: new Int32Array(total).fill(-1),
      extras: new Float32Array(0),
    };
    const newRows: number[] = [];
    const vecs: Float32Array[] = [];
    const extras: Float32Array[] = [];
    let k = 0;
    runs.forEach((r, u) => {
      m.h.set(r.from.h, u * H);
      m.c.set(r.from.c, u * H);
      m.last[u] = r.from.last ?? NaN;
      m.counts[u] = r.events.length;
      for (const e of r.events) {
        const b = model.batchEvent(e);
        m.ts[k] = b.ts;
        if (b.item === null) m.item[k] = -1;
        else {
          m.item[k] = b.item;
          if (b.item < N) {
            if (sent[b.item] === 0) {
              sent[b.item] = 1;
              newRows.push(b.item);
            }
          } else m.vec[k] = vecs.push(b.itemVector!) - 1;
          if (b.extra) m.extra[k] = extras.push(b.extra) - 1;
        }
        k++;
      }
    });
    m.rowItems = Int32Array.from(newRows);
    m.rows = new Float32Array(newRows.length * H);
    newRows.forEach((j, r) => m.rows.set(model.weights.E.subarray(j * H, (j + 1) * H), r * H));
    m.vecs = concat(vecs, H);
    m.extras = concat(extras, H);
    const reply = await new Promise<StepReply & { type: 'stepped' }>((resolve, reject) => {
      this.pending.set(m.seq, { resolve, reject });
      const buffers = [m.rowItems, m.rows, m.h, m.c, m.last, m.counts, m.item, m.ts, m.vec, m.vecs, m.extra, m.extras].map((a) => a.buffer as ArrayBuffer);
      worker.postMessage(m satisfies StepRequest, buffers);
    });
    return Array.from({ length: U }, (_, u) => ({
      h: reply.h.slice(u * H, (u + 1) * H),
      c: reply.c.slice(u * H, (u + 1) * H),
      last: Number.isNaN(reply.last[u]) ? undefined : reply.last[u]!,
    }));
  }

  /** Stops the thread; pending calls fail. */
  async close(): Promise<void> {
    const w = this.worker;
    this.failure ??= new Error('the HRNN step thread is closed');
    this.worker = undefined;
    this.failAll(this.failure);
    if (w) await w.terminate();
  }

  private start(): Worker {
    if (this.failure) throw this.failure;
    if (this.worker) return this.worker;
    const w = new Worker(workerScript(import.meta.url, '../model/hrnn-step-worker.js', 'model/hrnn-step-worker.js'));
    w.unref();
    w.on('message', (r: StepReply) => {
      const p = this.pending.get(r.seq);
      if (!p) return;
      this.pending.delete(r.seq);
      if (r.type === 'stepped') p.resolve(r);
      else p.reject(new Error(`hrnn step thread: ${r.message}`));
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.worker = undefined;
      this.failAll(this.failure);
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the HRNN step thread exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  private post(m: StepRequest): void {
    this.worker?.postMessage(m);
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

function concat(rows: readonly Float32Array[], H: number): Float32Array {
  const out = new Float32Array(rows.length * H);
  rows.forEach((r, i) => out.set(r, i * H));
  return out;
}
