//! Unit tests of the schema and of each rule, through [`crate::parse`].
//!
//! Each test builds a small manifest from a valid base and checks which errors
//! come back (message, line, column, hint). The full rendered text is covered
//! by the snapshot tests in `tests/ui.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{
    Access, Diagnostic, Manifest, ManifestError, Mode, OnInvalid, PluginKind, Scalar, Span, Test,
    parse,
};

const PIPELINE: &str = "[pipeline]\nname = \"contacts\"\n";

const CRM: &str = "[plugins.crm]\nkind = \"source\"\nwasm = \"plugins/file.wasm\"\n";

const WAREHOUSE: &str = "[plugins.warehouse]\nkind = \"sink\"\nwasm = \"plugins/file.wasm\"\n";

const ROUTE: &str = "[[routes]]\nfrom = \"crm\"\nto = [\"warehouse\"]\n";

fn plugin(name: &str, kind: &str) -> String {
    format!("[plugins.{name}]\nkind = \"{kind}\"\nwasm = \"plugins/{name}.wasm\"\n")
}

fn ok(text: &str) -> Manifest {
    match parse(text, Path::new("m/pipeline.toml")) {
        Ok(manifest) => manifest,
        Err(error) => panic!("expected a valid manifest, got:\n{error}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(text, Path::new("m/pipeline.toml")) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(error) => error.diagnostics().to_vec(),
    }
}

fn messages(text: &str) -> Vec<String> {
    errors(text).into_iter().map(|d| d.message).collect()
}

/// The one error of a manifest; fails if there are more or none.
fn only_error(text: &str) -> Diagnostic {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.remove(0)
}

fn hint(diagnostic: &Diagnostic) -> &str {
    diagnostic.hint.as_deref().unwrap_or("")
}

// ---------------------------------------------------------------- resolving

#[test]
fn defaults_are_filled_in_and_paths_resolved_against_the_manifest_folder() {
    let manifest = ok(&format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}"));
    assert_eq!(manifest.path, Path::new("m/pipeline.toml"));
    assert_eq!(manifest.dir, Path::new("m"));
    let pipeline = &manifest.pipeline;
    assert_eq!(pipeline.name, "contacts");
    assert_eq!(pipeline.mode, Mode::Once);
    assert_eq!(pipeline.batch.max_records, 512);
    assert_eq!(pipeline.batch.max_wait, Duration::from_millis(200));
    assert_eq!(pipeline.poll_interval, Duration::from_millis(500));
    assert_eq!(pipeline.state, Path::new("m/.ferry/state.db"));
    let crm = &manifest.plugins["crm"];
    assert_eq!(crm.kind, PluginKind::Source);
    assert_eq!(crm.wasm, Path::new("m/plugins/file.wasm"));
    assert_eq!(crm.sha256, None);
    assert_eq!(crm.config, serde_json::json!({}));
    assert_eq!(crm.grants.files, vec![]);
    assert_eq!(crm.grants.memory_mb, 64);
    assert_eq!(crm.grants.timeout, Duration::from_millis(5000));
    let route = &manifest.routes[0];
    assert_eq!(route.from, "crm");
    assert!(route.through.is_empty());
    assert_eq!(route.to, ["warehouse"]);
    assert_eq!(route.when, None);
    assert_eq!(route.on_invalid, OnInvalid::DeadLetter);
    assert_eq!(
        manifest.source_plugin().map(|p| p.name.as_str()),
        Some("crm")
    );
}

#[test]
fn a_bare_file_name_resolves_against_the_current_folder() {
    let manifest = parse(
        &format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}"),
        Path::new("pipeline.toml"),
    )
    .unwrap();
    assert_eq!(manifest.dir, Path::new("."));
    assert_eq!(
        manifest.plugins["crm"].wasm,
        Path::new("./plugins/file.wasm")
    );
}

#[test]
fn plugins_keep_the_order_they_are_declared_in() {
    let text = format!(
        "{PIPELINE}{}{}{}{CRM}{}\
         [[routes]]\nfrom = \"crm\"\nthrough = [\"zeta\", \"alpha\"]\nto = [\"warehouse\", \"middle\"]\n",
        plugin("zeta", "mapper"),
        plugin("alpha", "validator"),
        WAREHOUSE,
        plugin("middle", "sink"),
    );
    let manifest = ok(&text);
    let names: Vec<&str> = manifest.plugins.keys().map(String::as_str).collect();
    assert_eq!(names, ["zeta", "alpha", "warehouse", "crm", "middle"]);
}

#[test]
fn every_setting_is_read() {
    let text = format!(
        "[pipeline]\nname = \"2024-sync\"\nmode = \"follow\"\n\
         batch = {{ max_records = 65536, max_wait_ms = 0 }}\npoll_interval_ms = 1\nstate = \"/var/lib/ferry.db\"\n\
         [plugins.crm]\nkind = \"source\"\nwasm = \"/opt/file.wasm\"\nsha256 = \"{}\"\n\
         grants = {{ files = [{{ host = \"data\", guest = \"/in\" }}, {{ host = \"/tmp/out\", guest = \"/out\", mode = \"rw\" }}], memory_mb = 4096, timeout_ms = 600000, fuel = 1000000, max_output_mb = 8 }}\n\
         {WAREHOUSE}{ROUTE}on_invalid = \"stop\"\n",
        "0".repeat(64)
    );
    let manifest = ok(&text);
    assert_eq!(manifest.pipeline.mode, Mode::Follow);
    assert_eq!(manifest.pipeline.batch.max_records, 65536);
    assert_eq!(manifest.pipeline.batch.max_wait, Duration::ZERO);
    assert_eq!(manifest.pipeline.state, Path::new("/var/lib/ferry.db"));
    let crm = &manifest.plugins["crm"];
    assert_eq!(crm.wasm, Path::new("/opt/file.wasm"));
    assert_eq!(crm.sha256.as_deref(), Some("0".repeat(64).as_str()));
    assert_eq!(crm.grants.memory_mb, 4096);
    assert_eq!(crm.grants.timeout, Duration::from_secs(600));
    assert_eq!(crm.grants.fuel, Some(1_000_000));
    assert_eq!(crm.grants.max_output_mb, 8);
    let files = &crm.grants.files;
    assert_eq!(files[0].host, Path::new("m/data"));
    assert_eq!(
        (files[0].guest.as_str(), files[0].mode),
        ("/in", Access::ReadOnly)
    );
    assert_eq!(files[1].host, PathBuf::from("/tmp/out"));
    assert_eq!(
        (files[1].guest.as_str(), files[1].mode),
        ("/out", Access::ReadWrite)
    );
    assert_eq!(manifest.routes[0].on_invalid, OnInvalid::Stop);
}

