"""The plugin kinds: what a plugin class implements, and the adapters that
turn it into the class componentize-py exports.

A plugin module defines its class and binds the export name the world
expects to the adapter (`Mapper`, `Validator`, `Source`, `Sink` or
`Resolver`), for example in a mapper:

    class Upper:
        def __init__(self, config):            # the manifest's config table, as a dict
            self.field = config.get("field", "name")
        def map(self, batch, out):
            for row in batch.rows():
                name = row[self.field]
                if name is None:
                    continue                       # dropped on purpose
                out.emit_copy(row).set(self.field, name.upper())

    Mapper = ferry_plugin.export_mapper(Upper)

`__init__` raises `InvalidConfig` for settings that make no sense. One
instance lives per plugin instance; a call before `open` is `fatal`.
"""

import json

from . import _wit
from .batch import Batch, BatchBuilder
from .errors import Fatal, InvalidConfig, PluginError, Retryable


def parse_config(text):
    """The `config` table's JSON as a dict (`{}` for an empty text)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidConfig(f"config is not valid JSON: {e}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfig("config: expected a table")
    return value


def _err(e):
    from componentize_py_types import Err

    if isinstance(e, InvalidConfig):
        return Err(_wit.PluginError_InvalidConfig(e.message))
    if isinstance(e, Retryable):
        return Err(_wit.PluginError_Retryable(e.message))
    return Err(_wit.PluginError_Fatal(e.message))


class _Slot:
    """The one plugin instance of a component instance."""

    def __init__(self):
        self.value = None

    def get(self):
        if self.value is None:
            raise Fatal("not opened")
        return self.value


# --- mapper -----------------------------------------------------------------


class Mapped:
    """The output of one `map` call, being built.

    - `emit(row)`: a new record derived from `row`, with its key, operation
      and metadata but no fields yet; returns a `RowBuilder`.
    - `emit_copy(row)`: the same with every field of `row` copied.
    - `emit_as(row, key, op)`: derived from `row` under another key or op.
    - `reject(row, reason)`: `row` goes to the dead-letter store.

    An input record neither emitted from nor rejected is dropped on purpose.
    """

    def __init__(self):
        self.builder = BatchBuilder()
        self.derived_from = []
        self.rejected = []

    def emit(self, row):
        return self.emit_as(row, row.key, row.op)

    def emit_as(self, row, key, op):
        self.derived_from.append(row.index)
        return self.builder.row(key, op).copy_meta(row)

    def emit_copy(self, row):
        self.derived_from.append(row.index)
        return self.builder.copy_row(row)

    def reject(self, row, reason):
        self.rejected.append(_wit.RecordIssue(row.index, reason))

    def __len__(self):
        return len(self.builder)


def export_mapper(cls):
    """The `Mapper` export class for plugin class `cls` (see the module docs):
    `cls(config)` at open, `instance.map(batch, out)` per batch. Outside a
    component (unit tests) there is nothing to export: `None`."""
    if not _wit.IN_COMPONENT:
        return None
    from wit_world import exports
    from wit_world.exports.mapper import Mapped as WitMapped

    slot = _Slot()

    class Mapper(exports.Mapper):
        def open(self, config):
            try:
                slot.value = cls(parse_config(config))
            except PluginError as e:
                raise _err(e) from None

        def map(self, records):
            try:
                plugin = slot.get()
                batch = Batch(records)
                out = Mapped()
                plugin.map(batch, out)
                return WitMapped(out.builder.finish(), out.derived_from, out.rejected)
            except PluginError as e:
                raise _err(e) from None

    return Mapper


# --- validator --------------------------------------------------------------


class Violations:
    """The broken rules found in one batch: `field(row, field, rule,
    message)` for a rule about one field, `record(row, rule, message)` for
    one about the whole record."""

    def __init__(self, make):
        self._make = make
        self.found = []

    def field(self, row, field, rule, message):
        self.found.append(self._make(row.index, field, rule, message))

    def record(self, row, rule, message):
        self.found.append(self._make(row.index, None, rule, message))

    def __len__(self):
        return len(self.found)


def export_validator(cls):
    """The `Validator` export class for plugin class `cls`: `cls(config)` at
    open, `instance.validate(batch, violations)` per batch."""
    if not _wit.IN_COMPONENT:
        return None
    from wit_world import exports
    from wit_world.exports.validator import Violation

    slot = _Slot()

    class Validator(exports.Validator):
        def open(self, config):
            try:
                slot.value = cls(parse_config(config))
            except PluginError as e:
                raise _err(e) from None

        def validate(self, records):
            try:
                plugin = slot.get()
                out = Violations(Violation)
                plugin.validate(Batch(records), out)
                return out.found
            except PluginError as e:
                raise _err(e) from None

    return Validator


# --- source -----------------------------------------------------------------

MORE = "more"
CAUGHT_UP = "caught-up"
FINISHED = "finished"


class Polled:
    """The answer to one poll: the records (a `BatchBuilder`), the checkpoint
    just past them (bytes, handed back to the constructor after a restart)
    and the status (`MORE`, `CAUGHT_UP` or `FINISHED`)."""

    def __init__(self, records, checkpoint, status):
        self.records = records
        self.checkpoint = checkpoint
        self.status = status


def _checkpoint_bytes(checkpoint):
    """A checkpoint as bytes; text is encoded as UTF-8."""
    if isinstance(checkpoint, str):
        return checkpoint.encode("utf-8")
    return bytes(checkpoint)


def export_source(cls):
    """The `Source` export class for plugin class `cls`: `cls(config,
    checkpoint)` at open (`checkpoint` is `None` on a first run, else the
    bytes of the last committed one), `instance.poll(max_records)`
    returning a `Polled`, and an optional `instance.commit(checkpoint)`."""
    if not _wit.IN_COMPONENT:
        return None
    from wit_world import exports
    from wit_world.exports.source import Polled as WitPolled
    from wit_world.exports.source import SourceStatus

    statuses = {MORE: SourceStatus.MORE, CAUGHT_UP: SourceStatus.CAUGHT_UP, FINISHED: SourceStatus.FINISHED}
    slot = _Slot()

    class Source(exports.Source):
        def open(self, config, checkpoint):
            try:
                cp = None if checkpoint is None else bytes(checkpoint)
                slot.value = cls(parse_config(config), cp)
            except PluginError as e:
                raise _err(e) from None

        def poll(self, max_records):
            try:
                p = slot.get().poll(max_records)
                return WitPolled(p.records.finish(), _checkpoint_bytes(p.checkpoint), statuses[p.status])
            except PluginError as e:
                raise _err(e) from None

        def commit(self, checkpoint):
            try:
                plugin = slot.get()
                if hasattr(plugin, "commit"):
                    plugin.commit(bytes(checkpoint))
            except PluginError as e:
                raise _err(e) from None

    return Source


# --- sink -------------------------------------------------------------------


class WriteReport:
    """What became of the records of one `write` call, being built:
    `reject(row, reason)` for a record the target refused (it goes to the
    dead-letter store), `conflict(row, reason)` for one whose target changed
    since the source read it (it goes to conflict resolution). Records named
    in neither were written."""

    def __init__(self):
        self.rejected = []
        self.conflicts = []

    def reject(self, row, reason):
        self.rejected.append(_wit.RecordIssue(row.index, reason))

    def conflict(self, row, reason):
        self.conflicts.append(_wit.RecordIssue(row.index, reason))


def export_sink(cls):
    """The `Sink` export class for plugin class `cls`: `cls(config)` at
    open, `instance.write(batch, report)` per batch (fill the
    `WriteReport`), an optional `instance.flush()` that makes the writes so
    far durable, and an optional `instance.fetch(keys)` (a list of keys)
    returning a `BatchBuilder` with the target's current version of those
    keys, for two-way sync (without it, the answer is an empty batch)."""
    if not _wit.IN_COMPONENT:
        return None
    from wit_world import exports
    from wit_world.exports.sink import WriteReport as WitWriteReport

    from .batch import _texts_in

    slot = _Slot()

    class Sink(exports.Sink):
        def open(self, config):
            try:
                slot.value = cls(parse_config(config))
            except PluginError as e:
                raise _err(e) from None

        def write(self, records):
            try:
                plugin = slot.get()
                report = WriteReport()
                plugin.write(Batch(records), report)
                return WitWriteReport(report.rejected, report.conflicts)
            except PluginError as e:
                raise _err(e) from None

        def flush(self):
            try:
                plugin = slot.get()
                if hasattr(plugin, "flush"):
                    plugin.flush()
            except PluginError as e:
                raise _err(e) from None

        def fetch(self, keys):
            try:
                plugin = slot.get()
                if not hasattr(plugin, "fetch"):
                    return BatchBuilder().finish()
                wanted = _texts_in(keys, len(keys.offsets) - 1, "keys")
                return plugin.fetch(wanted).finish()
            except PluginError as e:
                raise _err(e) from None

    return Sink


# --- resolver ---------------------------------------------------------------


class Resolutions:
    """The decisions for one batch of conflicts, being built: one per
    conflict, in order.

    - `take_left()`: take the left side's version (the manifest's
      `[sync] left`).
    - `take_right()`: take the right side's version.
    - `defer(reason)`: leave the conflict to a person (the manual queue);
      `reason` says why.
    - `merge(base)`: a merged record, built on the returned `RowBuilder`
      (with `base`'s key, operation and metadata and no fields yet);
      `merge_as(key, op)` under another key or operation.
    """

    def __init__(self):
        self.decisions = []
        self.merged = BatchBuilder()

    def take_left(self):
        self.decisions.append(("take-left", None))

    def take_right(self):
        self.decisions.append(("take-right", None))

    def defer(self, reason):
        self.decisions.append(("defer", reason))

    def merge(self, base):
        self.decisions.append(("merged", len(self.merged)))
        return self.merged.row(base.key, base.op).copy_meta(base)

    def merge_as(self, key, op):
        self.decisions.append(("merged", len(self.merged)))
        return self.merged.row(key, op)

    def __len__(self):
        return len(self.decisions)


def export_resolver(cls):
    """The `Resolver` export class for plugin class `cls`: `cls(config)` at
    open, `instance.resolve(left, right, ancestor, out)` per batch of
    conflicts. `left`, `right` and `ancestor` (the version both sides last
    agreed on) are `Batch`es of the same length whose row `i` is the same
    key; a row whose op is `DELETE` is a version where the key does not
    exist (deleted on that side, or, in `ancestor`, never synced before).
    Add one decision per conflict to the `Resolutions`."""
    if not _wit.IN_COMPONENT:
        return None
    from wit_world import exports
    from wit_world.exports import resolver as wit

    slot = _Slot()
    make = {
        "take-left": lambda _: wit.Resolution_TakeLeft(),
        "take-right": lambda _: wit.Resolution_TakeRight(),
        "merged": wit.Resolution_Merged,
        "defer": wit.Resolution_Defer,
    }

    class Resolver(exports.Resolver):
        def open(self, config):
            try:
                slot.value = cls(parse_config(config))
            except PluginError as e:
                raise _err(e) from None

        def resolve(self, left, right, ancestor):
            try:
                plugin = slot.get()
                out = Resolutions()
                plugin.resolve(Batch(left), Batch(right), Batch(ancestor), out)
                decisions = [make[tag](value) for tag, value in out.decisions]
                return wit.Resolutions(decisions, out.merged.finish())
            except PluginError as e:
                raise _err(e) from None

    return Resolver
