// Reading a batch row by row (`Batch`, `Row`) and building one
// (`BatchBuilder`, `RowBuilder`), over the contract's columnar layout.
//
// Columns appear in a built batch as fields are first set; a record that
// does not set a field gets a null there. When values of different types
// meet in one column, `int` and `float` make a `float` column and any other
// mix makes a `json` column holding each value's JSON encoding (read back,
// its scalars come out as they went in): the Rust SDK's rules.

import { Fatal } from './errors.js';
import { I64_MAX, I64_MIN, Json, Timestamp, jsonString, jsonText, parseJsonNumber } from './values.js';

export const UPSERT = 'upsert';
export const DELETE = 'delete';

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

function decode(bytes, what) {
  try {
    return decoder.decode(bytes);
  } catch (e) {
    throw new Fatal(`${what}: text is not valid UTF-8`);
  }
}

/** The strings of a WIT `texts` of `n` entries (`what` names it in errors). */
export function textsIn(t, n, what) {
  const { offsets, data } = t;
  if (offsets.length !== n + 1) throw new Fatal(`${what} has ${offsets.length - 1} entries for ${n} records`);
  const out = new Array(n);
  const all = decode(data, what);
  if (all.length === data.length) {
    // ASCII: byte offsets are character offsets.
    for (let i = 0; i < n; i++) out[i] = all.slice(offsets[i], offsets[i + 1]);
  } else {
    for (let i = 0; i < n; i++) out[i] = decode(data.subarray(offsets[i], offsets[i + 1]), what);
  }
  return out;
}

function bytesIn(t, n, what) {
  const { offsets, data } = t;
  if (offsets.length !== n + 1) throw new Fatal(`${what} has ${offsets.length - 1} entries for ${n} records`);
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = data.slice(offsets[i], offsets[i + 1]);
  return out;
}

/** A JSON column's value: scalars decoded, objects and arrays `Json`. */
function jsonScalar(raw) {
  const s = raw.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '');
  if (s === '' || s === 'null') return null;
  if (s === 'true') return true;
  if (s === 'false') return false;
  const c = s[0];
  if (c === '"') {
    if (!s.includes('\\') && s.length >= 2) return s.slice(1, -1);
    try {
      return JSON.parse(s);
    } catch {
      return new Json(s);
    }
  }
  if (c === '-' || (c >= '0' && c <= '9')) {
    const n = parseJsonNumber(s);
    return n === null ? new Json(s) : n;
  }
  return new Json(s);
}

function columnIn(c, n) {
  const what = `column "${c.name}"`;
  const { tag, val } = c.values;
  let values;
  switch (tag) {
    case 'ints':
    case 'floats':
    case 'bools':
      values = Array.from(val);
      break;
    case 'timestamps':
      values = Array.from(val, (t) => new Timestamp(t));
      break;
    case 'text':
      values = textsIn(val, n, what);
      break;
    case 'json':
      values = textsIn(val, n, what).map(jsonScalar);
      break;
    case 'bytes':
      values = bytesIn(val, n, what);
      break;
    default:
      throw new Fatal(`${what}: unknown value type ${tag}`);
  }
  if (values.length !== n) throw new Fatal(`${what} has ${values.length} entries for ${n} records`);
  const valid = c.valid;
  if (valid !== undefined && valid !== null) {
    if (valid.length !== n) throw new Fatal(`${what} validity has ${valid.length} entries for ${n} records`);
    for (let i = 0; i < n; i++) if (!valid[i]) values[i] = null;
  }
  return values;
}

/** A batch received from the host: `batch.length`, `batch.rows()`,
 * `batch.row(i)`, `batch.names` (the field names in column order) and
 * `batch.column(name)` (every record's value of one field, null where
 * null; undefined if the batch has no such field). */
export class Batch {
  constructor(raw) {
    const n = raw.ops.length;
    this.raw = raw;
    this.length = n;
    this.keys = textsIn(raw.keys, n, 'keys');
    this.ops = raw.ops;
    this.versions = raw.versions ?? null;
    this.updatedAt = raw.updatedAt ?? null;
    this.origins = raw.origins ? textsIn(raw.origins, n, 'origins') : null;
    this.names = raw.columns.map((c) => c.name);
    this.values = raw.columns.map((c) => columnIn(c, n));
    this.index = new Map(this.names.map((name, i) => [name, i]));
  }
  column(name) {
    const i = this.index.get(name);
    return i === undefined ? undefined : this.values[i];
  }
  row(i) {
    return new Row(this, i);
  }
  *rows() {
    for (let i = 0; i < this.length; i++) yield new Row(this, i);
  }
}

