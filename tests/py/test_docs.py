"""The README and docs/: every relative link resolves, and every environment variable the
code reads is in docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")

# Where the product's code reads its environment: the Rust sources (not tests) and the
# project's Python and shell scripts.
RUST_SOURCES = ["shared", "functions", "cli/src", "local/src"]
SCRIPTS = ["scripts", "benches"]
# A variable as Rust code names it (`Env::get("X")`, `std::env::var("X")`, clap's
# `env = "X"`) and as the scripts read it.
RUST_VAR = re.compile(r'"((?:BEACON|AWS)_[A-Z0-9_]+)"')
PY_VAR = re.compile(r"""os\.environ(?:\.get)?[\[(]['"]([A-Z][A-Z0-9_]+)['"]|['"]((?:BEACON|AWS)_[A-Z0-9_]+)['"]""")
# A shell script's knobs: variables it reads with a default.
SH_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]+):-")


def rust_files():
    for top in RUST_SOURCES:
        for path in (ROOT / top).rglob("*.rs"):
            if "/tests/" in str(path.relative_to(ROOT)) or path.name == "testkit.rs":
                continue
            yield path


def variables_read() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in rust_files():
        text = path.read_text()
        # Unit tests inside a source file set variables of their own; leave them out.
        text = text.split("#[cfg(test)]")[0]
        for name in RUST_VAR.findall(text):
            found.setdefault(name, str(path.relative_to(ROOT)))
    for top in SCRIPTS:
        for path in (ROOT / top).glob("*"):
            if path.suffix == ".py":
                names = [a or b for a, b in PY_VAR.findall(path.read_text())]
            elif path.suffix == ".sh":
                names = SH_VAR.findall(path.read_text())
            else:
                continue
            for name in names:
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_every_relative_link_resolves():
    checked = 0
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            checked += 1
            if not (doc.parent / path).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken)
    # The front door links to every document, and the documents to the code.
    assert checked >= 30, checked


def test_the_readme_links_every_document():
    readme = (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"README.md does not link docs/{doc.name}"


def test_every_environment_variable_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text()
    read = variables_read()
    # The scan finds the variables everyone knows it should.
    assert {"BEACON_ROLLUPS_TABLE", "BEACON_TRACKING_KEYS", "AWS_ENDPOINT_URL"} <= set(read)
    missing = [f"{name} (read in {where})" for name, where in sorted(read.items())
               if f"`{name}`" not in documented]
    assert not missing, "not in docs/configuration.md:\n" + "\n".join(missing)
