#!/usr/bin/env bash
# devlogd pull at a distance: Azurite behind a delaying TCP proxy (examples/wan_proxy.rs),
# against the path's raw download ceiling (examples/get_load.rs: devlogd's own Get Blob
# requests, N in flight) and rclone copy the other way, all in one run on one Azurite per
# round trip.
#
# For each round trip in BENCH_RTTS a fresh in-memory Azurite gets BENCH_FILES files of 1 KiB
# in 100 directories, pushed once by devlogd straight to Azurite (not through the proxy, not
# measured); then BENCH_WARMUPS unrecorded warm-ups (the load generator at 64 in flight through
# the proxy, so no case meets a cold Azurite or a fresh proxy), then BENCH_ROUNDS rounds, every
# other one in reverse order, each case downloading every file through the proxy:
#   list-load-128                the load generator at 128 in flight with its listing (with
#                                metadata, as a pull's) inside its clock: the raw ceiling of a
#                                pull's own requests
#   load-16, load-64, load-128   the load generator at 16, 64 and 128 in flight (each body
#                                read and its MD5 checked, nothing written)
#   devlogd-pull                 `devlogd pull` into the empty journal root of a fresh HOME,
#                                `[sync] mode = "two-way"` (listing, scan, three-way decisions,
#                                checked downloads, index rows; sync.concurrency default)
#   rclone, rclone32             rclone copy container → empty directory, default flags and
#                                --transfers 32 --checkers 32
# Each case runs under /usr/bin/time (wall, client CPU user+sys, peak RSS); Azurite's, the
# proxy's and the rest of the machine's CPU are read from /proc around it. This machine may be
# shared (another worktree's build or tests): each case first waits, up to BENCH_QUIET_S
# (300) seconds, for the rest of the machine to be quiet, and the report names every run
# that still shared it. Every tree written is checked to be byte-identical to the
# source (diff -r); every load-generator body is checked against the blob's MD5. The trees
# stay until the script ends (about 40 MiB each): on an ext4 without a journal (this
# machine's), creating files within a minute of deleting thousands scans past every
# recently deleted inode (the kernel's `recently_deleted`), a sixth of a pull's CPU that
# depended on which case ran before it. Downloads
# change nothing on the service, so one Azurite serves all rounds of a round trip.
# Prints Markdown (medians; devlogd pull's fraction of the best load-generator rate, its speed
# and CPU against each rclone) on stdout; progress on stderr.
#
# rclone's default settings download 4 files at a time: at 100 ms one run of 10,000 files
# takes minutes, so by default rclone runs in 1 round at 40 and 100 ms (BENCH_PEER_ROUNDS_FAR)
# and in BENCH_PEER_ROUNDS rounds at 0 ms.
#
# Environment:
#   BENCH_RTTS        round trips in ms ("0 40 100"); the proxy delays each direction by half
#   BENCH_FILES       files (10000)
#   BENCH_ROUNDS      rounds per round trip (5)
#   BENCH_WARMUPS     unrecorded warm-ups per round trip, before the first round (3)
#   BENCH_PEER_ROUNDS rounds that also run rclone at 0 ms (3)
#   BENCH_PEER_ROUNDS_FAR
#                     rounds that also run rclone at a round trip above 0 (1)
#   BENCH_CASES       cases to run (all of the above)
#   BENCH_BIN         a directory with release builds of devlogd, examples/wan_proxy and
#                     examples/get_load (a target/release); without it the script runs
#                     `cargo build --release --bin devlogd --examples`
#   BENCH_QUIET_S     how long a case waits for the machine to be quiet (300)
#   BENCH_PULL_LOG    a RUST_LOG filter for devlogd pull (e.g. debug): its stderr is kept in
#                     the work dir as pull-RTT-rROUND.log (implies BENCH_KEEP=1)
#   BENCH_KEEP=1      keep the work dir
# Needs python3, GNU time, rclone (Debian's 1.60 is fine) and Azurite (tests/azurite).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
rtts=${BENCH_RTTS:-0 40 100}
files=${BENCH_FILES:-10000}
rounds=${BENCH_ROUNDS:-5}
warmups=${BENCH_WARMUPS:-3}
peer_rounds=${BENCH_PEER_ROUNDS:-3}
peer_rounds_far=${BENCH_PEER_ROUNDS_FAR:-1}
cases=" ${BENCH_CASES:-load-16 load-64 load-128 list-load-128 devlogd-pull rclone rclone32} "
pull_log=${BENCH_PULL_LOG:-}
[[ -z $pull_log ]] || BENCH_KEEP=1
azurite=${DEVLOGD_AZURITE_BIN:-$repo/tests/azurite/node_modules/.bin/azurite-blob}

