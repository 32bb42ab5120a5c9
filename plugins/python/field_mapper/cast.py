"""Casts between field types (the Rust field-mapper's `cast`)."""

import re

from ferry_plugin import InvalidConfig
from ferry_plugin.values import (
    I64_MAX,
    I64_MIN,
    Json,
    Timestamp,
    debug_str,
    describe,
    display,
    parse_date,
    parse_rfc3339,
    shown,
    trim,
)

from . import strtime

TYPES = ("int", "float", "bool", "text", "timestamp")
_TYPES_TEXT = '"int", "float", "bool", "text" or "timestamp"'


class CastSpec:
    __slots__ = ("to", "format")

    def __init__(self, to, fmt):
        self.to = to
        self.format = fmt


def parse_spec(v, path):
    """A `cast` entry: a type name or `{ to = ..., format = ... }`."""

    def type_of(name):
        if name not in TYPES:
            raise InvalidConfig(f'{path}: unknown type {debug_str(name)}, expected {_TYPES_TEXT}')
        return name

    if isinstance(v, str):
        spec = CastSpec(type_of(v), None)
    elif isinstance(v, dict):
        for k in v:
            if k not in ("to", "format"):
                raise InvalidConfig(f'{path}: unknown setting {debug_str(k)}, expected "to" or "format"')
        if not isinstance(v.get("to"), str):
            raise InvalidConfig(f'{path}: "to" must be one of {_TYPES_TEXT}')
        fmt = v.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise InvalidConfig(f'{path}: "format" must be text')
        spec = CastSpec(type_of(v["to"]), fmt)
    else:
        raise InvalidConfig(f'{path}: expected a type name ({_TYPES_TEXT}) or {{ to = "timestamp", format = "%d/%m/%Y" }}')
    if spec.format is not None:
        if spec.to not in ("timestamp", "text"):
            raise InvalidConfig(f'{path}: "format" applies only to casts to timestamp or text')
        if not strtime.valid(spec.format):
            raise InvalidConfig(f"{path}: {debug_str(spec.format)} is not a valid strftime format")
    return spec


_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))\Z")
_LIMIT = 9_223_372_036_854_775_808.0


def parse_float(s):
    """Rust's `str::parse::<f64>`: None when `s` is not a number."""
    if not _FLOAT.match(s):
        return None
    return float(s)


def float_to_int(x):
    if x == x and x not in (float("inf"), float("-inf")) and x == int(x) and -_LIMIT <= x < _LIMIT:
        return int(x)
    return None


def parse_int(s):
    s = trim(s)
    if _INT.match(s):
        n = int(s)
        if I64_MIN <= n <= I64_MAX:
            return n
    x = parse_float(s)
    return None if x is None else float_to_int(x)


def parse_bool(s):
    s = trim(s).lower() if trim(s).isascii() else None
    if s in ("true", "yes", "1"):
        return True
    if s in ("false", "no", "0"):
        return False
    return None


class CastError(Exception):
    pass


def cast(v, spec):
    """`v` cast as `spec` says; raises `CastError` with the reason."""
    if v is None:
        return None
    t = type(v)
    to = spec.to

    def fail(what):
        return CastError(f"{shown(v)} is not {what}")

    def cannot(to):
        return CastError(f"cannot cast {describe(v)} to {to}")

    if to == "int":
        if t is int:
            return v
        if t is float:
            n = float_to_int(v)
            if n is None:
                raise fail("an integer")
            return n
        if t is str:
            n = parse_int(v)
            if n is None:
                raise fail("an integer")
            return n
        if t is bool:
            return int(v)
        raise cannot("int")
    if to == "float":
        if t is int:
            return float(v)
        if t is float:
            return v
        if t is str:
            x = parse_float(trim(v))
            if x is None or x != x or x in (float("inf"), float("-inf")):
                raise fail("a number")
            return x
        raise cannot("float")
    if to == "bool":
        if t is bool:
            return v
        if t is int and v in (0, 1):
            return v == 1
        if t is str:
            b = parse_bool(v)
            if b is None:
                raise fail("a boolean (true/false, yes/no, 1/0)")
            return b
        raise cannot("bool")
    if to == "text":
        if t is str:
            return v
        if t is Timestamp and spec.format is not None:
            return strtime.format(v.micros, spec.format)
        if t is Json:
            return v.text
        return display(v)
    # timestamp
    if t is Timestamp:
        return v
    if t is str:
        s = trim(v)
        if spec.format is not None:
            micros = strtime.parse(s, spec.format)
            if micros is None:
                raise CastError(f"{shown(v)} does not match the format {debug_str(spec.format)}")
        else:
            micros = parse_rfc3339(s)
            if micros is None:
                micros = parse_date(s)
            if micros is None:
                raise fail("a timestamp (RFC 3339 or YYYY-MM-DD)")
        return Timestamp(micros)
    raise cannot("timestamp")