#[test]
fn config_becomes_json_with_datetimes_as_rfc3339_strings() {
    let text = format!(
        "{PIPELINE}{CRM}config = {{ path = \"/in\", n = 0x10, f = 1.5, b = false, \
         at = 1979-05-27T07:32:00-08:00, day = 1979-05-27, time = 07:32:00, \
         list = [1, \"two\"], nested = {{ deep = {{ x = 1 }} }} }}\n{WAREHOUSE}{ROUTE}"
    );
    let manifest = ok(&text);
    assert_eq!(
        manifest.plugins["crm"].config,
        serde_json::json!({
            "path": "/in", "n": 16, "f": 1.5, "b": false,
            "at": "1979-05-27T07:32:00-08:00", "day": "1979-05-27", "time": "07:32:00",
            "list": [1, "two"], "nested": { "deep": { "x": 1 } },
        })
    );
}

#[test]
fn config_may_be_a_table_of_its_own() {
    let text = format!("{PIPELINE}{CRM}[plugins.crm.config]\npath = \"/in\"\n{WAREHOUSE}{ROUTE}");
    assert_eq!(
        ok(&text).plugins["crm"].config,
        serde_json::json!({ "path": "/in" })
    );
}

#[test]
fn inline_tables_work_like_headers() {
    // Top-level keys go before the first header, or they would belong to it.
    let text = "pipeline = { name = \"x\" }\n\
                routes = [{ from = \"crm\", to = [\"out\"] }]\n\
                [plugins]\n\
                crm = { kind = \"source\", wasm = \"a.wasm\" }\n\
                out = { kind = \"sink\", wasm = \"b.wasm\" }\n";
    let manifest = ok(text);
    assert_eq!(manifest.routes.len(), 1);
    assert_eq!(manifest.plugins.len(), 2);
    let header = manifest.plugins["out"].spans.header;
    assert_eq!(
        &text[header.start..header.end],
        "{ kind = \"sink\", wasm = \"b.wasm\" }"
    );
}

#[test]
fn when_tests_are_read() {
    let route = |when: &str| {
        let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}when = {when}\n");
        ok(&text).routes[0].when.clone().unwrap()
    };
    let when = route("{ field = \"region\", equals = \"EU\" }");
    assert_eq!(when.field, "region");
    assert_eq!(when.test, Test::Equals(Scalar::Text("EU".into())));
    assert_eq!(
        route("{ field = \"n\", not_equals = 3 }").test,
        Test::NotEquals(Scalar::Int(3))
    );
    assert_eq!(
        route("{ field = \"n\", in = [1, 2.5, true, \"x\"] }").test,
        Test::In(vec![
            Scalar::Int(1),
            Scalar::Float(2.5),
            Scalar::Bool(true),
            Scalar::Text("x".into())
        ])
    );
    assert_eq!(
        route("{ field = \"n\", exists = false }").test,
        Test::Exists(false)
    );
}

#[test]
fn crlf_line_endings_are_fine() {
    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}").replace('\n', "\r\n");
    ok(&text);
    let bad = text.replace("name = \"contacts\"", "nmae = \"contacts\"");
    let all = errors(&bad);
    let d = all.iter().find(|d| d.message.contains("`nmae`")).unwrap();
    assert_eq!((d.line, d.column), (2, 1));
    assert!(
        d.snippet.contains("2 | nmae = \"contacts\"\n"),
        "{}",
        d.snippet
    );
}

#[test]
fn the_manifest_makes_diagnostics_for_later_stages() {
    let manifest = ok(&format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}"));
    let crm = &manifest.plugins["crm"];
    let d = manifest.diagnostic(crm.spans.wasm, "file not found", Some("build it".into()));
    assert_eq!((d.line, d.column), (5, 8));
    assert_eq!(d.file, Path::new("m/pipeline.toml"));
    assert_eq!(
        d.to_string(),
        "error: file not found\n --> m/pipeline.toml:5:8\n  |\n5 | wasm = \"plugins/file.wasm\"\n  \
         |        ^^^^^^^^^^^^^^^^^^^\n  = help: build it"
    );
    let header = manifest.diagnostic(crm.spans.header, "x", None);
    assert_eq!((header.line, header.column), (3, 1));
    let error = manifest.error(vec![d]);
    assert!(
        error
            .to_string()
            .ends_with("\n\n1 error in m/pipeline.toml")
    );
    assert_eq!(manifest.source_text().lines().next(), Some("[pipeline]"));
    let route = &manifest.routes[0];
    let from = manifest.diagnostic(route.spans.from, "x", None);
    assert_eq!((from.line, from.column), (10, 8));
    assert_eq!(manifest.diagnostic(route.span, "x", None).line, 9);
}

#[test]
fn the_error_counts_its_diagnostics() {
    let error = parse("[pipeline]\nnmae = 1\nmdoe = 2\n", Path::new("a/b.toml")).unwrap_err();
    let text = error.to_string();
    // Missing `name`, `nmae`, `mdoe`, no source, no routes.
    assert_eq!(error.diagnostics().len(), 5);
    assert!(text.ends_with("\n\n5 errors in a/b.toml"), "{text}");
    assert!(matches!(error, ManifestError::Invalid { .. }));
    assert_eq!(error.path(), Path::new("a/b.toml"));
}

// ---------------------------------------------------------------- every error at once

#[test]
fn an_empty_manifest_is_one_error() {
    for text in ["", "# nothing yet\n\n"] {
        let d = only_error(text);
        assert_eq!(d.message, "the manifest is empty");
        assert_eq!((d.line, d.column), (1, 1));
    }
}