say() { printf 'pull_wan_bench: %s\n' "$*" >&2; }
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
load=$BENCH_BIN/examples/get_load
for b in "$devlogd" "$proxy" "$load"; do [[ -x $b ]] || die "no binary at $b"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/devlogd-pull-wan.XXXXXX")
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
say "generating $files files of 1 KiB in 100 directories"
lib gen "$src" "$files" 100 1024
sas=$(lib sas)
container=pull-src

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

# setup_home DIR ROOT URL [MODE]: a private HOME/XDG for devlogd below DIR, config in
# DIR/devlogd.toml, sync.mode MODE (two-way). The seeding push is a backup push: a two-way
# push also moves the change mark (a blob in the history area), which the copies would bring.
setup_home() {
  mkdir -p "$1/config" "$1/state" "$1/data" "$1/home" "$2"
  printf 'root = "%s"\n\n[remote]\nurl = "%s"\n\n[sync]\nmode = "%s"\n' "$2" "$3" "${4:-two-way}" >"$1/devlogd.toml"
  chmod 600 "$1/devlogd.toml"
}
# devlogd_env DIR: the clean environment devlogd runs in (HOME and XDG below DIR, the SAS).
devlogd_env() {
  printf '%s\n' PATH="$PATH" HOME="$1/home" NO_COLOR=1 AZURE_STORAGE_SAS_TOKEN="$sas" \
    XDG_CONFIG_HOME="$1/config" XDG_STATE_HOME="$1/state" XDG_DATA_HOME="$1/data"
}

results=$work/results.tsv
: >"$results"

# cpu_now: "MACHINE AZURITE PROXY", CPU seconds so far of the whole machine (user, nice,
# system, irq and softirq of /proc/stat), of Azurite and of the proxy.
cpu_now() {
  python3 -S - "$port" "${proxy_pid:-0}" 9>&- <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
busy = f[0] + f[1] + f[2] + f[5] + f[6]


def cpu(pid):
    try:
        p = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(p[11]) + int(p[12])) / tick
    except (OSError, IndexError, ValueError):
        return 0.0


# Azurite: the processes started with --blobPort PORT (as benchlib.proc_cpu finds them).
azurite = 0.0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    if b"--blobPort" in args and args[args.index(b"--blobPort") + 1:][:1] == [sys.argv[1].encode()]:
        azurite += cpu(pid)
print(f"{busy / tick:.2f} {azurite:.2f} {cpu(sys.argv[2]):.2f}")
PY
}
# wait_quiet: before a case, wait (up to BENCH_QUIET_S, 300 s) until the rest of the machine
# (everything but Azurite and the proxy) has used under 0.2 of a core for 2 s: this machine
# may be shared, and another build or test run halves every figure.
wait_quiet() {
  local waited=0 m0 a0 p0 m1 a1 p1
  while :; do
    read -r m0 a0 p0 < <(cpu_now)
    sleep 2
    read -r m1 a1 p1 < <(cpu_now)
    if python3 -c "import sys; sys.exit(0 if ($m1 - $m0) - ($a1 - $a0) - ($p1 - $p0) < 0.4 else 1)"; then
      ((waited == 0)) || say "quiet again after $waited s"
      return 0
    fi
    ((waited == 0)) && say "the machine is busy with other work: waiting up to ${BENCH_QUIET_S:-300} s"
    waited=$((waited + 2))
    ((waited < ${BENCH_QUIET_S:-300})) || { say "still busy: going on"; return 0; }
  done
}

