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
        err.contains("does not export `ferry:plugin/sink@0.1.0`"),
        "{err}"
    );
}
