/**
 * How the online metrics' counts (src/stream/attribution.ts) are kept in a partition's state: under
 * keys `m/...`, as Avro records.
 */
import avro from 'avsc';

export const ATTRIBUTION_PREFIX = 'm/';

/** What is counted per key (the counting fields of OnlineMetricRow). */
export interface Counts {
  events: number;
  impressionEvents: number;
  impressedItems: number;
  valueSum: number;
  valueCount: number;
}

const countsType = avro.Type.forSchema({
  type: 'record',
  name: 'AttributionCounts',
  fields: [
    { name: 'events', type: 'long' },
    { name: 'impressionEvents', type: 'long' },
    { name: 'impressedItems', type: 'long' },
    { name: 'valueSum', type: 'double' },
    { name: 'valueCount', type: 'long' },
  ],
});

export const countsCodec = {
  encode: (c: Counts): Buffer => countsType.toBuffer(c),
  decode: (b: Buffer): Counts => countsType.fromBuffer(b) as Counts,
};

export const zeroCounts = (): Counts => ({ events: 0, impressionEvents: 0, impressedItems: 0, valueSum: 0, valueCount: 0 });

/** A stored value as the state digest sees it: the float sum of EVENT_VALUE rounded (events of one partition can be applied in another order). */
export function canonicalCounts(value: Buffer): Buffer {
  const c = countsCodec.decode(value);
  c.valueSum = Number(c.valueSum.toPrecision(9));
  return countsCodec.encode(c);
}
