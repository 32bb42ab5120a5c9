// `{{name}}`: a ferry conflict resolver. The version with the larger
// integer in its config's `field` (default `updated_at`) wins; a tie is
// left to a person.
//
//     [plugins.{{name}}]
//     kind = "resolver"
//     wasm = "{{name}}.wasm"
//     config = { field = "updated_at" }
//     grants = { memory_mb = 128, timeout_ms = 10000 }

import { config, exportResolver } from './ferry-plugin/index.js';
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

  resolve(local, remote, out) {
    for (let i = 0; i < Math.min(local.length, remote.length); i++) {
      const a = this.stamp(local.row(i));
      const b = this.stamp(remote.row(i));
      if (a < b) out.takeRemote();
      else if (a > b) out.keepLocal();
      else out.defer(`both sides have ${this.field} = ${a}`);
    }
  }
}

export const resolver = exportResolver({{Type}});