/** One record of a `Batch`: `key`, `op` ('upsert' or 'delete'), `index`,
 * `version`, `updatedAt`, `origin`, `get(name)` (null when absent or null),
 * `fields()` (an object of every field, nulls included) and `toJson()`
 * (the fields as JSON text). */
export class Row {
  constructor(batch, index) {
    this.batch = batch;
    this.index = index;
  }
  get key() {
    return this.batch.keys[this.index];
  }
  get op() {
    return this.batch.ops[this.index];
  }
  get version() {
    return this.batch.versions ? this.batch.versions[this.index] : null;
  }
  get updatedAt() {
    return this.batch.updatedAt ? this.batch.updatedAt[this.index] : null;
  }
  get origin() {
    return this.batch.origins ? this.batch.origins[this.index] : null;
  }
  get(name) {
    const col = this.batch.column(name);
    return col === undefined ? null : col[this.index];
  }
  fields() {
    const out = {};
    this.batch.names.forEach((name, c) => {
      out[name] = this.batch.values[c][this.index];
    });
    return out;
  }
  /** The record's fields as one JSON object (text, no newline), in column
   * order, nulls included, values written as the Rust SDK's
   * `Row::write_json` writes them; the key and op are not part of it. */
  toJson() {
    const parts = this.batch.names.map((name, c) => `${jsonString(name)}:${jsonText(this.batch.values[c][this.index])}`);
    return `{${parts.join(',')}}`;
  }
}

// --- building ---------------------------------------------------------------

const PLACEHOLDER = { int: 0n, float: 0, bool: false, timestamp: 0n, text: '', bytes: new Uint8Array(0), json: '' };

function valueKind(v) {
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'bigint':
      if (v < I64_MIN || v > I64_MAX) throw new Fatal(`the integer ${v} does not fit in 64 bits`);
      return 'int';
    case 'number':
      return 'float';
    case 'string':
      return 'text';
  }
  if (v instanceof Timestamp) return 'timestamp';
  if (v instanceof Json) return 'json';
  if (v instanceof Uint8Array) return 'bytes';
  throw new TypeError(`cannot store ${String(v)} in a batch`);
}

function stored(kind, v) {
  if (kind === 'timestamp') return v.micros;
  if (kind === 'json') return jsonText(v);
  return v;
}

class ColumnOut {
  constructor(name) {
    this.name = name;
    this.kind = null; // the type, fixed by the first non-null value
    this.values = [];
    this.valid = [];
    this.nulls = 0;
  }
  pushNull() {
    this.valid.push(false);
    this.nulls++;
    this.values.push(this.kind === null ? null : PLACEHOLDER[this.kind]);
  }
  set(row, v) {
    let n = this.valid.length;
    if (n > row) {
      if (!this.valid.pop()) this.nulls--;
      this.values.pop();
      n--;
    }
    while (n < row) {
      this.pushNull();
      n++;
    }
    this.push(v);
  }
  push(v) {
    if (v === null || v === undefined) {
      this.pushNull();
      return;
    }
    const k = valueKind(v);
    if (this.kind === null) {
      this.kind = k;
      this.values.fill(PLACEHOLDER[k]);
    }
    if (k === this.kind) this.values.push(stored(k, v));
    else if (this.kind === 'float' && k === 'int') this.values.push(Number(v));
    else if (this.kind === 'int' && k === 'float') {
      this.kind = 'float';
      this.values = this.values.map(Number);
      this.values.push(v);
    } else if (this.kind === 'json') this.values.push(jsonText(v));
    else {
      this.widenToJson();
      this.values.push(jsonText(v));
    }
    this.valid.push(true);
  }
  widenToJson() {
    const kind = this.kind;
    this.values = this.values.map((x, i) => {
      if (!this.valid[i]) return '';
      return jsonText(kind === 'timestamp' ? new Timestamp(x) : x);
    });
    this.kind = 'json';
  }
  finish(rows) {
    while (this.valid.length < rows) this.pushNull();
    const v = this.values;
    let values;
    switch (this.kind) {
      case null:
        values = { tag: 'text', val: { offsets: new Uint32Array(rows + 1), data: new Uint8Array(0) } };
        break;
      case 'int':
        values = { tag: 'ints', val: BigInt64Array.from(v) };
        break;
      case 'float':
        values = { tag: 'floats', val: Float64Array.from(v) };
        break;
      case 'bool':
        values = { tag: 'bools', val: v };
        break;
      case 'timestamp':
        values = { tag: 'timestamps', val: BigInt64Array.from(v) };
        break;
      case 'text':
        values = { tag: 'text', val: textsOut(v) };
        break;
      case 'json':
        values = { tag: 'json', val: textsOut(v) };
        break;
      default:
        values = { tag: 'bytes', val: bytesOut(v) };
    }
    return { name: this.name, values, valid: this.nulls > 0 ? this.valid : undefined };
  }
}

