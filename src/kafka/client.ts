import { Kafka, logLevel, type KafkaClient, type KafkaConfig, type SASLOptions } from './kafkajs.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../util/log.js';

const LEVELS = { nothing: logLevel.NOTHING, error: logLevel.ERROR, warn: logLevel.WARN, info: logLevel.INFO, debug: logLevel.DEBUG } as const;

// kafkajs logs a broker's answer with a retriable error code (a coordinator still loading, a
// rebalance under way) at ERROR before it retries; such lines are routine and go to debug.
const RETRIABLE = /coordinator is (loading|not available)|rebalanc|not the correct coordinator|leader.*not available|NOT_COORDINATOR/i;

/** A kafkajs client for `brokers`, with the config's TLS, SASL, timeouts and log level. */
export function createKafka(config: Readonly<Config>, brokers: string[], clientIdSuffix = '', log?: Logger): KafkaClient {
  const k = config.kafka;
  const options: KafkaConfig = {
    clientId: k.clientId + clientIdSuffix,
    brokers,
    connectionTimeout: k.connectionTimeoutMs,
    logLevel: LEVELS[k.logLevel],
    retry: { initialRetryTime: 100, retries: 8 },
  };
  if (log) {
    options.logCreator = () => ({ namespace, level, log: entry }) => {
      const { message, timestamp: _t, logger: _l, ...extra } = entry as unknown as { message: string; timestamp: string; logger?: string };
      const routine = RETRIABLE.test(`${message} ${String((extra as { error?: unknown }).error ?? '')}`);
      const obj = { kafkajs: namespace, ...extra };
      if (level === logLevel.ERROR && !routine) log.error(obj, message);
      else if (level === logLevel.WARN && !routine) log.warn(obj, message);
      else log.debug(obj, message);
    };
  }
  if (k.ssl) options.ssl = true;
  if (k.sasl.mechanism !== 'none') {
    options.sasl = { mechanism: k.sasl.mechanism, username: k.sasl.username, password: k.sasl.password } as SASLOptions;
  }
  return new Kafka(options);
}
