/**
 * Worker thread scripts are the built JavaScript (dist/): beside the calling module when it runs
 * from dist/, else the package's build (tests and benchmarks run the TypeScript sources, and
 * `npm test` builds first).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packagePath } from './paths.js';

/** `relative` to `base` (the caller's import.meta.url), e.g. './hrnn-worker.js'; `distPath` its place under dist/. */
export function workerScript(base: string, relative: string, distPath: string): URL {
  const here = new URL(relative, base);
  if (existsSync(fileURLToPath(here))) return here;
  const built = packagePath('dist', distPath);
  if (existsSync(built)) return pathToFileURL(built);
  throw new Error(`the worker script ${distPath} is not built (${built}); run \`npm run build\``);
}
