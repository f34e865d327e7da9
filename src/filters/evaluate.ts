/**
 * Evaluator for parsed Personalize filter expressions (pure code, no I/O).
 *
 * `bindFilter(parsed, input)` does all per-request work once (placeholder values, the current user's
 * IF outcome, sets of interacted items) and returns `keep(itemId, item)`, which allocates nothing.
 *
 * Semantics:
 * - INCLUDE keeps an item iff its condition holds; EXCLUDE drops it iff it holds. Chained stages
 *   (`|`) must all keep an item. AND binds tighter than OR.
 * - Items.ITEM_ID is the candidate's id (no item record needed); Items.CREATION_TIMESTAMP is the
 *   record's top-level field (epoch ms; null = missing); any other Items.NAME is a METADATA key,
 *   matched exactly first, then case-insensitively.
 * - Multi-valued (array) field: IN holds if any element is in the list, NOT IN if none is, `=` and
 *   <, <=, >, >= if any element satisfies it.
 * - A missing field, or a missing item record: IN, = and comparisons are false, NOT IN is true.
 * - Equality / ordering: number vs number numerically; string vs string as strings (exact,
 *   code-unit order); a string field vs a number literal compares numerically if the string parses
 *   as a number, else is false; a number field vs a string literal likewise (the literal must
 *   parse as a number). A boolean field equals the string literal "true" / "false" (any case);
 *   ordering on booleans is false.
 * - Items.CREATION_TIMESTAMP: a literal below 1e11 is epoch seconds (Personalize's unit) and is
 *   multiplied by 1000; larger literals are taken as epoch ms.
 * - Interactions.EVENT_TYPE IN (...) / = v: true for an item iff the current user has an interaction
 *   with it whose type is in the list (exact, case-sensitive; "*" matches any type). NOT IN: true iff
 *   the user has no interaction with the item of those types.
 * - IF CurrentUser.F op v is evaluated once against the user's METADATA (same comparison rules): the
 *   stage applies only when it holds. A missing user or a missing field skips the stage (the stage
 *   does not filter), whatever the operator (NOT IN included).
 * - $PARAM values (filterValues: name -> string) use Personalize's format: comma-separated values,
 *   each a double-quoted string (\" and \\ escapes) or a number, e.g. "\"Comedy\",\"Drama\"" or "20".
 *   A placeholder inside an IN / NOT IN list expands to all its values; elsewhere it needs exactly
 *   one. A missing or unparsable value, an empty value, several values where one is needed, or a key
 *   that is not a parameter of the filter -> AppError FILTER_VALUES_INVALID (field filterValues.NAME).
 */
import { AppError } from '../errors/index.js';
import type { Item, MetadataValue } from '../serde/avro.js';
import type { FilterCondition, FilterOp, FilterTerm, FilterValue, ParsedFilter } from './parse.js';

export interface FilterInput {
  user?: { METADATA: Record<string, unknown> } | undefined;
  interactions: readonly { item: string; type: string }[];
  values?: Record<string, string> | undefined;
}

export interface BoundFilter {
  /** true when some stage needs item records (so the caller fetches them) */
  needsItems: boolean;
  keep(itemId: string, item: Item | undefined): boolean;
}

/** Timestamp literals below this are epoch seconds. */
const SECONDS_THRESHOLD = 1e11;

/** A resolved literal: its string (for string literals) and its number (NaN if not numeric). */
export interface FilterLiteral {
  str: string | undefined;
  num: number;
}

type FieldValue = MetadataValue | null | undefined;
type ValuePred = (v: FieldValue) => boolean;
type ItemPred = (itemId: string, item: Item | undefined) => boolean;

const NUMERIC_RE = /^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$/;

/** The number a string spells, or NaN. */
function numericOf(s: string): number {
  return NUMERIC_RE.test(s) ? Number(s) : NaN;
}

function valuesError(name: string, message: string): AppError {
  return new AppError('FILTER_VALUES_INVALID', message, { field: `filterValues.${name}` });
}

/**
 * Parses one filterValues entry: comma-separated double-quoted strings or numbers.
 * Throws FILTER_VALUES_INVALID naming filterValues.NAME.
 */
