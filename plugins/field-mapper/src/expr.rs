//! The expression language of `computed` fields.
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := '-' unary | atom
//! atom    := number | string | field | '(' expr ')'
//! number  := digits ['.' digits]            12, 0.5
//! string  := "'" chars "'"                  'a b', 'it''s' (doubled quote)
//! field   := name | '"' chars '"'           first_name, "first name"
//! ```
//!
//! `+` concatenates when either side is text (numbers are written as
//! digits), and adds numbers otherwise; `-`, `*` and `/` take numbers
//! (`int` with `int` stays `int`, except `/`, which always gives a `float`).
//! A null operand makes the result null. Errors while evaluating (text in
//! arithmetic, division by zero, overflow) reject the record.

use std::borrow::Cow;
use std::fmt;

use super::cell::Cell;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    fn verb(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "subtract",
            BinOp::Mul => "multiply",
            BinOp::Div => "divide",
        }
    }
}

/// A parsed expression; field references are indexes into
/// [`Compiled::fields`].
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Field(usize),
    Text(String),
    Int(i64),
    Float(f64),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

/// A compiled expression and the fields it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    expr: Expr,
    fields: Vec<String>,
}

/// A syntax error, with its 1-based character position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where, counting characters from 1.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(String),
    Text(String),
    Name(String),
    Plus,
    Minus,
    Star,
    Slash,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(n) => write!(f, "number {n}"),
            Token::Text(t) => write!(f, "text '{t}'"),
            Token::Name(n) => write!(f, "field {n}"),
            Token::Plus => f.write_str("'+'"),
            Token::Minus => f.write_str("'-'"),
            Token::Star => f.write_str("'*'"),
            Token::Slash => f.write_str("'/'"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
        }
    }
}

fn err(position: usize, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        position,
        message: message.into(),
    }
}

