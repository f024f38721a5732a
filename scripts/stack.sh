#!/usr/bin/env bash
# The local stack: moto_server + the table + `cargo lambda watch` serving every function with
# the deployed routes. Two modes:
#
#   scripts/stack.sh run          make run: demo data, URLs, stays in the foreground (Ctrl-C stops all)
#   scripts/stack.sh test -- CMD  make test: runs CMD against the stack, then stops everything
#
# Defaults (API-CONTRACT.md): moto on $MOTO_PORT (5000 for run, a free port for test), functions
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
export LOG_LEVEL="${LOG_LEVEL:-info}"

# The stack builds into target/, like the tests: the dependencies compile once for both. The
# functions are built (and started by `cargo lambda watch`) before any test compiles, and a
# test binary never rebuilds a running function, so the two cannot block each other.
export CARGO_TARGET_DIR="$root/target"
# STACK_RELEASE=1 (the load benchmark): release builds, shared with bench/coldstart.py.
profile=debug; release_flag=()
if [ "${STACK_RELEASE:-}" = 1 ]; then
  export CARGO_TARGET_DIR="$root/target/bench-build"; profile=release; release_flag=(--release)
fi

# Build the CLI and every function up front (each as `cargo lambda watch` will run it), so the
# first request does not wait for a compile.
echo "stack.sh: building endpoint-admin, endpoint-agent and the functions (first run: about 3 minutes)" >&2
cargo build -q "${release_flag[@]}" --bin endpoint-admin --bin endpoint-agent
for f in plans challenge response jwks agent web fallback; do cargo build -q "${release_flag[@]}" --bin "$f"; done

admin="$CARGO_TARGET_DIR/$profile/endpoint-admin"
"$admin" init >/dev/null

logdir="$root/target/stack-logs"; mkdir -p "$logdir"
watch_log="$logdir/watch-$api_port.log"
setsid cargo lambda watch -A 127.0.0.1 -P "$api_port" --ignore-changes "${release_flag[@]}" >"$watch_log" 2>&1 &
watch_pid=$!
stop_watch() {
  if kill -0 "$watch_pid" 2>/dev/null; then
    kill -TERM -- "-$watch_pid" 2>/dev/null || kill -TERM "$watch_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$watch_pid" 2>/dev/null || true
  fi
}
trap stop_watch EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for i in $(seq 1 300); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$ENDPOINT_API/v1/plans/ready" 2>/dev/null)" = 404 ]; then
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
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true TABLE_NAME=$TABLE_NAME
  export PATH=$CARGO_TARGET_DIR/$profile:\$PATH
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
