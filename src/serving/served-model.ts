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
import type { HrnnState } from '../model/hrnn-math.js';
import type { User } from '../serde/avro.js';
import { HrnnModel } from '../recipes/hrnn.js';
import type { Model } from '../recipes/types.js';
import type { HrnnUserState, UserEvent } from '../state/model.js';

export interface ServingVersion {
  version: string;
  model: Model;
  /** The seen-items rule the version was trained with. */
  excludeSeen: boolean;
}

export class ServingModel extends EventEmitter<{ swap: [ServingVersion] }> {
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
}

/**
 * The user's HRNN state under `version`: the stored one if it is of that version, else re-derived
 * from the stored events (from the user's metadata-based initial state, hrnn-metadata).
 */
export function currentHrnnState(
  model: HrnnModel,
  version: string,
  stored: HrnnUserState | undefined,
  events: readonly UserEvent[] | undefined,
  user?: Pick<User, 'METADATA'>,
): HrnnState {
  if (stored && stored.version === version) return { h: stored.h, c: stored.c, last: stored.last ?? undefined };
  const recent = (events ?? []).slice(-REDERIVE_EVENTS);
  return model.state(recent.map((e) => ({ ITEM_ID: e.item, TIMESTAMP: e.ts, EVENT_TYPE: e.type })), model.initialState(user));
}

/**
 * A state is re-derived from at most this many of the user's latest events (about 6 ms of
 * JavaScript GRU steps; the whole stored history, state.maxEventsPerUser = 200 by default, would
 * take 4x as long for every user touched right after a version swap).
 */
export const REDERIVE_EVENTS = 50;

/**
 * One event applied to a user's HRNN state (`events`: the user's stored events before this one).
 * An item the model does not know leaves the vectors as they are (hrnn-coldstart gives new items
 * a vector as their metadata arrives) and only moves the time.
 */
export function stepHrnnState(
  model: HrnnModel,
  version: string,
  stored: HrnnUserState | undefined,
  events: readonly UserEvent[] | undefined,
  e: { ITEM_ID: string; TIMESTAMP: number; EVENT_TYPE?: string; CONTEXT?: Readonly<Record<string, string>> },
  user?: Pick<User, 'METADATA'>,
): HrnnUserState {
  const next = model.step(currentHrnnState(model, version, stored, events, user), e);
  return { version, h: next.h, c: next.c, last: next.last ?? null };
}
