#!/usr/bin/env bash
# One local region's functions (scripts/regions.sh starts it in a session of its own, so that
# one `kill -- -PID` stops the whole region): `cargo lambda watch` with the deployed routes, each
# function's binary against it, and the delivery loop, with the region's environment from ENVFILE.
#
#   scripts/region-functions.sh ENVFILE
set -euo pipefail
# shellcheck disable=SC1090
source "$1"
cd "$STACK_ROOT"
cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$API_PORT" &
for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null && break; sleep 0.1; done
for f in plans challenge response jwks agent web ssf deliver oidc; do
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$API_PORT/.rt/$f" AWS_LAMBDA_FUNCTION_NAME="$f" \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 "$STACK_BIN/$f" &
done
AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$API_PORT/.rt" AWS_LAMBDA_FUNCTION_NAME=fallback \
  AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 "$STACK_BIN/fallback" &
# Push delivery every two seconds (deployed: EventBridge Scheduler, every minute).
(while sleep 2; do curl -s -o /dev/null -m 30 -X POST "$ENDPOINT_API/2015-03-31/functions/deliver/invocations" -d '{}' || true; done) &
wait
