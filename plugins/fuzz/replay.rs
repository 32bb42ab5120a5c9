// The corpus replay shared by the plugins' `tests/fuzz_corpus.rs` (each
// includes it): every committed corpus, seed and regression input of a
// target goes through the target's body; a panic fails the test.

use std::path::Path;

/// The files in `dir`, sorted; `required`: the folder must hold some.
fn inputs(dir: &Path, required: bool) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(list) => list.map(|e| e.expect("corpus entry").path()).collect(),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    entries.sort();
    assert!(
        !required || !entries.is_empty(),
        "{} is empty",
        dir.display()
    );
    entries
}

fn replay(name: &str, body: fn(&[u8])) {
    let home = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let entries = inputs(&home.join("corpus").join(name), true);
    let entries = entries
        .into_iter()
        .chain(inputs(&home.join("seeds").join(name), false))
        .chain(inputs(&home.join("regressions").join(name), false));
    for path in entries {
        let data = std::fs::read(&path).expect("read corpus entry");
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok(),
            "target {name}: {} fails (see scripts/fuzz.sh)",
            path.display()
        );
    }
}

