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
import { AppError } from '../errors/index.js';
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
    const owner = o.owner(userId);
    if (owner.self) return false;
    if (request.headers[FORWARDED_HEADER] !== undefined) {
      throw new AppError('PARTITION_MOVING', `user ${JSON.stringify(userId)}'s partition is not ready on the instance it was forwarded to (it is being moved or restored)`, { field: 'userId' });
    }
    if (owner.url === undefined) throw new AppError('PARTITION_MOVING', `user ${JSON.stringify(userId)}'s partition has no known owner yet (the group is assigning it)`, { field: 'userId' });
    if (owner.url === o.selfUrl()) throw new AppError('PARTITION_MOVING', `user ${JSON.stringify(userId)}'s partition is being restored on this instance`, { field: 'userId' });
    const headers: Record<string, string> = { [FORWARDED_HEADER]: '1', accept: 'application/json' };
    for (const h of ['x-api-key', 'authorization', 'content-type'] as const) {
      const v = request.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    let res: Response;
    try {
      res = await fetch(new URL(request.url, owner.url), {
        method: request.method,
        headers,
        ...(request.body !== undefined && request.method !== 'GET' ? { body: JSON.stringify(request.body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      // The owner's address and the client's error are for the log (the cause), not for the client.
      // Nothing listens at the owner's address: it died, and its partitions will move.
      if (connectionRefused(err)) {
        throw new AppError('PARTITION_MOVING', `the instance owning user ${JSON.stringify(userId)}'s partition is gone; the partition is being moved`, {
          field: 'userId',
          cause: Object.assign(err as Error, { ownerUrl: owner.url }),
        });
      }
      throw new AppError('FORWARD_FAILED', `the instance owning user ${JSON.stringify(userId)}'s partition did not answer`, { cause: Object.assign(err as Error, { ownerUrl: owner.url }) });
    }
    const body = await res.text();
    await reply
      .code(res.status)
      .header('content-type', res.headers.get('content-type') ?? 'application/json; charset=utf-8')
      .header('x-streamrec-answered-by', owner.url)
      .headers(passOn(res.headers))
      .send(body);
    return true;
  };
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
