#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/browser). Playwright's
# own browser download cannot reach its host here, so the tests drive the system Chromium.
# Idempotent: quick when /usr/bin/chromium exists. Needs root (CI and the dev machines are).
set -euo pipefail
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "browser.sh: $chromium is missing; install Debian's chromium package (apt-get install chromium) as root" >&2
  exit 1
fi
echo "browser.sh: installing Debian's chromium for the browser tests (about 20 s)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium >/dev/null
"$chromium" --version >&2