#[test]
fn a_syntax_error_is_one_error() {
    let d = only_error("[pipeline]\nname = \"x\nmode = 1\n");
    assert!(d.message.starts_with("invalid TOML: "), "{}", d.message);
    assert_eq!(d.line, 2);
}

#[test]
fn a_duplicate_key_is_a_syntax_error() {
    let d = only_error("[pipeline]\nname = \"x\"\nname = \"y\"\n");
    assert!(d.message.starts_with("invalid TOML: "), "{}", d.message);
    assert_eq!(d.line, 3);
}

#[test]
fn several_mistakes_in_one_table_are_all_reported() {
    let text = format!(
        "[pipeline]\nname = 5\nmdoe = \"once\"\nbatch = {{ max_recrods = 1 }}\nstate = 1\n{CRM}{WAREHOUSE}{ROUTE}"
    );
    let all = errors(&text);
    let found: Vec<(usize, &str)> = all.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(
        found,
        [
            (
                2,
                "wrong type for `name` in [pipeline]: expected a string, found an integer"
            ),
            (3, "unknown field `mdoe` in [pipeline]"),
            (4, "unknown field `max_recrods` in [pipeline.batch]"),
            (
                5,
                "wrong type for `state` in [pipeline]: expected a string, found an integer"
            ),
        ]
    );
    // `name` was wrong, so it is not also reported missing.
    assert!(hint(&all[1]).ends_with("did you mean `mode`?"));
    assert!(hint(&all[2]).ends_with("did you mean `max_records`?"));
}

#[test]
fn mistakes_in_different_sections_are_all_reported() {
    let text = format!(
        "[pipeline]\nname = \"x\"\nmdoe = \"once\"\n\
         [plugins.crm]\nkind = \"source\"\nwasm = \"f.wasm\"\ngrants = {{ memory_mb = \"64\" }}\n\
         {WAREHOUSE}[[routes]]\nfrom = \"crm\"\nto = [\"warehose\"]\n"
    );
    let all = errors(&text);
    let found: Vec<(usize, usize)> = all.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(found, [(3, 1), (7, 24), (13, 7)]);
    assert_eq!(
        hint(&all[1]),
        "write the number without quotes: `memory_mb = 64`"
    );
    assert_eq!(
        hint(&all[2]),
        "declared plugins are: `crm`, `warehouse`; did you mean `warehouse`?"
    );
}

#[test]
fn a_broken_nested_table_does_not_hide_the_rest_of_its_route() {
    // `when` lacks `field`: it is reported, and the route is still checked.
    let text = format!(
        "{PIPELINE}{CRM}{WAREHOUSE}[[routes]]\nfrom = \"crm\"\nwhen = {{ equals = 1 }}\nto = [\"warehose\"]\n"
    );
    assert_eq!(
        messages(&text),
        [
            "missing required key `field` in `when` of route #1",
            "unknown plugin `warehose` in `to` of route #1",
        ]
    );
}

#[test]
fn errors_come_in_source_order() {
    let text = format!(
        "[pipeline]\nname = \"x\"\nmode = \"fast\"\n{}{CRM}{WAREHOUSE}{ROUTE}",
        plugin("unused", "sink")
    );
    let lines: Vec<usize> = errors(&text).iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 4]);
}

// ---------------------------------------------------------------- unknown and missing keys

#[test]
fn unknown_fields_are_refused_in_every_table() {
    let cases = [
        (
            "[pipeline]\nname = \"x\"\nextra = 1\n",
            "unknown field `extra` in [pipeline]",
        ),
        (
            "[pipeline]\nname = \"x\"\nbatch = { max = 1 }\n",
            "unknown field `max` in [pipeline.batch]",
        ),
    ];
    for (pipeline, message) in cases {
        let text = format!("{pipeline}{CRM}{WAREHOUSE}{ROUTE}");
        assert_eq!(messages(&text), [message]);
    }
    let plugin_cases = [
        ("cofig = {}", "unknown field `cofig` in [plugins.crm]"),
        (
            "grants = { net = [] }",
            "unknown field `net` in [plugins.crm.grants]",
        ),
        (
            "grants = { files = [{ host = \"a\", guest = \"/a\", mod = \"ro\" }] }",
            "unknown field `mod` in `files` #1 in [plugins.crm.grants]",
        ),
    ];
    for (line, message) in plugin_cases {
        let text = format!("{PIPELINE}{CRM}{line}\n{WAREHOUSE}{ROUTE}");
        assert_eq!(messages(&text), [message], "{line}");
    }
    let route_cases = [
        ("thru = []", "unknown field `thru` in route #1"),
        (
            "when = { field = \"a\", exists = true, is = 1 }",
            "unknown field `is` in `when` of route #1",
        ),
    ];
    for (line, message) in route_cases {
        let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}{line}\n");
        assert_eq!(messages(&text), [message], "{line}");
    }
}

#[test]
fn unknown_field_hints_list_the_fields_and_the_nearest() {
    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}on_invaild = \"drop\"\n");
    let d = only_error(&text);
    assert_eq!(
        hint(&d),
        "expected one of `from`, `through`, `to`, `when`, `on_invalid`; did you mean `on_invalid`?"
    );
    assert_eq!((d.line, d.column), (12, 1));
}

#[test]
fn unknown_top_level_keys_are_refused() {
    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}[[route]]\nfrom = \"crm\"\n");
    let d = only_error(&text);
    assert_eq!(d.message, "unknown table `[[route]]`");
    assert!(hint(&d).ends_with("did you mean `routes`?"));
}

#[test]
fn required_keys_are_required() {
    let d = only_error(&format!(
        "[pipeline]\nmode = \"once\"\n{CRM}{WAREHOUSE}{ROUTE}"
    ));
    assert_eq!(d.message, "missing required key `name` in [pipeline]");
    assert_eq!((d.line, d.column), (1, 1));

    let text = format!("{PIPELINE}[plugins.crm]\nwasm = \"f.wasm\"\n{WAREHOUSE}{ROUTE}");
    assert_eq!(
        messages(&text),
        ["missing required key `kind` in [plugins.crm]"]
    );

    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}[[routes]]\nfrom = \"crm\"\n");
    assert_eq!(messages(&text), ["missing required key `to` in route #1"]);

    let d = only_error(&format!("{CRM}{WAREHOUSE}{ROUTE}"));
    assert_eq!(d.message, "missing [pipeline] table");
}

