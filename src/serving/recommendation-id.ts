/**
 * A recommendationId says which answer an event was picked from, without a lookup: it names the
 * served version (by a short tag) and the arm of the deployment's traffic split.
 *
 *     RID-<tag>-<arm>-<random>      e.g. RID-3f9a1c07-0-q1Xb2Lr8VtYc0aZp
 *
 * - `tag`: the first 8 hex digits of sha256(version). Attribution maps it back to a version through
 *   the versions the group knows (`versionTag`); 32 bits keep collisions between a group's versions
 *   negligible, and a collision is detected there rather than guessed.
 * - `arm`: one character, `0` for the deployment's single version, `1`, `2`, ... for the arms of a
 *   split in the order they are declared; `-` when no version produced the list (popular, trending).
 * - `random`: 12 random bytes, base64url (16 characters), so ids do not repeat.
 *
 * 31 characters in all: within PutEvents' 40-character limit on recommendationId, so the official
 * SDKs carry it back unchanged. Ids that do not have this shape (a client's own, or Personalize's
 * `RID-<uuid>`) are accepted everywhere and simply not attributed.
 */
import { createHash, randomBytes } from 'node:crypto';

export const NO_VERSION_ARM = '-';

const SHAPE = /^RID-([0-9a-f]{8})-([0-9a-z-])-[A-Za-z0-9_-]{16}$/;
const NO_VERSION_TAG = '00000000';

/** The 8-hex-digit tag of a version name. */
export function versionTag(version: string): string {
  return createHash('sha256').update(version, 'utf8').digest('hex').slice(0, 8);
}

/** A fresh id for an answer of `version` (undefined: not from a model) on arm `arm` (0 when the deployment serves one version). */
export function mintRecommendationId(version: string | undefined, arm = 0): string {
  if (!Number.isInteger(arm) || arm < 0 || arm > 35) throw new RangeError(`arm must be an integer 0..35, not ${arm}`);
  const tag = version === undefined ? NO_VERSION_TAG : versionTag(version);
  const a = version === undefined ? NO_VERSION_ARM : arm.toString(36);
  return `RID-${tag}-${a}-${randomBytes(12).toString('base64url')}`;
}

export interface ParsedRecommendationId {
  /** undefined for lists no version produced (popular, trending). */
  versionTag: string | undefined;
  /** undefined with versionTag. */
  arm: number | undefined;
}

/** What a recommendationId says, or undefined when it is not one this service minted. */
export function parseRecommendationId(id: string | null | undefined): ParsedRecommendationId | undefined {
  if (!id) return undefined;
  const m = SHAPE.exec(id);
  if (!m) return undefined;
  if (m[2] === NO_VERSION_ARM) return m[1] === NO_VERSION_TAG ? { versionTag: undefined, arm: undefined } : undefined;
  return { versionTag: m[1]!, arm: parseInt(m[2]!, 36) };
}
