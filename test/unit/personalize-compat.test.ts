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

/** PutUsers as the SDK sends it, signed with `secret`, from `ip`. */
async function putUsers(app: FastifyInstance, secret: string | undefined, ip = '10.0.0.1') {
  const body = JSON.stringify({ datasetArn: 'arn:aws:personalize:us-east-1:1:dataset/dg/USERS', users: [{ userId: 'u1', properties: '{"membershipLevel":"gold","tags":"a|b"}' }] });
  let headers: Record<string, string> = { host: 'localhost:80', 'content-type': 'application/json' };
  if (secret !== undefined) {
    const signer = new SignatureV4({ credentials: { accessKeyId: accessKeyIdOf(KEY_ID), secretAccessKey: secret }, region: 'us-east-1', service: 'personalize', sha256: Sha256 });
    const signed = await signer.sign({ method: 'POST', protocol: 'http:', hostname: 'localhost', path: `/personalize/${GROUP}/users`, query: {}, headers, body }, { signingDate: new Date(NOW) });
    headers = signed.headers;
  }
  return app.inject({ method: 'POST', url: `/personalize/${GROUP}/users`, headers, payload: body, remoteAddress: ip });
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
