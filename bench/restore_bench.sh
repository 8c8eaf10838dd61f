#!/usr/bin/env bash
# devlogd restore against rclone copy the other way, on one machine in one run, both
# downloading the same blobs from the same in-memory Azurite on a loopback port.
#
# Generates BENCH_FILES files of 1 KiB in BENCH_DIRS directories and pushes them once with
# devlogd (not measured). Then for BENCH_ROUNDS rounds, alternating which tool goes first,
# times under /usr/bin/time (wall, user+sys CPU, peak RSS):
#   devlogd restore   into the empty journal root of a fresh HOME (index rows written)
#   devlogd pull      the same with two-way sync's pull pass (listing, scan, three-way
#                     decisions, downloads, index rows)
#   rclone copy       from the container into an empty directory, default flags; again
#                     with --transfers 32 --checkers 32
# Every restored tree is checked to be byte-identical to the source. Prints Markdown tables
# (medians, ratios) for BENCHMARKS.md on stdout; progress goes to stderr.
#
# Environment:
#   BENCH_FILES   number of files (10000)
#   BENCH_ROUNDS  rounds (3)
#   BENCH_DIRS    directories (100)
#   BENCH_DEVLOGD a devlogd binary to use; without it the script runs `cargo build --release`
#   BENCH_BASELINE another devlogd binary (an older build) restored in the same rounds, for a
#                 before/after figure on the same Azurite and data
#   BENCH_KEEP=1  keep the work dir
# Needs python3, GNU time, rclone and Azurite (tests/azurite), like bench/push_bench.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
files=${BENCH_FILES:-10000}
rounds=${BENCH_ROUNDS:-3}
dirs=${BENCH_DIRS:-100}
azurite=${DEVLOGD_AZURITE_BIN:-$repo/tests/azurite/node_modules/.bin/azurite-blob}

