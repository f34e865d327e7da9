/**
 * A bounds check of Avro binary against a writer schema, run before avsc decodes anything.
 *
 * avsc trusts the counts inside a record: an array whose block count says 500,000,000 makes it
 * allocate an array of that length, and a map's count makes it loop that many times past the end
 * of the bytes. This walk reads the same bytes without allocating and refuses, with the byte
 * position and the reason:
 * - a block count (array items, map entries) that the remaining bytes cannot hold: every item
 *   needs at least max(1, the item type's smallest encoding) bytes, every map entry at least one
 *   for its key plus its value's smallest encoding;
 * - a length (string, bytes) past the end, a varint longer than 10 bytes (5 for int), a union
 *   branch or enum symbol out of range, a boolean byte other than 0 or 1;
 * - bytes left over after the record.
 * Each step consumes at least one byte, so the walk costs O(bytes) in time and O(schema depth) in
 * memory whatever the bytes say; a record that passes decodes into at most O(bytes) values.
 * Arrays of `null` (whose items take no bytes) are limited to one item per remaining byte.
 */
import avro from 'avsc';

/** Where and why bytes were refused. */
export class BoundsError extends Error {
  constructor(
    readonly position: number,
    readonly reason: string,
  ) {
    super(`${reason} (at byte ${position})`);
  }
}

type Walk = (buf: Buffer, pos: number) => number;

interface Walker {
  walk: Walk;
  /** The fewest bytes any value of the type encodes to. */
  min: number;
}

const compiled = new WeakMap<avro.Type, Walker>();

/** Throws BoundsError unless `buf` is exactly one value of `type` within the limits above. */
export function checkBounds(type: avro.Type, buf: Buffer): void {
  const end = walker(type).walk(buf, 0);
  if (end !== buf.length) throw new BoundsError(end, `${buf.length - end} byte(s) left over after the record`);
}

function walker(type: avro.Type): Walker {
  let w = compiled.get(type);
  if (!w) {
    w = compile(type, new Map());
    compiled.set(type, w);
  }
  return w;
}

