#!/usr/bin/env bash
# Large-file uploads: devlogd push against rclone copy, on one machine in one run, both talking
# to the same Azurite (disk persistence, in the work dir) on a loopback port.
#
# Data sets, each in its own journal root, of random bytes (/dev/urandom) in *.md files so that
# devlogd's default include filter takes them:
#   64m   8 files of 64 MiB (512 MiB)
#   1g    1 file of 1 GiB
#   NxS   N files of S bytes; S may end in k, m or g (KiB, MiB, GiB): e.g. 2x8m for a quick try
# For each set and round, alternating which tool goes first, times under /usr/bin/time (wall,
# user+sys CPU, peak RSS):
#   devlogd push   first push into an empty container, with a fresh state dir
#   devlogd-enc    the same with `[encryption] enabled = true` (DEVLOG_PASSPHRASE set): it makes
#                  the key (Argon2id) of its empty container, then uploads encrypted blobs
#   rclone copy    into a fresh container, default flags
# A tool that fails is not fatal: its exit code and first error line are reported, and the
# other tool's figures are still printed. Afterwards every blob is checked with a client of
# this script's own (Get Blob Properties with the SAS, Python's urllib): it must exist, have the
# local file's size, and a Content-MD5 property equal to the local file's MD5 (base64). An
# encrypted push's blobs have encrypted names and the MD5 of their ciphertext: they are counted,
# their sizes compared with the files' encrypted sizes, the key blob looked for, and in the
# rounds of BENCH_RESTORE_CHECK the set is restored (`devlogd restore --to`, not timed) and
# compared byte for byte (diff -r).
# Prints Markdown tables (medians, MB/s, ratios; with devlogd and devlogd-enc, encrypted ÷
# plain per round too) for BENCHMARKS.md on stdout; progress goes to
# stderr. Exits 1 after the report when a tool failed or a check did not pass.
#
# Environment:
#   BENCH_SETS     data sets, separated by commas or spaces ("64m,1g")
#   BENCH_ROUNDS   rounds (1)
#   BENCH_TOOLS    which tools to run, separated by commas or spaces: devlogd, devlogd-enc,
#                  rclone ("devlogd,rclone")
#   BENCH_RESTORE_CHECK rounds whose encrypted pushes are restored and diff -r'd ("1"; "" for none)
#   BENCH_DEVLOGD  a devlogd binary to use; without it the script runs `cargo build --release`
#   BENCH_AZURITE  "disk" (default: --location in the work dir) or "memory" (--inMemoryPersistence)
#   BENCH_RTT      a round trip in ms (0): both tools then reach Azurite through examples/wan_proxy,
#                  which delays each direction by half of it (checks still go direct)
#   BENCH_PROXY    the wan_proxy binary (default: examples/wan_proxy next to the devlogd used)
#   BENCH_KEEP=1   keep the work dir (data, Azurite's files, logs, raw results.tsv)
# Needs python3, GNU time (installed with apt-get when missing and run as root), rclone (Debian's
# 1.60 is fine: apt-get install rclone), Azurite (tests/azurite, installed with npm ci when
# missing), and about twice the data's size free under TMPDIR (the data plus Azurite's copy of
# one tool's upload; containers are deleted after each check; plus the set again while an
# encrypted push is restored for its check).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
sets=${BENCH_SETS:-64m,1g}
sets=${sets//,/ }
rounds=${BENCH_ROUNDS:-1}
tools=${BENCH_TOOLS:-devlogd,rclone}
tools=" ${tools//,/ } "
persistence=${BENCH_AZURITE:-disk}
restore_check=" ${BENCH_RESTORE_CHECK-1} "
restore_check=${restore_check//,/ }
# Any passphrase will do: each encrypted push makes a new key in an empty container.
passphrase=devlogd-bench-passphrase
azurite=${DEVLOGD_AZURITE_BIN:-$repo/tests/azurite/node_modules/.bin/azurite-blob}

say() { printf 'large_bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
uses() { [[ $tools == *" $1 "* ]]; }
lib() { python3 "$here/benchlib.py" "$@" 9>&-; }

# py CMD ARGS...: this script's own helpers (manifest, verify, report), on top of benchlib.py.
py() {
  python3 - "$here" "$@" 9>&- <<'PY'
import base64, hashlib, os, statistics, sys, urllib.parse

sys.path.insert(0, sys.argv[1])
import benchlib

cmd, args = sys.argv[2], sys.argv[3:]


def read_manifest(path):
    """Lines of "NAME<TAB>SIZE<TAB>MD5-BASE64"."""
    rows = []
    for line in open(path):
        name, size, md5 = line.rstrip("\n").split("\t")
        rows.append((name, int(size), md5))
    return rows


if cmd == "manifest":  # ROOT: name, size and MD5 (base64) of every file under ROOT
    root = args[0]
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            path = os.path.join(d, f)
            h = hashlib.md5()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            print(f"{rel}\t{os.path.getsize(path)}\t{base64.b64encode(h.digest()).decode()}")

elif cmd == "verify":  # PORT CONTAINER MANIFEST: "OK", or "MISMATCH: ..." / "MISSING: ..."
    port, container, manifest = int(args[0]), args[1], args[2]
    sas = benchlib.account_sas()
    problems, missing = [], 0
    rows = read_manifest(manifest)
    for name, size, md5 in rows:
        url = (
            f"http://127.0.0.1:{port}/{benchlib.ACCOUNT}/{container}/"
            f"{urllib.parse.quote(name, safe='/')}?{sas}"
        )
        status, headers, body = benchlib.request("HEAD", url)
        if status == 404:
            missing += 1
            continue
        if status != 200:
            problems.append(f"{name}: HTTP {status}")
            continue
        got_size = int(headers.get("Content-Length") or -1)
        got_md5 = headers.get("Content-MD5")
        if got_size != size:
            problems.append(f"{name}: size {got_size}, local {size}")
        if got_md5 != md5:
            problems.append(f"{name}: Content-MD5 {got_md5 or '(none)'}, local {md5}")
    if missing == len(rows):
        print(f"MISSING: no blob of {len(rows)}")
    elif problems:
        more = f", {missing} of {len(rows)} missing" if missing else ""
        print(f"MISMATCH: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "") + more)
    elif missing:
        print(f"MISSING: {missing} of {len(rows)} blobs")
    else:
        print("OK")

elif cmd == "report":  # RESULTS.tsv
    runs = {}
    order = []
    for line in open(args[0]):
        tool, set_, rnd, wall, user, sys_, rss, rc, nbytes, check, err = line.rstrip("\n").split("\t")
        key = (tool, set_)
        if key not in runs:
            order.append(key)
        runs.setdefault(key, []).append(
            dict(round=int(rnd), wall=float(wall), cpu=float(user) + float(sys_),
                 rss=int(rss) / 1024.0, rc=int(rc), bytes=int(nbytes), check=check, err=err)
        )

    def med(rs, k):
        return statistics.median(r[k] for r in rs)

    def good(rs):
        return [r for r in rs if r["rc"] == 0 and r["check"] == "OK"]

    label = {"devlogd": "devlogd push (first push)",
             "devlogd-enc": "devlogd push, encrypted (first push, new key)",
             "rclone": "rclone copy (default flags)"}
    sets_seen = []
    for _, s in order:
        if s not in sets_seen:
            sets_seen.append(s)
    out = [
        "| set | tool | runs ok | wall s | MB/s | CPU s (user+sys) | peak RSS MiB | exit | check |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    failures = []
    for s in sets_seen:
        for tool in ("devlogd", "devlogd-enc", "rclone"):
            rs = runs.get((tool, s))
            if not rs:
                continue
            ok = good(rs)
            # Medians over the runs that worked; a run that failed is shown on its own.
            base = ok or rs
            wall, cpu, rss = med(base, "wall"), med(base, "cpu"), med(base, "rss")
            mbs = f"{rs[0]['bytes'] / 1e6 / wall:,.1f}" if ok and wall > 0 else "—"
            exits = ",".join(sorted({str(r["rc"]) for r in rs}))
            checks = "OK" if all(r["check"] == "OK" for r in rs) else "; ".join(
                sorted({r["check"].split(":")[0] for r in rs if r["check"] != "OK"}))
            note = "" if ok else " (failed run)"
            out.append(
                f"| {s} | {label[tool]} | {len(ok)}/{len(rs)} | {wall:.2f}{note} | {mbs} "
                f"| {cpu:.2f} | {rss:.1f} | {exits} | {checks} |"
            )
            for r in rs:
                if r["rc"] != 0 or r["check"] != "OK":
                    failures.append(
                        f"{tool}, set {s}, round {r['round']}: exit {r['rc']}"
                        + (f", first error line: `{r['err']}`" if r["err"] else "")
                        + f"; check: {r['check']}"
                    )
    if any(t == "devlogd" for t, _ in order): out += [
        "",
        "Ratios of medians, devlogd ÷ rclone (MB/s above 1: devlogd is faster; CPU and RSS below 1: devlogd uses less), and devlogd's peak RSS against the 64 MiB target:",
        "",
        "| set | MB/s | CPU | peak RSS | devlogd peak RSS ÷ 64 MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in sets_seen:
        d, r = runs.get(("devlogd", s)), runs.get(("rclone", s))
        if not d:
            continue
        dok = good(d)
        rss_d = med(dok or d, "rss")
        target = f"{rss_d / 64:.2f} ({'within' if rss_d <= 64 else 'over'})"
        if not dok:
            target += ", failed run"
        if dok and r and good(r):
            rok = good(r)
            ratio = lambda a, b: f"{a / b:.2f}" if b > 0 else "n/a"
            mbs = ratio(med(rok, "wall"), med(dok, "wall"))  # MB/s ratio = inverse wall ratio
            out.append(f"| {s} | {mbs} | {ratio(med(dok, 'cpu'), med(rok, 'cpu'))} "
                       f"| {ratio(med(dok, 'rss'), med(rok, 'rss'))} | {target} |")
        else:
            why = "n/a (devlogd failed)" if not dok else "n/a (rclone failed or not run)"
            out.append(f"| {s} | {why} | {why} | {why} | {target} |")
    if any(t == "devlogd-enc" for t, _ in order) and any(t == "devlogd" for t, _ in order): out += [
        "",
        "Encrypted ÷ plain devlogd, same rounds (MB/s above 1: encrypted is faster; CPU and RSS "
        "below 1: it uses less; per round: the two runs of that round), and the encrypted peak "
        "RSS against the 64 MiB bound:",
        "",
        "| set | MB/s (medians; target ≥ 0.90) | MB/s, per round | CPU | peak RSS | encrypted peak RSS ÷ 64 MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in sets_seen:
        e, p = good(runs.get(("devlogd-enc", s), [])), good(runs.get(("devlogd", s), []))
        if not e or not p:
            if runs.get(("devlogd-enc", s)) or runs.get(("devlogd", s)):
                out.append(f"| {s} | n/a (a run failed) | | | | |")
            continue
        mbs = med(p, "wall") / med(e, "wall")
        walls_p = {r["round"]: r["wall"] for r in p}
        per = ", ".join(f"{walls_p[r['round']] / r['wall']:.2f}" for r in e if r["round"] in walls_p)
        rss_e = med(e, "rss")
        out.append(
            f"| {s} | {mbs:.2f} ({'met' if mbs >= 0.90 else 'below'}) | {per} "
            f"| {med(e, 'cpu') / med(p, 'cpu'):.2f} | {rss_e / med(p, 'rss'):.2f} "
            f"| {rss_e / 64:.2f} ({'within' if rss_e <= 64 else 'over'}) |"
        )
    if failures:
        out += ["", "Failed runs and checks:", ""] + [f"- {f}" for f in failures]
    print("\n".join(out))

else:
    sys.exit(f"unknown command {cmd!r}")
PY
}

# size_bytes 64m -> 67108864
size_bytes() {
  local s=${1,,} n
  case $s in
  *k) n=$((${s%k} * 1024)) ;;
  *m) n=$((${s%m} * 1024 * 1024)) ;;
  *g) n=$((${s%g} * 1024 * 1024 * 1024)) ;;
  *) n=$((s)) ;;
  esac
  echo "$n"
}

# human 67108864 -> "64 MiB"
human() {
  local n=$1 shift unit
  for unit in 30:GiB 20:MiB 10:KiB; do
    shift=${unit%%:*}
    if ((n >= 1 << shift && n % (1 << shift) == 0)); then echo "$((n >> shift)) ${unit#*:}"; return; fi
  done
  echo "$n B"
}

# --- prerequisites ---------------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 is required"
[[ $persistence == disk || $persistence == memory ]] || die "BENCH_AZURITE must be disk or memory"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive number"
for t in $tools; do
  [[ $t == devlogd || $t == devlogd-enc || $t == rclone ]] || die "unknown tool in BENCH_TOOLS: $t"
done
declare -A set_count set_size
for s in $sets; do
  case $s in
  64m) set_count[$s]=8 set_size[$s]=$(size_bytes 64m) ;;
  1g) set_count[$s]=1 set_size[$s]=$(size_bytes 1g) ;;
  [0-9]*x[0-9]*) set_count[$s]=${s%%x*} set_size[$s]=$(size_bytes "${s#*x}") ;;
  *) die "unknown data set $s (64m, 1g, or COUNTxSIZE like 2x8m)" ;;
  esac
