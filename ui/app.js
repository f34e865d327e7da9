// The streamrec dashboard: Preact + htm as native ES modules (no build step), uPlot for charts.
// Every number comes from the public REST API with the key the user typed (kept in sessionStorage
// only); live parts read the server-sent-event routes over fetch (sse.js).
import { h, render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { openStream } from './sse.js';

const html = htm.bind(h);
const KEY = 'streamrec.key';
const GROUP = 'streamrec.group';

const session = () => ({ key: sessionStorage.getItem(KEY) ?? '', group: sessionStorage.getItem(GROUP) ?? '' });
const groupPath = (group, rest) => `/v1/groups/${encodeURIComponent(group)}${rest}`;

/** A REST call with the key: the JSON answer, or an Error carrying the API's code, field and message. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { 'x-api-key': session().key };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  if (res.status === 204) return null;
  const json = await res.json().catch(() => null);
  if (!res.ok) throw Object.assign(new Error(json?.message ?? `${res.status} ${res.statusText}`), { code: json?.code, field: json?.field, status: res.status });
  return json;
}

const fmt = (n, digits = 0) => (typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—');
const ErrorLine = ({ error }) => (error ? html`<p class="error" role="alert">${error.code ? html`<b>${error.code}</b> ` : ''}${error.message}</p>` : null);

/** Loads once (and again every `everyMs` when given, and when deps change): [data, error, reload]. */
function useApi(path, everyMs, deps = []) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const load = useCallback(() => {
    if (!path) return;
    api(path).then(
      (data) => setState({ data, error: undefined }),
      (error) => setState((s) => ({ data: s.data, error })),
    );
  }, [path]);
  useEffect(() => {
    load();
    if (!everyMs) return undefined;
    const t = setInterval(load, everyMs);
    return () => clearInterval(t);
  }, [load, everyMs, ...deps]);
  return [state.data, state.error, load];
}

/** A uPlot chart; `data` is uPlot's column data ([xs, ys1, ys2, ...]), `series` the y series' options. */
function Chart({ data, series, height = 220, time = true, label }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const width = Math.max(300, box.current.clientWidth || 600);
    plot.current = new window.uPlot({ width, height, scales: { x: { time } }, series: [{ label: time ? 'time' : 'x' }, ...series], axes: [{}, { label }] }, data, box.current);
    return () => plot.current?.destroy();
  }, [series.length]);
  useEffect(() => plot.current?.setData(data), [data]);
  return html`<div class="chart" ref=${box}></div>`;
}

function Card({ title, value, note, testid }) {
  return html`<div class="card" data-testid=${testid}><div class="card-title">${title}</div><div class="card-value">${value}</div>${note ? html`<div class="card-note">${note}</div>` : null}</div>`;
}

