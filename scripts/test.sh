#!/usr/bin/env bash
# `make test`: every check and test, saying what each step does and how long it took. The Python
# tools (./.venv) and Chromium install in the background while clippy compiles, so a fresh clone
# does not wait for them one after the other.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p target/setup
started=$SECONDS
step() { echo "make test [$((SECONDS - started))s]: $*" >&2; }

step "installing the Python tools (.venv) and Chromium in the background (first run: about a minute)"
scripts/venv.sh >target/setup/venv.log 2>&1 & venv_pid=$!
scripts/browser.sh >target/setup/browser.log 2>&1 & browser_pid=$!
# Whatever fails below, the installs finish first (an interrupted apt-get or pip leaves a mess).
trap 'wait 2>/dev/null || true' EXIT
wait_for() {
  local pid=$1 what=$2 log=$3
  if ! wait "$pid"; then echo "make test: $what failed; its log ($log):" >&2; cat "$log" >&2; exit 1; fi
}

step "cargo fmt --check"
cargo fmt --all -- --check
step "clippy on every target, warnings as errors (first run: about 3 minutes of compiling)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
step "the core's import graph (scripts/layers.py), test targets (scripts/check-test-targets.py)"
python3 scripts/layers.py >/dev/null
python3 scripts/check-test-targets.py
wait_for "$venv_pid" "scripts/venv.sh" target/setup/venv.log
step "the SAM template (cfn-lint, sam validate --lint) and the routes (scripts/check-api.py)"
.venv/bin/cfn-lint template.yaml
SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --region us-east-1 >/dev/null
.venv/bin/python scripts/check-api.py
wait_for "$browser_pid" "scripts/browser.sh" target/setup/browser.log
step "the local stack, then every test against it (first run: about 4 minutes of compiling)"
scripts/stack.sh test -- scripts/run-tests.sh
step "all passed"
