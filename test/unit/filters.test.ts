import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors/index.js';
import { bindFilter, parseFilter, parseFilterValues, type FilterInput } from '../../src/filters/index.js';
import type { Item } from '../../src/serde/avro.js';

const ITEMS: Record<string, Item> = {
  i1: { ITEM_ID: 'i1', CREATION_TIMESTAMP: 1_700_000_000_000, METADATA: { GENRE: 'Comedy', GENRES: ['Comedy', 'Drama'], PRICE: 10, IS_NEW: true, SIZE: '42' } },
  i2: { ITEM_ID: 'i2', CREATION_TIMESTAMP: 1_600_000_000_000, METADATA: { GENRE: 'Drama', GENRES: ['Drama'], PRICE: 25, IS_NEW: false, SIZE: 'large' } },
  i3: { ITEM_ID: 'i3', CREATION_TIMESTAMP: null, METADATA: { GENRE: 'Action', GENRES: [], PRICE: 5 } },
  // i4 has no item record at all.
  i5: { ITEM_ID: 'i5', CREATION_TIMESTAMP: 1_650_000_000_000, METADATA: { genre: 'Comedy', price: 15 } },
};
const IDS = ['i1', 'i2', 'i3', 'i4', 'i5'];

const INTERACTIONS = [
  { item: 'i1', type: 'purchase' },
  { item: 'i2', type: 'click' },
  { item: 'i3', type: 'Purchase' },
];

function kept(expression: string, input: Partial<FilterInput> = {}): string[] {
  const bound = bindFilter(parseFilter(expression), { interactions: INTERACTIONS, ...input });
  return IDS.filter((id) => bound.keep(id, ITEMS[id]));
}

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (isAppError(err)) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

describe('filters: items conditions', () => {
  it('categorical IN / NOT IN / EXCLUDE, missing fields and records, case-insensitive key fallback', () => {
    expect(kept('INCLUDE ItemID WHERE Items.GENRE IN ("Comedy")')).toEqual(['i1', 'i5']);
    expect(kept('EXCLUDE ItemID WHERE Items.GENRE IN ("Comedy")')).toEqual(['i2', 'i3', 'i4']);
    expect(kept('INCLUDE ItemID WHERE Items.GENRE NOT IN ("Comedy", "Action")')).toEqual(['i2', 'i4']);
    expect(kept('INCLUDE ItemID WHERE Items.GENRE = "Drama"')).toEqual(['i2']);
  });

  it('multi-valued fields: IN any, NOT IN none, = any', () => {
    expect(kept('INCLUDE ItemID WHERE Items.GENRES IN ("Drama")')).toEqual(['i1', 'i2']);
    expect(kept('INCLUDE ItemID WHERE Items.GENRES NOT IN ("Drama")')).toEqual(['i3', 'i4', 'i5']);
    expect(kept('INCLUDE ItemID WHERE Items.GENRES = "Comedy"')).toEqual(['i1']);
  });

  it('numeric comparisons, and mixed string/number literals', () => {
    expect(kept('INCLUDE ItemID WHERE Items.PRICE < 10')).toEqual(['i3']);
    expect(kept('INCLUDE ItemID WHERE Items.PRICE <= 10')).toEqual(['i1', 'i3']);
    expect(kept('INCLUDE ItemID WHERE Items.PRICE >= 10')).toEqual(['i1', 'i2', 'i5']);
    expect(kept('INCLUDE ItemID WHERE Items.PRICE > 24.5')).toEqual(['i2']);
    expect(kept('INCLUDE ItemID WHERE Items.PRICE IN (5, 25)')).toEqual(['i2', 'i3']);
    expect(kept('INCLUDE ItemID WHERE Items.PRICE = "25"')).toEqual(['i2']);
    // A string field against a number literal: numeric when the string parses, else false.
    expect(kept('INCLUDE ItemID WHERE Items.SIZE > 40')).toEqual(['i1']);
    expect(kept('INCLUDE ItemID WHERE Items.SIZE = 42')).toEqual(['i1']);
    expect(kept('INCLUDE ItemID WHERE Items.SIZE < 1e9')).toEqual(['i1']);
    // Strings compare as strings.
    expect(kept('INCLUDE ItemID WHERE Items.GENRE < "D"')).toEqual(['i1', 'i3', 'i5']);
  });

  it('boolean fields compare with "true" / "false"', () => {
    expect(kept('INCLUDE ItemID WHERE Items.IS_NEW = "true"')).toEqual(['i1']);
    expect(kept('INCLUDE ItemID WHERE Items.IS_NEW IN ("FALSE")')).toEqual(['i2']);
    expect(kept('INCLUDE ItemID WHERE Items.IS_NEW NOT IN ("true")')).toEqual(['i2', 'i3', 'i4', 'i5']);
    expect(kept('INCLUDE ItemID WHERE Items.IS_NEW > 0')).toEqual([]);
  });

  it('CREATION_TIMESTAMP literals below 1e11 are epoch seconds; null / missing never match', () => {
    expect(kept('INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > 1650000000')).toEqual(['i1']);
    expect(kept('INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP >= 1650000000')).toEqual(['i1', 'i5']);
    expect(kept('INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < 1650000000000')).toEqual(['i2']);
    expect(kept('INCLUDE ItemID WHERE Items.creation_timestamp >= $SINCE', { values: { SINCE: '1650000000' } })).toEqual(['i1', 'i5']);
  });

  it('ITEM_ID IN $ITEMS needs no item records', () => {
    const f = parseFilter('EXCLUDE ItemID WHERE Items.item_id IN ($ITEMS)');
    expect(f.params).toEqual(['ITEMS']);
    const bound = bindFilter(f, { interactions: [], values: { ITEMS: '"i1", "i4"' } });
    expect(bound.needsItems).toBe(false);
    expect(IDS.filter((id) => bound.keep(id, undefined))).toEqual(['i2', 'i3', 'i5']);
    expect(bindFilter(parseFilter('INCLUDE ItemID WHERE Items.PRICE > 1'), { interactions: [] }).needsItems).toBe(true);
  });
});

