/**
 * The dashboard (/ui, issue 17) in a real browser: playwright-core driving Debian's chromium
 * (test/tools/install.sh installs it) against the real service on a demo-like group (synthetic
 * events and items, two trained versions). Each page is opened; what it shows is compared with what
 * the REST API answers; a click sent from the "Try a user" page changes the user's list on the page
 * within 2 s; any console error, page error, failed request or 4xx/5xx answer fails the test unless
 * the test provoked it. Screenshots of each page are taken into a temporary folder, or into
 * docs/images/ with STREAMREC_UPDATE_SCREENSHOTS=1 (how the committed ones were made): a plain test
 * run leaves the tree as it was.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { syntheticInteractions, syntheticItems } from '../../src/data/synthetic.js';
import { createKafka } from '../../src/kafka/client.js';
import { applyTopics, topicName } from '../../src/kafka/topics.js';
import { createCodecs } from '../../src/serde/avro.js';
import { startService, type Service } from '../../src/stream/service.js';
import { silentLogger } from '../../src/util/log.js';
import { freshGroup, kafkaClients, rootHeaders, serviceEnv, TEST_ROOT_KEY, until } from './helpers.js';

const CHROMIUM = process.env.STREAMREC_CHROMIUM ?? '/usr/bin/chromium';
const IMAGES = process.env.STREAMREC_UPDATE_SCREENSHOTS === '1' ? join(process.cwd(), 'docs', 'images') : mkdtempSync(join(tmpdir(), 'streamrec-shots-'));
const brokers = inject('kafkaBrokers');
const group = freshGroup('ui');
const dir = mkdtempSync(join(tmpdir(), 'streamrec-ui-'));
const config = loadConfig({
  env: serviceEnv(brokers, join(dir, 'state'), {
    STREAMREC_TRAINING_RECIPE: 'sims',
    STREAMREC_TRAINING_SPLIT: 'loo',
    STREAMREC_TRAINING_VERSIONS_DIR: join(dir, 'versions'),
    STREAMREC_INSTANCE_ID: 'ui-1',
    STREAMREC_RECOMMENDATIONS_NUM_RESULTS: '10',
  }),
});
const NOW = Date.now();
const codecs = createCodecs(config);
const { admin, producer } = kafkaClients(createKafka(config, [brokers], '-dashboard-test'));
const NDCG = 'normalized_discounted_cumulative_gain_at_10';
let service: Service;
let browser: Browser;
let page: Page;
/** What went wrong in the page; the failures a test provokes on purpose are taken out by `expected`. */
const problems: string[] = [];
const expected: RegExp[] = [];

/** The page's number format (ui/app.js fmt). */
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const api = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
  const res = await fetch(`${service.url}${path}`, { ...init, headers: rootHeaders(init.body ? { 'content-type': 'application/json' } : {}) });
  expect(res.status, `${path}: ${res.status}`).toBeLessThan(300);
  return (await res.json()) as T;
};
const g = (rest: string) => `/v1/groups/${group}${rest}`;
interface List {
  itemList: { itemId: string; reason?: string }[];
}
interface Versions {
  training: boolean;
  versions: { version: string; serving: boolean; metrics: Record<string, number> }[];
}
const ids = (l: List) => l.itemList.map((i) => i.itemId);
const cardValue = (testid: string) => page.locator(`[data-testid="${testid}"] .card-value`);
// Browser-side code is passed as text: the project's TypeScript has no DOM library.
const listIds = (testid: string): Promise<string[]> =>
  page.evaluate(`[...document.querySelectorAll('[data-testid="${testid}"] li')].map((li) => li.dataset.item ?? li.querySelector('code').textContent)`);
const shot = (name: string) => page.screenshot({ path: join(IMAGES, `dashboard-${name}.png`), fullPage: true });

/** Pixels of the first chart's canvas near a series colour: the line was drawn. */
const pixelsOf = ([r, gr, b]: [number, number, number]): Promise<number> =>
  page.evaluate(`(() => {
    const canvas = document.querySelector('.chart canvas');
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - ${r}) < 12 && Math.abs(d[i + 1] - ${gr}) < 12 && Math.abs(d[i + 2] - ${b}) < 12 && d[i + 3] > 200) n++;
    return n;
  })()`);
