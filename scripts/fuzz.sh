#!/usr/bin/env bash
# Fuzzes ferry's parsers and checks with cargo-fuzz (libFuzzer, nightly
# Rust), one target after the other, and keeps each corpus in the repository.
#
#   bash scripts/fuzz.sh                 # every target, 600 s each
#   bash scripts/fuzz.sh manifest        # one target, 600 s
#   bash scripts/fuzz.sh pgoutput 60     # one target, 60 s
#   bash scripts/fuzz.sh all 120         # every target, 120 s each
#
# Targets (the runtime's in fuzz/targets, the plugins' in plugins/fuzz):
#   manifest    ferry_manifest::parse: no panic; every error's diagnostics
#               point into the text at the right line and column
#   batch       ferry_batch's checks of a plugin's answer (BatchExt::check,
#               check_shape, value_faults, json_fault, check_rows) over
#               arbitrary batches, then what the pipeline does with an
#               accepted one (take, row_json)
#   file_csv    the file plugin's CSV reader (file::read_records)
#   file_jsonl  the file plugin's JSON Lines reader
#   pgoutput    the postgres-cdc plugin's pgoutput message decoder
#
# Each run is a single libFuzzer process (no -fork/-jobs) over three
# folders beside the target's fuzz crate (fuzz/ for the runtime's targets,
# plugins/fuzz/ for the plugins'):
#   corpus/<target>/       what fuzzing found; a run adds to it, then
#                          `cargo fuzz cmin` keeps the inputs that add
#                          coverage (only new code, not new hit counts, if
#                          that is still over $BUDGET_KB KiB), entries over
#                          $MAX_ENTRY bytes are dropped and, past the
#                          budget, the largest ones: the corpora stay small
#   seeds/<target>/        real inputs kept whole (the example manifests,
#                          sample CSV and JSON Lines files, pgoutput
#                          transactions built like the decoder's tests)
#   regressions/<target>/  inputs that once crashed the target, never
#                          minimized away
# A crash stops the run and leaves the input in
# <fuzz crate>/artifacts/<target>/: fix the code, copy the input into
# regressions/<target>/ (the replay tests then guard the fix) and run again.
#
# The three folders are replayed on stable by the ordinary tests
# (scripts/test.sh): fuzz/tests/corpus.rs, plugins/file/tests/fuzz_corpus.rs
# and plugins/postgres-cdc/tests/fuzz_corpus.rs. Nothing in CI builds with
# the fuzzer.
#
# Needs rustup (the nightly toolchain is installed if missing) and installs
# cargo-fuzz with `cargo install` if it is not on PATH. Logs go to
# target/fuzz-logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

which="${1:-all}"
seconds="${2:-600}"
# Inputs are small; a single allocation past this is an over-allocation.
MALLOC_LIMIT_MB="${MALLOC_LIMIT_MB:-256}"
MAX_ENTRY="${MAX_ENTRY:-16384}"
# The most a committed corpus may hold, in KiB of content: past it, the
# largest entries go first.
BUDGET_KB="${BUDGET_KB:-384}"

# name  fuzz dir  max input length
targets=(
    "manifest fuzz/targets 8192"
    "batch fuzz/targets 4096"
    "file_csv plugins/fuzz 4096"
    "file_jsonl plugins/fuzz 4096"
    "pgoutput plugins/fuzz 2048"
)

# fuzz/targets keeps its corpora in fuzz/, plugins/fuzz in itself.
home_of() {
    case "$1" in
        fuzz/targets) echo "fuzz" ;;
        *) echo "$1" ;;
    esac
}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "== installing the nightly toolchain (cargo-fuzz needs it)"
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

mkdir -p target/fuzz-logs
found=0
ran=0
for entry in "${targets[@]}"; do
    read -r name dir max_len <<<"$entry"
    if [ "$which" != all ] && [ "$which" != "$name" ]; then
        continue
    fi
    ran=1
    corpus="$(home_of "$dir")/corpus/$name"
    regressions="$(home_of "$dir")/regressions/$name"
    seeds="$(home_of "$dir")/seeds/$name"
    log="$root/target/fuzz-logs/$name.log"
    mkdir -p "$corpus" "$regressions" "$seeds"
    echo "== $name: ${seconds}s over $corpus (log: target/fuzz-logs/$name.log)"
    # -a: debug assertions (integer overflow panics, as in the test build).
    status=0
    (cd "$dir" && cargo +nightly fuzz run -a --fuzz-dir . "$name" "$root/$corpus" "$root/$seeds" "$root/$regressions" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -malloc_limit_mb="$MALLOC_LIMIT_MB" -rss_limit_mb=2048 -print_final_stats=1) \
        >"$log" 2>&1 || status=$?
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done [0-9]+ runs' "$log" || true
    if [ "$status" -ne 0 ]; then
        found=1
        echo "!! $name failed (exit $status); the input is in $dir/artifacts/$name/:"
        grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written' "$log" | head -8 || true
        continue
    fi
    echo "-- $name: minimizing the corpus"
    (cd "$dir" && cargo +nightly fuzz cmin -a --fuzz-dir . "$name" "$root/$corpus" -- \
        -max_len="$max_len" -timeout=10) >>"$log" 2>&1
    find "$corpus" -type f -size +"${MAX_ENTRY}"c -delete
    total=$(find "$corpus" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    if [ "$total" -gt $((BUDGET_KB * 1024)) ]; then
        # Over budget: keep only the inputs that reach new code, not new
        # hit counts (-use_counters=0: a few times fewer files, same edges).
        (cd "$dir" && cargo +nightly fuzz cmin -a --fuzz-dir . "$name" "$root/$corpus" -- \
            -max_len="$max_len" -timeout=10 -use_counters=0) >>"$log" 2>&1
        total=$(find "$corpus" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    fi
    if [ "$total" -gt $((BUDGET_KB * 1024)) ]; then
        find "$corpus" -type f -printf '%s %p\n' | sort -rn |
            while read -r size path; do
                [ "$total" -le $((BUDGET_KB * 1024)) ] && break
                rm -f "$path"
                total=$((total - size))
            done
    fi
    bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    echo "-- $name: corpus $(find "$corpus" -type f | wc -l) files, $((bytes / 1024)) KiB"
done

if [ "$ran" -eq 0 ]; then
    echo "unknown target '$which'; targets: all $(printf '%s ' "${targets[@]}" | awk '{for(i=1;i<=NF;i+=3) printf "%s ", $i}')" >&2
    exit 2
fi
exit "$found"
