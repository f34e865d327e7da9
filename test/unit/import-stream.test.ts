import { createWriteStream, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, expect, it } from 'vitest';
import { readRecords } from '../../src/import/read.js';

// 200 MiB here; the integration suite runs the same check on 1 GiB (STREAMREC_IMPORT_STREAM_MIB).
const TARGET_BYTES = Number(process.env.STREAMREC_IMPORT_STREAM_MIB ?? 200) * 1024 * 1024;
const MAX_RSS_GROWTH = 150 * 1024 * 1024;
const path = join(tmpdir(), `streamrec-import-stream-${process.pid}-${Date.now()}.csv`);
afterAll(() => rmSync(path, { force: true }));

/** Writes ~TARGET_BYTES of interactions through a write stream; every 10th row has a quoted field, every 1000th a line break in one. */
async function generate(): Promise<{ rows: number; bytes: number; lines: number }> {
  const out = createWriteStream(path);
  let bytes = 0;
  let rows = 0;
  let lines = 1;
  const header = 'USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,DEVICE,PAGE\n';
  out.write(header);
  bytes += header.length;
  while (bytes < TARGET_BYTES) {
    let chunk = '';
    for (let k = 0; k < 10_000; k++, rows++) {
      const page = rows % 1000 === 0 ? '"home\nfeed"' : rows % 10 === 0 ? '"search, results"' : `category-${rows % 211}`;
      lines += rows % 1000 === 0 ? 2 : 1;
      chunk += `user-${rows % 100_003},item-${(rows * 7919) % 50_021},${1_700_000_000 + rows},click,${rows % 5},mobile-app-${rows % 7},${page}\n`;
    }
    bytes += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { rows, bytes, lines };
}

it(`streams a ${TARGET_BYTES >> 20} MiB CSV with bounded memory, reporting progress at most every 200 ms`, async () => {
  const t0 = Date.now();
  const { rows, bytes, lines } = await generate();
  const t1 = Date.now();

  const rss0 = process.memoryUsage().rss;
  let maxRss = rss0;
  const calls: { at: number; bytesRead: number; totalBytes: number; rows: number }[] = [];
  let count = 0;
  let rejected = 0;
  let lastLine = 0;
  for await (const r of readRecords(path, {
    kind: 'interactions',
    now: () => Date.UTC(2030, 0, 1),
    onProgress: (bytesRead, totalBytes, n) => {
      // The time first: reading the RSS (from /proc) takes a varying while under load, and taken
      // before the time it shifted one call's reading (130 ms apart was seen on a loaded machine).
      calls.push({ at: Date.now(), bytesRead, totalBytes, rows: n });
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
    },
  })) {
    count++;
    if (!r.ok) rejected++;
    lastLine = r.line;
  }
  maxRss = Math.max(maxRss, process.memoryUsage().rss);
  const t2 = Date.now();

  const mb = (n: number): string => (n / 1024 / 1024).toFixed(1);
  console.log(
    `import-stream: wrote ${mb(bytes)} MiB (${rows} rows) in ${t1 - t0} ms; read in ${t2 - t1} ms; ` +
      `rss before ${mb(rss0)} MiB, max ${mb(maxRss)} MiB, growth ${mb(maxRss - rss0)} MiB; ${calls.length} progress calls`,
  );

  expect(count).toBe(rows);
  expect(rejected).toBe(0);
  expect(lastLine).toBe(lines);
  expect(maxRss - rss0).toBeLessThan(MAX_RSS_GROWTH);
  expect(calls.length).toBeGreaterThan(0);
  for (const [i, c] of calls.entries()) {
    expect(c.totalBytes).toBe(bytes);
    expect(c.bytesRead).toBeLessThanOrEqual(bytes);
    if (i > 0) {
      const prev = calls[i - 1]!;
      // The reader throttles on its own clock reading; this one is taken a moment later, first
      // thing in the callback: a margin for that moment (a GC pause can fall in it), still far
      // from "every chunk" (chunks come every few ms).
      expect(c.at - prev.at).toBeGreaterThanOrEqual(150);
      expect(c.rows).toBeGreaterThanOrEqual(prev.rows);
      expect(c.bytesRead).toBeGreaterThanOrEqual(prev.bytesRead);
    }
  }
}, 600_000);
