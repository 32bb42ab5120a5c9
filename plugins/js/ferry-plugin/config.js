// Reading a plugin's `config` table (a Map, see json.js) with errors that
// name the setting, as the Rust SDK words them: `config.cast.age: ...`,
// `config: unknown field "cats", expected one of "rename", "drop", ...`.

import { InvalidConfig } from './errors.js';
import { parse, JsonSyntaxError, stringify } from './json.js';

/** The `config` table's JSON as a Map (empty for an empty text). */
export function parseConfig(text) {
  if (text.trim() === '') return new Map();
  let v;
  try {
    v = parse(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new InvalidConfig(`config is not valid JSON: ${e.message}`);
    throw e;
  }
  if (v === null) return new Map();
  if (!(v instanceof Map)) throw new InvalidConfig('config: expected a table');
  return v;
}

const names = (list) => list.map((n) => `"${n}"`).join(', ');

/** Refuses keys of `table` not in `known` (typos). */
export function checkKeys(table, known, path = 'config') {
  for (const key of table.keys()) {
    if (!known.includes(key)) {
      throw new InvalidConfig(`${path}: unknown field "${key}", expected one of ${names(known)}`);
    }
  }
}

function what(v) {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (typeof v === 'bigint') return `integer \`${v}\``;
  if (typeof v === 'number') return `floating point \`${stringify(v)}\``;
  if (typeof v === 'string') return `string "${v}"`;
  if (Array.isArray(v)) return 'sequence';
  return 'map';
}

export function wrong(path, value, expected) {
  return new InvalidConfig(`${path}: invalid type: ${what(value)}, expected ${expected}`);
}

export function text(table, key, path = 'config', fallback = null) {
  const v = table.has(key) ? table.get(key) : fallback;
  if (v !== null && typeof v !== 'string') throw wrong(`${path}.${key}`, v, 'a string');
  return v;
}

/** An integer that fits in 64 bits, as a bigint (`fallback` when absent). */
export function integer(table, key, fallback, path = 'config') {
  const v = table.has(key) ? table.get(key) : fallback;
  if (typeof v !== 'bigint' || v < -(2n ** 63n) || v >= 2n ** 63n) throw wrong(`${path}.${key}`, v, 'i64');
  return v;
}

export function boolean(table, key, fallback, path = 'config') {
  const v = table.has(key) ? table.get(key) : fallback;
  if (typeof v !== 'boolean') throw wrong(`${path}.${key}`, v, 'a boolean');
  return v;
}

/** A list of texts (`[]` when absent). */
export function textList(table, key, path = 'config') {
  const v = table.has(key) ? table.get(key) : [];
  if (!Array.isArray(v)) throw wrong(`${path}.${key}`, v, 'a sequence');
  v.forEach((item, i) => {
    if (typeof item !== 'string') throw wrong(`${path}.${key}[${i}]`, item, 'a string');
  });
  return v;
}

/** A table (an empty Map when absent), in the order written. */
export function tableOf(table, key, path = 'config') {
  const v = table.has(key) ? table.get(key) : new Map();
  if (!(v instanceof Map)) throw wrong(`${path}.${key}`, v, 'a map');
  return v;
}

/** A table of texts. */
export function textMap(table, key, path = 'config') {
  const v = tableOf(table, key, path);
  for (const [k, item] of v) {
    if (typeof item !== 'string') throw wrong(`${path}.${key}.${k}`, item, 'a string');
  }
  return v;
}
