#!/usr/bin/env python3
"""Helpers for bench/push_bench.sh. Python standard library only.

  benchlib.py sas                          account SAS for Azurite's dev account (no leading '?')
  benchlib.py free-port                    a free loopback port
  benchlib.py wait-ready PORT LOG SECONDS  poll until Azurite answers on PORT (exit 3: port taken)
  benchlib.py gen DIR FILES DIRS SIZE      write FILES files of SIZE bytes spread over DIRS dirs
  benchlib.py container PORT NAME create|delete
  benchlib.py snapshot PORT NAME           "COUNT DIGEST": blob count and a digest of names+ETags
  benchlib.py check-stored PORT NAME ROOT plain|enc
                                           "ok" when the container holds ROOT's files: one blob
                                           each, of the file's size (enc: its encrypted size,
                                           no name in clear, and the key blob)
  benchlib.py report RESULTS.tsv FILES     Markdown tables (medians and ratios) on stdout
  benchlib.py wan-report RESULTS.tsv FILES wan_bench.sh's tables (rates per round trip, ratios)
  benchlib.py proc-cpu PORT                CPU seconds so far of the Azurite serving PORT
"""

import base64
import hashlib
import hmac
import os
import socket
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def account_sas(account=ACCOUNT, key_b64=KEY):
    """Microsoft's "Create an account SAS", service versions 2020-12-06 and later: HMAC-SHA256,
    keyed with the base64-decoded account key, over the newline-joined fields (start, IP and
    encryption scope empty) ending with a newline; the signature base64, then URL-encoded."""
    f = {
        "sv": "2021-08-06",
        "ss": "b",
        "srt": "sco",
        "sp": "rwdlacup",
        "se": "2099-01-01T00:00:00Z",
        "spr": "https,http",
    }
    to_sign = "\n".join(
        [account, f["sp"], f["ss"], f["srt"], "", f["se"], "", f["spr"], f["sv"], "", ""]
    )
    mac = hmac.new(base64.b64decode(key_b64), to_sign.encode(), hashlib.sha256)
    f["sig"] = base64.b64encode(mac.digest()).decode()
    return urllib.parse.urlencode(f, safe="", quote_via=urllib.parse.quote)


# No proxy, ever: everything here talks to 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method, url, timeout=30):
    req = urllib.request.Request(url, method=method, data=b"" if method == "PUT" else None)
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, log, seconds):
    deadline = time.monotonic() + seconds
    url = f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list&{account_sas()}"
    while True:
        text = open(log, errors="replace").read() if os.path.exists(log) else ""
        if "EADDRINUSE" in text:
            return 3
        if "successfully listens on" in text:
            try:
                status, headers, body = request("GET", url, timeout=2)
                if not (headers.get("Server") or "").startswith("Azurite-Blob"):
                    sys.exit(f"port {port} answers, but it is not Azurite")
                if status != 200:
                    sys.exit(f"Azurite refused the account SAS: HTTP {status}: {body[:300]!r}")
                return 0
            except OSError:
                pass
        if time.monotonic() >= deadline:
            sys.exit(f"Azurite not ready on port {port} within {seconds}s; log:\n{text[-2000:]}")
        time.sleep(0.05)


