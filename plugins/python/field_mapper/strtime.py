"""strftime-style formats for the mapper's `cast` (`format = "%d/%m/%Y"`):
parsing text into an instant and writing an instant as text.

The Rust field-mapper uses chrono; this is the same set of specifiers and
the same reading rules for the common ones: numbers take up to their
width in digits (`%d` reads `5` and `05`), names are English and read in
any case, white space in the format matches any run of white space (or
none), everything else must match exactly. The instant is UTC unless the
format has an offset (`%z`, `%:z`). A format without a year reads nothing
(chrono needs a date).
"""

import re

from ferry_plugin.values import MICROS_PER_DAY, civil_from_days, days_from_civil

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# Composite specifiers, as chrono expands them.
_COMPOSITE = {
    "D": "%m/%d/%y",
    "x": "%m/%d/%y",
    "F": "%Y-%m-%d",
    "v": "%e-%b-%Y",
    "R": "%H:%M",
    "T": "%H:%M:%S",
    "X": "%H:%M:%S",
    "r": "%I:%M:%S %p",
    "c": "%a %b %e %H:%M:%S %Y",
    "+": "%Y-%m-%dT%H:%M:%S%.f%:z",
}
_SIMPLE = set("YCymbhBdeaAwuUWGgVjHkIlPpMSfZzsnt%")
_ITEM = re.compile(r"%([-_0]?)(\.?[369]?f|:{1,3}z|#z|.)", re.S)


def items(fmt):
    """The format split into items: ("lit", text), ("space", None) or
    ("spec", letter); `None` when the format has an unknown specifier."""
    out = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            m = _ITEM.match(fmt, i)
            if not m:
                return None
            spec = m.group(2)
            i = m.end()
            if spec in _COMPOSITE:
                sub = items(_COMPOSITE[spec])
                out.extend(sub)
            elif spec in ("n", "t"):
                out.append(("space", None))
            elif spec == "%":
                out.append(("lit", "%"))
            elif spec in _SIMPLE or spec in (".f", ".3f", ".6f", ".9f", "3f", "6f", "9f", ":z", "::z", ":::z", "#z"):
                out.append(("spec", spec))
            else:
                return None
        elif c.isspace():
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            out.append(("space", None))
        else:
            out.append(("lit", c))
            i += 1
    return out


def valid(fmt):
    return items(fmt) is not None


_WIDTH = {"Y": 4, "C": 2, "y": 2, "m": 2, "d": 2, "e": 2, "H": 2, "k": 2, "I": 2, "l": 2, "M": 2, "S": 2, "j": 3, "w": 1, "u": 1, "U": 2, "W": 2, "G": 4, "g": 2, "V": 2}


def parse(text, fmt):
    """The instant `text` stands for under `fmt`, in microseconds, or None."""
    its = items(fmt)
    if its is None:
        return None
    f = {}
    pos = 0
    n = len(text)
    for kind, spec in its:
        if kind == "lit":
            if not text.startswith(spec, pos):
                return None
            pos += len(spec)
            continue
        if kind == "space":
            while pos < n and text[pos].isspace():
                pos += 1
            continue
        if spec in _WIDTH:
            sign = 1
            limit = _WIDTH[spec]
            if spec in ("Y", "G") and pos < n and text[pos] in "+-":
                # A signed year may have more than 4 digits.
                sign = -1 if text[pos] == "-" else 1
                pos += 1
                limit = 6
            while spec in ("e", "k", "l") and pos < n and text[pos] == " ":
                pos += 1
            start = pos
            while pos < n and pos - start < limit and "0" <= text[pos] <= "9":
                pos += 1
            if pos == start:
                return None
            f[spec] = sign * int(text[start:pos])
        elif spec in ("b", "h", "B"):
            v = _name(text, pos, MONTHS)
            if v is None:
                return None
            f["m_name"], pos = v[0] + 1, v[1]
        elif spec in ("a", "A"):
            v = _name(text, pos, DAYS)
            if v is None:
                return None
            pos = v[1]
        elif spec in ("p", "P"):
            word = text[pos : pos + 2].lower()
            if word not in ("am", "pm"):
                return None
            f["pm"] = word == "pm"
            pos += 2
        elif spec.endswith("f"):
            if spec.startswith("."):
                if pos < n and text[pos] == ".":
                    pos += 1
                elif spec == ".f":
                    continue
                else:
                    return None
            start = pos
            while pos < n and pos - start < 9 and "0" <= text[pos] <= "9":
                pos += 1
            if pos == start:
                return None
            f["nanos"] = int((text[start:pos] + "000000000")[:9])
        elif spec in ("z", ":z", "::z", ":::z", "#z"):
            m = re.compile(r"([+-])(\d\d):?(\d\d)?").match(text, pos)
            if not m:
                if text.startswith("Z", pos) or text.startswith("z", pos):
                    f["offset"] = 0
                    pos += 1
                    continue
                return None
            secs = int(m.group(2)) * 3600 + int(m.group(3) or 0) * 60
            f["offset"] = -secs if m.group(1) == "-" else secs
            pos = m.end()
        elif spec == "Z":
            m = re.compile(r"[A-Za-z]+").match(text, pos)
            if not m:
                return None
            pos = m.end()
        elif spec == "s":
            m = re.compile(r"-?\d+").match(text, pos)
            if not m:
                return None
            f["epoch"] = int(m.group(0))
            pos = m.end()
    if pos != n:
        return None
    return _resolve(f)


