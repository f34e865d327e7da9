import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AppError } from '../errors/index.js';
import { ConfigSchema, type Config } from './schema.js';

export { ConfigSchema, type Config } from './schema.js';

export interface ConfigKey {
  /** Dotted path, e.g. `kafka.local.port`. */
  key: string;
  env: string;
  description: string;
  default: unknown;
  schema: TSchema;
}

/** Every documented key, in schema order. */
export function configKeys(): ConfigKey[] {
  const out: ConfigKey[] = [];
  const walk = (schema: TSchema, path: string[]): void => {
    if (typeof schema.env === 'string') {
      out.push({ key: path.join('.'), env: schema.env, description: String(schema.description ?? ''), default: schema.default, schema });
      return;
    }
    for (const [name, child] of Object.entries((schema.properties ?? {}) as Record<string, TSchema>)) walk(child, [...path, name]);
  };
  walk(ConfigSchema, []);
  return out;
}

export interface LoadConfigOptions {
  /** A JSON config file; defaults to STREAMREC_CONFIG when set. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Highest precedence (CLI flags), as dotted keys. */
  overrides?: Record<string, unknown>;
}

/** defaults < file < env < overrides; validated, cross-checked, paths resolved, deeply frozen. */
export function loadConfig(options: LoadConfigOptions = {}): Readonly<Config> {
  const env = options.env ?? process.env;
  const keys = configKeys();
  const config: Record<string, unknown> = {};
  for (const k of keys) setPath(config, k.key, structuredClone(k.default));

  const file = options.file ?? (env.STREAMREC_CONFIG || undefined);
  if (file !== undefined) mergeFile(config, file);

  for (const k of keys) {
    const raw = env[k.env];
    if (raw === undefined || raw === '') continue;
    setPath(config, k.key, parseEnv(k, raw));
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    if (!keys.some((k) => k.key === key)) throw new AppError('CONFIG_INVALID', `unknown config key "${key}"`, { field: key });
    setPath(config, key, value);
  }

  const first = Value.Errors(ConfigSchema, config).First();
  if (first !== undefined) {
    const key = first.path.replace(/^\//, '').split('/').filter(Boolean).join('.') || '(root)';
    const k = keys.find((c) => key === c.key || key.startsWith(`${c.key}.`));
    const where = k ? ` (env ${k.env})` : '';
    const got = first.value === undefined ? 'nothing' : JSON.stringify(first.value);
    const hint = k ? ` ${k.description}` : ' Unknown keys are refused; see docs/configuration.md.';
    throw new AppError('CONFIG_INVALID', `config key "${key}"${where}: ${first.message}, got ${got}.${hint}`, { field: key });
  }
  const typed = config as Config;
  crossCheck(typed);
  typed.kafka.local.dataDir = expandPath(typed.kafka.local.dataDir);
  typed.kafka.local.cacheDir = expandPath(typed.kafka.local.cacheDir);
  typed.state.dir = expandPath(typed.state.dir);
  return deepFreeze(typed);
}

function crossCheck(c: Config): void {
  const fail = (key: string, message: string): never => {
    throw new AppError('CONFIG_INVALID', `config key "${key}": ${message}`, { field: key });
  };
  if (c.kafka.local.heapMinMb > c.kafka.local.heapMaxMb) {
    fail('kafka.local.heapMinMb', `is ${c.kafka.local.heapMinMb}, above kafka.local.heapMaxMb (${c.kafka.local.heapMaxMb}); lower it or raise the maximum.`);
  }
  if (c.kafka.local.port !== 0 && c.kafka.local.port === c.kafka.local.controllerPort) {
    fail('kafka.local.controllerPort', 'must differ from kafka.local.port (or be 0 to pick a free one).');
  }
  if (c.kafka.sasl.mechanism !== 'none') {
    if (c.kafka.brokers.length === 0) fail('kafka.sasl.mechanism', 'SASL applies to an existing cluster: set KAFKA_BROKERS too, or set the mechanism to none.');
    if (c.kafka.sasl.username === '') fail('kafka.sasl.username', `is required with SASL mechanism ${c.kafka.sasl.mechanism} (env KAFKA_SASL_USERNAME).`);
  }
  if (c.kafka.ssl && c.kafka.brokers.length === 0) {
    fail('kafka.ssl', 'TLS applies to an existing cluster: set KAFKA_BROKERS too, or turn ssl off (the local broker is PLAINTEXT on 127.0.0.1).');
  }
  if (c.avro.wireFormat === 'confluent') {
    for (const name of ['Interaction', 'Item', 'User', 'Recommendation', 'DeadLetter']) {
      if (c.avro.confluentSchemaIds[name] === undefined) {
        fail('avro.confluentSchemaIds', `has no id for ${name}; the confluent wire format needs the registry id of every schema.`);
      }
    }
  }
}

function mergeFile(config: Record<string, unknown>, file: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new AppError('CONFIG_FILE_UNREADABLE', `config file ${file}: ${(err as Error).message}`, { cause: err, field: 'STREAMREC_CONFIG' });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new AppError('CONFIG_FILE_UNREADABLE', `config file ${file}: expected a JSON object at the top level`, { field: 'STREAMREC_CONFIG' });
  }
  const leaves = new Set(configKeys().map((k) => k.key));
  deepMerge(config, parsed as Record<string, unknown>, leaves, '');
}

/** Sections merge key by key; a leaf (even an object-valued one) is replaced by the file's value. */
function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>, leaves: Set<string>, prefix: string): void {
  for (const [k, v] of Object.entries(source)) {
    const path = prefix + k;
    const t = target[k];
    if (!leaves.has(path) && isPlainObject(v) && isPlainObject(t)) deepMerge(t, v, leaves, `${path}.`);
    else target[k] = v;
  }
}
const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function parseEnv(k: ConfigKey, raw: string): unknown {
  const type = k.schema.type ?? (k.schema.anyOf ? 'string' : undefined);
  const bad = (expected: string): never => {
    throw new AppError('CONFIG_INVALID', `env ${k.env} (config key "${k.key}"): expected ${expected}, got ${JSON.stringify(raw)}. ${k.description}`, {
      field: k.key,
    });
  };
  switch (type) {
    case 'integer':
      return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : bad('an integer');
    case 'number': {
      const n = Number(raw.trim());
      return raw.trim() !== '' && Number.isFinite(n) ? n : bad('a number');
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['true', '1', 'yes'].includes(v)) return true;
      if (['false', '0', 'no'].includes(v)) return false;
      return bad('true or false');
    }
    case 'array':
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
    case 'object':
      try {
        return JSON.parse(raw);
      } catch {
        return bad('a JSON object');
      }
    default:
      return raw;
  }
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!isPlainObject(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

/** The config as it may be shown (`streamrec config`): secrets (the SASL password, the root API key) as `***` when set. */
export function redactConfig(c: Readonly<Config>): Config {
  const mask = (v: string): string => (v ? '***' : '');
  return {
    ...c,
    kafka: { ...c.kafka, sasl: { ...c.kafka.sasl, password: mask(c.kafka.sasl.password) } },
    api: { ...c.api, rootKey: mask(c.api.rootKey) },
  } as Config;
}

/** `~/x` -> home; relative paths are taken from the working directory. */
export function expandPath(p: string): string {
  if (p === '~' || p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return resolve(p);
}

function deepFreeze<T>(o: T): Readonly<T> {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
