"""The dashboard in headless Chromium, over the local gateway and the emulator, after the
demo's traffic: every page renders without console errors and passes axe-core; its
numbers are the stats API's; the range and time-zone controls change the series; a
campaign link cannot reach past its campaign; expired, altered and revoked links are
refused; the live view shows a collected event without a reload. Screenshots of each
page at desktop and phone sizes go to tests/artifacts/."""

import base64
import hashlib
import hmac
import importlib.util
import json
import os
import re
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from playwright.sync_api import sync_playwright

from test_browser import CHROMIUM, TARGET, wait_for_port
from test_lambda_emulator import free_port

_spec = importlib.util.spec_from_file_location(
    "dashboard_shots", Path(__file__).resolve().parents[2] / "scripts" / "dashboard_shots.py")
shots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shots)

DASHBOARD = Path(__file__).resolve().parents[2] / "functions" / "stats" / "dashboard"
AXE = DASHBOARD / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
SIZES, PAGES, not_blank = shots.SIZES, shots.PAGES, shots.not_blank


@pytest.fixture(scope="module")
def site(repo_root, moto_endpoint, summary, tmp_path_factory):
    """`beacon-local serve` on the demo's stack, an API key and the dashboard keys."""
    assert (TARGET / "beacon-local").exists(), "build first (make build)"
    assert AXE.exists(), f"{AXE} is missing: make dashboard-deps (make test does it)"
    stack = summary["stream"].removesuffix("-events")
    port = free_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    log_path = tmp_path_factory.mktemp("dashboard") / "serve.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(TARGET / "beacon-local"), "serve", "--stack", stack, "--listen", f"127.0.0.1:{port}"],
        cwd=repo_root, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    try:
        wait_for_port(port, proc, "beacon-local serve", seconds=120)
        secrets = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
        keys = secrets.get_secret_value(SecretId=f"{stack}/dashboard-keys")["SecretString"]
        cli_env = dict(env, BEACON_DASHBOARD_KEYS=keys, BEACON_ROLLUPS_TABLE=f"{stack}-rollups",
                       BEACON_API_KEYS_TABLE=f"{stack}-api-keys")
        api_key = subprocess.run([str(TARGET / "beacon"), "apikey", "create", "--tenant", summary["tenant"]],
                                 env=cli_env, capture_output=True, text=True, check=True).stdout.strip()
        yield {"url": f"http://127.0.0.1:{port}", "stack": stack, "env": cli_env, "keys": json.loads(keys),
               "tenant": summary["tenant"], "campaign": summary["campaign"], "api_key": api_key,
               "log": log_path}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def collect(site, event):
    """Sends one event through the collect API."""
    req = urllib.request.Request(site["url"] + "/v1/events", data=json.dumps(event).encode(),
                                 headers={"x-api-key": site["api_key"], "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 202)


def make_link(site, *args) -> tuple[str, str]:
    """A link from the CLI, and its id."""
    done = subprocess.run([str(TARGET / "beacon"), "dashboard", "link", "--base-url", site["url"], *args],
                          env=site["env"], capture_output=True, text=True, check=True)
    link_id = done.stderr.split("link ", 1)[1].split()[0]
    return done.stdout.strip(), link_id


def api(site, path):
    req = urllib.request.Request(site["url"] + path, headers={"x-api-key": site["api_key"]})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def python_signed_link(site, tenant, campaign, expires_at) -> str:
    """A token made by an independent implementation of the documented format."""
    keys = site["keys"]
    kid = keys["active"]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"beacon dashboard v1\0" + tenant.encode()).derive(keys[kid].encode())
    body = bytes([ord("D"), 1, len(kid)]) + kid.encode() + bytes([len(tenant)]) + tenant.encode()
    body += struct.pack(">H", len(campaign)) + campaign.encode() + os.urandom(16) + struct.pack(">I", expires_at)
    tag = hmac.new(key, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + tag).decode().rstrip("=")


def browser(p):
    return shots.launch(p)


def watch_errors(page) -> list:
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors


def test_every_page_renders_matches_the_api_and_passes_axe(site):
    assert Path(CHROMIUM).exists(), "Chromium is missing: run scripts/debian-tools.sh"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    link, _ = make_link(site, "--tenant", site["tenant"], "--note", "browser test")
    campaign = site["campaign"]
    path = f"/v1/campaigns/{urllib.parse.quote(campaign, safe='')}"
    # The demo's readers are people: add a machine open (Apple's bare agent) and a bot
    # click (a script's agent), and wait until the rollups count them.
    before = api(site, path)["counts"]
    for kind, agent, extra in [("message.opened", "Mozilla/5.0", {}),
                               ("link.clicked", "python-requests/2.31", {"link_url": "https://shop.example/x"})]:
        collect(site, {"type": kind, "event_id": "machine-" + uuid.uuid4().hex, "campaign_id": campaign,
                       "message_id": "m-machine-" + uuid.uuid4().hex, "recipient_id": "r-machine",
                       "context": {"user_agent": agent}, **extra})
    deadline = time.time() + 60
    while True:
        overview = api(site, path)
        c = overview["counts"]
        if c["opens_machine"] > before["opens_machine"] and c["clicks_bot"] > before["clicks_bot"]:
            break
        assert time.time() < deadline, f"the machine open and bot click were not counted: {c}"
        time.sleep(1)
    with sync_playwright() as p:
        b = browser(p)
        context = b.new_context(viewport=SIZES["desktop"])
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(link)
        page.wait_for_url(f"{site['url']}/dashboard/")
        assert "t=" not in page.url, "the token leaves the address bar"
        cookie = next(c for c in context.cookies() if c["name"] == "beacon_dashboard")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == "", "scripts cannot read the session"

        # Campaigns: the demo campaign's row shows the API's numbers.
        row = page.locator("tbody tr", has=page.locator(f"a:text-is('{campaign}')"))
        row.wait_for()
        cells = row.locator("td").all_inner_texts()
        assert cells[0].replace(",", "").replace("\u202f", "") == str(overview["counts"]["sent"])
        assert cells[1] == f"{overview['rates']['delivery_rate'] * 100:.1f}%"

        # The campaign page: every headline number equals the overview's.
        page.click(f"a:text-is('{campaign}')")
        page.wait_for_selector("#chart .uplot")
        shown = {k: page.locator(f"dd[data-metric='{k}']").inner_text().split(" ")[0].replace(",", "")
                 for k in ["Sent", "Delivered", "Human opens", "Machine opens", "Human clicks", "Bot clicks"]}
        c = overview["counts"]
        assert shown == {"Sent": str(c["sent"]), "Delivered": str(c["delivered"]),
                         "Human opens": str(c["opens_human"]), "Machine opens": str(c["opens_machine"]),
                         "Human clicks": str(c["clicks_human"]), "Bot clicks": str(c["clicks_bot"])}
        # Machines by reason: one row per reason with a count, as the API gives them.
        opens, clicks = overview["machine_opens_by_reason"], overview["bot_clicks_by_reason"]
        assert sum(opens.values()) == c["opens_machine"] and sum(clicks.values()) == c["clicks_bot"]
        assert opens.get("apple_mpp_agent", 0) >= 1 and clicks.get("scanner_agent", 0) >= 1, overview
        rows = page.locator("#reasons tbody tr")
        shown = sorted(tuple(x.replace(",", "") for x in rows.nth(i).locator("td").all_inner_texts())
                       for i in range(rows.count()))
        wanted = sorted((str(opens.get(r, 0)), str(clicks.get(r, 0))) for r in set(opens) | set(clicks))
        assert shown == wanted, (shown, wanted)
        # Channels and providers: each row's sent and human opens as the API has them.
        channels = api(site, path + "/channels")["channels"]
        assert sum(c["counts"]["sent"] for c in channels) == overview["counts"]["sent"]
        rows = page.locator("#campaign-channels tbody tr")
        shown = sorted(tuple(x.replace(",", "") for x in rows.nth(i).locator("th, td").all_inner_texts())
                       for i in range(rows.count()))
        wanted = sorted((c["channel"], c["provider"] or "–", str(c["counts"]["sent"])) for c in channels)
        assert [r[:3] for r in shown] == wanted, (shown, wanted)
        opens_col = [r[6] for r in shown]
        assert sorted(opens_col) == sorted(str(c["counts"]["opens_human"]) for c in channels)
        for name, fragment in PAGES.items():
            page.goto(f"{site['url']}/dashboard/{fragment}")
            page.wait_for_selector("main h1")
            page.wait_for_load_state("networkidle")
            shown = page.inner_text("main")
            assert not re.search(r"\b(null|undefined|NaN)\b", shown), f"{name}: {shown[:400]}"
        # Every page at desktop and phone sizes, none blank, the chart within the width.
        written = shots.shoot(page, site["url"], ARTIFACTS, campaign, prefix="dashboard-")
        assert len(written) == len(SIZES) * (len(PAGES) + 1)
        assert errors == [], errors

        # axe-core, injected past the page's content-security policy (which forbids
        # any script not served by Beacon).
        axe_context = b.new_context(viewport=SIZES["desktop"], bypass_csp=True)
        axe_context.add_cookies([{**cookie, "url": site["url"]} if False else cookie])
        axe_page = axe_context.new_page()
        for name, fragment in {**PAGES, "campaign": f"#/campaign/{campaign}"}.items():
            axe_page.goto(f"{site['url']}/dashboard/{fragment}")
            axe_page.wait_for_selector("main h1")
            axe_page.wait_for_load_state("networkidle")
            axe_page.add_script_tag(path=str(AXE))
            result = axe_page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            bad = [(v["id"], v["impact"], len(v["nodes"])) for v in result["violations"]
                   if v["impact"] in ("serious", "critical")]
            assert bad == [], f"{name}: {bad}"
        b.close()


def test_range_and_time_zone_change_the_series(site):
    link, _ = make_link(site, "--tenant", site["tenant"])
    campaign = urllib.parse.quote(site["campaign"], safe="")
    with sync_playwright() as p:
        b = browser(p)
        page = b.new_page(viewport=SIZES["desktop"])
        page.goto(link)
        with page.expect_request(lambda r: "/timeseries" in r.url) as first:
            page.goto(f"{site['url']}/dashboard/#/campaign/{campaign}")
        assert "grain=day" in first.value.url
        page.wait_for_selector("#series-totals")
        utc_totals = page.inner_text("#series-totals")
        api_series = api(site, first.value.url.split(site["url"], 1)[1])
        assert f"{api_series['totals']['opens_human']:,} human opens" in utc_totals.replace("\u202f", ",")

        with page.expect_request(lambda r: "/timeseries" in r.url) as tokyo:
            page.select_option("#zone", "Asia/Tokyo")
        assert "grain=hour" in tokyo.value.url, "local days are built from hours"
        page.wait_for_selector("#chart-note:has-text('Days in Asia/Tokyo')")

        with page.expect_request(lambda r: "/timeseries" in r.url) as hourly:
            page.select_option("#grain", "hour")
        assert "grain=hour" in hourly.value.url
        page.wait_for_selector("#chart-note:has-text('Hours in Asia/Tokyo')")

        with page.expect_request(lambda r: "/timeseries" in r.url):
            page.select_option("#grain", "day")
        with page.expect_request(lambda r: "/timeseries" in r.url) as longer:
            page.select_option("#range", "90")
        from_90 = longer.value.url.split("from=")[1][:10]
        from_7 = first.value.url.split("from=")[1][:10]
        assert from_90 < from_7
        page.wait_for_selector("#chart-note:has-text('Days beyond 31 are UTC days')")
        assert "days=90" in page.url and "tz=Asia%2FTokyo" in page.url
        b.close()


def test_a_campaign_link_reaches_nothing_else(site):
    link, _ = make_link(site, "--tenant", site["tenant"], "--campaign", site["campaign"])
    campaign = site["campaign"]
    with sync_playwright() as p:
        b = browser(p)
        page = b.new_page(viewport=SIZES["desktop"])
        page.goto(link)
        page.wait_for_selector("#campaign-id")
        assert page.inner_text("#campaign-id") == campaign
        assert page.locator("a[data-section='deliverability']").count() == 0
        assert page.locator("a[data-section='audience']").count() == 0
        # Another campaign, by editing the URL: back to its own.
        page.goto(f"{site['url']}/dashboard/#/campaign/another-campaign")
        own = f"#/campaign/{urllib.parse.quote(campaign, safe='')}"
        page.wait_for_url(lambda url: own in url)
        # And by calling the API from the page.
        statuses = page.evaluate("""async (own) => {
            const get = async (p) => (await fetch(p)).status;
            const list = await (await fetch('/v1/campaigns')).json();
            return {
              other: await get('/v1/campaigns/another-campaign'),
              tenant_series: await get('/v1/timeseries'),
              suppressions: await get('/v1/suppressions'),
              segments: await get('/v1/segments'),
              live: await get('/v1/live'),
              own: await get('/v1/campaigns/' + encodeURIComponent(own)),
              own_links: await get('/v1/campaigns/' + encodeURIComponent(own) + '/links'),
              named_tenant: await get('/v1/campaigns?tenant=globex'),
              listed: list.campaigns.map((c) => c.campaign_id),
            };
        }""", campaign)
        assert statuses == {"other": 403, "tenant_series": 403, "suppressions": 403, "segments": 403, "live": 403,
                            "own": 200, "own_links": 200, "named_tenant": 400, "listed": [campaign]}, statuses

        # A link of another tenant sees none of this tenant's campaigns.
        other, _ = make_link(site, "--tenant", "globex-" + uuid.uuid4().hex[:6])
        page2 = b.new_page()
        page2.goto(other)
        seen = page2.evaluate("""async (own) => ({
            list: (await (await fetch('/v1/campaigns')).json()).campaigns.length,
            own: (await fetch('/v1/campaigns/' + encodeURIComponent(own))).status,
        })""", campaign)
        assert seen == {"list": 0, "own": 404}, seen
        # Its campaigns page is the designed empty state, with what to do next.
        page2.goto(f"{site['url']}/dashboard/#/")
        page2.wait_for_selector("text=No campaigns yet")
        assert "collect API" in page2.inner_text("main")
        b.close()


def test_serve_prints_a_working_dashboard_link(site):
    deadline = time.time() + 30  # printed once the gateway and the consumers are up
    while not (found := re.findall(r"(http://\S+/dashboard/open\?t=\S+)", site["log"].read_text())):
        assert time.time() < deadline, site["log"].read_text()
        time.sleep(0.2)
    assert len(found) == 1, site["log"].read_text()
    assert found[0].startswith(site["url"] + "/")

    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    try:
        urllib.request.build_opener(Stay).open(found[0], timeout=10)
        raise AssertionError("the link did not redirect")
    except urllib.error.HTTPError as answer:
        assert answer.code == 303, answer.code
        assert answer.headers["location"] == "/dashboard/"
        assert "beacon_dashboard=" in answer.headers["set-cookie"]


def test_expired_altered_and_revoked_links_are_refused(site):
    tenant = site["tenant"]
    with sync_playwright() as p:
        b = browser(p)
        page = b.new_page()
        # A well-signed but expired link (signed here, independently of Beacon).
        expired = python_signed_link(site, tenant, "", int(time.time()) - 60)
        r = page.goto(f"{site['url']}/dashboard/open?t={expired}")
        assert r.status == 403 and "expired" in page.inner_text("main")
        # A well-signed, unexpired one that nobody recorded: refused like a revoked one.
        unrecorded = python_signed_link(site, tenant, "", int(time.time()) + 600)
        assert page.goto(f"{site['url']}/dashboard/open?t={unrecorded}").status == 403

        link, link_id = make_link(site, "--tenant", tenant)
        token = link.split("t=", 1)[1]
        altered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
        r = page.goto(f"{site['url']}/dashboard/open?t={altered}")
        assert r.status == 403, r.status

        assert page.goto(link).ok
        assert page.evaluate("fetch('/v1/session').then((r) => r.status)") == 200
        subprocess.run([str(TARGET / "beacon"), "dashboard", "revoke", "--tenant", tenant, link_id],
                       env=site["env"], check=True, capture_output=True)
        assert page.evaluate("fetch('/v1/session').then((r) => r.status)") == 401, "revoked at once"
        page.goto(f"{site['url']}/dashboard/")
        page.wait_for_selector("text=Open your dashboard link")
        assert page.goto(link).status == 403
        listed = subprocess.run([str(TARGET / "beacon"), "dashboard", "links", "--tenant", tenant],
                                env=site["env"], check=True, capture_output=True, text=True).stdout
        assert any(line.startswith(link_id) and "revoked" in line for line in listed.splitlines()), listed
        b.close()


def test_the_live_view_shows_a_collected_event_within_ten_seconds(site):
    link, _ = make_link(site, "--tenant", site["tenant"])
    recipient = "live-" + uuid.uuid4().hex[:10]
    with sync_playwright() as p:
        b = browser(p)
        page = b.new_page()
        page.goto(link)
        page.goto(f"{site['url']}/dashboard/#/live")
        page.wait_for_selector("#live-feed")
        page.evaluate("window.__notReloaded = true")
        collect(site, {"type": "message.bounced", "event_id": "live-" + uuid.uuid4().hex,
                       "campaign_id": site["campaign"], "message_id": "m-" + recipient,
                       "recipient_id": recipient, "bounce_type": "soft"})
        started = time.time()
        page.wait_for_selector(f"#live-feed li:has-text('{recipient}')", timeout=10_000)
        assert time.time() - started <= 10
        assert page.evaluate("window.__notReloaded") is True
        b.close()


def test_the_embedded_chart_library_is_the_pinned_package():
    """vendor/ holds uPlot's built files exactly as the lockfile's package has them
    (npm ci checked the package against the lockfile's integrity hash)."""
    lock = json.loads((DASHBOARD / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/uplot"]["version"]
    installed = json.loads((DASHBOARD / "node_modules" / "uplot" / "package.json").read_text())["version"]
    assert installed == pinned
    for name in ["uPlot.iife.min.js", "uPlot.min.css"]:
        vendored = (DASHBOARD / "vendor" / name).read_bytes()
        assert vendored == (DASHBOARD / "node_modules" / "uplot" / "dist" / name).read_bytes(), name
    html = (DASHBOARD / "index.html").read_text()
    assert "http://" not in html and "https://" not in html, "nothing from another origin"


def test_deliverability_shows_the_api_rates_alerts_and_exports_the_suppression_list(site):
    link, _ = make_link(site, "--tenant", site["tenant"])
    series = api(site, "/v1/timeseries?grain=day")
    alerts = api(site, "/v1/alerts")
    expected = set()
    cursor = None
    while True:
        page_ = api(site, "/v1/suppressions?channel=email&limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        expected |= {s["recipient"] for s in page_["suppressions"]}
        cursor = page_["next_cursor"]
        if not cursor:
            break
    assert expected, "the demo's bounce spike suppresses recipients"
    with sync_playwright() as p:
        b = browser(p)
        page = b.new_page(accept_downloads=True)
        page.goto(link)
        page.goto(f"{site['url']}/dashboard/#/deliverability")
        page.wait_for_selector("#bounce-level")
        assert f"{series['rates']['bounce_rate'] * 100:.1f}%" in page.inner_text("#bounce-level")
        for rule in alerts["rules"]:
            assert page.locator(f"th:has-text('{rule['id']}')").count() == 1, rule["id"]
        with page.expect_download() as download:
            page.click("text=Export the suppression list (CSV)")
        rows = Path(download.value.path()).read_text().splitlines()
        assert rows[0] == "recipient,channel,since,reasons,campaign"
        assert {r.split(",")[0].strip('"') for r in rows[1:]} == expected
        b.close()


def test_the_demo_counts_its_machines_apart_and_leaves_the_dashboard_link_and_screenshots(demo, summary):
    # The demo's machines (Apple's proxy, a scanning gateway that follows the honeypot)
    # are counted apart from its people, each number equal to the simulator's truth.
    assert summary["matches"] is True
    for name in ("opens_machine", "clicks_bot", "opens_human", "clicks_human"):
        assert summary["stats"][name] == summary["stats_truth"][name], name
    assert summary["stats"]["opens_machine"] > 0 and summary["stats"]["clicks_bot"] > 0
    opens, clicks = summary["overview"]["machine_opens_by_reason"], summary["overview"]["bot_clicks_by_reason"]
    assert opens.get("apple_mpp_agent", 0) > 0 and opens.get("opened_with_scan", 0) > 0, opens
    assert clicks.get("honeypot", 0) > 0 and clicks.get("near_honeypot", 0) > 0, clicks
    assert sum(opens.values()) == summary["stats"]["opens_machine"]
    assert sum(clicks.values()) == summary["stats"]["clicks_bot"]
    # The lake keeps each request's own verdict: the scanner's Chrome clicks are human
    # there, bots in the rollups; the totals agree.
    lake = summary["lake_counts"]
    assert lake["clicks_human"] > summary["stats"]["clicks_human"]
    assert lake["clicks_human"] + lake["clicks_bot"] == summary["rollup_totals"]["clicks"]

    # The link it printed, and a non-blank screenshot of every page at both sizes.
    link = summary["dashboard"]["link"]
    assert link.startswith(summary["gateway"] + "/dashboard/open?t="), link
    shots = sorted(Path(p).name for p in summary["dashboard"]["screenshots"])
    wanted = sorted(f"{page}-{size}.png" for page in [*PAGES, "campaign"] for size in SIZES)
    assert shots == wanted
    for name in shots:
        png = (demo / "dashboard" / name).read_bytes()
        assert not_blank(png), name


def test_a_recipient_lookup_shows_the_score_and_each_recent_hit_with_its_verdict(site):
    # A demo recipient whose mail a machine fetched (Apple's proxy or a scanner) and one
    # a person opened: the API's messages, then the page's.
    found = {}
    for i in range(80):
        r = f"r{i:05}"
        messages = api(site, f"/v1/recipients/{r}/messages")["messages"]
        for m in messages:
            for h in m["hits"]:
                found.setdefault(h["machine"], (r, messages))
        if len(found) == 2:
            break
    assert set(found) == {True, False}, "the demo has machine and human hits"
    with sync_playwright() as p:
        b = browser(p)
        page = b.new_context(viewport=SIZES["desktop"]).new_page()
        errors = watch_errors(page)
        seen = []
        page.on("response", lambda r: seen.append(f"{r.status} {r.url}"))
        link, _ = make_link(site, "--tenant", site["tenant"], "--note", "recipient lookup")
        page.goto(link)
        page.wait_for_url(f"{site['url']}/dashboard/")
        page.wait_for_selector("main h1")
        page.goto(f"{site['url']}/dashboard/#/audience")
        page.wait_for_selector("#recipient")
        for machine, (recipient, messages) in found.items():
            score = api(site, f"/v1/recipients/{recipient}/engagement")["engagement"]["score"]
            page.fill("#recipient", recipient)
            page.click("main form button[type=submit]")
            try:
                page.wait_for_selector(f"#recipient-result[data-recipient='{recipient}'] #recent-messages",
                                       timeout=10_000)
            except Exception:
                raise AssertionError(f"{recipient}: {page.inner_text('main')[-600:]} {errors} {seen}") from None
            rows = page.locator("#recent-messages tbody tr")
            hits = [h for m in messages for h in m["hits"]]
            assert rows.count() == len(hits), (recipient, rows.count(), len(hits))
            verdicts = [rows.nth(i).locator("td").last.inner_text() for i in range(rows.count())]
            assert [v.startswith("Machine") for v in verdicts] == [h["machine"] for h in hits], verdicts
            shown_score = page.locator("#recipient-result dd").first.inner_text().split(" ")[0]
            assert float(shown_score.replace(",", "")) == score
        b.close()
    assert errors == [], errors