function compile(type: avro.Type, building: Map<avro.Type, Walker>): Walker {
  const done = compiled.get(type) ?? building.get(type);
  if (done) return done;
  const t = type as avro.Type & Record<string, unknown>;
  const name = type.typeName;
  switch (name) {
    case 'null':
      return { walk: (_b, pos) => pos, min: 0 };
    case 'boolean':
      return {
        walk: (b, pos) => {
          need(b, pos, 1, 'a boolean');
          if (b[pos]! > 1) throw new BoundsError(pos, `a boolean byte is ${b[pos]}, not 0 or 1`);
          return pos + 1;
        },
        min: 1,
      };
    case 'int':
      return { walk: (b, pos) => varint(b, pos, 5, 'an int').end, min: 1 };
    case 'long':
    case 'abstract:long':
      return { walk: (b, pos) => varint(b, pos, 10, 'a long').end, min: 1 };
    case 'float':
      return { walk: (b, pos) => need(b, pos, 4, 'a float'), min: 4 };
    case 'double':
      return { walk: (b, pos) => need(b, pos, 8, 'a double'), min: 8 };
    case 'string':
    case 'bytes':
      return { walk: (b, pos) => lengthPrefixed(b, pos, `a ${name}`), min: 1 };
    case 'fixed': {
      const size = (type as avro.types.FixedType).size;
      return { walk: (b, pos) => need(b, pos, size, `a fixed of ${size} bytes`), min: size };
    }
    case 'enum': {
      const symbols = (type as avro.types.EnumType).symbols.length;
      return { walk: (b, pos) => index(b, pos, symbols, 'enum symbol').end, min: 1 };
    }
    case 'array':
    case 'map': {
      // A recursive schema may come back here: a placeholder breaks the cycle.
      const self: Walker = { walk: () => 0, min: 1 };
      building.set(type, self);
      const isMap = name === 'map';
      const inner = compile(isMap ? (type as avro.types.MapType).valuesType : (type as avro.types.ArrayType).itemsType, building);
      const key = isMap ? compile(STRING, building) : undefined;
      const perItem = isMap ? 1 + inner.min : Math.max(1, inner.min);
      const what = isMap ? 'map entries' : 'array items';
      self.walk = (b, pos) => {
        for (;;) {
          const head = varint(b, pos, 10, `the count of ${what}`);
          pos = head.end;
          let n = head.value;
          if (n === 0) return pos;
          if (n < 0) {
            n = -n;
            const size = varint(b, pos, 10, 'a block size');
            if (size.value < 0) throw new BoundsError(pos, `a block size is negative (${size.value})`);
            pos = size.end;
            if (size.value > b.length - pos) throw new BoundsError(pos, `a block of ${size.value} bytes is longer than the ${b.length - pos} byte(s) left`);
          }
          const left = b.length - pos;
          if (n > left / perItem) {
            throw new BoundsError(head.end, `a block of ${n} ${what} needs at least ${n * perItem} bytes, ${left} left`);
          }
          for (let i = 0; i < n; i++) {
            if (key) pos = key.walk(b, pos);
            pos = inner.walk(b, pos);
          }
        }
      };
      building.delete(type);
      return self;
    }
    case 'union:unwrapped':
    case 'union:wrapped': {
      const self: Walker = { walk: () => 0, min: 1 };
      building.set(type, self);
      const branches = (type as avro.types.UnwrappedUnionType).types.map((b) => compile(b, building));
      self.min = 1 + Math.min(...branches.map((b) => b.min));
      self.walk = (b, pos) => {
        const i = index(b, pos, branches.length, 'union branch');
        return branches[i.value]!.walk(b, i.end);
      };
      building.delete(type);
      return self;
    }
    case 'record':
    case 'error':
    case 'request': {
      const self: Walker = { walk: () => 0, min: 0 };
      building.set(type, self);
      const fields = (type as avro.types.RecordType).fields.map((f) => compile(f.type, building));
      self.min = fields.reduce((s, f) => s + f.min, 0);
      self.walk = (b, pos) => {
        for (const f of fields) pos = f.walk(b, pos);
        return pos;
      };
      building.delete(type);
      return self;
    }
    default:
      if (name.startsWith('logical:')) return compile(t['underlyingType'] as avro.Type, building);
      throw new Error(`checkBounds: unsupported Avro type ${name}`);
  }
}

/** Map keys are strings. */
const STRING = avro.Type.forSchema('string');

function need(b: Buffer, pos: number, n: number, what: string): number {
  if (n > b.length - pos) throw new BoundsError(pos, `${what} needs ${n} byte(s), ${Math.max(0, b.length - pos)} left`);
  return pos + n;
}

/** A zigzag varint of at most `maxBytes` bytes; values beyond 2^53 are refused (avsc reads them inexactly). */
function varint(b: Buffer, pos: number, maxBytes: number, what: string): { value: number; end: number } {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    if (pos + i >= b.length) throw new BoundsError(pos, `${what} is cut off by the end of the bytes`);
    const byte = b[pos + i]!;
    n += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) {
      if (n > Number.MAX_SAFE_INTEGER) throw new BoundsError(pos, `${what} is too large`);
      return { value: n % 2 === 0 ? n / 2 : -(n + 1) / 2, end: pos + i + 1 };
    }
  }
  throw new BoundsError(pos, `${what} is a varint longer than ${maxBytes} bytes`);
}

function lengthPrefixed(b: Buffer, pos: number, what: string): number {
  const len = varint(b, pos, 10, `the length of ${what}`);
  if (len.value < 0) throw new BoundsError(pos, `the length of ${what} is negative (${len.value})`);
  if (len.value > b.length - len.end) throw new BoundsError(pos, `${what} of ${len.value} bytes is longer than the ${b.length - len.end} byte(s) left`);
  return len.end + len.value;
}

function index(b: Buffer, pos: number, count: number, what: string): { value: number; end: number } {
  const i = varint(b, pos, 10, `a ${what} index`);
  if (i.value < 0 || i.value >= count) throw new BoundsError(pos, `${what} ${i.value} does not exist (${count} declared)`);
  return i;
}
