#!/usr/bin/env bash
# Two local regions on one machine (make run-regions; the regions suite in make test-long):
# region A (us-east-1, code use1) and region B (eu-west-1, code euw1), each with its own table
# in the one moto_server and its own functions, and scripts/replicator.py between the tables
# standing in for global tables (REPLICATION_LAG_MS, default 1000; last writer wins). The keys
# are multi-Region keys made in A and replicated to B (endpoint-admin key create
# --replicate-to). A is the primary region: the operator's CLI and enrollment of the demo write
# there. docs/OPERATING.md, "Regions".
#
#   scripts/regions.sh run            make run-regions: demo data, URLs, stays in the foreground
#   scripts/regions.sh test -- CMD    CMD against both regions on free ports; with
#                                     REGIONS_NEGATIVE_CONTROL=1 also region B without affinity
#                                     (REGION_AFFINITY=off, on $REGION_C_API: the negative control)
#   scripts/regions.sh stop a|b|c     stops one region's functions (its table stays)
#   scripts/regions.sh start a|b|c    starts them again
#   scripts/regions.sh isolate a|b    cuts one region's table off: its writes reach the other
#                                     table only after `reconnect` (a failed region's pending writes)
#   scripts/regions.sh reconnect a|b  lets them through
#   scripts/regions.sh primary a|b    moves the primary region (PRIMARY_REGION of regions A and
#                                     B, whose running functions restart with it); C keeps its own
#
# Defaults: moto on $MOTO_PORT (5000 for run, a free port for test), A on $API_PORT (9000), B on
# $API_PORT_B (9001), table $TABLE_NAME (endpoint-stage) in each region.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dir="$root/target/regions"

mode="${1:-}"; shift || true
case "$mode" in
  stop|start)
    name="${1:-}"
    [ -f "$dir/$name.env" ] || { echo "regions.sh: no region $name (is make run-regions running?)" >&2; exit 2; }
    if [ -f "$dir/$name.pid" ] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
      [ "$mode" = start ] && { echo "region $name is running" >&2; exit 0; }
      kill -TERM -- "-$(cat "$dir/$name.pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$(cat "$dir/$name.pid")" 2>/dev/null || true
      rm -f "$dir/$name.pid"
      echo "region $name stopped" >&2
      exit 0
    fi
    if [ "$mode" = start ]; then
      setsid "$root/scripts/region-functions.sh" "$dir/$name.env" >>"$dir/$name.log" 2>&1 < /dev/null &
      echo $! >"$dir/$name.pid"
      # shellcheck disable=SC1090
      api="$(source "$dir/$name.env"; echo "$ENDPOINT_API")"
      for _ in $(seq 1 600); do
        [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$api/v1/stage.js")" = 200 ] && { echo "region $name started on $api" >&2; exit 0; }
        sleep 0.1
      done
      echo "region $name did not answer; its log: $dir/$name.log" >&2; exit 1
    fi
    echo "region $name is not running" >&2; exit 0 ;;
  isolate|reconnect)
    case "${1:-}" in a) region=us-east-1 ;; b) region=eu-west-1 ;; *) echo "usage: $0 $mode a|b" >&2; exit 2 ;; esac
    [ -d "$dir" ] || { echo "regions.sh: make run-regions is not running" >&2; exit 2; }
    if [ "$mode" = isolate ]; then touch "$dir/isolated-$region"; else rm -f "$dir/isolated-$region"; fi
    echo "region ${1}: $mode" >&2
    exit 0 ;;
  primary)
    name="${1:-}"
    case "$name" in a) code=use1 ;; b) code=euw1 ;; *) echo "usage: $0 primary a|b" >&2; exit 2 ;; esac
    for r in a b; do
      [ -f "$dir/$r.env" ] || { echo "regions.sh: no region $r (is make run-regions running?)" >&2; exit 2; }
      sed -i "s/PRIMARY_REGION=[a-z0-9]*/PRIMARY_REGION=$code/" "$dir/$r.env"
    done
    for r in a b; do
      if [ -f "$dir/$r.pid" ] && kill -0 "$(cat "$dir/$r.pid")" 2>/dev/null; then
        "$0" stop "$r"
        "$0" start "$r"
      fi
    done
    echo "primary region: $name ($code)" >&2
    exit 0 ;;
  run|test) ;;
  *) echo "usage: $0 run | test -- CMD [ARGS...] | stop a|b|c | start a|b|c | primary a|b | isolate|reconnect a|b" >&2; exit 2 ;;