#[test]
fn a_wrong_required_value_is_not_also_missing() {
    let text = format!("{PIPELINE}[plugins.crm]\nkind = 1\nwasm = \"f.wasm\"\n{WAREHOUSE}{ROUTE}");
    assert_eq!(
        messages(&text),
        ["wrong type for `kind` in [plugins.crm]: expected a string, found an integer"]
    );
}

#[test]
fn wrong_types_name_what_was_expected_and_found() {
    let cases = [
        (
            "through = \"x\"",
            "wrong type for `through` in route #1: expected an array, found a string",
        ),
        (
            "when = { field = \"a\", exists = \"yes\" }",
            "wrong type for `exists` in `when` of route #1: expected a boolean, found a string",
        ),
        (
            "when = { field = \"a\", equals = [1] }",
            "wrong type for `equals` in `when` of route #1: expected a string, integer, float or boolean, found an array",
        ),
    ];
    for (line, message) in cases {
        let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}{line}\n");
        assert_eq!(messages(&text), [message], "{line}");
    }
    let text =
        format!("{PIPELINE}{CRM}{WAREHOUSE}[[routes]]\nfrom = \"crm\"\nto = [\"warehouse\", 1]\n");
    assert_eq!(
        messages(&text),
        ["wrong type for an element of `to` in route #1: expected a string, found an integer"]
    );
}

// ---------------------------------------------------------------- values

#[test]
fn numbers_must_be_in_range() {
    let cases = [
        (
            "batch = { max_records = 65537 }",
            "`max_records` must be between 1 and 65536, found 65537",
        ),
        (
            "batch = { max_wait_ms = -5 }",
            "`max_wait_ms` must be at least 0, found -5",
        ),
        (
            "poll_interval_ms = 0",
            "`poll_interval_ms` must be at least 1, found 0",
        ),
    ];
    for (line, message) in cases {
        let text = format!("{PIPELINE}{line}\n{CRM}{WAREHOUSE}{ROUTE}");
        assert_eq!(messages(&text), [message], "{line}");
    }
    let cases = [
        (
            "grants = { memory_mb = 4097 }",
            "`memory_mb` must be between 1 and 4096, found 4097",
        ),
        (
            "grants = { timeout_ms = 0 }",
            "`timeout_ms` must be between 1 and 600000, found 0",
        ),
        (
            "grants = { fuel = 0 }",
            "`fuel` must be at least 1, found 0",
        ),
        (
            "grants = { max_output_mb = 0 }",
            "`max_output_mb` must be between 1 and 4096, found 0",
        ),
        (
            "retry = { attempts = 0 }",
            "`attempts` must be between 1 and 100, found 0",
        ),
        (
            "retry = { backoff_ms = 500, max_backoff_ms = 100 }",
            "`max_backoff_ms` (100) is less than `backoff_ms` (500)",
        ),
    ];
    for (line, message) in cases {
        let text = format!("{PIPELINE}{CRM}{line}\n{WAREHOUSE}{ROUTE}");
        assert_eq!(messages(&text), [message], "{line}");
    }
}

#[test]
fn keywords_are_checked_with_a_suggestion() {
    let text = format!("{PIPELINE}mode = \"folow\"\n{CRM}{WAREHOUSE}{ROUTE}");
    let d = only_error(&text);
    assert_eq!(d.message, "unknown mode `folow`");
    assert_eq!(
        hint(&d),
        "expected one of `once`, `follow`, `schedule`; did you mean `follow`?"
    );

    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}on_invalid = \"dead_letter\"\n");
    let d = only_error(&text);
    assert_eq!(d.message, "unknown `on_invalid` policy `dead_letter`");
    assert!(hint(&d).ends_with("did you mean `dead-letter`?"));
}

#[test]
fn names_must_follow_the_pattern() {
    let d = only_error(&format!(
        "[pipeline]\nname = \"-x\"\n{CRM}{WAREHOUSE}{ROUTE}"
    ));
    assert_eq!(d.message, "invalid pipeline name `-x`");
    assert!(hint(&d).ends_with("try `x`"), "{}", hint(&d));

    let text = format!(
        "{PIPELINE}{CRM}[plugins.Ware_House]\nkind = \"sink\"\nwasm = \"f.wasm\"\n\
         [[routes]]\nfrom = \"crm\"\nto = [\"Ware_House\"]\n"
    );
    let d = only_error(&text);
    assert_eq!(d.message, "invalid plugin name `Ware_House`");
    assert_eq!((d.line, d.column), (6, 10));
    assert!(hint(&d).ends_with("try `ware_house`"), "{}", hint(&d));
}

#[test]
fn sha256_must_be_64_lowercase_hex_characters() {
    for (digest, end) in [
        ("abc", "this has 3 characters"),
        (&"A".repeat(64), "write the digest in lowercase"),
        (&"g".repeat(64), "this has 64 characters"),
    ] {
        let text = format!("{PIPELINE}{CRM}sha256 = \"{digest}\"\n{WAREHOUSE}{ROUTE}");
        let d = only_error(&text);
        assert!(d.message.starts_with("`sha256` is not a sha256 digest"));
        assert!(hint(&d).ends_with(end), "{}", hint(&d));
    }
}

#[test]
fn paths_must_not_be_empty() {
    let text =
        format!("{PIPELINE}[plugins.crm]\nkind = \"source\"\nwasm = \"\"\n{WAREHOUSE}{ROUTE}");
    assert_eq!(messages(&text), ["`wasm` is empty"]);
}

#[test]
fn config_floats_json_cannot_carry_are_refused() {
    let text = format!("{PIPELINE}{CRM}config = {{ a = {{ b = -inf }} }}\n{WAREHOUSE}{ROUTE}");
    let d = only_error(&text);
    assert_eq!(d.message, "`config.a.b` is -inf, which JSON cannot carry");
    assert_eq!(hint(&d), "write it as a string: `b = \"-inf\"`");
}

