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

cargo build --release --target wasm32-wasip2 --workspace --quiet

mkdir -p dist
target_dir="${CARGO_TARGET_DIR:-$here/target}"
# The plugins: every package of this workspace with a cdylib target, read
# from cargo metadata (the same rule as tests/build.rs): its library
# `<lib>.wasm` ships as dist/<package name, without a `ferry-` prefix>.wasm.
plugins=$(cargo metadata --no-deps --format-version 1 --offline 2>/dev/null \
    || cargo metadata --no-deps --format-version 1)
plugins=$(python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "cdylib" in t["kind"]:
            name = p["name"]
            print(t["name"] + ":" + (name[len("ferry-"):] if name.startswith("ferry-") else name))
' <<<"$plugins" | sort)
for entry in $plugins; do
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
