import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configKeys, loadConfig } from '../../src/config/index.js';
import { AppError, ERROR_CODES } from '../../src/errors/index.js';

function configError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toMatch(/^CONFIG_/);
    return err as AppError;
  }
  throw new Error('expected a config error');
}

const writeJson = (value: unknown): string => {
  const file = join(mkdtempSync(join(tmpdir(), 'streamrec-config-')), 'config.json');
  writeFileSync(file, JSON.stringify(value));
  return file;
};

describe('config', () => {
  it('has a default for every key, and the defaults validate', () => {
    const c = loadConfig({ env: {} });
    expect(c.group).toBe('demo');
    expect(c.kafka.brokers).toEqual([]);
    expect(c.kafka.local.version).toBe('3.9.1');
    expect(c.topics.partitions).toBe(3);
    expect(configKeys().every((k) => k.default !== undefined && k.description.length > 10)).toBe(true);
  });

  it('layers defaults < file < env < overrides', () => {
    const file = writeJson({ group: 'from-file', topics: { partitions: 5 }, kafka: { local: { heapMaxMb: 2048 } } });
    const fromFile = loadConfig({ file, env: {} });
    expect([fromFile.group, fromFile.topics.partitions, fromFile.kafka.local.heapMaxMb, fromFile.kafka.local.heapMinMb]).toEqual([
      'from-file',
      5,
      2048,
      512,
    ]);
    const fromEnv = loadConfig({ file, env: { STREAMREC_GROUP: 'from-env', KAFKA_BROKERS: 'k1:9092, k2:9093' } });
    expect(fromEnv.group).toBe('from-env');
    expect(fromEnv.kafka.brokers).toEqual(['k1:9092', 'k2:9093']);
    expect(fromEnv.topics.partitions).toBe(5);
    const over = loadConfig({ file, env: { STREAMREC_GROUP: 'from-env' }, overrides: { group: 'from-flag' } });
    expect(over.group).toBe('from-flag');
  });

  it('reads STREAMREC_CONFIG when no file is given', () => {
    const file = writeJson({ topics: { partitions: 7 } });
    expect(loadConfig({ env: { STREAMREC_CONFIG: file } }).topics.partitions).toBe(7);
  });

  it('is frozen', () => {
    const c = loadConfig({ env: {} });
    expect(Object.isFrozen(c.kafka.local)).toBe(true);
    expect(() => {
      (c.kafka.local as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('names the key and the environment variable of a bad value', () => {
    const err = configError(() => loadConfig({ env: { STREAMREC_KAFKA_PORT: 'ninety' } }));
    expect(err.field).toBe('kafka.local.port');
    expect(err.message).toMatch(/STREAMREC_KAFKA_PORT/);
    expect(err.message).toMatch(/integer/);
    const range = configError(() => loadConfig({ env: { STREAMREC_KAFKA_PORT: '70000' } }));
    expect(range.field).toBe('kafka.local.port');
    expect(range.message).toMatch(/70000/);
    const broker = configError(() => loadConfig({ env: { KAFKA_BROKERS: 'localhost' } }));
    expect(broker.field).toBe('kafka.brokers.0');
    const group = configError(() => loadConfig({ env: { STREAMREC_GROUP: 'has.dot' } }));
    expect(group.field).toBe('group');
  });

  it('refuses unknown keys in the file, naming them', () => {
    const err = configError(() => loadConfig({ file: writeJson({ kafka: { lokal: {} } }), env: {} }));
    expect(err.message).toMatch(/lokal/);
  });

  it('says which file could not be read', () => {
    const missing = join(tmpdir(), 'no-such-streamrec-config.json');
    const err = configError(() => loadConfig({ file: missing, env: {} }));
    expect(err.code).toBe('CONFIG_FILE_UNREADABLE');
    expect(err.message).toContain(missing);
  });

  it('checks cross-field rules with a fix in the message', () => {
    expect(configError(() => loadConfig({ env: { STREAMREC_KAFKA_HEAP_MIN_MB: '2048' } })).field).toBe('kafka.local.heapMinMb');
    const sasl = configError(() => loadConfig({ env: { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u' } }));
    expect(sasl.field).toBe('kafka.sasl.mechanism');
    expect(sasl.message).toMatch(/KAFKA_BROKERS/);
    const noUser = configError(() => loadConfig({ env: { KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_BROKERS: 'k:9092' } }));
    expect(noUser.field).toBe('kafka.sasl.username');
    const confluent = configError(() => loadConfig({ env: { STREAMREC_AVRO_WIRE_FORMAT: 'confluent', STREAMREC_AVRO_CONFLUENT_SCHEMA_IDS: '{"Interaction":1}' } }));
    expect(confluent.message).toMatch(/no id for Item/);
    const ports = configError(() => loadConfig({ env: { STREAMREC_KAFKA_PORT: '9092', STREAMREC_KAFKA_CONTROLLER_PORT: '9092' } }));
    expect(ports.field).toBe('kafka.local.controllerPort');
  });

  it('accepts a SASL/TLS cluster when it is complete', () => {
    const c = loadConfig({ env: { KAFKA_BROKERS: 'k:9093', KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' } });
    expect(c.kafka.ssl).toBe(true);
    expect(c.kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'u', password: 'p' });
  });
});

/**
 * The rows of the Markdown table under `header` (a line such as `| key | ... |`), keyed by the first
 * cell with its backticks removed; the separator row is skipped and the table ends at the first line
 * that is not a row.
 */
function tableRows(markdown: string, header: string): Map<string, string> {
  const lines = markdown.split('\n');
  const start = lines.indexOf(header);
  expect(start, `no table with the header ${header}`).toBeGreaterThanOrEqual(0);
  const rows = new Map<string, string>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const first = /^\| `([^`]+)` \|/.exec(line)?.[1];
    expect(first, `a row without a \`name\` in its first cell: ${line}`).toBeDefined();
    expect(rows.has(first!), `${first} has two rows`).toBe(false);
    rows.set(first!, line);
  }
  return rows;
}

/** A table cell's text: a `|` inside a cell would start a new column, so it is escaped. */
const cell = (text: string): string => text.replaceAll('|', '\\|');

// The reference tables live in docs/ (README.md links to them); they are checked row for row against
// the sources, so a key or code cannot be added, changed or dropped without its documentation.
describe('docs', () => {
  const read = (page: string): string => readFileSync(new URL(`../../docs/${page}`, import.meta.url), 'utf8');

  it('docs/configuration.md has one row per config key: its variable, default and meaning', () => {
    const rows = tableRows(read('configuration.md'), '| key | environment variable | default | meaning |');
    const keys = configKeys();
    expect([...rows.keys()].sort(), 'the keys of the table in docs/configuration.md (`npx streamrec config --keys --markdown` prints the table)').toEqual(
      keys.map((k) => k.key).sort(),
    );
    for (const k of keys) {
      const row = `| \`${k.key}\` | \`${k.env}\` | \`${cell(JSON.stringify(k.default))}\` | ${cell(k.description)} |`;
      expect(rows.get(k.key), `docs/configuration.md: the row of ${k.key}`).toBe(row);
    }
  });

  it('docs/errors.md has one row per error code: its status and fix', () => {
    const rows = tableRows(read('errors.md'), '| code | status | fix |');
    expect([...rows.keys()].sort(), 'the codes of the table in docs/errors.md').toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, { status, fix }] of Object.entries(ERROR_CODES)) {
      expect(rows.get(code), `docs/errors.md: the row of ${code}`).toBe(`| \`${code}\` | ${status} | ${cell(fix)} |`);
    }
  });
});