#[test]
fn guest_paths_are_absolute_and_unique_per_plugin() {
    let text = format!(
        "{PIPELINE}{CRM}grants = {{ files = [{{ host = \"a\", guest = \"in\" }}] }}\n{WAREHOUSE}{ROUTE}"
    );
    let d = only_error(&text);
    assert_eq!(d.message, "guest path `in` is not absolute");
    assert!(hint(&d).ends_with("try `/in`"));

    let text = format!(
        "{PIPELINE}{CRM}grants = {{ files = [{{ host = \"a\", guest = \"/in\" }}, {{ host = \"b\", guest = \"/in/\" }}] }}\n\
         {WAREHOUSE}grants = {{ files = [{{ host = \"a\", guest = \"/in\" }}] }}\n{ROUTE}"
    );
    let d = only_error(&text);
    assert_eq!(
        d.message,
        "guest path `/in/` is granted twice to plugin `crm`"
    );
    assert!(
        hint(&d).starts_with("it is first granted at line 6, column 43"),
        "{}",
        hint(&d)
    );
}

#[test]
fn when_has_exactly_one_test() {
    let when = |when: &str| {
        let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}when = {when}\n");
        messages(&text)
    };
    assert_eq!(
        when("{ field = \"a\" }"),
        ["`when` in route #1 has no test"]
    );
    assert_eq!(
        when("{ field = \"a\", exists = true, not_equals = 1 }"),
        ["`when` in route #1 has more than one test: `exists` and `not_equals`"]
    );
    assert_eq!(
        when("{ field = \"a\", in = [] }"),
        ["`in` of `when` in route #1 is empty"]
    );
    assert_eq!(
        when("{ field = \"\", exists = true }"),
        ["`field` of `when` in route #1 is empty"]
    );
}

// ---------------------------------------------------------------- rules

#[test]
fn exactly_one_source() {
    let text = format!("{PIPELINE}{WAREHOUSE}");
    let all = messages(&text);
    assert!(
        all.contains(
            &"no source: a pipeline reads from exactly one plugin of kind `source`".into()
        )
    );

    let text = format!(
        "{PIPELINE}{CRM}{}{WAREHOUSE}{ROUTE}",
        plugin("erp", "source")
    );
    let d = only_error(&text);
    assert_eq!(
        d.message,
        "a second source, `erp`: a manifest has exactly one source"
    );
    assert!(hint(&d).contains("a folder of manifests runs them all"));
    assert_eq!(d.line, 7);
}

#[test]
fn at_least_one_route() {
    let d = only_error(&format!("{PIPELINE}{CRM}"));
    assert_eq!(d.message, "no routes: records from the source go nowhere");
    assert!(hint(&d).contains("`from = \"crm\"`"));

    let d = only_error(&format!("routes = []\n{PIPELINE}{CRM}"));
    assert_eq!(d.message, "no routes: records from the source go nowhere");
}

#[test]
fn route_names_must_be_declared() {
    let text =
        format!("{PIPELINE}{CRM}{WAREHOUSE}[[routes]]\nfrom = \"cmr\"\nto = [\"warehouse\"]\n");
    let d = only_error(&text);
    assert_eq!(d.message, "unknown plugin `cmr` in `from` of route #1");
    assert_eq!(
        hint(&d),
        "declared plugins are: `crm`, `warehouse`; did you mean `crm`?"
    );

    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}through = [\"nothing_like_it\"]\n");
    let d = only_error(&text);
    assert_eq!(hint(&d), "declared plugins are: `crm`, `warehouse`");
}

#[test]
fn each_place_takes_its_kinds() {
    let text = format!(
        "{PIPELINE}{CRM}{WAREHOUSE}{}[[routes]]\nfrom = \"warehouse\"\nthrough = [\"crm\"]\nto = [\"m\"]\n",
        plugin("m", "mapper")
    );
    let all = errors(&text);
    let found: Vec<(&str, &str)> = all.iter().map(|d| (d.message.as_str(), hint(d))).collect();
    assert_eq!(
        found,
        [
            (
                "`warehouse` cannot go in `from` of route #1",
                "`warehouse` is a sink; `from` takes the source, or a mapper or validator from the \
                 `through` of an earlier route (a tap)"
            ),
            (
                "`crm` cannot go in `through` of route #1",
                "`crm` is the source; `through` takes mappers and validators; the source goes in `from`"
            ),
            (
                "`m` cannot go in `to` of route #1",
                "`m` is a mapper; `to` takes sinks; mappers and validators go in `through`"
            ),
        ]
    );
}

#[test]
fn resolvers_are_declared_but_not_routed() {
    let resolver = plugin("newest", "resolver");
    ok(&format!("{PIPELINE}{CRM}{WAREHOUSE}{resolver}{ROUTE}"));
    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{resolver}{ROUTE}through = [\"newest\"]\n");
    assert_eq!(
        messages(&text),
        ["`newest` is a resolver: resolvers are used by two-way sync ([sync]), not in routes"]
    );
}

#[test]
fn a_stage_has_one_place() {
    let text = format!(
        "{PIPELINE}{CRM}{WAREHOUSE}{}{ROUTE}through = [\"m\"]\n\
         [[routes]]\nfrom = \"crm\"\nthrough = [\"m\"]\nto = [\"warehouse\"]\n",
        plugin("m", "mapper")
    );
    let all = errors(&text);
    let found: Vec<(usize, &str)> = all.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(
        found,
        [
            (18, "`m` is already used in route #1"),
            (19, "`warehouse` is already used in route #1"),
        ]
    );
    assert!(hint(&all[0]).starts_with("line 15 uses it first"));

    let text = format!(
        "{PIPELINE}{CRM}{WAREHOUSE}[[routes]]\nfrom = \"crm\"\nto = [\"warehouse\", \"warehouse\"]\n"
    );
    assert_eq!(
        messages(&text),
        ["`warehouse` is already used earlier in this route"]
    );
}

