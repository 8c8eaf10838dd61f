#!/usr/bin/env bash
# devlogd push against rclone copy, on one machine in one run, both talking to the same
# in-memory Azurite on a loopback port.
#
# Generates BENCH_FILES files of 1 KiB in BENCH_DIRS directories, then for BENCH_ROUNDS rounds,
# alternating which tool goes first, times under /usr/bin/time (wall, user+sys CPU, peak RSS):
#   devlogd push      first push into an empty container, with a fresh state dir
#   devlogd push      again, nothing changed
#   devlogd-enc       the same two pushes with `[encryption] enabled = true` (DEVLOG_PASSPHRASE
#                     set): the first one makes the key (Argon2id) of its empty container
#   rclone copy       into a fresh container, default flags; again with --transfers 32
#                     --checkers 32; and each re-run with nothing changed
#   find -printf      a walk that stats every file: the floor for a no-change pass
# Each first push is checked to have uploaded every file (devlogd: one blob per file, of its size;
# encrypted: of its encrypted size, no name in clear, plus the key blob; rclone: the count), and
# each no-change run to have rewritten no blob (same names and ETags). An encrypted push is also
# restored (`devlogd restore --to`, not timed) and diff -r'd against the source in the rounds of
# BENCH_RESTORE_CHECK. Rounds alternate the tools' order; BENCH_WARMUPS unrecorded first pushes
# of each devlogd variant come before round 1. Prints Markdown tables (medians, ratios; with
# both devlogd and devlogd-enc, encrypted ÷ plain per round too) for BENCHMARKS.md on stdout;
# progress goes to stderr.
#
# Environment:
#   BENCH_FILES   number of files (10000; 100000 for the no-change-vs-find comparison)
#   BENCH_ROUNDS  rounds (3)
#   BENCH_DIRS    directories (100)
#   BENCH_TOOLS   which tools to run, separated by commas or spaces: devlogd, devlogd-enc,
#                 rclone ("devlogd rclone")
#   BENCH_WARMUPS unrecorded first pushes of each devlogd variant before round 1 (0)
#   BENCH_RESTORE_CHECK rounds whose encrypted push is restored and diff -r'd ("1"; "" for none)
#   BENCH_FRESH_AZURITE=1 a new Azurite for every tool's turn in a round (the in-memory store
#                 slows down as a run's blobs pile up: 11.3 s to 15.6 s over six 10,000-file
#                 pushes into fresh containers, so the second tool of a round is at a loss)
#   BENCH_DEVLOGD a devlogd binary to use; without it the script runs `cargo build --release`
#   BENCH_KEEP=1  keep the work dir (files, logs, raw results.tsv)
# Needs python3, GNU time (installed with apt-get when missing and run as root), rclone (Debian's
# 1.60 is fine) and Azurite (tests/azurite, installed with npm ci when missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
files=${BENCH_FILES:-10000}
rounds=${BENCH_ROUNDS:-3}
dirs=${BENCH_DIRS:-100}
tools=${BENCH_TOOLS:-devlogd rclone}
tools=" ${tools//,/ } "
warmups=${BENCH_WARMUPS:-0}
restore_check=" ${BENCH_RESTORE_CHECK-1} "
restore_check=${restore_check//,/ }
# Any passphrase will do: each encrypted push makes a new key in an empty container.
passphrase=devlogd-bench-passphrase
azurite=${DEVLOGD_AZURITE_BIN:-$repo/tests/azurite/node_modules/.bin/azurite-blob}

say() { printf 'push_bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
uses() { [[ $tools == *" $1 "* ]]; }
lib() { python3 "$here/benchlib.py" "$@" 9>&-; }

# --- prerequisites ---------------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 is required"
for t in $tools; do
  [[ $t == devlogd || $t == devlogd-enc || $t == rclone ]] || die "unknown tool in BENCH_TOOLS: $t"
done
[[ $warmups =~ ^[0-9]+$ ]] || die "BENCH_WARMUPS must be a number"
if [[ ! -x /usr/bin/time ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "GNU time is missing: installing it (apt-get install time)"
    apt-get install -y -q time >&2 || { apt-get update -q >&2 && apt-get install -y -q time >&2; }
  else
    die "GNU time is required at /usr/bin/time: apt-get install time"
  fi
fi
if uses rclone; then
  command -v rclone >/dev/null || die "rclone is required: apt-get install rclone"
fi
if [[ ! -x $azurite ]]; then
  command -v npm >/dev/null || die "Azurite is not installed and npm is missing: install Node.js and npm"
  say "installing Azurite (npm ci in tests/azurite)"
  (cd "$repo/tests/azurite" && npm ci --no-audit --no-fund) >&2
fi
if uses devlogd || uses devlogd-enc; then
  if [[ -n ${BENCH_DEVLOGD:-} ]]; then
    devlogd=$BENCH_DEVLOGD
  else
    say "building devlogd (cargo build --release)"
    (cd "$repo" && cargo build --release --bin devlogd) >&2
    devlogd=$repo/target/release/devlogd
  fi
  [[ -x $devlogd ]] || die "no devlogd binary at $devlogd"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/devlogd-bench.XXXXXX")
source "$here/azurite.sh"
cleanup() {
  stop_azurite
  if [[ ${BENCH_KEEP:-} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- data ------------------------------------------------------------------------------------
src=$work/journal
say "generating $files files of 1 KiB in $dirs directories"
lib gen "$src" "$files" "$dirs" 1024

# --- Azurite ---------------------------------------------------------------------------------
# bench/azurite.sh: it dies with this script, however the script ends.
sas=$(lib sas)
start_azurite --inMemoryPersistence
# fresh_azurite: with BENCH_FRESH_AZURITE=1, Azurite started again (empty) for the next turn.
fresh_azurite() {
  [[ ${BENCH_FRESH_AZURITE:-} == 1 ]] || return 0
  stop_azurite
  start_azurite --inMemoryPersistence
  export RCLONE_CONFIG_BENCH_SAS_URL="http://127.0.0.1:$port/devstoreaccount1?$sas"
}
say "Azurite $("$azurite" --version 2>/dev/null | tail -n1) on 127.0.0.1:$port (in memory)"

export RCLONE_CONFIG=$work/rclone.conf
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=azureblob
export RCLONE_CONFIG_BENCH_SAS_URL="http://127.0.0.1:$port/devstoreaccount1?$sas"

# --- measuring -------------------------------------------------------------------------------
results=$work/results.tsv
: >"$results"

# measure CASE ROUND CMD...: runs CMD under /usr/bin/time, aborts with its log if it fails, and
# leaves wall (s), user, sys (CPU s) and rss (peak, KiB) in globals. Stdout goes to $stdout_to (default: the log).
measure() {
  local case=$1 round=$2
  shift 2
  say "round $round: $case"
  local t0=$EPOCHREALTIME t1 us
  # 9>&-: the tool must not hold Azurite's lifeline open if this script dies.
  if ! /usr/bin/time -f '%U %S %M' -o "$work/time.out" "$@" 9>&- \
    >"${stdout_to:-$work/run.log}" 2>"$work/run.err"; then
    tail -n 30 "$work/run.log" "$work/run.err" >&2 || true
    die "$case (round $round) failed: $*"
  fi
  t1=$EPOCHREALTIME
  # Wall time from bash's microsecond clock: GNU time's %e has only 10 ms resolution.
  us=$((10#${t1//[.,]/} - 10#${t0//[.,]/}))
  wall=$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))
  read -r user sys rss <"$work/time.out"
}
# record CASE ROUND CHECK: a row of results.tsv (none during the warm-ups)
record() {
  [[ -z ${warming:-} ]] || return 0
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$wall" "$user" "$sys" "$rss" "$3" >>"$results"
}
check_full() { # CONTAINER: "ok" when every file is there
  local n
  n=$(lib snapshot "$port" "$1" | cut -d' ' -f1)
  if [[ $n == "$files" ]]; then echo ok; else echo "only $n of $files blobs"; fi
}
check_stored() { # CONTAINER plain|enc: "ok" when every file is there, one blob of the right size
  lib check-stored "$port" "$1" "$src" "$2"
}
check_restored() { # ROUND CONFIG DEVLOGD...: "ok" when `restore --to DIR` gives the source's tree
  local r=$1 config=$2 out=$work/restored
  shift 2
  rm -rf "$out"
  say "round $r: restoring to check (not timed)"
  if ! "$@" restore --config "$config" --to "$out" 9>&- >"$work/restore.log" 2>&1; then
    echo "restore failed: $(grep -m1 . "$work/restore.log" | tr '\t' ' ' | cut -c1-200)"
  elif diff -r -q "$src" "$out" >/dev/null 2>&1; then
    echo ok
  else
    echo "restored tree differs from the source"
  fi
  rm -rf "$out"
}
check_same() { # BEFORE CONTAINER: "ok" when no blob was added or rewritten
  if [[ $(lib snapshot "$port" "$2") == "$1" ]]; then echo ok; else echo "blobs were rewritten"; fi
}

# run_devlogd ROUND [VARIANT]: VARIANT devlogd (default) or devlogd-enc ([encryption] on)
run_devlogd() {
  local r=$1 v=${2:-devlogd} c d mode=plain
  c=${v/devlogd/dl}-r$r d=$work/$v-r$r
  mkdir -p "$d/config" "$d/state" "$d/data" "$d/home"
  printf 'root = "%s"\n\n[remote]\nurl = "http://127.0.0.1:%s/devstoreaccount1/%s"\n' \
    "$src" "$port" "$c" >"$d/devlogd.toml"
  local run=(env -i PATH="$PATH" HOME="$d/home" NO_COLOR=1 AZURE_STORAGE_SAS_TOKEN="$sas"
    XDG_CONFIG_HOME="$d/config" XDG_STATE_HOME="$d/state" XDG_DATA_HOME="$d/data")
  if [[ $v == devlogd-enc ]]; then
    printf '\n[encryption]\nenabled = true\n' >>"$d/devlogd.toml"
    run+=(DEVLOG_PASSPHRASE="$passphrase")
    mode=enc
  fi
  chmod 600 "$d/devlogd.toml"
  run+=("$devlogd")
  lib container "$port" "$c" create
  local cmd=("${run[@]}" push --config "$d/devlogd.toml")
  measure "$v-first" "$r" "${cmd[@]}"
  record "$v-first" "$r" "$(check_stored "$c" "$mode")"
  local before
  before=$(lib snapshot "$port" "$c")
  measure "$v-nochange" "$r" "${cmd[@]}"
  record "$v-nochange" "$r" "$(check_same "$before" "$c")"
  if [[ $mode == enc && -z ${warming:-} && $restore_check == *" $r "* ]]; then
    local restored
    restored=$(check_restored "$r" "$d/devlogd.toml" "${run[@]}")
    say "round $r: restore check of $v: $restored"
    # A row of its own, so that a failure shows beside the figures (its times are the push's).
    record "$v-restore-check" "$r" "$restored"
  fi
  lib container "$port" "$c" delete
}
run_devlogd-enc() { run_devlogd "$1" devlogd-enc; } # ROUND

run_rclone() { # ROUND
  local r=$1 variant c before
  for variant in rclone rclone32; do
    c=$variant-r$r
    local cmd=(rclone copy "$src" "bench:$c")
    [[ $variant == rclone32 ]] && cmd+=(--transfers 32 --checkers 32)
    lib container "$port" "$c" create
    measure "$variant-first" "$r" "${cmd[@]}"
    record "$variant-first" "$r" "$(check_full "$c")"
    before=$(lib snapshot "$port" "$c")
    measure "$variant-nochange" "$r" "${cmd[@]}"
    record "$variant-nochange" "$r" "$(check_same "$before" "$c")"
    lib container "$port" "$c" delete
  done
}

# Warm-ups: Azurite's first thousands of requests are slower (node's JIT), and the page cache is
# cold; not recorded.
for ((w = 1; w <= warmups; w++)); do
  for tool in devlogd devlogd-enc; do
    if uses "$tool"; then fresh_azurite; warming=1 "run_$tool" "w$w"; fi
  done
done
warming=

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2 == 1)); then order="devlogd devlogd-enc rclone"; else order="rclone devlogd-enc devlogd"; fi
  for tool in $order; do
    if uses "$tool"; then fresh_azurite; "run_$tool" "$r"; fi
  done
  stdout_to=/dev/null measure find "$r" find "$src" -printf '%s %T@\n'
  record find "$r" ok
done

# --- report ----------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo "### Push benchmark: $files files of 1 KiB in $dirs directories, $rounds round(s)"
echo
echo "- $(date -u +%Y-%m-%d), $(nproc) cores${cpu:+ ($cpu)}, $(uname -sr)"
if uses devlogd || uses devlogd-enc; then
  built=${BENCH_DEVLOGD:+"prebuilt, $devlogd"}
  echo "- $("$devlogd" --version 2>/dev/null | head -n1) (${built:-release build by this script}; source $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?'))"
fi
if uses rclone; then echo "- $(rclone version 2>/dev/null | head -n1) (Debian), azureblob remote via sas_url"; fi
echo "- Azurite $("$azurite" --version 2>/dev/null | tail -n1), in memory, --silent, on 127.0.0.1; node $(node --version)"
if uses devlogd-enc; then echo "- devlogd-enc: the same binary with \`[encryption] enabled = true\`, DEVLOG_PASSPHRASE set; each first push makes its container's key (Argon2id, 46 MiB) and is timed with it"; fi
if [[ ${BENCH_FRESH_AZURITE:-} == 1 ]]; then echo "- a new, empty Azurite for every tool's turn (BENCH_FRESH_AZURITE=1)"; fi
if ((warmups > 0)); then echo "- $warmups unrecorded warm-up first push(es) of each devlogd variant before round 1"; fi
echo "- medians over the rounds; client CPU and peak RSS from GNU time; files/s = files ÷ wall"
echo
lib report "$results" "$files"
