/**
 * Exploration of new items, as Personalize's `explorationWeight` and `explorationItemAgeCutOff`:
 * a share of a user's list goes to recently created items (scored by the caller, e.g. with the
 * cold-start tower), so they collect the interactions the model needs to learn them.
 *
 * Each slot of the list independently, with probability `weight`, takes the best remaining new
 * item (marked `reason: 'exploration'`), else the best remaining ranked item; when one list runs
 * out the other fills the remaining slots. The expected share of exploration slots is therefore
 * `weight` while both lists last. Items appear once: an item already taken (from either list) or
 * excluded is skipped wherever it comes up again. Weight 0 turns exploration off entirely: the
 * ranked list as given (less excluded items), never filled from the new items. `random` is drawn
 * once per slot in which both lists still have items, so a seeded `random` gives the same list.
 */

/** Whether an item created at `creationTimestamp` is new enough at `now` to be explored (unknown creation time: no). */
export function isExplorable(creationTimestamp: number | null, now: number, ageCutoffMs: number): boolean {
  if (creationTimestamp === null || !Number.isFinite(creationTimestamp)) return false;
  return now - creationTimestamp <= ageCutoffMs;
}

export interface ScoredItem {
  itemId: string;
  score: number;
}

export interface Explored extends ScoredItem {
  reason: 'exploration';
}

export interface ExplorationOptions {
  numResults: number;
  /** Share of the slots given to exploration, 0..1 (Personalize's default is 0.3). */
  weight: number;
  /** Uniform in [0, 1). */
  random: () => number;
  /** Items that must not appear (seen items, ...). */
  exclude?: ReadonlySet<string>;
}

/**
 * Mixes `candidates` (new items, best first) into `ranked` (the model's list, best first). Ranked
 * entries are returned as they are (same objects); candidates as fresh `{ itemId, score, reason }`.
 */
export function mixExploration<T extends ScoredItem>(ranked: readonly T[], candidates: readonly ScoredItem[], o: ExplorationOptions): (T | Explored)[] {
  const { numResults, weight, random } = o;
  if (!Number.isInteger(numResults) || numResults < 0) throw new RangeError(`numResults must be an integer >= 0, got ${numResults}`);
  if (!(weight >= 0 && weight <= 1)) throw new RangeError(`exploration weight must be in 0..1, got ${weight}`);
  const taken = new Set<string>();
  const usable = (id: string) => !taken.has(id) && !o.exclude?.has(id);
  const out: (T | Explored)[] = [];
  let i = 0;
  let j = 0;
  const explore = weight > 0;
  while (out.length < numResults) {
    while (i < ranked.length && !usable(ranked[i]!.itemId)) i++;
    if (explore) while (j < candidates.length && !usable(candidates[j]!.itemId)) j++;
    const r = ranked[i];
    const c = explore ? candidates[j] : undefined;
    if (r === undefined && c === undefined) break;
    if (c !== undefined && (r === undefined || random() < weight)) {
      out.push({ itemId: c.itemId, score: c.score, reason: 'exploration' });
      taken.add(c.itemId);
      j++;
    } else {
      out.push(r!);
      taken.add(r!.itemId);
      i++;
    }
  }
  return out;
}
