"""The demo's report as its readers' tools see it: the email SES accepted, read back
from the emulator and parsed by Python's MIME parser; the spreadsheet opened by
openpyxl with its numbers checked against the stats API's; the PDF rendered to PNG by
poppler's pdftoppm; the stored HTML page opened in headless Chromium and screenshotted
(tests/artifacts/report-email.png). And the CLI rejecting bad definitions clearly."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import openpyxl
import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target")) / "debug"
CHROMIUM = "/usr/bin/chromium"
PDFTOPPM = "/usr/bin/pdftoppm"


@pytest.fixture(scope="module")
def report(summary) -> dict:
    r = summary["report"]
    assert r["sent"] == 1, r
    return r


def local_file(report: dict, extension: str) -> Path:
    paths = [Path(f["path"]) for f in report["files"] if f["path"].endswith("." + extension)]
    assert len(paths) == 1, report["files"]
    return paths[0]


def sent_messages(moto_endpoint: str) -> list[dict]:
    with urllib.request.urlopen(f"{moto_endpoint}/moto-api/data.json") as r:
        data = json.load(r)
    messages = []
    for backend in data.get("ses", {}).values():
        for item in backend if isinstance(backend, list) else []:
            if isinstance(item, dict) and "raw_data" in item:
                messages.append(item)
    return messages


def test_the_schedule_sent_the_report_once_with_every_file_encrypted(report):
    assert report["second_trigger_sent"] == 0
    assert [o["reason"] for o in report["second_trigger"] if o["report"] == "campaign-daily"] == ["already sent"]
    extensions = sorted(Path(f["key"]).suffix for f in report["files"])
    assert extensions == [".csv", ".html", ".json", ".pdf", ".xlsx"]
    for f in report["files"]:
        assert f["key"].startswith(f"tenants/demo/reports/campaign-daily/{report['period']}/"), f
        assert f["encryption"] == "AES256", f


def test_the_email_parses_with_its_parts_and_attachments(report, moto_endpoint):
    raw = [m for m in sent_messages(moto_endpoint) if report["definition"]["name"] in m["raw_data"]]
    assert len(raw) == 1, "exactly one report email for the period"
    msg = email.message_from_string(raw[0]["raw_data"], policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["To"] == "marketing@demo.example"
    assert report["definition"]["name"] in msg["Subject"]
    related = next(p for p in msg.iter_parts() if p.get_content_type() == "multipart/related")
    alternative = next(p for p in related.iter_parts() if p.get_content_type() == "multipart/alternative")
    kinds = [p.get_content_type() for p in alternative.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    html = alternative.get_body(("html",)).get_content()
    text = alternative.get_body(("plain",)).get_content()
    assert 'src="cid:chart@beacon"' in html and "<script" not in html.lower() and "<style" not in html.lower()
    assert "Delivered" in text
    chart = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert chart["Content-ID"].strip("<>") == "chart@beacon"
    assert chart.get_content().startswith(b"\x89PNG")
    attachments = {p.get_filename(): p for p in msg.iter_attachments() if p.get_filename()}
    period = report["period"]
    assert set(attachments) == {f"campaign-daily-{period}.{e}" for e in ("csv", "json", "xlsx", "pdf")}
    # What was attached is what was stored.
    for ext in ("csv", "pdf", "xlsx"):
        assert attachments[f"campaign-daily-{period}.{ext}"].get_payload(decode=True) == local_file(report, ext).read_bytes()


def test_the_spreadsheet_numbers_match_the_stats_api(report, summary):
    book = openpyxl.load_workbook(local_file(report, "xlsx"))
    assert {"Summary", "Series", "Top links", "Deliverability"} <= set(book.sheetnames), book.sheetnames
    sheet = book["Summary"]
    values = {row[1]: row[2] for row in sheet.iter_rows(min_row=2, values_only=True) if row[1]}
    stats = summary["stats"]
    assert values["sent"] == stats["sent"] > 0
    assert values["delivered"] == stats["delivered"]
    assert values["bounced"] == stats["bounced_hard"] + stats["bounced_soft"]
    assert values["complained"] == stats["complained"]
    assert values["opens_human"] == stats["opens_human"]
    assert values["clicks_human"] == stats["clicks_human"]
    assert values["delivery_rate"] == pytest.approx(stats["delivered"] / stats["sent"])
    assert sheet.freeze_panes == "A2", "the header row is frozen"
    series = book["Series"]
    sent_col = [c.value for c in series[1]].index("Sent")
    hourly = [row[sent_col] for row in series.iter_rows(min_row=2, values_only=True) if row[0]]
    assert len(hourly) == 24 and sum(hourly) == stats["sent"]
    assert series._charts, "the series sheet has a chart"
    links = book["Top links"]
    clicks = [c.value for c in links[1]].index("Human clicks")
    assert sum(row[clicks] for row in links.iter_rows(min_row=2, values_only=True) if row[0]) == stats["clicks_human"]


def test_the_pdf_renders_to_png_pages(report, tmp_path):
    assert Path(PDFTOPPM).exists(), "pdftoppm is missing: run scripts/debian-tools.sh"
    done = subprocess.run([PDFTOPPM, "-png", "-r", "60", str(local_file(report, "pdf")), str(tmp_path / "page")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Error" not in done.stderr, done.stderr
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and all(p.read_bytes().startswith(b"\x89PNG") for p in pages)


def test_the_html_page_renders_in_chromium(report, repo_root):
    assert Path(CHROMIUM).exists(), "Chromium is missing: run scripts/debian-tools.sh"
    from playwright.sync_api import sync_playwright

    artifacts = repo_root / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    page_file = local_file(report, "html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 720, "height": 900})
        page.goto(page_file.as_uri())
        # The stored page carries its chart as a data: URI; it must decode and lay out.
        size = page.evaluate("() => { const i = document.querySelector('img'); return i && [i.complete, i.naturalWidth]; }")
        assert size and size[0] and size[1] > 0, size
        assert report["definition"]["name"] in page.inner_text("body")
        page.screenshot(path=str(artifacts / "report-email.png"), full_page=True)
        browser.close()
    assert (artifacts / "report-email.png").stat().st_size > 10_000


def test_bad_definitions_are_rejected_with_every_reason(tmp_path):
    done = subprocess.run(
        [str(TARGET / "beacon"), "report", "create", "--tenant", "acme", "--id", "Weekly Summary", "--name", "Weekly",
         "--cadence", "hourly", "--timezone", "Mars/Olympus", "--metric", "opens", "--recipient", "nobody",
         "--table", "unused"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_REGION="us-east-1"),
    )
    assert done.returncode != 0
    err = done.stderr
    for reason in ("id: `Weekly Summary` is not a report id", "unknown cadence `hourly`",
                   "unknown time zone `Mars/Olympus`", "unknown metric `opens`", "`nobody` is not an email address"):
        assert reason in err, err
    none = subprocess.run(
        [str(TARGET / "beacon"), "report", "create", "--tenant", "acme", "--id", "w", "--name", "W",
         "--cadence", "weekly", "--table", "unused"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9"),
    )
    assert none.returncode != 0 and "add at least one recipient email address" in none.stderr, none.stderr
