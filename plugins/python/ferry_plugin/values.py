"""Field values as a Python plugin sees them, and their text forms.

| WIT column | Python value |
|---|---|
| `ints` | `int` |
| `floats` | `float` |
| `bools` | `bool` |
| `text` | `str` |
| `bytes` | `bytes` |
| `timestamps` | `Timestamp` (microseconds since the Unix epoch, UTC) |
| `json` | `Json` for objects and arrays; scalars in a JSON column read as `None`, `bool`, `int`, `float` or `str` |
| null | `None` |

The text forms (`display`, `describe`, `quote`, `to_json`) are the Rust
SDK's, character for character, so a Python plugin's messages match a Rust
plugin's: floats print as Rust prints them (`150`, `0.1`, no exponent),
timestamps as RFC 3339 in UTC.
"""

import json as _json
from decimal import Decimal as _Decimal

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
MICROS_PER_DAY = 86_400_000_000


class Timestamp:
    """An instant: microseconds since the Unix epoch, UTC."""

    __slots__ = ("micros",)

    def __init__(self, micros):
        self.micros = int(micros)

    def __eq__(self, other):
        return isinstance(other, Timestamp) and other.micros == self.micros

    def __hash__(self):
        return hash(("ts", self.micros))

    def __repr__(self):
        return f"Timestamp({format_rfc3339(self.micros)})"


class Json:
    """A JSON document (an object or an array) as JSON text."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Json) and other.text == self.text

    def __hash__(self):
        return hash(("json", self.text))

    def __repr__(self):
        return f"Json({self.text})"

    def value(self):
        """The document parsed into Python dicts and lists."""
        return _json.loads(self.text)


def kind(v):
    """The value's type name: `null`, `int`, `float`, `bool`, `text`,
    `bytes`, `timestamp` or `json`."""
    t = type(v)
    if v is None:
        return "null"
    if t is bool:
        return "bool"
    if t is int:
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
    raise TypeError(f"not a field value: {v!r}")


def rust_float(x):
    """`x` as Rust's `Display` prints an f64: the shortest digits that
    read back to `x`, never an exponent, no `.0` on whole numbers."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    s = repr(x)
    if "e" in s or "E" in s:
        s = format(_Decimal(s), "f")
    if s.endswith(".0"):
        s = s[:-2]
    return s


