/**
 * A user's recommendations from the served version and the user's current stored state: the HRNN
 * state (re-derived from the stored events when it is of another version, not written back), or
 * the stored recent events for the other recipes. Seen items are left out when the version's rule
 * says so. The version is taken once, so a swap during the call cannot mix two versions.
 */
import { AppError } from '../errors/index.js';
import { HrnnModel } from '../recipes/hrnn.js';
import type { Scored } from '../recipes/types.js';
import type { StreamProcessor } from './processor.js';
import { currentHrnnState, type ServingModel } from './serving.js';

export interface UserRecommendations {
  version: string;
  recipe: string;
  items: Scored[];
}

export async function recommendForUser(serving: ServingModel, processor: Pick<StreamProcessor, 'userState'>, userId: string, numResults: number, now: number): Promise<UserRecommendations> {
  const v = serving.current;
  if (!v) throw new AppError('NO_MODEL_VERSION', 'no model version is served yet', { field: 'version' });
  const stored = await processor.userState(userId);
  const exclude = v.excludeSeen && stored ? new Set(stored.user.seen) : undefined;
  let items: Scored[];
  if (v.model instanceof HrnnModel) {
    const s = currentHrnnState(v.model, v.version, stored?.hrnn, stored?.user.events);
    items = v.model.top(v.model.scores(s, now), numResults, exclude, now);
  } else {
    const history = (stored?.user.events ?? []).map((e) => ({ ITEM_ID: e.item, TIMESTAMP: e.ts }));
    items = v.model.recommend({ history, numResults, at: now, ...(exclude ? { exclude } : {}) });
  }
  return { version: v.version, recipe: v.model.recipe, items };
}
