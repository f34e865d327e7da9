/**
 * The Personalize-compatible mount through app.inject with requests signed by the SDKs' signer
 * (@smithy/signature-v4): ingestion into the sink, the per-key and refused-request limits
 * (ThrottlingException), and api.auth off.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { SignatureV4 } from '@smithy/signature-v4';
import { buildApp, type GroupServices, type RecordSink, type SinkMessage } from '../../src/api/app.js';
import { Sha256, accessKeyIdOf, secretAccessKeyFor } from '../../src/api/sigv4.js';
import { ownerAsker } from '../../src/api/forward.js';
import { AppError } from '../../src/errors/index.js';
import { loadConfig } from '../../src/config/index.js';
import { createCodecs } from '../../src/serde/avro.js';
import { Resources } from '../../src/stream/resources.js';

const ROOT = 'root-key-for-the-compat-unit-tests';
const GROUP = 'shop';
const KEY_ID = 'a1b2c3d4e5f6';
const NOW = Date.now();

class MemorySink implements RecordSink {
  sent: { topic: string; messages: SinkMessage[] }[] = [];
  async send(topic: string, messages: SinkMessage[]): Promise<void> {
    this.sent.push({ topic, messages });
  }
}

const apps: FastifyInstance[] = [];
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

async function build(env: Record<string, string>) {
  const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT, ...env } });
  const resources = new Resources();
  await resources.put('apikey', KEY_ID, { id: KEY_ID, name: 'sdk', scopes: ['ingest'], hash: 'x'.repeat(64), createdAt: '2026-01-01T00:00:00Z' });
  const sink = new MemorySink();
  const services = { resources } as unknown as GroupServices;
  const app = await buildApp({
    config,
    codecs: createCodecs(config),
    sink,
    groups: { has: async (g) => g === GROUP },
    status: () => ({ state: 'running', ready: true }),
    served: { names: () => [GROUP], get: (g) => (g === GROUP ? services : undefined) },
    logger: false,
  });
  apps.push(app);
  return { app, sink };
}

/** A POST to the mount as the SDK sends it, signed with `secret` (unsigned without one), from `ip`. */
async function signedPost(app: FastifyInstance, operation: string, payload: unknown, secret: string | undefined, ip = '10.0.0.1') {
  const body = JSON.stringify(payload);
  let headers: Record<string, string> = { host: 'localhost:80', 'content-type': 'application/json' };
  if (secret !== undefined) {
    const signer = new SignatureV4({ credentials: { accessKeyId: accessKeyIdOf(KEY_ID), secretAccessKey: secret }, region: 'us-east-1', service: 'personalize', sha256: Sha256 });
    const signed = await signer.sign({ method: 'POST', protocol: 'http:', hostname: 'localhost', path: `/personalize/${GROUP}/${operation}`, query: {}, headers, body }, { signingDate: new Date(NOW) });
    headers = signed.headers;
  }
  return app.inject({ method: 'POST', url: `/personalize/${GROUP}/${operation}`, headers, payload: body, remoteAddress: ip });
}

/** PutUsers as the SDK sends it, signed with `secret`, from `ip`. */
function putUsers(app: FastifyInstance, secret: string | undefined, ip = '10.0.0.1') {
  return signedPost(app, 'users', { datasetArn: 'arn:aws:personalize:us-east-1:1:dataset/dg/USERS', users: [{ userId: 'u1', properties: '{"membershipLevel":"gold","tags":"a|b"}' }] }, secret, ip);
}

describe('the Personalize-compatible mount (inject)', () => {
  it('PutUsers signed with the key\'s credentials reaches <group>.users with column names and lists', async () => {
    const { app, sink } = await build({});
    const res = await putUsers(app, secretAccessKeyFor(ROOT, GROUP, KEY_ID));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({});
    expect(sink.sent.map((s) => s.topic)).toEqual([`${GROUP}.users`]);
    const codecs = createCodecs(loadConfig({ env: {} }));
    expect(codecs.User.decode(sink.sent[0]!.messages[0]!.value)).toEqual({ USER_ID: 'u1', METADATA: { MEMBERSHIP_LEVEL: 'gold', TAGS: ['a', 'b'] } });
  });

  it('api.rateLimitPerMinute per key: ThrottlingException (429, retry-after) past it', async () => {
    const { app } = await build({ STREAMREC_API_RATE_LIMIT_PER_MINUTE: '3' });
    const secret = secretAccessKeyFor(ROOT, GROUP, KEY_ID);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await putUsers(app, secret)).statusCode);
    expect(statuses).toEqual([200, 200, 200]);
    const limited = await putUsers(app, secret);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['x-amzn-errortype']).toBe('ThrottlingException');
    expect(limited.headers['retry-after']).toBeDefined();
  });

  it('refused signatures count against api.unauthenticatedPerMinute per address', async () => {
    const { app } = await build({ STREAMREC_API_UNAUTHENTICATED_PER_MINUTE: '2' });
    const first = await putUsers(app, 'wrong-secret-0000000000000000000000000000', '10.0.0.9');
    expect(first.statusCode).toBe(403);
    expect(first.headers['x-amzn-errortype']).toBe('InvalidSignatureException');
    expect(first.json()).toMatchObject({ __type: 'InvalidSignatureException', code: 'UNAUTHENTICATED' });
    const unsigned = await putUsers(app, undefined, '10.0.0.9');
    expect(unsigned.headers['x-amzn-errortype']).toBe('MissingAuthenticationTokenException');
    const limited = await putUsers(app, 'wrong-secret-0000000000000000000000000000', '10.0.0.9');
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['x-amzn-errortype']).toBe('ThrottlingException');
    // Another address is not limited; the right signature from it passes.
    expect((await putUsers(app, secretAccessKeyFor(ROOT, GROUP, KEY_ID), '10.0.0.10')).statusCode).toBe(200);
  });

  it('api.auth off: unsigned requests are accepted, as on the native routes; bad input is InvalidInputException', async () => {
    const { app, sink } = await build({ STREAMREC_API_AUTH: 'off' });
    expect((await putUsers(app, undefined)).statusCode).toBe(200);
    expect(sink.sent).toHaveLength(1);
    const bad = await app.inject({ method: 'POST', url: `/personalize/${GROUP}/items`, headers: { 'content-type': 'application/json' }, payload: { datasetArn: 'arn:aws:personalize:us-east-1:1:dataset/dg/ITEMS', items: [{ itemId: 'i1', properties: '{"price":' }] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['x-amzn-errortype']).toBe('InvalidInputException');
    expect(bad.json().message).toMatch(/items\[0\]\.properties/);
  });
});

