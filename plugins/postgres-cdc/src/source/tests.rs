//! Unit tests of `source`.

use super::*;

#[test]
fn slot_names_and_quoting() {
    assert!(check_slot_name("ferry_orders_1").is_ok());
    for bad in ["", "Orders", "a-b", "a b", &"x".repeat(64)] {
        assert!(check_slot_name(bad).is_err(), "{bad}");
    }
    assert_eq!(quote_ident("orders"), "\"orders\"");
    assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
}

#[test]
fn config_reference() {
    let c: CdcConfig = ferry_plugin::config::parse(
        r#"{"connection": "ops", "mode": "cdc", "slot": "s", "publication": "p",
            "tables": ["public.orders"]}"#,
    )
    .unwrap();
    assert!(c.create && !c.snapshot && c.table_field.is_none());
    assert_eq!(c.mode, Some(CdcMode::Cdc));
    let e = ferry_plugin::config::parse::<CdcConfig>(
        r#"{"connection": "ops", "slot": "s", "publication": "p", "tables": [], "snapshots": true}"#,
    )
    .unwrap_err();
    assert!(
        e.message().contains("unknown field \"snapshots\""),
        "{}",
        e.message()
    );
    let e = ferry_plugin::config::parse::<CdcConfig>(
        r#"{"connection": "ops", "mode": "delta", "slot": "s", "publication": "p", "tables": []}"#,
    )
    .unwrap_err();
    assert!(e.message().contains("config.mode"), "{}", e.message());
}