#[test]
fn a_tap_follows_the_route_that_runs_its_stage() {
    let stages = format!(
        "{PIPELINE}{CRM}{WAREHOUSE}{}{}",
        plugin("rules", "validator"),
        plugin("eu", "sink")
    );
    let main = "[[routes]]\nfrom = \"crm\"\nthrough = [\"rules\"]\nto = [\"warehouse\"]\n";
    let tap = "[[routes]]\nfrom = \"rules\"\nto = [\"eu\"]\n";

    let manifest = ok(&format!("{stages}{main}{tap}"));
    assert_eq!(manifest.routes[1].from, "rules");

    let d = only_error(&format!("{stages}{tap}{main}"));
    assert_eq!(
        d.message,
        "route #1 taps `rules` before the route that runs it"
    );
    assert!(hint(&d).starts_with("move this route after route #2"));

    let d = only_error(&format!(
        "{stages}[[routes]]\nfrom = \"crm\"\nto = [\"warehouse\"]\n{tap}"
    ));
    assert_eq!(
        d.message,
        "`rules` is not in the `through` of any route, so no records leave it"
    );

    let d = only_error(&format!(
        "{stages}{main}[[routes]]\nfrom = \"rules\"\nthrough = [\"rules\"]\nto = [\"eu\"]\n"
    ));
    assert_eq!(
        d.message,
        "route #2 has its own `from`, `rules`, in its `through`"
    );
}

#[test]
fn every_stage_is_used() {
    let text = format!(
        "{PIPELINE}{CRM}{WAREHOUSE}{}{ROUTE}",
        plugin("spare", "validator")
    );
    let d = only_error(&text);
    assert_eq!(
        d.message,
        "plugin `spare` (a validator) is not used by any route"
    );
    assert_eq!(hint(&d), "add it to a route or remove it");
    assert_eq!((d.line, d.column), (9, 1));
}

#[test]
fn one_mistake_is_one_error() {
    // A misspelt sink is not also an unused one.
    let text =
        format!("{PIPELINE}{CRM}{WAREHOUSE}[[routes]]\nfrom = \"crm\"\nto = [\"warehous\"]\n");
    assert_eq!(
        messages(&text),
        ["unknown plugin `warehous` in `to` of route #1"]
    );
    // A plugin whose kind is unknown is not checked for kind, and there is no
    // "no source" error while a kind is unknown.
    let text =
        format!("{PIPELINE}[plugins.crm]\nkind = \"sorce\"\nwasm = \"f.wasm\"\n{WAREHOUSE}{ROUTE}");
    assert_eq!(messages(&text), ["unknown plugin kind `sorce`"]);
    // A route that could not be read does not make its sink unused.
    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}[[routes]]\nfrom = 1\nto = [\"warehouse\"]\n");
    assert_eq!(
        messages(&text),
        ["wrong type for `from` in route #1: expected a string, found an integer"]
    );
}

#[test]
fn spans_point_into_the_text() {
    let text = format!("{PIPELINE}{CRM}{WAREHOUSE}{ROUTE}");
    let manifest = ok(&text);
    let span: Span = manifest.plugins["warehouse"].spans.name;
    assert_eq!(&text[span.start..span.end], "warehouse");
    let kind = manifest.plugins["warehouse"].spans.kind;
    assert_eq!(&text[kind.start..kind.end], "\"sink\"");
    let to = &manifest.routes[0].spans.to[0];
    assert_eq!(&text[to.start..to.end], "\"warehouse\"");
}

#[test]
fn env_grants_take_literals_and_host_variables_by_name() {
    let text = format!(
        "{PIPELINE}{CRM}grants = {{ env = {{ MODE = \"fast\", TOKEN = {{ from_env = \"CRM_TOKEN\" }} }} }}\n{WAREHOUSE}{ROUTE}"
    );
    let manifest = ok(&text);
    let env = &manifest.plugins["crm"].grants.env;
    assert_eq!(env.len(), 2);
    assert_eq!(
        (env[0].name.as_str(), &env[0].value),
        ("MODE", &crate::EnvValue::Literal("fast".into()))
    );
    assert_eq!(
        (env[1].name.as_str(), &env[1].value),
        ("TOKEN", &crate::EnvValue::FromHost("CRM_TOKEN".into()))
    );
    assert!(
        manifest.plugins["warehouse"].grants.env.is_empty(),
        "no grant, no environment"
    );
}

#[test]
fn a_bad_env_grant_says_how_to_write_it() {
    let text = format!(
        "{PIPELINE}{CRM}grants = {{ env = {{ TOKEN = 5, \"9X\" = \"a\" }} }}\n{WAREHOUSE}{ROUTE}"
    );
    let found = messages(&text);
    assert!(
        found
            .iter()
            .any(|m| m.contains("`TOKEN` needs a text value")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|m| m.contains("`9X` is not a valid environment variable name")),
        "{found:?}"
    );
}

#[test]
fn network_grants_are_scheme_host_and_port() {
    let text = format!(
        "{PIPELINE}{CRM}grants = {{ network = [\"tcp://db.example.com:5432\", \"udp://[::1]:53\", \"tcp://*.example.org:*\", \"https://api.example.com\"] }}\n{WAREHOUSE}{ROUTE}"
    );
    let manifest = ok(&text);
    let net = &manifest.plugins["crm"].grants.network;
    let parts: Vec<(&str, &str, Option<u16>)> = net
        .iter()
        .map(|g| (g.scheme.as_str(), g.host.as_str(), g.port))
        .collect();
    assert_eq!(
        parts,
        [
            ("tcp", "db.example.com", Some(5432)),
            ("udp", "::1", Some(53)),
            ("tcp", "*.example.org", None),
            ("https", "api.example.com", Some(443)),
        ]
    );
    let bad = format!(
        "{PIPELINE}{CRM}grants = {{ network = [\"http//x:1\", \"tcp://x:0\"] }}\n{WAREHOUSE}{ROUTE}"
    );
    let found = messages(&bad);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().all(|m| m.contains("is not a network grant")),
        "{found:?}"
    );
}

// ---------------------------------------------------------------- connections

