/**
 * bench/api-load: the load generator of bench/api, run in its own process so that it does not share
 * the server's event loop. Reads one JSON spec on stdin, runs autocannon programmatically (a warm-up
 * run, then the measured run) and prints one JSON line: the run's figures.
 *
 * Latency percentiles are computed here from every 2xx response's own time (hrtime, microsecond
 * precision); autocannon's own histogram counts whole milliseconds (and, at a fixed rate, adds
 * coordinated-omission corrections), so it is reported beside them for reference only.
 */
import autocannon from 'autocannon';

export interface LoadSpec {
  title: string;
  /** Origin and path, e.g. http://127.0.0.1:1234/hello; with `users`, the path up to `userId=`. */
  url: string;
  /** When set, every request asks for a random one of these users: `<url><userId>`. */
  users?: string[];
  headers: Record<string, string>;
  connections: number;
  durationS: number;
  warmupS: number;
  /** Requests per second from all connections; absent: as fast as possible. */
  overallRate?: number;
  /** Fixed rate: split the connections and the rate over this many autocannon instances, staggered (default 1). */
  slices?: number;
}

export interface LoadResult {
  title: string;
  duration_s: number;
  responses: number;
  rps: number;
  latency_ms: { p50: number; p90: number; p99: number; p99_9: number; max: number; mean: number };
  autocannon_latency_ms: { p50: number; p90: number; p99: number; p99_9: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  status: Record<string, number>;
  warmup: { rps: number; errors: number; non2xx: number };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface Run {
  total: number;
  /** Sum over the instances of each one's responses over its duration. */
  rps: number;
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  status: Record<string, number>;
  /** autocannon's own percentiles (with slices: the highest over the slices). */
  latency: { p50: number; p90: number; p99: number; p99_9: number };
}

function once(spec: LoadSpec, durationS: number, connections: number, rate: number | undefined, record: number[] | undefined): Promise<autocannon.Result> {
  const users = spec.users;
  const base = new URL(spec.url);
  const prefix = `${base.pathname}${base.search}`;
  const opts: autocannon.Options = {
    url: spec.url,
    connections,
    duration: durationS,
    headers: spec.headers,
    timeout: 10,
    ...(rate ? { overallRate: rate } : {}),
    ...(users
      ? {
          requests: [
            {
              method: 'GET',
              setupRequest: (req: autocannon.Request) => {
                req.path = prefix + encodeURIComponent(users[Math.floor(Math.random() * users.length)]!);
                return req;
              },
            },
          ],
        }
      : {}),
  };
  return new Promise((resolve, reject) => {
    const instance = autocannon(opts, (err: unknown, result: autocannon.Result) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(result)));
    if (record) {
      instance.on('response', (_client: unknown, statusCode: number, _bytes: number, ms: number) => {
        if (statusCode >= 200 && statusCode < 300) record.push(ms);
      });
    }
  });
}

/**
 * One run. autocannon's rate limit lets each connection send its share of a second back to back and
 * then wait for the next second, so a fixed-rate run arrives in bursts once a second; with `slices`
 * > 1 the connections and the rate are split over that many autocannon instances started 1/slices s
 * apart, which spreads the bursts over the second.
 */
async function run(spec: LoadSpec, durationS: number, record: number[] | undefined): Promise<Run> {
  const k = spec.overallRate ? Math.max(1, Math.min(spec.slices ?? 1, spec.connections)) : 1;
  const results = await Promise.all(
    Array.from({ length: k }, async (_, i) => {
      if (i > 0) await new Promise((r) => setTimeout(r, (i * 1000) / k));
      const connections = Math.floor(spec.connections / k) + (i < spec.connections % k ? 1 : 0);
      const rate = spec.overallRate ? Math.floor(spec.overallRate / k) + (i < spec.overallRate % k ? 1 : 0) : undefined;
      return once(spec, durationS, connections, rate, record);
    }),
  );
  const status: Record<string, number> = {};
  for (const r of results) for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) status[code] = (status[code] ?? 0) + Number(v.count ?? 0);
  const sum = (f: (r: autocannon.Result) => number) => results.reduce((a, r) => a + f(r), 0);
  const hi = (f: (r: autocannon.Result) => number) => Math.max(...results.map(f));
  return {
    total: sum((r) => r.requests.total),
    rps: sum((r) => r.requests.total / r.duration),
    duration: hi((r) => r.duration),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    non2xx: sum((r) => r.non2xx),
    status,
    latency: { p50: hi((r) => r.latency.p50), p90: hi((r) => r.latency.p90), p99: hi((r) => r.latency.p99), p99_9: hi((r) => r.latency.p99_9) },
  };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function main(): Promise<void> {
  const spec = JSON.parse(await readStdin()) as LoadSpec;
  const warm = spec.warmupS > 0 ? await run(spec, spec.warmupS, undefined) : undefined;
  const times: number[] = [];
  const r = await run(spec, spec.durationS, times);
  const sorted = Float64Array.from(times).sort();
  const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : Number.NaN;
  const responses = r.total;
  const out: LoadResult = {
    title: spec.title,
    duration_s: r.duration,
    responses,
    rps: Math.round(r.rps),
    latency_ms: {
      p50: round3(percentile(sorted, 50)),
      p90: round3(percentile(sorted, 90)),
      p99: round3(percentile(sorted, 99)),
      p99_9: round3(percentile(sorted, 99.9)),
      max: round3(sorted.length ? sorted[sorted.length - 1]! : Number.NaN),
      mean: round3(mean),
    },
    autocannon_latency_ms: r.latency,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    status: r.status,
    warmup: warm ? { rps: Math.round(warm.rps), errors: warm.errors, non2xx: warm.non2xx } : { rps: 0, errors: 0, non2xx: 0 },
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err) => {
  process.stderr.write(`[bench:api-load] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
