"""Reading a batch row by row (`Batch`, `Row`) and building one
(`BatchBuilder`, `RowBuilder`), over the contract's columnar layout.

Columns appear in a built batch as fields are first set; a record that
does not set a field gets a null there. When values of different types
meet in one column, `int` and `float` make a `float` column and any other
mix makes a `json` column holding each value's JSON encoding (read back,
its scalars come out as they went in): the Rust SDK's rules.
"""

from itertools import accumulate

from . import _wit
from .errors import Fatal
from .values import (
    I64_MAX,
    I64_MIN,
    Json,
    Timestamp,
    json_string,
    json_text,
    parse_json_number,
)

UPSERT = "upsert"
DELETE = "delete"

_OP_IN = {_wit.Op.UPSERT: UPSERT, _wit.Op.DELETE: DELETE}
_OP_OUT = {UPSERT: _wit.Op.UPSERT, DELETE: _wit.Op.DELETE}


def _texts_in(t, n, what):
    offsets, data = t.offsets, t.data
    if len(offsets) != n + 1 or (n and offsets[-1] > len(data)):
        raise Fatal(f"{what} has {len(offsets) - 1} entries for {n} records")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise Fatal(f"{what}: text is not valid UTF-8 ({e})") from None
    if len(text) == len(data):  # ASCII: byte offsets are character offsets
        return [text[a:b] for a, b in zip(offsets, offsets[1:])]
    try:
        return [data[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:])]
    except UnicodeDecodeError:
        raise Fatal(f"{what}: an offset splits a UTF-8 character") from None


def _bytes_in(t, n, what):
    offsets, data = t.offsets, t.data
    if len(offsets) != n + 1:
        raise Fatal(f"{what} has {len(offsets) - 1} entries for {n} records")
    return [bytes(data[a:b]) for a, b in zip(offsets, offsets[1:])]


def _json_scalar(s):
    """A JSON column's value: scalars decoded, objects and arrays `Json`."""
    s = s.strip(" \t\n\r")
    if s == "" or s == "null":
        return None
    c = s[0]
    if c == "t" and s == "true":
        return True
    if c == "f" and s == "false":
        return False
    if c == '"':
        if "\\" not in s and len(s) >= 2:
            return s[1:-1]
        import json

        try:
            return json.loads(s)
        except ValueError:
            return Json(s)
    if c == "-" or "0" <= c <= "9":
        n = parse_json_number(s)
        return Json(s) if n is None else n
    return Json(s)


def _column_in(c, n):
    what = f"column {c.name!r}"
    v = c.values
    if isinstance(v, (_wit.Values_Ints, _wit.Values_Floats, _wit.Values_Bools)):
        values = list(v.value)
    elif isinstance(v, _wit.Values_Text):
        values = _texts_in(v.value, n, what)
    elif isinstance(v, _wit.Values_Timestamps):
        values = [Timestamp(t) for t in v.value]
    elif isinstance(v, _wit.Values_Json):
        values = [_json_scalar(s) for s in _texts_in(v.value, n, what)]
    elif isinstance(v, _wit.Values_Bytes):
        values = _bytes_in(v.value, n, what)
    else:
        raise Fatal(f"{what}: unknown value type")
    if len(values) != n:
        raise Fatal(f"{what} has {len(values)} entries for {n} records")
    valid = c.valid
    if valid is not None:
        if len(valid) != n:
            raise Fatal(f"{what} validity has {len(valid)} entries for {n} records")
        values = [x if ok else None for x, ok in zip(values, valid)]
    return values


class Batch:
    """A batch received from the host.

    `len(batch)`, `batch.rows()`, `batch.row(i)`, `batch.names` (the
    field names in column order) and `batch.column(name)` (every record's
    value of one field, `None` where null; `None` if the batch has no such
    field). Values are decoded once per batch, a column at a time.
    """

    __slots__ = ("keys", "ops", "versions", "updated_at", "origins", "names", "_columns", "_index", "raw")

    def __init__(self, raw):
        n = len(raw.ops)
        self.raw = raw
        self.keys = _texts_in(raw.keys, n, "keys")
        self.ops = [_OP_IN[o] for o in raw.ops]
        self.versions = list(raw.versions) if raw.versions is not None else None
        self.updated_at = list(raw.updated_at) if raw.updated_at is not None else None
        self.origins = _texts_in(raw.origins, n, "origins") if raw.origins is not None else None
        for what, lst in (("versions", self.versions), ("updated-at", self.updated_at)):
            if lst is not None and len(lst) != n:
                raise Fatal(f"{what} has {len(lst)} entries for {n} records")
        self.names = [c.name for c in raw.columns]
        self._columns = [_column_in(c, n) for c in raw.columns]
        self._index = {name: i for i, name in enumerate(self.names)}

    def __len__(self):
        return len(self.ops)

    def column(self, name):
        i = self._index.get(name)
        return None if i is None else self._columns[i]

    def columns(self):
        """`(name, values)` for every column, in order."""
        return zip(self.names, self._columns)

    def row(self, i):
        return Row(self, i)

    def rows(self):
        return (Row(self, i) for i in range(len(self.ops)))