say() { printf 'restore_bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
lib() { python3 "$here/benchlib.py" "$@" 9>&-; }

command -v python3 >/dev/null || die "python3 is required"
[[ -x /usr/bin/time ]] || die "GNU time is required at /usr/bin/time: apt-get install time"
command -v rclone >/dev/null || die "rclone is required: apt-get install rclone"
[[ -x $azurite ]] || die "Azurite is not installed: (cd tests/azurite && npm ci)"
if [[ -n ${BENCH_DEVLOGD:-} ]]; then
  devlogd=$BENCH_DEVLOGD
else
  say "building devlogd (cargo build --release)"
  (cd "$repo" && cargo build --release --bin devlogd) >&2
  devlogd=${CARGO_TARGET_DIR:-$repo/target}/release/devlogd
fi
[[ -x $devlogd ]] || die "no devlogd binary at $devlogd"
baseline=${BENCH_BASELINE:-}
[[ -z $baseline || -x $baseline ]] || die "no baseline devlogd binary at $baseline"

work=$(mktemp -d "${TMPDIR:-/tmp}/devlogd-restore-bench.XXXXXX")
source "$here/azurite.sh"
cleanup() {
  stop_azurite
  if [[ ${BENCH_KEEP:-} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

src=$work/journal
say "generating $files files of 1 KiB in $dirs directories"
lib gen "$src" "$files" "$dirs" 1024

sas=$(lib sas)
start_azurite --inMemoryPersistence
say "Azurite $("$azurite" --version 2>/dev/null | tail -n1) on 127.0.0.1:$port (in memory)"

export RCLONE_CONFIG=$work/rclone.conf
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=azureblob
export RCLONE_CONFIG_BENCH_SAS_URL="http://127.0.0.1:$port/devstoreaccount1?$sas"

container=restore-src
url="http://127.0.0.1:$port/devstoreaccount1/$container"
# devlogd CONFIG-DIR ARGS...: devlogd with a private HOME/XDG below CONFIG-DIR.
devlogd_in() {
  local d=$1
  shift
  env -i PATH="$PATH" HOME="$d/home" NO_COLOR=1 AZURE_STORAGE_SAS_TOKEN="$sas" \
    XDG_CONFIG_HOME="$d/config" XDG_STATE_HOME="$d/state" XDG_DATA_HOME="$d/data" \
    "$devlogd" "$@" --config "$d/devlogd.toml"
}
setup_home() { # DIR ROOT
  mkdir -p "$1/config" "$1/state" "$1/data" "$1/home"
  printf 'root = "%s"\n\n[remote]\nurl = "%s"\n' "$2" "$url" >"$1/devlogd.toml"
  chmod 600 "$1/devlogd.toml"
}
lib container "$port" "$container" create
setup_home "$work/pusher" "$src"
say "pushing the source once with devlogd"
devlogd_in "$work/pusher" push >"$work/push.log" 2>&1 9>&- || { tail -n 20 "$work/push.log" >&2; die "the setup push failed"; }

results=$work/results.tsv
: >"$results"
measure() {
  local case=$1 round=$2
  shift 2
  say "round $round: $case"
  local t0=$EPOCHREALTIME t1 us
  if ! /usr/bin/time -f '%U %S %M' -o "$work/time.out" "$@" 9>&- \
    >"$work/run.log" 2>"$work/run.err"; then
    tail -n 30 "$work/run.log" "$work/run.err" >&2 || true
    die "$case (round $round) failed: $*"
  fi
  t1=$EPOCHREALTIME
  us=$((10#${t1//[.,]/} - 10#${t0//[.,]/}))
  wall=$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))
  read -r user sys rss <"$work/time.out"
}
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$wall" "$user" "$sys" "$rss" "$3" >>"$results"; }
same_tree() { # DIR: "ok" when DIR holds exactly the source's files and bytes
  if diff -r -q "$src" "$1" >/dev/null 2>&1; then echo ok; else echo "tree differs from the source"; fi
}

restore_with() { # CASE BINARY ROUND [SUBCOMMAND: restore (default) or pull]
  local case=$1 bin=$2 r=$3 sub=${4:-restore} d=$work/$1-r$3
  setup_home "$d" "$d/journal"
  local cmd=(env -i PATH="$PATH" HOME="$d/home" NO_COLOR=1 AZURE_STORAGE_SAS_TOKEN="$sas"
    XDG_CONFIG_HOME="$d/config" XDG_STATE_HOME="$d/state" XDG_DATA_HOME="$d/data"
    "$bin" "$sub" --config "$d/devlogd.toml")
  measure "$case" "$r" "${cmd[@]}"
  record "$case" "$r" "$(same_tree "$d/journal")"
  rm -rf "$d"
}
run_devlogd() {
  if [[ -n $baseline ]] && (($1 % 2 == 0)); then restore_with baseline-restore "$baseline" "$1"; fi
  restore_with devlogd-restore "$devlogd" "$1"
  restore_with devlogd-pull "$devlogd" "$1" pull
  if [[ -n $baseline ]] && (($1 % 2 == 1)); then restore_with baseline-restore "$baseline" "$1"; fi
}
run_rclone() {
  local r=$1 variant dest
  for variant in rclone rclone32; do
    dest=$work/$variant-r$r
    local cmd=(rclone copy "bench:$container" "$dest")
    [[ $variant == rclone32 ]] && cmd+=(--transfers 32 --checkers 32)
    measure "$variant-copy" "$r" "${cmd[@]}"
    record "$variant-copy" "$r" "$(same_tree "$dest")"
    rm -rf "$dest"
  done
}
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2 == 1)); then order="devlogd rclone"; else order="rclone devlogd"; fi
  for tool in $order; do "run_$tool" "$r"; done
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo "### Restore benchmark: $files files of 1 KiB in $dirs directories, $rounds round(s)"
echo
echo "- $(date -u +%Y-%m-%d), $(nproc) cores${cpu:+ ($cpu)}, $(uname -sr)"
echo "- $("$devlogd" --version 2>/dev/null | head -n1) (source $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?'))"
[[ -z $baseline ]] || echo "- baseline: $("$baseline" --version 2>/dev/null | head -n1)"
echo "- $(rclone version 2>/dev/null | head -n1), azureblob remote via sas_url"
echo "- Azurite $("$azurite" --version 2>/dev/null | tail -n1), in memory, --silent, on 127.0.0.1"
echo "- medians over the rounds; client CPU and peak RSS from GNU time; files/s = files ÷ wall"
echo
python3 - "$results" "$files" <<'PY'
import statistics, sys
path, files = sys.argv[1], int(sys.argv[2])
rows, notes = {}, []
for line in open(path):
    case, rnd, wall, user, sys_, rss, ok = line.rstrip("\n").split("\t")
    rows.setdefault(case, []).append((float(wall), float(user) + float(sys_), int(rss) / 1024))
    if ok != "ok":
        notes.append(f"round {rnd}, {case}: {ok}")
med = {c: tuple(statistics.median(r[i] for r in v) for i in range(3)) for c, v in rows.items()}
labels = [("devlogd-restore", "devlogd restore"), ("devlogd-pull", "devlogd pull (two-way sync's pass)"), ("baseline-restore", "devlogd restore, baseline build"),
          ("rclone-copy", "rclone copy (default)"),
          ("rclone32-copy", "rclone copy --transfers 32 --checkers 32")]
print("| case | runs | wall s (median) | files/s | CPU s (user+sys) | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|")
for c, label in labels:
    if c in med:
        w, cpu, rss = med[c]
        print(f"| {label} | {len(rows[c])} | {w:.3f} | {files / w:,.0f} | {cpu:.2f} | {rss:.1f} |")
print()
print("Speed-up in files/s (devlogd ÷ rclone; above 1: devlogd is faster):")
print()
for c, label in labels[2:]:
    if c in med and "devlogd-pull" in med and c != "baseline-restore":
        print(f"- pull vs {label}: {med[c][0] / med['devlogd-pull'][0]:.2f}× (CPU {med['devlogd-pull'][1] / med[c][1]:.2f}× its)")
for c, label in labels[2:]:
    if c in med and "devlogd-restore" in med:
        if c == "baseline-restore":
            print(f"- vs the baseline build: {med[c][0] / med['devlogd-restore'][0]:.2f}× (CPU {med['devlogd-restore'][1] / med[c][1]:.2f}× the baseline's)")
            continue
        print(f"- vs {label}: {med[c][0] / med['devlogd-restore'][0]:.2f}×")
if notes:
    print("\nChecks that failed:\n")
    for n in notes:
        print(f"- {n}")
PY
