# The local stack as shell functions, sourced (not run) by scripts/test.sh (make test),
# scripts/stack.sh (make run, make watch, the benchmarks) and scripts/with-moto.sh. Everything
# runs in the caller's shell, so `make test` reaches a test binary in three hops: make ->
# test.sh -> cargo -> the binary.
#
#   moto_start PORT        moto_server on 127.0.0.1:PORT (0: a free port); exports the AWS_* variables
#   stack_build [bins]     builds the workspace once for the stack and the tests (bins: without the
#                          test targets; STACK_RELEASE=1: release)
#   functions_start PORT   the table, then `cargo lambda watch` and every function (0: a free port)
#   stack_stop             stops whatever was started, by its own pid (call it from an EXIT trap)
#
# Defaults (docs/DEVELOPING.md, "The local stack"): table $TABLE_NAME (endpoint-stage), region us-east-1,
# credentials test/test, CHALLENGE_SIGNING=kms (data-key: the data-key signing mode). Logs go to target/stack-logs/.

stack_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack_pids=()
stack_watch_pid=""
stack_functions=(plans challenge response jwks agent web ssf deliver oidc fallback)
# The libraries and binaries, and one small test target: with any test target the feature
# resolver adds the dev-dependencies' features (digest's, getrandom's, ...) as a build of every
# target does; without one, dependencies such as the AWS SDK resolve other features and
# compile twice (once here, once for the tests).
stack_bins_args=(--workspace --all-features --lib --bins --test login --locked)
# cargo-lambda (and moto_server) come from the repo-local venv (scripts/venv.sh).
export PATH="$stack_root/.venv/bin:$PATH"
# Python's compiled modules are kept (under target/pycache, out of the source tree) and shared by
# every Python process of the run: with PYTHONDONTWRITEBYTECODE set, as some environments do,
# each process compiled every module it imported again (cfn-lint, samtranslator and moto: 5.3 s
# of CPU to import that way, 1.5 s from the cache; docs/PERFORMANCE.md, 6g).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$stack_root/target/pycache"

free_port() {
  "$stack_root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until `check` succeeds, up to `tries` times 0.1 s; fails with `what` and a log's tail.
wait_until() {
  local tries=$1 what=$2 log=$3 pid=$4; shift 4
  for _ in $(seq 1 "$tries"); do
    if "$@" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "stack: $what exited; its log ($log):" >&2; tail -n 30 "$log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "stack: $what did not answer within $((tries / 10)) s; its log ($log):" >&2
  tail -n 30 "$log" >&2
  return 1
}

moto_start() {
  local port=$1
  "$stack_root/scripts/venv.sh"
  [ "$port" = 0 ] && port="$(free_port)"
  local logdir="$stack_root/target/moto"; mkdir -p "$logdir"
  local log="$logdir/moto-$port.log"
  # RSA keys for CreateKey from the suites' test keys, made ahead (scripts/moto_server.py).
  MOTO_RSA_KEYS="$stack_root/shared/tests/fixtures/rsa" \
    "$stack_root/.venv/bin/python" "$stack_root/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  stack_pids+=("$MOTO_PID")
  local url="http://127.0.0.1:$port"
  wait_until 150 moto_server "$log" "$MOTO_PID" curl -fsS -o /dev/null "$url/moto-api/"
  export AWS_ENDPOINT_URL="$url"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_DEFAULT_REGION="$AWS_REGION"
  export AWS_EC2_METADATA_DISABLED=true
  # A longer attempt against the emulator, which serves one request at a time to every suite at
  # once (AWS_ATTEMPT_TIMEOUT_MS: shared/src/adapters/aws.rs). A stopped emulator still means
  # 503 within the same 4 s (the operation timeout).
  export AWS_ATTEMPT_TIMEOUT_MS="${AWS_ATTEMPT_TIMEOUT_MS:-3000}"
  export MOTO_PORT="$port" MOTO_PID
  echo "stack: moto_server (pid $MOTO_PID) on $url" >&2
}

# The functions run from one build of the whole workspace, with the same features and into the
# same target/ as the tests, so every dependency compiles once for both.
stack_build() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$stack_root/target}"
  if [ "${STACK_RELEASE:-}" = 1 ]; then
    export CARGO_TARGET_DIR="$stack_root/target/bench-build"
    echo "stack: release builds of endpoint-admin, endpoint-agent and the functions (first run: about 15 minutes)" >&2
    cargo build -q --release --locked --bin endpoint-admin --bin endpoint-agent
    for f in "${stack_functions[@]}"; do cargo build -q --release --locked --bin "$f"; done
    stack_bin="$CARGO_TARGET_DIR/release"
  elif [ "${1:-}" = bins ]; then
    # What the stack and the CLIs run, without the test targets (make test builds them later).
    cargo build -q "${stack_bins_args[@]}"
    stack_bin="$CARGO_TARGET_DIR/debug"
  else
    cargo build -q --workspace --all-features --lib --bins --tests --locked
    stack_bin="$CARGO_TARGET_DIR/debug"
  fi
  export STACK_ADMIN="$stack_bin/endpoint-admin"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1"); }
