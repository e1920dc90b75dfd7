#!/usr/bin/env python3
"""NDJSON -> Parquet on realistic events: `beacon lake convert` against DuckDB and pyarrow.

    make bench-lake                       # or: .venv/bin/python benches/lake_convert.py
    .venv/bin/python benches/lake_convert.py --events 200000 --large 0   # a quick run

Builds `beacon` in release, generates the events (deterministic, cached in --dir), then
runs each engine as its own process, one after another, under /usr/bin/time -v:

- Beacon: `beacon lake convert` (streaming, one thread converts)
- DuckDB: COPY (SELECT * FROM read_json(...)) TO ... (FORMAT parquet, COMPRESSION zstd),
  with its default threads (one per core) and with SET threads=1
- pyarrow: pyarrow.json.read_json + pyarrow.parquet.write_table(compression="zstd"),
  with its default thread pool

and reports wall seconds, rows/s, CPU seconds, peak RSS and output bytes, checks that every
output holds every row, and prints Beacon's ratios against each. Then Beacon alone on a
larger input (--large), to show its peak memory does not grow with the input.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bump when the generator changes, so cached inputs are made again.
GENERATOR_VERSION = 1

CAMPAIGNS = 10
RECIPIENTS = 100_000
LINKS = [
    f"https://shop.example.com/{section}/{i}?utm_source=beacon&utm_medium=email"
    for i, section in enumerate(["p", "c", "blog", "offer", "help"] * 10)
]
TENANTS = ["acme", "globex", "initech"]
START_MS = 1_795_392_000_000  # 2026-11-23T00:00:00Z
# (user agent, device class, weight): opens as mail clients and proxies fetch the pixel.
OPEN_AGENTS = [
    ("Mozilla/5.0", "other", 35),  # Apple Mail Privacy Protection
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", "other", 25),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "mobile", 15),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 Edg/124.0 Microsoft Outlook 16.0", "desktop", 12),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1", "desktop", 5),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36", "mobile", 6),
    ("python-requests/2.31.0", "bot", 2),
]
CLICK_AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", "desktop", 40),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "mobile", 35),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "desktop", 15),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel link protection)", "bot", 6),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0 Safari/537.36", "bot", 4),
]
BOUNCES = [
    ("hard", "550 5.1.1 The email account that you tried to reach does not exist"),
    ("hard", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
    ("soft", "452 4.2.2 The email account that you tried to reach is over quota"),
    ("soft", "421 4.7.0 Try again later, closing connection"),
]
PLANS = ["free", "starter", "pro", "enterprise"]


def iso(ms):
    """RFC 3339 with milliseconds, as Beacon writes it (`2026-11-23T10:00:00.123Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def generate(path, n, seed=4):
    """n events as NDJSON: messages of 10 campaigns to 100k recipients, each sent, then
    delivered or bounced, opened, clicked, converted, sometimes unsubscribed."""
    rng = random.Random(seed)
    open_agents = [(a, d) for a, d, w in OPEN_AGENTS for _ in range(w)]
    click_agents = [(a, d) for a, d, w in CLICK_AGENTS for _ in range(w)]
    written = 0
    message = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as out:
        while written < n:
            message += 1
            campaign = rng.randrange(CAMPAIGNS)
            recipient = "r-%06d" % rng.randrange(RECIPIENTS)
            tenant = TENANTS[campaign % len(TENANTS)]
            base = {
                "tenant_id": tenant,
                "campaign_id": "spring-%02d" % campaign,
                "message_id": "m-%08d" % message,
                "recipient_id": recipient,
            }
            sent = START_MS + campaign * 6 * 3_600_000 + rng.randrange(3_600_000)
            events = []

            def add(kind, at, **fields):
                e = {
                    # UUIDv7-shaped, as Beacon makes them: the time first, then random bits.
                    "event_id": "%08x-%04x-7%03x-%04x-%012x"
                    % (at >> 16, at & 0xFFFF, rng.getrandbits(12), rng.getrandbits(16) | 0x8000,
                       rng.getrandbits(48)),
                    "tenant_id": base["tenant_id"],
                    "type": kind,
                    "event_time": iso(at),
                    "received_at": iso(at + rng.randrange(2_000)),
                }
                for k in ("campaign_id", "message_id", "recipient_id"):
                    e[k] = base[k]
                e.update(fields)
                events.append(e)

            add("message.sent", sent, channel="email", provider="ses", cost=0.0001)
            r = rng.random()
            if r < 0.03:
                kind, reason = rng.choice(BOUNCES)
                add("message.bounced", sent + rng.randrange(1_000, 60_000), channel="email",
                    provider="ses", bounce_type=kind, reason=reason)
            else:
                delivered = sent + rng.randrange(500, 30_000)
                add("message.delivered", delivered, channel="email", provider="ses",
                    duration_ms=delivered - sent)
                opens = rng.choices([0, 1, 2, 3], [45, 35, 13, 7])[0]
                clicked = False
                for _ in range(opens):
                    ua, device = rng.choice(open_agents)
                    add("message.opened", delivered + rng.randrange(60_000, 2 * 86_400_000),
                        context={"ip": "203.0.113.0", "user_agent": ua, "device_class": device})
                    if rng.random() < 0.3:
                        clicked = True
                        ua, device = rng.choice(click_agents)
                        add("link.clicked", delivered + rng.randrange(120_000, 2 * 86_400_000),
                            link_url=rng.choice(LINKS),
                            context={"ip": "198.51.100.0", "user_agent": ua, "device_class": device})
                if clicked and rng.random() < 0.2:
                    add("conversion", delivered + rng.randrange(300_000, 3 * 86_400_000),
                        value=round(rng.uniform(9, 500), 2), currency=rng.choice(["EUR", "USD"]),
                        properties={"plan": rng.choice(PLANS), "seats": rng.randrange(1, 50),
                                    "trial": rng.random() < 0.3})
                if rng.random() < 0.004:
                    add("message.unsubscribed", delivered + rng.randrange(60_000, 86_400_000))
                elif rng.random() < 0.0005:
                    add("message.complained", delivered + rng.randrange(60_000, 86_400_000),
                        reason="abuse")
            for e in events[: n - written]:
                out.write(json.dumps(e, separators=(",", ":")))
                out.write("\n")
            written += min(len(events), n - written)
    tmp.rename(path)


def events_file(directory, n):
    path = directory / f"events-{n}-v{GENERATOR_VERSION}.ndjson"
    if not path.exists():
        started = time.perf_counter()
        print(f"generating {n} events into {path} ...", file=sys.stderr, flush=True)
        generate(path, n)
        print(f"  {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    return path


DUCKDB = """
import duckdb, sys
con = duckdb.connect()
if sys.argv[3] != "default":
    con.execute(f"SET threads={int(sys.argv[3])}")
con.execute(f"COPY (SELECT * FROM read_json('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)")
"""

PYARROW = """
import sys
import pyarrow.json, pyarrow.parquet as pq
table = pyarrow.json.read_json(sys.argv[1])
pq.write_table(table, sys.argv[2], compression="zstd")
"""


def measured(argv):
    """Runs argv under /usr/bin/time -v: wall and CPU seconds, peak RSS in bytes, stderr."""
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")

    def field(name):
        return re.search(rf"{re.escape(name)}: (\S+)", proc.stderr).group(1)

    return {
        "wall": wall,
        "cpu": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "rss": int(field("Maximum resident set size (kbytes)")) * 1024,
        "stderr": proc.stderr,
    }


def parquet_rows(path):
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def run(name, threads, argv, output, rows):
    output.unlink(missing_ok=True)
    print(f"running {name} ({threads}) ...", file=sys.stderr, flush=True)
    m = measured(argv)
    got = parquet_rows(output)
    if got != rows:
        sys.exit(f"{name}: {output} holds {got} rows, expected {rows}")
    m.update(name=name, threads=threads, rows=rows, bytes=output.stat().st_size)
    return m


def table(results):
    head = f"{'engine':<26} {'threads':>8} {'wall s':>7} {'rows/s':>10} {'CPU s':>6} {'peak RSS MB':>11} {'output MB':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['name']:<26} {r['threads']:>8} {r['wall']:>7.2f} {r['rows'] / r['wall']:>10,.0f} "
            f"{r['cpu']:>6.2f} {r['rss'] / 2**20:>11.0f} {r['bytes'] / 2**20:>9.1f}"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--large", type=int, default=3_000_000,
                    help="events of the larger input Beacon alone converts (0: skip)")
    ap.add_argument("--dir", type=Path, default=ROOT / ".beacon" / "bench-lake",
                    help="where inputs (cached) and outputs go")
    ap.add_argument("--no-build", action="store_true", help="use the beacon binary as built")
    args = ap.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "beacon-cli"], cwd=ROOT, check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    beacon = target / "release" / "beacon"
    args.dir.mkdir(parents=True, exist_ok=True)
    source = events_file(args.dir, args.events)
    # Every engine reads the input from the page cache, not the first one from disk.
    subprocess.run(["cat", str(source)], stdout=subprocess.DEVNULL, check=True)
    cores = os.cpu_count()
    mb = source.stat().st_size / 1e6
    print(f"\n{args.events:,} events, {mb:.0f} MB of NDJSON, {cores} cores", flush=True)

    out = args.dir
    py = sys.executable
    results = [
        run("beacon lake convert", "1", [str(beacon), "lake", "convert", "--input", str(source),
            "--output", str(out / "beacon.parquet")], out / "beacon.parquet", args.events),
        run("duckdb COPY", f"{cores} (dflt)", [py, "-c", DUCKDB, str(source), str(out / "duckdb.parquet"),
            "default"], out / "duckdb.parquet", args.events),
        run("duckdb COPY, threads=1", "1", [py, "-c", DUCKDB, str(source), str(out / "duckdb1.parquet"),
            "1"], out / "duckdb1.parquet", args.events),
        run("pyarrow read_json+write", f"{cores} (dflt)", [py, "-c", PYARROW, str(source),
            str(out / "pyarrow.parquet")], out / "pyarrow.parquet", args.events),
    ]
    summary = [l for l in results[0]["stderr"].splitlines() if l.startswith("converted ")]
    print("\n" + table(results))
    if summary:
        print(f"\nbeacon: {summary[-1]}")
    beacon_run = results[0]
    print("\nBeacon against each (speed: how many times faster; memory: how many times less peak RSS):")
    for r in results[1:]:
        print(f"  {r['name']:<26} speed x{r['wall'] / beacon_run['wall']:.2f}   memory x{r['rss'] / beacon_run['rss']:.2f}")

    large = []
    if args.large:
        big = events_file(args.dir, args.large)
        subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)
        large.append(run(f"beacon, {args.large / 1e6:g}M events", "1",
                         [str(beacon), "lake", "convert", "--input", str(big), "--output",
                          str(out / "beacon-large.parquet")], out / "beacon-large.parquet", args.large))
        print(f"\nBeacon alone on a larger input ({big.stat().st_size / 1e6:.0f} MB of NDJSON):\n")
        print(table([beacon_run, *large]))
        print(f"\npeak RSS {beacon_run['rss'] / 2**20:.0f} MB at {mb:.0f} MB of input, "
              f"{large[0]['rss'] / 2**20:.0f} MB at {big.stat().st_size / 1e6:.0f} MB")
    with open(args.dir / "results.json", "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "stderr"} for r in results + large], f, indent=1)


if __name__ == "__main__":
    main()
