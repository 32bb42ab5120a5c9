#!/usr/bin/env bash
# Installs what building and testing ferry needs on a fresh machine. Safe to
# run again: every step checks first.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed; install Rust with rustup first" >&2
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 Rust target (plugins build for it)"
    rustup target add wasm32-wasip2
fi

# PostgreSQL: the SQL tests start a server of their own (initdb, pg_ctl,
# psql; tests/src/pg.rs), found by the same rules as there:
# $FERRY_PG_BIN, `pg_config --bindir`, the highest /usr/lib/postgresql/<v>/bin,
# then PATH. Their TLS test makes certificates with the openssl CLI.
pg_found() {
    if [ -n "${FERRY_PG_BIN:-}" ]; then
        [ -x "$FERRY_PG_BIN/initdb" ]
        return
    fi
    local dir
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then return 0; fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ]; then return 0; fi
    done
    command -v initdb >/dev/null
}
missing=()
pg_found || missing+=(postgresql postgresql-client)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "error: the SQL tests need ${missing[*]}; install them (or set FERRY_PG_BIN to PostgreSQL's bin folder)" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "setup: installing ${missing[*]} (Debian packages; the SQL tests run a PostgreSQL server of their own)"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
