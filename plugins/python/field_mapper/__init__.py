"""`py-field-mapper`: the Rust `field-mapper` in Python, with the same
config and the same outputs (world `mapper-plugin`).

Steps, in this order, each on the result of the one before: `rename`,
`drop`, `default`, `trim`, `lowercase`, `uppercase`, `titlecase`, `cast`,
`computed`, `lookup`. See `plugins/field-mapper/src/lib.rs` for what each
does; the config is the same:

    [plugins.to_warehouse]
    kind = "mapper"
    wasm = "../../plugins/dist/py-field-mapper.wasm"
    config = { rename = { mail = "email" }, trim = ["email"], lowercase = ["email"], cast = { age = "int" }, computed = { full_name = "first_name + ' ' + last_name" }, lookup = [{ table = "/ref/regions.csv", match = "country", column = "region" }] }
    grants = { files = [{ host = "data", guest = "/ref", mode = "ro" }], memory_mb = 256, timeout_ms = 10000 }
"""

import ferry_plugin
from ferry_plugin import InvalidConfig, config, log
from ferry_plugin.unicode import is_alphanumeric
from ferry_plugin.values import debug_str, from_json, trim

from . import cast as casts
from . import expr
from .lookup import Lookup

KEYS = ["rename", "drop", "default", "trim", "lowercase", "uppercase", "titlecase", "cast", "computed", "lookup"]


def titlecase(s):
    """Upper-cases the first letter of each word and lower-cases the rest; a
    word is a run of letters, digits and apostrophes."""
    out = []
    at_start = True
    for c in s:
        if is_alphanumeric(c) or c == "'" or c == "\u2019":
            out.append(c.upper() if at_start else c.lower())
            at_start = False
        else:
            out.append(c)
            at_start = True
    return "".join(out)


CASES = {"trim": trim, "lowercase": str.lower, "uppercase": str.upper, "titlecase": titlecase}


class FieldMapper:
    def __init__(self, cfg):
        config.check_keys(cfg, KEYS)
        self.rename = config.text_map(cfg, "rename")
        self.drop = set(config.text_list(cfg, "drop"))
        self.defaults = [(name, from_json(v)) for name, v in config.table_of(cfg, "default").items()]
        self.texts = []
        for key in ("trim", "lowercase", "uppercase", "titlecase"):
            self.texts.extend((f, CASES[key]) for f in config.text_list(cfg, key))
        self.casts = [
            (name, casts.parse_spec(spec, f"config.cast.{name}"))
            for name, spec in config.table_of(cfg, "cast").items()
        ]
        self.computed = []
        for field, source in config.text_map(cfg, "computed").items():
            try:
                self.computed.append((field, expr.parse(source)))
            except expr.SyntaxError_ as e:
                raise InvalidConfig(f"config.computed.{field}: {e} in {debug_str(source)}") from None
        specs = cfg.get("lookup", [])
        if not isinstance(specs, list):
            raise config.wrong("config.lookup", specs, "a sequence")
        self.lookups = []
        for i, spec in enumerate(specs):
            table = Lookup(spec, f"lookup[{i}]")
            log.debug(f"lookup table {spec['table']} has {len(table.values)} keys")
            self.lookups.append(table)

    def plan(self, batch):
        """The rules resolved against one batch's columns: each field a slot
        (name, input values or None, written or not)."""
        names, inputs, output = [], [], []
        index = {}

        def source(name):
            i = index.get(name)
            if i is None:
                i = index[name] = len(names)
                names.append(name)
                inputs.append(None)
                output.append(False)
            return i

        def target(name):
            i = source(name)
            output[i] = True
            return i

        for name, values in batch.columns():
            new = self.rename.get(name)
            renamed = new is not None
            if renamed:
                name = new
            if name in self.drop:
                continue
            i = index.get(name)
            if i is not None:
                if renamed:
                    inputs[i] = values
            else:
                index[name] = len(names)
                names.append(name)
                inputs.append(values)
                output.append(True)
        defaults = [(target(name), value) for name, value in self.defaults]
        texts = [(source(name), change) for name, change in self.texts]
        cast_plan = [(source(name), name, spec) for name, spec in self.casts]
        computed = [([source(f) for f in c.fields], target(name), name, c) for name, c in self.computed]
        lookups = [(source(t.match_field), target(t.into), t) for t in self.lookups]
        return names, inputs, output, defaults, texts, cast_plan, computed, lookups

    def map(self, batch, out):
        names, inputs, output, defaults, texts, cast_plan, computed, lookups = self.plan(batch)
        written = [(i, names[i]) for i in range(len(names)) if output[i]]
        builder = out.builder
        for _, name in written:
            builder._column(name)  # every written field is a column, in slot order
        for row in batch.rows():
            r = row.index
            cells = [None if values is None else values[r] for values in inputs]
            for slot, value in defaults:
                if cells[slot] is None:
                    cells[slot] = value
            for slot, change in texts:
                v = cells[slot]
                if type(v) is str:
                    cells[slot] = change(v)
            try:
                for slot, name, spec in cast_plan:
                    try:
                        cells[slot] = casts.cast(cells[slot], spec)
                    except casts.CastError as e:
                        raise _Reject(f"cast of field {debug_str(name)}: {e}") from None
                for fields, slot, name, compiled in computed:
                    try:
                        cells[slot] = compiled.eval([cells[f] for f in fields])
                    except expr.EvalError as e:
                        raise _Reject(f"computed field {debug_str(name)}: {e}") from None
            except _Reject as e:
                out.reject(row, e.reason)
                continue
            for src, into, table in lookups:
                key = cells[src]
                if key is None:
                    cells[into] = None
                else:
                    cells[into] = table.get(key if type(key) is str else casts.cast(key, _TEXT))
            record = out.emit(row)
            for slot, name in written:
                v = cells[slot]
                if v is not None:
                    record.set(name, v)


_TEXT = casts.CastSpec("text", None)


class _Reject(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


Mapper = ferry_plugin.export_mapper(FieldMapper)
