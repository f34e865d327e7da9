/**
 * The pieces of broker-outage recovery that need no broker: the retry helper's backoff, jitter and
 * refusal to retry bugs; which Kafka client errors count as recoverable; GET /health turning 503
 * (with the reasons) while the service reports itself unhealthy, and the lag gauge leaving unknown
 * partitions out. The real outage is test/integration/broker-restart.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { buildApp, type GroupDirectory, type RecordSink } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/index.js';
import { AppError } from '../../src/errors/index.js';
import { isRecoverableKafkaError } from '../../src/kafka/supervise.js';
import { createCodecs } from '../../src/serde/avro.js';
import { backoffDelay, describeError, isProgrammerError, retry } from '../../src/util/retry.js';

/** kafkajs's error shapes (name, retriable, cause), as its errors.js builds them. */
function kafkaError(name: string, message: string, o: { retriable?: boolean; cause?: unknown; type?: string } = {}): Error {
  const e = new Error(message, o.cause === undefined ? undefined : { cause: o.cause }) as Error & { retriable: boolean; type?: string };
  e.name = name;
  e.retriable = o.retriable ?? true;
  if (o.type) e.type = o.type;
  return e;
}

describe('backoffDelay', () => {
  const o = { initialMs: 100, maxMs: 5000, factor: 2, jitter: 0.3 };
  it('doubles per attempt up to the cap, without jitter at random() = 0', () => {
    expect([0, 1, 2, 3, 10, 60].map((a) => backoffDelay(a, o, () => 0))).toEqual([100, 200, 400, 800, 5000, 5000]);
  });
  it('takes off at most the jitter share at random', () => {
    expect(backoffDelay(3, o, () => 0.999999)).toBe(Math.round(800 * (1 - 0.3 * 0.999999)));
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(4, o);
      expect(d).toBeGreaterThanOrEqual(1120);
      expect(d).toBeLessThanOrEqual(1600);
    }
  });
});

describe('retry', () => {
  const fast = { initialMs: 1, maxMs: 4 };
  it('retries a retriable failure until it works, with growing delays', async () => {
    const delays: number[] = [];
    let calls = 0;
    const out = await retry(
      async () => {
        if (++calls < 4) throw new Error('not yet');
        return 'done';
      },
      { ...fast, jitter: 0, retriable: () => true, onRetry: (_e, _a, d) => delays.push(d) },
    );
    expect(out).toBe('done');
    expect(calls).toBe(4);
    expect(delays).toEqual([1, 2, 4]);
  });
  it('gives up after `retries`, rethrowing the last error', async () => {
    let calls = 0;
    await expect(retry(async () => Promise.reject(new Error(`fail ${++calls}`)), { ...fast, retries: 2, retriable: () => true })).rejects.toThrow('fail 3');
  });
  it('never retries a programmer error, whatever `retriable` says', async () => {
    let calls = 0;
    const bug = async () => {
      calls++;
      return (undefined as unknown as { x: () => void }).x();
    };
    await expect(retry(bug, { ...fast, retriable: () => true })).rejects.toBeInstanceOf(TypeError);
    expect(calls).toBe(1);
  });
  it('stops when its signal aborts', async () => {
    const ac = new AbortController();
    let calls = 0;
    const p = retry(
      async () => {
        if (++calls === 2) ac.abort(new Error('stopped'));
        throw new Error('down');
      },
      { initialMs: 5, maxMs: 5, retriable: () => true, signal: ac.signal },
    );
    await expect(p).rejects.toThrow();
    expect(calls).toBe(2);
  });
});

describe('isRecoverableKafkaError', () => {
  it('counts the failures of a broker outage as recoverable, even those kafkajs does not restart after', () => {
    // What kafkajs 2.2 crashes with (restart: false) while the broker is down or coming back.
    expect(isRecoverableKafkaError(kafkaError('KafkaJSGroupCoordinatorNotFound', 'Failed to find group coordinator', { retriable: false }))).toBe(true);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9092'), { code: 'ECONNREFUSED' });
    expect(isRecoverableKafkaError(kafkaError('KafkaJSNonRetriableError', 'Connection error: connect ECONNREFUSED', { retriable: false, cause: kafkaError('KafkaJSConnectionError', 'Connection error', { cause: refused }) }))).toBe(true);
    expect(isRecoverableKafkaError(kafkaError('KafkaJSNumberOfRetriesExceeded', 'Request timed out', { retriable: false }))).toBe(true);
    expect(isRecoverableKafkaError(refused)).toBe(true);
    expect(isRecoverableKafkaError(new AppError('KAFKA_UNREACHABLE', 'down'))).toBe(true);
  });
  it('does not retry bugs, refusals no retry changes, or errors that are not Kafka\'s', () => {
    expect(isRecoverableKafkaError(kafkaError('KafkaJSNonRetriableError', 'x', { cause: new TypeError('undefined is not a function') }))).toBe(false);
    expect(isRecoverableKafkaError(kafkaError('KafkaJSProtocolError', 'Not authorized to access topics', { retriable: false, type: 'TOPIC_AUTHORIZATION_FAILED' }))).toBe(false);
    expect(isRecoverableKafkaError(kafkaError('KafkaJSSASLAuthenticationError', 'SASL SCRAM authentication failed'))).toBe(false);
    expect(isRecoverableKafkaError(new AppError('STATE_LOCKED', 'in use'))).toBe(false);
    expect(isRecoverableKafkaError(new Error('something else'))).toBe(false);
  });
  it('describes an error with its causes on one line', () => {
    const e = kafkaError('KafkaJSNonRetriableError', 'outer', { cause: kafkaError('KafkaJSConnectionError', 'inner') });
    expect(describeError(e)).toBe('KafkaJSNonRetriableError: outer <- KafkaJSConnectionError: inner');
    expect(isProgrammerError(new RangeError('x'))).toBe(true);
  });
});

describe('GET /health and the lag gauge', () => {
  const config = loadConfig({ env: { STREAMREC_API_AUTH: 'off' } });
  const sink: RecordSink = { send: async () => {} };
  const groups: GroupDirectory = { has: async () => true };

  it('answers 503 with the reasons while the service is unhealthy, 200 again once it is back', async () => {
    const h = { healthy: true, state: 'running', reasons: [] as string[] };
    const lag: { partition: number; lag: number | null }[] = [
      { partition: 0, lag: 5 },
      { partition: 1, lag: null },
    ];
    const app = await buildApp({
      config,
      codecs: createCodecs(config),
      sink,
      groups,
      status: () => ({ state: h.state, ready: h.healthy }),
      logger: false,
      metrics: { health: () => h, processor: () => ({ applied: 1, deadLetters: 0, partitions: lag }) },
    });
    try {
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      Object.assign(h, { healthy: false, state: 'failed', reasons: ['processor failed: KafkaJSSASLAuthenticationError: bad password'] });
      const res = await app.inject({ method: 'GET', url: '/health' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'failed', state: 'failed', reasons: ['processor failed: KafkaJSSASLAuthenticationError: bad password'] });
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toContain('streamrec_healthy 0');
      // The unknown lag is absent, never 0.
      expect(metrics).toContain('streamrec_consumer_lag{partition="0"} 5');
      expect(metrics).not.toContain('streamrec_consumer_lag{partition="1"}');
      Object.assign(h, { healthy: true, state: 'running', reasons: [] });
      const back = await app.inject({ method: 'GET', url: '/health' });
      expect(back.statusCode).toBe(200);
      expect(back.json()).toEqual({ status: 'ok', state: 'running' });
    } finally {
      await app.close();
    }
  });
});
