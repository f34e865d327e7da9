/**
 * `streamrec split start|end|report|promote`: A/B traffic splits of a group's deployment
 * (docs/experiments.md). `start` and `end` announce on `<group>.versions` like `versions promote`
 * (no running service needed); `report` and `promote` ask a running instance over HTTP, since the
 * online metrics they read are counted by the services' stream processors.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../config/index.js';
import { AppError, ERROR_CODES, type ErrorCode } from '../../errors/index.js';
import { validateGroupName } from '../../kafka/topics.js';
import { newSplit, validateSplitArms, type SplitArm } from '../../serving/split.js';
import type { SplitReport } from '../../serving/split-report.js';
import { announceSplit } from '../../stream/versions.js';
import { fmt, say, type CliContext } from '../common.js';
import { versionsContext } from './versions.js';

/** `--arm version=weight` (weight 1 when left out), repeated. */
export function parseArm(text: string, previous: SplitArm[] = []): SplitArm[] {
  const eq = text.lastIndexOf('=');
  const version = eq < 0 ? text : text.slice(0, eq);
  const weight = eq < 0 ? 1 : Number(text.slice(eq + 1));
  if (version === '' || !Number.isFinite(weight) || weight <= 0) throw new AppError('INVALID_ARGUMENT', `--arm takes version=weight with a weight > 0 (e.g. --arm v-20261207-0001=1), not ${JSON.stringify(text)}`, { field: '--arm' });
  return [...previous, { version, weight }];
}

interface HttpOptions {
  url?: string;
  key?: string;
}

/** A running instance's API: --url (default this config's api.port on 127.0.0.1), the key: --key, api.rootKey, or the root-key file a service generated. */
async function callApi<T>(c: Readonly<Config>, o: HttpOptions, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const base = (o.url ?? `http://127.0.0.1:${c.api.port}`).replace(/\/+$/, '');
  const file = join(c.state.dir, 'root-key');
  const key = o.key ?? (c.api.rootKey || (existsSync(file) ? readFileSync(file, 'utf8').trim() : ''));
  const headers: Record<string, string> = { ...(key ? { 'x-api-key': key } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `no streamrec API answers at ${base} (${(err as Error).message}): start the service, or pass --url`, { field: '--url', cause: err });
  }
  const answer = (await res.json().catch(() => ({}))) as T & { code?: string; message?: string; field?: string };
  if (!res.ok) {
    const code = answer.code && answer.code in ERROR_CODES ? (answer.code as ErrorCode) : 'INVALID_ARGUMENT';
    throw new AppError(code, `${method} ${path}: ${res.status} ${answer.message ?? res.statusText}`, answer.field ? { field: answer.field } : {});
  }
  return answer;
}

function printReport(r: SplitReport): void {
  say(`split ${r.split.id} (started ${r.split.startedAt}); clicks: ${r.clickType}, conversions: ${r.conversionType}`);
  for (const a of r.arms) {
    const ci = a.ctrInterval ? ` [${fmt(a.ctrInterval.low)}, ${fmt(a.ctrInterval.high)}]` : '';
    say(`arm ${a.arm}  ${a.version}  share ${fmt(a.share)}  impressions ${a.impressions}  clicks ${a.clicks}  CTR ${a.ctr === null ? 'n/a' : fmt(a.ctr)}${ci}  conversions ${a.conversions}  revenue ${fmt(a.revenue)}`);
  }
  for (const c of r.comparisons) {
    say(`arm ${c.a} vs ${c.b}: difference ${fmt(c.difference)}, p ${c.pValue === null ? 'n/a' : c.pValue.toPrecision(3)} (alpha ${c.alpha.toPrecision(3)}): ${c.significant ? 'significant' : 'not significant'}${c.minimumDetectableEffect === null ? '' : `; detectable now: ${fmt(c.minimumDetectableEffect)}`}${c.samplesStillNeeded ? `; ${c.samplesStillNeeded} more impressions per arm for this difference` : ''}`);
  }
  for (const w of r.warnings) say(`warning: ${w}`);
  say(r.decision);
}