# measure CMD...: wall (s, bash's microsecond clock), CPU and peak RSS (GNU time), and the
# CPU seconds meanwhile of Azurite, of the proxy and of everything else on the machine (read
# outside the timed part) in globals.
measure() {
  local t0 t1 us m0 a0 p0 m1 a1 p1
  wait_quiet
  read -r m0 a0 p0 < <(cpu_now)
  t0=$EPOCHREALTIME
  if ! /usr/bin/time -f '%U %S %M' -o "$work/time.out" "$@" 9>&- \
    >"$work/run.out" 2>"$work/run.err"; then
    tail -n 20 "$work/run.out" "$work/run.err" >&2 || true
    die "failed: $*"
  fi
  t1=$EPOCHREALTIME
  read -r m1 a1 p1 < <(cpu_now)
  us=$((10#${t1//[.,]/} - 10#${t0//[.,]/}))
  wall=$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))
  read -r user sys rss <"$work/time.out"
  read -r server_cpu proxy_cpu other_cpu < <(python3 -c "
a, p = $a1 - $a0, $p1 - $p0
print(f'{a:.2f} {p:.2f} {max(0.0, ($m1 - $m0) - a - p - ($user + $sys)):.2f}')")
}
# record RTT CASE ROUND CHECK [NOTE]
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$wall" "$user" "$sys" "$rss" "$4" "$server_cpu" "$proxy_cpu" "$other_cpu" >>"$results"
  say "rtt $1 ms, round $3: $2 $(python3 -c "print(f'{$files / $wall:,.0f} files/s, {$user + $sys:.2f} s CPU')") ${5:-}"
}
same_tree() { # DIR: "ok" when DIR holds exactly the source's files and bytes
  if diff -r -q "$src" "$1" >/dev/null 2>&1; then echo ok; else echo "tree differs from the source"; fi
}

run_case() { # RTT ROUND CASE
  local rtt=$1 r=$2 case=$3
  local url="http://127.0.0.1:$pport/devstoreaccount1/$container"
  case $case in
    warmup)
      measure "$load" --container-url "$url" --sas "$sas" --files "$files" --concurrency 64
      say "rtt $rtt ms: warm-up (not recorded) $(python3 -c "print(f'{$files / $wall:,.0f} files/s')")"
      ;;
    list-load-*)
      measure "$load" --container-url "$url" --sas "$sas" --files "$files" \
        --concurrency "${case#list-load-}" --timed-listing 1
      record "$rtt" "$case" "$r" ok
      ;;
    load-*)
      measure "$load" --container-url "$url" --sas "$sas" --files "$files" \
        --concurrency "${case#load-}"
      # get_load fails on a short listing, a non-2xx answer or a body that misses its MD5.
      record "$rtt" "$case" "$r" ok
      ;;
    devlogd-pull)
      local d=$work/pull-$rtt-r$r
      setup_home "$d" "$d/journal" "$url"
      local envs
      mapfile -t envs < <(devlogd_env "$d")
      [[ -z $pull_log ]] || envs+=(RUST_LOG="$pull_log")
      measure env -i "${envs[@]}" "$devlogd" pull --json --config "$d/devlogd.toml"
      [[ -z $pull_log ]] || cp "$work/run.err" "$work/pull-$rtt-r$r.log"
      local note
      note=$(python3 -c 'import json,sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    sys.exit()
print("downloaded %s" % (len(j["downloaded"]) if isinstance(j.get("downloaded"), list) else j.get("downloaded")))' "$work/run.out")
      record "$rtt" "$case" "$r" "$(same_tree "$d/journal")" "$note"
      ;;
    rclone | rclone32)
      local dest=$work/$case-$rtt-r$r
      local cmd=(rclone copy "bench:$container" "$dest")
      [[ $case == rclone32 ]] && cmd+=(--transfers 32 --checkers 32)
      RCLONE_CONFIG=$work/rclone.conf RCLONE_CONFIG_BENCH_TYPE=azureblob \
        RCLONE_CONFIG_BENCH_SAS_URL="http://127.0.0.1:$pport/devstoreaccount1?$sas" measure "${cmd[@]}"
      record "$rtt" "$case" "$r" "$(same_tree "$dest")"
      ;;
  esac
}
: >"$work/rclone.conf"

