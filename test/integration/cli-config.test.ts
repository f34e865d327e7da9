/** `streamrec config` (the built CLI) never prints secrets: the root API key and the SASL password are masked. */
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

describe('streamrec config', () => {
  it('masks api.rootKey and kafka.sasl.password', async () => {
    const env = {
      STREAMREC_API_ROOT_KEY: 'sr_root_do-not-print-me-0123456789',
      KAFKA_BROKERS: 'kafka-1:9093',
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'streamrec',
      KAFKA_SASL_PASSWORD: 'sasl-do-not-print-me',
    };
    const r = await runCli(['config'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('do-not-print-me');
    const shown = JSON.parse(r.stdout) as { api: { rootKey: string }; kafka: { brokers: string[]; sasl: { username: string; password: string } } };
    expect(shown.api.rootKey).toBe('***');
    expect(shown.kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'streamrec', password: '***' });
    expect(shown.kafka.brokers).toEqual(['kafka-1:9093']);
  });
});
