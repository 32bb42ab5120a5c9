// The expression language of `computed` fields (the Rust field-mapper's):
//
//     expr    := term (('+' | '-') term)*
//     term    := unary (('*' | '/') unary)*
//     unary   := '-' unary | atom
//     atom    := number | string | field | '(' expr ')'
//
// `+` joins text when either side is text and adds numbers otherwise; `/`
// always gives a float; a null operand gives null. Evaluation errors (text
// in arithmetic, division by zero, overflow) reject the record.

import { isAlphabetic, isAlphanumeric } from '../ferry-plugin/unicode.js';
import { I64_MAX, I64_MIN, Json, debugChar, describe, display, isWhiteSpace } from '../ferry-plugin/values.js';

export class SyntaxError_ extends Error {
  constructor(position, message) {
    super(`${message} at position ${position}`);
  }
}

export class EvalError extends Error {}

const SYMBOLS = '+-*/()';
const isDigit = (c) => c >= '0' && c <= '9';

function tokenStr([kind, text]) {
  if (kind === 'num') return `number ${text}`;
  if (kind === 'text') return `text '${text}'`;
  if (kind === 'name') return `field ${text}`;
  return `'${kind}'`;
}

function tokenize(src) {
  const chars = Array.from(src);
  const n = chars.length;
  const out = [];
  let i = 0;
  while (i < n) {
    const c = chars[i];
    const pos = i + 1;
    if (isWhiteSpace(c)) i++;
    else if (SYMBOLS.includes(c)) {
      out.push([pos, [c, c]]);
      i++;
    } else if (c === "'" || c === '"') {
      const quote = c;
      let text = '';
      i++;
      for (;;) {
        if (i >= n) throw new SyntaxError_(pos, `unterminated ${quote === "'" ? 'text' : 'field name'}`);
        const q = chars[i];
        if (q === quote) {
          if (chars[i + 1] === quote) {
            text += quote;
            i += 2;
          } else {
            i++;
            break;
          }
        } else {
          text += q;
          i++;
        }
      }
      if (quote === "'") out.push([pos, ['text', text]]);
      else if (text === '') throw new SyntaxError_(pos, 'empty field name');
      else out.push([pos, ['name', text]]);
    } else if (isDigit(c)) {
      const start = i;
      while (i < n && isDigit(chars[i])) i++;
      if (chars[i] === '.') {
        i++;
        const before = i;
        while (i < n && isDigit(chars[i])) i++;
        if (i === before) throw new SyntaxError_(i + 1, 'expected digits after the decimal point');
      }
      out.push([pos, ['num', chars.slice(start, i).join('')]]);
    } else if (isAlphabetic(c) || c === '_') {
      const start = i;
      while (i < n && (isAlphanumeric(chars[i]) || chars[i] === '_')) i++;
      out.push([pos, ['name', chars.slice(start, i).join('')]]);
    } else throw new SyntaxError_(pos, `unexpected character ${debugChar(c)}`);
  }
  return out;
}

class Parser {
  constructor(tokens, end) {
    this.tokens = tokens;
    this.at = 0;
    this.end = end;
    this.fields = [];
  }
  peek() {
    return this.at < this.tokens.length ? this.tokens[this.at][1] : null;
  }
  peekKind() {
    const t = this.peek();
    return t === null ? null : t[0];
  }
  position() {
    return this.at < this.tokens.length ? this.tokens[this.at][0] : this.end;
  }
  expr() {
    let left = this.term();
    while (this.peekKind() === '+' || this.peekKind() === '-') {
      const op = this.peekKind();
      this.at++;
      left = ['bin', op, left, this.term()];
    }
    return left;
  }
  term() {
    let left = this.unary();
    while (this.peekKind() === '*' || this.peekKind() === '/') {
      const op = this.peekKind();
      this.at++;
      left = ['bin', op, left, this.unary()];
    }
    return left;
  }
  unary() {
    if (this.peekKind() === '-') {
      this.at++;
      return ['neg', this.unary()];
    }
    return this.atom();
  }
  atom() {
    const pos = this.position();
    if (this.at >= this.tokens.length) throw new SyntaxError_(pos, 'expected a value, found the end');
    const [kind, text] = this.tokens[this.at][1];
    this.at++;
    if (kind === 'num') {
      if (text.includes('.')) return ['lit', Number(text)];
      const n = BigInt(text);
      if (n > I64_MAX) throw new SyntaxError_(pos, `number ${text} is too large`);
      return ['lit', n];
    }
    if (kind === 'text') return ['lit', text];
    if (kind === 'name') {
      if (!this.fields.includes(text)) this.fields.push(text);
      return ['field', this.fields.indexOf(text)];
    }
    if (kind === '(') {
      const inner = this.expr();
      const next = this.peek();
      if (next !== null && next[0] === ')') {
        this.at++;
        return inner;
      }
      if (next !== null) throw new SyntaxError_(this.position(), `expected ')', found ${tokenStr(next)}`);
      throw new SyntaxError_(this.position(), `expected ')' to close the '(' at position ${pos}`);
    }
    throw new SyntaxError_(pos, `expected a value, found ${tokenStr([kind, text])}`);
  }
}

/** A parsed expression; `fields` are the names it reads, in order of first use. */
export function parse(src) {
  const p = new Parser(tokenize(src), Array.from(src).length + 1);
  const tree = p.expr();
  const extra = p.peek();
  if (extra !== null) throw new SyntaxError_(p.position(), `unexpected ${tokenStr(extra)}`);
  return { fields: p.fields, eval: (values) => evaluate(tree, values) };
}

const VERBS = { '+': 'add', '-': 'subtract', '*': 'multiply', '/': 'divide' };

function evaluate(e, values) {
  switch (e[0]) {
    case 'lit':
      return e[1];
    case 'field':
      return values[e[1]];
    case 'neg': {
      const v = evaluate(e[1], values);
      if (v === null) return null;
      if (typeof v === 'bigint') {
        if (v === I64_MIN) throw new EvalError('the result is too large');
        return -v;
      }
      if (typeof v === 'number') return -v;
      throw new EvalError(`cannot negate ${describe(v)}`);
    }
    default:
      return binary(e[1], evaluate(e[2], values), evaluate(e[3], values));
  }
}

const asText = (v) => (typeof v === 'string' ? v : v instanceof Json ? v.text : display(v));

function binary(op, l, r) {
  if (l === null || r === null) return null;
  if (op === '+' && (typeof l === 'string' || typeof r === 'string')) return asText(l) + asText(r);
  const tl = typeof l;
  const tr = typeof r;
  if (tl === 'bigint' && tr === 'bigint') {
    if (op === '/') {
      if (r === 0n) throw new EvalError('division by zero');
      return Number(l) / Number(r);
    }
    const v = op === '+' ? l + r : op === '-' ? l - r : l * r;
    if (v < I64_MIN || v > I64_MAX) throw new EvalError('the result is too large');
    return v;
  }
  if ((tl === 'bigint' || tl === 'number') && (tr === 'bigint' || tr === 'number')) {
    const a = Number(l);
    const b = Number(r);
    if (op === '/' && b === 0) throw new EvalError('division by zero');
    const v = op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b;
    if (!Number.isFinite(v)) throw new EvalError('the result is too large');
    return v;
  }
  throw new EvalError(`cannot ${VERBS[op]} ${describe(l)} and ${describe(r)}`);
}