// ---- Overview ----
function Overview({ group }) {
  const [rate, setRate] = useState(undefined);
  const [points, setPoints] = useState([[], []]);
  const [streamError, setStreamError] = useState(undefined);
  const [ready, setReady] = useState(undefined);
  const [described, describeError] = useApi(groupPath(group, ''), 5000);
  useEffect(
    () =>
      openStream(groupPath(group, '/events/stream'), session().key, {
        onOpen: () => setStreamError(undefined),
        onError: setStreamError,
        onEvent: ({ event, data }) => {
          if (event !== 'rate') return;
          setRate(data);
          setPoints(([xs, ys]) => [[...xs, data.at / 1000].slice(-120), [...ys, data.eventsPerSecond].slice(-120)]);
        },
      }),
    [group],
  );
  useEffect(() => {
    // /ready answers 503 with the same body while not ready: both are read.
    const load = () =>
      fetch('/ready', { cache: 'no-store' })
        .then((r) => r.json())
        .then(setReady, () => undefined);
    load();
    const t = setInterval(load, 3000);
    return () => clearInterval(t);
  }, []);
  const d = ready?.detail ?? {};
  const deployment = described?.deployment;
  const training = d.training;
  return html`<section>
    <h2>Overview of ${group}</h2>
    <${ErrorLine} error=${streamError} />
    ${describeError?.status === 403
      ? html`<p class="muted">The served version comes from this instance (the group's description needs a key with the admin scope).</p>`
      : html`<${ErrorLine} error=${describeError} />`}
    <div class="cards">
      <${Card} testid="events-per-second" title="Events/s (live)" value=${fmt(rate?.eventsPerSecond, 1)} note="from /events/stream" />
      <${Card} testid="events-total" title="Events in the topic" value=${fmt(rate?.total)} />
      <${Card} testid="applied" title="Events applied here" value=${fmt(d.applied)} />
      <${Card} testid="users" title="Users (metadata)" value=${fmt(d.metadata?.users)} note="users topic" />
      <${Card} testid="items" title="Items (metadata)" value=${fmt(d.metadata?.items)} note="items topic" />
      <${Card} testid="dead-letters" title="Dead letters" value=${fmt((d.deadLetters ?? 0) + (d.metadata?.deadLetters ?? 0))} note=${`events ${fmt(d.deadLetters)}, metadata ${fmt(d.metadata?.deadLetters)}`} />
      <${Card} testid="served-version" title="Served version" value=${deployment?.version ?? d.versions?.serving ?? '—'} note=${deployment?.at ? `since ${new Date(deployment.at).toLocaleString()}` : ''} />
      <${Card} testid="training" title="Training" value=${training ? (training.running ? 'running' : 'idle') : '—'} note=${training ? `${training.trainings} trained, ${training.promoted} promoted, ${training.failed} failed` : ''} />
      <${Card} testid="state" title="This instance" value=${ready ? `${ready.state}${ready.ready ? '' : ' (not ready)'}` : '—'} note=${d.kafka?.reachable === false ? `Kafka unreachable: ${d.kafka.error}` : ''} />
    </div>
    <h3>Event rate, last two minutes</h3>
    <${Chart} data=${points} series=${[{ label: 'events/s', stroke: '#2563eb', width: 2 }]} height=${180} label="events/s" />
    <h3>Partitions owned by this instance</h3>
    <table data-testid="partitions">
      <thead><tr><th>partition</th><th>restored</th><th>next offset</th><th>high watermark</th><th>lag</th></tr></thead>
      <tbody>${(d.partitions ?? []).map((p) => html`<tr><td>${p.partition}</td><td>${p.restored ? 'yes' : 'no'}</td><td>${fmt(p.nextOffset)}</td><td>${fmt(p.highWatermark)}</td><td class="lag">${p.lag === null ? 'unknown' : fmt(p.lag)}</td></tr>`)}</tbody>
    </table>
    ${d.standbys?.length ? html`<p>Standby replicas kept here: ${d.standbys.map((s) => `partition ${s.partition}`).join(', ')}</p>` : null}
    <${Instances} group=${group} />
    <${DeadLetters} group=${group} />
  </section>`;
}

/** A 403 (the key lacks the admin scope) as a note; any other error as an error line. */
const AdminOnly = ({ error, what }) => (error?.status === 403 ? html`<p class="muted">${what} need a key with the admin scope.</p>` : html`<${ErrorLine} error=${error} />`);

function Instances({ group }) {
  const [data, error] = useApi(groupPath(group, '/instances'), 5000);
  return html`<h3>Instances and the partitions each owns</h3>
    <${AdminOnly} error=${error} what="The instances" />
    ${data
      ? html`<p class="muted">consumer group <code>${data.consumerGroup}</code>: ${data.state}</p>
          <table data-testid="instances">
            <thead><tr><th>instance</th><th>client</th><th>partitions</th><th>standby</th></tr></thead>
            <tbody>${data.instances.map((i) => html`<tr class=${i.self ? 'self' : ''}><td><code>${i.url ?? '(no URL)'}</code>${i.self ? html` <span class="badge">this one</span>` : ''}</td><td>${i.clientId} ${i.host}</td><td class="owned">${i.partitions.join(', ')}</td><td>${i.standby.join(', ')}</td></tr>`)}</tbody>
          </table>`
      : null}`;
}

function DeadLetters({ group }) {
  const [data, error] = useApi(groupPath(group, '/dead-letters?limit=5'), 5000);
  return html`<h3>Latest dead letters</h3>
    <${AdminOnly} error=${error} what="The dead letters' reasons" />
    ${data
      ? data.deadLetters.length
        ? html`<table data-testid="dead-letter-list">
            <thead><tr><th>when</th><th>from</th><th>key</th><th>code</th><th>field</th><th>reason</th></tr></thead>
            <tbody>${data.deadLetters.slice(0, 10).map((x) => html`<tr data-offset=${`${x.partition}/${x.offset}`}><td>${new Date(x.failedAt).toLocaleString()}</td><td>${x.source}${x.sourceOffset !== null ? ` @${x.sourcePartition}/${x.sourceOffset}` : ''}</td><td><code>${x.key ?? ''}</code></td><td>${x.errorCode}</td><td>${x.field ?? ''}</td><td class="reason">${x.reason}</td></tr>`)}</tbody>
          </table>
          <p class="muted">${fmt(data.kept)} offsets kept in <code>${data.topic}</code> (transaction markers take offsets too); the last 5 of each partition read</p>`
        : html`<p class="muted" data-testid="dead-letter-list">none in <code>${data.topic}</code></p>`
      : null}`;
}

// ---- Try a user ----
function TryUser({ group }) {
  const [userId, setUserId] = useState(sessionStorage.getItem('streamrec.user') ?? '');
  const [open, setOpen] = useState(sessionStorage.getItem('streamrec.user') ?? '');
  const [list, setList] = useState(undefined);
  const [received, setReceived] = useState(0);
  const [error, setError] = useState(undefined);
  const [item, setItem] = useState('');
  const [sent, setSent] = useState([]);
  useEffect(() => {
    if (!open) return undefined;
    setList(undefined);
    setReceived(0);
    return openStream(groupPath(group, `/recommendations/stream?userId=${encodeURIComponent(open)}&numResults=10`), session().key, {
      onOpen: () => setError(undefined),
      onError: setError,
      onEvent: ({ event, data }) => {
        if (event !== 'recommendations') return;
        setList((old) => ({ ...data, receivedAt: Date.now(), previous: old ? new Set(old.itemList.map((i) => i.itemId)) : undefined }));
        setReceived((n) => n + 1);
      },
    });
  }, [group, open]);
  // The user's stored events: again after each list (a list follows each applied event of the user).
  const [events, eventsError] = useApi(open ? groupPath(group, `/users/${encodeURIComponent(open)}/events?limit=10`) : undefined, 0, [open, received]);
  const click = async (itemId) => {
    setError(undefined);
    try {
      const sentAt = Date.now();
      await api(groupPath(group, '/events'), { method: 'POST', body: { userId: open, eventList: [{ eventType: 'click', itemId, sentAt }] } });
      setSent((s) => [{ itemId, sentAt }, ...s].slice(0, 10));
    } catch (err) {
      setError(err);
    }
  };
  return html`<section>
    <h2>Try a user</h2>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); sessionStorage.setItem('streamrec.user', userId.trim()); setOpen(userId.trim()); }}>
      <label>User id <input name="userId" value=${userId} onInput=${(e) => setUserId(e.currentTarget.value)} required /></label>
      <button type="submit">Show</button>
    </form>
    <${ErrorLine} error=${error} />
    ${open
      ? html`<div>
          <form class="row" onSubmit=${(e) => { e.preventDefault(); if (item.trim()) void click(item.trim()); }}>
            <label>Item id <input name="itemId" value=${item} onInput=${(e) => setItem(e.currentTarget.value)} /></label>
            <button type="submit" data-testid="send-click">Send a test click</button>
          </form>
          <h3>Current list of ${open} <span class="muted" data-testid="lists-received">(${received} list${received === 1 ? '' : 's'} received)</span></h3>
          ${list
            ? html`<p class="muted">version ${list.version} · ${list.source} · ${list.recommendationId} · received ${new Date(list.receivedAt).toLocaleTimeString()}</p>
                <ol data-testid="user-list">${list.itemList.map((i) => html`<li data-item=${i.itemId} class=${list.previous && !list.previous.has(i.itemId) ? 'new' : ''}><code>${i.itemId}</code> <span class="muted">${i.score !== undefined ? fmt(i.score, 4) : ''} ${i.reason ?? ''}</span> <button class="small" onClick=${() => click(i.itemId)}>click</button></li>`)}</ol>`
            : html`<p class="muted">waiting for the list…</p>`}
          <h3>Recent events of ${open} <span class="muted">${events ? `(${fmt(events.stored)} stored of ${fmt(events.total)})` : ''}</span></h3>
          ${eventsError?.code === 'USER_NOT_FOUND' ? html`<p class="muted">no events yet</p>` : html`<${ErrorLine} error=${eventsError} />`}
          ${events ? html`<ol data-testid="user-events">${events.events.map((e) => html`<li data-item=${e.itemId}><code>${e.itemId}</code> <span class="muted">${e.eventType}${e.eventValue !== null ? ` ${fmt(e.eventValue, 2)}` : ''} · ${new Date(e.timestamp).toLocaleString()} · session ${e.session}</span></li>`)}</ol>` : null}
          <h3>Clicks sent from this page</h3>
          <ul data-testid="sent-events">${sent.map((s) => html`<li><code>${s.itemId}</code> at ${new Date(s.sentAt).toLocaleTimeString()}${list?.eventTimestamp === s.sentAt ? html` — <span data-testid="click-latency">its list came ${fmt(list.receivedAt - s.sentAt)} ms later</span>` : ''}</li>`)}</ul>
        </div>`
      : null}
  </section>`;
}

// ---- Versions ----
const NDCG = 'normalized_discounted_cumulative_gain_at_10';
const HIT = 'hit_at_10';
function Versions({ group }) {
  const [solutions] = useApi(groupPath(group, '/solutions'));
  const [solution, setSolution] = useState('default');
  const [versions, versionsError, reloadVersions] = useApi(groupPath(group, `/solutions/${encodeURIComponent(solution)}/versions`), 10_000, [solution]);
  const [deployment, deploymentError, reloadDeployment] = useApi(groupPath(group, '/deployments/default'), 10_000);
  const [actionError, setActionError] = useState(undefined);
  const act = async (path, body) => {
    setActionError(undefined);
    try {
      await api(groupPath(group, path), { method: 'POST', body });
      reloadDeployment();
      reloadVersions();
    } catch (err) {
      setActionError(err);
    }
  };
  const list = [...(versions?.versions ?? [])].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const chart = [list.map((v) => Date.parse(v.createdAt) / 1000), list.map((v) => v.metrics[NDCG] ?? null), list.map((v) => v.baseline[NDCG] ?? null), list.map((v) => v.metrics[HIT] ?? null), list.map((v) => v.baseline[HIT] ?? null)];
  const series = [
    { label: 'NDCG@10', stroke: '#2563eb', width: 2, points: { show: true } },
    { label: 'NDCG@10 popularity', stroke: '#93c5fd', dash: [6, 4], width: 2, points: { show: true } },
    { label: 'HR@10', stroke: '#16a34a', width: 2, points: { show: true } },
    { label: 'HR@10 popularity', stroke: '#86efac', dash: [6, 4], width: 2, points: { show: true } },
  ];
  return html`<section>
    <h2>Versions</h2>
    <div class="row">
      <label>Solution <select value=${solution} onChange=${(e) => setSolution(e.currentTarget.value)}>${(solutions?.solutions ?? [{ name: 'default' }]).map((s) => html`<option value=${s.name}>${s.name}</option>`)}</select></label>
      <span data-testid="deployment">Serving: <b>${deployment?.version ?? '—'}</b>${deployment?.previous?.length ? html` (before: ${deployment.previous.join(', ')})` : ''}</span>
      <button onClick=${() => act('/deployments/default/rollback')} disabled=${!deployment?.previous?.length} data-testid="rollback">Roll back</button>
      ${versions?.training ? html`<span class="badge">training…</span>` : null}
    </div>
    <${ErrorLine} error=${versionsError ?? deploymentError ?? actionError} />
    ${list.length ? html`<${Chart} data=${chart} series=${series} label="metric" />` : html`<p class="muted">no version yet</p>`}
    <table data-testid="versions">
      <thead><tr><th>version</th><th>recipe</th><th>created</th><th>trained on</th><th>NDCG@10</th><th>popularity</th><th>HR@10</th><th>popularity</th><th>coverage</th><th>popularity</th><th></th></tr></thead>
      <tbody>${[...list].reverse().map(
        (v) => html`<tr data-version=${v.version} class=${v.version === deployment?.version ? 'serving' : ''}>
          <td><code>${v.version}</code></td><td>${v.recipe}</td><td>${new Date(v.createdAt).toLocaleString()}</td>
          <td class="small-text">${v.split}; ${dataSummary(v.data)}</td>
          <td class="ndcg">${fmt(v.metrics[NDCG], 4)}</td><td>${fmt(v.baseline[NDCG], 4)}</td>
          <td>${fmt(v.metrics[HIT], 4)}</td><td>${fmt(v.baseline[HIT], 4)}</td>
          <td>${fmt(v.metrics.coverage, 4)}</td><td>${fmt(v.baseline.coverage, 4)}</td>
          <td>${v.version === deployment?.version ? html`<b>serving</b>` : html`<button class="small" onClick=${() => act('/deployments/default/promote', { version: v.version })}>Promote</button>`}</td>
        </tr>`,
      )}</tbody>
    </table>
    <${Split} group=${group} versions=${list} split=${deployment?.split} onChange=${() => reloadDeployment()} />
  </section>`;
}

/** The deployment's A/B traffic split (docs/experiments.md): start one between two versions; a running one's report, promote, end. */
function Split({ group, versions, split, onChange }) {
  const running = Boolean(split);
  const [report, reportError] = useApi(running ? groupPath(group, '/deployments/default/split/report') : undefined, 10_000, [split?.id]);
  const [pick, setPick] = useState({ a: '', b: '' });
  const [actionError, setActionError] = useState(undefined);
  const act = async (method, path, body) => {
    setActionError(undefined);
    try {
      await api(groupPath(group, `/deployments/default/split${path}`), { method, body });
      onChange();
    } catch (err) {
      setActionError(err);
    }
  };
  const options = versions.map((v) => html`<option value=${v.version}>${v.version} (${v.recipe})</option>`);
  if (!running) {
    return html`<div data-testid="split"><h3>A/B split</h3>
      <div class="row">
        <label>Arm 1 <select value=${pick.a} onChange=${(e) => setPick({ ...pick, a: e.currentTarget.value })} data-testid="split-a"><option value="">—</option>${options}</select></label>
        <label>Arm 2 <select value=${pick.b} onChange=${(e) => setPick({ ...pick, b: e.currentTarget.value })} data-testid="split-b"><option value="">—</option>${options}</select></label>
        <button disabled=${!pick.a || !pick.b} onClick=${() => act('POST', '', { arms: [{ version: pick.a, weight: 1 }, { version: pick.b, weight: 1 }] })} data-testid="split-start">Split 50/50</button>
      </div>
      <${ErrorLine} error=${actionError} />
    </div>`;
  }
  const total = split.arms.reduce((t, a) => t + a.weight, 0);
  const arms = report?.arms ?? split.arms.map((a, i) => ({ ...a, arm: i + 1, share: a.weight / total }));
  return html`<div data-testid="split"><h3>A/B split <code>${split.id}</code></h3>
    <div class="row">
      <span>Started ${new Date(split.startedAt).toLocaleString()}</span>
      <button onClick=${() => act('POST', '/promote', {})} disabled=${!report?.winner} data-testid="split-promote">Promote the winner</button>
      <button onClick=${() => act('DELETE', '')} data-testid="split-end">End split</button>
    </div>
    <${ErrorLine} error=${actionError ?? reportError} />
    <table data-testid="split-arms">
      <thead><tr><th>arm</th><th>version</th><th>share</th><th>impressions</th><th>clicks</th><th>CTR (95% interval)</th><th>conversions</th><th>revenue</th></tr></thead>
      <tbody>${arms.map(
        (a) => html`<tr data-arm=${a.arm} class=${report?.winner?.arm === a.arm ? 'serving' : ''}>
          <td>${a.arm}</td><td><code>${a.version}</code></td><td>${fmt(a.share * 100)}%</td>
          <td>${fmt(a.impressions)}</td><td>${fmt(a.clicks)}</td>
          <td>${fmt(a.ctr, 4)}${a.ctrInterval ? ` (${fmt(a.ctrInterval.low, 4)}–${fmt(a.ctrInterval.high, 4)})` : ''}</td>
          <td>${fmt(a.conversions)}</td><td>${fmt(a.revenue, 2)}</td>
        </tr>`,
      )}</tbody>
    </table>
    ${report ? html`<p data-testid="split-decision">${report.decision}</p>${report.warnings.map((w) => html`<p class="muted">${w}</p>`)}` : null}
  </div>`;
}

function dataSummary(data) {
  if (!data || typeof data !== 'object') return '';
  return Object.entries(data)
    .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
    .map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`)
    .join(', ');
}

