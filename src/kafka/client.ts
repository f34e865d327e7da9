import { Kafka, logLevel, type KafkaClient, type KafkaConfig, type SASLOptions } from './kafkajs.js';
import type { Config } from '../config/index.js';

const LEVELS = { nothing: logLevel.NOTHING, error: logLevel.ERROR, warn: logLevel.WARN, info: logLevel.INFO, debug: logLevel.DEBUG } as const;

/** A kafkajs client for `brokers`, with the config's TLS, SASL, timeouts and log level. */
export function createKafka(config: Readonly<Config>, brokers: string[], clientIdSuffix = ''): KafkaClient {
  const k = config.kafka;
  const options: KafkaConfig = {
    clientId: k.clientId + clientIdSuffix,
    brokers,
    connectionTimeout: k.connectionTimeoutMs,
    logLevel: LEVELS[k.logLevel],
    retry: { initialRetryTime: 100, retries: 8 },
  };
  if (k.ssl) options.ssl = true;
  if (k.sasl.mechanism !== 'none') {
    options.sasl = { mechanism: k.sasl.mechanism, username: k.sasl.username, password: k.sasl.password } as SASLOptions;
  }
  return new Kafka(options);
}
