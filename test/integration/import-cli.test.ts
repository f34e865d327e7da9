/**
 * `streamrec import`: files as they are, into a group's topics (real broker) or an offline folder
 * that `streamrec train --data` reads; rejected rows go to a rejects file with line numbers.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createKafka } from '../../src/kafka/client.js';
import { topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { freshGroup, readTopic, runCli } from './helpers.js';

const brokers = inject('kafkaBrokers');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-import-cli-'));

describe('streamrec import', () => {
  it('produces interactions and items as Avro to the group topics, keyed by id, and reports the rejected rows', async () => {
    const group = freshGroup('import');
    const interactions = join(dir, 'reviews.tsv');
    writeFileSync(
      interactions,
      ['reviewerID\tasin\tunixReviewTime\toverall', 'r1\ta1\t1700000000\t5', 'r2\ta1\t2024-01-02T03:04:05Z\t4', 'r1\ta2\tyesterday\t3', 'r3\ta3\t1700000000123\t2'].join('\n'),
    );
    const items = join(dir, 'items.csv');
    writeFileSync(items, ['asin,price,categories', 'a1,9.99,Guitars|Strings', 'a2,120,Amps'].join('\n'));
    const out = await runCli(
      ['import', '--group', group, '--interactions', interactions, '--map', 'USER_ID=reviewerID,ITEM_ID=asin,TIMESTAMP=unixReviewTime', '--items', items, '--items-map', 'ITEM_ID=asin', '--rejects', dir],
      { KAFKA_BROKERS: brokers },
      60_000,
    );
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`interactions: 3 imported to ${group}\\.interactions, 1 rejected`));
    expect(out.stdout).toMatch(/items: 2 imported/);
    const rejects = readFileSync(join(dir, 'rejects-interactions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: number; field: string });
    expect(rejects).toEqual([expect.objectContaining({ line: 4, field: 'TIMESTAMP' })]);

    const kafka = createKafka(loadConfig({ env: { KAFKA_BROKERS: brokers } }), [brokers], '-import-test');
    const codecs = createCodecs(loadConfig({ env: {} }));
    const records = await readTopic(kafka, topicName(group, 'interactions'), 3);
    const decoded = records.map((r) => ({ key: r.key!.toString(), e: codecs.Interaction.decode(r.value!) }));
    expect(decoded.every((d) => d.key === d.e.USER_ID)).toBe(true);
    expect(decoded.map((d) => d.e.TIMESTAMP).sort()).toEqual([1_700_000_000_000, 1_700_000_000_123, Date.UTC(2024, 0, 2, 3, 4, 5)]);
    expect(decoded.find((d) => d.e.USER_ID === 'r2')!.e.CONTEXT).toEqual({ overall: '4' });
    const itemRecords = await readTopic(kafka, topicName(group, 'items'), 2);
    const a1 = itemRecords.map((r) => codecs.Item.decode(r.value!)).find((i) => i.ITEM_ID === 'a1')!;
    expect(a1.METADATA).toEqual({ price: 9.99, categories: ['Guitars', 'Strings'] });
  });

  it('writes an offline dataset that train --data reads', async () => {
    const csv = join(dir, 'clicks.csv');
    expect((await runCli(['generate', '-o', csv, '-n', '5000', '--users', '200', '--items', '300'])).code).toBe(0);
    const offline = join(dir, 'dataset');
    const imp = await runCli(['import', '--interactions', csv, '--offline', offline]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toMatch(/interactions: 5000 imported/);
    const train = await runCli(['train', '--data', offline, '-r', 'sims', '--split', 'loo', '--json']);
    expect(train.code, train.stderr).toBe(0);
    expect((JSON.parse(train.stdout) as { interactions: number }).interactions).toBe(5000);
  });
});
