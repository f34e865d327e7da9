import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
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

/**
 * A folder only its owner may enter (0700), created with its missing parents (also 0700) or, when it
 * exists with wider rights, narrowed. State folders hold users' clickstreams: the folder's mode is what
 * keeps the files in it (RocksDB's own, written with the process umask) from other local users. A folder
 * this process may not chmod (another owner) is left as it is. Returns the path.
 */
export function privateDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o700);
  } catch {
    // Not ours to change (EPERM): the owner decides.
  }
  return path;
}