// ---- Items ----
function ItemList({ items, testid, onPick }) {
  return html`<ol data-testid=${testid}>${items.map((i) => html`<li><a href="#/items" onClick=${(e) => { e.preventDefault(); onPick?.(i.itemId); }}><code>${i.itemId}</code></a> <span class="muted">${i.score !== undefined ? fmt(i.score, 3) : ''} ${i.reason ?? ''}</span></li>`)}</ol>`;
}

function Items({ group }) {
  const [query, setQuery] = useState('');
  const [itemId, setItemId] = useState('');
  const [popular, popularError] = useApi(groupPath(group, '/popular?kind=popular&numResults=10'), 5000);
  const [trending, trendingError] = useApi(groupPath(group, '/popular?kind=trending&numResults=10'), 5000);
  const [related, relatedError] = useApi(itemId ? groupPath(group, `/related-items?itemId=${encodeURIComponent(itemId)}&numResults=10`) : undefined, 0, [itemId]);
  const pick = (id) => {
    setQuery(id);
    setItemId(id);
  };
  return html`<section>
    <h2>Items</h2>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); setItemId(query.trim()); }}>
      <label>Item id <input name="itemSearch" value=${query} onInput=${(e) => setQuery(e.currentTarget.value)} required /></label>
      <button type="submit">Related items</button>
    </form>
    <${ErrorLine} error=${relatedError ?? popularError ?? trendingError} />
    ${itemId ? html`<${ItemDetail} key=${itemId} group=${group} itemId=${itemId} />` : null}
    ${itemId && related ? html`<h3>Related to <code>${itemId}</code></h3><${ItemList} items=${related.itemList} testid="related" onPick=${pick} />` : null}
    <div class="columns">
      <div><h3>Popular (distinct users)</h3>${popular ? html`<${ItemList} items=${popular.itemList} testid="popular" onPick=${pick} />` : null}</div>
      <div><h3>Trending (time-decayed)</h3>${trending ? html`<${ItemList} items=${trending.itemList} testid="trending" onPick=${pick} />` : null}</div>
    </div>
  </section>`;
}

