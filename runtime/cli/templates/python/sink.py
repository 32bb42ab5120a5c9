"""`{{name}}`: a ferry sink. It appends each record's fields as one JSON
line to its config's `path` (default `/out/records.jsonl`, in a folder
the manifest grants read-write). A JSON Lines file cannot delete a
record, so deletes are rejected (they go to the dead-letter store).

    [plugins.{{name}}]
    kind = "sink"
    wasm = "{{name}}.wasm"
    config = { path = "/out/records.jsonl" }
    grants = { files = [{ host = "out", guest = "/out", mode = "rw" }], memory_mb = 128, timeout_ms = 10000 }
"""

import os

import ferry_plugin
from ferry_plugin import DELETE, Fatal, Retryable, config


class {{Type}}:
    def __init__(self, cfg):
        """`cfg` is the `config` table, as a dict."""
        config.check_keys(cfg, ["path"])
        path = config.text(cfg, "path", default="/out/records.jsonl")
        try:
            self.file = open(path, "ab")
        except OSError as e:
            raise Fatal(f"cannot open {path}: {e.strerror or e}") from None

    def write(self, batch, report):
        lines = []
        for row in batch.rows():
            if row.op == DELETE:
                report.reject(row, "a JSON Lines file cannot delete a record")
                continue
            lines.append(row.to_json() + "\n")
        try:
            self.file.write("".join(lines).encode("utf-8"))
            self.file.flush()
        except OSError as e:
            raise Retryable(f"cannot write: {e.strerror or e}") from None

    def flush(self):
        try:
            os.fsync(self.file.fileno())
        except OSError as e:
            raise Retryable(f"cannot flush: {e.strerror or e}") from None


Sink = ferry_plugin.export_sink({{Type}})
