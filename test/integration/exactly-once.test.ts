/**
 * Exactly-once state: the same input applied by an uninterrupted processor and by one that is
 * SIGKILLed at random moments while the events stream in (and restarted each time) ends in the same
 * state, byte for byte, and the same dead letters, each once.
 *
 * A quarter of the users are misrouted: all their records are produced to an explicit partition
 * that does not own them (as a librdkafka producer's partitioner would put them), so the processor
 * forwards them through `<group>.interactions-repartition` inside its transactions: every forward
 * is committed exactly once (counted on the topic), and the state equals that of the same events
 * produced with murmur2 (every record in its user's partition). The digest is of the state, not of
 * the input offsets (src/state/digest.ts). The runs use a co-occurrence cap out of reach: past the
 * cap, partner lists are trimmed (lossy counting) at moments that depend on how users' records
 * interleave in a partition, which the repartition topic changes from run to run.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { prng, syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, parseSchema } from '../../src/serde/avro.js';
import { isAlive } from '../../src/util/process.js';
import { partitionOf } from '../../src/kafka/partition.js';
import { freshGroup, kafkaClients, readTopic, serviceEnv, startCli, stateDigest, stopChild, waitCaughtUp } from './helpers.js';
import { waitRepartitionApplied } from './repartition-helpers.js';

const brokers = inject('kafkaBrokers');
const config = loadConfig({ env: { KAFKA_BROKERS: brokers } });
const kafka = createKafka(config, [brokers], '-eos-test');
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(kafka);

const N = 24_000;
const P = config.topics.partitions;
type Msg = { key: string | null; value: Buffer; partition?: number };

/** A quarter of the users: produced to the partition after their own. */
const misrouted = (userId: string): boolean => partitionOf(userId, 4) === 0;

/** The input: synthetic events with a bad record every 997 (five kinds of bad); misrouted users' records to a wrong partition. */
function input(): { messages: Msg[]; bad: number; forwards: number } {
  const raw = parseSchema({ type: 'record', name: 'Interaction', namespace: 'streamrec', fields: [{ name: 'ITEM_ID', type: 'string' }] });
  const messages: Msg[] = [];
  let bad = 0;
  let n = 0;
  for (const e of syntheticInteractions({ seed: 11, users: 400, items: 3000, events: N })) {
    n++;
    if (n % 997 === 0) {
      bad++;
      const kind = bad % 5;
      if (kind === 0) messages.push({ key: e.USER_ID, value: Buffer.from('not avro at all') });
      else if (kind === 1) messages.push({ key: e.USER_ID, value: raw.toBuffer({ ITEM_ID: e.ITEM_ID }) }); // no USER_ID
      else if (kind === 2) messages.push({ key: e.USER_ID, value: codecs.Interaction.encode({ ...e, TIMESTAMP: Date.now() + 365 * 86_400_000 }) });
      else if (kind === 3) messages.push({ key: 'someone-else', value: codecs.Interaction.encode(e) });
      else messages.push({ key: e.USER_ID, value: Buffer.concat([codecs.Interaction.encode(e), Buffer.from([0])]) });
      continue;
    }
    messages.push({ key: e.USER_ID, value: codecs.Interaction.encode(e) });
  }
  let forwards = 0;
  for (const [i, m] of messages.entries()) {
    const userId = m.key === 'someone-else' ? null : m.key;
    if (userId === null || !misrouted(userId)) continue;
    m.partition = (partitionOf(userId, P) + 1) % P;
    if ((i + 1) % 997 !== 0) forwards++;
  }
  return { messages, bad, forwards };
}

const { messages, bad, forwards } = input();

async function produce(group: string, slice: Msg[]): Promise<void> {
  for (let i = 0; i < slice.length; i += 2000) {
    await producer.send({ topic: topicName(group, 'interactions'), messages: slice.slice(i, i + 2000) });
  }
}

const env = (stateDir: string, extra: NodeJS.ProcessEnv = {}) => serviceEnv(brokers, stateDir, { STREAMREC_CO_OCCURRENCE_MAX_PER_ITEM: '100000', ...extra });

async function digest(group: string, stateDir: string): Promise<{ digest: string; keys: number }> {
  const { digest: d, keys } = await stateDigest(group, env(stateDir));
  return { digest: d, keys };
}