/** An item's record and counters (GET .../items/I every 2 s), and its trending score charted since it was picked (the service keeps no history of it). */
function ItemDetail({ group, itemId }) {
  const [item, error] = useApi(groupPath(group, `/items/${encodeURIComponent(itemId)}`), 2000);
  const [points, setPoints] = useState([[], []]);
  useEffect(() => {
    if (item) setPoints(([xs, ts]) => [[...xs, Date.now() / 1000].slice(-300), [...ts, item.activity.trending].slice(-300)]);
  }, [item]);
  const a = item?.activity;
  return html`<div data-testid="item-detail">
    <h3>Item <code>${itemId}</code></h3>
    ${error?.code === 'ITEM_NOT_FOUND' ? html`<p class="muted">no record and no events for this item</p>` : html`<${ErrorLine} error=${error} />`}
    ${item
      ? html`<div class="cards">
            <${Card} testid="item-users" title="Distinct users" value=${fmt(a.users)} />
            <${Card} testid="item-events" title="Events" value=${fmt(a.events)} />
            <${Card} testid="item-trending" title="Trending score" value=${fmt(a.trending, 2)} note="time-decayed events" />
            <${Card} testid="item-last" title="Latest event" value=${a.lastTimestamp ? new Date(a.lastTimestamp).toLocaleString() : '—'} />
            <${Card} testid="item-created" title="Created" value=${item.creationTimestamp ? new Date(item.creationTimestamp).toLocaleString() : '—'} />
          </div>
          ${item.properties
            ? html`<table data-testid="item-properties"><thead><tr><th>property</th><th>value</th></tr></thead>
                <tbody>${Object.entries(item.properties).map(([k, v]) => html`<tr><td>${k}</td><td>${Array.isArray(v) ? v.join(' | ') : String(v)}</td></tr>`)}</tbody></table>`
            : html`<p class="muted" data-testid="item-properties">no record in the items topic</p>`}
          <h4>Trending score since you opened it (read every 2 s)</h4>
          <${Chart} data=${points} series=${[{ label: 'trending', stroke: '#2563eb', width: 2, points: { show: true } }]} height=${160} label="trending" />`
      : null}
  </div>`;
}