done
if [[ ! -x /usr/bin/time ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "GNU time is missing: installing it (apt-get install time)"
    apt-get install -y -q time >&2 || { apt-get update -q >&2 && apt-get install -y -q time >&2; }
  else
    die "GNU time is required at /usr/bin/time: apt-get install time"
  fi
fi
if uses rclone && ! command -v rclone >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "rclone is missing: installing it (apt-get install rclone)"
    apt-get install -y -q rclone >&2 || { apt-get update -q >&2 && apt-get install -y -q rclone >&2; }
  else
    die "rclone is required: apt-get install rclone"
  fi
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
    devlogd=${CARGO_TARGET_DIR:-$repo/target}/release/devlogd
  fi
  [[ -x $devlogd ]] || die "no devlogd binary at $devlogd"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/devlogd-large-bench.XXXXXX")
source "$here/azurite.sh"
proxy_pid=
cleanup() {
  if [[ -n $proxy_pid ]]; then kill "$proxy_pid" 2>/dev/null || true; fi
  stop_azurite
  if [[ ${BENCH_KEEP:-} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- data ------------------------------------------------------------------------------------
total=0
for s in $sets; do
  total=$((total + set_count[$s] * set_size[$s]))
done
need_kib=$((total * 2 / 1024))
avail_kib=$(df -Pk "$work" | awk 'NR == 2 { print $4 }')
((avail_kib > need_kib)) || die "need about $((need_kib / 1024)) MiB free under $(dirname "$work"), have $((avail_kib / 1024))"
for s in $sets; do
  root=$work/sets/$s
  mkdir -p "$root"
  say "generating set $s: ${set_count[$s]} file(s) of ${set_size[$s]} bytes from /dev/urandom"
  for ((i = 1; i <= set_count[$s]; i++)); do
    head -c "${set_size[$s]}" /dev/urandom >"$(printf '%s/large-%02d.md' "$root" "$i")"
  done
  py manifest "$root" >"$work/manifest-$s.tsv"
done

# --- Azurite ---------------------------------------------------------------------------------
# bench/azurite.sh: it dies with this script, however the script ends.
sas=$(lib sas)
if [[ $persistence == disk ]]; then
  mkdir -p "$work/azurite"
  store=(--location "$work/azurite")
else
  store=(--inMemoryPersistence)
fi
start_azurite "${store[@]}"
say "Azurite $("$azurite" --version 2>/dev/null | tail -n1) on 127.0.0.1:$port ($persistence)"

# The port the tools talk to: Azurite's, or a delaying proxy's in front of it.
rtt=${BENCH_RTT:-0}
cport=$port
if ((rtt > 0)); then
  proxy=${BENCH_PROXY:-$(dirname "${devlogd:-${CARGO_TARGET_DIR:-$repo/target}/release/devlogd}")/examples/wan_proxy}
  if [[ ! -x $proxy ]]; then
    (cd "$repo" && cargo build --release --example wan_proxy) >&2
  fi
  [[ -x $proxy ]] || die "no wan_proxy binary at $proxy"
  "$proxy" --upstream "127.0.0.1:$port" --delay-ms $((rtt / 2)) 9>&- >"$work/proxy.out" 2>"$work/proxy.err" &
  proxy_pid=$!
  deadline=$((SECONDS + 10))
  until grep -q '^listening on' "$work/proxy.out" 2>/dev/null; do
    ((SECONDS < deadline)) || die "the proxy did not start: $(cat "$work/proxy.err")"
    sleep 0.05
  done
  cport=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/proxy.out")
  say "round trip $rtt ms: the tools go through a proxy on 127.0.0.1:$cport"
fi

export RCLONE_CONFIG=$work/rclone.conf
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=azureblob
export RCLONE_CONFIG_BENCH_SAS_URL="http://127.0.0.1:$cport/devstoreaccount1?$sas"

# --- measuring -------------------------------------------------------------------------------
results=$work/results.tsv
: >"$results"
failed=0

# measure TOOL SET ROUND CMD...: runs CMD under /usr/bin/time and leaves wall (s), user, sys
# (CPU s), rss (peak, KiB), status (exit code) and err (first error line, or empty) in globals.
# A failing command is reported, not fatal.
measure() {
  local tool=$1 set=$2 round=$3
  shift 3
  say "round $round, set $set: $tool"
  local log=$work/$tool-$set-r$round
  local t0=$EPOCHREALTIME t1 us
  status=0
  # 9>&-: the tool must not hold Azurite's lifeline open if this script dies.
  /usr/bin/time -f '%e %U %S %M' -o "$log.time" "$@" 9>&- >"$log.out" 2>"$log.err" || status=$?
  t1=$EPOCHREALTIME
  # Wall time from bash's microsecond clock: GNU time's %e has only 10 ms resolution.
  us=$((10#${t1//[.,]/} - 10#${t0//[.,]/}))
  wall=$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))
  # GNU time puts "Command exited with non-zero status N" before the figures: take the last line.
  user=0 sys=0 rss=0
  read -r _ user sys rss < <(tail -n 1 "$log.time" 2>/dev/null) || true
  err=
  if [[ $status != 0 ]]; then
    err=$(cat "$log.err" "$log.out" | grep -m1 -iE 'error|fail' || true)
    [[ -n $err ]] || err=$(cat "$log.err" "$log.out" | grep -m1 . || true)
    err=$(printf '%s' "$err" | tr '\t' ' ' | cut -c1-300)
    say "$tool failed on set $set (exit $status): ${err:-no output}"
  fi
}

# record TOOL SET ROUND CONTAINER [CHECK]: checks the uploaded blobs (unless CHECK gives the
# result) and appends a row to results.tsv
record() {
  local tool=$1 set=$2 round=$3 c=$4 check=${5:-}
  if [[ -z $check ]]; then
    check=$(py verify "$port" "$c" "$work/manifest-$set.tsv") || check="MISMATCH: the check itself failed"
  fi
  say "check $tool, set $set: $check"
  [[ $status == 0 && $check == OK ]] || failed=1
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$set" "$round" "$wall" "$user" \
    "$sys" "$rss" "$status" "$((set_count[$set] * set_size[$set]))" "$check" "$err" >>"$results"
  [[ ${BENCH_KEEP:-} == 1 ]] || lib container "$port" "$c" delete
}

# verify_enc SET ROUND CONTAINER CONFIG DEVLOGD...: an encrypted push's check, in verify's words:
# count, encrypted sizes, no name in clear, the key blob; in the rounds of BENCH_RESTORE_CHECK
# also restored and compared byte for byte (direct to Azurite, not through the proxy).
verify_enc() {
  local s=$1 r=$2 c=$3 config=$4 stored out=$work/restored
  shift 4
  stored=$(lib check-stored "$port" "$c" "$work/sets/$s" enc) || stored="the check itself failed"
  if [[ $stored != ok ]]; then echo "MISMATCH: $stored"; return; fi
  if [[ $restore_check != *" $r "* ]]; then echo OK; return; fi
  rm -rf "$out"
  say "round $r, set $s: restoring devlogd-enc's upload to check it (not timed)"
  sed "s|127.0.0.1:$cport/|127.0.0.1:$port/|" "$config" >"$config.direct"
  if ! "$@" restore --config "$config.direct" --to "$out" 9>&- >"$work/restore.log" 2>&1; then
    echo "MISMATCH: restore failed: $(grep -m1 . "$work/restore.log" | tr '\t' ' ' | cut -c1-200)"
  elif diff -r -q "$work/sets/$s" "$out" >/dev/null 2>&1; then
    echo OK
  else
    echo "MISMATCH: the restored set differs from the source"
  fi
  rm -rf "$out"
}

# run_devlogd SET ROUND [VARIANT]: VARIANT devlogd (default) or devlogd-enc ([encryption] on)
run_devlogd() {
  local s=$1 r=$2 v=${3:-devlogd} c d check=
  c=${v/devlogd/dl}-$s-r$r d=$work/$v-$s-r$r
  mkdir -p "$d/config" "$d/state" "$d/data" "$d/home"
  printf 'root = "%s"\n\n[remote]\nurl = "http://127.0.0.1:%s/devstoreaccount1/%s"\n' \
    "$work/sets/$s" "$cport" "$c" >"$d/devlogd.toml"
  local run=(env -i PATH="$PATH" HOME="$d/home" NO_COLOR=1 AZURE_STORAGE_SAS_TOKEN="$sas"
    XDG_CONFIG_HOME="$d/config" XDG_STATE_HOME="$d/state" XDG_DATA_HOME="$d/data")
  if [[ $v == devlogd-enc ]]; then
    printf '\n[encryption]\nenabled = true\n' >>"$d/devlogd.toml"
    run+=(DEVLOG_PASSPHRASE="$passphrase")
  fi
  chmod 600 "$d/devlogd.toml"
  run+=("$devlogd")
  lib container "$port" "$c" create
  measure "$v" "$s" "$r" "${run[@]}" push --config "$d/devlogd.toml"
  if [[ $v == devlogd-enc ]]; then
    check=$(verify_enc "$s" "$r" "$c" "$d/devlogd.toml" "${run[@]}")
  fi
  record "$v" "$s" "$r" "$c" "$check"
}
run_devlogd-enc() { run_devlogd "$1" "$2" devlogd-enc; } # SET ROUND

run_rclone() { # SET ROUND
  local s=$1 r=$2 c=rc-$1-r$2
  lib container "$port" "$c" create
  measure rclone "$s" "$r" rclone copy "$work/sets/$s" "bench:$c"
  record rclone "$s" "$r" "$c"
}

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2 == 1)); then order="devlogd devlogd-enc rclone"; else order="rclone devlogd-enc devlogd"; fi
  for s in $sets; do
    for tool in $order; do
      if uses "$tool"; then "run_$tool" "$s" "$r"; fi
    done
  done
done

# --- report ----------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
describe_sets=
for s in $sets; do
  describe_sets+="${describe_sets:+, }$s = ${set_count[$s]} × $(human "${set_size[$s]}")"
done
echo "### Large-file benchmark: $describe_sets; $rounds round(s)"
echo
echo "- $(date -u +%Y-%m-%d), $(nproc) cores${cpu:+ ($cpu)}, $(uname -sr)"
if uses devlogd || uses devlogd-enc; then
  built=${BENCH_DEVLOGD:+"prebuilt, $devlogd"}
  echo "- $("$devlogd" --version 2>/dev/null | head -n1) (${built:-release build by this script}; source $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?'))"
fi
if uses rclone; then
  flag() { rclone help flags azureblob 2>/dev/null | sed -n "s/.*--azureblob-$1 .*(default \([^)]*\)).*/\1/p" | head -n1; }
  echo "- $(rclone version 2>/dev/null | head -n1), azureblob remote via sas_url, default flags (--transfers 4; chunk size $(flag chunk-size), upload concurrency $(flag upload-concurrency))"
fi
echo "- Azurite $("$azurite" --version 2>/dev/null | tail -n1), $persistence persistence, --silent, on 127.0.0.1; node $(node --version)"
if ((rtt > 0)); then echo "- both tools through examples/wan_proxy: $rtt ms round trip (half each way), no bandwidth cap"; fi
if uses devlogd-enc; then echo "- devlogd-enc: the same binary with \`[encryption] enabled = true\`, DEVLOG_PASSPHRASE set; each push makes its container's key (Argon2id, 46 MiB) and is timed with it"; fi
echo "- random data from /dev/urandom; MB/s = 10^6 bytes ÷ wall; client CPU and peak RSS from GNU time; medians over the rounds that succeeded"
echo "- check: each blob read back with Get Blob Properties (own client): size and Content-MD5 = local MD5"
if uses devlogd-enc; then
  restored="not restored"
  if [[ -n ${restore_check// /} ]]; then restored="restored and diff -r'd in round(s)$restore_check"; fi
  echo "- check, encrypted: blob count, sizes = the files' encrypted sizes, no name in clear, the key blob; ${restored% }"
fi
echo
py report "$results"
exit "$failed"
