/**
 * read_committed for partitions with several transactional writers, which kafkajs 2.2.4 (pinned)
 * gets wrong: its filter (consumer/filterAbortedMessages.js) takes the broker's aborted-transaction
 * list as sorted by first offset and steps into at most one aborted transaction per record, but the
 * broker lists aborted transactions in the order they were aborted. With two writers interleaving
 * in one partition it then returns records of an aborted transaction, or drops committed ones
 * (test/integration/kafkajs-aborted.test.ts shows the first).
 *
 * `<group>.interactions-repartition` has one writer per input partition in each of its partitions,
 * so the processor needs the Java consumer's rule: aborted transactions sorted by first offset;
 * every record at or past a transaction's first offset puts its producer in the aborted set; the
 * producer's abort marker takes it out; a transactional record of a producer in the set is aborted.
 *
 * `installReadCommittedFix()` applies that rule where the fetch response is decoded (the decode
 * function of kafkajs's Fetch v4-v11 response modules, looked up per request): each aborted record is
 * turned into a control record (which kafkajs never hands out, but counts in the batch's last
 * offset, so the consumer moves past it) and the aborted list is emptied, so kafkajs's own filter
 * has nothing to do. It changes every kafkajs consumer of the process, for the better: a partition
 * with one writer comes out as before.
 */
import { createRequire } from 'node:module';

export interface FetchedRecord {
  offset: string;
  key?: Buffer | null;
  isControlRecord?: boolean;
  batchContext?: { producerId?: string | number; inTransaction?: boolean };
  /** Set on a record this module found aborted. */
  abortedTransaction?: boolean;
}

export interface AbortedTransaction {
  producerId: string;
  firstOffset: string;
}

const ABORT_MARKER_KEY = Buffer.from([0, 0, 0, 0]);

/**
 * Marks the records of aborted transactions among `records` (in offset order, as fetched): they
 * become control records, with `abortedTransaction` set. Returns how many.
 */
export function markAbortedRecords(records: FetchedRecord[], aborted: readonly AbortedTransaction[] | null | undefined): number {
  if (!aborted || aborted.length === 0) return 0;
  const queue = [...aborted].sort((a, b) => {
    const d = BigInt(a.firstOffset) - BigInt(b.firstOffset);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  });
  const open = new Set<string>();
  let next = 0;
  let n = 0;
  for (const r of records) {
    const offset = BigInt(r.offset);
    while (next < queue.length && BigInt(queue[next]!.firstOffset) <= offset) open.add(String(queue[next++]!.producerId));
    const producer = String(r.batchContext?.producerId ?? '');
    if (r.isControlRecord) {
      if (r.key && Buffer.from(r.key).equals(ABORT_MARKER_KEY)) open.delete(producer);
      continue;
    }
    if (r.batchContext?.inTransaction && open.has(producer)) {
      r.isControlRecord = true;
      r.abortedTransaction = true;
      n++;
    }
  }
  return n;
}

interface FetchPartition {
  abortedTransactions?: AbortedTransaction[];
  messages?: FetchedRecord[];
}
type Decode = (raw: Buffer) => Promise<{ responses?: { partitions?: FetchPartition[] }[] }>;

const FIXED = Symbol.for('streamrec.readCommittedFix');
let installed = false;

/** Patches kafkajs's Fetch response decoding (v4-v11) once per process; see above. */
export function installReadCommittedFix(): void {
  if (installed) return;
  const require = createRequire(import.meta.url);
  for (let v = 4; v <= 11; v++) {
    const mod = require(`kafkajs/src/protocol/requests/fetch/v${v}/response.js`) as { decode: Decode & { [FIXED]?: true } };
    if (typeof mod.decode !== 'function' || mod.decode[FIXED]) continue;
    const original = mod.decode;
    const decode = (async (raw: Buffer) => {
      const data = await original(raw);
      for (const topic of data.responses ?? []) {
        for (const p of topic.partitions ?? []) {
          if (p.abortedTransactions && p.abortedTransactions.length > 0) {
            markAbortedRecords(p.messages ?? [], p.abortedTransactions);
            p.abortedTransactions = [];
          }
        }
      }
      return data;
    }) as Decode & { [FIXED]?: true };
    decode[FIXED] = true;
    mod.decode = decode;
  }
  installed = true;
}