export function registerSplitCommands(program: Command, ctx: CliContext): void {
  const cmd = program.command('split').description("A/B traffic splits of a group's deployment: start, end, report, promote the winner (docs/experiments.md)");
  const deployment = (group: string) => `/v1/groups/${group}/deployments/default/split`;

  cmd
    .command('start')
    .description('Split the deployment\'s users between versions (a user stays in one arm); replaces a running split')
    .requiredOption('-g, --group <name>', 'dataset group')
    .requiredOption('--arm <version=weight>', 'an arm (repeat: 2 to 8), numbered in this order', parseArm, [])
    .action(async (opts: { group: string; arm: SplitArm[] }) => {
      const group = validateGroupName(opts.group);
      await versionsContext(ctx, group, async ({ catalog, serving, producer }) => {
        const split = newSplit(validateSplitArms(opts.arm, (v) => catalog.has(v), '--arm'));
        const r = await announceSplit(producer, group, serving, split, `traffic split ${split.id} started by hand`);
        say(`split ${split.id} on ${r.version}: ${split.arms.map((a, i) => `arm ${i + 1} ${a.version} (weight ${a.weight})`).join(', ')}`);
      });
    });

  cmd
    .command('end')
    .description('End the traffic split: the deployment\'s version serves everyone')
    .requiredOption('-g, --group <name>', 'dataset group')
    .action(async (opts: { group: string }) => {
      const group = validateGroupName(opts.group);
      await versionsContext(ctx, group, async ({ serving, producer }) => {
        if (!serving?.split) throw new AppError('SPLIT_NOT_FOUND', `group ${group}'s deployment has no traffic split`, { field: 'split' });
        const r = await announceSplit(producer, group, serving, undefined, `traffic split ${serving.split.id} ended by hand`);
        say(`split ${serving.split.id} ended; ${r.version} serves everyone`);
      });
    });

  cmd
    .command('report')
    .description("Each arm's impressions, clicks, CTR with a 95% interval, conversions, revenue, and whether the difference is significant (asks a running instance)")
    .requiredOption('-g, --group <name>', 'dataset group')
    .option('--click-type <type>', 'the event type of a click', 'click')
    .option('--conversion-type <type>', 'the event type of a conversion (its eventValue is revenue)', 'purchase')
    .option('--url <url>', 'a running instance (default http://127.0.0.1:<api.port>)')
    .option('--key <key>', 'an admin API key (default api.rootKey, or the root-key file in state.dir)')
    .option('--json', 'print JSON')
    .action(async (opts: HttpOptions & { group: string; clickType: string; conversionType: string; json?: boolean }) => {
      const group = validateGroupName(opts.group);
      const q = new URLSearchParams({ clickType: opts.clickType, conversionType: opts.conversionType });
      const r = await callApi<SplitReport>(ctx.config(), opts, 'GET', `${deployment(group)}/report?${q}`);
      if (opts.json) say(JSON.stringify(r));
      else printReport(r);
    });

  cmd
    .command('promote')
    .description('Serve the significantly better arm and end the split (asks a running instance); --force: the best CTR anyway; --version: that arm')
    .requiredOption('-g, --group <name>', 'dataset group')
    .option('--force', 'without a significant winner, promote the best CTR')
    .option('--version <version>', 'promote this arm\'s version whatever the report says')
    .option('--click-type <type>', 'the event type of a click', 'click')
    .option('--url <url>', 'a running instance (default http://127.0.0.1:<api.port>)')
    .option('--key <key>', 'an admin API key (default api.rootKey, or the root-key file in state.dir)')
    .action(async (opts: HttpOptions & { group: string; force?: boolean; version?: string; clickType: string }) => {
      const group = validateGroupName(opts.group);
      const body = { clickType: opts.clickType, ...(opts.force ? { force: true } : {}), ...(opts.version ? { version: opts.version } : {}) };
      const r = await callApi<{ version: string; reason: string }>(ctx.config(), opts, 'POST', `${deployment(group)}/promote`, body);
      say(`serving ${r.version}: ${r.reason}`);
    });
}