export function parseFilterValues(name: string, raw: unknown): FilterLiteral[] {
  if (typeof raw !== 'string') throw valuesError(name, `filterValues.${name} must be a string of comma-separated "quoted" strings or numbers`);
  const out: FilterLiteral[] = [];
  const s = raw;
  let i = 0;
  const skip = (): void => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const bad = (what: string): AppError =>
    valuesError(name, `filterValues.${name} at position ${i + 1}: expected ${what}, found ${i >= s.length ? 'end of value' : `"${s.slice(i, i + 20)}"`}`);
  skip();
  if (i >= s.length) throw valuesError(name, `filterValues.${name} is empty; give one or more "quoted" strings or numbers`);
  for (;;) {
    skip();
    if (s[i] === '"') {
      let v = '';
      let j = i + 1;
      for (;;) {
        if (j >= s.length) throw valuesError(name, `filterValues.${name} at position ${i + 1}: unterminated string (expected a closing ")`);
        const c = s[j]!;
        if (c === '"') break;
        if (c === '\\' && (s[j + 1] === '"' || s[j + 1] === '\\')) {
          v += s[j + 1];
          j += 2;
          continue;
        }
        v += c;
        j++;
      }
      out.push({ str: v, num: numericOf(v) });
      i = j + 1;
    } else {
      const m = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?/.exec(s.slice(i));
      if (!m) throw bad('a double-quoted string or a number');
      out.push({ str: undefined, num: Number(m[0]) });
      i += m[0].length;
    }
    skip();
    if (i >= s.length) return out;
    if (s[i] !== ',') throw bad(', or end of value');
    i++;
  }
}

/** Looks a key up exactly, then case-insensitively. */
function lookup(md: Record<string, unknown>, name: string, lower: string): unknown {
  const exact = md[name];
  if (exact !== undefined) return exact;
  for (const k in md) {
    if (k.length === lower.length && k.toLowerCase() === lower) return md[k];
  }
  return undefined;
}

interface LitSet {
  strs: Set<string>;
  /** Number literals (a string field matches one if it parses to it). */
  numLits: Set<number>;
  /** Number literals and string literals that parse as numbers (a number field matches any). */
  nums: Set<number>;
  hasTrue: boolean;
  hasFalse: boolean;
}

function litSet(lits: FilterLiteral[]): LitSet {
  const s: LitSet = { strs: new Set(), numLits: new Set(), nums: new Set(), hasTrue: false, hasFalse: false };
  for (const l of lits) {
    if (l.str !== undefined) {
      s.strs.add(l.str);
      const lower = l.str.toLowerCase();
      if (lower === 'true') s.hasTrue = true;
      if (lower === 'false') s.hasFalse = true;
    } else {
      s.numLits.add(l.num);
    }
    if (!Number.isNaN(l.num)) s.nums.add(l.num);
  }
  return s;
}

function matchScalar(v: unknown, s: LitSet): boolean {
  switch (typeof v) {
    case 'string':
      return s.strs.has(v) || (s.numLits.size > 0 && s.numLits.has(numericOf(v)));
    case 'number':
      return s.nums.has(v);
    case 'boolean':
      return v ? s.hasTrue : s.hasFalse;
    default:
      return false;
  }
}

function matchAny(v: FieldValue, s: LitSet): boolean {
  if (v === undefined || v === null) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (matchScalar(v[i], s)) return true;
    return false;
  }
  return matchScalar(v, s);
}

function ordered(op: FilterOp, a: number | string, b: number | string): boolean {
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

function compareScalar(v: unknown, op: FilterOp, l: FilterLiteral): boolean {
  if (typeof v === 'number') return !Number.isNaN(l.num) && ordered(op, v, l.num);
  if (typeof v === 'string') {
    if (l.str !== undefined) return ordered(op, v, l.str);
    const n = numericOf(v);
    return !Number.isNaN(n) && ordered(op, n, l.num);
  }
  return false;
}

function valuePred(op: FilterOp, lits: FilterLiteral[]): ValuePred {
  if (op === 'IN' || op === '=') {
    const s = litSet(lits);
    return (v) => matchAny(v, s);
  }
  if (op === 'NOT IN') {
    const s = litSet(lits);
    return (v) => !matchAny(v, s);
  }
  const l = lits[0]!;
  return (v) => {
    if (v === undefined || v === null) return false;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (compareScalar(v[i], op, l)) return true;
      return false;
    }
    return compareScalar(v, op, l);
  };
}

/** Normalises an unknown user-metadata value to a field value (anything else is missing). */
function asFieldValue(v: unknown): FieldValue {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.filter((e): e is string => typeof e === 'string');
  return undefined;
}

class Binder {
  private readonly resolved = new Map<string, FilterLiteral[]>();