esac
[ "${1:-}" = "--" ] && shift

# shellcheck source=scripts/stack-lib.sh
source "$root/scripts/stack-lib.sh"
regions_stop() {
  local f
  for f in "$dir"/*.pid; do
    [ -f "$f" ] || continue
    kill -TERM -- "-$(cat "$f")" 2>/dev/null || true
    sleep 0.2
    kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  stack_stop
}
trap regions_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
rm -rf "$dir"; mkdir -p "$dir"

if [ "$mode" = test ]; then
  moto_start "${MOTO_PORT:-0}"
  port_a="$(free_port)"; port_b="$(free_port)"; port_c="$(free_port)"
  export LOG_LEVEL="${LOG_LEVEL:-info}"
else
  moto_start "${MOTO_PORT:-5000}"
  port_a="${API_PORT:-9000}"; port_b="${API_PORT_B:-9001}"
  export LOG_LEVEL="${LOG_LEVEL:-info}"
  echo "regions.sh: building the workspace (first run: about 3 minutes)" >&2
fi
stack_build
export TABLE_NAME="${TABLE_NAME:-endpoint-stage}"
export REPLICATION_LAG_MS="${REPLICATION_LAG_MS:-1000}"
region_a=us-east-1; region_b=eu-west-1
export AWS_REGION="$region_a" AWS_DEFAULT_REGION="$region_a"
# Multi-Region keys made in A, replicated to B: one key id and one kid in both.
export SEALING_KEY_ID ASSERTION_KEY_ID SIGNALS_KEY_ID CHALLENGE_KEY_ID OIDC_RSA_KEY_ID OIDC_EC_KEY_ID
SEALING_KEY_ID="$("$STACK_ADMIN" key create-sealing --replicate-to "$region_b")"
ASSERTION_KEY_ID="$("$STACK_ADMIN" key create --spec ECC_NIST_P256 --replicate-to "$region_b")"
SIGNALS_KEY_ID="$("$STACK_ADMIN" key create --spec ECC_NIST_P256 --replicate-to "$region_b")"
# The challenge key each region's /health checks (deployed: the stack's ChallengeKey, a replica in B).
CHALLENGE_KEY_ID="$("$STACK_ADMIN" key create --spec ECC_NIST_P256 --replicate-to "$region_b")"
# The OpenID provider's ID token keys (RS256, ES256): an ID token of either region verifies with
# the one JWKS.
OIDC_RSA_KEY_ID="$("$STACK_ADMIN" key create --spec RSA_2048 --replicate-to "$region_b")"
OIDC_EC_KEY_ID="$("$STACK_ADMIN" key create --spec ECC_NIST_P256 --replicate-to "$region_b")"
# A's table with its data key; B's table empty (a replica is filled by replication, never given
# a data key of its own).
"$STACK_ADMIN" init >/dev/null
AWS_REGION="$region_b" env -u SEALING_KEY_ID "$STACK_ADMIN" init >/dev/null
REPLICATOR_CONTROL_DIR="$dir" "$root/.venv/bin/python" "$root/scripts/replicator.py" --endpoint "$AWS_ENDPOINT_URL" \
  --table "$TABLE_NAME" --a "$region_a" --b "$region_b" --lag-ms "$REPLICATION_LAG_MS" \
  >"$dir/replicator.log" 2>&1 &
stack_pids+=($!)

export REGION_A_API="http://127.0.0.1:$port_a" REGION_B_API="http://127.0.0.1:$port_b"
base_urls="use1=$REGION_A_API,euw1=$REGION_B_API"

# Writes one region's environment, then starts its functions in a session of their own.
region_start() {
  local name=$1 region=$2 code=$3 port=$4 affinity=$5
  cat >"$dir/$name.env" <<ENV
export STACK_ROOT='$root' STACK_BIN='$stack_bin' LOG_LEVEL='$LOG_LEVEL'
export AWS_ENDPOINT_URL='$AWS_ENDPOINT_URL' AWS_ACCESS_KEY_ID='$AWS_ACCESS_KEY_ID' AWS_SECRET_ACCESS_KEY='$AWS_SECRET_ACCESS_KEY'
export AWS_REGION='$region' AWS_DEFAULT_REGION='$region' AWS_EC2_METADATA_DISABLED=true AWS_ATTEMPT_TIMEOUT_MS='$AWS_ATTEMPT_TIMEOUT_MS'
export TABLE_NAME='$TABLE_NAME' SEALING_KEY_ID='$SEALING_KEY_ID' ASSERTION_KEY_ID='$ASSERTION_KEY_ID' SIGNALS_KEY_ID='$SIGNALS_KEY_ID' CHALLENGE_KEY_ID='$CHALLENGE_KEY_ID'
export OIDC_RSA_KEY_ID='$OIDC_RSA_KEY_ID' OIDC_EC_KEY_ID='$OIDC_EC_KEY_ID'
export API_PORT='$port' ENDPOINT_API='http://127.0.0.1:$port' PUBLIC_BASE_URL='http://127.0.0.1:$port'
export AWS_ENDPOINT_URL_LAMBDA='http://127.0.0.1:$port' CHALLENGE_FUNCTION_NAME=challenge
export PUSH_FIRST_RETRY_SECONDS=2 PUSH_ALLOW_LOOPBACK=1
export REGION_CODE='$code' REGION_BASE_URLS='$base_urls' PRIMARY_REGION=use1 REGION_AFFINITY='$affinity'
ENV
  "$0" start "$name"
}
region_start a "$region_a" use1 "$port_a" on
region_start b "$region_b" euw1 "$port_b" on
if [ "$mode" = test ]; then
  if [ "${REGIONS_NEGATIVE_CONTROL:-}" = 1 ]; then
    # The negative control: B's region and table, affinity off (only this stack sets it).
    export REGION_C_API="http://127.0.0.1:$port_c"
    region_start c "$region_b" euw1 "$port_c" off
  fi
  export REGIONS_SCRIPT="$0" ENDPOINT_API="$REGION_A_API"
  unset CARGO_TARGET_DIR
  set +e
  "$@"
  status=$?
  set -e
  exit "$status"
fi

# make run-regions: demo data in the primary (A), then stay in the foreground.
key="$("$STACK_ADMIN" key create --spec ECC_NIST_P256 --replicate-to "$region_b")"
connector="$("$STACK_ADMIN" connector create --name demo --challenge-key "$key")"
stage="$("$STACK_ADMIN" stage create --connector "$connector" --mode required)"
enrollment="$("$STACK_ADMIN" enrollment-token create --connector "$connector" --name demo --expires 24h)"
common="AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true TABLE_NAME=$TABLE_NAME SEALING_KEY_ID=$SEALING_KEY_ID"
cat <<MSG

endpoint-stage is running in two local regions (replication lag ${REPLICATION_LAG_MS} ms).
  region A (use1, us-east-1, primary): $REGION_A_API
  region B (euw1, eu-west-1):          $REGION_B_API
  AWS emulator: $AWS_ENDPOINT_URL (table $TABLE_NAME in each region)
  demo connector $connector, stage $stage (required), enrollment token $enrollment

In another shell, for region A (the operator's CLI writes in the primary):
  export $common AWS_REGION=$region_a ENDPOINT_API=$REGION_A_API
and for region B:
  export $common AWS_REGION=$region_b ENDPOINT_API=$REGION_B_API
  export PATH=$stack_bin:\$PATH

A device enrolled in A signs in through B (after the lag):
  endpoint-agent enroll --server $REGION_A_API --token $enrollment --serial DEMO-SERIAL --name demo-laptop
  plan=\$(curl -s -X POST $REGION_B_API/v1/plans -d '{"stage":"$stage"}' | sed 's/.*"plan":"\\([^"]*\\)".*/\\1/')
  endpoint-agent login --server $REGION_B_API --plan \$plan
A plan of B asked of A is redirected to B (307):
  curl -si $REGION_A_API/v1/plans/\$plan/executor | head -n 5

Stop and start one region's functions (its table stays, and replication goes on):
  scripts/regions.sh stop a      scripts/regions.sh start a
  scripts/regions.sh stop b      scripts/regions.sh start b
Move the primary (the signals outbox, the operator's CLI) to B after stopping A:
  scripts/regions.sh primary b
Cut A's table off (its writes reach B only after reconnect, as a failed region's pending writes):
  scripts/regions.sh isolate a   scripts/regions.sh reconnect a

Logs: $dir/a.log, $dir/b.log, $dir/replicator.log. Ctrl-C stops everything.
MSG
while true; do sleep 3600; done
