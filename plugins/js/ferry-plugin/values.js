// Field values as a JavaScript plugin sees them, and their text forms.
//
// | WIT column   | JavaScript value                                          |
// |--------------|-----------------------------------------------------------|
// | `ints`       | `bigint` (64-bit exact)                                   |
// | `floats`     | `number`                                                  |
// | `bools`      | `boolean`                                                 |
// | `text`       | `string`                                                  |
// | `bytes`      | `Uint8Array`                                              |
// | `timestamps` | `Timestamp` (`micros`: microseconds since the epoch, UTC) |
// | `json`       | `Json` for objects and arrays; scalars in a JSON column read as null, boolean, bigint, number or string |
// | null         | `null`                                                    |
//
// Integers are bigints so that an int stays an int (and 64 bits stay exact)
// and a float stays a float, as in the Rust SDK. The text forms (`display`,
// `describe`, `quote`, `jsonText`) are the Rust SDK's, character for
// character: floats print as Rust prints them (`150`, `0.1`, no exponent).

export const I64_MIN = -(2n ** 63n);
export const I64_MAX = 2n ** 63n - 1n;
export const MICROS_PER_DAY = 86_400_000_000n;

export class Timestamp {
  constructor(micros) {
    this.micros = BigInt(micros);
  }
  toString() {
    return formatRfc3339(this.micros);
  }
}

export class Json {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

export function kind(v) {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'bigint':
      return 'int';
    case 'number':
      return 'float';
    case 'string':
      return 'text';
  }
  if (v instanceof Timestamp) return 'timestamp';
  if (v instanceof Json) return 'json';
  if (v instanceof Uint8Array) return 'bytes';
  throw new TypeError(`not a field value: ${String(v)}`);
}

/** Plain decimal digits of a number's shortest round-trip form, no exponent. */
function plainDigits(x) {
  const s = String(x);
  const e = s.indexOf('e');
  if (e < 0) return s;
  let mant = s.slice(0, e);
  const exp = Number(s.slice(e + 1));
  let sign = '';
  if (mant[0] === '-') {
    sign = '-';
    mant = mant.slice(1);
  }
  const dot = mant.indexOf('.');
  const digits = mant.replace('.', '');
  const point = (dot < 0 ? mant.length : dot) + exp;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** `x` as Rust's `Display` prints an f64. */
export function rustFloat(x) {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (Object.is(x, -0)) return '-0';
  return plainDigits(x);
}

/** Plain text: numbers as digits, text as is, timestamps as RFC 3339,
 * bytes as base64, null as `null` (Rust's `Value` Display). */
export function display(v) {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'number':
      return rustFloat(v);
    case 'string':
      return v;
  }
  if (v instanceof Timestamp) return formatRfc3339(v.micros);
  if (v instanceof Json) return v.text;
  if (v instanceof Uint8Array) return base64(v);
  return String(v);
}

const MAX_SHOWN = 60;

function cut(s) {
  const chars = Array.from(s);
  if (chars.length > MAX_SHOWN) return [chars.slice(0, MAX_SHOWN).join(''), true];
  return [s, false];
}

/** Rust's `{:?}` of a str. */
export function debugStr(s) {
  let out = '"';
  for (const c of s) {
    const o = c.codePointAt(0);
    if (c === '"') out += '\\"';
    else if (c === '\\') out += '\\\\';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (c === '\0') out += '\\0';
    else if (o < 0x20 || o === 0x7f || (o >= 0x80 && o < 0xa0)) out += `\\u{${o.toString(16)}}`;
    else out += c;
  }
  return out + '"';
}

/** Rust's `{:?}` of a char. */
export function debugChar(c) {
  if (c === "'") return "'\\''";
  if (c === '"') return `'"'`;
  return `'${debugStr(c).slice(1, -1)}'`;
}

// Unicode White_Space: what Rust's `str::trim` and `char::is_whitespace` use.
export const WHITE_SPACE =
  '\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const TRIM = new RegExp(`^[${WHITE_SPACE}]+|[${WHITE_SPACE}]+$`, 'gu');

