/**
 * Model versions through Kafka, so that no instance needs a folder shared with another.
 *
 * Publishing a version (the trainer, after writing it to its own registry folder):
 *  1. every file of `<registry>/<version>/` is cut into chunks of `chunkBytes` and written to the
 *     compacted topic `<group>.models` (1 partition), key `<version>/<n>` (n = 0.. over all files in
 *     manifest order), value the raw bytes;
 *  2. then the manifest, LAST, key `<version>/manifest`: file names, sizes, SHA-256 per file and of
 *     all files together, the chunk count, the offset of chunk 0, and the version.json content;
 *  3. then a copy of it on `<group>.versions`, key `model/<version>` (the index: that small topic is
 *     what every instance already follows, so listing versions never reads a model's bytes), with
 *     the manifest's own offset on `<group>.models`.
 * Each step waits for acks from all in-sync replicas (acks -1) before the next, and the version is
 * announced (key `serving`, src/stream/versions.ts) only after step 3: an announced version's bytes
 * are always on the topic.
 *
 * Every key is written once, so compaction keeps every live chunk; a pruned version's keys get
 * tombstones (`pruneModels`) and compaction removes them.
 *
 * Materialising (an instance that has not got the version): the chunks are read from chunk 0's
 * offset to the manifest's, written straight to files in a temporary folder beside the registry
 * (never the whole model in memory), every SHA-256 is checked, and the folder is renamed into place.
 * A missing or corrupted chunk, or a manifest on the topic that differs from the index, refuses the
 * version with MODEL_TRANSFER_FAILED naming the reason (`ModelTransferError.reason`).
 *
 * Sizes (measured, bench/model-transfer.ts, docs/benchmarks.md): chunks of 512 KiB, 4 chunks per
 * produce request (a record batch of 2 MiB, under the topic's max.message.bytes of 4 MiB), no
 * compression: the weights are base64 of float32, which gzip shrinks by about a quarter only, at a
 * cost of ~4x the transfer time on one core.
 */
