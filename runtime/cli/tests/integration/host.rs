//! The host on its own: component loading, the compile cache, instances.

use ferry_host::{
    Component, InstanceSpec, PluginWorld, Runtime, RuntimeOptions, SinkInstance, sha256_hex,
};

use crate::support::plugins;

#[test]
fn a_second_load_comes_from_the_compile_cache() {
    let cache = tempfile::tempdir().expect("tmp");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
    })
    .expect("engine");
    let first = Component::load(&runtime, plugins::SCHEMA_VALIDATOR.as_ref()).expect("loads");
    assert!(!first.info().from_cache);
    let second = Component::load(&runtime, plugins::SCHEMA_VALIDATOR.as_ref()).expect("loads");
    assert!(
        second.info().from_cache,
        "the precompiled artifact is reused"
    );
    let bytes = std::fs::read(plugins::SCHEMA_VALIDATOR).expect("read");
    assert_eq!(second.digest(), sha256_hex(&bytes));
    let cached: Vec<_> = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .flatten()
        .collect();
    assert_eq!(cached.len(), 1);
    assert!(
        cached[0]
            .file_name()
            .to_string_lossy()
            .starts_with(second.digest())
    );
}

#[test]
fn components_declare_their_worlds_and_imports() {
    let runtime = crate::support::runtime();
    let file = Component::load(runtime, plugins::FILE.as_ref()).expect("loads");
    assert!(file.exports(PluginWorld::Source) && file.exports(PluginWorld::Sink));
    assert!(!file.exports(PluginWorld::Mapper));
    assert!(
        file.info()
            .imports
            .iter()
            .any(|i| i.starts_with("ferry:plugin/host@0.1")),
        "{:?}",
        file.info().imports
    );
    let mapper = Component::load(runtime, plugins::FIELD_MAPPER.as_ref()).expect("loads");
    assert_eq!(mapper.info().worlds, vec![PluginWorld::Mapper]);
}

#[test]
fn an_instance_for_the_wrong_world_is_refused() {
    let runtime = crate::support::runtime();
    let mapper = Component::load(runtime, plugins::PASSTHROUGH.as_ref()).expect("loads");
    let spec = InstanceSpec::new("p", "s");
    let err = SinkInstance::new(&mapper, spec, None)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("does not export `ferry:plugin/sink@0.1.4`"),
        "{err}"
    );
}

/// A component built against `ferry:plugin@0.1.0` (kept in
/// tests/fixtures/contract-0.1.0) loads in this host (0.1.4) and works in a
/// pipeline: the contract's releases of one line only add.
#[test]
fn a_plugin_built_against_an_older_contract_keeps_working() {
    let old = crate::support::repo_root().join("tests/fixtures/contract-0.1.0/passthrough.wasm");
    let component = Component::load(crate::support::runtime(), &old).expect("loads");
    let info = component.info();
    assert!(
        info.exports
            .iter()
            .any(|e| e == "ferry:plugin/mapper@0.1.0"),
        "it is an old build: {:?}",
        info.exports
    );
    assert_ne!(ferry_host::CONTRACT_VERSION, "0.1.0");
    assert!(component.exports(ferry_host::PluginWorld::Mapper));

    let s = crate::support::Sandbox::new();
    s.write(
        "in/a.jsonl",
        "{\"id\":\"1\",\"n\":1}\n{\"id\":\"2\",\"n\":2}\n",
    );
    s.manifest(&crate::support::file_pipeline(
        r#"{ path = "/in/a.jsonl" }"#,
        &["old"],
        &format!(
            "\n[plugins.old]\nkind = \"mapper\"\nwasm = \"{}\"\n",
            old.display()
        ),
    ));
    let report = s.run().expect("runs");
    assert_eq!(report.accounting.written, 2);
    assert_eq!(
        s.jsonl("out/out.jsonl"),
        [
            serde_json::json!({"id": "1", "n": 1}),
            serde_json::json!({"id": "2", "n": 2})
        ]
    );
}
