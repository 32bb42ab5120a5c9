// strftime-style formats for the mapper's `cast` (`format = "%d/%m/%Y"`):
// parsing text into an instant and writing an instant as text. The same
// specifiers and reading rules as the Python port (plugins/python/
// field_mapper/strtime.py), which follow chrono's for the common ones:
// numbers take up to their width in digits, names are English in any case,
// white space in the format matches any run of white space, everything else
// must match exactly; UTC unless the format has an offset; no year, no date.

import { MICROS_PER_DAY, civilFromDays, daysFromCivil, splitMicros } from '../ferry-plugin/values.js';

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const COMPOSITE = {
  D: '%m/%d/%y',
  x: '%m/%d/%y',
  F: '%Y-%m-%d',
  v: '%e-%b-%Y',
  R: '%H:%M',
  T: '%H:%M:%S',
  X: '%H:%M:%S',
  r: '%I:%M:%S %p',
  c: '%a %b %e %H:%M:%S %Y',
  '+': '%Y-%m-%dT%H:%M:%S%.f%:z',
};
const SIMPLE = new Set('YCymbhBdeaAwuUWGgVjHkIlPpMSfZzs'.split(''));
const FRACTIONS = new Set(['.f', '.3f', '.6f', '.9f', '3f', '6f', '9f', ':z', '::z', ':::z', '#z']);
const ITEM = /%([-_0]?)(\.?[369]?f|:{1,3}z|#z|[\s\S])/y;
const isSpace = (c) => /\s/u.test(c);

/** The format split into items, or null for an unknown specifier. */
export function items(fmt) {
  const out = [];
  let i = 0;
  while (i < fmt.length) {
    const c = fmt[i];
    if (c === '%') {
      ITEM.lastIndex = i;
      const m = ITEM.exec(fmt);
      if (!m) return null;
      const spec = m[2];
      i = ITEM.lastIndex;
      if (spec in COMPOSITE) out.push(...items(COMPOSITE[spec]));
      else if (spec === 'n' || spec === 't') out.push(['space', null]);
      else if (spec === '%') out.push(['lit', '%']);
      else if (SIMPLE.has(spec) || FRACTIONS.has(spec)) out.push(['spec', spec]);
      else return null;
    } else if (isSpace(c)) {
      while (i < fmt.length && isSpace(fmt[i])) i++;
      out.push(['space', null]);
    } else {
      out.push(['lit', c]);
      i++;
    }
  }
  return out;
}

export const valid = (fmt) => items(fmt) !== null;

const WIDTH = { Y: 4, C: 2, y: 2, m: 2, d: 2, e: 2, H: 2, k: 2, I: 2, l: 2, M: 2, S: 2, j: 3, w: 1, u: 1, U: 2, W: 2, G: 4, g: 2, V: 2 };
const isDigit = (c) => c !== undefined && c >= '0' && c <= '9';

function name(text, pos, names) {
  const low = text.slice(pos).toLowerCase();
  for (let i = 0; i < names.length; i++) if (low.startsWith(names[i])) return [i, pos + names[i].length];
  for (let i = 0; i < names.length; i++) if (low.startsWith(names[i].slice(0, 3))) return [i, pos + 3];
  return null;
}

/** The instant `text` stands for under `fmt`, in microseconds (bigint), or null. */
export function parse(text, fmt) {
  const its = items(fmt);
  if (its === null) return null;
  const f = {};
  let pos = 0;
  const n = text.length;
  for (const [kind, spec] of its) {
    if (kind === 'lit') {
      if (!text.startsWith(spec, pos)) return null;
      pos += spec.length;
      continue;
    }
    if (kind === 'space') {
      while (pos < n && isSpace(text[pos])) pos++;
      continue;
    }
    if (spec in WIDTH) {
      let sign = 1;
      let limit = WIDTH[spec];
      if ((spec === 'Y' || spec === 'G') && (text[pos] === '+' || text[pos] === '-')) {
        sign = text[pos] === '-' ? -1 : 1;
        pos++;
        limit = 6;
      }
      while ((spec === 'e' || spec === 'k' || spec === 'l') && text[pos] === ' ') pos++;
      const start = pos;
      while (pos < n && pos - start < limit && isDigit(text[pos])) pos++;
      if (pos === start) return null;
      f[spec] = sign * Number(text.slice(start, pos));
    } else if (spec === 'b' || spec === 'h' || spec === 'B') {
      const v = name(text, pos, MONTHS);
      if (v === null) return null;
      f.mName = v[0] + 1;
      pos = v[1];
    } else if (spec === 'a' || spec === 'A') {
      const v = name(text, pos, DAYS);
      if (v === null) return null;
      pos = v[1];
    } else if (spec === 'p' || spec === 'P') {
      const word = text.slice(pos, pos + 2).toLowerCase();
      if (word !== 'am' && word !== 'pm') return null;
      f.pm = word === 'pm';
      pos += 2;
    } else if (spec.endsWith('f')) {
      if (spec.startsWith('.')) {
        if (text[pos] === '.') pos++;
        else if (spec === '.f') continue;
        else return null;
      }
      const start = pos;
      while (pos < n && pos - start < 9 && isDigit(text[pos])) pos++;
      if (pos === start) return null;
      f.nanos = Number((text.slice(start, pos) + '000000000').slice(0, 9));
    } else if (spec.endsWith('z')) {
      const m = /([+-])(\d\d):?(\d\d)?/y;
      m.lastIndex = pos;
      const g = m.exec(text);
      if (!g) {
        if (text[pos] === 'Z' || text[pos] === 'z') {
          f.offset = 0;
          pos++;
          continue;
        }
        return null;
      }
      const secs = Number(g[2]) * 3600 + Number(g[3] ?? 0) * 60;
      f.offset = g[1] === '-' ? -secs : secs;
      pos = m.lastIndex;
    } else if (spec === 'Z') {
      const m = /[A-Za-z]+/y;
      m.lastIndex = pos;
      if (!m.exec(text)) return null;
      pos = m.lastIndex;
    } else if (spec === 's') {
      const m = /-?\d+/y;
      m.lastIndex = pos;
      const g = m.exec(text);
      if (!g) return null;
      f.epoch = BigInt(g[0]);
      pos = m.lastIndex;
    }
  }
  if (pos !== n) return null;
  return resolve(f);
}

function resolve(f) {
  if (f.epoch !== undefined) return f.epoch * 1000000n;
  let year;
  if (f.Y !== undefined) year = f.Y;
  else if (f.y !== undefined) year = f.y + (f.C !== undefined ? 100 * f.C : f.y < 70 ? 2000 : 1900);
  else return null;
  const month = f.m ?? f.mName;
  let days;
  if (f.j !== undefined && month === undefined && f.d === undefined && f.e === undefined) {
    const start = daysFromCivil(year, 1, 1);
    const last = Number(daysFromCivil(year + 1, 1, 1) - start);
    if (f.j < 1 || f.j > last) return null;
    days = start + BigInt(f.j - 1);
  } else {
    const day = f.d ?? f.e;
    if (month === undefined || day === undefined) return null;
    if (month < 1 || month > 12 || day < 1 || day > 31) return null;
    days = daysFromCivil(year, month, day);
    const [y2, m2, d2] = civilFromDays(days);
    if (y2 !== year || m2 !== month || d2 !== day) return null;
  }
  let hour = f.H ?? f.k;
  if (hour === undefined && (f.I !== undefined || f.l !== undefined)) {
    const h12 = f.I ?? f.l;
    if (h12 < 1 || h12 > 12) return null;
    hour = (h12 % 12) + (f.pm ? 12 : 0);
  }
  let minute = f.M;
  const second = f.S ?? 0;
  if (hour === undefined) {
    if (minute !== undefined) return null;
    hour = 0;
    minute = 0;
  } else if (minute === undefined) return null;
  if (hour > 23 || minute > 59 || second > 60) return null;
  const secs = hour * 3600 + minute * 60 + second - (f.offset ?? 0);
  return days * MICROS_PER_DAY + BigInt(secs) * 1000000n + BigInt(Math.floor((f.nanos ?? 0) / 1000));
}

const pad = (n, w, c = '0') => String(n).padStart(w, c);
const cap = (s) => s[0].toUpperCase() + s.slice(1);

/** `micros` (bigint) written with `fmt`, in UTC. */
export function format(micros, fmt) {
  const [daysBig, inDay] = splitMicros(micros);
  const [y, mo, d] = civilFromDays(daysBig);
  const days = Number(daysBig);
  const secs = Number(inDay / 1000000n);
  const frac = Number(inDay % 1000000n);
  const h = Math.floor(secs / 3600);
  const mi = Math.floor(secs / 60) % 60;
  const s = secs % 60;
  const weekday = (((days + 3) % 7) + 7) % 7;
  const yday = days - Number(daysFromCivil(y, 1, 1)) + 1;
  let out = '';
  for (const [kind, spec] of items(fmt)) {
    if (kind === 'lit') {
      out += spec;
      continue;
    }
    if (kind === 'space') {
      out += ' ';
      continue;
    }
    switch (spec) {
      case 'Y': out += pad(y, 4); break;
      case 'C': out += pad(Math.floor(y / 100), 2); break;
      case 'y': out += pad(((y % 100) + 100) % 100, 2); break;
      case 'm': out += pad(mo, 2); break;
      case 'b': case 'h': out += cap(MONTHS[mo - 1].slice(0, 3)); break;
      case 'B': out += cap(MONTHS[mo - 1]); break;
      case 'd': out += pad(d, 2); break;
      case 'e': out += pad(d, 2, ' '); break;
      case 'a': out += cap(DAYS[weekday].slice(0, 3)); break;
      case 'A': out += cap(DAYS[weekday]); break;
      case 'w': out += String((weekday + 1) % 7); break;
      case 'u': out += String(weekday + 1); break;
      case 'j': out += pad(yday, 3); break;
      case 'H': out += pad(h, 2); break;
      case 'k': out += pad(h, 2, ' '); break;
      case 'I': out += pad(h % 12 || 12, 2); break;
      case 'l': out += pad(h % 12 || 12, 2, ' '); break;
      case 'p': out += h >= 12 ? 'PM' : 'AM'; break;
      case 'P': out += h >= 12 ? 'pm' : 'am'; break;
      case 'M': out += pad(mi, 2); break;
      case 'S': out += pad(s, 2); break;
      case 'f': out += pad(frac * 1000, 9); break;
      case '.f': out += frac === 0 ? '' : frac % 1000 ? `.${pad(frac, 6)}` : `.${pad(frac / 1000, 3)}`; break;
      case '.3f': case '3f': out += (spec[0] === '.' ? '.' : '') + pad(Math.floor(frac / 1000), 3); break;
      case '.6f': case '6f': out += (spec[0] === '.' ? '.' : '') + pad(frac, 6); break;
      case '.9f': case '9f': out += (spec[0] === '.' ? '.' : '') + pad(frac * 1000, 9); break;
      case 'z': case '#z': out += '+0000'; break;
      case ':z': out += '+00:00'; break;
      case '::z': out += '+00:00:00'; break;
      case ':::z': out += '+00'; break;
      case 'Z': out += 'UTC'; break;
      case 's': out += (micros / 1000000n - (micros % 1000000n < 0n ? 1n : 0n)).toString(); break;
      default: out += week(spec, y, days, weekday, yday);
    }
  }
  return out;
}

function week(spec, y, days, weekday, yday) {
  if (spec === 'U') return pad(Math.floor((yday + 6 - ((weekday + 1) % 7)) / 7), 2);
  if (spec === 'W') return pad(Math.floor((yday + 6 - weekday) / 7), 2);
  const thursday = days - weekday + 3;
  const isoYear = civilFromDays(thursday)[0];
  const w = Math.floor((thursday - Number(daysFromCivil(isoYear, 1, 1))) / 7) + 1;
  if (spec === 'G') return pad(isoYear, 4);
  if (spec === 'g') return pad(isoYear % 100, 2);
  return pad(w, 2);
}
