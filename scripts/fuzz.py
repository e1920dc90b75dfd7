#!/usr/bin/env python3
"""Runs the cargo-fuzz targets in fuzz/ for a bounded time each (what `make fuzz` does).

    python3 scripts/fuzz.py [--seconds 60] [TARGET ...]      (FUZZ_SECONDS sets the default)

Installs cargo-fuzz from crates.io if it is missing (nightly must be installed:
`rustup toolchain install nightly`), seeds each target's corpus (fuzz/corpus/<target>/)
from the project's sample events (events/), builds the targets once, then fuzzes each
one in libFuzzer's fork mode, which keeps going after a crash. Prints the runs and the
crashes per target; crashing inputs are kept in fuzz/artifacts/<target>/ (replay one
with `cargo +nightly fuzz run <target> <file>` in fuzz/). Exits 1 if any target crashed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
EVENTS = ROOT / "events"
TARGETS = ["token_verify", "event_decoders", "webhook_verify"]
# fuzz/fuzz_targets/webhook_verify.rs
WEBHOOK_SECRET = b"whsec_fuzzing-secret"
WEBHOOK_NOW = 1_795_000_100


def say(text: str) -> None:
    print(f"fuzz: {text}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=kw.pop("cwd", FUZZ), **kw)


def ensure_tools() -> None:
    toolchains = run(["rustup", "toolchain", "list"], capture_output=True, text=True).stdout
    if not re.search(r"^nightly", toolchains, re.MULTILINE):
        sys.exit("fuzz: cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly")
    if run(["cargo", "fuzz", "--version"], capture_output=True).returncode != 0:
        say("installing cargo-fuzz from crates.io (cargo install cargo-fuzz --locked)")
        run(["cargo", "install", "cargo-fuzz", "--locked"], check=True)


# --- seeds: the project's sample events ---------------------------------------------------

def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def event_seeds() -> dict[str, bytes]:
    seeds = {}
    for name in ("aggregate.json", "etl.json"):
        for i, record in enumerate(sample(name)["Records"]):
            seeds[f"{name}-{i}"] = base64.b64decode(record["kinesis"]["data"])
    # What clients post to collect: events before collect adds tenant and receipt time.
    for i, event in enumerate(json.loads(sample("collect.json")["body"])):
        seeds[f"collect-{i}"] = json.dumps(event).encode()
        full = {"tenant_id": "acme", "event_time": "2026-11-23T10:14:58.000Z",
                "received_at": "2026-11-23T10:14:58.120Z", **event}
        seeds[f"collect-full-{i}"] = json.dumps(full).encode()
    # Every field the model has, an escape in a string and an offset time.
    seeds["every-field"] = json.dumps({
        "event_id": "e\u00e9\"1", "tenant_id": "acme", "type": "link.clicked",
        "event_time": "2026-11-23T11:00:00.5+01:00", "received_at": "2026-11-23T10:00:00.000Z",
        "campaign_id": "spring", "message_id": "m1", "recipient_id": "r1", "channel": "email",
        "provider": "ses", "link_url": "https://shop.example.com/", "bounce_type": "soft",
        "reason": "452", "cost": 0.25, "value": 1e3, "currency": "USD", "duration_ms": -5,
        "properties": {"plan": {"tier": [1, 2.5, None, True, "x"]}},
        "context": {"ip": "203.0.113.0", "user_agent": "Mozilla/5.0", "device_class": "mobile",
                    "network": "apple-proxy"},
    }).encode()
    return seeds


def token_seeds() -> dict[str, bytes]:
    seeds = {}
    for name, route in (("open-pixel.json", "/o/"), ("click-redirect.json", "/c/")):
        token = sample(name)["rawPath"].removeprefix(route)
        signed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[:-16]
        seeds[f"{name}-token"] = b"\x00" + token.encode()
        seeds[f"{name}-signed"] = b"\x01" + signed
        # The same claim as a format 1 token (the target tags it with the master key).
        seeds[f"{name}-legacy"] = b"\x01\x01" + signed[1:]
    return seeds


def webhook_seeds() -> dict[str, bytes]:
    body = json.dumps(sample("alerts.json")).encode()
    t = WEBHOOK_NOW - 10
    mac = hmac.new(WEBHOOK_SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "signed": f"t={t},v1={mac}\n".encode() + body,
        "two-signatures": f"t={t}, v1={'0' * 64}, v1={mac}\n".encode() + body,
        "stale": f"t={t - 3600},v1={mac}\n".encode() + body,
    }


def write_seeds() -> None:
    for target, seeds in (("event_decoders", event_seeds()), ("token_verify", token_seeds()),
                          ("webhook_verify", webhook_seeds())):
        corpus = FUZZ / "corpus" / target
        corpus.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (corpus / f"seed-{name}").write_bytes(data)


# --- running -------------------------------------------------------------------------------

def fuzz(target: str, seconds: int, target_dir: Path) -> tuple[int, int, list[str]]:
    """(runs, crashes, crash files) of one fork-mode run of `target`."""
    artifacts = FUZZ / "artifacts" / target
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    log = FUZZ / "artifacts" / f"{target}.log"
    cmd = ["cargo", "+nightly", "fuzz", "run", "--target-dir", str(target_dir), target, "--",
           f"-max_total_time={seconds}", "-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1",
           "-ignore_ooms=1"]
    dictionary = FUZZ / "dicts" / f"{target}.dict"
    if dictionary.exists():
        cmd.append(f"-dict={dictionary}")
    say(f"{target}: {seconds} s (log in {log.relative_to(ROOT)})")
    with open(log, "w") as out:
        run(cmd, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    # Fork mode's status lines: "#123456: cov: ... oom/timeout/crash: 0/0/2 time: 60s ..."
    stats = re.findall(r"^#(\d+): cov: .*?oom/timeout/crash: (\d+)/(\d+)/(\d+)", text, re.MULTILINE)
    if not stats:
        sys.exit(f"fuzz: {target}: libFuzzer printed no status line, so it did not run; "
                 f"the end of {log.relative_to(ROOT)}:\n{text[-3000:]}")
    runs, crashes = int(stats[-1][0]), int(stats[-1][3])
    found = sorted(str(p.relative_to(ROOT)) for p in set(artifacts.iterdir()) - before)
    return runs, crashes, found


def main() -> int:
    p = argparse.ArgumentParser(description="Run the fuzz targets for a bounded time each.")
    p.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 60)))
    p.add_argument("targets", nargs="*", metavar="TARGET", help=f"default: {' '.join(TARGETS)}")
    args = p.parse_args()
    args.targets = args.targets or TARGETS
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown target {', '.join(unknown)}; the targets are {', '.join(TARGETS)}")
    ensure_tools()
    write_seeds()
    target_dir = Path(os.environ.get("FUZZ_TARGET_DIR")
                      or Path(os.environ.get("CARGO_TARGET_DIR", FUZZ / "target")) / "fuzz")
    say(f"building {', '.join(args.targets)} (nightly, in {target_dir})")
    started = time.monotonic()
    for target in args.targets:
        run(["cargo", "+nightly", "fuzz", "build", "--target-dir", str(target_dir), target], check=True)
    say(f"built in {time.monotonic() - started:.0f} s")
    results = [(t, *fuzz(t, args.seconds, target_dir)) for t in args.targets]
    print(f"\n{'target':<16} {'seconds':>8} {'runs':>12} {'crashes':>8}")
    for target, runs, crashes, _ in results:
        print(f"{target:<16} {args.seconds:>8} {runs:>12} {crashes:>8}")
    for target, _, crashes, found in results:
        if crashes:
            shown = ", ".join(Path(f).name for f in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            print(f"{target}: {len(found)} crashing inputs in fuzz/artifacts/{target}/ ({shown or 'see its log'}); "
                  f"replay one: (cd fuzz && cargo +nightly fuzz run {target} artifacts/{target}/<file>)")
    return 1 if any(crashes for _, _, crashes, _ in results) else 0


if __name__ == "__main__":
    if shutil.which("cargo") is None:
        sys.exit("fuzz: cargo is not on PATH")
    sys.exit(main())
