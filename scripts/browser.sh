#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/browser). Playwright's
# own browser download cannot reach its host here, so the tests drive the system Chromium.
# Also installs axe-core (npm, pinned) into target/npm for the accessibility audits of the
# hosted page. Idempotent: quick when both are there. Needs root for apt (CI and the dev
# machines are).
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_VERSION=4.14.1
axe="target/npm/node_modules/axe-core"
if [ ! -f "$axe/axe.min.js" ] || ! grep -q "\"version\": \"$AXE_VERSION\"" "$axe/package.json"; then
  echo "browser.sh: installing axe-core $AXE_VERSION (npm) into target/npm" >&2
  mkdir -p target/npm
  npm install --prefix target/npm --no-audit --no-fund --loglevel=error "axe-core@$AXE_VERSION" >&2
fi
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
