"""`{{name}}`: a ferry mapper. It upper-cases the text field named by its
config's `field` (default `name`) and keeps every other field as it is.

    [plugins.{{name}}]
    kind = "mapper"
    wasm = "{{name}}.wasm"
    config = { field = "name" }
    grants = { memory_mb = 128, timeout_ms = 10000 }
"""

import ferry_plugin
from ferry_plugin import config


class {{Type}}:
    def __init__(self, cfg):
        """`cfg` is the `config` table, as a dict."""
        config.check_keys(cfg, ["field"])
        self.field = config.text(cfg, "field", default="name")

    def map(self, batch, out):
        for row in batch.rows():
            value = row[self.field]  # None when absent or null
            record = out.emit_copy(row)
            if isinstance(value, str):
                record.set(self.field, value.upper())


Mapper = ferry_plugin.export_mapper({{Type}})