/// Splits source text into tokens with their 1-based positions.
fn tokenize(src: &str) -> Result<Vec<(usize, Token)>, SyntaxError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let pos = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '+' | '-' | '*' | '/' | '(' | ')' => {
                out.push((
                    pos,
                    match c {
                        '+' => Token::Plus,
                        '-' => Token::Minus,
                        '*' => Token::Star,
                        '/' => Token::Slash,
                        '(' => Token::Open,
                        _ => Token::Close,
                    },
                ));
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            let what = if quote == '\'' { "text" } else { "field name" };
                            return Err(err(pos, format!("unterminated {what}")));
                        }
                        Some(&q) if q == quote => {
                            if chars.get(i + 1) == Some(&quote) {
                                text.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                if quote == '\'' {
                    out.push((pos, Token::Text(text)));
                } else if text.is_empty() {
                    return Err(err(pos, "empty field name"));
                } else {
                    out.push((pos, Token::Name(text)));
                }
            }
            c if c.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(&d) = chars.get(i).filter(|d| d.is_ascii_digit()) {
                    n.push(d);
                    i += 1;
                }
                if chars.get(i) == Some(&'.') {
                    n.push('.');
                    i += 1;
                    let before = n.len();
                    while let Some(&d) = chars.get(i).filter(|d| d.is_ascii_digit()) {
                        n.push(d);
                        i += 1;
                    }
                    if n.len() == before {
                        return Err(err(i + 1, "expected digits after the decimal point"));
                    }
                }
                out.push((pos, Token::Number(n)));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(&d) = chars.get(i).filter(|d| d.is_alphanumeric() || **d == '_') {
                    name.push(d);
                    i += 1;
                }
                out.push((pos, Token::Name(name)));
            }
            other => return Err(err(pos, format!("unexpected character {other:?}"))),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    fields: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.term()?;
        loop {
            let op = match self.peek() {
                Some(Token::Plus) => BinOp::Add,
                Some(Token::Minus) => BinOp::Sub,
                _ => return Ok(left),
            };
            self.at += 1;
            let right = self.term()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn term(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Star) => BinOp::Mul,
                Some(Token::Slash) => BinOp::Div,
                _ => return Ok(left),
            };
            self.at += 1;
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        if self.peek() == Some(&Token::Minus) {
            self.at += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, SyntaxError> {
        let pos = self.position();
        let Some((_, token)) = self.tokens.get(self.at).cloned() else {
            return Err(err(pos, "expected a value, found the end"));
        };
        self.at += 1;
        match token {
            Token::Number(n) => {
                if n.contains('.') {
                    n.parse()
                        .map(Expr::Float)
                        .map_err(|_| err(pos, format!("bad number {n}")))
                } else {
                    n.parse()
                        .map(Expr::Int)
                        .map_err(|_| err(pos, format!("number {n} is too large")))
                }
            }
            Token::Text(t) => Ok(Expr::Text(t)),
            Token::Name(name) => {
                let index = match self.fields.iter().position(|f| *f == name) {
                    Some(i) => i,
                    None => {
                        self.fields.push(name);
                        self.fields.len() - 1
                    }
                };
                Ok(Expr::Field(index))
            }
            Token::Open => {
                let inner = self.expr()?;
                match self.peek() {
                    Some(Token::Close) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    Some(other) => {
                        Err(err(self.position(), format!("expected ')', found {other}")))
                    }
                    None => Err(err(
                        self.position(),
                        format!("expected ')' to close the '(' at position {pos}"),
                    )),
                }
            }
            other => Err(err(pos, format!("expected a value, found {other}"))),
        }
    }
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Compiled, SyntaxError> {
    let tokens = tokenize(src)?;
    let end = src.chars().count() + 1;
    let mut p = Parser {
        tokens,
        at: 0,
        end,
        fields: Vec::new(),
    };
    let expr = p.expr()?;
    if let Some(extra) = p.peek() {
        return Err(err(p.position(), format!("unexpected {extra}")));
    }
    Ok(Compiled {
        expr,
        fields: p.fields,
    })
}

impl Compiled {
    /// The names of the fields the expression reads, in order of first use.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Evaluates the expression. `field(i)` gives the value of
    /// `fields()[i]` for the record at hand.
    pub fn eval<'a>(&'a self, field: &dyn Fn(usize) -> Cell<'a>) -> Result<Cell<'a>, String> {
        eval(&self.expr, field)
    }
}

fn eval<'a>(e: &'a Expr, field: &dyn Fn(usize) -> Cell<'a>) -> Result<Cell<'a>, String> {
    Ok(match e {
        Expr::Field(i) => field(*i),
        Expr::Text(t) => Cell::Text(Cow::Borrowed(t)),
        Expr::Int(n) => Cell::Int(*n),
        Expr::Float(x) => Cell::Float(*x),
        Expr::Neg(inner) => match eval(inner, field)? {
            Cell::Null => Cell::Null,
            Cell::Int(n) => Cell::Int(n.checked_neg().ok_or("the result is too large")?),
            Cell::Float(x) => Cell::Float(-x),
            other => return Err(format!("cannot negate {}", other.describe())),
        },
        Expr::Bin(op, l, r) => {
            let l = eval(l, field)?;
            let r = eval(r, field)?;
            binary(*op, l, r)?
        }
    })
}

fn binary<'a>(op: BinOp, l: Cell<'a>, r: Cell<'a>) -> Result<Cell<'a>, String> {
    if l.is_null() || r.is_null() {
        return Ok(Cell::Null);
    }
    if op == BinOp::Add && (matches!(l, Cell::Text(_)) || matches!(r, Cell::Text(_))) {
        // `a + ' ' + b` parses as `(a + ' ') + b`: grow the left result in
        // place, so a chain allocates once.
        let mut s = match l {
            Cell::Text(Cow::Owned(s)) => s,
            other => {
                let mut s = String::with_capacity(32);
                other.append_text(&mut s);
                s
            }
        };
        r.append_text(&mut s);
        return Ok(Cell::Text(Cow::Owned(s)));
    }
    let bad = || format!("cannot {} {} and {}", op.verb(), l.describe(), r.describe());
    match (&l, &r) {
        (Cell::Int(a), Cell::Int(b)) => {
            let (a, b) = (*a, *b);
            let v = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div => {
                    if b == 0 {
                        return Err("division by zero".to_owned());
                    }
                    return Ok(Cell::Float(a as f64 / b as f64));
                }
            };
            v.map(Cell::Int)
                .ok_or_else(|| "the result is too large".to_owned())
        }
        (Cell::Int(_) | Cell::Float(_), Cell::Int(_) | Cell::Float(_)) => {
            let a = l.as_f64().ok_or_else(bad)?;
            let b = r.as_f64().ok_or_else(bad)?;
            if op == BinOp::Div && b == 0.0 {
                return Err("division by zero".to_owned());
            }
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
            };
            if v.is_finite() {
                Ok(Cell::Float(v))
            } else {
                Err("the result is too large".to_owned())
            }
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, values: &[Cell<'static>]) -> Result<Cell<'static>, String> {
        let c = parse(src).unwrap();
        let lookup = |i: usize| values.get(i).cloned().unwrap_or(Cell::Null);
        c.eval(&lookup).map(|v| match v {
            Cell::Null => Cell::Null,
            Cell::Int(n) => Cell::Int(n),
            Cell::Float(x) => Cell::Float(x),
            Cell::Bool(b) => Cell::Bool(b),
            Cell::Timestamp(t) => Cell::Timestamp(t),
            Cell::Text(t) => Cell::Text(Cow::Owned(t.into_owned())),
            Cell::Json(t) => Cell::Json(Cow::Owned(t.into_owned())),
            Cell::Bytes(_) => unreachable!("no bytes in these tests"),
        })
    }

    fn text(s: &str) -> Cell<'static> {
        Cell::Text(Cow::Owned(s.to_owned()))
    }

    #[test]
    fn concatenation_and_arithmetic() {
        assert_eq!(
            run("a + ' ' + b", &[text("Ada"), text("Lovelace")]),
            Ok(text("Ada Lovelace"))
        );
        assert_eq!(run("a + 1", &[text("v")]), Ok(text("v1")));
        assert_eq!(run("1 + 2 * 3", &[]), Ok(Cell::Int(7)));
        assert_eq!(run("(1 + 2) * 3", &[]), Ok(Cell::Int(9)));
        assert_eq!(run("-a - 1", &[Cell::Int(4)]), Ok(Cell::Int(-5)));
        assert_eq!(run("a / 2", &[Cell::Int(3)]), Ok(Cell::Float(1.5)));
        assert_eq!(run("a * 1.5", &[Cell::Int(2)]), Ok(Cell::Float(3.0)));
        assert_eq!(run("'it''s'", &[]), Ok(text("it's")));
        assert_eq!(
            run("\"first name\" + '!'", &[text("Ada")]),
            Ok(text("Ada!"))
        );
    }

    #[test]
    fn null_in_null_out() {
        assert_eq!(
            run("a + ' ' + b", &[text("Ada"), Cell::Null]),
            Ok(Cell::Null)
        );
        assert_eq!(run("a * 2", &[Cell::Null]), Ok(Cell::Null));
        assert_eq!(run("-a", &[Cell::Null]), Ok(Cell::Null));
    }

    #[test]
    fn evaluation_errors() {
        assert_eq!(
            run("a / 0", &[Cell::Int(1)]),
            Err("division by zero".into())
        );
        assert_eq!(
            run("a - 1", &[text("x")]),
            Err("cannot subtract text \"x\" and int 1".into())
        );
        assert_eq!(
            run("a * 2", &[Cell::Int(i64::MAX)]),
            Err("the result is too large".into())
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(e("a + "), "expected a value, found the end at position 5");
        assert_eq!(
            e("(a + b"),
            "expected ')' to close the '(' at position 1 at position 7"
        );
        assert_eq!(e("a + )"), "expected a value, found ')' at position 5");
        assert_eq!(e("a b"), "unexpected field b at position 3");
        assert_eq!(e("'open"), "unterminated text at position 1");
        assert_eq!(e("a % 2"), "unexpected character '%' at position 3");
        assert_eq!(
            e("1."),
            "expected digits after the decimal point at position 3"
        );
    }

    #[test]
    fn fields_are_listed_once() {
        let c = parse("a + b + a").unwrap();
        assert_eq!(c.fields(), ["a", "b"]);
    }
}