for rtt in $rtts; do
  start_azurite --inMemoryPersistence
  lib container "$port" "$container" create
  say "round trip $rtt ms: Azurite on 127.0.0.1:$port; seeding $files files with devlogd push (direct, not measured)"
  setup_home "$work/pusher-$rtt" "$src" "http://127.0.0.1:$port/devstoreaccount1/$container" backup
  mapfile -t envs < <(devlogd_env "$work/pusher-$rtt")
  env -i "${envs[@]}" "$devlogd" push --config "$work/pusher-$rtt/devlogd.toml" \
    >"$work/push.log" 2>&1 9>&- || { tail -n 20 "$work/push.log" >&2; die "the seeding push failed"; }
  n=$(lib snapshot "$port" "$container" | cut -d' ' -f1)
  [[ $n == "$files" ]] || die "the seeding push stored $n blobs, not $files"
  start_proxy "$rtt"
  say "round trip $rtt ms: proxy on 127.0.0.1:$pport"
  for ((w = 1; w <= warmups; w++)); do run_case "$rtt" 0 warmup; done
  peers=$peer_rounds
  ((rtt == 0)) || peers=$peer_rounds_far
  for ((r = 1; r <= rounds; r++)); do
    order=$cases
    # Every other round in reverse order, so no case always runs right after another.
    if ((r % 2 == 0)); then order=$(printf '%s\n' $cases | tac | tr '\n' ' '); fi
    for case in $order; do
      if [[ $case == rclone* ]] && ((r > peers)); then continue; fi
      run_case "$rtt" "$r" "$case"
    done
  done
  stop_proxy
  stop_azurite
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo "### Pull at a distance: $files files of 1 KiB, $rounds round(s) per round trip (rclone: $peer_rounds at 0 ms, $peer_rounds_far further)"
echo
echo "- $(date -u +%Y-%m-%d), $(nproc) cores${cpu:+ ($cpu)}, $(uname -sr)"
echo "- $("$devlogd" --version 2>/dev/null | head -n1) (source $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?')); $(rclone version 2>/dev/null | head -n1) (Debian)"
echo "- Azurite $("$azurite" --version 2>/dev/null | tail -n1), in memory, behind examples/wan_proxy (half the round trip each way); node $(node --version)"
echo "- medians over the rounds; files/s = files ÷ wall; CPU = client user+sys (GNU time)"
echo
python3 - "$results" "$files" <<'PY'
import statistics, sys

path, files = sys.argv[1], int(sys.argv[2])
CASES = [
    ("load-16", "get_load, 16 in flight"),
    ("load-64", "get_load, 64 in flight"),
    ("load-128", "get_load, 128 in flight"),
    ("list-load-128", "get_load, 128 in flight, its listing timed"),
    ("devlogd-pull", "devlogd pull (two-way, fresh HOME)"),
    ("rclone", "rclone copy, default"),
    ("rclone32", "rclone copy --transfers 32 --checkers 32"),
]
LOADS = ["load-16", "load-64", "load-128"]
runs, notes, by_round, busy_notes = {}, [], {}, []
for line in open(path):
    rtt, case, rnd, wall, user, sys_, rss, ok, server, proxy, other = line.rstrip("\n").split("\t")
    rtt, wall, server, other = int(rtt), float(wall), float(server), float(other)
    runs.setdefault((rtt, case), []).append(
        dict(rate=files / wall, wall=wall, cpu=float(user) + float(sys_), rss=int(rss) / 1024,
             server=server, busy=server / wall, proxy=float(proxy), other=other)
    )
    if other > 0.1 * wall:
        busy_notes.append(f"{rtt} ms, round {rnd}, {case}: {other:.2f} CPU s of other work on the machine in {wall:.1f} s")
    by_round.setdefault((rtt, int(rnd)), {})[case] = files / wall
    if ok != "ok":
        notes.append(f"{rtt} ms, round {rnd}, {case}: {ok}")
