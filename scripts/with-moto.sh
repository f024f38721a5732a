#!/usr/bin/env bash
# Run a command with moto_server (the local AWS emulator) listening on 127.0.0.1, for running
# one suite by hand: `scripts/with-moto.sh -- cargo test -p endpoint-core --all-features --test aws`.
#
#   scripts/with-moto.sh [--port N] -- CMD [ARGS...]
#
# Exports the standard AWS variables so the Rust SDK talks to it (AWS_ENDPOINT_URL, dummy
# credentials, region, no IMDS probing), runs CMD, and always stops moto afterwards. Exits with
# CMD's status.
set -euo pipefail
port="${MOTO_PORT:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--port N] -- CMD [ARGS...]" >&2; exit 2; }
# shellcheck source=scripts/stack-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack-lib.sh"
trap stack_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
moto_start "$port"
set +e
"$@"
status=$?
set -e
exit "$status"