describe('filters: interactions, chaining, precedence, IF', () => {
  it('excludes purchased items (event types are exact); "*" matches any type; NOT IN', () => {
    expect(kept('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')).toEqual(['i2', 'i3', 'i4', 'i5']);
    expect(kept('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")')).toEqual(['i1', 'i2', 'i3']);
    expect(kept('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("purchase", "click")')).toEqual(['i3', 'i4', 'i5']);
    expect(kept('INCLUDE ItemID WHERE Interactions.EVENT_TYPE = "click"')).toEqual(['i2']);
    expect(kept('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")', { interactions: [] })).toEqual(IDS);
    const f = parseFilter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")');
    expect(f.uses).toEqual({ items: false, interactions: true, user: false });
    expect(bindFilter(f, { interactions: INTERACTIONS }).needsItems).toBe(false);
  });

  it('chains stages with | (all must keep); keywords are case-insensitive', () => {
    const expr = 'INCLUDE ItemID WHERE Items.GENRES IN ("Drama") | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")';
    expect(kept(expr)).toEqual(['i2']);
    expect(parseFilter(expr).uses).toEqual({ items: true, interactions: true, user: false });
    expect(kept('include itemid where items.GENRE in ("Comedy") | exclude ItemId Where Items.PRICE > 12')).toEqual(['i1']);
  });

  it('AND binds tighter than OR; parentheses override', () => {
    const expr = 'INCLUDE ItemID WHERE Items.GENRE = "Drama" OR Items.GENRE = "Action" AND Items.PRICE > 100';
    expect(kept(expr)).toEqual(['i2']);
    const cond = parseFilter(expr).stages[0]!.condition;
    expect(cond.kind).toBe('or');
    expect(cond.kind === 'or' && cond.operands[1]!.kind).toBe('and');
    expect(kept('INCLUDE ItemID WHERE (Items.GENRE = "Drama" OR Items.GENRE = "Action") AND Items.PRICE > 100')).toEqual([]);
    expect(kept('INCLUDE ItemID WHERE Items.PRICE < 6 OR Items.PRICE > 20 OR Items.GENRE = "Comedy" AND Items.PRICE = 15')).toEqual(['i2', 'i3', 'i5']);
  });

  it('IF CurrentUser applies the stage only when it holds; a missing user or field skips it', () => {
    const expr = 'INCLUDE ItemID WHERE Items.PRICE < 12 IF CurrentUser.MEMBERSHIP = "basic"';
    expect(parseFilter(expr).uses.user).toBe(true);
    expect(kept(expr, { user: { METADATA: { MEMBERSHIP: 'basic' } } })).toEqual(['i1', 'i3']);
    expect(kept(expr, { user: { METADATA: { membership: 'basic' } } })).toEqual(['i1', 'i3']);
    expect(kept(expr, { user: { METADATA: { MEMBERSHIP: 'premium' } } })).toEqual(IDS);
    expect(kept(expr, { user: { METADATA: {} } })).toEqual(IDS);
    expect(kept(expr, {})).toEqual(IDS);
    expect(bindFilter(parseFilter(expr), { interactions: [] }).needsItems).toBe(false);
    const notIn = 'EXCLUDE ItemID WHERE Items.PRICE > 12 IF CurrentUser.TIER NOT IN ("gold")';
    expect(kept(notIn, { user: { METADATA: {} } })).toEqual(IDS);
    expect(kept(notIn, { user: { METADATA: { TIER: 'silver' } } })).toEqual(['i1', 'i3', 'i4']);
    const age = 'EXCLUDE ItemID WHERE Items.GENRE IN ("Drama") IF CurrentUser.AGE < $ADULT';
    expect(kept(age, { user: { METADATA: { AGE: 12 } }, values: { ADULT: '18' } })).toEqual(['i1', 'i3', 'i4', 'i5']);
    expect(kept(age, { user: { METADATA: { AGE: '30' } }, values: { ADULT: '18' } })).toEqual(IDS);
  });
});

