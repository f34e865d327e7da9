/**
 * `streamrec import`: a file, as it is, into a dataset group's topic (the streaming path) or into an
 * offline dataset folder (for `streamrec train --data`). Streams: memory stays flat whatever the
 * file size. Every rejected row goes to a rejects file with its line number and reason.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Producer } from '../kafka/kafkajs.js';
import type { Codecs, Interaction, Item, User } from '../serde/avro.js';
import { readRecords, type KindRecords, type ReadOptions } from './read.js';
import type { Kind } from './convert.js';

export interface RecordSink<R> {
  write(record: R): Promise<void>;
  close(): Promise<void>;
}

export interface ImportTotals {
  kind: Kind;
  file: string;
  accepted: number;
  rejected: number;
  rejectsFile: string;
  ms: number;
}

async function writeLine(out: WriteStream, line: string): Promise<void> {
  if (!out.write(line)) await once(out, 'drain');
}

async function closeStream(out: WriteStream): Promise<void> {
  out.end();
  await once(out, 'finish');
}

/** Flat JSON Lines (`<dir>/<kind>.jsonl`) that `readRecords` reads back as they are. */
export function offlineSink<K extends Kind>(dir: string, kind: K): RecordSink<KindRecords[K]> {
  mkdirSync(dir, { recursive: true });
  const out = createWriteStream(join(dir, `${kind}.jsonl`));
  return {
    write: (r) => writeLine(out, `${JSON.stringify(flatten(r as Interaction | Item | User))}\n`),
    close: () => closeStream(out),
  };
}

/** Flattens CONTEXT / METADATA into columns, as an input file would have them. */
function flatten(r: Interaction | Item | User): Record<string, unknown> {
  const { CONTEXT, METADATA, IMPRESSION, ...rest } = r as Partial<Interaction & Item & User>;
  const flat: Record<string, unknown> = { ...rest, ...(CONTEXT ?? {}) };
  if (IMPRESSION && IMPRESSION.length > 0) flat.IMPRESSION = IMPRESSION.join('|');
  for (const [k, v] of Object.entries(METADATA ?? {})) flat[k] = Array.isArray(v) ? v.join('|') : v;
  return flat;
}

/** Avro records to `topic`, keyed by the record's id, in batches. */
export function topicSink<K extends Kind>(producer: Producer, topic: string, codecs: Codecs, kind: K, batchSize = 1000): RecordSink<KindRecords[K]> {
  let batch: { key: string; value: Buffer }[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const messages = batch;
    batch = [];
    await producer.send({ topic, messages });
  };
  return {
    write: async (r) => {
      if (kind === 'interactions') batch.push({ key: (r as Interaction).USER_ID, value: codecs.Interaction.encode(r as Interaction) });
      else if (kind === 'items') batch.push({ key: (r as Item).ITEM_ID, value: codecs.Item.encode(r as Item) });
      else batch.push({ key: (r as User).USER_ID, value: codecs.User.encode(r as User) });
      if (batch.length >= batchSize) await flush();
    },
    close: flush,
  };
}

export async function runImport<K extends Kind>(
  file: string,
  options: ReadOptions<K>,
  sink: RecordSink<KindRecords[K]>,
  rejectsFile: string,
): Promise<ImportTotals> {
  const t0 = Date.now();
  const rejects = createWriteStream(rejectsFile);
  let accepted = 0;
  let rejected = 0;
  try {
    for await (const r of readRecords(file, options)) {
      if (r.ok) {
        await sink.write(r.record);
        accepted++;
      } else {
        rejected++;
        await writeLine(rejects, `${JSON.stringify({ line: r.line, field: r.field ?? null, reason: r.reason, raw: r.raw })}\n`);
      }
    }
  } finally {
    await sink.close();
    await closeStream(rejects);
  }
  return { kind: options.kind, file, accepted, rejected, rejectsFile, ms: Date.now() - t0 };
}