class Row:
    """One record of a `Batch`: `key`, `op` (`"upsert"` or `"delete"`),
    `index` (its position in the batch), `version`, `updated_at`,
    `origin`, `row[name]` or `row.get(name)` (`None` when absent or null),
    `row.fields()` (a dict of every field, nulls included) and
    `row.to_json()` (the fields as JSON text)."""

    __slots__ = ("batch", "index")

    def __init__(self, batch, index):
        self.batch = batch
        self.index = index

    @property
    def key(self):
        return self.batch.keys[self.index]

    @property
    def op(self):
        return self.batch.ops[self.index]

    @property
    def version(self):
        v = self.batch.versions
        return None if v is None else v[self.index]

    @property
    def updated_at(self):
        v = self.batch.updated_at
        return None if v is None else v[self.index]

    @property
    def origin(self):
        v = self.batch.origins
        return None if v is None else v[self.index]

    def get(self, name, default=None):
        col = self.batch.column(name)
        if col is None:
            return default
        v = col[self.index]
        return default if v is None else v

    def __getitem__(self, name):
        return self.get(name)

    def fields(self):
        i = self.index
        return {name: col[i] for name, col in zip(self.batch.names, self.batch._columns)}

    def to_json(self):
        """The record's fields as one JSON object (text, no newline), in
        column order, nulls included, values written as the Rust SDK's
        `Row::write_json` writes them; the key and operation are not part
        of it."""
        i = self.index
        return "{" + ",".join(
            json_string(name) + ":" + json_text(col[i]) for name, col in zip(self.batch.names, self.batch._columns)
        ) + "}"


# --- building ---------------------------------------------------------------

_PLACEHOLDER = {"int": 0, "float": 0.0, "bool": False, "timestamp": 0, "text": "", "bytes": b"", "json": ""}


def _value_kind(v):
    t = type(v)
    if t is bool:
        return "bool"
    if t is int:
        if not I64_MIN <= v <= I64_MAX:
            raise Fatal(f"the integer {v} does not fit in 64 bits")
        return "int"
    if t is float:
        return "float"
    if t is str:
        return "text"
    if t is Timestamp:
        return "timestamp"
    if t is Json or t is dict or t is list:
        return "json"
    if t is bytes or t is bytearray:
        return "bytes"
    raise TypeError(f"cannot store {v!r} in a batch")


def _stored(kind, v):
    if kind == "timestamp":
        return v.micros
    if kind == "json":
        return json_text(v)
    if kind == "bytes":
        return bytes(v)
    return v


class _ColumnOut:
    __slots__ = ("name", "kind", "values", "valid", "nulls")

    def __init__(self, name):
        self.name = name
        self.kind = None  # the type, fixed by the first non-null value
        self.values = []
        self.valid = []
        self.nulls = 0

    def _push_null(self):
        self.valid.append(False)
        self.nulls += 1
        self.values.append(_PLACEHOLDER.get(self.kind))

    def _pop(self):
        if self.valid:
            if not self.valid.pop():
                self.nulls -= 1
            self.values.pop()

    def set(self, row, v):
        n = len(self.valid)
        if n > row:
            self._pop()
            n -= 1
        while n < row:
            self._push_null()
            n += 1
        self._push(v)

    def _push(self, v):
        if v is None:
            self._push_null()
            return
        k = _value_kind(v)
        if self.kind is None:
            self.kind = k
            ph = _PLACEHOLDER[k]
            self.values = [ph] * len(self.values)
        if k == self.kind:
            self.values.append(_stored(k, v))
        elif self.kind == "float" and k == "int":
            self.values.append(float(v))
        elif self.kind == "int" and k == "float":
            self.kind = "float"
            self.values = [float(x) for x in self.values]
            self.values.append(v)
        elif self.kind == "json":
            self.values.append(json_text(v))
        else:
            self._widen_to_json()
            self.values.append(json_text(v))
        self.valid.append(True)

    def _widen_to_json(self):
        kind = self.kind
        out = []
        for x, ok in zip(self.values, self.valid):
            if not ok:
                out.append("")
            elif kind == "timestamp":
                out.append(json_text(Timestamp(x)))
            else:
                out.append(json_text(x))
        self.kind = "json"
        self.values = out

    def finish(self, rows):
        while len(self.valid) < rows:
            self._push_null()
        kind, values = self.kind, self.values
        if kind is None:
            out = _wit.Values_Text(_wit.Texts([0] * (rows + 1), b""))
        elif kind == "int":
            out = _wit.Values_Ints(values)
        elif kind == "float":
            out = _wit.Values_Floats(values)
        elif kind == "bool":
            out = _wit.Values_Bools(values)
        elif kind == "timestamp":
            out = _wit.Values_Timestamps(values)
        elif kind == "text":
            out = _wit.Values_Text(texts_out(values))
        elif kind == "json":
            out = _wit.Values_Json(texts_out(values))
        else:
            out = _wit.Values_Bytes(_bytes_out(values))
        return _wit.Column(self.name, out, self.valid if self.nulls else None)


