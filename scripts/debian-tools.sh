#!/usr/bin/env bash
# Makes sure the Debian programs the tests drive are installed: Chromium at
# /usr/bin/chromium (playwright drives it through executable_path; we never run
# `playwright install`, which downloads a browser build of its own) and poppler's
# pdftoppm (renders the report PDFs to PNG). Installs what is missing with apt-get:
# needs root or sudo.
set -euo pipefail

say() { printf 'debian-tools.sh: %s\n' "$*" >&2; }
die() { printf 'debian-tools.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# program path -> Debian package
declare -A NEEDED=([/usr/bin/chromium]=chromium [/usr/bin/pdftoppm]=poppler-utils)
missing=()
for program in "${!NEEDED[@]}"; do
    [[ -x "$program" ]] || missing+=("${NEEDED[$program]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null ||
    die "missing ${missing[*]} and there is no apt-get here: install them so that ${!NEEDED[*]} exist"

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    die "missing ${missing[*]}; install as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
fi

export DEBIAN_FRONTEND=noninteractive
say "installing Debian's ${missing[*]} (apt-get, a few minutes)"
"${SUDO[@]}" apt-get update -q >&2 || die "apt-get update failed (see above)"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed (see above)"

for program in "${!NEEDED[@]}"; do
    [[ -x "$program" ]] || die "apt-get installed ${NEEDED[$program]} but $program does not exist"
done
say "installed: ${missing[*]}"