import { createHash, type Hash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../errors/index.js';
import type { KafkaClient, KafkaMessage } from '../kafka/kafkajs.js';
import type { Sender } from '../kafka/produce.js';
import { CompressionTypes } from '../kafka/kafkajs.js';
import { topicName, topicOffsets } from '../kafka/topics.js';
import type { Logger } from '../util/log.js';
import type { VersionInfo } from './registry.js';

/** Bytes per chunk record: well under the 1 MB that kafkajs and the broker accept by default. */
export const CHUNK_BYTES = 512 * 1024;
/** Chunks per produce request: one record batch of 2 MiB (+ overhead), under MODELS_MAX_MESSAGE_BYTES. */
export const CHUNKS_PER_SEND = 4;
/** `<group>.models`' max.message.bytes (topics/topics.json): room for one produce batch of CHUNKS_PER_SEND chunks. */
export const MODELS_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Key prefix of the manifests' index on `<group>.versions`. */
export const INDEX_PREFIX = 'model/';

export const chunkKey = (version: string, n: number): string => `${version}/${n}`;
export const manifestKey = (version: string): string => `${version}/manifest`;
export const indexKey = (version: string): string => `${INDEX_PREFIX}${version}`;

export interface ManifestFile {
  name: string;
  size: number;
  sha256: string;
  /** How many chunks the file takes (the chunks of the files follow each other in this order). */
  chunks: number;
}

export interface ModelManifest {
  format: 1;
  version: string;
  files: ManifestFile[];
  chunkBytes: number;
  /** Chunks over all files. */
  chunks: number;
  /** Bytes over all files. */
  bytes: number;
  /** SHA-256 of all files' bytes, one after the other in `files` order. */
  sha256: string;
  /** Offset of chunk 0 on `<group>.models`. */
  firstOffset: number;
  /** The version.json content. */
  info: VersionInfo;
  publishedAt: string;
}

/** The manifest as indexed on `<group>.versions`: plus where the manifest itself is on `<group>.models`. */
export interface IndexedManifest extends ModelManifest {
  manifestOffset: number;
}

export type TransferFailure = 'chunk-missing' | 'chunk-unexpected' | 'checksum-mismatch' | 'size-mismatch' | 'manifest-mismatch' | 'manifest-invalid' | 'version-gone';

/** A version that could not be materialised, with a reason a test or an operator can tell apart. */
export class ModelTransferError extends AppError {
  constructor(
    readonly reason: TransferFailure,
    readonly version: string,
    detail: string,
  ) {
    super('MODEL_TRANSFER_FAILED', `model version ${version} not loaded from the models topic (${reason}): ${detail}`, { field: 'version' });
  }
}

const SHA256 = /^[0-9a-f]{64}$/;
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$/;

/**
 * A manifest from JSON (the topic or the index), checked field by field: a record that is not one
 * is `manifest-invalid`, naming the field. `version`: the version it must be for.
 */
export function parseManifest(value: Buffer | string | null, version?: string): IndexedManifest | ModelManifest {
  const v = version ?? '(unknown)';
  const bad = (why: string): never => {
    throw new ModelTransferError('manifest-invalid', v, why);
  };
  if (value === null) return bad('no manifest record');
  let m: Partial<IndexedManifest>;
  try {
    m = JSON.parse(value.toString()) as Partial<IndexedManifest>;
  } catch (err) {
    return bad(`not JSON (${(err as Error).message})`);
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return bad('not a JSON object');
  if (m.format !== 1) bad(`format ${JSON.stringify(m.format)} is not 1`);
  if (typeof m.version !== 'string' || (version !== undefined && m.version !== version)) bad(`version ${JSON.stringify(m.version)} is not ${JSON.stringify(version)}`);
  const count = (name: keyof IndexedManifest) => {
    const x = m[name];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) bad(`${name} ${JSON.stringify(x)} is not a whole number >= 0`);
  };
  count('chunkBytes');
  count('chunks');
  count('bytes');
  count('firstOffset');
  if ('manifestOffset' in m) count('manifestOffset');
  if (!m.chunkBytes) bad('chunkBytes is 0');
  if (typeof m.sha256 !== 'string' || !SHA256.test(m.sha256)) bad('sha256 is not 64 hex digits');
  if (!Array.isArray(m.files) || m.files.length === 0) bad('files is not a non-empty list');
  let chunks = 0;
  let bytes = 0;
  for (const [i, f] of m.files!.entries()) {
    if (f === null || typeof f !== 'object') bad(`files[${i}] is not an object`);
    if (typeof f.name !== 'string' || !FILE_NAME.test(f.name)) bad(`files[${i}].name ${JSON.stringify(f.name)} is not a plain file name`);
    if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) bad(`files[${i}].size is not a whole number >= 0`);
    if (typeof f.sha256 !== 'string' || !SHA256.test(f.sha256)) bad(`files[${i}].sha256 is not 64 hex digits`);
    if (f.chunks !== Math.max(1, Math.ceil(f.size / m.chunkBytes!))) bad(`files[${i}].chunks ${f.chunks} does not fit its size ${f.size}`);
    chunks += f.chunks;
    bytes += f.size;
  }
  if (new Set(m.files!.map((f) => f.name)).size !== m.files!.length) bad('files has a name twice');
  if (!m.files!.some((f) => f.name === 'version.json')) bad('files has no version.json');
  if (chunks !== m.chunks) bad(`chunks ${m.chunks} is not the files' ${chunks}`);
  if (bytes !== m.bytes) bad(`bytes ${m.bytes} is not the files' ${bytes}`);
  if (m.info === null || typeof m.info !== 'object' || m.info.version !== m.version) bad('info is not the version.json of this version');
  return m as IndexedManifest;
}

/**
 * Cuts the files of a version folder into chunks, in manifest order (sorted names, dot files —
 * temporary ones — left out), calling `onChunk` with each (a fresh buffer: it may be kept). An
 * empty file is one empty chunk, so every file has at least one. Returns the manifest's file part.
 */
