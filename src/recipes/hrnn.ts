/**
 * The HRNN family: hierarchical GRU recommendations (src/model/hrnn-math.ts for the model,
 * src/model/hrnn-train.ts for training). A user's list comes from their state after their history;
 * `related(item)` is what the model expects next in a session that has just seen the item.
 *
 * - `hrnn`: items only.
 * - `hrnn-metadata`: item metadata (categorical, multi-valued, numeric, boolean; src/model/features.ts)
 *   adds feature embeddings to an item's vector (input and output, folded into E after training);
 *   each event's EVENT_TYPE and CONTEXT (DEVICE, ...) add to the session GRU's input; user metadata
 *   gives a new user's initial user state.
 * - `hrnn-coldstart`: hrnn-metadata, plus a tower (src/model/coldstart.ts) fitted to reproduce the
 *   learned item vectors (and output biases) from item metadata, so an item without interactions
 *   (in the items file, or arriving on `<group>.items` later: `addItem`) is scored at once; and
 *   Personalize's exploration: a share `explorationWeight` of a list's slots goes to items younger
 *   than `explorationItemAgeCutOffDays` (CREATION_TIMESTAMP), marked `reason: 'exploration'`.
 */
import { availableParallelism } from 'node:os';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AppError } from '../errors/index.js';
import { compiledBackendUp, initBackend } from '../model/backend.js';
import { batchScorerOf } from '../model/batch-scorer.js';
import { tfStepKernelOf } from '../model/hrnn-batch-tf.js';
import { fitTower, Tower, towerTargets, type TowerJSON } from '../model/coldstart.js';
import { isExplorable, mixExploration } from '../model/exploration.js';
import { buildFeatureSpace, encode as encodeFeatures, encodeAll, FeatureSpace, type FeatureRecord, type FeatureSpaceJSON, type SparseRows } from '../model/features.js';
import { trainHrnnParallel } from '../model/hrnn-parallel.js';
import { applyEventsBatch, type BatchEvent, type StepKernel } from '../model/hrnn-batch.js';
import { applyEvent, emptyState, queryState, topK, type HrnnState, type HrnnWeights } from '../model/hrnn-math.js';
import { denseLayout, encode, HRNN_TRAIN_DEFAULTS, parseFinalAct, trainHrnn, weightsView, type FeatureEncoders, type HrnnTrainParams, type TrainProgress } from '../model/hrnn-train.js';
import type { Item, User } from '../serde/avro.js';
import type { InteractionFields } from '../state/apply.js';
import { base64ToFloats, floatsToBase64 } from '../util/floats.js';
import { chooseFeatures, type FeatureChoice, type FeatureSelection } from '../training/feature-choice.js';
import { TrainingStopped, type AnyRecipe, type Model, type Recipe, type RecommendRequest, type Scored, type TrainHooks, type TrainingMetadata } from './types.js';

export type HrnnRecipeName = 'hrnn' | 'hrnn-metadata' | 'hrnn-coldstart';

export interface HrnnParams extends HrnnTrainParams {
  /** hrnn-coldstart: the share of list slots for new items (Personalize's explorationWeight). */
  explorationWeight: number;
  /** hrnn-coldstart: items created less than this many days ago are explored (explorationItemAgeCutOff). */
  explorationItemAgeCutOffDays: number;
  /**
   * hrnn-metadata / -coldstart: the feature groups (`item.F`, `user.F`, `context.K`); `auto` chooses
   * them on validation (src/training/auto.ts). hrnn-coldstart's default is `all`: its tower needs the
   * item features, and a split of past interactions cannot reward scoring items without any.
   */
  features: FeatureSelection;
}

export const HRNN_DEFAULTS: HrnnParams = { ...HRNN_TRAIN_DEFAULTS, explorationWeight: 0.3, explorationItemAgeCutOffDays: 30, features: 'auto' };