def texts_out(strings):
    """A WIT `texts` from Python strings."""
    parts = [s.encode("utf-8") for s in strings]
    return _wit.Texts([0, *accumulate(map(len, parts))], b"".join(parts))


def _bytes_out(chunks):
    return _wit.Texts([0, *accumulate(map(len, chunks))], b"".join(chunks))


class BatchBuilder:
    """Builds a batch record by record:

        b = BatchBuilder()
        b.row("1").set("name", "Ada").set("age", 36)
        b.row("2").set("name", "Grace")          # age: null
        b.row("3", DELETE)
        batch = b.finish()                         # the WIT batch
    """

    def __init__(self):
        self.keys = []
        self.ops = []
        self.versions = None
        self.updated_at = None
        self.origins = None
        self._columns = {}

    def __len__(self):
        return len(self.ops)

    def row(self, key, op=UPSERT):
        """Starts a record; set its fields on the returned `RowBuilder`."""
        self.keys.append(key)
        self.ops.append(op)
        return RowBuilder(self, len(self.ops) - 1)

    def copy_row(self, row):
        """Starts a record with `row`'s key, operation, metadata and fields."""
        r = self.row(row.key, row.op)
        r.copy_meta(row)
        for name, values in row.batch.columns():
            r.set(name, values[row.index])
        return r

    def _column(self, name):
        c = self._columns.get(name)
        if c is None:
            c = self._columns[name] = _ColumnOut(name)
        return c

    def finish(self):
        """The batch in the contract's layout."""
        rows = len(self.ops)

        def padded(v):
            return None if v is None else v + [0] * (rows - len(v))

        origins = None
        if self.origins is not None:
            origins = texts_out(self.origins + [""] * (rows - len(self.origins)))
        return _wit.Batch(
            texts_out(self.keys),
            [_OP_OUT[o] for o in self.ops],
            padded(self.versions),
            padded(self.updated_at),
            origins,
            [c.finish(rows) for c in self._columns.values()],
        )


def _set_meta(lst, row, value):
    if len(lst) <= row:
        lst.extend([0] * (row + 1 - len(lst)))
    lst[row] = value


class RowBuilder:
    """One record being built; every method returns it so calls chain."""

    __slots__ = ("b", "index")

    def __init__(self, b, index):
        self.b = b
        self.index = index

    def set(self, name, value):
        """Sets field `name` (`None` for null); setting it twice keeps the
        last value."""
        self.b._column(name).set(self.index, value)
        return self

    def update(self, fields):
        """Sets every field of a dict, in its order."""
        for name, value in fields.items():
            self.b._column(name).set(self.index, value)
        return self

    def version(self, v):
        if self.b.versions is None:
            self.b.versions = []
        _set_meta(self.b.versions, self.index, v)
        return self

    def updated_at(self, micros):
        if self.b.updated_at is None:
            self.b.updated_at = []
        _set_meta(self.b.updated_at, self.index, micros)
        return self

    def origin(self, origin):
        if self.b.origins is None:
            self.b.origins = []
        o = self.b.origins
        if len(o) > self.index:
            o[self.index] = origin
        else:
            o.extend([""] * (self.index - len(o)))
            o.append(origin)
        return self

    def copy_meta(self, row):
        """Copies `row`'s version, updated-at and origin (those it has)."""
        if row.batch.versions is not None:
            self.version(row.version)
        if row.batch.updated_at is not None:
            self.updated_at(row.updated_at)
        if row.batch.origins is not None:
            self.origin(row.origin)
        return self