export function isWhiteSpace(c) {
  return WHITE_SPACE.includes(c);
}

/** `s` without leading and trailing white space, as Rust trims. */
export function trim(s) {
  return s.replace(TRIM, '');
}

/** Text quoted for a message and cut after 60 characters: `"abc"`. */
export function quote(s) {
  const [shown, wasCut] = cut(s);
  return debugStr(shown) + (wasCut ? '…' : '');
}

/** A short description for messages: `text "abc"`, `int 3`, `null`. */
export function describe(v) {
  const k = kind(v);
  if (k === 'null') return 'null';
  if (k === 'text') return `text ${quote(v)}`;
  if (k === 'json') {
    const [shown, wasCut] = cut(v.text);
    return `json ${shown}${wasCut ? '…' : ''}`;
  }
  if (k === 'bytes') return `bytes (${v.length} bytes)`;
  return `${k} ${display(v)}`;
}

/** A value for a message: text quoted, the rest as `display` prints it. */
export function shown(v) {
  return typeof v === 'string' ? quote(v) : display(v);
}

/** The number of characters (code points) of a text. */
export function charCount(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// --- JSON -------------------------------------------------------------------

/** `s` as a JSON string, escaped as the Rust SDK escapes it. */
export function jsonString(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    const o = s.charCodeAt(i);
    if (c === '"') out += '\\"';
    else if (c === '\\') out += '\\\\';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (o < 0x20) out += `\\u${o.toString(16).padStart(4, '0')}`;
    else out += c;
  }
  return out + '"';
}

/** A float as JSON, with `.0` on whole numbers; non-finite floats are `null`. */
export function jsonFloat(x) {
  if (!Number.isFinite(x)) return 'null';
  const s = rustFloat(x);
  return s.includes('.') ? s : `${s}.0`;
}

/** The JSON encoding of a field value (the Rust SDK's `write_value`). */
export function jsonText(v) {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'number':
      return jsonFloat(v);
    case 'string':
      return jsonString(v);
  }
  if (v instanceof Timestamp) return `"${formatRfc3339(v.micros)}"`;
  if (v instanceof Json) return v.text;
  if (v instanceof Uint8Array) return `"${base64(v)}"`;
  throw new TypeError(`not a field value: ${String(v)}`);
}

const RUST_FLOAT = /^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[iI][nN][fF][iI][nN][iI][tT][yY]|[nN][aA][nN])$/;

/** Rust's `str::parse::<f64>`: null when `s` is not a number. */
export function parseFloatRust(s) {
  if (!RUST_FLOAT.test(s)) return null;
  const t = s.replace(/^([+-]?)inf(inity)?$/i, '$1Infinity');
  if (/nan$/i.test(t)) return NaN;
  return Number(t);
}

/** JSON number text as a bigint when it has no fraction or exponent and
 * fits in 64 bits, as a number otherwise; null when it is not a number. */
