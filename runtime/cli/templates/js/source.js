// `{{name}}`: a ferry source. It counts from 1 to its config's `count`
// (default 10), one record per number: key and `id` the number as text,
// `n` the number. Its checkpoint is the last number read, so after a
// restart it goes on from there.
//
//     [plugins.{{name}}]
//     kind = "source"
//     wasm = "{{name}}.wasm"
//     config = { count = 10 }
//     grants = { memory_mb = 128, timeout_ms = 10000 }

import { BatchBuilder, FINISHED, Fatal, MORE, Polled, config, exportSource } from './ferry-plugin/index.js';

class {{Type}} {
  /** `cfg` is the `config` table, a Map; `checkpoint` the bytes of the
   * last committed checkpoint, or null on a first run. Integers are
   * bigints. */
  constructor(cfg, checkpoint) {
    config.checkKeys(cfg, ['count']);
    this.count = config.integer(cfg, 'count', 10n);
    let last = 0n;
    if (checkpoint !== null) {
      const text = new TextDecoder().decode(checkpoint);
      if (!/^[+-]?[0-9]+$/.test(text)) throw new Fatal('the checkpoint is not a number');
      last = BigInt(text);
    }
    this.next = last + 1n;
  }

  poll(maxRecords) {
    const batch = new BatchBuilder();
    while (this.next <= this.count && batch.length < maxRecords) {
      const key = this.next.toString();
      batch.row(key).set('id', key).set('n', this.next);
      this.next += 1n;
    }
    const status = this.next > this.count ? FINISHED : MORE;
    return new Polled(batch, (this.next - 1n).toString(), status);
  }
}

export const source = exportSource({{Type}});