const int = (minimum: number, maximum: number) => Type.Integer({ minimum, maximum });
const num = (minimum: number, maximum: number) => Type.Number({ minimum, maximum });
/** What `--params` / `training.params` may set, and within what bounds. */
export const HrnnParamsSchema = Type.Object(
  {
    hiddenSize: int(2, 2048),
    epochs: int(1, 1000),
    batchSize: int(1, 4096),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 10 }),
    momentum: num(0, 0.999),
    negatives: int(0, 100_000),
    sampleAlpha: num(0, 1),
    loss: Type.Union([Type.Literal('cross-entropy'), Type.Literal('bpr-max')]),
    logq: num(0, 1),
    bpreg: num(0, 100),
    finalAct: Type.String({ pattern: '^(linear|tanh|elu-[0-9.]+)$' }),
    dropoutHidden: num(0, 0.95),
    dropoutEmbed: num(0, 0.95),
    sessionTimeoutMs: int(1, 365 * 86_400_000),
    seed: int(0, 2 ** 31 - 1),
    workers: int(0, 64),
    explorationWeight: num(0, 1),
    explorationItemAgeCutOffDays: Type.Number({ exclusiveMinimum: 0 }),
    features: Type.Union([Type.Literal('auto'), Type.Literal('all'), Type.Array(Type.String({ minLength: 1 }))]),
  },
  { additionalProperties: false },
);

