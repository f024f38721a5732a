#!/usr/bin/env bash
# Every test that runs against the local stack (started by scripts/stack.sh test): the Rust
# workspace (unit, property, adapter, CLI and end-to-end tests), then authentik's generated
# Python client against the agent API and the browser tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo test --workspace --all-features --locked
echo "run-tests.sh: authentik's generated client (tests/agent), browser tests (Chromium + Playwright, tests/browser)" >&2
"$root/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/agent tests/browser
