/**
 * Replaying `<group>.changelog` into a partition's store: one code path for the two readers of the
 * changelog, the task that restores its store up to its barrier when it takes a partition over
 * (src/stream/processor.ts) and the standby replica that follows it all along (src/stream/standby.ts).
 * Records are the state's keys and values as the owner committed them (a null value deletes);
 * barrier records (written by each new owner to fence the previous one) are not state.
 */
import { codecs as stateCodecs, keys } from '../state/model.js';
import type { KafkaMessage } from '../kafka/kafkajs.js';
import type { KeyValueStore, WriteOp } from '../state/store.js';

export const BARRIER_KEY = '__barrier';

/** Changelog records as store writes (a null value deletes; barriers are not state). */
export function changelogOps(messages: KafkaMessage[]): WriteOp[] {
  const ops: WriteOp[] = [];
  for (const m of messages) {
    const key = m.key?.toString();
    if (key === undefined || key === BARRIER_KEY) continue;
    ops.push(m.value ? { type: 'put', key, value: m.value } : { type: 'del', key });
  }
  return ops;
}

/**
 * Writes a batch of changelog records to `store` in one write batch, with the store's checkpoint
 * (the next changelog offset it reflects) when given, so a crash never leaves the two apart.
 * Returns the number of state records written.
 */
export async function replayChangelog(store: KeyValueStore, messages: KafkaMessage[], checkpoint?: number): Promise<number> {
  const ops = changelogOps(messages);
  const n = ops.length;
  if (checkpoint !== undefined) ops.push({ type: 'put', key: keys.checkpoint, value: stateCodecs.offset.encode(checkpoint) });
  if (ops.length > 0) await store.write(ops);
  return n;
}

/** The changelog offset a store reflects (its checkpoint), 0 for a new store. */
export async function storeCheckpoint(store: KeyValueStore): Promise<number> {
  const bytes = await store.get(keys.checkpoint);
  return bytes ? stateCodecs.offset.decode(bytes) : 0;
}
