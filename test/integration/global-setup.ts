/**
 * The integration suite's Kafka: KAFKA_BROKERS when set, else a local broker (Apache Kafka's jars,
 * KRaft) started here and owned by this process: stopped at teardown, and by its watchdog if this
 * process is killed first. Tests read the address with `inject('kafkaBrokers')`.
 */
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config/index.js';
import { resolveBrokers } from '../../src/kafka/connect.js';
import { stopLocalKafka } from '../../src/kafka/local-broker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const config = loadConfig({ overrides: { 'kafka.local.dataDir': process.env.STREAMREC_KAFKA_DIR || '.streamrec/test-kafka' } });
  const { brokers, local } = await resolveBrokers(config, 'owned', (line) => console.log(`[kafka] ${line}`));
  if (local) {
    console.log(`[kafka] ${local.reused ? 'reusing' : 'started'} local broker ${local.brokers} (pid ${local.pid}) in ${local.elapsedMs} ms`);
  } else {
    console.log(`[kafka] using KAFKA_BROKERS=${brokers.join(',')}`);
  }
  project.provide('kafkaBrokers', brokers.join(','));
  return async () => {
    if (local && !local.reused) await stopLocalKafka(config.kafka.local.dataDir, config.kafka.local.stopGraceMs);
  };
}
