/**
 * Online metrics per served version (Personalize's metric attribution), counted by the stream
 * processor from the events themselves, exactly once like the rest of its state.
 *
 * An event is attributed when its RECOMMENDATION_ID is one this service minted
 * (src/serving/recommendation-id.ts): the id names the version (by tag) and the deployment's arm.
 * Counts are kept per (version, arm, event type); events that cite no recommendationId of ours are
 * counted per event type under `version: null`, so attributed shares can be read against totals.
 */

/** One row of counts: one (version, arm, event type) — or the unattributed events of a type (version null). */
export interface OnlineMetricRow {
  /** The version the answer came from; null: the event cited no answer of ours (or a list no version produced). */
  version: string | null;
  /** The arm of the deployment's split (0 without a split); null with version null. */
  arm: number | null;
  eventType: string;
  /** Events of this type counted here. */
  events: number;
  /** Of those, events that carried a non-empty IMPRESSION (a list shown). */
  impressionEvents: number;
  /** The sum of IMPRESSION lengths (items shown). */
  impressedItems: number;
  /** The sum of EVENT_VALUE over the events that had one (revenue, for purchases). */
  valueSum: number;
  /** How many events had an EVENT_VALUE. */
  valueCount: number;
  /** Distinct users counted (approximate or exact as documented by the implementation). */
  users?: number;
}

/** Reads the group's online metrics: every partition's counts, summed across the instances that own them. */
export interface OnlineMetricsSource {
  rows(): Promise<OnlineMetricRow[]>;
}
