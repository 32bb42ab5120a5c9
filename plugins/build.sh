#!/usr/bin/env bash
# Builds every guest plugin as a WebAssembly component into plugins/dist/.
#
#   bash plugins/build.sh
#
# Runs `cargo build --release --target wasm32-wasip2` for this workspace
# (needs `rustup target add wasm32-wasip2`), then copies each component to
# dist/<name>.wasm. A component that did not change is not copied again, so
# its modification time (which the host's hot reload watches) stays put.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# crate (library) name -> dist file name
plugins=(
    "file:file"
    "field_mapper:field-mapper"
    "schema_validator:schema-validator"
    "passthrough:passthrough"
    "rules_resolver:rules-resolver"
    "sqlite:sqlite"
    "postgres:postgres"
    "test_faulty_mapper:test-faulty-mapper"
    "test_faulty_sink:test-faulty-sink"
    "test_faulty_resolver:test-faulty-resolver"
    "test_net_probe:test-net-probe"
    "test_env_probe:test-env-probe"
    "test_fs_probe:test-fs-probe"
    "test_http_probe:test-http-probe"
    "test_tagger_v1:test-tagger-v1"
    "test_tagger_v2:test-tagger-v2"
)

cargo build --release --target wasm32-wasip2 --workspace --quiet

mkdir -p dist
target_dir="${CARGO_TARGET_DIR:-$here/target}"
for entry in "${plugins[@]}"; do
    lib="${entry%%:*}"
    name="${entry##*:}"
    built="$target_dir/wasm32-wasip2/release/$lib.wasm"
    out="dist/$name.wasm"
    if [[ ! -f "$built" ]]; then
        echo "build.sh: $built is missing" >&2
        exit 1
    fi
    if cmp -s "$built" "$out"; then
        state="unchanged"
    else
        cp "$built" "$out.tmp"
        mv "$out.tmp" "$out"
        state="updated"
    fi
    printf '%-38s %9d bytes  %s\n' "plugins/$out" "$(stat -c %s "$out")" "$state"
done