  constructor(filter: ParsedFilter, input: FilterInput) {
    const given = input.values ?? {};
    for (const name of filter.params) {
      if (!Object.prototype.hasOwnProperty.call(given, name) || given[name] === undefined) {
        throw valuesError(name, `filterValues.${name} is missing; the filter uses $${name}`);
      }
      this.resolved.set(name, parseFilterValues(name, given[name]));
    }
    for (const key of Object.keys(given)) {
      if (!filter.params.includes(key)) {
        const uses = filter.params.length === 0 ? 'the filter has no parameters' : `the filter's parameters are ${filter.params.map((p) => `$${p}`).join(', ')}`;
        throw valuesError(key, `filterValues.${key} is not a parameter of this filter (${uses})`);
      }
    }
  }

  /** The literals of a term's values, expanding placeholders (only inside IN / NOT IN lists). */
  lits(op: FilterOp, values: FilterValue[], timestamp: boolean): FilterLiteral[] {
    const list = op === 'IN' || op === 'NOT IN';
    const out: FilterLiteral[] = [];
    for (const v of values) {
      if (v.kind === 'string') out.push({ str: v.value, num: numericOf(v.value) });
      else if (v.kind === 'number') out.push({ str: undefined, num: v.value });
      else {
        const got = this.resolved.get(v.name)!;
        if (!list && got.length !== 1) {
          throw valuesError(
            v.name,
            `filterValues.${v.name} holds ${got.length} values, but $${v.name} at position ${v.position} of the filter expression follows ${op}, which takes exactly one`,
          );
        }
        out.push(...got);
      }
    }
    if (!timestamp) return out;
    return out.map((l) => (!Number.isNaN(l.num) && l.num < SECONDS_THRESHOLD ? { str: undefined, num: l.num * 1000 } : l));
  }
}

/** Binds a parsed filter to one request: throws FILTER_VALUES_INVALID; everything per user is precomputed. */
export function bindFilter(filter: ParsedFilter, input: FilterInput): BoundFilter {
  const binder = new Binder(filter, input);
  const includes: boolean[] = [];
  const preds: ItemPred[] = [];
  let needsItems = false;

  const compile = (c: FilterCondition): ItemPred => {
    if (c.kind === 'term') return compileTerm(c);
    const parts = c.operands.map(compile);
    const n = parts.length;
    if (c.kind === 'and') {
      return (id, item) => {
        for (let i = 0; i < n; i++) if (!parts[i]!(id, item)) return false;
        return true;
      };
    }
    return (id, item) => {
      for (let i = 0; i < n; i++) if (parts[i]!(id, item)) return true;
      return false;
    };
  };

  const compileTerm = (t: FilterTerm): ItemPred => {
    if (t.dataset === 'Interactions') {
      const lits = binder.lits(t.op, t.values, false);
      const types = new Set(lits.map((l) => (l.str !== undefined ? l.str : String(l.num))));
      const any = types.has('*');
      const touched = new Set<string>();
      for (const ev of input.interactions) if (any || types.has(ev.type)) touched.add(ev.item);
      return t.op === 'NOT IN' ? (id) => !touched.has(id) : (id) => touched.has(id);
    }
    if (t.field === 'ITEM_ID') {
      const p = valuePred(t.op, binder.lits(t.op, t.values, false));
      return (id) => p(id);
    }
    needsItems = true;
    if (t.field === 'CREATION_TIMESTAMP') {
      const p = valuePred(t.op, binder.lits(t.op, t.values, true));
      return (_id, item) => p(item === undefined ? undefined : item.CREATION_TIMESTAMP);
    }
    const p = valuePred(t.op, binder.lits(t.op, t.values, false));
    const name = t.field;
    const lower = name.toLowerCase();
    return (_id, item) => p(item === undefined ? undefined : (lookup(item.METADATA, name, lower) as FieldValue));
  };

  for (const stage of filter.stages) {
    // Bind the placeholders of every stage (so filterValues errors do not depend on the user) ...
    const uc = stage.userCondition;
    let applies = true;
    if (uc) {
      const p = valuePred(uc.op, binder.lits(uc.op, uc.values, false));
      const raw = input.user === undefined ? undefined : asFieldValue(lookup(input.user.METADATA, uc.field, uc.field.toLowerCase()));
      applies = raw !== undefined && p(raw);
    }
    const before: boolean = needsItems;
    const pred = compile(stage.condition);
    if (!applies) {
      // ... but a skipped stage neither filters nor needs item records.
      needsItems = before;
      continue;
    }
    includes.push(stage.action === 'INCLUDE');
    preds.push(pred);
  }

  const n = preds.length;
  return {
    needsItems,
    keep(itemId: string, item: Item | undefined): boolean {
      for (let i = 0; i < n; i++) {
        if (preds[i]!(itemId, item) !== includes[i]) return false;
      }
      return true;
    },
  };
}
