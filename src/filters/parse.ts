/**
 * Parser for Amazon Personalize's filter expression language (pure code, no I/O).
 *
 *   expression    := stage ( '|' stage )*
 *   stage         := ( INCLUDE | EXCLUDE ) ItemID WHERE condition [ IF userCondition ]
 *   condition     := and ( OR and )*              -- AND binds tighter than OR
 *   and           := primary ( AND primary )*
 *   primary       := '(' condition ')' | term      -- parentheses are an extension; Personalize needs none
 *   term          := field op value
 *   field         := Items.<NAME> | Interactions.EVENT_TYPE
 *   userCondition := CurrentUser.<NAME> op value
 *   op            := IN | NOT IN | = | < | <= | > | >=      (Interactions.EVENT_TYPE: IN, NOT IN, = only)
 *   value         := '(' v ( ',' v )* ')' for IN / NOT IN, a single v otherwise
 *   v             := "double-quoted string" (\" and \\ escapes; any other backslash is kept) | number | $NAME
 *
 * Keywords (INCLUDE, EXCLUDE, ItemID, WHERE, AND, OR, IN, NOT, IF) and dataset names (Items,
 * Interactions, CurrentUser) are case-insensitive; field names keep their case (the evaluator matches
 * a METADATA key exactly first, then case-insensitively). ITEM_ID and CREATION_TIMESTAMP are the
 * reserved item fields (matched case-insensitively) and are stored upper-cased in the AST.
 * $NAME placeholders are case-sensitive; at most 10 distinct ones per filter (Personalize's limit).
 * All terms of one stage reference one dataset (all Items.* or all Interactions.*); chain stages
 * with `|` to filter on both. The expression is at most 2,560 characters (Personalize's limit).
 *
 * Every error is an AppError FILTER_INVALID (field `filterExpression`) whose message names the
 * 1-based character position, what was expected and what was found. The evaluation semantics are
 * documented in ./evaluate.ts.
 */
import { AppError } from '../errors/index.js';

export const MAX_FILTER_EXPRESSION_LENGTH = 2560;
export const MAX_FILTER_PARAMS = 10;

export type FilterOp = 'IN' | 'NOT IN' | '=' | '<' | '<=' | '>' | '>=';
export type FilterDataset = 'Items' | 'Interactions';

export type FilterValue =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  /** A $NAME placeholder; `name` is without the `$`. */
  | { kind: 'param'; name: string; position: number };

export interface FilterTerm {
  kind: 'term';
  dataset: FilterDataset;
  /** The name after `Items.` (ITEM_ID / CREATION_TIMESTAMP upper-cased), or EVENT_TYPE. */
  field: string;
  op: FilterOp;
  /** One value for =, <, <=, >, >=; one or more for IN / NOT IN. */
  values: FilterValue[];
  /** 1-based position of the field in the expression. */
  position: number;
}

export interface FilterBoolean {
  kind: 'and' | 'or';
  operands: FilterCondition[];
}

export type FilterCondition = FilterTerm | FilterBoolean;

export interface FilterUserCondition {
  /** The name after `CurrentUser.`, as written. */
  field: string;
  op: FilterOp;
  values: FilterValue[];
  position: number;
}

export interface FilterStage {
  action: 'INCLUDE' | 'EXCLUDE';
  dataset: FilterDataset;
  condition: FilterCondition;
  userCondition?: FilterUserCondition | undefined;
  /** 1-based position of INCLUDE / EXCLUDE. */
  position: number;
}

export interface ParsedFilter {
  expression: string;
  stages: FilterStage[];
  /** Placeholder names without `$`, in order of first use. */
  params: string[];
  uses: { items: boolean; interactions: boolean; user: boolean };
}

const ALL_OPS = 'IN, NOT IN, =, <, <=, >, >=';
const EVENT_TYPE_OPS = 'IN, NOT IN, =';

type Token =
  | { kind: 'word'; text: string; pos: number }
  | { kind: 'string'; text: string; value: string; pos: number }
  | { kind: 'number'; text: string; value: number; pos: number }
  | { kind: 'param'; text: string; name: string; pos: number }
  | { kind: 'punct'; text: string; pos: number }
  | { kind: 'end'; text: string; pos: number };

