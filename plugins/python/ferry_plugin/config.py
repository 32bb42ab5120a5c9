"""Reading a plugin's `config` table with errors that name the setting,
as the Rust SDK words them: `config.cast.age: ...`,
`config: unknown field "cats", expected one of "rename", "drop", ...`.
"""

from .errors import InvalidConfig


def _names(names):
    return ", ".join(f'"{n}"' for n in names)


def check_keys(table, known, path="config"):
    """Refuses keys of `table` not in `known` (typos)."""
    for key in table:
        if key not in known:
            raise InvalidConfig(f'{path}: unknown field "{key}", expected one of {_names(known)}')


def _what(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{str(v).lower()}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        return f"floating point `{v}`"
    if isinstance(v, str):
        return f'string "{v}"'
    if isinstance(v, list):
        return "sequence"
    return "map"


def wrong(path, value, expected):
    return InvalidConfig(f"{path}: invalid type: {_what(value)}, expected {expected}")


def get(table, key, default, path="config"):
    """`table[key]`, or `default` when absent."""
    return table.get(key, default)


def text(table, key, path="config", default=None):
    v = table.get(key, default)
    if v is not None and not isinstance(v, str):
        raise wrong(f"{path}.{key}", v, "a string")
    return v


def integer(table, key, default, path="config"):
    """An integer that fits in 64 bits (`default` when absent)."""
    v = table.get(key, default)
    if type(v) is not int or not -(2**63) <= v < 2**63:
        raise wrong(f"{path}.{key}", v, "i64")
    return v


def boolean(table, key, default, path="config"):
    v = table.get(key, default)
    if not isinstance(v, bool):
        raise wrong(f"{path}.{key}", v, "a boolean")
    return v


def text_list(table, key, path="config"):
    """A list of texts (`[]` when absent)."""
    v = table.get(key, [])
    if not isinstance(v, list):
        raise wrong(f"{path}.{key}", v, "a sequence")
    for i, item in enumerate(v):
        if not isinstance(item, str):
            raise wrong(f"{path}.{key}[{i}]", item, "a string")
    return v


def table_of(table, key, path="config"):
    """A table (`{}` when absent), in the order written."""
    v = table.get(key, {})
    if not isinstance(v, dict):
        raise wrong(f"{path}.{key}", v, "a map")
    return v


def text_map(table, key, path="config"):
    """A table of texts (`{}` when absent)."""
    v = table_of(table, key, path)
    for k, item in v.items():
        if not isinstance(item, str):
            raise wrong(f"{path}.{key}.{k}", item, "a string")
    return v
