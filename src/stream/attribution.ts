/**
 * Attribution: the online metrics of src/stream/online-metrics.ts, counted by the stream processor
 * in each partition's state, exactly once.
 *
 * An event whose RECOMMENDATION_ID this service minted (src/serving/recommendation-id.ts) is counted
 * under the version TAG and arm the id names; any other event (no id, a client's own id, a list no
 * version produced) under its event type alone. The counts are state keys of the partition:
 *
 * | key                                 | value  | meaning                                             |
 * |-------------------------------------|--------|-----------------------------------------------------|
 * | `m/a/<tag>/<arm>/<eventType>`       | Counts | events citing an answer of version `tag`, arm `arm` |
 * | `m/n/<eventType>`                   | Counts | events citing no answer of a version                |
 *
 * `<arm>` is the arm's base-36 digit, as in the id. Counts are kept per tag, not per version name:
 * an event may cite a version this instance does not know yet (trained elsewhere, its index record
 * not read yet); the tag is resolved to a name when the rows are read (`resolveRows`).
 *
 * Per batch the processor calls `attributionOps` once: the batch's events are summed in memory per
 * key, the touched keys read in one multi-get, and one put per touched key joins the batch's write
 * ops: the same changelog transaction and RocksDB write batch as the input offset. So a replayed
 * batch (after a crash) is either already counted (its offset is stored) or not at all, and a moved
 * partition restores its counts from the changelog with the rest of its state.
 */
import type { Interaction } from '../serde/avro.js';
import { parseRecommendationId } from '../serving/recommendation-id.js';
import type { KeyValueStore, WriteOp } from '../state/store.js';
import { ATTRIBUTION_PREFIX, countsCodec, zeroCounts, type Counts } from '../state/online-counts.js';
import type { OnlineMetricRow, OnlineMetricsSource } from './online-metrics.js';

export { ATTRIBUTION_PREFIX, countsCodec, type Counts } from '../state/online-counts.js';

const ATTRIBUTED = `${ATTRIBUTION_PREFIX}a/`;
const UNATTRIBUTED = `${ATTRIBUTION_PREFIX}n/`;

/** Adds `b` into `a` (and returns `a`). */
export function addCounts(a: Counts, b: Counts): Counts {
  a.events += b.events;
  a.impressionEvents += b.impressionEvents;
  a.impressedItems += b.impressedItems;
  a.valueSum += b.valueSum;
  a.valueCount += b.valueCount;
  return a;
}

/** The state key an event is counted under. */
export function countKey(e: Pick<Interaction, 'RECOMMENDATION_ID' | 'EVENT_TYPE'>): string {
  const id = e.RECOMMENDATION_ID;
  // Most events cite nothing: no regex for them.
  const parsed = id ? parseRecommendationId(id) : undefined;
  if (parsed?.versionTag === undefined || parsed.arm === undefined) return UNATTRIBUTED + e.EVENT_TYPE;
  return `${ATTRIBUTED}${parsed.versionTag}/${parsed.arm.toString(36)}/${e.EVENT_TYPE}`;
}

/** What a state key counts: the version tag and arm (null: unattributed) and the event type; undefined: not an attribution key. */
export function parseCountKey(key: string): { versionTag: string | null; arm: number | null; eventType: string } | undefined {
  if (key.startsWith(UNATTRIBUTED)) return { versionTag: null, arm: null, eventType: key.slice(UNATTRIBUTED.length) };
  // m/a/<8 hex>/<1 char>/<type>
  if (!key.startsWith(ATTRIBUTED) || key.length < ATTRIBUTED.length + 11 || key[ATTRIBUTED.length + 8] !== '/' || key[ATTRIBUTED.length + 10] !== '/') return undefined;
  const versionTag = key.slice(ATTRIBUTED.length, ATTRIBUTED.length + 8);
  const arm = parseInt(key[ATTRIBUTED.length + 9]!, 36);
  return Number.isNaN(arm) ? undefined : { versionTag, arm, eventType: key.slice(ATTRIBUTED.length + 11) };
}

/** A batch's events summed per state key, in memory. */
export function aggregate(events: Iterable<Pick<Interaction, 'RECOMMENDATION_ID' | 'EVENT_TYPE' | 'IMPRESSION' | 'EVENT_VALUE'>>): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const e of events) {
    const key = countKey(e);
    let c = out.get(key);
    if (!c) out.set(key, (c = zeroCounts()));
    c.events++;
    const shown = e.IMPRESSION.length;
    if (shown > 0) {
      c.impressionEvents++;
      c.impressedItems += shown;
    }
    if (e.EVENT_VALUE !== null) {
      c.valueSum += e.EVENT_VALUE;
      c.valueCount++;
    }
  }
  return out;
}