const OPS: &str = "[connections.ops]\nurl = \"postgres://ferry@db.internal:5432/ops\"\npassword_env = \"OPS_PASSWORD\"\ntls = \"verify-full\"\nca_file = \"certs/ca.pem\"\npool = 8\n";

fn with_sql_grant(connections: &str, grant: &str) -> String {
    format!(
        "{PIPELINE}{connections}[plugins.crm]\nkind = \"source\"\nwasm = \"plugins/file.wasm\"\ngrants = {{ sql = [{grant}] }}\n{WAREHOUSE}{ROUTE}"
    )
}

#[test]
fn connections_are_read_and_granted_by_name() {
    use crate::{ConnectionTarget, TlsMode};
    let text = with_sql_grant(
        &format!(
            "{OPS}[connections.warehouse]\nurl = \"sqlite:wh/warehouse.db\"\ntransaction_timeout_ms = 5000\n"
        ),
        "\"ops\", \"warehouse\"",
    );
    let m = ok(&text);
    let ops = &m.connections["ops"];
    assert_eq!(
        ops.target,
        ConnectionTarget::Postgres("postgres://ferry@db.internal:5432/ops".into())
    );
    assert_eq!(ops.password_env.as_deref(), Some("OPS_PASSWORD"));
    assert_eq!(ops.tls, TlsMode::VerifyFull);
    assert_eq!(ops.ca_file, Some(PathBuf::from("m/certs/ca.pem")));
    assert_eq!(ops.pool, 8);
    assert_eq!(ops.transaction_timeout_ms, 30_000);
    let wh = &m.connections["warehouse"];
    assert_eq!(
        wh.target,
        ConnectionTarget::Sqlite(PathBuf::from("m/wh/warehouse.db"))
    );
    assert_eq!(wh.tls, TlsMode::Disable);
    assert_eq!(wh.pool, 4);
    assert_eq!(wh.transaction_timeout_ms, 5_000);
    let names: Vec<&str> = m.plugins["crm"]
        .grants
        .sql
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(names, ["ops", "warehouse"]);
}

#[test]
fn a_grant_of_an_undeclared_connection_is_refused_with_a_suggestion() {
    let e = only_error(&with_sql_grant(OPS, "\"osp\""));
    assert_eq!(
        e.message,
        "plugin `crm` is granted connection `osp`, which is not declared"
    );
    assert!(hint(&e).contains("did you mean `ops`?"), "{}", hint(&e));
    assert_eq!(e.line, 12);

    let e = only_error(&with_sql_grant("", "\"ops\""));
    assert!(hint(&e).contains("[connections.ops]"), "{}", hint(&e));
}

#[test]
fn a_password_in_a_connection_url_is_refused() {
    let e = only_error(&with_sql_grant(
        "[connections.ops]\nurl = \"postgres://ferry:hunter2@db:5432/ops\"\n",
        "\"ops\"",
    ));
    assert_eq!(e.message, "connection `ops`: the URL holds a password");
    assert!(
        hint(&e).contains("password_env = \"OPS_PASSWORD\""),
        "{}",
        hint(&e)
    );
    assert_eq!((e.line, e.column), (4, 7));
}

#[test]
fn a_password_in_a_connection_urls_query_is_refused_and_never_shown() {
    for (param, url) in [
        ("password", "postgres://ferry@db:5432/ops?password=hunter2"),
        (
            "PassWord",
            "postgres://ferry@db:5432/ops?sslmode=disable&PassWord=hunter2",
        ),
        ("pass%77ord", "postgresql://ferry@db/ops?pass%77ord=hunter2"),
        ("sslpassword", "postgres://ferry@db/ops?sslpassword=hunter2"),
    ] {
        let e = only_error(&with_sql_grant(
            &format!("[connections.ops]\nurl = \"{url}\"\n"),
            "\"ops\"",
        ));
        assert_eq!(
            e.message,
            format!("connection `ops`: the URL holds a password (query parameter `{param}`)")
        );
        assert!(
            hint(&e).contains("password_env = \"OPS_PASSWORD\"")
                && hint(&e).contains(&format!("drop `{param}` from the URL")),
            "{}",
            hint(&e)
        );
        assert_eq!((e.line, e.column), (4, 7));
        let shown = e.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("=***"), "{shown}");
    }
    // The userinfo form is not shown either, even where another error
    // quotes the URL.
    let e = only_error(&with_sql_grant(
        "[connections.ops]\nurl = \"postgres://ferry:hunter2@db:5432/ops\"\n",
        "\"ops\"",
    ));
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = only_error(&with_sql_grant(
        "[connections.ops]\nurl = \"mysql://ferry:hunter2@db/ops?password=hunter2\"\n",
        "\"ops\"",
    ));
    assert_eq!(
        e.message,
        "connection `ops`: `mysql://ferry:***@db/ops?password=***` is not a PostgreSQL or SQLite URL"
    );
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn the_debug_of_a_connection_never_shows_a_password() {
    let target = crate::ConnectionTarget::Postgres(
        "postgres://ferry:hunter2@db/ops?password=hunter2".into(),
    );
    let shown = format!("{target:?}");
    assert_eq!(
        shown,
        r#"Postgres("postgres://ferry:***@db/ops?password=***")"#
    );
    assert_eq!(target.display(), "postgres://ferry:***@db/ops?password=***");
}

#[test]
fn bad_connection_settings_are_each_reported() {
    let all = messages(&with_sql_grant(
        "[connections.ops]\nurl = \"mysql://db/ops\"\ntls = \"verify\"\npool = 0\ntransaction_timeout_ms = 10\n[connections.wh]\nurl = \"sqlite:wh.db\"\ntls = \"require\"\n",
        "\"ops\"",
    ));
    assert_eq!(
        all,
        [
            "connection `ops`: `mysql://db/ops` is not a PostgreSQL or SQLite URL",
            "unknown TLS mode `verify`",
            "`pool` must be between 1 and 64, found 0",
            "`transaction_timeout_ms` must be between 100 and 86400000, found 10",
            "connection `wh`: `password_env`, `tls` and `ca_file` apply to PostgreSQL only",
        ]
    );
}

// ---------------------------------------------------------------- two-way sync

