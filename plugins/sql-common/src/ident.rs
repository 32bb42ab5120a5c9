//! Identifiers: the table and column names that end up in SQL text.
//!
//! Values are always bound as parameters, but names cannot be: they are
//! spliced into the statement. So every name is checked ([`check`]) and
//! always written quoted ([`quote`]): `"name"`, with a `"` inside doubled.
//! Quoting also means names are case-sensitive, as the catalog stores them
//! (PostgreSQL stores unquoted names in lower case).
//!
//! Column names are also checked against the table's real columns (see
//! [`crate::schema`]) before any statement is built, so a name from the
//! configuration that is not a column never reaches SQL text.

use std::fmt;

/// The longest identifier accepted, in bytes: PostgreSQL cuts longer names
/// to 63 bytes (`NAMEDATALEN - 1`), which would silently name another
/// object.
pub const MAX_LEN: usize = 63;

/// Checks a name from the configuration or the catalog: 1 to 63 bytes, no
/// NUL and no control characters. `what` names the setting for the message.
pub fn check(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what}: an empty name"));
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "{what}: {name:?} is {} bytes long; names are at most {MAX_LEN} bytes",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what}: {name:?} holds the control character {:?}",
            c
        ));
    }
    Ok(())
}

/// Writes `name` as a quoted identifier: `"name"`, inner `"` doubled.
/// The same form works in PostgreSQL and SQLite.
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_quoted(&mut out, name);
    out
}

/// Appends `name` as a quoted identifier to `out`.
pub fn push_quoted(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// A table name, possibly qualified by a schema: `orders`, `sales.orders`,
/// or with quotes for names holding a dot or a quote: `"odd.name"`,
/// `sales."Order ""Lines"""`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    /// The schema (PostgreSQL) or attached database (SQLite), if given.
    pub schema: Option<String>,
    /// The table's own name.
    pub name: String,
}

impl TableName {
    /// Parses the `table` setting.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts = split_parts(text)?;
        let (schema, name) = match parts.as_slice() {
            [name] => (None, name.clone()),
            [schema, name] => (Some(schema.clone()), name.clone()),
            _ => {
                return Err(format!(
                    "table: {text:?} has {} dotted parts; give `table` or `schema.table` (quote a name holding a dot: \"\\\"a.b\\\"\")",
                    parts.len()
                ));
            }
        };
        if let Some(s) = &schema {
            check(s, "table (schema part)")?;
        }
        check(&name, "table")?;
        Ok(TableName { schema, name })
    }

    /// The quoted, qualified name for SQL text: `"sales"."orders"`.
    pub fn quoted(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.schema {
            push_quoted(&mut out, s);
            out.push('.');
        }
        push_quoted(&mut out, &self.name);
        out
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Splits `a.b` / `"a.b"."c"` into its parts, unquoting quoted ones.
fn split_parts(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("table: {text:?} has an unclosed quote")),
                }
            }
            match chars.peek() {
                None | Some('.') => {}
                Some(c) => {
                    return Err(format!(
                        "table: {text:?}: {c:?} after a closing quote; expected a dot or the end"
                    ));
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!("table: {text:?}: a quote inside an unquoted name"));
                }
                part.push(c);
                chars.next();
            }
        }
        parts.push(part);
        // Both loops above stop only at a dot or at the end.
        if chars.next().is_none() {
            break;
        }
    }
    Ok(parts)
}

/// A list of quoted column names joined with `, `.
pub fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, n) in names.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_quoted(&mut out, n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_doubles_inner_quotes() {
        assert_eq!(quote("id"), "\"id\"");
        assert_eq!(quote("Order \"Lines\""), "\"Order \"\"Lines\"\"\"");
        assert_eq!(quote("a;DROP TABLE x"), "\"a;DROP TABLE x\"");
        assert_eq!(quoted_list(["a", "b\""]), "\"a\", \"b\"\"\"");
    }

    #[test]
    fn checks_names() {
        assert!(check("id", "key").is_ok());
        assert!(check("Straße nr", "key").is_ok());
        assert_eq!(check("", "key").unwrap_err(), "key: an empty name");
        assert!(
            check(&"x".repeat(64), "key")
                .unwrap_err()
                .contains("at most 63")
        );
        assert!(
            check("a\nb", "key")
                .unwrap_err()
                .contains("control character")
        );
        assert!(check("a\0b", "key").is_err());
    }

    #[test]
    fn parses_table_names() {
        let t = TableName::parse("orders").unwrap();
        assert_eq!((t.schema.as_deref(), t.name.as_str()), (None, "orders"));
        assert_eq!(t.quoted(), "\"orders\"");
        let t = TableName::parse("sales.orders").unwrap();
        assert_eq!(t.quoted(), "\"sales\".\"orders\"");
        let t = TableName::parse("\"odd.name\"").unwrap();
        assert_eq!((t.schema, t.name.as_str()), (None, "odd.name"));
        let t = TableName::parse("s.\"Order \"\"L\"\"\"").unwrap();
        assert_eq!(t.name, "Order \"L\"");
        assert_eq!(t.quoted(), "\"s\".\"Order \"\"L\"\"\"");
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("\"open").is_err());
        assert!(TableName::parse("a\"b").is_err());
        assert!(TableName::parse("\"a\"b").is_err());
        assert!(TableName::parse("").is_err());
        assert!(TableName::parse("a.").is_err());
    }
}