def display(v):
    """Plain text: numbers as digits, text as is, timestamps as RFC 3339,
    bytes as base64, null as `null` (Rust's `Value` Display)."""
    t = type(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return rust_float(v)
    if t is str:
        return v
    if t is Timestamp:
        return format_rfc3339(v.micros)
    if t is Json:
        return v.text
    if t is bytes or t is bytearray:
        return base64(v)
    return json_text(v)


_MAX_SHOWN = 60


def _cut(s):
    if len(s) > _MAX_SHOWN:
        return s[:_MAX_SHOWN], True
    return s, False


def debug_str(s):
    """Rust's `{:?}` of a str: double quotes, escapes for quotes,
    backslashes, \\t \\r \\n, \\0 and other control characters."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0:
            out.append("\\u{%x}" % o)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def debug_char(c):
    """Rust's `{:?}` of a char: `'%'`, `'\\''`."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + debug_str(c)[1:-1] + "'"


# Unicode White_Space: what Rust's `str::trim` and `char::is_whitespace` use.
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def trim(s):
    """`s` without leading and trailing white space, as Rust trims."""
    return s.strip(WHITE_SPACE)


def quote(s):
    """Text quoted for a message and cut after 60 characters: `"abc"`."""
    shown, cut = _cut(s)
    return debug_str(shown) + ("…" if cut else "")


def describe(v):
    """A short description for messages: `text "abc"`, `int 3`, `null`."""
    k = kind(v)
    if k == "null":
        return "null"
    if k == "text":
        return "text " + quote(v)
    if k == "json":
        shown, cut = _cut(display(v))
        return "json " + shown + ("…" if cut else "")
    if k == "bytes":
        return f"bytes ({len(v)} bytes)"
    return f"{k} {display(v)}"


def shown(v):
    """A value for a message: text quoted, the rest as `display` prints it."""
    return quote(v) if type(v) is str else display(v)


# --- JSON -------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_string(s):
    """`s` as a JSON string, escaped as the Rust SDK escapes it."""
    if s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    out = ['"']
    for c in s:
        e = _ESCAPES.get(c)
        if e is not None:
            out.append(e)
        elif ord(c) < 0x20:
            out.append("\\u%04x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def json_float(x):
    """A float as JSON: Rust's digits, with `.0` kept on whole numbers so it
    stays a float; non-finite floats are `null`."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null"
    s = rust_float(x)
    if "." not in s:
        s += ".0"
    return s


def serde_float(x):
    """A float as serde_json (ryu) writes it: `1.0`, `0.1`, `1e21`, `1.5e-7`."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null"
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    sign = "-" if x < 0 else ""
    mant, exp = ("%r" % abs(x)).partition("e")[::2] if "e" in repr(x) else (repr(abs(x)), "0")
    if "." in mant:
        whole, frac = mant.split(".")
    else:
        whole, frac = mant, ""
    digits = (whole + frac).lstrip("0") or "0"
    # value = 0.<whole><frac> shifted: position of the decimal point in `digits`
    point = len(whole) + int(exp) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    e = point - len(digits)
    kk = len(digits) + e
    if e >= 0 and kk <= 16:
        return f"{sign}{digits}{'0' * e}.0"
    if 0 < kk <= 16:
        return f"{sign}{digits[:kk]}.{digits[kk:]}"
    if -5 < kk <= 0:
        return f"{sign}0.{'0' * -kk}{digits}"
    m = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{m}e{kk - 1}"


def json_text(v):
    """The JSON encoding of a field value (the Rust SDK's `write_value`)."""
    t = type(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return json_float(v)
    if t is str:
        return json_string(v)
    if t is Timestamp:
        return '"' + format_rfc3339(v.micros) + '"'
    if t is Json:
        return v.text
    if t is bytes or t is bytearray:
        return '"' + base64(v) + '"'
    if t is dict or t is list:
        return _json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    raise TypeError(f"not a field value: {v!r}")


def parse_json_number(s):
    """JSON number text as `int` when it has no fraction or exponent and fits
    in 64 bits, as `float` otherwise; `None` when it is not a number."""
    if "." not in s and "e" not in s and "E" not in s:
        try:
            n = int(s)
        except ValueError:
            n = None
        if n is not None and I64_MIN <= n <= I64_MAX and s.lstrip("-").isdigit():
            return n
    if not s or not (s[0].isdigit() or s[0] == "-"):
        return None
    try:
        x = float(s)
    except ValueError:
        return None
    if x != x or x in (float("inf"), float("-inf")):
        return None
    return x


def from_json(v):
    """A field value for a parsed JSON value: integers that fit in 64 bits
    are `int`, other numbers `float`, objects and arrays `Json`."""
    t = type(v)
    if v is None or t is bool or t is str or t is float:
        return v
    if t is int:
        return v if I64_MIN <= v <= I64_MAX else float(v)
    return Json(_json.dumps(v, ensure_ascii=False, separators=(",", ":")))


def base64(b):
    import base64 as _b64

    return _b64.b64encode(bytes(b)).decode("ascii")


# --- time -------------------------------------------------------------------


def days_from_civil(year, month, day):
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    m = month
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days):
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def format_rfc3339(micros):
    """`2024-05-01T12:00:00Z`, with six fractional digits when the instant
    is not a whole second."""
    days, in_day = divmod(micros, MICROS_PER_DAY)
    y, mo, d = civil_from_days(days)
    secs, frac = divmod(in_day, 1_000_000)
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, secs // 3600, secs // 60 % 60, secs % 60)
    if frac:
        text += ".%06d" % frac
    return text + "Z"


def _days_in_month(year, month):
    if month in (1, 3, 5, 7, 8, 10, 12):
        return 31
    if month in (4, 6, 9, 11):
        return 30
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 0


def _digits(s):
    if not s or not all("0" <= c <= "9" for c in s):
        return None
    return int(s)


def parse_date(s):
    """A plain date `YYYY-MM-DD` as midnight UTC, in microseconds."""
    if len(s) != 10 or s[4] != "-" or s[7] != "-":
        return None
    year, month, day = _digits(s[0:4]), _digits(s[5:7]), _digits(s[8:10])
    if year is None or month is None or day is None:
        return None
    if not 1 <= month <= 12 or day == 0 or day > _days_in_month(year, month):
        return None
    return days_from_civil(year, month, day) * MICROS_PER_DAY


def parse_rfc3339(s):
    """`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` in microseconds; a space
    or `t` may stand for `T`, `z` for `Z`; digits past microseconds are cut."""
    if len(s) < 20 or not s.isascii():
        return None
    date = parse_date(s[0:10])
    if date is None or s[10] not in "Tt " or s[13] != ":" or s[16] != ":":
        return None
    h, mi, sec = _digits(s[11:13]), _digits(s[14:16]), _digits(s[17:19])
    if h is None or mi is None or sec is None or h > 23 or mi > 59 or sec > 60:
        return None
    i = 19
    frac = 0
    if i < len(s) and s[i] == ".":
        i += 1
        start = i
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        if i == start:
            return None
        frac = int((s[start:i] + "000000")[:6])
    rest = s[i:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        oh, om = _digits(rest[1:3]), _digits(rest[4:6])
        if oh is None or om is None or oh > 23 or om > 59:
            return None
        offset = oh * 3600 + om * 60
        if rest[0] == "-":
            offset = -offset
    else:
        return None
    micros = date + (h * 3600 + mi * 60 + sec - offset) * 1_000_000 + frac
    return micros if I64_MIN <= micros <= I64_MAX else None
