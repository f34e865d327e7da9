/**
 * popularity-count (Personalize's): items ranked by the number of distinct users who interacted
 * with them. With `trendingHalfLifeMs`, by a time-decayed event count seen from the newest event
 * (trending) instead. The counts come from the shared counting code (src/state/apply.ts).
 */
import { applyInteraction, MapStateView, offlineCounting, trendAt, type InteractionFields } from '../state/apply.js';
import { topN, type Model, type Recipe, type RecommendRequest, type Scored } from './types.js';

export interface PopularityParams {
  /** Rank by time-decayed counts with this half-life (event time); 0: distinct users. */
  trendingHalfLifeMs: number;
}

export class PopularityModel implements Model {
  readonly recipe = 'popularity-count';
  private readonly ranked: Scored[];

  private readonly byItem: Map<string, number>;

  constructor(scores: Map<string, number>) {
    this.ranked = topN(scores, scores.size);
    this.byItem = scores;
  }

  static fromJSON(data: { ranked: [string, number][] }): PopularityModel {
    return new PopularityModel(new Map(data.ranked));
  }

  toJSON(): { recipe: string; ranked: [string, number][] } {
    return { recipe: this.recipe, ranked: this.ranked.map((s) => [s.itemId, s.score]) };
  }

  score(_history: RecommendRequest['history'], items: readonly string[]): (number | undefined)[] {
    return items.map((i) => this.byItem.get(i));
  }

  /** Items in popularity order, best first, leaving out `exclude`. */
  popular(numResults: number, exclude?: ReadonlySet<string>): Scored[] {
    const out: Scored[] = [];
    for (const s of this.ranked) {
      if (out.length >= numResults) break;
      if (!exclude?.has(s.itemId)) out.push(s);
    }
    return out;
  }

  recommend(request: RecommendRequest): Scored[] {
    return this.popular(request.numResults, request.exclude);
  }

  related(itemId: string, numResults: number): Scored[] | undefined {
    if (!this.byItem.has(itemId)) return undefined;
    return this.popular(numResults, new Set([itemId]));
  }
}

export const popularityCount: Recipe<PopularityParams, PopularityModel> = {
  name: 'popularity-count',
  train(interactions: readonly InteractionFields[], params: Partial<PopularityParams> = {}): PopularityModel {
    const halfLife = params.trendingHalfLifeMs ?? 0;
    const view = new MapStateView();
    // Popularity needs the item counts only: no history, no co-occurrence.
    const counting = offlineCounting({ maxEventsPerUser: 1, coOccurrenceWindow: 0, ...(halfLife > 0 ? { trendingHalfLifeMs: halfLife } : {}) });
    let newest = 0;
    for (const e of interactions) {
      applyInteraction(view, e, counting);
      if (e.TIMESTAMP > newest) newest = e.TIMESTAMP;
    }
    const scores = new Map<string, number>();
    for (const [itemId, c] of view.items) scores.set(itemId, halfLife > 0 ? trendAt(c, newest, halfLife) : c.users);
    return new PopularityModel(scores);
  },
};
