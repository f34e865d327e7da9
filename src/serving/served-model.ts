/**
 * The model version an instance serves, swapped atomically: a query or a batch takes the current
 * version once and uses it throughout, so a swap never mixes two versions in one answer.
 *
 * HRNN user states are kept per user (`h/<userId>`, src/state/model.ts) with the version they were
 * computed with. A state of another version is re-derived from the user's stored recent events
 * under the current weights when it is next needed: by the processor on the user's next event, or
 * by a query (which does not write it back) — lazily, never blocking a query.
 */
import { EventEmitter } from 'node:events';
import { initBackend } from '../model/backend.js';
import type { StepKernel } from '../model/hrnn-batch.js';
import { TfStepKernel, tfStepKernelOf } from '../model/hrnn-batch-tf.js';
import type { RemoteStepper } from './hrnn-step-remote.js';
import type { HrnnState } from '../model/hrnn-math.js';
import type { User } from '../serde/avro.js';
import { HrnnModel, type HistoryEvent } from '../recipes/hrnn.js';
import type { Model } from '../recipes/types.js';
import type { HrnnUserState, UserEvent } from '../state/model.js';
import { armOf, type TrafficSplit } from './split.js';

export interface ServingVersion {
  version: string;
  model: Model;
  /** The seen-items rule the version was trained with. */
  excludeSeen: boolean;
}

export class ServingModel extends EventEmitter<{ swap: [ServingVersion]; split: [readonly ServingVersion[]] }> {
  private value: ServingVersion | undefined;

  get current(): ServingVersion | undefined {
    return this.value;
  }

  /** The current version's HRNN model and version id, when it is one. */
  get hrnn(): { version: string; model: HrnnModel } | undefined {
    const v = this.value;
    return v && v.model instanceof HrnnModel ? { version: v.version, model: v.model } : undefined;
  }

  swap(next: ServingVersion): void {
    this.value = next;
    this.emit('swap', next);
  }

  private arms: { split: TrafficSplit; versions: readonly ServingVersion[] } | undefined;

  /** The traffic split applied (every arm's version loaded), if any. */
  get split(): TrafficSplit | undefined {
    return this.arms?.split;
  }

  /** Applies a split (`versions[i]`: arm i + 1's loaded version), or ends it (undefined). */
  setSplit(split: TrafficSplit | undefined, versions: readonly ServingVersion[] = []): void {
    if (split && versions.length !== split.arms.length) throw new RangeError(`a split of ${split.arms.length} arms needs as many versions, not ${versions.length}`);
    this.arms = split ? { split, versions } : undefined;
    if (split) this.emit('split', versions);
  }

  /** The HRNN models served now: the current version's and the split's arms' (each once). */
  hrnnModels(): HrnnModel[] {
    const all = [this.value, ...(this.arms?.versions ?? [])].map((v) => v?.model);
    return [...new Set(all.filter((m): m is HrnnModel => m instanceof HrnnModel))];
  }

  /** The version that answers this user, and its arm (0: no split; else the user's arm, 1-based). */
  forUser(userId: string): { version: ServingVersion; arm: number } | undefined {
    const a = this.arms;
    if (!a) return this.value && { version: this.value, arm: 0 };
    const arm = armOf(a.split, userId);
    return { version: a.versions[arm - 1]!, arm };
  }
}

/**
 * The user's HRNN state under `version`: the stored one if it is of that version, else re-derived
 * from the stored events (from the user's metadata-based initial state, hrnn-metadata).
 */
export function currentHrnnState(...args: StateArgs): HrnnState {
  const { from, replay } = hrnnStart(...args);
  return replay.length === 0 ? from : args[0].state(replay, from);
}

/** A user's HRNN state under `version`, from what is stored of the user. */
type StateArgs = [
  model: HrnnModel,
  version: string,
  stored: HrnnUserState | undefined,
  /** The user's stored events (for a re-derivation). */
  events: readonly UserEvent[] | undefined,
  /** The user's metadata (hrnn-metadata's initial state of a new user). */
  user?: Pick<User, 'METADATA'>,
];

/**
 * Where the user's state under `version` starts: the stored state if it is of that version (nothing
 * to replay), else the initial state and the stored events to replay through it.
 */