/**
 * The write ops that add a batch's events to the partition's counts: one put per touched key (the
 * stored counts read in one multi-get). The caller writes them with the batch's other ops (the
 * changelog transaction, then the RocksDB batch with the input offset).
 */
export async function attributionOps(store: Pick<KeyValueStore, 'getMany'>, events: readonly Interaction[]): Promise<WriteOp[]> {
  if (events.length === 0) return [];
  const batch = aggregate(events);
  const keys = [...batch.keys()];
  const stored = await store.getMany(keys);
  return keys.map((key, i) => {
    const before = stored[i];
    const sum = before ? addCounts(countsCodec.decode(before), batch.get(key)!) : batch.get(key)!;
    return { type: 'put', key, value: countsCodec.encode(sum) };
  });
}

/** One row of counts as kept: by version tag (null: unattributed) rather than version name. */
export interface TaggedRow extends Counts {
  versionTag: string | null;
  arm: number | null;
  eventType: string;
}

/** A partition store's counts, as rows. */
export async function readCounts(store: Pick<KeyValueStore, 'range'>): Promise<TaggedRow[]> {
  const rows: TaggedRow[] = [];
  for await (const [key, value] of store.range({ prefix: ATTRIBUTION_PREFIX })) {
    const k = parseCountKey(key);
    if (k) rows.push({ ...k, ...countsCodec.decode(value) });
  }
  return rows;
}

/** Rows of several partitions summed per (tag, arm, event type). */
export function sumRows(rows: Iterable<TaggedRow>): TaggedRow[] {
  const out = new Map<string, TaggedRow>();
  for (const r of rows) {
    const k = `${r.versionTag ?? ''}\u0000${r.arm ?? ''}\u0000${r.eventType}`;
    const have = out.get(k);
    if (have) addCounts(have, r);
    else out.set(k, { versionTag: r.versionTag, arm: r.arm, eventType: r.eventType, events: r.events, impressionEvents: r.impressionEvents, impressedItems: r.impressedItems, valueSum: r.valueSum, valueCount: r.valueCount });
  }
  return [...out.values()];
}

/** Prefix of the version of a row whose tag names no known version (or several). */
export const UNKNOWN_VERSION_PREFIX = 'tag:';

/** An OnlineMetricRow that also says the tag it was counted under, and whether the tag resolved. */
export interface ResolvedRow extends OnlineMetricRow {
  /** The version tag the events cited (null: unattributed). */
  versionTag: string | null;
  /** `unknown`: no version the group knows has this tag (yet); `ambiguous`: several do. The version is then `tag:<tag>`. */
  unresolved?: 'unknown' | 'ambiguous';
}

/**
 * Tagged rows with their version names, from the versions the group knows: a tag that names no
 * known version (or several: a collision, never guessed) keeps `tag:<tag>` as its version.
 */
export function resolveRows(rows: readonly TaggedRow[], versions: Iterable<string>, tagOf: (version: string) => string): ResolvedRow[] {
  const byTag = new Map<string, string[]>();
  for (const v of new Set(versions)) {
    const t = tagOf(v);
    const list = byTag.get(t);
    if (list) list.push(v);
    else byTag.set(t, [v]);
  }
  const out = rows.map((r): ResolvedRow => {
    const { versionTag, ...rest } = r;
    if (versionTag === null) return { ...rest, version: null, arm: null, versionTag: null };
    const names = byTag.get(versionTag);
    if (names?.length === 1) return { ...rest, version: names[0]!, versionTag };
    return { ...rest, version: `${UNKNOWN_VERSION_PREFIX}${versionTag}`, versionTag, unresolved: names ? 'ambiguous' : 'unknown' };
  });
  // Attributed rows first (by version, arm), then the unattributed; by event type within.
  return out.sort((a, b) => cmp(a.version === null ? 1 : 0, b.version === null ? 1 : 0) || cmp(a.version ?? '', b.version ?? '') || cmp(a.arm ?? -1, b.arm ?? -1) || cmp(a.eventType, b.eventType));
}

