//! Unit tests of `resolve`.

use super::*;

#[test]
fn names_follow_the_pattern() {
    assert!(is_valid_name("crm", false));
    assert!(is_valid_name("to_warehouse-2", false));
    assert!(!is_valid_name("2crm", false));
    assert!(is_valid_name("2024-sync", true));
    assert!(!is_valid_name("", true));
    assert!(!is_valid_name("Crm", false));
    assert_eq!(fixed_name("My CRM", false).as_deref(), Some("my-crm"));
    assert_eq!(fixed_name("_x", false).as_deref(), Some("x"));
    assert_eq!(fixed_name("!!!", false), None);
}
