/**
 * What the command groups share: output (stdout for results, stderr for notes), argument parsers,
 * progress bars, the admin client and the config of the invocation (`CliContext`).
 */
import { Presets, SingleBar } from 'cli-progress';
import type { Config } from '../config/index.js';
import { AppError } from '../errors/index.js';
import { createKafka } from '../kafka/client.js';
import type { TopicReport } from '../kafka/topics.js';

/** What main.ts hands every command group: the config, as the global --config option and the environment give it. */
export interface CliContext {
  config(overrides?: Record<string, unknown>): Readonly<Config>;
}

export const say = (line: string): void => void process.stdout.write(`${line}\n`);
export const note = (line: string): void => void process.stderr.write(`${line}\n`);

export const intArg = (name: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
};

/** A progress bar on stderr (drawn on a terminal only) fed by the file reader's onProgress. */
export function fileProgress(label: string): { onProgress: (bytes: number, total: number, rows: number) => void; done: (rows: number) => void } {
  const bar = new SingleBar(
    { format: `${label.padEnd(12)} [{bar}] {percentage}% | {rows} rows | {mbps} MB/s | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
    Presets.shades_classic,
  );
  const t0 = Date.now();
  let started = false;
  return {
    onProgress: (bytes, total, rows) => {
      if (!started) {
        bar.start(total, 0, { rows: 0, mbps: '0.0' });
        started = true;
      }
      bar.update(bytes, { rows, mbps: (bytes / 1e6 / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(1) });
    },
    done: (rows) => {
      if (!started) return;
      bar.update(bar.getTotal(), { rows });
      bar.stop();
    },
  };
}

/** A progress bar on stderr (drawn on a terminal only) for a training's steps; closes itself when done. */
export function stepProgress(label: string): (p: { done: number; total: number; detail: string }) => void {
  const bar = new SingleBar({ format: `${label.padEnd(12)} [{bar}] {percentage}% | {detail} | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
  let started = false;
  return ({ done, total, detail }) => {
    if (!started) {
      bar.start(total, 0, { detail });
      started = true;
    }
    bar.update(Math.min(done, total), { detail });
    if (done >= total) bar.stop();
  };
}

export const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(4));

export function parsePairs(text: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const [k, v, extra] = pair.split('=').map((x) => x.trim());
    if (!k || !v || extra !== undefined) throw new AppError('INVALID_ARGUMENT', `${flag}: expected FIELD=column pairs separated by commas, got ${JSON.stringify(pair)}`, { field: flag });
    out[k] = v;
  }
  return out;
}

export async function withAdmin<T>(c: Readonly<Config>, brokers: string[], fn: (admin: ReturnType<ReturnType<typeof createKafka>['admin']>) => Promise<T>): Promise<T> {
  const admin = createKafka(c, brokers, '-admin').admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export function printTopics(group: string, reports: TopicReport[]): void {
  say(`topics of group "${group}":`);
  for (const r of reports) say(`  ${r.action.padEnd(16)} ${r.topic.padEnd(32)} ${r.detail}`);
}

export const ms = (n: number): string => (n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`);
