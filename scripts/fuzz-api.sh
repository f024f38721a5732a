#!/usr/bin/env bash
# Schema fuzzing: schemathesis generates requests from openapi.yaml against the local stack and
# fails on any 5xx or any response the schema does not describe. Run inside the stack:
# `make test-long` (scripts/test.sh long). schemathesis keeps its cache in the working
# directory, so it runs in target/schemathesis: nothing of it lands in the repository.
#
# Two runs: the coverage phase in every mode (valid and invalid values, missing and extra
# fields, wrong types), then the fuzzing phase with valid (positive) data. Negative fuzzing is
# left out because it sends raw non-UTF-8 bytes as `application/json` bodies, which
# `cargo lambda watch` itself rejects with its own 500 before any function runs (API Gateway does
# not); how the functions treat such bodies is tested in tests/tests/e2e/hostile.rs.
#
# `GET /v1/stage.js` is left out: it takes no input at all (a static module), so there is
# nothing to fuzz, and `cargo lambda watch` intermittently answers that ~10 KB response with
# its own 500 before the function's answer reaches the client (the function logs 200). The
# module is tested by the fn-web unit tests and, as a browser loads it, by tests/browser.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${ENDPOINT_API:?run through make test-long}"
mkdir -p "$root/target/schemathesis"
cd "$root/target/schemathesis"
run() {
  "$root/.venv/bin/schemathesis" run "$root/openapi.yaml" \
    --url "$ENDPOINT_API" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${FUZZ_EXAMPLES:-40}" \
    --generation-allow-x00 false \
    --generation-codec ascii \
    --generation-database none \
    --request-timeout 20 \
    --workers 2 \
    --seed "${FUZZ_SEED:-20261127}" \
    --warnings off \
    --exclude-path /v1/stage.js \
    "$@"
}
run --phases examples,coverage --mode all
run --phases fuzzing --mode positive
