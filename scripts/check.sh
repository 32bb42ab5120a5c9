#!/usr/bin/env bash
# The fast checks, run before the long test suite (.ci/run runs this first):
# formatting, clippy with warnings as errors (the workspace lints forbid
# `unwrap`, `expect` and `panic!` outside tests) and the docs, for both
# workspaces (the runtime at the root, the guest plugins in plugins/).
# A lint fails in minutes instead of after the integration tests.
#
#   bash scripts/check.sh
#
# Clippy and rustdoc build their own check artifacts in target/; the test
# build reuses none of them, but they cost a few minutes, not a second build
# of wasmtime.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed; install Rust with rustup first" >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        echo "check: adding the $component Rust component"
        rustup component add "$component"
    fi
done

echo "== check: formatting (cargo fmt --check)"
cargo fmt --all --check
(cd plugins && cargo fmt --all --check)

echo "== check: clippy, warnings are errors (runtime)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== check: clippy, warnings are errors (plugins, host target)"
(cd plugins && cargo clippy --workspace --all-targets --quiet -- -D warnings)

echo "== check: docs, warnings are errors (runtime and plugin SDK)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
(cd plugins && RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet)

echo "== check: all passed"
