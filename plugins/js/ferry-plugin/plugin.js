// The plugin kinds: what a plugin class implements, and the adapters that
// turn it into the object componentize-js exports. A plugin module exports
// the interface its world names (`mapper`, `validator`, `source`, `sink` or
// `resolver`):
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

import { Batch, BatchBuilder, textsIn } from './batch.js';
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

// --- source -------------------------------------------------------------------

export const MORE = 'more';
export const CAUGHT_UP = 'caught-up';
export const FINISHED = 'finished';

const encoder = new TextEncoder();

/** The answer to one poll: the records (a `BatchBuilder`), the checkpoint
 * just past them (a Uint8Array, or a string written as UTF-8; handed back
 * to the constructor after a restart) and the status (`MORE`, `CAUGHT_UP`
 * or `FINISHED`). */
export class Polled {
  constructor(records, checkpoint, status) {
    this.records = records;
    this.checkpoint = checkpoint;
    this.status = status;
  }
}

function checkpointBytes(checkpoint) {
  return typeof checkpoint === 'string' ? encoder.encode(checkpoint) : Uint8Array.from(checkpoint);
}

/** The `source` export for plugin class `Plugin`: `new Plugin(config,
 * checkpoint)` at open (`checkpoint` is null on a first run, else the
 * Uint8Array of the last committed one), `plugin.poll(maxRecords)`
 * returning a `Polled`, and an optional `plugin.commit(checkpoint)`. */
export function exportSource(Plugin) {
  const slot = new Slot();
  return {
    open(config, checkpoint) {
      guarded(() => {
        const cp = checkpoint === undefined || checkpoint === null ? null : Uint8Array.from(checkpoint);
        slot.value = new Plugin(parseConfig(config), cp);
      });
    },
    poll(maxRecords) {
      return guarded(() => {
        const p = slot.get().poll(maxRecords);
        if (![MORE, CAUGHT_UP, FINISHED].includes(p.status)) throw new Fatal(`unknown source status ${String(p.status)}`);
        return { records: p.records.finish(), checkpoint: checkpointBytes(p.checkpoint), status: p.status };
      });
    },
    commit(checkpoint) {
      guarded(() => {
        const plugin = slot.get();
        if (typeof plugin.commit === 'function') plugin.commit(Uint8Array.from(checkpoint));
      });
    },
  };
}

// --- sink -------------------------------------------------------------------

/** What became of the records of one `write` call, being built:
 * `reject(row, reason)` for a record the target refused (it goes to the
 * dead-letter store), `conflict(row, reason)` for one whose target changed
 * since the source read it (it goes to conflict resolution). Records named
 * in neither were written. */
export class WriteReport {
  constructor() {
    this.rejected = [];
    this.conflicts = [];
  }
  reject(row, reason) {
    this.rejected.push({ row: row.index, reason });
  }
  conflict(row, reason) {
    this.conflicts.push({ row: row.index, reason });
  }
}

/** The `sink` export for plugin class `Plugin`: `new Plugin(config)` at
 * open, `plugin.write(batch, report)` per batch (fill the `WriteReport`),
 * an optional `plugin.flush()` that makes the writes so far durable, and an
 * optional `plugin.fetch(keys)` (an array of keys) returning a
 * `BatchBuilder` with the target's current version of those keys, for
 * two-way sync (without it, the answer is an empty batch). */
export function exportSink(Plugin) {
  const slot = new Slot();
  return {
    open(config) {
      guarded(() => {
        slot.value = new Plugin(parseConfig(config));
      });
    },
    write(records) {
      return guarded(() => {
        const plugin = slot.get();
        const report = new WriteReport();
        plugin.write(new Batch(records), report);
        return { rejected: report.rejected, conflicts: report.conflicts };
      });
    },
    flush() {
      guarded(() => {
        const plugin = slot.get();
        if (typeof plugin.flush === 'function') plugin.flush();
      });
    },
    fetch(keys) {
      return guarded(() => {
        const plugin = slot.get();
        if (typeof plugin.fetch !== 'function') return new BatchBuilder().finish();
        return plugin.fetch(textsIn(keys, Math.max(keys.offsets.length - 1, 0), 'keys')).finish();
      });
    },
  };
}

// --- resolver -------------------------------------------------------------------

/** The decisions for one batch of conflicts, being built: one per conflict,
 * in order. `takeLeft()` takes the left side's version (the manifest's
 * `[sync] left`), `takeRight()` the right side's, `defer(reason)` leaves the
 * conflict to a person (the manual queue), `merge(base)` starts a merged record on the
 * returned `RowBuilder` (with `base`'s key, op and metadata and no fields
 * yet) and `mergeAs(key, op)` one under another key or op. */
export class Resolutions {
  constructor() {
    this.decisions = [];
    this.merged = new BatchBuilder();
  }
  takeLeft() {
    this.decisions.push({ tag: 'take-left' });
  }
  takeRight() {
    this.decisions.push({ tag: 'take-right' });
  }
  defer(reason) {
    this.decisions.push({ tag: 'defer', val: reason });
  }
  merge(base) {
    this.decisions.push({ tag: 'merged', val: this.merged.length });
    return this.merged.row(base.key, base.op).copyMeta(base);
  }
  mergeAs(key, op) {
    this.decisions.push({ tag: 'merged', val: this.merged.length });
    return this.merged.row(key, op);
  }
}

/** The `resolver` export for plugin class `Plugin`: `new Plugin(config)` at
 * open, `plugin.resolve(left, right, ancestor, out)` per batch of conflicts.
 * `left`, `right` and `ancestor` (the version both sides last agreed on) are
 * `Batch`es of the same length whose row `i` is the same key; a row whose op
 * is `'delete'` is a version where the key does not exist (deleted on that
 * side, or, in `ancestor`, never synced before). Add one decision per
 * conflict to the `Resolutions`. */
export function exportResolver(Plugin) {
  const slot = new Slot();
  return {
    open(config) {
      guarded(() => {
        slot.value = new Plugin(parseConfig(config));
      });
    },
    resolve(left, right, ancestor) {
      return guarded(() => {
        const plugin = slot.get();
        const out = new Resolutions();
        plugin.resolve(new Batch(left), new Batch(right), new Batch(ancestor), out);
        return { decisions: out.decisions, merged: out.merged.finish() };
      });
    },
  };
}
