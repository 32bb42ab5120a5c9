"""`{{name}}`: a ferry source. It counts from 1 to its config's `count`
(default 10), one record per number: key and `id` the number as text,
`n` the number. Its checkpoint is the last number read, so after a
restart it goes on from there.

    [plugins.{{name}}]
    kind = "source"
    wasm = "{{name}}.wasm"
    config = { count = 10 }
    grants = { memory_mb = 128, timeout_ms = 10000 }
"""

import ferry_plugin
from ferry_plugin import FINISHED, MORE, BatchBuilder, Fatal, Polled, config


class {{Type}}:
    def __init__(self, cfg, checkpoint):
        """`cfg` is the `config` table, as a dict; `checkpoint` the bytes of
        the last committed checkpoint, or None on a first run."""
        config.check_keys(cfg, ["count"])
        self.count = config.integer(cfg, "count", 10)
        last = 0
        if checkpoint is not None:
            try:
                last = int(checkpoint.decode("utf-8"))
            except ValueError:
                raise Fatal("the checkpoint is not a number") from None
        self.next = last + 1

    def poll(self, max_records):
        batch = BatchBuilder()
        while self.next <= self.count and len(batch) < max_records:
            key = str(self.next)
            batch.row(key).set("id", key).set("n", self.next)
            self.next += 1
        status = FINISHED if self.next > self.count else MORE
        return Polled(batch, str(self.next - 1).encode("utf-8"), status)


Source = ferry_plugin.export_source({{Type}})
