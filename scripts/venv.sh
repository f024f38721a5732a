#!/usr/bin/env bash
# Make sure the repo-local Python venv (./.venv) exists and holds scripts/requirements.txt.
# Idempotent and quick when nothing changed: a stamp file remembers the requirements' hash.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/scripts/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "venv.sh: $python not found; install Python 3.9+" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
echo "venv.sh: installing $(grep -cv '^\s*#' "$req") requirement line(s) into .venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
