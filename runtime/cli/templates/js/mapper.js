// `{{name}}`: a ferry mapper. It upper-cases the text field named by its
// config's `field` (default `name`) and keeps every other field as it is.
//
//     [plugins.{{name}}]
//     kind = "mapper"
//     wasm = "{{name}}.wasm"
//     config = { field = "name" }
//     grants = { memory_mb = 128, timeout_ms = 10000 }

import { config, exportMapper } from './ferry-plugin/index.js';

class {{Type}} {
  /** `cfg` is the `config` table, a Map. */
  constructor(cfg) {
    config.checkKeys(cfg, ['field']);
    this.field = config.text(cfg, 'field', 'config', 'name');
  }

  map(batch, out) {
    for (const row of batch.rows()) {
      const value = row.get(this.field); // null when absent or null
      const record = out.emitCopy(row);
      if (typeof value === 'string') record.set(this.field, value.toUpperCase());
    }
  }
}

export const mapper = exportMapper({{Type}});
