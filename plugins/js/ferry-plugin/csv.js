// A small CSV reader (RFC 4180), as the Rust SDK's `csv` module reads:
// fields separated by a delimiter, records ending at a line feed outside
// quotes, quoted fields holding delimiters, line breaks and doubled quotes.
// An empty unquoted field reads as null, `""` as an empty text.

function readRecord(text, pos, delimiter) {
  const n = text.length;
  const fields = [];
  let newlines = 0;
  let malformed = null;
  for (;;) {
    if (pos < n && text[pos] === '"') {
      const start = pos + 1;
      let i = start;
      let escaped = false;
      let end;
      for (;;) {
        let q = -1;
        for (let j = i; j < n; j++) {
          if (text[j] === '"' || text[j] === '\n') {
            q = j;
            break;
          }
        }
        if (q < 0) {
          malformed = 'a quoted field is not closed';
          end = n;
          pos = n;
          break;
        }
        if (text[q] === '\n') {
          newlines++;
          i = q + 1;
          continue;
        }
        if (q + 1 < n && text[q + 1] === '"') {
          escaped = true;
          i = q + 2;
          continue;
        }
        end = q;
        pos = q + 1;
        break;
      }
      const value = text.slice(start, end);
      fields.push(escaped ? value.replaceAll('""', '"') : value);
      let skip = pos;
      while (skip < n && text[skip] !== delimiter && text[skip] !== '\n') skip++;
      const junk = text.slice(pos, skip);
      if (junk !== '' && junk !== '\r') malformed = 'text after a closing quote';
      pos = skip;
    } else {
      let end = pos;
      while (end < n && text[end] !== delimiter && text[end] !== '\n') end++;
      let stop = end;
      if (end < n && text[end] === '\n' && end > pos && text[end - 1] === '\r') stop = end - 1;
      fields.push(stop > pos ? text.slice(pos, stop) : null);
      pos = end;
    }
    if (pos < n && text[pos] === delimiter) {
      pos++;
      continue;
    }
    if (pos < n && text[pos] === '\n') {
      const contentEnd = pos > 0 && text[pos - 1] === '\r' ? pos - 1 : pos;
      return { fields, contentEnd, next: pos + 1, newlines: newlines + 1, malformed };
    }
    return { fields, contentEnd: n, next: n, newlines, malformed };
  }
}

/** Reads a whole CSV text into `{ line, fields, malformed }` records. Blank
 * lines are skipped. */
export function parseStr(text, delimiter = ',') {
  const out = [];
  let at = 0;
  let line = 1;
  while (at < text.length) {
    const rec = readRecord(text, at, delimiter);
    if (rec.contentEnd !== at) out.push({ line, fields: rec.fields, malformed: rec.malformed });
    line += rec.newlines;
    at = rec.next;
  }
  return out;
}
