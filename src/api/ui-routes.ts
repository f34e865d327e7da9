/**
 * The dashboard (issue 17) at `/ui`: static files, public (no key: the page asks for one and sends it
 * with each REST call it makes), hidden from the OpenAPI document (they are not API routes).
 *
 * No build step: `ui/` holds native ES modules; the libraries are served from the installed packages
 * (`/ui/vendor/<file>`, only the files listed in VENDOR), so `npm start` serves the page as shipped.
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { packagePath } from '../util/paths.js';

export const UI_PREFIX = '/ui';

/** The browser files taken from dependencies: served name -> [the package entry to resolve, the file beside it]. */
const VENDOR: Record<string, [string, string]> = {
  'preact.mjs': ['preact', 'preact.mjs'],
  'hooks.mjs': ['preact/hooks', 'hooks.mjs'],
  'htm.mjs': ['htm', 'htm.mjs'],
  'uPlot.iife.min.js': ['uplot', 'uPlot.iife.min.js'],
  'uPlot.min.css': ['uplot', 'uPlot.min.css'],
};

/** Absolute paths of the vendored files, by served name. */
export function vendorFiles(): Map<string, string> {
  const require = createRequire(import.meta.url);
  return new Map(Object.entries(VENDOR).map(([name, [entry, file]]) => [name, join(dirname(require.resolve(entry)), file)]));
}

const TYPES: Record<string, string> = { '.mjs': 'text/javascript; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

export async function registerUiRoutes(app: FastifyInstance): Promise<void> {
  await app.register(fastifyStatic, { root: packagePath('ui'), prefix: `${UI_PREFIX}/`, schemaHide: true, decorateReply: false, index: 'index.html', maxAge: 60_000 });
  // The libraries' files, read once (about 68 KB in all).
  for (const [name, path] of vendorFiles()) {
    const body = readFileSync(path);
    const type = TYPES[extname(name)] ?? 'application/octet-stream';
    app.get(`${UI_PREFIX}/vendor/${name}`, { schema: { hide: true } }, async (_request, reply) => reply.type(type).header('cache-control', 'public, max-age=3600').send(body));
  }
  app.get(UI_PREFIX, { schema: { hide: true } }, async (_request, reply) => reply.redirect(`${UI_PREFIX}/`));
}
