//! Secrets in connection URLs: where a password hides in one, and the one
//! redaction every display of a URL goes through.
//!
//! A PostgreSQL URL can carry a password in two places: the userinfo
//! (`postgres://user:secret@host/db`) and the query string
//! (`postgres://user@host/db?password=secret`; libpq and tokio-postgres
//! percent-decode parameter names, so `pass%77ord` is the same parameter,
//! and `sslpassword` is the client key's passphrase). A manifest may hold
//! neither: [`password_in`] finds them for `ferry validate`, which refuses
//! them and points at `password_env`. Whatever still shows a URL (`ferry
//! audit`, error messages, `Debug` of a connection, the audit log's HTTP
//! targets) shows it through [`redact_url`], which replaces both kinds of
//! password by `***` and leaves the rest as written.

use std::borrow::Cow;

/// What replaces a password.
const MASK: &str = "***";

/// Whether a query parameter (or libpq keyword) `name`, as written, names a
/// secret: once percent-decoded and lowercased it contains `password`,
/// `passwd`, `pwd` or `secret` (`password`, `PassWord`, `pass%77ord`,
/// `sslpassword`, `oauth_client_secret`).
pub fn is_password_param(name: &str) -> bool {
    let decoded = percent_decode(name).to_ascii_lowercase();
    ["password", "passwd", "pwd", "secret"]
        .iter()
        .any(|word| decoded.contains(word))
}

/// Where a URL holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordIn {
    /// In the userinfo: `user:secret@`.
    Userinfo,
    /// In a query parameter, named as written.
    Query(String),
}

/// The first place `url` holds a password, if any.
pub fn password_in(url: &str) -> Option<PasswordIn> {
    let parts = Parts::of(url)?;
    if parts.userinfo.is_some_and(|u| u.contains(':')) {
        return Some(PasswordIn::Userinfo);
    }
    parts
        .query
        .and_then(|q| params(q).find(|(name, _)| is_password_param(name)))
        .map(|(name, _)| PasswordIn::Query(name.to_string()))
}

/// `url` with every password in it replaced by `***`: the one in the
/// userinfo (`user:***@`), the values of password-like query parameters
/// (`?password=***`), and in libpq's `key=value` form the values of
/// password-like keywords. Anything else is left as written.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    match Parts::of(url) {
        Some(parts) => parts.redacted(url),
        None => redact_keywords(url),
    }
}

/// `text` (a line of a manifest, say) with every URL in it redacted: each
/// run of characters between quotes or spaces that holds `://` goes through
/// [`redact_url`].
pub(crate) fn redact_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        out.push_str(&redact_url(token));
        token.clear();
    };
    for c in text.chars() {
        if c == '"' || c == '\'' || c.is_whitespace() {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    Cow::Owned(out)
}

/// The pieces of a `scheme://[userinfo@]host[/path][?query][#fragment]` URL,
/// as byte ranges of it. The userinfo ends at the last `@` before the first
/// `/` (as libpq reads it: a `?` in a password does not end it); the query
/// starts at the first `?` after the userinfo.
struct Parts<'a> {
    /// Where the userinfo starts.
    userinfo_at: usize,
    userinfo: Option<&'a str>,
    /// Where the query starts (after `?`).
    query_at: usize,
    query: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Option<Parts<'a>> {
        let userinfo_at = url.find("://")? + 3;
        let rest = &url[userinfo_at..];
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        let userinfo = authority.rfind('@').map(|at| &authority[..at]);
        let after_userinfo = userinfo_at + userinfo.map_or(0, |u| u.len() + 1);
        let query = url[after_userinfo..].find('?').map(|q| {
            let start = after_userinfo + q + 1;
            let end = url[start..].find('#').map_or(url.len(), |f| start + f);
            (start, &url[start..end])
        });
        Some(Parts {
            userinfo_at,
            userinfo,
            query_at: query.map_or(url.len(), |(start, _)| start),
            query: query.map(|(_, q)| q),
        })
    }

    fn redacted(&self, url: &'a str) -> Cow<'a, str> {
        let mut out = String::new();
        let mut copied = 0;
        if let Some(userinfo) = self.userinfo
            && let Some(colon) = userinfo.find(':')
        {
            out.push_str(&url[..self.userinfo_at + colon + 1]);
            out.push_str(MASK);
            copied = self.userinfo_at + userinfo.len();
        }
        if let Some(query) = self.query {
            let mut at = self.query_at;
            for piece in query.split(['&', ';']) {
                if let Some((name, value)) = piece.split_once('=')
                    && !value.is_empty()
                    && is_password_param(name)
                {
                    let start = at + name.len() + 1;
                    out.push_str(&url[copied..start]);
                    out.push_str(MASK);
                    copied = start + value.len();
                }
                at += piece.len() + 1;
            }
        }
        if copied == 0 {
            return Cow::Borrowed(url);
        }
        out.push_str(&url[copied..]);
        Cow::Owned(out)
    }
}

