/**
 * Several instances: a user's state lives on the instance that owns the user's input partition
 * (src/stream/processor.ts `owner`, the owners advertised through the consumer group by
 * src/kafka/assigner.ts). A query for a user of another instance is forwarded there as it came
 * (method, path and query, body, API key) and the owner's answer is passed back unchanged, so every
 * instance gives the same answer. A forwarded request is never forwarded again (a header marks it).
 *
 * A user's query is answered only from the store of the partition's owner: a store that is not the
 * owner's (a standby replica, a partition just given away, one still restoring) would give a wrong
 * 404 or a stale list. So when no live owner is known, the answer is 503 PARTITION_MOVING
 * (retriable, with retry-after), never a guess: the table names nobody (the group is forming), or
 * names this instance while its task is not ready yet (restoring), or the request was forwarded
 * here and the partition is not ready here (the sender's table is ahead of or behind ours), or the
 * named owner refuses the connection (it died; the group notices after processor.sessionTimeoutMs).
 *
 * Popular and trending items are the group's: an instance asks the others for their local top
 * lists (`peerRankings`) and sums them with its own.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isErrorCode } from '../errors/index.js';
import { PEER_TOP, type Ranking } from '../serving/query.js';
import type { Logger } from '../util/log.js';

export const FORWARDED_HEADER = 'x-streamrec-forwarded';

export interface Owner {
  self: boolean;
  url: string | undefined;
}

export interface ForwarderOptions {
  owner(userId: string): Owner;
  /** This instance's own advertised URL (a stale map may still name it while its partition is being restored). */
  selfUrl: () => string;
  timeoutMs?: number;
}

