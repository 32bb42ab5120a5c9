"""`py-schema-validator`: the Rust `schema-validator` in Python, with the
same config and the same violations (world `validator-plugin`).

Rules: `required`, `non_empty`, `types`, `ranges`, `lengths`, `regex`,
`enums`, `unique_key` (default false), `key_required` (default true),
`reject_errors` (default true); see `plugins/schema-validator/src/lib.rs`.
Regexes are Python's `re` (searched anywhere in the text unless anchored):
the usual syntax (classes, `\\s`, `\\d`, anchors, groups, repetition)
means the same as in Rust's `regex`; Rust-only syntax such as `\\p{L}` or
`[[:alpha:]]` is an invalid-config error or means something else here.

    [plugins.rules]
    kind = "validator"
    wasm = "../../plugins/dist/py-schema-validator.wasm"
    config = { required = ["id", "email"], types = { age = "int" }, ranges = { age = { min = 0, max = 120 } }, regex = { email = '^[^@\\s]+@[^@\\s]+$' }, unique_key = true }
    grants = { memory_mb = 256, timeout_ms = 10000 }
"""

import json
import re

import ferry_plugin
from ferry_plugin import DELETE, InvalidConfig, config
from ferry_plugin.values import describe, display, kind, quote, rust_float, serde_float, shown, trim

KEYS = ["required", "non_empty", "types", "ranges", "lengths", "regex", "enums", "unique_key", "key_required", "reject_errors"]
TYPE_NAMES = ["int", "float", "number", "bool", "text", "timestamp", "json"]
ACCEPTS = {
    "int": ("int",),
    "float": ("int", "float"),
    "number": ("int", "float"),
    "bool": ("bool",),
    "text": ("text",),
    "timestamp": ("timestamp",),
    "json": ("json",),
}


def _number(v):
    return (type(v) is int or type(v) is float) and v is not True and v is not False


