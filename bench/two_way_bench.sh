#!/usr/bin/env bash
# Two-way sync between two real daemons: how long a new file takes to reach the other machine,
# and what two idle daemons cost the service and themselves.
#
# One in-memory Azurite on a loopback port, started with `--debug FILE` (its debug log has
# one `BlobStorageContextMiddleware: RequestMethod=…` line per incoming request and one
# `DispatchMiddleware: Operation=…` line naming what it is). Two `devlogd run` daemons, A and
# B, each with its own HOME, XDG dirs and DEVLOGD_MACHINE_ID, config
#   [remote] url = <container>/journal
#   [sync]   mode = "two-way", pull_interval_s = BENCH_INTERVAL (every other setting default,
#            so a change waits sync.debounce_ms = 300 before its push)
# A starts with BENCH_SEED files of 1 KiB; once B has them all and both are idle:
#   (a) latency: BENCH_SAMPLES times, after a random pause of 0 to BENCH_INTERVAL seconds (so
#       the write falls at a random point of B's pull cycle), write a new small file on A and
#       read B's journal every 20 ms until the file is there with the right bytes. Reports
#       p50, p90 and max of the delay; the p50 is compared with pull interval + 1 s. (A file
#       waits for A's debounce and push, then for B's next pull: about half an interval
#       plus a fraction of a second on average.)
#   (b) idle cost: both settled, an interval and 2 s more of quiet, then BENCH_IDLE_S seconds
#       with nothing but the two daemons talking to Azurite (no `ctl status` either). Counts
#       the requests Azurite logged in that window, in all and by kind, per poll per daemon
#       (requests ÷ (idle_s ÷ interval) ÷ 2), and each daemon's CPU seconds (/proc/PID/stat)
#       and voluntary context switches (/proc/PID/task/*/status, all threads: those alive
#       at both ends, and those started meanwhile; threads that ended are counted apart) in
#       the window.
# Prints Markdown on stdout, progress on stderr.
#
# Environment:
#   BENCH_INTERVAL  sync.pull_interval_s of both daemons (5)
#   BENCH_SAMPLES   latency samples (20)
#   BENCH_IDLE_S    the idle window in seconds (60)
#   BENCH_SEED      files on A before the daemons start (100)
#   BENCH_SEED_RNG  seed of the random pauses (1)
#   BENCH_DEVLOGD   a devlogd binary to use; without it the script runs
#                   `cargo build --release --bin devlogd`
#   BENCH_KEEP=1    keep the work dir (daemon logs, Azurite's debug log)
# Needs python3 and Azurite (tests/azurite).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
interval=${BENCH_INTERVAL:-5}
samples=${BENCH_SAMPLES:-20}
idle_s=${BENCH_IDLE_S:-60}
seed=${BENCH_SEED:-100}
rng=${BENCH_SEED_RNG:-1}
azurite=${DEVLOGD_AZURITE_BIN:-$repo/tests/azurite/node_modules/.bin/azurite-blob}

