// Casts between field types (the Rust field-mapper's `cast`).

import { InvalidConfig } from '../ferry-plugin/errors.js';
import {
  I64_MAX,
  I64_MIN,
  Json,
  Timestamp,
  debugStr,
  describe,
  display,
  parseDate,
  parseFloatRust,
  parseRfc3339,
  shown,
  trim,
} from '../ferry-plugin/values.js';
import * as strtime from './strtime.js';

const TYPES = ['int', 'float', 'bool', 'text', 'timestamp'];
const TYPES_TEXT = '"int", "float", "bool", "text" or "timestamp"';

/** A `cast` entry: a type name or `{ to = ..., format = ... }`. */
export function parseSpec(v, path) {
  const typeOf = (name) => {
    if (!TYPES.includes(name)) throw new InvalidConfig(`${path}: unknown type ${debugStr(name)}, expected ${TYPES_TEXT}`);
    return name;
  };
  let spec;
  if (typeof v === 'string') spec = { to: typeOf(v), format: null };
  else if (v instanceof Map) {
    for (const k of v.keys()) {
      if (k !== 'to' && k !== 'format') {
        throw new InvalidConfig(`${path}: unknown setting ${debugStr(k)}, expected "to" or "format"`);
      }
    }
    if (typeof v.get('to') !== 'string') throw new InvalidConfig(`${path}: "to" must be one of ${TYPES_TEXT}`);
    const format = v.has('format') ? v.get('format') : null;
    if (format !== null && typeof format !== 'string') throw new InvalidConfig(`${path}: "format" must be text`);
    spec = { to: typeOf(v.get('to')), format };
  } else {
    throw new InvalidConfig(`${path}: expected a type name (${TYPES_TEXT}) or { to = "timestamp", format = "%d/%m/%Y" }`);
  }
  if (spec.format !== null) {
    if (spec.to !== 'timestamp' && spec.to !== 'text') {
      throw new InvalidConfig(`${path}: "format" applies only to casts to timestamp or text`);
    }
    if (!strtime.valid(spec.format)) throw new InvalidConfig(`${path}: ${debugStr(spec.format)} is not a valid strftime format`);
  }
  return spec;
}

const LIMIT = 9223372036854775808;

function floatToInt(x) {
  if (Number.isFinite(x) && Number.isInteger(x) && x >= -LIMIT && x < LIMIT) return BigInt(x);
  return null;
}

function parseInt64(s) {
  const t = trim(s);
  if (/^[+-]?[0-9]+$/.test(t)) {
    const n = BigInt(t);
    if (n >= I64_MIN && n <= I64_MAX) return n;
  }
  const x = parseFloatRust(t);
  return x === null ? null : floatToInt(x);
}

function parseBool(s) {
  const t = trim(s);
  const low = /^[\x00-\x7f]*$/.test(t) ? t.toLowerCase() : null;
  if (low === 'true' || low === 'yes' || low === '1') return true;
  if (low === 'false' || low === 'no' || low === '0') return false;
  return null;
}

export class CastError extends Error {}

/** `v` cast as `spec` says; throws `CastError` with the reason. */
export function cast(v, spec) {
  if (v === null) return null;
  const t = typeof v;
  const fail = (what) => new CastError(`${shown(v)} is not ${what}`);
  const cannot = (to) => new CastError(`cannot cast ${describe(v)} to ${to}`);
  switch (spec.to) {
    case 'int': {
      if (t === 'bigint') return v;
      if (t === 'number') {
        const n = floatToInt(v);
        if (n === null) throw fail('an integer');
        return n;
      }
      if (t === 'string') {
        const n = parseInt64(v);
        if (n === null) throw fail('an integer');
        return n;
      }
      if (t === 'boolean') return v ? 1n : 0n;
      throw cannot('int');
    }
    case 'float': {
      if (t === 'bigint') return Number(v);
      if (t === 'number') return v;
      if (t === 'string') {
        const x = parseFloatRust(trim(v));
        if (x === null || !Number.isFinite(x)) throw fail('a number');
        return x;
      }
      throw cannot('float');
    }
    case 'bool': {
      if (t === 'boolean') return v;
      if (t === 'bigint' && (v === 0n || v === 1n)) return v === 1n;
      if (t === 'string') {
        const b = parseBool(v);
        if (b === null) throw fail('a boolean (true/false, yes/no, 1/0)');
        return b;
      }
      throw cannot('bool');
    }
    case 'text': {
      if (t === 'string') return v;
      if (v instanceof Timestamp && spec.format !== null) return strtime.format(v.micros, spec.format);
      if (v instanceof Json) return v.text;
      return display(v);
    }
    default: {
      if (v instanceof Timestamp) return v;
      if (t === 'string') {
        const s = trim(v);
        let micros;
        if (spec.format !== null) {
          micros = strtime.parse(s, spec.format);
          if (micros === null) throw new CastError(`${shown(v)} does not match the format ${debugStr(spec.format)}`);
        } else {
          micros = parseRfc3339(s) ?? parseDate(s);
          if (micros === null) throw fail('a timestamp (RFC 3339 or YYYY-MM-DD)');
        }
        return new Timestamp(micros);
      }
      throw cannot('timestamp');
    }
  }
}
