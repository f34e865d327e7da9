/**
 * Training data from a file: read (streaming), rejected rows kept, Personalize's event selection
 * (event types; an event-value threshold), sorted by time (ties in file order).
 */
import { resolve } from 'node:path';
import { readRecords, type KindRecords } from '../import/read.js';
import type { TrainingMetadata } from '../recipes/types.js';
import type { InteractionFields } from '../state/apply.js';

export interface DataSpec {
  /** Absolute path of the interactions file. */
  file: string;
  /** Item and user metadata files (hrnn-metadata, hrnn-coldstart), with their column mappings. */
  items?: { file: string; map?: Record<string, string> };
  users?: { file: string; map?: Record<string, string> };
  map?: Record<string, string>;
  /** A delimiter other than the file type's (e.g. `;`). */
  delimiter?: string;
  /** Keep only these EVENT_TYPEs (Personalize: the event type to train on). */
  eventTypes?: string[];
  /** Keep only events with EVENT_VALUE >= this (events without a value are dropped, as Personalize). */
  eventValueThreshold?: number;
}

export interface LoadedData {
  rows: InteractionFields[];
  rejects: string[];
  filteredOut: number;
}

export async function loadInteractions(spec: DataSpec, onProgress?: (bytes: number, total: number, rows: number) => void): Promise<LoadedData> {
  const rows: (InteractionFields & { n: number })[] = [];
  const rejects: string[] = [];
  let filteredOut = 0;
  const types = spec.eventTypes ? new Set(spec.eventTypes) : undefined;
  const options = {
    kind: 'interactions' as const,
    ...(spec.map ? { map: spec.map } : {}),
    ...(spec.delimiter ? { delimiter: spec.delimiter } : {}),
    ...(onProgress ? { onProgress } : {}),
  };
  for await (const r of readRecords(resolve(spec.file), options)) {
    if (!r.ok) {
      rejects.push(JSON.stringify({ line: r.line, field: r.field ?? null, reason: r.reason, raw: r.raw }));
      continue;
    }
    const e = r.record;
    const keep =
      (!types || types.has(e.EVENT_TYPE)) &&
      (spec.eventValueThreshold === undefined || (e.EVENT_VALUE !== null && e.EVENT_VALUE >= spec.eventValueThreshold));
    if (keep) rows.push({ ...e, n: rows.length });
    else filteredOut++;
  }
  rows.sort((a, b) => a.TIMESTAMP - b.TIMESTAMP || a.n - b.n);
  return { rows, rejects, filteredOut };
}

/** The records of an items or users file (rejected rows are counted, not kept). */
export async function loadMetadata<K extends 'items' | 'users'>(
  kind: K,
  spec: { file: string; map?: Record<string, string> },
  delimiter?: string,
): Promise<{ records: KindRecords[K][]; rejected: number }> {
  const records: KindRecords[K][] = [];
  let rejected = 0;
  for await (const r of readRecords(resolve(spec.file), { kind, ...(spec.map ? { map: spec.map } : {}), ...(delimiter ? { delimiter } : {}) })) {
    if (r.ok) records.push(r.record);
    else rejected++;
  }
  return { records, rejected };
}

/** The metadata a spec names, for training. */
export async function loadTrainingMetadata(spec: DataSpec): Promise<TrainingMetadata> {
  return {
    ...(spec.items ? { items: (await loadMetadata('items', spec.items, spec.delimiter)).records } : {}),
    ...(spec.users ? { users: (await loadMetadata('users', spec.users, spec.delimiter)).records } : {}),
  };
}
