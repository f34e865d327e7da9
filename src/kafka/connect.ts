import { AppError } from '../errors/index.js';
import type { Config } from '../config/index.js';
import { localKafkaOptions, localKafkaStatus, startLocalKafka, type BrokerMode, type StartResult } from './local-broker.js';

export interface Brokers {
  brokers: string[];
  /** Set when the local broker was started (or found running) for this call. */
  local?: StartResult;
}

/**
 * Where to find Kafka: KAFKA_BROKERS when set; otherwise the local broker of kafka.local.dataDir,
 * started on demand when `start` names a mode, else only if it already runs.
 */
export async function resolveBrokers(config: Readonly<Config>, start: BrokerMode | false, log?: (line: string) => void): Promise<Brokers> {
  if (config.kafka.brokers.length > 0) return { brokers: [...config.kafka.brokers] };
  if (start) {
    const local = await startLocalKafka(localKafkaOptions(config, start, log));
    return { brokers: [local.brokers], local };
  }
  const status = await localKafkaStatus(config.kafka.local.dataDir);
  if (status.running && status.reachable && status.state) return { brokers: [status.state.brokers] };
  throw new AppError(
    'KAFKA_UNREACHABLE',
    `KAFKA_BROKERS is not set and no local broker runs from ${config.kafka.local.dataDir}: start one with \`streamrec kafka start\`, or set KAFKA_BROKERS.`,
    { field: 'kafka.brokers' },
  );
}
