#!/usr/bin/env bash
# The local stack for people: moto_server + the table + the functions behind `cargo lambda
# watch` with the deployed routes (scripts/stack-lib.sh does the work).
#
#   scripts/stack.sh run          make run: demo data, URLs, stays in the foreground (Ctrl-C stops all)
#   scripts/stack.sh watch        make watch: the same, and a function is rebuilt and reloaded
#                                 when its code changes (cargo lambda watch builds the functions)
#   scripts/stack.sh test -- CMD  runs CMD against a stack on free ports (benchmarks, by hand)
#
# Defaults (docs/DEVELOPING.md, "The local stack"): moto on $MOTO_PORT (5000 for run and watch, a free port for test),
# functions on $API_PORT (9000, or a free port), table $TABLE_NAME (endpoint-stage), region
# us-east-1, credentials test/test. Everything started is stopped by its own pid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode="${1:-}"; shift || true
[ "${1:-}" = "--" ] && shift
case "$mode" in
  run|watch|test) ;;
  *) echo "usage: $0 run | watch | test -- CMD [ARGS...]" >&2; exit 2 ;;
esac

# shellcheck source=scripts/stack-lib.sh
source "$root/scripts/stack-lib.sh"
trap stack_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export PATH="$root/.venv/bin:$PATH"

if [ "$mode" = test ]; then
  moto_start "${MOTO_PORT:-0}"
  stack_build
  export LOG_LEVEL="${LOG_LEVEL:-trace}"
  functions_start "${API_PORT:-0}"
  unset CARGO_TARGET_DIR
  set +e
  "$@"
  status=$?
  set -e
  exit "$status"
fi

export LOG_LEVEL="${LOG_LEVEL:-info}"
[ "$mode" = watch ] && export STACK_WATCH=1
moto_start "${MOTO_PORT:-5000}"
echo "stack.sh: building the workspace (first run: about 3 minutes)" >&2
stack_build
functions_start "${API_PORT:-9000}"

# make run: demo data, then stay in the foreground.
key="$("$STACK_ADMIN" key create --spec ECC_NIST_P256 --alias endpoint-stage-demo)"
connector="$("$STACK_ADMIN" connector create --name demo --challenge-key "$key")"
stage="$("$STACK_ADMIN" stage create --connector "$connector" --mode required)"
enrollment="$("$STACK_ADMIN" enrollment-token create --connector "$connector" --name demo --expires 24h)"
"$STACK_ADMIN" connector set-interactive-stage "$connector" "$stage" >/dev/null
# A posture policy on the demo stage: a current macOS, disk encryption, the firewall (in a
# grace period), osquery installed.
policy="$("$STACK_ADMIN" policy create --name demo-laptops)"
"$STACK_ADMIN" policy add-rule "$policy" os-version --family mac_os --min 14.4 >/dev/null
"$STACK_ADMIN" policy add-rule "$policy" disk-encryption --title "FileVault turned on" \
  --remediation "Open System Settings > Privacy & Security > FileVault and turn it on." >/dev/null
"$STACK_ADMIN" policy add-rule "$policy" firewall --enforce grace:72h >/dev/null
"$STACK_ADMIN" policy add-rule "$policy" software --name osquery --min-version 5.10 >/dev/null
"$STACK_ADMIN" stage set-policy "$stage" "$policy" >/dev/null
# A ready plan whose stage page can be opened in a browser now (it returns to the example app).
page="$(curl -s -X POST "$ENDPOINT_API/v1/plans" -d "{\"stage\":\"$stage\",\"redirect\":\"http://127.0.0.1:8000/\"}" | sed 's/.*"page":"\([^"]*\)".*/\1/')"

cat <<MSG

endpoint-stage is running locally.
  API (functions):  $ENDPOINT_API
  AWS emulator:     $AWS_ENDPOINT_URL   (table $TABLE_NAME)
  demo KMS key:     $key (alias/endpoint-stage-demo)
  demo connector:   $connector
  demo stage:       $stage (required, posture policy $policy)
  enrollment token: $enrollment

In another shell:
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true TABLE_NAME=$TABLE_NAME SEALING_KEY_ID=$SEALING_KEY_ID
  export PATH=$stack_bin:\$PATH
  endpoint-agent enroll --server $ENDPOINT_API --token $enrollment --serial DEMO-SERIAL --name demo-laptop
  plan=\$(curl -s -X POST $ENDPOINT_API/v1/plans -d '{"stage":"$stage","redirect":"/welcome"}' | sed 's/.*"plan":"\\([^"]*\\)".*/\\1/')
  endpoint-agent login --server $ENDPOINT_API --plan \$plan     # denied: no facts reported yet
  endpoint-admin policy show $policy

Device compliance: a Mac that fails the policy, then the same Mac fixed.
  endpoint-agent check-in --server $ENDPOINT_API --facts examples/facts/macos-non-compliant.json
  plan=\$(curl -s -X POST $ENDPOINT_API/v1/plans -d '{"stage":"$stage","redirect":"/welcome"}' | sed 's/.*"plan":"\\([^"]*\\)".*/\\1/')
  endpoint-agent login --server $ENDPOINT_API --plan \$plan     # denied, with each failing rule and how to fix it
  endpoint-admin device show DEMO-SERIAL                       # the status, the failing rules, the value seen
  endpoint-agent check-in --server $ENDPOINT_API --facts examples/facts/macos-compliant.json
  plan=\$(curl -s -X POST $ENDPOINT_API/v1/plans -d '{"stage":"$stage","redirect":"/welcome"}' | sed 's/.*"plan":"\\([^"]*\\)".*/\\1/')
  endpoint-agent login --server $ENDPOINT_API --plan \$plan     # passed
  curl -s $ENDPOINT_API/v1/plans/\$plan                        # the plan, with its compliance
  curl -s $ENDPOINT_API/v1/connectors/$connector/jwks.json

The relying-party example (a login button -> the hosted stage page -> back, device shown):
  .venv/bin/python examples/relying-party/app.py --api $ENDPOINT_API --stage $stage --port 8000
  then open http://127.0.0.1:8000/ in a browser with the authentik extension and agent (or
  Chromium with tests/browser/extension and: endpoint-agent install-native-host --profile DIR).

A ready plan's hosted stage page (15 minutes):
  $page

Function logs: $STACK_WATCH_LOG. Ctrl-C stops everything.
MSG
wait "$stack_watch_pid"