async function deadLetterCount(group: string): Promise<Map<string, number>> {
  const records = await readTopic(kafka, topicName(group, 'dead-letter'), bad);
  const codes = new Map<string, number>();
  for (const r of records) {
    const code = r.headers?.['error-code']?.toString() ?? '?';
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  return codes;
}


describe('exactly-once state', () => {
  let reference: { digest: string; keys: number };
  let referenceDeadLetters: Map<string, number>;

  it('an uninterrupted run applies every event once and dead-letters every bad record once', async () => {
    const group = freshGroup('eos-ref');
    await applyTopics(admin, group, config);
    await produce(group, messages);
    const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-eos-ref-'));
    const { child } = await startCli(['start', '--group', group], env(stateDir), 'running;');
    await waitCaughtUp(admin, group);
    expect(forwards).toBeGreaterThan(3000);
    await waitRepartitionApplied(kafka, admin, group, forwards);
    await stopChild(child);
    reference = await digest(group, stateDir);
    expect(reference.keys).toBeGreaterThan(1000);
    referenceDeadLetters = await deadLetterCount(group);
    expect([...referenceDeadLetters.values()].reduce((a, b) => a + b, 0)).toBe(bad);
    expect(referenceDeadLetters.get('RECORD_MALFORMED')).toBeGreaterThan(0);
    expect(referenceDeadLetters.get('RECORD_INVALID')).toBeGreaterThan(0);
  });

  it('the same events produced with murmur2 (no record misrouted) end in the same state, with nothing forwarded', async () => {
    const group = freshGroup('eos-murmur2');
    await applyTopics(admin, group, config);
    await produce(
      group,
      messages.map(({ key, value }) => ({ key, value })),
    );
    const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-eos-murmur2-'));
    const { child } = await startCli(['start', '--group', group], env(stateDir), 'running;');
    await waitCaughtUp(admin, group);
    await stopChild(child);
    expect(await digest(group, stateDir)).toEqual(reference);
    const ends = await admin.fetchTopicOffsets(topicName(group, 'interactions-repartition'));
    expect(ends.reduce((n, e) => n + Number(e.high), 0)).toBe(0);
  });

  it('a run SIGKILLed at random moments while events stream in ends in the same state, several times over', async () => {
    const rand = prng(Date.now() % 100_000);
    // Each round: kills at random moments while batches are being applied, and at the narrowest
    // windows (between the changelog transaction and the RocksDB write; between the RocksDB write
    // and the offset commit).
    const crashes = [undefined, 'after-changelog-commit:1', undefined, 'after-state-write:1', undefined];
    const parts = [0.3, 0.45, 0.6, 0.7, 0.8, 0.9, 1].map((f) => Math.floor(f * messages.length));
    for (let round = 0; round < 2; round++) {
      const group = freshGroup(`eos-kill${round}`);
      await applyTopics(admin, group, config);
      const stateDir = mkdtempSync(join(tmpdir(), 'streamrec-eos-kill-'));
      await produce(group, messages.slice(0, parts[0]));
      for (const [i, failpoint] of crashes.entries()) {
        const t0 = Date.now();
        const childEnv = env(stateDir, { STREAMREC_LOG_LEVEL: 'debug', STREAMREC_FAILPOINT: failpoint ?? '' });
        const { child, output } = await startCli(['start', '--group', group], childEnv, 'running;');
        const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
        // More events stream in while it runs.
        const streaming = produce(group, messages.slice(parts[i], parts[i + 1]));
        if (failpoint) {
          const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
          expect(await exited).toBe('SIGKILL');
          clearTimeout(timer);
          expect(output(), `${failpoint} in round ${round}`).toContain(`failpoint ${failpoint} reached`);
        } else {
          // Kill it while it applies batches: once it has restored its partitions and applied some.
          const deadline = Date.now() + 60_000;
          while (!output().includes('"batch applied"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          await new Promise((r) => setTimeout(r, rand() * 400));
          expect(isAlive(child.pid!)).toBe(true);
          child.kill('SIGKILL');
          expect(await exited).toBe('SIGKILL');
        }
        await streaming;
        const applied = output().split('"batch applied"').length - 1;
        console.log(`round ${round}: ${failpoint ?? 'random kill'} after ${Date.now() - t0} ms, ${applied} batches applied`);
      }
      await produce(group, messages.slice(parts[crashes.length]));
      const t1 = Date.now();
      const { child } = await startCli(['start', '--group', group], env(stateDir), 'running;');
      await waitCaughtUp(admin, group);
      // Every forward committed once, whatever was aborted by the kills.
      await waitRepartitionApplied(kafka, admin, group, forwards);
      await stopChild(child);
      console.log(`round ${round}: final run ${Date.now() - t1} ms`);
      expect(await digest(group, stateDir), `round ${round}`).toEqual(reference);
      expect(await deadLetterCount(group), `round ${round}`).toEqual(referenceDeadLetters);
    }
  }, 600_000);
});
