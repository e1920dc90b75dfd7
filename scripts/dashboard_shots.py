#!/usr/bin/env python3
"""Screenshots of every dashboard page, at desktop and phone sizes, through a signed link.

    .venv/bin/python scripts/dashboard_shots.py LINK OUT_DIR [--campaign C]

Opens LINK (from `beacon dashboard link`, or the one `make demo` prints) in headless
Chromium (Debian's /usr/bin/chromium: the project never downloads a browser), waits for
each page's numbers, and writes OUT_DIR/{page}-{size}.png: the campaigns list, the
campaign page (C, or the first campaign listed), deliverability, audience and live.
Fails if a page shows an error or a screenshot is blank. `make demo` runs it into
out/dashboard/; the browser tests use `shoot` and `not_blank` for tests/artifacts/.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import urllib.parse
import zlib
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
# Page name -> the fragment it lives at under /dashboard/.
PAGES = {"campaigns": "#/", "deliverability": "#/deliverability", "audience": "#/audience", "live": "#/live"}


def not_blank(png: bytes) -> bool:
    """Decodes the PNG's pixel rows enough to see more than one colour."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    # A one-colour image filters to a handful of byte values; text and charts to many.
    return len(set(raw)) > 32


def launch(playwright):
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/debian-tools.sh (make tools)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _capture(page, path: Path, what: str) -> Path:
    png = page.screenshot(path=str(path), full_page=True)
    if not not_blank(png):
        raise AssertionError(f"{what} is blank ({path})")
    return path


def shoot(page, base_url: str, out_dir: Path, campaign: str, prefix: str = "") -> list[Path]:
    """Screenshots of each page at each size, from a page whose context holds a session;
    returns the files written. The campaign page's chart must fit each width."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    pages = dict(PAGES)
    pages["campaign"] = "#/campaign/" + urllib.parse.quote(campaign, safe="")
    for name, fragment in pages.items():
        page.set_viewport_size(SIZES["desktop"])
        page.goto(f"{base_url}/dashboard/{fragment}")
        page.wait_for_selector("#chart .uplot" if name == "campaign" else "main h1")
        page.wait_for_load_state("networkidle")
        if page.locator("[role=alert]").count():
            raise AssertionError(f"{name}: {page.locator('[role=alert]').first.inner_text()}")
        for size, viewport in SIZES.items():
            page.set_viewport_size(viewport)
            if name == "campaign":
                # The chart follows the width (a ResizeObserver redraws it).
                fits = ("document.querySelector('#chart .uplot').getBoundingClientRect().right"
                        " <= window.innerWidth")
                deadline = time.time() + 5
                while not page.evaluate(fits):
                    if time.time() > deadline:
                        raise AssertionError(f"the chart overflows the {size} viewport")
                    time.sleep(0.1)
            written.append(_capture(page, out_dir / f"{prefix}{name}-{size}.png", f"{name} at {size}"))
    page.set_viewport_size(SIZES["desktop"])
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("link")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--campaign", help="the campaign page to show (default: the first listed)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    base_url = args.link.split("/dashboard/", 1)[0]
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(viewport=SIZES["desktop"]).new_page()
            page.goto(args.link)
            page.wait_for_url(f"{base_url}/dashboard/**")
            campaign = args.campaign
            if campaign is None:
                first = page.locator("tbody tr a").first
                first.wait_for()
                campaign = first.inner_text()
            for path in shoot(page, base_url, args.out_dir, campaign):
                print(path)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
