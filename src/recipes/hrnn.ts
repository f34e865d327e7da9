/**
 * hrnn: hierarchical GRU recommendations (src/model/hrnn-math.ts for the model,
 * src/model/hrnn-train.ts for training). A user's list comes from their state after their history;
 * `related(item)` is what the model expects next in a session that has just seen the item.
 */
import { availableParallelism } from 'node:os';
import { initBackend } from '../model/backend.js';
import { trainHrnnParallel } from '../model/hrnn-parallel.js';
import { applyEvent, emptyState, queryState, scoreAll, topK, type HrnnState, type HrnnWeights } from '../model/hrnn-math.js';
import { denseLayout, encode, HRNN_TRAIN_DEFAULTS, trainHrnn, weightsView, type HrnnTrainParams, type TrainProgress } from '../model/hrnn-train.js';
import type { InteractionFields } from '../state/apply.js';
import type { Model, Recipe, RecommendRequest, Scored, TrainHooks } from './types.js';
import { base64ToFloats, floatsToBase64 } from '../util/floats.js';

export type HrnnParams = HrnnTrainParams;
export const HRNN_DEFAULTS = HRNN_TRAIN_DEFAULTS;

export interface HrnnJSON {
  recipe: 'hrnn';
  params: HrnnParams;
  itemIds: string[];
  counts: number[];
  weights: { dense: string; E: string; bOut: string };
  training: { eventsPerSecond: number; lossByEpoch: number[] };
}

export class HrnnModel implements Model {
  readonly recipe = 'hrnn';
  readonly index: Map<string, number>;

  constructor(
    readonly weights: HrnnWeights,
    readonly itemIds: readonly string[],
    readonly counts: Float64Array,
    readonly params: HrnnParams,
    readonly training: { eventsPerSecond: number; lossByEpoch: number[] },
    private readonly dense: Float32Array,
  ) {
    this.index = new Map(itemIds.map((id, i) => [id, i]));
  }

  static fromJSON(data: HrnnJSON): HrnnModel {
    const H = data.params.hiddenSize;
    const dense = base64ToFloats(data.weights.dense);
    if (dense.length !== denseLayout(H).size) throw new Error(`hrnn model: dense weights have ${dense.length} values, expected ${denseLayout(H).size}`);
    const E = base64ToFloats(data.weights.E);
    const bOut = base64ToFloats(data.weights.bOut);
    const N = data.itemIds.length;
    if (E.length !== N * H || bOut.length !== N) throw new Error(`hrnn model: item weights do not match ${N} items × ${H}`);
    return new HrnnModel(weightsView(H, N, dense, E, bOut), data.itemIds, Float64Array.from(data.counts), data.params, data.training, dense);
  }

  toJSON(): HrnnJSON & Record<string, unknown> {
    return {
      recipe: 'hrnn',
      params: this.params,
      itemIds: [...this.itemIds],
      counts: [...this.counts],
      weights: { dense: floatsToBase64(this.dense), E: floatsToBase64(this.weights.E), bOut: floatsToBase64(this.weights.bOut) },
      training: this.training,
    };
  }

  /** The state after `history` (items the model does not know are skipped). */
  state(history: RecommendRequest['history'], from: HrnnState = emptyState(this.weights.hidden)): HrnnState {
    let s = from;
    for (const e of history) {
      const i = this.index.get(e.ITEM_ID);
      if (i !== undefined) s = applyEvent(this.weights, s, i, e.TIMESTAMP, this.params.sessionTimeoutMs);
    }
    return s;
  }

  /** Every item's score for a state at time `at`. */
  scores(s: HrnnState, at?: number): Float32Array {
    return scoreAll(this.weights, queryState(this.weights, s, at, this.params.sessionTimeoutMs));
  }

  recommend(request: RecommendRequest): Scored[] {
    return this.top(this.scores(this.state(request.history), request.at), request.numResults, request.exclude);
  }

  related(itemId: string, numResults: number): Scored[] | undefined {
    const i = this.index.get(itemId);
    if (i === undefined) return undefined;
    const s = applyEvent(this.weights, emptyState(this.weights.hidden), i, 0, this.params.sessionTimeoutMs);
    return this.top(this.scores(s), numResults, new Set([itemId]));
  }

  score(history: RecommendRequest['history'], items: readonly string[]): (number | undefined)[] {
    const s = this.state(history);
    const all = this.scores(s);
    return items.map((id) => {
      const i = this.index.get(id);
      return i === undefined ? undefined : all[i];
    });
  }

  /** The best `n` items of `scores`, leaving out `exclude`. */
  top(scores: Float32Array, n: number, exclude?: ReadonlySet<string>): Scored[] {
    const skip = exclude && exclude.size > 0 ? (j: number) => exclude.has(this.itemIds[j]!) : undefined;
    return topK(scores, n, skip).map((j) => ({ itemId: this.itemIds[j]!, score: scores[j]! }));
  }
}

export const hrnn: Recipe<HrnnParams, HrnnModel, Promise<HrnnModel>> & {
  trainWithProgress(interactions: readonly InteractionFields[], params?: Partial<HrnnParams>, onProgress?: (p: TrainProgress) => void): Promise<HrnnModel>;
} = {
  name: 'hrnn',
  train(interactions, params = {}, hooks?: TrainHooks) {
    const report = hooks?.onProgress;
    return this.trainWithProgress(
      interactions,
      params,
      report &&
        ((p) => report({ done: p.done, total: p.total, detail: `epoch ${p.epoch + 1}/${p.epochs} loss ${p.loss.toFixed(3)} ${Math.round(p.eventsPerSecond)} ev/s` })),
    );
  },
  async trainWithProgress(interactions, params = {}, onProgress) {
    const p = { ...HRNN_DEFAULTS, ...params };
    const backend = await initBackend();
    const data = encode(interactions, p.sessionTimeoutMs);
    const workers = p.workers > 0 ? p.workers : Math.min(4, availableParallelism());
    // Small data is not worth starting threads for.
    const t = workers > 1 && data.events >= 20_000 ? await trainHrnnParallel(data, p, workers, backend, onProgress) : trainHrnn(data, p, onProgress);
    return new HrnnModel(t.weights, t.itemIds, t.counts, p, { eventsPerSecond: t.eventsPerSecond, lossByEpoch: t.lossByEpoch }, t.dense);
  },
};
