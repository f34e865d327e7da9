/**
 * The report of a traffic split (an A/B test): each arm's online metrics, from the rows the stream
 * processor counts per (version, arm, event type) (src/stream/online-metrics.ts), with the
 * click-through rate's confidence interval, and which arm is better (src/serving/ab-stats.ts).
 *
 * Per arm (the rows of the arm's version on the arm's number):
 * - impressions: events that carried an IMPRESSION (a list shown), of every event type;
 * - clicks: events of `clickType` (default `click`); CTR = clicks / impressions, with a Wilson
 *   interval at 95%;
 * - conversions: events of `conversionType` (default `purchase`); revenue: their EVENT_VALUE sum.
 *
 * Every pair of arms is compared on CTR by the two-proportion z-test. With more than two arms, each
 * comparison is held to alpha / (number of pairs) (Bonferroni), so the chance of any false winner
 * stays below alpha. The winner is the arm with the best CTR that is significantly better than every
 * other arm; none while that is not so.
 *
 * The counts are cumulative per (version, arm): a later split that puts the same version on the same
 * arm number adds to them. Start a new experiment with the arms in another order, or with new
 * versions, to read it on its own.
 */
import type { OnlineMetricRow } from '../stream/online-metrics.js';
import { twoProportionTest, wilsonInterval, type Interval, type ProportionTest } from './ab-stats.js';
import type { TrafficSplit } from './split.js';

export interface SplitReportOptions {
  /** The event type that counts as a click (default `click`). */
  clickType?: string | undefined;
  /** The event type that counts as a conversion, whose EVENT_VALUE is revenue (default `purchase`). */
  conversionType?: string | undefined;
  /** The family-wise significance level (default 0.05). */
  alpha?: number | undefined;
  /** The power of the minimum detectable effect and the sample still needed (default 0.8). */
  power?: number | undefined;
}

export interface ArmReport {
  arm: number;
  version: string;
  weight: number;
  /** weight / the sum of the weights. */
  share: number;
  impressions: number;
  clicks: number;
  /** clicks / impressions; null without impressions. */
  ctr: number | null;
  /** 95% Wilson interval of the CTR; null without impressions. */
  ctrInterval: Interval | null;
  conversions: number;
  revenue: number;
  /** Attributed events of each type. */
  events: Record<string, number>;
}

export interface ArmComparison extends ProportionTest {
  /** The arms compared: `difference` is CTR(a) - CTR(b). */
  a: number;
  b: number;
}

export interface SplitReport {
  split: { id: string; startedAt: string };
  clickType: string;
  conversionType: string;
  /** The family-wise level asked for; each comparison is held to alpha / comparisons. */
  alpha: number;
  arms: ArmReport[];
  comparisons: ArmComparison[];
  /** The significantly best arm, or null. */
  winner: { arm: number; version: string } | null;
  /** Why there is or is not a winner, in words. */
  decision: string;
  /** Notes on the data (clicks without impressions, too few clicks for the normal approximation). */
  warnings: string[];
}

export function splitReport(split: Pick<TrafficSplit, 'id' | 'startedAt' | 'arms'>, rows: readonly OnlineMetricRow[], o: SplitReportOptions = {}): SplitReport {
  const clickType = o.clickType ?? 'click';
  const conversionType = o.conversionType ?? 'purchase';
  const alpha = o.alpha ?? 0.05;
  const power = o.power ?? 0.8;
  const totalWeight = split.arms.reduce((s, a) => s + a.weight, 0);
  const warnings: string[] = [];
  const arms = split.arms.map((a, i): ArmReport => {
    const arm = i + 1;
    const mine = rows.filter((r) => r.version === a.version && r.arm === arm);
    const of = (type: string) => mine.filter((r) => r.eventType === type);
    const impressions = sum(mine, (r) => r.impressionEvents);
    const clicks = sum(of(clickType), (r) => r.events);
    const events: Record<string, number> = {};
    for (const r of mine) events[r.eventType] = (events[r.eventType] ?? 0) + r.events;
    if (clicks > impressions) warnings.push(`arm ${arm}: ${clicks} ${clickType} events but ${impressions} impressions (events with an IMPRESSION list): the CTR's statistics count at most one click per impression; send the list shown with the events`);
    return {
      arm,
      version: a.version,
      weight: a.weight,
      share: a.weight / totalWeight,
      impressions,
      clicks,
      ctr: impressions > 0 ? clicks / impressions : null,
      ctrInterval: impressions > 0 ? wilsonInterval(Math.min(clicks, impressions), impressions) : null,
      conversions: sum(of(conversionType), (r) => r.events),
      revenue: sum(of(conversionType), (r) => r.valueSum),
      events,
    };
  });
  const pairs = (arms.length * (arms.length - 1)) / 2;
  const each = alpha / pairs;
  const comparisons: ArmComparison[] = [];
  for (let i = 0; i < arms.length; i++) {
    for (let j = i + 1; j < arms.length; j++) {
      const a = arms[i]!;
      const b = arms[j]!;
      const t = twoProportionTest(Math.min(a.clicks, a.impressions), a.impressions, Math.min(b.clicks, b.impressions), b.impressions, each, power);
      if (t.significant && !t.reliable) warnings.push(`arms ${a.arm} and ${b.arm}: fewer than 5 clicks or non-clicks in an arm: the z-test's normal approximation is rough`);
      comparisons.push({ a: a.arm, b: b.arm, ...t });
    }
  }
  const { winner, decision } = decide(arms, comparisons);
  return { split: { id: split.id, startedAt: split.startedAt }, clickType, conversionType, alpha, arms, comparisons, winner, decision, warnings };
}

/** The arm with the best CTR, if it is significantly better than each other arm. */
function decide(arms: readonly ArmReport[], comparisons: readonly ArmComparison[]): Pick<SplitReport, 'winner' | 'decision'> {
  const measured = arms.filter((a) => a.ctr !== null);
  if (measured.length < arms.length) return { winner: null, decision: `no winner: arm(s) ${arms.filter((a) => a.ctr === null).map((a) => a.arm).join(', ')} have no impressions yet` };
  const best = [...measured].sort((x, y) => y.ctr! - x.ctr! || x.arm - y.arm)[0]!;
  const against = comparisons.filter((c) => c.a === best.arm || c.b === best.arm);
  const weak = against.filter((c) => !c.significant || (c.a === best.arm ? c.difference <= 0 : c.difference >= 0));
  if (weak.length === 0) {
    const p = Math.max(...against.map((c) => c.pValue ?? 1));
    return { winner: { arm: best.arm, version: best.version }, decision: `arm ${best.arm} (${best.version}) has the best CTR, ${fmt(best.ctr!)}, significantly better than every other arm (largest p-value ${p.toPrecision(3)}, each comparison at alpha ${against[0]!.alpha.toPrecision(3)})` };
  }
  const c = weak[0]!;
  const other = c.a === best.arm ? c.b : c.a;
  const more = c.samplesStillNeeded ? `; about ${c.samplesStillNeeded} more impressions per arm would detect a difference this size` : '';
  return { winner: null, decision: `no significant winner: arm ${best.arm}'s CTR ${fmt(best.ctr!)} against arm ${other}'s: p-value ${c.pValue === null ? 'n/a' : c.pValue.toPrecision(3)}, not below ${c.alpha.toPrecision(3)}${more}` };
}

function sum<T>(xs: readonly T[], f: (x: T) => number): number {
  return xs.reduce((s, x) => s + f(x), 0);
}

function fmt(x: number): string {
  return x.toFixed(4);
}
