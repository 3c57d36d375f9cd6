#!/usr/bin/env bash
# Install the given Debian packages, but only those that are missing.
#
#   scripts/ensure-debian-packages.sh prometheus [more-packages ...]
#
# Why: the integration tests need real binaries (promtool, prometheus) and a fresh machine may not
# have them. Running this when everything is present costs one dpkg-query and touches nothing, so
# test runners and CI can call it unconditionally. `apt-get update` runs only when something is
# actually missing, because it is the slow part.
#
# Pass real package names (not virtual ones such as `awk`): presence is checked with dpkg-query.
# Works as root; otherwise uses sudo if it exists (non-interactively); otherwise fails in one line.
set -euo pipefail

me="ensure-debian-packages"

die() {
    echo "$me: error: $*" >&2
    exit 1
}

if [ "$#" -eq 0 ]; then
    echo "usage: $0 PACKAGE [PACKAGE ...]" >&2
    exit 2
fi

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script needs a Debian-based system"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs a Debian-based system"

is_installed() {
    # "install ok installed" is the only status meaning the package is fully installed; a removed
    # package whose config files remain reports "deinstall ok config-files".
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ]
}

missing=()
for pkg in "$@"; do
    case "$pkg" in
        -*) die "unexpected option '$pkg': pass package names only" ;;
    esac
    if ! is_installed "$pkg"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo -n)
else
    die "need root to install ${missing[*]}, and sudo is not available; run this script as root"
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp "${TMPDIR:-/tmp}/$me.XXXXXX")"
trap 'rm -f "$log"' EXIT

echo "$me: installing ${missing[*]}" >&2

if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "apt-get update failed (see the lines above)"
fi

if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "apt-get install ${missing[*]} failed (see the lines above)"
fi

still_missing=()
for pkg in "${missing[@]}"; do
    is_installed "$pkg" || still_missing+=("$pkg")
done
if [ "${#still_missing[@]}" -ne 0 ]; then
    die "apt-get finished but these packages are still not installed: ${still_missing[*]}"
fi