const SYNC_PLUGINS: &str = "[plugins.crm]\nkind = \"connector\"\nwasm = \"plugins/sqlite.wasm\"\nconfig = { table = \"customers\" }\n\
[plugins.billing]\nkind = \"connector\"\nwasm = \"plugins/postgres.wasm\"\n";

fn sync_manifest(settings: &str) -> String {
    format!(
        "{PIPELINE}mode = \"follow\"\n{SYNC_PLUGINS}[sync]\nleft = {{ plugin = \"crm\", read = {{ mode = \"full\" }} }}\n\
right = {{ plugin = \"billing\", write = {{ table = \"accounts\" }}, rename = {{ email = \"email_address\" }} }}\n{settings}"
    )
}

#[test]
fn a_sync_manifest_resolves_with_defaults_and_every_setting() {
    let m = ok(&sync_manifest(""));
    let sync = m.sync.expect("a sync");
    assert_eq!(sync.left.plugin, "crm");
    assert_eq!(sync.left.read, serde_json::json!({ "mode": "full" }));
    assert_eq!(sync.right.write, serde_json::json!({ "table": "accounts" }));
    assert_eq!(sync.right.rename["email"], "email_address");
    assert_eq!(sync.detect, crate::Detect::Checksum);
    assert_eq!(sync.strategy, crate::Strategy::LastWriterWins);
    assert_eq!(sync.on_foreign_change, crate::ForeignChange::Overwrite);
    assert!(m.routes.is_empty());

    let resolver = plugin("rules", "resolver");
    let validator = plugin("check", "validator");
    let text = format!(
        "{}fields = [\"name\", \"limit\", \"at\"]\ndetect = \"validator\"\nvalidator = \"check\"\n\
         timestamp_field = \"at\"\nstrategy = \"resolver\"\nresolver = \"rules\"\n\
         field_strategies = {{ name = \"left-wins\" }}\nowned = {{ limit = \"right\" }}\non_foreign_change = \"reject\"\n{resolver}{validator}",
        sync_manifest("")
    );
    let sync = ok(&text).sync.expect("a sync");
    assert_eq!(sync.detect, crate::Detect::Validator("check".into()));
    assert_eq!(sync.strategy, crate::Strategy::Resolver("rules".into()));
    assert_eq!(
        sync.field_strategies["name"],
        crate::Strategy::SideWins(crate::Side::Left)
    );
    assert_eq!(sync.owned["limit"], crate::Side::Right);
    assert_eq!(sync.on_foreign_change, crate::ForeignChange::Reject);
}

#[test]
fn sync_mistakes_each_point_at_their_line_with_the_fix() {
    let text = sync_manifest(
        "strategy = \"lastwriter-wins\"\ndetect = \"validator\"\nowned = { limit = \"middle\" }\nfields = [\"name\"]\n",
    );
    let all = errors(&text);
    let found: Vec<(&str, &str)> = all.iter().map(|d| (d.message.as_str(), hint(d))).collect();
    assert_eq!(
        found,
        [
            (
                "unknown strategy `lastwriter-wins`",
                "expected one of `last-writer-wins`, `first-writer-wins`, `left-wins`, `right-wins`, `merge`, `manual`, `resolver`; did you mean `last-writer-wins`?"
            ),
            (
                "`detect = \"validator\"` needs `validator`",
                "name the validator plugin that decides what conflicts: `validator = \"<plugin>\"`"
            ),
            (
                "`owned` names `limit`, which is not in `fields`",
                "add `limit` to `fields`, or remove it here"
            ),
            ("unknown owner `middle`", "expected one of `left`, `right`"),
        ]
    );
    let same = format!(
        "{PIPELINE}{SYNC_PLUGINS}[sync]\nleft = {{ plugin = \"crm\" }}\nright = {{ plugin = \"crm\" }}\n"
    );
    assert_eq!(
        messages(&same),
        [
            "plugin `billing` (a connector) is not used by [sync]",
            "`left` and `right` are the same plugin, `crm`"
        ]
    );
}

#[test]
fn sync_plugins_must_be_connectors_and_a_sync_has_no_routes() {
    let source = format!(
        "{PIPELINE}{CRM}{SYNC}",
        SYNC = "[plugins.billing]\nkind = \"connector\"\nwasm = \"plugins/x.wasm\"\n[sync]\nleft = { plugin = \"crm\" }\nright = { plugin = \"billing\" }\n"
    );
    let e = only_error(&source);
    assert_eq!(e.message, "`left` `crm` is a source, not a connector");
    assert!(hint(&e).contains("kind = \"connector\""), "{}", hint(&e));

    let with_route = format!("{}{WAREHOUSE}{ROUTE}", sync_manifest(""));
    let msgs = messages(&with_route);
    assert!(
        msgs.contains(&"a two-way sync manifest has no routes".to_string()),
        "{msgs:?}"
    );

    let unused = format!("{}{}", sync_manifest(""), plugin("spare", "resolver"));
    assert_eq!(
        messages(&unused),
        ["plugin `spare` (a resolver) is not used by [sync]"]
    );
    let scheduled = sync_manifest("").replace(
        "mode = \"follow\"",
        "mode = \"schedule\"\nschedule = \"every 1h\"",
    );
    assert_eq!(
        messages(&scheduled),
        ["a two-way sync runs `once` or `follow`, not on a schedule"]
    );
}

#[test]
fn sync_sides_can_be_tables_of_their_own() {
    let text = format!(
        "{PIPELINE}{SYNC_PLUGINS}[sync]\nfields = [\"name\", \"email\"]\nstrategy = \"merge\"\n\n\
         [sync.left]\nplugin = \"crm\"\nread = {{ mode = \"full\" }}\n\n\
         [sync.right]\nplugin = \"billing\"\nwrite = {{ table = \"customers\", key = \"id\" }}\nrename = {{ email = \"email_address\" }}\n"
    );
    let sync = ok(&text).sync.expect("a sync");
    assert_eq!(sync.strategy, crate::Strategy::Merge);
    assert_eq!(sync.right.write["table"], "customers");
    assert_eq!(sync.right.rename["email"], "email_address");
}
