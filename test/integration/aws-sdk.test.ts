/**
 * The official AWS SDK clients (@aws-sdk/client-personalize-runtime and -events, and boto3 from a
 * script) against a real service at the Personalize-compatible endpoint `/personalize/<group>`,
 * with SigV4 credentials issued for the group's API keys: GetRecommendations,
 * GetPersonalizedRanking, PutEvents, PutItems, PutUsers answered in Personalize's shapes, and the
 * refusals (wrong signature, expired date, another group's key, a missing scope) in the SDKs'
 * error shapes.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GetPersonalizedRankingCommand, GetRecommendationsCommand, PersonalizeRuntimeClient } from '@aws-sdk/client-personalize-runtime';
import { PersonalizeEventsClient, PutEventsCommand, PutItemsCommand, PutUsersCommand } from '@aws-sdk/client-personalize-events';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions, syntheticItems } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import type { Producer } from '../../src/kafka/kafkajs.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { startService, type Service } from '../../src/stream/service.js';
import { silentLogger } from '../../src/util/log.js';
import { freshGroup, rootHeaders, serviceEnv, until } from './helpers.js';

const brokers = inject('kafkaBrokers');
const group = freshGroup('awssdk');
const other = freshGroup('awsother');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-awssdk-'));
const config = loadConfig({
  env: serviceEnv(brokers, join(dir, 'state'), {
    STREAMREC_TRAINING_RECIPE: 'sims',
    STREAMREC_TRAINING_SPLIT: 'loo',
    STREAMREC_TRAINING_VERSIONS_DIR: join(dir, 'versions'),
    STREAMREC_INSTANCE_ID: 'awssdk-1',
  }),
});
const kafka = createKafka(config, [brokers], '-awssdk-test');
const codecs = createCodecs(config);
const NOW = Date.now();
const CAMPAIGN = 'arn:aws:personalize:us-east-1:123456789012:campaign/my-campaign';
const arn = (type: string, name: string) => `arn:aws:personalize:us-east-1:123456789012:${type}/${name}`;
const PYTHON = join(process.cwd(), 'test/tools/.venv/bin/python');

let producer: Producer;
let service: Service;
interface Creds {
  accessKeyId: string;
  secretAccessKey: string;
  endpointPath: string;
}
let rw: Creds;
let reader: Creds;
let otherKey: Creds;
const categoryOf = new Map<string, string>();

const post = (path: string, body: unknown) =>
  fetch(`${service.url}${path}`, { method: 'POST', headers: { ...rootHeaders(), 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** A key of `g` with these scopes, and its SigV4 credentials from the service. */
async function credentials(g: string, scopes: string[]): Promise<Creds> {
  const created = await post(`/v1/groups/${g}/api-keys`, { name: `k-${scopes.join('-')}`, scopes });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const res = await fetch(`${service.url}/v1/groups/${g}/api-keys/${id}/aws-credentials`, { headers: rootHeaders() });
  expect(res.status).toBe(200);
  return (await res.json()) as Creds;
}

const clientConfig = (c: Creds, g = group, extra: Record<string, unknown> = {}) => ({
  endpoint: `${service.url}/personalize/${g}`,
  region: 'us-east-1',
  credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
  maxAttempts: 1,
  ...extra,
});
const runtime = (c: Creds, g = group, extra: Record<string, unknown> = {}) => new PersonalizeRuntimeClient(clientConfig(c, g, extra));
const events = (c: Creds, g = group, extra: Record<string, unknown> = {}) => new PersonalizeEventsClient(clientConfig(c, g, extra));

/** The SDK's error for a call: its name (from x-amzn-errortype), status and message. */
async function refusal(p: Promise<unknown>): Promise<{ name: string; status: number | undefined; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error('the call was not refused');
}

