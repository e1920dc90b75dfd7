"""A recipient, played by headless Chromium: an instrumented email is opened through the
local gateway (the pixel is recorded as an open) and a link is clicked (it lands on its
destination and is recorded as a click)."""

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from playwright.sync_api import sync_playwright

from test_lambda_emulator import free_port, stream_events

CHROMIUM = "/usr/bin/chromium"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target")) / "debug"


def wait_for_port(port, proc, what, seconds=60):
    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, f"{what} exited early"
            assert time.time() < deadline, f"{what} did not start listening"
            time.sleep(0.2)


class Site(BaseHTTPRequestHandler):
    """The sender's website (link destinations) and a page that shows the email."""

    pages = {}

    def do_GET(self):
        page = self.pages.get(self.path.split("?")[0])
        self.send_response(200 if page else 404)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write((page or "not found").encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway(repo_root, moto_endpoint, tmp_path):
    assert (TARGET / "beacon-local").exists(), f"build first: {TARGET / 'beacon-local'} is missing (make build)"
    port = free_port()
    stack = f"br{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    # Its log goes to a file: a pipe nobody reads fills up and stalls the gateway.
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [str(TARGET / "beacon-local"), "serve", "--stack", stack, "--listen", f"127.0.0.1:{port}"],
        cwd=repo_root, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    wait_for_port(port, proc, "beacon-local serve")
    yield f"http://127.0.0.1:{port}", stack, env
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_recipient_opens_and_clicks_in_chromium(repo_root, gateway, tmp_path):
    assert Path(CHROMIUM).exists(), "Chromium is missing: run scripts/debian-tools.sh"
    gateway_url, stack, env = gateway
    secrets = boto3.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    keys = secrets.get_secret_value(SecretId=f"{stack}/tracking-keys")["SecretString"]

    site = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    site_url = f"http://127.0.0.1:{site.server_address[1]}"
    threading.Thread(target=site.serve_forever, daemon=True).start()
    destination = f"{site_url}/landing?utm_source=email"
    email = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Spring sale</title></head>
<body style="font-family:sans-serif"><h1>Spring sale</h1>
<p><a id="shop" href="{site_url}/landing?utm_source=email">Shop now</a></p>
<p><a href="mailto:help@example.com">help</a></p></body></html>"""
    instrumented = subprocess.run(
        [str(TARGET / "beacon"), "instrument", "--tenant", "acme", "--campaign", "browser", "--message", "m-1", "--recipient", "r-1", "--base-url", gateway_url],
        input=email, capture_output=True, text=True, env=dict(env, BEACON_TRACKING_KEYS=keys), check=True,
    ).stdout
    assert f"{gateway_url}/c/" in instrumented and f"{gateway_url}/o/" in instrumented
    Site.pages = {"/email": instrumented, "/landing": "<h1>Welcome to the sale</h1>"}

    artifacts = repo_root / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36")
        with page.expect_response(lambda r: "/o/" in r.url) as pixel:
            page.goto(f"{site_url}/email")
        assert pixel.value.status == 200
        assert pixel.value.headers["content-type"] == "image/gif"
        page.screenshot(path=str(artifacts / "browser-email.png"))
        page.click("#shop")
        page.wait_for_url(destination)
        assert page.inner_text("h1") == "Welcome to the sale"
        browser.close()
    site.shutdown()

    kinesis = boto3.client("kinesis", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    events = stream_events(kinesis, f"{stack}-events")
    opens = [e for e in events if e["type"] == "message.opened"]
    clicks = [e for e in events if e["type"] == "link.clicked"]
    assert len(opens) == 1, events
    assert len(clicks) == 1, events
    assert clicks[0]["link_url"] == destination
    assert opens[0]["recipient_id"] == "r-1"
    assert opens[0]["context"]["device_class"] == "desktop"