def gen(root, files, dirs, size):
    for d in range(dirs):
        os.makedirs(os.path.join(root, f"d{d:03}"), exist_ok=True)
    for i in range(files):
        head = f"# note {i}\n".encode()
        body = (head + hashlib.sha256(head).hexdigest().encode() * (size // 64 + 1))[:size]
        with open(os.path.join(root, f"d{i % dirs:03}", f"note-{i:06}.md"), "wb") as fh:
            fh.write(body)


def container(port, name, action):
    url = f"http://127.0.0.1:{port}/{ACCOUNT}/{name}?restype=container&{account_sas()}"
    status, _, body = request("PUT" if action == "create" else "DELETE", url)
    if status not in (201, 202):
        sys.exit(f"{action} container {name}: HTTP {status}: {body[:300]!r}")


def blob_elements(port, name):
    """Every <Blob> element of the container's listing, all pages."""
    marker = ""
    while True:
        url = (
            f"http://127.0.0.1:{port}/{ACCOUNT}/{name}?restype=container&comp=list"
            f"&marker={urllib.parse.quote(marker, safe='')}&{account_sas()}"
        )
        status, _, body = request("GET", url)
        if status != 200:
            sys.exit(f"list {name}: HTTP {status}: {body[:300]!r}")
        root = ET.fromstring(body)
        yield from root.iter("Blob")
        marker = root.findtext("NextMarker") or ""
        if not marker:
            return


def snapshot(port, name):
    """Blob count and a digest of (name, ETag) pairs: equal before and after a no-change run
    means nothing was rewritten."""
    digest, count = hashlib.sha256(), 0
    for blob in blob_elements(port, name):
        digest.update(f"{blob.findtext('Name')}\0{blob.findtext('Properties/Etag')}\n".encode())
        count += 1
    return f"{count} {digest.hexdigest()[:16]}"


def listing(port, name):
    """(name, size) of every blob in the container, all pages."""
    return [
        (blob.findtext("Name"), int(blob.findtext("Properties/Content-Length")))
        for blob in blob_elements(port, name)
    ]


# devlogd's encrypted blobs (src/remote/crypt/stream.rs): a 27-byte header, then the plaintext
# in 64 KiB chunks, each sealed with a 16-byte tag, the last one short (empty at a multiple).
ENC_HEADER, ENC_CHUNK, ENC_TAG = 27, 64 * 1024, 16
ENC_KEY_BLOB = ".devlog-history/.key"


def encrypted_len(n):
    return ENC_HEADER + n + ENC_TAG * (n // ENC_CHUNK + 1)


def check_stored(port, name, root, mode):
    """Whether the container holds the files under ROOT, one blob each: "ok", or what is wrong.
    plain: blob names are the files' paths and sizes their sizes. enc: names cannot be compared
    (they are encrypted), so the blobs are counted, their sizes compared as multisets against
    the files' encrypted sizes, no name may be a file's path, and the key blob must be there
    (only a restore checks the bytes)."""
    local = {}
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            local[os.path.relpath(path, root).replace(os.sep, "/")] = os.path.getsize(path)
    blobs = listing(port, name)
    if mode == "plain":
        stored = dict(blobs)
        missing = [p for p in local if p not in stored]
        wrong = [p for p, n in local.items() if p in stored and stored[p] != n]
        extra = len(stored) - (len(local) - len(missing))
        if missing or wrong or extra:
            return (f"{len(missing)} of {len(local)} files missing, {len(wrong)} of the wrong "
                    f"size, {extra} other blobs")
        return "ok"
    keys = [b for b, _ in blobs if b == ENC_KEY_BLOB]
    data = [(b, n) for b, n in blobs if b != ENC_KEY_BLOB]
    problems = []
    if len(keys) != 1:
        problems.append("no key blob")
    if len(data) != len(local):
        problems.append(f"{len(data)} blobs for {len(local)} files")
    if sorted(n for _, n in data) != sorted(encrypted_len(n) for n in local.values()):
        problems.append("sizes are not the files' encrypted sizes")
    clear = sum(1 for b, _ in data if b in local)
    if clear:
        problems.append(f"{clear} names in clear")
    return "; ".join(problems) or "ok"


CASES = [
    ("devlogd-first", "devlogd push, first push (empty container)"),
    ("devlogd-nochange", "devlogd push, no change"),
    ("devlogd-enc-first", "devlogd push, encrypted, first push (empty container, new key)"),
    ("devlogd-enc-nochange", "devlogd push, encrypted, no change"),
    ("rclone-first", "rclone copy, default flags (fresh container)"),
    ("rclone32-first", "rclone copy --transfers 32 --checkers 32 (fresh container)"),
    ("rclone-nochange", "rclone copy, default flags, no change"),
    ("rclone32-nochange", "rclone copy --transfers 32 --checkers 32, no change"),
    ("find", "find -printf '%s %T@' (walk + stat only)"),
]

RATIOS = [
    ("devlogd-first", "rclone-first", "first push: devlogd ÷ rclone (default)"),
    ("devlogd-first", "rclone32-first", "first push: devlogd ÷ rclone (32/32)"),
    ("devlogd-nochange", "rclone-nochange", "no change: devlogd ÷ rclone (default)"),
    ("devlogd-nochange", "rclone32-nochange", "no change: devlogd ÷ rclone (32/32)"),
    ("devlogd-nochange", "find", "no change: devlogd ÷ find"),
]


# Encrypted against plain devlogd: (encrypted case, plain case, label, files/s target or None).
ENC_RATIOS = [
    ("devlogd-enc-first", "devlogd-first", "first push (target ≥ 0.90)", 0.90),
    ("devlogd-enc-nochange", "devlogd-nochange", "no change", None),
]


def report(path, files):
    rows = {}
    notes = []
    walls = {}  # (case, round) -> wall, for the per-round ratios
    for line in open(path):
        case, rnd, wall, user, sys_, rss_kib, verified = line.rstrip("\n").split("\t")
        rows.setdefault(case, []).append(
            (float(wall), float(user) + float(sys_), int(rss_kib) / 1024.0)
        )
        walls[(case, rnd)] = float(wall)
        if verified != "ok":
            notes.append(f"round {rnd}, {case}: {verified}")
    med = {
        case: tuple(statistics.median(r[i] for r in runs) for i in range(3))
        for case, runs in rows.items()
    }
    out = [
        "| case | runs | wall s (median) | files/s | CPU s (user+sys) | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case, label in CASES:
        if case in med:
            wall, cpu, rss = med[case]
            rate = files / wall if wall > 0 else float("inf")
            out.append(
                f"| {label} | {len(rows[case])} | {wall:.3f} | {rate:,.0f} | {cpu:.2f} | {rss:.1f} |"
            )
    ratio_rows = [
        (label, med[a], med[b]) for a, b, label in RATIOS if a in med and b in med
    ]
    if ratio_rows:
        out += [
            "",
            "Ratios of medians (below 1: devlogd takes less):",
            "",
            "| comparison | wall | CPU | peak RSS |",
            "|---|---:|---:|---:|",
        ]

        def ratio(x, y):
            return f"{x / y:.2f}" if y > 0 else "n/a"

        for label, a, b in ratio_rows:
            out.append(f"| {label} | {ratio(a[0], b[0])} | {ratio(a[1], b[1])} | {ratio(a[2], b[2])} |")
    enc_rows = [(e, p, label, t) for e, p, label, t in ENC_RATIOS if e in med and p in med]
    if enc_rows:
        out += [
            "",
            "Encrypted ÷ plain devlogd, same rounds (files/s above 1: encrypted is faster; CPU "
            "and peak RSS below 1: it uses less); per round: the two runs of that round:",
            "",
            "| comparison | files/s (medians) | files/s, per round | CPU | peak RSS |",
            "|---|---:|---:|---:|---:|",
        ]
        def ratio(x, y):
            return f"{x / y:.2f}" if y > 0 else "n/a"

        for e, p, label, target in enc_rows:
            rate = med[p][0] / med[e][0]
            mark = "" if target is None else (" (met)" if rate >= target else " (below)")
            both = sorted({r for c, r in walls if c == e} & {r for c, r in walls if c == p}, key=int)
            per = [walls[(p, r)] / walls[(e, r)] for r in both]
            per_text = ", ".join(f"{x:.2f}" for x in per)
            if len(per) > 1:
                per_text += f" (median {statistics.median(per):.2f})"
            out.append(
                f"| {label} | {rate:.2f}{mark} | {per_text} | {ratio(med[e][1], med[p][1])} "
                f"| {ratio(med[e][2], med[p][2])} |"
            )
    if notes:
        out += ["", "Checks that failed:", ""] + [f"- {n}" for n in notes]
    print("\n".join(out))


WAN_CASES = [
    ("load-16", "load generator, 16 in flight"),
    ("load-64", "load generator, 64 in flight"),
    ("load-128", "load generator, 128 in flight"),
    ("devlogd", "devlogd push (default: auto)"),
    ("devlogd-fixed16", "devlogd push, sync.concurrency = 16"),
    ("rclone", "rclone copy, default"),
    ("rclone32", "rclone copy --transfers 32 --checkers 32"),
]


def wan_report(path, files):
    """Rates (files/s, median and range) per case and round trip, then devlogd against the best
    load generator and the better rclone at each round trip."""
    runs, notes, by_round, server, seen = {}, [], {}, {}, {}
    for line in open(path):
        fields = line.rstrip("\n").split("\t")
        rtt, case, rnd, wall, user, sys_, rss_kib, verified = fields[:8]
        runs.setdefault((int(rtt), case), []).append(
            (files / float(wall), float(user) + float(sys_), int(rss_kib) / 1024.0)
        )
        if len(fields) > 8:
            # Azurite's CPU seconds during the case: per 1,000 puts, and as a share of the wall.
            cpu = float(fields[8])
            server.setdefault((int(rtt), case), []).append(
                (cpu * 1000.0 / files, cpu / float(wall))
            )
        # Results of several runs may be concatenated (pooled): a case seen again for the same
        # round trip and round belongs to the next run's round.
        seen[(rtt, rnd, case)] = seen.get((rtt, rnd, case), 0) + 1
        by_round.setdefault((int(rtt), int(rnd), seen[(rtt, rnd, case)]), {})[case] = files / float(wall)
        if verified != "ok":
            notes.append(f"{rtt} ms, round {rnd}, {case}: {verified}")
    rtts = sorted({rtt for rtt, _ in runs})
    med = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    out = [
        "| files/s (median, range) | " + " | ".join(f"{rtt} ms round trip" for rtt in rtts) + " |",
        "|---|" + "---:|" * len(rtts),
    ]
    for case, label in WAN_CASES:
        cells = []
        for rtt in rtts:
            rates = [r[0] for r in runs.get((rtt, case), [])]
            cells.append(
                f"{med[(rtt, case)]:,.0f} ({min(rates):,.0f}–{max(rates):,.0f})" if rates else "–"
            )
        if any(c != "–" for c in cells):
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += [
        "",
        "| devlogd (default) | " + " | ".join(f"{rtt} ms" for rtt in rtts) + " |",
        "|---|" + "---:|" * len(rtts),
    ]

    def best(rtt, cases):
        rates = [med[(rtt, c)] for c in cases if (rtt, c) in med]
        return max(rates) if rates else None

    for label, cases, target in [
        ("÷ best load generator (target ≥ 0.90)", ["load-16", "load-64", "load-128"], 0.90),
        ("÷ better rclone (target ≥ 2.0)", ["rclone", "rclone32"], 2.0),
    ]:
        cells = []
        for rtt in rtts:
            b, d = best(rtt, cases), med.get((rtt, "devlogd"))
            if b and d:
                mark = "" if d / b >= target else " (below)"
                cells.append(f"{d / b:.2f}{mark}")
            else:
                cells.append("–")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    # The same comparison within each round (cases of one round ran minutes apart at most, on
    # the same Azurite): the median over rounds and the lowest.
    cells = []
    for rtt in rtts:
        ratios = []
        for (r_rtt, _, _), rates in sorted(by_round.items()):
            loads = [rates[c] for c in ("load-16", "load-64", "load-128") if c in rates]
            if r_rtt == rtt and loads and "devlogd" in rates:
                ratios.append(rates["devlogd"] / max(loads))
        cells.append(
            f"{statistics.median(ratios):.2f} (lowest {min(ratios):.2f})" if ratios else "–"
        )
    out.append("| ÷ best load generator of the same round (median of rounds) | " + " | ".join(cells) + " |")
    cpu = [
        f"{rtt} ms: devlogd {statistics.median(r[1] for r in runs[(rtt, 'devlogd')]):.2f} s CPU, "
        f"{statistics.median(r[2] for r in runs[(rtt, 'devlogd')]):.1f} MiB peak RSS"
        for rtt in rtts
        if (rtt, "devlogd") in runs
    ]
    if cpu:
        out += ["", "Client cost (medians): " + "; ".join(cpu) + "."]
    if server:
        out += [
            "",
            "| Azurite: CPU s per 1,000 puts (median) · busy = its CPU ÷ wall (median) | "
            + " | ".join(f"{rtt} ms" for rtt in rtts)
            + " |",
            "|---|" + "---:|" * len(rtts),
        ]
        for case, label in WAN_CASES:
            cells = []
            for rtt in rtts:
                v = server.get((rtt, case))
                cells.append(
                    f"{statistics.median(x[0] for x in v):.2f} · {statistics.median(x[1] for x in v):.2f}"
                    if v
                    else "–"
                )
            if any(c != "–" for c in cells):
                out.append(f"| {label} | " + " | ".join(cells) + " |")
    if notes:
        out += ["", "Checks that failed:", ""] + [f"- {n}" for n in notes]
    print("\n".join(out))


def proc_cpu(port):
    """User + system CPU seconds of the processes started with `--blobPort PORT`: Azurite
    (and the shell wrapping it, which costs nothing)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            if b"--blobPort" not in args or args[args.index(b"--blobPort") + 1 :][:1] != [
                str(port).encode()
            ]:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime and stime are fields 14 and 15 of stat(5); [0] here is field 3.
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "sas":
        print(account_sas())
    elif cmd == "free-port":
        print(free_port())
    elif cmd == "wait-ready":
        return wait_ready(int(args[0]), args[1], float(args[2]))
    elif cmd == "gen":
        gen(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "container":
        container(int(args[0]), args[1], args[2])
    elif cmd == "snapshot":
        print(snapshot(int(args[0]), args[1]))
    elif cmd == "check-stored":
        print(check_stored(int(args[0]), args[1], args[2], args[3]))
    elif cmd == "report":
        report(args[0], int(args[1]))
    elif cmd == "proc-cpu":
        print(f"{proc_cpu(int(args[0])):.2f}")
    elif cmd == "wan-report":
        wan_report(args[0], int(args[1]))
    else:
        sys.exit(f"unknown command {cmd!r}\n{__doc__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
