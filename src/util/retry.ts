/**
 * The one retry policy of the service: exponential backoff with jitter, and the line between what
 * is worth retrying and what is not. kafkajs retries each request itself (`retry` in
 * src/kafka/client.ts); this is the outer layer, for whole operations (a consumer's restart, a
 * partition's re-opening) once kafkajs has given up.
 *
 * Programmer errors (TypeError, RangeError, ReferenceError, SyntaxError, an assertion) are never
 * retried: the same code would fail the same way.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackoffOptions {
  /** The first delay (ms). */
  initialMs: number;
  /** No delay is longer than this (ms). */
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Share of each delay that is random, 0..1 (default 0.3): delay × (1 − jitter × U[0,1)). */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (0 = the first retry): initialMs × factor^attempt, at
 * most maxMs, minus a random share (so that many clients failing together do not retry together).
 */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const factor = o.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, o.jitter ?? 0.3));
  const base = Math.min(o.maxMs, o.initialMs * factor ** Math.max(0, attempt));
  return Math.max(0, Math.round(base * (1 - jitter * random())));
}

const PROGRAMMER_ERRORS = new Set(['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'EvalError', 'AssertionError']);

/** The error and its causes (`cause`, and kafkajs's `originalError`), outermost first, at most 10 deep. */
export function errorChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  let e: unknown = err;
  while (e !== undefined && e !== null && chain.length < 10 && !chain.includes(e)) {
    chain.push(e);
    const o = e as { cause?: unknown; originalError?: unknown };
    e = o.cause ?? o.originalError;
  }
  return chain;
}

/** A bug, not a condition: anywhere in the chain a TypeError, RangeError, ReferenceError, SyntaxError or an assertion. */
export function isProgrammerError(err: unknown): boolean {
  return errorChain(err).some((e) => e instanceof Error && (PROGRAMMER_ERRORS.has(e.name) || PROGRAMMER_ERRORS.has(e.constructor.name) || (e as { code?: unknown }).code === 'ERR_ASSERTION'));
}

/** A short, single-line description of an error for status bodies and logs: `Name: message (cause: ...)`. */
export function describeError(err: unknown): string {
  return errorChain(err)
    .map((e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)))
    .filter((s, i, all) => all.indexOf(s) === i)
    .join(' <- ')
    .slice(0, 500);
}

export interface RetryOptions extends BackoffOptions {
  /** Retries after the first attempt (default: unlimited). */
  retries?: number;
  /** Whether an error is worth another attempt (programmer errors never are, whatever this says). */
  retriable: (err: unknown) => boolean;
  /** Called before each wait. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Aborting stops the retries: the pending wait rejects with the signal's reason. */
  signal?: AbortSignal;
  random?: () => number;
}

/**
 * Runs `fn` until it resolves, waiting `backoffDelay` between attempts; rethrows the last error
 * when it is not retriable, when the retries are used up, or when `signal` aborts.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    o.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (err) {
      if (isProgrammerError(err) || !o.retriable(err) || attempt >= (o.retries ?? Infinity) || o.signal?.aborted) throw err;
      const delay = backoffDelay(attempt, o, o.random);
      o.onRetry?.(err, attempt, delay);
      await sleep(delay, undefined, o.signal ? { signal: o.signal } : undefined);
    }
  }
}