/** A WIT `texts` from strings. */
export function textsOut(strings) {
  const n = strings.length;
  const offsets = new Uint32Array(n + 1);
  const joined = strings.join('');
  const all = encoder.encode(joined);
  if (all.length === joined.length) {
    let at = 0;
    for (let i = 0; i < n; i++) {
      at += strings[i].length;
      offsets[i + 1] = at;
    }
    return { offsets, data: all };
  }
  let at = 0;
  for (let i = 0; i < n; i++) {
    at += encoder.encode(strings[i]).length;
    offsets[i + 1] = at;
  }
  return { offsets, data: all };
}

function bytesOut(chunks) {
  const offsets = new Uint32Array(chunks.length + 1);
  let at = 0;
  chunks.forEach((c, i) => {
    at += c.length;
    offsets[i + 1] = at;
  });
  const data = new Uint8Array(at);
  chunks.forEach((c, i) => data.set(c, offsets[i]));
  return { offsets, data };
}

/** Builds a batch record by record:
 *
 *     const b = new BatchBuilder();
 *     b.row('1').set('name', 'Ada').set('age', 36n);
 *     b.row('2').set('name', 'Grace');           // age: null
 *     b.row('3', DELETE);
 *     const batch = b.finish();                  // the WIT batch
 */
export class BatchBuilder {
  constructor() {
    this.keys = [];
    this.ops = [];
    this.versions = null;
    this.updatedAt = null;
    this.origins = null;
    this.columns = new Map();
  }
  get length() {
    return this.ops.length;
  }
  /** Starts a record; set its fields on the returned `RowBuilder`. */
  row(key, op = UPSERT) {
    this.keys.push(key);
    this.ops.push(op);
    return new RowBuilder(this, this.ops.length - 1);
  }
  /** Starts a record with `row`'s key, operation, metadata and fields. */
  copyRow(row) {
    const r = this.row(row.key, row.op).copyMeta(row);
    row.batch.names.forEach((name, c) => r.set(name, row.batch.values[c][row.index]));
    return r;
  }
  column(name) {
    let c = this.columns.get(name);
    if (c === undefined) {
      c = new ColumnOut(name);
      this.columns.set(name, c);
    }
    return c;
  }
  /** The batch in the contract's layout. */
  finish() {
    const rows = this.ops.length;
    const padded = (v) => {
      if (v === null) return undefined;
      while (v.length < rows) v.push(0n);
      return BigUint64Array.from(v);
    };
    let origins;
    if (this.origins !== null) {
      while (this.origins.length < rows) this.origins.push('');
      origins = textsOut(this.origins);
    }
    const versions = padded(this.versions);
    const updated = this.updatedAt === null ? undefined : BigInt64Array.from(padded(this.updatedAt) ?? []);
    return {
      keys: textsOut(this.keys),
      ops: this.ops,
      versions,
      updatedAt: updated,
      origins,
      columns: Array.from(this.columns.values(), (c) => c.finish(rows)),
    };
  }
}

function setMeta(list, row, value) {
  while (list.length <= row) list.push(0n);
  list[row] = BigInt(value);
}

/** One record being built; every method returns it so calls chain. */
export class RowBuilder {
  constructor(b, index) {
    this.b = b;
    this.index = index;
  }
  /** Sets field `name` (null for null); setting it twice keeps the last value. */
  set(name, value) {
    this.b.column(name).set(this.index, value);
    return this;
  }
  /** Sets every field of an object, in its order. */
  update(fields) {
    for (const [name, value] of Object.entries(fields)) this.set(name, value);
    return this;
  }
  version(v) {
    setMeta((this.b.versions ??= []), this.index, v);
    return this;
  }
  updatedAt(micros) {
    setMeta((this.b.updatedAt ??= []), this.index, micros);
    return this;
  }
  origin(origin) {
    const o = (this.b.origins ??= []);
    while (o.length < this.index) o.push('');
    o[this.index] = origin;
    return this;
  }
  /** Copies `row`'s version, updated-at and origin (those it has). */
  copyMeta(row) {
    if (row.batch.versions) this.version(row.version);
    if (row.batch.updatedAt) this.updatedAt(row.updatedAt);
    if (row.batch.origins) this.origin(row.origin);
    return this;
  }
}