beforeAll(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await applyTopics(admin, group, config);
  await applyTopics(admin, other, config);
  await admin.disconnect();
  producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const items = [...syntheticItems({ seed: 7, items: 200 })];
  for (const i of items) categoryOf.set(i.ITEM_ID, String(i.METADATA.CATEGORY));
  const evs = [...syntheticInteractions({ seed: 7, users: 150, items: 200, events: 4000, start: NOW - 4_000_000 })];
  await producer.send({ topic: topicName(group, 'items'), messages: items.map((i) => ({ key: i.ITEM_ID, value: codecs.Item.encode(i) })) });
  await producer.send({ topic: topicName(group, 'interactions'), messages: evs.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  service = await startService({ config, group, brokers: [brokers], log: silentLogger, apiLogger: false });
  await until('all events applied', () => service.processor.status().applied >= 4000, 120_000);
  await until('a version served', () => service.serving.current !== undefined, 120_000);
  expect((await post(`/v1/groups/${group}/filters`, { name: 'by-category', filterExpression: 'INCLUDE ItemID WHERE Items.CATEGORY IN ($CAT)' })).status).toBe(201);
  rw = await credentials(group, ['query', 'ingest']);
  reader = await credentials(group, ['query']);
  otherKey = await credentials(group, ['query', 'ingest']);
}, 240_000);

afterAll(async () => {
  await service?.stop();
  await producer?.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

describe('the official AWS SDKs against /personalize/<group>', () => {
  it('GetRecommendations: the same list as the native route, in Personalize\'s shape; filterArn and metadataColumns', async () => {
    const native = (await (await fetch(`${service.url}/v1/groups/${group}/recommendations?userId=u5&numResults=10`, { headers: rootHeaders() })).json()) as { itemList: { itemId: string; score?: number }[] };
    const out = await runtime(rw).send(new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u5', numResults: 10, context: { DEVICE: 'phone' } }));
    expect(out.recommendationId).toMatch(/.+/);
    expect(out.itemList!.map((i) => i.itemId)).toEqual(native.itemList.map((i) => i.itemId));
    expect(out.itemList!.map((i) => i.score)).toEqual(native.itemList.map((i) => i.score));
    for (const i of out.itemList!) if (i.reason !== undefined) expect(Array.isArray(i.reason)).toBe(true);

    const music = await runtime(reader).send(
      new GetRecommendationsCommand({
        campaignArn: CAMPAIGN,
        userId: 'u5',
        numResults: 5,
        filterArn: arn('filter', 'by-category'),
        filterValues: { CAT: '"music"' },
        metadataColumns: { ITEMS: ['category', 'PRICE'] },
      }),
    );
    expect(music.itemList!.length).toBe(5);
    for (const i of music.itemList!) {
      expect(categoryOf.get(i.itemId!)).toBe('music');
      expect(i.metadata?.category).toBe('music');
      expect(Number(i.metadata?.PRICE)).toBeGreaterThan(0);
    }

    // A recommenderArn names the deployment too; an itemId without a userId: related items.
    const related = await runtime(rw).send(new GetRecommendationsCommand({ recommenderArn: arn('recommender', 'r1'), itemId: 'i3', numResults: 4 }));
    const nativeRelated = (await (await fetch(`${service.url}/v1/groups/${group}/related-items?itemId=i3&numResults=4`, { headers: rootHeaders() })).json()) as { itemList: { itemId: string }[] };
    expect(related.itemList!.map((i) => i.itemId)).toEqual(nativeRelated.itemList.map((i) => i.itemId));

    // Promotions: the promoted items carry the promotion's name.
    const promoted = await runtime(rw).send(
      new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u6', numResults: 10, promotions: [{ name: 'games-push', percentPromotedItems: 30, filterArn: arn('filter', 'by-category'), filterValues: { CAT: '"games"' } }] }),
    );
    const named = promoted.itemList!.filter((i) => i.promotionName === 'games-push');
    expect(named.length).toBe(3);
    for (const i of named) {
      expect(categoryOf.get(i.itemId!)).toBe('games');
      expect(i.reason).toEqual(['promotion']);
    }
  });

  it('GetPersonalizedRanking answers personalizedRanking: the native order, unknown items last with reason ["not-in-model"]', async () => {
    const inputList = ['i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'nope-1'];
    const native = (await (await post(`/v1/groups/${group}/personalized-ranking`, { userId: 'u9', inputList })).json()) as { itemList: { itemId: string }[] };
    const out = await runtime(reader).send(new GetPersonalizedRankingCommand({ campaignArn: CAMPAIGN, userId: 'u9', inputList }));
    expect(out.personalizedRanking!.map((i) => i.itemId)).toEqual(native.itemList.map((i) => i.itemId));
    expect(out.personalizedRanking!.at(-1)).toMatchObject({ itemId: 'nope-1', reason: ['not-in-model'] });
    expect(out.recommendationId).toMatch(/.+/);
  });

  it('PutEvents, PutItems, PutUsers reach the group: the user\'s state, the item\'s metadata (camelCase keys, | lists)', async () => {
    const sentAt = new Date();
    await events(rw).send(
      new PutEventsCommand({
        trackingId: 'tracking-1',
        userId: 'sdk-user',
        sessionId: 's-1',
        eventList: [
          { eventType: 'click', itemId: 'i10', sentAt, eventId: 'e1', eventValue: 2.5, properties: JSON.stringify({ deviceType: 'phone' }), impression: ['i10', 'i11'], recommendationId: 'r-1', metricAttribution: { eventAttributionSource: 'email' } },
        ],
      }),
    );
    await events(rw).send(
      new PutItemsCommand({ datasetArn: arn('dataset', 'my-group/ITEMS'), items: [{ itemId: 'sdk-item', properties: JSON.stringify({ category: 'music', tags: 'a|b', price: 9.5 }) }] }),
    );
    await events(rw).send(new PutUsersCommand({ datasetArn: arn('dataset', 'my-group/USERS'), users: [{ userId: 'sdk-user', properties: JSON.stringify({ membershipLevel: 'gold' }) }] }));
    // The user now has a list (unknown users are USER_NOT_FOUND) whose history holds the event.
    await until('the event applied', async () => (await fetch(`${service.url}/v1/groups/${group}/recommendations?userId=sdk-user`, { headers: rootHeaders() })).status === 200, 20_000);
    const consumer = kafka.consumer({ groupId: `${group}-check` });
    const seen: Record<string, unknown>[] = [];
    await consumer.connect();
    await consumer.subscribe({ topics: [topicName(group, 'interactions'), topicName(group, 'items'), topicName(group, 'users')], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        const key = message.key?.toString();
        if (key !== 'sdk-user' && key !== 'sdk-item') return;
        const kind = topic.slice(group.length + 1) as 'interactions' | 'items' | 'users';
        const codec = kind === 'interactions' ? codecs.Interaction : kind === 'items' ? codecs.Item : codecs.User;
        seen.push({ kind, ...(codec.decode(message.value!) as unknown as Record<string, unknown>) });
      },
    });
    try {
      await until('three records read back', () => seen.length >= 3, 30_000);
    } finally {
      await consumer.disconnect();
    }
    expect(seen.find((r) => r.kind === 'interactions')).toMatchObject({
      USER_ID: 'sdk-user',
      ITEM_ID: 'i10',
      EVENT_TYPE: 'click',
      EVENT_VALUE: 2.5,
      SESSION_ID: 's-1',
      TIMESTAMP: sentAt.getTime(),
      IMPRESSION: ['i10', 'i11'],
      RECOMMENDATION_ID: 'r-1',
      CONTEXT: { DEVICE_TYPE: 'phone', EVENT_ATTRIBUTION_SOURCE: 'email' },
    });
    expect(seen.find((r) => r.kind === 'items')).toMatchObject({ ITEM_ID: 'sdk-item', METADATA: { CATEGORY: 'music', TAGS: ['a', 'b'], PRICE: 9.5 } });
    expect(seen.find((r) => r.kind === 'users')).toMatchObject({ USER_ID: 'sdk-user', METADATA: { MEMBERSHIP_LEVEL: 'gold' } });
  }, 60_000);

  it('refusals in the SDKs\' shapes: wrong signature, expired date, another group\'s key, a missing scope, bad input, unknown filter', async () => {
    // Another last character (a secret that already ends in the one put there would not be wrong).
    const wrongSecret = `${rw.secretAccessKey.slice(0, -1)}${rw.secretAccessKey.endsWith('x') ? 'y' : 'x'}`;
    const wrong = await refusal(runtime({ ...rw, secretAccessKey: wrongSecret }).send(new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u5' })));
    expect(wrong).toMatchObject({ name: 'InvalidSignatureException', status: 403 });
    expect(wrong.message).toMatch(/signature we calculated does not match/);

    // The SDK signs with its clock moved 20 minutes back (maxAttempts 1: no skew-corrected retry).
    const expired = await refusal(runtime(rw, group, { systemClockOffset: -20 * 60_000 }).send(new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u5' })));
    expect(expired).toMatchObject({ name: 'InvalidSignatureException', status: 403 });
    expect(expired.message).toMatch(/Signature expired/);

    // With retries, the SDK corrects its clock from the answer's Date header and the retry passes (as against AWS).
    const corrected = await runtime(rw, group, { systemClockOffset: -20 * 60_000, maxAttempts: 2 }).send(new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u5', numResults: 3 }));
    expect(corrected.itemList).toHaveLength(3);

    const unknown = await refusal(runtime({ accessKeyId: 'SR0123456789AB', secretAccessKey: 'x'.repeat(40), endpointPath: '' }).send(new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u5' })));
    expect(unknown).toMatchObject({ name: 'UnrecognizedClientException', status: 403 });

    // This group's key on the other group's endpoint.
    const foreign = await refusal(runtime(otherKey, other).send(new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u5' })));
    expect(foreign).toMatchObject({ name: 'AccessDeniedException', status: 403 });
    expect(foreign.message).toMatch(/belongs to dataset group/);

    const scope = await refusal(events(reader).send(new PutUsersCommand({ datasetArn: arn('dataset', 'g/USERS'), users: [{ userId: 'x' }] })));
    expect(scope).toMatchObject({ name: 'AccessDeniedException', status: 403 });

    const bad = await refusal(runtime(rw).send(new GetRecommendationsCommand({ campaignArn: 'not-an-arn', userId: 'u5' })));
    expect(bad).toMatchObject({ name: 'InvalidInputException', status: 400 });
    expect(bad.message).toMatch(/campaignArn/);

    const noFilter = await refusal(runtime(rw).send(new GetRecommendationsCommand({ campaignArn: CAMPAIGN, userId: 'u5', filterArn: arn('filter', 'nope') })));
    expect(noFilter).toMatchObject({ name: 'ResourceNotFoundException', status: 404 });

    const wrongDataset = await refusal(events(rw).send(new PutItemsCommand({ datasetArn: arn('dataset', 'g/USERS'), items: [{ itemId: 'x' }] })));
    expect(wrongDataset).toMatchObject({ name: 'InvalidInputException', status: 400 });
    expect(wrongDataset.message).toMatch(/datasetArn/);
  });

  it('the mount is left out of /openapi.json; the credentials route is in it', async () => {
    const doc = (await (await fetch(`${service.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/personalize'))).toEqual([]);
    expect(Object.keys(doc.paths)).toContain('/v1/groups/{group}/api-keys/{id}/aws-credentials');
  });

  it('boto3 (a script): the same calls and refusals', async () => {
    expect(existsSync(PYTHON), `${PYTHON} (with boto3) is installed by test/tools/install.sh (npm test runs it first)`).toBe(true);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        PYTHON,
        ['test/tools/boto3-personalize.py'],
        {
          env: { ...process.env, ENDPOINT: `${service.url}/personalize/${group}`, OTHER_ENDPOINT: `${service.url}/personalize/${other}`, AKID: rw.accessKeyId, SECRET: rw.secretAccessKey, READER_AKID: reader.accessKeyId, READER_SECRET: reader.secretAccessKey },
          timeout: 60_000,
        },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    const r = JSON.parse(out) as Record<string, unknown>;
    const native = (await (await fetch(`${service.url}/v1/groups/${group}/recommendations?userId=u5&numResults=10`, { headers: rootHeaders() })).json()) as { itemList: { itemId: string }[] };
    expect(r.recommendations).toEqual(native.itemList.map((i) => i.itemId));
    expect(r.rankingLast).toEqual({ itemId: 'nope-1', reason: ['not-in-model'] });
    expect(r.putEvents).toBe(200);
    expect(r.putItems).toBe(200);
    expect(r.putUsers).toBe(200);
    expect(r.wrongSignature).toBe('InvalidSignatureException');
    expect(r.otherGroup).toBe('AccessDeniedException');
    expect(r.missingScope).toBe('AccessDeniedException');
    expect(r.badInput).toBe('InvalidInputException');
  }, 90_000);
});

