#!/usr/bin/env bash
# devlogd's first push at a distance: Azurite behind a delaying TCP proxy (examples/wan_proxy.rs),
# against the path's raw ceiling (examples/put_load.rs: devlogd's own Put Blob requests, N in
# flight) and rclone, all in one run on one Azurite.
#
# For each round trip in BENCH_RTTS and each of BENCH_ROUNDS rounds, every case writes
# BENCH_FILES files of 1 KiB into a fresh container through the proxy:
#   load-16, load-64, load-128   the load generator at 16, 64 and 128 in flight
#   devlogd                      devlogd push, first push, fresh state (sync.concurrency default)
#   devlogd-fixed16              the same with sync.concurrency = 16 (devlogd before issue 16)
#   rclone, rclone32             rclone copy, default flags and --transfers 32 --checkers 32
# Every round has its own Azurite and proxy, and starts with BENCH_WARMUPS unrecorded warm-ups
# (the load generator at 64 in flight), so no case meets a cold Azurite (its JIT) or a fresh
# proxy: with one, the case right after it ran 15-30 % slower than the same case later on.
# Azurite's own CPU time is read from /proc for every case: it is single-threaded and, on two
# cores, the ceiling at every round trip (busy ≈ 1.0), so the report gives its CPU per 1,000
# puts beside the rates: a client that cost the service more per request would show there.
# Each upload is checked to have stored every file. Prints Markdown (medians; devlogd's fraction
# of the best load-generator rate and its ratio to the better rclone) for BENCHMARKS.md on stdout;
# progress on stderr.
#
# Environment:
#   BENCH_RTTS     round trips in ms ("0 40 100"); the proxy delays each direction by half
#   BENCH_FILES    files per case (1000)
#   BENCH_ROUNDS   rounds (9): each case runs once per round, every other round in reverse order
#                  (a single case varies ±15-20 % on the same Azurite: the medians need rounds)
#   BENCH_WARMUPS  unrecorded warm-ups at the start of each round (3)
#   BENCH_PEER_ROUNDS
#                  rounds that also run rclone (2; it is 3-5× behind at every distance, and
#                  at 100 ms one default rclone run of 1,000 files takes 80 s)
#   BENCH_CASES    cases to run (all of the above)
#   BENCH_BIN      a directory with release builds of devlogd, examples/wan_proxy and
#                  examples/put_load (a target/release); without it the script runs
#                  `cargo build --release --bin devlogd --examples`
#   BENCH_KEEP=1   keep the work dir
# Needs python3, GNU time, rclone (Debian's 1.60 is fine) and Azurite (tests/azurite).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
rtts=${BENCH_RTTS:-0 40 100}
files=${BENCH_FILES:-1000}
rounds=${BENCH_ROUNDS:-9}
peer_rounds=${BENCH_PEER_ROUNDS:-2}
warmups=${BENCH_WARMUPS:-3}
cases=" ${BENCH_CASES:-load-16 load-64 load-128 devlogd devlogd-fixed16 rclone rclone32} "
azurite=${DEVLOGD_AZURITE_BIN:-$repo/tests/azurite/node_modules/.bin/azurite-blob}

