/**
 * bench:models — model versions through Kafka (src/training/model-transfer.ts): publishes synthetic
 * version folders of growing size to `<group>.models` and materialises each into a fresh registry
 * folder (every SHA-256 checked), timing both and sampling the process's RSS.
 *
 * A synthetic version is what an HRNN version of that size looks like on disk: model.json holding
 * float32 weights as base64 (random values of a trained model's spread: the mantissas do not
 * compress), plus metrics.json and version.json. BENCH_MODEL_MB (default "10,100,400") is the
 * weights' size in MB of float32 (1M items x 100 floats = 400 MB), so model.json is 4/3 of it.
 * BENCH_MODEL_COMPARE=1 also times other chunk sizes and gzip on the first size of at least 100 MB
 * (how the defaults were chosen).
 *
 * Uses KAFKA_BROKERS when set, else starts the local broker (folder .streamrec/bench-kafka, or
 * STREAMREC_KAFKA_DIR). Progress goes to stderr; the last line of stdout is the JSON result.
 */
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { createKafka } from '../src/kafka/client.js';
import { resolveBrokers } from '../src/kafka/connect.js';
import { stopLocalKafka } from '../src/kafka/local-broker.js';
import { applyTopics, groupTopics } from '../src/kafka/topics.js';
import { CHUNK_BYTES, CHUNKS_PER_SEND, materialiseVersion, publishVersion, type PublishOptions } from '../src/training/model-transfer.js';
import { newVersionId, type VersionInfo } from '../src/training/registry.js';

const log = (msg: string) => process.stderr.write(`[bench:models] ${msg}\n`);
const SIZES = (process.env.BENCH_MODEL_MB ?? '10,100,400').split(',').map(Number);
const COMPARE = process.env.BENCH_MODEL_COMPARE === '1';

/** Writes a synthetic version folder with `floatMb` MB of float32 weights; returns its info. */
async function syntheticVersion(dir: string, floatMb: number): Promise<VersionInfo> {
  const info = { version: newVersionId('hrnn'), recipe: 'hrnn', createdAt: new Date().toISOString(), trainingMs: 0, data: { events: 0, users: 0, items: 0, from: null, to: null } } as unknown as VersionInfo;
  const out = createWriteStream(join(dir, 'model.json'));
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write('{"format":2,"model":{"recipe":"hrnn","weights":{"E":"');
  // Pieces of 3 MiB of floats (a multiple of 3 bytes: the base64 pieces join into one string).
  const piece = new Float32Array((3 * 1024 * 1024) / 4);
  let left = Math.round(floatMb * 1e6);
  while (left > 0) {
    const n = Math.min(piece.length, Math.floor(left / 4) || 1);
    for (let i = 0; i < n; i++) piece[i] = (Math.random() - 0.5) * 0.2;
    const bytes = Buffer.from(piece.buffer, 0, n * 4 - ((n * 4) % 3));
    await write(bytes.toString('base64'));
    left -= Math.max(bytes.length, 3);
  }
  await write('"}}}\n');
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  writeFileSync(join(dir, 'metrics.json'), '{"recipe":"hrnn"}\n');
  writeFileSync(join(dir, 'version.json'), `${JSON.stringify(info, null, 2)}\n`);
  return info;
}

/** Runs `fn` while sampling RSS every 20 ms; returns its result, the time and the peak RSS. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; peakRssMb: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const t0 = performance.now();
  try {
    const value = await fn();
    return { value, ms: Math.round(performance.now() - t0), peakRssMb: Math.round(Math.max(peak, process.memoryUsage.rss()) / 2 ** 20) };
  } finally {
    clearInterval(timer);
  }
}

async function main(): Promise<void> {
  const config = loadConfig({ overrides: { 'kafka.local.dataDir': process.env.STREAMREC_KAFKA_DIR || '.streamrec/bench-kafka' } });
  const { brokers, local } = await resolveBrokers(config, 'owned', log);
  const kafka = createKafka(config, brokers, '-bench');
  const admin = kafka.admin();
  await admin.connect();
  const work = mkdtempSync(join(tmpdir(), 'bench-models-'));
  const groups: string[] = [];
  const runs: Record<string, unknown>[] = [];
  try {
    const variants: (PublishOptions & { name: string })[] = [{ name: `chunk ${CHUNK_BYTES / 1024} KiB x ${CHUNKS_PER_SEND}/request, no compression (default)` }];
    if (COMPARE) {
      variants.push(
        { name: 'chunk 256 KiB x 4/request', chunkBytes: 256 * 1024, chunksPerSend: 4 },
        { name: 'chunk 512 KiB x 1/request', chunkBytes: 512 * 1024, chunksPerSend: 1 },
        { name: 'chunk 900 KiB x 1/request', chunkBytes: 900 * 1024, chunksPerSend: 1 },
        { name: 'chunk 512 KiB x 4/request, gzip', compression: 'gzip' },
      );
    }
    const compareAt = SIZES.find((s) => s >= 100) ?? SIZES.at(-1);
    for (const floatMb of SIZES) {
      for (const variant of floatMb === compareAt ? variants : variants.slice(0, 1)) {
        const group = `bench-models-${Date.now().toString(36)}`;
        groups.push(group);
        await applyTopics(admin, group, config);
        const src = mkdtempSync(join(work, 'src-'));
        log(`${floatMb} MB of weights, ${variant.name}: writing the synthetic version`);
        const info = await syntheticVersion(src, floatMb);
        const bytes = statSync(join(src, 'model.json')).size;
        const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
        await producer.connect();
        const pub = await measured(() => publishVersion(producer, group, src, info, variant)).finally(() => producer.disconnect());
        log(`published ${(bytes / 1e6).toFixed(1)} MB in ${pub.ms} ms`);
        const registry = mkdtempSync(join(work, 'registry-'));
        const mat = await measured(() => materialiseVersion(createKafka(config, brokers, '-bench-fetch'), group, pub.value, registry));
        log(`materialised in ${mat.ms} ms (every SHA-256 checked)`);
        runs.push({
          weightsMb: floatMb,
          variant: variant.name,
          bytes: pub.value.bytes,
          chunks: pub.value.chunks,
          publishMs: pub.ms,
          publishMBps: Math.round(pub.value.bytes / 1e3 / pub.ms),
          publishPeakRssMb: pub.peakRssMb,
          materialiseMs: mat.ms,
          materialiseMBps: Math.round(pub.value.bytes / 1e3 / mat.ms),
          materialisePeakRssMb: mat.peakRssMb,
        });
        rmSync(src, { recursive: true, force: true });
        rmSync(registry, { recursive: true, force: true });
        // The broker's copy goes with the topics: disk stays bounded over the sizes.
        await admin.deleteTopics({ topics: groupTopics(group, config).map((t) => t.topic) }).catch(() => undefined);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    await admin.disconnect();
    if (local && !local.reused) await stopLocalKafka(config.kafka.local.dataDir, config.kafka.local.stopGraceMs);
  }
  process.stdout.write(`${JSON.stringify({ bench: 'models', node: process.version, runs })}\n`);
}

await main();
