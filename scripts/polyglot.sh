#!/usr/bin/env bash
# Builds the Python and JavaScript plugins into plugins/dist/:
#
#   bash scripts/polyglot.sh
#
#   py-field-mapper.wasm  py-schema-validator.wasm  py-jsonl-source.wasm   (plugins/python, componentize-py)
#   js-field-mapper.wasm  js-schema-validator.wasm                        (plugins/js, componentize-js)
#
# It installs its toolchains itself, pinned, under target/polyglot/:
# componentize-py into a venv, the npm packages of plugins/js/package-lock.json
# (`npm ci`, into plugins/js/node_modules), and ferry-deny-sockets (a small
# Rust tool, plugins/python/deny-sockets) that replaces the wasi:sockets
# imports every componentize-py component has with trapping stubs, so a
# Python plugin needs no network grant.
#
# A component is rebuilt only when its inputs changed (its sources, the
# helper layer, wit/, the toolchain versions, this script): a stamp under
# target/polyglot/stamps/ keeps the hash of the inputs of the last build,
# and the output is copied to plugins/dist/ only when it differs, so its
# modification time (which the host's hot reload watches) stays put.
# Needs python3 (3.11), node and npm (20), cargo; only PyPI, npm and
# crates.io are reached.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

COMPONENTIZE_PY_VERSION="0.25.1"
work="$root/target/polyglot"
dist="$root/plugins/dist"
stamps="$work/stamps"
mkdir -p "$work" "$dist" "$stamps"

# name:package-or-file:world
python_plugins=(
    "py-field-mapper:field_mapper:mapper-plugin"
    "py-schema-validator:schema_validator:validator-plugin"
    "py-jsonl-source:jsonl_source:source-plugin"
)
# name:source:world (the field mapper reads lookup tables, so its world
# adds wasi:filesystem/preopens: plugins/js/wit/world.wit)
js_plugins=(
    "js-field-mapper:field-mapper/index.js:ferry:js-plugins/mapper-plugin-with-files"
    "js-schema-validator:schema-validator/index.js:ferry:plugin/validator-plugin"
)

say() { printf 'polyglot: %s\n' "$*"; }

# The sha256 of the given files' paths and contents, plus extra text.
inputs_hash() {
    local extra="$1"
    shift
    {
        printf '%s\n' "$extra"
        sha256sum "scripts/polyglot.sh"
        find "$@" -type f \( -name '*.py' -o -name '*.js' -o -name '*.mjs' -o -name '*.wit' -o -name '*.json' -o -name '*.rs' -o -name '*.toml' -o -name '*.lock' \) \
            -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print0 |
            sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}

# Copies a fresh build to dist only when it differs.
ship() {
    local built="$1" name="$2" started="$3"
    local out="$dist/$name.wasm" state
    if cmp -s "$built" "$out"; then
        state="unchanged"
    else
        cp "$built" "$out.tmp"
        mv "$out.tmp" "$out"
        state="updated"
    fi
    printf '%-34s %9d bytes  %s in %ss\n' "plugins/dist/$name.wasm" "$(stat -c %s "$out")" "$state" "$((SECONDS - started))"
}

up_to_date() {
    local name="$1" hash="$2"
    [[ -f "$dist/$name.wasm" && -f "$stamps/$name" ]] &&
        [[ "$(cat "$stamps/$name")" == "$hash $(sha256sum < "$dist/$name.wasm" | cut -d' ' -f1)" ]]
}

stamp() {
    local name="$1" hash="$2"
    printf '%s %s' "$hash" "$(sha256sum < "$dist/$name.wasm" | cut -d' ' -f1)" > "$stamps/$name"
}

# --- Python -------------------------------------------------------------------

venv="$work/venv"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY_VERSION"; then
    say "installing componentize-py $COMPONENTIZE_PY_VERSION into ${venv#"$root"/}"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

deny_sockets="$work/deny-sockets/release/ferry-deny-sockets"
deny_hash="$(inputs_hash deny plugins/python/deny-sockets)"
if [[ ! -x "$deny_sockets" || ! -f "$stamps/deny-sockets" || "$(cat "$stamps/deny-sockets")" != "$deny_hash" ]]; then
    say "building ferry-deny-sockets"
    cargo build --release --locked --quiet \
        --manifest-path plugins/python/deny-sockets/Cargo.toml \
        --target-dir "$work/deny-sockets"
    printf '%s' "$deny_hash" > "$stamps/deny-sockets"
fi

for entry in "${python_plugins[@]}"; do
    IFS=: read -r name package world <<< "$entry"
    world="ferry:plugin/$world"
    hash="$(inputs_hash "componentize-py $COMPONENTIZE_PY_VERSION $world $deny_hash" \
        wit plugins/python/ferry_plugin "plugins/python/$package")"
    if up_to_date "$name" "$hash"; then
        printf '%-34s %9d bytes  up to date\n' "plugins/dist/$name.wasm" "$(stat -c %s "$dist/$name.wasm")"
        continue
    fi
    started=$SECONDS
    # Only the plugin and the helper go into the component.
    stage="$work/py/$name"
    rm -rf "$stage"
    mkdir -p "$stage"
    cp -r plugins/python/ferry_plugin "plugins/python/$package" "$stage/"
    find "$stage" -name '__pycache__' -prune -exec rm -rf {} +
    (cd "$stage" && "$venv/bin/componentize-py" --quiet -d "$root/wit" -w "$world" \
        componentize "$package" -p . -o "$work/$name.raw.wasm")
    "$deny_sockets" "$work/$name.raw.wasm" "$work/$name.wasm" 2> "$work/$name.deny.log" ||
        { cat "$work/$name.deny.log" >&2; exit 1; }
    ship "$work/$name.wasm" "$name" "$started"
    stamp "$name" "$hash"
done

# --- JavaScript ---------------------------------------------------------------

js="$root/plugins/js"
lock_hash="$(cat "$js/package.json" "$js/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ ! -d "$js/node_modules" || ! -f "$stamps/npm" || "$(cat "$stamps/npm")" != "$lock_hash" ]]; then
    say "npm ci in plugins/js"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s' "$lock_hash" > "$stamps/npm"
fi

# The WIT the JavaScript plugins build against: ferry's and plugins/js/wit.
js_wit="$work/js-wit"
rm -rf "$js_wit"
cp -r "$js/wit" "$js_wit"
mkdir -p "$js_wit/deps/ferry-plugin"
cp wit/ferry.wit "$js_wit/deps/ferry-plugin/"

for entry in "${js_plugins[@]}"; do
    name="${entry%%:*}"
    rest="${entry#*:}"
    source="${rest%%:*}"
    world="${rest#*:}"
    hash="$(inputs_hash "$lock_hash $world" wit plugins/js/wit plugins/js/ferry-plugin "plugins/js/$(dirname "$source")" plugins/js/build.mjs)"
    if up_to_date "$name" "$hash"; then
        printf '%-34s %9d bytes  up to date\n' "plugins/dist/$name.wasm" "$(stat -c %s "$dist/$name.wasm")"
        continue
    fi
    started=$SECONDS
    node "$js/build.mjs" "$js/$source" "$js_wit" "$world" "$work/$name.wasm"
    ship "$work/$name.wasm" "$name" "$started"
    stamp "$name" "$hash"
done