describe('filters: $PARAM values', () => {
  const expr = 'INCLUDE ItemID WHERE Items.GENRE IN ($GENRES) AND Items.PRICE <= $MAXPRICE AND Items.GENRE NOT IN ($GENRES, "Horror")';
  const good = { GENRES: '"Comedy","Drama"', MAXPRICE: '20' };

  it('expands lists in IN, single values elsewhere; params in order of first use', () => {
    expect(parseFilter(expr).params).toEqual(['GENRES', 'MAXPRICE']);
    expect(kept('INCLUDE ItemID WHERE Items.GENRE IN ($GENRES) AND Items.PRICE <= $MAXPRICE', { values: good })).toEqual(['i1', 'i5']);
    expect(kept('INCLUDE ItemID WHERE Items.GENRE IN ($GENRES, "Action")', { values: { GENRES: ' "Drama" ' } })).toEqual(['i2', 'i3']);
    expect(parseFilterValues('X', '"say \\"hi\\"", -1.5e2 ,"a,b"')).toEqual([
      { str: 'say "hi"', num: NaN },
      { str: undefined, num: -150 },
      { str: 'a,b', num: NaN },
    ]);
  });

  it.each([
    ['missing', { GENRES: good.GENRES }, 'filterValues.MAXPRICE', /missing/],
    ['extra key', { ...good, OTHER: '"x"' }, 'filterValues.OTHER', /not a parameter/],
    ['unquoted string', { ...good, GENRES: 'Comedy' }, 'filterValues.GENRES', /position 1: expected a double-quoted string or a number, found "Comedy"/],
    ['unterminated string', { ...good, GENRES: '"Comedy", "Dra' }, 'filterValues.GENRES', /position 11: unterminated string/],
    ['trailing comma', { ...good, GENRES: '"Comedy",' }, 'filterValues.GENRES', /position 10: expected a double-quoted string or a number, found end of value/],
    ['empty', { ...good, GENRES: '  ' }, 'filterValues.GENRES', /empty/],
    ['list where one is needed', { ...good, MAXPRICE: '10, 20' }, 'filterValues.MAXPRICE', /holds 2 values.*position 66.*follows <=/],
  ])('rejects %s', (_name, values, field, message) => {
    const err = thrown(() => bindFilter(parseFilter(expr), { interactions: [], values }));
    expect(err.code).toBe('FILTER_VALUES_INVALID');
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it('rejects values for a filter without parameters', () => {
    const err = thrown(() => bindFilter(parseFilter('INCLUDE ItemID WHERE Items.PRICE > 1'), { interactions: [], values: { X: '1' } }));
    expect(err.code).toBe('FILTER_VALUES_INVALID');
    expect(err.field).toBe('filterValues.X');
  });

  it('checks the values of a skipped IF stage too', () => {
    const err = thrown(() => bindFilter(parseFilter('EXCLUDE ItemID WHERE Items.PRICE > $P IF CurrentUser.A = 1'), { interactions: [] }));
    expect(err.field).toBe('filterValues.P');
  });
});

describe('filters: syntax errors name the position', () => {
  const elevenParams = `INCLUDE ItemID WHERE ${Array.from({ length: 11 }, (_, i) => `Items.F${i} = $P${i}`).join(' AND ')}`;
  it.each([
    ['missing WHERE', 'INCLUDE ItemID Items.GENRE IN ("Comedy")', 'position 16: expected WHERE after ItemID, found "Items.GENRE"'],
    ['bad operator', 'INCLUDE ItemID WHERE Items.GENRE FOO ("Comedy")', 'position 34: expected IN, NOT IN, =, <, <=, >, >= after Items.GENRE, found "FOO"'],
    ['unsupported !=', 'INCLUDE ItemID WHERE Items.PRICE != 3', 'position 34: expected IN, NOT IN, =, <, <=, >, >= after Items.PRICE, found "!="'],
    ['NOT without IN', 'INCLUDE ItemID WHERE Items.GENRE NOT ("x")', 'position 38: expected IN after NOT'],
    ['event type comparison', 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE < "x"', 'position 46: expected IN, NOT IN, = after Interactions.EVENT_TYPE, found "<"'],
    ['unterminated string', 'INCLUDE ItemID WHERE Items.GENRE IN ("Comedy)', 'position 38: unterminated string'],
    ['empty list', 'INCLUDE ItemID WHERE Items.GENRE IN ()', 'position 38: the IN list is empty'],
    ['missing comma', 'INCLUDE ItemID WHERE Items.GENRE IN ("a" "b")', 'position 42: expected , or ) in the IN list, found string "b"'],
    ['missing value', 'INCLUDE ItemID WHERE Items.GENRE = ', 'position 36: expected a value (a double-quoted string, a number or $PARAM) after =, found end of expression'],
    [
      'mixed datasets',
      'INCLUDE ItemID WHERE Items.GENRE IN ("Comedy") AND Interactions.EVENT_TYPE IN ("click")',
      'position 52: Interactions.EVENT_TYPE mixes datasets in one stage (the stage started with Items.GENRE at position 22); use `|` to chain',
    ],
    ['mixed datasets in parentheses', 'INCLUDE ItemID WHERE Interactions.EVENT_TYPE = "x" OR (Items.A = 1)', 'position 56: Items.A mixes datasets'],
    ['unknown dataset', 'INCLUDE ItemID WHERE Users.AGE > 30', 'position 22: expected Items.<field> or Interactions.EVENT_TYPE, found "Users.AGE" (unknown dataset Users)'],
    ['CurrentUser in WHERE', 'INCLUDE ItemID WHERE CurrentUser.A = 1', 'position 22: expected Items.<field> or Interactions.EVENT_TYPE, found "CurrentUser.A"'],
    ['other Interactions field', 'INCLUDE ItemID WHERE Interactions.ITEM_ID IN ("x")', 'position 22: expected Interactions.EVENT_TYPE'],
    ['Items after IF', 'INCLUDE ItemID WHERE Items.A = 1 IF Items.B = 2', 'position 37: expected CurrentUser.<field> after IF, found "Items.B"'],
    ['trailing garbage', 'INCLUDE ItemID WHERE Items.PRICE < 10 garbage', 'position 39: expected AND, OR, IF, | or end of expression, found "garbage"'],
    ['trailing after IF', 'INCLUDE ItemID WHERE Items.PRICE < 10 IF CurrentUser.AGE > 3 AND', 'position 62: expected | or end of expression after the IF condition, found "AND"'],
    ['bad character', 'INCLUDE ItemID WHERE Items.PRICE @ 3', 'position 34: unexpected character "@"'],
    ['unclosed parenthesis', 'INCLUDE ItemID WHERE (Items.A = 1 OR Items.B = 2', 'position 49: expected AND, OR or ), found end of expression'],
    ['empty expression', '  ', 'position 3: expected INCLUDE or EXCLUDE, found end of expression'],
    ['missing ItemID', 'INCLUDE WHERE Items.A = 1', 'position 9: expected ItemID after INCLUDE, found "WHERE"'],
    ['bare $', 'INCLUDE ItemID WHERE Items.A = $', 'position 32: expected a parameter name'],
    ['empty second stage', 'INCLUDE ItemID WHERE Items.A = 1 |', 'position 35: expected INCLUDE or EXCLUDE, found end of expression'],
    ['too long', `INCLUDE ItemID WHERE Items.A IN ("${'x'.repeat(2600)}")`, 'position 2561: the expression is 2636 characters long; the maximum is 2,560'],
    ['too many params', elevenParams, 'position 224: a filter may use at most 10 distinct $PARAMs; $P10 is the 11th'],
  ])('%s', (_name, expression, message) => {
    const err = thrown(() => parseFilter(expression));
    expect(err.code).toBe('FILTER_INVALID');
    expect(err.field).toBe('filterExpression');
    expect(err.message).toContain(`filterExpression at ${message}`);
  });

  it('accepts the limits themselves: 2,560 characters, 10 params, repeated params counted once', () => {
    const head = 'INCLUDE ItemID WHERE Items.A IN ("';
    expect(parseFilter(`${head}${'x'.repeat(2560 - head.length - 2)}")`).stages).toHaveLength(1);
    const ten = `INCLUDE ItemID WHERE ${Array.from({ length: 10 }, (_, i) => `Items.F${i} = $P${i}`).join(' AND ')} AND Items.G IN ($P0, $P1)`;
    expect(parseFilter(ten).params).toHaveLength(10);
  });

  it('decodes string escapes and keeps the AST plain', () => {
    const f = parseFilter('INCLUDE ItemID WHERE Items.TITLE = "say \\"hi\\" \\\\ ok"');
    expect(f.stages[0]!.condition).toEqual({
      kind: 'term',
      dataset: 'Items',
      field: 'TITLE',
      op: '=',
      values: [{ kind: 'string', value: 'say "hi" \\ ok' }],
      position: 22,
    });
    expect(JSON.parse(JSON.stringify(f))).toEqual(f);
  });
});
