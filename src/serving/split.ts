/**
 * A traffic split of the group's deployment (an A/B test): two or more arms, each a model version
 * with a weight. A user stays in one arm for the whole split: the arm is chosen by a stable hash of
 * (userId, split id) against the cumulative weights, so every instance puts a user in the same arm
 * without asking any other, and a new split (a new id) draws users afresh.
 *
 * Arms are numbered 1, 2, ... in the order they are declared; that number is the `arm` a
 * recommendationId carries (src/serving/recommendation-id.ts; 0 means "no split").
 *
 * The split travels on the deployment's announcement (`<group>.versions`, key `serving`, field
 * `split`, src/stream/versions.ts); the announcement's `version` stays the group's main version,
 * whose HRNN user states the processor keeps. Another arm's HRNN state is re-derived from the
 * user's stored recent events at query time (src/serving/served-model.ts, currentHrnnState).
 */
import { createHash, randomBytes } from 'node:crypto';
import { AppError } from '../errors/index.js';

export interface SplitArm {
  version: string;
  /** > 0; the arm's share of users is weight / (sum of the weights). */
  weight: number;
}

export interface TrafficSplit {
  /** Random, fixed for the split's life: part of the user hash, so another split draws users afresh. */
  id: string;
  /** Arm i (1-based) is arms[i - 1]. */
  arms: SplitArm[];
  /** ISO time the split started. */
  startedAt: string;
}

/** Each arm is a model every instance keeps in memory: a few are enough for an experiment. */
export const MAX_ARMS = 8;

/** The arms of a split request, checked: 2..MAX_ARMS arms, distinct known versions, finite weights > 0. `field`: where the arms are in the request. */
export function validateSplitArms(arms: unknown, known: (version: string) => boolean, field = 'arms'): SplitArm[] {
  if (!Array.isArray(arms)) throw new AppError('REQUEST_INVALID', `${field} must be a list of {version, weight}`, { field });
  if (arms.length < 2 || arms.length > MAX_ARMS) throw new AppError('REQUEST_INVALID', `a split needs 2 to ${MAX_ARMS} arms, not ${arms.length}`, { field });
  const seen = new Set<string>();
  return arms.map((a: unknown, i) => {
    const at = `${field}[${i}]`;
    const { version, weight } = (a ?? {}) as { version?: unknown; weight?: unknown };
    if (typeof version !== 'string' || version === '') throw new AppError('REQUEST_INVALID', `${at}.version must be a version id (GET .../solutions/default/versions)`, { field: `${at}.version` });
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) throw new AppError('REQUEST_INVALID', `${at}.weight must be a finite number > 0, not ${JSON.stringify(weight)}`, { field: `${at}.weight` });
    if (seen.has(version)) throw new AppError('REQUEST_INVALID', `${at}.version ${JSON.stringify(version)} is already arm ${[...seen].indexOf(version) + 1}: each arm serves another version`, { field: `${at}.version` });
    seen.add(version);
    if (!known(version)) throw new AppError('VERSION_NOT_FOUND', `${at}.version: no model version ${JSON.stringify(version)} in the registry nor on the models topic`, { field: `${at}.version` });
    return { version, weight };
  });
}

/** A new split of these (validated) arms. */
export function newSplit(arms: readonly SplitArm[], now = new Date()): TrafficSplit {
  return { id: randomBytes(6).toString('hex'), arms: arms.map((a) => ({ version: a.version, weight: a.weight })), startedAt: now.toISOString() };
}

/** A split as read back from an announcement, or undefined when the value is not one. */
export function parseSplit(value: unknown): TrafficSplit | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const s = value as Partial<TrafficSplit>;
  if (typeof s.id !== 'string' || !Array.isArray(s.arms) || s.arms.length < 2) return undefined;
  const arms = s.arms.filter((a): a is SplitArm => !!a && typeof a.version === 'string' && typeof a.weight === 'number' && Number.isFinite(a.weight) && a.weight > 0);
  if (arms.length !== s.arms.length) return undefined;
  return { id: s.id, arms, startedAt: String(s.startedAt ?? '') };
}

/** A uniform point in [0, 1) fixed by (userId, splitId): the first 48 bits of their sha256. */
export function splitPoint(userId: string, splitId: string): number {
  const d = createHash('sha256').update(splitId, 'utf8').update('\0').update(userId, 'utf8').digest();
  return d.readUIntBE(0, 6) / 2 ** 48;
}

/** The user's arm, 1-based: where the user's point falls among the cumulative weights. */
export function armOf(split: Pick<TrafficSplit, 'id' | 'arms'>, userId: string): number {
  const total = split.arms.reduce((s, a) => s + a.weight, 0);
  const x = splitPoint(userId, split.id) * total;
  let acc = 0;
  for (let i = 0; i < split.arms.length; i++) {
    acc += split.arms[i]!.weight;
    if (x < acc) return i + 1;
  }
  return split.arms.length;
}
