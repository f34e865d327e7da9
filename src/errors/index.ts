/**
 * The one table of error codes. Every error the project raises on purpose is an AppError with one of
 * these codes; the HTTP layer maps `status`, the CLI prints `message` and `fix`. docs/errors.md
 * lists the same table (a unit test keeps them in step, row for row).
 */
export const ERROR_CODES = {
  CONFIG_INVALID: {
    status: 500,
    retriable: false,
    fix: 'Correct the named key in the config file or its environment variable; `streamrec config` prints the effective config.',
  },
  CONFIG_FILE_UNREADABLE: {
    status: 500,
    retriable: false,
    fix: 'Point STREAMREC_CONFIG (or --config) at a readable JSON file.',
  },
  INVALID_ARGUMENT: {
    status: 400,
    retriable: false,
    fix: 'Check the named argument against `streamrec <command> --help`.',
  },
  INVALID_GROUP_NAME: {
    status: 400,
    retriable: false,
    fix: 'Use 1-60 characters from a-z, A-Z, 0-9, _ and - for a dataset group name.',
  },
  JAVA_NOT_FOUND: {
    status: 500,
    retriable: false,
    fix: 'Install Java 17+ and put `java` on PATH, or set JAVA_HOME; or set KAFKA_BROKERS to use an existing cluster.',
  },
  MAVEN_NOT_FOUND: {
    status: 500,
    retriable: false,
    fix: 'Install Maven (`mvn` on PATH) so the Kafka jars can be fetched once, or set KAFKA_BROKERS to use an existing cluster.',
  },
  KAFKA_JARS_FETCH_FAILED: {
    status: 500,
    retriable: true,
    fix: 'Check that Maven Central is reachable; the Maven output is quoted in the message.',
  },
  KAFKA_START_FAILED: {
    status: 500,
    retriable: true,
    fix: 'Read the broker log named in the message; a port in use can be changed with kafka.local.port.',
  },
  KAFKA_START_TIMEOUT: {
    status: 500,
    retriable: true,
    fix: 'Raise kafka.local.startTimeoutMs, or read the broker log named in the message.',
  },
  KAFKA_UNREACHABLE: {
    status: 503,
    retriable: true,
    fix: 'Check KAFKA_BROKERS (and the SSL/SASL settings), or unset it to use the local broker.',
  },
  INGEST_OVERLOADED: {
    status: 503,
    retriable: true,
    fix: 'Too many produce requests are waiting on Kafka (ingest.maxInFlight): retry after the seconds in the retry-after header; check the broker, or raise ingest.maxInFlight if Kafka is healthy.',
  },
  STORE_CLOSED: {
    status: 503,
    retriable: true,
    fix: "The partition's state is being moved or re-opened (a rebalance, or a restart after a broker outage): retry in a moment.",
  },
  PARTITION_MOVING: {
    status: 503,
    retriable: true,
    fix: "The user's partition has no live owner right now (an instance left and the group has not moved its partitions yet, or the new owner is restoring them): retry after the seconds in the retry-after header; a dead instance is noticed after processor.sessionTimeoutMs.",
  },
  STATE_LOCKED: {
    status: 500,
    retriable: false,
    fix: 'Another streamrec instance (or process) has this state folder open: stop it, or give this instance a state folder of its own (state.dir, STREAMREC_STATE_DIR).',
  },
  TOPIC_APPLY_FAILED: {
    status: 500,
    retriable: true,
    fix: 'Read the broker error quoted in the message; the topic definitions are in topics/topics.json.',
  },
  PARTITIONS_CHANGE_REFUSED: {
    status: 409,
    retriable: false,
    fix: 'A group with data keeps its partition count (more partitions would move users away from their state): keep topics.partitions at the count the topics have, or create a new dataset group with the new count and import the events into it again.',
  },
  RECORD_MISROUTED: {
    status: 500,
    retriable: false,
    fix: 'A record on <group>.interactions-repartition is in a partition that does not own its user: the topic must have as many partitions as <group>.interactions (streamrec topics create --group G reports both); only streamrec writes that topic.',
  },
  SCHEMA_NOT_FOUND: {
    status: 500,
    retriable: false,
    fix: 'The schema name or Confluent schema id is not known; check avro/ and avro.confluentSchemaIds.',
  },
  TRAINING_DATA_TOO_SMALL: {
    status: 400,
    retriable: false,
    fix: 'Bring at least 1,000 interactions and 25 users with 2 or more (after event-type and value filters), as Amazon Personalize requires.',
  },
  RECORD_INVALID: {
    status: 400,
    retriable: false,
    fix: 'Send a record that matches the named field of the Avro schema in avro/.',
  },
  RECORD_MALFORMED: {
    status: 400,
    retriable: false,
    fix: 'The bytes are not a record of the expected Avro schema (or wire format); check the producer.',
  },
  RECORD_TOO_LARGE: {
    status: 413,
    retriable: false,
    fix: 'Keep input records under ingest.maxRecordBytes (64 KiB by default), or raise it; the record is in the dead-letter topic.',
  },
  REQUEST_INVALID: {
    status: 400,
    retriable: false,
    fix: 'Correct the named field of the request; the request schemas are described in docs/api.md (HTTP ingestion).',
  },
  REQUEST_MALFORMED: {
    status: 400,
    retriable: false,
    fix: 'Send a well-formed JSON body (and a correct Content-Length).',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    retriable: false,
    fix: 'Send fewer records per request, or raise api.bodyLimitBytes.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retriable: false,
    fix: 'Send the body as JSON with Content-Type: application/json.',
  },
  NO_MODEL_VERSION: {
    status: 503,
    retriable: true,
    fix: 'No model version is served yet: wait for the first training (training.everyMinutes), or train and promote one (`streamrec versions train --group G`).',
  },
  VERSION_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'List the versions with `streamrec versions list --group G` (read from the group\'s versions and models topics); a version pruned from the models topic can no longer be served.',
  },
  SPLIT_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'The deployment has no traffic split: start one with POST /v1/groups/:g/deployments/default/split {arms: [{version, weight}, ...]} (docs/experiments.md).',
  },
  SPLIT_NO_WINNER: {
    status: 409,
    retriable: true,
    fix: 'No arm of the split is significantly better yet (the report says how many more impressions would tell): wait for more traffic, or promote with {force: true} (the best CTR) or {version} (docs/experiments.md).',
  },
  ONLINE_METRICS_UNAVAILABLE: {
    status: 409,
    retriable: false,
    fix: 'This service does not count online metrics for the group (attribution of events to recommendationIds): run a streamrec version that does; promote a split arm by {version} meanwhile.',
  },
  MODEL_TRANSFER_FAILED: {
    status: 500,
    retriable: true,
    fix: 'The version was not loaded and the previous one keeps serving; the reason is named (chunk-missing, checksum-mismatch, size-mismatch, manifest-mismatch, manifest-invalid, version-gone): check that nothing else writes <group>.models, then train and promote a new version.',
  },
  GROUP_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'Create the dataset group first (`streamrec topics create --group G`), or check the group name in the URL.',
  },
  FILTER_INVALID: {
    status: 400,
    retriable: false,
    fix: 'Correct the filter expression at the position named in the message (Personalize filter syntax: INCLUDE|EXCLUDE ItemID WHERE ...).',
  },
  FILTER_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'Create the filter first (POST /v1/groups/G/filters), or list the group\'s filters (GET /v1/groups/G/filters).',
  },
  FILTER_VALUES_INVALID: {
    status: 400,
    retriable: false,
    fix: 'Give every $PARAM of the filter in filterValues, as comma-separated quoted strings ("a","b") or numbers.',
  },
  ITEM_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'The item is not in the served version nor in the items topic; send it with PutItems or ask for another item.',
  },
  USER_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'The user has no events in this group; send events first, or leave the userId out.',
  },
  RESOURCE_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'Check the resource name in the URL against the list route (GET on the parent path).',
  },
  DELETION_NOT_COMPLETED: {
    status: 503,
    retriable: true,
    fix: 'The deletion job goes on: a running service of the group carries its commands out; follow it with `streamrec users deletion-job <id>` or GET /v1/groups/:group/deletion-jobs/:id.',
  },
  RESOURCE_EXISTS: {
    status: 409,
    retriable: false,
    fix: 'Choose another name, or delete the existing resource first.',
  },
  UNAUTHENTICATED: {
    status: 401,
    retriable: false,
    fix: 'Send an API key in the x-api-key header (or Authorization: Bearer KEY); keys are created with POST /v1/groups/G/api-keys.',
  },
  FORBIDDEN: {
    status: 403,
    retriable: false,
    fix: 'Use a key of this dataset group with the scope the route needs (ingest, query or admin).',
  },
  RATE_LIMITED: {
    status: 429,
    retriable: true,
    fix: 'Slow down: wait the seconds in the retry-after header, or raise api.rateLimitPerMinute (api.unauthenticatedPerMinute for requests refused with 401 or 403).',
  },
  FORWARD_FAILED: {
    status: 502,
    retriable: true,
    fix: 'The instance owning the user\'s partition did not answer; retry (ownership may be moving), and check that instances reach each other at api.advertisedUrl.',
  },
  ROUTE_NOT_FOUND: {
    status: 404,
    retriable: false,
    fix: 'Check the method and path against the routes listed in docs/api.md (HTTP ingestion, Serving).',
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    retriable: false,
    fix: 'Use one of the methods in the allow header for this path (the routes are listed in GET /openapi.json).',
  },
  RESOURCE_IN_USE: {
    status: 409,
    retriable: false,
    fix: 'The resource is in use and cannot be deleted now: stop the service that serves the dataset group first; the solution "default" is the configured training (change training.recipe instead).',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    retriable: true,
    fix: 'Send the whole request (headers and body) within api.requestTimeoutMs.',
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    retriable: false,
    fix: 'Keep the request line and headers under 16 KiB (a long query string counts): send long inputs in a JSON body (POST .../recommendations) instead.',
  },
  INTERNAL_ERROR: {
    status: 500,
    retriable: true,
    fix: 'An unexpected error; the server log has the details. Retry, and report it if it persists.',
  },
} as const satisfies Record<string, { status: number; retriable: boolean; fix: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface AppErrorOptions {
  /** The field (config key, record field, argument) the error is about. */
  field?: string;
  cause?: unknown;
  /** Overrides the table's retriable flag for this instance. */
  retriable?: boolean;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retriable: boolean;
  readonly fix: string;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    const entry = ERROR_CODES[code];
    this.status = entry.status;
    this.retriable = options.retriable ?? entry.retriable;
    this.fix = entry.fix;
    this.field = options.field;
  }

  toJSON(): { code: ErrorCode; message: string; field?: string } {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
}

/** Whether `code` is one of the table's codes (an answer from another instance, say). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

export function isAppError(err: unknown, code?: ErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}
