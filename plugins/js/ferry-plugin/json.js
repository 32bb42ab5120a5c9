// JSON that keeps what JSON.parse loses: whether a number was written as an
// integer (a bigint here, as serde_json's `as_i64`) or not (a number), and
// the order and kind of object keys (objects are Maps). Used for the
// `config` table, which the host sends as JSON.

import { I64_MAX, I64_MIN, jsonString } from './values.js';

export class JsonSyntaxError extends Error {}

/** Parses JSON text: objects are Maps, integers that fit in 64 bits are
 * bigints, other numbers are numbers. */
export function parse(text) {
  let i = 0;
  const fail = (what) => {
    throw new JsonSyntaxError(`${what} at character ${i + 1}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const map = new Map();
      ws();
      if (text[i] === '}') {
        i++;
        return map;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        map.set(key, value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return map;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const list = [];
      ws();
      if (text[i] === ']') {
        i++;
        return list;
      }
      for (;;) {
        list.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return list;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '' || m[0] === '-') fail('expected a value');
    i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = BigInt(m[0]);
      return n >= I64_MIN && n <= I64_MAX ? n : Number(m[0]);
    }
    return Number(m[0]);
  };
  const string = () => {
    i++;
    let out = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) fail('unterminated string');
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        const e = text[i + 1];
        const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[e];
        if (simple !== undefined) {
          out += simple;
          i += 2;
        } else if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else fail('bad escape');
      } else if (c.charCodeAt(0) < 0x20) {
        fail('control character in a string');
      } else {
        out += c;
        i++;
      }
    }
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

/** A float as serde_json (ryu) writes it: `1.0`, `0.1`, `1e21`, `1.5e-7`. */
export function serdeFloat(x) {
  if (!Number.isFinite(x)) return 'null';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expText] = Math.abs(x).toExponential().split('e');
  const digits = mant.replace('.', '');
  const e = Number(expText) - (digits.length - 1);
  const kk = digits.length + e;
  if (e >= 0 && kk <= 16) return `${sign}${digits}${'0'.repeat(e)}.0`;
  if (kk > 0 && kk <= 16) return `${sign}${digits.slice(0, kk)}.${digits.slice(kk)}`;
  if (kk > -5 && kk <= 0) return `${sign}0.${'0'.repeat(-kk)}${digits}`;
  const m = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
  return `${sign}${m}e${kk - 1}`;
}

/** Compact JSON text of a parsed value, as serde_json's `to_string`. */
export function stringify(v) {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return serdeFloat(v);
  if (typeof v === 'string') return jsonString(v);
  if (Array.isArray(v)) return `[${v.map(stringify).join(',')}]`;
  if (v instanceof Map) {
    return `{${Array.from(v, ([k, x]) => `${jsonString(k)}:${stringify(x)}`).join(',')}}`;
  }
  throw new TypeError(`not JSON: ${String(v)}`);
}
