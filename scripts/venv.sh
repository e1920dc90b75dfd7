#!/usr/bin/env bash
# Creates (or brings up to date) the project's Python virtualenv with the pinned tools in
# requirements-dev.txt: moto, cfn-lint, cargo-lambda, pytest, playwright, boto3.
#
#   scripts/venv.sh            # .venv at the repo root
#   BEACON_VENV=/x scripts/venv.sh
#
# Idempotent: the venv records the sha256 of the requirements it was built from, and a
# re-run with the same requirements returns at once. Changed requirements are installed
# into the existing venv and packages no longer listed are removed, so the venv holds
# exactly the pinned set; a venv whose Python no longer runs is rebuilt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BEACON_VENV:-$ROOT/.venv}"
REQS="$ROOT/requirements-dev.txt"
STAMP="$VENV/.beacon-requirements.sha256"
PYTHON="${PYTHON:-python3}"

say() { printf 'venv.sh: %s\n' "$*" >&2; }
die() { printf 'venv.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[[ -f "$REQS" ]] || die "$REQS is missing"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 (with the venv module)"

want="$(sha256sum "$REQS" | cut -d' ' -f1)"

up_to_date() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c '' 2>/dev/null
}

if up_to_date; then
    exit 0
fi

# Two make targets may run this at once: let one build, the other wait and re-check.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then
    flock 9
    if up_to_date; then
        exit 0
    fi
fi

if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
    say "$VENV is broken (its Python does not run): rebuilding it"
    rm -rf "$VENV"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV" ||
        die "'$PYTHON -m venv $VENV' failed (on Debian: apt-get install python3-venv)"
fi

rm -f "$STAMP"
say "installing $(basename "$REQS") into $VENV (takes about a minute the first time)"
start=$SECONDS
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQS" >&2; then
    die "pip install -r $REQS failed (see pip's output above); the venv is left without its stamp, so the next run retries"
fi

# Packages the requirements no longer list (an old pin's leftovers) go, so that this venv
# and a fresh one hold the same set.
extras="$("$VENV/bin/python" - "$REQS" <<'PY'
import re, sys
from importlib import metadata

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

wanted = {"pip", "setuptools", "wheel"}
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line and not line.startswith("-"):
        wanted.add(norm(re.split(r"[\[=<>!~; ]", line, 1)[0]))
installed = {norm(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}
print(" ".join(sorted(installed - wanted)))
PY
)" || die "could not list the venv's packages"
if [[ -n "$extras" ]]; then
    say "removing packages requirements-dev.txt no longer lists: $extras"
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip uninstall --disable-pip-version-check -y -q $extras >&2 ||
        die "pip uninstall $extras failed"
fi

for tool in moto_server cfn-lint cargo-lambda pytest; do
    [[ -x "$VENV/bin/$tool" ]] || die "$VENV/bin/$tool is missing after the install"
done

printf '%s\n' "$want" >"$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
say "ready in $((SECONDS - start))s: $VENV"
