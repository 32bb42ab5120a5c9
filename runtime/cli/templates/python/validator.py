"""`{{name}}`: a ferry validator. Every field named in its config's
`required` list (default `["id"]`) must be present and, if text, not
blank.

    [plugins.{{name}}]
    kind = "validator"
    wasm = "{{name}}.wasm"
    config = { required = ["id", "email"] }
    grants = { memory_mb = 128, timeout_ms = 10000 }
"""

import ferry_plugin
from ferry_plugin import config
from ferry_plugin.values import trim


class {{Type}}:
    def __init__(self, cfg):
        """`cfg` is the `config` table, as a dict."""
        config.check_keys(cfg, ["required"])
        self.required = config.text_list(cfg, "required") if "required" in cfg else ["id"]

    def validate(self, batch, out):
        for row in batch.rows():
            for field in self.required:
                value = row[field]  # None when absent or null
                if value is None:
                    out.field(row, field, "required", f"`{field}` is required")
                elif isinstance(value, str) and not trim(value):
                    out.field(row, field, "required", f"`{field}` is empty")


Validator = ferry_plugin.export_validator({{Type}})
