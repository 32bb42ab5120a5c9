"""A small CSV reader (RFC 4180), as the Rust SDK's `csv` module reads:
fields separated by a delimiter, records ending at a line feed outside
quotes, quoted fields holding delimiters, line breaks and doubled quotes.
An empty unquoted field reads as `None`, `""` as an empty text.
"""


class CsvLine:
    __slots__ = ("line", "fields", "malformed")

    def __init__(self, line, fields, malformed):
        self.line = line  # the line the record starts on, from 1
        self.fields = fields  # texts, None for an empty unquoted field
        self.malformed = malformed  # why the record breaks the quoting rules, or None


def _read_record(text, pos, delimiter):
    """Reads the record starting at `pos` of `text` (the whole input).
    Returns (fields, content_end, next_pos, newlines, malformed)."""
    n = len(text)
    fields = []
    newlines = 0
    malformed = None
    while True:
        if pos < n and text[pos] == '"':
            start = pos + 1
            i = start
            escaped = False
            while True:
                q = -1
                for j in range(i, n):
                    if text[j] == '"' or text[j] == "\n":
                        q = j
                        break
                if q < 0:
                    malformed = "a quoted field is not closed"
                    end = n
                    pos = n
                    break
                if text[q] == "\n":
                    newlines += 1
                    i = q + 1
                    continue
                if q + 1 < n and text[q + 1] == '"':
                    escaped = True
                    i = q + 2
                    continue
                end = q
                pos = q + 1
                break
            value = text[start:end]
            fields.append(value.replace('""', '"') if escaped else value)
            skip = pos
            while skip < n and text[skip] != delimiter and text[skip] != "\n":
                skip += 1
            junk = text[pos:skip]
            if junk not in ("", "\r"):
                malformed = "text after a closing quote"
            pos = skip
        else:
            end = pos
            while end < n and text[end] != delimiter and text[end] != "\n":
                end += 1
            length = end - pos
            stop = end
            if end < n and text[end] == "\n" and end > pos and text[end - 1] == "\r":
                stop = end - 1
            fields.append(text[pos:stop] if stop > pos else None)
            pos += length
        if pos < n and text[pos] == delimiter:
            pos += 1
            continue
        if pos < n and text[pos] == "\n":
            content_end = pos - 1 if pos > 0 and text[pos - 1] == "\r" else pos
            return fields, content_end, pos + 1, newlines + 1, malformed
        return fields, n, n, newlines, malformed


def parse_str(text, delimiter=","):
    """Reads a whole CSV text into `CsvLine`s. Blank lines are skipped."""
    out = []
    at = 0
    line = 1
    n = len(text)
    while at < n:
        fields, content_end, nxt, newlines, malformed = _read_record(text, at, delimiter)
        if content_end != at:
            out.append(CsvLine(line, fields, malformed))
        line += newlines
        at = nxt
    return out