const BLUE: [number, number, number] = [37, 99, 235];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: run test/tools/install.sh (apt-get install chromium) or set STREAMREC_CHROMIUM`);
  mkdirSync(IMAGES, { recursive: true });
  await applyTopics(admin, group, config);
  const events = [...syntheticInteractions({ seed: 7, users: 200, items: 300, events: 6000, start: NOW - 6_000_000 })];
  await producer.send({ topic: topicName(group, 'items'), messages: [...syntheticItems({ seed: 7, items: 300 })].map((i) => ({ key: i.ITEM_ID, value: codecs.Item.encode(i) })) });
  await producer.send({ topic: topicName(group, 'interactions'), messages: events.map((e) => ({ key: e.USER_ID, value: codecs.Interaction.encode(e) })) });
  service = await startService({ config, group, brokers: [brokers], log: silentLogger, apiLogger: false });
  await api(g('/users'), { method: 'POST', body: JSON.stringify({ users: Array.from({ length: 12 }, (_, i) => ({ userId: `u${i}`, properties: {} })) }) });
  await until('all events applied', () => service.processor.status().applied >= 6000, 120_000);
  await until('a version served', () => service.serving.current !== undefined, 120_000);
  // A second version (not deployed), for the promote and rollback buttons.
  await api(g('/solutions/default/versions'), { method: 'POST' });
  await until('two versions', async () => (await api<Versions>(g('/solutions/default/versions'))).versions.length >= 2, 120_000);
  await until('the users applied', async () => ((await api<{ detail: { metadata: { users: number } } }>('/ready')).detail.metadata.users >= 12), 30_000);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const unexpected = (what: string) => {
    if (!expected.some((re) => re.test(what))) problems.push(what);
  };
  page.on('console', (m) => {
    if (m.type() === 'error') unexpected(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => unexpected(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A stream the page closes itself (it leaves the page that opened it) is aborted by the page: not a failure.
    if (r.failure()?.errorText === 'net::ERR_ABORTED' && /\/stream$/.test(new URL(r.url()).pathname)) return;
    unexpected(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) unexpected(`answer ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  rmSync(dir, { recursive: true, force: true });
  if (process.env.STREAMREC_UPDATE_SCREENSHOTS !== '1') rmSync(IMAGES, { recursive: true, force: true });
});