def _name(text, pos, names):
    low = text[pos:].lower()
    for i, name in enumerate(names):
        if low.startswith(name):
            return i, pos + len(name)
    for i, name in enumerate(names):
        if low.startswith(name[:3]):
            return i, pos + 3
    return None


def _resolve(f):
    if "epoch" in f:
        return f["epoch"] * 1_000_000
    if "Y" in f:
        year = f["Y"]
    elif "y" in f:
        year = f["y"] + (100 * f["C"] if "C" in f else (2000 if f["y"] < 70 else 1900))
    else:
        return None
    month = f.get("m", f.get("m_name"))
    if "j" in f and month is None and "d" not in f and "e" not in f:
        start = days_from_civil(year, 1, 1)
        last = days_from_civil(year + 1, 1, 1) - start
        if not 1 <= f["j"] <= last:
            return None
        days = start + f["j"] - 1
    else:
        day = f.get("d", f.get("e"))
        if month is None or day is None:
            return None
        if not 1 <= month <= 12 or not 1 <= day <= 31:
            return None
        days = days_from_civil(year, month, day)
        if civil_from_days(days) != (year, month, day):
            return None
    hour = f.get("H", f.get("k"))
    if hour is None and ("I" in f or "l" in f):
        h12 = f.get("I", f.get("l"))
        if not 1 <= h12 <= 12:
            return None
        hour = h12 % 12 + (12 if f.get("pm") else 0)
    minute, second = f.get("M"), f.get("S", 0)
    if hour is None:
        if minute is not None:
            return None
        hour = minute = 0
    elif minute is None:
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    secs = hour * 3600 + minute * 60 + second - f.get("offset", 0)
    return days * MICROS_PER_DAY + secs * 1_000_000 + f.get("nanos", 0) // 1000


def format(micros, fmt):
    """`micros` written with `fmt`, in UTC."""
    its = items(fmt)
    days, in_day = divmod(micros, MICROS_PER_DAY)
    y, mo, d = civil_from_days(days)
    secs, frac = divmod(in_day, 1_000_000)
    h, mi, s = secs // 3600, secs // 60 % 60, secs % 60
    weekday = (days + 3) % 7  # 0 = Monday
    yday = days - days_from_civil(y, 1, 1) + 1
    out = []
    for kind, spec in its:
        if kind == "lit":
            out.append(spec)
        elif kind == "space":
            out.append(" ")
        elif spec == "Y":
            out.append("%04d" % y)
        elif spec == "C":
            out.append("%02d" % (y // 100))
        elif spec == "y":
            out.append("%02d" % (y % 100))
        elif spec == "m":
            out.append("%02d" % mo)
        elif spec in ("b", "h"):
            out.append(MONTHS[mo - 1][:3].capitalize())
        elif spec == "B":
            out.append(MONTHS[mo - 1].capitalize())
        elif spec == "d":
            out.append("%02d" % d)
        elif spec == "e":
            out.append("%2d" % d)
        elif spec == "a":
            out.append(DAYS[weekday][:3].capitalize())
        elif spec == "A":
            out.append(DAYS[weekday].capitalize())
        elif spec == "w":
            out.append(str((weekday + 1) % 7))
        elif spec == "u":
            out.append(str(weekday + 1))
        elif spec == "j":
            out.append("%03d" % yday)
        elif spec == "H":
            out.append("%02d" % h)
        elif spec == "k":
            out.append("%2d" % h)
        elif spec == "I":
            out.append("%02d" % (h % 12 or 12))
        elif spec == "l":
            out.append("%2d" % (h % 12 or 12))
        elif spec == "p":
            out.append("PM" if h >= 12 else "AM")
        elif spec == "P":
            out.append("pm" if h >= 12 else "am")
        elif spec == "M":
            out.append("%02d" % mi)
        elif spec == "S":
            out.append("%02d" % s)
        elif spec == "f":
            out.append("%09d" % (frac * 1000))
        elif spec == ".f":
            out.append("" if frac == 0 else ("." + "%06d" % frac) if frac % 1000 else "." + "%03d" % (frac // 1000))
        elif spec in (".3f", "3f"):
            out.append(("." if spec[0] == "." else "") + "%03d" % (frac // 1000))
        elif spec in (".6f", "6f"):
            out.append(("." if spec[0] == "." else "") + "%06d" % frac)
        elif spec in (".9f", "9f"):
            out.append(("." if spec[0] == "." else "") + "%09d" % (frac * 1000))
        elif spec in ("z", "#z"):
            out.append("+0000")
        elif spec in (":z", "::z", ":::z"):
            out.append({":z": "+00:00", "::z": "+00:00:00", ":::z": "+00"}[spec])
        elif spec == "Z":
            out.append("UTC")
        elif spec == "s":
            out.append(str(micros // 1_000_000))
        else:  # U W G g V: rarely used in data; chrono's ISO week numbers
            out.append(_week(spec, y, days, weekday, yday))
    return "".join(out)


def _week(spec, y, days, weekday, yday):
    if spec == "U":
        return "%02d" % ((yday + 6 - (weekday + 1) % 7) // 7)
    if spec == "W":
        return "%02d" % ((yday + 6 - weekday) // 7)
    # ISO 8601 week-based year and week.
    thursday = days - weekday + 3
    iso_year = civil_from_days(thursday)[0]
    week = (thursday - days_from_civil(iso_year, 1, 1)) // 7 + 1
    if spec == "G":
        return "%04d" % iso_year
    if spec == "g":
        return "%02d" % (iso_year % 100)
    return "%02d" % week
