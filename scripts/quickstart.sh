#!/usr/bin/env bash
# Builds ferry (release) and its plugins, then runs the quickstart pipeline:
# ~11,000 contacts from JSON Lines and CSV through a mapper and a validator
# into a JSON Lines warehouse, with the invalid ones in the dead-letter store.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash plugins/build.sh
echo "quickstart: building ferry (release; the first build of wasmtime takes about 12 minutes on 2 cores)"
cargo build --release -p ferry-cli
echo
exec target/release/ferry run examples/quickstart/pipeline.toml
