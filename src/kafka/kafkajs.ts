// kafkajs is CommonJS; Node's ESM loader does not see all of its named exports, so they are taken
// from the default export here, once.
import kafkajs from 'kafkajs';

export const { Kafka, logLevel, ConfigResourceTypes, ConfigSource, Partitioners, CompressionTypes, AssignerProtocol } = kafkajs;
export type * from 'kafkajs';
export type KafkaClient = import('kafkajs').Kafka;
