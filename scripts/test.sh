#!/usr/bin/env bash
# Every check and test of the project, in one list: `make test` runs them all, `make lint` the
# static ones, `make test-long` the long suites. Each step says what it does and how long the
# run has taken. The Python tools (./.venv) and Chromium install in the background while clippy
# compiles, so a fresh clone does not wait for them one after the other.
#
#   scripts/test.sh          make test: lint, then every test against the local stack
#   scripts/test.sh lint     make lint: fmt, clippy, the import graph, the template, the routes
#   scripts/test.sh long     make test-long: 20,000-case property tests, schema fuzzing, regions
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
what="${1:-all}"
mkdir -p target/setup
started=$SECONDS
step() { echo "make test [$((SECONDS - started))s]: $*" >&2; }
wait_for() {
  local pid=$1 name=$2 log=$3
  if ! wait "$pid"; then echo "make test: $name failed; its log ($log):" >&2; cat "$log" >&2; exit 1; fi
}
# One compilation serves the lints and the tests: clippy-driver compiles the workspace's own
# crates (every target, warnings as errors) into the real build, and the dependencies compile
# once, not once for clippy's check and again for the tests. A fresh clone builds everything
# anyway, so incremental compilation (slower from scratch) is off on this path.
if clippy_driver="$(rustup which clippy-driver 2>/dev/null)"; then
  export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
fi
export CARGO_INCREMENTAL=0
# shellcheck source=scripts/stack-lib.sh
source "$root/scripts/stack-lib.sh"
# Whatever fails below, background installs finish first (an interrupted apt-get or pip leaves
# a mess) and the stack stops.
trap 'stack_stop; wait 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The template and route checks need only the Python tools: cfn-lint, `sam validate --lint`,
# scripts/check-api.py, and scripts/check-modes.py: the template translated and linted with
# each mode's parameters (EdgeProtection, ChallengeSigning, the global table, the stack's keys),
# and each mode's promises. `make lint` runs cfn-lint and sam with their own commands; `make
# test` the same lints through cfn-lint's API in check-modes' one process (`--sources`: each of
# those processes spent 5 to 8 s of CPU starting before it read a template), and lints the
# translated template in the two edge modes only (`--lint-modes edge`: every mode's promises are
# still checked); `make lint` and `make test-long` lint every mode (each lint about 5 s of CPU).
template_checks() {
  if [ "${1:-}" = tools ]; then
    .venv/bin/cfn-lint template.yaml deploy/edge-waf.yaml deploy/global.yaml
    SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --region us-east-1 >/dev/null
  fi
  .venv/bin/python scripts/check-api.py
  if [ "${1:-}" = tools ]; then
    .venv/bin/python scripts/check-modes.py
  else
    .venv/bin/python scripts/check-modes.py --sources --lint-modes edge
  fi
}

static_checks() {
  step "the core's layers and import graph, as docs/ARCHITECTURE.md shows it (scripts/layers.py); test targets (scripts/check-test-targets.py)"
  python3 scripts/layers.py --doc >/dev/null
  python3 scripts/check-test-targets.py
  step "every test and path the docs cite exists (scripts/check-doc-refs.py)"
  python3 scripts/check-doc-refs.py
}

# make lint: the static checks alone, one after the other.
lint() {
  step "installing the Python tools (.venv) in the background"
  (scripts/venv.sh) >target/setup/venv.log 2>&1 & venv_pid=$!
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "clippy on every target, warnings as errors"
  cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
  static_checks
  wait_for "$venv_pid" "scripts/venv.sh" target/setup/venv.log
  step "the SAM template and the routes (cfn-lint, sam validate --lint, scripts/check-api.py, scripts/check-modes.py)"
  template_checks tools
}

# The executables of the named test targets, one "<package directory> <executable>" per line
# (built ones: cargo only reports them). With `--units`, also the unit tests of every library and
# binary that has some: `cargo test --lib --bins` would build and run an empty test binary for
# each target that says `test = false` (23 of them, compiled and linked for nothing), `--tests`
# leaves those out.
test_executables() {
  local args=() t units=""
  for t in "$@"; do
    if [ "$t" = --units ]; then units=1; args+=(--tests); else args+=(--test "$t"); fi
  done
  cargo test --workspace --all-features --locked "${args[@]}" --no-run --message-format=json 2>/dev/null \
    | UNITS="$units" NAMED="$*" python3 -c 'import json, os, sys
named = os.environ["NAMED"].split()
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    kinds = set(m["target"]["kind"])
    unit = bool(kinds - {"test", "bench", "example"})
    if m["target"]["name"] in named and "test" in kinds or os.environ["UNITS"] and unit:
        print(os.path.dirname(m["manifest_path"]), m["executable"])'
}

