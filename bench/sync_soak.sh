#!/usr/bin/env bash
# A longer soak of two-way sync's seeded random test (tests/testsuite/sync_random.rs): three
# machines on one directory remote, random creates, edits, renames, deletes and offline
# periods, then quiescence; each seed must end with identical trees and nothing lost.
#
# Usage: bench/sync_soak.sh [SEEDS] [STEPS]     (defaults: 20 seeds of 400 steps)
# Prints one line per seed and a summary; exits 1 at the first seed that fails (its seed is
# printed: DEVLOGD_SYNC_SEED=N replays it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seeds=${1:-20}
steps=${2:-400}
cargo test --test testsuite --no-run --quiet 2>/dev/null || cargo test --test testsuite --no-run
start=$(date +%s)
for ((i = 1; i <= seeds; i++)); do
    seed=$((20261203 + i * 7919))
    t0=$(date +%s%N)
    if ! out=$(DEVLOGD_SYNC_SEED=$seed DEVLOGD_SYNC_STEPS=$steps \
        cargo test --quiet --test testsuite sync_random:: -- --nocapture 2>&1); then
        printf '%s\n' "$out" | tail -n 30
        echo "sync_soak: seed $seed FAILED (DEVLOGD_SYNC_SEED=$seed DEVLOGD_SYNC_STEPS=$steps)"
        exit 1
    fi
    summary=$(printf '%s\n' "$out" | grep -E '^sync_random: [0-9]+ files' || true)
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf 'seed %s: %d.%03d s, %s\n' "$seed" $((ms / 1000)) $((ms % 1000)) "${summary#sync_random: }"
done
echo "sync_soak: $seeds seeds × $steps steps passed in $(( $(date +%s) - start )) s"