// ---- Filters and API keys ----
/** A FILTER_INVALID error's position (1-based, from its message) marked under the expression. */
function ErrorAt({ error, text }) {
  const m = error?.code === 'FILTER_INVALID' ? /at position (\d+)/.exec(error.message) : null;
  if (!m) return null;
  const at = Math.max(0, Math.min(text.length, Number(m[1]) - 1));
  return html`<pre class="error-at" data-testid="filter-error-at">${`${text}\n${' '.repeat(at)}^`}</pre>`;
}

function Admin({ group }) {
  const [filters, filtersError, reloadFilters] = useApi(groupPath(group, '/filters'));
  const [keys, keysError, reloadKeys] = useApi(groupPath(group, '/api-keys'));
  const [filter, setFilter] = useState({ name: '', filterExpression: '' });
  const [filterError, setFilterError] = useState(undefined);
  const [key, setKey] = useState({ name: '', scopes: ['query'] });
  const [keyError, setKeyError] = useState(undefined);
  const [newKey, setNewKey] = useState(undefined);
  const run = async (fn, setErr, reload) => {
    setErr(undefined);
    try {
      await fn();
      reload();
      return true;
    } catch (err) {
      setErr(err);
      return false;
    }
  };
  const toggle = (s) => setKey((k) => ({ ...k, scopes: k.scopes.includes(s) ? k.scopes.filter((x) => x !== s) : [...k.scopes, s] }));
  return html`<section>
    <h2>Filters</h2>
    <${ErrorLine} error=${filtersError} />
    <table data-testid="filters"><thead><tr><th>name</th><th>expression</th><th>parameters</th><th>created</th><th></th></tr></thead>
      <tbody>${(filters?.filters ?? []).map((f) => html`<tr><td>${f.name}</td><td><code>${f.filterExpression}</code></td><td>${f.params.join(', ')}</td><td>${new Date(f.createdAt).toLocaleString()}</td><td><button class="small" onClick=${() => run(() => api(groupPath(group, `/filters/${encodeURIComponent(f.name)}`), { method: 'DELETE' }), setFilterError, reloadFilters)}>Delete</button></td></tr>`)}</tbody>
    </table>
    <form class="row" data-testid="filter-form" onSubmit=${async (e) => { e.preventDefault(); if (await run(() => api(groupPath(group, '/filters'), { method: 'POST', body: filter }), setFilterError, reloadFilters)) setFilter({ name: '', filterExpression: '' }); }}>
      <label>Name <input name="filterName" value=${filter.name} onInput=${(e) => setFilter({ ...filter, name: e.currentTarget.value })} required /></label>
      <label class="grow">Expression <input name="filterExpression" value=${filter.filterExpression} placeholder='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")' onInput=${(e) => setFilter({ ...filter, filterExpression: e.currentTarget.value })} required /></label>
      <button type="submit">Create filter</button>
    </form>
    <${ErrorLine} error=${filterError} />
    <${ErrorAt} error=${filterError} text=${filter.filterExpression} />
    <h2>API keys</h2>
    <${ErrorLine} error=${keysError} />
    <table data-testid="api-keys"><thead><tr><th>id</th><th>name</th><th>scopes</th><th>created</th><th></th></tr></thead>
      <tbody>${(keys?.apiKeys ?? []).map((k) => html`<tr><td><code>${k.id}</code></td><td>${k.name}</td><td>${k.scopes.join(', ')}</td><td>${new Date(k.createdAt).toLocaleString()}</td><td><button class="small" onClick=${() => run(() => api(groupPath(group, `/api-keys/${encodeURIComponent(k.id)}`), { method: 'DELETE' }), setKeyError, reloadKeys)}>Revoke</button></td></tr>`)}</tbody>
    </table>
    <form class="row" data-testid="key-form" onSubmit=${async (e) => { e.preventDefault(); setNewKey(undefined); await run(async () => setNewKey(await api(groupPath(group, '/api-keys'), { method: 'POST', body: key })), setKeyError, reloadKeys); }}>
      <label>Name <input name="keyName" value=${key.name} onInput=${(e) => setKey({ ...key, name: e.currentTarget.value })} required /></label>
      ${['ingest', 'query', 'admin'].map((s) => html`<label><input type="checkbox" checked=${key.scopes.includes(s)} onChange=${() => toggle(s)} /> ${s}</label>`)}
      <button type="submit">Create key</button>
    </form>
    <${ErrorLine} error=${keyError} />
    ${newKey ? html`<p class="notice" data-testid="new-key">Key <b>${newKey.name}</b> (shown once): <code>${newKey.key}</code></p>` : null}
  </section>`;
}