/** The defaults with `params` over them, or INVALID_ARGUMENT naming the first bad parameter. */
export function hrnnParams(params: Partial<HrnnParams> = {}): HrnnParams {
  const p = { ...HRNN_DEFAULTS, ...params };
  const e = Value.Errors(HrnnParamsSchema, p).First();
  if (e) {
    const name = e.path.replace(/^\//, '') || '(params)';
    const known = Object.keys(HRNN_DEFAULTS).join(', ');
    throw new AppError('INVALID_ARGUMENT', `hrnn parameter ${name}: ${e.message}${e.value === undefined ? '' : `, got ${JSON.stringify(e.value)}`} (parameters: ${known})`, { field: `params.${name}` });
  }
  parseFinalAct(p.finalAct);
  return p;
}

/** What an event may carry for hrnn-metadata. */
type ContextEvent = { EVENT_TYPE?: string; CONTEXT?: Readonly<Record<string, string>> };
export type HistoryEvent = RecommendRequest['history'][number] & ContextEvent;

/** The metadata parts of a model (hrnn-metadata, hrnn-coldstart). */
export interface HrnnMeta {
  ctxSpace: FeatureSpace;
  Cx: Float32Array;
  userSpace: FeatureSpace;
  U: Float32Array;
  itemSpace: FeatureSpace;
  tower: Tower | undefined;
  /** CREATION_TIMESTAMP of the items that have one. */
  created: Map<string, number>;
}

export interface HrnnJSON {
  recipe: HrnnRecipeName;
  params: HrnnParams;
  itemIds: string[];
  counts: number[];
  weights: { dense: string; E: string; bOut: string };
  training: { eventsPerSecond: number; lossByEpoch: number[] };
  /** hrnn-metadata / -coldstart: the feature groups used and how they were chosen. */
  features?: FeatureChoice;
  meta?: {
    ctxSpace: FeatureSpaceJSON;
    Cx: string;
    userSpace: FeatureSpaceJSON;
    U: string;
    itemSpace: FeatureSpaceJSON;
    tower: TowerJSON | null;
    created: [string, number][];
    cold: { ids: string[]; E: string; bOut: string };
  };
}

const ctxRecord = (e: ContextEvent): FeatureRecord => ({ ...(e.CONTEXT ?? {}), EVENT_TYPE: e.EVENT_TYPE ?? 'click' });

/** Σ value · table[id] (H wide) over a sparse vector; undefined when it has no ids. */
function sparseSum(table: Float32Array, ids: ArrayLike<number>, values: ArrayLike<number>, H: number): Float32Array | undefined {
  if (ids.length === 0) return undefined;
  const out = new Float32Array(H);
  for (let k = 0; k < ids.length; k++) {
    const base = ids[k]! * H;
    const v = values[k]!;
    for (let d = 0; d < H; d++) out[d]! += v * table[base + d]!;
  }
  return out;
}

export class HrnnModel implements Model {
  /** Item index: training items 0..N-1, then items added without interactions (cold). */
  readonly index: Map<string, number>;
  private readonly ids: string[];
  /** Cold items' vectors and biases, growing (capacity doubles). */
  private coldE: Float32Array;
  private coldB: Float32Array;
  private coldCount = 0;
  /** Exploration's randomness (replace for reproducible tests). */
  random: () => number = Math.random;
  /** hrnn-metadata / -coldstart: the feature groups used and how they were chosen. */
  features: FeatureChoice | undefined;

  constructor(
    readonly recipe: HrnnRecipeName,
    readonly weights: HrnnWeights,
    readonly itemIds: readonly string[],
    readonly counts: Float64Array,
    readonly params: HrnnParams,
    readonly training: { eventsPerSecond: number; lossByEpoch: number[] },
    private readonly dense: Float32Array,
    readonly meta?: HrnnMeta,
  ) {
    this.ids = [...itemIds];
    this.index = new Map(itemIds.map((id, i) => [id, i]));
    this.coldE = new Float32Array(0);
    this.coldB = new Float32Array(0);
  }

  static fromJSON(data: HrnnJSON): HrnnModel {
    const H = data.params.hiddenSize;
    const dense = base64ToFloats(data.weights.dense);
    if (dense.length !== denseLayout(H).size) throw new Error(`hrnn model: dense weights have ${dense.length} values, expected ${denseLayout(H).size}`);
    const E = base64ToFloats(data.weights.E);
    const bOut = base64ToFloats(data.weights.bOut);
    const N = data.itemIds.length;
    if (E.length !== N * H || bOut.length !== N) throw new Error(`hrnn model: item weights do not match ${N} items × ${H}`);
    const m = data.meta;
    const meta: HrnnMeta | undefined = m && {
      ctxSpace: FeatureSpace.fromJSON(m.ctxSpace),
      Cx: base64ToFloats(m.Cx),
      userSpace: FeatureSpace.fromJSON(m.userSpace),
      U: base64ToFloats(m.U),
      itemSpace: FeatureSpace.fromJSON(m.itemSpace),
      tower: m.tower ? Tower.fromJSON(m.tower) : undefined,
      created: new Map(m.created),
    };
    const model = new HrnnModel(data.recipe ?? 'hrnn', weightsView(H, N, dense, E, bOut), data.itemIds, Float64Array.from(data.counts), { ...HRNN_DEFAULTS, ...data.params }, data.training, dense, meta);
    if (m) {
      const cE = base64ToFloats(m.cold.E);
      const cB = base64ToFloats(m.cold.bOut);
      m.cold.ids.forEach((id, k) => model.addVector(id, cE.subarray(k * H, (k + 1) * H), cB[k]!));
    }
    model.features = data.features;
    return model;
  }

  toJSON(): HrnnJSON & Record<string, unknown> {
    const H = this.weights.hidden;
    const m = this.meta;
    return {
      recipe: this.recipe,
      params: this.params,
      itemIds: [...this.itemIds],
      counts: [...this.counts],
      weights: { dense: floatsToBase64(this.dense), E: floatsToBase64(this.weights.E), bOut: floatsToBase64(this.weights.bOut) },
      training: this.training,
      ...(this.features ? { features: this.features } : {}),
      ...(m
        ? {
            meta: {
              ctxSpace: m.ctxSpace.toJSON(),
              Cx: floatsToBase64(m.Cx),
              userSpace: m.userSpace.toJSON(),
              U: floatsToBase64(m.U),
              itemSpace: m.itemSpace.toJSON(),
              tower: m.tower ? m.tower.toJSON() : null,
              created: [...m.created],
              cold: { ids: this.ids.slice(this.itemIds.length), E: floatsToBase64(this.coldE.subarray(0, this.coldCount * H)), bOut: floatsToBase64(this.coldB.subarray(0, this.coldCount)) },
            },
          }
        : {}),
    };
  }

  /** The dense weights (the GRUs, init), one array: what a step thread needs besides item rows. */
  get denseWeights(): Float32Array {
    return this.dense;
  }

  /** Items the model can recommend: trained ones and cold ones. */
  get size(): number {
    return this.ids.length;
  }

  /** The vector an item enters the session GRU with and is scored by. */
  private itemVector(j: number): Float32Array {
    const H = this.weights.hidden;
    const N = this.itemIds.length;
    return j < N ? this.weights.E.subarray(j * H, (j + 1) * H) : this.coldE.subarray((j - N) * H, (j - N + 1) * H);
  }

  private addVector(itemId: string, e: Float32Array, b: number): void {
    const H = this.weights.hidden;
    if ((this.coldCount + 1) * H > this.coldE.length) {
      const cap = Math.max(16, this.coldCount * 2);
      const E = new Float32Array(cap * H);
      E.set(this.coldE);
      const B = new Float32Array(cap);
      B.set(this.coldB);
      this.coldE = E;
      this.coldB = B;
    }
    this.coldE.set(e, this.coldCount * H);
    this.coldB[this.coldCount] = b;
    this.index.set(itemId, this.ids.length);
    this.ids.push(itemId);
    this.coldCount++;
  }

  /**
   * hrnn-coldstart: an item without interactions enters with a vector from its metadata (the
   * tower). Returns false when the model has no tower or already knows the item. Its creation time
   * is kept for exploration either way.
   */
  addItem(item: Pick<Item, 'ITEM_ID' | 'CREATION_TIMESTAMP' | 'METADATA'>): boolean {
    const m = this.meta;
    if (!m?.tower) return false;
    if (item.CREATION_TIMESTAMP !== null) m.created.set(item.ITEM_ID, item.CREATION_TIMESTAMP);
    if (this.index.has(item.ITEM_ID)) return false;
    const v = encodeFeatures(m.itemSpace, item.METADATA);
    const out = m.tower.predict(v.ids, v.values);
    this.addVector(item.ITEM_ID, out.subarray(0, this.weights.hidden), out[this.weights.hidden]!);
    return true;
  }

  /** The context features' sum for an event (hrnn-metadata), added to the GRU input. */
  contextVector(e: ContextEvent): Float32Array | undefined {
    const m = this.meta;
    if (!m) return undefined;
    const v = encodeFeatures(m.ctxSpace, ctxRecord(e));
    return sparseSum(m.Cx, v.ids, v.values, this.weights.hidden);
  }

  /** A new user's state: from the user's metadata (hrnn-metadata), else zeros. */
  initialState(user?: Pick<User, 'METADATA'>): HrnnState {
    const m = this.meta;
    if (!m || !user) return emptyState(this.weights.hidden);
    const v = encodeFeatures(m.userSpace, user.METADATA);
    return emptyState(this.weights.hidden, sparseSum(m.U, v.ids, v.values, this.weights.hidden));
  }

  /** One event applied to a state; an item the model does not know leaves it as it is. */
  step(s: HrnnState, e: HistoryEvent): HrnnState {
    const j = this.index.get(e.ITEM_ID);
    if (j === undefined) return { ...s, last: s.last === undefined ? undefined : Math.max(s.last, e.TIMESTAMP) };
    const extra = this.contextVector(e);
    return applyEvent(this.weights, s, j, e.TIMESTAMP, this.params.sessionTimeoutMs, { itemVector: this.itemVector(j), ...(extra ? { extra } : {}) });
  }

  /**
   * Many users' states through their events at once (src/model/hrnn-batch.ts): element u is
   * `this.state(users[u].events, users[u].from)`, bit for bit with the default (JavaScript)
   * kernel; with another kernel, to that kernel's float32 rounding.
   */
  stepMany(users: readonly { from: HrnnState; events: readonly HistoryEvent[] }[], kernel?: StepKernel): HrnnState[] {
    return applyEventsBatch(
      this.weights,
      users.map((u) => ({ state: u.from, events: u.events.map((e) => this.batchEvent(e)) })),
      this.params.sessionTimeoutMs,
      kernel,
    );
  }

  /** An event as applyEventsBatch takes it: what `step` passes to applyEvent. */
  batchEvent(e: HistoryEvent): BatchEvent {
    const j = this.index.get(e.ITEM_ID);
    if (j === undefined) return { item: null, ts: e.TIMESTAMP };
    const extra = this.contextVector(e);
    return { item: j, ts: e.TIMESTAMP, itemVector: this.itemVector(j), ...(extra ? { extra } : {}) };
  }

  /** The state after `history` (items the model does not know are skipped). */
  state(history: readonly HistoryEvent[], from: HrnnState = emptyState(this.weights.hidden)): HrnnState {
    let s = from;
    for (const e of history) s = this.step(s, e);
    return s;
  }

  /** Every item's score (trained, then cold) for a state at time `at`. */
  scores(s: HrnnState, at?: number): Float32Array {
    return this.scoresOf(this.queryVector(s, at));
  }

  /**
   * The vector a state is scored with at time `at`: the session state while the session is open;
   * after the session timeout (or before any event) the next session's first state, which takes a
   * user-GRU step and stays the same until the user's next event.
   */
  queryVector(s: HrnnState, at?: number): Float32Array {
    return queryState(this.weights, s, at, this.params.sessionTimeoutMs);
  }

  /** Whether `s`'s session is still open at `at` (then `queryVector` is the session state itself). */
  sessionOpen(s: HrnnState, at: number): boolean {
    return s.last !== undefined && at - s.last <= this.params.sessionTimeoutMs;
  }

  /** Every item's score for a query vector. */
  scoresOf(q: Float32Array): Float32Array {
    const N = this.itemIds.length;
    const out = new Float32Array(this.ids.length);
    dotRows(q, this.weights.E, this.weights.bOut, N, this.weights.hidden, out, 0);
    dotRows(q, this.coldE, this.coldB, this.ids.length - N, this.weights.hidden, out, N);
    return out;
  }

  /** The trained items' output layer (N rows of E and their biases), for a BatchScorer. */
  outputLayer(): { E: Float32Array; b: Float32Array; items: number; hidden: number } {
    return { E: this.weights.E, b: this.weights.bOut, items: this.itemIds.length, hidden: this.weights.hidden };
  }

  /** Every item's score from the trained items' scores (a BatchScorer's for `q`) and the cold items' for `q`. */
  withColdScores(q: Float32Array, trained: Float32Array): Float32Array {
    const N = this.itemIds.length;
    const out = new Float32Array(this.ids.length);
    out.set(trained.subarray(0, N));
    dotRows(q, this.coldE, this.coldB, this.ids.length - N, this.weights.hidden, out, N);
    return out;
  }

  recommend(request: RecommendRequest): Scored[] {
    return this.top(this.scores(this.state(request.history), request.at), request.numResults, request.exclude, request.at);
  }

  /**
   * The requests' histories stepped together (stepMany), 1,000 at a time, and scored together. With
   * `exact`, or while no compiled TensorFlow.js backend is up, on the JavaScript kernel and loops: the
   * same bits as `recommend`. Otherwise (evaluation's default) on the compiled backend, as the
   * processor steps states in its default mode: the step kernel (src/model/hrnn-batch-tf.ts) and
   * one matMul per chunk for the scores (src/model/batch-scorer.ts), equal to `recommend`'s to float32
   * rounding (test/unit/hrnn-step-many.test.ts). Measured (bench:quality's note in docs/evaluation.md):
   * several times faster for 10,000 users.
   */
  recommendMany(requests: readonly RecommendRequest[], o: { exact?: boolean } = {}): Scored[][] {
    const compiled = !o.exact && compiledBackendUp();
    const kernel = compiled ? tfStepKernelOf(this) : undefined;
    const scorer = compiled ? batchScorerOf(this, this.outputLayer()) : undefined;
    const out: Scored[][] = [];
    for (let k = 0; k < requests.length; k += 1000) {
      const chunk = requests.slice(k, k + 1000);
      const states = this.stepMany(
        chunk.map((r) => ({ from: emptyState(this.weights.hidden), events: r.history })),
        kernel,
      );
      const queries = states.map((s, i) => this.queryVector(s, chunk[i]!.at));
      // Scored 250 at a time: a chunk's score matrix stays within 250 × items floats.
      for (let a = 0; a < chunk.length; a += 250) {
        const qs = queries.slice(a, a + 250);
        const trained = scorer?.score(qs);
        qs.forEach((q, i) => {
          const r = chunk[a + i]!;
          out.push(this.top(trained ? this.withColdScores(q, trained[i]!) : this.scoresOf(q), r.numResults, r.exclude, r.at));
        });
      }
    }
    return out;
  }

  related(itemId: string, numResults: number): Scored[] | undefined {
    const j = this.index.get(itemId);
    if (j === undefined) return undefined;
    const s = this.step(emptyState(this.weights.hidden), { ITEM_ID: itemId, TIMESTAMP: 0 });
    return this.top(this.scores(s), numResults, new Set([itemId]));
  }

  score(history: RecommendRequest['history'], items: readonly string[]): (number | undefined)[] {
    const all = this.scores(this.state(history));
    return items.map((id) => {
      const i = this.index.get(id);
      return i === undefined ? undefined : all[i];
    });
  }

  /**
   * The best `n` items of `scores`, leaving out `exclude`; for hrnn-coldstart with exploration,
   * a share of the slots goes to items created within the cutoff before `at` (now by default).
   */
  top(scores: Float32Array, n: number, exclude?: ReadonlySet<string>, at?: number): Scored[] {
    const skip = exclude && exclude.size > 0 ? (j: number) => exclude.has(this.ids[j]!) : undefined;
    const ranked: Scored[] = topK(scores, n, skip).map((j) => ({ itemId: this.ids[j]!, score: scores[j]! }));
    const m = this.meta;
    if (this.recipe !== 'hrnn-coldstart' || !m || this.params.explorationWeight <= 0 || m.created.size === 0) return ranked;
    const now = at ?? Date.now();
    const cutoff = this.params.explorationItemAgeCutOffDays * 86_400_000;
    const young: { itemId: string; score: number }[] = [];
    for (const [itemId, created] of m.created) {
      const j = this.index.get(itemId);
      if (j !== undefined && isExplorable(created, now, cutoff) && !exclude?.has(itemId)) young.push({ itemId, score: scores[j]! });
    }
    if (young.length === 0) return ranked;
    young.sort((a, b) => b.score - a.score || (a.itemId < b.itemId ? -1 : 1));
    return mixExploration(ranked, young, { numResults: n, weight: this.params.explorationWeight, random: this.random, ...(exclude ? { exclude } : {}) });
  }
}

type HrnnRecipe = Recipe<HrnnParams, HrnnModel, Promise<HrnnModel>> & {
  trainWithProgress(
    interactions: readonly (InteractionFields & ContextEvent)[],
    params?: Partial<HrnnParams>,
    onProgress?: (p: TrainProgress) => void,
    metadata?: TrainingMetadata,
  ): Promise<HrnnModel>;
};

function makeRecipe(name: HrnnRecipeName): HrnnRecipe {
  return {
    name,
    train(interactions, params = {}, hooks?: TrainHooks) {
      const report = hooks?.onProgress;
      const stop = hooks?.shouldStop;
      const progress =
        report || stop
          ? (p: TrainProgress) => {
              if (stop?.()) throw new TrainingStopped();
              report?.({ done: p.done, total: p.total, detail: `epoch ${p.epoch + 1}/${p.epochs} loss ${p.loss.toFixed(3)} ${Math.round(p.eventsPerSecond)} ev/s` });
            }
          : undefined;
      return this.trainWithProgress(interactions, params, progress, hooks?.metadata);
    },
    async trainWithProgress(interactions, params = {}, onProgress, metadata = {}) {
      const p = hrnnParams(name === 'hrnn-coldstart' && params.features === undefined ? { ...params, features: 'all' } : params);
      const backend = await initBackend();
      const withMeta = name !== 'hrnn';
      const choice = withMeta ? await chooseFeatures(interactions, p, { metadata }, hrnnMetadata as unknown as AnyRecipe) : undefined;
      const spaces = choice ? buildSpaces(interactions, metadata, new Set(choice.used)) : undefined;
      const data = encode(interactions, p.sessionTimeoutMs, spaces?.encoders);
      const workers = p.workers > 0 ? p.workers : Math.min(4, availableParallelism());
      // Small data is not worth starting threads for.
      const t = workers > 1 && data.events >= 20_000 ? await trainHrnnParallel(data, p, workers, backend, onProgress) : trainHrnn(data, p, onProgress);
      const training = { eventsPerSecond: t.eventsPerSecond, lossByEpoch: t.lossByEpoch };
      if (!spaces || !t.features) return Object.assign(new HrnnModel(name, t.weights, t.itemIds, t.counts, p, training, t.dense), { features: choice });
      // Fold the item features into the item vectors: serving then scores E alone.
      const H = p.hiddenSize;
      foldFeatures(t.weights.E, t.features.F, t.features.item, H);
      const created = new Map<string, number>();
      for (const it of metadata.items ?? []) if (it.CREATION_TIMESTAMP !== null) created.set(it.ITEM_ID, it.CREATION_TIMESTAMP);
      const meta: HrnnMeta = { ctxSpace: spaces.ctx, Cx: t.features.Cx, userSpace: spaces.user, U: t.features.U, itemSpace: spaces.item, tower: undefined, created };
      const model = Object.assign(new HrnnModel(name, t.weights, t.itemIds, t.counts, p, training, t.dense, meta), { features: choice });
      if (name === 'hrnn-coldstart') {
        meta.tower = coldStartTower(model, metadata.items ?? [], spaces.item, p.seed);
        for (const it of metadata.items ?? []) model.addItem(it);
      }
      return model;
    },
  };
}

/** The feature spaces of the groups in `used` (a field left out of a space is ignored when encoding). */
function buildSpaces(interactions: readonly ContextEvent[], metadata: TrainingMetadata, used: ReadonlySet<string>) {
  const pick = (group: string, r: FeatureRecord): FeatureRecord => Object.fromEntries(Object.entries(r).filter(([k]) => used.has(`${group}.${k}`)));
  const item = buildFeatureSpace((metadata.items ?? []).map((i) => pick('item', i.METADATA)));
  const user = buildFeatureSpace((metadata.users ?? []).map((u) => pick('user', u.METADATA)));
  const ctx = buildFeatureSpace(interactions.map((e) => pick('context', ctxRecord(e))));
  const itemMeta = new Map((metadata.items ?? []).map((i) => [i.ITEM_ID, i.METADATA]));
  const userMeta = new Map((metadata.users ?? []).map((u) => [u.USER_ID, u.METADATA]));
  const none = { ids: new Int32Array(0), values: new Float32Array(0) };
  const encoders: FeatureEncoders = {
    item: (id) => {
      const m = itemMeta.get(id);
      return m ? encodeFeatures(item, m) : none;
    },
    user: (id) => {
      const m = userMeta.get(id);
      return m ? encodeFeatures(user, m) : none;
    },
    ctx: (e) => encodeFeatures(ctx, ctxRecord(e)),
    sizes: { item: item.size, ctx: ctx.size, user: user.size },
  };
  return { item, user, ctx, encoders };
}

function foldFeatures(E: Float32Array, F: Float32Array, rows: SparseRows, H: number): void {
  for (let j = 0; j + 1 < rows.offsets.length; j++) {
    for (let k = rows.offsets[j]!; k < rows.offsets[j + 1]!; k++) {
      const base = rows.ids[k]! * H;
      const v = rows.values[k]!;
      for (let d = 0; d < H; d++) E[j * H + d]! += v * F[base + d]!;
    }
  }
}

/** The tower from item metadata to [item vector, output bias], fitted on trained items with metadata. */
function coldStartTower(model: HrnnModel, items: TrainingMetadata['items'] & {}, space: FeatureSpace, seed: number): Tower | undefined {
  const trained = items.filter((i) => model.index.has(i.ITEM_ID));
  if (trained.length === 0 || space.size === 0) return undefined;
  const rows = encodeAll(space, trained.map((i) => i.METADATA));
  const H = model.weights.hidden;
  const targets = towerTargets(model.weights, trained.map((i) => model.index.get(i.ITEM_ID)!));
  return fitTower({ features: rows, targets, dim: H + 1, featureCount: space.size, seed });
}

export const hrnn = makeRecipe('hrnn');
export const hrnnMetadata = makeRecipe('hrnn-metadata');
export const hrnnColdstart = makeRecipe('hrnn-coldstart');

/**
 * out[offset + j] = b[j] + q . rows[j] for j < n (rows: n x H, row-major). Four accumulators: about
 * 1.4x faster than one in V8 (no SIMD here); the sum order differs from a plain loop only in the
 * last bits.
 */
function dotRows(q: Float32Array, rows: Float32Array, b: Float32Array, n: number, H: number, out: Float32Array, offset: number): void {
  for (let j = 0; j < n; j++) {
    const row = j * H;
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let d = 0;
    for (; d + 3 < H; d += 4) {
      a0 += q[d]! * rows[row + d]!;
      a1 += q[d + 1]! * rows[row + d + 1]!;
      a2 += q[d + 2]! * rows[row + d + 2]!;
      a3 += q[d + 3]! * rows[row + d + 3]!;
    }
    for (; d < H; d++) a0 += q[d]! * rows[row + d]!;
    out[offset + j] = b[j]! + a0 + a1 + a2 + a3;
  }
}
