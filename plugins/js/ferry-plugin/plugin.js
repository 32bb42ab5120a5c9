// The plugin kinds: what a plugin class implements, and the adapters that
// turn it into the object componentize-js exports. A plugin module exports
// the interface its world names:
//
//     class Upper {
//       constructor(config) {                 // the config table, a Map
//         this.field = config.get('field') ?? 'name';
//       }
//       map(batch, out) {
//         for (const row of batch.rows()) {
//           const name = row.get(this.field);
//           if (name === null) continue;       // dropped on purpose
//           out.emitCopy(row).set(this.field, name.toUpperCase());
//         }
//       }
//     }
//     export const mapper = exportMapper(Upper);
//
// The constructor throws `InvalidConfig` for settings that make no sense.
// One instance lives per plugin instance; a call before `open` is `fatal`.

import { Batch, BatchBuilder } from './batch.js';
import { parseConfig } from './config.js';
import { Fatal, PluginError } from './errors.js';

/** Runs `f`, turning a PluginError into the value the bindings lower as
 * `plugin-error`; anything else propagates (and traps). */
function guarded(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof PluginError) throw e.payload;
    throw e;
  }
}

class Slot {
  constructor() {
    this.value = null;
  }
  get() {
    if (this.value === null) throw new Fatal('not opened');
    return this.value;
  }
}

/** The output of one `map` call, being built: `emit(row)`, `emitCopy(row)`,
 * `emitAs(row, key, op)` start records derived from `row`; `reject(row,
 * reason)` sends it to the dead-letter store. A record neither emitted from
 * nor rejected is dropped on purpose. */
export class Mapped {
  constructor() {
    this.builder = new BatchBuilder();
    this.derivedFrom = [];
    this.rejected = [];
  }
  emit(row) {
    return this.emitAs(row, row.key, row.op);
  }
  emitAs(row, key, op) {
    this.derivedFrom.push(row.index);
    return this.builder.row(key, op).copyMeta(row);
  }
  emitCopy(row) {
    this.derivedFrom.push(row.index);
    return this.builder.copyRow(row);
  }
  reject(row, reason) {
    this.rejected.push({ row: row.index, reason });
  }
}

/** The `mapper` export for plugin class `Plugin`: `new Plugin(config)` at
 * open, `plugin.map(batch, out)` per batch. */
export function exportMapper(Plugin) {
  const slot = new Slot();
  return {
    open(config) {
      guarded(() => {
        slot.value = new Plugin(parseConfig(config));
      });
    },
    map(records) {
      return guarded(() => {
        const plugin = slot.get();
        const out = new Mapped();
        plugin.map(new Batch(records), out);
        return {
          records: out.builder.finish(),
          derivedFrom: Uint32Array.from(out.derivedFrom),
          rejected: out.rejected,
        };
      });
    },
  };
}

/** The broken rules found in one batch: `field(row, field, rule, message)`
 * for a rule about one field, `record(row, rule, message)` for the record. */
export class Violations {
  constructor() {
    this.found = [];
  }
  field(row, field, rule, message) {
    this.found.push({ row: row.index, field, rule, message });
  }
  record(row, rule, message) {
    this.found.push({ row: row.index, field: undefined, rule, message });
  }
}

/** The `validator` export for plugin class `Plugin`: `new Plugin(config)`
 * at open, `plugin.validate(batch, violations)` per batch. */
export function exportValidator(Plugin) {
  const slot = new Slot();
  return {
    open(config) {
      guarded(() => {
        slot.value = new Plugin(parseConfig(config));
      });
    },
    validate(records) {
      return guarded(() => {
        const plugin = slot.get();
        const out = new Violations();
        plugin.validate(new Batch(records), out);
        return out.found;
      });
    },
  };
}
