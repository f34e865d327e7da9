/**
 * The query side of a group (GetRecommendations, related items, GetPersonalizedRanking, popular /
 * trending), computed from the served version and the live state — never from a cache of lists.
 *
 * - A user's list comes from the user's current stored state (src/stream/recommend.ts).
 * - Filters (Personalize's expression language, src/filters/) are applied to the ranking, and the
 *   list is refilled from further down the ranking, then from the live popular items (reason
 *   `popular`), so `numResults` is honoured when the catalogue allows.
 * - Popular / trending: the live item counters of the partitions this instance owns (distinct users;
 *   time-decayed events), cached for a second.
 * - Every answer carries a fresh `recommendationId` that later events can cite; it names the version
 *   that answered (src/serving/recommendation-id.ts), for attribution.
 */
import { AppError } from '../errors/index.js';
import { bindFilter, parseFilter, type BoundFilter, type ParsedFilter } from '../filters/index.js';
import { BatchScorer, batchScorerBackend } from '../model/batch-scorer.js';
import type { HrnnState } from '../model/hrnn-math.js';
import { HrnnModel } from '../recipes/hrnn.js';
import type { Scored } from '../recipes/types.js';
import type { Item, User } from '../serde/avro.js';
import { trendAt } from '../state/apply.js';
import { codecs as stateCodecs, type EncodedUserState, type HrnnUserState, type ItemCounts, type UserEvent, type UserState } from '../state/model.js';
import type { Resources } from '../stream/resources.js';
import { mintRecommendationId } from './recommendation-id.js';
import { currentHrnnState, type ServingModel, type ServingVersion } from './served-model.js';

export type Reason = 'popular' | 'exploration' | 'promotion' | 'not-in-model';

export interface QueryItem {
  itemId: string;
  /** Absent for items the model cannot score (personalized ranking appends them, as Personalize does). */
  score?: number;
  reason?: Reason;
}

export interface Answer {
  recommendationId: string;
  version: string;
  recipe: string;
  itemList: QueryItem[];
}

/** Personalize's promotion: a share of the list from the items a filter keeps, marked `promotion`. */
export interface Promotion {
  name: string;
  percentPromotedItems: number;
  filter: string;
  filterValues?: Record<string, string> | undefined;
}

export interface FilterRequest {
  filter?: string | undefined;
  filterValues?: Record<string, string> | undefined;
}

export interface QueryDeps {
  serving: ServingModel;
  userState(userId: string): Promise<{ user: UserState; hrnn: HrnnUserState | undefined } | undefined>;
  forEachItemCount(fn: (itemId: string, counts: ItemCounts) => void): Promise<void>;
  items(ids: readonly string[]): Promise<Map<string, Item>>;
  user(userId: string): Promise<User | undefined>;
  resources: Pick<Resources, 'get'>;
  trendingHalfLifeMs: number;
  now?: () => number;
  /** The other instances' local popular and trending top lists (several instances); none: this instance's partitions only. */
  peerRankings?: () => Promise<Ranking[]>;
  /** Score HRNN queries in batches through TensorFlow.js when a compiled backend is up (the service: yes; tests of logic: no). */
  batchScoring?: boolean;
}

interface QueuedScore {
  model: HrnnModel;
  q: Float32Array;
  resolve: (scores: Float32Array) => void;
  reject: (err: unknown) => void;
}

/** Stored user states kept for queries, and for how long at most. */
const KEPT_STATES = 50_000;
const STATE_TTL_MS = 10_000;

/** Queries per matMul (bounds the event loop's pause: about 0.6 ms for 50 here). */
const MAX_BATCH = 64;

/** A user's HRNN state under a version, and its query vector once its session has closed. */
interface DerivedState {
  version: string;
  total: number;
  state: HrnnState;
  closed: Float32Array | undefined;
}

type Live = { user: UserState; hrnn: HrnnUserState | undefined } | undefined;
/** A user's state kept for the next queries: read (live), or committed by the processor and not decoded yet (encoded). */
type KeptState = { at: number; live?: Live; encoded?: EncodedUserState | undefined };

