#!/usr/bin/env bash
# The local stack: moto_server + the table + `cargo lambda watch` serving every function with
# the deployed routes. Two modes:
#
#   scripts/stack.sh run          make run: demo data, URLs, stays in the foreground (Ctrl-C stops all)
#   scripts/stack.sh test -- CMD  make test: runs CMD against the stack, then stops everything
#
# Defaults (README, "Set-up"): moto on $MOTO_PORT (5000 for run, a free port for test), functions
# on $API_PORT (9000 for run, a free port for test), table $TABLE_NAME (endpoint-stage),
# region us-east-1, credentials test/test. Everything started is stopped by its own pid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode="${1:-}"; shift || true
[ "${1:-}" = "--" ] && shift
case "$mode" in
  run|test) ;;
  *) echo "usage: $0 run | test -- CMD [ARGS...]" >&2; exit 2 ;;
esac

"$root/scripts/venv.sh"
export PATH="$root/.venv/bin:$PATH"

free_port() { "$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

if [ -z "${_STACK_INNER:-}" ]; then
  # Re-enter under with-moto.sh, which starts (and always stops) the emulator.
  if [ "$mode" = run ]; then moto_port="${MOTO_PORT:-5000}"; else moto_port="${MOTO_PORT:-$(free_port)}"; fi
  export _STACK_INNER=1
  exec "$root/scripts/with-moto.sh" --port "$moto_port" -- "$0" "$mode" -- "$@"
fi

if [ "$mode" = run ]; then api_port="${API_PORT:-9000}"; else api_port="${API_PORT:-$(free_port)}"; fi
export API_PORT="$api_port"
export TABLE_NAME="${TABLE_NAME:-endpoint-stage}"
export ENDPOINT_API="http://127.0.0.1:$api_port"
export PUBLIC_BASE_URL="$ENDPOINT_API"
# The response function asks the challenge function for new challenges through Lambda Invoke,
# which `cargo lambda watch` serves on the same port.
export AWS_ENDPOINT_URL_LAMBDA="$ENDPOINT_API"
export CHALLENGE_FUNCTION_NAME=challenge
# Tests run the functions at trace: the secrets-in-logs suite then proves that no level prints
# a token, key, challenge, response, raw event or SDK body.
if [ "$mode" = test ]; then export LOG_LEVEL="${LOG_LEVEL:-trace}"; else export LOG_LEVEL="${LOG_LEVEL:-info}"; fi

# The functions run from one build of the whole workspace, with the same features and into the
# same target/ as the tests, so every dependency compiles once for both. `cargo lambda watch
# --only-lambda-apis` serves the HTTP routes of Cargo.toml's router, the Lambda Invoke API and
# the Runtime API; this script starts each function's binary against it.
export CARGO_TARGET_DIR="$root/target"
functions=(plans challenge response jwks agent web fallback)
# STACK_RELEASE=1 (the load benchmark): release builds, shared with bench/coldstart.py.
profile=debug
if [ "${STACK_RELEASE:-}" = 1 ]; then
  export CARGO_TARGET_DIR="$root/target/bench-build"; profile=release
  echo "stack.sh: release builds of endpoint-admin, endpoint-agent and the functions (first run: about 15 minutes)" >&2
  cargo build -q --release --locked --bin endpoint-admin --bin endpoint-agent
  for f in "${functions[@]}"; do cargo build -q --release --locked --bin "$f"; done
else
  echo "stack.sh: building the workspace once for the stack and the tests (first run: about 3 minutes)" >&2
  cargo build -q --workspace --all-features --lib --bins --tests --locked
fi
bin="$CARGO_TARGET_DIR/$profile"

admin="$bin/endpoint-admin"
# The symmetric key that seals device token keys (deployed: the stack's SealingKey); init
# creates the table and its data key.
export SEALING_KEY_ID="${SEALING_KEY_ID:-$("$admin" key create-sealing)}"
"$admin" init >/dev/null

logdir="$root/target/stack-logs"; mkdir -p "$logdir"
watch_log="$logdir/watch-$api_port.log"
setsid cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$api_port" >"$watch_log" 2>&1 &
watch_pid=$!
function_pids=()
stop_stack() {
  for pid in "${function_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if kill -0 "$watch_pid" 2>/dev/null; then
    kill -TERM -- "-$watch_pid" 2>/dev/null || kill -TERM "$watch_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$watch_pid" 2>/dev/null || true
  fi
  for pid in "${function_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The Runtime API first, then one process per function, its log lines in the same log.
for i in $(seq 1 300); do
  # A TCP connect, not a request: the emulator holds requests for functions not yet running.
  (exec 3<>"/dev/tcp/127.0.0.1/$api_port") 2>/dev/null && break
  if ! kill -0 "$watch_pid" 2>/dev/null; then
    echo "stack.sh: cargo lambda watch exited; its log ($watch_log):" >&2; tail -n 30 "$watch_log" >&2; exit 1
  fi
  [ "$i" -eq 300 ] && { echo "stack.sh: cargo lambda watch did not listen on $ENDPOINT_API within 60 s" >&2; exit 1; }
  sleep 0.2
done
for f in "${functions[@]}"; do
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$api_port/.rt/$f" AWS_LAMBDA_FUNCTION_NAME="$f" \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    "$bin/$f" >>"$watch_log" 2>&1 &
  function_pids+=($!)
done
# What the router does not match (a method it has no entry for) goes to the emulator's default
# function: the fallback answers it, as API Gateway's $default route does when deployed.
AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$api_port/.rt" AWS_LAMBDA_FUNCTION_NAME=fallback \
  AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
  "$bin/fallback" >>"$watch_log" 2>&1 &
function_pids+=($!)

for i in $(seq 1 300); do
  if [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$ENDPOINT_API/v1/plans/ready" 2>/dev/null)" = 404 ]; then
    break
  fi
  if ! kill -0 "$watch_pid" 2>/dev/null; then
    echo "stack.sh: cargo lambda watch exited; its log ($watch_log):" >&2; tail -n 30 "$watch_log" >&2; exit 1
  fi
  [ "$i" -eq 300 ] && { echo "stack.sh: the functions did not answer on $ENDPOINT_API within 60 s" >&2; tail -n 30 "$watch_log" >&2; exit 1; }
  sleep 0.2
done
echo "stack.sh: functions on $ENDPOINT_API (log: $watch_log)" >&2

if [ "$mode" = test ]; then
  export STACK_WATCH_LOG="$watch_log"
  export STACK_ADMIN="$admin"
  unset CARGO_TARGET_DIR
  set +e
  "$@"
  status=$?
  set -e
  exit "$status"
fi

# make run: demo data, then stay in the foreground.
key="$("$admin" key create --spec ECC_NIST_P256 --alias endpoint-stage-demo)"
connector="$("$admin" connector create --name demo --challenge-key "$key")"
stage="$("$admin" stage create --connector "$connector" --mode required)"
enrollment="$("$admin" enrollment-token create --connector "$connector" --name demo --expires 24h)"
"$admin" connector set-interactive-stage "$connector" "$stage" >/dev/null
# A ready plan whose stage page can be opened in a browser now (it returns to the example app).
page="$(curl -s -X POST "$ENDPOINT_API/v1/plans" -d "{\"stage\":\"$stage\",\"redirect\":\"http://127.0.0.1:8000/\"}" | sed 's/.*"page":"\([^"]*\)".*/\1/')"

cat <<MSG

endpoint-stage is running locally.
  API (functions):  $ENDPOINT_API
  AWS emulator:     $AWS_ENDPOINT_URL   (table $TABLE_NAME)
  demo KMS key:     $key (alias/endpoint-stage-demo)
  demo connector:   $connector
  demo stage:       $stage (required)
  enrollment token: $enrollment

In another shell:
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true TABLE_NAME=$TABLE_NAME SEALING_KEY_ID=$SEALING_KEY_ID
  export PATH=$bin:\$PATH
  endpoint-agent enroll --server $ENDPOINT_API --token $enrollment --serial DEMO-SERIAL --name demo-laptop
  plan=\$(curl -s -X POST $ENDPOINT_API/v1/plans -d '{"stage":"$stage","redirect":"/welcome"}' | sed 's/.*"plan":"\\([^"]*\\)".*/\\1/')
  endpoint-agent login --server $ENDPOINT_API --plan \$plan
  curl -s $ENDPOINT_API/v1/plans/\$plan
  curl -s $ENDPOINT_API/v1/connectors/$connector/jwks.json

The relying-party example (a login button -> the hosted stage page -> back, device shown):
  .venv/bin/python examples/relying-party/app.py --api $ENDPOINT_API --stage $stage --port 8000
  then open http://127.0.0.1:8000/ in a browser with the authentik extension and agent (or
  Chromium with tests/browser/extension and: endpoint-agent install-native-host --profile DIR).

A ready plan's hosted stage page (15 minutes):
  $page

Function logs: $watch_log. Ctrl-C stops everything.
MSG
wait "$watch_pid"
