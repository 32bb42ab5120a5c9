// Lookup tables: a CSV file read at open, mapping one column to another.

import * as config from '../ferry-plugin/config.js';
import { parseStr } from '../ferry-plugin/csv.js';
import { InvalidConfig } from '../ferry-plugin/errors.js';
import { FileError, readText } from '../ferry-plugin/fs.js';
import { debugStr } from '../ferry-plugin/values.js';

const KEYS = ['table', 'match', 'key', 'column', 'into', 'delimiter'];

export class Lookup {
  constructor(spec, at) {
    const path = `config.${at}`;
    if (!(spec instanceof Map)) throw config.wrong(path, spec, 'struct LookupSpec');
    config.checkKeys(spec, KEYS, path);
    for (const required of ['table', 'match', 'column']) {
      if (!spec.has(required)) throw new InvalidConfig(`${path}: missing field "${required}"`);
    }
    const table = config.text(spec, 'table', path);
    this.matchField = config.text(spec, 'match', path);
    const key = config.text(spec, 'key', path);
    const column = config.text(spec, 'column', path);
    this.into = config.text(spec, 'into', path) ?? column;
    let delimiter = config.text(spec, 'delimiter', path);
    let text;
    try {
      text = readText(table);
    } catch (e) {
      if (!(e instanceof FileError)) throw e;
      throw new InvalidConfig(`${path}.table: cannot read ${debugStr(table)}: ${e.message} (is its folder granted to this plugin?)`);
    }
    if (delimiter === null) delimiter = ',';
    else if (new TextEncoder().encode(delimiter).length !== 1) {
      throw new InvalidConfig(`${path}.delimiter: ${debugStr(delimiter)} is not one character`);
    }
    const records = parseStr(text, delimiter);
    if (records.length === 0) throw new InvalidConfig(`${path}.table: ${debugStr(table)} is empty`);
    const names = records[0].fields.map((n) => n ?? '');
    const find = (col, setting) => {
      const i = names.indexOf(col);
      if (i < 0) {
        throw new InvalidConfig(
          `${path}.${setting}: the table ${debugStr(table)} has no column ${debugStr(col)} (its columns: ${names.join(', ')})`,
        );
      }
      return i;
    };
    const keyAt = find(key ?? this.matchField, key !== null ? 'key' : 'match');
    const valueAt = find(column, 'column');
    this.values = new Map();
    for (const rec of records.slice(1)) {
      if (rec.malformed !== null || rec.fields.length !== names.length) {
        throw new InvalidConfig(
          `${path}.table: line ${rec.line} of ${debugStr(table)} does not have ${names.length} well-formed fields`,
        );
      }
      const k = rec.fields[keyAt];
      if (k !== null && !this.values.has(k)) this.values.set(k, rec.fields[valueAt]);
    }
  }
  get(key) {
    return this.values.get(key) ?? null;
  }
}
