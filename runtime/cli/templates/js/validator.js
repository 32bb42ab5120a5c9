// `{{name}}`: a ferry validator. Every field named in its config's
// `required` list (default `["id"]`) must be present and, if text, not
// blank.
//
//     [plugins.{{name}}]
//     kind = "validator"
//     wasm = "{{name}}.wasm"
//     config = { required = ["id", "email"] }
//     grants = { memory_mb = 128, timeout_ms = 10000 }

import { config, exportValidator } from './ferry-plugin/index.js';
import { trim } from './ferry-plugin/values.js';

class {{Type}} {
  /** `cfg` is the `config` table, a Map. */
  constructor(cfg) {
    config.checkKeys(cfg, ['required']);
    this.required = cfg.has('required') ? config.textList(cfg, 'required') : ['id'];
  }

  validate(batch, out) {
    for (const row of batch.rows()) {
      for (const field of this.required) {
        const value = row.get(field); // null when absent or null
        if (value === null) {
          out.field(row, field, 'required', `\`${field}\` is required`);
        } else if (typeof value === 'string' && trim(value) === '') {
          out.field(row, field, 'required', `\`${field}\` is empty`);
        }
      }
    }
  }
}

export const validator = exportValidator({{Type}});
