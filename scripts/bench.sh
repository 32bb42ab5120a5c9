#!/usr/bin/env bash
# Runs every benchmark and records the figures: throughput (the sandboxed
# file pipeline next to the same code run natively, and the boundary's cost
# per record), databases (PostgreSQL CDC and upserts next to pg_recvlogical
# and psql's \copy), reload (throughput while a mapper is swapped every
# 10 ms, and the swap pause) and two-way sync (SQLite to SQLite).
#
#   bash scripts/bench.sh            # all of them (about half an hour on 2 cores, most of it the release build)
#   bash scripts/bench.sh throughput reload
#
# Each benchmark prints its own table and one machine-readable line per
# figure:
#
#   bench: <name> ratio=<x> ours=<v> theirs=<v> unit=<u>   a comparison, measured side by side in one run
#   bench: <name> value=<v> unit=<u>                       a plain figure
#
# The lines go to bench/RESULTS.md with the machine, the date, the commit
# and the commands. Not part of the test command: the benchmarks build in
# release mode and want a quiet machine.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh

all=(throughput databases reload two-way)
if [ "$#" -gt 0 ]; then selected=("$@"); else selected=("${all[@]}"); fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
commands=()
for b in "${selected[@]}"; do
    case "$b" in
        throughput|databases|reload)
            cmd="cargo bench -p ferry-tests --bench $b"
            ;;
        two-way)
            cmd="bash scripts/bench-two-way.sh"
            ;;
        *)
            echo "error: no benchmark named '$b'; known: ${all[*]}" >&2
            exit 2
            ;;
    esac
    echo "== bench: $cmd"
    commands+=("$cmd")
    $cmd 2>&1 | tee -a "$log"
done

mkdir -p bench
{
    echo "# Benchmark results"
    echo
    echo "Written by \`bash scripts/bench.sh\`; each line compares ferry (ours) with a"
    echo "reference run side by side in the same run (theirs), or gives a plain figure."
    echo "Numbers depend on the machine: compare ratios, and rerun before and after a"
    echo "change on the same machine."
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- rustc: $(rustc --version)"
    echo "- commands:"
    for c in "${commands[@]}"; do echo "  - \`$c\`"; done
    echo
    echo '```'
    grep -E '^bench: [a-z0-9_]+ (ratio|value)=' "$log" || true
    echo '```'
} > bench/RESULTS.md
echo "== bench: figures written to bench/RESULTS.md"
grep -E '^bench: [a-z0-9_]+ (ratio|value)=' "$log" || true
