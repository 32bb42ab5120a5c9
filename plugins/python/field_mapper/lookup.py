"""Lookup tables: a CSV file read at open, mapping one column to another."""

from ferry_plugin import InvalidConfig, config, csv
from ferry_plugin.values import debug_str

_KEYS = ["table", "match", "key", "column", "into", "delimiter"]


class Lookup:
    def __init__(self, spec, at):
        path = f"config.{at}"
        if not isinstance(spec, dict):
            raise config.wrong(path, spec, 'struct LookupSpec')
        config.check_keys(spec, _KEYS, path)
        for required in ("table", "match", "column"):
            if required not in spec:
                raise InvalidConfig(f'{path}: missing field "{required}"')
        table = config.text(spec, "table", path)
        self.match_field = config.text(spec, "match", path)
        key = config.text(spec, "key", path)
        column = config.text(spec, "column", path)
        self.into = config.text(spec, "into", path) or column
        delimiter = config.text(spec, "delimiter", path)
        try:
            with open(table, "rb") as f:
                text = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise InvalidConfig(
                f"{path}.table: cannot read {debug_str(table)}: {detail} (is its folder granted to this plugin?)"
            ) from None
        if delimiter is None:
            delimiter = ","
        elif len(delimiter.encode("utf-8")) != 1:
            raise InvalidConfig(f"{path}.delimiter: {debug_str(delimiter)} is not one character")
        records = csv.parse_str(text, delimiter)
        if not records:
            raise InvalidConfig(f"{path}.table: {debug_str(table)} is empty")
        names = [n or "" for n in records[0].fields]

        def find(col, setting):
            if col not in names:
                raise InvalidConfig(
                    f"{path}.{setting}: the table {debug_str(table)} has no column {debug_str(col)} (its columns: {', '.join(names)})"
                )
            return names.index(col)

        key_at = find(key if key is not None else self.match_field, "key" if key is not None else "match")
        value_at = find(column, "column")
        self.values = {}
        for rec in records[1:]:
            if rec.malformed is not None or len(rec.fields) != len(names):
                raise InvalidConfig(
                    f"{path}.table: line {rec.line} of {debug_str(table)} does not have {len(names)} well-formed fields"
                )
            k = rec.fields[key_at]
            if k is not None and k not in self.values:
                self.values[k] = rec.fields[value_at]

    def get(self, key):
        return self.values.get(key)