describe('a user whose partition another instance owns', () => {
  /** An instance serving `query`, with an API key of the query scope; listening on a port, and telling `listen` each request's headers, when it is given. */
  async function instance(query: Partial<GroupServices['query']>, extra: Partial<Parameters<typeof buildApp>[0]> = {}, listen?: (headers: Record<string, unknown>) => void) {
    const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT } });
    const resources = new Resources();
    await resources.put('apikey', KEY_ID, { id: KEY_ID, name: 'sdk', scopes: ['query'], hash: 'x'.repeat(64), createdAt: '2026-01-01T00:00:00Z' });
    const services = { resources, query } as unknown as GroupServices;
    const app = await buildApp({
      config,
      codecs: createCodecs(config),
      sink: new MemorySink(),
      groups: { has: async (g) => g === GROUP },
      status: () => ({ state: 'running', ready: true }),
      served: { names: () => [GROUP], get: (g) => (g === GROUP ? services : undefined) },
      logger: false,
      ...extra,
    });
    apps.push(app);
    if (!listen) return { app, url: '' };
    app.addHook('onRequest', async (request) => listen(request.headers));
    return { app, url: await app.listen({ port: 0, host: '127.0.0.1' }) };
  }

  it('GetRecommendations and GetPersonalizedRanking are answered by the owner (asked through its /v1 route with the root key); its errors keep their Personalize type', async () => {
    const asked: { route: string; userId: string; numResults?: number; apiKey: unknown }[] = [];
    let apiKey: unknown;
    const owner = await instance(
      {
        recommendations: async (r: { userId: string; numResults: number }) => {
          asked.push({ route: 'recommendations', userId: r.userId, numResults: r.numResults, apiKey });
          if (r.userId === 'nobody') throw new AppError('USER_NOT_FOUND', 'no such user here', { field: 'userId' });
          return { recommendationId: 'RID-from-the-owner', version: 'v1', recipe: 'sims', itemList: [{ itemId: 'i9', score: 0.5 }] };
        },
        ranking: async (r: { userId: string; inputList: string[] }) => {
          asked.push({ route: 'ranking', userId: r.userId, apiKey });
          return { recommendationId: 'RID-ranked-by-the-owner', version: 'v1', recipe: 'sims', itemList: [...r.inputList].reverse().map((itemId) => ({ itemId, score: 1 })) };
        },
      } as unknown as Partial<GroupServices['query']>,
      {},
      (headers) => {
        apiKey = headers['x-api-key'];
      },
    );
    const notHere = async () => {
      throw new Error('the instance that does not own the user answered from its own store');
    };
    const front = await instance({ recommendations: notHere, ranking: notHere } as unknown as Partial<GroupServices['query']>, {
      askOwner: ownerAsker({ owner: () => ({ self: false, url: owner.url }), selfUrl: () => 'http://127.0.0.1:7', rootKey: ROOT }),
    });
    const secret = secretAccessKeyFor(ROOT, GROUP, KEY_ID);

    const recs = await signedPost(front.app, 'recommendations', { campaignArn: `arn:aws:personalize:us-east-1:1:campaign/${GROUP}`, userId: 'u1', numResults: 3 }, secret);
    expect(recs.statusCode, recs.body).toBe(200);
    expect(recs.json()).toMatchObject({ recommendationId: 'RID-from-the-owner', itemList: [{ itemId: 'i9', score: 0.5 }] });
    const ranked = await signedPost(front.app, 'personalize-ranking', { campaignArn: `arn:aws:personalize:us-east-1:1:campaign/${GROUP}`, userId: 'u1', inputList: ['a', 'b'] }, secret);
    expect(ranked.statusCode, ranked.body).toBe(200);
    expect(ranked.json().personalizedRanking.map((i: { itemId: string }) => i.itemId)).toEqual(['b', 'a']);
    expect(asked).toEqual([
      { route: 'recommendations', userId: 'u1', numResults: 3, apiKey: ROOT },
      { route: 'ranking', userId: 'u1', apiKey: ROOT },
    ]);

    const missing = await signedPost(front.app, 'recommendations', { campaignArn: `arn:aws:personalize:us-east-1:1:campaign/${GROUP}`, userId: 'nobody' }, secret);
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['x-amzn-errortype']).toBe('ResourceNotFoundException');
    expect(missing.json().message).toMatch(/no such user here/);

    // An unsigned request is refused by the instance it reached: the owner is never asked.
    const before = asked.length;
    expect((await signedPost(front.app, 'recommendations', { userId: 'u1' }, undefined)).statusCode).toBe(403);
    expect(asked).toHaveLength(before);
  });
});