rtts = sorted({r for r, _ in runs})


def med(rtt, case, key):
    v = runs.get((rtt, case))
    return statistics.median(x[key] for x in v) if v else None


out = [
    "| files/s (median, range) | " + " | ".join(f"{rtt} ms round trip" for rtt in rtts) + " |",
    "|---|" + "---:|" * len(rtts),
]
for case, label in CASES:
    cells = []
    for rtt in rtts:
        v = runs.get((rtt, case))
        if v:
            rates = [x["rate"] for x in v]
            cells.append(f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})")
        else:
            cells.append("–")
    if any(c != "–" for c in cells):
        out.append(f"| {label} | " + " | ".join(cells) + " |")

for rtt in rtts:
    out += [
        "",
        f"{rtt} ms round trip:",
        "",
        "| case | runs | wall s | files/s | CPU s (user+sys) | peak RSS MiB | Azurite CPU s | Azurite busy | proxy CPU s | others' CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, label in CASES:
        if (rtt, case) in runs:
            m = lambda k: med(rtt, case, k)
            out.append(
                f"| {label} | {len(runs[(rtt, case)])} | {m('wall'):.3f} | {m('rate'):,.0f} | "
                f"{m('cpu'):.2f} | {m('rss'):.1f} | {m('server'):.2f} | {m('busy'):.2f} | "
                f"{m('proxy'):.2f} | {m('other'):.2f} |"
            )

out += [
    "",
    "| devlogd pull | " + " | ".join(f"{rtt} ms" for rtt in rtts) + " |",
    "|---|" + "---:|" * len(rtts),
]


def row(label, fn):
    cells = []
    for rtt in rtts:
        try:
            cells.append(fn(rtt) or "–")
        except (TypeError, ZeroDivisionError, ValueError):
            cells.append("–")
    out.append(f"| {label} | " + " | ".join(cells) + " |")


def vs_best_load(rtt):
    best = max(med(rtt, c, "rate") for c in LOADS if (rtt, c) in runs)
    d = med(rtt, "devlogd-pull", "rate")
    return f"{d / best:.2f}" + ("" if d / best >= 0.90 else " (below)")


def same_round(rtt):
    ratios = [
        rates["devlogd-pull"] / max(rates[c] for c in LOADS if c in rates)
        for (r_rtt, _), rates in sorted(by_round.items())
        if r_rtt == rtt and "devlogd-pull" in rates and any(c in rates for c in LOADS)
    ]
    return f"{statistics.median(ratios):.2f} (lowest {min(ratios):.2f})" if ratios else None


def speed(peer):
    def f(rtt):
        x = med(rtt, "devlogd-pull", "rate") / med(rtt, peer, "rate")
        return f"{x:.2f}×" + ("" if x > 1 else " (behind)")
    return f


def cpu(peer):
    def f(rtt):
        x = med(rtt, "devlogd-pull", "cpu") / med(rtt, peer, "cpu")
        return f"{x:.2f}" + ("" if x < 1 else " (more)")
    return f


row("÷ best get_load (target ≥ 0.90)", vs_best_load)
row("÷ best get_load of the same round (median of rounds)", same_round)


def vs_listing_ceiling(rtt):
    return f"{med(rtt, 'devlogd-pull', 'rate') / med(rtt, 'list-load-128', 'rate'):.2f}"


row("÷ get_load 128 with its listing timed (a pull's own requests)", vs_listing_ceiling)
row("files/s ÷ rclone default (target > 1)", speed("rclone"))
row("files/s ÷ rclone 32/32 (target > 1)", speed("rclone32"))
row("CPU ÷ rclone default (target < 1)", cpu("rclone"))
row("CPU ÷ rclone 32/32 (target < 1)", cpu("rclone32"))
if busy_notes:
    out += ["", "Runs that shared the machine with other work (over 0.1 of a core):", ""]
    out += [f"- {n}" for n in busy_notes]
if notes:
    out += ["", "Checks that failed:", ""] + [f"- {n}" for n in notes]
print("\n".join(out))
PY
