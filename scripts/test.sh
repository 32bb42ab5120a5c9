#!/usr/bin/env bash
# Runs every test: the plugins' unit tests on the host target, then the
# runtime's unit tests and the integration-test binary (which builds every
# guest plugin first). Tests use the dev profile with optimized dependencies:
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

echo "== runtime: build the ferry binary the integration tests drive"
cargo build -p ferry-cli

echo "== runtime: unit and integration tests"
cargo test --workspace
