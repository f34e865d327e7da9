/**
 * What the processor keeps per input partition, and how it is laid out in the key-value store.
 *
 * | key                          | value        | meaning                                                      |
 * |------------------------------|--------------|--------------------------------------------------------------|
 * | `u/<userId>`                 | UserState    | the user's recent events (bounded) and current session       |
 * | `i/<itemId>`                 | ItemCounts   | distinct users, events, time-decayed count (trending)         |
 * | `c/<itemId>`                 | CoOccurrence | items co-occurring in users' histories (SIMS), bounded        |
 * | `h/<userId>`                 | HrnnUserState| the user's HRNN state under one model version (hrnn recipes)  |
 * | `m/a/<tag>/<arm>/<type>`, `m/n/<type>` | Counts | online metrics per version tag (src/stream/attribution.ts) |
 * | `__offset`                   | Offset       | next input offset of this partition (in the same batch)      |
 * | `__offset.repartition`       | Offset       | next offset of the same partition of interactions-repartition |
 * | `__checkpoint`               | Offset       | changelog offset the local store reflects (local only)       |
 *
 * Values are Avro (avsc) — compact and fast to decode. Every key but `__checkpoint` is mirrored to
 * the changelog topic.
 */
import avro from 'avsc';
import { bufferToFloats, floatsToBuffer } from '../util/floats.js';

export interface UserEvent {
  item: string;
  ts: number;
  type: string;
  value: number | null;
  /** Session ordinal of the user, from 0. */
  session: number;
}

export interface UserState {
  /** Latest event time seen (out-of-order events do not move it back). */
  lastTs: number;
  /** The SESSION_ID of the current session when events carry one. */
  sessionKey: string | null;
  session: number;
  sessionStart: number;
  /** Total events of the user, including those dropped from `events`. */
  total: number;
  /** Most recent last, at most state.maxEventsPerUser. */
  events: UserEvent[];
  /** Distinct items the user has touched, in order of first touch, at most state.maxSeenItemsPerUser. */
  seen: string[];
}

export interface ItemCounts {
  /** Distinct users who interacted with the item (Personalize's popularity-count). */
  users: number;
  events: number;
  /** Time-decayed event count at `trendTs` (trending). */
  trend: number;
  trendTs: number;
  lastTs: number;
}

/**
 * A user's HRNN state (src/model/hrnn-math.ts) and the model version it was computed with: a state
 * of another version is re-derived from the user's stored events before it is used.
 */
export interface HrnnUserState {
  version: string;
  /** Session state, Float32 little-endian. */
  h: Float32Array;
  /** User state, Float32 little-endian. */
  c: Float32Array;
  /** Latest event time applied; null before any. */
  last: number | null;
}

/** Co-occurrence counts: item -> number of users who touched both (within the window). */
export type CoOccurrence = Map<string, number>;

const userType = avro.Type.forSchema({
  type: 'record',
  name: 'UserState',
  fields: [
    { name: 'lastTs', type: 'long' },
    { name: 'sessionKey', type: ['null', 'string'] },
    { name: 'session', type: 'int' },
    { name: 'sessionStart', type: 'long' },
    { name: 'total', type: 'long' },
    { name: 'seen', type: { type: 'array', items: 'string' } },
    {
      name: 'events',
      type: {
        type: 'array',
        items: {
          type: 'record',
          name: 'UserEvent',
          fields: [
            { name: 'item', type: 'string' },
            { name: 'ts', type: 'long' },
            { name: 'type', type: 'string' },
            { name: 'value', type: ['null', 'double'] },
            { name: 'session', type: 'int' },
          ],
        },
      },
    },
  ],
});

const itemType = avro.Type.forSchema({
  type: 'record',
  name: 'ItemCounts',
  fields: [
    { name: 'users', type: 'long' },
    { name: 'events', type: 'long' },
    { name: 'trend', type: 'double' },
    { name: 'trendTs', type: 'long' },
    { name: 'lastTs', type: 'long' },
  ],
});

// Two parallel arrays, not an Avro map: encoding a Map through a plain object was the costliest
// step of a batch (dictionary-mode objects).
const coType = avro.Type.forSchema({
  type: 'record',
  name: 'CoOccurrence',
  fields: [
    { name: 'items', type: { type: 'array', items: 'string' } },
    { name: 'counts', type: { type: 'array', items: 'long' } },
  ],
});

const hrnnType = avro.Type.forSchema({
  type: 'record',
  name: 'HrnnUserState',
  fields: [
    { name: 'version', type: 'string' },
    { name: 'h', type: 'bytes' },
    { name: 'c', type: 'bytes' },
    { name: 'last', type: ['null', 'long'] },
  ],
});


/** A user's state as the store holds it: `u/<id>`, and `h/<id>` when an HRNN version is served. */
export interface EncodedUserState {
  user: Buffer;
  hrnn?: Buffer;
}

export const keys = {
  user: (userId: string): string => `u/${userId}`,
  item: (itemId: string): string => `i/${itemId}`,
  co: (itemId: string): string => `c/${itemId}`,
  hrnn: (userId: string): string => `h/${userId}`,
  offset: '__offset',
  /** The next offset of the task's interactions-repartition partition. */
  repartitionOffset: '__offset.repartition',
  checkpoint: '__checkpoint',
} as const;

export const codecs = {
  user: {
    encode: (v: UserState): Buffer => userType.toBuffer(v),
    decode: (b: Buffer): UserState => userType.fromBuffer(b) as UserState,
  },
  item: {
    encode: (v: ItemCounts): Buffer => itemType.toBuffer(v),
    decode: (b: Buffer): ItemCounts => itemType.fromBuffer(b) as ItemCounts,
  },
  co: {
    encode: (v: CoOccurrence): Buffer => coType.toBuffer({ items: [...v.keys()], counts: [...v.values()] }),
    decode: (b: Buffer): CoOccurrence => {
      const { items, counts } = coType.fromBuffer(b) as { items: string[]; counts: number[] };
      const m: CoOccurrence = new Map();
      for (let i = 0; i < items.length; i++) m.set(items[i]!, counts[i]!);
      return m;
    },
  },
  hrnn: {
    encode: (v: HrnnUserState): Buffer => hrnnType.toBuffer({ version: v.version, h: floatsToBuffer(v.h), c: floatsToBuffer(v.c), last: v.last }),
    decode: (b: Buffer): HrnnUserState => {
      const r = hrnnType.fromBuffer(b) as { version: string; h: Buffer; c: Buffer; last: number | null };
      return { version: r.version, h: bufferToFloats(r.h), c: bufferToFloats(r.c), last: r.last };
    },
  },
  offset: {
    encode: (n: number): Buffer => Buffer.from(String(n)),
    decode: (b: Buffer): number => Number(b.toString()),
  },
};
