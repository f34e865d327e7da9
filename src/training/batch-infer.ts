/**
 * Batch inference in Amazon Personalize's line format, streaming (JSON Lines in, JSON Lines out):
 *   {"userId": "u1"}                          -> recommendations for the user
 *   {"itemId": "i1"}                          -> related items
 *   {"userId": "u1", "itemList": ["a", ...]}  -> personalized ranking (unknown items last)
 * Each output line is {"input": {...}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null},
 * or with `output: null` and `error` saying what was wrong with that line; a bad line never stops the run.
 * A user the model does not know gets popular items. Under the `exclude` seen-items rule a user's
 * list leaves out every item of the user's seen list in the model folder (the whole training
 * history up to state.maxSeenItemsPerUser distinct items), not only the latest history.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { seenOf, type ModelBundle } from './model-files.js';

export interface BatchResult {
  lines: number;
  errors: number;
}

export function inferLine(bundle: ModelBundle, line: string, numResults: number): { input: unknown; output: { recommendedItems: string[]; scores: number[] } | null; error: string | null } {
  let input: unknown;
  try {
    input = JSON.parse(line);
  } catch (err) {
    return { input: line, output: null, error: `not JSON: ${(err as Error).message}` };
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return { input, output: null, error: 'expected an object with userId or itemId' };
  const { userId, itemId, itemList } = input as { userId?: unknown; itemId?: unknown; itemList?: unknown };
  const fail = (error: string) => ({ input, output: null, error });
  const ok = (items: { itemId: string; score: number }[]) => ({
    input,
    output: { recommendedItems: items.map((s) => s.itemId), scores: items.map((s) => s.score) },
    error: null,
  });
  if (userId !== undefined && typeof userId !== 'string') return fail('userId must be a string');
  if (itemId !== undefined && typeof itemId !== 'string') return fail('itemId must be a string');
  const history = typeof userId === 'string' ? (bundle.histories.get(userId) ?? []) : [];
  if (itemList !== undefined) {
    if (typeof userId !== 'string') return fail('itemList needs a userId');
    if (!Array.isArray(itemList) || !itemList.every((i) => typeof i === 'string') || itemList.length === 0 || itemList.length > 500) {
      return fail('itemList must be 1 to 500 item ids (strings)');
    }
    const scores = bundle.model.score(history, itemList as string[]);
    const known = (itemList as string[]).map((id, k) => ({ itemId: id, score: scores[k], k })).filter((x) => x.score !== undefined);
    known.sort((a, b) => b.score! - a.score! || a.k - b.k);
    const unknown = (itemList as string[]).filter((_, k) => scores[k] === undefined).map((id) => ({ itemId: id, score: 0 }));
    return ok([...known.map((x) => ({ itemId: x.itemId, score: x.score! })), ...unknown]);
  }
  if (typeof userId === 'string') {
    const exclude = bundle.excludeSeen ? seenOf(bundle, userId) : undefined;
    return ok(bundle.model.recommend({ history, numResults, ...(exclude ? { exclude } : {}) }));
  }
  if (typeof itemId === 'string') {
    const related = bundle.model.related(itemId, numResults);
    return related ? ok(related) : fail(`item ${JSON.stringify(itemId)} is not in the training data`);
  }
  return fail('expected userId, itemId, or userId with itemList');
}

export async function batchInfer(bundle: ModelBundle, inputPath: string, outputPath: string, numResults: number): Promise<BatchResult> {
  const out = createWriteStream(outputPath);
  const lines = createInterface({ input: createReadStream(inputPath), crlfDelay: Infinity });
  let n = 0;
  let errors = 0;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    n++;
    const result = inferLine(bundle, line, numResults);
    if (result.error !== null) errors++;
    if (!out.write(`${JSON.stringify(result)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { lines: n, errors };
}