def _bounds(table, what, field, integer):
    path = f"config.{what}.{field}"
    if not isinstance(table, dict):
        raise config.wrong(path, table, "struct Bounds")
    config.check_keys(table, ["min", "max"], path)
    out = []
    for key in ("min", "max"):
        v = table.get(key)
        if v is None:
            out.append(None)
        elif integer:
            if type(v) is not int or v < 0:
                raise config.wrong(f"{path}.{key}", v, "u64")
            out.append(v)
        else:
            if not _number(v):
                raise config.wrong(f"{path}.{key}", v, "f64")
            out.append(float(v))
    lo, hi = out
    fmt = str if integer else rust_float
    if lo is None and hi is None:
        raise InvalidConfig(f"{path}: give min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidConfig(f"{path}: min {fmt(lo)} is greater than max {fmt(hi)}")
    return lo, hi


def _json_scalar_text(v):
    """A config value as serde_json writes it."""
    if isinstance(v, float):
        return serde_float(v)
    return json.dumps(v, ensure_ascii=False)


def _enum_matches(a, v):
    ta, tv = type(a), type(v)
    if ta is str:
        return tv is str and a == v
    if ta is bool:
        return tv is bool and a == v
    if tv is int:
        return float(a) == float(v) if ta is float else a == v
    if tv is float:
        return float(a) == v
    return False


class SchemaValidator:
    def __init__(self, cfg):
        config.check_keys(cfg, KEYS)
        checks = []
        checks += [(f, "required", None) for f in config.text_list(cfg, "required")]
        checks += [(f, "non_empty", None) for f in config.text_list(cfg, "non_empty")]
        for field, name in config.table_of(cfg, "types").items():
            if name not in TYPE_NAMES:
                expected = ", ".join(f'"{t}"' for t in TYPE_NAMES)
                got = f'"{name}"' if isinstance(name, str) else repr(name)
                raise InvalidConfig(f"config.types.{field}: unknown variant {got}, expected one of {expected}")
            checks.append((field, "type", name))
        for field, b in config.table_of(cfg, "ranges").items():
            checks.append((field, "range", _bounds(b, "ranges", field, False)))
        for field, b in config.table_of(cfg, "lengths").items():
            checks.append((field, "length", _bounds(b, "lengths", field, True)))
        for field, pattern in config.text_map(cfg, "regex").items():
            try:
                checks.append((field, "regex", re.compile(pattern)))
            except re.error as e:
                raise InvalidConfig(f"config.regex.{field}: invalid regex {quote(pattern)}: {e}") from None
        for field, values in config.table_of(cfg, "enums").items():
            if not isinstance(values, list):
                raise config.wrong(f"config.enums.{field}", values, "a sequence")
            if not values:
                raise InvalidConfig(f"config.enums.{field}: the list of allowed values is empty")
            for v in values:
                if v is None or isinstance(v, (dict, list)):
                    raise InvalidConfig(
                        f"config.enums.{field}: {json.dumps(v, separators=(',', ':'))} is not text, a number or a boolean"
                    )
            shown_list = [_json_scalar_text(v) for v in values[:10]] + (["…"] if len(values) > 10 else [])
            checks.append((field, "enum", (values, ", ".join(shown_list))))
        self.checks = checks
        self.unique_key = config.boolean(cfg, "unique_key", False)
        self.key_required = config.boolean(cfg, "key_required", True)
        self.reject_errors = config.boolean(cfg, "reject_errors", True)

    def validate(self, batch, out):
        columns = [batch.column(field) for field, _, _ in self.checks]
        errors = batch.column("_error") if self.reject_errors else None
        seen = {}
        for row in batch.rows():
            i = row.index
            if errors is not None and type(errors[i]) is str:
                out.field(row, "_error", "source_error", errors[i])
                continue
            key = row.key
            if self.key_required and key == "":
                out.record(row, "key", "the record has no key")
            if self.unique_key and key != "":
                first = seen.get(key)
                if first is not None:
                    out.record(
                        row,
                        "unique_key",
                        f"key {quote(key)} appears more than once in this batch (first as record {first})",
                    )
                else:
                    seen[key] = i
            if row.op == DELETE:
                continue
            for (field, rule, arg), values in zip(self.checks, columns):
                value = None if values is None else values[i]
                found = check(field, rule, arg, value)
                if found is not None:
                    out.field(row, field, found[0], found[1])


def check(field, rule, arg, value):
    """`(rule, message)` when `value` breaks the rule, else None."""
    if value is None:
        return ("required", f"{field} is missing") if rule == "required" else None
    if rule == "required":
        return None
    if rule == "non_empty":
        if type(value) is str and trim(value) == "":
            return ("non_empty", f"{field} is empty")
        return None
    if rule == "type":
        if kind(value) not in ACCEPTS[arg]:
            return ("type", f"{field} should be {arg}, found {describe(value)}")
        return None
    if rule == "range":
        if not _number(value):
            return ("range", f"{field} {shown(value)} is not a number")
        x = float(value)
        lo, hi = arg
        if lo is not None and x < lo:
            return ("range", f"{field} {shown(value)} is below the minimum {rust_float(lo)}")
        if hi is not None and x > hi:
            return ("range", f"{field} {shown(value)} is above the maximum {rust_float(hi)}")
        return None
    if rule == "length":
        if type(value) is not str:
            return None
        n = len(value)
        lo, hi = arg
        if lo is not None and n < lo:
            return ("length", f"{field} is {n} characters long, fewer than the minimum {lo}")
        if hi is not None and n > hi:
            return ("length", f"{field} is {n} characters long, more than the maximum {hi}")
        return None
    if rule == "regex":
        text = value if type(value) is str else display(value)
        if arg.search(text) is None:
            return ("regex", f"{field} {shown(value)} does not match {arg.pattern}")
        return None
    # enum
    allowed, listed = arg
    if not any(_enum_matches(a, value) for a in allowed):
        return ("enum", f"{field} {shown(value)} is not one of {listed}")
    return None


Validator = ferry_plugin.export_validator(SchemaValidator)
