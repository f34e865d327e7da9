/**
 * sims (Personalize's SIMS): items related by co-occurrence in users' histories, from the shared
 * counting code's co-occurrence lists (src/state/apply.ts).
 *
 *   sim(i, j) = co(i, j) / users(j) ^ popularityDiscountFactor,   for co(i, j) >= minCointeractionCount
 *
 * co(i, j): users who touched j within `coOccurrenceWindow` distinct items of i (or i of j);
 * users(j): distinct users of j. A discount of 0 ranks the most co-occurring partners first (which
 * favours popular items); 1 ranks by co-occurrence relative to the partner's popularity.
 * For a user: score(j) = sum over the user's `recentItems` latest distinct items i_r (newest r = 0)
 * of sim(i_r, j) / (1 + r). Popular items fill in (reason `popular`) when the model has too little.
 */
import { applyInteraction, MapStateView, offlineCounting, recentDistinctItems, type InteractionFields } from '../state/apply.js';
import { PopularityModel } from './popularity.js';
import { topN, type Model, type Recipe, type RecommendRequest, type Scored } from './types.js';

export interface SimsParams {
  popularityDiscountFactor: number;
  minCointeractionCount: number;
  coOccurrenceWindow: number;
  coOccurrenceMaxPerItem: number;
  /** How many of the user's latest distinct items seed a user's list. */
  recentItems: number;
}

export const SIMS_DEFAULTS: SimsParams = {
  popularityDiscountFactor: 0.5,
  minCointeractionCount: 3,
  coOccurrenceWindow: 5,
  coOccurrenceMaxPerItem: 200,
  recentItems: 10,
};

export class SimsModel implements Model {
  readonly recipe = 'sims';

  constructor(
    /** item -> related items with their similarity, best first */
    private readonly neighbours: Map<string, Scored[]>,
    private readonly popular: PopularityModel,
    private readonly params: SimsParams,
  ) {}

  static fromJSON(data: { params: SimsParams; neighbours: [string, [string, number][]][]; popular: { ranked: [string, number][] } }): SimsModel {
    const neighbours = new Map(data.neighbours.map(([item, list]) => [item, list.map(([itemId, score]) => ({ itemId, score }))]));
    return new SimsModel(neighbours, PopularityModel.fromJSON(data.popular), data.params);
  }

  toJSON(): { recipe: string; params: SimsParams; neighbours: [string, [string, number][]][]; popular: { ranked: [string, number][] } } {
    return {
      recipe: this.recipe,
      params: this.params,
      neighbours: [...this.neighbours].map(([item, list]) => [item, list.map((s) => [s.itemId, s.score] as [string, number])]),
      popular: this.popular.toJSON(),
    };
  }

  score(history: RecommendRequest['history'], items: readonly string[]): (number | undefined)[] {
    const scores = this.userScores(history);
    return items.map((i) => (this.neighbours.has(i) ? (scores.get(i) ?? 0) : undefined));
  }

  related(itemId: string, numResults: number): Scored[] | undefined {
    const list = this.neighbours.get(itemId);
    if (!list) return undefined;
    const out = list.slice(0, numResults);
    return this.fill(out, numResults, new Set([itemId]));
  }

  recommend(request: RecommendRequest): Scored[] {
    const out = topN(this.userScores(request.history), request.numResults, request.exclude);
    return this.fill(out, request.numResults, request.exclude);
  }

  private userScores(history: RecommendRequest['history']): Map<string, number> {
    const recent = recentDistinctItems({ events: history.map((h) => ({ item: h.ITEM_ID })) }, this.params.recentItems);
    const scores = new Map<string, number>();
    recent.forEach((item, r) => {
      for (const n of this.neighbours.get(item) ?? []) scores.set(n.itemId, (scores.get(n.itemId) ?? 0) + n.score / (1 + r));
    });
    return scores;
  }

  private fill(out: Scored[], numResults: number, exclude?: ReadonlySet<string>): Scored[] {
    if (out.length >= numResults) return out;
    const taken = new Set([...(exclude ?? []), ...out.map((s) => s.itemId)]);
    for (const p of this.popular.popular(numResults - out.length, taken)) out.push({ itemId: p.itemId, score: 0, reason: 'popular' });
    return out;
  }
}

export const sims: Recipe<SimsParams, SimsModel> = {
  name: 'sims',
  train(interactions: readonly InteractionFields[], params: Partial<SimsParams> = {}): SimsModel {
    const p = { ...SIMS_DEFAULTS, ...params };
    const view = new MapStateView();
    const counting = offlineCounting({
      maxEventsPerUser: Math.max(p.coOccurrenceWindow * 4, 20),
      coOccurrenceWindow: p.coOccurrenceWindow,
      coOccurrenceMaxPerItem: p.coOccurrenceMaxPerItem,
    });
    for (const e of interactions) applyInteraction(view, e, counting);
    const neighbours = new Map<string, Scored[]>();
    for (const itemId of view.items.keys()) {
      const scores = new Map<string, number>();
      for (const [other, co] of view.co(itemId) ?? []) {
        if (co < p.minCointeractionCount) continue;
        const users = view.item(other)?.users ?? 1;
        scores.set(other, co / Math.pow(users, p.popularityDiscountFactor));
      }
      neighbours.set(itemId, topN(scores, scores.size));
    }
    // The fill-in popularity comes from the same pass (distinct users per item), not a second one.
    const popular = new PopularityModel(new Map([...view.items].map(([itemId, c]) => [itemId, c.users])));
    return new SimsModel(neighbours, popular, p);
  },
};
