"""`beacon networks`, the built binary: importing Apple's egress CSV (a sample made of
documentation and benchmark ranges, never Apple's real ones) into a list file, counting
the lists, looking addresses up, and refusing bad input with the list, line and text."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BEACON = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target")) / "debug" / "beacon"

# Apple's format: CIDR, country, region, city, (empty). Two adjacent /27s collapse to a /26.
SAMPLE_CSV = """198.18.226.0/27,GB,GB-EN,London,
198.18.226.32/27,GB,GB-EN,London,
192.0.2.0/25,FR,FR-75,Paris,
2001:db8:4a::/48,US,US-CA,Los Angeles,
2001:db8:4a::/56,US,US-CA,Los Angeles,
"""


def beacon(*args: str) -> subprocess.CompletedProcess:
    if not BEACON.exists():
        pytest.fail(f"{BEACON} is missing: `make build` (make test-py does it first)")
    return subprocess.run([str(BEACON), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    """A copy of the shipped list files, to import into."""
    out = tmp_path / "networks"
    out.mkdir()
    for name in ("apple-proxy.txt", "scanners.txt"):
        shutil.copy(ROOT / "shared" / "networks" / name, out / name)
    return out


def test_import_collapses_apples_csv_and_the_lookup_uses_it(lists: Path, tmp_path: Path):
    csv = tmp_path / "egress-ip-ranges.csv"
    csv.write_text(SAMPLE_CSV)
    done = beacon("networks", "import", "apple-proxy", str(csv), "--out-dir", str(lists))
    assert done.returncode == 0, done.stderr
    assert "read 5 lines (5 with a range)" in done.stdout, done.stdout
    assert "apple-proxy: 3 ranges: 2 IPv4 covering 192 addresses, 1 IPv6 covering 65,536 /64s" in done.stdout
    text = (lists / "apple-proxy.txt").read_text()
    assert text.startswith("# apple-proxy: "), text
    assert "mask-api.icloud.com/egress-ip-ranges.csv" in text
    ranges = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert ranges == ["192.0.2.0/25", "198.18.226.0/26", "2001:db8:4a::/48"]

    listed = beacon("networks", "list", "--dir", str(lists))
    assert listed.returncode == 0, listed.stderr
    assert "apple-proxy: 3 ranges" in listed.stdout
    assert "scanners: empty, the signal is off" in listed.stdout

    expected = {
        "198.18.226.63": "apple-proxy",  # last address of the /26
        "198.18.226.64": "unlisted",  # same /24, outside Apple's block
        "::ffff:192.0.2.1": "apple-proxy",
        "2001:db8:4a:ffff::1": "apple-proxy",
        "2001:db8:4b::1": "unlisted",
    }
    for ip, label in expected.items():
        found = beacon("networks", "lookup", ip, "--dir", str(lists))
        assert found.returncode == 0, found.stderr
        assert found.stdout.strip() == label, (ip, found.stdout)


def test_the_shipped_lists_are_empty_and_say_the_signal_is_off():
    listed = beacon("networks", "list")
    assert listed.returncode == 0, listed.stderr
    for name in ("apple-proxy", "scanners"):
        assert f"{name}: empty, the signal is off" in listed.stdout, listed.stdout
    found = beacon("networks", "lookup", "198.18.226.1")
    assert found.returncode == 0 and found.stdout.strip() == "none", found
    assert "apple-proxy list compiled into this binary is empty" in found.stderr


def test_bad_input_is_refused_with_list_line_and_text(lists: Path, tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("# scanners\n192.0.2.0/24\n192.0.2.0/33,x\nmimecast\n")
    before = (lists / "scanners.txt").read_text()
    done = beacon("networks", "import", "scanners", str(bad), "--out-dir", str(lists))
    assert done.returncode != 0
    assert "scanners line 3: `192.0.2.0/33,x` is not an IP range" in done.stderr, done.stderr
    assert "scanners line 4: `mimecast`" in done.stderr, done.stderr
    assert (lists / "scanners.txt").read_text() == before, "nothing written"

    empty = tmp_path / "empty.csv"
    empty.write_text("# nothing\n")
    done = beacon("networks", "import", "scanners", str(empty), "--out-dir", str(lists))
    assert done.returncode != 0 and "refusing to write an empty scanners list" in done.stderr, done.stderr

    done = beacon("networks", "import", "apple", str(bad), "--out-dir", str(lists))
    assert done.returncode != 0
    assert "unknown network list `apple`; the lists are apple-proxy, scanners" in done.stderr

    done = beacon("networks", "lookup", "198.18.999.1")
    assert done.returncode != 0 and "`198.18.999.1` is not an IP address" in done.stderr, done.stderr

    done = beacon("networks", "import", "scanners", str(tmp_path / "missing.csv"), "--out-dir", str(lists))
    assert done.returncode != 0 and "missing.csv" in done.stderr, done.stderr