say() { printf 'wan_bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
lib() { python3 "$here/benchlib.py" "$@" 9>&-; }

command -v python3 >/dev/null || die "python3 is required"
[[ -x /usr/bin/time ]] || die "GNU time is required at /usr/bin/time: apt-get install time"
command -v rclone >/dev/null || die "rclone is required: apt-get install rclone"
[[ -x $azurite ]] || die "Azurite is not installed: (cd tests/azurite && npm ci)"
if [[ -z ${BENCH_BIN:-} ]]; then
  say "building devlogd and the bench examples (cargo build --release)"
  (cd "$repo" && cargo build --release --bin devlogd --examples) >&2
  BENCH_BIN=${CARGO_TARGET_DIR:-$repo/target}/release
fi
devlogd=$BENCH_BIN/devlogd
proxy=$BENCH_BIN/examples/wan_proxy
load=$BENCH_BIN/examples/put_load
for b in "$devlogd" "$proxy" "$load"; do [[ -x $b ]] || die "no binary at $b"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/devlogd-wan.XXXXXX")
source "$here/azurite.sh"
proxy_pid=
stop_proxy() {
  [[ -n $proxy_pid ]] || return 0
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=
}
cleanup() {
  stop_proxy
  stop_azurite
  if [[ ${BENCH_KEEP:-} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

src=$work/journal
say "generating $files files of 1 KiB"
lib gen "$src" "$files" 100 1024

# Azurite (bench/azurite.sh: it dies with this script), in memory, one per round (below).
sas=$(lib sas)

# start_proxy RTT_MS: the proxy in front of Azurite; sets $pport.
start_proxy() {
  local half=$(($1 / 2))
  "$proxy" --upstream "127.0.0.1:$port" --delay-ms "$half" 9>&- >"$work/proxy.out" 2>"$work/proxy.err" &
  proxy_pid=$!
  local deadline=$((SECONDS + 10))
  until grep -q '^listening on' "$work/proxy.out" 2>/dev/null; do
    ((SECONDS < deadline)) || die "the proxy did not start: $(cat "$work/proxy.err")"
    sleep 0.05
  done
  pport=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/proxy.out")
}

results=$work/results.tsv
: >"$results"

# measure CMD...: wall (s, bash's microsecond clock), CPU and peak RSS (GNU time), and
# Azurite's CPU seconds meanwhile (read outside the timed part) in globals.
measure() {
  local t0 t1 us s0
  s0=$(lib proc-cpu "$port")
  t0=$EPOCHREALTIME
  if ! /usr/bin/time -f '%U %S %M' -o "$work/time.out" "$@" 9>&- \
    >"$work/run.out" 2>"$work/run.err"; then
    tail -n 20 "$work/run.out" "$work/run.err" >&2 || true
    die "failed: $*"
  fi
  t1=$EPOCHREALTIME
  us=$((10#${t1//[.,]/} - 10#${t0//[.,]/}))
  wall=$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))
  read -r user sys rss <"$work/time.out"
  server_cpu=$(python3 -c "print(round($(lib proc-cpu "$port") - $s0, 2))")
}
# record RTT CASE ROUND CHECK EXTRA
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$wall" "$user" "$sys" "$rss" "$4" "$server_cpu" >>"$results"
  say "rtt $1 ms, round $3: $2 $(python3 -c "print(f'{$files / $wall:,.0f} files/s')") ${5:-}"
}
check_count() { # CONTAINER EXPECTED
  local n
  n=$(lib snapshot "$port" "$1" | cut -d' ' -f1)
  if [[ $n == "$2" ]]; then echo ok; else echo "only $n of $2 blobs"; fi
}

run_case() { # RTT ROUND CASE
  local rtt=$1 r=$2 case=$3 c
  c=$(printf 'w%s-%s-r%s' "$rtt" "${case//[^a-z0-9]/}" "$r")
  lib container "$port" "$c" create
  local url="http://127.0.0.1:$pport/devstoreaccount1/$c"
  case $case in
    warmup)
      measure "$load" --container-url "$url" --sas "$sas" --files "$files" --size 1024 \
        --concurrency 64
      say "rtt $rtt ms, round $r: warm-up (not recorded) $(python3 -c "print(f'{$files / $wall:,.0f} files/s')")"
      ;;
    load-*)
      measure "$load" --container-url "$url" --sas "$sas" --files "$files" --size 1024 \
        --concurrency "${case#load-}"
      record "$rtt" "$case" "$r" "$(check_count "$c" "$files")"
      ;;
    devlogd | devlogd-fixed16)
      local d=$work/$c
      mkdir -p "$d/config" "$d/state" "$d/data" "$d/home"
      printf 'root = "%s"\n\n[remote]\nurl = "%s"\n' "$src" "$url" >"$d/devlogd.toml"
      [[ $case == devlogd-fixed16 ]] && printf '\n[sync]\nconcurrency = 16\n' >>"$d/devlogd.toml"
      chmod 600 "$d/devlogd.toml"
      measure env -i PATH="$PATH" HOME="$d/home" NO_COLOR=1 AZURE_STORAGE_SAS_TOKEN="$sas" \
        XDG_CONFIG_HOME="$d/config" XDG_STATE_HOME="$d/state" XDG_DATA_HOME="$d/data" \
        "$devlogd" push --json --config "$d/devlogd.toml"
      local limit
      limit=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])).get("concurrency") or {}; print("limit %s→%s (min %s, max %s)" % (c.get("start"), c.get("final"), c.get("min"), c.get("max")))' "$work/run.out")
      record "$rtt" "$case" "$r" "$(check_count "$c" "$files")" "$limit"
      ;;
    rclone | rclone32)
      local cmd=(rclone copy "$src" "bench:$c")
      [[ $case == rclone32 ]] && cmd+=(--transfers 32 --checkers 32)
      RCLONE_CONFIG=$work/rclone.conf RCLONE_CONFIG_BENCH_TYPE=azureblob \
        RCLONE_CONFIG_BENCH_SAS_URL="http://127.0.0.1:$pport/devstoreaccount1?$sas" measure "${cmd[@]}"
      record "$rtt" "$case" "$r" "$(check_count "$c" "$files")"
      ;;
  esac
  lib container "$port" "$c" delete
}
: >"$work/rclone.conf"

for rtt in $rtts; do
  for ((r = 1; r <= rounds; r++)); do
    # A fresh Azurite (and proxy) for every round: its in-memory store keeps what deleted
    # containers held until its garbage collector runs (every 10 minutes, busy for a while),
    # so a long-lived one slows down as the run goes on and then stalls in the middle of a case.
    start_azurite --inMemoryPersistence
    start_proxy "$rtt"
    say "round trip $rtt ms, round $r: Azurite on 127.0.0.1:$port, proxy on 127.0.0.1:$pport"
    for ((w = 1; w <= warmups; w++)); do run_case "$rtt" "$r" warmup; done
    order=$cases
    # Every other round in reverse order, so no case always runs later after the warm-up.
    if ((r % 2 == 0)); then order=$(printf '%s\n' $cases | tac | tr '\n' ' '); fi
    for case in $order; do
      if [[ $case == rclone* ]] && ((r > peer_rounds)); then continue; fi
      run_case "$rtt" "$r" "$case"
    done
    stop_proxy
    stop_azurite
  done
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo "### WAN benchmark: $files files of 1 KiB, first push, $rounds round(s) per round trip (rclone: $peer_rounds)"
echo
echo "- $(date -u +%Y-%m-%d), $(nproc) cores${cpu:+ ($cpu)}, $(uname -sr)"
echo "- $("$devlogd" --version 2>/dev/null | head -n1) (source $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?')); $(rclone version 2>/dev/null | head -n1) (Debian)"
echo "- Azurite $("$azurite" --version 2>/dev/null | tail -n1), in memory, behind examples/wan_proxy (half the round trip each way); node $(node --version)"
echo "- medians over the rounds; files/s = files ÷ wall"
echo
lib wan-report "$results" "$files"
