"""`py-jsonl-source`: a JSON Lines file source in Python (world
`source-plugin`) that reads records from files in a granted folder and
resumes from its checkpoint after a restart.

| key | meaning |
|---|---|
| `path` | one file to read |
| `paths` | several files, read one after the other (give `path` or `paths`) |
| `key` | the field whose value is the record key (default `"id"`) |
| `tail` | `true` (default): a last line without its line feed is not read yet and the end of the last file is `caught-up`; `false`: the files are complete, the end is `finished` |

Each line is one JSON object; values keep their JSON types (integral
numbers that fit in 64 bits are `int`, other numbers `float`, objects and
arrays `json`); blank lines are skipped. The records are the ones the Rust
`file` source makes from the same lines, broken lines included: a line that
is not a JSON object, or not UTF-8, becomes a record keyed `<path>:<line>`
with `_raw` (the line) and `_error` (what is wrong), which the
schema-validator rejects to the dead-letter store. (The wording of
`invalid JSON: ...` errors is Python's, not serde's.)

The checkpoint is JSON: `{"v": 1, "file": 0, "path": "/in/a.jsonl",
"offset": 1234, "line": 56}` - the file index, its path (a checkpoint made
for another file list is refused), the byte offset just past the last line
read and the number of lines up to there. A file shorter than its
checkpoint is a `fatal` error (truncated or replaced).

    [plugins.crm]
    kind = "source"
    wasm = "../../plugins/dist/py-jsonl-source.wasm"
    config = { path = "/in/contacts.jsonl", key = "id", tail = false }
    grants = { files = [{ host = "data", guest = "/in", mode = "ro" }], memory_mb = 256, timeout_ms = 10000 }
"""

import json
import os

import ferry_plugin
from ferry_plugin import CAUGHT_UP, FINISHED, MORE, BatchBuilder, Fatal, InvalidConfig, Polled, Retryable, config
from ferry_plugin.values import Json, debug_str, json_string, parse_json_number

CHUNK = 256 * 1024
ASCII_SPACE = b" \t\n\x0c\r"


class _Raw(str):
    """A JSON number as written."""


class _Pairs(list):
    """A JSON object's entries, in order, duplicates kept."""


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _json_of(v):
    """JSON text of a parsed nested value (numbers as written)."""
    if type(v) is _Raw:
        return str(v)
    if type(v) is _Pairs:
        return "{" + ",".join(json_string(k) + ":" + _json_of(x) for k, x in v) + "}"
    if type(v) is list:
        return "[" + ",".join(_json_of(x) for x in v) + "]"
    if type(v) is str:
        return json_string(v)
    if v is None:
        return "null"
    return "true" if v else "false"


def _value(v):
    t = type(v)
    if t is _Raw:
        n = parse_json_number(str(v))
        return Json(str(v)) if n is None else n
    if t is _Pairs or t is list:
        return Json(_json_of(v))
    return v  # str, bool, None


def _key_text(v):
    if v is None:
        return ""
    if type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    return _json_of(v)


def push_json_line(b, line, key_field):
    """Pushes one JSON object line as a record; raises ValueError with the
    reason when it is not one."""
    try:
        parsed = json.loads(
            line,
            object_pairs_hook=_Pairs,
            parse_int=_Raw,
            parse_float=_Raw,
            parse_constant=_no_constants,
        )
    except ValueError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise ValueError("invalid JSON: recursion limit exceeded") from None
    if type(parsed) is not _Pairs:
        raise ValueError("not a JSON object")
    key = ""
    for name, v in reversed(parsed):
        if name == key_field:
            key = _key_text(v)
            break
    row = b.row(key)
    for name, v in parsed:
        row.set(name, _value(v))


def encode_checkpoint(file, path, offset, line):
    return json.dumps({"v": 1, "file": file, "path": path, "offset": offset, "line": line}).encode()


def decode_checkpoint(data, paths):
    try:
        cp = json.loads(data.decode())
        assert cp["v"] == 1
        file, path, offset, line = cp["file"], cp["path"], cp["offset"], cp["line"]
        assert all(type(x) is int and x >= 0 for x in (file, offset, line))
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
        raise InvalidConfig(
            f"the checkpoint ({len(data)} bytes) was not made by this version of the JSON Lines source"
        ) from None
    if file > len(paths):
        raise InvalidConfig(f"the checkpoint points at file {file + 1} but only {len(paths)} are configured")
    if file < len(paths) and path != paths[file]:
        raise InvalidConfig(f"the checkpoint was made for another file list: file {file + 1} is now {debug_str(paths[file])}")
    return file, offset, line