const WORD_RE = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]*)*/y;
const NUMBER_RE = /[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?/y;
const PARAM_RE = /\$([A-Za-z_][A-Za-z0-9_]*)/y;
const FIELD_NAME_RE = /^[A-Za-z0-9_]+$/;

function fail(position: number, message: string): never {
  throw new AppError('FILTER_INVALID', `filterExpression at position ${position}: ${message}`, { field: 'filterExpression' });
}

function describe(tok: Token): string {
  switch (tok.kind) {
    case 'end':
      return 'end of expression';
    case 'string':
      return `string ${clip(tok.text)}`;
    case 'number':
      return `number ${clip(tok.text)}`;
    default:
      return `"${clip(tok.text)}"`;
  }
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** Lexes on demand, so a bad character is reported only once the parser gets that far. */
class Lexer {
  private i = 0;
  constructor(private readonly src: string) {}

  next(): Token {
    const s = this.src;
    while (this.i < s.length && /\s/.test(s[this.i]!)) this.i++;
    const start = this.i;
    const pos = start + 1;
    if (start >= s.length) return { kind: 'end', text: '', pos };
    const c = s[start]!;
    if (c === '"') {
      let value = '';
      let j = start + 1;
      for (;;) {
        if (j >= s.length) fail(pos, 'unterminated string: expected a closing " before the end of the expression');
        const d = s[j]!;
        if (d === '"') break;
        if (d === '\\' && j + 1 < s.length && (s[j + 1] === '"' || s[j + 1] === '\\')) {
          value += s[j + 1];
          j += 2;
          continue;
        }
        value += d;
        j++;
      }
      this.i = j + 1;
      return { kind: 'string', text: s.slice(start, this.i), value, pos };
    }
    if (c === '$') {
      PARAM_RE.lastIndex = start;
      const m = PARAM_RE.exec(s);
      if (!m) fail(pos, `expected a parameter name (letters, digits, _) after $, found ${s[start + 1] === undefined ? 'end of expression' : `"${s[start + 1]}"`}`);
      this.i = start + m[0].length;
      return { kind: 'param', text: m[0], name: m[1]!, pos };
    }
    if (/[0-9.+-]/.test(c)) {
      NUMBER_RE.lastIndex = start;
      const m = NUMBER_RE.exec(s);
      if (m) {
        this.i = start + m[0].length;
        return { kind: 'number', text: m[0], value: Number(m[0]), pos };
      }
    }
    if (/[A-Za-z_]/.test(c)) {
      WORD_RE.lastIndex = start;
      const m = WORD_RE.exec(s)!;
      this.i = start + m[0].length;
      return { kind: 'word', text: m[0], pos };
    }
    const two = s.slice(start, start + 2);
    if (two === '<=' || two === '>=' || two === '!=' || two === '<>') {
      this.i = start + 2;
      return { kind: 'punct', text: two, pos };
    }
    if ('()|,=<>'.includes(c)) {
      this.i = start + 1;
      return { kind: 'punct', text: c, pos };
    }
    return fail(pos, `unexpected character "${c}"`);
  }
}

class Parser {
  private readonly lexer: Lexer;
  private tok: Token;
  readonly params: string[] = [];
  private stageDataset: { dataset: FilterDataset; position: number; text: string } | undefined;

  constructor(src: string) {
    this.lexer = new Lexer(src);
    this.tok = this.lexer.next();
  }

  private advance(): Token {
    const t = this.tok;
    this.tok = this.lexer.next();
    return t;
  }

  private isWord(kw: string): boolean {
    return this.tok.kind === 'word' && this.tok.text.toUpperCase() === kw;
  }

  private isPunct(p: string): boolean {
    return this.tok.kind === 'punct' && this.tok.text === p;
  }

  private expected(what: string): never {
    return fail(this.tok.pos, `expected ${what}, found ${describe(this.tok)}`);
  }

  parse(): FilterStage[] {
    const stages: FilterStage[] = [this.stage()];
    for (;;) {
      if (this.isPunct('|')) {
        this.advance();
        stages.push(this.stage());
        continue;
      }
      if (this.tok.kind === 'end') return stages;
      const last = stages[stages.length - 1]!;
      this.expected(last.userCondition ? '| or end of expression after the IF condition' : 'AND, OR, IF, | or end of expression');
    }
  }

  private stage(): FilterStage {
    const position = this.tok.pos;
    let action: 'INCLUDE' | 'EXCLUDE';
    if (this.isWord('INCLUDE')) action = 'INCLUDE';
    else if (this.isWord('EXCLUDE')) action = 'EXCLUDE';
    else return this.expected('INCLUDE or EXCLUDE');
    this.advance();
    if (!this.isWord('ITEMID')) this.expected(`ItemID after ${action}`);
    this.advance();
    if (!this.isWord('WHERE')) this.expected('WHERE after ItemID');
    this.advance();
    this.stageDataset = undefined;
    const condition = this.or();
    const dataset = this.stageDataset!.dataset;
    let userCondition: FilterUserCondition | undefined;
    if (this.isWord('IF')) {
      this.advance();
      userCondition = this.userCondition();
    }
    return userCondition ? { action, dataset, condition, userCondition, position } : { action, dataset, condition, position };
  }

  private or(): FilterCondition {
    const first = this.and();
    if (!this.isWord('OR')) return first;
    const operands = [first];
    while (this.isWord('OR')) {
      this.advance();
      operands.push(this.and());
    }
    return { kind: 'or', operands };
  }

  private and(): FilterCondition {
    const first = this.primary();
    if (!this.isWord('AND')) return first;
    const operands = [first];
    while (this.isWord('AND')) {
      this.advance();
      operands.push(this.primary());
    }
    return { kind: 'and', operands };
  }

  private primary(): FilterCondition {
    if (this.isPunct('(')) {
      this.advance();
      const inner = this.or();
      if (!this.isPunct(')')) this.expected('AND, OR or )');
      this.advance();
      return inner;
    }
    return this.term();
  }

  private term(): FilterTerm {
    const tok = this.tok;
    const want = 'Items.<field> or Interactions.EVENT_TYPE';
    if (tok.kind !== 'word') return this.expected(want);
    const dot = tok.text.indexOf('.');
    const prefix = (dot < 0 ? tok.text : tok.text.slice(0, dot)).toUpperCase();
    let name = dot < 0 ? '' : tok.text.slice(dot + 1);
    let dataset: FilterDataset;
    if (prefix === 'ITEMS') dataset = 'Items';
    else if (prefix === 'INTERACTIONS') dataset = 'Interactions';
    else if (dot < 0) return this.expected(want);
    else if (prefix === 'CURRENTUSER') return fail(tok.pos, `expected ${want}, found "${clip(tok.text)}" (CurrentUser.* may only follow IF)`);
    else return fail(tok.pos, `expected ${want}, found "${clip(tok.text)}" (unknown dataset ${tok.text.slice(0, dot)})`);
    if (!FIELD_NAME_RE.test(name)) return fail(tok.pos, `expected a field name after ${dataset}., found "${clip(tok.text)}"`);
    if (dataset === 'Interactions') {
      if (name.toUpperCase() !== 'EVENT_TYPE') return fail(tok.pos, `expected Interactions.EVENT_TYPE (the only Interactions field a filter can use), found "${clip(tok.text)}"`);
      name = 'EVENT_TYPE';
    } else if (name.toUpperCase() === 'ITEM_ID' || name.toUpperCase() === 'CREATION_TIMESTAMP') {
      name = name.toUpperCase();
    }
    const label = `${dataset}.${name}`;
    if (this.stageDataset === undefined) {
      this.stageDataset = { dataset, position: tok.pos, text: tok.text };
    } else if (this.stageDataset.dataset !== dataset) {
      fail(
        tok.pos,
        `${tok.text} mixes datasets in one stage (the stage started with ${this.stageDataset.text} at position ${this.stageDataset.position}); use \`|\` to chain stages over different datasets`,
      );
    }
    this.advance();
    const op = this.op(label, dataset === 'Interactions' ? EVENT_TYPE_OPS : ALL_OPS);
    const values = this.values(op);
    return { kind: 'term', dataset, field: name, op, values, position: tok.pos };
  }

  private userCondition(): FilterUserCondition {
    const tok = this.tok;
    const want = 'CurrentUser.<field> after IF';
    if (tok.kind !== 'word') return this.expected(want);
    const dot = tok.text.indexOf('.');
    if (dot < 0 || tok.text.slice(0, dot).toUpperCase() !== 'CURRENTUSER') return this.expected(want);
    const name = tok.text.slice(dot + 1);
    if (!FIELD_NAME_RE.test(name)) return fail(tok.pos, `expected a field name after CurrentUser., found "${clip(tok.text)}"`);
    this.advance();
    const op = this.op(`CurrentUser.${name}`, ALL_OPS);
    const values = this.values(op);
    return { field: name, op, values, position: tok.pos };
  }

  private op(label: string, allowed: string): FilterOp {
    const tok = this.tok;
    let op: FilterOp | undefined;
    if (this.isWord('IN')) op = 'IN';
    else if (this.isWord('NOT')) {
      this.advance();
      if (!this.isWord('IN')) this.expected(`IN after NOT (${label} NOT IN (...))`);
      op = 'NOT IN';
    } else if (tok.kind === 'punct' && ['=', '<', '<=', '>', '>='].includes(tok.text)) op = tok.text as FilterOp;
    if (op === undefined || !allowed.split(', ').includes(op)) {
      return fail(tok.pos, `expected ${allowed} after ${label}, found ${describe(tok)}`);
    }
    this.advance();
    return op;
  }

  private values(op: FilterOp): FilterValue[] {
    if (op !== 'IN' && op !== 'NOT IN') return [this.value(`after ${op}`)];
    if (!this.isPunct('(')) this.expected(`( to start the list after ${op}`);
    this.advance();
    if (this.isPunct(')')) fail(this.tok.pos, `the ${op} list is empty: expected a value (a double-quoted string, a number or $PARAM), found ")"`);
    const values = [this.value(`in the ${op} list`)];
    for (;;) {
      if (this.isPunct(')')) {
        this.advance();
        return values;
      }
      if (!this.isPunct(',')) this.expected(`, or ) in the ${op} list`);
      this.advance();
      values.push(this.value(`in the ${op} list`));
    }
  }

  private value(where: string): FilterValue {
    const tok = this.tok;
    switch (tok.kind) {
      case 'string':
        this.advance();
        return { kind: 'string', value: tok.value };
      case 'number':
        this.advance();
        return { kind: 'number', value: tok.value };
      case 'param':
        if (!this.params.includes(tok.name)) {
          if (this.params.length >= MAX_FILTER_PARAMS) {
            fail(tok.pos, `a filter may use at most ${MAX_FILTER_PARAMS} distinct $PARAMs; $${tok.name} is the ${MAX_FILTER_PARAMS + 1}th`);
          }
          this.params.push(tok.name);
        }
        this.advance();
        return { kind: 'param', name: tok.name, position: tok.pos };
      default:
        return this.expected(`a value (a double-quoted string, a number or $PARAM) ${where}`);
    }
  }
}

/** Parses a Personalize filter expression; throws AppError FILTER_INVALID naming the position. */
export function parseFilter(expression: string): ParsedFilter {
  if (typeof expression !== 'string') {
    throw new AppError('FILTER_INVALID', 'filterExpression must be a string', { field: 'filterExpression' });
  }
  if (expression.length > MAX_FILTER_EXPRESSION_LENGTH) {
    fail(
      MAX_FILTER_EXPRESSION_LENGTH + 1,
      `the expression is ${expression.length} characters long; the maximum is ${MAX_FILTER_EXPRESSION_LENGTH.toLocaleString('en-US')}`,
    );
  }
  const parser = new Parser(expression);
  const stages = parser.parse();
  return {
    expression,
    stages,
    params: parser.params,
    uses: {
      items: stages.some((s) => s.dataset === 'Items'),
      interactions: stages.some((s) => s.dataset === 'Interactions'),
      user: stages.some((s) => s.userCondition !== undefined),
    },
  };
}