/// The `name[=value]` pairs of a query string, split on `&` and `;`.
fn params(query: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    query
        .split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (p, None),
        })
}

/// `%XX` sequences decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `key=value` form (`host=db user=ferry password='a b'`) with the
/// values of password-like keywords masked.
fn redact_keywords(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // A keyword: up to `=`, spaces allowed around it.
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &text[key_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value_start = i;
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        if is_password_param(key) && i > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(MASK);
            copied = i;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_in_the_userinfo_and_the_query() {
        for (url, found) in [
            (
                "postgres://ferry:hunter2@db:5432/ops",
                Some(PasswordIn::Userinfo),
            ),
            ("postgres://ferry@db:5432/ops", None),
            ("postgres://db/ops?sslmode=require", None),
            (
                "postgres://ferry@db/ops?password=hunter2",
                Some(PasswordIn::Query("password".into())),
            ),
            (
                "postgres://ferry@db/ops?sslmode=disable&PassWord=x",
                Some(PasswordIn::Query("PassWord".into())),
            ),
            (
                "postgres://ferry@db/ops?pass%77ord=x",
                Some(PasswordIn::Query("pass%77ord".into())),
            ),
            (
                "postgres://ferry@db/ops?sslpassword=x",
                Some(PasswordIn::Query("sslpassword".into())),
            ),
            (
                "postgresql://db?password",
                Some(PasswordIn::Query("password".into())),
            ),
            ("postgres://a@b/c?x=1#password=no", None),
            ("sqlite:warehouse.db", None),
        ] {
            assert_eq!(password_in(url), found, "{url}");
        }
    }

    #[test]
    fn redaction_masks_every_password_and_keeps_the_rest() {
        for (url, shown) in [
            (
                "postgres://ferry:hunter2@db:5432/ops",
                "postgres://ferry:***@db:5432/ops",
            ),
            (
                "postgres://ferry:pa?ss@word@db/ops",
                "postgres://ferry:***@db/ops",
            ),
            (
                "postgres://ferry@db/ops?sslmode=require&password=hunter2&application_name=x",
                "postgres://ferry@db/ops?sslmode=require&password=***&application_name=x",
            ),
            (
                "postgres://u:p@db/ops?PASSWORD=a;pass%77ord=b#frag",
                "postgres://u:***@db/ops?PASSWORD=***;pass%77ord=***#frag",
            ),
            (
                "postgres://ferry@db:5432/ops",
                "postgres://ferry@db:5432/ops",
            ),
            (
                "http://x:y@example.com/?token=1",
                "http://x:***@example.com/?token=1",
            ),
            (
                "host=db user=ferry password='a b\\' c' dbname=ops",
                "host=db user=ferry password=*** dbname=ops",
            ),
            ("host=db password = s3cret", "host=db password = ***"),
            ("sqlite:/data/wh.db", "sqlite:/data/wh.db"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert!(matches!(
            redact_url("postgres://ferry@db/ops"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn urls_inside_a_line_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_urls_in(r#"ops = { url = "postgres://u:p@db/x?password=s", pool = 0 }"#),
            r#"ops = { url = "postgres://u:***@db/x?password=***", pool = 0 }"#
        );
        assert_eq!(
            redact_urls_in(r#"password_env = "OPS_PASSWORD""#),
            r#"password_env = "OPS_PASSWORD""#
        );
    }

    #[test]
    fn password_like_names_are_matched_decoded_and_in_any_case() {
        for yes in [
            "password",
            "Password",
            "pass%77ord",
            "sslpassword",
            "PWD",
            "oauth_client_secret",
            "passwd",
        ] {
            assert!(is_password_param(yes), "{yes}");
        }
        for no in ["passfile", "user", "sslmode", "host", "pass"] {
            assert!(!is_password_param(no), "{no}");
        }
    }
}