say() { printf 'two_way_bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
lib() { python3 "$here/benchlib.py" "$@" 9>&-; }

command -v python3 >/dev/null || die "python3 is required"
[[ -x $azurite ]] || die "Azurite is not installed: (cd tests/azurite && npm ci)"
if [[ -n ${BENCH_DEVLOGD:-} ]]; then
  devlogd=$BENCH_DEVLOGD
else
  say "building devlogd (cargo build --release)"
  (cd "$repo" && cargo build --release --bin devlogd) >&2
  devlogd=${CARGO_TARGET_DIR:-$repo/target}/release/devlogd
fi
[[ -x $devlogd ]] || die "no devlogd binary at $devlogd"

work=$(mktemp -d "${TMPDIR:-/tmp}/devlogd-two-way.XXXXXX")
source "$here/azurite.sh"
pids=()
stop_daemons() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_daemons
  stop_azurite
  if [[ ${BENCH_KEEP:-} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sas=$(lib sas)
debug_log=$work/azurite-debug.log
start_azurite --inMemoryPersistence --debug "$debug_log"
say "Azurite $("$azurite" --version 2>/dev/null | tail -n1) on 127.0.0.1:$port (in memory, debug log)"
container=two-way
lib container "$port" "$container" create
url="http://127.0.0.1:$port/devstoreaccount1/$container/journal"

# machine NAME: HOME, XDG dirs and config under $work/NAME; the journal is $HOME/.devlog.
machine() {
  local d=$work/$1
  mkdir -p "$d/home/.devlog" "$d/config" "$d/state" "$d/data"
  mkdir -p -m 700 "$d/run"
  printf '[remote]\nurl = "%s"\n\n[sync]\nmode = "two-way"\npull_interval_s = %s\n' "$url" "$interval" >"$d/devlogd.toml"
  chmod 600 "$d/devlogd.toml"
}
# on NAME ARGS...: devlogd ARGS in machine NAME's clean environment (exec_on: in place of
# the calling (sub)shell, so that `exec_on a run &` leaves the daemon's own pid in $!).
on() { (exec_on "$@"); }
exec_on() {
  local d=$work/$1 id=machine-$1
  shift
  exec env -i PATH="$PATH" HOME="$d/home" NO_COLOR=1 AZURE_STORAGE_SAS_TOKEN="$sas" \
    XDG_CONFIG_HOME="$d/config" XDG_STATE_HOME="$d/state" XDG_DATA_HOME="$d/data" \
    XDG_RUNTIME_DIR="$d/run" DEVLOGD_MACHINE_ID="$id" "$devlogd" "$@" --config "$d/devlogd.toml"
}
machine a
machine b
say "generating $seed files of 1 KiB on A"
lib gen "$work/a/home/.devlog/seed" "$seed" 10 1024
mkdir -p "$work/a/home/.devlog/latency"
printf '# latency samples land here\n' >"$work/a/home/.devlog/latency/README.md"

for m in a b; do
  exec_on "$m" run 9>&- >"$work/daemon-$m.log" 2>&1 &
  pids+=($!)
done
pid_a=${pids[0]} pid_b=${pids[1]}
say "daemons: A pid $pid_a, B pid $pid_b (pull interval $interval s)"

# settled NAME: ctl status says idle with nothing pending.
settled() {
  on "$1" ctl status --json 2>/dev/null 9>&- |
    python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s.get("state") == "idle" and s.get("pending_paths") == 0 else 1)' 2>/dev/null
}
# wait_same SECONDS: both daemons settled and both journals the same.
wait_same() {
  local deadline=$((SECONDS + $1))
  until diff -r -q "$work/a/home/.devlog" "$work/b/home/.devlog" >/dev/null 2>&1 && settled a && settled b; do
    for p in "$pid_a" "$pid_b"; do
      kill -0 "$p" 2>/dev/null || { tail -n 20 "$work"/daemon-*.log >&2; die "a daemon exited"; }
    done
    ((SECONDS < deadline)) || { tail -n 20 "$work"/daemon-*.log >&2; die "the journals did not converge in $1 s"; }
    sleep 0.2
  done
}
t0=$SECONDS
wait_same 120
say "B has A's $seed files; both idle ($((SECONDS - t0)) s)"

cat >"$work/two_way.py" <<'PY'
import datetime, json, os, random, re, statistics, sys, time


def latency(a, b, samples, interval, rng, out):
    random.seed(rng)
    delays = []
    for i in range(samples):
        time.sleep(random.uniform(0, interval))
        rel = f"latency/sample-{i:03}.md"
        body = f"# sample {i}\n{time.time_ns()}\n".encode() + b"x" * random.randrange(10, 500) + b"\n"
        t0 = time.monotonic()
        with open(os.path.join(a, rel), "wb") as f:
            f.write(body)
        target = os.path.join(b, rel)
        while True:
            try:
                with open(target, "rb") as f:
                    if f.read() == body:
                        break
            except FileNotFoundError:
                pass
            if time.monotonic() - t0 > 120:
                sys.exit(f"sample {i} did not reach B in 120 s")
            time.sleep(0.02)
        delays.append(time.monotonic() - t0)
        print(f"two_way_bench: sample {i + 1}/{samples}: {delays[-1]:.2f} s", file=sys.stderr)
    json.dump(delays, open(out, "w"))


def proc(pid):
    """CPU seconds (the process, all threads) and each thread's context switches."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                counts = dict(line.split(":", 1) for line in f if "ctxt_switches" in line)
            threads[tid] = (int(counts["voluntary_ctxt_switches"]),
                            int(counts["nonvoluntary_ctxt_switches"]))
        except (FileNotFoundError, KeyError, ValueError):
            pass  # a thread that ended meanwhile
    return {"cpu": cpu, "threads": threads, "main": threads.get(str(pid), (0, 0))}


def window(before, after):
    """What happened between two readings: a thread alive at both counts its difference, one
    started meanwhile all of its count; one that ended meanwhile (the runtime's idle blocking
    threads end after 10 s) is counted apart, its last switches lost."""
    b, a = before["threads"], after["threads"]
    vol = sum(n[0] - b.get(t, (0, 0))[0] for t, n in a.items())
    invol = sum(n[1] - b.get(t, (0, 0))[1] for t, n in a.items())
    return {"cpu": after["cpu"] - before["cpu"], "vol": vol, "invol": invol,
            "main_vol": after["main"][0] - before["main"][0],
            "started": len(set(a) - set(b)), "ended": len(set(b) - set(a))}


def idle(pid_a, pid_b, seconds, out):
    before = {"a": proc(pid_a), "b": proc(pid_b)}
    start = time.time()
    time.sleep(seconds)
    end = time.time()
    after = {"a": proc(pid_a), "b": proc(pid_b)}
    json.dump({"start": start, "end": end,
               "daemons": {m: window(before[m], after[m]) for m in before}},
              open(out, "w"))


KINDS = {
    "Container_ListBlobFlatSegment": "List Blobs",
    "Container_ListBlobHierarchySegment": "List Blobs (hierarchy)",
    "Blob_GetProperties": "Get Blob Properties",
    "Blob_Download": "Get Blob",
    "BlockBlob_Upload": "Put Blob",
    "Blob_StartCopyFromURL": "Copy Blob",
    "Blob_Delete": "Delete Blob",
    "Container_GetProperties": "Get Container Properties",
    "Container_Create": "Create Container",
}
LINE = re.compile(r"^(\S+) (\S+) \w+: (\w+): (.*)$")


def requests(log, start, end):
    """Every request Azurite logged whose first line falls in [start, end): its operation
    (None when it was refused before being dispatched) and its status code."""
    reqs = {}
    for line in open(log, errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        stamp, rid, where, rest = m.groups()
        if where == "BlobStorageContextMiddleware" and rest.startswith("RequestMethod="):
            t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            if start <= t < end:
                reqs[rid] = {"method": rest.split()[0].split("=", 1)[1], "op": None, "status": None}
        elif rid in reqs and where == "DispatchMiddleware" and rest.startswith("Operation="):
            reqs[rid]["op"] = rest.split("=", 1)[1].strip()
        elif rid in reqs and where == "EndMiddleware":
            s = re.search(r"StatusCode=(\d+)", rest)
            reqs[rid]["status"] = s.group(1) if s else None
    return list(reqs.values())


def report(delays_file, idle_file, log, interval, idle_s, samples, seed):
    delays = sorted(json.load(open(delays_file)))
    w = json.load(open(idle_file))

    def pct(p):
        return delays[max(0, min(len(delays) - 1, round(p / 100 * (len(delays) - 1))))]

    target = interval + 1.0
    p50 = statistics.median(delays)
    out = [
        f"(a) latency, A → B, {len(delays)} samples (a new file of 30–530 bytes on A at a random "
        f"point of B's {interval} s pull cycle, read on B every 20 ms):",
        "",
        "| p50 s | p90 s | max s | mean s | min s | p50 ÷ (interval + 1 s) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {p50:.2f} | {pct(90):.2f} | {delays[-1]:.2f} | {statistics.mean(delays):.2f} | "
        f"{delays[0]:.2f} | {p50 / target:.2f}" + (" (within)" if p50 <= target else " (over)") + " |",
    ]
    reqs = requests(log, w["start"], w["end"])
    window = w["end"] - w["start"]
    polls = window / interval
    per_poll = lambda n: n / polls / 2
    kinds = {}
    for r in reqs:
        k = KINDS.get(r["op"], r["op"] or f"{r['method']} (not dispatched)")
        kinds.setdefault(k, {"n": 0, "status": {}})
        kinds[k]["n"] += 1
        st = r["status"] or "?"
        kinds[k]["status"][st] = kinds[k]["status"].get(st, 0) + 1
    out += [
        "",
        f"(b) idle: both daemons left alone for {window:.1f} s ({polls:.1f} pull intervals "
        f"each); {seed + samples + 1} files on each side; requests Azurite received:",
        "",
        "| request | in the window | per poll per daemon | answers |",
        "|---|---:|---:|---|",
    ]
    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["n"]):
        answers = ", ".join(f"{n} × {s}" for s, n in sorted(v["status"].items()))
        out.append(f"| {k} | {v['n']} | {per_poll(v['n']):.2f} | {answers} |")
    out.append(f"| **all** | **{len(reqs)}** | **{per_poll(len(reqs)):.2f}** | |")
    out += [
        "",
        "| daemon | CPU s in the window | CPU ms per poll | voluntary context switches (all threads) | per poll | of them the main thread | involuntary | threads started / ended |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, d in sorted(w["daemons"].items()):
        out.append(
            f"| {m.upper()} | {d['cpu']:.2f} | {d['cpu'] * 1000 / polls:.1f} | {d['vol']} | "
            f"{d['vol'] / polls:.1f} | {d['main_vol']} | {d['invol']} | {d['started']} / {d['ended']} |"
        )
    print("\n".join(out))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "latency":
        latency(args[0], args[1], int(args[2]), float(args[3]), int(args[4]), args[5])
    elif cmd == "idle":
        idle(int(args[0]), int(args[1]), float(args[2]), args[3])
    elif cmd == "report":
        report(args[0], args[1], args[2], float(args[3]), float(args[4]), int(args[5]), int(args[6]))
PY

say "(a) latency: $samples samples"
python3 "$work/two_way.py" latency "$work/a/home/.devlog" "$work/b/home/.devlog" "$samples" \
  "$interval" "$rng" "$work/delays.json" 9>&-
wait_same 120
say "(b) idle: both settled; $((interval + 2)) s of quiet, then a window of $idle_s s"
sleep "$((interval + 2))"
python3 "$work/two_way.py" idle "$pid_a" "$pid_b" "$idle_s" "$work/idle.json" 9>&-
for p in "$pid_a" "$pid_b"; do kill -0 "$p" 2>/dev/null || die "a daemon exited during the window"; done
sleep 1 # Azurite's log lines of the window's last requests
status_b=$(on b ctl status --json 2>/dev/null 9>&- || true)
stop_daemons

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo "### Two-way sync: two daemons, pull interval $interval s"
echo
echo "- $(date -u +%Y-%m-%d), $(nproc) cores${cpu:+ ($cpu)}, $(uname -sr)"
echo "- $("$devlogd" --version 2>/dev/null | head -n1) (source $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?'))"
echo "- Azurite $("$azurite" --version 2>/dev/null | tail -n1), in memory, --debug log, on 127.0.0.1; node $(node --version)"
echo "- two \`devlogd run\` daemons, each its own HOME and DEVLOGD_MACHINE_ID, \`[sync] mode = \"two-way\"\`, \`pull_interval_s = $interval\`, other settings default; one container prefix"
echo
python3 "$work/two_way.py" report "$work/delays.json" "$work/idle.json" "$debug_log" \
  "$interval" "$idle_s" "$samples" "$seed"
if [[ -n $status_b ]]; then
  echo
  python3 -c 'import json,sys
s = json.loads(sys.argv[1])
lp = s.get("last_pull") or {}
print("B at the end (ctl status): state %s, mode %s, last pull %s" % (s.get("state"), s.get("mode"), json.dumps(lp, sort_keys=True)))' "$status_b" || true
fi
