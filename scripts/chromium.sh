#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests (playwright
# drives it through executable_path; we never run `playwright install`, which downloads
# a browser build of its own). Installs it with apt-get when missing: needs root or sudo.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

say() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() { printf 'chromium.sh: ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi

command -v apt-get >/dev/null ||
    die "$CHROMIUM is missing and there is no apt-get here: install Chromium so that $CHROMIUM exists"

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    die "$CHROMIUM is missing; install it as root: apt-get update && apt-get install -y --no-install-recommends chromium"
fi

export DEBIAN_FRONTEND=noninteractive
say "$CHROMIUM is missing: installing Debian's chromium (apt-get, a few minutes)"
"${SUDO[@]}" apt-get update -q >&2 || die "apt-get update failed (see above)"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >&2 ||
    die "apt-get install chromium failed (see above)"

[[ -x "$CHROMIUM" ]] || die "apt-get installed chromium but $CHROMIUM does not exist"
say "installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
