// `js-field-mapper`: the Rust `field-mapper` in JavaScript, with the same
// config and the same outputs (world `mapper-plugin`, plus
// wasi:filesystem/preopens for lookup tables).
//
// Steps, in this order, each on the result of the one before: `rename`,
// `drop`, `default`, `trim`, `lowercase`, `uppercase`, `titlecase`, `cast`,
// `computed`, `lookup`; see plugins/field-mapper/src/lib.rs for each.
//
//     [plugins.to_warehouse]
//     kind = "mapper"
//     wasm = "../../plugins/dist/js-field-mapper.wasm"
//     config = { rename = { mail = "email" }, cast = { age = "int" }, lookup = [{ table = "/ref/regions.csv", match = "country", column = "region" }] }
//     grants = { files = [{ host = "data", guest = "/ref", mode = "ro" }], memory_mb = 256, timeout_ms = 10000 }

import { InvalidConfig, config, exportMapper, json, log } from '../ferry-plugin/index.js';
import { isAlphanumeric } from '../ferry-plugin/unicode.js';
import { Json, debugStr, display, trim } from '../ferry-plugin/values.js';
import * as casts from './cast.js';
import * as expr from './expr.js';
import { Lookup } from './lookup.js';

const KEYS = ['rename', 'drop', 'default', 'trim', 'lowercase', 'uppercase', 'titlecase', 'cast', 'computed', 'lookup'];

/** Upper-cases the first letter of each word and lower-cases the rest; a
 * word is a run of letters, digits and apostrophes. */
function titlecase(s) {
  let out = '';
  let atStart = true;
  for (const c of s) {
    if (isAlphanumeric(c) || c === "'" || c === '\u2019') {
      out += atStart ? c.toUpperCase() : c.toLowerCase();
      atStart = false;
    } else {
      out += c;
      atStart = true;
    }
  }
  return out;
}

const CASES = {
  trim,
  lowercase: (s) => s.toLowerCase(),
  uppercase: (s) => s.toUpperCase(),
  titlecase,
};

/** A config value (from json.parse) as a field value. */
function fromConfig(v) {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || typeof v === 'bigint' || typeof v === 'number') return v;
  return new Json(json.stringify(v));
}

class Reject extends Error {}

class FieldMapper {
  constructor(cfg) {
    config.checkKeys(cfg, KEYS);
    this.rename = config.textMap(cfg, 'rename');
    this.drop = new Set(config.textList(cfg, 'drop'));
    this.defaults = Array.from(config.tableOf(cfg, 'default'), ([name, v]) => [name, fromConfig(v)]);
    this.texts = [];
    for (const key of ['trim', 'lowercase', 'uppercase', 'titlecase']) {
      for (const f of config.textList(cfg, key)) this.texts.push([f, CASES[key]]);
    }
    this.casts = Array.from(config.tableOf(cfg, 'cast'), ([name, spec]) => [name, casts.parseSpec(spec, `config.cast.${name}`)]);
    this.computed = [];
    for (const [field, source] of config.textMap(cfg, 'computed')) {
      try {
        this.computed.push([field, expr.parse(source)]);
      } catch (e) {
        if (e instanceof expr.SyntaxError_) throw new InvalidConfig(`config.computed.${field}: ${e.message} in ${debugStr(source)}`);
        throw e;
      }
    }
    const specs = cfg.has('lookup') ? cfg.get('lookup') : [];
    if (!Array.isArray(specs)) throw config.wrong('config.lookup', specs, 'a sequence');
    this.lookups = specs.map((spec, i) => {
      const table = new Lookup(spec, `lookup[${i}]`);
      log.debug(`lookup table ${spec.get('table')} has ${table.values.size} keys`);
      return table;
    });
  }

  /** The rules resolved against one batch's columns: each field a slot. */
  plan(batch) {
    const names = [];
    const inputs = [];
    const output = [];
    const index = new Map();
    const source = (name) => {
      let i = index.get(name);
      if (i === undefined) {
        i = names.length;
        index.set(name, i);
        names.push(name);
        inputs.push(null);
        output.push(false);
      }
      return i;
    };
    const target = (name) => {
      const i = source(name);
      output[i] = true;
      return i;
    };
    batch.names.forEach((original, c) => {
      const renamed = this.rename.has(original);
      const name = renamed ? this.rename.get(original) : original;
      if (this.drop.has(name)) return;
      const i = index.get(name);
      if (i !== undefined) {
        if (renamed) inputs[i] = batch.values[c];
      } else {
        index.set(name, names.length);
        names.push(name);
        inputs.push(batch.values[c]);
        output.push(true);
      }
    });
    return {
      names,
      inputs,
      output,
      defaults: this.defaults.map(([name, value]) => [target(name), value]),
      texts: this.texts.map(([name, change]) => [source(name), change]),
      casts: this.casts.map(([name, spec]) => [source(name), name, spec]),
      computed: this.computed.map(([name, c]) => [c.fields.map(source), target(name), name, c]),
      lookups: this.lookups.map((t) => [source(t.matchField), target(t.into), t]),
    };
  }

  map(batch, out) {
    const plan = this.plan(batch);
    const written = [];
    plan.names.forEach((name, i) => {
      if (plan.output[i]) written.push([i, out.builder.column(name)]);
    });
    for (const row of batch.rows()) {
      const r = row.index;
      const cells = plan.inputs.map((values) => (values === null ? null : values[r]));
      for (const [slot, value] of plan.defaults) if (cells[slot] === null) cells[slot] = value;
      for (const [slot, change] of plan.texts) {
        if (typeof cells[slot] === 'string') cells[slot] = change(cells[slot]);
      }
      try {
        for (const [slot, name, spec] of plan.casts) {
          try {
            cells[slot] = casts.cast(cells[slot], spec);
          } catch (e) {
            if (e instanceof casts.CastError) throw new Reject(`cast of field ${debugStr(name)}: ${e.message}`);
            throw e;
          }
        }
        for (const [fields, slot, name, compiled] of plan.computed) {
          try {
            cells[slot] = compiled.eval(fields.map((f) => cells[f]));
          } catch (e) {
            if (e instanceof expr.EvalError) throw new Reject(`computed field ${debugStr(name)}: ${e.message}`);
            throw e;
          }
        }
      } catch (e) {
        if (!(e instanceof Reject)) throw e;
        out.reject(row, e.message);
        continue;
      }
      for (const [from, into, table] of plan.lookups) {
        const key = cells[from];
        cells[into] = key === null ? null : table.get(typeof key === 'string' ? key : key instanceof Json ? key.text : display(key));
      }
      const record = out.emit(row);
      for (const [slot, column] of written) {
        const v = cells[slot];
        if (v !== null) column.set(record.index, v);
      }
    }
  }
}

export const mapper = exportMapper(FieldMapper);
