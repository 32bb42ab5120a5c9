#!/usr/bin/env bash
# Runs the example end to end: a throwaway operations database, the orders
# CDC pipeline streaming into the SQLite warehouse while business happens,
# then the customers delta sync. Prints what landed where.
#
#   bash examples/cdc-to-warehouse/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

bash "$repo/scripts/setup.sh" >/dev/null
bash "$repo/plugins/build.sh"
cargo build --quiet --manifest-path "$repo/Cargo.toml" -p ferry-cli
ferry="${CARGO_TARGET_DIR:-$repo/target}/debug/ferry"

bash ops-db.sh stop
bash ops-db.sh start
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    bash ops-db.sh stop
}
trap cleanup EXIT
rm -rf warehouse .ferry
mkdir -p warehouse

count() {
    python3 - "$1" <<'PY'
import sqlite3, sys
try:
    print(sqlite3.connect("warehouse/warehouse.db").execute(sys.argv[1]).fetchone()[0])
except Exception:
    print(-1)
PY
}

wait_for() { # wait_for <what> <sql> <expected>
    for _ in $(seq 1 240); do
        [[ "$(count "$2")" == "$3" ]] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: ferry stopped while waiting for $1" >&2
            pid=""
            exit 1
        fi
        sleep 0.5
    done
    echo "run.sh: timed out waiting for $1 ($2 gave $(count "$2"), expected $3)" >&2
    exit 1
}

echo "== orders: snapshot, then change data capture"
"$ferry" run orders-cdc.toml --no-watch --quiet &
pid=$!
wait_for "the snapshot of 5000 orders" "SELECT count(*) FROM orders" 5000
echo "snapshot: $(count 'SELECT count(*) FROM orders') orders in the warehouse"

bash ops-db.sh psql -f ops/activity.sql
# 200 new orders, one deleted, one added in a transaction, one refused.
wait_for "the activity" "SELECT count(*) FROM orders WHERE id IN (5200, 6000)" 2
wait_for "the delete" "SELECT count(*) FROM orders" 5200
echo "after the activity: $(count 'SELECT count(*) FROM orders') orders," \
    "$(count "SELECT count(*) FROM orders WHERE status = 'discounted'") discounted in one transaction," \
    "order 4999 deleted: $([[ "$(count 'SELECT count(*) FROM orders WHERE id = 4999')" == 0 ]] && echo yes || echo no)"
kill -INT "$pid"
wait "$pid" || true
pid=""

echo
echo "== customers: nightly delta sync (the first start runs at once)"
"$ferry" run customers-nightly.toml --no-watch --quiet &
pid=$!
wait_for "the customers" "SELECT count(*) FROM customers" 501
kill -INT "$pid"
wait "$pid" || true
pid=""
echo "customers in the warehouse: $(count 'SELECT count(*) FROM customers')"

echo
"$ferry" status .
echo
echo "dead letters (the refused order):"
"$ferry" dlq list .ferry/state.db
