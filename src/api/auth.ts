/**
 * API keys: per dataset group, with scopes `ingest` (PutEvents/Items/Users), `query`
 * (recommendations, related items, ranking, popular) and `admin` (the group's resources, keys and
 * deployments). A key is `sr_<id>_<secret>`; only its sha256 is stored (a key has 256 random bits,
 * so a fast hash is enough — nothing to brute-force). The root key (api.rootKey) holds every scope
 * on every group and is the only one that may create or list groups.
 *
 * Every route declares the scope it needs in its config (`config: { scope: 'query' }`); routes
 * without one are public (health, readiness, metrics, OpenAPI). The key is read from `x-api-key`
 * or `Authorization: Bearer <key>`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isAppError } from '../errors/index.js';
import { privateDir } from '../util/paths.js';
import type { ApiKeyResource, Scope } from '../stream/resources.js';

export type { Scope } from '../stream/resources.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a route needs; absent = a public route. */
    scope?: Scope;
  }
  interface FastifyRequest {
    /** Who called (after authentication): the root key, a group's key, or nobody (auth off / public route). */
    principal?: Principal;
  }
}

export type Principal = { kind: 'root' } | { kind: 'key'; group: string; key: ApiKeyResource } | { kind: 'anonymous' };

/** Finds a group's key by the hash of the presented key. */
export type KeyLookup = (group: string, hash: string) => ApiKeyResource | undefined;

export interface AuthOptions {
  mode: 'keys' | 'off';
  rootKey: string;
  keys: KeyLookup;
  /** The groups whose keys this process knows (the key's group is found among them). */
  groups: () => readonly string[];
  /** Called for each request refused with 401 or 403 before that answer; may throw instead (429 per client address). */
  onRefused?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new key: its id (shown in lists), the full secret (shown once) and the hash to store. */
export function newApiKey(): { id: string; key: string; hash: string } {
  const id = randomBytes(6).toString('hex');
  const key = `sr_${id}_${randomBytes(32).toString('base64url')}`;
  return { id, key, hash: hashKey(key) };
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const auth = request.headers.authorization;
  if (typeof auth === 'string' && /^bearer /i.test(auth)) return auth.slice(7).trim() || undefined;
  return undefined;
}

/** The groups to look a key up in: the route's first (SigV4 credentials too: personalize-compat.ts). */
export function keyGroupCandidates(o: Pick<AuthOptions, 'groups'>, routeGroup: string | undefined): readonly string[] {
  return routeGroup !== undefined ? [routeGroup, ...o.groups().filter((g) => g !== routeGroup)] : o.groups();
}

let rootCache: { key: string; hash: Buffer } | undefined;
function rootHash(rootKey: string): Buffer {
  if (rootCache?.key !== rootKey) rootCache = { key: rootKey, hash: Buffer.from(hashKey(rootKey), 'hex') };
  return rootCache.hash;
}

/**
 * Who presented this key: root, a key of some group, or nobody known (UNAUTHENTICATED). Every group
 * this process knows is searched, so a key of group A used on group B is told apart from a wrong key
 * (403 rather than 401).
 */
export function authenticate(o: AuthOptions, request: FastifyRequest, routeGroup: string | undefined): Principal {
  const key = presentedKey(request);
  if (key === undefined) throw new AppError('UNAUTHENTICATED', 'this route needs an API key: send it in the x-api-key header (or Authorization: Bearer KEY)');
  const hash = hashKey(key);
  if (o.rootKey !== '' && timingSafeEqual(rootHash(o.rootKey), Buffer.from(hash, 'hex'))) return { kind: 'root' };
  for (const group of keyGroupCandidates(o, routeGroup)) {
    const found = o.keys(group, hash);
    if (found) return { kind: 'key', group, key: found };
  }
  throw new AppError('UNAUTHENTICATED', 'the API key is not known (revoked, mistyped, or of a group this service does not serve)');
}

/** Whether a principal may use `scope` on `group` (undefined: a route over all groups, root only). */
export function authorize(p: Principal, group: string | undefined, scope: Scope): void {
  if (p.kind === 'root' || p.kind === 'anonymous') return;
  if (group === undefined) throw new AppError('FORBIDDEN', 'only the root key (api.rootKey) may list or create dataset groups');
  if (p.group !== group) throw new AppError('FORBIDDEN', `this API key belongs to dataset group ${JSON.stringify(p.group)}, not ${JSON.stringify(group)}`, { field: 'group' });
  if (!p.key.scopes.includes(scope)) {
    throw new AppError('FORBIDDEN', `this API key's scopes are ${p.key.scopes.join(', ')}; this route needs ${scope}`, { field: 'scope' });
  }
}

/** The onRequest hook that checks every scoped route. */
export function registerAuth(app: FastifyInstance, o: AuthOptions): void {
  app.addHook('onRequest', async (request, reply) => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined) return;
    if (o.mode === 'off') {
      request.principal = { kind: 'anonymous' };
      return;
    }
    const group = (request.params as { group?: string } | undefined)?.group;
    let principal: Principal;
    try {
      principal = authenticate(o, request, group);
      authorize(principal, group, scope);
    } catch (err) {
      if (o.onRefused && (isAppError(err, 'UNAUTHENTICATED') || isAppError(err, 'FORBIDDEN'))) await o.onRefused(request, reply);
      throw err;
    }
    request.principal = principal;
  });
}

/**
 * The root key kept in `<dir>/root-key` (mode 600) for a service started without api.rootKey: read
 * when the file exists, generated otherwise. The operator reads it from there (`cat`).
 */
export function rootKeyFile(dir: string): { key: string; path: string; created: boolean } {
  const path = join(dir, 'root-key');
  if (existsSync(path)) {
    const key = readFileSync(path, 'utf8').trim();
    if (key.length >= 16) {
      // A file an older version (or a person) left readable by others is narrowed to 600, its folder to 700.
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
      privateDir(dir);
      return { key, path, created: false };
    }
  }
  privateDir(dir);
  const key = `sr_root_${randomBytes(32).toString('base64url')}`;
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return { key, path, created: true };
}
