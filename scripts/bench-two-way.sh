#!/usr/bin/env bash
# Two-way sync timing: SQLite <-> SQLite (both read in full mode), N rows
# (default 20000) in the CRM side. Prints ferry's summary and the wall time
# of three passes: the first sync, a pass where nothing changed, and a pass
# after 10% of the rows changed (half on each side).
#
#   bash scripts/bench-two-way.sh          # builds ferry in release mode first
#   N=100000 bash scripts/bench-two-way.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${FERRY:-}" ]; then
    bash "$repo/plugins/build.sh" >/dev/null
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" -p ferry-cli
fi
ferry=${FERRY:-${CARGO_TARGET_DIR:-$repo/target}/release/ferry}
case "$ferry" in /*) ;; */*) ferry="$PWD/$ferry" ;; esac
dist="$repo/plugins/dist"
N=${N:-20000}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 - "$N" <<'PY'
import sqlite3, sys
n = int(sys.argv[1])
for name in ("left.db", "right.db"):
    c = sqlite3.connect(name)
    c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, credit_limit INTEGER NOT NULL, updated_at INTEGER NOT NULL)")
    if name == "left.db":
        c.executemany("INSERT INTO customers VALUES (?,?,?,?,?)", ((i, f"name {i}", f"c{i}@example.com", i % 5000, 1000 + i) for i in range(n)))
    c.commit()
PY
cat > pipeline.toml <<TOML
[pipeline]
name = "two-way-bench"
batch = { max_records = 512 }
[connections.left]
url = "sqlite:left.db"
[connections.right]
url = "sqlite:right.db"
[plugins.crm]
kind = "connector"
wasm = "$dist/sqlite.wasm"
config = { connection = "left", table = "customers", key = "id" }
grants = { sql = ["left"], timeout_ms = 60000 }
[plugins.billing]
kind = "connector"
wasm = "$dist/sqlite.wasm"
config = { connection = "right", table = "customers", key = "id" }
grants = { sql = ["right"], timeout_ms = 60000 }
[sync]
left = { plugin = "crm", read = { mode = "full" } }
right = { plugin = "billing", read = { mode = "full" } }
fields = ["name", "email", "credit_limit", "updated_at"]
timestamp_field = "updated_at"
TOML
"$ferry" lock pipeline.toml >/dev/null
"$ferry" validate pipeline.toml >/dev/null
t() {
    local start end ms
    start=$(date +%s%N)
    "$ferry" run pipeline.toml --no-watch --quiet | grep -E "finished|synced" | tr -s ' ' | paste -sd' '
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    echo "  wall $ms ms"
    # Both sides are read in full each pass: 2 x N records.
    echo "bench: two_way_sqlite_$1 value=$(( 2 * N * 1000 / (ms > 0 ? ms : 1) )) unit=records/s"
}
echo "first sync ($N rows left -> right):"; t first_sync
echo "second pass (nothing changed):"; t idle_pass
python3 - "$N" <<'PY'
import sqlite3, sys
n = int(sys.argv[1])
l, r = sqlite3.connect("left.db"), sqlite3.connect("right.db")
l.executemany("UPDATE customers SET name = name || ' L', updated_at = updated_at + 1 WHERE id = ?", ((i,) for i in range(0, n, 10)))
r.executemany("UPDATE customers SET credit_limit = credit_limit + 1, updated_at = updated_at + 1 WHERE id = ?", ((i,) for i in range(5, n, 10)))
l.commit(); r.commit()
PY
echo "third pass (10% of rows changed, half on each side):"; t changed_pass