# Runs test executables ("<package directory> <executable>" lines) one after the other, each
# from its package's directory as `cargo test` runs it (cargo itself would wait for a build
# beside it to let go of the target directory); stops at the first that fails.
run_executables() {
  local dir exe
  [ -n "$1" ] || { echo "make test: no test executable found" >&2; return 1; }
  while read -r dir exe; do
    (cd "$dir" && exec "$exe") || return 1
  done <<<"$1"
}

# The suites that stop the emulator (faults) or count every line of the functions' log
# (concurrency) run on a second local stack of their own, beside the others.
own_stack_suites() {
  trap 'stack_stop' EXIT
  stack_pids=()
  stack_watch_pid=""
  unset SEALING_KEY_ID ASSERTION_KEY_ID SIGNALS_KEY_ID CHALLENGE_KEY_ID CHALLENGE_WRAPPING_KEY_ID OIDC_RSA_KEY_ID OIDC_EC_KEY_ID
  moto_start 0
  functions_start 0
  run_executables "$1"
}

# make test. The build comes in two parts so that the tests start early: the libraries and
# binaries first (what the local stack and the Python suites run), then, while the Python
# suites already run against the stack, every test target (the Rust suites then start). Both
# parts compile through clippy-driver (RUSTC_WORKSPACE_WRAPPER, above), so the lints cover
# every target without a compile of their own.
all() {
  step "installing the Python tools (.venv) and Chromium in the background"
  # At the lowest CPU priority: the compile below needs both cores, and these fill its gaps.
  nice -n 19 scripts/venv.sh >target/setup/venv.log 2>&1 & venv_pid=$!
  nice -n 19 scripts/browser.sh >target/setup/browser.log 2>&1 & browser_pid=$!
  step "cargo fmt --check"
  cargo fmt --all -- --check
  if [ -n "${RUSTC_WORKSPACE_WRAPPER:-}" ]; then
    step "clippy on the libraries and binaries, warnings as errors, in their build (first run: about 3 minutes of compiling)"
  else
    step "clippy on every target, warnings as errors; then the libraries' and binaries' build"
    cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
  fi
  # The end-to-end suite's binary too: it runs against the stack beside the Python suites, while
  # the other test targets compile (it waits on the stack, the compile fills its gaps).
  cargo build "${stack_bins_args[@]}" --test e2e
  e2e_bin="$(test_executables e2e)"
  [ -n "$e2e_bin" ] || { echo "make test: the end-to-end suite's binary was not found" >&2; exit 1; }
  static_checks
  wait_for "$venv_pid" "scripts/venv.sh" target/setup/venv.log
  step "the SAM template and the routes (the lints of cfn-lint and sam validate --lint, in scripts/check-modes.py --sources; scripts/check-api.py), in the background"
  (renice -n 19 "$BASHPID" >/dev/null; template_checks) >target/setup/template.log 2>&1 & template_pid=$!

  step "moto_server and the local stack"
  # Every 10th DynamoDB item response moto writes directly is checked against its own serializer
  # (scripts/moto_server.py); a difference fails the run (moto_json_checked, at the end).
  export MOTO_VERIFY_JSON="${MOTO_VERIFY_JSON:-10}"
  rm -f target/moto/*.log
  moto_start 0
  stack_build bins
  # Tests run the functions at trace: the secrets-in-logs suite then proves that no level
  # prints a token, key, challenge, response, raw event or SDK body.
  export LOG_LEVEL="${LOG_LEVEL:-trace}"
  unset CARGO_TARGET_DIR
  functions_start 0
  wait_for "$browser_pid" "scripts/browser.sh" target/setup/browser.log
  step "authentik's generated client (tests/agent) and the browser tests (Chromium + Playwright, tests/browser) and the OpenID provider with real clients (Authlib, tests/oidc) against the stack, in the background"
  # The page-for-people suite (every state in two languages, screenshots, axe-core) in a pytest
  # of its own beside the others: most of either is waiting on the browser and the stack.
  .venv/bin/python -m pytest -q -p no:cacheprovider --durations=8 tests/agent tests/browser tests/oidc \
    --ignore tests/browser/test_page_for_people.py \
    >target/setup/pytest.log 2>&1 & pytest_pid=$!
  .venv/bin/python -m pytest -q -p no:cacheprovider --durations=4 tests/browser/test_page_for_people.py \
    >target/setup/pytest-people.log 2>&1 & people_pid=$!
  # The binary itself, as `cargo test` runs it (from its package's directory): cargo would wait
  # for the build below to let go of the target directory.
  (run_executables "$e2e_bin") >target/setup/e2e.log 2>&1 & e2e_pid=$!
  step "the test targets that wait on moto (the AWS adapters, the admin CLI, KMS faults, the second stack's suites): their build, then they run beside everything else"
  # Below the suites' priority: they wait on the stack and the browser, the compile fills the gaps.
  nice -n 10 cargo build --workspace --all-features --locked --test aws --test admin_cli --test kms_faults \
    --test concurrency --test faults
  own_stack_bins="$(test_executables concurrency faults)"
  moto_bins="$(test_executables aws admin_cli kms_faults)"
  (own_stack_suites "$own_stack_bins") >target/setup/own-stack.log 2>&1 & own_stack_pid=$!
  (run_executables "$moto_bins") >target/setup/moto-suites.log 2>&1 & moto_suites_pid=$!
  step "every other test target's build (clippy on them too), beside the suites"
  nice -n 10 cargo build --workspace --all-targets --all-features --locked

  step "the other Rust tests (unit, property, the native messaging host), beside the suites still running"
  # Targets by name, over the whole workspace: excluding a package would resolve the
  # dependencies' features differently and compile them again.
  unit_bins="$(test_executables --units domain no_panic login native_host)"
  run_executables "$unit_bins"
  wait_for "$moto_suites_pid" "the suites against moto (aws, admin_cli, kms_faults)" target/setup/moto-suites.log
  grep -E "^test result|^running" target/setup/moto-suites.log
  wait_for "$e2e_pid" "the end-to-end suite (tests/tests/e2e)" target/setup/e2e.log
  grep -E "^test result|^running" target/setup/e2e.log
  wait_for "$own_stack_pid" "the suites on the second stack (concurrency, faults)" target/setup/own-stack.log
  grep -E "^test result|^running" target/setup/own-stack.log
  wait_for "$pytest_pid" "the Python suites (pytest)" target/setup/pytest.log
  tail -n 3 target/setup/pytest.log
  wait_for "$people_pid" "the page-for-people browser suite (pytest)" target/setup/pytest-people.log
  tail -n 3 target/setup/pytest-people.log
  wait_for "$template_pid" "the template and route checks" target/setup/template.log
  moto_json_checked
}

# Fails when an emulator of this run logged a DynamoDB response it wrote directly that its own
# serializer would have written otherwise (MOTO_VERIFY_JSON, scripts/moto_server.py).
moto_json_checked() {
  if grep -h "MOTO_VERIFY_JSON mismatch" target/moto/*.log 2>/dev/null; then
    echo "make test: moto wrote a DynamoDB response differently from its serializer (target/moto/*.log)" >&2
    exit 1
  fi
}

long() {
  step "the translated template linted in every mode (scripts/check-modes.py; make test lints the two edge modes)"
  scripts/venv.sh
  .venv/bin/python scripts/check-modes.py
  step "property tests with 20,000 cases each"
  PROPTEST_CASES=20000 cargo test --workspace --all-features --locked --test no_panic
  step "schema fuzzing of openapi.yaml against the local stack (schemathesis)"
  scripts/venv.sh all
  # Every DynamoDB item response moto writes directly checked against its serializer.
  export MOTO_VERIFY_JSON=1
  rm -f target/moto/*.log
  moto_start 0
  stack_build
  functions_start 0
  scripts/fuzz-api.sh
  stack_stop
  step "two local regions (scripts/regions.sh): sign-in across regions, a replayed response, a region stopped, the negative control, signals across a primary move, ID tokens of both regions, one code redeemed once (tests/regions)"
  env -u MOTO_PORT REGIONS_NEGATIVE_CONTROL=1 scripts/regions.sh test -- \
    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/regions
  moto_json_checked
}

case "$what" in
  all) all ;;
  lint) lint ;;
  long) long ;;
  *) echo "usage: $0 [lint|long]" >&2; exit 2 ;;
esac
step "all passed"
