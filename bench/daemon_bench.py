#!/usr/bin/env python3
"""devlogd run: write-to-blob latency and idle cost, against an in-memory Azurite.

  bench/daemon_bench.py [--edits 200] [--idle-seconds 60] [--sizes 10000x1000,100000x1000]

1. Latency: the daemon (default debounce 300 ms) watches a small journal; 200 times, one
   file is rewritten and the blob is polled (one keep-alive HTTP connection, every 2 ms)
   until it holds the new bytes. Reports p50/p99/max of write-to-blob time.
2. Idle: for each FILESxDIRS size, the tree is generated, the daemon pushes it (start-up
   pass) and is left alone; CPU seconds (utime+stime from /proc) and RSS (VmRSS, VmHWM)
   are read over --idle-seconds. The daemon must make no request and burn no CPU.

Needs python3, Azurite (tests/azurite, `npm ci`) and a release build (`cargo build
--release`, or DEVLOGD=path). Every Azurite start passes --disableTelemetry. Prints Markdown.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchlib  # noqa: E402


def say(msg):
    print(f"daemon_bench: {msg}", file=sys.stderr, flush=True)


class Azurite:
    def __init__(self, work):
        binary = os.environ.get(
            "DEVLOGD_AZURITE_BIN",
            os.path.join(REPO, "tests/azurite/node_modules/.bin/azurite-blob"),
        )
        if not os.path.exists(binary):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=os.path.join(REPO, "tests/azurite"), check=True)
        self.port = benchlib.free_port()
        self.log = os.path.join(work, "azurite.log")
        self.proc = subprocess.Popen(
            [binary, "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
             "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", str(self.port)],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        if benchlib.wait_ready(self.port, self.log, 30) != 0:
            raise SystemExit("Azurite did not start; see " + self.log)
        self.sas = benchlib.account_sas()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def url(self, container):
        return f"http://127.0.0.1:{self.port}/{benchlib.ACCOUNT}/{container}"

    def get(self, container, name):
        path = f"/{benchlib.ACCOUNT}/{container}/{urllib.parse.quote(name)}?{self.sas}"
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        return body if resp.status == 200 else None

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


class Daemon:
    def __init__(self, binary, work, root, remote_url, sas):
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": work,
            "XDG_CONFIG_HOME": os.path.join(work, "config"),
            "XDG_STATE_HOME": os.path.join(work, "state"),
            "XDG_DATA_HOME": os.path.join(work, "data"),
            "XDG_RUNTIME_DIR": os.path.join(work, "run"),
            "AZURE_STORAGE_SAS_TOKEN": sas,
        }
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        self.config = os.path.join(work, "devlogd.toml")
        with open(self.config, "w") as f:
            f.write(f'root = "{root}"\n[remote]\nurl = "{remote_url}"\n')
        self.binary = binary
        self.proc = subprocess.Popen([binary, "run", "--config", self.config], env=self.env,
                                     stdout=open(os.path.join(work, "daemon.log"), "w"),
                                     stderr=subprocess.STDOUT)

    def status(self):
        out = subprocess.run([self.binary, "ctl", "status", "--json", "--config", self.config],
                             env=self.env, capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def wait_settled(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.status()
            if s and s["state"] == "idle" and s["pending_paths"] == 0 and s["pushes"] >= 1:
                return s
            time.sleep(0.2)
        raise SystemExit("the daemon did not settle")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wakeups(self):
        """Voluntary context switches per thread (tid -> count): a thread that sleeps until
        something happens adds none while nothing does."""
        out = {}
        task_dir = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            out[tid] = int(line.split()[1])
            except FileNotFoundError:
                pass  # a thread that ended meanwhile
        return out

    def memory_kib(self):
        vals = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS", "VmHWM")):
                    k, v = line.split(":")
                    vals[k] = int(v.split()[0])
        return vals

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def percentile(values, p):
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


def latency(binary, az, work, edits):
    root = os.path.join(work, "lat-root")
    os.makedirs(root)
    with open(os.path.join(root, "today.md"), "w") as f:
        f.write("start\n")
    d = Daemon(binary, os.path.join(work, "lat"), root, az.url("latency"), az.sas)
    try:
        d.wait_settled(60)
        samples = []
        for i in range(edits):
            body = f"edit {i} {'x' * (i % 500)}\n".encode()
            t0 = time.monotonic()
            with open(os.path.join(root, "today.md"), "wb") as f:
                f.write(body)
            while az.get("latency", "today.md") != body:
                if time.monotonic() - t0 > 30:
                    raise SystemExit(f"edit {i} did not arrive")
                time.sleep(0.002)
            samples.append((time.monotonic() - t0) * 1000)
            time.sleep(0.05)
        return samples
    finally:
        d.stop()


def idle(binary, az, work, files, dirs, seconds):
    root = os.path.join(work, f"idle-{files}")
    say(f"generating {files} files in {dirs} directories")
    benchlib.gen(root, files, dirs, 1024)
    d = Daemon(binary, os.path.join(work, f"idle-{files}-home"), root, az.url(f"idle{files}"), az.sas)
    try:
        t0 = time.time()
        s = d.wait_settled(3600)
        say(f"start-up pass of {files} files took {time.time() - t0:.1f} s ({s['files_in_index']} in the index)")
        pushes0 = d.status()["pushes"]
        time.sleep(2)
        # The window holds no status request: nothing but the daemon itself.
        cpu0, wake0 = d.cpu_seconds(), d.wakeups()
        time.sleep(seconds)
        cpu, wake1 = d.cpu_seconds() - cpu0, d.wakeups()
        wakeups = sum(n - wake0[t] for t, n in wake1.items() if t in wake0)
        s = d.status()
        mem = d.memory_kib()
        return {"cpu": cpu, "rss": mem["VmRSS"] / 1024, "hwm": mem["VmHWM"] / 1024,
                "pushes": s["pushes"] - pushes0, "wakeups": wakeups}
    finally:
        d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--sizes", default="10000x1000,100000x1000")
    args = ap.parse_args()
    binary = os.environ.get("DEVLOGD", os.path.join(REPO, "target/release/devlogd"))
    if "DEVLOGD" not in os.environ:
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    work = tempfile.mkdtemp(prefix="devlogd-daemon-bench-")
    az = Azurite(work)
    try:
        say(f"latency: {args.edits} edits")
        samples = latency(binary, az, work, args.edits)
        rows = []
        for size in filter(None, args.sizes.split(",")):
            files, dirs = (int(x) for x in size.split("x"))
            say(f"idle: {files} files, {args.idle_seconds} s")
            rows.append((files, dirs, idle(binary, az, work, files, dirs, args.idle_seconds)))
    finally:
        az.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"### Daemon benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n")
    print(f"Write-to-blob latency, {len(samples)} single-file edits, debounce 300 ms, Azurite in memory:\n")
    print("| p50 ms | p99 ms | max ms | target p50 | target p99 |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {percentile(samples, 50):.0f} | {percentile(samples, 99):.0f} | {max(samples):.0f} | ≤ 400 | ≤ 700 |\n")
    print(f"Idle daemon over {args.idle_seconds} s after its start-up pass:\n")
    print("| files | dirs | CPU ms | CPU ms per minute | thread wake-ups | RSS MiB | peak RSS MiB | pushes while idle |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for files, dirs, r in rows:
        per_min = r["cpu"] * 1000 * 60 / args.idle_seconds
        print(f"| {files} | {dirs} | {r['cpu'] * 1000:.0f} | {per_min:.0f} | {r['wakeups']} | {r['rss']:.1f} | {r['hwm']:.1f} | {r['pushes']} |")


if __name__ == "__main__":
    main()
