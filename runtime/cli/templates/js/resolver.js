// `{{name}}`: a ferry conflict resolver. Of two edited versions, the one
// with the larger integer in its config's `field` (default `updated_at`)
// wins; a tie, and a delete on either side, are left to a person.
//
//     [plugins.{{name}}]
//     kind = "resolver"
//     wasm = "{{name}}.wasm"
//     config = { field = "updated_at" }
//     grants = { memory_mb = 128, timeout_ms = 10000 }

import { DELETE, config, exportResolver } from './ferry-plugin/index.js';
import { I64_MIN } from './ferry-plugin/values.js';

class {{Type}} {
  /** `cfg` is the `config` table, a Map. */
  constructor(cfg) {
    config.checkKeys(cfg, ['field']);
    this.field = config.text(cfg, 'field', 'config', 'updated_at');
  }

  /** The row's integer `field` (integers are bigints), or the smallest. */
  stamp(row) {
    const value = row.get(this.field);
    return typeof value === 'bigint' ? value : I64_MIN;
  }

  /** Row `i` of `left`, `right` and `ancestor` (the version both sides last
   * agreed on; this resolver does not need it) is the same key; a 'delete'
   * row is a version where the key does not exist. */
  resolve(left, right, ancestor, out) {
    for (let i = 0; i < Math.min(left.length, right.length); i++) {
      const mine = left.row(i);
      const theirs = right.row(i);
      if (mine.op === DELETE || theirs.op === DELETE) {
        const side = mine.op === DELETE ? 'left' : 'right';
        out.defer(`deleted on the ${side} side, edited on the other`);
        continue;
      }
      const a = this.stamp(mine);
      const b = this.stamp(theirs);
      if (a < b) out.takeRight();
      else if (a > b) out.takeLeft();
      else out.defer(`both sides have ${this.field} = ${a}`);
    }
  }
}

export const resolver = exportResolver({{Type}});
