#!/usr/bin/env python3
"""Soak test of the local stack: does the AWS emulator's memory stay bounded under steady
traffic?

    make soak                                   # 30 minutes; SOAK_MINUTES=5 make soak
    .venv/bin/python benches/moto_soak.py [--minutes 30] [--rate 10] [--limit-mb 1024]
        [--sample-seconds 30] [--no-build]

Starts what `make serve` starts (`scripts/moto.sh run -- beacon-local serve`, both on
127.0.0.1, stack `soak`), then drives the demo's traffic through the local gateway at a
steady pace: per simulated recipient what `beacon-local demo` does (a send and a delivery
outcome posted to the collect API, 45% of the delivered opening one to three times, 30%
of those clicking one or two links, the odd complaint, unsubscribe and conversion), with
tracking links signed by the stack's own key. The stream consumers run inside `serve`,
as they do for `make serve`, so the aggregate's DynamoDB transactions are part of it.

Every --sample-seconds it reads the emulator's resident memory (VmRSS in
/proc/<pid>/status, by the pid scripts/moto.sh started) and its transaction counters
(GET /moto-api/beacon/transactions, see scripts/moto_server.py), and prints a row. At
the end it prints the table again with the peak (and the kernel's own high-water mark,
VmHWM), then exits 1 if the peak exceeded --limit-mb (default 1024), 2 if any request
was answered wrongly, else 0. BEACON_MOTO_UNPATCHED=1 runs moto without the transaction
patch, for comparison. Every process it starts is stopped by its pid.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TENANT = "soak"
# The destinations of local/assets/campaign.html, the demo's email.
LINKS = [
    "https://shop.example.com/sale?utm_source=email&utm_campaign=spring",
    "https://shop.example.com/p/linen-shirt?utm_source=email",
    "https://shop.example.com/p/canvas-tote?utm_source=email",
    "https://blog.example.com/spring-lookbook",
]
# local/src/demo.rs AGENTS.
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 Edg/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
]
# Clicks on different links closer than shared::trail::CLICK_BURST (2 s) are a
# scanner's burst; the demo waits this long between a person's clicks.
CLICK_PAUSE = 2.2
CAMPAIGN_MINUTES = 10  # a new campaign every so often, as a sender would


def say(text: str) -> None:
    print(f"moto_soak: {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)),
                   help="how long to drive traffic (default 30, or $SOAK_MINUTES)")
    p.add_argument("--rate", type=float, default=10.0,
                   help="simulated recipients per second (default 10: about 10 requests and 30 events a second)")
    p.add_argument("--sample-seconds", type=float, default=30.0, help="seconds between memory samples")
    p.add_argument("--limit-mb", type=float, default=1024.0, help="fail if moto's RSS peaks above this")
    p.add_argument("--stack", default="soak")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-build", action="store_true", help="skip `cargo build -p beacon-local`")
    p.add_argument("--under-moto", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target"))


def outer(args: argparse.Namespace, argv: list[str]) -> int:
    """Builds, then runs the soak itself under scripts/moto.sh (which starts and stops
    the emulator and tells us its pid)."""
    env = dict(os.environ)
    env.setdefault("BEACON_VENV", str(Path(sys.executable).resolve().parent.parent))
    if not args.no_build:
        say("building beacon-local")
        subprocess.run(["cargo", "build", "-p", "beacon-local"], cwd=ROOT, check=True)
    binary = target_dir() / "debug" / "beacon-local"
    if not binary.exists():
        say(f"{binary} is missing: build it (`cargo build -p beacon-local`) or drop --no-build")
        return 2
    cmd = [str(ROOT / "scripts" / "moto.sh"), "run", "--", sys.executable, str(Path(__file__).resolve()),
           "--under-moto", *argv]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


# --- tracking links, signed as shared/domain/src/tracking/token.rs signs them ----------------------------

def put_field(buf: bytearray, data: bytes) -> None:
    n = len(data)
    while n >= 0x80:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)
    buf += data


def tenant_key(master: bytes, tenant: str) -> bytes:
    """HKDF-SHA256 (RFC 5869, no salt) of the master key for one tenant, 32 bytes."""
    prk = hmac.new(b"\0" * 32, master, hashlib.sha256).digest()
    info = b"beacon tracking v1\0" + tenant.encode()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def sign(keyring: dict, kind: bytes, fields: list[str], url: str | None, expires_at: int) -> str:
    """A format 2 token: tagged with the key derived for its tenant (`fields[0]`)."""
    kid = keyring["active"]
    buf = bytearray([2, kind[0], len(kid)]) + kid.encode()
    for field in fields:
        put_field(buf, field.encode())
    if url is not None:
        put_field(buf, url.encode())
    buf += struct.pack(">I", expires_at)
    key = tenant_key(keyring[kid].encode(), fields[0])
    buf += hmac.new(key, bytes(buf), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(bytes(buf)).rstrip(b"=").decode()


# --- the traffic ---------------------------------------------------------------------------

class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: dict[str, int] = {"collect": 0, "pixel": 0, "click": 0}
        self.failed: dict[str, int] = {"collect": 0, "pixel": 0, "click": 0}
        self.first_failures: list[str] = []
        self.recipients = 0
        self.events_posted = 0

    def record(self, kind: str, ok: bool, detail: str = "") -> None:
        with self.lock:
            (self.ok if ok else self.failed)[kind] += 1
            if not ok and len(self.first_failures) < 5:
                self.first_failures.append(f"{kind}: {detail}")


class Traffic:
    def __init__(self, gateway: str, api_key: str, keyring: dict, rate: float, seed: int) -> None:
        self.gateway, self.api_key, self.keyring, self.rate = gateway, api_key, keyring, rate
        self.rng = random.Random(seed)
        self.run_id = uuid.uuid4().hex[:8]
        self.counters = Counters()
        self.pool = ThreadPoolExecutor(max_workers=16)  # the demo's concurrency
        self.backlog = threading.Semaphore(256)  # beyond this the pace slips, and shows
        self.next_recipient = 0
        self.stop = threading.Event()
        self.error: Exception | None = None

    def request(self, kind: str, req: urllib.request.Request, expect: int) -> None:
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except OSError as e:
            self.counters.record(kind, False, f"{req.full_url}: {e}")
            return
        ok = status == expect
        if ok and kind == "collect":
            ok = json.loads(body or b"{}").get("rejected") == 0
        self.counters.record(kind, ok, f"{req.full_url} answered {status}: {body[:200]!r}")

    def collect(self, content_type: str, body: str) -> None:
        req = urllib.request.Request(f"{self.gateway}/v1/events", data=body.encode(), method="POST",
                                     headers={"authorization": f"Bearer {self.api_key}",
                                              "content-type": content_type})
        self.request("collect", req, 202)

    def tick(self, n: int) -> None:
        """n new recipients: their sends and outcomes in two collect requests (a JSON array
        and NDJSON, the demo's two batch formats), then each engaged one's opens and clicks."""
        now = datetime.now(timezone.utc)
        campaign = f"soak-{self.run_id}-{int(time.time() // (CAMPAIGN_MINUTES * 60))}"
        delivered_at = (now - timedelta(minutes=10)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        expires = int(time.time()) + 90 * 86400
        sends, outcomes, later, engaged = [], [], [], []
        for _ in range(n):
            i = self.next_recipient
            self.next_recipient += 1
            message, recipient = f"{campaign}-m{i:07}", f"r{i:07}"
            ids = {"campaign_id": campaign, "message_id": message, "recipient_id": recipient}
            sends.append({"event_id": f"{message}-sent", "type": "message.sent", "provider": "ses",
                          "cost": 0.0001, **ids})
            roll = self.rng.random()
            outcome = {"event_id": f"{message}-outcome", "provider": "ses", **ids}
            if roll < 0.02:
                outcome.update(type="message.bounced", bounce_type="hard", reason="550 5.1.1 user unknown")
            elif roll < 0.04:
                outcome.update(type="message.bounced", bounce_type="soft", reason="452 4.2.2 mailbox full")
            elif roll < 0.05:
                outcome.update(type="message.failed", reason="rendering error")
            else:
                outcome.update(type="message.delivered", event_time=delivered_at, duration_ms=800 + i % 4000)
            outcomes.append(outcome)
            if outcome["type"] != "message.delivered":
                continue
            opens = self.rng.randint(1, 3) if self.rng.random() < 0.45 else 0
            clicks = [self.rng.randrange(len(LINKS)) for _ in range(self.rng.randint(1, 2))] \
                if opens and self.rng.random() < 0.3 else []
            fields = [TENANT, campaign, message, recipient]
            if opens:
                engaged.append((
                    f"{self.gateway}/o/{sign(self.keyring, b'o', fields, None, expires)}",
                    [f"{self.gateway}/c/{sign(self.keyring, b'c', fields, LINKS[c], expires)}" for c in clicks],
                    opens, self.rng.choice(AGENTS),
                    f"198.51.{self.rng.randrange(256)}.{self.rng.randint(1, 254)}",
                ))
            if self.rng.random() < 0.002:
                later.append({"event_id": f"{message}-complained", "type": "message.complained", "reason": "abuse", **ids})
            if opens and self.rng.random() < 0.01:
                later.append({"event_id": f"{message}-unsubscribed", "type": "message.unsubscribed", **ids})
            if clicks and self.rng.random() < 0.2:
                later.append({"event_id": f"{message}-conversion", "type": "conversion", "currency": "USD",
                              "value": self.rng.randrange(1000, 20000) / 100, **ids})
        self.counters.recipients += n
        self.counters.events_posted += len(sends) + len(outcomes) + len(later)
        self.submit(self.collect, "application/json", json.dumps(sends))
        self.submit(self.collect, "application/x-ndjson", "".join(json.dumps(o) + "\n" for o in outcomes))
        for pixel, links, opens, agent, ip in engaged:
            self.submit(self.engage, pixel, links, opens, agent, ip)
        if later:
            self.submit(self.collect, "application/json", json.dumps(later))

    def engage(self, pixel: str, links: list[str], opens: int, agent: str, ip: str) -> None:
        headers = {"user-agent": agent, "x-forwarded-for": ip}
        for _ in range(opens):
            self.request("pixel", urllib.request.Request(pixel, headers=headers), 200)
        for i, link in enumerate(links):
            if i:
                time.sleep(CLICK_PAUSE)
            self.request("click", urllib.request.Request(link, headers=headers), 302)

    def submit(self, fn, *args) -> None:
        self.backlog.acquire()

        def run():
            try:
                fn(*args)
            finally:
                self.backlog.release()

        self.pool.submit(run)

    def run(self, seconds: float) -> None:
        try:
            self.pace(seconds)
        except Exception as err:  # noqa: BLE001 - reported, and the soak ends early
            self.error = err
            say(f"the traffic driver failed: {err!r}")
        finally:
            self.pool.shutdown(wait=True)

    def pace(self, seconds: float) -> None:
        started = time.monotonic()
        owed = 0.0
        tick = 1.0
        while not self.stop.is_set() and time.monotonic() - started < seconds:
            owed += self.rate * tick
            n = int(owed)
            owed -= n
            if n:
                self.tick(n)
            # Paced by the clock, not by the answers: a slow emulator shows as a backlog.
            next_at = started + tick * (int((time.monotonic() - started) / tick) + 1)
            self.stop.wait(max(0.0, next_at - time.monotonic()))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# --- the stack -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def moto_counters(endpoint: str) -> dict:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/beacon/transactions", timeout=30) as r:
            return json.load(r)
    except OSError:
        return {}


def dynamodb_items() -> int | str:
    import boto3

    try:
        d = boto3.client("dynamodb")
        names = [n for page in d.get_paginator("list_tables").paginate() for n in page["TableNames"]]
        return sum(d.describe_table(TableName=n)["Table"]["ItemCount"] for n in names)
    except Exception as err:  # noqa: BLE001 - a figure for the report, not the verdict
        return f"unknown ({err})"


def stop_process(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # beacon-local serve stops on Ctrl-C
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        say(f"{name} (pid {proc.pid}) ignored SIGINT; killing it")
        proc.kill()
        proc.wait()


def inner(args: argparse.Namespace) -> int:
    import boto3

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    moto_pid = int(os.environ["BEACON_MOTO_PID"])
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    stack = json.loads(subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "provision.py"), "--endpoint", endpoint, "--stack", args.stack,
         "--public-base-url", gateway, "--template", str(ROOT / "infra" / "template.yaml")],
        check=True, capture_output=True, text=True).stdout)
    envs = {f["binary"]: f["env"] for f in stack["functions"].values()}

    # An API key for the collect API, stored as `beacon apikey create` stores it.
    api_key = "bk_" + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    boto3.client("dynamodb").put_item(TableName=envs["collect"]["BEACON_API_KEYS_TABLE"], Item={
        "key_hash": {"S": hashlib.sha256(api_key.encode()).hexdigest()}, "tenant_id": {"S": TENANT},
        "name": {"S": "soak"}, "created_at": {"S": datetime.now(timezone.utc).isoformat()},
        "revoked": {"BOOL": False}})
    keyring = json.loads(boto3.client("secretsmanager").get_secret_value(
        SecretId=envs["open-pixel"]["BEACON_TRACKING_KEYS_SECRET"])["SecretString"])

    log_path = ROOT / ".beacon" / "soak-serve.log"
    log_path.parent.mkdir(exist_ok=True)
    binary = target_dir() / "debug" / "beacon-local"
    with open(log_path, "w") as log:
        serve = subprocess.Popen([str(binary), "serve", "--stack", args.stack, "--listen", f"127.0.0.1:{port}",
                                  "--trust-forwarded-for"], cwd=ROOT, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "serving on" not in log_path.read_text():
            if serve.poll() is not None or time.monotonic() > deadline:
                say(f"beacon-local serve did not start; its log ({log_path}):\n{log_path.read_text()[-3000:]}")
                return 2
            time.sleep(0.2)
        return soak(args, endpoint, moto_pid, gateway, api_key, keyring, serve)
    finally:
        stop_process(serve, "beacon-local serve")


def soak(args, endpoint: str, moto_pid: int, gateway: str, api_key: str, keyring: dict,
         serve: subprocess.Popen) -> int:
    urllib.request.install_opener(urllib.request.build_opener(NoRedirect))
    counters = moto_counters(endpoint)
    patched = counters.get("patched")
    say(f"moto pid {moto_pid} at {endpoint} (transaction patch {'on' if patched else 'OFF'}); "
        f"gateway {gateway} (beacon-local serve pid {serve.pid}); "
        f"{args.rate:g} recipients/s for {args.minutes:g} min, a sample every {args.sample_seconds:g} s")
    traffic = Traffic(gateway, api_key, keyring, args.rate, args.seed)
    driver = threading.Thread(target=traffic.run, args=(args.minutes * 60,), daemon=True)
    started = time.monotonic()
    driver.start()

    rows: list[tuple] = []
    header = (f"{'elapsed':>8} {'moto RSS MB':>12} {'transactions':>13} {'items copied':>13} "
              f"{'recipients':>11} {'requests':>9} {'failed':>7}")

    def sample() -> None:
        rss, hwm = rss_kb(moto_pid)
        c = moto_counters(endpoint)
        with traffic.counters.lock:
            ok, failed = sum(traffic.counters.ok.values()), sum(traffic.counters.failed.values())
        rows.append((time.monotonic() - started, rss / 1024, hwm / 1024, c.get("transactions", "-"),
                     c.get("items_copied", "-"), traffic.counters.recipients, ok + failed, failed))
        print(format_row(rows[-1]), flush=True)

    print(header, flush=True)
    sample()
    try:
        while driver.is_alive():
            driver.join(timeout=max(0.0, started + args.sample_seconds * len(rows) - time.monotonic()))
            if serve.poll() is not None:
                say(f"beacon-local serve exited with {serve.returncode}; see .beacon/soak-serve.log")
                traffic.stop.set()
                driver.join()
                break
            if driver.is_alive() or time.monotonic() - started - rows[-1][0] > 1:
                sample()
    except KeyboardInterrupt:
        say("interrupted: stopping the traffic")
        traffic.stop.set()
        driver.join()
        sample()

    peak = max(rows, key=lambda r: r[1])
    hwm = rows[-1][2]
    print()
    print(header)
    for row in rows:
        print(format_row(row))
    c = traffic.counters
    print(f"requests answered as expected: {c.ok}; wrongly: {c.failed}")
    # What the emulator holds at the end: every event stays on its Kinesis stream (moto
    # never trims one), and the tables keep growing with the data, as they would in AWS.
    print(f"events produced: {c.events_posted + c.ok['pixel'] + c.ok['click']} "
          f"({c.events_posted} posted to collect, one per pixel and click); "
          f"DynamoDB items held: {dynamodb_items()}")
    for failure in c.first_failures:
        print(f"  e.g. {failure}")
    print(f"moto RSS peak: {peak[1]:.0f} MB at {peak[0] / 60:.1f} min (kernel high-water mark VmHWM "
          f"{hwm:.0f} MB); limit {args.limit_mb:.0f} MB; transaction patch {'on' if patched else 'OFF'}; "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    if peak[1] > args.limit_mb or hwm > args.limit_mb:
        print(f"FAIL: the emulator's memory peaked above {args.limit_mb:.0f} MB")
        return 1
    if sum(c.failed.values()) or traffic.error is not None:
        print("FAIL: some requests were not answered as the demo expects")
        return 2
    print("OK: the emulator's memory stayed bounded")
    return 0


def format_row(row: tuple) -> str:
    elapsed, rss, _, transactions, copied, recipients, requests, failed = row
    return (f"{elapsed / 60:>7.1f}m {rss:>12.0f} {transactions!s:>13} {copied!s:>13} "
            f"{recipients:>11} {requests:>9} {failed:>7}")


def main() -> int:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.under_moto:
        return inner(args)
    return outer(args, argv)


if __name__ == "__main__":
    sys.exit(main())
