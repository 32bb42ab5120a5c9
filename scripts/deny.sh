#!/usr/bin/env bash
# Supply-chain check of both Cargo workspaces with cargo-deny, configured by
# deny.toml at the repo root (the same file serves plugins/, passed with
# --config):
#   licenses, bans, sources  - always; any failure makes this script fail.
#   advisories               - needs the RustSec advisory database, a git
#                              repository on GitHub. It runs when the database
#                              can be fetched or a usable local copy is in
#                              $CARGO_HOME/advisory-dbs; otherwise it is
#                              reported as skipped and does not fail the run.
# Installs the pinned cargo-deny first if it is missing (a build from crates.io,
# 3.5 to 4 minutes on 2 cores). Quiet on success: one line per check; on a
# failure it prints cargo-deny's full report for that workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)

# 0.20.2 builds with Rust 1.88 or newer (we are on 1.95). Its CLI takes the
# global options (--config, --offline, --manifest-path) before `check`.
deny_version=0.20.2
config="$root_dir/deny.toml"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { echo "deny: $*"; }

installed=$(cargo deny --version 2>/dev/null | awk '{print $2}' || true)
if [ "$installed" != "$deny_version" ]; then
    say "installing cargo-deny $deny_version${installed:+ (found $installed)}; takes a few minutes"
    if ! cargo install --locked cargo-deny --version "$deny_version" >"$tmp/install.log" 2>&1; then
        cat "$tmp/install.log" >&2
        say "FAILED: could not install cargo-deny $deny_version" >&2
        exit 1
    fi
fi

deny() { cargo deny --color never --log-level warn --config "$config" "$@"; }

# Config entries that only one workspace uses show up as "not encountered" in
# the other one. Print the deny.toml lines that neither workspace used.
unused_codes='unmatched-skip|unmatched-skip-root|license-not-encountered|license-exception-not-encountered'
unused_entries() {
    awk -v codes="^warning\\[($unused_codes)\\]" '
        $0 ~ codes { want = 1; next }
        want && match($0, /deny\.toml:[0-9]+/) {
            print substr($0, RSTART, RLENGTH); want = 0
        }' "$1" | sort -u
}

failed=0

# --- licenses, bans, sources --------------------------------------------------
# plugins/ runs without a --target filter: it builds for wasm32-wasip2 but also
# runs its unit tests on the host target, so both graphs matter.
check_ws() { # name dir
    local name=$1 dir=$2 log="$tmp/$1.log" start end
    start=$(date +%s)
    if (cd "$dir" && deny check licenses bans sources) >"$log" 2>&1; then
        end=$(date +%s)
        say "$(printf '%-8s' "$name") $(tail -n 1 "$log") ($((end - start))s)"
        # Warnings that are not about unused config entries are worth seeing.
        grep -E '^warning\[' "$log" | grep -Ev "^warning\\[($unused_codes)\\]" \
            | sed "s/^/deny: $name: /" || true
    else
        cat "$log" >&2
        say "FAILED: $name: $(tail -n 1 "$log")" >&2
        failed=1
    fi
    unused_entries "$log" >"$tmp/$name.unused"
}
check_ws root "$root_dir"
check_ws plugins "$root_dir/plugins"

for entry in $(comm -12 "$tmp/root.unused" "$tmp/plugins.unused"); do
    say "warning: $entry is used by neither workspace; remove it"
done

# --- advisories ----------------------------------------------------------------
db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
shopt -s nullglob
db_dirs=("$db_root"/advisory-db-*)
shopt -u nullglob
# cargo-deny takes the mtime of .git/FETCH_HEAD as the time of the last fetch,
# and a failed `git fetch` still rewrites that file: keep its old time so that
# the 90-day staleness check below stays honest.
for d in "${db_dirs[@]}"; do
    stat -c %Y "$d/.git/FETCH_HEAD" >"$tmp/fetch_head.$(basename "$d")" 2>/dev/null || true
done
if timeout 120 cargo deny --config "$config" fetch db >"$tmp/fetch.log" 2>&1; then
    db_note="fetched now"; why=""
else
    for d in "${db_dirs[@]}"; do
        saved=$(cat "$tmp/fetch_head.$(basename "$d")" 2>/dev/null || true)
        if [ -n "$saved" ]; then touch -d "@$saved" "$d/.git/FETCH_HEAD"; else rm -f "$d/.git/FETCH_HEAD"; fi
    done
    why=$(grep -Eo 'Could not resolve host: [^ ]+|Failed to connect[^.]*|[Tt]imed out[^.]*' "$tmp/fetch.log" | head -n 1 || true)
    [ -n "$why" ] || why=$(grep -v '^\s*$' "$tmp/fetch.log" | tail -n 1 || true)
    [ -n "$why" ] || why="no answer in 120s"
    db_note="not refreshed: $why"
fi
shopt -s nullglob
db_dirs=("$db_root"/advisory-db-*) # again: a first fetch clones one
shopt -u nullglob
db_error='repository is stale|FETCH_HEAD|HEAD timestamp|advisory database'
skipped=""
for ws in root plugins; do
    dir=$root_dir; [ "$ws" = plugins ] && dir="$root_dir/plugins"
    log="$tmp/$ws.advisories.log"
    # --offline: check against the copy on disk (just fetched, or left by an
    # earlier fetch); cargo-deny refuses a copy older than 90 days.
    if (cd "$dir" && deny --offline check advisories) >"$log" 2>&1; then
        db_date=$(git -C "${db_dirs[0]:-$db_root/advisory-db}" log -1 --format=%cs 2>/dev/null || echo "?")
        say "$(printf '%-8s' "$ws") $(tail -n 1 "$log") (RustSec database of $db_date, $db_note)"
    elif [ -n "$why" ] && grep -Eq "\\[ERROR\\].*($db_error)" "$log"; then
        # The fetch failed and no usable copy is on disk. (A database that was
        # fetched but does not load is a failure, handled below.)
        if grep -q 'repository is stale' "$log"; then
            skipped="the RustSec database in $db_root is older than 90 days and could not be refreshed ($why)"
        else
            skipped="no RustSec advisory database: it could not be fetched ($why) and there is no local copy in $db_root"
        fi
        break
    else
        cat "$log" >&2
        say "FAILED: $ws: $(tail -n 1 "$log")" >&2
        failed=1
    fi
done
if [ -n "$skipped" ]; then
    say "advisories SKIPPED (not a failure): $skipped"
fi

if [ "$failed" -ne 0 ]; then
    say "FAILED (cargo-deny $deny_version, config deny.toml)" >&2
    exit 1
fi