const POPULAR_CACHE_MS = 1000;
/** How many popular / trending items each instance contributes to the group's lists. */
export const PEER_TOP = 500;
/** Derived HRNN states kept for repeated queries (1-2 KB each with 100 hidden units). */
const DERIVED_STATES = 50_000;

export class QueryService {
  private readonly now: () => number;
  private readonly parsed = new Map<string, ParsedFilter>();
  private readonly popularCache: { local?: Ranking & { at: number }; group?: Ranking & { at: number } } = {};
  private readonly derived = new Map<string, DerivedState>();
  private batching = false;
  private readonly states = new Map<string, KeptState>();
  private epoch = 0;
  private readonly batchCounts = { batches: 0, queries: 0 };
  private queue: QueuedScore[] = [];
  private readonly scorers = new Map<HrnnModel, BatchScorer>();

  constructor(private readonly d: QueryDeps) {
    this.now = d.now ?? Date.now;
    if (d.batchScoring) {
      void batchScorerBackend().then((ok) => {
        this.batching = ok;
      });
    }
  }

  /**
   * Every item's score for a query vector. With batch scoring (a compiled TensorFlow.js backend),
   * the queries of one event-loop turn are scored together in one matMul (src/model/batch-scorer.ts),
   * the cold items in JavaScript; else in JavaScript.
   */
  private hrnnScores(model: HrnnModel, q: Float32Array): Promise<Float32Array> | Float32Array {
    if (!this.batching) return model.scoresOf(q);
    return new Promise((resolve, reject) => {
      this.queue.push({ model, q, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  /**
   * After the processor applied a batch: the kept states of its users are stale; `committed` (the
   * batch's users' states as stored) replaces them, decoded when first asked for, so that the lists
   * published next read no store.
   */
  applied(users: Iterable<string>, committed?: ReadonlyMap<string, EncodedUserState>): void {
    this.epoch++;
    const at = performance.now();
    for (const u of users) {
      this.states.delete(u);
      const c = committed?.get(u);
      if (c) this.keep(u, { at, encoded: c });
    }
  }

  /**
   * A user's stored state, kept for the user's next queries until an applied event of the user
   * (`applied`) or STATE_TTL_MS (a safety net for partitions that move away and back). A read that
   * overlaps any applied batch is not kept (it may predate it).
   */
  private async userState(userId: string): Promise<Live> {
    const hit = this.states.get(userId);
    if (hit && performance.now() - hit.at < STATE_TTL_MS) {
      if (hit.encoded) {
        hit.live = { user: stateCodecs.user.decode(hit.encoded.user), hrnn: hit.encoded.hrnn ? stateCodecs.hrnn.decode(hit.encoded.hrnn) : undefined };
        hit.encoded = undefined;
      }
      return hit.live;
    }
    const epoch = this.epoch;
    const live = await this.d.userState(userId);
    if (live && epoch === this.epoch) this.keep(userId, { at: performance.now(), live });
    return live;
  }

  private keep(userId: string, entry: KeptState): void {
    this.states.delete(userId);
    this.states.set(userId, entry);
    if (this.states.size > KEPT_STATES) this.states.delete(this.states.keys().next().value!);
  }

  /** Whether queries are scored in batches, and how many batches and queries so far. */
  scoring(): { batched: boolean; batches: number; queries: number } {
    return { batched: this.batching, ...this.batchCounts };
  }

  private flush(): void {
    const queue = this.queue;
    this.queue = [];
    const byModel = new Map<HrnnModel, QueuedScore[]>();
    for (const e of queue) byModel.set(e.model, [...(byModel.get(e.model) ?? []), e]);
    for (const [model, entries] of byModel) {
      try {
        const scorer = this.scorerFor(model);
        for (let k = 0; k < entries.length; k += MAX_BATCH) {
          const chunk = entries.slice(k, k + MAX_BATCH);
          const trained = scorer.score(chunk.map((e) => e.q));
          this.batchCounts.batches++;
          this.batchCounts.queries += chunk.length;
          chunk.forEach((e, i) => e.resolve(model.withColdScores(e.q, trained[i]!)));
        }
      } catch {
        // The JavaScript path gives the same scores (to the last bits).
        for (const e of entries) {
          try {
            e.resolve(model.scoresOf(e.q));
          } catch (err) {
            e.reject(err);
          }
        }
      }
    }
  }

  /** The model's scorer; the two latest models keep theirs (a swap's in-flight queries), older ones are freed. */
  private scorerFor(model: HrnnModel): BatchScorer {
    let scorer = this.scorers.get(model);
    if (!scorer) {
      const o = model.outputLayer();
      scorer = new BatchScorer(o.E, o.b, o.items, o.hidden);
      this.scorers.set(model, scorer);
      if (this.scorers.size > 2) {
        const [oldest, old] = this.scorers.entries().next().value!;
        old.dispose();
        this.scorers.delete(oldest);
      }
    }
    return scorer;
  }

  /** GetRecommendations: the user's list from the current state. Unknown users (no events, no metadata) are USER_NOT_FOUND. */
  async recommendations(r: { userId: string; numResults: number; promotions?: readonly Promotion[] | undefined } & FilterRequest): Promise<Answer> {
    const { version: v, arm } = this.versionFor(r.userId);
    const { live, meta } = await this.knownUser(r.userId);
    const bound = this.bind(r, live, meta);
    const at = this.now();
    // Seen items: the user state's seen list, every distinct item the user touched up to
    // state.maxSeenItemsPerUser (not the stored events, which keep only the latest
    // state.maxEventsPerUser); the same set a model folder and offline evaluation leave out
    // (src/training/seen.ts). The popular fill-in and promotions leave them out too.
    const exclude = v.excludeSeen && live ? new Set(live.user.seen) : new Set<string>();
    let rank: (k: number, ex: ReadonlySet<string>) => Scored[];
    if (v.model instanceof HrnnModel) {
      const model = v.model;
      const scores = await this.hrnnScores(model, this.queryVector(r.userId, model, v.version, live, meta, at));
      rank = (k, ex) => model.top(scores, k, ex, at);
    } else {
      const model = v.model;
      const history = historyOf(live?.user.events);
      rank = (k, ex) => model.recommend({ history, numResults: k, at, exclude: ex });
    }
    const promotion = r.promotions?.[0];
    if (!promotion) return this.answer(v, await this.fill(rank, r.numResults, bound, exclude), arm);
    // Promoted items: the user's best-ranked items that pass the promotion's filter (the request's
    // filter does not apply to them), spread evenly through the list; the rest as usual.
    const share = Math.ceil((r.numResults * promotion.percentPromotedItems) / 100);
    const promotedBound = this.bind({ filter: promotion.filter, filterValues: promotion.filterValues }, live, meta, 'promotions[0]');
    const promoted = (await this.filterRanked(rank, share, promotedBound, exclude)).map((s) => ({ ...s, reason: 'promotion' as const }));
    const rest = await this.fill(rank, r.numResults - promoted.length, bound, new Set([...exclude, ...promoted.map((s) => s.itemId)]));
    return this.answer(v, spread(rest, promoted), arm);
  }

  /** The items' records (METADATA) from the items topic; ids without one are left out. */
  itemMetadata(ids: readonly string[]): Promise<Map<string, Item>> {
    return this.d.items(ids);
  }

  /** Items related to one item (SIMS's co-occurrence, HRNN's next-item after it), with the same filters and fill-in. */
  async related(r: { itemId: string; numResults: number; userId?: string | undefined } & FilterRequest): Promise<Answer> {
    const { version: v, arm } = r.userId === undefined ? { version: this.version(), arm: 0 } : this.versionFor(r.userId);
    const live = r.userId === undefined ? undefined : await this.userState(r.userId);
    const meta = r.userId === undefined || live ? undefined : await this.d.user(r.userId);
    const bound = this.bind(r, live, meta);
    // related() has no exclude set: ask for more, and compute again only when more are needed.
    const model = v.model;
    let list = model.related(r.itemId, Math.max(2 * r.numResults, 50));
    if (list === undefined && !(await this.d.items([r.itemId])).has(r.itemId)) {
      throw new AppError('ITEM_NOT_FOUND', `item ${JSON.stringify(r.itemId)} is neither in the served version ${v.version} nor in the items topic`, { field: 'itemId' });
    }
    const rank = (k: number, ex: ReadonlySet<string>) => {
      if (list !== undefined && list.length < k + ex.size) list = model.related(r.itemId, k + ex.size);
      return (list ?? []).filter((s) => !ex.has(s.itemId)).slice(0, k);
    };
    const items = await this.fill(rank, r.numResults, bound, new Set([r.itemId]));
    return this.answer(v, items, arm);
  }

  /** GetPersonalizedRanking: `inputList` in the user's order; items the model does not know go last, in input order. */
  async ranking(r: { userId: string; inputList: string[] } & FilterRequest): Promise<Answer> {
    const { version: v, arm } = this.versionFor(r.userId);
    const { live, meta } = await this.knownUser(r.userId);
    const bound = this.bind(r, live, meta);
    const unique = [...new Set(r.inputList)];
    let scores: (number | undefined)[];
    if (v.model instanceof HrnnModel) {
      const model = v.model;
      const all = await this.hrnnScores(model, this.queryVector(r.userId, model, v.version, live, meta, this.now()));
      scores = unique.map((id) => {
        const j = model.index.get(id);
        return j === undefined ? undefined : all[j];
      });
    } else {
      scores = v.model.score(historyOf(live?.user.events), unique);
    }
    const known: QueryItem[] = [];
    const unknown: QueryItem[] = [];
    unique.forEach((itemId, i) => {
      const score = scores[i];
      if (score === undefined || !Number.isFinite(score)) unknown.push({ itemId, reason: 'not-in-model' });
      else known.push({ itemId, score });
    });
    known.sort((a, b) => b.score! - a.score! || (a.itemId < b.itemId ? -1 : 1));
    let list = [...known, ...unknown];
    if (bound) {
      const records = bound.needsItems ? await this.d.items(list.map((s) => s.itemId)) : undefined;
      list = list.filter((s) => bound.keep(s.itemId, records?.get(s.itemId)));
    }
    return this.answer(v, list, arm);
  }

  /** Popular (distinct users) or trending (time-decayed events) items, live; a user may be given for interaction filters. */
  async popular(r: { kind: 'popular' | 'trending'; numResults: number; userId?: string | undefined; scope?: 'local' | 'group' | undefined } & FilterRequest): Promise<Omit<Answer, 'version' | 'recipe'> & { kind: string }> {
    const live = r.userId === undefined ? undefined : await this.userState(r.userId);
    const meta = r.userId === undefined || live ? undefined : await this.d.user(r.userId);
    const bound = this.bind(r, live, meta);
    const ranked = (await this.popularRanking(r.scope ?? 'group'))[r.kind];
    const rank = (k: number, ex: ReadonlySet<string>) => {
      const out: Scored[] = [];
      for (const s of ranked) {
        if (out.length >= k) break;
        if (!ex.has(s.itemId)) out.push(s);
      }
      return out;
    };
    const items = await this.filterRanked(rank, r.numResults, bound, new Set());
    return { recommendationId: mintRecommendationId(undefined), kind: r.kind, itemList: items.map(toItem) };
  }

  /**
   * The vector the user's HRNN state is scored with now. The state is the stored one when it is of
   * the served version, else re-derived from the stored events (about 4 ms for 50 events). While
   * the user's session is open the vector is the state itself; after the session timeout it takes a
   * user-GRU step (about 0.1 ms) and no longer changes with time. Both derived forms are kept here
   * for the user's next queries, until the user's next event or the next version.
   */
  private queryVector(userId: string, model: HrnnModel, version: string, live: Live, meta: User | undefined, at: number): Float32Array {
    const fresh = live?.hrnn !== undefined && live.hrnn.version === version;
    const total = live?.user.total ?? 0;
    let entry = this.derived.get(userId);
    if (entry && (entry.version !== version || entry.total !== total)) entry = undefined;
    const state = fresh ? currentHrnnState(model, version, live.hrnn, undefined) : (entry?.state ?? currentHrnnState(model, version, live?.hrnn, live?.user.events, meta));
    if (model.sessionOpen(state, at)) {
      if (!fresh && !entry) this.remember(userId, { version, total, state, closed: undefined });
      return state.h;
    }
    if (entry?.closed) {
      // Most recently used last: the Map's insertion order is the eviction order.
      this.derived.delete(userId);
      this.derived.set(userId, entry);
      return entry.closed;
    }
    const closed = model.queryVector(state, at);
    this.remember(userId, { version, total, state, closed });
    return closed;
  }

  private remember(userId: string, entry: DerivedState): void {
    this.derived.delete(userId);
    this.derived.set(userId, entry);
    if (this.derived.size > DERIVED_STATES) this.derived.delete(this.derived.keys().next().value!);
  }

  private version(): ServingVersion {
    const v = this.d.serving.current;
    if (!v) throw new AppError('NO_MODEL_VERSION', 'no model version is served yet', { field: 'version' });
    return v;
  }

  /** The version that answers this user: the served one, or the user's arm's during a traffic split (src/serving/split.ts). */
  private versionFor(userId: string): { version: ServingVersion; arm: number } {
    return this.d.serving.forUser(userId) ?? { version: this.version(), arm: 0 };
  }

  private async knownUser(userId: string): Promise<{ live: Live; meta: User | undefined }> {
    const live = await this.userState(userId);
    if (live) return { live, meta: undefined };
    const meta = await this.d.user(userId);
    if (!meta) {
      throw new AppError('USER_NOT_FOUND', `user ${JSON.stringify(userId)} has no events and no user record in this group`, { field: 'userId' });
    }
    return { live: undefined, meta };
  }

  /** `at`: where the filter was given in the request (errors name `<at>.filter`), top level by default. */
  private bind(r: FilterRequest, live: Live, meta: User | undefined, at?: string): BoundFilter | undefined {
    const field = (name: string) => (at === undefined ? name : `${at}.${name}`);
    if (r.filter === undefined) {
      if (r.filterValues !== undefined && Object.keys(r.filterValues).length > 0) {
        throw new AppError('FILTER_VALUES_INVALID', 'filterValues were given without a filter', { field: field('filterValues') });
      }
      return undefined;
    }
    const resource = this.d.resources.get('filter', r.filter);
    if (!resource) throw new AppError('FILTER_NOT_FOUND', `dataset group has no filter ${JSON.stringify(r.filter)}`, { field: field('filter') });
    let parsed = this.parsed.get(resource.name);
    if (!parsed || parsed.expression !== resource.expression) {
      parsed = parseFilter(resource.expression);
      this.parsed.set(resource.name, parsed);
    }
    return bindFilter(parsed, {
      user: meta ?? undefined,
      interactions: live?.user.events ?? [],
      values: r.filterValues,
    });
  }

  /** The model's ranking, filtered, then topped up with live popular items (reason `popular`). */
  private async fill(rank: (k: number, ex: ReadonlySet<string>) => Scored[], n: number, bound: BoundFilter | undefined, exclude: Set<string>): Promise<QueryItem[]> {
    const items = await this.filterRanked(rank, n, bound, exclude);
    if (items.length >= n) return items;
    const taken = new Set([...exclude, ...items.map((s) => s.itemId)]);
    const { popular } = await this.popularRanking();
    const more = await this.filterRanked((k, ex) => popular.filter((s) => !ex.has(s.itemId)).slice(0, k), n - items.length, bound, taken);
    return [...items, ...more.map((s) => ({ itemId: s.itemId, score: 0, reason: 'popular' as const }))];
  }

  /** Takes the ranking in growing slices, keeping what the filter keeps, until `n` are kept or it runs out. */
  private async filterRanked(rank: (k: number, ex: ReadonlySet<string>) => Scored[], n: number, bound: BoundFilter | undefined, exclude: Set<string>): Promise<QueryItem[]> {
    if (!bound) return rank(n, exclude).map(toItem);
    const seen = new Set(exclude);
    const out: QueryItem[] = [];
    let k = Math.max(2 * n, 50);
    for (;;) {
      const slice = rank(k, seen);
      if (slice.length === 0) return out;
      const records = bound.needsItems ? await this.d.items(slice.map((s) => s.itemId)) : undefined;
      for (const s of slice) {
        seen.add(s.itemId);
        if (bound.keep(s.itemId, records?.get(s.itemId))) {
          out.push(toItem(s));
          if (out.length >= n) return out;
        }
      }
      if (slice.length < k) return out;
      k *= 4;
    }
  }

  /**
   * Popular and trending items: of the partitions this instance owns (`local`), or of the whole
   * group (`group`): the local counts plus the other instances' local top PEER_TOP, summed (exact
   * for items in each instance's top PEER_TOP). Each is kept for POPULAR_CACHE_MS.
   */
  private async popularRanking(scope: 'local' | 'group' = 'group'): Promise<Ranking> {
    const t = performance.now();
    const local = this.popularCache.local && t - this.popularCache.local.at < POPULAR_CACHE_MS ? this.popularCache.local : await this.localRanking(t);
    const peers = this.d.peerRankings;
    if (scope === 'local' || !peers) return local;
    const cached = this.popularCache.group;
    if (cached && t - cached.at < POPULAR_CACHE_MS) return cached;
    const others = await peers();
    if (others.length === 0) return local;
    const merge = (kind: 'popular' | 'trending'): Scored[] => {
      const sum = new Map<string, number>();
      for (const list of [local[kind], ...others.map((o) => o[kind])]) for (const s of list) sum.set(s.itemId, (sum.get(s.itemId) ?? 0) + s.score);
      return order(sum);
    };
    this.popularCache.group = { at: t, popular: merge('popular'), trending: merge('trending') };
    return this.popularCache.group;
  }

  private async localRanking(t: number): Promise<Ranking> {
    const now = this.now();
    const users = new Map<string, number>();
    const trend = new Map<string, number>();
    await this.d.forEachItemCount((itemId, c) => {
      users.set(itemId, (users.get(itemId) ?? 0) + c.users);
      trend.set(itemId, (trend.get(itemId) ?? 0) + trendAt(c, now, this.d.trendingHalfLifeMs));
    });
    this.popularCache.local = { at: t, popular: order(users), trending: order(trend) };
    return this.popularCache.local;
  }

  /** `arm`: the traffic split's arm that answered (0: no split), carried by the recommendationId. */
  private answer(v: ServingVersion, items: QueryItem[], arm = 0): Answer {
    return { recommendationId: mintRecommendationId(v.version, arm), version: v.version, recipe: v.model.recipe, itemList: items };
  }
}

/** Popular and trending items, best first. */
export interface Ranking {
  popular: Scored[];
  trending: Scored[];
}

/** Items by score, best first; ties by id. */
function order(m: Map<string, number>): Scored[] {
  return [...m].map(([itemId, score]) => ({ itemId, score })).sort((a, b) => b.score - a.score || (a.itemId < b.itemId ? -1 : 1));
}

/** `promoted` placed at evenly spaced positions of the list (the first on top), the others in order. */
export function spread(rest: readonly QueryItem[], promoted: readonly QueryItem[]): QueryItem[] {
  const n = rest.length + promoted.length;
  const out: QueryItem[] = [];
  let p = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    const slot = p < promoted.length && i >= Math.floor((p * n) / promoted.length);
    out.push(slot || o >= rest.length ? promoted[p++]! : rest[o++]!);
  }
  return out;
}

function toItem(s: Scored | QueryItem): QueryItem {
  return s.reason ? { itemId: s.itemId, score: s.score, reason: s.reason } : { itemId: s.itemId, score: s.score };
}

function historyOf(events: readonly UserEvent[] | undefined): { ITEM_ID: string; TIMESTAMP: number }[] {
  return (events ?? []).map((e) => ({ ITEM_ID: e.item, TIMESTAMP: e.ts }));
}
