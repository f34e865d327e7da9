import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root folder (where its package.json is), from src/, dist/ or a bench build alike. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'streamrec') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`streamrec: no package.json of streamrec above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot();

export const packagePath = (...parts: string[]): string => join(PACKAGE_ROOT, ...parts);
