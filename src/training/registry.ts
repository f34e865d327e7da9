/**
 * Model versions (Personalize's solution versions): each training writes an immutable folder
 * `<dir>/<version>/` — model.json and metrics.json (src/training/model-files.ts) and version.json
 * (recipe, parameters, metrics on the evaluation split, training time, data range). The folder is
 * written under a temporary name and renamed into place, so a reader never sees half a version.
 * Which version is served is not recorded here but announced on `<group>.versions`
 * (src/stream/versions.ts). `dir` is this instance's own: a version trained elsewhere reaches it
 * through the topic `<group>.models` (src/training/model-transfer.ts), so nothing needs sharing
 * between machines (a shared mount still works: a version already in it is not fetched).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppError } from '../errors/index.js';
import { privateDir } from '../util/paths.js';
import { loadModel, saveModel, type ModelBundle, type TrainingSpec } from './model-files.js';
import type { TrainReport } from './train.js';

export interface VersionInfo {
  version: string;
  recipe: string;
  /** ISO time the version was written. */
  createdAt: string;
  trainingMs: number;
  data: { events: number; users: number; items: number; from: number | null; to: number | null };
  /** NDCG@10 etc. on the evaluation split, with popularity-count's beside them. */
  report: TrainReport;
  training: TrainingSpec;
}

export type PromotionRule = 'if-not-worse' | 'always' | 'manual';

const VERSION_PATTERN = /^v\d{8}T\d{9}-[a-z-]+-[0-9a-f]{4}$/;

export function newVersionId(recipe: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:.Z]/g, '');
  return `v${stamp}-${recipe}-${randomBytes(2).toString('hex')}`;
}

export class VersionRegistry {
  constructor(readonly dir: string) {}

  /** Writes a new version; returns its info. */
  create(bundle: ModelBundle, report: TrainReport, training: TrainingSpec, data: VersionInfo['data'], trainingMs: number, now = new Date()): VersionInfo {
    // The registry (0700) and each version (0700, files 0600) are the owner's only: models carry users' histories.
    privateDir(this.dir);
    const version = newVersionId(report.recipe, now);
    const tmp = join(this.dir, `.${version}.tmp-${process.pid}`);
    saveModel(tmp, bundle, report, training);
    const info: VersionInfo = { version, recipe: report.recipe, createdAt: now.toISOString(), trainingMs, data, report, training };
    writeFileSync(join(tmp, 'version.json'), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    for (const name of readdirSync(tmp)) chmodSync(join(tmp, name), 0o600);
    chmodSync(tmp, 0o700);
    renameSync(tmp, join(this.dir, version));
    return info;
  }

  /** The folder of a version (whether or not it exists). */
  path(version: string): string {
    return join(this.dir, version);
  }

  has(version: string): boolean {
    return VERSION_PATTERN.test(version) && existsSync(join(this.dir, version, 'version.json'));
  }

  info(version: string): VersionInfo {
    if (!this.has(version)) {
      // The folder is for the log (the cause), not for the message: the message reaches HTTP clients.
      throw new AppError('VERSION_NOT_FOUND', `no model version ${JSON.stringify(version)} in the versions registry (training.versionsDir)`, {
        field: 'version',
        cause: { versionsDir: this.dir },
      });
    }
    return JSON.parse(readFileSync(join(this.dir, version, 'version.json'), 'utf8')) as VersionInfo;
  }

  /** Every version, oldest first. */
  list(): VersionInfo[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((name) => this.has(name))
      .map((name) => this.info(name))
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.version < b.version ? -1 : 1));
  }

  load(version: string): ModelBundle {
    this.info(version);
    return loadModel(join(this.dir, version));
  }
}

/**
 * Whether a new version replaces the served one. `if-not-worse`: its NDCG@10 on its evaluation
 * split is at least the served version's minus `tolerance` (each on the split of its own training
 * data: the newer data's split is not the older version's, so this compares like with like only
 * as far as the data are alike); `always`; `manual`: never by itself (`streamrec versions promote`).
 */
export function shouldPromote(candidate: VersionInfo, serving: VersionInfo | undefined, rule: PromotionRule, tolerance = 0): { promote: boolean; reason: string } {
  const ndcg = (v: VersionInfo) => v.report.metrics.normalized_discounted_cumulative_gain_at_10;
  if (rule === 'manual') return { promote: false, reason: 'promotion is manual' };
  if (!serving) return { promote: true, reason: 'nothing is served yet' };
  if (rule === 'always') return { promote: true, reason: 'promotion rule is always' };
  const c = ndcg(candidate);
  const s = ndcg(serving);
  return c >= s - tolerance
    ? { promote: true, reason: `NDCG@10 ${c.toFixed(4)} is not worse than the served ${s.toFixed(4)}${tolerance ? ` (tolerance ${tolerance})` : ''}` }
    : { promote: false, reason: `NDCG@10 ${c.toFixed(4)} is worse than the served ${s.toFixed(4)}${tolerance ? ` (tolerance ${tolerance})` : ''}` };
}