answers_404() { [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$1/v1/plans/ready")" = 404 ]; }

# Starts one function's binary against the emulator's Runtime API (`rt`), logging to `log`.
function_start() {
  local name=$1 rt=$2 log=$3
  AWS_LAMBDA_RUNTIME_API="$rt" AWS_LAMBDA_FUNCTION_NAME="$name" \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    "$stack_bin/$name" >>"$log" 2>&1 &
  stack_pids+=($!)
}

# `cargo lambda watch --only-lambda-apis` serves the HTTP routes of Cargo.toml's router, the
# Lambda Invoke API and the Runtime API; each function's binary runs against it. With
# STACK_WATCH=1 (make watch), cargo lambda watch builds and runs the functions itself instead,
# rebuilding one when its code changes.
functions_start() {
  local port=$1
  [ "$port" = 0 ] && port="$(free_port)"
  export API_PORT="$port"
  export TABLE_NAME="${TABLE_NAME:-endpoint-stage}"
  export ENDPOINT_API="http://127.0.0.1:$port"
  export PUBLIC_BASE_URL="$ENDPOINT_API"
  # The response function asks the challenge function for new challenges through Lambda
  # Invoke, which `cargo lambda watch` serves on the same port.
  export AWS_ENDPOINT_URL_LAMBDA="$ENDPOINT_API"
  export CHALLENGE_FUNCTION_NAME=challenge
  # Push delivery retries a failing receiver after 2 s here (deployed: 30 s), so that the
  # tests of a receiver that fails first do not wait half a minute.
  export PUSH_FIRST_RETRY_SECONDS="${PUSH_FIRST_RETRY_SECONDS:-2}"
  # Push endpoints may be loopback addresses here, and http: to them, for development and the
  # tests' loopback receivers. Only this local stack sets it (make run, make test): deployed,
  # template.yaml never does, and push goes to public addresses over https: only.
  export PUSH_ALLOW_LOOPBACK=1
  # The symmetric key that seals device token keys (deployed: the stack's SealingKey); init
  # creates the table and its data key.
  export SEALING_KEY_ID="${SEALING_KEY_ID:-$("$STACK_ADMIN" key create-sealing)}"
  "$STACK_ADMIN" init >/dev/null
  # The P-256 key that signs device assertions (deployed: the stack's AssertionKey).
  export ASSERTION_KEY_ID="${ASSERTION_KEY_ID:-$("$STACK_ADMIN" key create --spec ECC_NIST_P256)}"
  # The P-256 key that signs security event tokens (deployed: the stack's SignalsKey): its own
  # key, so that the functions that sign SETs cannot sign device assertions.
  export SIGNALS_KEY_ID="${SIGNALS_KEY_ID:-$("$STACK_ADMIN" key create --spec ECC_NIST_P256)}"
  # The challenge key /health checks (deployed: the stack's ChallengeKey, or HealthChallengeKey).
  export CHALLENGE_KEY_ID="${CHALLENGE_KEY_ID:-$("$STACK_ADMIN" key create --spec ECC_NIST_P256)}"
  # CHALLENGE_SIGNING=data-key runs the stack as ChallengeSigning=data-key deploys it (issue 31.4):
  # the challenge function may unwrap challenge data keys, wrapped under their own key (deployed:
  # the stack's ChallengeWrappingKey), and the end-to-end suites' connectors sign with data keys
  # (tests/src/lib.rs). Default kms: every challenge one KMS Sign. `aws_calls` counts the kms
  # mode's calls and runs in that mode only (its handlers sign through KMS).
  export CHALLENGE_SIGNING="${CHALLENGE_SIGNING:-kms}"
  if [ "$CHALLENGE_SIGNING" = data-key ]; then
    export CHALLENGE_WRAPPING_KEY_ID="${CHALLENGE_WRAPPING_KEY_ID:-$("$STACK_ADMIN" key create-wrapping)}"
  fi
  # The OpenID provider's ID token keys (deployed: the stack's OidcRsaKey and OidcEcKey): keys
  # of their own, RS256 and ES256.
  export OIDC_RSA_KEY_ID="${OIDC_RSA_KEY_ID:-$("$STACK_ADMIN" key create --spec RSA_2048)}"
  export OIDC_EC_KEY_ID="${OIDC_EC_KEY_ID:-$("$STACK_ADMIN" key create --spec ECC_NIST_P256)}"
  local logdir="$stack_root/target/stack-logs"; mkdir -p "$logdir"
  export STACK_WATCH_LOG="$logdir/watch-$port.log"
  if [ "${STACK_WATCH:-}" = 1 ]; then
    # Builds and serves every function of the workspace, rebuilding on change.
    (cd "$stack_root" && exec setsid cargo lambda watch -A 127.0.0.1 -P "$port") >"$STACK_WATCH_LOG" 2>&1 &
  else
    (cd "$stack_root" && exec setsid cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port") >"$STACK_WATCH_LOG" 2>&1 &
  fi
  stack_watch_pid=$!
  # A TCP connect, not a request: the emulator holds requests for functions not yet running.
  wait_until 600 "cargo lambda watch" "$STACK_WATCH_LOG" "$stack_watch_pid" tcp_open "$port"
  if [ "${STACK_WATCH:-}" != 1 ]; then
    for f in "${stack_functions[@]}"; do
      function_start "$f" "http://127.0.0.1:$port/.rt/$f" "$STACK_WATCH_LOG"
    done
    # What the router does not match goes to the emulator's default function: the fallback
    # answers it, as API Gateway's $default route does when deployed.
    function_start fallback "http://127.0.0.1:$port/.rt" "$STACK_WATCH_LOG"
  fi
  local tries=600
  [ "${STACK_WATCH:-}" = 1 ] && tries=6000
  wait_until "$tries" "the functions" "$STACK_WATCH_LOG" "$stack_watch_pid" answers_404 "$ENDPOINT_API"
  delivery_start
  echo "stack: functions on $ENDPOINT_API (log: $STACK_WATCH_LOG)" >&2
}

# Push delivery of Shared Signals: deployed, EventBridge Scheduler invokes the deliver function
# every minute; locally this loop invokes the same function (Lambda Invoke, served by cargo
# lambda watch) every two seconds, so a pushed event is first tried within seconds.
delivery_start() {
  local url="$ENDPOINT_API/2015-03-31/functions/deliver/invocations"
  (while sleep 2; do curl -s -o /dev/null -m 30 -X POST "$url" -d '{}' || true; done) &
  stack_pids+=($!)
}

stack_stop() {
  local pid
  if [ -n "$stack_watch_pid" ] && kill -0 "$stack_watch_pid" 2>/dev/null; then
    kill -TERM -- "-$stack_watch_pid" 2>/dev/null || kill -TERM "$stack_watch_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$stack_watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$stack_watch_pid" 2>/dev/null || true
  fi
  for pid in "${stack_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${stack_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  stack_pids=()
  stack_watch_pid=""
}