export function forwarder(o: ForwarderOptions): (request: FastifyRequest, reply: FastifyReply, userId: string) => Promise<boolean> {
  const timeoutMs = o.timeoutMs ?? 5000;
  return async (request, reply, userId) => {
    const url = ownerUrl(o, userId, request.headers[FORWARDED_HEADER] !== undefined);
    if (url === undefined) return false;
    const headers: Record<string, string> = { [FORWARDED_HEADER]: '1', accept: 'application/json' };
    for (const h of ['x-api-key', 'authorization', 'content-type'] as const) {
      const v = request.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const res = await fetchOwner(url, userId, timeoutMs, request.url, {
      method: request.method,
      headers,
      ...(request.body !== undefined && request.method !== 'GET' ? { body: JSON.stringify(request.body) } : {}),
    });
    const body = await res.text();
    await reply
      .code(res.status)
      .header('content-type', res.headers.get('content-type') ?? 'application/json; charset=utf-8')
      .header('x-streamrec-answered-by', url)
      .headers(passOn(res.headers))
      .send(body);
    return true;
  };
}

/**
 * For routes whose request the owner could not verify as it came (the AWS SDKs' SigV4 signs the
 * host and the exact body): the owner's `/v1` route is asked instead, with the root key (which the
 * instances then share, as they must for SigV4), after this instance has authenticated and
 * authorised the caller. Resolves undefined when this instance owns the user (answer here); the
 * owner's error comes back as the same AppError (code, message, field).
 */
export function ownerAsker(o: ForwarderOptions & { rootKey: string }): (userId: string, path: string, body: unknown) => Promise<unknown> {
  const timeoutMs = o.timeoutMs ?? 5000;
  return async (userId, path, body) => {
    const url = ownerUrl(o, userId, false);
    if (url === undefined) return undefined;
    const headers: Record<string, string> = { [FORWARDED_HEADER]: '1', accept: 'application/json', 'content-type': 'application/json' };
    if (o.rootKey !== '') headers['x-api-key'] = o.rootKey;
    const res = await fetchOwner(url, userId, timeoutMs, path, { method: 'POST', headers, body: JSON.stringify(body) });
    const answer = (await res.json().catch(() => undefined)) as { code?: unknown; message?: unknown; field?: unknown } | undefined;
    if (res.ok && answer !== undefined) return answer;
    if (answer !== undefined && typeof answer.code === 'string' && isErrorCode(answer.code)) {
      throw new AppError(answer.code, String(answer.message ?? answer.code), typeof answer.field === 'string' ? { field: answer.field } : {});
    }
    throw new AppError('FORWARD_FAILED', `the instance owning user ${JSON.stringify(userId)}'s partition answered HTTP ${res.status}`, { cause: Object.assign(new Error(`HTTP ${res.status}`), { ownerUrl: url }) });
  };
}

/** The owner's URL when another instance owns the user's partition; undefined when this one does; PARTITION_MOVING when nobody can answer now. */
function ownerUrl(o: ForwarderOptions, userId: string, alreadyForwarded: boolean): string | undefined {
  const owner = o.owner(userId);
  if (owner.self) return undefined;
  if (alreadyForwarded) {
    throw new AppError('PARTITION_MOVING', `user ${JSON.stringify(userId)}'s partition is not ready on the instance it was forwarded to (it is being moved or restored)`, { field: 'userId' });
  }
  if (owner.url === undefined) throw new AppError('PARTITION_MOVING', `user ${JSON.stringify(userId)}'s partition has no known owner yet (the group is assigning it)`, { field: 'userId' });
  if (owner.url === o.selfUrl()) throw new AppError('PARTITION_MOVING', `user ${JSON.stringify(userId)}'s partition is being restored on this instance`, { field: 'userId' });
  return owner.url;
}

async function fetchOwner(url: string, userId: string, timeoutMs: number, path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(new URL(path, url), { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    // The owner's address and the client's error are for the log (the cause), not for the client.
    // Nothing listens at the owner's address: it died, and its partitions will move.
    if (connectionRefused(err)) {
      throw new AppError('PARTITION_MOVING', `the instance owning user ${JSON.stringify(userId)}'s partition is gone; the partition is being moved`, {
        field: 'userId',
        cause: Object.assign(err as Error, { ownerUrl: url }),
      });
    }
    throw new AppError('FORWARD_FAILED', `the instance owning user ${JSON.stringify(userId)}'s partition did not answer`, { cause: Object.assign(err as Error, { ownerUrl: url }) });
  }
}

/** The owner's retry-after (its 503 PARTITION_MOVING, 429), passed on. */
function passOn(headers: Headers): Record<string, string> {
  const v = headers.get('retry-after');
  return v === null ? {} : { 'retry-after': v };
}

/** fetch's failure when nothing accepts the connection (undici puts the socket error in `cause`). */
function connectionRefused(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e !== undefined && e !== null && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return true;
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.some((x) => connectionRefused(x))) return true;
  }
  return false;
}

/**
 * The other instances' local popular and trending top PEER_TOP, asked with the root key (which the
 * instances of a group must then share; without one, nothing is asked and each instance ranks its
 * own partitions). An instance that does not answer is left out (logged).
 */
export function peerRankings(o: { group: string; rootKey: string; peers: () => string[]; log: Pick<Logger, 'warn'>; timeoutMs?: number }): () => Promise<Ranking[]> {
  const ask = async (url: string, kind: 'popular' | 'trending'): Promise<{ itemId: string; score: number }[]> => {
    const res = await fetch(`${url}/v1/groups/${o.group}/popular?scope=local&kind=${kind}&numResults=${PEER_TOP}`, {
      headers: { 'x-api-key': o.rootKey, [FORWARDED_HEADER]: '1' },
      signal: AbortSignal.timeout(o.timeoutMs ?? 2000),
    });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    return ((await res.json()) as { itemList: { itemId: string; score: number }[] }).itemList;
  };
  return async () => {
    const peers = o.peers();
    if (o.rootKey === '' || peers.length === 0) return [];
    const settled = await Promise.allSettled(peers.map(async (url) => ({ popular: await ask(url, 'popular'), trending: await ask(url, 'trending') })));
    for (const r of settled) if (r.status === 'rejected') o.log.warn({ err: r.reason }, 'an instance did not give its popular items; the list is partial');
    return settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  };
}