export async function chunkFolder(
  dir: string,
  chunkBytes: number,
  onChunk: (n: number, value: Buffer) => Promise<void>,
): Promise<Pick<ModelManifest, 'files' | 'chunks' | 'bytes' | 'sha256' | 'chunkBytes'>> {
  const names = readdirSync(dir)
    .filter((name) => !name.startsWith('.') && statSync(join(dir, name)).isFile())
    .sort();
  const whole = createHash('sha256');
  const files: ManifestFile[] = [];
  let n = 0;
  let bytes = 0;
  for (const name of names) {
    const fh = await open(join(dir, name), 'r');
    const hash = createHash('sha256');
    let size = 0;
    let chunks = 0;
    try {
      for (;;) {
        const buf = Buffer.allocUnsafe(chunkBytes);
        let filled = 0;
        // A read may return less than asked before the end: fill the chunk.
        while (filled < chunkBytes) {
          const { bytesRead } = await fh.read(buf, filled, chunkBytes - filled, null);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        if (filled === 0 && chunks > 0) break;
        const value = filled === chunkBytes ? buf : buf.subarray(0, filled);
        hash.update(value);
        whole.update(value);
        await onChunk(n++, value);
        chunks++;
        size += filled;
        if (filled < chunkBytes) break;
      }
    } finally {
      await fh.close();
    }
    files.push({ name, size, sha256: hash.digest('hex'), chunks });
    bytes += size;
  }
  return { files, chunks: n, bytes, sha256: whole.digest('hex'), chunkBytes };
}

/**
 * Writes a version's chunks, as they arrive in offset order, into a folder, checking them against
 * the manifest: a chunk number out of sequence is a missing chunk (or one of another publication),
 * a file's bytes must have its size and SHA-256, all bytes the whole SHA-256. Holds one chunk at a
 * time.
 */
export class VersionAssembler {
  private next = 0;
  private fileIndex = 0;
  private chunkInFile = 0;
  private fd: number | undefined;
  private fileHash: Hash | undefined;
  private fileBytes = 0;
  private readonly whole = createHash('sha256');
  private readonly prefix: string;

  constructor(
    readonly manifest: ModelManifest,
    readonly dir: string,
  ) {
    this.prefix = `${manifest.version}/`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private fail(reason: TransferFailure, detail: string): never {
    this.close();
    throw new ModelTransferError(reason, this.manifest.version, detail);
  }

  /** One record of `<group>.models`; records of other keys (other versions, the manifest) are not this method's. */
  add(key: string, value: Buffer | null): void {
    if (!key.startsWith(this.prefix) || key === manifestKey(this.manifest.version)) return;
    const n = Number(key.slice(this.prefix.length));
    if (!Number.isSafeInteger(n) || n < 0) return this.fail('chunk-unexpected', `record key ${JSON.stringify(key)} is not a chunk key`);
    if (n < this.next) return; // a chunk again (a producer's retry after a lost acknowledgement): the first one counts
    if (n >= this.manifest.chunks) return this.fail('chunk-unexpected', `chunk ${n} is beyond the manifest's ${this.manifest.chunks} chunks`);
    if (n > this.next) return this.fail('chunk-missing', `chunk ${this.next} of ${this.manifest.chunks} is missing (the next one on the topic is ${n})`);
    if (value === null) return this.fail('chunk-missing', `chunk ${n} of ${this.manifest.chunks} is a tombstone (the version was pruned)`);
    const file = this.manifest.files[this.fileIndex]!;
    if (this.fd === undefined) {
      this.fd = openSync(join(this.dir, file.name), 'w', 0o600);
      this.fileHash = createHash('sha256');
      this.fileBytes = 0;
    }
    this.fileBytes += value.length;
    if (this.fileBytes > file.size) return this.fail('size-mismatch', `${file.name} is longer than the manifest's ${file.size} bytes (at chunk ${n})`);
    writeSync(this.fd, value);
    this.fileHash!.update(value);
    this.whole.update(value);
    this.next++;
    if (++this.chunkInFile === file.chunks) {
      closeSync(this.fd);
      this.fd = undefined;
      const sha = this.fileHash!.digest('hex');
      if (this.fileBytes !== file.size) this.fail('size-mismatch', `${file.name} has ${this.fileBytes} bytes, the manifest says ${file.size}`);
      if (sha !== file.sha256) this.fail('checksum-mismatch', `${file.name}'s SHA-256 is ${sha}, the manifest says ${file.sha256}`);
      this.fileIndex++;
      this.chunkInFile = 0;
    }
  }

  /** After the last record: every chunk arrived and the whole SHA-256 matches; `topicManifest` (the manifest record on `<group>.models`) must be the index's. */
  finish(topicManifest: Buffer | null | undefined): void {
    if (this.next < this.manifest.chunks) this.fail('chunk-missing', `${this.manifest.chunks - this.next} of ${this.manifest.chunks} chunks are missing, from chunk ${this.next}`);
    const sha = this.whole.digest('hex');
    if (sha !== this.manifest.sha256) this.fail('checksum-mismatch', `the files' SHA-256 is ${sha}, the manifest says ${this.manifest.sha256}`);
    if (topicManifest === undefined || topicManifest === null) this.fail('manifest-mismatch', `no manifest record ${manifestKey(this.manifest.version)} at the indexed offset on the models topic`);
    let onTopic: ModelManifest;
    try {
      onTopic = parseManifest(topicManifest, this.manifest.version);
    } catch (err) {
      return this.fail('manifest-mismatch', `the manifest on the models topic is not valid: ${(err as Error).message}`);
    }
    for (const k of ['sha256', 'chunks', 'bytes', 'chunkBytes', 'firstOffset'] as const) {
      if (onTopic[k] !== this.manifest[k]) this.fail('manifest-mismatch', `the manifest on the models topic has ${k} ${onTopic[k]}, the index ${this.manifest[k]}`);
    }
    if (JSON.stringify(onTopic.files) !== JSON.stringify(this.manifest.files)) this.fail('manifest-mismatch', "the manifest on the models topic lists other files than the index's");
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface PublishOptions {
  chunkBytes?: number;
  chunksPerSend?: number;
  compression?: 'none' | 'gzip';
}

/**
 * Publishes the version folder `dir` (its files as they are) to `<group>.models` and indexes it on
 * `<group>.versions`, every write acknowledged by all in-sync replicas; returns the indexed
 * manifest. The producer should be one of its own (idempotent, one request in flight): a model's
 * hundreds of MB would otherwise queue ahead of the service's ingestion.
 */
export async function publishVersion(producer: Sender, group: string, dir: string, info: VersionInfo, o: PublishOptions = {}): Promise<IndexedManifest> {
  const topic = topicName(group, 'models');
  const chunkBytes = o.chunkBytes ?? CHUNK_BYTES;
  const perSend = o.chunksPerSend ?? CHUNKS_PER_SEND;
  const compression = o.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  let pending: { key: string; value: Buffer; partition: number }[] = [];
  let firstOffset: number | undefined;
  const flush = async () => {
    if (pending.length === 0) return;
    const [meta] = await producer.send({ topic, acks: -1, compression, messages: pending });
    firstOffset ??= Number(meta?.baseOffset);
    pending = [];
  };
  const parts = await chunkFolder(dir, chunkBytes, async (n, value) => {
    pending.push({ key: chunkKey(info.version, n), value, partition: 0 });
    if (pending.length >= perSend) await flush();
  });
  await flush();
  if (firstOffset === undefined || !Number.isSafeInteger(firstOffset)) throw new Error(`publishing ${info.version}: the broker returned no offset for its first chunk`);
  const onDisk = JSON.parse(readFileSync(join(dir, 'version.json'), 'utf8')) as VersionInfo;
  const manifest: ModelManifest = { format: 1, version: info.version, ...parts, firstOffset, info: onDisk, publishedAt: new Date().toISOString() };
  const [meta] = await producer.send({ topic, acks: -1, messages: [{ key: manifestKey(info.version), value: JSON.stringify(manifest), partition: 0 }] });
  const indexed: IndexedManifest = { ...manifest, manifestOffset: Number(meta?.baseOffset) };
  await producer.send({ topic: topicName(group, 'versions'), acks: -1, messages: [{ key: indexKey(info.version), value: JSON.stringify(indexed), partition: 0 }] });
  return indexed;
}

/**
 * Reads an indexed version from `<group>.models` into `<registryDir>/<version>/` (a temporary
 * folder renamed into place once every check passed; removed when one failed). Throws
 * ModelTransferError naming the reason.
 */
export async function materialiseVersion(kafka: KafkaClient, group: string, manifest: IndexedManifest, registryDir: string, log?: Logger): Promise<{ bytes: number; ms: number }> {
  const t0 = performance.now();
  const topic = topicName(group, 'models');
  const target = join(registryDir, manifest.version);
  if (existsSync(join(target, 'version.json'))) return { bytes: 0, ms: 0 };
  mkdirSync(registryDir, { recursive: true, mode: 0o700 });
  const tmp = join(registryDir, `.${manifest.version}.fetch-${process.pid}-${Date.now().toString(36)}`);
  const admin = kafka.admin();
  await admin.connect();
  let range: { low: number; high: number } | undefined;
  try {
    range = (await topicOffsets(admin, topic)).find((p) => p.partition === 0);
  } finally {
    await admin.disconnect();
  }
  if (!range || range.high <= manifest.manifestOffset || range.low > manifest.firstOffset) {
    throw new ModelTransferError('version-gone', manifest.version, `${topic} holds offsets ${range?.low ?? 0}..${(range?.high ?? 0) - 1}, the version's records are at ${manifest.firstOffset}..${manifest.manifestOffset}`);
  }
  const assembler = new VersionAssembler(manifest, tmp);
  let topicManifest: Buffer | null | undefined;
  // The first refusal, kept: an error thrown out of a kafkajs batch handler is retried by kafkajs
  // (the batch delivered again) rather than passed to the reader, so the reader ignores the rest.
  let refused: unknown;
  try {
    const { readPartition } = await import('../kafka/read-partition.js');
    await readPartition(kafka, {
      topic,
      partition: 0,
      from: manifest.firstOffset,
      until: manifest.manifestOffset,
      groupPrefix: `streamrec.${group}.models-read`,
      // At the measured ~60 MB/s, with a wide margin for a busy broker: 1 min + 1 s per MB.
      timeoutMs: 60_000 + Math.ceil(manifest.bytes / 1e6) * 1000,
      onBatch: async (messages: KafkaMessage[]) => {
        if (refused) return;
        try {
          for (const m of messages) {
            const key = m.key?.toString() ?? '';
            if (key === manifestKey(manifest.version)) {
              if (Number(m.offset) === manifest.manifestOffset) topicManifest = m.value;
            } else assembler.add(key, m.value);
          }
        } catch (err) {
          refused = err;
        }
      },
    });
    if (refused) throw refused;
    assembler.finish(topicManifest);
    for (const f of manifest.files) chmodSync(join(tmp, f.name), 0o600);
    chmodSync(tmp, 0o700);
    // Another fetch of the same version (a second watcher in this process) may have won the race.
    if (existsSync(join(target, 'version.json'))) rmSync(tmp, { recursive: true, force: true });
    else renameSync(tmp, target);
  } catch (err) {
    assembler.close();
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const ms = Math.round(performance.now() - t0);
  log?.info({ version: manifest.version, bytes: manifest.bytes, chunks: manifest.chunks, ms }, 'model version materialised from the models topic');
  return { bytes: manifest.bytes, ms };
}

/**
 * How many versions stay on `<group>.models`: the served one, the last PROTECTED_PREDECESSORS of
 * its `previous` history (the rollback targets), and the newest KEEP_CANDIDATES others (trained,
 * not yet promoted: `versions promote` can still serve them). Every other version gets tombstones.
 */
export const PROTECTED_PREDECESSORS = 3;
export const KEEP_CANDIDATES = 3;

/** The versions to prune: those beyond the bound (see PROTECTED_PREDECESSORS), oldest first. */
export function versionsToPrune(indexed: readonly Pick<ModelManifest, 'version' | 'info'>[], serving: ServedVersions | undefined): string[] {
  const keep = new Set<string>();
  if (serving) {
    keep.add(serving.version);
    for (const v of serving.previous.slice(-PROTECTED_PREDECESSORS)) keep.add(v);
    // A running traffic split's arms: every instance (and one that joins later) must fetch them.
    for (const arm of serving.split?.arms ?? []) keep.add(arm.version);
  }
  const byAge = [...indexed].sort((a, b) => (a.info.createdAt < b.info.createdAt ? -1 : a.info.createdAt > b.info.createdAt ? 1 : a.version < b.version ? -1 : 1));
  const others = byAge.filter((m) => !keep.has(m.version));
  return others.slice(0, Math.max(0, others.length - KEEP_CANDIDATES)).map((m) => m.version);
}

/** Tombstones every chunk key and the manifest of each pruned version on `<group>.models`, then its index entry on `<group>.versions`. */
/** What pruning keeps of the deployment's announcement (a ServingRecord). */
export interface ServedVersions {
  version: string;
  previous: string[];
  split?: { arms: readonly { version: string }[] } | undefined;
}

export async function pruneModels(producer: Sender, group: string, manifests: readonly ModelManifest[], serving: ServedVersions | undefined, log?: Logger): Promise<string[]> {
  const prune = versionsToPrune(manifests, serving);
  for (const version of prune) {
    const m = manifests.find((x) => x.version === version)!;
    const keys = [...Array.from({ length: m.chunks }, (_, n) => chunkKey(version, n)), manifestKey(version)];
    // 10k tombstones (~40 bytes each) per request.
    for (let i = 0; i < keys.length; i += 10_000) {
      await producer.send({ topic: topicName(group, 'models'), acks: -1, messages: keys.slice(i, i + 10_000).map((key) => ({ key, value: null, partition: 0 })) });
    }
    await producer.send({ topic: topicName(group, 'versions'), acks: -1, messages: [{ key: indexKey(version), value: null, partition: 0 }] });
    log?.info({ version, chunks: m.chunks, bytes: m.bytes }, 'model version pruned from the models topic (tombstones)');
  }
  return prune;
}
