"""`{{name}}`: a ferry conflict resolver. Of two edited versions, the one
with the larger integer in its config's `field` (default `updated_at`)
wins; a tie, and a delete on either side, are left to a person.

    [plugins.{{name}}]
    kind = "resolver"
    wasm = "{{name}}.wasm"
    config = { field = "updated_at" }
    grants = { memory_mb = 128, timeout_ms = 10000 }
"""

import ferry_plugin
from ferry_plugin import DELETE, config
from ferry_plugin.values import I64_MIN


class {{Type}}:
    def __init__(self, cfg):
        """`cfg` is the `config` table, as a dict."""
        config.check_keys(cfg, ["field"])
        self.field = config.text(cfg, "field", default="updated_at")

    def stamp(self, row):
        value = row[self.field]
        return value if type(value) is int else I64_MIN

    def resolve(self, left, right, ancestor, out):
        """Row `i` of `left`, `right` and `ancestor` (the version both sides
        last agreed on; this resolver does not need it) is the same key; a
        `DELETE` row is a version where the key does not exist."""
        for mine, theirs in zip(left.rows(), right.rows()):
            if mine.op == DELETE or theirs.op == DELETE:
                side = "left" if mine.op == DELETE else "right"
                out.defer(f"deleted on the {side} side, edited on the other")
                continue
            a, b = self.stamp(mine), self.stamp(theirs)
            if a < b:
                out.take_right()
            elif a > b:
                out.take_left()
            else:
                out.defer(f"both sides have {self.field} = {a}")


Resolver = ferry_plugin.export_resolver({{Type}})