function cmp<T extends string | number>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The per-(version, arm) summary the metrics route derives: the rates of `clickType` and `conversionType` over the impression events. */
export interface VersionSummary {
  version: string;
  arm: number;
  versionTag: string;
  /** Events of any type attributed to it. */
  events: number;
  /** Events of any type that carried a non-empty IMPRESSION. */
  impressionEvents: number;
  impressedItems: number;
  /** Events of type `clickType`. */
  clicks: number;
  /** clicks / impressionEvents; null without impression events. */
  clickThroughRate: number | null;
  /** Events of type `conversionType`. */
  conversions: number;
  /** conversions / impressionEvents; null without impression events. */
  conversionRate: number | null;
  /** EVENT_VALUE summed over events of any type. */
  valueSum: number;
  valueCount: number;
}

/** Per (version, arm): totals over event types, the events of `clickType` and `conversionType` and their rates over the impression events. */
export function summarize(rows: readonly ResolvedRow[], clickType: string, conversionType = 'purchase'): VersionSummary[] {
  const out = new Map<string, VersionSummary>();
  for (const r of rows) {
    if (r.version === null || r.versionTag === null || r.arm === null) continue;
    const k = `${r.version}\u0000${r.arm}`;
    let s = out.get(k);
    if (!s) out.set(k, (s = { version: r.version, arm: r.arm, versionTag: r.versionTag, events: 0, impressionEvents: 0, impressedItems: 0, clicks: 0, clickThroughRate: null, conversions: 0, conversionRate: null, valueSum: 0, valueCount: 0 }));
    s.events += r.events;
    s.impressionEvents += r.impressionEvents;
    s.impressedItems += r.impressedItems;
    s.valueSum += r.valueSum;
    s.valueCount += r.valueCount;
    if (r.eventType === clickType) s.clicks += r.events;
    if (r.eventType === conversionType) s.conversions += r.events;
  }
  for (const s of out.values()) {
    s.clickThroughRate = s.impressionEvents > 0 ? s.clicks / s.impressionEvents : null;
    s.conversionRate = s.impressionEvents > 0 ? s.conversions / s.impressionEvents : null;
  }
  return [...out.values()];
}

/** One partition's counts, by version tag. */
export interface PartitionCounts {
  partition: number;
  rows: TaggedRow[];
}

/** The group's online metrics with how complete they are. */
export interface OnlineMetricsRead {
  rows: ResolvedRow[];
  partitions: { total: number; counted: number; missing: number[] };
}

/** What the route reads: the group's rows (OnlineMetricsSource) and this instance's partitions' counts. */
export interface OnlineMetricsReader extends OnlineMetricsSource {
  rows(): Promise<ResolvedRow[]>;
  read(): Promise<OnlineMetricsRead>;
  local(): Promise<PartitionCounts[]>;
}

export interface GroupOnlineMetricsOptions {
  /** This instance's owned (ready) partitions' counts. */
  local: () => Promise<PartitionCounts[]>;
  /** The other instances' (`peerPartitionCounts`). */
  peers: () => Promise<PartitionCounts[]>;
  /** The version names the group knows (registry, models index, announcements). */
  versions: () => Iterable<string>;
  tagOf: (version: string) => string;
  /** The input topic's partition count. */
  partitions: () => number;
}

/** The group's online metrics: every partition once (this instance's first), summed, tags resolved to version names. */
export class GroupOnlineMetrics implements OnlineMetricsReader {
  constructor(private readonly o: GroupOnlineMetricsOptions) {}

  local(): Promise<PartitionCounts[]> {
    return this.o.local();
  }

  async read(): Promise<OnlineMetricsRead> {
    const [mine, others] = await Promise.all([this.o.local(), this.o.peers()]);
    return combine([...mine, ...others], this.o.partitions(), this.o.versions(), this.o.tagOf);
  }

  async rows(): Promise<ResolvedRow[]> {
    return (await this.read()).rows;
  }

  /** This instance's partitions only, summed and resolved (what its Prometheus counters show: summing them over instances gives the group's). */
  async localRows(): Promise<ResolvedRow[]> {
    return combine(await this.o.local(), 0, this.o.versions(), this.o.tagOf).rows;
  }
}

/** Partitions' counts (a partition named twice is taken once, the first time) summed and resolved. */
export function combine(parts: readonly PartitionCounts[], total: number, versions: Iterable<string>, tagOf: (v: string) => string): OnlineMetricsRead {
  const seen = new Set<number>();
  const rows: TaggedRow[] = [];
  for (const p of parts) {
    if (seen.has(p.partition)) continue;
    seen.add(p.partition);
    rows.push(...p.rows);
  }
  const missing = Array.from({ length: total }, (_, i) => i).filter((p) => !seen.has(p));
  return { rows: resolveRows(sumRows(rows), versions, tagOf), partitions: { total, counted: seen.size, missing } };
}
