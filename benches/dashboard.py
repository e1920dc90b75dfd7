"""Dashboard benchmarks, against the emulator through the local gateway, after a demo:

1. First load of a campaign page in headless Chromium (cold cache): bytes transferred
   as sent on the wire (gzip where the browser asks for it) and time from navigation
   to the campaign's numbers and chart being on screen. Target: at most 300 KB.
2. Latency of every request the dashboard makes (the stats API with a dashboard
   session, and the page's assets): p50, p95, p99 over --requests each, after warm-up.
   Target: p99 under 50 ms for every one.

Both run twice in one go, side by side: against the emulator as `make demo` and `make
test` start it (scripts/moto_server.py: Queries read their partition, as DynamoDB does)
and against moto unpatched (BEACON_MOTO_UNPATCHED=1: every Query lists and sorts the
whole table), so the figures show what the emulator itself costs.

Usage: benches/dashboard.py [--recipients 300] [--requests 200] [--no-build]
(starts and stops its own emulators, demos and gateways; prints a table and writes
target/dashboard-bench.json).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target")) / "debug"
sys.path.insert(0, str(ROOT / "tests" / "py"))


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(url, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def percentiles(samples):
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": s[-1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=300)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "-p", "beacon-local", "-p", "beacon-cli"], cwd=ROOT, check=True)
    runs = {}
    for emulator in ("patched", "unpatched"):
        print(f"emulator: {emulator} ...", file=sys.stderr)
        runs[emulator] = measure(args, unpatched=emulator == "unpatched")
    result = {"date": time.strftime("%Y-%m-%d"), "recipients": args.recipients, "runs": runs}
    (ROOT / "target").mkdir(exist_ok=True)
    (ROOT / "target" / "dashboard-bench.json").write_text(json.dumps(result, indent=2))
    for emulator, run in runs.items():
        f = run["first_load"]
        print(f"{emulator:9} first load of the campaign page: {f['bytes'] / 1024:.1f} KB over the wire "
              f"({f['requests']} requests), numbers and chart on screen after {f['visible_ms']:.0f} ms")
    patched, unpatched = runs["patched"]["latency_ms"], runs["unpatched"]["latency_ms"]
    print(f"{'request':40} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}   {'p99 unpatched':>13}  (ms)")
    for name, p in patched.items():
        print(f"{name:40} {p['p50']:7.1f} {p['p95']:7.1f} {p['p99']:7.1f} {p['max']:7.1f}   "
              f"{unpatched[name]['p99']:13.1f}")
    for emulator, latency in (("patched", patched), ("unpatched", unpatched)):
        worst = max(latency.items(), key=lambda kv: kv[1]["p99"])
        print(f"worst p99 ({emulator} emulator): {worst[1]['p99']:.1f} ms, {worst[0]} (target < 50 ms)")


def measure(args, unpatched: bool) -> dict:
    """The demo, a gateway, the first load and every request's latency, against a fresh
    emulator (scripts/moto_server.py, unpatched if asked)."""
    venv = ROOT / ".venv" / "bin"
    moto_port = free_port()
    moto_env = {k: v for k, v in os.environ.items() if k != "BEACON_MOTO_UNPATCHED"}
    if unpatched:
        moto_env["BEACON_MOTO_UNPATCHED"] = "1"
    moto = subprocess.Popen([str(venv / "python"), str(ROOT / "scripts" / "moto_server.py"), "-H", "127.0.0.1",
                             "-p", str(moto_port)], env=moto_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [moto]
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        wait_for(endpoint, moto)
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
        stack = "bench" + uuid.uuid4().hex[:6]
        out = Path("/tmp") / f"dashboard-bench-{stack}"
        print(f"demo with {args.recipients} recipients ...", file=sys.stderr)
        subprocess.run([str(TARGET / "beacon-local"), "demo", "--recipients", str(args.recipients), "--out", str(out),
                        "--stack", stack, "--serve", "never"], env=env, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary = json.loads((out / "demo-summary.json").read_text())
        port = free_port()
        log = open(out / "serve.log", "w")
        serve = subprocess.Popen([str(TARGET / "beacon-local"), "serve", "--stack", stack, "--listen",
                                  f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=log)
        procs.append(serve)
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/dashboard/", serve)
        import boto3
        keys = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing").get_secret_value(
            SecretId=f"{stack}/dashboard-keys")["SecretString"]
        cli_env = dict(env, BEACON_DASHBOARD_KEYS=keys, BEACON_ROLLUPS_TABLE=f"{stack}-rollups")
        link = subprocess.run([str(TARGET / "beacon"), "dashboard", "link", "--tenant", summary["tenant"],
                               "--base-url", base], env=cli_env, check=True, capture_output=True,
                              text=True).stdout.strip()
        campaign = summary["campaign"]
        first_load = browser_first_load(base, link, campaign)

        # A session cookie for plain HTTP requests.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None
        try:
            urllib.request.build_opener(NoRedirect()).open(link)
        except urllib.error.HTTPError as e:
            cookie = e.headers["set-cookie"].split(";")[0]
        c = urllib.parse.quote(campaign, safe="")
        # A recipient with opens or clicks, for the lookup's requests.
        def fetch(path):
            req = urllib.request.Request(base + path, headers={"cookie": cookie})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        r = next(r for r in (f"r{i:05}" for i in range(args.recipients))
                 if fetch(f"/v1/recipients/{r}/messages")["messages"])
        today = time.strftime("%Y-%m-%d", time.gmtime())
        week_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400))
        requests = {
            "page /dashboard/": "/dashboard/",
            "asset app.js": "/dashboard/assets/app.js",
            "asset uPlot": "/dashboard/assets/vendor/uPlot.iife.min.js",
            "/v1/session": "/v1/session",
            "/v1/campaigns": "/v1/campaigns?limit=200",
            "/v1/campaigns/{c}": f"/v1/campaigns/{c}",
            "/v1/campaigns/{c}/links": f"/v1/campaigns/{c}/links?limit=20",
            "/v1/campaigns/{c}/timeseries day": f"/v1/campaigns/{c}/timeseries?grain=day&from={week_ago}",
            "/v1/campaigns/{c}/timeseries hour": f"/v1/campaigns/{c}/timeseries?grain=hour&from={week_ago}",
            "/v1/timeseries": "/v1/timeseries?grain=day",
            "/v1/channels": "/v1/channels?limit=20",
            "/v1/alerts": "/v1/alerts",
            "/v1/suppressions (export page)": "/v1/suppressions?channel=email&limit=1000",
            "/v1/segments": "/v1/segments",
            "/v1/suppressions/{ch}/{r}": f"/v1/suppressions/email/{r}",
            "/v1/recipients/{r}/engagement": f"/v1/recipients/{r}/engagement",
            "/v1/recipients/{r}/messages": f"/v1/recipients/{r}/messages",
            "/v1/campaigns/{c}/channels": f"/v1/campaigns/{c}/channels",
            "/v1/live": "/v1/live",
        }
        latency = {}
        for name, path in requests.items():
            def get():
                req = urllib.request.Request(base + path, headers={"cookie": cookie, "accept-encoding": "gzip"})
                t = time.perf_counter()
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
                return (time.perf_counter() - t) * 1000
            for _ in range(20):
                get()
            latency[name] = percentiles([get() for _ in range(args.requests)])
        return {"first_load": first_load, "latency_ms": latency}
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def browser_first_load(base, link, campaign):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        context = b.new_context()
        page = context.new_page()
        page.goto(link)  # the session; then a new document with a cold cache
        page.goto("about:blank")
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.clearBrowserCache")
        sizes = {}
        cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
        t = time.perf_counter()
        page.goto(f"{base}/dashboard/#/campaign/{urllib.parse.quote(campaign, safe='')}")
        page.wait_for_selector("dd[data-metric='Sent']")
        page.wait_for_selector("#chart .uplot")
        visible = (time.perf_counter() - t) * 1000
        page.wait_for_load_state("networkidle")
        b.close()
    return {"bytes": sum(sizes.values()), "requests": len(sizes), "visible_ms": visible}


if __name__ == "__main__":
    main()
