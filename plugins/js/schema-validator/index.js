// `js-schema-validator`: the Rust `schema-validator` in JavaScript, with the
// same config and the same violations (world `validator-plugin`).
//
// Rules: `required`, `non_empty`, `types`, `ranges`, `lengths`, `regex`,
// `enums`, `unique_key` (default false), `key_required` (default true),
// `reject_errors` (default true); see plugins/schema-validator/src/lib.rs.
// Regexes are JavaScript's (flag `u`, searched anywhere unless anchored):
// classes, `\s`, anchors, groups and repetition mean what they mean in
// Rust's `regex`; `\d` and `\w` are ASCII-only here (Unicode in Rust), and
// Rust-only syntax such as `(?P<name>...)` or `[[:alpha:]]` is an
// invalid-config error or means something else.
//
//     [plugins.rules]
//     kind = "validator"
//     wasm = "../../plugins/dist/js-schema-validator.wasm"
//     config = { required = ["id", "email"], types = { age = "int" }, ranges = { age = { min = 0, max = 120 } }, regex = { email = '^[^@\s]+@[^@\s]+$' }, unique_key = true }
//     grants = { memory_mb = 256, timeout_ms = 10000 }

import { DELETE, InvalidConfig, config, exportValidator, json } from '../ferry-plugin/index.js';
import { charCount, describe, display, kind, quote, rustFloat, shown, trim } from '../ferry-plugin/values.js';

const KEYS = ['required', 'non_empty', 'types', 'ranges', 'lengths', 'regex', 'enums', 'unique_key', 'key_required', 'reject_errors'];
const TYPE_NAMES = ['int', 'float', 'number', 'bool', 'text', 'timestamp', 'json'];
const ACCEPTS = {
  int: ['int'],
  float: ['int', 'float'],
  number: ['int', 'float'],
  bool: ['bool'],
  text: ['text'],
  timestamp: ['timestamp'],
  json: ['json'],
};

const isNumber = (v) => typeof v === 'bigint' || typeof v === 'number';

function bounds(table, what, field, integer) {
  const path = `config.${what}.${field}`;
  if (!(table instanceof Map)) throw config.wrong(path, table, 'struct Bounds');
  config.checkKeys(table, ['min', 'max'], path);
  const [lo, hi] = ['min', 'max'].map((key) => {
    const v = table.has(key) ? table.get(key) : null;
    if (v === null) return null;
    if (integer) {
      if (typeof v !== 'bigint' || v < 0n) throw config.wrong(`${path}.${key}`, v, 'u64');
      return v;
    }
    if (!isNumber(v)) throw config.wrong(`${path}.${key}`, v, 'f64');
    return Number(v);
  });
  const fmt = integer ? String : rustFloat;
  if (lo === null && hi === null) throw new InvalidConfig(`${path}: give min, max or both`);
  if (lo !== null && hi !== null && lo > hi) throw new InvalidConfig(`${path}: min ${fmt(lo)} is greater than max ${fmt(hi)}`);
  return [lo, hi];
}

function enumMatches(a, v) {
  if (typeof a === 'string') return typeof v === 'string' && a === v;
  if (typeof a === 'boolean') return typeof v === 'boolean' && a === v;
  if (typeof v === 'bigint') return typeof a === 'bigint' ? a === v : a === Number(v);
  if (typeof v === 'number') return Number(a) === v;
  return false;
}

