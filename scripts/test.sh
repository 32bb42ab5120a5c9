#!/usr/bin/env bash
# Runs every test: the plugins' unit tests on the host target, then the
# runtime's unit tests and the integration tests (ferry-cli's; cargo builds
# the `ferry` binary they drive, and ferry-tests' build script every guest
# plugin, first). Tests use the dev profile with optimized dependencies:
# a release build of wasmtime takes too long for a test loop.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== supply chain: cargo-deny (licenses, bans, sources, advisories)"
bash scripts/deny.sh

echo "== plugins: unit tests (host target)"
(cd plugins && cargo test --quiet)

echo "== plugins: Python and JavaScript components (installs componentize-py and the npm tools)"
bash scripts/polyglot.sh

echo "== runtime: unit and integration tests"
cargo test --workspace
