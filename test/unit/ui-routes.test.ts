/**
 * The dashboard's static files (src/api/ui-routes.ts) through app.inject: served without a key (auth
 * on), the libraries from the installed packages, nothing of them in the OpenAPI document, and paths
 * outside ui/ refused.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, type GroupDirectory, type RecordSink } from '../../src/api/app.js';
import { vendorFiles } from '../../src/api/ui-routes.js';
import { loadConfig } from '../../src/config/index.js';
import { createCodecs } from '../../src/serde/avro.js';

const config = loadConfig({ env: { STREAMREC_API_AUTH: 'keys', STREAMREC_API_ROOT_KEY: 'root-key-for-the-ui-test-0123' } });
const sink: RecordSink = { send: async () => {} };
const groups: GroupDirectory = { has: async () => true };
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp({ config, codecs: createCodecs(config), sink, groups, status: () => ({ state: 'running', ready: true }), logger: false });
});
afterAll(() => app?.close());

describe('dashboard files at /ui', () => {
  it('/ui redirects to /ui/, which is the page, without a key', async () => {
    const bare = await app.inject({ method: 'GET', url: '/ui' });
    expect(bare.statusCode).toBe(302);
    expect(bare.headers.location).toBe('/ui/');
    const page = await app.inject({ method: 'GET', url: '/ui/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('<script type="module" src="app.js"></script>');
    const js = await app.inject({ method: 'GET', url: '/ui/app.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
  });

  it('serves each library file from its package, byte for byte, with a JavaScript or CSS type', async () => {
    const files = vendorFiles();
    expect([...files.keys()].sort()).toEqual(['hooks.mjs', 'htm.mjs', 'preact.mjs', 'uPlot.iife.min.js', 'uPlot.min.css']);
    for (const [name, path] of files) {
      const res = await app.inject({ method: 'GET', url: `/ui/vendor/${name}` });
      expect(res.statusCode, name).toBe(200);
      expect(res.headers['content-type'], name).toMatch(name.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
      expect(res.rawPayload.equals(readFileSync(path)), name).toBe(true);
    }
    expect((await app.inject({ method: 'GET', url: '/ui/vendor/uPlot.cjs.js' })).statusCode).toBe(404);
  });

  it('refuses paths outside ui/ and unknown files', async () => {
    expect((await app.inject({ method: 'GET', url: '/ui/nothing.js' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/ui/../package.json' })).statusCode).not.toBe(200);
    expect((await app.inject({ method: 'GET', url: '/ui/%2e%2e/package.json' })).statusCode).not.toBe(200);
  });

  it('the API still needs a key, and the OpenAPI document lists no /ui path', async () => {
    expect((await app.inject({ method: 'POST', url: '/v1/groups/shop/events', payload: { userId: 'u1', eventList: [{ eventType: 'click', itemId: 'i1', sentAt: Date.now() }] } })).statusCode).toBe(401);
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/ui'))).toEqual([]);
    expect(Object.keys(doc.paths)).toContain('/health');
  });
});