export function hrnnStart(...[model, version, stored, events, user]: StateArgs): { from: HrnnState; replay: HistoryEvent[] } {
  if (stored && stored.version === version) return { from: { h: stored.h, c: stored.c, last: stored.last ?? undefined }, replay: [] };
  const recent = (events ?? []).slice(-REDERIVE_EVENTS);
  return { from: model.initialState(user), replay: recent.map((e) => ({ ITEM_ID: e.item, TIMESTAMP: e.ts, EVENT_TYPE: e.type })) };
}

/**
 * A state is re-derived from at most this many of the user's latest events (about 6 ms of
 * JavaScript GRU steps; the whole stored history, state.maxEventsPerUser = 200 by default, would
 * take 4x as long for every user touched right after a version swap).
 */
export const REDERIVE_EVENTS = 50;

/** A user's stored HRNN state and events, and the new events to apply (oldest first). */
export interface HrnnUpdate {
  stored: HrnnUserState | undefined;
  /** The user's stored events before the new ones (for a re-derivation). */
  events: readonly UserEvent[] | undefined;
  /** The user's metadata, for a new user's initial state (hrnn-metadata). */
  user?: Pick<User, 'METADATA'> | undefined;
  added: readonly HistoryEvent[];
}

/**
 * Users' HRNN states after their new events under `version`, all stepped together
 * (HrnnModel.stepMany): each from its stored state, or re-derived from its stored events first when
 * that state is of another version (hrnnStart). An item the model does not know leaves the vectors
 * as they are (hrnn-coldstart gives new items a vector as their metadata arrives) and only moves the
 * time. Bit for bit what applying each event with HrnnModel.step returns, with the default kernel.
 */
export function stepHrnnStates(model: HrnnModel, version: string, updates: readonly HrnnUpdate[], kernel?: StepKernel): HrnnUserState[] {
  return userStates(version, model.stepMany(hrnnRuns(model, version, updates), kernel));
}

/** What each update steps: from where (hrnnStart), through which events (the replay, then the new ones). */
export function hrnnRuns(model: HrnnModel, version: string, updates: readonly HrnnUpdate[]): { from: HrnnState; events: readonly HistoryEvent[] }[] {
  return updates.map((u) => {
    const { from, replay } = hrnnStart(model, version, u.stored, u.events, u.user);
    return { from, events: replay.length === 0 ? u.added : [...replay, ...u.added] };
  });
}

/** Stepped states as stored, under `version`. */
export function userStates(version: string, states: readonly HrnnState[]): HrnnUserState[] {
  return states.map((s) => ({ version, h: s.h, c: s.c, last: s.last ?? null }));
}

/** processor.hrnnStep. */
export type HrnnStepMode = 'auto' | 'js' | 'thread';

/**
 * The kernel a model's HRNN states are stepped with in this thread (processor.hrnnStep): with `auto`
 * (and `thread`, whose fallback it is), TensorFlow.js when its native or wasm backend loads (one
 * kernel per model, its weight tensors made on first use); undefined (the JavaScript loops) with
 * `js` or on tfjs's pure-JavaScript cpu backend, slower than the loops.
 */
export async function hrnnStepKernel(model: HrnnModel, mode: HrnnStepMode): Promise<StepKernel | undefined> {
  if (mode === 'js' || (await initBackend()) === 'cpu') return undefined;
  return tfStepKernelOf(model);
}

/**
 * Makes the model's step kernel and runs each kind of step once over a few users (the kernel's
 * smallest batch: its weight tensors uploaded, its code compiled), here and on the step thread if
 * there is one, so that the first batch after a swap does not pay for it.
 */
export async function warmHrnnStep(model: HrnnModel, mode: HrnnStepMode, remote?: RemoteStepper): Promise<void> {
  const kernel = await hrnnStepKernel(model, mode);
  const item = model.itemIds[0];
  if (item === undefined) return;
  // Each path of a step: a new user, and a user whose session timed out (the user GRU, init).
  const n = kernel instanceof TfStepKernel ? kernel.minBatch : 1;
  const start = model.initialState();
  const users = Array.from({ length: 2 * n }, (_, u) => ({
    from: u < n ? start : { ...start, last: 0 },
    events: [{ ITEM_ID: item, TIMESTAMP: u < n ? 0 : model.params.sessionTimeoutMs + 1 }],
  }));
  model.stepMany(users, kernel);
  await remote?.step(model, users);
}
