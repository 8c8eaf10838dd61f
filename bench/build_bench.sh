#!/usr/bin/env bash
# What it costs to build and test devlogd, for two commits in one run on this machine.
#
# For each commit (BASE, then HEAD): a fresh clone under a temporary directory with its own
# empty target directory, then, one step at a time:
#   clean release build   `cargo build --release --locked` (wall time; dependencies included,
#                         the registry cache in ~/.cargo is warm for both)
#   binary sizes          every executable in target/release (bytes)
#   test build            `cargo test --no-run --locked` (debug; wall time) and the number and
#                         total size of the integration-test binaries it linked
#   suite                 `cargo test --no-fail-fast` (wall time; the tests' own summary lines
#                         counted: passed / failed)
#   unsafe                occurrences of the `unsafe` keyword in src/ outside comments
#   src lines             lines of src/**/*.rs
# Prints one Markdown table (rows: what; columns: the two commits) on stdout; progress and
# each step's log go to stderr and the work dir. Run it on a quiet machine: the timings are
# wall clock on shared cores.
#
# Usage: bench/build_bench.sh BASE [HEAD]      (HEAD defaults to HEAD of this repository)
# Environment:
#   BENCH_SKIP_SUITE=1  skip the suite run (the slowest step)
#   BENCH_KEEP=1        keep the work dir (clones and targets: several GB)
# Needs the test dependencies of scripts/test (Azurite in tests/azurite of this repository).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
base=${1:?usage: bench/build_bench.sh BASE [HEAD]}
head=${2:-HEAD}
azurite=${DEVLOGD_AZURITE_BIN:-$repo/tests/azurite/node_modules/.bin/azurite-blob}

say() { printf 'build_bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
[[ -x $azurite ]] || die "Azurite is not installed: run scripts/test once (or cd tests/azurite && npm ci)"

work=$(mktemp -d /tmp/devlogd-build-bench.XXXXXX)
[[ -n ${BENCH_KEEP:-} ]] || trap 'rm -rf "$work"' EXIT

# seconds TIME-FILE: the wall seconds a `/usr/bin/time -f %e` run wrote.
elapsed() { tail -n 1 "$1"; }

measure() { # measure NAME REV -> $work/NAME.tsv (key<TAB>value)
  local name=$1 rev=$2 dir="$work/$1" out="$work/$1.tsv"
  git clone -q --no-local "$repo" "$dir"
  git -C "$dir" checkout -q "$(git -C "$repo" rev-parse "$rev")"
  ln -s "$(cd "$(dirname "$azurite")/../.." && pwd)/node_modules" "$dir/tests/azurite/node_modules"
  printf 'commit\t%s\n' "$(git -C "$dir" rev-parse --short HEAD)" >"$out"

  say "$name ($rev): clean release build"
  (cd "$dir" && /usr/bin/time -f %e -o "$work/$name.release.time" \
    cargo build --release --locked >"$work/$name.release.log" 2>&1) \
    || die "$name: release build failed (see $work/$name.release.log)"
  printf 'clean release build (s)\t%s\n' "$(elapsed "$work/$name.release.time")" >>"$out"
  for bin in devlogd devlog; do
    local size=-
    [[ -x $dir/target/release/$bin ]] && size=$(stat -c %s "$dir/target/release/$bin")
    printf 'release binary %s (bytes)\t%s\n' "$bin" "$size" >>"$out"
  done

  say "$name ($rev): debug build of the tests"
  (cd "$dir" && /usr/bin/time -f %e -o "$work/$name.norun.time" \
    cargo test --no-run --locked >"$work/$name.norun.log" 2>&1) \
    || die "$name: test build failed (see $work/$name.norun.log)"
  printf 'test build, debug, clean (s)\t%s\n' "$(elapsed "$work/$name.norun.time")" >>"$out"
  # The integration-test binaries: one per `Executable tests/….rs` line cargo printed.
  local count=0 bytes=0 path
  while read -r path; do
    count=$((count + 1))
    bytes=$((bytes + $(stat -c %s "$dir/${path#"$dir/"}")))
  done < <(grep -o 'Executable tests/[^ ]* (\([^)]*\))' "$work/$name.norun.log" \
    | sed 's/.*(\(.*\))/\1/')
  printf 'integration-test binaries linked\t%s\n' "$count" >>"$out"
  printf 'their size on disk (MB)\t%s\n' "$((bytes / 1000000))" >>"$out"

  if [[ -z ${BENCH_SKIP_SUITE:-} ]]; then
    say "$name ($rev): the suite"
    (cd "$dir" && DEVLOGD_AZURITE_BIN="$azurite" /usr/bin/time -f %e -o "$work/$name.suite.time" \
      cargo test --no-fail-fast --locked >"$work/$name.suite.log" 2>&1) || true
    printf 'suite wall time, built (s)\t%s\n' "$(elapsed "$work/$name.suite.time")" >>"$out"
    local passed failed
    passed=$(grep -o '[0-9]* passed' "$work/$name.suite.log" | awk '{s+=$1} END {print s+0}')
    failed=$(grep -o '[0-9]* failed' "$work/$name.suite.log" | awk '{s+=$1} END {print s+0}')
    printf 'tests passed / failed\t%s / %s\n' "$passed" "$failed" >>"$out"
  fi

  printf 'unsafe in src/\t%s\n' "$(find "$dir/src" -name '*.rs' -print0 | xargs -0 cat \
    | sed 's://.*$::' | grep -ow unsafe | wc -l)" >>"$out"
  printf 'lines of src/\t%s\n' "$(find "$dir/src" -name '*.rs' -print0 | xargs -0 cat | wc -l)" >>"$out"
  [[ -n ${BENCH_KEEP:-} ]] || rm -rf "$dir"
}

measure before "$base"
measure after "$head"

say "machine: $(nproc) cores, load now $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/before.tsv" "$work/after.tsv" <<'EOF'
import sys
rows = [dict(l.rstrip("\n").split("\t", 1) for l in open(p)) for p in sys.argv[1:]]
keys = list(rows[0])
print(f"| | before ({rows[0]['commit']}) | after ({rows[1]['commit']}) |")
print("|---|---:|---:|")
for k in keys[1:]:
    print(f"| {k} | {rows[0].get(k, '-')} | {rows[1].get(k, '-')} |")
EOF