// ---- Shell ----
const PAGES = [
  ['overview', 'Overview', Overview],
  ['user', 'Try a user', TryUser],
  ['versions', 'Versions', Versions],
  ['items', 'Items', Items],
  ['admin', 'Filters and API keys', Admin],
];

function SignIn({ onDone }) {
  const [key, setKey] = useState('');
  const [group, setGroup] = useState(sessionStorage.getItem(GROUP) ?? '');
  return html`<main class="signin">
    <h1>streamrec</h1>
    <form onSubmit=${(e) => { e.preventDefault(); sessionStorage.setItem(KEY, key.trim()); sessionStorage.setItem(GROUP, group.trim()); onDone(); }}>
      <label>API key <input name="apiKey" type="password" autocomplete="off" value=${key} onInput=${(e) => setKey(e.currentTarget.value)} required /></label>
      <label>Dataset group <input name="group" value=${group} onInput=${(e) => setGroup(e.currentTarget.value)} required /></label>
      <button type="submit">Open</button>
      <p class="muted">The key stays in this tab (sessionStorage) and is sent with each call to the REST API.</p>
    </form>
  </main>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(session().key && session().group));
  const [route, setRoute] = useState(location.hash.replace(/^#\//, '') || 'overview');
  useEffect(() => {
    const on = () => setRoute(location.hash.replace(/^#\//, '') || 'overview');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  if (!signedIn) return html`<${SignIn} onDone=${() => setSignedIn(true)} />`;
  const { group } = session();
  const page = PAGES.find(([id]) => id === route) ?? PAGES[0];
  const Page = page[2];
  return html`<div>
    <header>
      <b class="brand">streamrec</b>
      <nav>${PAGES.map(([id, title]) => html`<a href=${`#/${id}`} class=${id === page[0] ? 'active' : ''}>${title}</a>`)}</nav>
      <span class="who">group <b>${group}</b> <button class="small" onClick=${() => { sessionStorage.removeItem(KEY); setSignedIn(false); }}>Sign out</button></span>
    </header>
    <main><${Page} key=${`${page[0]}:${group}`} group=${group} /></main>
  </div>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
