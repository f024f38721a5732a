#!/usr/bin/env bash
# Run a command with moto_server (the local AWS emulator) listening on 127.0.0.1.
#
#   scripts/with-moto.sh [--port N] -- CMD [ARGS...]
#
# Installs moto into ./.venv when missing (scripts/venv.sh), starts moto_server on a free port
# (or --port N / $MOTO_PORT), waits until it answers, exports the standard AWS variables so the
# Rust SDK talks to it (AWS_ENDPOINT_URL, dummy credentials, region, no IMDS probing), runs CMD,
# and always stops moto afterwards, by its own pid, whatever CMD did (trap on EXIT/INT/TERM).
# Exits with CMD's status.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

port="${MOTO_PORT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--port N] -- CMD [ARGS...]" >&2; exit 2; }

"$root/scripts/venv.sh"

if [ -z "$port" ]; then
  port="$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
fi

logdir="$root/target/moto"
mkdir -p "$logdir"
log="$logdir/moto-$port.log"
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!

stop_moto() {
  if kill -0 "$moto_pid" 2>/dev/null; then
    kill "$moto_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$moto_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$moto_pid" 2>/dev/null || true
  fi
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

url="http://127.0.0.1:$port"
for i in $(seq 1 150); do
  if curl -fsS -o /dev/null "$url/moto-api/" 2>/dev/null; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "with-moto.sh: moto_server exited; its log ($log):" >&2; tail -n 20 "$log" >&2; exit 1
  fi
  [ "$i" -eq 150 ] && { echo "with-moto.sh: moto_server did not answer on $url within 15 s" >&2; exit 1; }
  sleep 0.1
done

export AWS_ENDPOINT_URL="$url"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_EC2_METADATA_DISABLED=true
export MOTO_PORT="$port"
export MOTO_PID="$moto_pid"
echo "with-moto.sh: moto_server (pid $moto_pid) on $url" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
