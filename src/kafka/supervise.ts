/**
 * Keeps a kafkajs consumer alive across broker outages.
 *
 * kafkajs retries each request (src/kafka/client.ts: `retry`), and when those retries run out the
 * consumer crashes. It restarts itself only when the crash's root cause is marked retriable; a
 * broker that is down long enough ends in "Failed to find group coordinator" (non-retriable in
 * kafkajs 2.2, see tulios/kafkajs#1445) or a connection error wrapped as non-retriable, and the
 * consumer then stays stopped for good. So kafkajs's own restart is switched off
 * (`retry.restartOnFailure` answers false: `consumerRetry`) and one policy replaces it here: on
 * every crash whose cause is a recoverable Kafka condition (`isRecoverableKafkaError`), a fresh
 * consumer is made and run, after a backoff with jitter (src/util/retry.ts), again and again until
 * it joins its group; anything else (a bug, an authorization failure, a record the broker refuses)
 * leaves the consumer `failed`, with the reason in `status()`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isAppError } from '../errors/index.js';
import { backoffDelay, describeError, errorChain, isProgrammerError, retry, type BackoffOptions } from '../util/retry.js';
import type { Logger } from '../util/log.js';
import type { Consumer, ConsumerConfig } from './kafkajs.js';

/** Broker answers that no retry changes: permissions, versions, records the broker refuses. */
const PERMANENT_PROTOCOL_ERRORS = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'ILLEGAL_SASL_STATE',
  'UNSUPPORTED_SASL_MECHANISM',
  'UNSUPPORTED_VERSION',
  'INVALID_CONFIG',
  'INVALID_REQUIRED_ACKS',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'INVALID_TRANSACTION_TIMEOUT',
]);
const PERMANENT_KAFKAJS_ERRORS = new Set(['KafkaJSSASLAuthenticationError', 'KafkaJSNotImplemented', 'KafkaJSUnsupportedMagicByteInMessageSet', 'KafkaJSInvalidVarIntError', 'KafkaJSInvalidLongError']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED']);

/**
 * Whether a Kafka client failure may go away by itself (a broker down or restarting, a
 * coordinator moving or loading, a connection lost, a request timing out): any kafkajs error or
 * network error, except programmer errors and the broker answers in PERMANENT_PROTOCOL_ERRORS.
 */
export function isRecoverableKafkaError(err: unknown): boolean {
  if (isProgrammerError(err)) return false;
  const chain = errorChain(err);
  let kafka = false;
  for (const e of chain) {
    const o = e as { name?: string; type?: string; code?: string };
    if (typeof o.type === 'string' && PERMANENT_PROTOCOL_ERRORS.has(o.type)) return false;
    if (typeof o.name === 'string' && PERMANENT_KAFKAJS_ERRORS.has(o.name)) return false;
    if (isAppError(e)) {
      if (e.code === 'KAFKA_UNREACHABLE') kafka = true;
      else return false;
    }
    if (typeof o.name === 'string' && o.name.startsWith('KafkaJS')) kafka = true;
    if (typeof o.code === 'string' && NETWORK_CODES.has(o.code)) kafka = true;
  }
  return kafka;
}

/** A consumer's `retry` option: kafkajs's request retries as before, its own restart off (the supervisor restarts). */
export const consumerRetry = (retries = 5): NonNullable<ConsumerConfig['retry']> => ({ retries, restartOnFailure: async () => false });

export type SupervisedState = 'starting' | 'running' | 'restarting' | 'failed' | 'stopped';

export interface SupervisedStatus {
  state: SupervisedState;
  /** Consumers made after the first one. */
  restarts: number;
  /** The latest crash or failed restart, or null. */
  lastError: string | null;
  /** Why it is `failed` (not retried), or null. */
  failure: string | null;
  /** Since when (ISO) the consumer has been down, while it is restarting or failed. */
  downSince: string | null;
}

export interface SupervisorOptions {
  /** Names the consumer in logs and statuses (e.g. `processor`, `metadata`). */
  name: string;
  log: Logger;
  backoff: BackoffOptions;
  /** A fresh consumer; `attempt` 0 is the first start. Give it `retry: consumerRetry()`. */
  create: (attempt: number) => Consumer;
  /** Registers the caller's listeners, connects, subscribes and runs the consumer. */
  run: (consumer: Consumer) => Promise<void>;
  /** The consumer went down: `restarting` true when a new one will be made, false when it failed for good. */
  onDown?: (err: unknown, restarting: boolean) => void | Promise<void>;
  /** A consumer is a member of its group again (every GROUP_JOIN). */
  onJoin?: () => void;
  /** A consumer that stayed joined this long ends a streak of crashes (the next backoff starts small again). */
  stableAfterMs?: number;
  now?: () => number;
}

export class SupervisedConsumer {
  private consumer: Consumer | undefined;
  private stateValue: SupervisedState = 'starting';
  private restarts = 0;
  /** Crashes since the consumer was last stable: the next restart's backoff step. */
  private streak = 0;
  private joinedAt: number | undefined;
  private lastError: string | null = null;
  private failure: string | null = null;
  private downSince: number | null = null;
  private readonly crashes = new WeakMap<Consumer, unknown>();
  private readonly abort = new AbortController();
  private restarting: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly o: SupervisorOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The consumer of the moment (a new one after each restart). */
  get current(): Consumer | undefined {
    return this.consumer;
  }

  get state(): SupervisedState {
    return this.stateValue;
  }

  status(): SupervisedStatus {
    return {
      state: this.stateValue,
      restarts: this.restarts,
      lastError: this.lastError,
      failure: this.failure,
      downSince: this.downSince === null ? null : new Date(this.downSince).toISOString(),
    };
  }

  /**
   * Makes and runs the first consumer. Rejects (after disconnecting it) when that fails, so that a
   * service that cannot reach Kafka at start-up says so; failures after this are restarted.
   */
  async start(): Promise<void> {
    const consumer = this.make(0);
    try {
      await this.o.run(consumer);
    } catch (err) {
      this.stateValue = 'failed';
      this.failure = describeError(err);
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
    if (this.stateValue === 'starting') this.stateValue = 'running';
  }

  /**
   * Stops restarting and disconnects the consumer of the moment. A restart in progress (connecting
   * to a broker that is down) is given `restartWaitMs` to notice, then left behind.
   */
  async stop(restartWaitMs = 5000): Promise<void> {
    if (this.stateValue === 'stopped') return;
    this.stateValue = 'stopped';
    this.abort.abort(new Error(`${this.o.name} consumer stopped`));
    await this.consumer?.disconnect().catch((err: unknown) => this.o.log.warn({ err, consumer: this.o.name }, 'disconnecting a consumer failed'));
    if (this.restarting) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.restarting.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, restartWaitMs)))]);
      clearTimeout(timer);
    }
  }

  private make(attempt: number): Consumer {
    const consumer = this.o.create(attempt);
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (this.consumer !== consumer || this.stateValue === 'stopped') return;
      this.joinedAt = this.now();
      if (this.stateValue !== 'running') this.o.log.info({ consumer: this.o.name, restarts: this.restarts, downMs: this.downSince === null ? 0 : this.now() - this.downSince }, 'kafka consumer is back in its group');
      this.stateValue = 'running';
      this.downSince = null;
      this.o.onJoin?.();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (this.consumer !== consumer || this.stateValue === 'stopped') return;
      this.crashes.set(consumer, payload.error);
      // A crash of the consumer a restart is running is that restart's failure (it retries).
      if (this.restarting === undefined) void this.crashed(payload.error);
    });
    return consumer;
  }

  private async crashed(err: unknown): Promise<void> {
    const recoverable = isRecoverableKafkaError(err);
    if (this.joinedAt !== undefined && this.now() - this.joinedAt >= (this.o.stableAfterMs ?? 60_000)) this.streak = 0;
    this.joinedAt = undefined;
    this.lastError = describeError(err);
    this.downSince ??= this.now();
    this.stateValue = recoverable ? 'restarting' : 'failed';
    if (recoverable) {
      this.o.log.warn({ consumer: this.o.name, err: this.lastError }, 'kafka consumer crashed; it is restarted with backoff');
    } else {
      this.failure = this.lastError;
      this.o.log.error({ consumer: this.o.name, err }, 'kafka consumer failed with an error that is not retried');
    }
    try {
      await this.o.onDown?.(err, recoverable);
    } catch (e) {
      this.o.log.warn({ err: e, consumer: this.o.name }, 'handling a consumer crash failed');
    }
    if (recoverable && this.stateValue === 'restarting') this.restart();
  }

  private restart(): void {
    if (this.restarting) return;
    const signal = this.abort.signal;
    const first = this.streak++;
    this.restarting = (async () => {
      await sleep(backoffDelay(first, this.o.backoff), undefined, { signal });
      await retry(
        async () => {
          signal.throwIfAborted();
          await this.consumer?.disconnect().catch(() => undefined);
          signal.throwIfAborted();
          this.restarts++;
          const consumer = this.make(this.restarts);
          try {
            await this.o.run(consumer);
            // kafkajs reports a failed join as a crash, not a rejection.
            if (this.crashes.has(consumer)) throw this.crashes.get(consumer);
            signal.throwIfAborted();
          } catch (err) {
            this.lastError = describeError(err);
            await consumer.disconnect().catch(() => undefined);
            throw err;
          }
        },
        {
          ...this.o.backoff,
          retriable: (err) => !signal.aborted && isRecoverableKafkaError(err),
          signal,
          onRetry: (err, attempt, delayMs) =>
            this.o.log.warn({ consumer: this.o.name, attempt: attempt + 1, delayMs, err: describeError(err) }, 'kafka consumer restart failed; trying again'),
        },
      );
    })()
      .catch((err: unknown) => {
        if (signal.aborted) return;
        this.stateValue = 'failed';
        this.failure = describeError(err);
        this.o.log.error({ consumer: this.o.name, err }, 'kafka consumer could not be restarted: an error that is not retried');
        return this.o.onDown?.(err, false);
      })
      .finally(() => {
        this.restarting = undefined;
        // A crash between the restart's last check and now.
        const c = this.consumer;
        if (c && this.crashes.has(c) && this.stateValue !== 'stopped' && this.stateValue !== 'failed') void this.crashed(this.crashes.get(c));
      });
  }
}

/** The consumers' restart policy from the config (`kafka.restartBackoffMs`, `kafka.restartMaxBackoffMs`). */
export function restartBackoff(config: { kafka: { restartBackoffMs: number; restartMaxBackoffMs: number } }): BackoffOptions {
  return { initialMs: config.kafka.restartBackoffMs, maxMs: Math.max(config.kafka.restartBackoffMs, config.kafka.restartMaxBackoffMs), factor: 2, jitter: 0.3 };
}
