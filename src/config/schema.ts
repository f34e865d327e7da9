import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * The one typed config. Every leaf carries its default, its environment variable and a description:
 * the loader, docs/configuration.md and `streamrec config --keys` are all derived from here.
 */
const leaf = <T extends TSchema>(schema: T, env: string, description: string): T =>
  Object.assign(schema, { env, description });

export const ConfigSchema = Type.Object(
  {
    group: leaf(
      Type.String({ default: 'demo', pattern: '^[A-Za-z0-9_-]{1,60}$' }),
      'STREAMREC_GROUP',
      'Dataset group that `streamrec start` serves; its topics are named `<group>.<topic>`.',
    ),
    log: Type.Object(
      {
        level: leaf(
          Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
          'STREAMREC_LOG_LEVEL',
          'Log level of the service (pino, JSON lines on stdout).',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    kafka: Type.Object(
      {
        brokers: leaf(
          Type.Array(Type.String({ pattern: '^[^\\s:,]+:[0-9]{1,5}$' }), { default: [] }),
          'KAFKA_BROKERS',
          'Existing cluster to use, `host:port` comma-separated. Empty: a local broker is started on demand.',
        ),
        clientId: leaf(Type.String({ default: 'streamrec', minLength: 1 }), 'STREAMREC_KAFKA_CLIENT_ID', 'Kafka client id.'),
        ssl: leaf(Type.Boolean({ default: false }), 'KAFKA_SSL', 'Connect with TLS (system CAs).'),
        sasl: Type.Object(
          {
            mechanism: leaf(
              Type.Union([Type.Literal('none'), Type.Literal('plain'), Type.Literal('scram-sha-256'), Type.Literal('scram-sha-512')], {
                default: 'none',
              }),
              'KAFKA_SASL_MECHANISM',
              'SASL mechanism: none, plain, scram-sha-256 or scram-sha-512.',
            ),
            username: leaf(Type.String({ default: '' }), 'KAFKA_SASL_USERNAME', 'SASL user name.'),
            password: leaf(Type.String({ default: '' }), 'KAFKA_SASL_PASSWORD', 'SASL password.'),
          },
          { additionalProperties: false, default: {} },
        ),
        connectionTimeoutMs: leaf(
          Type.Integer({ default: 3000, minimum: 100 }),
          'STREAMREC_KAFKA_CONNECTION_TIMEOUT_MS',
          'Time to wait for a TCP connection to a broker.',
        ),
        logLevel: leaf(
          Type.Union([Type.Literal('nothing'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug')], {
            default: 'error',
          }),
          'STREAMREC_KAFKA_LOG_LEVEL',
          'kafkajs log level.',
        ),
        restartBackoffMs: leaf(
          Type.Integer({ default: 500, minimum: 10 }),
          'STREAMREC_KAFKA_RESTART_BACKOFF_MS',
          "First wait before a crashed Kafka consumer (the processor's, the metadata reader's, the followers') is made again; it doubles on each failed attempt, minus up to 30% at random.",
        ),
        restartMaxBackoffMs: leaf(
          Type.Integer({ default: 30_000, minimum: 100 }),
          'STREAMREC_KAFKA_RESTART_MAX_BACKOFF_MS',
          'Longest wait between two attempts to bring a crashed Kafka consumer back (they go on until it is back: a broker outage needs no restart by hand).',
        ),
        local: Type.Object(
          {
            dataDir: leaf(
              Type.String({ default: '.streamrec/kafka', minLength: 1 }),
              'STREAMREC_KAFKA_DIR',
              "Local broker's folder: its config, log, pid file and data.",
            ),
            cacheDir: leaf(
              Type.String({ default: '~/.cache/streamrec', minLength: 1 }),
              'STREAMREC_CACHE_DIR',
              'Where the Kafka jars fetched from Maven Central are kept; later starts are offline.',
            ),
            version: leaf(
              Type.String({ default: '3.9.1', pattern: '^3\\.9\\.[0-9]+$' }),
              'STREAMREC_KAFKA_VERSION',
              'Apache Kafka version (org.apache.kafka:kafka_2.13); pinned to 3.9.x, which serves every protocol version kafkajs 2.2 sends.',
            ),
            port: leaf(
              Type.Integer({ default: 0, minimum: 0, maximum: 65535 }),
              'STREAMREC_KAFKA_PORT',
              'PLAINTEXT listener port on 127.0.0.1; 0 picks a free one.',
            ),
            controllerPort: leaf(
              Type.Integer({ default: 0, minimum: 0, maximum: 65535 }),
              'STREAMREC_KAFKA_CONTROLLER_PORT',
              'KRaft controller port on 127.0.0.1; 0 picks a free one.',
            ),
            heapMinMb: leaf(Type.Integer({ default: 512, minimum: 128 }), 'STREAMREC_KAFKA_HEAP_MIN_MB', 'Broker JVM -Xms in MiB.'),
            heapMaxMb: leaf(Type.Integer({ default: 1024, minimum: 128 }), 'STREAMREC_KAFKA_HEAP_MAX_MB', 'Broker JVM -Xmx in MiB.'),
            startTimeoutMs: leaf(
              Type.Integer({ default: 120000, minimum: 1000 }),
              'STREAMREC_KAFKA_START_TIMEOUT_MS',
              'How long to wait for `Kafka Server started` (includes the first jar download).',
            ),
            stopGraceMs: leaf(
              Type.Integer({ default: 15000, minimum: 0 }),
              'STREAMREC_KAFKA_STOP_GRACE_MS',
              'After SIGTERM, how long the broker may take before SIGKILL.',
            ),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    topics: Type.Object(
      {
        partitions: leaf(
          Type.Integer({ default: 3, minimum: 1, maximum: 1000 }),
          'STREAMREC_TOPIC_PARTITIONS',
          'Partitions of the partitioned topics (interactions, users, items, recommendations, dead-letter, changelog).',
        ),
        replicationFactor: leaf(
          Type.Integer({ default: -1, minimum: -1, maximum: 32 }),
          'STREAMREC_TOPIC_REPLICATION_FACTOR',
          "Replication factor of new topics; -1 takes the broker's default.",
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    api: Type.Object(
      {
        host: leaf(Type.String({ default: '127.0.0.1', minLength: 1 }), 'STREAMREC_API_HOST', 'Address the HTTP API listens on (0.0.0.0 for all interfaces).'),
        port: leaf(Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }), 'STREAMREC_API_PORT', 'HTTP API port; 0 picks a free one.'),
        bodyLimitBytes: leaf(
          Type.Integer({ default: 1_048_576, minimum: 1024 }),
          'STREAMREC_API_BODY_LIMIT_BYTES',
          'Largest request body accepted; larger requests get 413.',
        ),
        auth: leaf(
          Type.Union([Type.Literal('keys'), Type.Literal('off')], { default: 'keys' }),
          'STREAMREC_API_AUTH',
          'keys: every route but health, readiness, metrics and the OpenAPI document needs an API key with the right group and scope; off: no checks (a trusted network only).',
        ),
        rootKey: leaf(
          Type.String({ default: '' }),
          'STREAMREC_API_ROOT_KEY',
          'The root API key (every scope, every group; creates groups and keys). Empty: `streamrec start` generates one into <state.dir>/root-key (mode 600) and says so.',
        ),
        rateLimitPerMinute: leaf(
          Type.Integer({ default: 600_000, minimum: 0 }),
          'STREAMREC_API_RATE_LIMIT_PER_MINUTE',
          'Requests per minute per API key (per client address without one); more get 429 RATE_LIMITED. 0: no limit.',
        ),
        advertisedUrl: leaf(
          Type.String({ default: '' }),
          'STREAMREC_API_ADVERTISED_URL',
          "This instance's API base URL as other instances reach it (queries for users of its partitions are forwarded there). Empty: http://<api.host>:<bound port>, or http://<host name>:<bound port> when api.host is 0.0.0.0 or :: (with a warning: set it when instances run on several machines).",
        ),
        unauthenticatedPerMinute: leaf(
          Type.Integer({ default: 120, minimum: 0 }),
          'STREAMREC_API_UNAUTHENTICATED_PER_MINUTE',
          'Requests per minute per client address refused with 401 or 403 (no key, an unknown key, a key without the right); past it they get 429 RATE_LIMITED. 0: no limit.',
        ),
        requestTimeoutMs: leaf(
          Type.Integer({ default: 30_000, minimum: 100 }),
          'STREAMREC_API_REQUEST_TIMEOUT_MS',
          'A request (headers and body) must be received within this many ms, else the server answers 408 and closes the connection (checked every second at most).',
        ),
        connectionTimeoutMs: leaf(
          Type.Integer({ default: 60_000, minimum: 100 }),
          'STREAMREC_API_CONNECTION_TIMEOUT_MS',
          'A connection with no bytes in either direction for this many ms is closed.',
        ),
        keepAliveTimeoutMs: leaf(
          Type.Integer({ default: 72_000, minimum: 100 }),
          'STREAMREC_API_KEEP_ALIVE_TIMEOUT_MS',
          "An idle keep-alive connection is closed after this many ms (keep it above a load balancer's idle timeout).",
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    recommendations: Type.Object(
      {
        enabled: leaf(
          Type.Boolean({ default: true }),
          'STREAMREC_RECOMMENDATIONS_ENABLED',
          "Publish each user's fresh top-N to <group>.recommendations after their events.",
        ),
        numResults: leaf(
          Type.Integer({ default: 25, minimum: 1, maximum: 500 }),
          'STREAMREC_RECOMMENDATIONS_NUM_RESULTS',
          'Items in each published list.',
        ),
        minIntervalMs: leaf(
          Type.Integer({ default: 1000, minimum: 0 }),
          'STREAMREC_RECOMMENDATIONS_MIN_INTERVAL_MS',
          'At most one list per user per this many ms; later events in the window give one trailing list.',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    ingest: Type.Object(
      {
        maxFutureSkewMs: leaf(
          Type.Integer({ default: 3_600_000, minimum: 0 }),
          'STREAMREC_INGEST_MAX_FUTURE_SKEW_MS',
          'An event timestamp further than this ahead of the clock is refused (HTTP 400, or the dead-letter topic).',
        ),
        minTimestampMs: leaf(
          Type.Integer({ default: 315_532_800_000, minimum: 0 }),
          'STREAMREC_INGEST_MIN_TIMESTAMP_MS',
          'An event timestamp before this (epoch ms; default 1980-01-01) is refused as implausible (HTTP 400, or the dead-letter topic): epoch seconds sent as milliseconds fall in January 1970.',
        ),
        maxRecordBytes: leaf(
          Type.Integer({ default: 65_536, minimum: 256 }),
          'STREAMREC_INGEST_MAX_RECORD_BYTES',
          'Largest encoded record accepted from a topic; larger ones go to the dead-letter topic.',
        ),
        produceTimeoutMs: leaf(
          Type.Integer({ default: 5000, minimum: 100 }),
          'STREAMREC_INGEST_PRODUCE_TIMEOUT_MS',
          'How long an ingestion request waits for Kafka (group lookup and produce) before it answers 503 KAFKA_UNREACHABLE; a produce that timed out may still be written later.',
        ),
        maxInFlight: leaf(
          Type.Integer({ default: 256, minimum: 1 }),
          'STREAMREC_INGEST_MAX_IN_FLIGHT',
          'Produce calls not yet answered by Kafka (timed-out ones included) at one time; past it ingestion answers 503 INGEST_OVERLOADED at once.',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    state: Type.Object(
      {
        dir: leaf(
          Type.String({ default: '.streamrec/state', minLength: 1 }),
          'STREAMREC_STATE_DIR',
          "The processor's RocksDB folder: one store per owned input partition, under <dir>/<group>/<partition>.",
        ),
        maxEventsPerUser: leaf(
          Type.Integer({ default: 200, minimum: 1, maximum: 100_000 }),
          'STREAMREC_STATE_MAX_EVENTS_PER_USER',
          "How many of a user's most recent events are kept.",
        ),
        maxSeenItemsPerUser: leaf(
          Type.Integer({ default: 5000, minimum: 1, maximum: 1_000_000 }),
          'STREAMREC_STATE_MAX_SEEN_ITEMS_PER_USER',
          'How many distinct items a user remembers having touched (for distinct-user counts and seen-item rules).',
        ),
        cacheEntries: leaf(
          Type.Integer({ default: 100_000, minimum: 0, maximum: 10_000_000 }),
          'STREAMREC_STATE_CACHE_ENTRIES',
          'Decoded users, item counts and co-occurrence lists kept in memory between batches, per partition and kind (LRU).',
        ),
        sessionTimeoutMs: leaf(
          Type.Integer({ default: 1_800_000, minimum: 1000 }),
          'STREAMREC_SESSION_TIMEOUT_MS',
          'A session ends after this long without events (when events carry no SESSION_ID).',
        ),
        trendingHalfLifeMs: leaf(
          Type.Integer({ default: 86_400_000, minimum: 1000 }),
          'STREAMREC_TRENDING_HALF_LIFE_MS',
          'Half-life of the time-decayed item counts (trending), in event time.',
        ),
        coOccurrenceWindow: leaf(
          Type.Integer({ default: 5, minimum: 1, maximum: 1000 }),
          'STREAMREC_CO_OCCURRENCE_WINDOW',
          "An event's item co-occurs with this many of the user's previous distinct items (SIMS).",
        ),
        coOccurrenceMaxPerItem: leaf(
          Type.Integer({ default: 200, minimum: 1, maximum: 100_000 }),
          'STREAMREC_CO_OCCURRENCE_MAX_PER_ITEM',
          'Co-occurring items kept per item: past a quarter more, the lowest counts are dropped (lossy counting).',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    processor: Type.Object(
      {
        instanceId: leaf(
          Type.String({ default: '', pattern: '^[A-Za-z0-9_.-]{0,100}$' }),
          'STREAMREC_INSTANCE_ID',
          'Names this instance in client ids and changelog barriers; empty: <hostname>-<pid>.',
        ),
        sessionTimeoutMs: leaf(
          Type.Integer({ default: 30_000, minimum: 6000, maximum: 300_000 }),
          'STREAMREC_PROCESSOR_SESSION_TIMEOUT_MS',
          'Consumer group session timeout: how soon a dead instance\'s partitions move to another.',
        ),
        rebalanceTimeoutMs: leaf(
          Type.Integer({ default: 60_000, minimum: 1000 }),
          'STREAMREC_PROCESSOR_REBALANCE_TIMEOUT_MS',
          'How long the group waits for members to rejoin during a rebalance.',
        ),
        maxBytesPerPartition: leaf(
          Type.Integer({ default: 4_194_304, minimum: 65_536 }),
          'STREAMREC_PROCESSOR_MAX_BYTES_PER_PARTITION',
          'Largest fetch per partition: bounds the size of one input batch.',
        ),
        partitionsConsumedConcurrently: leaf(
          Type.Integer({ default: 3, minimum: 1, maximum: 64 }),
          'STREAMREC_PROCESSOR_PARTITIONS_CONCURRENTLY',
          'How many owned partitions apply a batch at the same time (their I/O overlaps).',
        ),
        transactionTimeoutMs: leaf(
          Type.Integer({ default: 60_000, minimum: 1000 }),
          'STREAMREC_PROCESSOR_TRANSACTION_TIMEOUT_MS',
          'Kafka transaction timeout of the changelog producers.',
        ),
        lagRefreshMs: leaf(
          Type.Integer({ default: 5000, minimum: 200 }),
          'STREAMREC_PROCESSOR_LAG_REFRESH_MS',
          "How often the interactions topic's high watermarks are read from the broker (consumer lag, /ready); a lag whose watermark is older than 3 times this is unknown, and Kafka counts as unreachable.",
        ),
        hrnnStep: leaf(
          Type.Union([Type.Literal('auto'), Type.Literal('js'), Type.Literal('thread')], { default: 'auto' }),
          'STREAMREC_PROCESSOR_HRNN_STEP',
          "How a batch's HRNN steps are computed: auto, TensorFlow.js (native or wasm backend, several times faster; states equal the per-event steps to float32 rounding, about 1e-6) when such a backend loads, else JavaScript; thread, the same on a thread of its own while the processor's thread goes on with other partitions (auto if the thread fails); js, JavaScript loops, bit for bit the per-event steps whatever the batching.",
        ),
        standbyReplicas: leaf(
          Type.Integer({ default: 1, minimum: 0, maximum: 10 }),
          'STREAMREC_PROCESSOR_STANDBY_REPLICAS',
          "Warm copies of each partition's store kept on other instances, following the changelog (Kafka Streams' num.standby.replicas): a partition that moves to one replays only the tail. The count used is min(this, instances - 1); the group leader's value applies.",
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    training: Type.Object(
      {
        recipe: leaf(
          Type.Union([Type.Literal('hrnn'), Type.Literal('hrnn-metadata'), Type.Literal('hrnn-coldstart'), Type.Literal('sims'), Type.Literal('popularity-count'), Type.Literal('auto'), Type.Literal('none')], { default: 'hrnn' }),
          'STREAMREC_TRAINING_RECIPE',
          'The recipe the service retrains periodically from the interactions topic; auto: each training keeps the best candidate on a validation split of its training part (the version records the choice); none: no training in the service.',
        ),
        everyEvents: leaf(
          Type.Integer({ default: 100_000, minimum: 1 }),
          'STREAMREC_TRAINING_EVERY_EVENTS',
          'Retrain after this many new events (counted by the instance that trains: the owner of interactions partition 0).',
        ),
        everyMinutes: leaf(
          Type.Number({ default: 60, exclusiveMinimum: 0 }),
          'STREAMREC_TRAINING_EVERY_MINUTES',
          'Retrain after this many minutes when there are new events; also the first training, once the minimums are met.',
        ),
        maxEvents: leaf(
          Type.Integer({ default: 1_000_000, minimum: 1000 }),
          'STREAMREC_TRAINING_MAX_EVENTS',
          'Train on at most the latest this many events of the topic.',
        ),
        split: leaf(
          Type.Union([Type.Literal('personalize'), Type.Literal('loo'), Type.Literal('time')], { default: 'personalize' }),
          'STREAMREC_TRAINING_SPLIT',
          'The evaluation split of each new version (its metrics decide promotion).',
        ),
        promote: leaf(
          Type.Union([Type.Literal('if-not-worse'), Type.Literal('always'), Type.Literal('manual')], { default: 'if-not-worse' }),
          'STREAMREC_TRAINING_PROMOTE',
          'Serve a new version when its NDCG@10 is not worse than the served one (minus the tolerance), always, or only by `streamrec versions promote`.',
        ),
        promoteTolerance: leaf(
          Type.Number({ default: 0, minimum: 0, maximum: 1 }),
          'STREAMREC_TRAINING_PROMOTE_TOLERANCE',
          'How much lower a new version\'s NDCG@10 may be and still count as not worse.',
        ),
        params: leaf(
          Type.String({ default: '{}' }),
          'STREAMREC_TRAINING_PARAMS',
          'The recipe\'s parameters as a JSON object, e.g. {"epochs":5,"hiddenSize":64} (hrnn) — as `streamrec train --params`.',
        ),
        hpoBudget: leaf(
          Type.String({ default: '', pattern: '^(|\\d+(\\.\\d+)?( ?(ms|s|m|h))?)$' }),
          'STREAMREC_TRAINING_HPO_BUDGET',
          'Hyperparameter search before each periodic training, within this time (e.g. 20m, 90s; a bare number: seconds); empty: no search. Also the budget of a solution with performHPO and no hpoConfig.budget (else 10m). docs/tuning.md.',
        ),
        versionsDir: leaf(
          Type.String({ default: '' }),
          'STREAMREC_TRAINING_VERSIONS_DIR',
          'This instance\'s model versions folder (trained here or fetched from <group>.models); need not be shared between instances (a shared mount still works); empty: <state.dir>/<group>/versions.',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    shutdown: Type.Object(
      {
        graceMs: leaf(
          Type.Integer({ default: 20_000, minimum: 1000, maximum: 600_000 }),
          'STREAMREC_SHUTDOWN_GRACE_MS',
          'After SIGTERM or Ctrl-C, `streamrec start` stops in order (the batch in flight, the API, the processor, the broker it started) for at most this long, then exits anyway (code 1); a second signal exits at once. Keep it below your supervisor\'s kill timeout (Kubernetes: 30 s).',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    avro: Type.Object(
      {
        wireFormat: leaf(
          Type.Union([Type.Literal('plain'), Type.Literal('confluent')], { default: 'plain' }),
          'STREAMREC_AVRO_WIRE_FORMAT',
          'plain: Avro binary as is. confluent: magic byte 0 + 4-byte schema id + Avro binary.',
        ),
        confluentSchemaIds: leaf(
          Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { default: {} }),
          'STREAMREC_AVRO_CONFLUENT_SCHEMA_IDS',
          'Schema Registry ids of the schemas, as JSON: `{"Interaction":1,"Item":2,...}`; required with wireFormat confluent.',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