class SchemaValidator {
  constructor(cfg) {
    config.checkKeys(cfg, KEYS);
    const checks = [];
    for (const f of config.textList(cfg, 'required')) checks.push([f, 'required', null]);
    for (const f of config.textList(cfg, 'non_empty')) checks.push([f, 'non_empty', null]);
    for (const [field, name] of config.tableOf(cfg, 'types')) {
      if (!TYPE_NAMES.includes(name)) {
        const got = typeof name === 'string' ? `"${name}"` : json.stringify(name);
        throw new InvalidConfig(
          `config.types.${field}: unknown variant ${got}, expected one of ${TYPE_NAMES.map((t) => `"${t}"`).join(', ')}`,
        );
      }
      checks.push([field, 'type', name]);
    }
    for (const [field, b] of config.tableOf(cfg, 'ranges')) checks.push([field, 'range', bounds(b, 'ranges', field, false)]);
    for (const [field, b] of config.tableOf(cfg, 'lengths')) checks.push([field, 'length', bounds(b, 'lengths', field, true)]);
    for (const [field, pattern] of config.textMap(cfg, 'regex')) {
      let re;
      try {
        re = new RegExp(pattern, 'u');
      } catch (e) {
        throw new InvalidConfig(`config.regex.${field}: invalid regex ${quote(pattern)}: ${e.message}`);
      }
      checks.push([field, 'regex', [re, pattern]]);
    }
    for (const [field, values] of config.tableOf(cfg, 'enums')) {
      if (!Array.isArray(values)) throw config.wrong(`config.enums.${field}`, values, 'a sequence');
      if (values.length === 0) throw new InvalidConfig(`config.enums.${field}: the list of allowed values is empty`);
      for (const v of values) {
        if (v === null || v instanceof Map || Array.isArray(v)) {
          throw new InvalidConfig(`config.enums.${field}: ${json.stringify(v)} is not text, a number or a boolean`);
        }
      }
      const listed = values.slice(0, 10).map(json.stringify);
      if (values.length > 10) listed.push('…');
      checks.push([field, 'enum', [values, listed.join(', ')]]);
    }
    this.checks = checks;
    this.uniqueKey = config.boolean(cfg, 'unique_key', false);
    this.keyRequired = config.boolean(cfg, 'key_required', true);
    this.rejectErrors = config.boolean(cfg, 'reject_errors', true);
  }

  validate(batch, out) {
    const columns = this.checks.map(([field]) => batch.column(field));
    const errors = this.rejectErrors ? batch.column('_error') : undefined;
    const seen = new Map();
    for (const row of batch.rows()) {
      const i = row.index;
      if (errors !== undefined && typeof errors[i] === 'string') {
        out.field(row, '_error', 'source_error', errors[i]);
        continue;
      }
      const key = row.key;
      if (this.keyRequired && key === '') out.record(row, 'key', 'the record has no key');
      if (this.uniqueKey && key !== '') {
        const first = seen.get(key);
        if (first !== undefined) {
          out.record(row, 'unique_key', `key ${quote(key)} appears more than once in this batch (first as record ${first})`);
        } else seen.set(key, i);
      }
      if (row.op === DELETE) continue;
      this.checks.forEach(([field, rule, arg], c) => {
        const value = columns[c] === undefined ? null : columns[c][i];
        const found = check(field, rule, arg, value);
        if (found !== null) out.field(row, field, found[0], found[1]);
      });
    }
  }
}

/** `[rule, message]` when `value` breaks the rule, else null. */
function check(field, rule, arg, value) {
  if (value === null) return rule === 'required' ? ['required', `${field} is missing`] : null;
  switch (rule) {
    case 'required':
      return null;
    case 'non_empty':
      return typeof value === 'string' && trim(value) === '' ? ['non_empty', `${field} is empty`] : null;
    case 'type':
      return ACCEPTS[arg].includes(kind(value)) ? null : ['type', `${field} should be ${arg}, found ${describe(value)}`];
    case 'range': {
      if (!isNumber(value)) return ['range', `${field} ${shown(value)} is not a number`];
      const x = Number(value);
      const [lo, hi] = arg;
      if (lo !== null && x < lo) return ['range', `${field} ${shown(value)} is below the minimum ${rustFloat(lo)}`];
      if (hi !== null && x > hi) return ['range', `${field} ${shown(value)} is above the maximum ${rustFloat(hi)}`];
      return null;
    }
    case 'length': {
      if (typeof value !== 'string') return null;
      const n = BigInt(charCount(value));
      const [lo, hi] = arg;
      if (lo !== null && n < lo) return ['length', `${field} is ${n} characters long, fewer than the minimum ${lo}`];
      if (hi !== null && n > hi) return ['length', `${field} is ${n} characters long, more than the maximum ${hi}`];
      return null;
    }
    case 'regex': {
      const [re, pattern] = arg;
      const text = typeof value === 'string' ? value : display(value);
      return re.test(text) ? null : ['regex', `${field} ${shown(value)} does not match ${pattern}`];
    }
    default: {
      const [allowed, listed] = arg;
      return allowed.some((a) => enumMatches(a, value)) ? null : ['enum', `${field} ${shown(value)} is not one of ${listed}`];
    }
  }
}

export const validator = exportValidator(SchemaValidator);
