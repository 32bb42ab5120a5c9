"""The expression language of `computed` fields (the Rust field-mapper's):

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := '-' unary | atom
    atom    := number | string | field | '(' expr ')'

`+` joins text when either side is text and adds numbers otherwise; `/`
always gives a float; a null operand gives null. Evaluation errors (text in
arithmetic, division by zero, overflow) reject the record.
"""

from ferry_plugin.unicode import is_alphabetic, is_alphanumeric
from ferry_plugin.values import I64_MAX, I64_MIN, Json, WHITE_SPACE, debug_char, describe, display


class SyntaxError_(Exception):
    def __init__(self, position, message):
        super().__init__(f"{message} at position {position}")
        self.position = position
        self.message = message


class EvalError(Exception):
    pass


# Tokens: (kind, text). Kinds: num, text, name, and the symbols themselves.
_SYMBOLS = "+-*/()"


def _token_str(tok):
    kind, text = tok
    if kind == "num":
        return f"number {text}"
    if kind == "text":
        return f"text '{text}'"
    if kind == "name":
        return f"field {text}"
    return f"'{kind}'"


def _tokenize(src):
    chars = list(src)
    out = []
    i = 0
    n = len(chars)
    while i < n:
        c = chars[i]
        pos = i + 1
        if c in WHITE_SPACE:
            i += 1
        elif c in _SYMBOLS:
            out.append((pos, (c, c)))
            i += 1
        elif c in "'\"":
            quote = c
            text = []
            i += 1
            while True:
                if i >= n:
                    what = "text" if quote == "'" else "field name"
                    raise SyntaxError_(pos, f"unterminated {what}")
                q = chars[i]
                if q == quote:
                    if i + 1 < n and chars[i + 1] == quote:
                        text.append(quote)
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    text.append(q)
                    i += 1
            text = "".join(text)
            if quote == "'":
                out.append((pos, ("text", text)))
            elif not text:
                raise SyntaxError_(pos, "empty field name")
            else:
                out.append((pos, ("name", text)))
        elif "0" <= c <= "9":
            start = i
            while i < n and "0" <= chars[i] <= "9":
                i += 1
            if i < n and chars[i] == ".":
                i += 1
                before = i
                while i < n and "0" <= chars[i] <= "9":
                    i += 1
                if i == before:
                    raise SyntaxError_(i + 1, "expected digits after the decimal point")
            out.append((pos, ("num", "".join(chars[start:i]))))
        elif is_alphabetic(c) or c == "_":
            start = i
            while i < n and (is_alphanumeric(chars[i]) or chars[i] == "_"):
                i += 1
            out.append((pos, ("name", "".join(chars[start:i]))))
        else:
            raise SyntaxError_(pos, f"unexpected character {debug_char(c)}")
    return out


class _Parser:
    def __init__(self, tokens, end):
        self.tokens = tokens
        self.at = 0
        self.end = end
        self.fields = []

    def peek(self):
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def peek_kind(self):
        t = self.peek()
        return None if t is None else t[0]

    def position(self):
        return self.tokens[self.at][0] if self.at < len(self.tokens) else self.end

    def expr(self):
        left = self.term()
        while self.peek_kind() in ("+", "-"):
            op = self.peek_kind()
            self.at += 1
            left = ("bin", op, left, self.term())
        return left

    def term(self):
        left = self.unary()
        while self.peek_kind() in ("*", "/"):
            op = self.peek_kind()
            self.at += 1
            left = ("bin", op, left, self.unary())
        return left

    def unary(self):
        if self.peek_kind() == "-":
            self.at += 1
            return ("neg", self.unary())
        return self.atom()

    def atom(self):
        pos = self.position()
        if self.at >= len(self.tokens):
            raise SyntaxError_(pos, "expected a value, found the end")
        kind, text = self.tokens[self.at][1]
        self.at += 1
        if kind == "num":
            if "." in text:
                return ("lit", float(text))
            n = int(text)
            if n > I64_MAX:
                raise SyntaxError_(pos, f"number {text} is too large")
            return ("lit", n)
        if kind == "text":
            return ("lit", text)
        if kind == "name":
            if text not in self.fields:
                self.fields.append(text)
            return ("field", self.fields.index(text))
        if kind == "(":
            inner = self.expr()
            nxt = self.peek()
            if nxt is not None and nxt[0] == ")":
                self.at += 1
                return inner
            if nxt is not None:
                raise SyntaxError_(self.position(), f"expected ')', found {_token_str(nxt)}")
            raise SyntaxError_(self.position(), f"expected ')' to close the '(' at position {pos}")
        raise SyntaxError_(pos, f"expected a value, found {_token_str((kind, text))}")


class Compiled:
    """A parsed expression and the fields it reads (in order of first use)."""

    def __init__(self, tree, fields):
        self.tree = tree
        self.fields = fields

    def eval(self, values):
        """Evaluates with `values[i]` the value of `fields[i]`; raises
        `EvalError` with the reason."""
        return _eval(self.tree, values)


def parse(src):
    tokens = _tokenize(src)
    p = _Parser(tokens, len(src) + 1)
    tree = p.expr()
    extra = p.peek()
    if extra is not None:
        raise SyntaxError_(p.position(), f"unexpected {_token_str(extra)}")
    return Compiled(tree, p.fields)


_VERBS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}


def _eval(e, values):
    tag = e[0]
    if tag == "lit":
        return e[1]
    if tag == "field":
        return values[e[1]]
    if tag == "neg":
        v = _eval(e[1], values)
        t = type(v)
        if v is None:
            return None
        if t is int:
            if v == I64_MIN:
                raise EvalError("the result is too large")
            return -v
        if t is float:
            return -v
        raise EvalError(f"cannot negate {describe(v)}")
    _, op, l, r = e
    return _binary(op, _eval(l, values), _eval(r, values))


def _as_text(v):
    if type(v) is str:
        return v
    if type(v) is Json:
        return v.text
    return display(v)


def _binary(op, l, r):
    if l is None or r is None:
        return None
    tl, tr = type(l), type(r)
    if op == "+" and (tl is str or tr is str):
        return _as_text(l) + _as_text(r)
    if tl is int and tr is int:
        if op == "/":
            if r == 0:
                raise EvalError("division by zero")
            return float(l) / float(r)
        v = l + r if op == "+" else l - r if op == "-" else l * r
        if not I64_MIN <= v <= I64_MAX:
            raise EvalError("the result is too large")
        return v
    if tl in (int, float) and tr in (int, float):
        a, b = float(l), float(r)
        if op == "/" and b == 0.0:
            raise EvalError("division by zero")
        try:
            v = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b
        except OverflowError:
            raise EvalError("the result is too large") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise EvalError("the result is too large")
        return v
    raise EvalError(f"cannot {_VERBS[op]} {describe(l)} and {describe(r)}")
