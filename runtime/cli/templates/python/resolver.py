"""`{{name}}`: a ferry conflict resolver. The version with the larger
integer in its config's `field` (default `updated_at`) wins; a tie is
left to a person.

    [plugins.{{name}}]
    kind = "resolver"
    wasm = "{{name}}.wasm"
    config = { field = "updated_at" }
    grants = { memory_mb = 128, timeout_ms = 10000 }
"""

import ferry_plugin
from ferry_plugin import config
from ferry_plugin.values import I64_MIN


class {{Type}}:
    def __init__(self, cfg):
        """`cfg` is the `config` table, as a dict."""
        config.check_keys(cfg, ["field"])
        self.field = config.text(cfg, "field", default="updated_at")

    def stamp(self, row):
        value = row[self.field]
        return value if type(value) is int else I64_MIN

    def resolve(self, local, remote, out):
        for mine, theirs in zip(local.rows(), remote.rows()):
            a, b = self.stamp(mine), self.stamp(theirs)
            if a < b:
                out.take_remote()
            elif a > b:
                out.keep_local()
            else:
                out.defer(f"both sides have {self.field} = {a}")


Resolver = ferry_plugin.export_resolver({{Type}})
