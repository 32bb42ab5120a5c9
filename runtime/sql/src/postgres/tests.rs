//! Unit tests of `postgres`.

use super::error::classify_sqlstate;
use super::*;
use crate::{ConnectionSpec, SqlErrorKind, Tls};

#[test]
fn sqlstates_map_to_kinds() {
    for code in [
        "08006", "40001", "40P01", "55P03", "57014", "57P01", "53300",
    ] {
        assert_eq!(classify_sqlstate(code), SqlErrorKind::Retryable, "{code}");
    }
    for code in ["23505", "23503", "23502", "23514"] {
        assert_eq!(classify_sqlstate(code), SqlErrorKind::Constraint, "{code}");
    }
    for code in ["42P01", "42601", "22P02", "28P01", "3D000"] {
        assert_eq!(classify_sqlstate(code), SqlErrorKind::Failed, "{code}");
    }
}

#[test]
fn bad_urls_fail_without_starting_anything() {
    let hub = PgHub::default();
    let spec = ConnectionSpec {
        name: "ops".into(),
        dialect: super::super::Dialect::Postgres,
        url: "postgres://u@h:notaport/db".into(),
        password: Some("secret".into()),
        tls: Tls::Disable,
        ca_file: None,
        pool_size: 2,
        transaction_timeout: super::super::DEFAULT_TRANSACTION_TIMEOUT,
    };
    let err = hub
        .query(
            &spec,
            "SELECT 1",
            vec![],
            Duration::from_secs(1),
            SqlLimits::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Failed);
    assert!(
        err.message
            .starts_with("connection `ops`: invalid PostgreSQL URL"),
        "{err}"
    );
    assert!(!err.message.contains("secret"));
    assert!(lock(&hub.runtime.rt).is_none(), "no runtime for a bad URL");
}
