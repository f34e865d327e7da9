/**
 * The inspection routes with two instances of a group: each lists both instances with the
 * partitions each owns (together every partition, once); a user's stored events asked of the
 * instance that does not own the user are forwarded to the owner and are the same; an item's group
 * counters on either instance are the sum of both instances' local ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs, type Interaction } from '../../src/serde/avro.js';
import { startService, type Service } from '../../src/stream/service.js';
import { silentLogger } from '../../src/util/log.js';
import { freshGroup, kafkaClients, rootHeaders, serviceEnv, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('inspect2');
const dirs = [mkdtempSync(join(tmpdir(), 'streamrec-inspect2-a-')), mkdtempSync(join(tmpdir(), 'streamrec-inspect2-b-'))];
const configs = dirs.map((d, i) => loadConfig({ env: serviceEnv(brokers, join(d, 'state'), { STREAMREC_INSTANCE_ID: `inspect2-${i}` }) }));
const codecs = createCodecs(configs[0]!);
const { admin, producer } = kafkaClients(createKafka(configs[0]!, [brokers], '-inspect2-test'));
const events: Interaction[] = [...syntheticInteractions({ seed: 5, users: 30, items: 40, events: 600, start: Date.now() - 4_000_000 })];
const services: Service[] = [];

interface InstancesBody {
  state: string;
  instances: { url: string; self: boolean; partitions: number[] }[];
}
const json = async <T>(url: string): Promise<{ status: number; body: T; answeredBy: string | null }> => {
  const res = await fetch(url, { headers: rootHeaders() });
  return { status: res.status, body: (await res.json()) as T, answeredBy: res.headers.get('x-streamrec-answered-by') };
};
const at = (s: Service, path: string) => `${s.url}/v1/groups/${group}${path}`;

beforeAll(async () => {
  await applyTopics(admin, group, configs[0]!);
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  for (const config of configs) services.push(await startService({ config, group, brokers: [brokers], log: silentLogger, apiLogger: false }));
  await until(
    'both instances own partitions, every event applied',
    async () => {
      const { body } = await json<InstancesBody>(at(services[0]!, '/instances'));
      const applied = services.reduce((n, s) => n + s.processor.status().applied, 0);
      return body.state === 'Stable' && body.instances.length === 2 && body.instances.every((i) => i.partitions.length > 0) && applied >= events.length && services.every((s) => s.processor.status().ready);
    },
    120_000,
  );
}, 180_000);

afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('inspection routes with two instances', () => {
  it('each lists both instances, itself marked, the partitions split between them', async () => {
    for (const s of services) {
      const { body } = await json<InstancesBody>(at(s, '/instances'));
      expect(body.instances.map((i) => i.url).sort()).toEqual(services.map((x) => x.url).sort());
      expect(body.instances.filter((i) => i.self).map((i) => i.url)).toEqual([s.url]);
      expect(body.instances.flatMap((i) => i.partitions).sort()).toEqual(Array.from({ length: configs[0]!.topics.partitions }, (_, p) => p));
      expect(body.instances.find((i) => i.self)!.partitions).toEqual(s.processor.status().partitions.map((p) => p.partition).sort());
    }
  });

  it("a user's stored events asked of the other instance are forwarded to the owner, the same answer", async () => {
    const users = [...new Set(events.map((e) => e.USER_ID))];
    let forwarded = 0;
    for (const user of users.slice(0, 10)) {
      const answers = await Promise.all(services.map((s) => json<{ total: number; events: unknown[] }>(at(s, `/users/${user}/events?limit=50`))));
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      expect(answers[0]!.body).toEqual(answers[1]!.body);
      expect(answers[0]!.body.total).toBe(events.filter((e) => e.USER_ID === user).length);
      forwarded += answers.filter((a) => a.answeredBy !== null).length;
    }
    expect(forwarded).toBe(10);
  });

  it("an item's group counters on either instance are the sum of both instances' local ones", async () => {
    const item = events[0]!.ITEM_ID;
    const local = await Promise.all(services.map((s) => json<{ activity: { users: number; events: number } }>(at(s, `/items/${item}?scope=local`))));
    const sum = local.reduce((n, a) => n + (a.status === 200 ? a.body.activity.events : 0), 0);
    expect(sum).toBe(events.filter((e) => e.ITEM_ID === item).length);
    for (const s of services) {
      const { body } = await json<{ activity: { users: number; events: number } }>(at(s, `/items/${item}`));
      expect(body.activity.events).toBe(sum);
      expect(body.activity.users).toBe(new Set(events.filter((e) => e.ITEM_ID === item).map((e) => e.USER_ID)).size);
    }
  });
});
