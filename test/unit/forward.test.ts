/**
 * Queries while a partition moves (src/api/forward.ts): when no live owner of the user's partition
 * is known, the answer is 503 PARTITION_MOVING with retry-after — never a 404 USER_NOT_FOUND or a
 * list computed without the user's state by an instance that is not the owner.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, type GroupServices, type RecordSink } from '../../src/api/app.js';
import { forwarder, FORWARDED_HEADER, type Owner } from '../../src/api/forward.js';
import { loadConfig } from '../../src/config/index.js';
import { AppError } from '../../src/errors/index.js';
import { createCodecs } from '../../src/serde/avro.js';

const ROOT = 'root-key-for-the-forward-tests';
const GROUP = 'shop';
const SELF = 'http://127.0.0.1:7';
const apps: FastifyInstance[] = [];
const servers: Server[] = [];

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

const sink: RecordSink = { send: async () => undefined };

/**
 * An app whose local query service answers as a non-owner does today without the guard: the user
 * is unknown here (USER_NOT_FOUND, 404). `owner` says who owns the user's partition.
 */
async function app(owner: () => Owner): Promise<{ app: FastifyInstance; asked: () => number }> {
  const config = loadConfig({ env: { STREAMREC_API_ROOT_KEY: ROOT } });
  let asked = 0;
  const query = {
    recommendations: async ({ userId }: { userId: string }) => {
      asked++;
      throw new AppError('USER_NOT_FOUND', `user ${JSON.stringify(userId)} has no events and no user record in this group`, { field: 'userId' });
    },
    ranking: async () => {
      asked++;
      throw new AppError('USER_NOT_FOUND', 'no such user', { field: 'userId' });
    },
  };
  const services = { query } as unknown as GroupServices;
  const a = await buildApp({
    config,
    codecs: createCodecs(config),
    sink,
    groups: { has: async (g) => g === GROUP },
    status: () => ({ state: 'running', ready: true }),
    logger: false,
    served: { names: () => [GROUP], get: (g) => (g === GROUP ? services : undefined) },
    forward: forwarder({ owner, selfUrl: () => SELF, timeoutMs: 2000 }),
  });
  apps.push(a);
  return { app: a, asked: () => asked };
}

const get = (a: FastifyInstance, headers: Record<string, string> = {}) =>
  a.inject({ method: 'GET', url: `/v1/groups/${GROUP}/recommendations?userId=u1`, headers: { 'x-api-key': ROOT, ...headers } });

/** A URL nothing listens at any more: a server started and closed (an owner killed with -9). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

function expectMoving(res: Awaited<ReturnType<typeof get>>): void {
  expect(res.statusCode, res.body).toBe(503);
  expect(res.json().code).toBe('PARTITION_MOVING');
  expect(res.headers['retry-after']).toBe('1');
}

describe('a query whose partition has no live owner', () => {
  it('no owner known yet (the group is assigning it): 503 PARTITION_MOVING, the local store is not asked', async () => {
    const { app: a, asked } = await app(() => ({ self: false, url: undefined }));
    expectMoving(await get(a));
    expect(asked()).toBe(0);
  });

  it('the table names this instance but its task is not ready (restoring): 503, not a 404', async () => {
    const { app: a, asked } = await app(() => ({ self: false, url: SELF }));
    expectMoving(await get(a));
    expect(asked()).toBe(0);
  });

  it('a forwarded request for a partition not ready here: 503, not a 404', async () => {
    const { app: a, asked } = await app(() => ({ self: false, url: 'http://127.0.0.1:9' }));
    expectMoving(await get(a, { [FORWARDED_HEADER]: '1' }));
    expect(asked()).toBe(0);
  });

  it('the named owner is dead (connection refused): 503 PARTITION_MOVING with retry-after', async () => {
    const dead = await deadUrl();
    const { app: a, asked } = await app(() => ({ self: false, url: dead }));
    const res = await get(a);
    expectMoving(res);
    expect(res.body).not.toContain(dead.split(':').pop()!);
    expect(asked()).toBe(0);
  });

  it('the owner answers: passed back as it is, its retry-after too; the owner itself answers from its store', async () => {
    const s = createServer((req, res) => {
      expect(req.headers[FORWARDED_HEADER]).toBe('1');
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' }).end(JSON.stringify({ code: 'PARTITION_MOVING', message: 'restoring' }));
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const { app: a } = await app(() => ({ self: false, url }));
    const res = await get(a);
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.headers['x-streamrec-answered-by']).toBe(url);

    // Ours and ready: the local service answers (here its 404 is right: the owner does not know u1).
    const own = await app(() => ({ self: true, url: SELF }));
    expect((await get(own.app)).statusCode).toBe(404);
    expect(own.asked()).toBe(1);
  });
});