describe('dashboard', () => {
  it('signs in with a key kept in sessionStorage only, and the overview shows the numbers the API gives, live', async () => {
    await page.goto(`${service.url}/ui`);
    await page.fill('input[name="apiKey"]', TEST_ROOT_KEY);
    await page.fill('input[name="group"]', group);
    await page.click('button[type="submit"]');
    await page.waitForSelector('[data-testid="events-per-second"]');
    expect(await page.evaluate(`({ session: sessionStorage.getItem('streamrec.key'), local: localStorage.length, cookie: document.cookie })`)).toEqual({ session: TEST_ROOT_KEY, local: 0, cookie: '' });

    const ready = await api<{ detail: { applied: number; metadata: { users: number; items: number; deadLetters: number }; deadLetters: number; partitions: { partition: number; lag: number | null }[] } }>('/ready');
    const deployment = await api<{ version: string }>(g('/deployments/default'));
    const rate = await api<{ total: number }>(g('/events/stream'));
    await expect.poll(() => cardValue('applied').textContent(), { timeout: 10_000 }).toBe(fmt(ready.detail.applied));
    expect(await cardValue('items').textContent()).toBe(fmt(ready.detail.metadata.items));
    expect(await cardValue('users').textContent()).toBe(fmt(ready.detail.metadata.users));
    expect(ready.detail.metadata.items).toBe(300);
    expect(await cardValue('served-version').textContent()).toBe(deployment.version);
    await expect.poll(() => cardValue('events-total').textContent(), { timeout: 10_000 }).toBe(fmt(rate.total));
    expect(await cardValue('events-per-second').textContent()).toMatch(/^\d/);
    const rows = await page.locator('[data-testid="partitions"] tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows.map((r) => Number(r[0]))).toEqual(ready.detail.partitions.map((p) => p.partition));
    expect(rows.map((r) => r[4])).toEqual(ready.detail.partitions.map((p) => (p.lag === null ? 'unknown' : fmt(p.lag))));
    // The rate chart: a line once a few readings came.
    await expect.poll(() => pixelsOf(BLUE), { timeout: 10_000 }).toBeGreaterThan(20);
    // Live: 30 events posted now show in the rate and the total without a reload.
    const eventList = Array.from({ length: 10 }, (_, i) => ({ eventType: 'click', itemId: `i${i}`, sentAt: Date.now() }));
    for (const u of ['u30', 'u31', 'u32']) await api(g('/events'), { method: 'POST', body: JSON.stringify({ userId: u, eventList }) });
    await expect.poll(() => cardValue('events-per-second').textContent(), { timeout: 10_000, interval: 100 }).not.toBe('0.0');
    await expect.poll(() => cardValue('events-total').textContent(), { timeout: 10_000 }).toBe(fmt(rate.total + 30));
    // The instances and the partitions each owns, as GET .../instances gives them.
    const instances = await api<{ instances: { url: string; self: boolean; partitions: number[] }[] }>(g('/instances'));
    expect(instances.instances).toHaveLength(1);
    expect(instances.instances[0]!.self).toBe(true);
    await page.waitForSelector('[data-testid="instances"] tbody tr');
    const owned = await page.locator('[data-testid="instances"] tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.querySelector('code')!.textContent, tr.querySelector('td.owned')!.textContent]));
    expect(owned).toEqual(instances.instances.map((i) => [i.url, i.partitions.join(', ')]));
    // The latest dead letters with their reasons: a bad record produced to the interactions topic shows.
    const deadBefore = ready.detail.deadLetters;
    await producer.send({ topic: topicName(group, 'interactions'), messages: [{ key: 'not-avro-user', value: Buffer.from('not an Avro record') }] });
    await until('the dead letter written', async () => (await api<{ detail: { deadLetters: number } }>('/ready')).detail.deadLetters > deadBefore, 20_000);
    const reason = async () => (await api<{ deadLetters: { key: string | null; reason: string }[] }>(g('/dead-letters?limit=5'))).deadLetters.find((d) => d.key === 'not-avro-user')?.reason;
    await until('the dead letter read', async () => (await reason()) !== undefined, 10_000);
    await expect
      .poll(() => page.locator('[data-testid="dead-letter-list"] tr', { hasText: 'not-avro-user' }).locator('td.reason').textContent({ timeout: 1000 }).catch(() => null), { timeout: 15_000 })
      .toBe(await reason());
    await expect.poll(() => cardValue('dead-letters').textContent(), { timeout: 10_000 }).toBe(fmt(deadBefore + 1 + ready.detail.metadata.deadLetters));
    await shot('overview');
  }, 60_000);

  it('try a user: the current list as the API gives it, and a click sent from the page changes it within 2 s', async () => {
    const user = 'u17';
    await page.click('a[href="#/user"]');
    await page.fill('input[name="userId"]', user);
    await page.click('form button[type="submit"]');
    await page.waitForSelector('[data-testid="user-list"] li');
    const before = await api<List>(g(`/recommendations?userId=${user}&numResults=10`));
    expect(await listIds('user-list')).toEqual(ids(before));
    const stored = async () => (await api<{ events: { itemId: string }[] }>(g(`/users/${user}/events?limit=10`))).events.map((e) => e.itemId);
    await expect.poll(() => listIds('user-events'), { timeout: 5000 }).toEqual(await stored());
    // An item whose closest related item is not in the user's list: clicking it brings that one in.
    const inList = new Set(ids(before));
    let item: string | undefined;
    for (let k = 40; k < 140 && item === undefined; k++) {
      const related = await api<List>(g(`/related-items?itemId=i${k}&numResults=3`));
      if (related.itemList[0]?.reason === undefined && !inList.has(related.itemList[0]!.itemId) && !inList.has(`i${k}`)) item = `i${k}`;
    }
    expect(item).toBeDefined();
    await page.fill('input[name="itemId"]', item!);
    const shown = (await listIds('user-list')).join(',');
    const clicked = Date.now();
    await page.click('[data-testid="send-click"]');
    await page.waitForFunction(`[...document.querySelectorAll('[data-testid="user-list"] li')].map((li) => li.dataset.item).join(',') !== ${JSON.stringify(shown)}`, undefined, { timeout: 5000 });
    const ms = Date.now() - clicked;
    expect(ms, 'ms from the click to the new list on the page').toBeLessThan(2000);
    const after = await api<List>(g(`/recommendations?userId=${user}&numResults=10`));
    expect(await listIds('user-list')).toEqual(ids(after));
    expect(await page.locator('[data-testid="sent-events"] li').first().textContent()).toContain(item!);
    // The user's stored events as GET .../users/U/events gives them, the click sent from the page on top.
    await expect.poll(() => listIds('user-events'), { timeout: 5000 }).toEqual(await stored());
    expect((await stored())[0]).toBe(item);
    // The page tells how long the list took (the published list carries the event's time) and marks the new items.
    const latency = (await page.locator('[data-testid="click-latency"]').textContent())!;
    console.log(`dashboard: the new list on the page ${ms} ms after the click (the page says: ${latency})`);
    expect(await page.locator('[data-testid="user-list"] li.new').count()).toBeGreaterThan(0);
    await shot('try-a-user');
  }, 60_000);

  it('versions: the metrics beside popularity, a chart, and promote then roll back through the API', async () => {
    await page.click('a[href="#/versions"]');
    await page.waitForSelector('[data-testid="versions"] tbody tr');
    const { versions } = await api<Versions>(g('/solutions/default/versions'));
    await expect.poll(() => page.locator('[data-testid="versions"] tbody tr').count()).toBe(versions.length);
    for (const v of versions) expect(await page.locator(`tr[data-version="${v.version}"] td.ndcg`).textContent()).toBe(fmt(v.metrics[NDCG]!, 4));
    expect(await pixelsOf(BLUE)).toBeGreaterThan(20);
    await shot('versions');
    const served = versions.find((v) => v.serving)!.version;
    const other = versions.find((v) => !v.serving)!.version;
    await page.click(`tr[data-version="${other}"] button`);
    await until('the other version deployed', async () => (await api<{ version: string }>(g('/deployments/default'))).version === other, 10_000);
    await page.waitForSelector(`tr[data-version="${other}"].serving`);
    await page.click('[data-testid="rollback"]');
    await until('rolled back', async () => (await api<{ version: string }>(g('/deployments/default'))).version === served, 10_000);
    await page.waitForSelector(`tr[data-version="${served}"].serving`);
    // An A/B split started from the page: both arms listed with the report (online metrics are
    // counted by the processor), then ended from the page.
    const report = await fetch(`${service.url}${g('/deployments/default/split/report')}`, { headers: rootHeaders() });
    expect(report.status).toBe(404);
    await page.selectOption('[data-testid="split-a"]', served);
    await page.selectOption('[data-testid="split-b"]', other);
    await page.click('[data-testid="split-start"]');
    await page.waitForSelector('[data-testid="split-arms"] tbody tr[data-arm="2"]');
    const split = await api<{ id: string; arms: { version: string }[] }>(g('/deployments/default/split'));
    expect(split.arms.map((a) => a.version)).toEqual([served, other]);
    expect(await page.locator('[data-testid="split"] h3 code').textContent()).toBe(split.id);
    // The report's decision: nobody has clicked yet, so no winner.
    await page.waitForSelector('[data-testid="split-decision"]');
    expect(await page.locator('[data-testid="split-decision"]').textContent()).toMatch(/no winner|no significant winner/);
    await page.click('[data-testid="split-end"]');
    await page.waitForSelector('[data-testid="split-start"]');
    expect((await fetch(`${service.url}${g('/deployments/default/split')}`, { headers: rootHeaders() })).status).toBe(404);
  }, 60_000);

  it('items: popular and trending as the API gives them, and an item\'s related items', async () => {
    await page.click('a[href="#/items"]');
    await page.waitForSelector('[data-testid="popular"] li');
    await page.waitForSelector('[data-testid="trending"] li');
    expect(await listIds('popular')).toEqual(ids(await api<List>(g('/popular?kind=popular&numResults=10'))));
    expect(await listIds('trending')).toEqual(ids(await api<List>(g('/popular?kind=trending&numResults=10'))));
    await page.fill('input[name="itemSearch"]', 'i5');
    await page.click('form button[type="submit"]');
    await page.waitForSelector('[data-testid="related"] li');
    expect(await listIds('related')).toEqual(ids(await api<List>(g('/related-items?itemId=i5&numResults=10'))));
    // The item's record and counters as GET .../items/i5 gives them, and a chart of them over time.
    interface ItemAnswer {
      properties: Record<string, unknown> | null;
      activity: { users: number; events: number; trending: number };
    }
    const item = await api<ItemAnswer>(g('/items/i5'));
    expect(item.properties).not.toBeNull();
    expect(item.activity.events).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-testid="item-users"] .card-value').textContent(), { timeout: 5000 }).toBe(fmt(item.activity.users));
    expect(await page.locator('[data-testid="item-events"] .card-value').textContent()).toBe(fmt(item.activity.events));
    const rows = await page.locator('[data-testid="item-properties"] tbody tr').evaluateAll((trs) => trs.map((tr) => tr.querySelector('td')!.textContent));
    expect(rows).toEqual(Object.keys(item.properties!));
    // Events sent for the item now: its counters on the page move without a reload.
    await api(g('/events'), { method: 'POST', body: JSON.stringify({ userId: 'item-page-user', eventList: [{ eventType: 'click', itemId: 'i5', sentAt: Date.now() }] }) });
    await expect.poll(() => page.locator('[data-testid="item-events"] .card-value').textContent(), { timeout: 10_000 }).toBe(fmt(item.activity.events + 1));
    expect((await api<ItemAnswer>(g('/items/i5'))).activity.users).toBe(item.activity.users + 1);
    // A flat line may fall between pixel rows (anti-aliased, no pixel exactly blue): bluish pixels count.
    const bluish = (): Promise<number> =>
      page.evaluate(`(() => {
        const canvas = document.querySelector('[data-testid="item-detail"] .chart canvas');
        const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 60 && d[i + 2] > d[i] + 60 && d[i + 2] > d[i + 1] + 40) n++;
        return n;
      })()`);
    await expect.poll(bluish, { timeout: 10_000 }).toBeGreaterThan(20);
    await shot('items');
  }, 60_000);

  it('filters and keys: a parse error marked at its position, a filter created and deleted, a key created (shown once) and revoked', async () => {
    await page.click('a[href="#/admin"]');
    await page.waitForSelector('[data-testid="filters"]');
    await page.fill('input[name="filterName"]', 'no-clicked');
    await page.fill('input[name="filterExpression"]', 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")');
    await page.click('[data-testid="filter-form"] button');
    await page.waitForSelector('[data-testid="filters"] td:text("no-clicked")');
    expect((await api<{ filters: { name: string }[] }>(g('/filters'))).filters.map((f) => f.name)).toEqual(['no-clicked']);

    const bad = 'INCLUDE ItemID WHERE Items.CATEGORY FOO ("books")';
    expected.push(new RegExp(`answer 400: POST .*${g('/filters')}$`), /console error: Failed to load resource: .* 400/);
    await page.fill('input[name="filterName"]', 'broken');
    await page.fill('input[name="filterExpression"]', bad);
    await page.click('[data-testid="filter-form"] button');
    const marked = await page.locator('[data-testid="filter-error-at"]').textContent();
    const position = Number(/at position (\d+)/.exec((await page.locator('.error').first().textContent())!)![1]);
    expect(marked).toBe(`${bad}\n${' '.repeat(position - 1)}^`);
    expected.length = 0;
    // The screenshot before a key is created: no secret in docs/images.
    await shot('filters-and-keys');

    await page.fill('input[name="keyName"]', 'reader');
    await page.click('[data-testid="key-form"] button');
    const shownKey = (await page.locator('[data-testid="new-key"] code').textContent())!;
    const keys = (await api<{ apiKeys: { id: string; name: string; scopes: string[] }[] }>(g('/api-keys'))).apiKeys;
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ name: 'reader', scopes: ['query'] });
    expect(shownKey).toMatch(new RegExp(`^sr_${keys[0]!.id}_`));
    // The key the page showed works for queries.
    expect((await fetch(`${service.url}${g('/popular')}`, { headers: { 'x-api-key': shownKey } })).status).toBe(200);
    await page.waitForSelector(`[data-testid="api-keys"] code:text("${keys[0]!.id}")`);

    await page.locator('[data-testid="filters"] button').first().click();
    await until('the filter deleted', async () => (await api<{ filters: unknown[] }>(g('/filters'))).filters.length === 0, 10_000);
    await page.locator('[data-testid="api-keys"] button').first().click();
    await until('the key revoked', async () => (await api<{ apiKeys: unknown[] }>(g('/api-keys'))).apiKeys.length === 0, 10_000);
    await expect.poll(() => page.locator('[data-testid="api-keys"] tbody tr').count()).toBe(0);
  }, 60_000);

  it('saw no console error, page error, failed request or error answer', () => {
    expect(problems).toEqual([]);
  });
});
