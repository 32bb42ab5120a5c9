// `{{name}}`: a ferry sink. It appends each record's fields as one JSON
// line to its config's `path` (default `/out/records.jsonl`, in a folder
// the manifest grants read-write). A JSON Lines file cannot delete a
// record, so deletes are rejected (they go to the dead-letter store).
//
//     [plugins.{{name}}]
//     kind = "sink"
//     wasm = "{{name}}.wasm"
//     config = { path = "/out/records.jsonl" }
//     grants = { files = [{ host = "out", guest = "/out", mode = "rw" }], memory_mb = 128, timeout_ms = 10000 }
//
// Files are reached through wasi:filesystem (`./ferry-plugin/fs.js`), so
// package.json says `"files": true`.

import { DELETE, Fatal, Retryable, config, exportSink } from './ferry-plugin/index.js';
import { AppendFile } from './ferry-plugin/fs.js';

class {{Type}} {
  /** `cfg` is the `config` table, a Map. */
  constructor(cfg) {
    config.checkKeys(cfg, ['path']);
    const path = config.text(cfg, 'path', 'config', '/out/records.jsonl');
    try {
      this.file = new AppendFile(path);
    } catch (e) {
      throw new Fatal(`cannot open ${path}: ${e.message}`);
    }
  }

  write(batch, report) {
    let lines = '';
    for (const row of batch.rows()) {
      if (row.op === DELETE) {
        report.reject(row, 'a JSON Lines file cannot delete a record');
        continue;
      }
      lines += `${row.toJson()}\n`;
    }
    try {
      this.file.append(lines);
    } catch (e) {
      throw new Retryable(`cannot write: ${e.message}`);
    }
  }

  flush() {
    try {
      this.file.sync();
    } catch (e) {
      throw new Retryable(`cannot flush: ${e.message}`);
    }
  }
}

export const sink = exportSink({{Type}});
