/**
 * `streamrec metrics online`: a group's online metrics per served version, as a running service
 * answers them (GET /v1/groups/:group/metrics/online, src/api/online-routes.ts): every partition
 * of the group, whichever instance owns it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../config/index.js';
import { AppError, ERROR_CODES, type ErrorCode } from '../../errors/index.js';
import { validateGroupName } from '../../kafka/topics.js';
import type { ResolvedRow, VersionSummary } from '../../stream/attribution.js';
import { fmt, note, say, type CliContext } from '../common.js';

interface OnlineAnswer {
  clickType: string;
  conversionType: string;
  partitions: { total: number; counted: number; missing: number[] };
  rows: ResolvedRow[];
  versions: VersionSummary[];
}

interface OnlineOptions {
  group: string;
  url?: string;
  apiKey?: string;
  version?: string;
  eventType?: string;
  clickType?: string;
  conversionType?: string;
  json?: boolean;
}

export function registerMetricsCommands(program: Command, ctx: CliContext): void {
  program
    .command('metrics')
    .description("A group's metrics as a running service counts them")
    .command('online')
    .description('Online metrics per served version (events citing its recommendationIds): impressions, clicks, click-through rate, conversions, EVENT_VALUE sums; over every partition of the group')
    .requiredOption('-g, --group <name>', 'dataset group')
    .option('--url <url>', 'the API of any instance of the group (default: api.advertisedUrl, else http://127.0.0.1:<api.port>)')
    .option('--api-key <key>', 'an admin key of the group (default: api.rootKey, else <state.dir>/root-key)')
    .option('--version <version>', 'only this version')
    .option('--event-type <type>', 'only this event type (rows)')
    .option('--click-type <type>', 'the event type counted as a click', 'click')
    .option('--conversion-type <type>', 'the event type counted as a conversion', 'purchase')
    .option('--json', 'print the answer as JSON')
    .action(async (opts: OnlineOptions) => {
      const c = ctx.config();
      const group = validateGroupName(opts.group);
      const answer = await fetchOnline(c, group, opts);
      if (opts.json) {
        say(JSON.stringify(answer));
        return;
      }
      const p = answer.partitions;
      if (p.missing.length > 0) note(`partial: partitions ${p.missing.join(', ')} of ${p.total} were not counted (being moved, or an instance did not answer)`);
      say(`version\tarm\tevents\timpressionEvents\timpressedItems\t${answer.clickType}\tCTR\t${answer.conversionType}\tconversionRate\tvalueSum`);
      for (const v of answer.versions) {
        say(`${v.version}\t${v.arm}\t${v.events}\t${v.impressionEvents}\t${v.impressedItems}\t${v.clicks}\t${rate(v.clickThroughRate)}\t${v.conversions}\t${rate(v.conversionRate)}\t${fmt(v.valueSum)}`);
      }
      say('');
      say('version\tarm\teventType\tevents\timpressionEvents\timpressedItems\tvalueSum\tvalueCount');
      for (const r of answer.rows) say(`${r.version ?? '(unattributed)'}\t${r.arm ?? '-'}\t${r.eventType}\t${r.events}\t${r.impressionEvents}\t${r.impressedItems}\t${fmt(r.valueSum)}\t${r.valueCount}`);
    });
}

async function fetchOnline(c: Readonly<Config>, group: string, opts: OnlineOptions): Promise<OnlineAnswer> {
  const base = opts.url ?? (c.api.advertisedUrl || (c.api.port === 0 ? undefined : `http://127.0.0.1:${c.api.port}`));
  if (base === undefined) throw new AppError('INVALID_ARGUMENT', 'api.port is 0 (a free port): pass the service\'s --url', { field: '--url' });
  const key = opts.apiKey ?? (c.api.rootKey || rootKeyIfAny(c.state.dir));
  const query = new URLSearchParams();
  if (opts.version !== undefined) query.set('version', opts.version);
  if (opts.eventType !== undefined) query.set('eventType', opts.eventType);
  if (opts.clickType !== undefined) query.set('clickType', opts.clickType);
  if (opts.conversionType !== undefined) query.set('conversionType', opts.conversionType);
  const url = new URL(`/v1/groups/${encodeURIComponent(group)}/metrics/online?${query}`, base);
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json', ...(key ? { 'x-api-key': key } : {}) }, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `no streamrec API answered at ${base}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`, { field: '--url', cause: err });
  }
  const body = (await res.json().catch(() => undefined)) as (OnlineAnswer & { code?: string; message?: string; field?: string }) | undefined;
  if (!res.ok || body === undefined) {
    const code = body?.code !== undefined && body.code in ERROR_CODES ? (body.code as ErrorCode) : 'INTERNAL_ERROR';
    throw new AppError(code, `${url.origin} answered ${res.status}: ${body?.message ?? 'no JSON body'}`, body?.field ? { field: body.field } : {});
  }
  return body;
}

const rate = (r: number | null): string => (r === null ? '-' : fmt(r));

/** The root key a local service generated (without creating one). */
function rootKeyIfAny(stateDir: string): string | undefined {
  const path = join(stateDir, 'root-key');
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
}