class JsonlSource:
    def __init__(self, cfg, checkpoint):
        config.check_keys(cfg, ["path", "paths", "key", "tail"])
        path = config.text(cfg, "path")
        paths = cfg.get("paths")
        if path is not None and paths is not None:
            raise InvalidConfig("config: give either path or paths, not both")
        if path is not None:
            paths = [path]
        elif paths is None:
            raise InvalidConfig("config: path or paths is required")
        else:
            paths = config.text_list(cfg, "paths")
            if not paths:
                raise InvalidConfig("config.paths: the list is empty")
        for p in paths:
            try:
                os.stat(p)
            except OSError as e:
                raise InvalidConfig(
                    f"cannot read {debug_str(p)}: {e.strerror} (is its folder granted to this plugin?)"
                ) from None
            if not os.path.isfile(p):
                raise InvalidConfig(f"{debug_str(p)} is not a file")
        self.paths = paths
        self.key = config.text(cfg, "key", default="id")
        self.tail = config.boolean(cfg, "tail", True)
        if checkpoint is None:
            self.file, self.offset, self.line = 0, 0, 0
        else:
            self.file, self.offset, self.line = decode_checkpoint(checkpoint, paths)

    def poll(self, max_records):
        limit = max(1, max_records)
        b = BatchBuilder()
        while True:
            if self.file >= len(self.paths):
                status = CAUGHT_UP if self.tail else FINISHED
                break
            last = self.file + 1 == len(self.paths)
            complete = not last or not self.tail
            if self._read(b, limit, complete):
                status = MORE
                break
            if last and self.tail:
                status = CAUGHT_UP
                break
            self.file, self.offset, self.line = self.file + 1, 0, 0
            if len(b):
                # One file per batch: the next poll starts the next file.
                status = MORE if self.file < len(self.paths) else FINISHED
                break
        path = self.paths[self.file] if self.file < len(self.paths) else None
        return Polled(b, encode_checkpoint(self.file, path, self.offset, self.line), status)

    def _read(self, b, limit, complete):
        """Reads records of the current file into `b`; True when `b` is full
        and the file has more, False when the file has no complete line left."""
        path = self.paths[self.file]
        try:
            f = open(path, "rb")
        except OSError as e:
            raise Retryable(f"cannot open {debug_str(path)}: {e.strerror}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < self.offset:
                raise Fatal(
                    f"{debug_str(path)} is shorter ({size} bytes) than its checkpoint ({self.offset} bytes): "
                    "it was truncated or replaced"
                )
            f.seek(self.offset)
            buf = b""
            at_eof = False
            while True:
                if len(b) >= limit:
                    return bool(buf) or f.read(1) != b""
                nl = buf.find(b"\n")
                if nl < 0:
                    if at_eof:
                        if buf and complete:
                            self._line(b, path, buf, len(buf))
                            buf = b""
                            continue
                        return False
                    more = f.read(CHUNK)
                    if more:
                        buf += more
                    else:
                        at_eof = True
                    continue
                self._line(b, path, buf[:nl], nl + 1)
                buf = buf[nl + 1 :]

    def _line(self, b, path, body, consumed):
        if self.offset == 0 and body.startswith(b"\xef\xbb\xbf"):
            # A UTF-8 byte order mark, as spreadsheet exports write.
            body = body[3:]
            self.offset += 3
            consumed -= 3
        line = self.line + 1
        if body.endswith(b"\r"):
            body = body[:-1]
        if body.strip(ASCII_SPACE):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                _error(b, path, line, body.decode("utf-8", "replace"), "the line is not valid UTF-8")
            else:
                try:
                    push_json_line(b, text, self.key)
                except ValueError as e:
                    _error(b, path, line, text, str(e))
        self.offset += consumed
        self.line += 1


def _error(b, path, line, raw, error):
    b.row(f"{path}:{line}").set("_raw", raw).set("_error", error)


Source = ferry_plugin.export_source(JsonlSource)