export function parseJsonNumber(s) {
  if (!/[.eE]/.test(s) && /^[+-]?[0-9]+$/.test(s)) {
    const n = BigInt(s);
    if (n >= I64_MIN && n <= I64_MAX) return n;
  }
  if (!/^[-0-9]/.test(s)) return null;
  const x = parseFloatRust(s);
  return x === null || !Number.isFinite(x) ? null : x;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function base64(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return out;
}

// --- time -------------------------------------------------------------------

function floorDiv(a, b) {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

export function daysFromCivil(year, month, day) {
  const y = BigInt(month <= 2 ? year - 1 : year);
  const era = floorDiv(y, 400n);
  const yoe = y - era * 400n;
  const m = BigInt(month);
  const doy = (153n * (m > 2n ? m - 3n : m + 9n) + 2n) / 5n + BigInt(day) - 1n;
  const doe = yoe * 365n + yoe / 4n - yoe / 100n + doy;
  return era * 146097n + doe - 719468n;
}

export function civilFromDays(days) {
  const z = BigInt(days) + 719468n;
  const era = floorDiv(z, 146097n);
  const doe = z - era * 146097n;
  const yoe = (doe - doe / 1460n + doe / 36524n - doe / 146096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const day = doy - (153n * mp + 2n) / 5n + 1n;
  const month = mp < 10n ? mp + 3n : mp - 9n;
  const year = yoe + era * 400n + (month <= 2n ? 1n : 0n);
  return [Number(year), Number(month), Number(day)];
}

export function splitMicros(micros) {
  const days = floorDiv(micros, MICROS_PER_DAY);
  const inDay = micros - days * MICROS_PER_DAY;
  return [days, inDay];
}

const pad = (n, w) => String(n).padStart(w, '0');

/** `2024-05-01T12:00:00Z`, with six fractional digits when the instant is
 * not a whole second. */
export function formatRfc3339(micros) {
  const [days, inDay] = splitMicros(BigInt(micros));
  const [y, mo, d] = civilFromDays(days);
  const secs = Number(inDay / 1000000n);
  const frac = Number(inDay % 1000000n);
  const year = y < 0 ? `-${pad(-y, 4)}` : pad(y, 4);
  let text = `${year}-${pad(mo, 2)}-${pad(d, 2)}T${pad(Math.floor(secs / 3600), 2)}:${pad(Math.floor(secs / 60) % 60, 2)}:${pad(secs % 60, 2)}`;
  if (frac) text += `.${pad(frac, 6)}`;
  return `${text}Z`;
}

export function daysInMonth(year, month) {
  if ([1, 3, 5, 7, 8, 10, 12].includes(month)) return 31;
  if ([4, 6, 9, 11].includes(month)) return 30;
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return 0;
}

const digits = (s) => (/^[0-9]+$/.test(s) ? Number(s) : null);

/** A plain date `YYYY-MM-DD` as midnight UTC, in microseconds (bigint). */
export function parseDate(s) {
  if (s.length !== 10 || s[4] !== '-' || s[7] !== '-') return null;
  const year = digits(s.slice(0, 4));
  const month = digits(s.slice(5, 7));
  const day = digits(s.slice(8, 10));
  if (year === null || month === null || day === null) return null;
  if (month < 1 || month > 12 || day === 0 || day > daysInMonth(year, month)) return null;
  return daysFromCivil(year, month, day) * MICROS_PER_DAY;
}

/** `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` in microseconds (bigint). */
export function parseRfc3339(s) {
  if (s.length < 20 || !/^[\x00-\x7f]*$/.test(s)) return null;
  const date = parseDate(s.slice(0, 10));
  if (date === null || !'Tt '.includes(s[10]) || s[13] !== ':' || s[16] !== ':') return null;
  const h = digits(s.slice(11, 13));
  const mi = digits(s.slice(14, 16));
  const sec = digits(s.slice(17, 19));
  if (h === null || mi === null || sec === null || h > 23 || mi > 59 || sec > 60) return null;
  let i = 19;
  let frac = 0;
  if (s[i] === '.') {
    i++;
    const start = i;
    while (i < s.length && s[i] >= '0' && s[i] <= '9') i++;
    if (i === start) return null;
    frac = Number((s.slice(start, i) + '000000').slice(0, 6));
  }
  const rest = s.slice(i);
  let offset;
  if (rest === 'Z' || rest === 'z') offset = 0;
  else if (rest.length === 6 && '+-'.includes(rest[0]) && rest[3] === ':') {
    const oh = digits(rest.slice(1, 3));
    const om = digits(rest.slice(4, 6));
    if (oh === null || om === null || oh > 23 || om > 59) return null;
    offset = (oh * 3600 + om * 60) * (rest[0] === '-' ? -1 : 1);
  } else return null;
  const micros = date + BigInt(h * 3600 + mi * 60 + sec - offset) * 1000000n + BigInt(frac);
  return micros >= I64_MIN && micros <= I64_MAX ? micros : null;
}
