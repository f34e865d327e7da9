/**
 * The Recipe interface every recipe implements (popularity-count, sims now; the HRNN family later):
 * `train` turns time-ordered interactions into a model; a model answers for a user's history, or
 * for an item. Models are pure data plus these functions: persistence lives elsewhere.
 */
import type { InteractionFields } from '../state/apply.js';
import type { Item, User } from '../serde/avro.js';

export interface Scored {
  itemId: string;
  score: number;
  /** Set when the item is not the model's own pick: `popular` fill-in, `exploration` of a new item (hrnn-coldstart). */
  reason?: 'popular' | 'exploration';
}

export interface RecommendRequest {
  /** The user's known interactions, oldest first (the input part of a split, or the live state). */
  history: readonly Pick<InteractionFields, 'ITEM_ID' | 'TIMESTAMP'>[];
  numResults: number;
  /** Items that must not be recommended (e.g. seen items, when the model's rule says so). */
  exclude?: ReadonlySet<string>;
  /** When the request is made (epoch ms), for models that care how long ago the history ended (hrnn's session timeout). */
  at?: number;
}

export interface Model {
  readonly recipe: string;
  recommend(request: RecommendRequest): Scored[];
  /**
   * Many requests at once, element i equal to `recommend(requests[i])` (where a model can share work
   * between them); a model may compute them in float32 on a compiled backend, equal to `recommend`'s
   * to rounding, unless `exact` is asked for.
   */
  recommendMany?(requests: readonly RecommendRequest[], o?: { exact?: boolean }): Scored[][];
  /** Items related to one item; undefined when the item is unknown to the model. */
  related(itemId: string, numResults: number): Scored[] | undefined;
  /** Scores of `items` for a user with this history (personalized ranking); undefined for an item the model does not know. */
  score(history: RecommendRequest['history'], items: readonly string[]): (number | undefined)[];
  /** Plain JSON data from which `loadModel` rebuilds the same model. */
  toJSON(): { recipe: string } & Record<string, unknown>;
}

/** Item and user metadata for the recipes that use them (hrnn-metadata, hrnn-coldstart). */
export interface TrainingMetadata {
  items?: readonly Pick<Item, 'ITEM_ID' | 'CREATION_TIMESTAMP' | 'METADATA'>[];
  users?: readonly Pick<User, 'USER_ID' | 'METADATA'>[];
}

/** What a long training reports as it goes (hrnn: after every few steps). */
export interface TrainHooks {
  onProgress?(progress: { done: number; total: number; detail: string }): void;
  /** Item and user metadata, for the recipes that use them (hrnn-metadata, hrnn-coldstart). */
  metadata?: TrainingMetadata;
  /** Asked at each progress report of a long training (hrnn); true stops it with TrainingStopped (a search's budget). */
  shouldStop?(): boolean;
}

/** A training stopped by TrainHooks.shouldStop. */
export class TrainingStopped extends Error {
  constructor() {
    super('training stopped (TrainHooks.shouldStop)');
    this.name = 'TrainingStopped';
  }
}

/** `Out` is `M` for recipes that train synchronously, `Promise<M>` for those that do not (hrnn). */
export interface Recipe<P = unknown, M extends Model = Model, Out extends M | Promise<M> = M> {
  readonly name: string;
  /** `interactions` must be in time order (ties in input order). */
  train(interactions: readonly InteractionFields[], params?: Partial<P>, hooks?: TrainHooks): Out;
}

/** Any recipe, as the registry (src/training/recipes.ts) holds them. */
export type AnyRecipe = Recipe<Record<string, unknown>, Model, Model | Promise<Model>>;

/** Keeps the best `n` of `scores` not in `exclude`, best first; ties by item id (deterministic). */
export function topN(scores: Map<string, number>, n: number, exclude?: ReadonlySet<string>): Scored[] {
  const out: Scored[] = [];
  for (const [itemId, score] of scores) if (!exclude?.has(itemId)) out.push({ itemId, score });
  out.sort((a, b) => b.score - a.score || (a.itemId < b.itemId ? -1 : a.itemId > b.itemId ? 1 : 0));
  return out.slice(0, n);
}
