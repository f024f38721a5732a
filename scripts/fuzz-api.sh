#!/usr/bin/env bash
# Schema fuzzing: schemathesis generates requests from openapi.yaml (valid and invalid ones)
# against the local stack and fails on any 5xx or any response the schema does not describe.
# Run inside the stack: `make test-long` (scripts/stack.sh test -- scripts/fuzz-api.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${ENDPOINT_API:?run through scripts/stack.sh test}"
# Generated headers must not be NUL bytes (no HTTP server accepts them) and the database of
# examples stays out of the repo.
exec "$root/.venv/bin/schemathesis" run "$root/openapi.yaml" \
  --url "$ENDPOINT_API" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${FUZZ_EXAMPLES:-40}" \
  --phases examples,coverage,fuzzing \
  --generation-allow-x00 false \
  --generation-database none \
  --request-timeout 20 \
  --workers 2 \
  --seed "${FUZZ_SEED:-20261127}" \
  --warnings off
