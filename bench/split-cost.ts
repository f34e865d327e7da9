/**
 * bench/split-cost: what a traffic split's HRNN arm costs per query when its version is not the
 * deployment's main one (the processor keeps the main version's user states; another arm's state is
 * re-derived at query time from the user's last 50 stored events, then cached until the user's next
 * event; docs/experiments.md).
 *
 * Two HRNN versions (hidden 100, one epoch each, seeds 1 and 2) trained on 20,000 synthetic events
 * (300 users, 5,000 items), a 50/50 split, the real QueryService with in-memory user states (the
 * main version's HRNN states stored, as the processor would have them). Milliseconds per
 * GetRecommendations (25 items) for each arm's users: the first query (arm 2 re-derives) and the next
 * one (cached), and the derivation alone (currentHrnnState over 10 and 50 events).
 *
 *   npx tsc -p tsconfig.bench.json && node .bench-build/bench/split-cost.js
 * Prints one JSON object as the last line of stdout.
 */
import { syntheticInteractions } from '../src/data/synthetic.js';
import { hrnn, type HrnnModel } from '../src/recipes/hrnn.js';
import { QueryService } from '../src/serving/query.js';
import { currentHrnnState, ServingModel, userStates, type ServingVersion } from '../src/serving/served-model.js';
import { armOf, newSplit } from '../src/serving/split.js';
import type { UserState } from '../src/state/model.js';
import { Resources } from '../src/stream/resources.js';

const events = [...syntheticInteractions({ seed: 1, users: 300, items: 5000, events: 20_000 })];
const params = { epochs: 1, hiddenSize: 100, workers: 1 };
const a: ServingVersion = { version: 'A', model: await hrnn.train(events, { ...params, seed: 1 }), excludeSeen: true };
const b: ServingVersion = { version: 'B', model: await hrnn.train(events, { ...params, seed: 2 }), excludeSeen: true };
const users = new Map<string, UserState>();
for (const e of events) {
  const u = users.get(e.USER_ID) ?? { lastTs: 0, sessionKey: null, session: 0, sessionStart: e.TIMESTAMP, total: 0, events: [], seen: [] };
  u.events.push({ item: e.ITEM_ID, ts: e.TIMESTAMP, type: e.EVENT_TYPE, value: null, session: 0 });
  if (!u.seen.includes(e.ITEM_ID)) u.seen.push(e.ITEM_ID);
  u.total++;
  users.set(e.USER_ID, u);
}
const stored = new Map([...users].map(([id, u]) => [id, userStates('A', [currentHrnnState(a.model as HrnnModel, 'A', undefined, u.events)])[0]!]));
const serving = new ServingModel();
serving.swap(a);
const split = newSplit([{ version: 'A', weight: 1 }, { version: 'B', weight: 1 }]);
serving.setSplit(split, [a, b]);
const now = Math.max(...events.map((e) => e.TIMESTAMP)) + 1000;
const query = new QueryService({
  serving,
  userState: async (id) => ({ user: users.get(id)!, hrnn: stored.get(id) }),
  forEachItemCount: async () => undefined,
  items: async () => new Map(),
  user: async () => undefined,
  resources: new Resources(),
  trendingHalfLifeMs: 86_400_000,
  now: () => now,
});
const ids = [...users.keys()];
for (const id of ids.slice(0, 20)) await query.recommendations({ userId: id, numResults: 25 });
const perQuery = async (list: string[]) => {
  const t = performance.now();
  for (const id of list) await query.recommendations({ userId: id, numResults: 25 });
  return (performance.now() - t) / list.length;
};
const rest = ids.slice(20);
const arm1 = rest.filter((id) => armOf(split, id) === 1);
const arm2 = rest.filter((id) => armOf(split, id) === 2);
const first = { arm1: await perQuery(arm1), arm2: await perQuery(arm2) };
const next = { arm1: await perQuery(arm1), arm2: await perQuery(arm2) };
const derive = (n: number) => {
  const ev = users.get(ids[0]!)!.events.slice(-n);
  const t = performance.now();
  for (let r = 0; r < 100; r++) currentHrnnState(b.model as HrnnModel, 'B', undefined, ev);
  return (performance.now() - t) / 100;
};
const r2 = (x: number) => Math.round(x * 100) / 100;
console.log(JSON.stringify({ users: { arm1: arm1.length, arm2: arm2.length }, firstQueryMs: { arm1: r2(first.arm1), arm2: r2(first.arm2) }, nextQueryMs: { arm1: r2(next.arm1), arm2: r2(next.arm2) }, deriveMs: { events10: r2(derive(10)), events50: r2(derive(50)) } }));
